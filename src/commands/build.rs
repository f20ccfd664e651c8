//! `dkms build`, `install` and `uninstall`, per kernel, with the original's skip
//! messages, auto-add, and `--force` (rebuild / reinstall).

use super::context::Context;
use super::steps::{build_one, install_one, unbuild_one, uninstall_one, Done};
use crate::cli::Action;
use crate::commands::error::Result;
use crate::exit;
use crate::state::{KernelArch, Registration};

pub fn build(ctx: &Context, kernels: &[KernelArch]) -> Result<i32> {
    let _lock = ctx.take_lock()?;
    let (m, v) = added_module(ctx, Action::Build, &kernels[0])?;
    let (m, v) = (m.as_str(), v.as_str());
    let results = each_kernel(ctx, kernels, |ka| {
        if !ctx
            .tree
            .built(m, v, Some(&ka.kernel), Some(&ka.arch))
            .is_empty()
        {
            if !ctx.opts.force {
                ctx.report.line(&format!(
                    "Module {m}/{v} already built for kernel {} ({}), skip. You may override by specifying --force.",
                    ka.kernel, ka.arch
                ));
                return Ok(Done::Already);
            }
            unbuild_one(ctx, m, v, ka)?;
        }
        build_one(ctx, m, v, ka)?;
        Ok(Done::Now)
    });
    Ok(summarize(ctx, Action::Build, m, v, &results))
}

pub fn install(ctx: &Context, kernels: &[KernelArch]) -> Result<i32> {
    let _lock = ctx.take_lock()?;
    let (m, v) = added_module(ctx, Action::Install, &kernels[0])?;
    let results = each_kernel(ctx, kernels, |ka| install_one(ctx, &m, &v, ka));
    Ok(summarize(ctx, Action::Install, &m, &v, &results))
}

/// How one kernel of a build or install ended.
enum KernelResult {
    Done(Done),
    /// BUILD_EXCLUSIVE does not match this kernel (77).
    Excluded,
    Failed(i32),
}

/// Each kernel is its own attempt, as in the original's loop (each kernel runs in a
/// subshell there): a failure is reported when it happens and the next kernel is tried.
fn each_kernel<'k>(
    ctx: &Context,
    kernels: &'k [KernelArch],
    mut attempt: impl FnMut(&KernelArch) -> Result<Done>,
) -> Vec<(&'k KernelArch, KernelResult)> {
    let mut results = Vec::new();
    for ka in kernels {
        let result = match attempt(ka) {
            Ok(done) => KernelResult::Done(done),
            Err(e) => {
                ctx.report.error(&e.to_string());
                match e.exit_code() {
                    exit::EXCLUDED => KernelResult::Excluded,
                    code => KernelResult::Failed(code),
                }
            }
        };
        results.push((ka, result));
    }
    results
}

/// The exit code of several kernels is the last kernel's, as the original's loop leaves
/// it; with more than one kernel a summary says what happened on each.
fn summarize(
    ctx: &Context,
    action: Action,
    m: &str,
    v: &str,
    results: &[(&KernelArch, KernelResult)],
) -> i32 {
    let code = |r: &KernelResult| match r {
        KernelResult::Done(_) => exit::SUCCESS,
        KernelResult::Excluded => exit::EXCLUDED,
        KernelResult::Failed(code) => *code,
    };
    let last = results.last().map_or(exit::SUCCESS, |(_, r)| code(r));
    if results.len() < 2 {
        return last;
    }
    let done = if action == Action::Build {
        "built"
    } else {
        "installed"
    };
    ctx.report
        .line(&format!("\n{} of {m}/{v}, per kernel:", action.name()));
    for (ka, result) in results {
        let what = match result {
            KernelResult::Done(Done::Now) => done.to_string(),
            KernelResult::Done(Done::Already) => format!("already {done}, skipped"),
            KernelResult::Excluded => format!(
                "skipped: BUILD_EXCLUSIVE does not match ({})",
                exit::EXCLUDED
            ),
            KernelResult::Failed(c) => format!("failed ({c})"),
        };
        ctx.report
            .line(&format!("  {} ({}): {what}", ka.kernel, ka.arch));
    }
    let failed = results
        .iter()
        .any(|(_, r)| matches!(r, KernelResult::Failed(_)));
    if failed && last == exit::SUCCESS {
        ctx.report.line(
            "The exit status is the last kernel's (0), as the original's: check the lines above.",
        );
    }
    last
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
    let opts = ctx.opts;
    let named_by_path = opts.target.source_dir.is_some() || opts.tarball.archive.is_some();
    if opts.target.module.is_none() && opts.target.version.is_none() && named_by_path {
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
        Registration::Broken => Err(crate::commands::error::ActionError::Broken {
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
