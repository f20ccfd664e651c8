//! Building one module version for one kernel with the kernel's own kbuild.
//!
//! Steps (reference §2, build): the kernel headers check, BUILD_EXCLUSIVE and
//! BUILD_DEPENDS, a fresh copy of the source into `<v>/build/` (with the
//! `/etc/dkms/<m>/patches` overlay), patches, PRE_BUILD, `make`, the built-module check,
//! then strip + compress into a staging directory `<v>/<k>/.tmp_<a>_XXXXXX` that becomes
//! `<v>/<k>/<a>` by one rename — a build is either absent or complete. Every external
//! command is logged to `make.log` in the original's entry format.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::cmdlog::CommandLog as Log;
use crate::conf::{ModuleConf, ModuleEntry};
use crate::exit;
use crate::fsutil::io_error;
use crate::kernel::KernelConfig;
use crate::module::compress::Compression;
use crate::module::diagnose::{diagnose, Diagnosis, Headers};
use crate::state::failed::Failure;
use crate::state::fingerprint::Fingerprint;
use crate::transaction::Scratch;

#[derive(Debug, Error)]
pub enum BuildError {
    #[error("This module/version has already been built on: {kernel}\nDirectory {dir} already exists. Use the dkms remove function before trying to build again.")]
    AlreadyBuilt { kernel: String, dir: PathBuf },
    #[error("The dkms.conf for module {module} includes a BUILD_EXCLUSIVE directive which does not match this kernel/arch/config:\n  {}\nThis indicates that it should not be built.", reasons.join("\n  "))]
    Excluded {
        module: String,
        reasons: Vec<String>,
    },
    #[error(
        "The directory {0} does not appear to have module source located within it.\nBuild halted."
    )]
    NoSource(PathBuf),
    #[error("Your kernel headers for kernel {kernel} cannot be found at {dir}.\nPlease install your distribution's kernel headers package matching {kernel} (on Debian and Ubuntu: apt-get install linux-headers-{kernel}).")]
    NoHeaders { kernel: String, dir: PathBuf },
    #[error("The module {module} requires {dependency}, which is not installed for kernel {kernel} ({arch}) (BUILD_DEPENDS).\nInstall {dependency} first, or use --force.")]
    MissingDependency {
        module: String,
        dependency: String,
        kernel: String,
        arch: String,
    },
    #[error("Patch {0} as specified in dkms.conf contains '..'.")]
    PatchPath(String),
    #[error("Patch {patch} as specified in dkms.conf cannot be found in {dir}.")]
    PatchMissing { patch: String, dir: PathBuf },
    #[error("Application of patch {patch} failed.\nCheck {log} for more information.")]
    PatchFailed { patch: String, log: PathBuf },
    #[error(
        "The {kind} script failed with exit status {code}.\nCheck {log} for more information."
    )]
    Script {
        kind: &'static str,
        code: i32,
        log: PathBuf,
    },
    #[error("Bad return status for module build on kernel: {kernel} ({arch})\nConsult {log} for more information.{excerpt}{}", diagnosis.as_ref().map(|d| format!("\n{}", d.explained())).unwrap_or_default())]
    Make {
        kernel: String,
        arch: String,
        log: PathBuf,
        excerpt: String,
        /// The module's first own error and the declarations it is about.
        diagnosis: Option<Box<Diagnosis>>,
    },
    #[error("Build of {name}.ko failed for: {kernel} ({arch})\nMake sure the name of the generated module is correct and at the root of the\nbuild directory (BUILT_MODULE_NAME / BUILT_MODULE_LOCATION), or consult make.log in\n{build_dir} for more information.")]
    BuiltModuleMissing {
        name: String,
        kernel: String,
        arch: String,
        build_dir: PathBuf,
    },
    #[error("{}/{} failed to build for kernel {} ({}) on {} (exit status {}), and nothing it depends on has changed since, so it is not built again.\nSee {}; to try anyway: dkms autoinstall --retry, or dkms build {}/{} -k {} --force.", .0.module, .0.version, .0.kernel, .0.arch, .0.time, .0.exit_code, .0.log.display(), .0.module, .0.version, .0.kernel)]
    Unchanged(Box<Failure>),
    #[error("Cannot write the build log or run a build command: {0}")]
    Log(#[from] std::io::Error),
    #[error(transparent)]
    Io(#[from] crate::fsutil::IoError),
}

impl BuildError {
    /// What [`crate::module::diagnose`] could tell about a failed make.
    pub fn diagnosis(&self) -> Option<&Diagnosis> {
        match self {
            BuildError::Make { diagnosis, .. } => diagnosis.as_deref(),
            _ => None,
        }
    }

    /// Whether the error points at the build's make.log (the build got that far).
    fn names_the_log(&self) -> bool {
        matches!(
            self,
            BuildError::Make { .. }
                | BuildError::PatchFailed { .. }
                | BuildError::Script { .. }
                | BuildError::BuiltModuleMissing { .. }
        )
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            BuildError::AlreadyBuilt { .. } => exit::ALREADY_BUILT,
            BuildError::Excluded { .. } => exit::EXCLUDED,
            BuildError::Unchanged(failure) => failure.exit_code,
            BuildError::NoSource(_) => exit::NO_SOURCE,
            BuildError::NoHeaders { .. } => exit::NO_HEADERS,
            BuildError::MissingDependency { .. } => exit::MISSING_DEPENDENCY,
            BuildError::PatchPath(_) | BuildError::PatchMissing { .. } => exit::BAD_PATCH,
            BuildError::PatchFailed { .. } => exit::INSTALL_FAILED,
            BuildError::Script { code, .. } => *code,
            BuildError::Make { .. } => exit::BUILD_FAILED,
            BuildError::BuiltModuleMissing { .. } | BuildError::Io(_) | BuildError::Log(_) => {
                exit::BUILT_MODULE_MISSING
            }
        }
    }
}

