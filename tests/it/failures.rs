//! What goes wrong in a build or install, with the original's exit codes, and what is
//! kept: failing scripts, make, missing built modules or headers, an empty dkms.conf,
//! depmod, an unwritable or escaping destination, a full disk.

use crate::common::{self, installed_file, root_with, Needs};
use common::{Output, Root};
use std::path::PathBuf;

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn failing_hooks_stop_with_their_codes() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["hooks-1.0"]);
    let log = root.path().join("hooks.log");
    let log = log.to_str().unwrap();
    let out = root.dkms_env(
        &["build", "hooks/1.0", "-k", &k],
        &[
            ("DKMS_FIXTURE_LOG", log),
            ("DKMS_FIXTURE_PRE_BUILD_EXIT", "42"),
        ],
    );
    assert_eq!(out.code, 42, "{}", out.stderr);
    assert_eq!(root.dkms(&["status"]).stdout, "hooks/1.0: added\n");
    let out = root.dkms_env(
        &["install", "hooks/1.0", "-k", &k],
        &[
            ("DKMS_FIXTURE_LOG", log),
            ("DKMS_FIXTURE_PRE_INSTALL_EXIT", "3"),
        ],
    );
    out.is(
        &root,
        dkms::exit::PRE_INSTALL_FAILED,
        &format!("Sign command: built-in (the kernel's sign-file format, in-process)\nSigning key: $ROOT/var/lib/dkms/mok.key\nPublic certificate (MOK): $ROOT/var/lib/dkms/mok.pub\nBuilding module(s) for kernel {k} (x86_64)...\nSigning module $ROOT/var/lib/dkms/hooks/1.0/build/fx_hooks.ko\n\nRunning the pre_install script:\n"),
        "\nError! pre_install failed, aborting install.\nYou may override by specifying --force.\n",
    );
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("hooks/1.0, {k}, x86_64: built\n")
    );
    assert!(!installed_file(&root, &k, "fx_hooks").exists());
    let out = root.dkms_env(
        &["install", "hooks/1.0", "-k", &k, "--force"],
        &[
            ("DKMS_FIXTURE_LOG", log),
            ("DKMS_FIXTURE_PRE_INSTALL_EXIT", "3"),
        ],
    );
    out.ok();
    assert!(installed_file(&root, &k, "fx_hooks").exists());
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn a_failing_make_is_exit_10_with_the_log_and_its_errors() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["failing-1.0"]);
    let out = root.dkms(&["build", "failing/1.0", "-k", &k]);
    assert_eq!(out.code, dkms::exit::BUILD_FAILED, "{}", out.stderr);
    // The original's place for the last failed build's log, and ours for this kernel's.
    let log = root.dkms_tree().join("failing/1.0/build/make.log");
    let kept = root
        .dkms_tree()
        .join(format!("failing/1.0/.failed/{k}/x86_64/make.log"));
    assert_eq!(std::fs::read(&kept).unwrap(), std::fs::read(&log).unwrap());
    // The message quotes the compiler's first errors, whose text is gcc's: looked for.
    assert!(out.stderr.contains(&format!(
        "Bad return status for module build on kernel: {k} (x86_64)"
    )));
    assert!(out
        .stderr
        .contains(&format!("Consult {} for more information.", kept.display())));
    assert!(
        out.stderr.contains("undeclared_symbol_here"),
        "the first errors are shown: {}",
        out.stderr
    );
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("# exit code: 2"));
    assert!(!root
        .dkms_tree()
        .join(format!("failing/1.0/{k}"))
        .join("x86_64")
        .exists());
    assert_eq!(root.dkms(&["status"]).stdout, "failing/1.0: added\n");
    // Fixed, it builds: what was kept of the failure goes.
    let source = root.source_tree().join("failing-1.0/fx_failing.c");
    let fixed = std::fs::read_to_string(&source)
        .unwrap()
        .replace("return undeclared_symbol_here;", "return 0;");
    std::fs::write(&source, fixed).unwrap();
    root.dkms(&["build", "failing/1.0", "-k", &k]).ok();
    assert!(!root.dkms_tree().join("failing/1.0/.failed").exists());
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn a_missing_built_module_is_exit_7() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["misnamed-1.0"]);
    root.dkms(&["build", "misnamed/1.0", "-k", &k]).is(
        &root,
        dkms::exit::BUILT_MODULE_MISSING,
        &format!("Creating symlink $ROOT/var/lib/dkms/misnamed/1.0/source -> $ROOT/usr/src/misnamed-1.0\n\nSign command: built-in (the kernel's sign-file format, in-process)\nSigning key: $ROOT/var/lib/dkms/mok.key\nPublic certificate (MOK): $ROOT/var/lib/dkms/mok.pub\nCertificate or key are missing, generating self signed certificate for MOK...\nA new module signing key was created. For a Secure Boot machine to load modules signed with it, enroll its certificate:\n  mokutil --import $ROOT/var/lib/dkms/mok.pub\nthen reboot and confirm the enrollment in MokManager (the blue screen shown at boot).\nBuilding module(s) for kernel {k} (x86_64)...\n"),
        &format!("\nError! Build of fx_other_name.ko failed for: {k} (x86_64)\nMake sure the name of the generated module is correct and at the root of the\nbuild directory (BUILT_MODULE_NAME / BUILT_MODULE_LOCATION), or consult make.log in\n$ROOT/var/lib/dkms/misnamed/1.0/build for more information.\n"),
    );
    assert_eq!(root.dkms(&["status"]).stdout, "misnamed/1.0: added\n");
}

