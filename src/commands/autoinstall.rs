//! `autoinstall` (and `kernel_postinst`, which is the same), `kernel_preinst`,
//! `kernel_prerm` and `match`: every module brought to (or taken from) a kernel.
//!
//! autoinstall follows upstream 3.4.3: the latest added version of each module,
//! AUTOINSTALL=yes, not already installed; BUILD_DEPENDS order (a dependency known to dkms
//! that cannot be installed fails the module, exit 11; one unknown to dkms defers it,
//! exit 0, 3.4.1); 77 counts as skipped; the summary lines; exit 11 when something failed;
//! `/etc/dkms/no-autoinstall` turns it off. Ours runs every independent (module, kernel)
//! at once through the scheduler, with one jobserver and one depmod per kernel at the end.
//! `--all-kernels` (our addition, upstream request #394) takes every kernel with headers.

use std::collections::BTreeMap;

use super::schedule::{self, Job, Outcome};
use super::{take_lock, Context};
use crate::error::{ActionError, Result};
use crate::exit;
use crate::state::{KernelArch, Registration};

/// One (module, version, kernel) to install.
struct Install {
    module: String,
    version: String,
    ka: KernelArch,
    /// Decided before running (missing or unregistered dependencies, a cycle).
    decided: Option<Outcome>,
}

/// What the scheduler runs: an install (its index among the installs), or a kernel's
/// depmod once its installs ended.
enum Task {
    Install(usize),
    Depmod(String),
}

/// depmod for a kernel after a batch of installs or removals (each already committed):
/// false, with an error saying what to run, if it failed.
fn batch_depmod(ctx: &Context, kernel: &str) -> bool {
    match crate::module::install::depmod_run(ctx.settings, kernel, ctx.report) {
        Ok(()) => true,
        Err(e) => {
            ctx.report.error(&format!(
                "depmod failed for kernel {kernel}: {e}\nThe modules are in place but not indexed, so modprobe cannot find them: fix the problem and run 'depmod -a {kernel}'."
            ));
            false
        }
    }
}

/// Build and install one (module, kernel), unless its outcome was decided beforehand.
fn run_install(ctx: &Context, worker: &Context, install: &Install) -> Outcome {
    let Install {
        module,
        version,
        ka,
        decided,
        ..
    } = install;
    if let Some(decided) = decided {
        return decided.clone();
    }
    ctx.report.line(&format!(
        "Autoinstall of module {module}/{version} for kernel {} ({})",
        ka.kernel, ka.arch
    ));
    match super::steps::install_one(worker, module, version, ka) {
        Ok(()) => Outcome::Done,
        Err(e) if e.exit_code() == exit::EXCLUDED => Outcome::Skipped,
        Err(e) => {
            ctx.report.error(&e.to_string());
            Outcome::Failed(e.exit_code())
        }
    }
}

