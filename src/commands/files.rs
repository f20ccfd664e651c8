//! `dkms owner PATH...` and `dkms verify [m[/v]] [-k k]... [--json]`: which installed
//! module placed a file, and whether the files are still what was installed. Both read
//! the install records (`state::manifest`); nothing here changes the machine, so
//! neither takes the lock.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::context::Context;
use crate::commands::error::{ActionError, Result};
use crate::exit;
use crate::fsutil::through_real_dir;
use crate::state::kept::Kept;
use crate::state::manifest::{self, Check, Installed, Kind, Placed};
use crate::state::status::{collect, Filter, State, StatusEntry, STATUS_SCHEMA};

fn label(i: &Installed) -> String {
    format!("{}/{}, {}, {}", i.module, i.version, i.ka.kernel, i.ka.arch)
}

pub fn owner(ctx: &Context) -> Result<i32> {
    if ctx.opts.target.paths.is_empty() {
        return Err(ActionError::NoPaths.into());
    }
    let installed = manifest::installed(&ctx.tree, ctx.settings, None, None);
    let records: Vec<(&Installed, &Placed, PathBuf)> = installed
        .iter()
        .flat_map(|i| {
            i.manifest
                .iter()
                .flat_map(|m| m.files.iter())
                .map(move |p| (i, p, through_real_dir(&p.path)))
        })
        .collect();
    let trees = [
        through_real_dir(&ctx.settings.install_tree),
        through_real_dir(&ctx.settings.dkms_tree),
    ];
    let mut code = exit::SUCCESS;
    for asked in &ctx.opts.target.paths {
        let wanted = through_real_dir(asked);
        let owners: Vec<_> = records.iter().filter(|(_, _, p)| *p == wanted).collect();
        for (i, _, _) in &owners {
            ctx.report
                .line(&format!("{}: {}", label(i), asked.display()));
        }
        if !owners.is_empty() {
            continue;
        }
        code = exit::NOT_OWNED;
        if asked.is_dir() {
            ctx.report.stderr(&format!(
                "dkms: {} is a directory: dkms owner answers for the files an install placed (modules, archived originals), not for directories",
                asked.display()
            ));
        } else if trees.iter().any(|t| wanted.starts_with(t)) {
            ctx.report.stderr(&format!(
                "dkms: no installed module placed {}",
                asked.display()
            ));
        } else {
            ctx.report.stderr(&format!(
                "dkms: {} is outside the install tree ({}) and the dkms tree ({}): dkms places no files there",
                asked.display(),
                ctx.settings.install_tree.display(),
                ctx.settings.dkms_tree.display()
            ));
        }
    }
    Ok(code)
}

/// A recorded file as `verify --json` shows it.
#[derive(Debug, Serialize)]
struct FileCheck<'a> {
    #[serde(flatten)]
    placed: &'a Placed,
    check: Check,
}

#[derive(Debug, Serialize)]
struct VerifyEntry<'a> {
    #[serde(flatten)]
    status: StatusEntry,
    /// Whether the install left a record (a module the original installed has none).
    recorded: bool,
    files: Vec<FileCheck<'a>>,
}

#[derive(Debug, Serialize)]
struct VerifyDocument<'a> {
    schema: &'static str,
    entries: Vec<VerifyEntry<'a>>,
    stray: Vec<PathBuf>,
    /// Files an uninstall set aside because they had changed since their install.
    kept: Vec<Kept>,
}

pub fn verify(ctx: &Context) -> Result<i32> {
    let opts = ctx.opts;
    let module = opts.target.module.as_deref();
    if let Some(m) = module {
        if ctx
            .tree
            .module_versions(Some(m), opts.target.version.as_deref())
            .is_empty()
        {
            return Err(match &opts.target.version {
                Some(v) => ActionError::NotAdded(m.into(), v.clone()),
                None => ActionError::MatchNotAdded(m.into()),
            }
            .into());
        }
    }
    let in_scope =
        |k: &str| opts.target.kernels.is_empty() || opts.target.kernels.iter().any(|w| w == k);
    let installed: Vec<Installed> = manifest::installed(
        &ctx.tree,
        ctx.settings,
        module,
        opts.target.version.as_deref(),
    )
    .into_iter()
    .filter(|i| in_scope(&i.ka.kernel))
    .collect();
    let stray = if module.is_none() {
        stray_files(ctx, &installed, &in_scope)
    } else {
        Vec::new()
    };
    let kept: Vec<Kept> = ctx
        .tree
        .kept(ctx.settings)
        .into_iter()
        .filter(|k| {
            module.is_none_or(|m| m == k.module)
                && opts
                    .target
                    .version
                    .as_deref()
                    .is_none_or(|v| v == k.version)
                && in_scope(&k.kernel)
        })
        .collect();
    let checks: Vec<Vec<(&Placed, Check)>> = installed
        .iter()
        .map(|i| {
            i.manifest
                .iter()
                .flat_map(|m| m.files.iter())
                .map(|p| (p, p.check()))
                .collect()
        })
        .collect();
    let count = |want: Check| checks.iter().flatten().filter(|(_, c)| *c == want).count();
    let (missing, modified) = (count(Check::Missing), count(Check::Modified));
    let code = if missing + modified + stray.len() > 0 {
        exit::VERIFY_FAILED
    } else {
        exit::SUCCESS
    };
    if opts.output.json {
        print_json(ctx, &installed, &checks, stray, kept);
        return Ok(code);
    }
    print_problems(ctx, &installed, &checks, &stray);
    for k in &kept {
        ctx.report.line(&format!(
            "kept: {} (was {}, {}/{}, {}, {}; changed after its install, set aside by the uninstall of {})",
            k.kept.display(),
            k.from.display(),
            k.module,
            k.version,
            k.kernel,
            k.arch,
            k.time
        ));
    }
    let total: usize = checks.iter().map(Vec::len).sum();
    ctx.report.line(&format!(
        "{total} file(s) of {} installed module version(s) checked: {missing} missing, {modified} modified, {} stray.",
        installed.len(),
        stray.len()
    ));
    Ok(code)
}

