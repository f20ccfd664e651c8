//! Framework configuration: `/etc/dkms/framework.conf`, then
//! `/etc/dkms/framework.conf.d/*.conf`, then the command line, into typed [`Settings`].
//!
//! Like the original, each file is *sourced by bash* in a subshell and only whitelisted
//! variables come back; a function or any other variable defined there has no effect.
//! Every path the tool touches derives from these settings (and from `DKMS_SYSROOT`,
//! our addition, which prefixes the fixed system paths), so the whole tool can run in a
//! scratch root.
//!
//! Fast path: Debian ships a framework.conf made only of comments; when every file is
//! blank lines and comments, sourcing it cannot set anything and bash is not started.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::bash;
use crate::cli::Request;

/// Variables the original re-reads from framework files (3.4.3 names).
pub const FRAMEWORK_VARIABLES: &[&str] = &[
    "source_tree",
    "dkms_tree",
    "install_tree",
    "tmp_location",
    "verbose",
    "symlink_modules",
    "autoinstall_all_kernels",
    "modprobe_on_install",
    "parallel_jobs",
    "compress_gzip_opts",
    "compress_xz_opts",
    "compress_zstd_opts",
    "post_transaction",
    "build_environment",
    "try_sign_modules",
    "sign_file",
    "mok_signing_key",
    "mok_certificate",
    // Ours: what a package manager's preflight hook does when modules would be lost.
    "preflight",
    // Ours: dkms modules the initramfs must hold (as NEEDED_AT_BOOT in their dkms.conf).
    "boot_modules",
];

/// Variables the original may inherit from the environment when no file sets them.
const FROM_ENVIRONMENT: &[&str] = &[
    "autoinstall_all_kernels",
    "modprobe_on_install",
    "parallel_jobs",
    "post_transaction",
    "build_environment",
    "try_sign_modules",
    "sign_file",
    "mok_signing_key",
    "mok_certificate",
];

#[derive(Debug, Error)]
pub enum FrameworkError {
    #[error("{file}: {source}")]
    Bash {
        file: PathBuf,
        #[source]
        source: bash::BashError,
    },
    #[error("{file}: line {line}: {message}")]
    Syntax {
        file: PathBuf,
        line: u32,
        message: String,
    },
    #[error(
        "System is missing os-release file: neither etc/os-release nor usr/lib/os-release exists under {0}, so dkms cannot tell the distribution (which decides where modules are installed).\nRestore it from the distribution's package (Debian: apt-get install --reinstall base-files)."
    )]
    NoOsRelease(PathBuf),
}

impl FrameworkError {
    pub fn exit_code(&self) -> i32 {
        match self {
            FrameworkError::NoOsRelease(_) => crate::exit::NO_OS_RELEASE,
            _ => crate::exit::FAILURE,
        }
    }
}

/// The distribution, as the original derives it from os-release.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    /// `ID` for ubuntu, else the `ID_LIKE` string, else `ID`.
    pub running: String,
}

/// Everything the tool's behaviour depends on besides the request itself.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Prefix of the fixed system paths (`/` on a real system).
    pub sysroot: PathBuf,
    pub dkms_tree: PathBuf,
    pub source_tree: PathBuf,
    pub install_tree: PathBuf,
    pub tmp_location: PathBuf,
    /// `/etc/dkms`: override dkms.conf files, patches, scripts, `no-autoinstall`.
    pub config_dir: PathBuf,
    /// framework.conf itself (its `.d` directory is beside it).
    pub framework_file: PathBuf,
    pub verbose: bool,
    pub symlink_modules: bool,
    pub modprobe_on_install: bool,
    pub autoinstall_all_kernels: bool,
    /// `None` means unlimited (`-j0` / `parallel_jobs=0`).
    pub parallel_jobs: Option<u32>,
    pub compress_gzip_opts: String,
    pub compress_xz_opts: String,
    pub compress_zstd_opts: String,
    pub post_transaction: String,
    /// `preflight=warn` (default) or `refuse`: a package-manager hook's answer to a
    /// kernel whose modules would be lost.
    pub preflight: String,
    /// `boot_modules="zfs nvidia"`: dkms modules (by dkms name) the initramfs must hold.
    pub boot_modules: Vec<String>,
    pub build_environment: String,
    pub try_sign_modules: String,
    pub sign_file: Option<String>,
    pub mok_signing_key: Option<String>,
    pub mok_certificate: Option<String>,
    /// `uname -r` and `uname -m` of the running system.
    pub current_kernel: String,
    pub machine: String,
    /// The distribution from os-release, read on first use.
    os_release: std::sync::OnceLock<Option<Distribution>>,
}