/// Everything one build needs.
pub struct BuildJob<'a> {
    /// The module version and kernel.
    pub on: crate::module::ModuleOnKernel<'a>,
    pub kernel_source_dir: PathBuf,
    pub kernel_config: PathBuf,
    pub force: bool,
    /// The run's shared make jobserver: make gets it instead of its own `-jN`.
    pub jobserver: Option<&'a jobserver::Client>,
    /// Build in `<v>/.build-<k>-<a>` instead of the shared `<v>/build`, so the builds of
    /// one module version for several kernels can run at once (see [`private_build_ok`]).
    pub private_build: bool,
    /// How this kernel's modules are signed, decided (and said) once per kernel and run
    /// by the first build that needs it, whatever runs beside it.
    pub signer: &'a SignerCell,
    /// A build ahead of the kernel's installation (`dkms preflight`): the result goes to
    /// `<v>/.preflight/<k>/<a>`, which nothing lists as built, until the kernel's
    /// installation takes it (if its fingerprint still matches).
    pub ahead: bool,
    /// Do not build again what failed before with the same fingerprint (autoinstall at
    /// every boot), unless asked to retry.
    pub skip_known_failure: bool,
}

/// A kernel's signing decision, made at most once.
pub type SignerCell = std::sync::OnceLock<Option<crate::module::sign::policy::ModuleSigner>>;

/// Whether a module version can be built outside the shared `<v>/build` directory: its
/// make command is the default kbuild one (generated with that path, so we can generate
/// it with another) and its PRE_BUILD / POST_BUILD do not name the shared path.
pub fn private_build_ok(conf: &ModuleConf, shared_build_dir: &Path) -> bool {
    let shared = shared_build_dir.to_string_lossy();
    conf.make_is_default
        && [&conf.pre_build, &conf.post_build]
            .iter()
            .all(|s| s.as_deref().is_none_or(|s| !s.contains(&*shared)))
}

/// The kernel's headers are present: `<build dir>/include` exists.
pub fn check_headers(kernel: &str, dir: &Path) -> Result<(), BuildError> {
    if dir.join("include").is_dir() {
        Ok(())
    } else {
        Err(BuildError::NoHeaders {
            kernel: kernel.into(),
            dir: dir.into(),
        })
    }
}

