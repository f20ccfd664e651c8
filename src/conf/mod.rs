//! dkms.conf: evaluation for one (module, version, kernel, arch) into a typed
//! [`ModuleConf`], with the original's strict checks.
//!
//! Evaluation is bash's (see [`eval`]); plain-assignment files take a proven pure-Rust
//! path ([`fast`]). Validation collects every problem, like the original, and reports
//! each with the file, the line of the offending assignment where there is one, and the
//! fix; the whole is exit code 8 ("Bad conf file").

pub mod cache;
pub mod eval;
mod evaluate;
mod exclusion;
pub mod fast;
mod interpret;
pub mod lint;
mod records;

pub use evaluate::{evaluate, scope_for};
pub use interpret::{interpret, locate_assignment};

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

use crate::bash::BashError;
use eval::RawValues;

/// One problem found in a dkms.conf.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<u32>,
    pub message: String,
    pub fix: String,
    /// Only the strict read (add, build, install) rejects it; the original's plain
    /// `read_conf` accepts it (duplicate module names).
    pub strict_only: bool,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file.display(), l, self.message)?,
            None => write!(f, "{}: {}", self.file.display(), self.message)?,
        }
        write!(f, "\n  fix: {}", self.fix)
    }
}

#[derive(Debug, Error)]
pub enum ConfError {
    #[error("Could not locate dkms.conf file.\nFile: {0} does not exist.")]
    Missing(PathBuf),
    #[error("Cannot read {file}: {source}")]
    Unreadable {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Bad conf file.\nFile: {file} does not represent a valid dkms.conf file.\n{}", render(.problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
    #[error("Bad conf file.\n{file}: {source}\n  fix: make the file finish quickly; dkms.conf is sourced every time dkms reads it")]
    Bash {
        file: PathBuf,
        #[source]
        source: BashError,
    },
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfError::Missing(_) => crate::exit::CONF_MISSING,
            _ => crate::exit::BAD_CONF,
        }
    }
}

/// Per-kernel restrictions (`BUILD_EXCLUSIVE_*`), already decided for this kernel/arch.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Exclusion {
    /// Why this kernel/arch is excluded, if it is.
    pub reasons: Vec<String>,
}

impl Exclusion {
    pub fn excluded(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// One kernel module of a package (one index of the module arrays).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModuleEntry {
    pub index: usize,
    pub built_name: String,
    /// Relative to the build directory, with a trailing `/` (or empty).
    pub built_location: String,
    pub dest_name: String,
    /// The raw `DEST_MODULE_LOCATION` (the distribution may override where it installs).
    pub dest_location: String,
    pub strip: bool,
    pub exclusion: Exclusion,
}

/// A dkms.conf evaluated for one kernel and architecture.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModuleConf {
    pub file: PathBuf,
    pub package_name: String,
    pub package_version: String,
    pub modules: Vec<ModuleEntry>,
    /// MAKE / MAKE_MATCH resolved for this kernel, or the default kbuild command.
    pub make_command: String,
    pub make_is_default: bool,
    pub clean: Option<String>,
    pub patches: Vec<String>,
    pub pre_build: Option<String>,
    pub post_build: Option<String>,
    pub post_add: Option<String>,
    pub pre_install: Option<String>,
    pub post_install: Option<String>,
    pub post_remove: Option<String>,
    pub autoinstall: bool,
    pub build_depends: Vec<String>,
    pub build_depends_rebuild: bool,
    pub no_weak_modules: bool,
    /// NEEDED_AT_BOOT (or the deprecated REMAKE_INITRD): the modules must be in the
    /// initramfs, which dkms regenerates and checks when they change.
    pub needed_at_boot: bool,
    pub obsolete_by: Option<String>,
    /// Package-wide BUILD_EXCLUSIVE verdict for this kernel/arch.
    pub exclusion: Exclusion,
    pub deprecated: Vec<String>,
    pub warnings: Vec<String>,
}

