//! A scratch root for hermetic tests, built fluently:
//!
//! ```ignore
//! let root = Root::new();
//! root.fake_kernel("6.1.0-1-amd64", "").source("foo", "1.0", FOO_CONF).added("foo", "1.0");
//! let out = root.dkms(&["status"]);
//! ```
//!
//! Our binary runs with `DKMS_SYSROOT` pointing at the root (so every system path is
//! inside it); Debian's bash dkms runs with `--dkmstree/--sourcetree/--installtree` and
//! its signing key confined to the root. Nothing touches the real `/var/lib/dkms` or
//! `/lib/modules`.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

pub mod fuzz;

/// The newest kernel whose headers `.ci/install-deps` installed, by flavour: "6.1"
/// (Debian 12's 6.1 amd64), "6.1-cloud", "6.12" (bookworm's 6.12 amd64).
pub fn headers(flavour: &str) -> String {
    installed_headers(flavour)
        .pop()
        .unwrap_or_else(|| panic!("{flavour} kernel headers (installed by .ci/install-deps)"))
}

/// Every kernel of `flavour` (see [`headers`]) with headers installed, oldest first.
pub fn installed_headers(flavour: &str) -> Vec<String> {
    let pred = |k: &str| match flavour {
        "6.1" => {
            k.starts_with("6.1.")
                && k.ends_with("-amd64")
                && !k.contains("cloud")
                && !k.contains("-rt")
        }
        "6.1-cloud" => k.starts_with("6.1.") && k.ends_with("-cloud-amd64"),
        "6.12" => {
            k.starts_with("6.12.")
                && k.ends_with("+deb12-amd64")
                && !k.contains("cloud")
                && !k.contains("-rt")
        }
        other => panic!("unknown kernel flavour {other}"),
    };
    let mut found: Vec<String> = std::fs::read_dir("/usr/src")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("linux-headers-")
                .map(str::to_string)
        })
        .filter(|k| {
            pred(k)
                && Path::new("/usr/src")
                    .join(format!("linux-headers-{k}/include"))
                    .is_dir()
        })
        .collect();
    found.sort();
    found
}

/// A 3.4.3 status text in Debian's 3.0.10 suffix wording (reference §0, item 3), to
/// compare our output with Debian's bash dkms.
pub fn to_3_0_10_wording(text: &str) -> String {
    text.replace("(Original modules exist)", "(original_module exists)")
        .replace(
            "(Built modules are missing in the kernel modules folder)",
            "(WARNING! Missing some built modules!)",
        )
        .replace(
            "(Differences between built and installed modules)",
            "(WARNING! Diff between built and installed module!)",
        )
}

pub struct Root {
    dir: TempDir,
}

#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The whole result, exactly: exit code, stdout and stderr (scripts parse our output,
    /// so an extra or garbled line is a failure). `$ROOT` in the expected texts stands
    /// for `root`'s path.
    pub fn is(&self, root: &Root, code: i32, stdout: &str, stderr: &str) {
        let fill = |t: &str| t.replace("$ROOT", &root.path().display().to_string());
        assert_eq!(
            (self.code, self.stdout.as_str(), self.stderr.as_str()),
            (code, fill(stdout).as_str(), fill(stderr).as_str())
        );
    }

    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// What an install that signs prints about its key (`$ROOT` for the scratch root).
pub const SIGNING: &str = "Sign command: built-in (the kernel's sign-file format, in-process)\nSigning key: $ROOT/var/lib/dkms/mok.key\nPublic certificate (MOK): $ROOT/var/lib/dkms/mok.pub\n";

/// What the first install that signs prints when it makes the key.
pub const NEW_KEY: &str = "Certificate or key are missing, generating self signed certificate for MOK...\nA new module signing key was created. For a Secure Boot machine to load modules signed with it, enroll its certificate:\n  mokutil --import $ROOT/var/lib/dkms/mok.pub\nthen reboot and confirm the enrollment in MokManager (the blue screen shown at boot).\n";

pub const DEBIAN_OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";

/// A minimal valid dkms.conf for a one-module package.
pub fn simple_conf(m: &str, v: &str) -> String {
    format!("PACKAGE_NAME=\"{m}\"\nPACKAGE_VERSION=\"{v}\"\nBUILT_MODULE_NAME[0]=\"{m}\"\nDEST_MODULE_LOCATION[0]=\"/updates/dkms\"\nAUTOINSTALL=yes\n")
}

