//! `dkms mkbmdeb`: binary packages of built modules, read back with dpkg-deb.

use crate::common::{self, Needs};

use std::process::Command;

use common::Root;
use dkms::exit;

fn dpkg_deb(args: &[&str], deb: &str) -> String {
    let out = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn mkbmdeb_builds_what_is_missing_and_packages_the_kernel() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let root = Root::new();
    let k = common::headers("6.1");
    root.real_kernel(&k).fixture("patched-1.0");
    root.dkms(&["add", "patched/1.0"]).ok();
    let out = root.dkms(&["mkbmdeb", "patched/1.0", "-k", &k]);
    out.ok();
    let deb = root.dkms_tree().join(format!(
        "patched/1.0/deb/patched-modules-{k}_1.0-1_amd64.deb"
    ));
    assert_eq!(out.stdout.lines().last(), Some(deb.to_str().unwrap()));
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: built\n"),
        "built first, not installed"
    );
    let deb = deb.to_str().unwrap();
    let listing: Vec<String> = dpkg_deb(&["-c"], deb)
        .lines()
        .map(|l| l.split_whitespace().skip(5).collect::<Vec<_>>().join(" "))
        .filter(|l| !l.ends_with('/'))
        .collect();
    assert_eq!(
        listing,
        [
            format!("./lib/modules/{k}/updates/dkms/fx_patched.ko"),
            format!("./usr/share/doc/patched-modules-{k}/copyright"),
            format!("./var/lib/dkms/patched/1.0/{k}/x86_64/.dkms.conf"),
            format!("./var/lib/dkms/patched/1.0/{k}/x86_64/.installed-files.json"),
            format!("./var/lib/dkms/patched/1.0/{k}/x86_64/module/fx_patched.ko"),
            format!("./var/lib/dkms/patched/kernel-{k}-x86_64 -> 1.0/{k}/x86_64"),
        ]
    );
    let control = Command::new("dpkg-deb")
        .args([
            "-f",
            deb,
            "Package",
            "Version",
            "Architecture",
            "Depends",
            "Conflicts",
            "Provides",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&control.stdout),
        format!("Package: patched-modules-{k}\nVersion: 1.0-1\nArchitecture: amd64\nDepends: linux-image-{k}\nConflicts: patched-dkms\nProvides: patched-modules\n")
    );
    // The module in the package is the built one: signed, as an install would place it.
    let unpacked = tempfile::tempdir().unwrap();
    let x = Command::new("dpkg-deb")
        .args(["-x", deb])
        .arg(unpacked.path())
        .status()
        .unwrap();
    assert!(x.success());
    let packaged = unpacked
        .path()
        .join(format!("lib/modules/{k}/updates/dkms/fx_patched.ko"));
    let built = root
        .dkms_tree()
        .join(format!("patched/1.0/{k}/x86_64/module/fx_patched.ko"));
    assert_eq!(
        std::fs::read(&packaged).unwrap(),
        std::fs::read(&built).unwrap()
    );
    assert!(
        dkms::module::sign::signer_of(&std::fs::read(&packaged).unwrap()).is_some(),
        "the packaged module is signed"
    );
    // md5sums covers every file, as dpkg --verify reads it.
    let control_dir = tempfile::tempdir().unwrap();
    let e = Command::new("dpkg-deb")
        .args(["-e", deb])
        .arg(control_dir.path())
        .status()
        .unwrap();
    assert!(e.success());
    let sums = std::fs::read_to_string(control_dir.path().join("md5sums")).unwrap();
    assert_eq!(sums.lines().count(), 5, "{sums}");
    let check = Command::new("md5sum")
        .args(["--check", "--quiet", "--strict"])
        .arg(control_dir.path().join("md5sums"))
        .current_dir(unpacked.path())
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    // The packaged dkms.conf never asks the host to build it for another kernel.
    let conf = std::fs::read_to_string(
        unpacked
            .path()
            .join(format!("var/lib/dkms/patched/1.0/{k}/x86_64/.dkms.conf")),
    )
    .unwrap();
    assert!(conf.ends_with("AUTOINSTALL=\"\"\n"), "{conf}");
    // A rebuild of the same version ships under a higher revision.
    let out = root.dkms(&["mkbmdeb", "patched/1.0", "-k", &k, "--revision", "2"]);
    out.ok();
    assert_eq!(
        out.stdout.lines().last().unwrap(),
        root.dkms_tree()
            .join(format!(
                "patched/1.0/deb/patched-modules-{k}_1.0-2_amd64.deb"
            ))
            .display()
            .to_string()
    );
    root.dkms(&["mkbmdeb", "patched/1.0", "-k", &k, "--revision=0"])
        .is(
            &root,
            exit::FAILURE,
            "",
            "\nError! Invalid package revision '0' given to --revision: a number from 1 up.\n",
        );
}

