//! The `dkms` command-line grammar, including the original's quirks.
//!
//! The bash original parses arguments with a `case` over glob patterns, not with a
//! getopt-style library, and scripts depend on what that accepts:
//! * long options that take a value match as *glob suffixes* (`--kernelver*` accepts
//!   `--kernelver=6.1`, `--kernelver 6.1` and even `--kernelverX 6.1`), but are never
//!   abbreviated (`--kern` is an unknown option);
//! * a value is everything after the first `=` of the option word, else the next word,
//!   then passed through bash's `read` (first line only, backslashes removed, leading and
//!   trailing blanks trimmed);
//! * the action word may appear anywhere; any other word is classified by what exists
//!   on disk (a `dkms.conf` path, a source directory, an archive) or taken as
//!   `module[/version]`;
//! * `-m M/V` and `-k K/ARCH` split on the first `/`.
//!
//! This is why the grammar is written out here instead of using clap: clap would accept
//! abbreviations and reject the suffix forms, both of which would change behaviour.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::exit;

/// The actions of upstream dkms 3.4.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Add,
    Remove,
    Build,
    Unbuild,
    Install,
    Uninstall,
    Autoinstall,
    Match,
    Mktarball,
    Ldtarball,
    Status,
    GenerateMok,
    KernelPreinst,
    KernelPostinst,
    KernelPrerm,
}

impl Action {
    /// The action named by `word`, exactly as the original's `action_re` accepts it.
    pub fn from_word(word: &str) -> Option<Action> {
        Some(match word {
            "add" => Action::Add,
            "remove" => Action::Remove,
            "build" => Action::Build,
            "unbuild" => Action::Unbuild,
            "install" => Action::Install,
            "uninstall" => Action::Uninstall,
            "autoinstall" => Action::Autoinstall,
            "match" => Action::Match,
            "mktarball" => Action::Mktarball,
            "ldtarball" => Action::Ldtarball,
            "status" => Action::Status,
            "generate_mok" => Action::GenerateMok,
            "kernel_preinst" => Action::KernelPreinst,
            "kernel_postinst" => Action::KernelPostinst,
            "kernel_prerm" => Action::KernelPrerm,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Remove => "remove",
            Action::Build => "build",
            Action::Unbuild => "unbuild",
            Action::Install => "install",
            Action::Uninstall => "uninstall",
            Action::Autoinstall => "autoinstall",
            Action::Match => "match",
            Action::Mktarball => "mktarball",
            Action::Ldtarball => "ldtarball",
            Action::Status => "status",
            Action::GenerateMok => "generate_mok",
            Action::KernelPreinst => "kernel_preinst",
            Action::KernelPostinst => "kernel_postinst",
            Action::KernelPrerm => "kernel_prerm",
        }
    }
}

/// Everything the command line asked for, typed. Paths are as given (not canonicalized).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    pub action: Option<Action>,
    pub module: Option<String>,
    pub version: Option<String>,
    /// `-k` values in order; `-k K/ARCH` also pushes to `arches`.
    pub kernels: Vec<String>,
    pub arches: Vec<String>,
    pub template_kernel: Option<String>,
    /// `-c FILE`: dkms.conf to use instead of `<source>/dkms.conf`.
    pub conf: Option<PathBuf>,
    pub quiet: bool,
    pub binaries_only: bool,
    pub source_only: bool,
    pub force: bool,
    pub force_version_override: bool,
    pub all: bool,
    pub verbose: bool,
    pub rpm_safe_upgrade: bool,
    pub dkms_tree: Option<PathBuf>,
    pub source_tree: Option<PathBuf>,
    pub install_tree: Option<PathBuf>,
    pub framework_conf: Option<PathBuf>,
    pub symlink_modules: bool,
    pub kernel_config: Option<PathBuf>,
    pub archive: Option<PathBuf>,
    pub kernel_source_dir: Option<PathBuf>,
    pub directives: Vec<String>,
    pub no_depmod: bool,
    pub modprobe_on_install: bool,
    pub debug: bool,
    /// `-j N` as given (validated later; `0` means unlimited).
    pub jobs: Option<String>,
    /// A source directory given positionally (a dir holding dkms.conf, or `.../dkms.conf`).
    pub source_dir: Option<PathBuf>,
    /// Our addition: machine-readable output (`status --json`).
    pub json: bool,
    /// Our addition: `autoinstall --all-kernels`, every kernel with headers at once.
    pub all_kernels: bool,
    /// Non-fatal remarks made while parsing (deprecated options, unknown words).
    pub notices: Vec<Notice>,
}

