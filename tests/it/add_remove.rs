//! `add` and `remove`, argument errors and bad input: exit codes, messages, and that a
//! failure modifies nothing.

use crate::common::{self, Needs};

use common::{simple_conf, Root};

const K1: &str = "6.1.0-56-amd64";

#[test]
#[cfg_attr(
    not(dkms_host_debian_dkms),
    ignore = "needs Debian's bash dkms (.ci/install-deps)"
)]
fn add_then_remove_round_trip_readable_by_the_original() {
    if !common::host_ready(&[Needs::DebianDkms]) {
        return;
    }
    let root = Root::new();
    root.fake_kernel(K1, "")
        .source("foo", "1.0", &simple_conf("foo", "1.0"));
    root.dkms(&["add", "-m", "foo", "-v", "1.0", "-k", K1]).is(
        &root,
        0,
        "Creating symlink $ROOT/var/lib/dkms/foo/1.0/source -> $ROOT/usr/src/foo-1.0\n",
        "",
    );
    // In a root of its own (DKMS_SYSROOT) the link is relative, so the root can move;
    // it points at the source all the same.
    let link = root.dkms_tree().join("foo/1.0/source");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        std::path::Path::new("../../../../../usr/src/foo-1.0")
    );
    assert_eq!(
        std::fs::canonicalize(&link).unwrap(),
        std::fs::canonicalize(root.source_tree().join("foo-1.0")).unwrap()
    );
    assert!(root.dkms_tree().join("foo/1.0/build").is_dir());
    // The original sees what we did...
    assert_eq!(root.bash_dkms(&["status"]).stdout, "foo/1.0: added\n");
    // ...and refuses to add it twice, like us.
    assert_eq!(
        root.dkms(&["add", "foo/1.0", "-k", K1]).code,
        dkms::exit::ALREADY_ADDED
    );
    assert_eq!(
        root.bash_dkms(&["add", "foo/1.0", "-k", K1]).code,
        dkms::exit::ALREADY_ADDED
    );
    root.dkms(&["remove", "foo/1.0", "--all"]).is(
        &root,
        0,
        "Deleting module foo/1.0 completely from the DKMS tree.\n",
        "",
    );
    assert!(!root.dkms_tree().join("foo").exists());
    // The source is never deleted.
    assert!(root.source_tree().join("foo-1.0/dkms.conf").exists());
}

#[test]
#[cfg_attr(
    not(dkms_host_debian_dkms),
    ignore = "needs Debian's bash dkms (.ci/install-deps)"
)]
fn remove_of_a_module_added_by_the_original() {
    if !common::host_ready(&[Needs::DebianDkms]) {
        return;
    }
    let root = Root::new();
    root.fake_kernel(K1, "")
        .source("bar", "2", &simple_conf("bar", "2"));
    root.bash_dkms(&["add", "bar/2"]).ok();
    root.dkms(&["remove", "bar/2", "-k", K1]).is(
        &root,
        0,
        &format!("Module bar/2 is not installed for kernel {K1} (x86_64). Skipping...\nModule bar/2 is not built for kernel {K1} (x86_64). Skipping...\n\nDeleting module bar/2 completely from the DKMS tree.\n"),
        "",
    );
    assert_eq!(root.bash_dkms(&["status"]).stdout, "");
}

#[test]
fn remove_keeps_the_version_while_other_kernels_are_built() {
    let root = Root::new();
    root.fake_kernel(K1, "")
        .source("m", "1", &simple_conf("m", "1"))
        .added("m", "1");
    root.built("m", "1", K1, "x86_64", &["m.ko"]).built(
        "m",
        "1",
        "6.12.1-amd64",
        "x86_64",
        &["m.ko"],
    );
    root.dkms(&["remove", "m/1", "-k", K1]).ok();
    assert_eq!(
        root.dkms(&["status"]).stdout,
        "m/1, 6.12.1-amd64, x86_64: built\n"
    );
    root.dkms(&["remove", "m/1", "--all"]).ok();
    assert_eq!(root.dkms(&["status"]).stdout, "");
}

#[test]
fn remove_of_an_installed_module_uninstalls_it_everywhere() {
    let root = Root::new();
    root.fake_kernel(K1, "")
        .source("m", "1", &simple_conf("m", "1"))
        .added("m", "1");
    root.built("m", "1", K1, "x86_64", &["m.ko"])
        .installed("m", "1", K1, "x86_64");
    let out = root.dkms(&["remove", "m/1", "--all"]);
    out.is(
        &root,
        0,
        &format!("Module m/1 for kernel {K1} (x86_64):\nBefore uninstall, this module version was ACTIVE on this kernel.\nDeleting $ROOT/lib/modules/{K1}/updates/dkms/m.ko\nSkipping depmod because '$ROOT/lib/modules/{K1}/modules.dep' is missing.\n\nDeleting module m/1 completely from the DKMS tree.\n"),
        "",
    );
    assert!(
        !root.install_tree().join(K1).join("updates").exists(),
        "installed file and its empty directories are gone"
    );
    assert!(!root.dkms_tree().join("m").exists());
    assert!(
        root.install_tree().join(K1).join("build").exists(),
        "the kernel's own tree is untouched"
    );
}

