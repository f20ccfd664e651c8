//! Running the jobs of one autoinstall: every install through the scheduler (one make
//! jobserver for all), one depmod per kernel as soon as that kernel's installs ended, a
//! line per finished (module, kernel) and a progress bar on a terminal.

use super::super::context::Context;
use super::super::schedule::{self, Job, Outcome};
use super::Install;
use crate::commands::error::{ActionError, Result};
use crate::exit;

/// What the scheduler runs: an install (its index among the installs), or a kernel's
/// depmod once its installs ended.
enum Task {
    Install(usize),
    Depmod(String),
}

/// Run `jobs`; returns the installs and the outcomes (one per install, then one per
/// depmod).
pub(super) fn run(
    ctx: &Context,
    jobs: Vec<Job<Install>>,
    kernels: &[String],
) -> Result<(Vec<Install>, Vec<Outcome>)> {
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
    if ctx.opts.depmod {
        tasks.extend(depmod_tasks(&installs, kernels));
    }
    let tokens = ctx.settings.parallel_jobs.unwrap_or(64) as usize;
    let jobserver = jobserver::Client::new(tokens).map_err(ActionError::Jobserver)?;
    let worker = ctx.batch_worker(Some(jobserver.clone()));
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
            if let Task::Install(i) = job.data {
                let ka = &installs[i].ka;
                ctx.report.line(&format!(
                    "dkms: {} for kernel {} ({}): {}",
                    job.name,
                    ka.kernel,
                    ka.arch,
                    outcome_word(outcome)
                ));
                ctx.report.step(&job.name);
            }
        },
    );
    ctx.report.finish_progress();
    for kernel in worker.changed_kernels() {
        ctx.mark_changed(&kernel);
    }
    Ok((installs, outcomes))
}

/// One depmod per kernel, started as soon as every install on it has ended (urgent:
/// before any other ready job), so it overlaps the builds still running for the others.
fn depmod_tasks(installs: &[Install], kernels: &[String]) -> Vec<Job<Task>> {
    let mut tasks = Vec::new();
    for kernel in kernels {
        let on_kernel: Vec<usize> = (0..installs.len())
            .filter(|&i| &installs[i].ka.kernel == kernel)
            .collect();
        if on_kernel.is_empty() {
            continue;
        }
        let name = format!("depmod {kernel}");
        tasks.push(Job {
            after_ended: on_kernel,
            urgent: true,
            ..Job::new(name.clone(), name, Task::Depmod(kernel.clone()))
        });
    }
    tasks
}

/// How a finished (module, kernel) is reported.
fn outcome_word(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Done => "installed".to_string(),
        Outcome::Skipped => "skipped".to_string(),
        Outcome::Deferred => "deferred".to_string(),
        Outcome::Failed(code) => format!("failed ({code})"),
        Outcome::DependencyFailed(deps) => format!(
            "not installed: its dependencies failed ({})",
            deps.join(" ")
        ),
    }
}

/// Build and install one (module, kernel), unless its outcome was decided beforehand.
fn run_install(ctx: &Context, worker: &Context, install: &Install) -> Outcome {
    let Install {
        module,
        version,
        ka,
        decided,
    } = install;
    if let Some(decided) = decided {
        return decided.clone();
    }
    ctx.report.line(&format!(
        "Autoinstall of module {module}/{version} for kernel {} ({})",
        ka.kernel, ka.arch
    ));
    Outcome::of(
        super::super::steps::install_one(worker, module, version, ka).map(|_| ()),
        ctx.report,
    )
}

/// depmod for a kernel after a batch of installs or removals (each already committed):
/// false, with an error saying what to run, if it failed.
pub(crate) fn batch_depmod(ctx: &Context, kernel: &str) -> bool {
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