impl Root {
    pub fn new() -> Root {
        let dir = tempfile::Builder::new()
            .prefix("dkms-root")
            .tempdir()
            .unwrap();
        for d in ["etc/dkms", "var/lib/dkms", "usr/src", "lib/modules"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("etc/os-release"), DEBIAN_OS_RELEASE).unwrap();
        Root { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn dkms_tree(&self) -> PathBuf {
        self.path().join("var/lib/dkms")
    }

    pub fn source_tree(&self) -> PathBuf {
        self.path().join("usr/src")
    }

    pub fn install_tree(&self) -> PathBuf {
        self.path().join("lib/modules")
    }

    /// Settings as our binary would load them for this root.
    pub fn settings(&self) -> dkms::framework::Settings {
        let req = dkms::cli::Request {
            dkms_tree: Some(self.dkms_tree()),
            source_tree: Some(self.source_tree()),
            install_tree: Some(self.install_tree()),
            framework_conf: Some(self.path().join("etc/dkms/framework.conf")),
            ..Default::default()
        };
        let mut s = dkms::framework::Settings::load(&req).unwrap();
        s.sysroot = self.path().to_path_buf();
        s
    }

    pub fn write(&self, rel: &str, text: &str) -> &Self {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    /// A kernel with a headers-like build directory (`include/` and a `.config`).
    pub fn fake_kernel(&self, k: &str, config: &str) -> &Self {
        let build = self.install_tree().join(k).join("build");
        std::fs::create_dir_all(build.join("include")).unwrap();
        std::fs::write(build.join(".config"), config).unwrap();
        self
    }

    /// A kernel whose build directory is real installed headers.
    pub fn real_kernel(&self, k: &str) -> &Self {
        let dir = self.install_tree().join(k);
        std::fs::create_dir_all(&dir).unwrap();
        symlink(format!("/usr/src/linux-headers-{k}"), dir.join("build")).unwrap();
        self
    }

    pub fn source(&self, m: &str, v: &str, conf: &str) -> &Self {
        self.write(&format!("usr/src/{m}-{v}/dkms.conf"), conf)
    }

    /// `<m>/<v>` added as the original does it (absolute source link, empty build/).
    pub fn added(&self, m: &str, v: &str) -> &Self {
        let dir = self.dkms_tree().join(m).join(v);
        std::fs::create_dir_all(dir.join("build")).unwrap();
        symlink(
            self.source_tree().join(format!("{m}-{v}")),
            dir.join("source"),
        )
        .unwrap();
        self
    }

    /// Built for k/a with the given module files (`name.ko` or with a suffix).
    pub fn built(&self, m: &str, v: &str, k: &str, a: &str, files: &[&str]) -> &Self {
        let dir = self.dkms_tree().join(m).join(v).join(k).join(a);
        std::fs::create_dir_all(dir.join("module")).unwrap();
        std::fs::create_dir_all(dir.join("log")).unwrap();
        std::fs::write(dir.join("log/make.log"), "log\n").unwrap();
        for f in files {
            std::fs::write(
                dir.join("module").join(f),
                format!("ELF of {m} {v} {k} {f}"),
            )
            .unwrap();
        }
        self
    }

    /// Installed: relative `kernel-<k>-<a>` link and copies under updates/dkms.
    pub fn installed(&self, m: &str, v: &str, k: &str, a: &str) -> &Self {
        let link = self.dkms_tree().join(m).join(format!("kernel-{k}-{a}"));
        let _ = std::fs::remove_file(&link);
        symlink(format!("{v}/{k}/{a}"), &link).unwrap();
        let module_dir = self
            .dkms_tree()
            .join(m)
            .join(v)
            .join(k)
            .join(a)
            .join("module");
        let dest = self.install_tree().join(k).join("updates/dkms");
        std::fs::create_dir_all(&dest).unwrap();
        for e in std::fs::read_dir(module_dir).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dest.join(e.file_name())).unwrap();
        }
        self
    }

    pub fn original(&self, m: &str, k: &str, a: &str) -> &Self {
        let dir = self
            .dkms_tree()
            .join(m)
            .join("original_module")
            .join(k)
            .join(a);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{m}.ko")), "original").unwrap();
        std::fs::write(
            dir.join(format!("{m}.ko.origin")),
            format!("/lib/modules/{k}/kernel/{m}.ko\n"),
        )
        .unwrap();
        self
    }

    /// Copy `tests/fixtures/modules/<dir>` to `usr/src/<dir>`.
    pub fn fixture(&self, dir: &str) -> &Self {
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/modules")
            .join(dir);
        copy_dir(&from, &self.source_tree().join(dir));
        self
    }

    /// Run our dkms inside the root.
    pub fn dkms(&self, args: &[&str]) -> Output {
        self.dkms_env(args, &[])
    }

    /// Run our dkms inside the root with extra environment variables.
    pub fn dkms_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.dkms_os(args, env)
    }

