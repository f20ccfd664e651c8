//! Crash injection, the way SQLite tests its journal: dkms dies (SIGKILL, as a power cut
//! or the OOM killer would stop it) at every filesystem step of install, uninstall,
//! unbuild, remove, autoinstall and ldtarball in turn (`DKMS_TEST_CRASH_AT=N`, see
//! `src/crashpoint.rs`), N = 1, 2, ... until the operation finishes without reaching N.
//! After each kill the next dkms (`status`) recovers, and then:
//! * status exits 0 and agrees with the files (an installed line has its module file,
//!   byte for byte the built one; no installed line, no module file);
//! * after an install the module is the old or the new one, byte-exact, never neither;
//! * no temporary name of ours is left anywhere in the root;
//! * Debian's bash `dkms status` reads the tree and says the same;
//! * `remove --all` of what is left leaves nothing of the module (an archived original
//!   module is back where it was).
//!
//! Each operation starts from the same tree, restored in place before every N (the
//! state tree holds absolute links into the root).
//!
//! Then the same checks after SIGKILLs at random instants of a real build and install
//! (`random_kills_during_a_real_build_and_install`, seeded: `DKMS_TEST_SEED`), of the
//! whole process group or of dkms alone (its make and compilers finish on their own).

use crate::common::{self, Needs};

use std::path::{Path, PathBuf};

use common::Root;

const MODULE_FILE: &str = "updates/dkms/fx_patched.ko";

/// Names only a dkms in the middle of something leaves (src/state/garbage.rs,
/// src/transaction.rs).
const TEMPORARY: &[&str] = &[
    ".dkms-new.",
    ".dkms-old.",
    ".removing.",
    ".adding.",
    ".copy.",
    ".tmp_",
    ".build-",
    ".journal",
    ".source.",
    ".dkms-write.",
];

struct Scenario {
    root: Root,
    kernel: String,
    /// The pristine tree, restored before each run.
    template: tempfile::TempDir,
    /// Where the steps of each run are logged.
    logs: tempfile::TempDir,
    /// The module file of each version built in the template: installed, it must be
    /// these bytes (a version built by the operation itself must be its new build's).
    allowed: Vec<(String, Vec<u8>)>,
    /// The kernel's own module archived by the first install, if any.
    original: Option<Vec<u8>>,
}

impl Scenario {
    /// `patched/1.0` installed on a real 6.1 kernel (with modules.dep, so depmod runs);
    /// `prepare` adds what the operation needs; the tree is then kept as the template.
    fn new(original: bool, prepare: impl FnOnce(&Root, &str)) -> Scenario {
        let root = Root::new();
        let k = common::headers("6.1");
        root.real_kernel(&k).fixture("patched-1.0");
        std::fs::write(root.install_tree().join(&k).join("modules.dep"), "").unwrap();
        let original = original.then(|| {
            let own = root.install_tree().join(&k).join("extra/fx_patched.ko");
            std::fs::create_dir_all(own.parent().unwrap()).unwrap();
            std::fs::write(&own, b"the kernel's own fx_patched").unwrap();
            b"the kernel's own fx_patched".to_vec()
        });
        root.dkms(&["install", "patched/1.0", "-k", &k]).ok();
        prepare(&root, &k);
        let mut allowed = Vec::new();
        for v in ["1.0", "2.0"] {
            let built = built_file(&root, v, &k);
            if let Ok(bytes) = std::fs::read(built) {
                allowed.push((v.to_string(), bytes));
            }
        }
        let template = tempfile::tempdir().unwrap();
        copy_contents(root.path(), template.path());
        Scenario {
            root,
            kernel: k,
            template,
            logs: tempfile::tempdir().unwrap(),
            allowed,
            original,
        }
    }

