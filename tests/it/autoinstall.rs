//! autoinstall and the kernel hooks' actions, on real fixture modules and real headers:
//! every module for every kernel, one failing never stopping the others, BUILD_DEPENDS
//! order, deferral and cycles, one depmod per kernel, one shared jobserver, the kernel
//! removal actions, match, and two autoinstalls racing.

use crate::common::{self, Needs};
use crate::common::{NEW_KEY, SIGNING};

use std::path::PathBuf;

use common::Root;

/// Fixtures added with AUTOINSTALL=yes appended to their dkms.conf.
fn root_with(fixtures: &[&str], kernels: &[String]) -> Root {
    let root = Root::new();
    for k in kernels {
        root.real_kernel(k);
    }
    for f in fixtures {
        root.fixture(f);
        let conf = root.source_tree().join(f).join("dkms.conf");
        let text = std::fs::read_to_string(&conf).unwrap() + "AUTOINSTALL=yes\n";
        std::fs::write(&conf, text).unwrap();
        let (m, v) = f.rsplit_once('-').unwrap();
        root.dkms(&["add", &format!("{m}/{v}"), "-k", &kernels[0]])
            .ok();
    }
    root
}

fn log_env(root: &Root) -> PathBuf {
    root.path().join("hooks.log")
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_headers_6_12)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's 6.12 kernel headers (.ci/install-deps)"
)]
fn every_module_on_every_kernel_in_one_run() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::Headers("6.12")]) {
        return;
    }
    let (a, b) = (common::headers("6.1"), common::headers("6.12"));
    let root = root_with(
        &["patched-1.0", "hooks-1.0", "depends-1.0"],
        &[a.clone(), b.clone()],
    );
    let log = log_env(&root);
    let out = root.dkms_env(
        &["autoinstall", "--all-kernels"],
        &[("DKMS_FIXTURE_LOG", log.to_str().unwrap())],
    );
    out.ok();
    // The kernels build in parallel: their lines interleave in an order that varies, so
    // each kernel's summary is looked for, not the whole text.
    for k in [&a, &b] {
        assert!(
            out.stdout.contains(&format!(
                "Autoinstall on {k} succeeded for module(s) depends hooks patched."
            )),
            "{}",
            out.stdout
        );
    }
    let status = root.dkms(&["status"]).stdout;
    assert_eq!(
        status
            .lines()
            .filter(|l| l.ends_with(": installed"))
            .count(),
        6,
        "{status}"
    );
    // depends waited for hooks on each kernel.
    let text = out.stdout;
    for k in [&a, &b] {
        let hooks_done = text
            .find(&format!(
                "dkms: hooks/1.0 for kernel {k} (x86_64): installed"
            ))
            .unwrap();
        let depends_start = text
            .find(&format!("Autoinstall of module depends/1.0 for kernel {k}"))
            .unwrap();
        assert!(hooks_done < depends_start);
    }
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn one_failing_module_never_stops_the_others() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let k = common::headers("6.1");
    let root = root_with(
        &["failing-1.0", "patched-1.0", "exclusive-1.0"],
        std::slice::from_ref(&k),
    );
    let out = root.dkms(&["autoinstall", "-k", &k]);
    assert_eq!(
        out.code,
        dkms::exit::AUTOINSTALL_FAILED,
        "{}{}",
        out.stdout,
        out.stderr
    );
    // The three build in parallel: their lines interleave, the summary does not.
    let mut done: Vec<&str> = summary(&out.stdout);
    done.sort();
    assert_eq!(
        done,
        [
            format!("Autoinstall on {k} failed for module(s) failing(10)."),
            format!("Autoinstall on {k} succeeded for module(s) patched."),
            format!("Autoinstall on {k} was skipped for module(s) exclusive."),
            format!("dkms: exclusive/1.0 for kernel {k} (x86_64): skipped"),
            format!("dkms: failing/1.0 for kernel {k} (x86_64): failed (10)"),
            format!("dkms: patched/1.0 for kernel {k} (x86_64): installed"),
        ]
    );
    assert!(out.stderr.starts_with(&format!(
        "\nError! Bad return status for module build on kernel: {k} (x86_64)\n"
    )));
    assert!(out.stderr.ends_with(
        "\nError! One or more modules failed to install during autoinstall.\nRefer to previous errors for more information.\n"
    ));
    assert!(root
        .dkms(&["status", "patched"])
        .stdout
        .ends_with(": installed\n"));
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn build_depends_unknown_deferred_and_cycles_reported() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let k = common::headers("6.1");
    let root = root_with(&["patched-1.0"], std::slice::from_ref(&k));
    // A dependency dkms has never heard of: deferred, exit 0.
    let conf = root.source_tree().join("patched-1.0/dkms.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, text.clone() + "BUILD_DEPENDS[0]=\"nvidia-kernel\"\n").unwrap();
    root.dkms(&["autoinstall", "-k", &k]).is(
        &root,
        0,
        &format!("dkms: patched/1.0 for kernel {k} (x86_64): deferred\npatched/1.0 autoinstall deferred: BUILD_DEPENDS not registered with DKMS: nvidia-kernel\n"),
        "",
    );
    assert_eq!(root.dkms(&["status"]).stdout, "patched/1.0: added\n");

    // Two modules that need each other: a cycle, named, exit 11.
    let root = root_with(&["patched-1.0", "hooks-1.0"], std::slice::from_ref(&k));
    let add = |f: &str, dep: &str| {
        let conf = root.source_tree().join(f).join("dkms.conf");
        let text =
            std::fs::read_to_string(&conf).unwrap() + &format!("BUILD_DEPENDS[0]=\"{dep}\"\n");
        std::fs::write(&conf, text).unwrap();
    };
    add("patched-1.0", "hooks");
    add("hooks-1.0", "patched");
    root.dkms(&["autoinstall", "-k", &k]).is(
        &root,
        dkms::exit::AUTOINSTALL_FAILED,
        &format!("dkms: hooks/1.0 for kernel {k} (x86_64): failed (11)\ndkms: patched/1.0 for kernel {k} (x86_64): failed (11)\nAutoinstall on {k} failed for module(s) hooks(11) patched(11).\n"),
        "\nError! BUILD_DEPENDS form a cycle: hooks/1.0 -> patched/1.0 -> hooks/1.0. None of these modules can be installed; remove one of the dependencies.\n\nError! One or more modules failed to install during autoinstall.\nRefer to previous errors for more information.\n",
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn no_autoinstall_file_and_kernels_without_headers() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let k = common::headers("6.1");
    let root = root_with(&["patched-1.0"], std::slice::from_ref(&k));
    root.write("etc/dkms/no-autoinstall", "");
    let out = root.dkms(&["autoinstall", "-k", &k]);
    out.ok();
    assert_eq!(
        out.stdout,
        "Automatic installation of modules has been disabled.\n"
    );
    std::fs::remove_file(root.path().join("etc/dkms/no-autoinstall")).unwrap();
    // As the original: a kernel without headers fails the run once a module needs
    // building for it (21), before anything changed; the hook checks headers first.
    let nk = "6.1.0-99-amd64";
    std::fs::create_dir_all(root.install_tree().join(nk)).unwrap();
    let before = root.snapshot();
    let out = root.dkms(&["autoinstall", "-k", nk]);
    assert_eq!(out.code, dkms::exit::NO_HEADERS, "{out:?}");
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        format!(
            "\nError! Your kernel headers for kernel {nk} cannot be found at {}.\nPlease install your distribution's kernel headers package matching {nk} (on Debian and Ubuntu: apt-get install linux-headers-{nk}).\n",
            root.install_tree().join(nk).join("build").display()
        )
    );
    assert_eq!(root.snapshot(), before);
}

