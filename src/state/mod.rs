//! The dkms state tree (`/var/lib/dkms`): what is added, built, installed or broken.
//!
//! The layout is the original's (reference §4), so a machine can switch between the bash
//! dkms and this one in both directions. Our own additions are dot-files (the lock,
//! staging directories), which the original's globs never match.
//!
//! Reads are plain directory listings and `readlink` calls: no dkms.conf evaluation is
//! needed to know a module's state. Writes go through a staging name and a `rename`, so
//! an interrupted `add` or `remove` leaves either the old or the new state.

pub mod failed;
pub mod fingerprint;
pub mod garbage;
pub mod identical;
pub mod kept;
pub mod lock;
pub mod manifest;
pub mod status;

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::fsutil::io_error;
use crate::transaction::Scratch;

#[derive(Debug, Error)]
pub enum StateError {
    #[error(transparent)]
    Io(#[from] crate::fsutil::IoError),
    #[error("No write access to DKMS tree at {0}")]
    NotWritable(PathBuf),
}

impl StateError {
    pub fn exit_code(&self) -> i32 {
        crate::exit::FAILURE
    }
}

/// How a module version stands in the tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Registration {
    /// `<m>/<v>/source` is a symlink to (or, for binaries-only tarballs, is) a directory.
    Added { source: PathBuf },
    /// `<m>/<v>` exists but its source is gone (dangling link, or no link while the
    /// source directory exists).
    Broken,
    /// Not a module version (e.g. `original_module`, a `kernel-*` link) or not added.
    NotAdded,
}

/// One built (kernel, arch) of a module version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelArch {
    pub kernel: String,
    pub arch: String,
}

/// The state tree rooted at `dkms_tree`.
#[derive(Debug, Clone)]
pub struct StateTree {
    pub root: PathBuf,
}

impl StateTree {
    pub fn new(root: impl Into<PathBuf>) -> StateTree {
        StateTree { root: root.into() }
    }

    pub fn version_dir(&self, module: &str, version: &str) -> PathBuf {
        self.root.join(module).join(version)
    }

    pub fn build_dir(&self, module: &str, version: &str, ka: &KernelArch) -> PathBuf {
        self.version_dir(module, version)
            .join(&ka.kernel)
            .join(&ka.arch)
    }

    /// `<m>/<v>/.preflight/<k>/<a>`: a build made ahead of the kernel's installation
    /// (`dkms preflight`), which nothing lists as built; the kernel's installation takes
    /// it if its fingerprint still matches.
    pub fn preflight_dir(&self, module: &str, version: &str, ka: &KernelArch) -> PathBuf {
        self.version_dir(module, version)
            .join(".preflight")
            .join(&ka.kernel)
            .join(&ka.arch)
    }

    /// `<m>/<v>/source/dkms.conf`.
    pub fn conf_file(&self, module: &str, version: &str) -> PathBuf {
        self.version_dir(module, version).join("source/dkms.conf")
    }

    pub fn kernel_link(&self, module: &str, ka: &KernelArch) -> PathBuf {
        self.root
            .join(module)
            .join(format!("kernel-{}-{}", ka.kernel, ka.arch))
    }

    pub fn original_module_dir(&self, module: &str, ka: &KernelArch) -> PathBuf {
        self.root
            .join(module)
            .join("original_module")
            .join(&ka.kernel)
            .join(&ka.arch)
    }

    /// Every `<m>/<v>` pair in the original's glob order (`$dkms_tree/*/*`, whole paths
    /// sorted bytewise), optionally filtered. Only directories qualify.
    pub fn module_versions(
        &self,
        module: Option<&str>,
        version: Option<&str>,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for m in visible_entries(&self.root) {
            if module.is_some_and(|want| want != m) {
                continue;
            }
            for v in visible_entries(&self.root.join(&m)) {
                if version.is_some_and(|want| want != v) {
                    continue;
                }
                if self.root.join(&m).join(&v).is_dir() {
                    out.push((m.clone(), v));
                }
            }
        }
        out.sort_by(|a, b| {
            format!("{}/{}", a.0, a.1)
                .as_bytes()
                .cmp(format!("{}/{}", b.0, b.1).as_bytes())
        });
        out
    }

