//! `dkms add`: register `<source_tree>/<m>-<v>` in the state tree, optionally copying a
//! source directory there first.

use super::context::Context;
use super::register::{add_registered, add_source_tree};
use crate::commands::error::{ActionError, Result};
use crate::state::KernelArch;

pub fn run(ctx: &Context, ka: &KernelArch) -> Result<i32> {
    let _lock = ctx.take_lock()?;
    add_requested(ctx, ka)?;
    Ok(0)
}

/// Add what the command line names: an archive or a source directory (when neither
/// module nor version is given), else `<source_tree>/<m>-<v>`. The caller holds the
/// lock. Returns the module and version added.
pub(crate) fn add_requested(ctx: &Context, ka: &KernelArch) -> Result<(String, String)> {
    let opts = ctx.opts;
    let (mut module, mut version) = (opts.target.module.clone(), opts.target.version.clone());
    if module.is_none() && version.is_none() {
        if opts.tarball.archive.is_some() {
            return super::tarball::load(ctx);
        }
        if let Some(dir) = &opts.target.source_dir {
            let (m, v) = add_source_tree(ctx, dir, ka)?;
            module = Some(m);
            version = Some(v);
        }
    }
    let (Some(m), Some(v)) = (
        module.filter(|m| !m.is_empty()),
        version.filter(|v| !v.is_empty()),
    ) else {
        return Err(ActionError::MissingModuleArgs("add").into());
    };
    add_registered(ctx, &m, &v, ka)?;
    Ok((m, v))
}
