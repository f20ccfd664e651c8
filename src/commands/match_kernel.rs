//! `match`: install on one kernel what is installed on another (the template).

use super::context::Context;
use crate::commands::error::{ActionError, Result};
use crate::exit;
use crate::state::KernelArch;

/// `match --templatekernel T -k K [module]`: install on K what is installed on T.
pub fn run_match(ctx: &Context, ka: &KernelArch) -> Result<i32> {
    let Some(template) = ctx.opts.target.template_kernel.clone() else {
        return Err(ActionError::MatchUsage.into());
    };
    if template == ka.kernel {
        return Err(ActionError::MatchSameKernel.into());
    }
    if let Some(m) = &ctx.opts.target.module {
        if crate::state::visible_entries(&ctx.settings.dkms_tree.join(m)).is_empty() {
            return Err(ActionError::MatchNotAdded(m.clone()).into());
        }
    }
    let _lock = ctx.take_lock()?;
    let template_ka = KernelArch {
        kernel: template.clone(),
        arch: ka.arch.clone(),
    };
    let mut todo = Vec::new();
    for (m, v) in ctx
        .tree
        .module_versions(ctx.opts.target.module.as_deref(), None)
    {
        if ctx.tree.is_installed(&m, &v, &template_ka) {
            todo.push((m, v));
        }
    }
    if todo.is_empty() {
        ctx.report
            .line("There is nothing to be done for this match.");
        return Ok(exit::SUCCESS);
    }
    for (m, v) in todo {
        ctx.report.line(&format!(
            "Matching {m}/{v} from kernel {template} onto kernel {} ({})",
            ka.kernel, ka.arch
        ));
        super::steps::install_one(ctx, &m, &v, ka)?;
    }
    super::post::post_transaction(ctx);
    Ok(exit::SUCCESS)
}