#[test]
fn add_from_a_source_directory_copies_it() {
    let root = Root::new();
    root.fake_kernel(K1, "");
    let elsewhere = root.path().join("home/src/pkg");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("dkms.conf"), simple_conf("pkg", "0.9")).unwrap();
    std::fs::write(elsewhere.join("pkg.c"), "int x;").unwrap();
    root.dkms(&["add", elsewhere.to_str().unwrap(), "-k", K1])
        .ok();
    assert!(root.source_tree().join("pkg-0.9/pkg.c").exists());
    assert_eq!(root.dkms(&["status"]).stdout, "pkg/0.9: added\n");
    // A path to the dkms.conf works too, for another version.
    std::fs::write(elsewhere.join("dkms.conf"), simple_conf("pkg", "1.0")).unwrap();
    root.dkms(&[
        "add",
        elsewhere.join("dkms.conf").to_str().unwrap(),
        "-k",
        K1,
    ])
    .ok();
    assert_eq!(
        root.dkms(&["status"]).stdout,
        "pkg/0.9: added\npkg/1.0: added\n"
    );
}

#[test]
fn post_add_runs_in_the_source_directory() {
    let root = Root::new();
    root.fake_kernel(K1, "");
    let conf = simple_conf("hooked", "1") + "POST_ADD=\"post-add.sh arg\"\n";
    root.source("hooked", "1", &conf);
    let script = root.source_tree().join("hooked-1/post-add.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"post_add ran in $(pwd) with $1\"\n",
    )
    .unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&script).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    root.dkms(&["add", "hooked/1", "-k", K1]).is(
        &root,
        0,
        "Creating symlink $ROOT/var/lib/dkms/hooked/1/source -> $ROOT/usr/src/hooked-1\n\nRunning the post_add script:\npost_add ran in $ROOT/usr/src/hooked-1 with arg\n",
        "",
    );
}

/// Every argument error: its exit code and whole message, and nothing changed.
#[test]
fn argument_errors_have_the_originals_exit_codes() {
    let root = Root::new();
    root.fake_kernel(K1, "")
        .source("foo", "1.0", &simple_conf("foo", "1.0"))
        .added("foo", "1.0");
    let usage = format!("{}\n", dkms::cli::usage());
    let cases: &[(&[&str], i32, &str, &str)] = &[
        (&["status", "--bogus"], dkms::exit::UNKNOWN_OPTION, &usage, "Unknown option: --bogus"),
        (&["add", "remove"], dkms::exit::TWO_ACTIONS, "", "Cannot specify more than one action."),
        (
            &["mktarball", "--binaries-only", "--source-only", "foo/1.0"],
            dkms::exit::BINARIES_AND_SOURCE_ONLY,
            "",
            "You have specified both --binaries-only and --source-only.\nYou cannot do this.",
        ),
        (
            &["build", "-a", "x", "-a", "y", "-k", K1],
            dkms::exit::ARCH_COUNT,
            "",
            "If more than one arch is specified on the command line, then there\nmust be an equal number of kernel versions also specified (1:1 relationship).",
        ),
        (
            &["remove", "foo/1.0", "--all", "-k", K1],
            dkms::exit::KERNEL_WITH_ALL,
            "",
            "You cannot specify a kernel version and also specify\n--all on the command line.",
        ),
        (
            &["remove", "foo/1.0", "--all", "-a", "x86_64"],
            dkms::exit::ARCH_WITH_ALL,
            "",
            "You cannot specify an arch and also specify\n--all on the command line.",
        ),
        (
            &["remove", "-m", "foo"],
            dkms::exit::FAILURE,
            "",
            "Arguments <module> and <module-version> are not specified.\nUsage: remove <module>/<module-version> or\n       remove -m <module>/<module-version> or\n       remove -m <module> -v <module-version>",
        ),
        (
            &["remove", "foo/9.9", "-k", K1],
            dkms::exit::NOT_ADDED,
            "",
            "The module/version combo: foo-9.9 is not located in the DKMS tree.",
        ),
        (
            &["add", "nosuch/1.0", "-k", K1],
            dkms::exit::SOURCE_MISSING,
            "",
            "Could not find module source directory.\nDirectory: $ROOT/usr/src/nosuch-1.0 does not exist.",
        ),
        (
            &["add", "foo/1.0", "--all"],
            dkms::exit::ALL_NOT_SUPPORTED,
            "",
            "The action add does not support the --all parameter.",
        ),
        (
            &["autoinstall", "-k", K1, "-k", "6.2.0"],
            dkms::exit::ONE_KERNEL,
            "",
            "The action autoinstall does not support multiple kernel version parameters on the command line.",
        ),
        (
            &["remove", "foo/1.0", "-k", ""],
            dkms::exit::EMPTY_KERNEL_OR_ARCH,
            "",
            "Empty kernel version or architecture given on the command line.",
        ),
        (
            &["remove", "../x/1.0", "-k", K1],
            dkms::exit::FAILURE,
            "",
            "Module name '..' is not a valid name: it starts with '.'. A name becomes a directory of the dkms and source trees; it must not be empty, contain '/' or white space, or start with '.'.",
        ),
    ];
    for (args, code, stdout, error) in cases {
        let before = root.snapshot();
        root.dkms(args)
            .is(&root, *code, stdout, &format!("\nError! {error}\n"));
        assert_eq!(root.snapshot(), before, "{args:?} modified the tree");
    }
    // No action: usage, exit 0 (like the original); -V and -h.
    root.dkms(&["-m", "foo"]).is(
        &root,
        dkms::exit::SUCCESS,
        &usage,
        "\nError! Unknown action specified: \"\"\n",
    );
    root.dkms(&["-V"]).is(&root, 0, "dkms-3.4.3\n", "");
    root.dkms(&["--help"]).is(&root, 0, &usage, "");
}

