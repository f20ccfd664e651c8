//! What autoinstall has to do: for each kernel, the latest added version of every module
//! that asks for AUTOINSTALL and is not installed there yet.

use std::collections::BTreeMap;

use super::super::context::Context;
use super::super::schedule::{Job, Outcome};
use super::Install;
use crate::commands::error::Result;
use crate::module::kbuild;
use crate::state::{KernelArch, Registration};

/// The jobs and what is known before running any.
pub(super) struct Plan {
    pub jobs: Vec<Job<Install>>,
    /// Each job's BUILD_DEPENDS (by index of `jobs`).
    pub deps_of: Vec<Vec<String>>,
    /// The latest added version of every module dkms knows.
    pub latest: BTreeMap<String, String>,
    /// Per kernel: modules whose dkms.conf could not be read, with the failure.
    pub early: BTreeMap<String, Vec<(String, Outcome)>>,
    /// The kernels, in the order they were given (the summary's).
    pub kernels: Vec<String>,
}

/// The jobs for `kernels`, the kernel with the costliest depmod first. A kernel without
/// headers fails the run (21) as soon as a module needs building for it, before anything
/// changed, as the original does.
pub(super) fn collect(ctx: &Context, kernels: &[KernelArch]) -> Result<Plan> {
    let mut plan = Plan {
        jobs: Vec::new(),
        deps_of: Vec::new(),
        latest: latest_versions(ctx),
        early: BTreeMap::new(),
        kernels: kernels.iter().map(|ka| ka.kernel.clone()).collect(),
    };
    for ka in by_depmod_cost(ctx, kernels) {
        let latest = plan.latest.clone();
        for (m, v) in &latest {
            // An install whose headers changed under the same release is redone.
            if !ctx.tree.is_installed(m, v, ka)
                || super::super::fresh::stale(ctx, m, v, ka).is_some()
            {
                add_job(ctx, &mut plan, m, v, ka);
            }
        }
        let needs_build = plan.jobs.iter().any(|j| {
            &j.data.ka == ka
                && ctx
                    .tree
                    .built(
                        &j.data.module,
                        &j.data.version,
                        Some(&ka.kernel),
                        Some(&ka.arch),
                    )
                    .is_empty()
        });
        if needs_build {
            kbuild::check_headers(&ka.kernel, &ctx.kernel_dirs(&ka.kernel).build)?;
        }
    }
    Ok(plan)
}

/// A job for `m/v` on `ka` if its dkms.conf asks for AUTOINSTALL (a conf that cannot be
/// read is a failure of that module, reported in the summary). A module with prebuilt
/// binaries only (no source here) is skipped with a line whatever its AUTOINSTALL (a
/// prebuilt package turns it off): the new kernel will lack it, and the user is told.
fn add_job(ctx: &Context, plan: &mut Plan, m: &str, v: &str, ka: &KernelArch) {
    let file = ctx.tree.conf_file(m, v);
    let conf = match ctx.read_strict(&file, m, v, ka) {
        Ok(c) => c,
        Err(e) => {
            ctx.report.error(&e.to_string());
            plan.early
                .entry(ka.kernel.clone())
                .or_default()
                .push((format!("{m}/{v}"), Outcome::Failed(e.exit_code())));
            return;
        }
    };
    let unbuilt = ctx
        .tree
        .built(m, v, Some(&ka.kernel), Some(&ka.arch))
        .is_empty();
    if unbuilt && !crate::state::holds_source(&ctx.tree.version_dir(m, v).join("source")) {
        ctx.report.line(&format!(
            "{m}/{v} has prebuilt modules only (no source on this machine): it cannot be built for kernel {} ({}), skipped.",
            ka.kernel, ka.arch
        ));
        plan.early
            .entry(ka.kernel.clone())
            .or_default()
            .push((format!("{m}/{v}"), Outcome::Skipped));
        return;
    }
    if !conf.autoinstall {
        return;
    }
    // Builds of one version share `<v>/build` unless they can build privately.
    let private = kbuild::private_build_ok(&conf, &ctx.tree.version_dir(m, v).join("build"));
    let group = if private {
        format!("{m}/{v}/{}/{}", ka.kernel, ka.arch)
    } else {
        format!("{m}/{v}")
    };
    let install = Install {
        module: m.to_string(),
        version: v.to_string(),
        ka: ka.clone(),
        decided: None,
    };
    plan.jobs.push(Job::new(format!("{m}/{v}"), group, install));
    plan.deps_of.push(conf.build_depends.clone());
}

/// The latest added (not broken) version of every module.
pub(crate) fn latest_versions(ctx: &Context) -> BTreeMap<String, String> {
    let mut latest: BTreeMap<String, String> = BTreeMap::new();
    for (m, v) in ctx.tree.module_versions(None, None) {
        if !matches!(
            ctx.tree.registration(&m, &v, &ctx.settings.source_tree),
            Registration::Added { .. }
        ) {
            continue;
        }
        let newer = latest
            .get(&m)
            .is_none_or(|cur| crate::kernel::ver(&v) > crate::kernel::ver(cur));
        if newer {
            latest.insert(m, v);
        }
    }
    latest
}

/// Every kernel of the install tree whose headers are present (for `--all-kernels`).
pub fn kernels_with_headers(ctx: &Context) -> Vec<KernelArch> {
    crate::state::visible_entries(&ctx.settings.install_tree)
        .into_iter()
        .filter(|k| {
            let include = ctx.settings.install_tree.join(k).join("build/include");
            crate::kernel::is_kernel_name(k) && include.is_dir()
        })
        .map(|kernel| KernelArch {
            kernel,
            arch: ctx.settings.machine.clone(),
        })
        .collect()
}

/// The kernels, the one whose depmod costs most first (by the size of its modules.dep):
/// its installs are queued first, so its depmod, which can only start once they have
/// ended, runs beside the other kernels' builds instead of alone at the end.
fn by_depmod_cost<'k>(ctx: &Context, kernels: &'k [KernelArch]) -> Vec<&'k KernelArch> {
    let cost = |ka: &KernelArch| {
        let dep = ctx
            .settings
            .install_tree
            .join(&ka.kernel)
            .join("modules.dep");
        std::fs::metadata(dep).map_or(0, |m| m.len())
    };
    let mut order: Vec<&KernelArch> = kernels.iter().collect();
    order.sort_by_key(|ka| std::cmp::Reverse(cost(ka)));
    order
}