#[test]
fn missing_headers_are_exit_21_naming_the_package() {
    let root = Root::new();
    root.fixture("patched-1.0");
    std::fs::create_dir_all(root.install_tree().join("6.1.0-99-amd64")).unwrap();
    root.dkms(&["build", "patched/1.0", "-k", "6.1.0-99-amd64"]).is(
        &root,
        dkms::exit::NO_HEADERS,
        "Creating symlink $ROOT/var/lib/dkms/patched/1.0/source -> $ROOT/usr/src/patched-1.0\n\n",
        "\nError! Your kernel headers for kernel 6.1.0-99-amd64 cannot be found at $ROOT/lib/modules/6.1.0-99-amd64/build.\nPlease install your distribution's kernel headers package matching 6.1.0-99-amd64 (on Debian and Ubuntu: apt-get install linux-headers-6.1.0-99-amd64).\n",
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn an_empty_dkms_conf_is_exit_8_and_changes_nothing() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, _k) = root_with(&[]);
    let dir = root.path().join("work/empty");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dkms.conf"), "").unwrap();
    let before = root.snapshot();
    let out = root.dkms(&["add", dir.to_str().unwrap()]);
    assert_eq!(out.code, dkms::exit::BAD_CONF, "{out:?}");
    let conf = dir.join("dkms.conf");
    assert_eq!(
        out.stderr,
        format!(
            "\nError! Bad conf file.\nFile: {c} does not represent a valid dkms.conf file.\n{c}: No 'PACKAGE_NAME' directive specified.\n  fix: add PACKAGE_NAME=\"<name>\"\n{c}: No 'PACKAGE_VERSION' directive specified.\n  fix: add PACKAGE_VERSION=\"<version>\"\n",
            c = conf.display()
        )
    );
    assert_eq!(root.snapshot(), before);
}

