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

/// The version printed by `dkms --version` (the upstream release we are compatible with).
pub const UPSTREAM_VERSION: &str = "3.4.3";

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
    Owner,
    Verify,
    Mkbmdeb,
    Mkbmpkg,
    Mkbmrpm,
    Preflight,
    Secureboot,
    Scaffold,
    Lint,
}

impl Action {
    /// Every action, in the order `--help` and the man page list them.
    pub const ALL: [Action; 24] = [
        Action::Add,
        Action::Build,
        Action::Install,
        Action::Uninstall,
        Action::Unbuild,
        Action::Remove,
        Action::Status,
        Action::Owner,
        Action::Verify,
        Action::Autoinstall,
        Action::Match,
        Action::Mktarball,
        Action::Ldtarball,
        Action::Mkbmdeb,
        Action::Mkbmpkg,
        Action::Mkbmrpm,
        Action::Preflight,
        Action::Secureboot,
        Action::Scaffold,
        Action::Lint,
        Action::GenerateMok,
        Action::KernelPreinst,
        Action::KernelPostinst,
        Action::KernelPrerm,
    ];

    /// What it does, in one line.
    pub fn help(self) -> &'static str {
        match self {
            Action::Add => {
                "register a module version's source (from /usr/src, a directory, an archive)"
            }
            Action::Build => "build it for a kernel (adding it first if needed)",
            Action::Install => {
                "install it into a kernel's modules tree (building it first if needed)"
            }
            Action::Uninstall => {
                "take it out of a kernel's modules tree, restoring what it replaced"
            }
            Action::Unbuild => "uninstall it and delete its build for a kernel",
            Action::Remove => "unbuild it, and forget the version once no kernel has it",
            Action::Status => "show what is added, built and installed",
            Action::Autoinstall => "install every AUTOINSTALL module's latest version on a kernel",
            Action::Match => "install on a kernel what another kernel (--templatekernel) has",
            Action::Mktarball => "archive a module version's source and builds",
            Action::Ldtarball => "load such an archive",
            Action::GenerateMok => "create the module signing key and certificate",
            Action::KernelPreinst => "before a kernel is installed: remove its AUTOINSTALL modules",
            Action::KernelPostinst => "after a kernel is installed: autoinstall",
            Action::KernelPrerm => "before a kernel is removed: remove every module built for it",
            Action::Owner => "which installed module placed each PATH (like dpkg -S)",
            Action::Mkbmdeb => "package its built, signed modules for each -k kernel as a .deb",
            Action::Mkbmpkg => {
                "package its built, signed modules for each -k kernel as a pacman package"
            }
            Action::Mkbmrpm => {
                "package its built, signed modules for each -k kernel as an RPM (kmod-<m>-<k>)"
            }
            Action::Verify => {
                "check installed module files against what was installed: missing, modified, stray"
            }
            Action::Preflight => {
                "build every AUTOINSTALL module for a kernel before it is installed (-k, --headers)"
            }
            Action::Secureboot => {
                "whether this machine loads modules signed with dkms's key; --enroll queues it"
            }
            Action::Scaffold => {
                "write a dkms.conf (--pkgbuild, --debian: packaging) from a module source's Kbuild"
            }
            Action::Lint => "find the mistakes that break modules in a dkms.conf",
        }
    }

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
            "owner" => Action::Owner,
            "verify" => Action::Verify,
            "mkbmdeb" => Action::Mkbmdeb,
            "mkbmpkg" => Action::Mkbmpkg,
            "mkbmrpm" => Action::Mkbmrpm,
            "preflight" => Action::Preflight,
            "secureboot" => Action::Secureboot,
            "scaffold" => Action::Scaffold,
            "lint" => Action::Lint,
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
            Action::Owner => "owner",
            Action::Verify => "verify",
            Action::Mkbmdeb => "mkbmdeb",
            Action::Mkbmpkg => "mkbmpkg",
            Action::Mkbmrpm => "mkbmrpm",
            Action::Preflight => "preflight",
            Action::Secureboot => "secureboot",
            Action::Scaffold => "scaffold",
            Action::Lint => "lint",
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
    /// Our addition: the paths `dkms owner` asks about (every word after the action).
    pub paths: Vec<PathBuf>,
    /// Our addition: machine-readable output (`status --json`).
    pub json: bool,
    /// Our addition: `preflight --headers`: headers trees or the .deb packages of them.
    pub headers: Vec<PathBuf>,
    /// Our addition: `preflight` run by a package manager's hook: framework.conf's
    /// `preflight=` decides its exit status.
    pub hook: bool,
    /// Our addition: `scaffold --pkgbuild`: an Arch `dkms-<name>` package too.
    pub pkgbuild: bool,
    /// Our addition: `scaffold --install-script`: the older `.install` with it.
    pub install_script: bool,
    /// Our addition: `scaffold --debian`: a `debian/` source package (dh-dkms).
    pub debian: bool,
    /// Our addition: `scaffold --dry-run`: print what would be written.
    pub dry_run: bool,
    /// Our addition: `secureboot --enroll` queues the signing key with mokutil.
    pub enroll: bool,
    /// Our addition: `secureboot --enroll --root-pw`: mokutil uses root's password.
    pub root_pw: bool,
    /// Our addition: `status --failed` lists the remembered failed builds.
    pub failed: bool,
    /// Our addition: autoinstall builds again what failed before with the same inputs.
    pub retry: bool,
    /// Our addition: the package revision of `mkbmdeb` / `mkbmpkg` / `mkbmrpm` (Debian
    /// revision, pacman pkgrel, rpm release; default 1), raised to ship a rebuild of the same module version.
    pub revision: Option<u32>,
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
    #[error("Invalid package revision '{0}' given to --revision: a number from 1 up.")]
    BadRevision(String),
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
            CliError::BadJobs(_) | CliError::BadRevision(_) => exit::FAILURE,
        }
    }

    /// Whether the original prints the usage text after this error.
    pub fn shows_usage(&self) -> bool {
        matches!(self, CliError::UnknownOption(_))
    }
}