impl BuildJob<'_> {
    fn version_dir(&self) -> PathBuf {
        self.on.tree.version_dir(self.on.module, self.on.version)
    }

    /// Where this build happens.
    fn build_dir(&self) -> PathBuf {
        if self.private_build {
            self.version_dir()
                .join(format!(".build-{}-{}", self.on.ka.kernel, self.on.ka.arch))
        } else {
            self.shared_build_dir()
        }
    }

    /// `<v>/build`: where the original builds, and where a failed build is left.
    fn shared_build_dir(&self) -> PathBuf {
        self.version_dir().join("build")
    }

    /// Where the result goes: `<v>/<k>/<a>`, or `<v>/.preflight/<k>/<a>` ahead of the
    /// kernel.
    fn result_dir(&self) -> PathBuf {
        if self.ahead {
            self.on
                .tree
                .preflight_dir(self.on.module, self.on.version, self.on.ka)
        } else {
            self.on
                .tree
                .build_dir(self.on.module, self.on.version, self.on.ka)
        }
    }

    /// What this build depends on, as things are now (None if the source is unreadable:
    /// the build then fails on it with its own error).
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        Fingerprint::compute(
            &self.version_dir().join("source"),
            &self.kernel_source_dir,
            &self.kernel_config,
            self.on.ka,
        )
        .ok()
    }

    /// Run the build; a failed private build is moved to `<v>/build` (with its
    /// make.log), where the original leaves a failed build. A failure is remembered
    /// (`state::failed`), a success forgets it.
    pub fn run(&self) -> Result<(), BuildError> {
        let fingerprint = self.fingerprint();
        if self.skip_known_failure {
            self.refuse_unchanged_failure(fingerprint.as_ref())?;
        }
        // A private build directory never outlives the build, even a killed one.
        let _scratch = match self.private_build {
            true => Some(Scratch::new(&self.on.tree.root, &self.build_dir())?),
            false => None,
        };
        let result = self.run_here(fingerprint.as_ref());
        let private = self.build_dir();
        match &result {
            Ok(()) => self
                .on
                .tree
                .forget_failure(self.on.module, self.on.version, self.on.ka),
            Err(e) if e.names_the_log() => {
                self.remember_failure(e, &private.join("make.log"), fingerprint)
            }
            Err(_) => {}
        }
        if self.private_build && result.is_err() && private.exists() {
            let shared = self.shared_build_dir();
            crate::crashpoint::step("keep the failed build", &shared);
            let _ = std::fs::remove_dir_all(&shared);
            let _ = std::fs::rename(&private, &shared);
        }
        result
    }

    /// The failure recorded for this kernel, if its fingerprint is this build's.
    fn refuse_unchanged_failure(&self, now: Option<&Fingerprint>) -> Result<(), BuildError> {
        let Some(failure) = self
            .on
            .tree
            .failure(self.on.module, self.on.version, self.on.ka)
        else {
            return Ok(());
        };
        if now.is_none() || failure.fingerprint.as_ref() != now {
            return Ok(());
        }
        Err(BuildError::Unchanged(Box::new(failure)))
    }

    /// Keep the failed build's log and its record.
    fn remember_failure(&self, error: &BuildError, log: &Path, fingerprint: Option<Fingerprint>) {
        self.keep_log(log);
        let kept = self.failed_log();
        let failure = Failure {
            schema: crate::state::failed::SCHEMA.into(),
            module: self.on.module.into(),
            version: self.on.version.into(),
            kernel: self.on.ka.kernel.clone(),
            arch: self.on.ka.arch.clone(),
            time: crate::report::now_utc(),
            exit_code: error.exit_code(),
            first_error: error.diagnosis().and_then(|d| d.first_error.clone()),
            errors: first_errors(&kept),
            diagnosis: error.diagnosis().map(Diagnosis::explained),
            log: kept,
            fingerprint,
        };
        if let Err(e) = self.on.tree.record_failure(&failure) {
            self.on.report.warn(&format!(
                "Cannot record the failed build of {}/{} for kernel {}: {e}",
                self.on.module, self.on.version, self.on.ka.kernel
            ));
        }
    }

    /// Where the make.log of this kernel's failed build is kept: the original's
    /// `<v>/build/make.log` holds only the last failure of any kernel.
    fn failed_log(&self) -> PathBuf {
        self.on
            .tree
            .failed_dir(self.on.module, self.on.version, self.on.ka)
            .join("make.log")
    }

    /// The first error in the module's own source and, when it names a kernel symbol,
    /// its declaration here and in the newest kernel where this version built.
    fn diagnose(&self, log: &Path) -> Option<Diagnosis> {
        let mut built: Vec<(String, PathBuf)> = self
            .on
            .tree
            .built(
                self.on.module,
                self.on.version,
                None,
                Some(&self.on.ka.arch),
            )
            .into_iter()
            .filter(|ka| ka.kernel != self.on.ka.kernel)
            .map(|ka| {
                let dir = crate::kernel::build_dir(self.on.settings, None, &ka.kernel);
                (ka.kernel, dir)
            })
            .filter(|(_, dir)| dir.join("include").is_dir())
            .collect();
        built.sort_by_key(|(k, _)| std::cmp::Reverse(crate::kernel::ver(k)));
        let built_on: Vec<Headers> = built
            .iter()
            .map(|(kernel, dir)| Headers { kernel, dir })
            .collect();
        let failing = Headers {
            kernel: &self.on.ka.kernel,
            dir: &self.kernel_source_dir,
        };
        let d = diagnose(log, &self.build_dir(), &failing, &built_on);
        d.first_error.is_some().then_some(d)
    }

    /// Keep the log of this kernel's failed build at [`Self::failed_log`].
    fn keep_log(&self, log: &Path) {
        let kept = self.failed_log();
        let copied = kept
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| std::fs::copy(log, &kept));
        if let Err(e) = copied {
            self.on.report.warn(&format!(
                "Cannot keep {} as {}: {e}",
                log.display(),
                kept.display()
            ));
        }
    }

    fn run_here(&self, fingerprint: Option<&Fingerprint>) -> Result<(), BuildError> {
        let result_dir = self.result_dir();
        let buildable = self.preconditions(&result_dir)?;
        let source = self.version_dir().join("source");
        let signer = self.signer.get_or_init(|| {
            crate::module::sign::policy::prepare(
                self.on.settings,
                &self.on.ka.kernel,
                &self.kernel_config,
                self.on.report,
            )
        });
        let config = KernelConfig::read(&self.kernel_config);
        self.prepare_build_dir(&source)?;
        let log_path = self.build_dir().join("make.log");
        let mut log = Log::create(&log_path)?;
        log.header(self.on.module, self.on.version, self.on.ka)?;
        log.env = self.make_environment(config.as_ref());
        log.echo = self.on.settings.verbose;
        self.apply_patches(&mut log)?;
        if let Some(script) = &self.on.conf.pre_build {
            self.build_script(&mut log, "pre_build", script)?;
        }
        self.make(&mut log, config.as_ref())?;
        self.check_built(&buildable)?;
        self.commit(
            &mut log,
            config.as_ref(),
            &buildable,
            signer.as_ref(),
            fingerprint,
        )?;
        if let Some(script) = &self.on.conf.post_build {
            // The log now lives in the committed build; POST_BUILD appends to it.
            let mut log = Log::append(&result_dir.join("log/make.log"))?;
            log.env = self.make_environment(config.as_ref());
            self.build_script(&mut log, "post_build", script)?;
        }
        self.clean_build_dir();
        Ok(())
    }

    /// The original's checks before anything is built, in its order: not built yet, not
    /// excluded (77), a source, headers, BUILD_DEPENDS. Returns the modules to build.
    fn preconditions(&self, result_dir: &Path) -> Result<Vec<&ModuleEntry>, BuildError> {
        if result_dir.exists() {
            return Err(BuildError::AlreadyBuilt {
                kernel: self.on.ka.kernel.clone(),
                dir: result_dir.to_path_buf(),
            });
        }
        let modules = &self.on.conf.modules;
        let buildable: Vec<_> = modules.iter().filter(|m| !m.exclusion.excluded()).collect();
        if self.on.conf.exclusion.excluded() || (!modules.is_empty() && buildable.is_empty()) {
            let mut reasons = self.on.conf.exclusion.reasons.clone();
            reasons.extend(modules.iter().flat_map(|m| m.exclusion.reasons.clone()));
            reasons.dedup();
            return Err(BuildError::Excluded {
                module: self.on.module.into(),
                reasons,
            });
        }
        let source = self.version_dir().join("source");
        if !crate::state::holds_source(&source) {
            return Err(BuildError::NoSource(source));
        }
        check_headers(&self.on.ka.kernel, &self.kernel_source_dir)?;
        self.check_dependencies()?;
        Ok(buildable)
    }

    /// Run the module's make command (in the private build directory if there is one),
    /// with this run's jobserver or `-j`.
    fn make(&self, log: &mut Log, config: Option<&KernelConfig>) -> Result<(), BuildError> {
        let jobs = match self.jobserver {
            Some(_) => Jobs::Jobserver,
            None => Jobs::Limit(self.on.settings.parallel_jobs),
        };
        log.jobserver = self.jobserver.cloned();
        let conf_make = if self.private_build {
            self.on.conf.make_command.replace(
                &format!("M={}", self.shared_build_dir().display()),
                &format!("M={}", self.build_dir().display()),
            )
        } else {
            self.on.conf.make_command.clone()
        };
        let make = make_command(&conf_make, jobs, &self.on.ka.kernel, config);
        // The lines of builds running at once interleave: each names its module.
        let what = match self.jobserver {
            Some(_) => format!("{}/{} module(s)", self.on.module, self.on.version),
            None => "module(s)".to_string(),
        };
        self.on.report.line(&format!(
            "Building {what} for kernel {} ({})...",
            self.on.ka.kernel, self.on.ka.arch
        ));
        if log.run("Building module(s)", &make, &self.build_dir(), &[])? != 0 {
            log.flush()?;
            return Err(BuildError::Make {
                kernel: self.on.ka.kernel.clone(),
                arch: self.on.ka.arch.clone(),
                excerpt: error_excerpt(&log.path),
                log: self.failed_log(),
                diagnosis: self.diagnose(&log.path).map(Box::new),
            });
        }
        Ok(())
    }

    /// Every module to build is there after make (exit 7 otherwise).
    fn check_built(&self, buildable: &[&ModuleEntry]) -> Result<(), BuildError> {
        for m in buildable {
            let name = format!("{}{}", m.built_location, m.built_name);
            if !self.build_dir().join(format!("{name}.ko")).is_file() {
                return Err(BuildError::BuiltModuleMissing {
                    name,
                    kernel: self.on.ka.kernel.clone(),
                    arch: self.on.ka.arch.clone(),
                    build_dir: self.shared_build_dir(),
                });
            }
        }
        Ok(())
    }

    /// The compiler variables, plus what the framework's `build_environment` file
    /// exports (3.3+): it is sourced by bash and every exported variable that differs
    /// from ours is passed to every build command.
    fn make_environment(&self, config: Option<&KernelConfig>) -> Vec<(String, String)> {
        let mut env = compiler_env(config);
        let file = &self.on.settings.build_environment;
        if file.is_empty() || !Path::new(file).is_file() {
            return env;
        }
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(". \"$1\" >/dev/null 2>&1; env -0")
            .arg("dkms")
            .arg(file)
            .stdin(std::process::Stdio::null())
            .output();
        let Ok(out) = out else { return env };
        for pair in out.stdout.split(|b| *b == 0) {
            let text = String::from_utf8_lossy(pair);
            let Some((k, v)) = text.split_once('=') else {
                continue;
            };
            if std::env::var(k).ok().as_deref() != Some(v)
                && !["_", "SHLVL", "PWD", "OLDPWD"].contains(&k)
            {
                env.retain(|(name, _)| name != k);
                env.push((k.to_string(), v.to_string()));
            }
        }
        env
    }

    /// BUILD_DEPENDS_REBUILD bookkeeping: `.dep_<dependency>` holds the version of each
    /// dependency this build was made against.
    fn record_dependency_versions(&self, dir: &Path) -> Result<(), BuildError> {
        if !self.on.conf.build_depends_rebuild {
            return Ok(());
        }
        for dep in &self.on.conf.build_depends {
            let link = self.on.tree.kernel_link(dep, self.on.ka);
            let Ok(target) = std::fs::read_link(&link) else {
                continue;
            };
            let version = target
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_default();
            let file = dir.join(format!(".dep_{dep}"));
            std::fs::write(&file, format!("{version}\n")).map_err(io_error("write", &file))?;
        }
        Ok(())
    }

    fn check_dependencies(&self) -> Result<(), BuildError> {
        for dep in &self.on.conf.build_depends {
            let link = self.on.tree.kernel_link(dep, self.on.ka);
            if link.exists() {
                continue;
            }
            let err = BuildError::MissingDependency {
                module: self.on.module.into(),
                dependency: dep.clone(),
                kernel: self.on.ka.kernel.clone(),
                arch: self.on.ka.arch.clone(),
            };
            if !self.force {
                return Err(err);
            }
            self.on.report.warn(&err.to_string());
        }
        Ok(())
    }

    /// `rm -rf build/; cp -a source/ build/`, then the `/etc/dkms/<m>/patches` overlay.
    fn prepare_build_dir(&self, source: &Path) -> Result<(), BuildError> {
        let build = self.build_dir();
        if build.exists() {
            std::fs::remove_dir_all(&build).map_err(io_error("delete", &build))?;
        }
        let source = std::fs::canonicalize(source).map_err(io_error("resolve", source))?;
        crate::fsutil::copy_tree(&source, &build)
            .map_err(io_error("copy the source to", &build))?;
        let overlay = self
            .on
            .settings
            .config_dir
            .join(self.on.module)
            .join("patches");
        if overlay.is_dir() {
            crate::fsutil::copy_tree(&overlay, &build.join("patches"))
                .map_err(io_error("copy patches to", &build))?;
        }
        Ok(())
    }

    fn apply_patches(&self, log: &mut Log) -> Result<(), BuildError> {
        for p in &self.on.conf.patches {
            if p.split('/').any(|c| c == "..") || p.starts_with('/') {
                return Err(BuildError::PatchPath(p.clone()));
            }
            let dir = self.build_dir().join("patches");
            if !dir.join(p).is_file() {
                return Err(BuildError::PatchMissing {
                    patch: p.clone(),
                    dir,
                });
            }
            let cmd = format!("patch -p1 < ./patches/{}", crate::bash::quote(p));
            if log.run(&format!("Applying patch {p}"), &cmd, &self.build_dir(), &[])? != 0 {
                return Err(BuildError::PatchFailed {
                    patch: p.clone(),
                    log: self.failed_log(),
                });
            }
        }
        Ok(())
    }

    /// PRE_BUILD / POST_BUILD: `<build>/<script>` must be executable; run from the build
    /// directory, output to make.log, a non-zero status aborts with that status.
    fn build_script(
        &self,
        log: &mut Log,
        kind: &'static str,
        script: &str,
    ) -> Result<(), BuildError> {
        let first = script.split_whitespace().next().unwrap_or("");
        let program = self.build_dir().join(first);
        if !program.is_file() || rustix::fs::access(&program, rustix::fs::Access::EXEC_OK).is_err()
        {
            self.on
                .report
                .warn(&format!("The {kind} script is not executable."));
            return Ok(());
        }
        let cmd = format!(
            "{} {}",
            crate::bash::quote(&program.to_string_lossy()),
            script[first.len()..].trim()
        );
        let code = log.run(
            &format!("Running the {kind} script"),
            &cmd,
            &self.build_dir(),
            &[],
        )?;
        if code != 0 {
            return Err(BuildError::Script {
                kind,
                code,
                log: self.failed_log(),
            });
        }
        Ok(())
    }

    /// Strip, compress and place every built module into a staging directory, then
    /// rename it to `<v>/<k>/<a>`.
    fn commit(
        &self,
        log: &mut Log,
        config: Option<&KernelConfig>,
        modules: &[&ModuleEntry],
        signer: Option<&crate::module::sign::policy::ModuleSigner>,
        fingerprint: Option<&Fingerprint>,
    ) -> Result<(), BuildError> {
        let final_dir = self.result_dir();
        let kernel_dir = final_dir.parent().expect("<v>/<k>").to_path_buf();
        std::fs::create_dir_all(&kernel_dir).map_err(io_error("create", &kernel_dir))?;
        let staged = kernel_dir.join(format!(".tmp_{}_{}", self.on.ka.arch, std::process::id()));
        let _scratch = Scratch::new(&self.on.tree.root, &staged)?;
        let module_dir = staged.join("module");
        let log_dir = staged.join("log");
        for d in [&module_dir, &log_dir] {
            std::fs::create_dir_all(d).map_err(io_error("create", d))?;
        }
        let symvers = self.build_dir().join("Module.symvers");
        if symvers.is_file() {
            std::fs::copy(&symvers, module_dir.join("Module.symvers"))
                .map_err(io_error("copy", &symvers))?;
        }
        if self.kernel_config.is_file() {
            let _ = std::fs::copy(&self.kernel_config, log_dir.join(".config"));
        }
        let compression = Compression::for_kernel(
            config,
            &self.on.settings.install_tree.join(&self.on.ka.kernel),
        );
        let clang = config.is_some_and(|c| c.get("CONFIG_CC_IS_CLANG") == Some("y"));
        for m in modules {
            let built = self
                .build_dir()
                .join(format!("{}{}.ko", m.built_location, m.built_name));
            if m.strip {
                self.strip(log, &built, &m.built_name, clang)?;
            }
            if let Some(signer) = signer {
                signer.sign(&built, self.on.report);
            }
            self.place_compressed(&built, &module_dir, &m.dest_name, compression)?;
        }
        self.record_dependency_versions(&staged)?;
        if let Some(f) = fingerprint {
            let path = staged.join(crate::state::fingerprint::FILE_NAME);
            std::fs::write(&path, f.to_json()).map_err(io_error("write", &path))?;
        }
        log.flush()?;
        std::fs::copy(&log.path, log_dir.join("make.log")).map_err(io_error("copy", &log.path))?;
        crate::crashpoint::step("rename build into place", &final_dir);
        std::fs::rename(&staged, &final_dir)
            .map_err(io_error("rename the staged build to", &final_dir))?;
        Ok(())
    }

    /// `strip -g` (llvm-strip for a clang kernel), as the original does; a failure only
    /// warns.
    fn strip(
        &self,
        log: &mut Log,
        built: &Path,
        name: &str,
        clang: bool,
    ) -> Result<(), BuildError> {
        let tool = if clang { "llvm-strip" } else { "strip" };
        let cmd = format!("{tool} -g {}", crate::bash::quote(&built.to_string_lossy()));
        if log.run(
            &format!("Stripping {name}.ko"),
            &cmd,
            &self.build_dir(),
            &[],
        )? != 0
        {
            self.on.report.warn(&format!(
                "Could not strip {}; keeping it unstripped.",
                built.display()
            ));
        }
        Ok(())
    }

    /// Write `built` into `dir` as `<dest_name>.ko` with the kernel's compression (its
    /// parameters and the framework's level); uncompressed, with a warning, if that fails.
    fn place_compressed(
        &self,
        built: &Path,
        dir: &Path,
        dest_name: &str,
        compression: Compression,
    ) -> Result<(), BuildError> {
        let opts = match compression {
            Compression::Gzip => &self.on.settings.compress_gzip_opts,
            Compression::Xz => &self.on.settings.compress_xz_opts,
            Compression::Zstd => &self.on.settings.compress_zstd_opts,
            Compression::None => "",
        };
        let data = std::fs::read(built).map_err(io_error("read", built))?;
        let (bytes, suffix) = match compression.compress(&data, opts) {
            Ok(c) => (c, compression.suffix()),
            Err(e) => {
                self.on.report.warn(&format!(
                    "Compressing {} failed ({e}); installing it uncompressed.",
                    built.display()
                ));
                (data, "")
            }
        };
        let dest = dir.join(format!("{dest_name}.ko{suffix}"));
        crate::crashpoint::step("write built module", &dest);
        std::fs::write(&dest, bytes).map_err(io_error("write", &dest))?;
        Ok(())
    }

    /// After success the scratch copy goes; `build/` stays as an empty directory.
    fn clean_build_dir(&self) {
        let build = self.build_dir();
        if let Ok(entries) = std::fs::read_dir(&build) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() && !p.is_symlink() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
    }
}

