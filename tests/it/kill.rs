//! A dkms killed (SIGKILL) in the middle of its work never leaves a machine without a
//! working module or with a half-written tree: the next dkms finds the journal and
//! undoes (or completes) the interrupted transaction.
//!
//! The kills are real: a script walks up its parent processes and `kill -9`s the dkms
//! that started it, run at four points — during `make`, in PRE_INSTALL (before any file
//! is placed), in `depmod` (every file placed and the kernel link switched, not yet
//! committed), and in POST_INSTALL (just after the commit).

use crate::common::{self, Needs};

use std::path::Path;

use common::Root;

const KILLER: &str = r#"#!/bin/sh
# Kill the dkms process that (indirectly) started us, as a power cut or OOM kill would.
p=$$
while [ "$p" -gt 1 ]; do
    p=$(ps -o ppid= -p "$p" | tr -d ' ')
    if [ "$(ps -o comm= -p "$p")" = dkms ]; then kill -9 "$p"; sleep 1; exit 0; fi
done
exit 1
"#;

fn write_exec(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// `patched/1.0` and `patched/2.0` sources, `extra` appended to 2.0's dkms.conf, the
/// killer script in 2.0's source directory, and a kernel with a modules.dep.
fn setup(extra: &str) -> (Root, String) {
    let root = Root::new();
    let k = common::headers("6.1");
    root.real_kernel(&k)
        .fixture("patched-1.0")
        .next_version("patched", "1.0", "2.0");
    std::fs::write(root.install_tree().join(&k).join("modules.dep"), "").unwrap();
    let conf = root.source_tree().join("patched-2.0/dkms.conf");
    let text = std::fs::read_to_string(&conf).unwrap() + extra;
    std::fs::write(&conf, text).unwrap();
    write_exec(&root.source_tree().join("patched-2.0/kill-dkms.sh"), KILLER);
    root.dkms(&["install", "patched/1.0", "-k", &k]).ok();
    (root, k)
}

fn installed(root: &Root, k: &str) -> Vec<u8> {
    std::fs::read(
        root.install_tree()
            .join(k)
            .join("updates/dkms/fx_patched.ko"),
    )
    .unwrap()
}

/// What must hold after any kill: status runs recovery; no journal, no stray files.
/// Returns status's output.
fn assert_recovered(root: &Root) -> String {
    let status = root.dkms(&["status"]);
    status.ok();
    assert!(!dkms::transaction::pending(&root.dkms_tree()));
    let strays: Vec<String> = root
        .snapshot()
        .into_iter()
        .filter(|e| e.contains(".dkms-new.") || e.contains(".dkms-old."))
        .collect();
    assert!(strays.is_empty(), "{strays:?}");
    status.stdout
}

/// [`assert_recovered`], and fx_patched is installed on `k`.
fn assert_clean(root: &Root, k: &str) -> String {
    let status = assert_recovered(root);
    assert!(
        root.install_tree()
            .join(k)
            .join("updates/dkms/fx_patched.ko")
            .exists(),
        "a working module is installed"
    );
    status
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn killed_during_make() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = setup("MAKE[0]=\"./kill-dkms.sh\"\n");
    let before = installed(&root, &k);
    let out = root.dkms(&["install", "patched/2.0", "-k", &k]);
    assert_eq!(out.code, -1, "killed by SIGKILL");
    let status = assert_clean(&root, &k);
    assert_eq!(
        status,
        format!("patched/1.0, {k}, x86_64: installed\npatched/2.0: added\n")
    );
    assert_eq!(installed(&root, &k), before);
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn killed_in_pre_install_before_any_file_is_placed() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = setup("PRE_INSTALL=\"kill-dkms.sh\"\n");
    let before = installed(&root, &k);
    let out = root.dkms(&["install", "patched/2.0", "-k", &k]);
    assert_eq!(out.code, -1);
    let status = assert_clean(&root, &k);
    assert_eq!(
        status,
        format!("patched/1.0, {k}, x86_64: installed\npatched/2.0, {k}, x86_64: built\n")
    );
    assert_eq!(installed(&root, &k), before);
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn killed_in_depmod_after_every_file_was_placed_is_rolled_back() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = setup("");
    root.dkms(&["build", "patched/2.0", "-k", &k]).ok();
    let before = root.snapshot();
    let before_bytes = installed(&root, &k);
    let path = root.first_on_path("depmod", KILLER);
    let out = root.dkms_env(&["install", "patched/2.0", "-k", &k], &[("PATH", &path)]);
    assert_eq!(out.code, -1);
    // Killed with version 2.0's file, its install record and the link in place: the
    // journal is left, and its three changes are undone.
    assert!(dkms::transaction::pending(&root.dkms_tree()));
    root.dkms(&["status"]).is(
        &root,
        0,
        &format!("patched/1.0, {k}, x86_64: installed\npatched/2.0, {k}, x86_64: built\n"),
        "Warning: An earlier dkms was interrupted during an install or uninstall; its 3 change(s) were undone.\n",
    );
    assert_clean(&root, &k);
    // Besides the killer itself, only status's caches (dot-files) may have appeared.
    let after: Vec<String> = root
        .snapshot()
        .into_iter()
        .filter(|e| {
            !e.contains("fakebin")
                && !e.contains(".dkms-conf-cache.json")
                && !e.contains(".dkms-identical.json")
        })
        .collect();
    assert_eq!(
        after, before,
        "exactly the state before the interrupted install"
    );
    assert_eq!(installed(&root, &k), before_bytes);
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn killed_in_post_install_after_the_commit_keeps_the_new_module() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = setup("POST_INSTALL=\"kill-dkms.sh\"\n");
    let out = root.dkms(&["install", "patched/2.0", "-k", &k]);
    assert_eq!(out.code, -1);
    let status = assert_clean(&root, &k);
    assert_eq!(
        status,
        format!("patched/1.0, {k}, x86_64: built\npatched/2.0, {k}, x86_64: installed\n")
    );
    let built = std::fs::read(
        root.dkms_tree()
            .join(format!("patched/2.0/{k}/x86_64/module/fx_patched.ko")),
    )
    .unwrap();
    assert_eq!(installed(&root, &k), built);
}

/// The installed file of fx_patched on `k` (`.ko` or compressed), with its bytes.
fn installed_any(root: &Root, k: &str) -> Option<(String, Vec<u8>)> {
    let dir = root.install_tree().join(k).join("updates/dkms");
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.starts_with("fx_patched.ko")
            .then(|| (name, std::fs::read(e.path()).unwrap()))
    })
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_headers_6_12)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's 6.12 kernel headers (.ci/install-deps)"
)]
fn an_interrupted_autoinstall_leaves_each_module_old_or_new_and_the_next_one_finishes() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::Headers("6.12")]) {
        return;
    }
    let kernels = [common::headers("6.1"), common::headers("6.12")];
    // Killed at three points: installing 2.0 on the first kernel to get there (before its
    // files are placed / just after its commit), and in the first kernel's depmod, while
    // the other kernel's build or install may be anywhere.
    for (extra, killer_depmod) in [
        ("PRE_INSTALL=\"kill-dkms.sh\"\n", false),
        ("POST_INSTALL=\"kill-dkms.sh\"\n", false),
        ("", true),
    ] {
        let (root, first) = setup(extra);
        let second = &kernels[1];
        assert_eq!(first, kernels[0]);
        root.real_kernel(second);
        std::fs::write(root.install_tree().join(second).join("modules.dep"), "").unwrap();
        root.dkms(&["install", "patched/1.0", "-k", second]).ok();
        let conf = root.source_tree().join("patched-2.0/dkms.conf");
        let text = std::fs::read_to_string(&conf).unwrap() + "AUTOINSTALL=yes\n";
        std::fs::write(&conf, text).unwrap();
        root.dkms(&["add", "patched/2.0"]).ok();
        let old: Vec<(String, Vec<u8>)> = kernels
            .iter()
            .map(|k| installed_any(&root, k).expect("1.0 installed"))
            .collect();

        let mut env = Vec::new();
        let path;
        if killer_depmod {
            path = root.first_on_path("depmod", KILLER);
            env.push(("PATH", path.as_str()));
        }
        let out = root.dkms_env(&["autoinstall", "--all-kernels"], &env);
        assert_eq!(
            out.code, -1,
            "killed by SIGKILL ({extra:?}): {}",
            out.stdout
        );

        // The next dkms recovers; each kernel has exactly one patched version installed,
        // and its file is that version's: the old one's bytes or the new build's.
        let status = assert_recovered(&root);
        for (k, (old_name, old_bytes)) in kernels.iter().zip(&old) {
            let lines: Vec<&str> = status
                .lines()
                .filter(|l| l.contains(&format!(", {k}, ")) && l.ends_with(": installed"))
                .collect();
            assert_eq!(lines.len(), 1, "{status}");
            let (name, bytes) = installed_any(&root, k).expect("a working module");
            if lines[0].starts_with("patched/1.0,") {
                assert_eq!((&name, &bytes), (old_name, old_bytes));
            } else {
                let built = root
                    .dkms_tree()
                    .join(format!("patched/2.0/{k}/x86_64/module/{name}"));
                assert_eq!(bytes, std::fs::read(built).unwrap());
            }
        }

        // The next autoinstall (the killer disarmed) brings 2.0 everywhere.
        for dir in [
            root.source_tree().join("patched-2.0"),
            root.dkms_tree().join("patched/2.0/source"),
        ] {
            write_exec(&dir.join("kill-dkms.sh"), "#!/bin/sh\nexit 0\n");
        }
        let out = root.dkms(&["autoinstall", "--all-kernels"]);
        out.ok();
        let status = root.dkms(&["status"]).stdout;
        // What 1.0 still shows (built on a kernel or not) depends on where the kill
        // fell: 2.0's lines are looked for.
        for k in &kernels {
            assert!(
                status.contains(&format!("patched/2.0, {k}, x86_64: installed")),
                "{status}"
            );
        }
    }
}