/// What an option's value sets.
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
    Revision,
    Headers,
}

#[derive(Clone, Copy)]
enum Opt {
    Value(ValueOpt),
    Flag(fn(&mut Request)),
    Deprecated(&'static str),
    Version,
    Help,
}

/// How the original's `case` matches an option word.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Match {
    /// The word itself.
    Exact,
    /// A glob suffix: `--kernelver*` takes `--kernelver=6.1`, `--kernelver 6.1`, and
    /// `--kernelverX 6.1` alike, but never an abbreviation.
    Prefix,
}

/// One option the parser accepts: every spelling, the value it takes, its help. The
/// parser reads this table, and the tests hold `--help`, the man page and the shell
/// completions against it, so none of them can drift.
pub struct OptionSpec {
    pub names: &'static [&'static str],
    pub matching: Match,
    /// The placeholder of its value (`None` for a flag).
    pub value: Option<&'static str>,
    pub help: &'static str,
    opt: Opt,
}

const fn spec(
    names: &'static [&'static str],
    matching: Match,
    value: Option<&'static str>,
    help: &'static str,
    opt: Opt,
) -> OptionSpec {
    OptionSpec {
        names,
        matching,
        value,
        help,
        opt,
    }
}

use Match::{Exact, Prefix};
use ValueOpt as V;

