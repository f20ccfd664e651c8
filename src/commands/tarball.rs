//! `mktarball` and `ldtarball`: moving sources and prebuilt modules between machines.
//!
//! The archive layout is the original's: `dkms_main_tree/<k>/<a>/{module,log}` for each
//! build, plus either `dkms_source_tree/` (the source) or, with `--binaries-only`,
//! `dkms_binaries_only/{PACKAGE_NAME,PACKAGE_VERSION,dkms.conf}`. Compression follows
//! the archive name's extension (`tar -caf`); reading detects it from the content.
//! Archives are written beside their destination and renamed into place; loaded
//! builds are copied to a staging name and renamed, like every other build.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::context::Context;
use super::preconditions::require_root;
use crate::commands::error::{ActionError, Result};
use crate::conf;
use crate::fsutil::io_error;
use crate::state::{KernelArch, Registration};
use crate::transaction::Scratch;

pub fn mktarball(ctx: &Context, m: &str, v: &str, kernels: &[KernelArch]) -> Result<i32> {
    let conf_file = ctx.conf_file(m, v);
    ctx.read_strict(&conf_file, m, v, &kernels[0])?;
    let staging = tempfile::Builder::new()
        .prefix("dkms.")
        .tempdir_in(&ctx.settings.tmp_location)
        .map_err(io_error(
            "create a directory in",
            &ctx.settings.tmp_location,
        ))?;
    let names = stage_builds(ctx, m, v, kernels, staging.path())?;
    stage_source(ctx, m, v, &conf_file, staging.path())?;
    let dest = tarball_path(ctx, m, v, &names);
    ctx.report
        .line(&format!("\nTarball location: {}", dest.display()));
    let dest_dir = dest.parent().unwrap_or(Path::new(".")).to_path_buf();
    if std::fs::create_dir_all(&dest_dir).is_err()
        || rustix::fs::access(&dest_dir, rustix::fs::Access::WRITE_OK).is_err()
    {
        return Err(ActionError::TarballNotWritable(dest_dir).into());
    }
    write_archive(staging.path(), &dest).map_err(|source| ActionError::Tarball {
        path: dest.clone(),
        source,
    })?;
    Ok(crate::exit::SUCCESS)
}

/// `dkms_main_tree/<k>/<a>/{module,log}` of every kernel (none with `--source-only`);
/// returns the names that go into the archive's default name.
fn stage_builds(
    ctx: &Context,
    m: &str,
    v: &str,
    kernels: &[KernelArch],
    staging: &Path,
) -> Result<Vec<String>> {
    let main_tree = staging.join("dkms_main_tree");
    std::fs::create_dir(&main_tree).map_err(io_error("create", &main_tree))?;
    if ctx.opts.tarball.source_only {
        return Ok(vec!["source-only".to_string()]);
    }
    let mut names = Vec::new();
    for ka in kernels {
        let built = ctx.tree.build_dir(m, v, ka);
        if !built.is_dir() {
            return Err(ActionError::TarballNotBuilt {
                kernel: ka.kernel.clone(),
                arch: ka.arch.clone(),
            }
            .into());
        }
        ctx.report.line(&format!(
            "Marking modules for {} ({}) for archiving...",
            ka.kernel, ka.arch
        ));
        names.push(format!("kernel{}-{}", ka.kernel, ka.arch));
        let dest = main_tree.join(&ka.kernel).join(&ka.arch);
        for part in ["module", "log"] {
            if built.join(part).is_dir() {
                crate::fsutil::copy_tree(&built.join(part), &dest.join(part))
                    .map_err(io_error("copy", &built.join(part)))?;
            }
        }
    }
    Ok(names)
}

/// The source (`dkms_source_tree/`), or with `--binaries-only` only what identifies it
/// (`dkms_binaries_only/{PACKAGE_NAME,PACKAGE_VERSION,dkms.conf}`).
fn stage_source(ctx: &Context, m: &str, v: &str, conf_file: &Path, staging: &Path) -> Result<()> {
    let source = ctx.tree.version_dir(m, v).join("source");
    if !ctx.opts.tarball.binaries_only {
        ctx.report
            .line(&format!("\nMarking {} for archiving...", source.display()));
        let real = std::fs::canonicalize(&source).map_err(io_error("resolve", &source))?;
        return crate::fsutil::copy_tree(&real, &staging.join("dkms_source_tree"))
            .map_err(|e| io_error("copy", &real)(e).into());
    }
    ctx.report
        .line("\nCreating tarball structure to specifically accommodate binaries.");
    let dir = staging.join("dkms_binaries_only");
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text).map_err(io_error("write", &dir.join(name)))
    };
    std::fs::create_dir(&dir).map_err(io_error("create", &dir))?;
    write("PACKAGE_NAME", format!("{m}\n"))?;
    write("PACKAGE_VERSION", format!("{v}\n"))?;
    std::fs::copy(conf_file, dir.join("dkms.conf")).map_err(io_error("copy", conf_file))?;
    Ok(())
}