    /// Whether `<m>/<v>` is added, broken, or neither.
    pub fn registration(&self, module: &str, version: &str, source_tree: &Path) -> Registration {
        let dir = self.version_dir(module, version);
        let source = dir.join("source");
        match std::fs::symlink_metadata(&source) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if source.is_dir() {
                    Registration::Added {
                        source: std::fs::read_link(&source).unwrap_or(source),
                    }
                } else {
                    Registration::Broken
                }
            }
            Ok(meta) if meta.is_dir() => Registration::Added { source },
            _ => {
                if dir.is_dir() && source_tree.join(format!("{module}-{version}")).is_dir() {
                    Registration::Broken
                } else {
                    Registration::NotAdded
                }
            }
        }
    }

    /// Built (kernel, arch) pairs of `<m>/<v>` in glob order: kernel directories whose
    /// name looks like a kernel release (or equals `kernel`), arch directories (or
    /// `arch`), holding a `module/` directory.
    pub fn built(
        &self,
        module: &str,
        version: &str,
        kernel: Option<&str>,
        arch: Option<&str>,
    ) -> Vec<KernelArch> {
        let dir = self.version_dir(module, version);
        let mut out = Vec::new();
        for k in visible_entries(&dir) {
            let kernel_ok = match kernel {
                Some(want) => want == k,
                None => crate::kernel::is_kernel_name(&k),
            };
            if !kernel_ok {
                continue;
            }
            for a in visible_entries(&dir.join(&k)) {
                if arch.is_some_and(|want| want != a) {
                    continue;
                }
                if dir.join(&k).join(&a).join("module").is_dir() {
                    out.push(KernelArch {
                        kernel: k.clone(),
                        arch: a,
                    });
                }
            }
        }
        out.sort_by(|x, y| {
            format!("{}/{}", x.kernel, x.arch)
                .as_bytes()
                .cmp(format!("{}/{}", y.kernel, y.arch).as_bytes())
        });
        out
    }

    /// Installed: built, and `kernel-<k>-<a>` resolves to this version's build. Both
    /// dkms write the link as `<v>/<k>/<a>`; that form (or the absolute path) is
    /// compared directly, anything else by resolving both paths.
    pub fn is_installed(&self, module: &str, version: &str, ka: &KernelArch) -> bool {
        let link = self.kernel_link(module, ka);
        let Ok(target) = std::fs::read_link(&link) else {
            return false;
        };
        let build = self.build_dir(module, version, ka);
        let relative = Path::new(version).join(&ka.kernel).join(&ka.arch);
        if target == relative || target == build {
            return build.is_dir();
        }
        match (std::fs::canonicalize(&link), std::fs::canonicalize(&build)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }

    pub fn has_original_modules(&self, module: &str, ka: &KernelArch) -> bool {
        self.original_module_dir(module, ka).is_dir()
    }

    /// Kernel directories of `<m>/<v>` other than the original's bookkeeping names that
    /// hold something (a kernel directory holding only a leftover of a killed remove
    /// keeps nothing alive).
    pub fn kernel_dirs(&self, module: &str, version: &str) -> Vec<String> {
        const NOT_KERNELS: &[&str] = &[
            "build",
            "tarball",
            "driver_disk",
            "rpm",
            "deb",
            "pkg",
            "source",
        ];
        let dir = self.version_dir(module, version);
        visible_entries(&dir)
            .into_iter()
            .filter(|n| !NOT_KERNELS.contains(&n.as_str()))
            .filter(|n| dir.join(n).is_dir() && !visible_entries(&dir.join(n)).is_empty())
            .collect()
    }

    /// Record `<m>/<v>` as added: `build/` and the `source` link, committed by renaming
    /// a staged directory into place (or completing an existing directory).
    pub fn add(&self, module: &str, version: &str, source: &Path) -> Result<(), StateError> {
        let module_dir = self.root.join(module);
        std::fs::create_dir_all(&module_dir).map_err(io_error("create", &module_dir))?;
        let final_dir = module_dir.join(version);
        if final_dir.exists() {
            let build = final_dir.join("build");
            std::fs::create_dir_all(&build).map_err(io_error("create", &build))?;
            let link = final_dir.join("source");
            let staged = final_dir.join(format!(".source.{}", std::process::id()));
            let _scratch = Scratch::new(&self.root, &staged)?;
            crate::crashpoint::step("symlink staged source", &staged);
            std::os::unix::fs::symlink(source, &staged)
                .map_err(io_error("create symlink", &staged))?;
            crate::crashpoint::step("rename source link", &link);
            std::fs::rename(&staged, &link).map_err(io_error("rename", &link))?;
            return Ok(());
        }
        self.add_staged(module, version, |staged| {
            std::os::unix::fs::symlink(source, staged.join("source"))
        })
    }

    /// Record `<m>/<v>` of a binaries-only archive as added: its `source` is a real
    /// directory holding only `conf` (the original's layout), committed in one rename.
    pub fn add_binaries_only(
        &self,
        module: &str,
        version: &str,
        conf: &Path,
    ) -> Result<(), StateError> {
        self.add_staged(module, version, |staged| {
            std::fs::create_dir(staged.join("source"))?;
            std::fs::copy(conf, staged.join("source/dkms.conf")).map(|_| ())
        })
    }

    /// A new `<m>/<v>` with `build/` and what `fill` puts in it, staged under a journaled
    /// name and renamed into place.
    fn add_staged(
        &self,
        module: &str,
        version: &str,
        fill: impl FnOnce(&Path) -> io::Result<()>,
    ) -> Result<(), StateError> {
        let module_dir = self.root.join(module);
        let final_dir = module_dir.join(version);
        let staged = module_dir.join(format!(".{version}.adding.{}", std::process::id()));
        let _scratch = Scratch::new(&self.root, &staged)?;
        let build = staged.join("build");
        crate::crashpoint::step("mkdir staged version", &build);
        std::fs::create_dir_all(&build).map_err(io_error("create", &build))?;
        crate::crashpoint::step("fill staged version", &staged);
        fill(&staged).map_err(io_error("create", &staged))?;
        crate::crashpoint::step("rename version into place", &final_dir);
        std::fs::rename(&staged, &final_dir).map_err(io_error("rename", &final_dir))?;
        Ok(())
    }

    /// Delete `<m>/<v>` completely: renamed away first (one atomic step), then deleted;
    /// `<m>/` goes too when nothing else is left in it.
    pub fn remove_version(&self, module: &str, version: &str) -> Result<(), StateError> {
        let module_dir = self.root.join(module);
        let dir = module_dir.join(version);
        let doomed = module_dir.join(format!(".{version}.removing.{}", std::process::id()));
        let _scratch = Scratch::new(&self.root, &doomed)?;
        crate::crashpoint::step("rename away", &dir);
        std::fs::rename(&dir, &doomed).map_err(io_error("rename", &dir))?;
        crate::crashpoint::step("delete renamed away", &doomed);
        std::fs::remove_dir_all(&doomed).map_err(io_error("delete", &doomed))?;
        self.prune_module_dir(module);
        Ok(())
    }

    /// Delete `<v>/<k>/<a>` (renamed away first, so it disappears in one step) and
    /// `<v>/<k>` when nothing else is left in it.
    pub fn remove_build(
        &self,
        module: &str,
        version: &str,
        ka: &KernelArch,
    ) -> Result<(), StateError> {
        let dir = self.build_dir(module, version, ka);
        let doomed = dir.with_file_name(format!(".{}.removing.{}", ka.arch, std::process::id()));
        let scratch = Scratch::new(&self.root, &doomed)?;
        crate::crashpoint::step("rename away", &dir);
        std::fs::rename(&dir, &doomed).map_err(io_error("rename", &dir))?;
        crate::crashpoint::step("delete renamed away", &doomed);
        std::fs::remove_dir_all(&doomed).map_err(io_error("delete", &doomed))?;
        drop(scratch);
        let kernel_dir = self.version_dir(module, version).join(&ka.kernel);
        if visible_entries(&kernel_dir).is_empty() {
            crate::crashpoint::step("delete empty kernel dir", &kernel_dir);
            let _ = std::fs::remove_dir_all(&kernel_dir);
        }
        Ok(())
    }

    /// Remove `<m>/` if it is empty (dot-files of ours included in "empty").
    pub fn prune_module_dir(&self, module: &str) {
        let dir = self.root.join(module);
        if visible_entries(&dir).is_empty() {
            crate::crashpoint::step("delete empty module dir", &dir);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    /// Whether the current user may write the tree (creating it if needed).
    pub fn check_writable(&self) -> Result<(), StateError> {
        if !self.root.exists() {
            let _ = std::fs::create_dir_all(&self.root);
        }
        match rustix::fs::access(&self.root, rustix::fs::Access::WRITE_OK) {
            Ok(()) => Ok(()),
            Err(_) => Err(StateError::NotWritable(self.root.clone())),
        }
    }
}

pub use crate::fsutil::{module_file, name_fixed, name_flaw, visible_entries};

/// Whether a module version's `source` holds module source, by the original's test:
/// two entries or more (as `ls` counts them, dot-files not). A binaries-only
/// registration (`ldtarball --binaries-only`, a prebuilt module package) holds its
/// dkms.conf alone, and cannot be built.
pub fn holds_source(source: &Path) -> bool {
    visible_entries(source).len() >= 2
}
