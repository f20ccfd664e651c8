//! The request, resolved once: every decision the commands below the dispatcher need.
//!
//! Why: when each command reads the raw command line itself, each one decides again what
//! an option means, and some forget one (a `--kernelsourcedir` that one reader of
//! dkms.conf honoured and four ignored). Here the request becomes one value; the
//! commands read only it, and every dkms.conf they read is built from its
//! [`ConfOverrides`] through the one constructor, [`ConfRequest::new`].

use std::path::PathBuf;

use crate::cli::{Action, Request};
use crate::conf::{ConfOverrides, ConfRequest, KernelDirs};
use crate::framework::Settings;
use crate::state::KernelArch;

/// Which modules, versions and kernels the user named.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub module: Option<String>,
    pub version: Option<String>,
    pub kernels: Vec<String>,
    pub arches: Vec<String>,
    /// `--all`: every kernel the module version is built for.
    pub all: bool,
    /// `autoinstall --all-kernels` (ours): every kernel with headers.
    pub all_kernels: bool,
    /// `match --templatekernel`.
    pub template_kernel: Option<String>,
    /// A source directory or dkms.conf path given instead of `-m/-v` (add, build, install).
    pub source_dir: Option<PathBuf>,
    /// Plain path arguments (owner, verify, lint, scaffold).
    pub paths: Vec<PathBuf>,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Output {
    pub json: bool,
    /// `status --failed`.
    pub failed: bool,
}

/// mktarball / ldtarball.
#[derive(Debug, Clone, Default)]
pub struct Tarball {
    pub archive: Option<PathBuf>,
    pub source_only: bool,
    pub binaries_only: bool,
}

/// preflight.
#[derive(Debug, Clone, Default)]
pub struct Preflight {
    pub headers: Vec<PathBuf>,
    /// Called from a package manager's hook: framework.conf decides the exit status.
    pub hook: bool,
}

/// scaffold.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scaffold {
    pub pkgbuild: bool,
    pub install_script: bool,
    pub debian: bool,
    pub dry_run: bool,
}

/// secureboot.
#[derive(Debug, Clone, Copy, Default)]
pub struct Secureboot {
    pub enroll: bool,
    pub root_pw: bool,
}

/// Every decision the commands need, made once from the request.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub action: Option<Action>,
    pub target: Target,
    /// `-c FILE`: the dkms.conf to read instead of the module's own.
    pub conf_file: Option<PathBuf>,
    /// `--kernelsourcedir`, `--config`, `--directive`: applied to every dkms.conf read.
    pub conf: ConfOverrides,
    pub force: bool,
    pub force_version_override: bool,
    /// `--rpm_safe_upgrade`: the lock and removal semantics of an RPM upgrade.
    pub rpm_safe_upgrade: bool,
    /// depmod after an install or uninstall (`--no-depmod` turns it off).
    pub depmod: bool,
    /// Compile again a failure whose inputs did not change (`--retry`).
    pub retry: bool,
    /// mkbmdeb / mkbmpkg / mkbmrpm `--revision`.
    pub revision: u32,
    pub output: Output,
    pub tarball: Tarball,
    pub preflight: Preflight,
    pub scaffold: Scaffold,
    pub secureboot: Secureboot,
}

impl Options {
    /// Resolve `req`.
    pub fn resolve(req: &Request) -> Options {
        Options {
            action: req.action,
            target: Target {
                module: req.module.clone(),
                version: req.version.clone(),
                kernels: req.kernels.clone(),
                arches: req.arches.clone(),
                all: req.all,
                all_kernels: req.all_kernels,
                template_kernel: req.template_kernel.clone(),
                source_dir: req.source_dir.clone(),
                paths: req.paths.clone(),
            },
            conf_file: req.conf.clone(),
            conf: ConfOverrides {
                kernel_source_dir: req.kernel_source_dir.clone(),
                kernel_config: req.kernel_config.clone(),
                directives: req.directives.clone(),
            },
            force: req.force,
            force_version_override: req.force_version_override,
            rpm_safe_upgrade: req.rpm_safe_upgrade,
            depmod: !req.no_depmod,
            retry: req.retry,
            revision: req.revision.unwrap_or(1),
            output: Output {
                json: req.json,
                failed: req.failed,
            },
            tarball: Tarball {
                archive: req.archive.clone(),
                source_only: req.source_only,
                binaries_only: req.binaries_only,
            },
            preflight: Preflight {
                headers: req.headers.clone(),
                hook: req.hook,
            },
            scaffold: Scaffold {
                pkgbuild: req.pkgbuild,
                install_script: req.install_script,
                debian: req.debian,
                dry_run: req.dry_run,
            },
            secureboot: Secureboot {
                enroll: req.enroll,
                root_pw: req.root_pw,
            },
        }
    }

    /// `kernel`'s build directory and config, as this run points at them.
    pub fn kernel_dirs(&self, settings: &Settings, kernel: &str) -> KernelDirs {
        self.conf.kernel_dirs(settings, kernel)
    }

    /// The request to read `file` as `m/v` on `ka`, with this run's overrides.
    pub fn conf_request<'a>(
        &'a self,
        settings: &'a Settings,
        file: PathBuf,
        m: &'a str,
        v: &'a str,
        ka: &'a KernelArch,
    ) -> ConfRequest<'a> {
        ConfRequest::new(settings, &self.conf, file, m, v, &ka.kernel, &ka.arch)
    }
}
