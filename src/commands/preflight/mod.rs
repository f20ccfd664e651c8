//! `dkms preflight -k KERNEL... | --headers DIR|PKG.deb...`: build every module version
//! autoinstall would install on a kernel, before that kernel is installed, and say which
//! would be missing.
//!
//! Why: a kernel upgrade whose modules do not build is installed anyway, and the next
//! boot has no network, display or root pool. Run from the package manager before the
//! kernel is unpacked (hooks/apt-preflight, the pacman PreTransaction hook), this finds
//! out first. Builds run through the scheduler in private build directories, against the
//! given headers (unpacked from packages that are not installed yet, if need be), and go
//! to `<v>/.preflight/<k>/<a>` with their fingerprint: nothing in the install tree,
//! depmod or the dkms tree's built state changes, and the original's `status` does not
//! see them. When the kernel is then installed, autoinstall takes a kept build whose
//! fingerprint still matches instead of compiling ([`super::fresh`]). A failure is
//! recorded like any other (`state::failed`). It takes the dkms lock, as every command
//! that writes the dkms tree does, so two preflights run one after the other.

mod headers;

use std::collections::BTreeSet;

use serde::Serialize;

use super::context::Context;
use super::schedule::{self, Job, Outcome};
use crate::commands::error::{ActionError, Result};
use crate::conf::KernelDirs;
use crate::exit;
use crate::module::kbuild::{self, BuildError, BuildJob, SignerCell};
use crate::state::fingerprint::Fingerprint;
use crate::state::KernelArch;

/// What one module version on one kernel came to.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub(crate) enum Verdict {
    /// Built now, or already (kept from an earlier preflight, or the kernel's own build).
    Builds {
        how: &'static str,
    },
    Fails {
        exit_code: i32,
        errors: Vec<String>,
        log: Option<std::path::PathBuf>,
    },
    /// BUILD_EXCLUSIVE: not for this kernel.
    Skipped {
        reason: String,
    },
    MissingDependency {
        dependency: String,
    },
    /// Prebuilt binaries only: nothing to build for another kernel.
    NoSource,
}

#[derive(Debug, Serialize)]
struct Row {
    module: String,
    version: String,
    kernel: String,
    arch: String,
    #[serde(flatten)]
    verdict: Verdict,
    /// Installed for the running or newest kernel, and not there on this one.
    lost: bool,
}

/// A build to run: module, version, target index.
struct Build {
    module: String,
    version: String,
    target: usize,
}

pub fn run(ctx: &Context) -> Result<i32> {
    let targets = match headers::targets(ctx) {
        Ok(t) => t,
        // A hook never stops the package manager for its own trouble.
        Err(e) if ctx.opts.preflight.hook => {
            ctx.report
                .warn(&format!("dkms preflight could not check this kernel: {e}"));
            return Ok(exit::SUCCESS);
        }
        Err(e) => return Err(e),
    };
    ctx.tree.check_writable()?;
    let _lock = ctx.take_lock()?;
    let latest = super::autoinstall::latest_versions(ctx);
    let mut rows: Vec<Row> = Vec::new();
    let mut builds: Vec<Job<Build>> = Vec::new();
    for (t, target) in targets.list.iter().enumerate() {
        ctx.report.line(&format!(
            "Preflight for kernel {} ({}), headers: {}",
            target.ka.kernel, target.ka.arch, target.from
        ));
        for (m, v) in &latest {
            match decide(ctx, m, v, &target.ka, &target.dirs) {
                Some(verdict) => rows.push(row(m, v, &target.ka, verdict)),
                None => builds.push(job(ctx, m, v, t, target)),
            }
        }
    }
    let verdicts = run_builds(ctx, &targets.list, &builds);
    for (b, verdict) in builds.iter().zip(verdicts) {
        rows.push(row(
            &b.data.module,
            &b.data.version,
            &targets.list[b.data.target].ka,
            verdict,
        ));
    }
    rows.sort_by(|a, b| (&a.kernel, &a.module).cmp(&(&b.kernel, &b.module)));
    mark_lost(ctx, &mut rows);
    report(ctx, &rows);
    let lost = rows.iter().any(|r| r.lost);
    if !lost {
        return Ok(exit::SUCCESS);
    }
    let policy = Policy::of(ctx);
    if ctx.opts.preflight.hook && policy == Policy::Warn {
        ctx.report.warn("preflight=warn: the kernel's installation goes on, and the modules above will be missing on it. Set preflight=refuse in /etc/dkms/framework.conf to stop such a transaction.");
        return Ok(exit::SUCCESS);
    }
    if ctx.opts.preflight.hook {
        ctx.report.stderr("preflight=refuse: the kernel's installation is stopped before anything of it is unpacked.\nTo install it anyway, run the same command again with DKMS_PREFLIGHT=warn in its environment, or set preflight=warn in /etc/dkms/framework.conf.");
    }
    Err(ActionError::PreflightLoses.into())
}

