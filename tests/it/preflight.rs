//! `dkms preflight` and what it keeps: real builds against Debian's 6.1 and 6.12
//! headers, with `classdev` (builds on 6.1, not on 6.12: `class_create()` lost its owner
//! argument in 6.4) and `patched` (builds on both).

use crate::common::SIGNING;
use std::path::{Path, PathBuf};

use crate::common::{self, Needs, Root};
use dkms::exit;

/// classdev and patched installed on the 6.1 headers, exclusive added (AUTOINSTALL on
/// all three); the 6.12 kernel is not in the root: only its headers are on the machine.
fn installed_on_61() -> Option<(Root, String, String)> {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::Headers("6.12")]) {
        return None;
    }
    let root = Root::new();
    let (old, new) = (common::headers("6.1"), common::headers("6.12"));
    root.real_kernel(&old);
    for f in ["classdev-1.0", "patched-1.0", "exclusive-1.0"] {
        root.fixture(f);
        let conf = root.source_tree().join(f).join("dkms.conf");
        let text = std::fs::read_to_string(&conf).unwrap();
        if !text.contains("AUTOINSTALL") {
            std::fs::write(&conf, text + "AUTOINSTALL=yes\n").unwrap();
        }
    }
    root.dkms(&["generate_mok"]).ok();
    root.dkms(&["install", "classdev/1.0", "-k", &old]).ok();
    root.dkms(&["install", "patched/1.0", "-k", &old]).ok();
    root.dkms(&["add", "exclusive/1.0"]).ok();
    Some((root, old, new))
}

fn headers_dir(k: &str) -> String {
    format!("/usr/src/linux-headers-{k}")
}

/// The table preflight prints after its builds' lines (which interleave).
fn table(stdout: &str) -> &str {
    &stdout[stdout.find("\nmodule/version").expect("a table") + 1..]
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_headers_6_12)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's 6.12 kernel headers (.ci/install-deps)"
)]
fn preflight_names_the_module_a_kernel_would_lose_and_why() {
    let Some((root, old, new)) = installed_on_61() else {
        return;
    };
    let before: Vec<String> = root
        .snapshot()
        .into_iter()
        .filter(|e| e.contains("lib/modules"))
        .collect();
    let out = root.dkms(&["preflight", "--headers", &headers_dir(&new)]);
    assert_eq!(
        out.code,
        exit::PREFLIGHT_LOSES,
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let w = new.len();
    assert_eq!(
        table(&out.stdout),
        format!(
            "module/version  {:w$}  result\n\
             classdev/1.0    {new}  fails (10): fx_classdev.c:15:20: error: too many arguments to function ‘class_create’\n\
             exclusive/1.0   {new}  skipped: BUILD_EXCLUSIVE: kernel {new} does not match BUILD_EXCLUSIVE_KERNEL=\"^5\\.\"\n\
             patched/1.0     {new}  builds (built now)\n",
            "kernel"
        )
    );
    // The diagnosis: the module's own first error, then the declaration in the failing
    // kernel's headers beside the one where it built. The line numbers in the headers
    // move with Debian's kernel updates, so each declaration is checked by its text.
    let err = &out.stderr;
    assert!(err.contains("The first error in the module's source:\n  fx_classdev.c:15:20: error: too many arguments to function ‘class_create’\n"), "{err}");
    assert!(
        err.contains(&format!(
            "class_create() in the headers of {new}:\n  include/linux/device/class.h:"
        )),
        "{err}"
    );
    assert!(
        err.contains("struct class * __must_check class_create(const char *name);\n"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "and in those of {old}, where this module built:\n  include/linux/device/class.h:"
        )),
        "{err}"
    );
    assert!(err.contains("#define class_create(owner, name)"), "{err}");
    assert!(err.ends_with(&format!("dkms preflight: classdev/1.0 is installed for the running or newest kernel and would be missing on {new}: fails (10): fx_classdev.c:15:20: error: too many arguments to function ‘class_create’.\n  Fix: install a version of classdev that supports this kernel (dkms add, or its newer package), or remove it (dkms remove classdev/1.0 --all) if you no longer need it.\n\nError! Modules installed for the running or newest kernel would be lost with this kernel (see above).\n")), "{err}");
    // Nothing of the install tree changed, nothing is listed as built for 6.12.
    let after: Vec<String> = root
        .snapshot()
        .into_iter()
        .filter(|e| e.contains("lib/modules"))
        .collect();
    assert_eq!(after, before);
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("classdev/1.0, {old}, x86_64: installed\nexclusive/1.0: added\npatched/1.0, {old}, x86_64: installed\n")
    );
    // The failure is remembered, with its log.
    let log = root
        .dkms_tree()
        .join(format!("classdev/1.0/.failed/{new}/x86_64/make.log"));
    assert!(log.is_file());
    let failed = root.dkms(&["status", "--failed"]);
    let line = format!("classdev/1.0, {new}, x86_64: failed (exit 10) on ");
    assert!(failed.stdout.starts_with(&line), "{}", failed.stdout);
    // (the time varies; the rest is whole)
    assert!(failed.stdout.ends_with(&format!(
        ": fx_classdev.c:15:20: error: too many arguments to function ‘class_create’ (log: {})\n",
        log.display()
    )));
    let json: serde_json::Value =
        serde_json::from_str(&root.dkms(&["status", "--json"]).stdout).unwrap();
    assert_eq!(json["failed"][0]["module"], "classdev");
    assert_eq!(json["failed"][0]["exit_code"], 10);
    // As JSON, the table.
    let out = root.dkms(&["preflight", "--headers", &headers_dir(&new), "--json"]);
    assert_eq!(out.code, exit::PREFLIGHT_LOSES);
    let doc: serde_json::Value =
        serde_json::from_str(&out.stdout[out.stdout.find('{').unwrap()..]).unwrap();
    let rows: Vec<(String, String, bool)> = doc["preflight"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["module"].as_str().unwrap().into(),
                r["result"].as_str().unwrap().into(),
                r["lost"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("classdev".into(), "fails".into(), true),
            ("exclusive".into(), "skipped".into(), false),
            ("patched".into(), "builds".into(), false),
        ]
    );
}

