//! `dkms build`, `install` and `uninstall`, per kernel, with the original's skip
//! messages, auto-add, and `--force` (rebuild / reinstall).

use super::steps::{build_one, install_one, unbuild_one, uninstall_one};
use super::{take_lock, Context};
use crate::cli::Action;
use crate::error::Result;
use crate::state::{KernelArch, Registration};

pub fn build(ctx: &Context, kernels: &[KernelArch]) -> Result<i32> {
    let _lock = take_lock(ctx)?;
    let (m, v) = added_module(ctx, Action::Build, &kernels[0])?;
    let (m, v) = (m.as_str(), v.as_str());
    for ka in kernels {
        if !ctx
            .tree
            .built(m, v, Some(&ka.kernel), Some(&ka.arch))
            .is_empty()
        {
            if !ctx.req.force {
                ctx.report.line(&format!(
                    "Module {m}/{v} already built for kernel {} ({}), skip. You may override by specifying --force.",
                    ka.kernel, ka.arch
                ));
                continue;
            }
            unbuild_one(ctx, m, v, ka)?;
        }
        build_one(ctx, m, v, ka)?;
    }
    Ok(0)
}

pub fn install(ctx: &Context, kernels: &[KernelArch]) -> Result<i32> {
    let _lock = take_lock(ctx)?;
    let (m, v) = added_module(ctx, Action::Install, &kernels[0])?;
    for ka in kernels {
        install_one(ctx, &m, &v, ka)?;
    }
    Ok(0)
}

/// The caller holds the lock.
pub fn uninstall(ctx: &Context, m: &str, v: &str, kernels: &[KernelArch]) -> Result<i32> {
    for ka in kernels {
        if ctx.tree.is_installed(m, v, ka) {
            uninstall_one(ctx, m, v, ka)?;
        } else {
            ctx.report.line(&format!(
                "Module {m}/{v} is not installed for kernel {} ({}). Skipping...",
                ka.kernel, ka.arch
            ));
        }
    }
    Ok(0)
}

/// The module version to build or install, added first when it is not (the original's
/// `do_build`): named by `m/v`, or by a source directory or archive on the command line.
fn added_module(ctx: &Context, action: Action, ka: &KernelArch) -> Result<(String, String)> {
    let req = ctx.req;
    let named_by_path = req.source_dir.is_some() || req.archive.is_some();
    if req.module.is_none() && req.version.is_none() && named_by_path {
        let added = super::add::add_requested(ctx, ka)?;
        ctx.report.line("");
        return Ok(added);
    }
    let (m, v) = super::module_args(ctx, action)?;
    add_if_missing(ctx, &m, &v, ka)?;
    Ok((m, v))
}

/// `build`/`install` add the module first when it is not added yet.
fn add_if_missing(ctx: &Context, m: &str, v: &str, ka: &KernelArch) -> Result<()> {
    match ctx.tree.registration(m, v, &ctx.settings.source_tree) {
        Registration::Added { .. } => Ok(()),
        Registration::Broken => Err(crate::error::ActionError::Broken {
            module: m.into(),
            version: v.into(),
        }
        .into()),
        Registration::NotAdded => {
            super::register::add_registered(ctx, m, v, ka)?;
            ctx.report.line("");
            Ok(())
        }
    }
}