/// Everything needed to evaluate one dkms.conf.
#[derive(Debug, Clone)]
pub struct ConfRequest<'a> {
    pub file: PathBuf,
    pub module: &'a str,
    pub version: &'a str,
    pub kernel: &'a str,
    pub arch: &'a str,
    pub kernel_source_dir: PathBuf,
    pub kernel_config: PathBuf,
    pub settings: &'a crate::framework::Settings,
    /// `--directive NAME=VALUE`, applied after the files.
    pub directives: &'a [String],
    /// Where `status` may cache a bash evaluation (see [`cache`]); never set for builds.
    pub cache: Option<PathBuf>,
}

/// What the command line changes in every dkms.conf this run reads, whatever reads it:
/// `--kernelsourcedir`, `--config` and `--directive` (the original applies them in every
/// `read_conf`). Built once from the request; [`ConfRequest::new`] is the only way to a
/// request, so no reader can forget them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfOverrides {
    pub kernel_source_dir: Option<PathBuf>,
    pub kernel_config: Option<PathBuf>,
    pub directives: Vec<String>,
}

impl ConfOverrides {
    /// `kernel`'s build directory and config as these overrides point at them (else the
    /// installed headers, `auto.conf` before `.config`).
    pub fn kernel_dirs(&self, settings: &crate::framework::Settings, kernel: &str) -> KernelDirs {
        let build = crate::kernel::build_dir(settings, self.kernel_source_dir.as_deref(), kernel);
        let config = crate::kernel::config_file(&build, self.kernel_config.as_deref());
        KernelDirs { build, config }
    }
}

/// A kernel's build directory and the config file a dkms.conf sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelDirs {
    pub build: PathBuf,
    pub config: PathBuf,
}

impl<'a> ConfRequest<'a> {
    /// A request for `file` on kernel/arch with this run's `overrides`.
    pub fn new(
        settings: &'a crate::framework::Settings,
        overrides: &'a ConfOverrides,
        file: PathBuf,
        module: &'a str,
        version: &'a str,
        kernel: &'a str,
        arch: &'a str,
    ) -> ConfRequest<'a> {
        let dirs = overrides.kernel_dirs(settings, kernel);
        ConfRequest {
            file,
            module,
            version,
            kernel,
            arch,
            kernel_source_dir: dirs.build,
            kernel_config: dirs.config,
            settings,
            directives: &overrides.directives,
            cache: None,
        }
    }

    /// Against headers found elsewhere (a kernel not installed yet: preflight's).
    pub fn with_headers(mut self, dirs: &KernelDirs) -> ConfRequest<'a> {
        self.kernel_source_dir = dirs.build.clone();
        self.kernel_config = dirs.config.clone();
        self
    }

    /// Let a lenient (status) evaluation cache bash's result at `path`.
    pub fn with_cache(mut self, path: PathBuf) -> ConfRequest<'a> {
        self.cache = Some(path);
        self
    }
}

/// Result of evaluation before validation, with the bash messages about the files.
#[derive(Debug)]
pub struct Evaluated {
    pub files: Vec<PathBuf>,
    pub values: RawValues,
    pub messages: Vec<String>,
    pub syntax_error: Option<(PathBuf, u32, String)>,
}

/// The original's plain `read_conf` (`add` from a path reads this before copying the
/// source): every problem but those only the strict read rejects.
pub fn load_checked(req: &ConfRequest) -> Result<ModuleConf, ConfError> {
    let evaluated = evaluate(req)?;
    let (conf, mut problems) = interpret(req, &evaluated);
    problems.retain(|p| !p.strict_only);
    if problems.is_empty() {
        Ok(conf)
    } else {
        Err(ConfError::Invalid {
            file: req.file.clone(),
            problems,
        })
    }
}

/// Evaluate leniently (status): problems are ignored, whatever could be read is used.
pub fn load_lenient(req: &ConfRequest) -> Result<ModuleConf, ConfError> {
    let evaluated = evaluate::evaluate_with(req, true)?;
    Ok(interpret(req, &evaluated).0)
}