#[test]
fn mkbmdeb_names_the_kernel_a_module_does_not_build_for() {
    let root = Root::new();
    // Headers whose kbuild is missing: every build fails.
    root.fake_kernel("6.1.0-0-broken", "CONFIG_MODULES=y\n")
        .source("solo", "1.0", &common::simple_conf("solo", "1.0"))
        .write("usr/src/solo-1.0/Makefile", "obj-m := solo.o\n");
    root.dkms(&["add", "solo/1.0"]).ok();
    root.dkms(&["mkbmdeb", "solo/1.0", "-k", "6.1.0-0-broken"]).is(
        &root,
        exit::BUILD_FAILED,
        "The kernel is built without module signing facility, modules won't be signed\nBuilding solo/1.0 module(s) for kernel 6.1.0-0-broken (x86_64)...\n",
        "\nError! Bad return status for module build on kernel: 6.1.0-0-broken (x86_64)\nConsult $ROOT/var/lib/dkms/solo/1.0/.failed/6.1.0-0-broken/x86_64/make.log for more information.\n",
    );
    assert!(!root
        .dkms_tree()
        .join("solo/1.0/deb")
        .read_dir()
        .unwrap()
        .any(|_| true));
}

#[test]
fn a_second_packaging_run_waits_for_the_lock() {
    let root = Root::new();
    root.fake_kernel("6.1.0-0-broken", "CONFIG_MODULES=y\n")
        .source("solo", "1.0", &common::simple_conf("solo", "1.0"))
        .write("usr/src/solo-1.0/Makefile", "obj-m := solo.o\n");
    root.dkms(&["add", "solo/1.0"]).ok();
    let out = common::run_while_locked(
        &root,
        &["mkbmdeb", "solo/1.0", "-k", "6.1.0-0-broken"],
        || {
            assert!(
                !root.dkms_tree().join("solo/1.0/deb").exists(),
                "nothing done while waiting"
            )
        },
    );
    assert_eq!(
        out.code,
        exit::BUILD_FAILED,
        "it went on once the lock was free"
    );
}

#[test]
fn mkbmdeb_never_packages_a_module_that_install_refuses() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::KernelImage]) {
        return;
    }
    // The kernel's real hdaps.ko (Debian 6.1, no version) in the scratch kernel tree:
    // install keeps it, so the package must not shadow it either.
    let root = Root::new();
    let k = common::headers("6.1");
    root.real_kernel(&k).fixture("hdaps-1.0");
    let rel = "kernel/drivers/platform/x86/hdaps.ko";
    let in_tree = root.install_tree().join(&k).join(rel);
    std::fs::create_dir_all(in_tree.parent().unwrap()).unwrap();
    std::fs::copy(format!("/lib/modules/{k}/{rel}"), &in_tree).unwrap();
    root.dkms(&["build", "hdaps/1.0", "-k", &k]).ok();
    root.dkms(&["mkbmdeb", "hdaps/1.0", "-k", &k]).is(
        &root,
        exit::INSTALL_FAILED,
        &format!("hdaps.ko is not packaged for kernel {k}.\n"),
        &format!("Module version (none) for hdaps.ko is not newer than the kernel's own $ROOT/lib/modules/{k}/{rel}; it stays in place.\nYou may override by specifying --force.\n\nError! No module of hdaps/1.0 would be installed on kernel {k} (see above), so no package was made for it.\nYou may override by specifying --force.\n"),
    );
    assert!(!root
        .dkms_tree()
        .join("hdaps/1.0/deb")
        .read_dir()
        .unwrap()
        .any(|_| true));
    // Forced, as install can be; and with ours installed (the kernel's own archived),
    // the archived original still decides.
    root.dkms(&["mkbmdeb", "hdaps/1.0", "-k", &k, "--force"])
        .ok();
    root.dkms(&["install", "hdaps/1.0", "-k", &k, "--force"])
        .ok();
    assert!(!in_tree.exists());
    let out = root.dkms(&["mkbmdeb", "hdaps/1.0", "-k", &k]);
    assert_eq!(out.code, exit::INSTALL_FAILED, "{out:?}");
    assert!(
        out.stderr.starts_with(&format!(
            "Module version (none) for hdaps.ko is not newer than the kernel's own {}",
            root.dkms_tree()
                .join(format!("hdaps/original_module/{k}/x86_64/hdaps.ko"))
                .display()
        )),
        "{}",
        out.stderr
    );
}