/// Kills the dkms that started it, then goes on as an orphaned make would: after a
/// while it writes into its build directory.
const KILLER_THAT_LINGERS: &str = r#"#!/bin/sh
echo $$ > "$DKMS_FIXTURE_PIDFILE"
p=$$
while [ "$p" -gt 1 ]; do
    p=$(ps -o ppid= -p "$p" | tr -d ' ')
    if [ "$(ps -o comm= -p "$p")" = dkms ]; then kill -9 "$p"; break; fi
done
sleep 3
mkdir -p "$PWD/written-after-the-kill"
"#;

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn a_killed_dkms_takes_its_builds_with_it() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = setup("MAKE[0]=\"./linger.sh\"\n");
    write_exec(
        &root.source_tree().join("patched-2.0/linger.sh"),
        KILLER_THAT_LINGERS,
    );
    let pidfile = root.path().join("linger.pid");
    let out = root.dkms_env(
        &["install", "patched/2.0", "-k", &k],
        &[("DKMS_FIXTURE_PIDFILE", pidfile.to_str().unwrap())],
    );
    assert_eq!(out.code, -1, "killed by SIGKILL");
    // The recovery runs at once; the orphan, had it lived, would write 3 s later.
    assert_clean(&root, &k);
    std::thread::sleep(std::time::Duration::from_secs(4));
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert!(
        !Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "the build outlived the dkms that started it"
    );
    let leftovers: Vec<String> = root
        .snapshot()
        .into_iter()
        .filter(|e| e.contains("written-after-the-kill"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
