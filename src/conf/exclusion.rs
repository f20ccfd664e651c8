//! BUILD_EXCLUSIVE_*: whether a module (or the whole package) is for this kernel, arch
//! and kernel config, decided as the original's `check_build_exclusive_for_module` does.

use super::eval::RawValues;
use super::{ConfRequest, Exclusion, ModuleEntry};

/// The BUILD_EXCLUSIVE_* values at index 0, which the original reads as plain scalars
/// (`$BUILD_EXCLUSIVE_KERNEL` is element 0 of the array) and applies to every module.
/// OBSOLETE_BY stands in for a missing maximum when no module sets one of its own.
pub(super) fn global_exclusion(req: &ConfRequest, v: &RawValues, count: usize) -> Exclusion {
    let per_module_max = v
        .array("BUILD_EXCLUSIVE_KERNEL_MAX")
        .is_some_and(|a| a.iter().any(|(i, m)| *i < count && !m.is_empty()));
    exclusion_for_index(req, v, 0, !per_module_max)
}

/// One module's BUILD_EXCLUSIVE_* (3.3+): the global values and its own index.
pub(super) fn module_exclusion(
    req: &ConfRequest,
    v: &RawValues,
    index: usize,
    global: &Exclusion,
) -> Exclusion {
    let mut reasons = global.reasons.clone();
    if index != 0 {
        reasons.extend(exclusion_for_index(req, v, index, false).reasons);
    }
    Exclusion { reasons }
}

/// The package is excluded from this kernel only when every one of its modules is
/// (`build_exclude` of the original); a conf without modules never is.
pub(super) fn package_exclusion(modules: &[ModuleEntry]) -> Exclusion {
    if modules.is_empty() || modules.iter().any(|m| !m.exclusion.excluded()) {
        return Exclusion::default();
    }
    let mut reasons: Vec<String> = Vec::new();
    for r in modules.iter().flat_map(|m| &m.exclusion.reasons) {
        if !reasons.contains(r) {
            reasons.push(r.clone());
        }
    }
    Exclusion { reasons }
}

/// The reasons the BUILD_EXCLUSIVE_* values at `index` exclude this kernel/arch/config.
/// A regex verdict bash did not give (status's fast path) is no verdict: only a known
/// non-match excludes.
fn exclusion_for_index(
    req: &ConfRequest,
    v: &RawValues,
    index: usize,
    obsolete_by_is_max: bool,
) -> Exclusion {
    let get = |name: &str| -> Option<String> {
        v.array(name)
            .and_then(|a| a.get(&index))
            .filter(|s| !s.is_empty())
            .cloned()
    };
    let no_match = |name: &str| {
        v.regex_results
            .get(&format!("{name}[{index}]"))
            .is_some_and(|r| *r != 1)
    };
    let ver = crate::kernel::ver;
    let mut reasons = Vec::new();
    if let Some(re) = get("BUILD_EXCLUSIVE_KERNEL").filter(|_| no_match("BUILD_EXCLUSIVE_KERNEL")) {
        reasons.push(format!(
            "kernel {} does not match BUILD_EXCLUSIVE_KERNEL=\"{re}\"",
            req.kernel
        ));
    }
    if let Some(re) = get("BUILD_EXCLUSIVE_ARCH").filter(|_| no_match("BUILD_EXCLUSIVE_ARCH")) {
        reasons.push(format!(
            "arch {} does not match BUILD_EXCLUSIVE_ARCH=\"{re}\"",
            req.arch
        ));
    }
    if let Some(min) = get("BUILD_EXCLUSIVE_KERNEL_MIN").filter(|m| ver(req.kernel) < ver(m)) {
        reasons.push(format!(
            "kernel {} is older than BUILD_EXCLUSIVE_KERNEL_MIN=\"{min}\"",
            req.kernel
        ));
    }
    let max = get("BUILD_EXCLUSIVE_KERNEL_MAX")
        .or_else(|| obsolete_by_is_max.then(|| get("OBSOLETE_BY")).flatten());
    if let Some(max) = max.filter(|m| ver(req.kernel) > ver(m)) {
        reasons.push(format!(
            "kernel {} is newer than BUILD_EXCLUSIVE_KERNEL_MAX=\"{max}\"",
            req.kernel
        ));
    }
    if let Some(list) = get("BUILD_EXCLUSIVE_CONFIG") {
        reasons.extend(config_reasons(req, &list));
    }
    Exclusion { reasons }
}

/// BUILD_EXCLUSIVE_CONFIG: each `CONFIG_X` must be `y`/`m` in the kernel's config, each
/// `!CONFIG_X` must not (no config file: no verdict, as the original's `-e` test).
fn config_reasons(req: &ConfRequest, list: &str) -> Vec<String> {
    let Some(config) = crate::kernel::KernelConfig::read(&req.kernel_config) else {
        return Vec::new();
    };
    list.split_whitespace()
        .filter(|item| {
            let (negated, name) = match item.strip_prefix('!') {
                Some(n) => (true, n),
                None => (false, *item),
            };
            config.is_enabled(name) == negated
        })
        .map(|item| format!("kernel config does not satisfy BUILD_EXCLUSIVE_CONFIG item '{item}'"))
        .collect()
}
