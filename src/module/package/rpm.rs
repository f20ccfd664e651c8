//! The RPM package, made by `rpmbuild` (the distribution's own tool) from a spec written
//! here, following Fedora's kmod naming: `kmod-<module>-<kernel>`, requiring the package
//! that owns the kernel's modules (as rpm knows it: refused otherwise, as for pacman).
//! rpm runs `%posttrans` after the whole transaction (an upgrade's old files are gone by
//! then), so the settle step and depmod run there; `%postun` on removal only.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::names::{provided, source_packages};
use super::scripts::{scripts, Host};
use super::{PackageError, PackageJob};
use crate::fsutil::io_error;

/// A version as rpm allows it (no '-'): `~` before a pre-release word, as for Debian.
fn rpm_version(v: &str) -> String {
    super::names::deb_version(v).replace('-', "_")
}

impl PackageJob<'_> {
    pub fn rpm_name(&self) -> String {
        format!("kmod-{}-{}", self.on.module, self.on.ka.kernel)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "+-._".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// The RPM package, in `out_dir`; returns its path.
    pub fn rpm(&self, out_dir: &Path) -> Result<PathBuf, PackageError> {
        let builtin = Path::new("/lib/modules")
            .join(&self.on.ka.kernel)
            .join("modules.builtin");
        let (kernel_pkg, kernel_ver) =
            crate::module::owned::rpm_package(&self.on.settings.sysroot, &builtin).ok_or_else(
                || {
                    PackageError::NoRpmKernelPackage(
                        self.on
                            .settings
                            .install_tree
                            .join(&self.on.ka.kernel)
                            .join("modules.builtin"),
                    )
                },
            )?;
        let content = self.content("lib/modules")?;
        let top = tempfile::Builder::new()
            .prefix(".mkbmrpm.")
            .tempdir_in(out_dir)
            .map_err(io_error("create a directory in", out_dir))?;
        let stage = top.path().join("stage");
        content.stage(&stage)?;
        let name = self.rpm_name();
        let version = rpm_version(self.on.version);
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
        let mut files = String::new();
        for d in content
            .dirs()
            .iter()
            .filter(|d| owns_dir(d, self.on.module))
        {
            files.push_str(&format!("%dir \"/{}\"\n", d.display()));
        }
        for p in content.entries() {
            files.push_str(&format!("\"/{}\"\n", p.display()));
        }
        let conflicts: Vec<String> = source_packages(self.on.module, false);
        let spec = format!(
            "%global debug_package %{{nil}}\n%global __os_install_post %{{nil}}\n%global _build_id_links none\n\
             Name: {name}\nVersion: {version}\nRelease: {release}\nSummary: {desc}\nLicense: {license}\n\
             Requires: {kernel_pkg} = {kernel_ver}\nConflicts: {conflicts}\nProvides: {provided}\nAutoReqProv: no\n\n\
             %description\nPrebuilt by dkms from {m} {v}; installed where dkms installs it and registered in the\ndkms tree, so that dkms status, owner and verify see it.\n\n\
             %install\nmkdir -p %{{buildroot}}\ncp -a {stage}/. %{{buildroot}}/\n\n\
             %posttrans\n{install}\n%postun\nif [ \"$1\" -eq 0 ]; then\n{remove}fi\n\n\
             %files\n{files}",
            release = self.revision,
            desc = spec_text(&self.description()),
            license = spec_text(content.license.as_deref().unwrap_or("unknown")),
            install = install.replace('%', "%%"),
            remove = remove.replace('%', "%%"),
            conflicts = conflicts.join(", "),
            provided = provided(self.on.module),
            m = self.on.module,
            v = self.on.version,
            stage = stage.display(),
        );
        let spec_file = top.path().join(format!("{name}.spec"));
        std::fs::write(&spec_file, spec).map_err(io_error("write", &spec_file))?;
        let rpmdir = top.path().join("rpms");
        let out = Command::new("rpmbuild")
            .arg("-bb")
            .arg("--define")
            .arg(format!("_topdir {}", top.path().join("top").display()))
            .arg("--define")
            .arg(format!("_rpmdir {}", rpmdir.display()))
            .arg("--target")
            .arg(&self.on.ka.arch)
            .arg(&spec_file)
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => PackageError::NoRpmbuild,
                _ => io_error("run rpmbuild for", &spec_file)(e).into(),
            })?;
        let built = rpmdir.join(&self.on.ka.arch).join(format!(
            "{name}-{version}-{}.{}.rpm",
            self.revision, self.on.ka.arch
        ));
        if !out.status.success() || !built.is_file() {
            return Err(PackageError::Rpmbuild {
                path: built,
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let dest = out_dir.join(built.file_name().expect("a file name"));
        std::fs::rename(&built, &dest).map_err(io_error("move", &built))?;
        Ok(dest)
    }
}

/// Free text on one spec line: rpm would expand a `%` as a macro and end the field at a
/// newline.
fn spec_text(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('%', "%%")
}

/// The directories the package owns: its own under the dkms tree (`<m>/<v>/<k>/<a>...`),
/// never the shared ones (`/var/lib/dkms`, `/lib/modules/<k>/updates`...).
fn owns_dir(dir: &Path, module: &str) -> bool {
    let shared = Path::new("var/lib/dkms").join(module);
    dir.starts_with(&shared)
        && dir != shared
        && dir.components().count() > shared.components().count() + 1
}

#[cfg(test)]
mod tests {
    #[test]
    fn rpm_versions_have_no_dash_and_sort_pre_releases_first() {
        assert_eq!(super::rpm_version("1.0-rc1"), "1.0~rc1");
        assert_eq!(super::rpm_version("2.0-3"), "2.0_3");
    }
}
