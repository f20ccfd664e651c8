//! Our `.modinfo` reader against `modinfo(8)` on real, compressed kernel modules of an
//! installed Debian kernel image.

use crate::common::{self, Needs};

use std::path::PathBuf;
use std::process::Command;

fn real_modules(limit: usize) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack: Vec<PathBuf> = std::fs::read_dir("/lib/modules")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("kernel/drivers/net"))
        .collect();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains(".ko") && found.len() < limit {
                found.push(p);
            }
        }
    }
    found
}

fn modinfo_field(path: &PathBuf, field: &str) -> Option<String> {
    let out = Command::new("modinfo")
        .args(["-F", field])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    (!text.is_empty()).then_some(text)
}

#[test]
#[cfg_attr(
    not(dkms_host_kernel_image),
    ignore = "needs an installed kernel image (.ci/install-deps)"
)]
fn matches_modinfo_on_real_modules() {
    if !common::host_ready(&[Needs::KernelImage]) {
        return;
    }
    let modules = real_modules(25);
    assert!(
        modules.len() >= 10,
        "a Debian kernel image is installed (.ci/install-deps pulls the 6.12 image in)"
    );
    for m in modules {
        let ours = dkms::module::modinfo::read(&m).unwrap();
        assert_eq!(
            ours.version,
            modinfo_field(&m, "version"),
            "{}",
            m.display()
        );
        assert_eq!(
            ours.srcversion,
            modinfo_field(&m, "srcversion"),
            "{}",
            m.display()
        );
        assert_eq!(
            ours.vermagic,
            modinfo_field(&m, "vermagic"),
            "{}",
            m.display()
        );
    }
}
