//! `dkms remove` and `dkms unbuild`.
//!
//! Uninstalling an installed module (deleting its files from `/lib/modules`, restoring
//! originals, depmod) arrives with the build/install work; until then a request that
//! would need it is refused *before anything changes*, naming the kernels concerned.

use super::{take_lock, Context};
use crate::error::{ActionError, Result};
use crate::state::{io_err, KernelArch};

pub fn remove(ctx: &Context, m: &str, v: &str, kernels: &[KernelArch]) -> Result<i32> {
    let _lock = take_lock(ctx)?;
    refuse_installed(ctx, m, v, kernels)?;
    ctx.tree.remove_stale_builds(m, v);
    for ka in kernels {
        report_not_installed(ctx, m, v, ka);
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

pub fn unbuild(ctx: &Context, m: &str, v: &str, kernels: &[KernelArch]) -> Result<i32> {
    let _lock = take_lock(ctx)?;
    refuse_installed(ctx, m, v, kernels)?;
    for ka in kernels {
        report_not_installed(ctx, m, v, ka);
        unbuild_one(ctx, m, v, ka)?;
    }
    Ok(0)
}

fn refuse_installed(ctx: &Context, m: &str, v: &str, kernels: &[KernelArch]) -> Result<()> {
    let installed: Vec<String> = kernels
        .iter()
        .filter(|ka| ctx.tree.is_installed(m, v, ka))
        .map(|ka| format!("{} ({})", ka.kernel, ka.arch))
        .collect();
    if installed.is_empty() {
        Ok(())
    } else {
        Err(ActionError::NotImplemented(format!(
            "uninstall (needed for {m}/{v} on {})",
            installed.join(", ")
        ))
        .into())
    }
}

fn report_not_installed(ctx: &Context, m: &str, v: &str, ka: &KernelArch) {
    ctx.report.line(&format!(
        "Module {m}/{v} is not installed for kernel {} ({}). Skipping...",
        ka.kernel, ka.arch
    ));
}

/// Delete `<v>/<k>/<a>` (and `<v>/<k>` when empty), or say it is not built.
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
    let dir = ctx.tree.build_dir(m, v, ka);
    let doomed = dir.with_file_name(format!(".{}.removing.{}", ka.arch, std::process::id()));
    std::fs::rename(&dir, &doomed).map_err(io_err("rename", &dir))?;
    std::fs::remove_dir_all(&doomed).map_err(io_err("delete", &doomed))?;
    let kernel_dir = ctx.tree.version_dir(m, v).join(&ka.kernel);
    if crate::state::visible_entries(&kernel_dir).is_empty() {
        let _ = std::fs::remove_dir_all(&kernel_dir);
    }
    Ok(())
}
