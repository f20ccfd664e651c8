//! build / install / uninstall with real kbuild against installed Debian headers, on
//! the fixture modules of `tests/fixtures/modules`: patches, hooks, BUILD_EXCLUSIVE,
//! BUILD_DEPENDS, failing builds, missing modules, depmod, and rollback.

use crate::common::{self, Needs};

use std::path::PathBuf;

use common::Root;

fn root_with(fixtures: &[&str]) -> (Root, String) {
    let root = Root::new();
    let k = common::headers("6.1");
    root.real_kernel(&k);
    for f in fixtures {
        root.fixture(f);
    }
    (root, k)
}

fn installed_file(root: &Root, k: &str, name: &str) -> PathBuf {
    root.install_tree()
        .join(k)
        .join("updates/dkms")
        .join(format!("{name}.ko"))
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn patches_apply_in_order_and_patch_match_filters() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["patched-1.0"]);
    root.dkms(&["install", "patched/1.0", "-k", &k]).ok();
    let info = dkms::module::modinfo::read(&installed_file(&root, &k, "fx_patched")).unwrap();
    assert_eq!(info.version.as_deref(), Some("1.0-patched"));
    assert!(
        info.vermagic.unwrap().starts_with(&format!("{k} ")),
        "vermagic names the kernel"
    );
    let log = std::fs::read_to_string(
        root.dkms_tree()
            .join(format!("patched/1.0/{k}/x86_64/log/make.log")),
    )
    .unwrap();
    assert!(log.contains("Applying patch set-version.patch\n# command: patch -p1 < ./patches/'set-version.patch'"), "{log}");
    assert!(!log.contains("never-applies"));
    assert!(log.contains("# exit code: 0\n# elapsed time: 00:00:"));
    assert!(log.contains(&"-".repeat(64)));
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn every_hook_runs_where_the_original_runs_it() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["hooks-1.0"]);
    let log = root.path().join("hooks.log");
    let env = [("DKMS_FIXTURE_LOG", log.to_str().unwrap())];
    root.dkms_env(&["install", "hooks/1.0", "-k", &k], &env)
        .ok();
    root.dkms_env(&["remove", "hooks/1.0", "--all"], &env).ok();
    let text = std::fs::read_to_string(&log).unwrap();
    let source = root.source_tree().join("hooks-1.0");
    let build = root.dkms_tree().join("hooks/1.0/build");
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        vec![
            format!("post_add {} ", source.display()),
            format!("pre_build {} arg1", build.display()),
            format!("post_build {} ", build.display()),
            format!("pre_install {} ", source.display()),
            format!("post_install {} ", source.display()),
            format!("post_remove {} ", source.display()),
        ]
    );
}

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
fn build_exclusive_is_exit_77_and_builds_nothing() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["exclusive-1.0"]);
    root.dkms(&["install", "exclusive/1.0", "-k", &k]).is(
        &root,
        dkms::exit::EXCLUDED,
        "Creating symlink $ROOT/var/lib/dkms/exclusive/1.0/source -> $ROOT/usr/src/exclusive-1.0\n\n",
        &format!("\nError! The dkms.conf for module exclusive includes a BUILD_EXCLUSIVE directive which does not match this kernel/arch/config:\n  kernel {k} does not match BUILD_EXCLUSIVE_KERNEL=\"^5\\.\"\nThis indicates that it should not be built.\n"),
    );
    assert_eq!(root.dkms(&["status"]).stdout, "exclusive/1.0: added\n");
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn build_depends_needs_the_dependency_installed() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["depends-1.0", "hooks-1.0"]);
    let missing = format!("The module depends requires hooks, which is not installed for kernel {k} (x86_64) (BUILD_DEPENDS).\nInstall hooks first, or use --force.\n");
    root.dkms(&["build", "depends/1.0", "-k", &k]).is(
        &root,
        dkms::exit::MISSING_DEPENDENCY,
        "Creating symlink $ROOT/var/lib/dkms/depends/1.0/source -> $ROOT/usr/src/depends-1.0\n\n",
        &format!("\nError! {missing}"),
    );
    let log = root.path().join("hooks.log");
    root.dkms_env(
        &["install", "hooks/1.0", "-k", &k],
        &[("DKMS_FIXTURE_LOG", log.to_str().unwrap())],
    )
    .ok();
    root.dkms(&["build", "depends/1.0", "-k", &k]).ok();
    // --force builds without the dependency, with a warning.
    let (root, k) = root_with(&["depends-1.0"]);
    root.dkms(&["build", "depends/1.0", "-k", &k, "--force"]).is(
        &root,
        0,
        &format!("Creating symlink $ROOT/var/lib/dkms/depends/1.0/source -> $ROOT/usr/src/depends-1.0\n\nSign command: built-in (the kernel's sign-file format, in-process)\nSigning key: $ROOT/var/lib/dkms/mok.key\nPublic certificate (MOK): $ROOT/var/lib/dkms/mok.pub\nCertificate or key are missing, generating self signed certificate for MOK...\nA new module signing key was created. For a Secure Boot machine to load modules signed with it, enroll its certificate:\n  mokutil --import $ROOT/var/lib/dkms/mok.pub\nthen reboot and confirm the enrollment in MokManager (the blue screen shown at boot).\nBuilding module(s) for kernel {k} (x86_64)...\nSigning module $ROOT/var/lib/dkms/depends/1.0/build/fx_depends.ko\n"),
        &format!("Warning: {missing}"),
    );
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
fn already_built_and_installed_are_skipped_unless_forced() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["patched-1.0"]);
    root.dkms(&["build", "patched/1.0", "-k", &k]).ok();
    let out = root.dkms(&["build", "patched/1.0", "-k", &k]);
    out.ok();
    assert!(out.stdout.contains(&format!(
        "Module patched/1.0 already built for kernel {k} (x86_64), skip."
    )));
    root.dkms(&["install", "patched/1.0", "-k", &k]).ok();
    let out = root.dkms(&["install", "patched/1.0", "-k", &k]);
    assert!(out.stdout.contains(&format!(
        "Module patched/1.0 already installed on kernel {k} (x86_64), skip."
    )));
    let out = root.dkms(&["install", "patched/1.0", "-k", &k, "--force"]);
    out.ok();
    assert!(out
        .stdout
        .contains("Before uninstall, this module version was ACTIVE"));
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: installed\n")
    );
}

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
    assert_eq!(out.code, dkms::exit::INSTALL_FAILED, "{}", out.stderr);
    assert!(out.stderr.contains("depmod"), "{}", out.stderr);
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
    assert_eq!(out.code, dkms::exit::INSTALL_FAILED, "{}", out.stderr);
    assert!(out.stderr.contains("Cannot create"), "{}", out.stderr);
    assert_eq!(root.snapshot(), before);
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: built\n")
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
    let out = root.dkms(&["install", "patched/1.0", "-k", &k]);
    assert!(
        !out.stdout.contains("post-transaction"),
        "nothing changed: {}",
        out.stdout
    );
    let out = root.dkms(&["remove", "patched/1.0", "--all"]);
    assert!(
        out.stdout
            .contains("Executing post-transaction command... done."),
        "{}",
        out.stdout
    );
    assert_eq!(
        std::fs::read_to_string(&marks).unwrap(),
        format!("done {k}\ndone {k}\n")
    );
    let log = std::fs::read_to_string(root.dkms_tree().join("post_transaction.log")).unwrap();
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
    let out = root.dkms(&["install", "patched/1.0", "-k", &k]);
    out.ok();
    assert!(!out.stdout.contains("post-transaction"), "{}", out.stdout);
    assert!(!root.dkms_tree().join("post_transaction.log").exists());
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn build_environment_exports_reach_build_commands() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["hooks-1.0"]);
    let env_file = root.path().join("build.env");
    std::fs::write(
        &env_file,
        "export DKMS_FIXTURE_PRE_BUILD_EXIT=0\nexport FROM_BUILD_ENVIRONMENT=yes\nNOT_EXPORTED=1\n",
    )
    .unwrap();
    root.write(
        "etc/dkms/framework.conf",
        &format!("build_environment={}\n", env_file.display()),
    );
    std::fs::write(
        root.source_tree().join("hooks-1.0/pre_build.sh"),
        "#!/bin/sh\necho \"pre_build FROM_BUILD_ENVIRONMENT=$FROM_BUILD_ENVIRONMENT NOT_EXPORTED=$NOT_EXPORTED\" >> \"$DKMS_FIXTURE_LOG\"\n",
    )
    .unwrap();
    let log = root.path().join("hooks.log");
    root.dkms_env(
        &["build", "hooks/1.0", "-k", &k],
        &[("DKMS_FIXTURE_LOG", log.to_str().unwrap())],
    )
    .ok();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("pre_build FROM_BUILD_ENVIRONMENT=yes NOT_EXPORTED=\n"),
        "{text}"
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn build_depends_rebuild_records_dependency_versions() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["depends-1.0", "hooks-1.0"]);
    let conf = root.source_tree().join("depends-1.0/dkms.conf");
    let text = std::fs::read_to_string(&conf).unwrap() + "BUILD_DEPENDS_REBUILD=yes\n";
    std::fs::write(&conf, text).unwrap();
    let log = root.path().join("hooks.log");
    root.dkms_env(
        &["install", "hooks/1.0", "-k", &k],
        &[("DKMS_FIXTURE_LOG", log.to_str().unwrap())],
    )
    .ok();
    root.dkms(&["build", "depends/1.0", "-k", &k]).ok();
    let dep = root
        .dkms_tree()
        .join(format!("depends/1.0/{k}/x86_64/.dep_hooks"));
    assert_eq!(std::fs::read_to_string(dep).unwrap(), "1.0\n");
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
    assert_eq!(out.code, dkms::exit::INSTALL_FAILED, "{}", out.stderr);
    assert!(
        out.stderr.contains("leaves the kernel's module tree"),
        "{}",
        out.stderr
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
    assert_eq!(out.code, dkms::exit::INSTALL_FAILED, "{}", out.stderr);
    assert!(
        out.stderr.contains("No space left on device"),
        "{}",
        out.stderr
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
    let out = root.dkms(&["uninstall", "patched/1.0", "-k", &k]);
    out.ok();
    assert!(
        out.stdout.contains(&format!(
            "Restoring archived original module {}",
            original.display()
        )),
        "{}",
        out.stdout
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
    let out = root.dkms(&["install", "patched/1.0", "-k", &k]);
    assert!(
        out.stderr
            .contains("is not newer than what is already found in kernel"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.code,
        dkms::exit::INSTALL_FAILED,
        "no module installed: {}",
        out.stderr
    );
    root.write(
        "usr/share/dkms/modules_to_force_install/patched",
        "patched\n",
    );
    let out = root.dkms(&["install", "patched/1.0", "-k", &k]);
    out.ok();
    assert!(out.stdout.contains("Forcing installation of patched"));
    assert!(installed_file(&root, &k, "fx_patched").exists());
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
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn a_module_excluded_for_this_kernel_is_skipped_but_the_others_build() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["patched-1.0"]);
    let conf = root.source_tree().join("patched-1.0/dkms.conf");
    let text = std::fs::read_to_string(&conf).unwrap()
        + "BUILT_MODULE_NAME[1]=\"only_on_5x\"\nDEST_MODULE_LOCATION[1]=\"/updates/dkms\"\nBUILD_EXCLUSIVE_KERNEL[1]=\"^5\\.\"\n";
    std::fs::write(&conf, text).unwrap();
    root.dkms(&["install", "patched/1.0", "-k", &k]).ok();
    assert!(installed_file(&root, &k, "fx_patched").exists());
    assert!(!installed_file(&root, &k, "only_on_5x").exists());
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: installed\n")
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn build_depends_rebuild_rebuilds_dependants_when_the_dependency_changes() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["depends-1.0", "hooks-1.0"]);
    let conf = root.source_tree().join("depends-1.0/dkms.conf");
    let text = std::fs::read_to_string(&conf).unwrap() + "BUILD_DEPENDS_REBUILD=yes\n";
    std::fs::write(&conf, text).unwrap();
    // hooks 2.0: the same fixture with another version.
    common::copy_dir(
        &root.source_tree().join("hooks-1.0"),
        &root.source_tree().join("hooks-2.0"),
    );
    let conf2 = root.source_tree().join("hooks-2.0/dkms.conf");
    let text = std::fs::read_to_string(&conf2)
        .unwrap()
        .replace("PACKAGE_VERSION=\"1.0\"", "PACKAGE_VERSION=\"2.0\"");
    std::fs::write(&conf2, text).unwrap();
    let log = root.path().join("hooks.log");
    let env = [("DKMS_FIXTURE_LOG", log.to_str().unwrap())];
    root.dkms_env(&["install", "hooks/1.0", "-k", &k], &env)
        .ok();
    root.dkms_env(&["install", "depends/1.0", "-k", &k], &env)
        .ok();
    let dep = root
        .dkms_tree()
        .join(format!("depends/1.0/{k}/x86_64/.dep_hooks"));
    assert_eq!(std::fs::read_to_string(&dep).unwrap(), "1.0\n");
    // A new version of the dependency: the dependant is rebuilt and stays installed.
    let out = root.dkms_env(&["install", "hooks/2.0", "-k", &k, "--force"], &env);
    out.ok();
    assert!(
        out.stdout.contains("Rebuilding depends/1.0") && out.stdout.contains("now 2.0"),
        "{}",
        out.stdout
    );
    assert_eq!(std::fs::read_to_string(&dep).unwrap(), "2.0\n");
    assert!(root
        .dkms(&["status", "depends"])
        .stdout
        .ends_with(": installed\n"));
    // Installing the same version again rebuilds nothing.
    let out = root.dkms_env(&["install", "hooks/2.0", "-k", &k, "--force"], &env);
    assert!(!out.stdout.contains("Rebuilding"), "{}", out.stdout);
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn verbose_shows_commands_and_output_and_quiet_shows_nothing() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["patched-1.0", "hooks-1.0"]);
    let out = root.dkms(&["install", "patched/1.0", "-k", &k, "--verbose"]);
    out.ok();
    assert!(
        out.stdout.contains("make -j") && out.stdout.contains("KERNELRELEASE="),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("CC [M]"),
        "the build's own output is shown: {}",
        out.stdout
    );
    let log = std::fs::read_to_string(
        root.dkms_tree()
            .join(format!("patched/1.0/{k}/x86_64/log/make.log")),
    )
    .unwrap();
    assert!(log.contains("CC [M]"), "and still logged");
    // -q: nothing at all, not even the hook scripts' own output; the scripts still run.
    let marks = root.path().join("hooks.log");
    let script = root.source_tree().join("hooks-1.0/post_install.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'post_install says hello'\necho ran >> \"$DKMS_FIXTURE_LOG\"\n",
    )
    .unwrap();
    let out = root.dkms_env(
        &["install", "hooks/1.0", "-k", &k, "-q"],
        &[("DKMS_FIXTURE_LOG", marks.to_str().unwrap())],
    );
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", "")
    );
    assert!(std::fs::read_to_string(&marks).unwrap().contains("ran"));
}