fn add_bad(conf: &[u8]) -> (Root, common::Output, bool) {
    let root = Root::new();
    root.fake_kernel(K1, "");
    std::fs::create_dir_all(root.source_tree().join("bad-1")).unwrap();
    std::fs::write(root.source_tree().join("bad-1/dkms.conf"), conf).unwrap();
    let before = root.snapshot();
    let out = root.dkms(&["add", "bad/1", "-k", K1]);
    let unchanged = root.snapshot() == before;
    (root, out, unchanged)
}

#[test]
fn bad_dkms_conf_is_exit_8_naming_file_line_and_fix() {
    // (dkms.conf, the whole of stderr): stdout is empty and the exit code 8 in each case.
    let cases: &[(&[u8], &str)] = &[
        (
            b"",
            "dkms.conf: Warning! Zero modules specified.\n\nError! Bad conf file.\nFile: $ROOT/usr/src/bad-1/dkms.conf does not represent a valid dkms.conf file.\n$ROOT/usr/src/bad-1/dkms.conf: No 'PACKAGE_NAME' directive specified.\n  fix: add PACKAGE_NAME=\"bad\"\n$ROOT/usr/src/bad-1/dkms.conf: No 'PACKAGE_VERSION' directive specified.\n  fix: add PACKAGE_VERSION=\"1\"\n",
        ),
        (
            b"\x7fELF\x02\x01\x01\0\0\0garbage",
            "$ROOT/usr/src/bad-1/dkms.conf: line 1: $'\\177ELF\\002\\001\\001': command not found\ndkms.conf: Warning! Zero modules specified.\n\nError! Bad conf file.\nFile: $ROOT/usr/src/bad-1/dkms.conf does not represent a valid dkms.conf file.\n$ROOT/usr/src/bad-1/dkms.conf: No 'PACKAGE_NAME' directive specified.\n  fix: add PACKAGE_NAME=\"bad\"\n$ROOT/usr/src/bad-1/dkms.conf: No 'PACKAGE_VERSION' directive specified.\n  fix: add PACKAGE_VERSION=\"1\"\n",
        ),
        (
            b"PACKAGE_NAME=bad\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME=bad\nDEST_MODULE_LOCATION=/usr/lib\n",
            "\nError! Bad conf file.\nFile: $ROOT/usr/src/bad-1/dkms.conf does not represent a valid dkms.conf file.\n$ROOT/usr/src/bad-1/dkms.conf:4: Directive 'DEST_MODULE_LOCATION' does not begin with '/kernel', '/updates', or '/extra' in record #0.\n  fix: set DEST_MODULE_LOCATION[0] to a path under /kernel, /updates or /extra\n",
        ),
        (
            b"PACKAGE_NAME=bad\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME=bad.ko\nDEST_MODULE_LOCATION=/updates\n",
            "\nError! Bad conf file.\nFile: $ROOT/usr/src/bad-1/dkms.conf does not represent a valid dkms.conf file.\n$ROOT/usr/src/bad-1/dkms.conf:3: 'BUILT_MODULE_NAME' directive ends in '.o' or '.ko' in record #0.\n  fix: write BUILT_MODULE_NAME[0] without the suffix\n$ROOT/usr/src/bad-1/dkms.conf: 'DEST_MODULE_NAME' directive ends in '.o' or '.ko' in record #0.\n  fix: write DEST_MODULE_NAME[0] without the suffix\n",
        ),
        (
            b"PACKAGE_NAME=bad\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME=bad\nDEST_MODULE_LOCATION=/updates\nAUTOINSTALL=maybe\n",
            "\nError! Bad conf file.\nFile: $ROOT/usr/src/bad-1/dkms.conf does not represent a valid dkms.conf file.\n$ROOT/usr/src/bad-1/dkms.conf:5: Unsupported AUTOINSTALL value 'maybe'\n  fix: set AUTOINSTALL=\"yes\", AUTOINSTALL=\"no\" or leave it empty\n",
        ),
        (
            b"PACKAGE_NAME=bad\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=a\nBUILT_MODULE_NAME[1]=a\nDEST_MODULE_LOCATION[0]=/updates\nDEST_MODULE_LOCATION[1]=/updates\n",
            "\nError! Bad conf file.\nFile: $ROOT/usr/src/bad-1/dkms.conf does not represent a valid dkms.conf file.\n$ROOT/usr/src/bad-1/dkms.conf:4: Duplicate module 'a' in records #0 and #1.\n  fix: give every BUILT_MODULE_LOCATION + BUILT_MODULE_NAME pair once\n$ROOT/usr/src/bad-1/dkms.conf: Duplicate destination module name 'a' in records #0 and #1.\n  fix: give every DEST_MODULE_NAME once\n",
        ),
        (
            b"PACKAGE_NAME=bad\nPACKAGE_VERSION=1\nif then\n",
            "\nError! Bad conf file.\nFile: $ROOT/usr/src/bad-1/dkms.conf does not represent a valid dkms.conf file.\n$ROOT/usr/src/bad-1/dkms.conf:3: bash: syntax error near unexpected token `then'\n  fix: correct the shell syntax on that line (the file is sourced by bash)\n",
        ),
        (
            b"PACKAGE_NAME=bad\nPACKAGE_VERSION=1\nexit 0\n",
            "dkms.conf: Warning! Zero modules specified.\n\nError! Bad conf file.\nFile: $ROOT/usr/src/bad-1/dkms.conf does not represent a valid dkms.conf file.\n$ROOT/usr/src/bad-1/dkms.conf: the file calls `exit`, so none of its settings can be read\n  fix: remove the `exit` statement; dkms.conf must only assign variables\n$ROOT/usr/src/bad-1/dkms.conf:1: No 'PACKAGE_NAME' directive specified.\n  fix: add PACKAGE_NAME=\"bad\"\n$ROOT/usr/src/bad-1/dkms.conf:2: No 'PACKAGE_VERSION' directive specified.\n  fix: add PACKAGE_VERSION=\"1\"\n",
        ),
        (
            b"PACKAGE_NAME=bad\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME=bad\nDEST_MODULE_LOCATION=/updates/../../../etc\n",
            "\nError! Bad conf file.\nFile: $ROOT/usr/src/bad-1/dkms.conf does not represent a valid dkms.conf file.\n$ROOT/usr/src/bad-1/dkms.conf:4: Directive 'DEST_MODULE_LOCATION' leaves the module tree ('..') in record #0.\n  fix: remove '..' from DEST_MODULE_LOCATION[0]\n",
        ),
        (
            b"PACKAGE_NAME=bad\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME=../../x\nDEST_MODULE_LOCATION=/updates\n",
            "\nError! Bad conf file.\nFile: $ROOT/usr/src/bad-1/dkms.conf does not represent a valid dkms.conf file.\n$ROOT/usr/src/bad-1/dkms.conf:3: 'BUILT_MODULE_NAME' in record #0 is a path ('../../x'), not a module name.\n  fix: set BUILT_MODULE_NAME[0] to a plain name; use BUILT_MODULE_LOCATION / DEST_MODULE_LOCATION for directories\n$ROOT/usr/src/bad-1/dkms.conf: 'DEST_MODULE_NAME' in record #0 is a path ('../../x'), not a module name.\n  fix: set DEST_MODULE_NAME[0] to a plain name; use BUILT_MODULE_LOCATION / DEST_MODULE_LOCATION for directories\n",
        ),
    ];
    for (conf, stderr) in cases {
        let (root, out, unchanged) = add_bad(conf);
        out.is(&root, 8, "", stderr);
        assert!(unchanged, "{}", String::from_utf8_lossy(conf));
    }
}