/// `--archive`'s path (its directory defaulting to `<v>/tarball`), else
/// `<v>/tarball/<m>-<v>-<kernels>.dkms.tar.gz`.
fn tarball_path(ctx: &Context, m: &str, v: &str, names: &[String]) -> PathBuf {
    let default_dir = ctx.tree.version_dir(m, v).join("tarball");
    if let Some(a) = &ctx.opts.tarball.archive {
        let name = a.file_name().map(PathBuf::from).unwrap_or_default();
        let dir = a.parent().filter(|p| !p.as_os_str().is_empty());
        return dir.map_or(default_dir, Path::to_path_buf).join(name);
    }
    let mut list = names.join("-");
    if list.len() > 200 {
        list = "manykernels".into();
    }
    default_dir.join(format!("{m}-{v}-{list}.dkms.tar.gz"))
}

pub fn ldtarball(ctx: &Context) -> Result<i32> {
    if ctx.opts.force && !rustix::process::geteuid().is_root() {
        return Err(ActionError::ForceNeedsRoot.into());
    }
    let _lock = ctx.take_lock()?;
    load(ctx)?;
    Ok(0)
}

/// Load the archive named on the command line (also `dkms add|build|install <archive>`);
/// the caller holds the lock. Returns the module and version it added.
pub fn load(ctx: &Context) -> Result<(String, String)> {
    let archive = ctx.opts.tarball.archive.clone().unwrap_or_default();
    if !archive.is_file() {
        return Err(ActionError::ArchiveMissing(archive).into());
    }
    if archive.extension().is_some_and(|e| e == "rpm") {
        return Err(ActionError::RpmUnsupported(archive).into());
    }
    let unpacked = tempfile::Builder::new()
        .prefix("dkms.")
        .tempdir_in(&ctx.settings.tmp_location)
        .map_err(io_error(
            "create a directory in",
            &ctx.settings.tmp_location,
        ))?;
    read_archive(&archive, unpacked.path()).map_err(|source| ActionError::Unpack {
        path: archive.clone(),
        source,
    })?;
    let ka = KernelArch {
        kernel: (ctx.opts.target.kernels.first().cloned())
            .unwrap_or_else(|| ctx.settings.current_kernel.clone()),
        arch: (ctx.opts.target.arches.first().cloned())
            .unwrap_or_else(|| ctx.settings.machine.clone()),
    };
    let main_tree = unpacked.path().join("dkms_main_tree");
    if !main_tree.is_dir() {
        // A plain source tarball: the first dkms.conf found is the source.
        let Some(conf) = find_conf(unpacked.path()) else {
            return Err(ActionError::ArchiveWithoutConf.into());
        };
        let dir = conf.parent().unwrap_or(unpacked.path()).to_path_buf();
        let (m, v) = super::register::add_source_tree(ctx, &dir, &ka)?;
        super::register::add_registered(ctx, &m, &v, &ka)?;
        return Ok((m, v));
    }
    let Some((loc, m, v)) = identify(ctx, unpacked.path(), &ka) else {
        return Err(ActionError::InvalidArchive(archive).into());
    };
    super::preconditions::check_name("Module name", &m)?;
    super::preconditions::check_name("Module version", &v)?;
    register_archive(ctx, &unpacked.path().join(loc), &m, &v, &ka)?;
    load_builds(ctx, &main_tree, &m, &v)?;
    Ok((m, v))
}

/// Where the archive's dkms.conf is (`dkms_source_tree`, else `dkms_binaries_only`) and
/// the module and version it names.
fn identify(
    ctx: &Context,
    unpacked: &Path,
    ka: &KernelArch,
) -> Option<(&'static str, String, String)> {
    for loc in ["dkms_source_tree", "dkms_binaries_only"] {
        let conf = unpacked.join(loc).join("dkms.conf");
        if !conf.is_file() {
            continue;
        }
        let req = ctx.conf_request(conf.clone(), "", "", ka);
        match conf::load_lenient(&req) {
            Ok(c) if !c.package_name.is_empty() && !c.package_version.is_empty() => {
                return Some((loc, c.package_name, c.package_version));
            }
            _ => ctx
                .report
                .stderr("\nMalformed dkms.conf, refusing to load."),
        }
    }
    None
}

