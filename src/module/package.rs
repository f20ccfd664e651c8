//! Binary packages of one built module version for one kernel, for hosts that install
//! prebuilt modules through their package manager (no compiler, no headers): a Debian
//! `.deb`, made by `dpkg-deb` (the distribution's own tool), and a pacman `.pkg.tar.zst`,
//! written here as makepkg lays one out (`.PKGINFO`, `.INSTALL`, then the files, in a
//! zstd-compressed tar), since makepkg builds from a PKGBUILD as a non-root user, not
//! from files dkms already built.
//!
//! Both hold the same things: the built modules (signed and compressed as an install
//! would place them) where an install puts them, and the dkms tree's view of them — the
//! build (`<m>/<v>/<k>/<a>/module/`), the `kernel-<k>-<a>` link and the install record —
//! so that `dkms status`, `owner` and `verify` on the host see them installed, as they
//! see modules loaded with `ldtarball --binaries-only`. `dkms status` also needs the
//! version's `source/dkms.conf`, which the packages of every kernel share: a file two
//! packages shipped would conflict, so each ships its copy beside its build and its
//! install script puts one in place if none is; its removal script takes it away with
//! the last kernel's package. The scripts also run depmod, for that kernel only.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

use crate::conf::{ModuleConf, ModuleEntry};
use crate::framework::Settings;
use crate::module::install::{dest_dir, find_modules, InstallError, InstallJob};
use crate::report::Reporter;
use crate::state::manifest::{Kind, Manifest, Placed};
use crate::state::{module_file, KernelArch, StateTree};

#[derive(Debug, Error)]
pub enum PackageError {
    #[error("{0}")]
    Install(#[from] InstallError),
    #[error("The built module {0} is missing.\nRebuild it with: dkms build --force")]
    BuiltMissing(PathBuf),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("dpkg-deb could not build {path}:\n{output}")]
    DpkgDeb { path: PathBuf, output: String },
    #[error("No pacman package owns {0}, so a package of modules for it could not depend on its kernel.\nInstall the kernel with pacman, or make a .deb (dkms mkbmdeb).")]
    NoKernelPackage(PathBuf),
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

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PackageError {
    let path = path.to_path_buf();
    move |source| PackageError::Io {
        action,
        path,
        source,
    }
}

/// Package one built (module, version, kernel, arch).
pub struct PackageJob<'a> {
    pub settings: &'a Settings,
    pub tree: &'a StateTree,
    pub report: &'a Reporter,
    pub module: &'a str,
    pub version: &'a str,
    pub ka: &'a KernelArch,
    pub conf: &'a ModuleConf,
    /// Package modules an install would refuse (not newer than the kernel's own).
    pub force: bool,
}

/// What goes into a package, at paths relative to the root of the host.
struct Content {
    /// (path in the package, the file whose bytes it holds)
    files: Vec<(PathBuf, PathBuf)>,
    /// (path in the package, text)
    texts: Vec<(PathBuf, String)>,
    /// (path in the package, link target)
    links: Vec<(PathBuf, PathBuf)>,
}