#[test]
fn kernel_hooks_need_exactly_one_kernel() {
    let root = Root::new();
    for action in ["kernel_preinst", "kernel_postinst", "kernel_prerm"] {
        let out = root.dkms(&[action]);
        assert_eq!(out.code, dkms::exit::ONE_KERNEL, "{action}: {out:?}");
        assert_eq!(
            out.stderr,
            format!("\nError! The action {action} requires exactly one kernel version parameter on the command line (-k <kernel>).\n")
        );
    }
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn one_depmod_per_kernel_and_makes_share_one_jobserver() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let k = common::headers("6.1");
    let root = root_with(
        &["patched-1.0", "hooks-1.0", "depends-1.0"],
        std::slice::from_ref(&k),
    );
    std::fs::write(root.install_tree().join(&k).join("modules.dep"), "").unwrap();
    // Record every depmod run, and the MAKEFLAGS each kbuild sub-make inherits (the
    // environment variable: make adds the jobserver to it for the processes it starts).
    let runs = root.path().join("depmod-runs");
    let path = root.first_on_path(
        "depmod",
        &format!(
            "#!/bin/sh\necho \"$@\" >> {}\nexec /sbin/depmod \"$@\"\n",
            runs.display()
        ),
    );
    let flags = root.path().join("makeflags");
    for f in ["patched-1.0", "hooks-1.0", "depends-1.0"] {
        let makefile = root.source_tree().join(f).join("Makefile");
        let text = std::fs::read_to_string(&makefile).unwrap()
            + &format!("$(shell echo \"$$MAKEFLAGS\" >> {})\n", flags.display());
        std::fs::write(&makefile, text).unwrap();
    }
    let log = log_env(&root);
    root.dkms_env(
        &["autoinstall", "-k", &k],
        &[("PATH", &path), ("DKMS_FIXTURE_LOG", log.to_str().unwrap())],
    )
    .ok();
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap().lines().count(),
        1,
        "one depmod for the kernel"
    );
    let dep = std::fs::read_to_string(root.install_tree().join(&k).join("modules.dep")).unwrap();
    assert_eq!(dep.lines().count(), 3, "{dep}");
    let seen = std::fs::read_to_string(&flags).unwrap();
    assert!(
        !seen.is_empty() && seen.lines().all(|l| l.contains("jobserver-auth")),
        "{seen}"
    );
    assert!(
        !seen.contains("-j2"),
        "make joins the shared jobserver instead of running its own: {seen}"
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn kernel_prerm_and_preinst_remove_what_they_should() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let k = common::headers("6.1");
    let root = root_with(&["patched-1.0"], std::slice::from_ref(&k));
    // hooks: added without AUTOINSTALL, installed by hand.
    root.fixture("hooks-1.0");
    let log = log_env(&root);
    let env = [("DKMS_FIXTURE_LOG", log.to_str().unwrap())];
    root.dkms_env(&["install", "hooks/1.0", "-k", &k], &env)
        .ok();
    root.dkms(&["autoinstall", "-k", &k]).ok();
    // preinst removes only AUTOINSTALL modules.
    root.dkms_env(&["kernel_preinst", "-k", &k], &env).is(
        &root,
        0,
        &format!("Module patched/1.0 for kernel {k} (x86_64):\nBefore uninstall, this module version was ACTIVE on this kernel.\nDeleting $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\n"),
        &format!("dkms: removing module patched/1.0 for kernel {k} (x86_64)\n"),
    );
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("hooks/1.0, {k}, x86_64: installed\npatched/1.0: added\n")
    );
    // prerm removes everything built for the kernel and prunes empty directories.
    root.dkms_env(&["kernel_prerm", "-k", &k], &env).ok();
    assert_eq!(
        root.dkms(&["status"]).stdout,
        "hooks/1.0: added\npatched/1.0: added\n"
    );
    assert!(!root.install_tree().join(&k).join("updates").exists());
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_headers_6_12)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's 6.12 kernel headers (.ci/install-deps)"
)]
fn match_installs_what_the_template_kernel_has() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::Headers("6.12")]) {
        return;
    }
    let (a, b) = (common::headers("6.1"), common::headers("6.12"));
    let root = root_with(&["patched-1.0"], &[a.clone(), b.clone()]);
    root.dkms(&["install", "patched/1.0", "-k", &a]).ok();
    root.dkms(&["match", "--templatekernel", &a, "-k", &b]).is(
        &root,
        0,
        &format!("Matching patched/1.0 from kernel {a} onto kernel {b} (x86_64)\n{SIGNING}Building module(s) for kernel {b} (x86_64)...\nSigning module $ROOT/var/lib/dkms/patched/1.0/build/fx_patched.ko\nInstalling $ROOT/lib/modules/{b}/updates/dkms/fx_patched.ko.xz\nSkipping depmod because '$ROOT/lib/modules/{b}/modules.dep' is missing.\n"),
        "",
    );
    assert_eq!(
        root.dkms(&["status", "-k", &b]).stdout,
        format!("patched/1.0, {b}, x86_64: installed\n")
    );
    assert_eq!(
        root.dkms(&["match", "--templatekernel", &a, "-k", &a]).code,
        2
    );
    assert_eq!(
        root.dkms(&["match", "-k", &b]).code,
        dkms::exit::MATCH_USAGE
    );
    root.dkms(&["match", "--templatekernel", "6.1.0-99-amd64", "-k", &b])
        .is(
            &root,
            0,
            "There is nothing to be done for this match.\n",
            "",
        );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn two_autoinstalls_at_once_both_end_correctly() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let k = common::headers("6.1");
    let root = root_with(&["patched-1.0", "hooks-1.0"], std::slice::from_ref(&k));
    let log = log_env(&root);
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_dkms"))
            .args(["autoinstall", "-k", &k])
            .env("DKMS_SYSROOT", root.path())
            .env("DKMS_FIXTURE_LOG", &log)
            .output()
            .unwrap()
    };
    let (first, second) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap(), b.join().unwrap())
    });
    for o in [&first, &second] {
        assert!(
            o.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let waited = [&first, &second]
        .iter()
        .any(|o| String::from_utf8_lossy(&o.stderr).contains("Waiting for the dkms lock"));
    assert!(waited, "one waited for the other");
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("hooks/1.0, {k}, x86_64: installed\npatched/1.0, {k}, x86_64: installed\n")
    );
}