#[test]
fn crlf_prints_and_functions_do_not_disturb() {
    let conf = b"PACKAGE_NAME=\"crlf\"\r\nPACKAGE_VERSION=\"1\"\r\necho noise on stdout\r\ndo_status() { echo hijack; }\r\nBUILT_MODULE_NAME[0]=\"crlf\"\r\nDEST_MODULE_LOCATION[0]=\"/updates\"\r\n";
    let root = Root::new();
    root.fake_kernel(K1, "");
    std::fs::create_dir_all(root.source_tree().join("crlf-1")).unwrap();
    std::fs::write(root.source_tree().join("crlf-1/dkms.conf"), conf).unwrap();
    root.dkms(&["add", "crlf/1", "-k", K1]).is(
        &root,
        0,
        "Creating symlink $ROOT/var/lib/dkms/crlf/1/source -> $ROOT/usr/src/crlf-1\n",
        "",
    );
    assert_eq!(root.dkms(&["status"]).stdout, "crlf/1: added\n");
}

#[test]
fn a_dkms_conf_that_never_ends_is_stopped() {
    let root = Root::new();
    root.fake_kernel(K1, "");
    root.source(
        "slow",
        "1",
        "PACKAGE_NAME=slow\nPACKAGE_VERSION=1\nwhile :; do :; done\n",
    );
    let start = std::time::Instant::now();
    root.dkms(&["add", "slow/1", "-k", K1]).is(
        &root,
        dkms::exit::BAD_CONF,
        "",
        "\nError! Bad conf file.\n$ROOT/usr/src/slow-1/dkms.conf: evaluation did not finish within 5 seconds\n  fix: make the file finish quickly; dkms.conf is sourced every time dkms reads it\n",
    );
    assert!(start.elapsed().as_secs() < 30);
    assert_eq!(root.dkms(&["status"]).stdout, "");
}

