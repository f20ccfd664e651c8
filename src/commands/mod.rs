//! Turning a request into work: the original's per-action preconditions (in its order,
//! with its exit codes), the kernel/arch list, and dispatch to the actions.

mod add;
mod autoinstall;
mod build;
mod files;
mod fresh;
mod kernel_hooks;
mod match_kernel;
pub mod options;
mod package;
mod post;
mod preflight;
mod register;
mod remove;
mod rpm_upgrade;
mod scaffold;
mod schedule;
mod secureboot;
pub mod status;
mod steps;
mod tarball;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cli::{Action, Request};
use crate::conf::{self, KernelDirs, ModuleConf};
use crate::error::{ActionError, Result};
use crate::exit;
use crate::framework::Settings;
use crate::module::kbuild::SignerCell;
use crate::report::Reporter;
use crate::state::{KernelArch, Registration, StateTree};
pub use options::Options;

/// Everything an action needs.
pub struct Context<'a> {
    pub opts: &'a Options,
    pub settings: &'a Settings,
    pub report: &'a Reporter,
    pub tree: StateTree,
    /// Kernels whose installed modules this run changed (for post_transaction).
    pub changed: std::sync::Mutex<Vec<String>>,
    /// One make jobserver shared by every build of a parallel run.
    pub jobserver: Option<jobserver::Client>,
    /// depmod runs once per kernel at the end of the run, not after each install.
    pub batch_depmod: bool,
    /// Every dkms.conf read strictly in this run, by (file, module, version, kernel,
    /// arch): an install that builds first reads it once, and says what it says once.
    confs: ConfMemo,
    /// Each kernel's signing decision, shared by the builds of this run.
    signers: std::sync::Arc<std::sync::Mutex<BTreeMap<String, std::sync::Arc<SignerCell>>>>,
}

/// By (file, module, version, kernel/arch, the headers when not the kernel's own).
type ConfKey = (PathBuf, String, String, KernelArch, Option<PathBuf>);
type ConfMemo = std::sync::Arc<std::sync::Mutex<BTreeMap<ConfKey, ModuleConf>>>;

impl<'a> Context<'a> {
    pub(crate) fn mark_changed(&self, kernel: &str) {
        self.changed
            .lock()
            .expect("changed list")
            .push(kernel.to_string());
    }

    /// A context for the jobs of a batch (autoinstall, kernel removal): depmod runs once
    /// per kernel at the end, builds share `jobserver`.
    pub(crate) fn batch_worker(&self, jobserver: Option<jobserver::Client>) -> Context<'a> {
        Context {
            opts: self.opts,
            settings: self.settings,
            report: self.report,
            tree: self.tree.clone(),
            changed: Default::default(),
            jobserver,
            batch_depmod: true,
            confs: self.confs.clone(),
            signers: self.signers.clone(),
        }
    }

    /// `<kernel>`'s build directory and config (`--kernelsourcedir`, `--config`, else the
    /// installed headers).
    pub(crate) fn kernel_dirs(&self, kernel: &str) -> KernelDirs {
        self.opts.kernel_dirs(self.settings, kernel)
    }

    /// The request to read `file` as `m/v` on `ka`, with this run's overrides.
    pub(crate) fn conf_request<'b>(
        &'b self,
        file: PathBuf,
        m: &'b str,
        v: &'b str,
        ka: &'b KernelArch,
    ) -> crate::conf::ConfRequest<'b> {
        self.opts.conf_request(self.settings, file, m, v, ka)
    }

    /// The dkms.conf of `m/v`: `-c FILE`, else the one in its source.
    pub(crate) fn conf_file(&self, m: &str, v: &str) -> PathBuf {
        (self.opts.conf_file.clone()).unwrap_or_else(|| self.tree.conf_file(m, v))
    }

    /// `kernel`'s signing decision, made by the first build that needs it.
    pub(crate) fn signer(&self, kernel: &str) -> std::sync::Arc<SignerCell> {
        let mut cells = self.signers.lock().expect("signers");
        cells.entry(kernel.to_string()).or_default().clone()
    }

    /// The certificates of the signers this run used (each once).
    pub(crate) fn signing_certificates(&self) -> Vec<PathBuf> {
        let cells = self.signers.lock().expect("signers");
        let mut certs: Vec<PathBuf> = cells
            .values()
            .filter_map(|c| c.get().and_then(|s| s.as_ref()))
            .map(|s| s.cert_path().to_path_buf())
            .collect();
        certs.sort();
        certs.dedup();
        certs
    }

    pub(crate) fn changed_kernels(&self) -> Vec<String> {
        let mut k = self.changed.lock().expect("changed list").clone();
        k.sort();
        k.dedup();
        k
    }
}