/// A line per install without a record, per missing or modified file, per stray file.
fn print_problems(
    ctx: &Context,
    installed: &[Installed],
    checks: &[Vec<(&Placed, Check)>],
    stray: &[PathBuf],
) {
    for (i, files) in installed.iter().zip(checks) {
        if i.manifest.is_none() {
            ctx.report.line(&format!(
                "{}: no record (installed by a dkms that keeps none): not checked",
                label(i)
            ));
        }
        for (p, c) in files.iter().filter(|(_, c)| *c != Check::Ok) {
            let word = if *c == Check::Missing {
                "missing"
            } else {
                "modified"
            };
            ctx.report
                .line(&format!("{}: {word} {}", label(i), p.path.display()));
        }
    }
    for s in stray {
        ctx.report.line(&format!("stray: {}", s.display()));
    }
}

fn print_json(
    ctx: &Context,
    installed: &[Installed],
    checks: &[Vec<(&Placed, Check)>],
    stray: Vec<PathBuf>,
    kept: Vec<Kept>,
) {
    let mut entries = Vec::new();
    for (i, files) in installed.iter().zip(checks) {
        let filter = Filter {
            module: Some(&i.module),
            version: Some(&i.version),
            kernel: Some(&i.ka.kernel),
            arch: Some(&i.ka.arch),
        };
        for status in collect(ctx.settings, &ctx.opts.conf, &filter)
            .into_iter()
            .filter(|e| e.state == State::Installed)
        {
            entries.push(VerifyEntry {
                status,
                recorded: i.manifest.is_some(),
                files: files
                    .iter()
                    .map(|(placed, check)| FileCheck {
                        placed,
                        check: *check,
                    })
                    .collect(),
            });
        }
    }
    let doc = VerifyDocument {
        schema: STATUS_SCHEMA,
        entries,
        stray,
        kept,
    };
    ctx.report
        .line(&serde_json::to_string_pretty(&doc).expect("verify serializes"));
}

/// Module files in the directories dkms installs into (where the records put modules,
/// and the distribution's own directory for them) and below them, that no installed
/// module accounts for: not recorded, and not named like the built module of an install
/// without a record.
fn stray_files(
    ctx: &Context,
    installed: &[Installed],
    in_scope: &dyn Fn(&str) -> bool,
) -> Vec<PathBuf> {
    // (directory, whether its subdirectories are dkms's too): a recorded module's
    // directory may be one of the kernel's own (`kernel/drivers/net`), so only the
    // distribution's directory for dkms modules is searched below.
    let mut dirs = BTreeSet::new();
    let mut claimed = BTreeSet::new();
    for i in installed {
        match &i.manifest {
            Some(m) => {
                for p in m.files.iter().filter(|p| p.kind != Kind::Original) {
                    claimed.insert(through_real_dir(&p.path));
                    if let Some(d) = p.path.parent() {
                        dirs.insert((through_real_dir(d), false));
                    }
                }
            }
            None => {
                let built = ctx
                    .tree
                    .build_dir(&i.module, &i.version, &i.ka)
                    .join("module");
                for e in std::fs::read_dir(built).into_iter().flatten().flatten() {
                    claimed.insert(PathBuf::from(e.file_name()));
                }
            }
        }
    }
    if let Some(dir) = ctx.settings.module_dir_override() {
        for e in std::fs::read_dir(&ctx.settings.install_tree)
            .into_iter()
            .flatten()
            .flatten()
        {
            let kernel = e.file_name().to_string_lossy().into_owned();
            if in_scope(&kernel) {
                let d = e.path().join(dir.trim_start_matches('/'));
                if d.is_dir() {
                    dirs.insert((through_real_dir(&d), true));
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut stack: Vec<(PathBuf, bool)> = dirs.into_iter().collect();
    let mut seen = BTreeSet::new();
    while let Some((d, deep)) = stack.pop() {
        if !seen.insert(d.clone()) {
            continue;
        }
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = e.file_name();
            let path = d.join(&name);
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if deep {
                    stack.push((path, true));
                }
                continue;
            }
            let is_module = name.to_string_lossy().contains(".ko");
            if is_module && !claimed.contains(&path) && !claimed.contains(Path::new(&name)) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
