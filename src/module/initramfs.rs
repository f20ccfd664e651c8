//! Modules needed at boot (NEEDED_AT_BOOT in dkms.conf, `boot_modules` in framework.conf)
//! put into the kernel's initramfs with the distribution's own tool, and checked there.
//!
//! Why: a storage or keyboard module missing from the initramfs is a machine that does
//! not boot, and the tools leave dkms's modules out unless told (dracut skipped
//! `updates/dkms`; initramfs-tools copies only what its hooks or `/etc/initramfs-tools/
//! modules` name). So dkms tells them — initramfs-tools through its hook
//! (`/usr/share/initramfs-tools/hooks/dkms`, which reads `<dkms_tree>/.initramfs/<k>`),
//! dracut through `--add-drivers` and a drop-in that later regenerations read too —
//! regenerates the image of each kernel whose boot modules changed, and lists the image
//! (`lsinitramfs`, `lsinitrd`, `lsinitcpio`) to say whether they are really there.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::framework::Settings;

/// The distribution's initramfs tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// Debian, Ubuntu: update-initramfs, lsinitramfs.
    InitramfsTools,
    /// Fedora, RHEL, SUSE, and Debian with dracut: dracut, lsinitrd.
    Dracut,
    /// Arch: mkinitcpio, lsinitcpio.
    Mkinitcpio,
}

impl Tool {
    /// The tool installed in the root, by its program (update-initramfs first, as the
    /// package managers install only one).
    pub fn of(settings: &Settings) -> Option<Tool> {
        let has = |p: &str| settings.sysroot.join(p).exists();
        if has("usr/sbin/update-initramfs") {
            Some(Tool::InitramfsTools)
        } else if has("usr/bin/dracut") || has("usr/sbin/dracut") {
            Some(Tool::Dracut)
        } else if has("usr/bin/mkinitcpio") {
            Some(Tool::Mkinitcpio)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tool::InitramfsTools => "update-initramfs",
            Tool::Dracut => "dracut",
            Tool::Mkinitcpio => "mkinitcpio",
        }
    }

    /// The program in the root (a scratch root's stand-in in tests).
    fn program(self, settings: &Settings) -> PathBuf {
        let has = |p: &str| settings.sysroot.join(p);
        match self {
            Tool::InitramfsTools => has("usr/sbin/update-initramfs"),
            Tool::Dracut if has("usr/bin/dracut").exists() => has("usr/bin/dracut"),
            Tool::Dracut => has("usr/sbin/dracut"),
            Tool::Mkinitcpio => has("usr/bin/mkinitcpio"),
        }
    }

    /// The program that lists an image.
    fn lister(self, settings: &Settings) -> PathBuf {
        settings.sysroot.join(match self {
            Tool::InitramfsTools => "usr/bin/lsinitramfs",
            Tool::Dracut => "usr/bin/lsinitrd",
            Tool::Mkinitcpio => "usr/bin/lsinitcpio",
        })
    }
}

/// `<dkms_tree>/.initramfs/<kernel>`: the module names the initramfs of `kernel` must
/// hold, one a line (read by the initramfs-tools hook).
pub fn list_file(settings: &Settings, kernel: &str) -> PathBuf {
    settings.dkms_tree.join(".initramfs").join(kernel)
}

/// The names recorded for `kernel` (empty if none).
pub fn recorded(settings: &Settings, kernel: &str) -> Vec<String> {
    std::fs::read_to_string(list_file(settings, kernel))
        .map(|t| {
            t.lines()
                .map(str::to_string)
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Record `names` for `kernel` (the file goes when there are none).
pub fn record(settings: &Settings, kernel: &str, names: &[String]) -> std::io::Result<()> {
    let file = list_file(settings, kernel);
    if names.is_empty() {
        return match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    std::fs::create_dir_all(file.parent().expect("a directory"))?;
    crate::fsutil::write_atomically(&file, (names.join("\n") + "\n").as_bytes(), 0o644)
}

/// Regenerate `kernel`'s initramfs with `tool`, telling it about `names` (and, for
/// dracut, every kernel's: `all`). The error is the tool's own words.
pub fn regenerate(
    settings: &Settings,
    tool: Tool,
    kernel: &str,
    names: &[String],
    all: &[String],
) -> Result<(), String> {
    let mut cmd = match tool {
        Tool::InitramfsTools => {
            let mut c = Command::new(tool.program(settings));
            c.args(["-u", "-k", kernel]);
            c
        }
        Tool::Dracut => {
            write_dracut_dropin(settings, all).map_err(|e| e.to_string())?;
            let mut c = Command::new(tool.program(settings));
            c.args(["--force", "--kver", kernel]);
            if !names.is_empty() {
                c.arg("--add-drivers").arg(names.join(" "));
            }
            c
        }
        Tool::Mkinitcpio => {
            let pkgbase = std::fs::read_to_string(settings.install_tree.join(kernel).join("pkgbase"))
                .map_err(|_| format!("no pkgbase file for {kernel}: cannot tell which mkinitcpio preset builds its image"))?;
            let mut c = Command::new(tool.program(settings));
            c.args(["-p", pkgbase.trim()]);
            c
        }
    };
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", tool.name()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} exited with {}: {}",
            tool.name(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `/etc/dracut.conf.d/50-dkms.conf`: the modules dkms needs at boot, for every later
/// dracut run too (a kernel package's own regeneration).
fn write_dracut_dropin(settings: &Settings, all: &[String]) -> std::io::Result<()> {
    let file = settings.sysroot.join("etc/dracut.conf.d/50-dkms.conf");
    if all.is_empty() {
        return match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    std::fs::create_dir_all(file.parent().expect("a directory"))?;
    let text = format!(
        "# Written by dkms: modules marked NEEDED_AT_BOOT (dkms.conf) or boot_modules\n# (framework.conf); rewritten whenever they change.\nadd_drivers+=\" {} \"\n",
        all.join(" ")
    );
    crate::fsutil::write_atomically(&file, text.as_bytes(), 0o644)
}

/// Where `kernel`'s initramfs is: Debian's `/boot/initrd.img-<k>`, Fedora's
/// `/boot/initramfs-<k>.img`, Arch's `/boot/initramfs-<pkgbase>.img`.
pub fn image(settings: &Settings, kernel: &str) -> Option<PathBuf> {
    let boot = settings.sysroot.join("boot");
    let pkgbase = std::fs::read_to_string(settings.install_tree.join(kernel).join("pkgbase")).ok();
    let mut candidates = vec![
        boot.join(format!("initrd.img-{kernel}")),
        boot.join(format!("initramfs-{kernel}.img")),
    ];
    if let Some(base) = pkgbase {
        candidates.push(boot.join(format!("initramfs-{}.img", base.trim())));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// Which of `names` the image holds no `<name>.ko*` of (listed with the tool's lister).
pub fn missing_from(
    settings: &Settings,
    tool: Tool,
    image: &Path,
    names: &[String],
) -> Result<Vec<String>, String> {
    let lister = tool.lister(settings);
    let lister = lister.display();
    let out = Command::new(lister.to_string())
        .arg(image)
        .output()
        .map_err(|e| format!("cannot run {lister}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{lister} {} failed: {}",
            image.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let listing = String::from_utf8_lossy(&out.stdout);
    let holds = |name: &str| {
        listing.lines().any(|l| {
            let file = l.rsplit('/').next().unwrap_or(l).trim();
            ["", ".xz", ".zst", ".gz"]
                .iter()
                .any(|s| file == format!("{name}.ko{s}"))
        })
    };
    Ok(names.iter().filter(|n| !holds(n)).cloned().collect())
}