impl Settings {
    /// Load settings for a request: defaults, environment, framework files, command line.
    pub fn load(req: &Request) -> Result<Settings, FrameworkError> {
        // Relative roots and trees are made absolute first: the `source` link of an added
        // module is written with the source tree's path, and a relative one would dangle.
        let sysroot = absolute(
            &std::env::var_os("DKMS_SYSROOT")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/".into()),
        );
        let framework_file = req
            .framework_conf
            .clone()
            .unwrap_or_else(|| sysroot.join("etc/dkms/framework.conf"));
        let mut values = defaults(&sysroot);
        for name in FROM_ENVIRONMENT {
            if let Ok(v) = std::env::var(name) {
                values.insert(name.to_string(), v);
            }
        }
        let files = framework_files(&framework_file);
        if files.iter().any(|f| !is_inert(f)) {
            values = source_files(&files, values)?;
        }
        let mut settings = Settings::from_values(sysroot, &framework_file, &values);
        settings.apply_request(req);
        for tree in [
            &mut settings.dkms_tree,
            &mut settings.source_tree,
            &mut settings.install_tree,
        ] {
            *tree = absolute(tree);
        }
        Ok(settings)
    }

    fn from_values(
        sysroot: PathBuf,
        framework_file: &Path,
        v: &BTreeMap<String, String>,
    ) -> Settings {
        let get = |k: &str| v.get(k).cloned().unwrap_or_default();
        let opt = |k: &str| v.get(k).filter(|s| !s.is_empty()).cloned();
        let uname = rustix::system::uname();
        let config_dir = framework_file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| sysroot.join("etc/dkms"));
        Settings {
            dkms_tree: get("dkms_tree").into(),
            source_tree: get("source_tree").into(),
            install_tree: get("install_tree").into(),
            tmp_location: get("tmp_location").into(),
            config_dir,
            framework_file: framework_file.to_path_buf(),
            verbose: !get("verbose").is_empty(),
            symlink_modules: !get("symlink_modules").is_empty(),
            modprobe_on_install: !get("modprobe_on_install").is_empty(),
            autoinstall_all_kernels: !get("autoinstall_all_kernels").is_empty(),
            parallel_jobs: parse_jobs(&get("parallel_jobs")),
            compress_gzip_opts: get("compress_gzip_opts"),
            compress_xz_opts: get("compress_xz_opts"),
            compress_zstd_opts: get("compress_zstd_opts"),
            post_transaction: get("post_transaction"),
            preflight: get("preflight"),
            boot_modules: get("boot_modules")
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            build_environment: get("build_environment"),
            try_sign_modules: opt("try_sign_modules").unwrap_or_else(|| "not_in_chroot".into()),
            sign_file: opt("sign_file"),
            mok_signing_key: opt("mok_signing_key"),
            mok_certificate: opt("mok_certificate"),
            current_kernel: uname.release().to_string_lossy().into_owned(),
            machine: uname.machine().to_string_lossy().into_owned(),
            os_release: std::sync::OnceLock::new(),
            sysroot,
        }
    }

    /// Command-line options win over the files.
    fn apply_request(&mut self, req: &Request) {
        if let Some(d) = &req.dkms_tree {
            self.dkms_tree = d.clone();
        }
        if let Some(d) = &req.source_tree {
            self.source_tree = d.clone();
        }
        if let Some(d) = &req.install_tree {
            self.install_tree = d.clone();
        }
        if req.verbose {
            self.verbose = true;
        }
        if req.symlink_modules {
            self.symlink_modules = true;
        }
        if req.modprobe_on_install {
            self.modprobe_on_install = true;
        }
        if let Some(j) = &req.jobs {
            self.parallel_jobs = parse_jobs(j);
        }
    }

    /// The distribution, read from `<sysroot>/etc/os-release` or `usr/lib/os-release`.
    /// Read once per process (status evaluates many confs, each needing it).
    pub fn distribution(&self) -> Result<Distribution, FrameworkError> {
        let found = self.os_release.get_or_init(|| {
            ["etc/os-release", "usr/lib/os-release"]
                .iter()
                .find_map(|c| std::fs::read_to_string(self.sysroot.join(c)).ok())
                .map(|text| Distribution::from_os_release(&text))
        });
        found
            .clone()
            .ok_or_else(|| FrameworkError::NoOsRelease(self.sysroot.clone()))
    }

    /// A variable the original reads lazily, with `$kernelver` in scope when the files
    /// are sourced (`post_transaction`, the signing variables): framework.conf may say
    /// `post_transaction="update-initramfs -u -k $kernelver"`.
    pub fn lazy_value(&self, name: &str, kernel: &str) -> String {
        let current = |s: &Settings| match name {
            "post_transaction" => s.post_transaction.clone(),
            "sign_file" => s.sign_file.clone().unwrap_or_default(),
            "mok_signing_key" => s.mok_signing_key.clone().unwrap_or_default(),
            "mok_certificate" => s.mok_certificate.clone().unwrap_or_default(),
            _ => String::new(),
        };
        let files = framework_files(&self.framework_file);
        if files.iter().all(|f| is_inert(f)) {
            return current(self);
        }
        let mut start = BTreeMap::new();
        start.insert("kernelver".to_string(), kernel.to_string());
        start.insert(name.to_string(), current(self));
        for (k, v) in [
            ("dkms_tree", &self.dkms_tree),
            ("source_tree", &self.source_tree),
            ("install_tree", &self.install_tree),
        ] {
            start.insert(k.to_string(), v.to_string_lossy().into_owned());
        }
        match source_files(&files, start) {
            Ok(values) => values.get(name).cloned().unwrap_or_default(),
            Err(_) => current(self),
        }
    }

    /// `ADDON_MODULES_DIR` from the environment overrides every distribution rule.
    pub fn addon_modules_dir(&self) -> Option<String> {
        std::env::var("ADDON_MODULES_DIR")
            .ok()
            .filter(|s| !s.is_empty())
    }

    /// The directory below `/lib/modules/<k>` where this system puts every dkms module
    /// whatever its `DEST_MODULE_LOCATION` says (`ADDON_MODULES_DIR`, else the
    /// distribution's rule, e.g. `/updates/dkms` on Debian), if it has one. The one
    /// answer to "where do modules install" for install, status and `owner`/`verify`.
    pub fn module_dir_override(&self) -> Option<String> {
        self.addon_modules_dir()
            .map(|d| format!("/{d}"))
            .or_else(|| {
                self.distribution()
                    .ok()
                    .and_then(|d| d.module_dir_override().map(str::to_string))
            })
    }
}

