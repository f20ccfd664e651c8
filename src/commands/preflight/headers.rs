//! The kernels a preflight builds for, and their headers: an installed kernel (`-k`), a
//! headers directory (`--headers DIR`), or the `.deb` packages of headers that are not
//! installed yet (`--headers PKG.deb`, what apt's Pre-Install-Pkgs hook hands over),
//! unpacked together into a private directory that lives as long as the run.
//!
//! Debian splits one kernel's headers over three packages (`linux-headers-<k>`, its
//! `-common`, and `linux-kbuild-<series>`) that refer to each other by absolute path
//! (`include /usr/src/linux-headers-...-common/Makefile`) and by relative links
//! (`scripts -> ../../lib/linux-kbuild-.../scripts`). Unpacked elsewhere, each such
//! reference is pointed at the unpacked copy, or at the installed one when the package
//! holding it was not part of the transaction (the kbuild of a series already installed).

use std::path::{Path, PathBuf};

use super::super::context::Context;
use crate::commands::error::{ActionError, Result};
use crate::conf::KernelDirs;
use crate::state::KernelArch;

/// One kernel to build for, and where its headers are.
pub(crate) struct Target {
    pub ka: KernelArch,
    pub dirs: KernelDirs,
    /// Where the headers came from, for the table.
    pub from: String,
}

/// The targets, and the directory the packages were unpacked into (deleted on drop).
pub(crate) struct Targets {
    pub list: Vec<Target>,
    _unpacked: Option<tempfile::TempDir>,
}

pub(crate) fn targets(ctx: &Context) -> Result<Targets> {
    let mut list = Vec::new();
    let arch = ctx
        .opts
        .target
        .arches
        .first()
        .cloned()
        .unwrap_or_else(|| ctx.settings.machine.clone());
    for kernel in &ctx.opts.target.kernels {
        list.push(Target {
            ka: KernelArch {
                kernel: kernel.clone(),
                arch: arch.clone(),
            },
            dirs: ctx.kernel_dirs(kernel),
            from: "installed headers".into(),
        });
    }
    let (packages, dirs): (Vec<&PathBuf>, Vec<&PathBuf>) = ctx
        .opts
        .preflight
        .headers
        .iter()
        .partition(|p| is_package(p));
    for dir in dirs {
        list.push(from_dir(dir, &arch, &dir.display().to_string())?);
    }
    let mut unpacked = None;
    if !packages.is_empty() {
        let tmp = unpack(ctx, &packages)?;
        let names: Vec<String> = packages
            .iter()
            .map(|d| {
                d.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let trees = headers_trees(tmp.path());
        if trees.is_empty() {
            return Err(ActionError::NoHeadersIn(names.join(", ")).into());
        }
        for tree in trees {
            relink(tmp.path(), &tree);
            list.push(from_dir(&tree, &arch, &names.join(", "))?);
        }
        unpacked = Some(tmp);
    }
    if list.is_empty() {
        return Err(ActionError::PreflightWhat.into());
    }
    Ok(Targets {
        list,
        _unpacked: unpacked,
    })
}

/// A headers directory: its kernel release from `include/config/kernel.release`, its
/// architecture checked against the one asked for.
fn from_dir(dir: &Path, arch: &str, from: &str) -> Result<Target> {
    let release = std::fs::read_to_string(dir.join("include/config/kernel.release"))
        .map(|t| t.trim().to_string())
        .map_err(|_| ActionError::NotHeaders(dir.to_path_buf()))?;
    if let Some(theirs) = headers_arch(dir) {
        if theirs != kernel_arch_dir(arch) {
            return Err(ActionError::HeadersArch {
                dir: dir.to_path_buf(),
                theirs,
                ours: arch.to_string(),
            }
            .into());
        }
    }
    let config = crate::kernel::config_file(dir, None);
    Ok(Target {
        ka: KernelArch {
            kernel: release,
            arch: arch.to_string(),
        },
        dirs: KernelDirs {
            build: dir.to_path_buf(),
            config,
        },
        from: from.to_string(),
    })
}

/// The kernel's name for an architecture's directory (`arch/<name>`).
fn kernel_arch_dir(machine: &str) -> String {
    match machine {
        "x86_64" | "i386" | "i486" | "i586" | "i686" => "x86",
        "aarch64" => "arm64",
        m if m.starts_with("arm") => "arm",
        "ppc64le" | "ppc64" | "ppc" => "powerpc",
        "riscv64" => "riscv",
        "s390x" => "s390",
        "loongarch64" => "loongarch",
        other => other,
    }
    .to_string()
}

/// The architecture the headers are for: Debian's `.kernelvariables` (`ARCH = x86`),
/// else the one directory under `arch/`.
fn headers_arch(dir: &Path) -> Option<String> {
    let vars = std::fs::read_to_string(dir.join(".kernelvariables")).unwrap_or_default();
    let from_vars = vars.lines().find_map(|l| {
        let l = l.trim_start_matches("override").trim();
        l.strip_prefix("ARCH")
            .and_then(|r| r.trim().strip_prefix('='))
            .map(|v| v.trim().to_string())
    });
    from_vars.or_else(|| {
        let arches = crate::state::visible_entries(&dir.join("arch"));
        (arches.len() == 1).then(|| arches[0].clone())
    })
}

/// A package file: a Debian `.deb` or a pacman `.pkg.tar.*`.
fn is_package(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name.ends_with(".deb") || name.contains(".pkg.tar")
}

/// Every package unpacked into one private directory: a `.deb` with `dpkg-deb -x` (the
/// distribution's own tool), a pacman package as the compressed tar it is.
fn unpack(ctx: &Context, packages: &[&PathBuf]) -> Result<tempfile::TempDir> {
    let parent = &ctx.settings.tmp_location;
    let tmp = tempfile::Builder::new()
        .prefix("dkms-preflight.")
        .tempdir_in(parent)
        .or_else(|_| tempfile::tempdir())
        .map_err(|source| ActionError::Unpack {
            path: parent.clone(),
            source,
        })?;
    for package in packages {
        if package.to_string_lossy().contains(".pkg.tar") {
            unpack_pacman(package, tmp.path())?;
        } else {
            unpack_deb(package, tmp.path())?;
        }
    }
    Ok(tmp)
}

fn unpack_deb(deb: &Path, into: &Path) -> Result<()> {
    {
        let out = std::process::Command::new("dpkg-deb")
            .arg("-x")
            .arg(deb)
            .arg(into)
            .output()
            .map_err(|source| ActionError::Unpack {
                path: deb.to_path_buf(),
                source,
            })?;
        if !out.status.success() {
            return Err(ActionError::BadPackage {
                path: deb.to_path_buf(),
                output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }
            .into());
        }
    }
    Ok(())
}

/// A pacman package: a tar compressed by zstd (makepkg's default), xz or gzip; its
/// metadata files (`.PKGINFO`...) are left out.
fn unpack_pacman(package: &Path, into: &Path) -> Result<()> {
    let bad = |e: std::io::Error| ActionError::BadPackage {
        path: package.to_path_buf(),
        output: e.to_string(),
    };
    let file = std::fs::File::open(package).map_err(bad)?;
    let name = package.to_string_lossy();
    let reader: Box<dyn std::io::Read> = if name.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::new(file).map_err(bad)?)
    } else if name.ends_with(".xz") {
        Box::new(liblzma::read::XzDecoder::new(file))
    } else if name.ends_with(".gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let top_level_dot = entry
            .path()
            .map_err(bad)?
            .to_string_lossy()
            .trim_start_matches("./")
            .starts_with('.');
        if !top_level_dot {
            entry.unpack_in(into).map_err(bad)?;
        }
    }
    Ok(())
}

