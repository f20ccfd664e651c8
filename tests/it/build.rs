//! What a build does, with real kbuild against Debian's installed 6.1 headers on the
//! fixture modules: patches, the module's scripts, BUILD_EXCLUSIVE, BUILD_DEPENDS, the
//! build environment, source directories, and what is built again or skipped.

use crate::common::{self, installed_file, root_with, Needs};
use crate::common::{NEW_KEY, SIGNING};
use common::Root;
use std::path::PathBuf;

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
    // The log holds make's and the compiler's own text and elapsed times: our lines in it
    // are looked for.
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
fn already_built_and_installed_are_skipped_unless_forced() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = root_with(&["patched-1.0"]);
    let conf = root.source_tree().join("patched-1.0/dkms.conf");
    std::fs::write(
        &conf,
        std::fs::read_to_string(&conf).unwrap() + "AUTOINSTALL=yes\n",
    )
    .unwrap();
    root.dkms(&["build", "patched/1.0", "-k", &k]).ok();
    root.dkms(&["build", "patched/1.0", "-k", &k]).is(
        &root,
        0,
        &format!("Module patched/1.0 already built for kernel {k} (x86_64), skip. You may override by specifying --force.\n"),
        "",
    );
    root.dkms(&["install", "patched/1.0", "-k", &k]).ok();
    root.dkms(&["install", "patched/1.0", "-k", &k]).is(
        &root,
        0,
        &format!("Module patched/1.0 already installed on kernel {k} (x86_64), skip. You may override by specifying --force.\n"),
        "",
    );
    // --force: install takes the module out and puts it back (no build).
    let file = format!("$ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko");
    let depmod =
        format!("Skipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\n");
    root.dkms(&["install", "patched/1.0", "-k", &k, "--force"]).is(
        &root,
        0,
        &format!("Module patched/1.0 for kernel {k} (x86_64):\nBefore uninstall, this module version was ACTIVE on this kernel.\nDeleting {file}\n{depmod}\nInstalling {file}\n{depmod}"),
        "",
    );
    // autoinstall leaves an installed module alone, --force or not, as the original.
    root.dkms(&["autoinstall", "-k", &k, "--force"])
        .is(&root, 0, "", "");
    // build --force uninstalls and builds again.
    root.dkms(&["build", "patched/1.0", "-k", &k, "--force"]).is(
        &root,
        0,
        &format!("Module patched/1.0 for kernel {k} (x86_64):\nBefore uninstall, this module version was ACTIVE on this kernel.\nDeleting {file}\n{depmod}{SIGNING}Building module(s) for kernel {k} (x86_64)...\nSigning module $ROOT/var/lib/dkms/patched/1.0/build/fx_patched.ko\n"),
        "",
    );
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
        &format!("Creating symlink $ROOT/var/lib/dkms/depends/1.0/source -> $ROOT/usr/src/depends-1.0\n\n{SIGNING}{NEW_KEY}Building module(s) for kernel {k} (x86_64)...\nSigning module $ROOT/var/lib/dkms/depends/1.0/build/fx_depends.ko\n"),
        &format!("Warning: {missing}"),
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
    out.is(&root, 0, &format!(
            "Creating symlink $ROOT/var/lib/dkms/hooks/2.0/source -> $ROOT/usr/src/hooks-2.0\n\nRunning the post_add script:\n\n{SIGNING}Building module(s) for kernel {k} (x86_64)...\nSigning module $ROOT/var/lib/dkms/hooks/2.0/build/fx_hooks.ko\n\nRunning the pre_install script:\nInstalling $ROOT/lib/modules/{k}/updates/dkms/fx_hooks.ko\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\n\nRunning the post_install script:\nRebuilding depends/1.0 for kernel {k} (x86_64): it was built against hooks 1.0, now 2.0.\nModule depends/1.0 for kernel {k} (x86_64):\nBefore uninstall, this module version was ACTIVE on this kernel.\nDeleting $ROOT/lib/modules/{k}/updates/dkms/fx_depends.ko\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\nBuilding module(s) for kernel {k} (x86_64)...\nSigning module $ROOT/var/lib/dkms/depends/1.0/build/fx_depends.ko\nInstalling $ROOT/lib/modules/{k}/updates/dkms/fx_depends.ko\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\n"
        ),
        "");
    assert_eq!(std::fs::read_to_string(&dep).unwrap(), "2.0\n");
    assert!(root
        .dkms(&["status", "depends"])
        .stdout
        .ends_with(": installed\n"));
    // Installing the same version again rebuilds nothing.
    let out = root.dkms_env(&["install", "hooks/2.0", "-k", &k, "--force"], &env);
    out.is(&root, 0, &format!(
            "Module hooks/2.0 for kernel {k} (x86_64):\nBefore uninstall, this module version was ACTIVE on this kernel.\nDeleting $ROOT/lib/modules/{k}/updates/dkms/fx_hooks.ko\n\nRunning the post_remove script:\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\n\n\nRunning the pre_install script:\nInstalling $ROOT/lib/modules/{k}/updates/dkms/fx_hooks.ko\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\n\nRunning the post_install script:\n"
        ),
        "");
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
    assert_eq!(std::fs::read_to_string(&log).unwrap(), format!(
            "post_add {r}/usr/src/hooks-1.0 \npre_build FROM_BUILD_ENVIRONMENT=yes NOT_EXPORTED=\npost_build {r}/var/lib/dkms/hooks/1.0/build \n",
            r = root.path().display()
        ));
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
    // --verbose shows make's own output, which varies with make and gcc: looked for.
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
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), format!(
            "post_add {r}/usr/src/hooks-1.0 \npre_build {r}/var/lib/dkms/hooks/1.0/build arg1\npost_build {r}/var/lib/dkms/hooks/1.0/build \npre_install {r}/usr/src/hooks-1.0 \nran\n",
            r = root.path().display()
        ));
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