impl Distribution {
    pub fn from_os_release(text: &str) -> Distribution {
        let fields = parse_os_release(text);
        let id = fields.get("ID").cloned().unwrap_or_default();
        let like = fields.get("ID_LIKE").cloned().unwrap_or_default();
        let running = if id == "ubuntu" || like.is_empty() {
            id
        } else {
            like
        };
        Distribution { running }
    }

    /// The distribution's weak-modules tool, as the original picks it: RHEL's
    /// `/usr/sbin/weak-modules --no-initramfs --add-modules` / `--remove-modules`, SUSE's
    /// `weak-modules2 --add-kernel-modules <k>` / `--remove-kernel-modules <k>`; the
    /// installed modules' paths go to its standard input.
    pub fn weak_modules(&self, kernel: &str) -> Option<(&'static str, Vec<String>, Vec<String>)> {
        let d = self.running.as_str();
        if d.starts_with("rhel") {
            let base = ["--no-initramfs"];
            let with = |op: &str| {
                base.iter()
                    .map(|s| s.to_string())
                    .chain([op.to_string()])
                    .collect()
            };
            return Some((
                "usr/sbin/weak-modules",
                with("--add-modules"),
                with("--remove-modules"),
            ));
        }
        if ["sles", "suse", "opensuse"]
            .iter()
            .any(|p| d.starts_with(p))
        {
            let with = |op: &str| vec![op.to_string(), kernel.to_string()];
            return Some((
                "usr/lib/module-init-tools/weak-modules2",
                with("--add-kernel-modules"),
                with("--remove-kernel-modules"),
            ));
        }
        None
    }