/// The latest added (not broken) version of every module.
fn latest_versions(ctx: &Context) -> BTreeMap<String, String> {
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
            crate::kernel::is_kernel_name(k)
                && ctx
                    .settings
                    .install_tree
                    .join(k)
                    .join("build/include")
                    .is_dir()
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

pub fn autoinstall(ctx: &Context, kernels: &[KernelArch]) -> Result<i32> {
    if ctx.settings.config_dir.join("no-autoinstall").exists() {
        ctx.report
            .line("Automatic installation of modules has been disabled.");
        return Ok(0);
    }
    let _lock = take_lock(ctx)?;
    let latest = latest_versions(ctx);
    let mut jobs: Vec<Job<Install>> = Vec::new();
    let mut deps_of: Vec<Vec<String>> = Vec::new();
    let mut early: BTreeMap<String, Vec<(String, Outcome)>> = BTreeMap::new();
    let mut deferred = Vec::new();
    let mut kernels_run = Vec::new();
    for ka in by_depmod_cost(ctx, kernels) {
        let build = crate::kernel::build_dir(
            ctx.settings,
            ctx.req.kernel_source_dir.as_deref(),
            &ka.kernel,
        );
        kernels_run.push(ka.kernel.clone());
        for (m, v) in &latest {
            if ctx.tree.is_installed(m, v, ka) {
                continue;
            }
            let file = ctx.tree.version_dir(m, v).join("source/dkms.conf");
            let conf = match super::read_strict(ctx, &file, m, v, ka) {
                Ok(c) => c,
                Err(e) => {
                    ctx.report.error(&e.to_string());
                    early
                        .entry(ka.kernel.clone())
                        .or_default()
                        .push((format!("{m}/{v}"), Outcome::Failed(e.exit_code())));
                    continue;
                }
            };
            if !conf.autoinstall {
                continue;
            }
            // Builds of one version share `<v>/build` unless they can build privately.
            let private = crate::module::kbuild::private_build_ok(
                &conf,
                &ctx.tree.version_dir(m, v).join("build"),
            );
            let group = if private {
                format!("{m}/{v}/{}/{}", ka.kernel, ka.arch)
            } else {
                format!("{m}/{v}")
            };
            jobs.push(Job::new(
                format!("{m}/{v}"),
                group,
                Install {
                    module: m.clone(),
                    version: v.clone(),
                    ka: ka.clone(),
                    decided: None,
                },
            ));
            deps_of.push(conf.build_depends.clone());
        }
        // As the original: a kernel without headers fails the run (21) as soon as a
        // module needs building for it, and before anything changed here.
        let needs_build = jobs.iter().any(|j| {
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
            crate::module::kbuild::check_headers(&ka.kernel, &build)?;
        }
    }

    // The summary follows the order the kernels were given in.
    kernels_run.sort_by_key(|k| kernels.iter().position(|ka| &ka.kernel == k));

    // BUILD_DEPENDS: installed deps are satisfied, deps with a job here are waited for,
    // deps known to dkms but not installable fail the module, unknown deps defer it.
    for i in 0..jobs.len() {
        let ka = jobs[i].data.ka.clone();
        let (mut unknown, mut missing) = (Vec::new(), Vec::new());
        for dep in &deps_of[i] {
            if ctx.tree.kernel_link(dep, &ka).exists() {
                continue;
            }
            if let Some(j) = jobs
                .iter()
                .position(|j| &j.data.module == dep && j.data.ka == ka)
            {
                jobs[i].after.push(j);
            } else if latest.contains_key(dep) {
                missing.push(dep.clone());
            } else {
                unknown.push(dep.clone());
            }
        }
        if !missing.is_empty() {
            ctx.report.line(&format!(
                "{} autoinstall failed due to missing dependencies: {}",
                jobs[i].name,
                missing.join(" ")
            ));
            jobs[i].data.decided = Some(Outcome::Failed(exit::AUTOINSTALL_FAILED));
        } else if !unknown.is_empty() {
            deferred.push(format!(
                "{} autoinstall deferred: BUILD_DEPENDS not registered with DKMS: {}",
                jobs[i].name,
                unknown.join(" ")
            ));
            jobs[i].data.decided = Some(Outcome::Deferred);
        }
    }
    if let Some(cycle) = schedule::find_cycle(&jobs) {
        ctx.report.error(&format!("BUILD_DEPENDS form a cycle: {}. None of these modules can be installed; remove one of the dependencies.", cycle.join(" -> ")));
        for j in jobs.iter_mut() {
            if cycle.contains(&j.name) {
                j.data.decided = Some(Outcome::Failed(exit::AUTOINSTALL_FAILED));
            }
            j.after.clear();
        }
    }

    let mut installs: Vec<Install> = Vec::new();
    let mut tasks: Vec<Job<Task>> = jobs
        .into_iter()
        .map(|j| {
            j.map(|install| {
                installs.push(install);
                Task::Install(installs.len() - 1)
            })
        })
        .collect();
    // One depmod per kernel, as soon as every install on it has ended: it overlaps
    // the builds still running for the other kernels.
    if !ctx.req.no_depmod {
        for kernel in &kernels_run {
            let on_kernel: Vec<usize> = (0..installs.len())
                .filter(|&i| &installs[i].ka.kernel == kernel)
                .collect();
            if on_kernel.is_empty() {
                continue;
            }
            tasks.push(Job {
                after_ended: on_kernel,
                urgent: true,
                ..Job::new(
                    format!("depmod {kernel}"),
                    format!("depmod {kernel}"),
                    Task::Depmod(kernel.clone()),
                )
            });
        }
    }

    let tokens = ctx.settings.parallel_jobs.unwrap_or(64) as usize;
    let jobserver = jobserver::Client::new(tokens).map_err(ActionError::Jobserver)?;
    let worker = ctx.batch_worker(Some(jobserver.clone()));
    // On a terminal, a live progress bar; every line is printed above it.
    ctx.report.start_progress(installs.len());
    let outcomes = schedule::run(
        &tasks,
        &jobserver,
        tokens,
        |job| match &job.data {
            Task::Install(i) => run_install(ctx, &worker, &installs[*i]),
            Task::Depmod(kernel) => {
                if worker.changed_kernels().contains(kernel) && !batch_depmod(ctx, kernel) {
                    return Outcome::Failed(exit::INSTALL_FAILED);
                }
                Outcome::Done
            }
        },
        |job, outcome| {
            let Task::Install(i) = job.data else {
                return;
            };
            let install = &installs[i];
            let word = match outcome {
                Outcome::Done => "installed".to_string(),
                Outcome::Skipped => "skipped".to_string(),
                Outcome::Deferred => "deferred".to_string(),
                Outcome::Failed(code) => format!("failed ({code})"),
                Outcome::DependencyFailed(deps) => format!(
                    "not installed: its dependencies failed ({})",
                    deps.join(" ")
                ),
            };
            let line = format!(
                "dkms: {} for kernel {} ({}): {word}",
                job.name, install.ka.kernel, install.ka.arch
            );
            ctx.report.line(&line);
            ctx.report.step(&job.name);
        },
    );
    ctx.report.finish_progress();
    for kernel in worker.changed_kernels() {
        ctx.mark_changed(&kernel);
    }
    for line in &deferred {
        ctx.report.line(line);
    }

    // A kernel whose depmod failed has its modules in place but not indexed.
    let mut failed_any = outcomes[installs.len()..]
        .iter()
        .any(|o| matches!(o, Outcome::Failed(_)));
    for kernel in &kernels_run {
        let mut results: Vec<(String, Outcome)> = early.remove(kernel).unwrap_or_default();
        for (install, outcome) in installs.iter().zip(&outcomes) {
            if &install.ka.kernel == kernel && *outcome != Outcome::Deferred {
                results.push((install.module.clone(), outcome.clone()));
            }
        }
        let names = |want: fn(&Outcome) -> bool| -> Vec<String> {
            results
                .iter()
                .filter(|(_, o)| want(o))
                .map(|(m, _)| m.split('/').next().unwrap_or(m).to_string())
                .collect()
        };
        let ok = names(|o| matches!(o, Outcome::Done));
        let skipped = names(|o| matches!(o, Outcome::Skipped));
        let failed: Vec<String> = results
            .iter()
            .filter_map(|(m, o)| match o {
                Outcome::Failed(code) => {
                    Some(format!("{}({code})", m.split('/').next().unwrap_or(m)))
                }
                Outcome::DependencyFailed(_) => {
                    let name = m.split('/').next().unwrap_or(m);
                    Some(format!("{name}({})", exit::AUTOINSTALL_FAILED))
                }
                _ => None,
            })
            .collect();
        if !ok.is_empty() {
            ctx.report.line(&format!(
                "Autoinstall on {kernel} succeeded for module(s) {}.",
                ok.join(" ")
            ));
        }
        if !skipped.is_empty() {
            ctx.report.line(&format!(
                "Autoinstall on {kernel} was skipped for module(s) {}.",
                skipped.join(" ")
            ));
        }
        if !failed.is_empty() {
            ctx.report.line(&format!(
                "Autoinstall on {kernel} failed for module(s) {}.",
                failed.join(" ")
            ));
            failed_any = true;
        }
    }
    super::post::post_transaction(ctx);
    if failed_any {
        return Err(ActionError::AutoinstallFailed.into());
    }
    Ok(0)
}

/// `kernel_prerm` (every module built for the kernel) and `kernel_preinst` (those with
/// AUTOINSTALL): uninstall and unbuild, one depmod, empty directories pruned; 14 if
/// anything failed.
pub fn kernel_remove(ctx: &Context, ka: &KernelArch, only_autoinstall: bool) -> Result<i32> {
    let _lock = take_lock(ctx)?;
    let worker = ctx.batch_worker(None);
    let mut failed = false;
    for (m, v) in ctx.tree.module_versions(None, None) {
        for built in ctx.tree.built(&m, &v, Some(&ka.kernel), None) {
            if only_autoinstall {
                let req = crate::conf::ConfRequest::new(
                    ctx.settings,
                    ctx.tree.version_dir(&m, &v).join("source/dkms.conf"),
                    &m,
                    &v,
                    &built.kernel,
                    &built.arch,
                );
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
        if !ctx.req.no_depmod && !batch_depmod(ctx, &ka.kernel) {
            failed = true;
        }
        prune_empty_dirs(&ctx.settings.install_tree.join(&ka.kernel));
    }
    if failed {
        return Err(ActionError::KernelRemovalFailed(ka.kernel.clone()).into());
    }
    Ok(0)
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

/// `match --templatekernel T -k K [module]`: install on K what is installed on T.
pub fn run_match(ctx: &Context, ka: &KernelArch) -> Result<i32> {
    let Some(template) = ctx.req.template_kernel.clone() else {
        return Err(ActionError::MatchUsage.into());
    };
    if template == ka.kernel {
        return Err(ActionError::MatchSameKernel.into());
    }
    if let Some(m) = &ctx.req.module {
        if crate::state::visible_entries(&ctx.settings.dkms_tree.join(m)).is_empty() {
            return Err(ActionError::MatchNotAdded(m.clone()).into());
        }
    }
    let _lock = take_lock(ctx)?;
    let template_ka = KernelArch {
        kernel: template.clone(),
        arch: ka.arch.clone(),
    };
    let mut todo = Vec::new();
    for (m, v) in ctx.tree.module_versions(ctx.req.module.as_deref(), None) {
        if ctx.tree.is_installed(&m, &v, &template_ka) {
            todo.push((m, v));
        }
    }
    if todo.is_empty() {
        ctx.report
            .line("There is nothing to be done for this match.");
        return Ok(0);
    }
    for (m, v) in todo {
        ctx.report.line(&format!(
            "Matching {m}/{v} from kernel {template} onto kernel {} ({})",
            ka.kernel, ka.arch
        ));
        super::steps::install_one(ctx, &m, &v, ka)?;
    }
    super::post::post_transaction(ctx);
    Ok(0)
}