#[test]
fn unreadable_or_missing_dkms_conf() {
    let root = Root::new();
    root.fake_kernel(K1, "");
    std::fs::create_dir_all(root.source_tree().join("nc-1")).unwrap();
    root.dkms(&["add", "nc/1", "-k", K1]).is(
        &root,
        dkms::exit::CONF_MISSING,
        "",
        "\nError! Could not locate dkms.conf file.\nFile: $ROOT/usr/src/nc-1/dkms.conf does not exist.\n",
    );
    let out = root.dkms(&["add", root.path().join("nowhere").to_str().unwrap()]);
    assert_eq!(
        out.code,
        dkms::exit::FAILURE,
        "a word that is no path becomes a module name without version: {}",
        out.stderr
    );
}

#[test]
fn dangling_source_link_is_broken_and_blocks_mktarball() {
    let root = Root::new();
    root.fake_kernel(K1, "")
        .source("gone", "1", &simple_conf("gone", "1"))
        .added("gone", "1");
    std::fs::remove_dir_all(root.source_tree().join("gone-1")).unwrap();
    assert_eq!(root.dkms(&["status"]).stdout, "gone/1: broken\n");
    let out = root.dkms(&["mktarball", "gone/1", "-k", K1]);
    out.is(
        &root,
        dkms::exit::CONF_MISSING,
        "",
        "\nError! gone/1: Missing the module source directory or the symbolic link pointing to it.\nManual intervention is required!\n",
    );
    // remove may clean it up (a deliberate difference: see README).
    root.dkms(&["remove", "gone/1", "--all"]).ok();
    assert_eq!(root.dkms(&["status"]).stdout, "");
}

#[test]
fn directives_override_after_the_files() {
    let root = Root::new();
    root.fake_kernel(K1, "").source(
        "d",
        "1",
        "PACKAGE_NAME=d\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME=d\n",
    );
    let out = root.dkms(&[
        "add",
        "d/1",
        "-k",
        K1,
        "--directive",
        "DEST_MODULE_LOCATION=/extra",
    ]);
    out.is(&root, 0, "DIRECTIVE: DEST_MODULE_LOCATION=\"/extra\"\nCreating symlink $ROOT/var/lib/dkms/d/1/source -> $ROOT/usr/src/d-1\n",
        "");
}

#[test]
fn etc_dkms_override_files_apply_in_order() {
    let root = Root::new();
    root.fake_kernel(K1, "").source(
        "o",
        "1",
        "PACKAGE_NAME=o\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME=o\nDEST_MODULE_LOCATION=/nowhere\n",
    );
    root.write("etc/dkms/o.conf", "DEST_MODULE_LOCATION=/bad-again\n");
    root.write(
        &format!("etc/dkms/o--{K1}.conf"),
        "DEST_MODULE_LOCATION=\"/updates\"\n",
    );
    root.dkms(&["add", "o/1", "-k", K1]).is(
        &root,
        0,
        "Creating symlink $ROOT/var/lib/dkms/o/1/source -> $ROOT/usr/src/o-1\n",
        "",
    );
    // Each file is read, the kernel's last: whichever holds the bad value is named.
    let refusal = |file: &str| {
        format!("\nError! Bad conf file.\nFile: $ROOT/usr/src/o-1/dkms.conf does not represent a valid dkms.conf file.\n$ROOT/etc/dkms/{file}:1: Directive 'DEST_MODULE_LOCATION' does not begin with '/kernel', '/updates', or '/extra' in record #0.\n  fix: set DEST_MODULE_LOCATION[0] to a path under /kernel, /updates or /extra\n")
    };
    root.dkms(&["remove", "o/1", "--all"]).ok();
    root.write(
        &format!("etc/dkms/o--{K1}.conf"),
        "DEST_MODULE_LOCATION=\"/worse\"\n",
    )
    .write("etc/dkms/o.conf", "DEST_MODULE_LOCATION=/extra\n");
    root.dkms(&["add", "o/1", "-k", K1])
        .is(&root, 8, "", &refusal(&format!("o--{K1}.conf")));
    std::fs::remove_file(root.path().join(format!("etc/dkms/o--{K1}.conf"))).unwrap();
    root.write("etc/dkms/o.conf", "DEST_MODULE_LOCATION=/bad-again\n");
    root.dkms(&["add", "o/1", "-k", K1])
        .is(&root, 8, "", &refusal("o.conf"));
}

#[test]
fn framework_conf_sets_the_trees() {
    let root = Root::new();
    let alt = root.path().join("srv/dkms");
    root.write(
        "etc/dkms/framework.conf",
        &format!("# moved\ndkms_tree=\"{}\"\n", alt.display()),
    );
    root.write(
        "etc/dkms/framework.conf.d/50-quiet.conf",
        "verbose=\nfunction do_status() { :; }\n",
    );
    root.fake_kernel(K1, "")
        .source("f", "1", &simple_conf("f", "1"));
    root.dkms(&["add", "f/1", "-k", K1]).ok();
    assert!(alt.join("f/1/source").exists());
    assert!(!root.dkms_tree().join("f").exists());
    // The command line wins over the file.
    let out = root.dkms(&["status", "--dkmstree", root.dkms_tree().to_str().unwrap()]);
    assert_eq!(out.stdout, "");
}