    /// The distribution's install directory for modules (reference §4), or `None` when
    /// the module's own `DEST_MODULE_LOCATION` is used.
    pub fn module_dir_override(&self) -> Option<&'static str> {
        let d = self.running.as_str();
        if ["fedora", "rhel", "ovm"].iter().any(|p| d.starts_with(p)) {
            Some("/extra")
        } else if ["sles", "suse", "opensuse"]
            .iter()
            .any(|p| d.starts_with(p))
        {
            Some("/updates")
        } else if ["debian", "ubuntu", "arch"]
            .iter()
            .any(|p| d.starts_with(p))
        {
            Some("/updates/dkms")
        } else {
            None
        }
    }
}

/// os-release is a shell-compatible `KEY=value` list with simple quoting (os-release(5)).
fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let value = if raw.len() >= 2
            && ((raw.starts_with('"') && raw.ends_with('"'))
                || (raw.starts_with('\'') && raw.ends_with('\'')))
        {
            raw[1..raw.len() - 1]
                .replace("\\\"", "\"")
                .replace("\\\\", "\\")
                .replace("\\$", "$")
                .replace("\\`", "`")
        } else {
            raw.to_string()
        };
        out.insert(key.to_string(), value);
    }
    out
}

/// `path` from the current directory when it is relative (an empty path stays empty).
fn absolute(path: &Path) -> PathBuf {
    if path.as_os_str().is_empty() {
        return PathBuf::new();
    }
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn defaults(sysroot: &Path) -> BTreeMap<String, String> {
    let tmp = std::env::var("TMPDIR")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/tmp".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let s = |p: &str| sysroot.join(p).to_string_lossy().into_owned();
    [
        ("source_tree", s("usr/src")),
        ("dkms_tree", s("var/lib/dkms")),
        ("install_tree", s("lib/modules")),
        ("tmp_location", tmp),
        ("verbose", String::new()),
        ("symlink_modules", String::new()),
        ("parallel_jobs", cores.to_string()),
        ("compress_gzip_opts", String::new()),
        ("compress_xz_opts", "--check=crc32 --lzma2=dict=1MiB".into()),
        ("compress_zstd_opts", "-q --rm -T0".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn parse_jobs(text: &str) -> Option<u32> {
    match text.trim().parse::<u32>() {
        Ok(0) => None,
        Ok(n) => Some(n),
        Err(_) => Some(
            std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
        ),
    }
}

/// `framework.conf` then `framework.conf.d/*.conf` in glob (byte) order.
fn framework_files(main: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if main.exists() {
        files.push(main.to_path_buf());
    }
    let dir = PathBuf::from(format!("{}.d", main.display()));
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut extra: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "conf") && !is_hidden(p))
            .collect();
        extra.sort();
        files.extend(extra);
    }
    files
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// A file of only blank lines and comments cannot change any variable.
fn is_inert(path: &Path) -> bool {
    match std::fs::read_to_string(path) {
        Ok(text) => text.lines().all(|l| {
            let t = l.trim_start_matches([' ', '\t']);
            t.is_empty() || t.starts_with('#')
        }),
        Err(_) => false,
    }
}

/// Source each file in its own subshell with the original's echo-back protocol and
/// return the final whitelisted values.
fn source_files(
    files: &[PathBuf],
    start: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, FrameworkError> {
    let mut script = String::from("shopt -s extglob\n");
    for (k, v) in &start {
        script.push_str(&format!("{k}={}\n", bash::quote(v)));
    }
    script.push_str(&format!(
        "__dkms_vars={}\n",
        bash::quote(&FRAMEWORK_VARIABLES.join(" "))
    ));
    script.push_str(crate::sourcing::ECHO_BACK_FUNCTION);
    for f in files {
        script.push_str(&format!(
            "__dkms_out=$(. {f} >/dev/null; __dkms_echo_back)\neval \"$__dkms_out\"\n",
            f = bash::quote(&f.to_string_lossy())
        ));
    }
    script.push_str(crate::sourcing::EMIT_FUNCTION);
    script.push_str("__dkms_emit\n");
    let first = files.first().cloned().unwrap_or_default();
    let out =
        bash::run_script(&script, &[], bash::timeout()).map_err(|source| FrameworkError::Bash {
            file: first,
            source,
        })?;
    if let Some((file, line, message)) = crate::sourcing::first_syntax_error(&out.stderr, files) {
        return Err(FrameworkError::Syntax {
            file,
            line,
            message,
        });
    }
    let mut values = start;
    for (name, _index, value) in crate::sourcing::parse_records(&out.stdout) {
        // Framework variables are scalars; index 0 is the scalar value.
        values.insert(name, value);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_rules() {
        let debian = Distribution::from_os_release("ID=debian\nVERSION_ID=\"12\"\n");
        assert_eq!(debian.module_dir_override(), Some("/updates/dkms"));
        let ubuntu = Distribution::from_os_release("ID=ubuntu\nID_LIKE=debian\n");
        assert_eq!(ubuntu.running, "ubuntu");
        let rocky = Distribution::from_os_release("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n");
        assert_eq!(rocky.running, "rhel centos fedora");
        assert_eq!(rocky.module_dir_override(), Some("/extra"));
        let gentoo = Distribution::from_os_release("ID=gentoo\n");
        assert_eq!(gentoo.module_dir_override(), None);
        let suse =
            Distribution::from_os_release("ID=opensuse-tumbleweed\nID_LIKE=\"opensuse suse\"\n");
        assert_eq!(suse.module_dir_override(), Some("/updates"));
    }

    #[test]
    fn comment_only_files_are_inert() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("framework.conf");
        std::fs::write(&f, "# comment\n\n   # indented\n").unwrap();
        assert!(is_inert(&f));
        std::fs::write(&f, "# comment\ndkms_tree=/x\n").unwrap();
        assert!(!is_inert(&f));
    }

    #[test]
    fn sourcing_keeps_only_whitelisted_variables_and_ignores_functions() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("framework.conf");
        std::fs::write(
            &f,
            "dkms_tree=/srv/dkms\nparallel_jobs=$((2+1))\nnot_ours=1\ndo_status() { echo hijack; }\necho noise\n",
        )
        .unwrap();
        let d = dir.path().join("framework.conf.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("10-a.conf"), "source_tree=\"$dkms_tree/src\"\n").unwrap();
        std::fs::write(d.join("20-b.txt"), "source_tree=/ignored\n").unwrap();
        let values = source_files(&framework_files(&f), defaults(Path::new("/"))).unwrap();
        assert_eq!(values["dkms_tree"], "/srv/dkms");
        assert_eq!(values["parallel_jobs"], "3");
        assert_eq!(values["source_tree"], "/srv/dkms/src");
        assert!(!values.contains_key("not_ours"));
    }
}