/// Runs `dkms args` with a pseudo-terminal as stdout and stderr (util-linux `script`),
/// returning everything the terminal showed.
fn on_a_terminal(root: &Root, args: &str) -> String {
    let cmd = format!(
        "DKMS_SYSROOT={} DKMS_FIXTURE_LOG={} TERM=xterm {} {args}",
        root.path().display(),
        log_env(root).display(),
        env!("CARGO_BIN_EXE_dkms")
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn a_terminal_gets_a_live_progress_bar_and_a_pipe_plain_lines() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let k = common::headers("6.1");
    let root = root_with(&["patched-1.0", "hooks-1.0"], std::slice::from_ref(&k));
    let shown = on_a_terminal(&root, &format!("autoinstall -k {k}"));
    // The bar is redrawn with elapsed times as the jobs run: its marks are looked for.
    assert!(shown.contains("/2"), "a bar counting the 2 jobs: {shown:?}");
    assert!(
        shown.contains('\u{1b}'),
        "drawn with terminal control codes"
    );
    assert!(shown.contains(&format!(
        "dkms: patched/1.0 for kernel {k} (x86_64): installed"
    )));
    assert!(shown.contains(&format!(
        "Autoinstall on {k} succeeded for module(s) hooks patched."
    )));

    // Through a pipe: the same lines, no bar, no control codes.
    let root = root_with(&["patched-1.0", "hooks-1.0"], std::slice::from_ref(&k));
    let log = log_env(&root);
    let out = root.dkms_env(
        &["autoinstall", "-k", &k],
        &[("DKMS_FIXTURE_LOG", log.to_str().unwrap())],
    );
    out.ok();
    // The two modules build at once and finish in either order: the absence of control
    // codes and one module's line are looked for.
    assert!(!out.stdout.contains('\u{1b}') && !out.stderr.contains('\u{1b}'));
    assert!(out.stdout.contains(&format!(
        "dkms: patched/1.0 for kernel {k} (x86_64): installed"
    )));
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn a_failing_depmod_is_reported_with_what_to_run_and_exit_11() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let k = common::headers("6.1");
    let root = root_with(&["patched-1.0"], std::slice::from_ref(&k));
    std::fs::write(root.install_tree().join(&k).join("modules.dep"), "").unwrap();
    let path = root.first_on_path(
        "depmod",
        "#!/bin/sh\necho 'depmod: FATAL: could not open modules.order' >&2\nexit 1\n",
    );
    let out = root.dkms_env(&["autoinstall", "-k", &k], &[("PATH", &path)]);
    out.is(&root, dkms::exit::AUTOINSTALL_FAILED, &format!(
            "Autoinstall of module patched/1.0 for kernel {k} (x86_64)\n{SIGNING}{NEW_KEY}Building patched/1.0 module(s) for kernel {k} (x86_64)...\nSigning module $ROOT/var/lib/dkms/patched/1.0/.build-{k}-x86_64/fx_patched.ko\nInstalling $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko\ndkms: patched/1.0 for kernel {k} (x86_64): installed\nRunning depmod for kernel {k}...\nAutoinstall on {k} succeeded for module(s) patched.\n"
        ),
        &format!(
            "\nError! depmod failed for kernel {k}: depmod: FATAL: could not open modules.order\nThe modules are in place but not indexed, so modprobe cannot find them: fix the problem and run 'depmod -a {k}'.\n\nError! One or more modules failed to install during autoinstall.\nRefer to previous errors for more information.\n"
        ));
    // The install itself was committed: the module is in place.
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
fn post_transaction_runs_once_per_run_or_once_per_kernel_when_it_names_the_kernel() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::Headers("6.12")]) {
        return;
    }
    let (a, b) = (common::headers("6.1"), common::headers("6.12"));
    let marks = |root: &Root| std::fs::read_to_string(root.path().join("marks")).unwrap();
    for (command, expected) in [
        ("echo ran", vec!["ran".to_string()]),
        (
            "echo ran \\$kernelver",
            vec![format!("ran {a}"), format!("ran {b}")],
        ),
    ] {
        let root = root_with(&["patched-1.0"], &[a.clone(), b.clone()]);
        root.write(
            "etc/dkms/framework.conf",
            &format!(
                "post_transaction=\"{command} >> {}\"\n",
                root.path().join("marks").display()
            ),
        );
        root.dkms(&["autoinstall", "--all-kernels"]).ok();
        let mut ran: Vec<String> = marks(&root).lines().map(String::from).collect();
        ran.sort();
        assert_eq!(ran, expected, "{command}");
        // Nothing left to do: not run again.
        root.dkms(&["autoinstall", "--all-kernels"]).ok();
        assert_eq!(marks(&root).lines().count(), expected.len());
    }
}

