//! The Debian package, made by `dpkg-deb` from a staged tree with its `DEBIAN/` control
//! files: control (Conflicts with the module's `-dkms` package, which builds the same
//! modules from source), md5sums, the maintainer scripts, and a copyright file.

use std::path::{Path, PathBuf};
use std::process::Command;

use openssl::hash::MessageDigest;

use super::names::{deb_arch, deb_version, source_packages};
use super::scripts::{scripts, Host};
use super::{PackageError, PackageJob};
use crate::fsutil::io_error;

impl PackageJob<'_> {
    /// The Debian package, in `out_dir`; returns its path.
    pub fn deb(&self, out_dir: &Path) -> Result<PathBuf, PackageError> {
        let mut content = self.content("lib/modules")?;
        let name = self.name();
        content.texts.push((
            Path::new("usr/share/doc").join(&name).join("copyright"),
            self.copyright(content.license.as_deref()),
        ));
        let stage = tempfile::Builder::new()
            .prefix(".mkbmdeb.")
            .tempdir_in(out_dir)
            .map_err(io_error("create a directory in", out_dir))?;
        content.stage(stage.path())?;
        let version = format!("{}-{}", deb_version(self.on.version), self.revision);
        let arch = deb_arch(&self.on.ka.arch);
        let control = format!(
            "Package: {name}\nSource: {m}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: dkms mkbmdeb <root@localhost>\nDepends: {kernel}\nConflicts: {conflicts}\nProvides: {provides}\nSection: kernel\nPriority: optional\nInstalled-Size: {size}\nDescription: {desc}\n Prebuilt by dkms from {m} {v}; installed where dkms installs it and registered\n in the dkms tree, so that dkms status, owner and verify see it.\n",
            m = self.on.module,
            v = self.on.version,
            kernel = self.deb_kernel_package(),
            conflicts = source_packages(self.on.module, false).join(", "),
            provides = super::names::provided(self.on.module),
            size = content.size().div_ceil(1024),
            desc = self.description(),
        );
        let (install, remove) = scripts(
            self.on.module,
            self.on.version,
            &self.on.ka.kernel,
            &self.on.ka.arch,
            &Host {
                modules: "lib/modules",
                depmod_hook_possible: false,
            },
        );
        let debian = stage.path().join("DEBIAN");
        std::fs::create_dir_all(&debian).map_err(io_error("create", &debian))?;
        let write = |file: &str, text: &str, mode: u32| -> Result<(), PackageError> {
            let path = debian.join(file);
            std::fs::write(&path, text).map_err(io_error("write", &path))?;
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .map_err(io_error("chmod", &path))?;
            Ok(())
        };
        write("control", &control, 0o644)?;
        let sums =
            md5sums(&content.regular_files()?).map_err(io_error("checksum files for", &debian))?;
        write("md5sums", &sums, 0o644)?;
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
            .map_err(io_error("run dpkg-deb for", &out))?;
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
            .on
            .settings
            .install_tree
            .join(&self.on.ka.kernel)
            .join("modules.builtin");
        crate::module::owned::owners(&self.on.settings.sysroot, &[builtin])
            .into_iter()
            .next()
            .map(|owned| owned.package)
            .unwrap_or_else(|| format!("linux-image-{}", self.on.ka.kernel))
    }

    /// `/usr/share/doc/<package>/copyright`, in Debian's machine-readable format: the
    /// license is what the modules declare (`MODULE_LICENSE`).
    fn copyright(&self, license: Option<&str>) -> String {
        format!(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: {m}\nComment: Kernel modules built by dkms from the sources of {m} {v}.\n\nFiles: *\nCopyright: the authors of {m}\nLicense: {license}\n",
            m = self.on.module,
            v = self.on.version,
            license = license.unwrap_or("unknown (the modules declare none)"),
        )
    }
}

/// `DEBIAN/md5sums`: the MD5 of every regular file, by its path in the package.
fn md5sums(files: &[(PathBuf, Vec<u8>)]) -> std::io::Result<String> {
    let mut lines = Vec::new();
    for (path, bytes) in files {
        lines.push(format!(
            "{}  {}\n",
            digest_hex(MessageDigest::md5(), bytes)?,
            path.display()
        ));
    }
    lines.sort();
    Ok(lines.concat())
}

/// The lower-case hex digest of `bytes`.
pub(super) fn digest_hex(kind: MessageDigest, bytes: &[u8]) -> std::io::Result<String> {
    let sum = openssl::hash::hash(kind, bytes).map_err(std::io::Error::other)?;
    Ok(sum.iter().map(|b| format!("{b:02x}")).collect())
}
