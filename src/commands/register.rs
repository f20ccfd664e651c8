//! Registering a module version in the state tree (`add`'s work, also done by `build`,
//! `install` and `ldtarball`): from `<source_tree>/<m>-<v>`, or after copying a source
//! directory there first.

use std::path::{Path, PathBuf};

use super::context::Context;
use super::preconditions::{check_name, require_root};
use crate::commands::error::{ActionError, Result};
use crate::conf;
use crate::module::script;
use crate::state::{KernelArch, Registration};
use crate::transaction::Scratch;

/// Register `<source_tree>/<m>-<v>` (the caller holds the lock).
pub(crate) fn add_registered(ctx: &Context, m: &str, v: &str, ka: &KernelArch) -> Result<()> {
    check_name("Module name", m)?;
    check_name("Module version", v)?;
    if ctx.opts.rpm_safe_upgrade {
        super::rpm_upgrade::leave_lock(&ctx.settings.tmp_location, m, v);
    }
    if matches!(
        ctx.tree.registration(m, v, &ctx.settings.source_tree),
        Registration::Added { .. }
    ) {
        return Err(ActionError::AlreadyAdded(m.into(), v.into()).into());
    }
    let source = ctx.settings.source_tree.join(format!("{m}-{v}"));
    if !source.is_dir() {
        return Err(ActionError::SourceDirMissing(source).into());
    }
    let conf_file = ctx
        .opts
        .conf_file
        .clone()
        .unwrap_or_else(|| source.join("dkms.conf"));
    let conf = ctx.read_strict(&conf_file, m, v, ka)?;
    if let Ok(findings) = crate::conf::lint::lint(&conf_file) {
        for f in findings {
            ctx.report.warn(&f.to_string());
        }
    }
    let link = ctx.tree.version_dir(m, v).join("source");
    ctx.report.line(&format!(
        "Creating symlink {} -> {}",
        link.display(),
        source.display()
    ));
    ctx.tree.add(m, v, &link_target(ctx, m, v, &source))?;
    if let Some(cmd) = &conf.post_add {
        script::run(ctx.settings, ctx.report, "post_add", cmd, m, &source);
    }
    Ok(())
}

/// What the `source` link of `m/v` holds: the source's absolute path, as the original
/// writes it, except in a root given by `DKMS_SYSROOT`: there a path relative to the link,
/// so the link still points at the source once the root is copied or booted elsewhere
/// (an image build).
fn link_target(ctx: &Context, m: &str, v: &str, source: &Path) -> PathBuf {
    let sysroot = &ctx.settings.sysroot;
    if sysroot.as_path() == Path::new("/") {
        return source.to_path_buf();
    }
    let (Ok(tree), Ok(real_source), Ok(real_root)) = (
        std::fs::canonicalize(&ctx.tree.root),
        std::fs::canonicalize(source),
        std::fs::canonicalize(sysroot),
    ) else {
        return source.to_path_buf();
    };
    if !real_source.starts_with(&real_root) || !tree.starts_with(&real_root) {
        return source.to_path_buf();
    }
    crate::fsutil::relative_path(&tree.join(m).join(v), &real_source)
}

/// Copy a source directory to `<source_tree>/<PACKAGE_NAME>-<PACKAGE_VERSION>`.
pub(crate) fn add_source_tree(
    ctx: &Context,
    dir: &Path,
    ka: &KernelArch,
) -> Result<(String, String)> {
    let from = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let conf_file = from.join("dkms.conf");
    if !conf_file.is_file() {
        return Err(ActionError::NoDkmsConf(dir.to_path_buf()).into());
    }
    require_root()?;
    let creq = ctx.conf_request(conf_file.clone(), "", "", ka);
    // The original reads it with `read_conf` (exit 8) before copying anything; what only
    // the strict read rejects (duplicate names) fails after the copy, in the dkms tree.
    let conf = conf::load_checked(&creq)?;
    let (m, v) = (conf.package_name, conf.package_version);
    check_name("Module name", &m)?;
    check_name("Module version", &v)?;
    let target = ctx.settings.source_tree.join(format!("{m}-{v}"));
    if ctx.opts.force && target.is_dir() {
        ctx.report.stderr("");
        ctx.report.line(&format!("Forcing install of {m}-{v}"));
        std::fs::remove_dir_all(&target).map_err(|source| ActionError::Copy {
            from: from.clone(),
            to: target.clone(),
            source,
        })?;
    }
    let same = std::fs::canonicalize(&target).is_ok_and(|t| t == from);
    let inside_tree = from.starts_with(ctx.tree.version_dir(&m, &v));
    if !same && !inside_tree {
        copy_source(&ctx.tree.root, &from, &target)?;
    }
    Ok((m, v))
}

/// Copy a tree into place: into a staging directory (journaled in `dkms_tree`) renamed in
/// one step when the target is new, file by file over an existing target (the original's
/// `cp -fr`).
pub(crate) fn copy_source(dkms_tree: &Path, from: &Path, target: &Path) -> Result<()> {
    let copy_err = |source| ActionError::Copy {
        from: from.to_path_buf(),
        to: target.to_path_buf(),
        source,
    };
    if target.exists() {
        return crate::fsutil::copy_tree(from, target).map_err(|e| copy_err(e).into());
    }
    let parent = target.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(copy_err)?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staged: PathBuf = parent.join(format!(".{name}.copy.{}", std::process::id()));
    let _scratch = Scratch::new(dkms_tree, &staged).map_err(|e| copy_err(e.source))?;
    crate::fsutil::copy_tree(from, &staged)
        .and_then(|_| {
            crate::crashpoint::step("rename source copy into place", target);
            std::fs::rename(&staged, target)
        })
        .map_err(|e| copy_err(e).into())
}