    /// [`Root::dkms_env`] with arguments that need not be UTF-8.
    pub fn dkms_os<S: AsRef<std::ffi::OsStr>>(&self, args: &[S], env: &[(&str, &str)]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_dkms"))
            .args(args)
            .env("DKMS_SYSROOT", self.path())
            .env("DKMS_CONF_TIMEOUT", "5")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        Output::from(out)
    }

    /// Start our dkms inside the root without waiting for it; stdout and stderr piped.
    pub fn spawn_dkms(&self, args: &[&str]) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_dkms"))
            .args(args)
            .env("DKMS_SYSROOT", self.path())
            .env("DKMS_CONF_TIMEOUT", "5")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Run Debian's bash dkms against the same trees.
    pub fn bash_dkms(&self, args: &[&str]) -> Output {
        let out = Command::new("/usr/sbin/dkms")
            .args(args)
            .arg("--dkmstree")
            .arg(self.dkms_tree())
            .arg("--sourcetree")
            .arg(self.source_tree())
            .arg("--installtree")
            .arg(self.install_tree())
            .env("mok_signing_key", self.path().join("mok.key"))
            .env("mok_certificate", self.path().join("mok.pub"))
            .output()
            .unwrap();
        Output::from(out)
    }

    /// Puts an executable `name` with `script` in `<root>/fakebin` and returns a PATH
    /// that finds it first (a fake or recording `depmod`, a killer...).
    pub fn first_on_path(&self, name: &str, script: &str) -> String {
        let bin = self.path().join("fakebin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join(name), script).unwrap();
        std::fs::set_permissions(
            bin.join(name),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
    }

    /// `usr/src/<m>-<to>`: a copy of `<m>-<from>` whose dkms.conf and MODULE_VERSION
    /// (in the sources and in its patches) say `to`, so that it installs
    /// over `from` as a newer version.
    pub fn next_version(&self, m: &str, from: &str, to: &str) -> &Self {
        let (old, new) = (
            self.source_tree().join(format!("{m}-{from}")),
            self.source_tree().join(format!("{m}-{to}")),
        );
        copy_dir(&old, &new);
        let conf = std::fs::read_to_string(new.join("dkms.conf")).unwrap();
        std::fs::write(new.join("dkms.conf"), conf.replace(from, to)).unwrap();
        let mut files = vec![new.clone()];
        while let Some(p) = files.pop() {
            if p.is_dir() {
                files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            let versioned: Vec<String> = text
                .lines()
                .map(|l| {
                    let code = l
                        .trim_start_matches(['+', '-'])
                        .starts_with("MODULE_VERSION");
                    if code {
                        l.replace(from, to)
                    } else {
                        l.to_string()
                    }
                })
                .collect();
            std::fs::write(&p, versioned.join("\n") + "\n").unwrap();
        }
        self
    }

    /// Every path under the root with its kind, for "nothing changed" assertions.
    pub fn snapshot(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(self.path(), self.path(), &mut out);
        out.sort();
        out
    }
}

/// `cp -a` for fixtures (keeps the executable bits of hook scripts).
pub fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(base).unwrap().display().to_string();
        if rel.ends_with("var/lib/dkms/.lock") {
            continue; // our lock file, not state
        }
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.file_type().is_symlink() {
            out.push(format!(
                "L {rel} -> {}",
                std::fs::read_link(&p).unwrap().display()
            ));
        } else if meta.is_dir() {
            out.push(format!("D {rel}"));
            walk(base, &p, out);
        } else {
            out.push(format!(
                "F {rel} {}",
                std::fs::read_to_string(&p).unwrap_or_default().len()
            ));
        }
    }
}

impl From<std::process::Output> for Output {
    fn from(o: std::process::Output) -> Output {
        Output {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// What a test needs of the machine beyond a Rust toolchain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Needs {
    /// Debian kernel headers of a flavour (see [`headers`]).
    Headers(&'static str),
    /// Debian's bash dkms as `/usr/sbin/dkms`, for side-by-side checks.
    DebianDkms,
    /// An installed kernel image (its `/lib/modules/<k>/kernel` tree).
    KernelImage,
    /// The real `*-dkms` packages `.ci/install-deps` downloads.
    TestPackages,
    /// qemu, OVMF, busybox, virt-fw-vars, sbattach and mokutil for the Secure Boot proofs.
    SecureBootProof,
    /// rpm and rpmbuild (Debian's rpm package).
    Rpm,
    /// SoftHSM2, the OpenSSL pkcs11 provider and Debian's 6.1 kbuild sign-file.
    Pkcs11Token,
    /// The shells whose completions are tested.
    Zsh,
    Fish,
}

fn has(need: Needs) -> bool {
    let exists = |p: &str| Path::new(p).exists();
    match need {
        Needs::Headers(flavour) => !installed_headers(flavour).is_empty(),
        Needs::DebianDkms => {
            std::fs::read_to_string("/usr/sbin/dkms").is_ok_and(|s| s.starts_with("#!/bin/bash"))
        }
        Needs::KernelImage => std::fs::read_dir("/lib/modules")
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.path().join("kernel").is_dir()),
        Needs::TestPackages => {
            std::fs::read_dir("/var/cache/dkms-rs-test/debs").is_ok_and(|mut d| d.next().is_some())
        }
        Needs::Rpm => exists("/usr/bin/rpmbuild") && exists("/usr/bin/rpm"),
        Needs::Pkcs11Token => {
            exists("/usr/bin/softhsm2-util")
                && exists("/usr/lib/x86_64-linux-gnu/ossl-modules/pkcs11.so")
                && exists("/usr/lib/linux-kbuild-6.1/scripts/sign-file")
        }
        Needs::Zsh => exists("/usr/bin/zsh"),
        Needs::Fish => exists("/usr/bin/fish"),
        Needs::SecureBootProof => {
            exists("/usr/bin/qemu-system-x86_64")
                && exists("/usr/share/OVMF")
                && exists("/bin/busybox")
                && exists("/usr/bin/virt-fw-vars")
                && exists("/usr/bin/sbattach")
                && exists("/usr/bin/mokutil")
        }
    }
}

/// Whether the machine has what a test needs. A test that needs the host also carries
/// `#[cfg_attr(not(dkms_host_...), ignore = "needs ...")]`: `build.rs` sets those flags
/// from what the machine has, so on a machine without a piece the test is reported as
/// skipped (ignored), not passed. With `DKMS_TESTS_REQUIRE_HOST` set (CI) every flag is
/// on and this check fails the test when a piece is missing; without it, this only
/// guards a piece removed since the build (skipped with a message).
pub fn host_ready(needs: &[Needs]) -> bool {
    let missing: Vec<Needs> = needs.iter().copied().filter(|n| !has(*n)).collect();
    if missing.is_empty() {
        return true;
    }
    let test = std::thread::current().name().unwrap_or("?").to_string();
    if std::env::var_os("DKMS_TESTS_REQUIRE_HOST").is_some() {
        panic!("{test} needs {missing:?} (installed by .ci/install-deps)");
    }
    eprintln!("skipped {test}: this machine lacks {missing:?} (see .ci/install-deps)");
    false
}

/// The first line a started dkms prints on stderr (it blocks until there is one).
pub fn first_stderr_line(
    child: &mut std::process::Child,
) -> (String, std::io::BufReader<std::process::ChildStderr>) {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    (line, reader)
}

/// The whole output of a child whose stderr was partly read already.
pub fn finish(
    child: std::process::Child,
    first: String,
    mut rest: std::io::BufReader<std::process::ChildStderr>,
) -> Output {
    use std::io::Read;
    let mut stderr = first;
    rest.read_to_string(&mut stderr).unwrap();
    let out = child.wait_with_output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    }
}

/// Run dkms with `args` while this test holds the dkms lock: it must first say it waits
/// for this process; `while_waiting` checks that it did nothing yet; then the lock is
/// released and its whole result returned.
pub fn run_while_locked(root: &Root, args: &[&str], while_waiting: impl FnOnce()) -> Output {
    let held = dkms::state::lock::acquire(&root.dkms_tree(), |_| {}).unwrap();
    let mut child = root.spawn_dkms(args);
    let (waiting, rest) = first_stderr_line(&mut child);
    assert_eq!(
        waiting,
        format!(
            "Waiting for the dkms lock held by process {} ({})...\n",
            std::process::id(),
            root.dkms_tree().join(".lock").display()
        )
    );
    while_waiting();
    drop(held);
    finish(child, waiting, rest)
}

/// A scratch root with Debian's 6.1 headers as its kernel and `fixtures` in its source
/// tree.
pub fn root_with(fixtures: &[&str]) -> (Root, String) {
    let root = Root::new();
    let k = headers("6.1");
    root.real_kernel(&k);
    for f in fixtures {
        root.fixture(f);
    }
    (root, k)
}

/// Where `name.ko` is installed for `k` on Debian (`updates/dkms`).
pub fn installed_file(root: &Root, k: &str, name: &str) -> PathBuf {
    root.install_tree()
        .join(k)
        .join("updates/dkms")
        .join(format!("{name}.ko"))
}