/// The autoinstall summary: each module's line and the per-kernel lines.
fn summary(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| l.starts_with("dkms: ") || l.starts_with("Autoinstall on "))
        .collect()
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn a_skipped_dependency_lets_its_dependants_run_and_decide() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    // As the original: a dependency skipped by BUILD_EXCLUSIVE (77) no longer holds its
    // dependants back; one excluded itself is skipped too (exit 0, the suite's case),
    // one that is not fails its build for the missing dependency (13, run 11).
    let k = common::headers("6.1");
    let root = root_with(&["exclusive-1.0", "patched-1.0"], std::slice::from_ref(&k));
    let conf = root.source_tree().join("patched-1.0/dkms.conf");
    let plain = std::fs::read_to_string(&conf).unwrap() + "BUILD_DEPENDS=\"exclusive\"\n";
    let skip = |word: &str| format!("dkms: {word}/1.0 for kernel {k} (x86_64): skipped");
    std::fs::write(&conf, format!("{plain}BUILD_EXCLUSIVE_KERNEL=\"^99\\.\"\n")).unwrap();
    let out = root.dkms(&["autoinstall", "-k", &k]);
    out.ok();
    assert_eq!(
        summary(&out.stdout),
        [
            skip("exclusive"),
            skip("patched"),
            format!("Autoinstall on {k} was skipped for module(s) exclusive patched."),
        ]
    );
    std::fs::write(&conf, plain).unwrap();
    let out = root.dkms(&["autoinstall", "-k", &k]);
    assert_eq!(out.code, dkms::exit::AUTOINSTALL_FAILED, "{out:?}");
    assert_eq!(
        summary(&out.stdout),
        [
            skip("exclusive"),
            format!("dkms: patched/1.0 for kernel {k} (x86_64): failed (13)"),
            format!("Autoinstall on {k} was skipped for module(s) exclusive."),
            format!("Autoinstall on {k} failed for module(s) patched(13)."),
        ]
    );
    assert_eq!(
        root.dkms(&["status"]).stdout,
        "exclusive/1.0: added\npatched/1.0: added\n"
    );
}