/// Every option, in the original's `case` order where it matters (`--archive*` before
/// `--arch*`; exact words before glob suffixes).
pub const OPTIONS: &[OptionSpec] = &[
    spec(
        &["-m"],
        Exact,
        Some("module[/version]"),
        "the module (and version)",
        Opt::Value(V::Module),
    ),
    spec(
        &["-v"],
        Exact,
        Some("version"),
        "the module version",
        Opt::Value(V::Version),
    ),
    spec(
        &["-k"],
        Exact,
        Some("kernel[/arch]"),
        "a kernel (repeatable; default: the running one)",
        Opt::Value(V::Kernel),
    ),
    spec(
        &["-c"],
        Exact,
        Some("dkms.conf"),
        "use this dkms.conf instead of the module's",
        Opt::Value(V::Conf),
    ),
    spec(
        &["-a"],
        Exact,
        Some("arch"),
        "the architecture (default: the machine's)",
        Opt::Value(V::Arch),
    ),
    spec(
        &["-j"],
        Exact,
        Some("jobs"),
        "parallel make jobs (0: unlimited)",
        Opt::Value(V::Jobs),
    ),
    spec(
        &["-q", "--quiet"],
        Exact,
        None,
        "print nothing but errors",
        Opt::Flag(|r| r.quiet = true),
    ),
    spec(
        &["-V", "--version"],
        Exact,
        None,
        "print the version and exit",
        Opt::Version,
    ),
    spec(
        &["-h", "--help"],
        Exact,
        None,
        "print the usage and exit",
        Opt::Help,
    ),
    spec(
        &["--no-initrd"],
        Exact,
        None,
        "deprecated, ignored",
        Opt::Deprecated("--no-initrd"),
    ),
    spec(
        &["--no-clean-kernel"],
        Exact,
        None,
        "deprecated, ignored",
        Opt::Deprecated("--no-clean-kernel"),
    ),
    spec(
        &["--no-prepare-kernel"],
        Exact,
        None,
        "deprecated, ignored",
        Opt::Deprecated("--no-prepare-kernel"),
    ),
    spec(
        &["--binaries-only"],
        Exact,
        None,
        "mktarball: prebuilt modules without their source",
        Opt::Flag(|r| r.binaries_only = true),
    ),
    spec(
        &["--source-only"],
        Exact,
        None,
        "mktarball: the source without prebuilt modules",
        Opt::Flag(|r| r.source_only = true),
    ),
    spec(
        &["--force"],
        Exact,
        None,
        "rebuild, reinstall or replace even if not needed or not newer",
        Opt::Flag(|r| r.force = true),
    ),
    spec(
        &["--force-version-override"],
        Exact,
        None,
        "install over a module of another version without comparing",
        Opt::Flag(|r| r.force_version_override = true),
    ),
    spec(
        &["--all"],
        Exact,
        None,
        "every kernel the module is built for",
        Opt::Flag(|r| r.all = true),
    ),
    spec(
        &["--verbose"],
        Exact,
        None,
        "show each build command and its output",
        Opt::Flag(|r| r.verbose = true),
    ),
    spec(
        &["--rpm_safe_upgrade"],
        Exact,
        None,
        "add and remove within one package upgrade",
        Opt::Flag(|r| r.rpm_safe_upgrade = true),
    ),
    spec(
        &["--symlink-modules"],
        Exact,
        None,
        "install links to the built modules instead of copies",
        Opt::Flag(|r| r.symlink_modules = true),
    ),
    spec(
        &["--no-depmod"],
        Exact,
        None,
        "do not run depmod",
        Opt::Flag(|r| r.no_depmod = true),
    ),
    spec(
        &["--modprobe-on-install"],
        Exact,
        None,
        "load the installed modules on the running kernel",
        Opt::Flag(|r| r.modprobe_on_install = true),
    ),
    spec(
        &["--debug"],
        Exact,
        None,
        "accepted for compatibility",
        Opt::Flag(|r| r.debug = true),
    ),
    spec(
        &["--json"],
        Exact,
        None,
        "status: machine-readable output",
        Opt::Flag(|r| r.json = true),
    ),
    spec(
        &["--headers"],
        Prefix,
        Some("dir|pkg.deb"),
        "preflight: kernel headers (a directory, or .deb packages not installed yet)",
        Opt::Value(V::Headers),
    ),
    spec(
        &["--pkgbuild"],
        Exact,
        None,
        "scaffold: also an Arch dkms-<name> PKGBUILD and its source tarball",
        Opt::Flag(|r| r.pkgbuild = true),
    ),
    spec(
        &["--install-script"],
        Exact,
        None,
        "scaffold --pkgbuild: also the older .install script that runs dkms",
        Opt::Flag(|r| r.install_script = true),
    ),
    spec(
        &["--debian"],
        Exact,
        None,
        "scaffold: also a debian/ source package built with dh-dkms",
        Opt::Flag(|r| r.debian = true),
    ),
    spec(
        &["--dry-run"],
        Exact,
        None,
        "scaffold: print what would be written, write nothing",
        Opt::Flag(|r| r.dry_run = true),
    ),
    spec(
        &["--enroll"],
        Exact,
        None,
        "secureboot: queue the signing key for enrollment at the next boot (mokutil)",
        Opt::Flag(|r| r.enroll = true),
    ),
    spec(
        &["--root-pw"],
        Exact,
        None,
        "secureboot --enroll: MokManager asks for root's password instead of a new one",
        Opt::Flag(|r| r.root_pw = true),
    ),
    spec(
        &["--failed"],
        Exact,
        None,
        "status: the builds that failed, and why",
        Opt::Flag(|r| r.failed = true),
    ),
    spec(
        &["--hook"],
        Exact,
        None,
        "preflight: run by a package manager's hook (the preflight= setting decides)",
        Opt::Flag(|r| r.hook = true),
    ),
    spec(
        &["--retry"],
        Exact,
        None,
        "autoinstall: build again what failed before with the same inputs",
        Opt::Flag(|r| r.retry = true),
    ),
    spec(
        &["--revision"],
        Prefix,
        Some("n"),
        "mkbmdeb, mkbmpkg, mkbmrpm: the package revision (default 1)",
        Opt::Value(V::Revision),
    ),
    spec(
        &["--all-kernels"],
        Exact,
        None,
        "autoinstall: every kernel with headers, at once",
        Opt::Flag(|r| r.all_kernels = true),
    ),
    spec(
        &["--module"],
        Prefix,
        Some("module[/version]"),
        "as -m",
        Opt::Value(V::Module),
    ),
    spec(
        &["--kernelver"],
        Prefix,
        Some("kernel[/arch]"),
        "as -k",
        Opt::Value(V::Kernel),
    ),
    spec(
        &["--templatekernel"],
        Prefix,
        Some("kernel"),
        "match: the kernel to copy from",
        Opt::Value(V::TemplateKernel),
    ),
    spec(
        &["--dkmsframework"],
        Prefix,
        Some("file"),
        "another framework.conf",
        Opt::Value(V::FrameworkConf),
    ),
    spec(
        &["--dkmstree"],
        Prefix,
        Some("dir"),
        "the state tree (default /var/lib/dkms)",
        Opt::Value(V::DkmsTree),
    ),
    spec(
        &["--sourcetree"],
        Prefix,
        Some("dir"),
        "the source tree (default /usr/src)",
        Opt::Value(V::SourceTree),
    ),
    spec(
        &["--installtree"],
        Prefix,
        Some("dir"),
        "the modules tree (default /lib/modules)",
        Opt::Value(V::InstallTree),
    ),
    spec(
        &["--config"],
        Prefix,
        Some("file"),
        "the kernel's config (default: its auto.conf or .config)",
        Opt::Value(V::KernelConfig),
    ),
    spec(
        &["--archive"],
        Prefix,
        Some("file"),
        "mktarball/ldtarball: the archive",
        Opt::Value(V::Archive),
    ),
    spec(
        &["--arch"],
        Prefix,
        Some("arch"),
        "as -a",
        Opt::Value(V::Arch),
    ),
    spec(
        &["--kernelsourcedir"],
        Prefix,
        Some("dir"),
        "the kernel's build directory",
        Opt::Value(V::KernelSourceDir),
    ),
    spec(
        &["--directive"],
        Prefix,
        Some("NAME=value"),
        "set a dkms.conf directive after the files",
        Opt::Value(V::Directive),
    ),
];