#[test]
fn a_second_dkms_waits_for_the_lock_and_names_its_real_holder() {
    let root = Root::new();
    root.fake_kernel(K1, "")
        .source("l", "1", &simple_conf("l", "1"));
    // A stale pid in the file (the original's and our old lock files have one) is not
    // believed: the kernel says who holds the flock, here this test process.
    std::fs::write(root.dkms_tree().join(".lock"), "4242\n").unwrap();
    common::run_while_locked(&root, &["add", "l/1", "-k", K1], || {
        assert_eq!(
            root.dkms(&["status"]).stdout,
            "",
            "nothing added while waiting"
        )
    })
    .ok();
    assert_eq!(root.dkms(&["status"]).stdout, "l/1: added\n");
}

#[test]
fn two_removes_racing_end_with_the_originals_codes() {
    let root = Root::new();
    root.fake_kernel(K1, "")
        .source("l", "1", &simple_conf("l", "1"));
    root.dkms(&["add", "l/1", "-k", K1]).ok();
    // Both check that l/1 is added, then wait for the lock; the second to get it must
    // find it gone and say so (3), as the original does, instead of failing a rename.
    let held = dkms::state::lock::acquire(&root.dkms_tree(), |_| {}).unwrap();
    let mut first = root.spawn_dkms(&["remove", "l/1", "--all"]);
    let mut second = root.spawn_dkms(&["remove", "l/1", "--all"]);
    let (w1, r1) = common::first_stderr_line(&mut first);
    let (w2, r2) = common::first_stderr_line(&mut second);
    assert!(w1.starts_with("Waiting for the dkms lock") && w2.starts_with("Waiting"));
    drop(held);
    let mut outs = [
        common::finish(first, w1, r1),
        common::finish(second, w2, r2),
    ];
    outs.sort_by_key(|o| o.code);
    assert_eq!(outs[0].code, 0, "{:?}", outs[0]);
    assert_eq!(outs[1].code, dkms::exit::NOT_ADDED, "{:?}", outs[1]);
    assert!(outs[1]
        .stderr
        .ends_with("\nError! The module/version combo: l-1 is not located in the DKMS tree.\n"));
    assert_eq!(root.dkms(&["status"]).stdout, "");
    // An uninstall racing a remove: whichever runs second sees the other's result.
    root.dkms(&["add", "l/1", "-k", K1]).ok();
    let held = dkms::state::lock::acquire(&root.dkms_tree(), |_| {}).unwrap();
    let mut remove = root.spawn_dkms(&["remove", "l/1", "--all"]);
    let mut uninstall = root.spawn_dkms(&["uninstall", "l/1", "-k", K1]);
    let (w1, r1) = common::first_stderr_line(&mut remove);
    let (w2, r2) = common::first_stderr_line(&mut uninstall);
    drop(held);
    let (remove, uninstall) = (
        common::finish(remove, w1, r1),
        common::finish(uninstall, w2, r2),
    );
    remove.ok();
    // 0 if it ran first (nothing installed: skipped), 3 if the remove had run.
    assert!(
        uninstall.code == 0 && uninstall.stdout.contains("is not installed")
            || uninstall.code == dkms::exit::NOT_ADDED
                && uninstall
                    .stderr
                    .ends_with("is not located in the DKMS tree.\n"),
        "{uninstall:?}"
    );
    assert_eq!(root.dkms(&["status"]).stdout, "");
}

#[test]
fn rpm_safe_upgrade_cancels_the_old_packages_remove() {
    let root = Root::new();
    root.fake_kernel(K1, "")
        .source("r", "1", &simple_conf("r", "1"));
    let tmp = root.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    // Both commands run from one "transaction" process (their parent's parent: us).
    let scriptlet = |args: &str| {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("{} {args}", env!("CARGO_BIN_EXE_dkms")))
            .env("DKMS_SYSROOT", root.path())
            .env("TMPDIR", &tmp)
            .output()
            .unwrap();
        common::Output::from(out)
    };
    scriptlet(&format!("add r/1 -k {K1} --rpm_safe_upgrade")).ok();
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        1,
        "the upgrade lock"
    );
    let out = scriptlet(&format!("remove r/1 -k {K1} --rpm_safe_upgrade"));
    out.is(
        &root,
        0,
        "",
        "Warning: Remove cancelled because --rpm_safe_upgrade scenario detected.\n",
    );
    assert_eq!(root.dkms(&["status"]).stdout, "r/1: added\n");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "the lock is used up"
    );
    // Without the lock (another transaction), remove removes.
    scriptlet(&format!("remove r/1 -k {K1} --rpm_safe_upgrade")).ok();
    assert_eq!(root.dkms(&["status"]).stdout, "");
}