/// A non-fatal remark made while parsing, printed by the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    Deprecated(String),
    UnknownWord(String),
    /// A name (module, version, kernel, arch...) that is not valid UTF-8, shown lossily:
    /// no module, kernel or arch dkms knows can have it, so it matches nothing.
    NotUtf8(String),
}

/// What the command line resolves to.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Run(Box<Request>),
    Version,
    Help,
}

#[derive(Debug, Error, PartialEq)]
pub enum CliError {
    #[error("Unknown option: {0}")]
    UnknownOption(String),
    #[error("Cannot specify more than one action.")]
    TwoActions,
    #[error("You have specified both --binaries-only and --source-only.\nYou cannot do this.")]
    BinariesAndSourceOnly,
    #[error("If more than one arch is specified on the command line, then there\nmust be an equal number of kernel versions also specified (1:1 relationship).")]
    ArchCountMismatch,
    #[error("You cannot specify a kernel version and also specify\n--all on the command line.")]
    KernelWithAll,
    #[error("You cannot specify an arch and also specify\n--all on the command line.")]
    ArchWithAll,
    #[error("Invalid number of parallel jobs '{0}' given to -j.")]
    BadJobs(String),
}

impl CliError {
    /// The exit code the original uses for this argument error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::UnknownOption(_) => exit::UNKNOWN_OPTION,
            CliError::TwoActions => exit::TWO_ACTIONS,
            CliError::BinariesAndSourceOnly => exit::BINARIES_AND_SOURCE_ONLY,
            CliError::ArchCountMismatch => exit::ARCH_COUNT,
            CliError::KernelWithAll => exit::KERNEL_WITH_ALL,
            CliError::ArchWithAll => exit::ARCH_WITH_ALL,
            CliError::BadJobs(_) => exit::FAILURE,
        }
    }

    /// Whether the original prints the usage text after this error.
    pub fn shows_usage(&self) -> bool {
        matches!(self, CliError::UnknownOption(_))
    }
}

/// Options that take a value. `prefix: true` means the original matches `NAME*`.
#[derive(Clone, Copy)]
enum ValueOpt {
    Module,
    Version,
    Kernel,
    TemplateKernel,
    Conf,
    DkmsTree,
    SourceTree,
    InstallTree,
    FrameworkConf,
    KernelConfig,
    Archive,
    Arch,
    KernelSourceDir,
    Directive,
    Jobs,
}

