//! Real Debian `*-dkms` packages, built and installed on a 6.1 and a 6.12 kernel by our
//! dkms and by Debian's bash dkms, each in its own scratch root: the same exit code, the
//! same installed files in the same places with the same suffixes, the same built files
//! and the same status; every module we build names its kernel in its vermagic.
//! The packages are downloaded by `.ci/install-deps` into /var/cache/dkms-rs-test/debs.

use crate::common::{self, Needs};

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Root;

const DEBS: &str = "/var/cache/dkms-rs-test/debs";

fn kernels() -> Vec<String> {
    vec![common::headers("6.1"), common::headers("6.12")]
}

/// `usr/src/<name>-<version>` of the package, extracted once per test.
fn extract(package: &str) -> (tempfile::TempDir, PathBuf) {
    let deb = std::fs::read_dir(DEBS)
        .expect("packages downloaded by .ci/install-deps")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{package}_"))
        })
        .unwrap_or_else(|| panic!("{package} in {DEBS}"));
    let dir = tempfile::tempdir().unwrap();
    assert!(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(dir.path())
        .status()
        .unwrap()
        .success());
    let src = std::fs::read_dir(dir.path().join("usr/src"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("dkms.conf").exists())
        .unwrap();
    (dir, src)
}

fn name_version(src: &Path) -> (String, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg("kernelver=; . ./dkms.conf >/dev/null 2>&1; printf '%s\\n%s' \"$PACKAGE_NAME\" \"$PACKAGE_VERSION\"")
        .current_dir(src)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (n, v) = text.split_once('\n').unwrap();
    (n.to_string(), v.to_string())
}

/// Relative paths of files (not the `build` link) under `dir`.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let ty = e.file_type().unwrap();
            if ty.is_dir() {
                stack.push(p);
            } else if ty.is_file() && !e.file_name().to_string_lossy().starts_with('.') {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Both dkms install `package` on the 6.1 and 6.12 kernels with the same result: the
/// exit codes given (what the package's source supports), the same files, the same
/// status; where it installs, it installs something.
fn same_as_debian(package: &str, expected_codes: [i32; 2]) {
    let (_tmp, src) = extract(package);
    let (m, v) = name_version(&src);
    let dir_name = src.file_name().unwrap().to_string_lossy().into_owned();
    let ours = Root::new();
    let theirs = Root::new();
    for root in [&ours, &theirs] {
        common::copy_dir(&src, &root.source_tree().join(&dir_name));
    }
    let mv = format!("{m}/{v}");
    for (k, expected) in kernels().into_iter().zip(expected_codes) {
        ours.real_kernel(&k);
        theirs.real_kernel(&k);
        let a = ours.dkms(&["install", &mv, "-k", &k]);
        let b = theirs.bash_dkms(&["install", &mv, "-k", &k, "--no-depmod"]);
        assert_eq!(
            (a.code, b.code),
            (expected, expected),
            "{package} on {k}: exit codes (ours, theirs)\nours:\n{}\ntheirs:\n{}{}",
            a.stderr,
            b.stdout,
            b.stderr
        );
        if expected == dkms::exit::SUCCESS {
            assert!(
                !files_under(&ours.install_tree().join(&k)).is_empty(),
                "{package} on {k}: installed nothing"
            );
        }
        assert_eq!(
            files_under(&ours.install_tree().join(&k)),
            files_under(&theirs.install_tree().join(&k)),
            "{package} on {k}: installed files"
        );
        // 3.1+ keeps Module.symvers beside the built modules (reference §0 item 7, §4);
        // Debian's 3.0.10 predates that.
        let built = |r: &Root| {
            let mut f = files_under(
                &r.dkms_tree()
                    .join(&m)
                    .join(&v)
                    .join(&k)
                    .join("x86_64/module"),
            );
            f.retain(|n| n != "Module.symvers");
            f
        };
        assert_eq!(
            built(&ours),
            built(&theirs),
            "{package} on {k}: built files"
        );
        for f in files_under(&ours.install_tree().join(&k)) {
            let info = dkms::module::modinfo::read(&ours.install_tree().join(&k).join(&f)).unwrap();
            assert!(
                info.vermagic
                    .as_deref()
                    .unwrap_or("")
                    .starts_with(&format!("{k} ")),
                "{f}: {info:?}"
            );
        }
    }
    assert_eq!(
        common::to_3_0_10_wording(&ours.dkms(&["status"]).stdout),
        theirs.bash_dkms(&["status"]).stdout,
        "{package}: status"
    );
    // And both remove everything they installed.
    ours.dkms(&["remove", &mv, "--all"]).ok();
    assert_eq!(
        theirs
            .bash_dkms(&["remove", &mv, "--all", "--no-depmod"])
            .code,
        0
    );
    for k in kernels() {
        assert!(
            files_under(&ours.install_tree().join(&k)).is_empty(),
            "{package}: left files on {k}"
        );
    }
}

/// Each package, and the exit status both dkms give on the 6.1 and the 6.12 kernel (what
/// its source supports: several do not build on 6.12).
macro_rules! packages {
    ($($test:ident: $package:literal, [$on_61:expr, $on_612:expr];)*) => {
        $(
            #[test]
            #[cfg_attr(
                not(all(
                    dkms_host_headers_6_1,
                    dkms_host_headers_6_12,
                    dkms_host_debian_dkms,
                    dkms_host_test_packages
                )),
                ignore = "needs Debian's 6.1 and 6.12 kernel headers, Debian's bash dkms, the real *-dkms packages (.ci/install-deps)"
            )]
            fn $test() {
                if common::host_ready(&[
                    Needs::Headers("6.1"),
                    Needs::Headers("6.12"),
                    Needs::DebianDkms,
                    Needs::TestPackages,
                ]) {
                    same_as_debian($package, [$on_61, $on_612]);
                }
            }
        )*
    };
}

use dkms::exit::{BUILD_FAILED, BUILT_MODULE_MISSING, SUCCESS};

packages! {
    acpi_call: "acpi-call-dkms", [SUCCESS, SUCCESS];
    bbswitch: "bbswitch-dkms", [SUCCESS, SUCCESS];
    v4l2loopback_with_shell_logic_in_dkms_conf: "v4l2loopback-dkms", [SUCCESS, BUILD_FAILED];
    xtables_addons_many_modules: "xtables-addons-dkms", [SUCCESS, BUILT_MODULE_MISSING];
    r8168_realtek_nic_driver: "r8168-dkms", [SUCCESS, BUILD_FAILED];
    dm_writeboost: "dm-writeboost-dkms", [SUCCESS, BUILD_FAILED];
}
