//! The errors of the commands: [`ActionError`] (argument combinations, tree
//! preconditions) and [`Error`](enum@Error), every failure of a run, typed, with the original's exit
//! code; rendered once, at the edge (`crate::run`).

use std::path::PathBuf;

use thiserror::Error;

use crate::cli::CliError;
use crate::conf::ConfError;
use crate::exit;
use crate::framework::FrameworkError;
use crate::module::install::InstallError;
use crate::module::kbuild::BuildError;
use crate::state::StateError;

/// Failures of an action itself (argument combinations, tree preconditions).
#[derive(Debug, Error)]
pub enum ActionError {
    #[error("You must be root to use this command.")]
    NotRoot,
    #[error("Which paths? Usage: dkms owner PATH...")]
    NoPaths,
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
    #[error("{what} '{name}' is not a valid name: it {flaw}. A name becomes a directory of the dkms and source trees; it must not be empty, contain '/' or white space, or start with '.'.")]
    BadName {
        what: &'static str,
        name: String,
        flaw: &'static str,
    },
    #[error("Cannot copy {from} to {to}: {source}")]
    Copy {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("You must be root to use this command with the --force option.")]
    ForceNeedsRoot,
    #[error("No modules built for {kernel} ({arch}).\nModules must already be in the built state before using mktarball.")]
    TarballNotBuilt { kernel: String, arch: String },
    #[error("Missing write permissions for {0}.")]
    TarballNotWritable(PathBuf),
    #[error("Failed to make tarball {path}: {source}")]
    Tarball {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    TarballIo(#[from] crate::fsutil::IoError),
    #[error("{0} does not exist.")]
    ArchiveMissing(PathBuf),
    #[error("Unable to install {0}: rpm packages are not supported by this dkms.")]
    RpmUnsupported(PathBuf),
    #[error("Cannot unpack {path}: {source}")]
    Unpack {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Tarball does not appear to be a correctly formed DKMS archive. No dkms.conf found within it.")]
    ArchiveWithoutConf,
    #[error("No valid dkms.conf in dkms_source_tree or dkms_binaries_only.\n{0} is not a valid DKMS tarball.")]
    InvalidArchive(PathBuf),
    #[error("{0}-{1} is already added!\nAborting.")]
    AlreadyLoaded(String, String),
    #[error("Cannot create the make jobserver: {0}")]
    Jobserver(std::io::Error),
    #[error("One or more modules failed to install during autoinstall.\nRefer to previous errors for more information.")]
    AutoinstallFailed,
    #[error("Some modules could not be removed for kernel {0}.")]
    KernelRemovalFailed(String),
    #[error("Invalid number of parameters passed.\nUsage: match --templatekernel=<kernel-version> -k <kernel-version>\n    or: match --templatekernel=<kernel-version> -k <kernel-version> <module>")]
    MatchUsage,
    #[error("The templatekernel and the specified kernel version are the same.")]
    MatchSameKernel,
    #[error("The module {0} is not located in the DKMS tree.")]
    MatchNotAdded(String),
    #[error("{0}")]
    Key(String),
    #[error("Which kernel? Usage: dkms preflight -k <kernel> [-k <kernel>...] or dkms preflight --headers <dir or headers .deb>...")]
    PreflightWhat,
    #[error("{0} is not a kernel headers directory: it has no include/config/kernel.release.")]
    NotHeaders(PathBuf),
    #[error("No kernel headers in {0}: none of them holds a usr/src/linux-headers-<kernel>/include/config/kernel.release.\nGive the linux-headers-<kernel> package (with its -common and linux-kbuild packages, unless they are installed).")]
    NoHeadersIn(String),
    #[error("The headers in {dir} are for the {theirs} architecture; this is {ours}.\nModules built against them could not load here: give this machine's headers, or -a with their architecture.")]
    HeadersArch {
        dir: PathBuf,
        theirs: String,
        ours: String,
    },
    #[error("{path} cannot be unpacked: it is not a readable Debian package.\n{output}")]
    BadPackage { path: PathBuf, output: String },
    #[error("Modules installed for the running or newest kernel would be lost with this kernel (see above).")]
    PreflightLoses,
    #[error("Which source? Usage: dkms scaffold <module source directory> [--pkgbuild [--install-script]] [--debian] [--dry-run]")]
    ScaffoldWhat,
    #[error("{0}")]
    Scaffold(String),
    #[error("Which dkms.conf? Usage: dkms lint <dkms.conf or its directory> or dkms lint <module>/<version>")]
    LintWhat,
}

impl ActionError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ActionError::NotRoot
            | ActionError::MissingModuleArgs(_)
            | ActionError::BadName { .. }
            | ActionError::ForceNeedsRoot
            | ActionError::Jobserver(_)
            | ActionError::Key(_) => exit::FAILURE,
            ActionError::NotAdded(..) | ActionError::MatchNotAdded(_) => exit::NOT_ADDED,
            ActionError::AlreadyAdded(..) => exit::ALREADY_ADDED,
            ActionError::SourceDirMissing(_) | ActionError::ArchiveMissing(_) => {
                exit::SOURCE_MISSING
            }
            ActionError::NoDkmsConf(_) => exit::NO_DKMS_CONF,
            ActionError::AllNotSupported(_) => exit::ALL_NOT_SUPPORTED,
            ActionError::OneKernelOnly(_) | ActionError::OneKernelRequired(_) => exit::ONE_KERNEL,
            ActionError::Broken { .. } => exit::BROKEN,
            ActionError::EmptyKernelOrArch => exit::EMPTY_KERNEL_OR_ARCH,
            ActionError::Copy { .. } => exit::INSTALL_FAILED,
            ActionError::TarballNotBuilt { .. }
            | ActionError::Tarball { .. }
            | ActionError::TarballIo(_) => exit::TARBALL_FAILED,
            ActionError::TarballNotWritable(_) => exit::TARBALL_NOT_WRITABLE,
            ActionError::RpmUnsupported(_) => exit::RPM_UNSUPPORTED,
            ActionError::Unpack { .. } | ActionError::InvalidArchive(_) => exit::BAD_ARCHIVE,
            ActionError::ArchiveWithoutConf => exit::ARCHIVE_WITHOUT_CONF,
            ActionError::AlreadyLoaded(..) => exit::ALREADY_LOADED,
            ActionError::AutoinstallFailed => exit::AUTOINSTALL_FAILED,
            ActionError::KernelRemovalFailed(_) => exit::KERNEL_REMOVAL_FAILED,
            ActionError::MatchUsage => exit::MATCH_USAGE,
            ActionError::MatchSameKernel => exit::MATCH_SAME_KERNEL,
            ActionError::NoPaths => exit::NO_PATHS,
            ActionError::PreflightWhat => exit::ONE_KERNEL,
            ActionError::NotHeaders(_)
            | ActionError::NoHeadersIn(_)
            | ActionError::HeadersArch { .. } => exit::NO_HEADERS,
            ActionError::BadPackage { .. } => exit::BAD_ARCHIVE,
            ActionError::PreflightLoses => exit::PREFLIGHT_LOSES,
            ActionError::ScaffoldWhat | ActionError::LintWhat => exit::FAILURE,
            ActionError::Scaffold(_) => exit::SCAFFOLD_FAILED,
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
    #[error(transparent)]
    Package(#[from] crate::module::package::PackageError),
}

/// A file operation of a command itself (the tarball and package actions, whose
/// failures the original reports with exit 6).
impl From<crate::fsutil::IoError> for Error {
    fn from(e: crate::fsutil::IoError) -> Error {
        Error::Action(ActionError::TarballIo(e))
    }
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
            Error::Package(e) => e.exit_code(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
