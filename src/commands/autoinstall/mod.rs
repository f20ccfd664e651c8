//! `autoinstall` (and `kernel_postinst`, which is the same): every module brought to a
//! kernel, in four steps: [`collect`] what to install, [`deps`] order it by BUILD_DEPENDS,
//! [`run`] it through the scheduler, [`summary`] of what happened.
//!
//! It follows upstream 3.4.3: the latest added version of each module, AUTOINSTALL=yes,
//! not already installed; BUILD_DEPENDS order (a dependency known to dkms that cannot be
//! installed fails the module, exit 11; one unknown to dkms defers it, exit 0, 3.4.1); 77
//! counts as skipped; the summary lines; exit 11 when something failed;
//! `/etc/dkms/no-autoinstall` turns it off. Ours runs every independent (module, kernel)
//! at once through the scheduler, with one jobserver and one depmod per kernel as soon as
//! that kernel's installs end. `--all-kernels` (our addition, upstream request #394)
//! takes every kernel with headers.

mod collect;
mod deps;
mod run;
mod summary;

pub use collect::kernels_with_headers;
pub(crate) use collect::latest_versions;
pub(crate) use run::batch_depmod;

use super::context::Context;
use super::schedule::Outcome;
use crate::commands::error::{ActionError, Result};
use crate::exit;
use crate::state::KernelArch;

/// One (module, version, kernel) to install.
pub(super) struct Install {
    pub module: String,
    pub version: String,
    pub ka: KernelArch,
    /// Decided before running (missing or unregistered dependencies, a cycle).
    pub decided: Option<Outcome>,
}

pub fn autoinstall(ctx: &Context, kernels: &[KernelArch]) -> Result<i32> {
    if ctx.settings.config_dir.join("no-autoinstall").exists() {
        ctx.report
            .line("Automatic installation of modules has been disabled.");
        return Ok(exit::SUCCESS);
    }
    let _lock = ctx.take_lock()?;
    let mut plan = collect::collect(ctx, kernels)?;
    let deferred = deps::resolve(ctx, &mut plan);
    let (installs, outcomes) = run::run(ctx, plan.jobs, &plan.kernels)?;
    for line in &deferred {
        ctx.report.line(line);
    }
    let depmod_failed = outcomes[installs.len()..]
        .iter()
        .any(|o| matches!(o, Outcome::Failed(_)));
    let failed = summary::report(ctx, &plan.kernels, plan.early, &installs, &outcomes);
    super::post::post_transaction(ctx);
    for cert in ctx.signing_certificates() {
        super::secureboot::warn_if_untrusted(ctx, &cert);
    }
    if failed || depmod_failed {
        return Err(ActionError::AutoinstallFailed.into());
    }
    Ok(exit::SUCCESS)
}
