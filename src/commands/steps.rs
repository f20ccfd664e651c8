//! The steps of the commands on one (module, version, kernel): build, install,
//! uninstall and unbuild with the original's skip messages and `--force`, the dkms.conf
//! each needs, and BUILD_DEPENDS_REBUILD. The work itself is [`crate::module`]'s.

use super::context::Context;
use crate::commands::error::Result;
use crate::conf::{self, ConfRequest, ModuleConf, ModuleEntry};
use crate::module::install::{self, InstallJob};
use crate::module::kbuild::BuildJob;
use crate::state::{module_file, KernelArch};

/// Whether a step did its work now or found it done already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Done {
    Now,
    Already,
}

/// Install on one kernel: skip if installed (unless --force), build first if needed.
/// Autoinstall rebuilds a build whose fingerprint changed, and takes a preflight build
/// that still matches instead of compiling ([`super::fresh`]).
pub(crate) fn install_one(ctx: &Context, m: &str, v: &str, ka: &KernelArch) -> Result<Done> {
    let by_fingerprint = super::fresh::by_fingerprint(ctx);
    if by_fingerprint {
        if let Some(changes) = super::fresh::stale(ctx, m, v, ka) {
            ctx.report.line(&format!(
                "Rebuilding {m}/{v} for kernel {} ({}): {} changed since it was built.",
                ka.kernel,
                ka.arch,
                changes.join(", ")
            ));
            unbuild_one(ctx, m, v, ka)?;
        }
    }
    if ctx.tree.is_installed(m, v, ka) {
        if !ctx.opts.force {
            ctx.report.line(&format!(
                "Module {m}/{v} already installed on kernel {} ({}), skip. You may override by specifying --force.",
                ka.kernel, ka.arch
            ));
            return Ok(Done::Already);
        }
        uninstall_one(ctx, m, v, ka)?;
        ctx.report.line("");
    }
    let unbuilt = |ctx: &Context| {
        ctx.tree
            .built(m, v, Some(&ka.kernel), Some(&ka.arch))
            .is_empty()
    };
    if unbuilt(ctx) && !(by_fingerprint && super::fresh::take_preflight_build(ctx, m, v, ka)) {
        build_one(ctx, m, v, ka)?;
    }
    let conf = ctx.read_strict(&ctx.conf_file(m, v), m, v, ka)?;
    let (force, version_override) = forced(ctx, m);
    let mut job = install_job(ctx, m, v, ka, &conf);
    job.force |= ctx.opts.rpm_safe_upgrade || force;
    job.force_version_override = ctx.opts.force_version_override || version_override;
    job.run()?;
    ctx.mark_changed(&ka.kernel);
    super::post::modprobe_on_install(ctx, &ka.kernel);
    rebuild_dependants(ctx, m, v, ka)?;
    Ok(Done::Now)
}

/// BUILD_DEPENDS_REBUILD (3.2+): modules that depend on `dep`, ask to be rebuilt when it
/// changes, and were built for this kernel against another version of it (their
/// `.dep_<dep>` file) are rebuilt, and reinstalled if they were installed.
fn rebuild_dependants(ctx: &Context, dep: &str, dep_version: &str, ka: &KernelArch) -> Result<()> {
    for (m, v) in ctx.tree.module_versions(None, None) {
        if m == dep
            || ctx
                .tree
                .built(&m, &v, Some(&ka.kernel), Some(&ka.arch))
                .is_empty()
        {
            continue;
        }
        let req = ctx.conf_request(ctx.conf_file(&m, &v), &m, &v, ka);
        let Ok(conf) = conf::load_lenient(&req) else {
            continue;
        };
        if !conf.build_depends_rebuild || !conf.build_depends.iter().any(|d| d == dep) {
            continue;
        }
        let record = ctx.tree.build_dir(&m, &v, ka).join(format!(".dep_{dep}"));
        let built_against = std::fs::read_to_string(&record).unwrap_or_default();
        if built_against.trim() == dep_version {
            continue;
        }
        ctx.report.line(&format!(
            "Rebuilding {m}/{v} for kernel {} ({}): it was built against {dep} {}, now {dep_version}.",
            ka.kernel,
            ka.arch,
            if built_against.trim().is_empty() { "(unknown)" } else { built_against.trim() }
        ));
        let was_installed = ctx.tree.is_installed(&m, &v, ka);
        unbuild_one(ctx, &m, &v, ka)?;
        if was_installed {
            install_one(ctx, &m, &v, ka)?;
        } else {
            build_one(ctx, &m, &v, ka)?;
        }
    }
    Ok(())
}