enum Opt {
    Value(ValueOpt),
    Flag(fn(&mut Request)),
    Deprecated(&'static str),
    Version,
    Help,
}

/// Classify one option word in the original's `case` order. `None` means "not an option".
fn classify(word: &str) -> Option<Result<Opt, CliError>> {
    use ValueOpt::*;
    // Glob-suffix value options, in the order of the original's case statement
    // (`--archive*` must be tested before `--arch*`).
    const SUFFIX: &[(&str, ValueOpt)] = &[
        ("--module", Module),
        ("--kernelver", Kernel),
        ("--templatekernel", TemplateKernel),
        ("--dkmsframework", FrameworkConf),
        ("--dkmstree", DkmsTree),
        ("--sourcetree", SourceTree),
        ("--installtree", InstallTree),
        ("--config", KernelConfig),
        ("--archive", Archive),
        ("--arch", Arch),
        ("--kernelsourcedir", KernelSourceDir),
        ("--directive", Directive),
    ];
    let exact = match word {
        "-m" => Some(Opt::Value(Module)),
        "-v" => Some(Opt::Value(Version)),
        "-k" => Some(Opt::Value(Kernel)),
        "-c" => Some(Opt::Value(Conf)),
        "-a" => Some(Opt::Value(Arch)),
        "-j" => Some(Opt::Value(Jobs)),
        "-q" | "--quiet" => Some(Opt::Flag(|r| r.quiet = true)),
        "-V" | "--version" => Some(Opt::Version),
        "-h" | "--help" => Some(Opt::Help),
        "--no-initrd" => Some(Opt::Deprecated("--no-initrd")),
        "--no-clean-kernel" => Some(Opt::Deprecated("--no-clean-kernel")),
        "--no-prepare-kernel" => Some(Opt::Deprecated("--no-prepare-kernel")),
        "--binaries-only" => Some(Opt::Flag(|r| r.binaries_only = true)),
        "--source-only" => Some(Opt::Flag(|r| r.source_only = true)),
        "--force" => Some(Opt::Flag(|r| r.force = true)),
        "--force-version-override" => Some(Opt::Flag(|r| r.force_version_override = true)),
        "--all" => Some(Opt::Flag(|r| r.all = true)),
        "--verbose" => Some(Opt::Flag(|r| r.verbose = true)),
        "--rpm_safe_upgrade" => Some(Opt::Flag(|r| r.rpm_safe_upgrade = true)),
        "--symlink-modules" => Some(Opt::Flag(|r| r.symlink_modules = true)),
        "--no-depmod" => Some(Opt::Flag(|r| r.no_depmod = true)),
        "--modprobe-on-install" => Some(Opt::Flag(|r| r.modprobe_on_install = true)),
        "--debug" => Some(Opt::Flag(|r| r.debug = true)),
        "--json" => Some(Opt::Flag(|r| r.json = true)),
        "--all-kernels" => Some(Opt::Flag(|r| r.all_kernels = true)),
        _ => None,
    };
    if let Some(opt) = exact {
        return Some(Ok(opt));
    }
    // Exact flags are tested first above; the original's case order only matters between
    // suffix patterns, none of which is a prefix of an exact flag except `--module*` vs
    // nothing and `--arch*` vs `--archive*` (ordered in SUFFIX).
    for (prefix, opt) in SUFFIX {
        if word.starts_with(prefix) {
            return Some(Ok(Opt::Value(*opt)));
        }
    }
    if word.starts_with('-') {
        return Some(Err(CliError::UnknownOption(word.to_string())));
    }
    None
}

/// What bash's `read VAR <<< "$text"` stores: the first line, backslash escapes removed,
/// leading and trailing IFS whitespace trimmed. Bytes, as bash sees them.
fn bash_read(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut bytes = text.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\n' => break,
            b'\\' => match bytes.next() {
                Some(b'\n') | None => {}
                Some(&next) => out.push(next),
            },
            _ => out.push(b),
        }
    }
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = out.iter().position(|b| !blank(b)).unwrap_or(out.len());
    let end = out.iter().rposition(|b| !blank(b)).map_or(start, |e| e + 1);
    out[start..end].to_vec()
}

/// A word used as a name. Names become path components and status text, so they must
/// be UTF-8; one that is not is read lossily (it then matches nothing) and noted.
fn name(req: &mut Request, word: OsString) -> String {
    match word.into_string() {
        Ok(text) => text,
        Err(raw) => {
            let lossy = raw.to_string_lossy().into_owned();
            req.notices.push(Notice::NotUtf8(lossy.clone()));
            lossy
        }
    }
}

/// Split `a/b` on the first `/` as the original's `mv_re` (`^([^/]*)/(.*)$`) does.
fn split_first_slash(text: &str) -> (String, Option<String>) {
    match text.split_once('/') {
        Some((a, b)) => (a.to_string(), Some(b.to_string())),
        None => (text.to_string(), None),
    }
}

/// Parse argv (without the program name). `exists` answers the filesystem questions the
/// original asks about positional words, so the grammar stays testable.
pub fn parse<I, S>(args: I) -> Result<Parsed, CliError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    parse_with(args, &RealFs)
}

