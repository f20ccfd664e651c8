//! `dkms mkbmdeb` and `dkms mkbmpkg`: binary packages of a module version's built modules,
//! one per kernel given with `-k`, for hosts that install prebuilt modules through their
//! package manager. Through the scheduler: a kernel the module is not built for yet is
//! built first (builds run at once in private directories where the dkms.conf allows it,
//! as in autoinstall), and each kernel's package is made as soon as its build is there,
//! beside the other builds. The packages go to `<dkms_tree>/<m>/<v>/deb/` or `pkg/`; their
//! paths are printed, one per line, in the order of the kernels.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::context::Context;
use super::schedule::{self, Job, Outcome};
use crate::cli::Action;
use crate::commands::error::{ActionError, Result};
use crate::exit;
use crate::module::package::PackageJob;
use crate::state::KernelArch;

/// The package format asked for.
#[derive(Clone, Copy)]
enum Format {
    Deb,
    Pacman,
    Rpm,
}

impl Format {
    /// Where the packages go, under `<dkms_tree>/<m>/<v>/` (the original's names).
    fn dir(self) -> &'static str {
        match self {
            Format::Deb => "deb",
            Format::Pacman => "pkg",
            Format::Rpm => "rpm",
        }
    }
}

enum Task {
    Build(usize),
    Package(usize),
}

pub fn run(ctx: &Context, action: Action) -> Result<i32> {
    let (m, v) = super::module_args(ctx, action)?;
    super::ensure_added(ctx, &m, &v, false)?;
    ctx.tree.check_writable()?;
    let kernels = super::kernels_for(ctx, Some((&m, &v)))?;
    let _lock = ctx.take_lock()?;
    super::ensure_added(ctx, &m, &v, false)?;
    let format = match action {
        Action::Mkbmdeb => Format::Deb,
        Action::Mkbmrpm => Format::Rpm,
        _ => Format::Pacman,
    };
    let out_dir = ctx.tree.version_dir(&m, &v).join(format.dir());
    std::fs::create_dir_all(&out_dir).map_err(crate::fsutil::io_error("create", &out_dir))?;
    let tasks = plan(ctx, &m, &v, &kernels);
    let tokens = ctx.settings.parallel_jobs.unwrap_or(64) as usize;
    let jobserver = jobserver::Client::new(tokens).map_err(ActionError::Jobserver)?;
    let worker = ctx.batch_worker(Some(jobserver.clone()));
    let made: Mutex<Vec<Option<PathBuf>>> = Mutex::new(vec![None; kernels.len()]);
    let outcomes = schedule::run(
        &tasks,
        &jobserver,
        tokens,
        |job| match job.data {
            Task::Build(i) => Outcome::of(
                super::steps::build_one(&worker, &m, &v, &kernels[i]),
                ctx.report,
            ),
            Task::Package(i) => match package(ctx, &m, &v, &kernels[i], &out_dir, format) {
                Ok(Some(path)) => {
                    made.lock().expect("made packages")[i] = Some(path);
                    Outcome::Done
                }
                Ok(None) => Outcome::Skipped,
                Err(e) => Outcome::of(Err(e), ctx.report),
            },
        },
        |_, _| {},
    );
    for path in made
        .into_inner()
        .expect("made packages")
        .into_iter()
        .flatten()
    {
        ctx.report.line(&path.display().to_string());
    }
    Ok(outcomes
        .iter()
        .find_map(|o| match o {
            Outcome::Failed(code) => Some(*code),
            _ => None,
        })
        .unwrap_or(exit::SUCCESS))
}

/// A build for each kernel that lacks one (at once when they can build in private
/// directories, else one after another: they share the version's build directory), then
/// each kernel's package, after its build.
fn plan(ctx: &Context, m: &str, v: &str, kernels: &[KernelArch]) -> Vec<Job<Task>> {
    let mut tasks = Vec::new();
    for (i, ka) in kernels.iter().enumerate() {
        let built = !ctx
            .tree
            .built(m, v, Some(&ka.kernel), Some(&ka.arch))
            .is_empty();
        let name = format!("{m}/{v} for {} ({})", ka.kernel, ka.arch);
        let mut package = Job::new(
            name.clone(),
            format!("package {}", ka.kernel),
            Task::Package(i),
        );
        if !built {
            let private = ctx
                .read_strict(&ctx.conf_file(m, v), m, v, ka)
                .is_ok_and(|conf| {
                    crate::module::kbuild::private_build_ok(
                        &conf,
                        &ctx.tree.version_dir(m, v).join("build"),
                    )
                });
            let group = if private {
                format!("{m}/{v}/{}/{}", ka.kernel, ka.arch)
            } else {
                format!("{m}/{v}")
            };
            tasks.push(Job::new(name, group, Task::Build(i)));
            package.after.push(tasks.len() - 1);
        }
        tasks.push(package);
    }
    tasks
}

/// One kernel's package (None: BUILD_EXCLUSIVE left nothing built for it).
fn package(
    ctx: &Context,
    m: &str,
    v: &str,
    ka: &KernelArch,
    out_dir: &Path,
    format: Format,
) -> Result<Option<PathBuf>> {
    if ctx
        .tree
        .built(m, v, Some(&ka.kernel), Some(&ka.arch))
        .is_empty()
    {
        ctx.report.line(&format!(
            "Module {m}/{v} is not built for kernel {} ({}): no package for it.",
            ka.kernel, ka.arch
        ));
        return Ok(None);
    }
    let conf = ctx.read_strict(&ctx.conf_file(m, v), m, v, ka)?;
    let job = PackageJob {
        on: ctx.on_kernel(m, v, ka, &conf),
        force: ctx.opts.force,
        revision: ctx.opts.revision,
    };
    Ok(Some(match format {
        Format::Deb => job.deb(out_dir)?,
        Format::Pacman => job.pacman(out_dir)?,
        Format::Rpm => job.rpm(out_dir)?,
    }))
}
