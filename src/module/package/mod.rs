//! Binary packages of one built module version for one kernel, for hosts that install
//! prebuilt modules through their package manager (no compiler, no headers): a Debian
//! `.deb`, made by `dpkg-deb` (the distribution's own tool), and a pacman `.pkg.tar.zst`,
//! written here as makepkg lays one out (`.PKGINFO`, `.MTREE`, `.INSTALL`, then the files,
//! in a zstd-compressed tar), since makepkg builds from a PKGBUILD as a non-root user, not
//! from files dkms already built.
//!
//! Both hold the same things: the built modules (signed and compressed as an install
//! would place them) where an install puts them, and the dkms tree's view of them — the
//! build (`<m>/<v>/<k>/<a>/module/`), the `kernel-<k>-<a>` link and the install record —
//! so that `dkms status`, `owner` and `verify` on the host see them installed, as they
//! see modules loaded with `ldtarball --binaries-only`. What the packages of several
//! kernels share (the version's `source/dkms.conf`) and what dkms writes beside them
//! (status caches) is no package's file: the scripts ([`scripts`]) create and remove it,
//! so that an upgrade, a downgrade, a reinstall or a removal leaves exactly what a fresh
//! install of the package that stays would.

mod deb;
mod names;
mod pacman;
mod rpm;
mod scripts;

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::conf::ModuleEntry;
use crate::fsutil::io_error;
use crate::module::install::{dest_dir, find_modules, InstallError, InstallJob};
use crate::state::manifest::{Kind, Manifest, Placed};
use crate::state::module_file;

#[derive(Debug, Error)]
pub enum PackageError {
    #[error("{0}")]
    Install(#[from] InstallError),
    #[error("The built module {0} is missing.\nRebuild it with: dkms build --force")]
    BuiltMissing(PathBuf),
    #[error(transparent)]
    Io(#[from] crate::fsutil::IoError),
    #[error("dpkg-deb could not build {path}:\n{output}")]
    DpkgDeb { path: PathBuf, output: String },
    #[error("No pacman package owns {0}, so a package of modules for it could not depend on its kernel.\nInstall the kernel with pacman, or make a .deb (dkms mkbmdeb).")]
    NoKernelPackage(PathBuf),
    #[error("No rpm package owns {0}, so a package of modules for it could not require its kernel.\nInstall the kernel with rpm or dnf, or make a .deb (dkms mkbmdeb).")]
    NoRpmKernelPackage(PathBuf),
    #[error("rpmbuild is not installed: dkms mkbmrpm builds with it.\nInstall it: dnf install rpm-build (Debian: apt-get install rpm).")]
    NoRpmbuild,
    #[error("rpmbuild could not build {path}:\n{output}")]
    Rpmbuild { path: PathBuf, output: String },
    #[error("No module of {module} would be installed on kernel {kernel} (see above), so no package was made for it.\nYou may override by specifying --force.")]
    NothingToPackage { module: String, kernel: String },
}

impl PackageError {
    pub fn exit_code(&self) -> i32 {
        match self {
            PackageError::Install(e) => e.exit_code(),
            PackageError::BuiltMissing(_) => crate::exit::BUILT_MODULE_MISSING,
            PackageError::NothingToPackage { .. } => crate::exit::INSTALL_FAILED,
            _ => crate::exit::TARBALL_FAILED,
        }
    }
}

/// Package one built (module, version, kernel, arch).
pub struct PackageJob<'a> {
    /// The module version and kernel.
    pub on: crate::module::ModuleOnKernel<'a>,
    /// Package modules an install would refuse (not newer than the kernel's own).
    pub force: bool,
    /// The package's own revision (Debian revision, pacman pkgrel), from 1: a rebuild of
    /// the same module version needs a higher one to reach hosts.
    pub revision: u32,
}

/// What goes into a package, at paths relative to the root of the host.
struct Content {
    /// (path in the package, the file whose bytes it holds)
    files: Vec<(PathBuf, PathBuf)>,
    /// (path in the package, text)
    texts: Vec<(PathBuf, String)>,
    /// (path in the package, link target)
    links: Vec<(PathBuf, PathBuf)>,
    /// `MODULE_LICENSE` of the modules, for the package's metadata.
    license: Option<String>,
}

/// The dkms.conf a package carries: the module's, with AUTOINSTALL turned off, since a
/// host that installs prebuilt modules has no source to build them for another kernel.
fn packaged_conf(conf: &str) -> String {
    format!(
        "{}\n# Added by dkms mkbmdeb/mkbmpkg: this copy comes with prebuilt modules only, and a\n# host that installs them has no source to build them for another kernel.\nAUTOINSTALL=\"\"\n",
        conf.trim_end_matches('\n')
    )
}

impl PackageJob<'_> {
    pub fn name(&self) -> String {
        names::package_name(self.on.module, &self.on.ka.kernel)
    }