pub(crate) fn build_one(ctx: &Context, m: &str, v: &str, ka: &KernelArch) -> Result<()> {
    let conf = ctx.read_strict(&ctx.conf_file(m, v), m, v, ka)?;
    let dirs = ctx.kernel_dirs(&ka.kernel);
    let signer = ctx.signer(&ka.kernel);
    let job = BuildJob {
        on: ctx.on_kernel(m, v, ka, &conf),
        kernel_config: dirs.config,
        kernel_source_dir: dirs.build,
        force: ctx.opts.force,
        jobserver: ctx.jobserver.as_ref(),
        // Only parallel runs (which have a jobserver) build outside the shared directory.
        private_build: ctx.jobserver.is_some()
            && crate::module::kbuild::private_build_ok(
                &conf,
                &ctx.tree.version_dir(m, v).join("build"),
            ),
        signer: &signer,
        ahead: false,
        // At every boot autoinstall would compile an unchanged failure again.
        skip_known_failure: super::fresh::by_fingerprint(ctx) && !ctx.opts.retry,
    };
    job.run()?;
    Ok(())
}

/// Uninstall one kernel's active version of `m/v`.
pub(crate) fn uninstall_one(ctx: &Context, m: &str, v: &str, ka: &KernelArch) -> Result<()> {
    let conf = conf_for_removal(ctx, m, v, ka);
    install::uninstall(&install_job(ctx, m, v, ka, &conf))?;
    ctx.mark_changed(&ka.kernel);
    Ok(())
}

/// The install/uninstall of one kernel as this request and context ask for it.
fn install_job<'a>(
    ctx: &'a Context,
    m: &'a str,
    v: &'a str,
    ka: &'a KernelArch,
    conf: &'a ModuleConf,
) -> InstallJob<'a> {
    InstallJob {
        on: ctx.on_kernel(m, v, ka, conf),
        force: ctx.opts.force,
        force_version_override: false,
        no_depmod: !ctx.opts.depmod || ctx.batch_depmod,
    }
}

/// Uninstall if installed, then delete `<v>/<k>/<a>` (and `<v>/<k>` when empty).
pub(crate) fn unbuild_one(ctx: &Context, m: &str, v: &str, ka: &KernelArch) -> Result<()> {
    if ctx.tree.is_installed(m, v, ka) {
        uninstall_one(ctx, m, v, ka)?;
    }
    ctx.tree.remove_build(m, v, ka)?;
    ctx.mark_changed(&ka.kernel);
    Ok(())
}

/// The module names needed to remove an install: the dkms.conf read leniently (a
/// broken or changed conf must not prevent removal), completed by the built files.
fn conf_for_removal(ctx: &Context, m: &str, v: &str, ka: &KernelArch) -> ModuleConf {
    let req = ctx.conf_request(ctx.conf_file(m, v), m, v, ka);
    let mut conf = conf::load_lenient(&req).unwrap_or_else(|_| empty_conf(&req));
    let built_dir = ctx.tree.build_dir(m, v, ka).join("module");
    for name in crate::state::visible_entries(&built_dir) {
        let Some(stem) = name.split(".ko").next().filter(|_| name.contains(".ko")) else {
            continue;
        };
        if !conf.modules.iter().any(|e| e.dest_name == stem)
            && module_file(&built_dir, stem).is_some()
        {
            conf.modules.push(ModuleEntry {
                index: conf.modules.len(),
                built_name: stem.into(),
                built_location: String::new(),
                dest_name: stem.into(),
                dest_location: "/updates/dkms".into(),
                strip: true,
                exclusion: Default::default(),
            });
        }
    }
    conf
}

fn empty_conf(req: &ConfRequest) -> ModuleConf {
    let ev = conf::Evaluated {
        files: vec![req.file.clone()],
        values: Default::default(),
        messages: Vec::new(),
        syntax_error: None,
    };
    conf::interpret(req, &ev).0
}

/// `/usr/share/dkms/modules_to_force_install/*` may list `<m>` (force) or
/// `<m>_version-override`.
fn forced(ctx: &Context, m: &str) -> (bool, bool) {
    let dir = ctx
        .settings
        .sysroot
        .join("usr/share/dkms/modules_to_force_install");
    let mut force = false;
    let mut version_override = false;
    for name in crate::state::visible_entries(&dir) {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        for word in text.split_whitespace() {
            if word == m {
                force = true;
            } else if word == format!("{m}_version-override") {
                version_override = true;
            }
        }
    }
    if force {
        ctx.report.line(&format!("Forcing installation of {m}"));
    } else if version_override {
        ctx.report.line(&format!("Forcing version override of {m}"));
    }
    (force, version_override)
}