fn row(m: &str, v: &str, ka: &KernelArch, verdict: Verdict) -> Row {
    Row {
        module: m.into(),
        version: v.into(),
        kernel: ka.kernel.clone(),
        arch: ka.arch.clone(),
        verdict,
        lost: false,
    }
}

/// What is known about `m/v` on the target without building (None: it needs a build):
/// no source, a conf that does not read, no AUTOINSTALL, or a build of the same
/// fingerprint already made.
fn decide(ctx: &Context, m: &str, v: &str, ka: &KernelArch, dirs: &KernelDirs) -> Option<Verdict> {
    let source = ctx.tree.version_dir(m, v).join("source");
    if !crate::state::holds_source(&source) {
        return Some(Verdict::NoSource);
    }
    let conf = match ctx.read_strict_with(&ctx.tree.conf_file(m, v), m, v, ka, Some(dirs)) {
        Ok(conf) => conf,
        Err(e) => {
            ctx.report.error(&e.to_string());
            return Some(Verdict::Fails {
                exit_code: e.exit_code(),
                errors: vec![e.to_string()],
                log: None,
            });
        }
    };
    if !conf.autoinstall {
        return Some(Verdict::Skipped {
            reason: "AUTOINSTALL is not set".into(),
        });
    }
    let now = Fingerprint::compute(&source, &dirs.build, &dirs.config, ka).ok()?;
    let matches = |dir: &std::path::Path| {
        Fingerprint::recorded(dir).is_some_and(|f| f.fingerprint == now.fingerprint)
    };
    if matches(&ctx.tree.build_dir(m, v, ka)) {
        return Some(Verdict::Builds {
            how: "already built",
        });
    }
    let ahead = ctx.tree.preflight_dir(m, v, ka);
    if matches(&ahead) {
        return Some(Verdict::Builds {
            how: "kept from an earlier preflight",
        });
    }
    // A kept build for other headers goes; this one replaces it.
    let _ = std::fs::remove_dir_all(&ahead);
    None
}

fn job(ctx: &Context, m: &str, v: &str, t: usize, target: &headers::Target) -> Job<Build> {
    let ka = &target.ka;
    let private = ctx
        .read_strict_with(&ctx.tree.conf_file(m, v), m, v, ka, Some(&target.dirs))
        .is_ok_and(|conf| {
            kbuild::private_build_ok(&conf, &ctx.tree.version_dir(m, v).join("build"))
        });
    let group = if private {
        format!("{m}/{v}/{}/{}", ka.kernel, ka.arch)
    } else {
        format!("{m}/{v}")
    };
    Job::new(
        format!("{m}/{v}"),
        group,
        Build {
            module: m.into(),
            version: v.into(),
            target: t,
        },
    )
}