#[test]
fn without_os_release_every_action_is_exit_4_and_changes_nothing() {
    let root = Root::new();
    root.fake_kernel(K1, "")
        .source("foo", "1.0", &simple_conf("foo", "1.0"));
    std::fs::remove_file(root.path().join("etc/os-release")).unwrap();
    let before = root.snapshot();
    let message = format!(
        "\nError! System is missing os-release file: neither etc/os-release nor usr/lib/os-release exists under {}, so dkms cannot tell the distribution (which decides where modules are installed).\nRestore it from the distribution's package (Debian: apt-get install --reinstall base-files).\n",
        root.path().display()
    );
    for args in [&["add", "foo/1.0", "-k", K1][..], &["status"]] {
        let out = root.dkms(args);
        assert_eq!(out.code, dkms::exit::NO_OS_RELEASE, "{args:?}: {out:?}");
        assert_eq!(
            (out.stdout.as_str(), out.stderr.as_str()),
            ("", message.as_str())
        );
    }
    assert_eq!(root.snapshot(), before);
    // /usr/lib/os-release is enough.
    root.write("usr/lib/os-release", common::DEBIAN_OS_RELEASE);
    root.dkms(&["add", "foo/1.0", "-k", K1]).ok();
}

#[test]
fn arguments_that_are_not_utf8_never_panic() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let root = Root::new();
    root.fake_kernel(K1, "");
    let warning = |word: &str| {
        format!("Warning: The argument '{word}' is not valid UTF-8 ('\u{fffd}' marks the bytes that are not): no module, version, kernel or arch can be named by it, so it matches nothing.\n")
    };
    // As a name it matches nothing: the original's codes for an unknown module.
    let bad = OsStr::from_bytes(b"\xff");
    let out = root.dkms_os(&[OsStr::new("status"), bad], &[]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
    assert_eq!(out.stderr, warning("\u{fffd}"));
    let out = root.dkms_os(
        &[
            OsStr::new("remove"),
            OsStr::from_bytes(b"\xff/1.0"),
            OsStr::new("--all"),
        ],
        &[],
    );
    assert_eq!(out.code, dkms::exit::NOT_ADDED, "{out:?}");
    // As a path its bytes are kept: a source directory whose name is not UTF-8 is added.
    let dir = root.path().join(OsStr::from_bytes(b"src-\xfe"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dkms.conf"), simple_conf("foo", "1.0")).unwrap();
    let out = root.dkms_os(
        &[
            OsStr::new("add"),
            dir.as_os_str(),
            OsStr::new("-k"),
            OsStr::new(K1),
        ],
        &[],
    );
    out.ok();
    assert_eq!(root.dkms(&["status"]).stdout, "foo/1.0: added\n");
}

#[test]
fn huge_or_sparse_array_indices_are_one_problem_per_gap() {
    // The original makes a record of every index up to the highest: a million here, or
    // 2^62, each an error. Ours gives the same verdict (8) with one problem per gap.
    let head = "PACKAGE_NAME=\"bad\"\nPACKAGE_VERSION=\"1\"\n";
    let (_root, out, unchanged) = add_bad(
        format!(
            "{head}BUILT_MODULE_NAME[999999]=\"x\"\nDEST_MODULE_LOCATION[999999]=\"/updates\"\n"
        )
        .as_bytes(),
    );
    assert_eq!(out.code, dkms::exit::BAD_CONF, "{out:?}");
    assert!(unchanged);
    let problems: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains(": No '"))
        .collect();
    assert_eq!(problems.len(), 2, "{}", out.stderr);
    assert!(problems[0].ends_with(":3: No 'BUILT_MODULE_NAME' directive specified for records #0 to #999998 (999999 records)."));
    assert!(problems[1].ends_with(":4: No 'DEST_MODULE_LOCATION' directive specified for records #0 to #999998 (999999 records)."));
    let (_root, out, _) =
        add_bad(format!("{head}BUILT_MODULE_NAME[$((1<<62))]=\"x\"\n").as_bytes());
    assert_eq!(out.code, dkms::exit::BAD_CONF, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 9, "{}", out.stderr);
}

#[test]
fn many_bad_records_are_reported_each_once() {
    // 20,000 records without a name: every problem once, none of them "duplicate ''".
    let mut conf = String::from("PACKAGE_NAME=\"bad\"\nPACKAGE_VERSION=\"1\"\n");
    for i in 0..20_000 {
        conf.push_str(&format!("BUILT_MODULE_LOCATION[{i}]=\"src\"\n"));
    }
    let (_root, out, unchanged) = add_bad(conf.as_bytes());
    assert_eq!(out.code, dkms::exit::BAD_CONF);
    // 40,000 lines: counted rather than written out.
    assert!(unchanged);
    let count = |what: &str| out.stderr.lines().filter(|l| l.contains(what)).count();
    assert_eq!(
        count("No 'BUILT_MODULE_NAME' directive specified for record #"),
        20_000
    );
    assert_eq!(
        count("No 'DEST_MODULE_LOCATION' directive specified for record #"),
        20_000
    );
    assert_eq!(count("Duplicate"), 0);
}

#[test]
fn a_remove_killed_mid_delete_keeps_nothing_alive() {
    // As a dkms killed between renaming `<v>/<k>/<a>` away and deleting it leaves the
    // tree (without a journal: an older dkms, or the original's `rm -rf` cut short).
    let root = Root::new();
    root.fake_kernel(K1, "")
        .source("m", "1", &simple_conf("m", "1"))
        .added("m", "1")
        .built("m", "1", K1, "x86_64", &["m.ko"]);
    let kernel_dir = root.dkms_tree().join(format!("m/1/{K1}"));
    std::fs::rename(
        kernel_dir.join("x86_64"),
        kernel_dir.join(".x86_64.removing.4242"),
    )
    .unwrap();
    assert_eq!(root.dkms(&["status"]).stdout, "m/1: added\n");
    let out = root.dkms(&["remove", "m/1", "--all"]);
    out.ok();
    assert_eq!(
        out.stdout,
        "Deleting module m/1 completely from the DKMS tree.\n"
    );
    assert_eq!(
        out.stderr,
        "Warning: An earlier dkms was interrupted; 1 leftover(s) of its unfinished work were deleted.\n"
    );
    assert!(!root.dkms_tree().join("m").exists());
    assert_eq!(root.dkms(&["status"]).stdout, "");
}

#[test]
fn a_package_name_or_version_that_cannot_name_a_directory_is_refused_at_add() {
    for (version, flaw, fixed) in [
        ("1.0 beta", "contains white space", "1.0-beta"),
        ("1.0/2", "contains '/'", "1.0-2"),
    ] {
        let root = Root::new();
        root.fake_kernel(K1, "").write(
            "srv/foo/dkms.conf",
            &format!("PACKAGE_NAME=foo\nPACKAGE_VERSION=\"{version}\"\nBUILT_MODULE_NAME[0]=foo\nDEST_MODULE_LOCATION[0]=/updates/dkms\n"),
        );
        root.write("srv/foo/foo.c", "");
        let before = root.snapshot();
        root.dkms(&["add", &root.path().join("srv/foo").display().to_string(), "-k", K1]).is(
            &root,
            dkms::exit::BAD_CONF,
            "",
            &format!("\nError! Bad conf file.\nFile: $ROOT/srv/foo/dkms.conf does not represent a valid dkms.conf file.\n$ROOT/srv/foo/dkms.conf:2: PACKAGE_VERSION '{version}' {flaw}: it names directories (/usr/src/<name>-<version>, the dkms tree) and is passed to make, so it could never build.\n  fix: set PACKAGE_VERSION=\"{fixed}\"\n"),
        );
        assert_eq!(root.snapshot(), before, "{version}: nothing changed");
    }
}

#[test]
fn relative_roots_and_trees_are_taken_from_the_current_directory() {
    let root = Root::new();
    root.fake_kernel(K1, "")
        .source("foo", "1.0", &simple_conf("foo", "1.0"));
    let parent = root.path().parent().unwrap();
    let name = root.path().file_name().unwrap();
    let run = |args: &[&str]| {
        common::Output::from(
            std::process::Command::new(env!("CARGO_BIN_EXE_dkms"))
                .args(args)
                .env("DKMS_SYSROOT", name)
                .current_dir(parent)
                .output()
                .unwrap(),
        )
    };
    run(&["add", "foo/1.0", "-k", K1]).is(
        &root,
        dkms::exit::SUCCESS,
        "Creating symlink $ROOT/var/lib/dkms/foo/1.0/source -> $ROOT/usr/src/foo-1.0\n",
        "",
    );
    // In a root of its own, the link is relative, so the root can move.
    assert_eq!(
        std::fs::read_link(root.dkms_tree().join("foo/1.0/source")).unwrap(),
        std::path::Path::new("../../../../../usr/src/foo-1.0")
    );
    run(&["status"]).is(&root, dkms::exit::SUCCESS, "foo/1.0: added\n", "");
}

#[test]
fn a_bash_syntax_error_is_reported_alone_at_the_line_that_causes_it() {
    let add = |conf: &str| {
        let root = Root::new();
        root.fake_kernel(K1, "").source("foo", "1.0", conf);
        let out = root.dkms(&["add", "foo/1.0", "-k", K1]);
        (root, out)
    };
    // An `if` never closed: bash reports the end of the file; the problem is line 4, and
    // the directives after it (which bash never read) are not reported missing.
    let (root, out) = add("PACKAGE_NAME=foo\nPACKAGE_VERSION=1.0\nBUILT_MODULE_NAME[0]=foo\nif [ 1 ]; then\nDEST_MODULE_LOCATION[0]=/updates/dkms\nAUTOINSTALL=yes\n");
    out.is(
        &root,
        dkms::exit::BAD_CONF,
        "",
        "\nError! Bad conf file.\nFile: $ROOT/usr/src/foo-1.0/dkms.conf does not represent a valid dkms.conf file.\n$ROOT/usr/src/foo-1.0/dkms.conf:4: bash: syntax error: unexpected end of file: what line 4 opens (an if, case, loop, function or quote) is never closed\n  fix: close it (fi, esac, done, } or the matching quote) where it should end\n",
    );
    let (root, out) = add("PACKAGE_NAME=foo\nPACKAGE_VERSION=1.0\nif [ x ]; then\n  true\nfi fi\nBUILT_MODULE_NAME[0]=foo\nDEST_MODULE_LOCATION[0]=/updates/dkms\n");
    out.is(
        &root,
        dkms::exit::BAD_CONF,
        "",
        "\nError! Bad conf file.\nFile: $ROOT/usr/src/foo-1.0/dkms.conf does not represent a valid dkms.conf file.\n$ROOT/usr/src/foo-1.0/dkms.conf:5: bash: syntax error near unexpected token `fi'\n  fix: correct the shell syntax on that line (the file is sourced by bash)\n",
    );
}