/// A `depmod` that fails, first on PATH.
fn failing_depmod(root: &Root) -> String {
    root.first_on_path(
        "depmod",
        "#!/bin/sh\necho 'depmod: ERROR: simulated failure' >&2\nexit 1\n",
    )
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn a_failing_depmod_rolls_the_install_back_exactly() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["patched-1.0"]);
    std::fs::write(root.install_tree().join(&k).join("modules.dep"), "").unwrap();
    // A previous version installed and working.
    root.next_version("patched", "1.0", "2.0");
    root.dkms(&["install", "patched/1.0", "-k", &k]).ok();
    root.dkms(&["build", "patched/2.0", "-k", &k]).ok();
    let path = failing_depmod(&root);
    let before = root.snapshot();
    let before_bytes = std::fs::read(installed_file(&root, &k, "fx_patched")).unwrap();

    let out = root.dkms_env(
        &["install", "patched/2.0", "-k", &k, "--force"],
        &[("PATH", &path)],
    );
    out.is(
        &root,
        dkms::exit::INSTALL_FAILED,
        &format!(
            "Installing $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko\n\
             Running depmod for kernel {k}...\n\
             Running depmod for kernel {k}...\n"
        ),
        "\nError! Problems with depmod detected. Automatically uninstalling this module.\n\
         Install Failed (depmod problems). Module rolled back to built state.\n\
         depmod: ERROR: simulated failure\n",
    );
    assert_eq!(
        root.snapshot(),
        before,
        "the previous module and the state are exactly as they were"
    );
    assert_eq!(
        std::fs::read(installed_file(&root, &k, "fx_patched")).unwrap(),
        before_bytes
    );
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
fn an_unwritable_install_location_fails_cleanly() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["patched-1.0"]);
    root.dkms(&["build", "patched/1.0", "-k", &k]).ok();
    // A file where the destination directory must go.
    std::fs::write(
        root.install_tree().join(&k).join("updates"),
        "not a directory",
    )
    .unwrap();
    let before = root.snapshot();
    let out = root.dkms(&["install", "patched/1.0", "-k", &k]);
    out.is(
        &root,
        dkms::exit::INSTALL_FAILED,
        &format!("Installing $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko\n"),
        &format!(
            "\nError! Cannot create $ROOT/lib/modules/{k}/updates/dkms: Not a directory (os error 20)\n\
             Nothing was changed: the previous modules and state are restored.\n"
        ),
    );
    assert_eq!(root.snapshot(), before);
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: built\n")
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn a_destination_that_escapes_through_a_symlink_is_refused() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["patched-1.0"]);
    root.dkms(&["build", "patched/1.0", "-k", &k]).ok();
    let outside = root.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, root.install_tree().join(&k).join("updates")).unwrap();
    let out = root.dkms(&["install", "patched/1.0", "-k", &k]);
    out.is(
        &root,
        dkms::exit::INSTALL_FAILED,
        "",
        &format!(
            "\nError! The install location '$ROOT/lib/modules/{k}/updates/dkms' of patched \
             leaves the kernel's module tree.\n\
             Fix DEST_MODULE_LOCATION in dkms.conf (or ADDON_MODULES_DIR).\n"
        ),
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: built\n")
    );
}

/// A tiny tmpfs mounted for the life of the value.
struct TinyMount(PathBuf);

impl Drop for TinyMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn a_full_disk_fails_cleanly_and_keeps_the_previous_module() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["patched-1.0"]);
    let dest = root.install_tree().join(&k).join("updates/dkms");
    std::fs::create_dir_all(&dest).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8k", "tmpfs"])
        .arg(&dest)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "tests run as root (CI does) and may mount a tmpfs"
    );
    let _mount = TinyMount(dest.clone());
    // The previous module: a small file the new one must not destroy.
    std::fs::write(dest.join("fx_patched.ko"), b"previous module").unwrap();
    root.dkms(&["build", "patched/1.0", "-k", &k]).ok();
    let out = root.dkms(&["install", "patched/1.0", "-k", &k, "--force"]);
    // The temporary file's name ends in our pid, which varies: it is replaced before the
    // whole output is compared.
    let (head, tail) = out.stderr.split_once(".dkms-new.").expect("temporary name");
    let tail = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    let out = Output {
        stderr: format!("{head}.dkms-new.PID{tail}"),
        ..out
    };
    out.is(
        &root,
        dkms::exit::INSTALL_FAILED,
        &format!(
            "Archiving original module $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko in \
             $ROOT/var/lib/dkms/patched/original_module/{k}/x86_64\n\
             Installing $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko\n"
        ),
        &format!(
            "\nError! Cannot write $ROOT/lib/modules/{k}/updates/dkms/.fx_patched.ko.dkms-new.PID: \
             No space left on device (os error 28)\n\
             Nothing was changed: the previous modules and state are restored.\n"
        ),
    );
    assert_eq!(
        std::fs::read(dest.join("fx_patched.ko")).unwrap(),
        b"previous module"
    );
    let names: Vec<String> = std::fs::read_dir(&dest)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["fx_patched.ko"],
        "no staged or backup file is left"
    );
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: built\n")
    );
    assert!(!dkms::transaction::pending(&root.dkms_tree()));
}