    fn restore(&self) {
        for e in std::fs::read_dir(self.root.path()).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                std::fs::remove_dir_all(&p).unwrap();
            } else {
                std::fs::remove_file(&p).unwrap();
            }
        }
        copy_contents(self.template.path(), self.root.path());
    }

    /// Run `args` dying at every step in turn; returns how many kills were checked.
    fn every_crash(&self, args: &[&str]) -> usize {
        let log = self.logs.path().join("steps");
        for n in 1.. {
            self.restore();
            let _ = std::fs::remove_file(&log);
            let out = self.root.dkms_env(
                args,
                &[
                    ("DKMS_TEST_CRASH_AT", &n.to_string()),
                    ("DKMS_TEST_CRASH_LOG", log.to_str().unwrap()),
                ],
            );
            if out.code != -1 {
                out.ok();
                self.check(args, "finished");
                return n - 1;
            }
            let steps = std::fs::read_to_string(&log).unwrap_or_default();
            let at = steps.lines().last().unwrap_or("?").to_string();
            self.check(args, &format!("killed at step {at}"));
        }
        unreachable!()
    }

    /// Everything that must hold once the next dkms has recovered.
    fn check(&self, args: &[&str], when: &str) {
        let k = &self.kernel;
        let ctx = format!("dkms {} {when}", args.join(" "));
        let status = self.root.dkms(&["status"]);
        assert_eq!(status.code, 0, "{ctx}: {status:?}");
        // Lines without the original-modules note, which is a fact, not a problem.
        let lines: Vec<&str> = status
            .stdout
            .lines()
            .map(|l| l.trim_end_matches(" (Original modules exist)"))
            .collect();
        let installed: Vec<&&str> = lines
            .iter()
            .filter(|l| l.starts_with("patched/") && l.ends_with(": installed"))
            .collect();
        let module = self.root.install_tree().join(k).join(MODULE_FILE);
        for l in &lines {
            assert!(
                l.ends_with(": installed") || l.ends_with(": built") || l.ends_with(": added"),
                "{ctx}: a status line with a problem: {l}"
            );
        }
        match installed.as_slice() {
            [] => assert!(
                !module.exists(),
                "{ctx}: a module file and nothing installed"
            ),
            [line] => {
                let v = line.split([',', '/']).nth(1).unwrap();
                let bytes = std::fs::read(&module)
                    .unwrap_or_else(|e| panic!("{ctx}: {line} but {}: {e}", module.display()));
                assert_eq!(
                    bytes,
                    std::fs::read(built_file(&self.root, v, k)).unwrap(),
                    "{ctx}: the installed file is not {v}'s build"
                );
                if let Some((_, template)) = self.allowed.iter().find(|(a, _)| a == v) {
                    assert_eq!(&bytes, template, "{ctx}: {v} is not the build it was");
                }
            }
            more => panic!("{ctx}: two versions installed: {more:?}"),
        }
        self.assert_no_temporary(&ctx);
        let bash = self.root.bash_dkms(&["status"]);
        assert_eq!(bash.code, 0, "{ctx}: bash dkms: {bash:?}");
        assert_eq!(
            bash.stdout,
            common::to_3_0_10_wording(&status.stdout),
            "{ctx}: Debian's dkms reads another state"
        );
        self.remove_all(&lines, &ctx);
    }

    fn assert_no_temporary(&self, ctx: &str) {
        let left: Vec<String> = self
            .root
            .snapshot()
            .into_iter()
            .filter(|e| TEMPORARY.iter().any(|t| e.contains(t)))
            // `<v>/build/` is the build's scratch copy: what kbuild leaves there (its
            // own `.tmp_<pid>` of a killed make) is not ours and is replaced by the
            // next build, as with the original.
            .filter(|e| !e.contains("/build/"))
            .collect();
        assert!(left.is_empty(), "{ctx}: temporary names left: {left:?}");
    }

    /// `remove --all` of every version status shows leaves nothing of the module.
    fn remove_all(&self, lines: &[&str], ctx: &str) {
        let mut versions: Vec<&str> = lines
            .iter()
            .map(|l| l.split([',', ':']).next().unwrap())
            .collect();
        versions.dedup();
        for mv in versions {
            self.root.dkms(&["remove", mv, "--all"]).ok();
        }
        let k = &self.kernel;
        assert_eq!(self.root.dkms(&["status"]).stdout, "", "{ctx}");
        assert!(
            !self.root.dkms_tree().join("patched").exists(),
            "{ctx}: state left"
        );
        let left: Vec<String> = self
            .root
            .snapshot()
            .into_iter()
            .filter(|e| e.contains("fx_patched") && !e.contains(" usr/src/"))
            .filter(|e| !e.contains(&format!(" lib/modules/{k}/extra/fx_patched.ko")))
            .collect();
        assert!(left.is_empty(), "{ctx}: files left: {left:?}");
        let own = self.root.install_tree().join(k).join("extra/fx_patched.ko");
        match &self.original {
            Some(bytes) => assert_eq!(
                &std::fs::read(&own).unwrap_or_default(),
                bytes,
                "{ctx}: the kernel's own module is not back"
            ),
            None => assert!(!own.exists(), "{ctx}"),
        }
        self.assert_no_temporary(ctx);
    }
}

fn built_file(root: &Root, v: &str, k: &str) -> PathBuf {
    root.dkms_tree()
        .join(format!("patched/{v}/{k}/x86_64/module/fx_patched.ko"))
}