impl PackageJob<'_> {
    pub fn name(&self) -> String {
        package_name(self.module, &self.ka.kernel)
    }

    /// The files of the package; `modules` is where the host keeps kernel modules
    /// (`lib/modules` on Debian, `usr/lib/modules` on Arch).
    fn content(&self, modules: &str) -> Result<Content, PackageError> {
        let (m, v, ka) = (self.module, self.version, self.ka);
        let build = self.tree.build_dir(m, v, ka);
        let state = Path::new("var/lib/dkms")
            .join(m)
            .join(v)
            .join(&ka.kernel)
            .join(&ka.arch);
        let mut content = Content {
            files: Vec::new(),
            texts: Vec::new(),
            links: Vec::new(),
        };
        let mut placed = Vec::new();
        for entry in self.conf.modules.iter().filter(|e| !e.exclusion.excluded()) {
            let built = module_file(&build.join("module"), &entry.dest_name).ok_or_else(|| {
                PackageError::BuiltMissing(
                    build.join("module").join(format!("{}.ko", entry.dest_name)),
                )
            })?;
            let name = built.file_name().expect("module file name");
            let dir = dest_dir(self.settings, m, entry)?;
            if !self.installable(entry, &dir, &built) {
                continue;
            }
            let dest = Path::new(modules)
                .join(&ka.kernel)
                .join(dir.trim_start_matches('/'))
                .join(name);
            let mut record = Placed::of(&built, Kind::Module).map_err(io("read", &built))?;
            record.path = Path::new("/").join(&dest);
            placed.push(record);
            content.files.push((dest, built.clone()));
            content
                .files
                .push((state.join("module").join(name), built.clone()));
        }
        if placed.is_empty() && !self.conf.modules.is_empty() {
            return Err(PackageError::NothingToPackage {
                module: format!("{m}/{v}"),
                kernel: ka.kernel.clone(),
            });
        }
        let conf_file = self.tree.conf_file(m, v);
        let conf = std::fs::read_to_string(&conf_file).map_err(io("read", &conf_file))?;
        content.texts.push((state.join(".dkms.conf"), conf));
        content.texts.push((
            state.join(".installed-files.json"),
            Manifest::new(placed).to_json(self.settings),
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
        let (m, ka) = (self.module, self.ka);
        let lib = self.settings.install_tree.join(&ka.kernel);
        let mut existing = find_modules(&lib, &entry.dest_name);
        if std::fs::symlink_metadata(self.tree.kernel_link(m, ka)).is_ok() {
            let own_dest = lib.join(dir.trim_start_matches('/'));
            existing.retain(|p| p.parent() != Some(own_dest.as_path()));
            existing.extend(module_file(
                &self.tree.original_module_dir(m, ka),
                &entry.dest_name,
            ));
        }
        let judge = InstallJob {
            settings: self.settings,
            tree: self.tree,
            report: self.report,
            module: m,
            version: self.version,
            ka,
            conf: self.conf,
            force: self.force,
            force_version_override: false,
            no_depmod: true,
        };
        let ok = judge.newer_than(&existing, built, |_| true);
        if !ok {
            self.report.line(&format!(
                "{} is not packaged for kernel {}.",
                built.file_name().unwrap_or_default().to_string_lossy(),
                ka.kernel
            ));
        }
        ok
    }

    /// The install and removal steps both package formats run, as shell functions.
    fn scripts(&self, modules: &str) -> (String, String) {
        let (m, v, k, a) = (self.module, self.version, &self.ka.kernel, &self.ka.arch);
        let d = format!("/var/lib/dkms/{m}/{v}");
        let depmod = format!("if [ -d /{modules}/{k}/kernel ]; then depmod -a {k}; fi");
        let install = format!(
            "if [ ! -e {d}/source ]; then\n    mkdir -p {d}/source && cp {d}/{k}/{a}/.dkms.conf {d}/source/dkms.conf\nfi\n{depmod}\n"
        );
        // dkms status keeps caches beside the build; the kernel's directory is this
        // package's alone.
        let remove = format!(
            "rm -rf {d}/{k}/{a}\nrmdir {d}/{k} 2>/dev/null || true\nif [ -d {d}/source ] && [ ! -L {d}/source ] && [ -z \"$(ls -d {d}/*/*/module 2>/dev/null)\" ]; then\n    rm -rf {d}/source\n    rmdir {d} /var/lib/dkms/{m} 2>/dev/null || true\nfi\n{depmod} || true\n"
        );
        (install, remove)
    }

    fn description(&self) -> String {
        format!(
            "{} {} kernel modules for Linux {} ({}), built and signed by dkms",
            self.module, self.version, self.ka.kernel, self.ka.arch
        )
    }
}

/// `<module>-modules-<kernel>`, in the characters both formats allow in a name.
fn package_name(module: &str, kernel: &str) -> String {
    format!("{module}-modules-{kernel}")
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+-.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Debian's name for a machine architecture.
fn deb_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i486" | "i586" | "i686" => "i386",
        "armv7l" => "armhf",
        "ppc64le" => "ppc64el",
        other => other,
    }
}

/// A version as Debian allows it (starting with a digit, no '_').
fn deb_version(v: &str) -> String {
    let clean: String = v
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".+~-".contains(c) {
                c
            } else {
                '.'
            }
        })
        .collect();
    if clean.starts_with(|c: char| c.is_ascii_digit()) {
        clean
    } else {
        format!("0~{clean}")
    }
}

