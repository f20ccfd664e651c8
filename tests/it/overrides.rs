//! `--kernelsourcedir`, `--config` and `--arch` reach every dkms.conf a command reads.
//!
//! The fixture's dkms.conf appends what it sees (`$kernel_source_dir`, `$kernel_config`,
//! `$arch`) to a log on every evaluation, so each test states every read the command
//! made: one read that used the defaults instead of the override shows as a line of its
//! own. One test per (override, command) pair.

use crate::common::{self, Needs, Root};

/// What the conf logs on every read.
const RECORDER: &str = "echo \"$kernel_source_dir|$kernel_config|$arch\" >> \"$dkms_tree/../../../seen.log\"\nAUTOINSTALL=yes\n";

/// A root with the 6.1 headers and the recording fixture; `setup` ran without overrides
/// and the log is emptied after it.
fn root(k: &str, setup: &[&[&str]]) -> Root {
    let root = Root::new();
    root.real_kernel(k).fixture("patched-1.0");
    let conf = root.source_tree().join("patched-1.0/dkms.conf");
    let text = std::fs::read_to_string(&conf).unwrap() + RECORDER;
    std::fs::write(&conf, text).unwrap();
    for args in setup {
        let mut args = args.to_vec();
        args.extend(["-k", k]);
        root.dkms(&args).ok();
    }
    let _ = std::fs::remove_file(root.path().join("seen.log"));
    root
}

/// Every line the conf logged.
fn seen(root: &Root) -> String {
    std::fs::read_to_string(root.path().join("seen.log")).unwrap_or_default()
}

/// The command each test runs (after its setup), by name.
fn command(name: &str) -> (&'static [&'static [&'static str]], Vec<&'static str>) {
    const ADDED: &[&[&str]] = &[&["add", "patched/1.0"]];
    const BUILT: &[&[&str]] = &[&["add", "patched/1.0"], &["build", "patched/1.0"]];
    match name {
        "add" => (&[], vec!["add", "patched/1.0"]),
        "build" => (ADDED, vec!["build", "patched/1.0"]),
        "install" => (ADDED, vec!["install", "patched/1.0"]),
        "autoinstall" => (ADDED, vec!["autoinstall"]),
        "status" => (BUILT, vec!["status"]),
        "mkbmdeb" => (BUILT, vec!["mkbmdeb", "patched/1.0"]),
        "mktarball" => (BUILT, vec!["mktarball", "patched/1.0"]),
        _ => unreachable!("{name}"),
    }
}

/// Run `name` with `--kernelsourcedir` pointing at a second path to the same headers:
/// every read sees it, and its config below it.
fn kernelsourcedir(name: &str) {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let k = common::headers("6.1");
    let (setup, args) = command(name);
    let root = root(&k, setup);
    let dir = root.path().join("elsewhere/headers");
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(format!("/usr/src/linux-headers-{k}"), &dir).unwrap();
    let mut args = args.clone();
    args.extend(["-k", &k, "--kernelsourcedir", dir.to_str().unwrap()]);
    let out = root.dkms(&args);
    assert_eq!(out.code, 0, "{out:?}");
    let line = format!(
        "{d}|{d}/include/config/auto.conf|x86_64\n",
        d = dir.display()
    );
    let log = seen(&root);
    assert!(!log.is_empty(), "{name} read no dkms.conf");
    assert_eq!(log, line.repeat(log.lines().count()), "{name}");
}

/// Run `name` with `--config FILE`: every read sees FILE.
fn config(name: &str) {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let k = common::headers("6.1");
    let (setup, args) = command(name);
    let root = root(&k, setup);
    let file = root.path().join("my.config");
    std::fs::copy(format!("/usr/src/linux-headers-{k}/.config"), &file).unwrap();
    let mut args = args.clone();
    args.extend(["-k", &k, "--config", file.to_str().unwrap()]);
    let out = root.dkms(&args);
    assert_eq!(out.code, 0, "{out:?}");
    let line = format!(
        "{}|{}|x86_64\n",
        root.install_tree().join(&k).join("build").display(),
        file.display()
    );
    let log = seen(&root);
    assert!(!log.is_empty(), "{name} read no dkms.conf");
    assert_eq!(log, line.repeat(log.lines().count()), "{name}");
}

/// Run `name` for `K/ARCH` with an architecture other than the machine's: every read
/// sees it (whatever the build then makes of it).
fn arch(name: &str) {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let k = common::headers("6.1");
    let (setup, args) = command(name);
    let root = root(&k, setup);
    let mut args = args.clone();
    args.extend(["-k", &k, "-a", "i686"]);
    root.dkms(&args);
    let line = format!(
        "{b}|{b}/include/config/auto.conf|i686\n",
        b = root.install_tree().join(&k).join("build").display()
    );
    let log = seen(&root);
    assert!(!log.is_empty(), "{name} read no dkms.conf");
    assert_eq!(log, line.repeat(log.lines().count()), "{name}");
}

macro_rules! per_command {
    ($override:ident: $($name:ident),*) => {
        mod $override {
            $(
                #[test]
                #[cfg_attr(
                    not(dkms_host_headers_6_1),
                    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
                )]
                fn $name() {
                    super::$override(stringify!($name));
                }
            )*
        }
    };
}

per_command!(kernelsourcedir: add, build, install, autoinstall, status, mkbmdeb, mktarball);
per_command!(config: add, build, install, autoinstall, status, mkbmdeb, mktarball);
// status -a ARCH is a filter of what is built, not a kernel to read the conf for.
per_command!(arch: add, build, install, autoinstall, mkbmdeb, mktarball);