/// The filesystem questions asked while classifying positional words.
pub trait FsProbe {
    fn is_file(&self, path: &Path) -> bool;
    fn is_dir(&self, path: &Path) -> bool;
}

struct RealFs;

impl FsProbe for RealFs {
    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
}

/// Arguments are bytes, as the kernel hands them over: paths keep them exactly, names
/// must be UTF-8 (see [`name`]).
pub fn parse_with<I, S>(args: I, fs: &dyn FsProbe) -> Result<Parsed, CliError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<OsString> = args
        .into_iter()
        .map(|a| a.as_ref().to_os_string())
        .collect();
    let mut req = Request::default();
    let mut i = 0;
    while i < args.len() {
        let word = &args[i];
        match classify(&word.to_string_lossy()) {
            Some(Err(e)) => return Err(e),
            Some(Ok(Opt::Version)) => return Ok(Parsed::Version),
            Some(Ok(Opt::Help)) => return Ok(Parsed::Help),
            Some(Ok(Opt::Flag(set))) => set(&mut req),
            Some(Ok(Opt::Deprecated(name))) => req.notices.push(Notice::Deprecated(name.into())),
            Some(Ok(Opt::Value(opt))) => {
                let bytes = word.as_bytes();
                let raw = match bytes.iter().position(|b| *b == b'=') {
                    Some(at) => &bytes[at + 1..],
                    None => {
                        i += 1;
                        args.get(i).map_or(&b""[..], |a| a.as_bytes())
                    }
                };
                let value = OsString::from_vec(bash_read(raw));
                apply_value(&mut req, opt, value)?;
            }
            None => classify_positional(&mut req, word, fs)?,
        }
        i += 1;
    }
    check_consistency(&req)?;
    Ok(Parsed::Run(Box::new(req)))
}

/// Paths keep their bytes; everything else is a name ([`name`]).
fn apply_value(req: &mut Request, opt: ValueOpt, value: OsString) -> Result<(), CliError> {
    let path = |v: OsString| Some(PathBuf::from(v));
    match opt {
        ValueOpt::Conf => req.conf = path(value),
        ValueOpt::DkmsTree => req.dkms_tree = path(value),
        ValueOpt::SourceTree => req.source_tree = path(value),
        ValueOpt::InstallTree => req.install_tree = path(value),
        ValueOpt::FrameworkConf => req.framework_conf = path(value),
        ValueOpt::KernelConfig => req.kernel_config = path(value),
        ValueOpt::Archive => req.archive = path(value),
        ValueOpt::KernelSourceDir => req.kernel_source_dir = path(value),
        ValueOpt::Module => {
            let value = name(req, value);
            set_module_version(req, &value);
        }
        ValueOpt::Version => req.version = Some(name(req, value)),
        ValueOpt::Kernel => {
            let (kernel, arch) = split_first_slash(&name(req, value));
            req.kernels.push(kernel);
            if let Some(arch) = arch {
                req.arches.push(arch);
            }
        }
        ValueOpt::TemplateKernel => req.template_kernel = Some(name(req, value)),
        ValueOpt::Arch => {
            let arch = name(req, value);
            req.arches.push(arch);
        }
        ValueOpt::Directive => {
            let directive = name(req, value);
            req.directives.push(directive);
        }
        ValueOpt::Jobs => {
            let jobs = name(req, value);
            if !jobs.is_empty() && jobs.parse::<u32>().is_err() {
                return Err(CliError::BadJobs(jobs));
            }
            req.jobs = Some(jobs);
        }
    }
    Ok(())
}

fn set_module_version(req: &mut Request, value: &str) {
    let (module, version) = split_first_slash(value);
    req.module = Some(module);
    if let Some(version) = version {
        req.version = Some(version);
    }
}