    /// `var/lib/dkms/<m>/<v>/<k>/<a>`: the build's place in the package.
    fn state_dir(&self) -> PathBuf {
        Path::new("var/lib/dkms")
            .join(self.on.module)
            .join(self.on.version)
            .join(&self.on.ka.kernel)
            .join(&self.on.ka.arch)
    }

    /// The files of the package; `modules` is where the host keeps kernel modules
    /// (`lib/modules` on Debian, `usr/lib/modules` on Arch).
    fn content(&self, modules: &str) -> Result<Content, PackageError> {
        let (m, v, ka) = (self.on.module, self.on.version, self.on.ka);
        let build = self.on.tree.build_dir(m, v, ka);
        let state = self.state_dir();
        let mut content = Content {
            files: Vec::new(),
            texts: Vec::new(),
            links: Vec::new(),
            license: None,
        };
        let mut placed = Vec::new();
        for entry in self
            .on
            .conf
            .modules
            .iter()
            .filter(|e| !e.exclusion.excluded())
        {
            let built = module_file(&build.join("module"), &entry.dest_name).ok_or_else(|| {
                PackageError::BuiltMissing(
                    build.join("module").join(format!("{}.ko", entry.dest_name)),
                )
            })?;
            let name = built.file_name().expect("module file name");
            let dir = dest_dir(self.on.settings, m, entry)?;
            if !self.installable(entry, &dir, &built) {
                continue;
            }
            let dest = Path::new(modules)
                .join(&ka.kernel)
                .join(dir.trim_start_matches('/'))
                .join(name);
            let mut record = Placed::of(&built, Kind::Module).map_err(io_error("read", &built))?;
            record.path = Path::new("/").join(&dest);
            placed.push(record);
            if content.license.is_none() {
                content.license = crate::module::modinfo::read(&built)
                    .ok()
                    .and_then(|i| i.license);
            }
            content.files.push((dest, built.clone()));
            content
                .files
                .push((state.join("module").join(name), built.clone()));
        }
        if placed.is_empty() && !self.on.conf.modules.is_empty() {
            return Err(PackageError::NothingToPackage {
                module: format!("{m}/{v}"),
                kernel: ka.kernel.clone(),
            });
        }
        let conf_file = self.on.tree.conf_file(m, v);
        let conf = std::fs::read_to_string(&conf_file).map_err(io_error("read", &conf_file))?;
        content
            .texts
            .push((state.join(".dkms.conf"), packaged_conf(&conf)));
        content.texts.push((
            state.join(".installed-files.json"),
            Manifest::new(placed).to_json(self.on.settings),
        ));
        content.links.push((
            Path::new("var/lib/dkms")
                .join(m)
                .join(format!("kernel-{}-{}", ka.kernel, ka.arch)),
            Path::new(v).join(&ka.kernel).join(&ka.arch),
        ));
        Ok(content)
    }