/// Every build at once under one jobserver, as autoinstall runs them.
fn run_builds(ctx: &Context, targets: &[headers::Target], builds: &[Job<Build>]) -> Vec<Verdict> {
    if builds.is_empty() {
        return Vec::new();
    }
    let tokens = ctx.settings.parallel_jobs.unwrap_or(64) as usize;
    let Ok(jobserver) = jobserver::Client::new(tokens) else {
        return builds
            .iter()
            .map(|_| Verdict::Fails {
                exit_code: exit::FAILURE,
                errors: vec!["cannot create the make jobserver".into()],
                log: None,
            })
            .collect();
    };
    let signers: Vec<SignerCell> = targets.iter().map(|_| SignerCell::new()).collect();
    let verdicts = std::sync::Mutex::new(vec![None; builds.len()]);
    let index = |job: &Job<Build>| {
        builds
            .iter()
            .position(|b| std::ptr::eq(b, job))
            .expect("a job of ours")
    };
    schedule::run(
        builds,
        &jobserver,
        tokens,
        |job| {
            let verdict = build(
                ctx,
                &targets[job.data.target],
                &job.data,
                &signers[job.data.target],
                &jobserver,
            );
            let failed = matches!(verdict, Verdict::Fails { .. });
            verdicts.lock().expect("verdicts")[index(job)] = Some(verdict);
            if failed {
                Outcome::Failed(exit::BUILD_FAILED)
            } else {
                Outcome::Done
            }
        },
        |_, _| {},
    );
    verdicts
        .into_inner()
        .expect("verdicts")
        .into_iter()
        .map(|v| v.expect("every build ran"))
        .collect()
}

/// One build ahead of the kernel, and what it came to.
fn build(
    ctx: &Context,
    target: &headers::Target,
    b: &Build,
    signer: &SignerCell,
    jobserver: &jobserver::Client,
) -> Verdict {
    let (m, v, ka) = (b.module.as_str(), b.version.as_str(), &target.ka);
    let conf = match ctx.read_strict_with(&ctx.tree.conf_file(m, v), m, v, ka, Some(&target.dirs)) {
        Ok(c) => c,
        Err(e) => {
            return Verdict::Fails {
                exit_code: e.exit_code(),
                errors: vec![e.to_string()],
                log: None,
            }
        }
    };
    let shared = ctx.tree.version_dir(m, v).join("build");
    let job = BuildJob {
        on: ctx.on_kernel(m, v, ka, &conf),
        kernel_config: target.dirs.config.clone(),
        kernel_source_dir: target.dirs.build.clone(),
        force: false,
        jobserver: Some(jobserver),
        private_build: kbuild::private_build_ok(&conf, &shared),
        signer,
        ahead: true,
        skip_known_failure: !ctx.opts.retry,
    };
    match job.run() {
        Ok(()) => Verdict::Builds { how: "built now" },
        Err(e) => verdict_of(ctx, m, v, ka, e),
    }
}

fn verdict_of(ctx: &Context, m: &str, v: &str, ka: &KernelArch, e: BuildError) -> Verdict {
    match e {
        BuildError::Excluded { reasons, .. } => Verdict::Skipped {
            reason: format!("BUILD_EXCLUSIVE: {}", reasons.join("; ")),
        },
        BuildError::MissingDependency { dependency, .. } => {
            Verdict::MissingDependency { dependency }
        }
        e => {
            ctx.report.error(&e.to_string());
            let failure = ctx.tree.failure(m, v, ka);
            let errors = failure
                .as_ref()
                .map(|f| f.first_error.iter().chain(&f.errors).cloned().collect());
            Verdict::Fails {
                exit_code: e.exit_code(),
                errors: errors.unwrap_or_default(),
                log: failure.map(|f| f.log),
            }
        }
    }
}