/// Run the request; returns the exit code on success paths that are not 0.
pub fn run(req: &Request, settings: &Settings, report: &Reporter) -> Result<i32> {
    let opts = Options::resolve(req);
    let ctx = Context {
        changed: Default::default(),
        jobserver: None,
        batch_depmod: false,
        confs: Default::default(),
        signers: Default::default(),
        opts: &opts,
        settings,
        report,
        tree: StateTree::new(&settings.dkms_tree),
    };
    let Some(action) = opts.action else {
        report.error("Unknown action specified: \"\"");
        report.line(&crate::cli::usage());
        return Ok(exit::SUCCESS);
    };
    match action {
        Action::Status => run_status(&ctx),
        Action::Remove | Action::Unbuild | Action::Uninstall => run_removal(&ctx, action),
        Action::Add | Action::Build | Action::Install => run_addition(&ctx, action),
        Action::Autoinstall
        | Action::Match
        | Action::KernelPreinst
        | Action::KernelPostinst
        | Action::KernelPrerm => run_kernel_wide(&ctx, action),
        Action::Mktarball => {
            let (m, v) = module_args(&ctx, action)?;
            ensure_added(&ctx, &m, &v, false)?;
            let kernels = kernels_for(&ctx, Some((&m, &v)))?;
            tarball::mktarball(&ctx, &m, &v, &kernels)
        }
        Action::Ldtarball => tarball::ldtarball(&ctx),
        Action::GenerateMok => generate_mok(&ctx),
        Action::Owner => files::owner(&ctx),
        Action::Verify => files::verify(&ctx),
        Action::Mkbmdeb | Action::Mkbmpkg | Action::Mkbmrpm => package::run(&ctx, action),
        Action::Preflight => preflight::run(&ctx),
        Action::Secureboot => secureboot::run(&ctx),
        Action::Scaffold => scaffold::scaffold(&ctx),
        Action::Lint => scaffold::lint(&ctx),
    }
}

/// Status may clean up after a killed dkms, but never waits for a running one.
fn run_status(ctx: &Context) -> Result<i32> {
    if crate::transaction::pending(&ctx.settings.dkms_tree) {
        if let Some(_lock) = crate::state::lock::try_acquire(&ctx.settings.dkms_tree) {
            recover_interrupted(ctx);
        }
    }
    status::run(ctx)
}

/// remove, unbuild, uninstall: the module must be added (checked again under the lock:
/// a dkms we waited for may have removed it).
fn run_removal(ctx: &Context, action: Action) -> Result<i32> {
    let (m, v) = module_args(ctx, action)?;
    ensure_added(ctx, &m, &v, action == Action::Remove)?;
    if action == Action::Uninstall {
        require_root()?;
    } else {
        ctx.tree.check_writable()?;
    }
    let _lock = take_lock(ctx)?;
    ensure_added(ctx, &m, &v, action == Action::Remove)?;
    let kernels = kernels_for(ctx, Some((&m, &v)))?;
    let code = match action {
        Action::Remove => remove::remove(ctx, &m, &v, &kernels),
        Action::Unbuild => remove::unbuild(ctx, &m, &v, &kernels),
        _ => build::uninstall(ctx, &m, &v, &kernels),
    }?;
    post::post_transaction(ctx);
    Ok(code)
}

/// add, build, install (which add what is missing first).
fn run_addition(ctx: &Context, action: Action) -> Result<i32> {
    if ctx.opts.target.all {
        return Err(ActionError::AllNotSupported(action.name()).into());
    }
    if action == Action::Install {
        require_root()?;
    } else {
        ctx.tree.check_writable()?;
    }
    let kernels = kernels_for(ctx, None)?;
    match action {
        Action::Add => add::run(ctx, &kernels[0]),
        Action::Build => build::build(ctx, &kernels),
        _ => {
            let code = build::install(ctx, &kernels)?;
            post::post_transaction(ctx);
            for cert in ctx.signing_certificates() {
                secureboot::warn_if_untrusted(ctx, &cert);
            }
            Ok(code)
        }
    }
}

/// autoinstall, match and the kernel hooks, in the original's order of checks: --all
/// (5), the kernel count (4), then root (1).
fn run_kernel_wide(ctx: &Context, action: Action) -> Result<i32> {
    let req = &ctx.opts.target;
    if req.all {
        return Err(ActionError::AllNotSupported(action.name()).into());
    }
    if action == Action::Autoinstall && req.all_kernels {
        require_root()?;
        let kernels = autoinstall::kernels_with_headers(ctx);
        return autoinstall::autoinstall(ctx, &kernels);
    }
    let kernel_hook = matches!(
        action,
        Action::KernelPreinst | Action::KernelPostinst | Action::KernelPrerm
    );
    if kernel_hook && req.kernels.len() != 1 {
        return Err(ActionError::OneKernelRequired(action.name()).into());
    }
    if req.kernels.len() > 1 {
        return Err(ActionError::OneKernelOnly(action.name()).into());
    }
    require_root()?;
    let kernels = kernels_for(ctx, None)?;
    match action {
        Action::Autoinstall | Action::KernelPostinst => autoinstall::autoinstall(ctx, &kernels),
        Action::KernelPreinst => kernel_hooks::kernel_remove(ctx, &kernels[0], true),
        Action::KernelPrerm => kernel_hooks::kernel_remove(ctx, &kernels[0], false),
        _ => match_kernel::run_match(ctx, &kernels[0]),
    }
}

