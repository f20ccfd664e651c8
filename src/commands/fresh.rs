//! Whether a build still fits its kernel, by fingerprint (`state::fingerprint`): for
//! autoinstall (and kernel_postinst), a build made ahead by `dkms preflight` is taken as
//! the kernel's build when its fingerprint matches the installed headers, and an
//! existing build whose headers (or source) changed under the same kernel release is
//! rebuilt instead of installed again.

use super::context::Context;
use crate::cli::Action;
use crate::state::fingerprint::Fingerprint;
use crate::state::KernelArch;

/// Autoinstall and kernel_postinst decide by fingerprint; the other actions do what
/// they are asked.
pub(crate) fn by_fingerprint(ctx: &Context) -> bool {
    matches!(
        ctx.opts.action,
        Some(Action::Autoinstall | Action::KernelPostinst)
    )
}

/// What building `m/v` for `ka` depends on now; None without the kernel's headers (a
/// build is never judged stale, and its module never uninstalled, because the headers
/// were removed).
pub(crate) fn current(ctx: &Context, m: &str, v: &str, ka: &KernelArch) -> Option<Fingerprint> {
    let dirs = ctx.kernel_dirs(&ka.kernel);
    if !dirs.build.join("include").is_dir() {
        return None;
    }
    Fingerprint::compute(
        &ctx.tree.version_dir(m, v).join("source"),
        &dirs.build,
        &dirs.config,
        ka,
    )
    .ok()
}

/// What changed since the build of `m/v` for `ka` was made, if it records a fingerprint
/// and something did (a build by the original records none: it is trusted).
pub(crate) fn stale(ctx: &Context, m: &str, v: &str, ka: &KernelArch) -> Option<Vec<&'static str>> {
    let recorded = Fingerprint::recorded(&ctx.tree.build_dir(m, v, ka))?;
    let now = current(ctx, m, v, ka)?;
    (recorded.fingerprint != now.fingerprint).then(|| recorded.changes(&now))
}

/// Take the build `dkms preflight` made ahead for `ka`, if its fingerprint matches what
/// the kernel's headers give now: it becomes the kernel's build (one rename), and
/// nothing is compiled. One that does not match is deleted. Returns whether it was taken.
pub(crate) fn take_preflight_build(ctx: &Context, m: &str, v: &str, ka: &KernelArch) -> bool {
    let ahead = ctx.tree.preflight_dir(m, v, ka);
    let Some(recorded) = Fingerprint::recorded(&ahead) else {
        return false;
    };
    let matches = current(ctx, m, v, ka).is_some_and(|now| now.fingerprint == recorded.fingerprint);
    let target = ctx.tree.build_dir(m, v, ka);
    let taken = matches
        && target
            .parent()
            .is_some_and(|p| std::fs::create_dir_all(p).is_ok())
        && std::fs::rename(&ahead, &target).is_ok();
    if taken {
        ctx.report.line(&format!(
            "Using the build of {m}/{v} that dkms preflight made for kernel {} ({}): its source and the kernel's headers are unchanged.",
            ka.kernel, ka.arch
        ));
    } else {
        if !matches {
            ctx.report.line(&format!(
                "The build of {m}/{v} that dkms preflight made for kernel {} ({}) no longer matches the kernel's headers: building again.",
                ka.kernel, ka.arch
            ));
        }
        let _ = std::fs::remove_dir_all(&ahead);
    }
    for dir in ahead.ancestors().skip(1).take(2) {
        if std::fs::remove_dir(dir).is_err() {
            break;
        }
    }
    taken
}