/// The kernel build trees in an unpacked root: Debian's `usr/src/linux-headers-*` (those
/// with `include/config/kernel.release`; the `-common` trees have none) and Arch's
/// `usr/lib/modules/*/build`.
fn headers_trees(root: &Path) -> Vec<PathBuf> {
    let src = root.join("usr/src");
    let modules = root.join("usr/lib/modules");
    let debian = crate::state::visible_entries(&src)
        .into_iter()
        .filter(|n| n.starts_with("linux-headers-"))
        .map(|n| src.join(n));
    let arch = crate::state::visible_entries(&modules)
        .into_iter()
        .map(|k| modules.join(k).join("build"));
    let mut trees: Vec<PathBuf> = debian
        .chain(arch)
        .filter(|d| d.join("include/config/kernel.release").is_file())
        .collect();
    trees.sort();
    trees
}

/// Point the tree's references at what was unpacked beside it, or at the installed copy:
/// the Makefile's absolute `include`, and links that dangle in the unpacked root.
fn relink(root: &Path, tree: &Path) {
    let makefile = tree.join("Makefile");
    if let Ok(text) = std::fs::read_to_string(&makefile) {
        let fixed: Vec<String> = text
            .lines()
            .map(|l| match l.strip_prefix("include /") {
                Some(rest) if root.join(rest).exists() => {
                    format!("include {}", root.join(rest).display())
                }
                _ => l.to_string(),
            })
            .collect();
        let _ = std::fs::write(&makefile, fixed.join("\n") + "\n");
    }
    let src = root.join("usr/src");
    for name in crate::state::visible_entries(&src) {
        let dir = src.join(name);
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let link = e.path();
            let Ok(target) = std::fs::read_link(&link) else {
                continue;
            };
            if link.exists() || target.is_absolute() {
                continue;
            }
            // Where it would point on the installed system.
            let installed = Path::new("/")
                .join(dir.strip_prefix(root).unwrap_or(&dir))
                .join(&target);
            if installed.exists() {
                let _ = std::fs::remove_file(&link);
                let _ = std::os::unix::fs::symlink(&installed, &link);
            }
        }
    }
}