/// Modules installed for the running kernel, or for the newest kernel that has dkms
/// modules installed (other than those checked), that would not be there on a checked
/// kernel: what the user relies on now.
fn mark_lost(ctx: &Context, rows: &mut [Row]) {
    let checked: BTreeSet<&str> = rows.iter().map(|r| r.kernel.as_str()).collect();
    let arch = &ctx.settings.machine;
    let on = |m: &str, v: &str, k: &str| {
        ctx.tree.is_installed(
            m,
            v,
            &KernelArch {
                kernel: k.to_string(),
                arch: arch.clone(),
            },
        )
    };
    let versions = ctx.tree.module_versions(None, None);
    let mut with_modules: Vec<String> = crate::state::visible_entries(&ctx.settings.install_tree)
        .into_iter()
        .filter(|k| !checked.contains(k.as_str()))
        .filter(|k| versions.iter().any(|(m, v)| on(m, v, k)))
        .collect();
    with_modules.sort_by_key(|k| crate::kernel::ver(k));
    let mut reference: Vec<String> = with_modules.pop().into_iter().collect();
    reference.push(ctx.settings.current_kernel.clone());
    for r in rows.iter_mut() {
        let missing = matches!(
            r.verdict,
            Verdict::Fails { .. } | Verdict::MissingDependency { .. } | Verdict::NoSource
        );
        r.lost = missing
            && versions
                .iter()
                .filter(|(m, _)| m == &r.module)
                .any(|(m, v)| reference.iter().any(|k| on(m, v, k)));
    }
}

/// The table (or `--json`), then what would be lost and what to do.
fn report(ctx: &Context, rows: &[Row]) {
    if ctx.opts.output.json {
        let doc = serde_json::json!({
            "schema": crate::state::status::STATUS_SCHEMA,
            "preflight": rows,
        });
        ctx.report
            .line(&serde_json::to_string_pretty(&doc).expect("preflight serializes"));
        return;
    }
    let width = rows
        .iter()
        .map(|r| r.module.len() + r.version.len() + 1)
        .chain([14])
        .max()
        .unwrap_or(14);
    let kwidth = rows
        .iter()
        .map(|r| r.kernel.len())
        .chain([6])
        .max()
        .unwrap_or(6);
    ctx.report.line("");
    ctx.report.line(&format!(
        "{:width$}  {:kwidth$}  result",
        "module/version", "kernel"
    ));
    for r in rows {
        ctx.report.line(&format!(
            "{:width$}  {:kwidth$}  {}",
            format!("{}/{}", r.module, r.version),
            r.kernel,
            words(&r.verdict)
        ));
    }
    for r in rows.iter().filter(|r| r.lost) {
        ctx.report.stderr(&format!(
            "dkms preflight: {}/{} is installed for the running or newest kernel and would be missing on {}: {}.\n  Fix: install a version of {} that supports this kernel (dkms add, or its newer package), or remove it (dkms remove {}/{} --all) if you no longer need it.",
            r.module, r.version, r.kernel, words(&r.verdict), r.module, r.module, r.version
        ));
    }
}

fn words(v: &Verdict) -> String {
    match v {
        Verdict::Builds { how } => format!("builds ({how})"),
        Verdict::Fails {
            exit_code, errors, ..
        } => match errors.first() {
            Some(first) => format!("fails ({exit_code}): {}", first.trim()),
            None => format!("fails ({exit_code})"),
        },
        Verdict::Skipped { reason } => format!("skipped: {reason}"),
        Verdict::MissingDependency { dependency } => {
            format!("missing dependency: {dependency} (BUILD_DEPENDS) is not installed for it")
        }
        Verdict::NoSource => "no source here (prebuilt modules only)".into(),
    }
}

/// What a package-manager hook does when modules would be lost: framework.conf's
/// `preflight=` (warn, the default, or refuse), overridden for one run by the
/// environment's `DKMS_PREFLIGHT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Warn,
    Refuse,
}

impl Policy {
    fn of(ctx: &Context) -> Policy {
        let word = std::env::var("DKMS_PREFLIGHT")
            .ok()
            .unwrap_or_else(|| ctx.settings.preflight.clone());
        if word.trim().eq_ignore_ascii_case("refuse") {
            Policy::Refuse
        } else {
            Policy::Warn
        }
    }
}