/// A `make` first on PATH that counts its runs in `<root>/make-runs` and then runs the
/// real one.
fn counting_make(root: &Root) -> (String, PathBuf) {
    let runs = root.path().join("make-runs");
    let path = root.first_on_path(
        "make",
        &format!(
            "#!/bin/sh\necho run >> '{}'\nexec /usr/bin/make \"$@\"\n",
            runs.display()
        ),
    );
    (path, runs)
}

fn make_runs(runs: &Path) -> usize {
    std::fs::read_to_string(runs).map_or(0, |t| t.lines().count())
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_headers_6_12)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's 6.12 kernel headers (.ci/install-deps)"
)]
fn the_kernels_installation_takes_what_preflight_built_and_compiles_nothing() {
    let Some((root, _old, new)) = installed_on_61() else {
        return;
    };
    root.dkms(&["remove", "classdev/1.0", "--all"]).ok();
    root.dkms(&["preflight", "--headers", &headers_dir(&new)])
        .ok();
    // The kernel arrives (its modules directory and headers), and its postinst runs.
    root.real_kernel(&new);
    let (path, runs) = counting_make(&root);
    let out = root.dkms_env(&["kernel_postinst", "-k", &new], &[("PATH", &path)]);
    assert_eq!(make_runs(&runs), 0, "nothing compiled:\n{}", out.stdout);
    // The skipped module's job runs beside the other's: its two lines come in either
    // order among the other's. They are taken out (each exactly once) before the whole
    // output is compared.
    let mut out = out;
    for line in [
        format!("Autoinstall of module exclusive/1.0 for kernel {new} (x86_64)\n"),
        format!("dkms: exclusive/1.0 for kernel {new} (x86_64): skipped\n"),
    ] {
        assert_eq!(out.stdout.matches(&line).count(), 1, "{}", out.stdout);
        out.stdout = out.stdout.replace(&line, "");
    }
    out.is(
        &root,
        exit::SUCCESS,
        &format!(
            "Autoinstall of module patched/1.0 for kernel {k} (x86_64)\nUsing the build of patched/1.0 that dkms preflight made for kernel {k} (x86_64): its source and the kernel's headers are unchanged.\nInstalling $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko.xz\ndkms: patched/1.0 for kernel {k} (x86_64): installed\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\nAutoinstall on {k} succeeded for module(s) patched.\nAutoinstall on {k} was skipped for module(s) exclusive.\n",
            k = new
        ),
        "",
    );
    assert!(root
        .dkms(&["status", "patched", "-k", &new])
        .stdout
        .ends_with(": installed\n"));
    assert!(!root.dkms_tree().join("patched/1.0/.preflight").exists());
}