fn classify_positional(req: &mut Request, word: &OsStr, fs: &dyn FsProbe) -> Result<(), CliError> {
    if let Some(action) = word.to_str().and_then(Action::from_word) {
        if req.action.is_some() {
            return Err(CliError::TwoActions);
        }
        req.action = Some(action);
        return Ok(());
    }
    let path = Path::new(word);
    let bytes = word.as_bytes();
    if bytes.ends_with(b"dkms.conf") && fs.is_file(path) {
        let mut dir = bytes[..bytes.len() - b"dkms.conf".len()].to_vec();
        dir.extend_from_slice(b"./");
        req.source_dir = Some(PathBuf::from(OsString::from_vec(dir)));
    } else if fs.is_dir(path) && fs.is_file(&path.join("dkms.conf")) {
        req.source_dir = Some(path.to_path_buf());
    } else if fs.is_file(path) {
        req.archive = Some(path.to_path_buf());
    } else if req.module.is_none() {
        let value = name(req, word.to_os_string());
        set_module_version(req, &value);
    } else {
        req.notices
            .push(Notice::UnknownWord(word.to_string_lossy().into_owned()));
    }
    Ok(())
}

/// The sanity checks the original makes after parsing, in its order.
fn check_consistency(req: &Request) -> Result<(), CliError> {
    if req.binaries_only && req.source_only {
        return Err(CliError::BinariesAndSourceOnly);
    }
    if req.arches.len() > 1 && req.arches.len() != req.kernels.len() {
        return Err(CliError::ArchCountMismatch);
    }
    if req.all && !req.kernels.is_empty() {
        return Err(CliError::KernelWithAll);
    }
    if req.all && !req.arches.is_empty() {
        return Err(CliError::ArchWithAll);
    }
    Ok(())
}

