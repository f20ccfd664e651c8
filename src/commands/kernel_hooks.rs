//! `kernel_preinst` and `kernel_prerm`: what the kernel packages' hooks run before a
//! kernel is installed over or removed: its dkms modules are uninstalled and unbuilt.

use super::autoinstall::batch_depmod;
use super::context::Context;
use crate::commands::error::{ActionError, Result};
use crate::exit;
use crate::state::KernelArch;

/// `kernel_prerm` (every module built for the kernel) and `kernel_preinst` (those with
/// AUTOINSTALL): uninstall and unbuild, one depmod, empty directories pruned; 14 if
/// anything failed.
pub fn kernel_remove(ctx: &Context, ka: &KernelArch, only_autoinstall: bool) -> Result<i32> {
    let _lock = ctx.take_lock()?;
    let worker = ctx.batch_worker(None);
    let mut failed = false;
    for (m, v) in ctx.tree.module_versions(None, None) {
        for built in ctx.tree.built(&m, &v, Some(&ka.kernel), None) {
            if only_autoinstall {
                let req = ctx.conf_request(ctx.tree.conf_file(&m, &v), &m, &v, &built);
                if !crate::conf::load_lenient(&req).is_ok_and(|c| c.autoinstall) {
                    continue;
                }
            }
            ctx.report.stderr(&format!(
                "dkms: removing module {m}/{v} for kernel {} ({})",
                built.kernel, built.arch
            ));
            if let Err(e) = super::steps::unbuild_one(&worker, &m, &v, &built) {
                ctx.report.error(&e.to_string());
                failed = true;
            }
        }
    }
    if !worker.changed_kernels().is_empty() {
        ctx.mark_changed(&ka.kernel);
        if ctx.opts.depmod && !batch_depmod(ctx, &ka.kernel) {
            failed = true;
        }
        prune_empty_dirs(&ctx.settings.install_tree.join(&ka.kernel));
    }
    if failed {
        return Err(ActionError::KernelRemovalFailed(ka.kernel.clone()).into());
    }
    Ok(exit::SUCCESS)
}

/// Remove empty directories under `dir` (not `dir` itself, not through symlinks).
fn prune_empty_dirs(dir: &std::path::Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            prune_empty_dirs(&e.path());
            let _ = std::fs::remove_dir(e.path());
        }
    }
}