    /// Whether an install on this machine would place `built` (in `dir`): the install's
    /// own version rule, against the kernel's modules here. A version of this module that
    /// dkms installed is not the kernel's: the kernel's own is then the one archived in
    /// `original_module/`.
    fn installable(&self, entry: &ModuleEntry, dir: &str, built: &Path) -> bool {
        let (m, ka) = (self.on.module, self.on.ka);
        let lib = self.on.settings.install_tree.join(&ka.kernel);
        let mut existing = find_modules(&lib, &entry.dest_name);
        if std::fs::symlink_metadata(self.on.tree.kernel_link(m, ka)).is_ok() {
            let own_dest = lib.join(dir.trim_start_matches('/'));
            existing.retain(|p| p.parent() != Some(own_dest.as_path()));
            existing.extend(module_file(
                &self.on.tree.original_module_dir(m, ka),
                &entry.dest_name,
            ));
        }
        let judge = InstallJob {
            on: crate::module::ModuleOnKernel {
                module: m,
                ka,
                ..self.on
            },
            force: self.force,
            force_version_override: false,
            no_depmod: true,
        };
        let ok = judge.newer_than(&existing, built, |_| true);
        if !ok {
            self.on.report.line(&format!(
                "{} is not packaged for kernel {}.",
                built.file_name().unwrap_or_default().to_string_lossy(),
                ka.kernel
            ));
        }
        ok
    }

    fn description(&self) -> String {
        format!(
            "{} {} kernel modules for Linux {} ({}), built and signed by dkms",
            self.on.module, self.on.version, self.on.ka.kernel, self.on.ka.arch
        )
    }
}

impl Content {
    /// Every directory above an entry, sorted (parents before children).
    fn dirs(&self) -> std::collections::BTreeSet<PathBuf> {
        self.entries()
            .flat_map(|p| p.ancestors().skip(1))
            .filter(|a| !a.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .collect()
    }

    fn entries(&self) -> impl Iterator<Item = &PathBuf> {
        self.files
            .iter()
            .map(|(p, _)| p)
            .chain(self.texts.iter().map(|(p, _)| p))
            .chain(self.links.iter().map(|(p, _)| p))
    }

    fn size(&self) -> u64 {
        let files: u64 = self
            .files
            .iter()
            .map(|(_, f)| std::fs::metadata(f).map_or(0, |m| m.len()))
            .sum();
        files + self.texts.iter().map(|(_, t)| t.len() as u64).sum::<u64>()
    }

    /// Every regular file's path and bytes (files, then texts), for checksums.
    fn regular_files(&self) -> Result<Vec<(PathBuf, Vec<u8>)>, PackageError> {
        let mut out = Vec::new();
        for (path, from) in &self.files {
            out.push((
                path.clone(),
                std::fs::read(from).map_err(io_error("read", from))?,
            ));
        }
        for (path, text) in &self.texts {
            out.push((path.clone(), text.clone().into_bytes()));
        }
        Ok(out)
    }

    /// Write the files under `root`.
    fn stage(&self, root: &Path) -> Result<(), PackageError> {
        let parent = |p: &Path| -> Result<(), PackageError> {
            let dir = p.parent().expect("a path in the package");
            std::fs::create_dir_all(dir).map_err(io_error("create", dir))?;
            Ok(())
        };
        for (path, from) in &self.files {
            let to = root.join(path);
            parent(&to)?;
            std::fs::copy(from, &to).map_err(io_error("copy", from))?;
        }
        for (path, text) in &self.texts {
            let to = root.join(path);
            parent(&to)?;
            std::fs::write(&to, text).map_err(io_error("write", &to))?;
        }
        for (path, target) in &self.links {
            let to = root.join(path);
            parent(&to)?;
            std::os::unix::fs::symlink(target, &to).map_err(io_error("link", &to))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_packaged_conf_turns_autoinstall_off_last() {
        let text = super::packaged_conf("PACKAGE_NAME=x\nAUTOINSTALL=yes\n");
        assert!(text.starts_with("PACKAGE_NAME=x\nAUTOINSTALL=yes\n# Added by dkms"));
        assert!(text.ends_with("\nAUTOINSTALL=\"\"\n"));
    }
}