/// `work/<name>`: a copy of a fixture outside the source tree, as a package's unpacked
/// sources are before `dkms add <dir>` copies them to `/usr/src`.
fn sources_outside(root: &Root, fixture: &str, name: &str) -> PathBuf {
    let dir = root.path().join("work").join(name);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    common::copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/modules")
            .join(fixture),
        &dir,
    );
    dir
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn build_and_install_add_a_source_directory_or_dkms_conf_path_first() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&[]);
    // `patched/1.0` as a directory path: a path on disk, not a module/version pair.
    let dir = sources_outside(&root, "patched-1.0", "patched/1.0");
    let out = root.dkms(&["build", dir.to_str().unwrap(), "-k", &k]);
    out.ok();
    assert!(
        out.stdout.starts_with(&format!(
            "Creating symlink {} -> {}\n\n",
            root.dkms_tree().join("patched/1.0/source").display(),
            root.source_tree().join("patched-1.0").display()
        )),
        "{}",
        out.stdout
    );
    assert!(root
        .source_tree()
        .join("patched-1.0/fx_patched.c")
        .is_file());
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: built\n")
    );
    // Added already: the path form adds again, and that is refused (3), as the original.
    let out = root.dkms(&["install", dir.to_str().unwrap(), "-k", &k]);
    assert_eq!(out.code, dkms::exit::ALREADY_ADDED, "{out:?}");
    assert_eq!(
        out.stderr,
        "\nError! DKMS tree already contains: patched-1.0\nYou cannot add the same module/version combo more than once.\n"
    );
    root.dkms(&["remove", "patched/1.0", "--all"]).ok();
    let conf = dir.join("dkms.conf");
    root.dkms(&["install", conf.to_str().unwrap(), "-k", &k])
        .ok();
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: installed\n")
    );
    // Without a module, a path or an archive the original's add message is kept (1).
    let out = root.dkms(&["build", "-k", &k]);
    assert_eq!(out.code, dkms::exit::FAILURE, "{out:?}");
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

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn a_conf_without_modules_adds_builds_and_installs_with_a_warning() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&[]);
    root.source(
        "zero",
        "1.0",
        "PACKAGE_NAME=\"zero\"\nPACKAGE_VERSION=\"1.0\"\nAUTOINSTALL=\"yes\"\n",
    )
    .write("usr/src/zero-1.0/Makefile", "");
    let out = root.dkms(&["install", "zero/1.0", "-k", &k]);
    out.ok();
    // Read once for the add, the build and the install (the original reads and warns
    // three times).
    assert_eq!(out.stderr, "dkms.conf: Warning! Zero modules specified.\n");
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("zero/1.0, {k}, x86_64: installed\n")
    );
    root.dkms(&["remove", "zero/1.0", "--all"]).ok();
    assert_eq!(root.dkms(&["status"]).stdout, "");
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
fn build_exclusive_at_index_0_applies_to_every_module() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["patched-1.0"]);
    // The original reads `$BUILD_EXCLUSIVE_KERNEL`, element 0, for every module: module
    // 2 has no entry of its own and is excluded all the same.
    let conf = root.source_tree().join("patched-1.0/dkms.conf");
    let text = std::fs::read_to_string(&conf).unwrap()
        + "BUILT_MODULE_NAME[1]=\"fx_two\"\nDEST_MODULE_LOCATION[1]=\"/updates/dkms\"\n\
           BUILT_MODULE_NAME[2]=\"fx_three\"\nDEST_MODULE_LOCATION[2]=\"/updates/dkms\"\n\
           BUILD_EXCLUSIVE_KERNEL[0]=\"^99\\.\"\nBUILD_EXCLUSIVE_KERNEL[1]=\".*\"\nBUILD_EXCLUSIVE_ARCH[1]=\"none\"\n";
    std::fs::write(&conf, text).unwrap();
    let out = root.dkms(&["build", "patched/1.0", "-k", &k]);
    assert_eq!(out.code, dkms::exit::EXCLUDED, "{out:?}");
    assert_eq!(root.dkms(&["status"]).stdout, "patched/1.0: added\n");
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
fn the_kernels_own_module_suffix_decides_compression_over_its_config() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    // As on Fedora and RHEL: the config says no compression, the kernel's package ships
    // .ko.xz modules; ours follows the modules.
    let (root, k) = root_with(&["patched-1.0"]);
    let config = std::fs::read_to_string(format!("/usr/src/linux-headers-{k}/.config")).unwrap();
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