#[test]
fn a_module_with_prebuilt_binaries_only_is_skipped_on_a_new_kernel() {
    // As a prebuilt module package or `ldtarball --binaries-only` registers it: the
    // version's source holds its dkms.conf alone, and one kernel has the build. A new
    // kernel, headers or not, cannot get it: skipped with a line, exit 0 (the original
    // fails it with "does not appear to have module source", 8, and the run with 11).
    let root = Root::new();
    root.fake_kernel("6.1.0-1-amd64", "")
        .built("solo", "1.0", "6.1.0-1-amd64", "x86_64", &["solo.ko"])
        .installed("solo", "1.0", "6.1.0-1-amd64", "x86_64")
        .write(
            "var/lib/dkms/solo/1.0/source/dkms.conf",
            &common::simple_conf("solo", "1.0"),
        );
    std::fs::create_dir_all(root.install_tree().join("6.12.1-1-amd64")).unwrap();
    root.dkms(&["autoinstall", "-k", "6.12.1-1-amd64"]).is(
        &root,
        dkms::exit::SUCCESS,
        "solo/1.0 has prebuilt modules only (no source on this machine): it cannot be built for kernel 6.12.1-1-amd64 (x86_64), skipped.\nAutoinstall on 6.12.1-1-amd64 was skipped for module(s) solo.\n",
        "",
    );
    assert_eq!(
        root.dkms(&["status"]).stdout,
        "solo/1.0, 6.1.0-1-amd64, x86_64: installed\n"
    );
}