/// Classify one option word in the original's `case` order. `None` means "not an option".
fn classify(word: &str) -> Option<Result<Opt, CliError>> {
    let found = OPTIONS
        .iter()
        .filter(|o| o.matching == Exact)
        .chain(OPTIONS.iter().filter(|o| o.matching == Prefix))
        .find(|o| {
            o.names.iter().any(|n| match o.matching {
                Exact => word == *n,
                Prefix => word.starts_with(n),
            })
        });
    match found {
        Some(o) => Some(Ok(o.opt)),
        None if word.starts_with('-') => Some(Err(CliError::UnknownOption(word.to_string()))),
        None => None,
    }
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
        ValueOpt::Headers => req.headers.push(PathBuf::from(value)),
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
        ValueOpt::Revision => {
            let revision = name(req, value);
            match revision.parse::<u32>() {
                Ok(n) if n > 0 => req.revision = Some(n),
                _ => return Err(CliError::BadRevision(revision)),
            }
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
    if matches!(
        req.action,
        Some(Action::Owner | Action::Scaffold | Action::Lint)
    ) {
        req.paths.push(PathBuf::from(word));
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

/// The usage text (`-h`, and after an unknown option), made from [`Action::ALL`] and
/// [`OPTIONS`].
pub fn usage() -> String {
    let mut out = String::from(
        "Usage: dkms <action> [options] [module/version | source dir | dkms.conf | archive]\n\nActions:\n",
    );
    for a in Action::ALL {
        out.push_str(&format!("  {:<16} {}\n", a.name(), a.help()));
    }
    out.push_str("\nOptions:\n");
    for o in OPTIONS {
        let sep = if o.matching == Match::Prefix {
            "="
        } else {
            " "
        };
        let names: Vec<String> = o
            .names
            .iter()
            .map(|n| match o.value {
                Some(v) => format!("{n}{sep}{v}"),
                None => n.to_string(),
            })
            .collect();
        out.push_str(&format!("  {:<34} {}\n", names.join(", "), o.help));
    }
    out.push_str(
        "\nA module and version may be given as module/version, a kernel and arch as\n\
         kernel/arch. Environment: DKMS_SYSROOT (default /) prefixes every system path,\n\
         DKMS_CONF_TIMEOUT (seconds, default 60) bounds the evaluation of a dkms.conf.\n\
         See dkms(8).",
    );
    out
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
