//! Exit codes, named once. They are the original's (the table at the top of upstream
//! 3.4.3's `dkms`): scripts and package maintainer scripts test them, so every error type
//! maps to one of these names, and the tests compare against the same names.
//!
//! The original gives one number several meanings (3 is "not added", "already added" and
//! "already built"); each meaning has its own name here, with the number it shares.

/// Everything went as asked (also: a remove cancelled by `--rpm_safe_upgrade`).
pub const SUCCESS: i32 = 0;

/// Not root, no write access, module or version missing, bad `-j`, a failure of our
/// own (a jobserver, a key) that the original has no code for.
pub const FAILURE: i32 = 1;
/// More arches than kernels on the command line.
pub const ARCH_COUNT: i32 = 1;
/// `match` without `--templatekernel`.
pub const MATCH_USAGE: i32 = 1;

/// An unknown option.
pub const UNKNOWN_OPTION: i32 = 2;
/// `-k` together with `--all`.
pub const KERNEL_WITH_ALL: i32 = 2;
/// The module's source directory (or the archive named) does not exist.
pub const SOURCE_MISSING: i32 = 2;
/// `match` with the same kernel as template and target.
pub const MATCH_SAME_KERNEL: i32 = 2;

/// The module version is not in the dkms tree.
pub const NOT_ADDED: i32 = 3;
/// The module version is in the dkms tree already.
pub const ALREADY_ADDED: i32 = 3;
/// The module version is already built for the kernel.
pub const ALREADY_BUILT: i32 = 3;
/// `-a` together with `--all`.
pub const ARCH_WITH_ALL: i32 = 3;
/// An archive without any dkms.conf in it.
pub const ARCHIVE_WITHOUT_CONF: i32 = 3;

/// Two actions on one command line.
pub const TWO_ACTIONS: i32 = 4;
/// A module version whose source is gone (its link dangles).
pub const BROKEN: i32 = 4;
/// Several kernels (or none) where the action takes exactly one.
pub const ONE_KERNEL: i32 = 4;
/// Neither /etc/os-release nor /usr/lib/os-release.
pub const NO_OS_RELEASE: i32 = 4;
/// dkms.conf cannot be found.
pub const CONF_MISSING: i32 = 4;

/// `--all` given to an action that does not take it.
pub const ALL_NOT_SUPPORTED: i32 = 5;
/// A PATCH with `..`, or not found.
pub const BAD_PATCH: i32 = 5;

/// An install aborted or rolled back, a patch that does not apply, a tarball not made.
pub const INSTALL_FAILED: i32 = 6;
/// mktarball of a module not built, or an archive that could not be written.
pub const TARBALL_FAILED: i32 = 6;

/// A module that make did not produce (or the build's files could not be kept).
pub const BUILT_MODULE_MISSING: i32 = 7;
/// An archive that cannot be unpacked or is not a dkms archive.
pub const BAD_ARCHIVE: i32 = 7;

/// A bad dkms.conf.
pub const BAD_CONF: i32 = 8;
/// `--binaries-only` together with `--source-only`.
pub const BINARIES_AND_SOURCE_ONLY: i32 = 8;
/// A build without source, the directory holding almost nothing.
pub const NO_SOURCE: i32 = 8;
/// ldtarball of a module version already added, without `--force`.
pub const ALREADY_LOADED: i32 = 8;

/// A source directory without a dkms.conf.
pub const NO_DKMS_CONF: i32 = 9;
/// No write access where the tarball goes.
pub const TARBALL_NOT_WRITABLE: i32 = 9;
/// An rpm archive (the original installs it with rpm; we do not).
pub const RPM_UNSUPPORTED: i32 = 9;

/// make failed.
pub const BUILD_FAILED: i32 = 10;

// Our additions (the original has no such actions).

/// `owner`: some PATH was placed by no installed module (as `dpkg -S` exits 1).
pub const NOT_OWNED: i32 = 1;
/// `owner` without a PATH.
pub const NO_PATHS: i32 = 2;
/// `verify`: a recorded file is missing or modified, or a module file is stray.
pub const VERIFY_FAILED: i32 = 1;
/// One or more modules failed during autoinstall.
pub const AUTOINSTALL_FAILED: i32 = 11;
/// A BUILD_DEPENDS dependency is not installed.
pub const MISSING_DEPENDENCY: i32 = 13;
/// kernel_preinst or kernel_prerm could not remove every module.
pub const KERNEL_REMOVAL_FAILED: i32 = 14;
/// `lint`: the dkms.conf has a mistake that breaks modules.
pub const LINT_FINDINGS: i32 = 1;
/// `scaffold`: the source says too little to write a dkms.conf (no Kbuild or Makefile,
/// no module, no version, two modules of one name), or a file is there already.
pub const SCAFFOLD_FAILED: i32 = 9;
/// `secureboot`: this machine does not load modules signed with dkms's key (not
/// enrolled, only pending, or a kernel enforcing signatures without it).
pub const KEY_NOT_TRUSTED: i32 = 1;
/// `preflight`: a module installed for the running or the newest kernel would not be
/// there on the kernel checked (it fails to build, or has no source to build).
pub const PREFLIGHT_LOSES: i32 = 20;
/// An empty kernel version or architecture.
pub const EMPTY_KERNEL_OR_ARCH: i32 = 16;
/// The kernel's headers are not installed.
pub const NO_HEADERS: i32 = 21;
/// BUILD_EXCLUSIVE says this module is not for this kernel: skipped, not failed.
pub const EXCLUDED: i32 = 77;
/// PRE_INSTALL failed.
pub const PRE_INSTALL_FAILED: i32 = 101;