/// `dkms generate_mok`: create the signing key pair if it does not exist yet.
fn generate_mok(ctx: &Context) -> Result<i32> {
    let kernel = ctx
        .opts
        .target
        .kernels
        .first()
        .cloned()
        .unwrap_or_else(|| ctx.settings.current_kernel.clone());
    let config =
        crate::kernel::KernelConfig::read(&ctx.kernel_dirs(&kernel).config).unwrap_or_default();
    let (key, cert) = crate::module::sign::policy::key_paths(ctx.settings, &kernel, &config);
    ctx.report.line(&format!("Signing key: {key}"));
    ctx.report
        .line(&format!("Public certificate (MOK): {}", cert.display()));
    if key.starts_with("pkcs11:") || (std::path::Path::new(&key).is_file() && cert.is_file()) {
        ctx.report
            .line("The signing key and certificate already exist.");
        return Ok(0);
    }
    ctx.report
        .line("Certificate or key are missing, generating self signed certificate for MOK...");
    crate::module::sign::generate(std::path::Path::new(&key), &cert)
        .map_err(|e| ActionError::Key(e.to_string()))?;
    ctx.report
        .line(&crate::module::sign::policy::enrollment_hint(&cert));
    Ok(0)
}

/// Module and version must both be given (exit 1), and must be usable as names.
fn module_args(ctx: &Context, action: Action) -> Result<(String, String)> {
    match (&ctx.opts.target.module, &ctx.opts.target.version) {
        (Some(m), Some(v)) if !m.is_empty() && !v.is_empty() => {
            check_name("Module name", m)?;
            check_name("Module version", v)?;
            Ok((m.clone(), v.clone()))
        }
        _ => Err(ActionError::MissingModuleArgs(action.name()).into()),
    }
}

/// Names become path components of the state and source trees; `what` says which name
/// ("Module name", "Module version", "Kernel", "Arch").
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<()> {
    let flaw = if name.is_empty() {
        Some("is empty")
    } else {
        crate::state::name_flaw(name)
    };
    match flaw {
        Some(flaw) => Err(ActionError::BadName {
            what,
            name: name.to_string(),
            flaw,
        }
        .into()),
        None => Ok(()),
    }
}

/// The module version must be added (3) and, unless `allow_broken`, not broken (4).
fn ensure_added(ctx: &Context, m: &str, v: &str, allow_broken: bool) -> Result<()> {
    match ctx.tree.registration(m, v, &ctx.settings.source_tree) {
        Registration::Added { .. } => Ok(()),
        Registration::Broken if allow_broken => Ok(()),
        Registration::Broken => Err(ActionError::Broken {
            module: m.into(),
            version: v.into(),
        }
        .into()),
        Registration::NotAdded => Err(ActionError::NotAdded(m.into(), v.into()).into()),
    }
}

/// Strict read with the original's console side effects (deprecations, warnings).
pub(crate) fn read_strict(
    ctx: &Context,
    file: &Path,
    m: &str,
    v: &str,
    ka: &KernelArch,
) -> Result<ModuleConf> {
    read_strict_with(ctx, file, m, v, ka, None)
}