/// The 6.12 headers copied into the root (their kbuild linked to the machine's), so that
/// a test can change them.
fn copied_headers(root: &Root, k: &str) -> PathBuf {
    let series = k.trim_end_matches("-amd64");
    let copy = root.source_tree().join(format!("linux-headers-{k}"));
    common::copy_dir(Path::new(&headers_dir(k)), &copy);
    let kbuild = root.path().join(format!("usr/lib/linux-kbuild-{series}"));
    std::fs::create_dir_all(kbuild.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(format!("/usr/lib/linux-kbuild-{series}"), kbuild).unwrap();
    let dir = root.install_tree().join(k);
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(&copy, dir.join("build")).unwrap();
    copy
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_12),
    ignore = "needs Debian's 6.12 kernel headers (.ci/install-deps)"
)]
fn one_changed_crc_in_module_symvers_forces_a_rebuild() {
    if !common::host_ready(&[Needs::Headers("6.12")]) {
        return;
    }
    let root = Root::new();
    let k = common::headers("6.12");
    let headers = copied_headers(&root, &k);
    root.fixture("patched-1.0");
    let conf = root.source_tree().join("patched-1.0/dkms.conf");
    std::fs::write(
        &conf,
        std::fs::read_to_string(&conf).unwrap() + "AUTOINSTALL=yes\n",
    )
    .unwrap();
    root.dkms(&["install", "patched/1.0", "-k", &k]).ok();
    let (path, runs) = counting_make(&root);
    // Unchanged headers: installed, nothing to do.
    root.dkms_env(&["autoinstall", "-k", &k], &[("PATH", &path)])
        .ok();
    assert_eq!(make_runs(&runs), 0);
    // Same release, one CRC different (a respun headers package).
    let symvers = headers.join("Module.symvers");
    let text = std::fs::read_to_string(&symvers).unwrap();
    let first = text.lines().next().unwrap();
    let changed = format!("0xdeadbeef{}", &first[10..]);
    std::fs::remove_file(&symvers).unwrap();
    std::fs::write(&symvers, text.replacen(first, &changed, 1)).unwrap();
    let out = root.dkms_env(&["autoinstall", "-k", &k], &[("PATH", &path)]);
    out.is(&root, exit::SUCCESS, &format!(
            "Autoinstall of module patched/1.0 for kernel {k} (x86_64)\nRebuilding patched/1.0 for kernel {k} (x86_64): the kernel's Module.symvers changed since it was built.\nModule patched/1.0 for kernel {k} (x86_64):\nBefore uninstall, this module version was ACTIVE on this kernel.\nDeleting $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko.xz\n{SIGNING}Building patched/1.0 module(s) for kernel {k} (x86_64)...\nSigning module $ROOT/var/lib/dkms/patched/1.0/.build-{k}-x86_64/fx_patched.ko\nInstalling $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko.xz\ndkms: patched/1.0 for kernel {k} (x86_64): installed\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\nAutoinstall on {k} succeeded for module(s) patched.\n"
        ),
        "");
    assert_eq!(make_runs(&runs), 1, "rebuilt once");
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
fn an_unchanged_failure_is_not_compiled_again_until_asked() {
    let Some((root, _old, new)) = installed_on_61() else {
        return;
    };
    root.real_kernel(&new);
    let (path, runs) = counting_make(&root);
    let env = [("PATH", path.as_str())];
    let first = root.dkms_env(&["autoinstall", "-k", &new], &env);
    assert_eq!(first.code, exit::AUTOINSTALL_FAILED);
    let compiled = make_runs(&runs);
    assert_eq!(compiled, 2, "classdev and patched built");
    let again = root.dkms_env(&["autoinstall", "-k", &new], &env);
    assert_eq!(again.code, exit::AUTOINSTALL_FAILED);
    assert_eq!(make_runs(&runs), compiled, "not compiled again");
    // The refusal names the date of the failed build, and the summary follows the
    // other module's lines: the two sentences that matter are looked for.
    assert!(
        again.stderr.contains(&format!(
            "\nError! classdev/1.0 failed to build for kernel {new} (x86_64) on "
        )),
        "{}",
        again.stderr
    );
    assert!(
        again.stdout.contains(&format!(
            "Autoinstall on {new} failed for module(s) classdev(10)."
        )),
        "{}",
        again.stdout
    );
    root.dkms_env(&["autoinstall", "-k", &new, "--retry"], &env);
    assert_eq!(make_runs(&runs), compiled + 1, "--retry compiles it");
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_headers_6_12, dkms_host_test_packages)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's 6.12 kernel headers, the real *-dkms packages (.ci/install-deps)"
)]
fn headers_from_packages_not_installed_yet() {
    if !common::host_ready(&[
        Needs::Headers("6.1"),
        Needs::Headers("6.12"),
        Needs::TestPackages,
    ]) {
        return;
    }
    let Some((root, _old, new)) = installed_on_61() else {
        return;
    };
    let series = new.trim_end_matches("-amd64").to_string();
    let debs: Vec<String> = std::fs::read_dir("/var/cache/dkms-rs-test/debs")
        .unwrap()
        .flatten()
        .map(|e| e.path().display().to_string())
        .filter(|p| {
            p.contains(&format!("linux-headers-{series}"))
                || p.contains(&format!("linux-kbuild-{series}"))
        })
        .collect();
    assert_eq!(
        debs.len(),
        3,
        "the headers' three packages (.ci/install-deps): {debs:?}"
    );
    let mut args = vec!["preflight".to_string()];
    for d in &debs {
        args.extend(["--headers".to_string(), d.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = root.dkms(&args);
    assert_eq!(
        out.code,
        exit::PREFLIGHT_LOSES,
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    // The first line names the unpacked packages' scratch directory and the table's
    // other row quotes gcc's error: the header and this row are looked for.
    assert!(out
        .stdout
        .starts_with(&format!("Preflight for kernel {new} (x86_64), headers: ")));
    assert!(
        table(&out.stdout).contains(&format!("patched/1.0     {new}  builds (built now)\n")),
        "{}",
        out.stdout
    );
    // From a hook, preflight=warn (the default) lets the transaction go on.
    let mut hook = args.clone();
    hook.push("--hook");
    let out = root.dkms(&hook);
    assert_eq!(out.code, exit::SUCCESS, "{}", out.stderr);
    assert!(out.stderr.ends_with("Warning: preflight=warn: the kernel's installation goes on, and the modules above will be missing on it. Set preflight=refuse in /etc/dkms/framework.conf to stop such a transaction.\n"), "{}", out.stderr);
    root.write("etc/dkms/framework.conf", "preflight=refuse\n");
    assert_eq!(root.dkms(&hook).code, exit::PREFLIGHT_LOSES);
    assert_eq!(
        root.dkms_env(&hook, &[("DKMS_PREFLIGHT", "warn")]).code,
        exit::SUCCESS
    );
}

#[test]
fn headers_it_cannot_use_are_refused_with_the_reason() {
    let root = Root::new();
    // Not a package; a package without headers; headers of another architecture; none.
    root.write("broken.deb", "not an archive");
    root.write("arm/include/config/kernel.release", "6.12.1-arm64\n")
        .write("arm/.kernelvariables", "override ARCH = arm64\n");
    let p = |rel: &str| root.path().join(rel).display().to_string();
    let out = root.dkms(&["preflight", "--headers", &p("broken.deb")]);
    assert_eq!(out.code, exit::BAD_ARCHIVE, "{}", out.stderr);
    assert!(out.stderr.starts_with(&format!(
        "\nError! {} cannot be unpacked: it is not a readable Debian package.\n",
        p("broken.deb")
    )));
    root.dkms(&["preflight", "--headers", &p("arm")]).is(
        &root,
        exit::NO_HEADERS,
        "",
        "\nError! The headers in $ROOT/arm are for the arm64 architecture; this is x86_64.\nModules built against them could not load here: give this machine's headers, or -a with their architecture.\n",
    );
    root.dkms(&["preflight", "--headers", &p("etc")]).is(
        &root,
        exit::NO_HEADERS,
        "",
        "\nError! $ROOT/etc is not a kernel headers directory: it has no include/config/kernel.release.\n",
    );
    root.dkms(&["preflight"]).is(
        &root,
        exit::ONE_KERNEL,
        "",
        "\nError! Which kernel? Usage: dkms preflight -k <kernel> [-k <kernel>...] or dkms preflight --headers <dir or headers .deb>...\n",
    );
    if common::host_ready(&[Needs::TestPackages]) {
        let deb = std::fs::read_dir("/var/cache/dkms-rs-test/debs")
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().contains("acpi-call-dkms"))
            .unwrap();
        root.dkms(&["preflight", "--headers", deb.to_str().unwrap()]).is(
            &root,
            exit::NO_HEADERS,
            "",
            &format!("\nError! No kernel headers in {}: none of them holds a usr/src/linux-headers-<kernel>/include/config/kernel.release.\nGive the linux-headers-<kernel> package (with its -common and linux-kbuild packages, unless they are installed).\n", deb.file_name().unwrap().to_string_lossy()),
        );
    }
}
