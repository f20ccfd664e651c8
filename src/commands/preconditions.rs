//! The original's preconditions of an action, checked in its order and with its exit
//! codes: module and version given and usable as names, the module added and not broken,
//! root, and the kernel/arch list (`setup_kernels_arches`).

use super::context::Context;
use super::error::{ActionError, Result};
use crate::cli::Action;
use crate::state::{KernelArch, Registration};

/// Module and version must both be given (exit 1), and must be usable as names.
pub(crate) fn module_args(ctx: &Context, action: Action) -> Result<(String, String)> {
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
pub(crate) fn ensure_added(ctx: &Context, m: &str, v: &str, allow_broken: bool) -> Result<()> {
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

pub(crate) fn require_root() -> Result<()> {
    if rustix::process::geteuid().is_root() {
        Ok(())
    } else {
        Err(ActionError::NotRoot.into())
    }
}

/// The original's `setup_kernels_arches`: `--all` takes every built kernel (version
/// sorted), the default kernel is the running one, a single arch applies to all kernels.
pub(crate) fn kernels_for(ctx: &Context, module: Option<(&str, &str)>) -> Result<Vec<KernelArch>> {
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