/// How make is told its parallelism.
#[derive(Debug, Clone, Copy)]
pub enum Jobs {
    /// `-jN` (`None`: plain `-j`, unlimited), as the original.
    Limit(Option<u32>),
    /// No `-j`: make joins the jobserver passed in MAKEFLAGS.
    Jobserver,
}

/// The original's make command: ` LLVM=1` for clang-built kernels, then a leading
/// `make` becomes `make -j<N> KERNELRELEASE=<k>` (a quoted `'make'` is left alone;
/// with a shared jobserver there is no `-j`).
pub fn make_command(
    command: &str,
    jobs: Jobs,
    kernel: &str,
    config: Option<&KernelConfig>,
) -> String {
    let mut cmd = command.to_string();
    if config.is_some_and(|c| c.get("CONFIG_CC_IS_CLANG") == Some("y")) {
        cmd.push_str(" LLVM=1");
    }
    if let Some(rest) = cmd.strip_prefix("make") {
        cmd = match jobs {
            Jobs::Limit(n) => format!(
                "make -j{} KERNELRELEASE={kernel}{rest}",
                n.map(|n| n.to_string()).unwrap_or_default()
            ),
            Jobs::Jobserver => format!("make KERNELRELEASE={kernel}{rest}"),
        };
    }
    cmd
}

