//! The crate-level error: every failure, typed, with the original's exit code.

use std::path::PathBuf;

use thiserror::Error;

use crate::build::BuildError;
use crate::cli::CliError;
use crate::conf::ConfError;
use crate::framework::FrameworkError;
use crate::install::InstallError;
use crate::state::StateError;

/// Failures of an action itself (argument combinations, tree preconditions).
#[derive(Debug, Error)]
pub enum ActionError {
    #[error("You must be root to use this command.")]
    NotRoot,
    #[error("Arguments <module> and <module-version> are not specified.\nUsage: {0} <module>/<module-version> or\n       {0} -m <module>/<module-version> or\n       {0} -m <module> -v <module-version>")]
    MissingModuleArgs(&'static str),
    #[error("The module/version combo: {0}-{1} is not located in the DKMS tree.")]
    NotAdded(String, String),
    #[error("DKMS tree already contains: {0}-{1}\nYou cannot add the same module/version combo more than once.")]
    AlreadyAdded(String, String),
    #[error("Could not find module source directory.\nDirectory: {0} does not exist.")]
    SourceDirMissing(PathBuf),
    #[error("{0} must contain a dkms.conf file!")]
    NoDkmsConf(PathBuf),
    #[error("The action {0} does not support the --all parameter.")]
    AllNotSupported(&'static str),
    #[error(
        "The action {0} does not support multiple kernel version parameters on the command line."
    )]
    OneKernelOnly(&'static str),
    #[error("The action {0} requires exactly one kernel version parameter on the command line (-k <kernel>).")]
    OneKernelRequired(&'static str),
    #[error("Empty kernel version or architecture given on the command line.")]
    EmptyKernelOrArch,
    #[error("{module}/{version}: Missing the module source directory or the symbolic link pointing to it.\nManual intervention is required!")]
    Broken { module: String, version: String },
    #[error("Module name '{0}' is not a valid name: it must not be empty, contain '/' or start with '.'.")]
    BadModuleName(String),
    #[error("Cannot copy {from} to {to}: {source}")]
    Copy {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A failure whose message and original exit code are decided where it happens
    /// (tarballs, key generation).
    #[error("{1}")]
    Coded(i32, String),
}

impl ActionError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ActionError::NotRoot | ActionError::MissingModuleArgs(_) => 1,
            ActionError::NotAdded(..) | ActionError::AlreadyAdded(..) => 3,
            ActionError::SourceDirMissing(_) => 2,
            ActionError::NoDkmsConf(_) => 9,
            ActionError::AllNotSupported(_) => 5,
            ActionError::OneKernelOnly(_)
            | ActionError::OneKernelRequired(_)
            | ActionError::Broken { .. } => 4,
            ActionError::EmptyKernelOrArch => 16,
            ActionError::BadModuleName(_) => 1,
            ActionError::Copy { .. } => 6,
            ActionError::Coded(code, _) => *code,
        }
    }
}

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Cli(#[from] CliError),
    #[error(transparent)]
    Framework(#[from] FrameworkError),
    #[error(transparent)]
    Conf(#[from] ConfError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Action(#[from] ActionError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Install(#[from] InstallError),
}

impl Error {
    /// The exit code the original uses for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Cli(e) => e.exit_code(),
            Error::Framework(e) => e.exit_code(),
            Error::Conf(e) => e.exit_code(),
            Error::State(e) => e.exit_code(),
            Error::Action(e) => e.exit_code(),
            Error::Build(e) => e.exit_code(),
            Error::Install(e) => e.exit_code(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
