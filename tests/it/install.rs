//! What an install places and where: compression, depmod, the kernel's own modules
//! (archived, restored, never shadowed by an older or equal one), modules the original
//! installed, symlinked modules, forced installs, post_transaction.

use crate::common::{self, installed_file, root_with, Needs};
use common::Root;
use std::path::PathBuf;

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_headers_6_12)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's 6.12 kernel headers (.ci/install-deps)"
)]
fn xz_compressed_on_a_kernel_that_compresses() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::Headers("6.12")]) {
        return;
    }
    let root = Root::new();
    let k = common::headers("6.12");
    root.real_kernel(&k).fixture("patched-1.0");
    root.dkms(&["install", "patched/1.0", "-k", &k]).ok();
    let installed = root
        .install_tree()
        .join(&k)
        .join("updates/dkms/fx_patched.ko.xz");
    let listing = std::process::Command::new("xz")
        .args(["--list", "-vv"])
        .arg(&installed)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    // xz's own listing (sizes, ratio, its version's layout): the two settings that the
    // kernel's own modules use are looked for.
    assert!(
        listing.contains("CRC32") && listing.contains("dict=1MiB"),
        "{listing}"
    );
    let info = dkms::module::modinfo::read(&installed).unwrap();
    assert!(info.vermagic.unwrap().starts_with(&format!("{k} ")));
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn the_kernels_own_module_suffix_decides_compression_over_its_config() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    // As on Fedora and RHEL: the config says no compression, the kernel's package ships
    // .ko.xz modules; ours follows the modules.
    let (root, k) = root_with(&["patched-1.0"]);
    let config = std::fs::read_to_string(format!("/usr/src/linux-headers-{k}/.config")).unwrap();
    // A precondition on Debian's kernel config, not an output of ours.
    assert!(config.contains("CONFIG_MODULE_COMPRESS_NONE=y"));
    let own = root
        .install_tree()
        .join(&k)
        .join("kernel/drivers/misc/own.ko.xz");
    std::fs::create_dir_all(own.parent().unwrap()).unwrap();
    std::fs::write(&own, b"").unwrap();
    root.dkms(&["install", "patched/1.0", "-k", &k]).ok();
    let installed = root
        .install_tree()
        .join(&k)
        .join("updates/dkms/fx_patched.ko.xz");
    let info = dkms::module::modinfo::read(&installed).unwrap();
    assert_eq!(info.version.as_deref(), Some("1.0-patched"));
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn real_depmod_indexes_the_scratch_root() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["patched-1.0"]);
    std::fs::write(root.install_tree().join(&k).join("modules.dep"), "").unwrap();
    let out = root.dkms(&["install", "patched/1.0", "-k", &k]);
    out.ok();
    let dep = std::fs::read_to_string(root.install_tree().join(&k).join("modules.dep")).unwrap();
    assert_eq!(dep.trim(), "updates/dkms/fx_patched.ko:");
    root.dkms(&["uninstall", "patched/1.0", "-k", &k]).ok();
    let dep = std::fs::read_to_string(root.install_tree().join(&k).join("modules.dep")).unwrap();
    assert_eq!(dep.trim(), "");
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn depmod_gets_the_system_map_when_there_is_one() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["patched-1.0"]);
    std::fs::write(root.install_tree().join(&k).join("modules.dep"), "").unwrap();
    root.write(
        &format!("boot/System.map-{k}"),
        "ffffffff81000000 T _text\n",
    );
    let record = root.path().join("depmod-args");
    let path = root.first_on_path(
        "depmod",
        &format!("#!/bin/sh\necho \"$@\" >> {}\n", record.display()),
    );
    root.dkms_env(&["install", "patched/1.0", "-k", &k], &[("PATH", &path)])
        .ok();
    let args = std::fs::read_to_string(&record).unwrap();
    assert_eq!(
        args.trim(),
        format!(
            "-b {} -a -F {} {k}",
            root.path().display(),
            root.path().join(format!("boot/System.map-{k}")).display()
        )
    );
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_debian_dkms)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's bash dkms (.ci/install-deps)"
)]
fn modules_installed_by_the_original_are_removed_by_us_and_vice_versa() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::DebianDkms]) {
        return;
    }
    let (root, k) = root_with(&["patched-1.0", "hooks-1.0"]);
    root.bash_dkms(&["install", "patched/1.0", "-k", &k, "--no-depmod"])
        .ok();
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: installed\n")
    );
    root.dkms(&["remove", "patched/1.0", "--all"]).ok();
    assert!(!installed_file(&root, &k, "fx_patched").exists());
    assert_eq!(root.bash_dkms(&["status"]).stdout, "");

    let log = root.path().join("hooks.log");
    root.dkms_env(
        &["install", "hooks/1.0", "-k", &k],
        &[("DKMS_FIXTURE_LOG", log.to_str().unwrap())],
    )
    .ok();
    assert_eq!(
        root.bash_dkms(&["status"]).stdout,
        format!("hooks/1.0, {k}, x86_64: installed\n")
    );
    let out = root.bash_dkms(&["remove", "hooks/1.0", "--all", "--no-depmod"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!installed_file(&root, &k, "fx_hooks").exists());
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_debian_dkms)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's bash dkms (.ci/install-deps)"
)]
fn an_original_module_is_archived_with_its_origin_and_restored() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::DebianDkms]) {
        return;
    }
    let (root, k) = root_with(&["patched-1.0"]);
    let original = root.install_tree().join(&k).join("extra/fx_patched.ko");
    std::fs::create_dir_all(original.parent().unwrap()).unwrap();
    std::fs::write(&original, b"the kernel's own module").unwrap();
    root.dkms(&["install", "patched/1.0", "-k", &k]).ok();
    let store = root
        .dkms_tree()
        .join(format!("patched/original_module/{k}/x86_64"));
    assert_eq!(
        std::fs::read(store.join("fx_patched.ko")).unwrap(),
        b"the kernel's own module"
    );
    assert_eq!(
        std::fs::read_to_string(store.join("fx_patched.ko.origin")).unwrap(),
        format!("{}\n", original.display())
    );
    assert!(!original.exists());
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: installed (Original modules exist)\n")
    );
    assert_eq!(
        root.bash_dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: installed (original_module exists)\n")
    );
    root.dkms(&["uninstall", "patched/1.0", "-k", &k]).is(
        &root,
        0,
        &format!("Module patched/1.0 for kernel {k} (x86_64):\nBefore uninstall, this module version was ACTIVE on this kernel.\nDeleting $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko\nRestoring archived original module $ROOT/lib/modules/{k}/extra/fx_patched.ko\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\n"),
        "",
    );
    assert_eq!(
        std::fs::read(&original).unwrap(),
        b"the kernel's own module"
    );
    assert!(!root.dkms_tree().join("patched/original_module").exists());
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn colliding_originals_are_stored_for_reference_and_never_restored() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["patched-1.0"]);
    let lib = root.install_tree().join(&k);
    for dir in ["kernel/drivers/a", "kernel/drivers/b"] {
        std::fs::create_dir_all(lib.join(dir)).unwrap();
        std::fs::write(lib.join(dir).join("fx_patched.ko"), dir).unwrap();
    }
    root.dkms(&["install", "patched/1.0", "-k", &k]).ok();
    let collisions = root
        .dkms_tree()
        .join(format!("patched/original_module/{k}/x86_64/collisions"));
    for dir in ["kernel/drivers/a", "kernel/drivers/b"] {
        assert_eq!(
            std::fs::read_to_string(collisions.join(dir).join("fx_patched.ko")).unwrap(),
            dir
        );
        assert!(collisions.join(dir).join("fx_patched.ko.origin").exists());
        assert!(!lib.join(dir).join("fx_patched.ko").exists());
    }
    root.dkms(&["uninstall", "patched/1.0", "-k", &k]).ok();
    assert!(
        collisions.join("kernel/drivers/a/fx_patched.ko").exists(),
        "kept for reference"
    );
    assert!(!lib.join("kernel/drivers/a/fx_patched.ko").exists());
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn an_older_version_never_replaces_a_newer_installed_one() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["patched-1.0"]);
    root.next_version("patched", "1.0", "2.0");
    root.dkms(&["install", "patched/2.0", "-k", &k]).ok();
    root.dkms(&["build", "patched/1.0", "-k", &k]).ok();
    let before = root.snapshot();
    let newer = std::fs::read(installed_file(&root, &k, "fx_patched")).unwrap();
    let out = root.dkms(&["install", "patched/1.0", "-k", &k]);
    assert_eq!(out.code, dkms::exit::INSTALL_FAILED, "{out:?}");
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        format!("\nError! Module version 1.0-patched for fx_patched.ko is not newer than what is already found in kernel {k} (2.0-patched).\nYou may override by specifying --force.\n\nError! Installation aborted.\n")
    );
    assert_eq!(root.snapshot(), before, "the state tree is as it was");
    assert_eq!(
        std::fs::read(installed_file(&root, &k, "fx_patched")).unwrap(),
        newer
    );
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: built\npatched/2.0, {k}, x86_64: installed\n")
    );
    root.dkms(&["install", "patched/1.0", "-k", &k, "--force"])
        .ok();
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: installed\npatched/2.0, {k}, x86_64: built\n")
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn a_version_less_module_never_shadows_the_kernels_own() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    // The kernel's real hdaps.ko (Debian 6.1, no version), in the scratch kernel tree.
    let (root, k) = root_with(&["hdaps-1.0"]);
    let rel = "kernel/drivers/platform/x86/hdaps.ko";
    let real = PathBuf::from(format!("/lib/modules/{k}/{rel}"));
    assert!(
        real.is_file(),
        "linux-image-{k} must be installed for this test"
    );
    assert_eq!(dkms::module::modinfo::read(&real).unwrap().version, None);
    let in_tree = root.install_tree().join(&k).join(rel);
    std::fs::create_dir_all(in_tree.parent().unwrap()).unwrap();
    std::fs::copy(&real, &in_tree).unwrap();
    root.dkms(&["build", "hdaps/1.0", "-k", &k]).ok();
    let before = root.snapshot();
    let out = root.dkms(&["install", "hdaps/1.0", "-k", &k]);
    assert_eq!(out.code, dkms::exit::INSTALL_FAILED, "{out:?}");
    assert_eq!(
        out.stderr,
        format!("Module version (none) for hdaps.ko is not newer than the kernel's own {}; it stays in place.\nYou may override by specifying --force.\n\nError! Installation aborted.\n", in_tree.display())
    );
    assert_eq!(root.snapshot(), before, "the kernel's module is untouched");
    // --force replaces it, archiving the kernel's own for the uninstall.
    root.dkms(&["install", "hdaps/1.0", "-k", &k, "--force"])
        .ok();
    assert!(!in_tree.exists());
    root.dkms(&["uninstall", "hdaps/1.0", "-k", &k]).ok();
    assert_eq!(
        std::fs::read(&in_tree).unwrap(),
        std::fs::read(&real).unwrap()
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn modules_to_force_install_overrides_the_version_check() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["patched-1.0"]);
    // A newer same-named module in the kernel: normally ours is skipped.
    let newer = root
        .install_tree()
        .join(&k)
        .join("kernel/drivers/fx_patched.ko");
    std::fs::create_dir_all(newer.parent().unwrap()).unwrap();
    root.dkms(&["build", "patched/1.0", "-k", &k]).ok();
    let built = root
        .dkms_tree()
        .join(format!("patched/1.0/{k}/x86_64/module/fx_patched.ko"));
    let elf = std::fs::read(&built).unwrap();
    // Same module with a higher version string patched into .modinfo (same length).
    let (from, to) = (b"version=1.0-patched", b"version=9.9-patched");
    let at = elf
        .windows(from.len())
        .position(|w| w == from)
        .expect("version in .modinfo");
    let mut patched = elf.clone();
    patched[at..at + to.len()].copy_from_slice(to);
    std::fs::write(&newer, patched).unwrap();
    root.dkms(&["install", "patched/1.0", "-k", &k]).is(
        &root,
        dkms::exit::INSTALL_FAILED,
        "",
        &format!("\nError! Module version 1.0-patched for fx_patched.ko is not newer than what is already found in kernel {k} (9.9-patched).\nYou may override by specifying --force.\n\nError! Installation aborted.\n"),
    );
    root.write(
        "usr/share/dkms/modules_to_force_install/patched",
        "patched\n",
    );
    root.dkms(&["install", "patched/1.0", "-k", &k])
        .is(
        &root,
        0,
        &format!("Forcing installation of patched\nArchiving original module $ROOT/lib/modules/{k}/kernel/drivers/fx_patched.ko in $ROOT/var/lib/dkms/patched/original_module/{k}/x86_64\nInstalling $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\n"),
        "",
    );
    assert!(installed_file(&root, &k, "fx_patched").exists());
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn symlink_modules_installs_links_to_the_built_copies() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["patched-1.0"]);
    root.dkms(&["install", "patched/1.0", "-k", &k, "--symlink-modules"])
        .ok();
    let installed = installed_file(&root, &k, "fx_patched");
    let target = std::fs::read_link(&installed).unwrap();
    assert_eq!(
        target,
        root.dkms_tree()
            .join(format!("patched/1.0/{k}/x86_64/module/fx_patched.ko"))
    );
    root.dkms(&["remove", "patched/1.0", "--all"]).ok();
    assert!(std::fs::symlink_metadata(&installed).is_err());
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn post_transaction_runs_once_per_changed_kernel_and_not_when_nothing_changed() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["patched-1.0"]);
    let marks = root.path().join("marks");
    root.write(
        "etc/dkms/framework.conf",
        &format!(
            "post_transaction=\"echo done \\$kernelver >> {}\"\n",
            marks.display()
        ),
    );
    root.dkms(&["install", "patched/1.0", "-k", &k]).ok();
    // Nothing changed: no post-transaction.
    root.dkms(&["install", "patched/1.0", "-k", &k]).is(
        &root,
        0,
        &format!("Module patched/1.0 already installed on kernel {k} (x86_64), skip. You may override by specifying --force.\n"),
        "",
    );
    root.dkms(&["remove", "patched/1.0", "--all"])
        .is(
        &root,
        0,
        &format!("Module patched/1.0 for kernel {k} (x86_64):\nBefore uninstall, this module version was ACTIVE on this kernel.\nDeleting $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\n\nDeleting module patched/1.0 completely from the DKMS tree.\nExecuting post-transaction command... done.\n"),
        "",
    );
    assert_eq!(
        std::fs::read_to_string(&marks).unwrap(),
        format!("done {k}\ndone {k}\n")
    );
    let log = std::fs::read_to_string(root.dkms_tree().join("post_transaction.log")).unwrap();
    // The log records the elapsed time and the whole environment line: its fixed parts
    // are looked for.
    assert!(
        log.contains("Executing post-transaction command\n# command: kernelver=")
            && log.contains("# exit code: 0"),
        "{log}"
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn a_post_transaction_only_in_a_comment_runs_nothing_and_writes_no_log() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["patched-1.0"]);
    // As the shipped framework.conf documents it.
    root.write(
        "etc/dkms/framework.conf",
        "# Run after modules changed:\n# post_transaction=\"\"\n",
    );
    root.dkms(&["install", "patched/1.0", "-k", &k]).is(
        &root,
        0,
        &format!("Creating symlink $ROOT/var/lib/dkms/patched/1.0/source -> $ROOT/usr/src/patched-1.0\n\nSign command: built-in (the kernel's sign-file format, in-process)\nSigning key: $ROOT/var/lib/dkms/mok.key\nPublic certificate (MOK): $ROOT/var/lib/dkms/mok.pub\nCertificate or key are missing, generating self signed certificate for MOK...\nA new module signing key was created. For a Secure Boot machine to load modules signed with it, enroll its certificate:\n  mokutil --import $ROOT/var/lib/dkms/mok.pub\nthen reboot and confirm the enrollment in MokManager (the blue screen shown at boot).\nBuilding module(s) for kernel {k} (x86_64)...\nSigning module $ROOT/var/lib/dkms/patched/1.0/build/fx_patched.ko\nInstalling $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\n"),
        "",
    );
    assert!(!root.dkms_tree().join("post_transaction.log").exists());
}