/// `cp -a from/. to/`.
fn copy_contents(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// 2.0 (a newer MODULE_VERSION) added and built beside the installed 1.0.
fn newer_built(root: &Root, k: &str) {
    root.next_version("patched", "1.0", "2.0");
    let conf = root.source_tree().join("patched-2.0/dkms.conf");
    let text = std::fs::read_to_string(&conf).unwrap() + "AUTOINSTALL=yes\n";
    std::fs::write(conf, text).unwrap();
    root.dkms(&["build", "patched/2.0", "-k", k]).ok();
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_debian_dkms)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's bash dkms (.ci/install-deps)"
)]
fn install_survives_a_crash_at_every_step() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::DebianDkms]) {
        return;
    }
    let s = Scenario::new(true, newer_built);
    let k = s.kernel.clone();
    let n = s.every_crash(&["install", "patched/2.0", "-k", &k]);
    eprintln!("install: {n} crash points checked");
    assert!(n > 10, "{n}");
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_debian_dkms)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's bash dkms (.ci/install-deps)"
)]
fn autoinstall_survives_a_crash_at_every_step() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::DebianDkms]) {
        return;
    }
    let s = Scenario::new(false, newer_built);
    let k = s.kernel.clone();
    let n = s.every_crash(&["autoinstall", "-k", &k]);
    eprintln!("autoinstall: {n} crash points checked");
    assert!(n > 10, "{n}");
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_debian_dkms)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's bash dkms (.ci/install-deps)"
)]
fn uninstall_survives_a_crash_at_every_step() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::DebianDkms]) {
        return;
    }
    let s = Scenario::new(true, |_, _| {});
    let k = s.kernel.clone();
    let n = s.every_crash(&["uninstall", "patched/1.0", "-k", &k]);
    eprintln!("uninstall: {n} crash points checked");
    assert!(n > 5, "{n}");
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_debian_dkms)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's bash dkms (.ci/install-deps)"
)]
fn unbuild_survives_a_crash_at_every_step() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::DebianDkms]) {
        return;
    }
    let s = Scenario::new(true, |_, _| {});
    let k = s.kernel.clone();
    let n = s.every_crash(&["unbuild", "patched/1.0", "-k", &k]);
    eprintln!("unbuild: {n} crash points checked");
    assert!(n > 5, "{n}");
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_debian_dkms)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's bash dkms (.ci/install-deps)"
)]
fn remove_survives_a_crash_at_every_step() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::DebianDkms]) {
        return;
    }
    let s = Scenario::new(false, newer_built);
    let n = s.every_crash(&["remove", "patched/1.0", "--all"]);
    eprintln!("remove: {n} crash points checked");
    assert!(n > 5, "{n}");
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_debian_dkms)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's bash dkms (.ci/install-deps)"
)]
fn ldtarball_survives_a_crash_at_every_step() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::DebianDkms]) {
        return;
    }
    let s = Scenario::new(false, |root, k| {
        newer_built(root, k);
        let archive = root.path().join("patched-2.0.dkms.tar.gz");
        root.dkms(&[
            "mktarball",
            "patched/2.0",
            "-k",
            k,
            "--archive",
            archive.to_str().unwrap(),
        ])
        .ok();
        root.dkms(&["remove", "patched/2.0", "--all"]).ok();
        std::fs::remove_dir_all(root.source_tree().join("patched-2.0")).unwrap();
    });
    let archive = s.root.path().join("patched-2.0.dkms.tar.gz");
    let n = s.every_crash(&["ldtarball", archive.to_str().unwrap()]);
    eprintln!("ldtarball: {n} crash points checked");
    assert!(n > 5, "{n}");
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_debian_dkms)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's bash dkms (.ci/install-deps)"
)]
fn random_kills_during_a_real_build_and_install() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::DebianDkms]) {
        return;
    }
    use std::os::unix::process::CommandExt;
    let seed = std::env::var("DKMS_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261202u64);
    let rounds: usize = std::env::var("DKMS_TEST_KILL_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let mut rng = fastrand::Rng::with_seed(seed);
    // 2.0 added, not built: the install compiles it with the kernel's kbuild.
    let s = Scenario::new(false, |root, k| {
        newer_built(root, k);
        root.dkms(&["unbuild", "patched/2.0", "-k", k]).ok();
    });
    let k = s.kernel.clone();
    let args = ["install", "patched/2.0", "-k", k.as_str()];
    let whole_run = {
        s.restore();
        let start = std::time::Instant::now();
        s.root.dkms(&args).ok();
        start.elapsed()
    };
    let (mut group_kills, mut alone_kills) = (0, 0);
    for round in 0..rounds {
        s.restore();
        let whole_group = rng.bool();
        let delay = whole_run.mul_f64(rng.f64());
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dkms"))
            .args(args)
            .env("DKMS_SYSROOT", s.root.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let pid = rustix::process::Pid::from_child(&child);
        let killed = child.try_wait().unwrap().is_none();
        if killed && whole_group {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            group_kills += 1;
        } else if killed {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            alone_kills += 1;
        }
        child.wait().unwrap();
        // What dkms started (make, the compilers) ends on its own before the next dkms.
        while rustix::process::test_kill_process_group(pid).is_ok() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let how = if whole_group {
            "its process group"
        } else {
            "dkms alone"
        };
        s.check(
            &args,
            &format!("killed after {delay:?} ({how}, round {round}, seed {seed})"),
        );
    }
    eprintln!(
        "random kills (seed {seed}): {rounds} rounds, {group_kills} of the process group, {alone_kills} of dkms alone, the rest finished first"
    );
}

/// Eight dkms at once on one tree, started in a different order each round: the end
/// state is the same every time, the exit codes are the original's, and a dkms that
/// waits names a process that really is one of the others.
#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_debian_dkms)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's bash dkms (.ci/install-deps)"
)]
fn eight_dkms_at_once_agree_whatever_the_order() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::DebianDkms]) {
        return;
    }
    let s = Scenario::new(false, |root, k| {
        newer_built(root, k);
        root.fixture("hooks-1.0");
        let conf = root.source_tree().join("hooks-1.0/dkms.conf");
        let text = std::fs::read_to_string(&conf).unwrap() + "AUTOINSTALL=yes\n";
        std::fs::write(conf, text).unwrap();
        root.dkms(&["build", "hooks/1.0", "-k", k]).ok();
        // Not AUTOINSTALL: only the two removes decide its fate.
        let conf = common::simple_conf("r", "1").replace("AUTOINSTALL=yes\n", "");
        root.source("r", "1", &conf);
        root.dkms(&["add", "r/1", "-k", k]).ok();
    });
    let k = s.kernel.clone();
    let log = s.logs.path().join("hooks.log");
    let invocations: Vec<Vec<&str>> = vec![
        vec!["install", "patched/2.0", "-k", &k],
        vec!["install", "hooks/1.0", "-k", &k],
        vec!["uninstall", "patched/1.0", "-k", &k],
        vec!["autoinstall", "-k", &k],
        vec!["remove", "r/1", "--all"],
        vec!["remove", "r/1", "--all"],
        vec!["status"],
        vec!["status", "--json"],
    ];
    let expected = format!(
        "hooks/1.0, {k}, x86_64: installed\npatched/1.0, {k}, x86_64: built\npatched/2.0, {k}, x86_64: installed\n"
    );
    let mut rng = fastrand::Rng::with_seed(8);
    let rounds = 6;
    let mut waits = 0;
    for round in 0..rounds {
        s.restore();
        let mut order: Vec<usize> = (0..invocations.len()).collect();
        rng.shuffle(&mut order);
        let children: Vec<(usize, std::process::Child)> = order
            .iter()
            .map(|&i| {
                let child = std::process::Command::new(env!("CARGO_BIN_EXE_dkms"))
                    .args(&invocations[i])
                    .env("DKMS_SYSROOT", s.root.path())
                    .env("DKMS_FIXTURE_LOG", &log)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                (i, child)
            })
            .collect();
        let pids: Vec<u32> = children.iter().map(|(_, c)| c.id()).collect();
        let mut removes = Vec::new();
        for (i, child) in children {
            let out = common::Output::from(child.wait_with_output().unwrap());
            let ctx = format!("round {round}, dkms {}: {out:?}", invocations[i].join(" "));
            for line in out
                .stderr
                .lines()
                .filter(|l| l.starts_with("Waiting for the dkms lock"))
            {
                let holder: u32 = line
                    .trim_start_matches("Waiting for the dkms lock held by process ")
                    .split(' ')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| panic!("{ctx}: no holder named"));
                assert!(
                    pids.contains(&holder),
                    "{ctx}: {holder} is none of the eight"
                );
                waits += 1;
            }
            match invocations[i][0] {
                "remove" => removes.push(out.code),
                "status" if invocations[i].len() == 2 => {
                    out.ok();
                    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
                    assert_eq!(doc["schema"], "dkms-status/1", "{ctx}");
                }
                _ => assert_eq!(out.code, 0, "{ctx}"),
            }
        }
        removes.sort();
        assert_eq!(
            removes,
            [0, 3],
            "round {round}: one remove removes, the other finds nothing"
        );
        assert_eq!(s.root.dkms(&["status"]).stdout, expected, "round {round}");
        s.check(&["eight at once"], &format!("round {round}"));
    }
    eprintln!("concurrency: {rounds} rounds of 8 invocations, every end state the same, {waits} waits each naming a real holder");
    assert!(waits > 0, "no dkms ever waited: the test did not race");
}