/// A version as pacman allows it for pkgver (no '-', ':' or '/').
fn pacman_version(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Content {
    /// Every directory above an entry, sorted (parents before children).
    fn dirs(&self) -> std::collections::BTreeSet<PathBuf> {
        let entries = self
            .files
            .iter()
            .map(|(p, _)| p)
            .chain(self.texts.iter().map(|(p, _)| p))
            .chain(self.links.iter().map(|(p, _)| p));
        entries
            .flat_map(|p| p.ancestors().skip(1))
            .filter(|a| !a.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .collect()
    }

    fn size(&self) -> u64 {
        let files: u64 = self
            .files
            .iter()
            .map(|(_, f)| std::fs::metadata(f).map_or(0, |m| m.len()))
            .sum();
        files + self.texts.iter().map(|(_, t)| t.len() as u64).sum::<u64>()
    }

    /// Write the files under `root`.
    fn stage(&self, root: &Path) -> Result<(), PackageError> {
        let parent = |p: &Path| -> Result<(), PackageError> {
            let dir = p.parent().expect("a path in the package");
            std::fs::create_dir_all(dir).map_err(io("create", dir))
        };
        for (path, from) in &self.files {
            let to = root.join(path);
            parent(&to)?;
            std::fs::copy(from, &to).map_err(io("copy", from))?;
        }
        for (path, text) in &self.texts {
            let to = root.join(path);
            parent(&to)?;
            std::fs::write(&to, text).map_err(io("write", &to))?;
        }
        for (path, target) in &self.links {
            let to = root.join(path);
            parent(&to)?;
            std::os::unix::fs::symlink(target, &to).map_err(io("link", &to))?;
        }
        Ok(())
    }
}

impl PackageJob<'_> {
    /// The Debian package, in `out_dir`; returns its path.
    pub fn deb(&self, out_dir: &Path) -> Result<PathBuf, PackageError> {
        let content = self.content("lib/modules")?;
        let stage = tempfile::Builder::new()
            .prefix(".mkbmdeb.")
            .tempdir_in(out_dir)
            .map_err(io("create a directory in", out_dir))?;
        content.stage(stage.path())?;
        let name = self.name();
        let version = deb_version(self.version);
        let arch = deb_arch(&self.ka.arch);
        let control = format!(
            "Package: {name}\nSource: {m}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: dkms mkbmdeb <root@localhost>\nDepends: {kernel}\nSection: kernel\nPriority: optional\nInstalled-Size: {size}\nDescription: {desc}\n Prebuilt by dkms from {m} {v}; installed where dkms installs it and registered\n in the dkms tree, so that dkms status, owner and verify see it.\n",
            m = self.module,
            v = self.version,
            kernel = self.deb_kernel_package(),
            size = content.size().div_ceil(1024),
            desc = self.description(),
        );
        let (install, remove) = self.scripts("lib/modules");
        let debian = stage.path().join("DEBIAN");
        std::fs::create_dir_all(&debian).map_err(io("create", &debian))?;
        let write = |file: &str, text: &str, mode: u32| -> Result<(), PackageError> {
            let path = debian.join(file);
            std::fs::write(&path, text).map_err(io("write", &path))?;
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .map_err(io("chmod", &path))
        };
        write("control", &control, 0o644)?;
        write(
            "postinst",
            &format!("#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n{install}fi\n"),
            0o755,
        )?;
        write(
            "postrm",
            &format!("#!/bin/sh\nset -e\ncase \"$1\" in\nremove|purge)\n{remove};;\nesac\n"),
            0o755,
        )?;
        let out = out_dir.join(format!("{name}_{version}_{arch}.deb"));
        let built = Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(stage.path())
            .arg(&out)
            .output()
            .map_err(io("run dpkg-deb for", &out))?;
        if !built.status.success() {
            return Err(PackageError::DpkgDeb {
                path: out,
                output: String::from_utf8_lossy(&built.stderr).into_owned(),
            });
        }
        Ok(out)
    }

    /// The kernel's image package: the dpkg package that owns its `modules.builtin`, else
    /// Debian's name for it.
    fn deb_kernel_package(&self) -> String {
        let builtin = self
            .settings
            .install_tree
            .join(&self.ka.kernel)
            .join("modules.builtin");
        crate::module::owned::owners(&self.settings.sysroot, &[builtin])
            .into_iter()
            .next()
            .map(|(_, package)| package)
            .unwrap_or_else(|| format!("linux-image-{}", self.ka.kernel))
    }

    /// The pacman package, in `out_dir`; returns its path.
    pub fn pacman(&self, out_dir: &Path) -> Result<PathBuf, PackageError> {
        let kernel_tree = self
            .settings
            .install_tree
            .join(&self.ka.kernel)
            .join("kernel");
        let (kernel_pkg, kernel_ver) =
            crate::module::owned::pacman_package(&self.settings.sysroot, &kernel_tree)
                .ok_or_else(|| PackageError::NoKernelPackage(kernel_tree.clone()))?;
        let content = self.content("usr/lib/modules")?;
        let name = self.name();
        let version = format!("{}-1", pacman_version(self.version));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let pkginfo = format!(
            "# Generated by dkms mkbmpkg\npkgname = {name}\npkgbase = {name}\npkgver = {version}\npkgdesc = {desc}\nbuilddate = {now}\npackager = dkms mkbmpkg\nsize = {size}\narch = {arch}\ndepend = {kernel_pkg}={kernel_ver}\n",
            desc = self.description(),
            size = content.size(),
            arch = self.ka.arch,
        );
        let (install, remove) = self.scripts("usr/lib/modules");
        let scriptlet = format!(
            "post_install() {{\n{install}}}\n\npost_upgrade() {{\n    post_install\n}}\n\npost_remove() {{\n{remove}}}\n"
        );
        let out = out_dir.join(format!("{name}-{version}-{}.pkg.tar.zst", self.ka.arch));
        let partial = out.with_extension("zst.part");
        write_pacman_archive(&partial, &pkginfo, &scriptlet, &content, now)?;
        std::fs::rename(&partial, &out).map_err(io("rename", &partial))?;
        Ok(out)
    }
}

/// `.PKGINFO`, `.INSTALL`, then every directory and file, in a zstd-compressed tar.
fn write_pacman_archive(
    path: &Path,
    pkginfo: &str,
    scriptlet: &str,
    content: &Content,
    mtime: u64,
) -> Result<(), PackageError> {
    let file = std::fs::File::create(path).map_err(io("create", path))?;
    let encoder = zstd::Encoder::new(file, 19).map_err(io("compress", path))?;
    let mut tar = tar::Builder::new(encoder);
    let result = (|| -> std::io::Result<()> {
        append_entries(&mut tar, pkginfo, scriptlet, content, mtime)?;
        tar.into_inner()?.finish()?.flush()
    })();
    result.map_err(io("write", path))
}

/// A header of an entry owned by root.
fn tar_header(kind: tar::EntryType, size: u64, mode: u32, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h
}

/// The metadata files first, then every directory, file, text and link.
fn append_entries<W: Write>(
    tar: &mut tar::Builder<W>,
    pkginfo: &str,
    scriptlet: &str,
    content: &Content,
    mtime: u64,
) -> std::io::Result<()> {
    use tar::EntryType::{Directory, Regular, Symlink};
    for (name, text) in [(".PKGINFO", pkginfo), (".INSTALL", scriptlet)] {
        let mut h = tar_header(Regular, text.len() as u64, 0o644, mtime);
        tar.append_data(&mut h, name, text.as_bytes())?;
    }
    for d in content.dirs() {
        let mut h = tar_header(Directory, 0, 0o755, mtime);
        tar.append_data(&mut h, format!("{}/", d.display()), std::io::empty())?;
    }
    for (p, from) in &content.files {
        let bytes = std::fs::read(from)?;
        let mut h = tar_header(Regular, bytes.len() as u64, 0o644, mtime);
        tar.append_data(&mut h, p, bytes.as_slice())?;
    }
    for (p, text) in &content.texts {
        let mut h = tar_header(Regular, text.len() as u64, 0o644, mtime);
        tar.append_data(&mut h, p, text.as_bytes())?;
    }
    for (p, target) in &content.links {
        let mut h = tar_header(Symlink, 0, 0o777, mtime);
        tar.append_link(&mut h, p, target)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions_follow_each_package_format() {
        assert_eq!(
            package_name("Acpi_call", "6.12.117+deb12-amd64"),
            "acpi-call-modules-6.12.117+deb12-amd64"
        );
        assert_eq!(deb_version("1.2.3"), "1.2.3");
        assert_eq!(deb_version("v2_beta"), "0~v2.beta");
        assert_eq!(pacman_version("1.0-rc1:x"), "1.0_rc1_x");
        assert_eq!(deb_arch("x86_64"), "amd64");
        assert_eq!(deb_arch("riscv64"), "riscv64");
    }
}