/// The usage text (`-h`, and after an unknown option).
pub fn usage() -> &'static str {
    "Usage: dkms [action] [options]
  [action]  = { add | remove | build | unbuild | install | uninstall | match |
                autoinstall | mktarball | ldtarball | status | generate_mok |
                kernel_preinst | kernel_postinst | kernel_prerm }
  [options] = [-m module] [-v module-version] [-k kernel-version] [-a arch]
              [-c dkms.conf-location] [-q] [--force] [--force-version-override] [--all]
              [--templatekernel=kernel] [--directive='cli-directive=cli-value']
              [--config=kernel-include/config/auto.conf-location] [--archive=tarball-location]
              [--kernelsourcedir=source-location] [--rpm_safe_upgrade]
              [--dkmstree path] [--sourcetree path] [--installtree path]
              [--dkmsframework path] [--binaries-only] [--source-only] [--verbose]
              [--symlink-modules] [--no-depmod] [--modprobe-on-install] [-j number]
              [--json] [--all-kernels] [--version] [--help]

  Module and version may also be given as module/version, kernel and arch as
  kernel/arch (-k may be repeated). `status --json` prints machine-readable status
  (schema documented in README.md). `autoinstall --all-kernels` builds and installs
  the latest added version of every module with AUTOINSTALL=yes for every installed
  kernel that has headers, all at once.
  The environment variable DKMS_SYSROOT (default /) prefixes every system path
  (/etc/dkms, /etc/os-release, the default trees) so dkms can run in a scratch root."
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    struct FakeFs {
        files: HashSet<PathBuf>,
        dirs: HashSet<PathBuf>,
    }

    impl FsProbe for FakeFs {
        fn is_file(&self, p: &Path) -> bool {
            self.files.contains(p)
        }
        fn is_dir(&self, p: &Path) -> bool {
            self.dirs.contains(p)
        }
    }

    fn empty() -> FakeFs {
        FakeFs {
            files: HashSet::new(),
            dirs: HashSet::new(),
        }
    }

    fn req(args: &[&str]) -> Request {
        match parse_with(args.iter().copied(), &empty()).unwrap() {
            Parsed::Run(r) => *r,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn module_version_forms() {
        let r = req(&["install", "-m", "foo", "-v", "1.0"]);
        assert_eq!(
            (r.module.as_deref(), r.version.as_deref()),
            (Some("foo"), Some("1.0"))
        );
        let r = req(&["install", "foo/1.0/extra"]);
        assert_eq!(
            (r.module.as_deref(), r.version.as_deref()),
            (Some("foo"), Some("1.0/extra"))
        );
        let r = req(&["--module=foo/2", "build"]);
        assert_eq!(r.action, Some(Action::Build));
        assert_eq!(r.version.as_deref(), Some("2"));
        let r = req(&["-m", "foo/1", "-v", "3"]);
        assert_eq!(r.version.as_deref(), Some("3"));
    }

    #[test]
    fn kernel_arch_forms_and_suffix_matching() {
        let r = req(&[
            "-k",
            "6.1.0-1-amd64/x86_64",
            "--kernelver=6.12.1",
            "--kernelverX",
            "5.10",
        ]);
        assert_eq!(r.kernels, vec!["6.1.0-1-amd64", "6.12.1", "5.10"]);
        assert_eq!(r.arches, vec!["x86_64"]);
        let r = req(&["--archive=/tmp/a.tar.gz", "--arch", "aarch64"]);
        assert_eq!(r.archive.as_deref(), Some(Path::new("/tmp/a.tar.gz")));
        assert_eq!(r.arches, vec!["aarch64"]);
    }

    #[test]
    fn values_go_through_bash_read() {
        let r = req(&["-k", "  6.1\\.0  "]);
        assert_eq!(r.kernels, vec!["6.1.0"]);
        let r = req(&["-v", "1.0\nsecond line"]);
        assert_eq!(r.version.as_deref(), Some("1.0"));
    }

    #[test]
    fn missing_value_at_end_is_empty() {
        let r = req(&["status", "-k"]);
        assert_eq!(r.kernels, vec![""]);
    }

    #[test]
    fn errors_and_their_codes() {
        let cases: &[(&[&str], i32)] = &[
            (&["--kern", "6.1"], 2),
            (&["-x"], 2),
            (&["-k=6.1"], 2),
            (&["add", "build"], 4),
            (&["--binaries-only", "--source-only"], 8),
            (&["-a", "x", "-a", "y", "-k", "1.0"], 1),
            (&["--all", "-k", "1.0"], 2),
            (&["--all", "-a", "x86_64"], 3),
            (&["-j", "many"], 1),
        ];
        for (args, code) in cases {
            let err = parse_with(args.iter().copied(), &empty()).unwrap_err();
            assert_eq!(err.exit_code(), *code, "{args:?}");
        }
    }

    #[test]
    fn version_and_help_stop_parsing() {
        assert_eq!(parse_with(["-V", "-x"], &empty()).unwrap(), Parsed::Version);
        assert_eq!(
            parse_with(["status", "--help"], &empty()).unwrap(),
            Parsed::Help
        );
    }

    #[test]
    fn positional_classification() {
        let fs = FakeFs {
            files: ["/src/foo/dkms.conf", "/tmp/foo.tar.gz"]
                .iter()
                .map(PathBuf::from)
                .collect(),
            dirs: ["/src/foo"].iter().map(PathBuf::from).collect(),
        };
        let run = |args: &[&str]| match parse_with(args.iter().copied(), &fs).unwrap() {
            Parsed::Run(r) => *r,
            _ => unreachable!(),
        };
        assert_eq!(
            run(&["add", "/src/foo"]).source_dir,
            Some(PathBuf::from("/src/foo"))
        );
        assert_eq!(
            run(&["add", "/src/foo/dkms.conf"]).source_dir,
            Some(PathBuf::from("/src/foo/./"))
        );
        assert_eq!(
            run(&["ldtarball", "/tmp/foo.tar.gz"]).archive,
            Some(PathBuf::from("/tmp/foo.tar.gz"))
        );
        let r = run(&["status", "a/1", "b/2"]);
        assert_eq!(r.module.as_deref(), Some("a"));
        assert_eq!(r.notices, vec![Notice::UnknownWord("b/2".into())]);
        // Removed actions are module names, like in the original.
        assert_eq!(run(&["mkdeb"]).module.as_deref(), Some("mkdeb"));
    }
}
