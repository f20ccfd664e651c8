//! `dkms remove` and `dkms unbuild`: uninstall where installed, delete the builds, and
//! (remove) the whole version once no kernel is left.

use super::context::Context;
use crate::commands::error::Result;
use crate::state::KernelArch;

/// The caller holds the lock.
pub fn remove(ctx: &Context, m: &str, v: &str, kernels: &[KernelArch]) -> Result<i32> {
    if ctx.opts.rpm_safe_upgrade
        && super::rpm_upgrade::cancels_remove(&ctx.settings.tmp_location, m, v)
    {
        ctx.report
            .warn("Remove cancelled because --rpm_safe_upgrade scenario detected.");
        return Ok(0);
    }
    for ka in kernels {
        uninstall_or_skip(ctx, m, v, ka)?;
        unbuild_one(ctx, m, v, ka)?;
        ctx.report.line("");
    }
    if ctx.tree.kernel_dirs(m, v).is_empty() {
        ctx.report.line(&format!(
            "Deleting module {m}/{v} completely from the DKMS tree."
        ));
        ctx.tree.remove_version(m, v)?;
    }
    ctx.tree.prune_module_dir(m);
    Ok(0)
}

/// The caller holds the lock.
pub fn unbuild(ctx: &Context, m: &str, v: &str, kernels: &[KernelArch]) -> Result<i32> {
    for ka in kernels {
        uninstall_or_skip(ctx, m, v, ka)?;
        unbuild_one(ctx, m, v, ka)?;
    }
    Ok(0)
}

fn uninstall_or_skip(ctx: &Context, m: &str, v: &str, ka: &KernelArch) -> Result<()> {
    if ctx.tree.is_installed(m, v, ka) {
        return super::steps::uninstall_one(ctx, m, v, ka);
    }
    ctx.report.line(&format!(
        "Module {m}/{v} is not installed for kernel {} ({}). Skipping...",
        ka.kernel, ka.arch
    ));
    Ok(())
}

/// Uninstall and delete `<v>/<k>/<a>`, or say it is not built.
fn unbuild_one(ctx: &Context, m: &str, v: &str, ka: &KernelArch) -> Result<()> {
    if ctx
        .tree
        .built(m, v, Some(&ka.kernel), Some(&ka.arch))
        .is_empty()
    {
        ctx.report.line(&format!(
            "Module {m}/{v} is not built for kernel {} ({}). Skipping...",
            ka.kernel, ka.arch
        ));
        return Ok(());
    }
    super::steps::unbuild_one(ctx, m, v, ka)
}