/// [`read_strict`] against the headers in `dirs` instead of the request's (a kernel not
/// installed yet, for preflight).
pub(crate) fn read_strict_with(
    ctx: &Context,
    file: &Path,
    m: &str,
    v: &str,
    ka: &KernelArch,
    dirs: Option<&KernelDirs>,
) -> Result<ModuleConf> {
    // By the file itself: `add` reads it in the source tree, later steps through the
    // `source` link.
    let real = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let key = (
        real,
        m.to_string(),
        v.to_string(),
        ka.clone(),
        dirs.map(|d| d.build.clone()),
    );
    if let Some(conf) = ctx.confs.lock().expect("conf memo").get(&key) {
        return Ok(conf.clone());
    }
    let creq = match dirs {
        Some(d) => ctx
            .conf_request(file.to_path_buf(), m, v, ka)
            .with_headers(d),
        None => ctx.conf_request(file.to_path_buf(), m, v, ka),
    };
    for d in &ctx.opts.conf.directives {
        if let Some((name, value)) = d.split_once('=') {
            ctx.report.line(&format!("DIRECTIVE: {name}=\"{value}\""));
        }
    }
    let evaluated = conf::evaluate(&creq)?;
    // A syntax error is reported once, with its fix, among the conf's problems.
    for message in &evaluated.messages {
        let bash_said = message
            .split_once(": line ")
            .and_then(|(_, r)| r.split_once(": "));
        let syntax = evaluated.syntax_error.is_some()
            && bash_said.is_some_and(|(_, said)| conf::eval::is_syntax_message(said));
        if !syntax {
            ctx.report.stderr(message);
        }
    }
    let (conf, problems) = conf::interpret(&creq, &evaluated);
    for d in &conf.deprecated {
        ctx.report.deprecated(d);
    }
    for w in &conf.warnings {
        ctx.report.stderr(w);
    }
    if !problems.is_empty() {
        return Err(conf::ConfError::Invalid {
            file: file.to_path_buf(),
            problems,
        }
        .into());
    }
    ctx.confs
        .lock()
        .expect("conf memo")
        .insert(key, conf.clone());
    Ok(conf)
}

/// Take the global lock, saying who holds it if we have to wait.
pub(crate) fn take_lock(ctx: &Context) -> Result<crate::state::lock::Lock> {
    let lock = crate::state::lock::acquire(&ctx.settings.dkms_tree, |pid| {
        let who = pid
            .map(|p| format!("process {p}"))
            .unwrap_or_else(|| "another process".into());
        ctx.report.stderr(&format!(
            "Waiting for the dkms lock held by {who} ({})...",
            ctx.settings.dkms_tree.join(".lock").display()
        ));
    })?;
    recover_interrupted(ctx);
    Ok(lock)
}

/// Undo (or complete) the transaction of a dkms that was killed; the lock is held.
fn recover_interrupted(ctx: &Context) {
    match crate::transaction::recover(&ctx.settings.dkms_tree) {
        crate::transaction::Recovery::Nothing => {}
        crate::transaction::Recovery::RolledBack(n) => ctx.report.warn(&format!(
            "An earlier dkms was interrupted during an install or uninstall; its {n} change(s) were undone."
        )),
        crate::transaction::Recovery::Completed(n) => ctx.report.warn(&format!(
            "An earlier dkms was interrupted while finishing an install or uninstall; its {n} change(s) were completed."
        )),
    }
    let swept = crate::state::garbage::sweep(&ctx.settings.dkms_tree, &ctx.settings.source_tree);
    if swept > 0 {
        ctx.report.warn(&format!(
            "An earlier dkms was interrupted; {swept} leftover(s) of its unfinished work were deleted."
        ));
    }
}

fn require_root() -> Result<()> {
    if rustix::process::geteuid().is_root() {
        Ok(())
    } else {
        Err(ActionError::NotRoot.into())
    }
}

/// The original's `setup_kernels_arches`: `--all` takes every built kernel (version
/// sorted), the default kernel is the running one, a single arch applies to all kernels.
fn kernels_for(ctx: &Context, module: Option<(&str, &str)>) -> Result<Vec<KernelArch>> {
    let req = &ctx.opts.target;
    let mut kernels = req.kernels.clone();
    let mut arches = req.arches.clone();
    if req.all {
        if let Some((m, v)) = module {
            let mut built = ctx.tree.built(m, v, None, None);
            built.sort_by(|a, b| {
                version_sort_key(&a.kernel, &a.arch).cmp(&version_sort_key(&b.kernel, &b.arch))
            });
            kernels = built.iter().map(|ka| ka.kernel.clone()).collect();
            arches = built.into_iter().map(|ka| ka.arch).collect();
        }
    } else if kernels.is_empty() {
        kernels.push(ctx.settings.current_kernel.clone());
    }
    if arches.is_empty() && !kernels.is_empty() {
        arches.push(ctx.settings.machine.clone());
    }
    while arches.len() < kernels.len() {
        arches.push(arches[0].clone());
    }
    let pairs: Vec<KernelArch> = kernels
        .into_iter()
        .zip(arches)
        .map(|(kernel, arch)| KernelArch { kernel, arch })
        .collect();
    if pairs
        .iter()
        .any(|ka| ka.kernel.is_empty() || ka.arch.is_empty())
    {
        return Err(ActionError::EmptyKernelOrArch.into());
    }
    for ka in &pairs {
        check_name("Kernel", &ka.kernel)?;
        check_name("Arch", &ka.arch)?;
    }
    Ok(pairs)
}

/// `sort -V` on `kernel/arch` strings, closely enough: numbers compare as numbers.
fn version_sort_key(kernel: &str, arch: &str) -> String {
    crate::kernel::ver(&format!("{kernel}/{arch}"))
}