/// The compiler the kernel was built with: the original exports `CC` (and
/// `KERNEL_CC`) as the first word of `CONFIG_CC_VERSION_TEXT` when that command exists.
fn compiler_env(config: Option<&KernelConfig>) -> Vec<(String, String)> {
    let Some(text) = config.and_then(|c| c.get("CONFIG_CC_VERSION_TEXT")) else {
        return Vec::new();
    };
    let Some(cc) = text.split_whitespace().next() else {
        return Vec::new();
    };
    let exists = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cc).is_file()))
        .unwrap_or(false);
    if exists {
        vec![("CC".into(), cc.into()), ("KERNEL_CC".into(), cc.into())]
    } else {
        Vec::new()
    }
}

/// The first error lines of a make.log, for the console.
fn error_excerpt(log: &Path) -> String {
    let lines = first_errors(log);
    if lines.is_empty() {
        String::new()
    } else {
        format!("\nFirst errors:\n  {}", lines.join("\n  "))
    }
}

/// The first error lines of a make.log (at most five).
pub fn first_errors(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    // A compiler's diagnostic, or make's "*** ... Error N" (not a command line that
    // merely passes -Werror=...).
    text.lines()
        .filter(|l| {
            l.contains(": error:")
                || l.contains(": fatal error:")
                || l.contains("undefined!")
                || (l.contains("*** ") && l.contains("Error "))
        })
        .take(5)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_jobserver_replaces_the_j_flag() {
        assert_eq!(
            make_command("make -C /k", Jobs::Jobserver, "6.1", None),
            "make KERNELRELEASE=6.1 -C /k"
        );
    }

    #[test]
    fn make_command_rewrites_like_the_original() {
        let k = "6.1.0-1-amd64";
        assert_eq!(
            make_command("make -C /k M=/b", Jobs::Limit(Some(4)), k, None),
            "make -j4 KERNELRELEASE=6.1.0-1-amd64 -C /k M=/b"
        );
        assert_eq!(
            make_command("make", Jobs::Limit(None), k, None),
            "make -j KERNELRELEASE=6.1.0-1-amd64"
        );
        assert_eq!(
            make_command("'make' -j2 KVER=x", Jobs::Limit(Some(4)), k, None),
            "'make' -j2 KVER=x"
        );
        let clang = KernelConfig::parse("CONFIG_CC_IS_CLANG=y\n");
        assert_eq!(
            make_command("make -C /k", Jobs::Limit(Some(1)), k, Some(&clang)),
            "make -j1 KERNELRELEASE=6.1.0-1-amd64 -C /k LLVM=1"
        );
        assert_eq!(
            make_command("env X=1 make", Jobs::Limit(Some(1)), k, None),
            "env X=1 make"
        );
    }
}
