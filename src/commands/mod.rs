//! The dispatcher: the request resolved once ([`Options`]), then each action's
//! preconditions in the original's order and the command that does it. The shared pieces
//! live beside it: `context` (what every command works with), `preconditions` (the
//! original's checks and the errors of actions), `options`.

mod add;
mod autoinstall;
mod build;
mod context;
pub mod error;
mod files;
mod fresh;
mod kernel_hooks;
mod match_kernel;
pub mod options;
mod package;
mod post;
mod preconditions;
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

use crate::cli::{Action, Request};
use crate::commands::error::Result;
use crate::exit;
use crate::framework::Settings;
use crate::report::Reporter;
use crate::state::StateTree;
use context::recover_interrupted;
pub use context::Context;
pub use error::ActionError;
pub use options::Options;
use preconditions::{ensure_added, kernels_for, module_args, require_root};

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
        Action::GenerateMok => secureboot::generate_mok(&ctx),
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
    let _lock = ctx.take_lock()?;
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