/// The archive's source copied to the source tree (or, binaries only, a `source`
/// directory holding its dkms.conf), then the module registered: before its builds
/// arrive, so a kill in between leaves an added module, never a version directory
/// without its source (broken). Already added: exit 8 unless `--force`.
fn register_archive(ctx: &Context, from: &Path, m: &str, v: &str, ka: &KernelArch) -> Result<()> {
    let added = |ctx: &Context| {
        matches!(
            ctx.tree.registration(m, v, &ctx.settings.source_tree),
            Registration::Added { .. }
        )
    };
    let was_added = added(ctx);
    if was_added && !ctx.opts.force {
        return Err(ActionError::AlreadyLoaded(m.into(), v.into()).into());
    }
    ctx.report.line(&format!("\nLoading tarball for {m}-{v}"));
    let source_in_tree = ctx.settings.source_tree.join(format!("{m}-{v}"));
    if from.ends_with("dkms_source_tree") {
        require_root()?;
        super::register::copy_source(&ctx.tree.root, from, &source_in_tree)?;
    } else if !source_in_tree.is_dir() && !was_added {
        let dir = ctx.tree.version_dir(m, v).join("source");
        ctx.report.line(&format!("Creating {}", dir.display()));
        ctx.tree.add_binaries_only(m, v, &from.join("dkms.conf"))?;
    }
    if !added(ctx) {
        super::register::add_registered(ctx, m, v, ka)?;
    }
    Ok(())
}

/// Copy each prebuilt `<k>/<a>` into the tree (existing builds kept unless --force).
fn load_builds(ctx: &Context, main_tree: &Path, m: &str, v: &str) -> Result<()> {
    for k in crate::state::visible_entries(main_tree) {
        for a in crate::state::visible_entries(&main_tree.join(&k)) {
            let from = main_tree.join(&k).join(&a);
            let ka = KernelArch {
                kernel: k.clone(),
                arch: a.clone(),
            };
            let dest = ctx.tree.build_dir(m, v, &ka);
            if dest.exists() && !ctx.opts.force {
                ctx.report
                    .warn(&format!("{} already exists. Skipping...", dest.display()));
                continue;
            }
            ctx.report.line(&format!("Loading {}...", dest.display()));
            if dest.exists() {
                super::steps::unbuild_one(ctx, m, v, &ka)?;
            }
            let kernel_dir = dest.parent().expect("kernel dir").to_path_buf();
            std::fs::create_dir_all(&kernel_dir).map_err(io_error("create", &kernel_dir))?;
            let staged = kernel_dir.join(format!(".tmp_{a}_{}", std::process::id()));
            let _scratch = Scratch::new(&ctx.tree.root, &staged)?;
            crate::fsutil::copy_tree(&from, &staged).map_err(io_error("copy", &from))?;
            crate::crashpoint::step("rename loaded build into place", &dest);
            std::fs::rename(&staged, &dest).map_err(io_error("rename into", &dest))?;
        }
    }
    Ok(())
}

fn find_conf(dir: &Path) -> Option<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&d)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        if let Some(conf) = entries
            .iter()
            .find(|p| p.file_name().is_some_and(|n| n == "dkms.conf") && p.is_file())
        {
            return Some(conf.clone());
        }
        stack.extend(
            entries
                .into_iter()
                .filter(|p| p.is_dir() && !p.is_symlink())
                .rev(),
        );
    }
    None
}

/// `tar -C dir -caf dest .`: compression from the name; written beside, renamed in.
fn write_archive(dir: &Path, dest: &Path) -> std::io::Result<()> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".dkms-tarball.")
        .tempfile_in(parent)?;
    {
        let name = dest.to_string_lossy();
        let out: Box<dyn Write> = if name.ends_with(".gz") || name.ends_with(".tgz") {
            Box::new(flate2::write::GzEncoder::new(
                tmp.as_file_mut(),
                flate2::Compression::default(),
            ))
        } else if name.ends_with(".xz") {
            Box::new(liblzma::write::XzEncoder::new(tmp.as_file_mut(), 6))
        } else if name.ends_with(".zst") {
            Box::new(zstd::stream::write::Encoder::new(tmp.as_file_mut(), 3)?.auto_finish())
        } else {
            Box::new(tmp.as_file_mut())
        };
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        builder.append_dir_all(".", dir)?;
        builder.into_inner()?.flush()?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(dest).map_err(|e| e.error)?;
    std::fs::set_permissions(dest, std::os::unix::fs::PermissionsExt::from_mode(0o644))
}

/// Unpack an archive whose compression is detected from its first bytes.
fn read_archive(archive: &Path, dest: &Path) -> std::io::Result<()> {
    let mut magic = [0u8; 6];
    let n = File::open(archive)?.read(&mut magic)?;
    let file = BufReader::new(File::open(archive)?);
    let input: Box<dyn Read> = match &magic[..n] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::GzDecoder::new(file)),
        [0xfd, b'7', b'z', b'X', b'Z', 0] => Box::new(liblzma::read::XzDecoder::new(file)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Box::new(zstd::stream::read::Decoder::new(file)?),
        _ => Box::new(file),
    };
    // `unpack` refuses entries that would land outside `dest` (`..`, absolute paths).
    tar::Archive::new(input).unpack(dest)
}
