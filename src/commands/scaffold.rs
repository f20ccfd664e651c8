//! `dkms scaffold DIR [--pkgbuild [--install-script]] [--debian] [--dry-run]` and
//! `dkms lint [PATH|M/V]`: a dkms.conf (and packaging) derived from a module source's own
//! Kbuild, and the mistakes that break modules in an existing dkms.conf.

use std::path::{Path, PathBuf};

use super::context::Context;
use crate::commands::error::{ActionError, Result};
use crate::conf::lint;
use crate::exit;
use crate::scaffold::{self, render, Source};

pub fn scaffold(ctx: &Context) -> Result<i32> {
    let dir = match ctx.opts.target.paths.as_slice() {
        [dir] => dir.clone(),
        _ => return Err(ActionError::ScaffoldWhat.into()),
    };
    let directive = |name: &str| {
        ctx.opts
            .conf
            .directives
            .iter()
            .find_map(|d| d.strip_prefix(&format!("{name}=")).map(str::to_string))
    };
    let source = scaffold::read(
        &dir,
        directive("PACKAGE_NAME").as_deref(),
        directive("PACKAGE_VERSION").as_deref(),
    )
    .map_err(|e| ActionError::Scaffold(e.to_string()))?;
    let mut files: Vec<(PathBuf, Vec<u8>, u32)> = Vec::new();
    let conf = dir.join("dkms.conf");
    if conf.exists() && !ctx.opts.force && !ctx.opts.scaffold.dry_run {
        return Err(ActionError::Scaffold(format!("{} exists already: scaffold does not replace it (--force does, --dry-run shows what it would write).", conf.display())).into());
    }
    files.push((
        conf,
        render::dkms_conf(&source, &source.version).into_bytes(),
        0o644,
    ));
    if ctx.opts.scaffold.pkgbuild {
        files.extend(arch_files(ctx, &source)?);
    }
    if ctx.opts.scaffold.debian {
        for (name, text, mode) in render::debian(&source) {
            files.push((dir.join("debian").join(name), text.into_bytes(), mode));
        }
    }
    for (path, bytes, mode) in &files {
        if ctx.opts.scaffold.dry_run {
            ctx.report.line(&format!("--- {}", path.display()));
            match std::str::from_utf8(bytes) {
                Ok(text) if !path.to_string_lossy().ends_with(".tar.gz") => {
                    ctx.report.line(text.trim_end())
                }
                _ => ctx.report.line(&format!("({} bytes)", bytes.len())),
            }
        } else {
            write(path, bytes, *mode)?;
            ctx.report.line(&format!("Wrote {}", path.display()));
        }
    }
    for note in &source.notes {
        ctx.report
            .warn(&format!("scaffold could not infer everything: {note}"));
    }
    Ok(exit::SUCCESS)
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let io = |source| ActionError::Copy {
        from: path.to_path_buf(),
        to: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    crate::fsutil::write_atomically(path, bytes, mode).map_err(|e| io(e).into())
}

/// `DIR/dkms-<name>/`: PKGBUILD, the dkms.conf template, the source tarball, the
/// patches, and with `--install-script` the `.install`.
fn arch_files(ctx: &Context, s: &Source) -> Result<Vec<(PathBuf, Vec<u8>, u32)>> {
    let out = s.dir.join(format!("dkms-{}", s.name));
    let tarball = source_tarball(s).map_err(|e| {
        ActionError::Scaffold(format!(
            "Cannot make the source tarball of {}: {e}",
            s.dir.display()
        ))
    })?;
    let conf = render::dkms_conf(s, "@PKGVER@");
    let sha = |b: &[u8]| {
        openssl::sha::sha256(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    let mut files = vec![
        (
            out.join("PKGBUILD"),
            render::pkgbuild(
                s,
                &sha(&tarball),
                &sha(conf.as_bytes()),
                ctx.opts.scaffold.install_script,
            )
            .into_bytes(),
            0o644,
        ),
        (out.join("dkms.conf"), conf.into_bytes(), 0o644),
        (
            out.join(format!("{}-{}.tar.gz", s.name, s.version)),
            tarball,
            0o644,
        ),
    ];
    for p in &s.patches {
        let bytes = std::fs::read(s.dir.join(p)).unwrap_or_default();
        files.push((out.join(p), bytes, 0o644));
    }
    if ctx.opts.scaffold.install_script {
        files.push((
            out.join(format!("dkms-{}.install", s.name)),
            render::install_script(s).into_bytes(),
            0o644,
        ));
    }
    Ok(files)
}

/// The source as `<name>-<version>/...` in a gzip tar, without what scaffold writes
/// (`dkms-<name>/`, `debian/`, `dkms.conf`), `.git` and the patches (applied by the
/// package).
fn source_tarball(s: &Source) -> std::io::Result<Vec<u8>> {
    let skip = [
        format!("dkms-{}", s.name),
        "debian".into(),
        ".git".into(),
        "dkms.conf".into(),
    ];
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    let mut entries: Vec<PathBuf> = Vec::new();
    let mut stack = vec![s.dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            let rel = e
                .path()
                .strip_prefix(&s.dir)
                .unwrap_or(&e.path())
                .to_path_buf();
            let top = rel
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_default();
            if skip.contains(&top) || s.patches.contains(&top) {
                continue;
            }
            if e.file_type()?.is_dir() {
                stack.push(e.path());
            }
            entries.push(rel);
        }
    }
    entries.sort();
    let top = PathBuf::from(format!("{}-{}", s.name, s.version));
    for rel in entries {
        tar.append_path_with_name(s.dir.join(&rel), top.join(&rel))?;
    }
    tar.into_inner()?.finish()
}

/// `dkms lint [PATH|M/V]`: exit 0 when it finds nothing, 1 when it does.
pub fn lint(ctx: &Context) -> Result<i32> {
    let file = match ctx.opts.target.paths.as_slice() {
        [p] if p.is_dir() => p.join("dkms.conf"),
        [p] if p.is_file() => p.clone(),
        [p] => {
            let word = p.to_string_lossy();
            let (m, v) = word.split_once('/').ok_or(ActionError::LintWhat)?;
            ctx.tree.conf_file(m, v)
        }
        [] => match (&ctx.opts.target.module, &ctx.opts.target.version) {
            (Some(m), Some(v)) => ctx.tree.conf_file(m, v),
            _ => return Err(ActionError::LintWhat.into()),
        },
        _ => return Err(ActionError::LintWhat.into()),
    };
    let findings = lint::lint(&file).map_err(|source| ActionError::Copy {
        from: file.clone(),
        to: file.clone(),
        source,
    })?;
    for f in &findings {
        ctx.report.line(&f.to_string());
    }
    Ok(if findings.is_empty() {
        exit::SUCCESS
    } else {
        exit::LINT_FINDINGS
    })
}
