//! What an install placed: `<m>/<v>/<k>/<a>/.installed-files.json`, written in the
//! install's transaction and removed in the uninstall's.
//!
//! Why: the files dkms installs belong to no package, so nothing could say who owns
//! `/lib/modules/<k>/updates/dkms/foo.ko` or whether it is still what was installed.
//! The record lists each placed file (the modules, the kernel's own modules archived in
//! the state tree, the links placed instead of copies when `symlink_modules` is set) with
//! its size and SHA-256 (a link: its target). `dkms owner` and `dkms verify` read it, and
//! an uninstall leaves a module changed since its install in place, saying so.
//!
//! A dot-file, so the original's globs never see it; a module installed by the original
//! simply has no record. A record counts only while its version is installed for that
//! kernel (the original may have uninstalled it behind our back).
//!
//! Paths are written as the root itself sees them (`/lib/modules/...`, without
//! `DKMS_SYSROOT`), so a root built in one place and copied or mounted elsewhere (an
//! image build) still verifies its own files; in memory they are paths on this machine.
//! Records of the first schema held this machine's paths, the sysroot included: they are
//! read by finding, in each path, the part below the install or dkms tree.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{KernelArch, StateTree};
use crate::framework::Settings;

/// The record's schema name, bumped only when a field changes meaning (2: paths as the
/// root sees them).
pub const SCHEMA: &str = "dkms-files/2";
/// The first schema: paths on the machine that wrote the record, sysroot included.
const SCHEMA_HOST_PATHS: &str = "dkms-files/1";
const FILE_NAME: &str = ".installed-files.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A module installed into the kernel's modules tree.
    Module,
    /// The kernel's own module, moved into the state tree while ours is installed.
    Original,
    /// A symlink to the built module (`symlink_modules`).
    Link,
}

/// One placed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    pub path: PathBuf,
    pub kind: Kind,
    /// Bytes of the file (0 for a link).
    pub size: u64,
    /// Lower-case hex SHA-256 of the file (empty for a link).
    pub sha256: String,
    /// A link's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: String,
    pub files: Vec<Placed>,
}

/// How a recorded file stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    Ok,
    Missing,
    Modified,
}

impl Placed {
    /// Record `path` as it is now.
    pub fn of(path: &Path, kind: Kind) -> std::io::Result<Placed> {
        if kind == Kind::Link {
            return Ok(Placed {
                path: path.into(),
                kind,
                size: 0,
                sha256: String::new(),
                target: Some(std::fs::read_link(path)?),
            });
        }
        let (size, sha256) = digest(path)?;
        Ok(Placed {
            path: path.into(),
            kind,
            size,
            sha256,
            target: None,
        })
    }

    /// Whether the file is still what was placed.
    pub fn check(&self) -> Check {
        if std::fs::symlink_metadata(&self.path).is_err() {
            return Check::Missing;
        }
        let same = match self.kind {
            Kind::Link => std::fs::read_link(&self.path).ok() == self.target,
            _ => {
                digest(&self.path).is_ok_and(|(size, sum)| size == self.size && sum == self.sha256)
            }
        };
        if same {
            Check::Ok
        } else {
            Check::Modified
        }
    }
}

/// Size and SHA-256 (hex) of a file's bytes (a symlink is followed).
pub fn digest(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = openssl::sha::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    let hex = hasher.finish().iter().map(|b| format!("{b:02x}")).collect();
    Ok((size, hex))
}

impl Manifest {
    pub fn new(files: Vec<Placed>) -> Manifest {
        Manifest {
            schema: SCHEMA.into(),
            files,
        }
    }

    /// The record as written: every path as the root of `settings` sees it.
    pub fn to_json(&self, settings: &Settings) -> String {
        let mut written = self.clone();
        for p in &mut written.files {
            p.path = in_root(&settings.sysroot, &p.path);
            p.target = p.target.as_deref().map(|t| in_root(&settings.sysroot, t));
        }
        serde_json::to_string_pretty(&written).expect("manifest serializes") + "\n"
    }

    /// A record as read from `text`, its paths made paths on this machine.
    pub fn parse(text: &str, settings: &Settings) -> Option<Manifest> {
        let mut m = serde_json::from_str::<Manifest>(text).ok()?;
        let host_paths = match m.schema.as_str() {
            SCHEMA => false,
            SCHEMA_HOST_PATHS => true,
            _ => return None,
        };
        for p in &mut m.files {
            p.path = on_host(settings, &p.path, host_paths);
            p.target = p
                .target
                .as_deref()
                .map(|t| on_host(settings, t, host_paths));
        }
        m.schema = SCHEMA.into();
        Some(m)
    }
}

/// `path` (on this machine) as the root at `sysroot` sees it.
pub fn in_root(sysroot: &Path, path: &Path) -> PathBuf {
    match path.strip_prefix(sysroot) {
        Ok(inside) => Path::new("/").join(inside),
        Err(_) => path.to_path_buf(),
    }
}

/// A recorded path on this machine. `host_paths`: the record holds the paths of the
/// machine that wrote it, whose sysroot may have been another directory: the longest
/// tail of the path that lies in this root's install or dkms tree is taken.
fn on_host(settings: &Settings, recorded: &Path, host_paths: bool) -> PathBuf {
    let root = &settings.sysroot;
    if !host_paths {
        return root.join(recorded.strip_prefix("/").unwrap_or(recorded));
    }
    if recorded.starts_with(root) {
        return recorded.to_path_buf();
    }
    let parts: Vec<_> = recorded.components().skip(1).collect();
    (0..parts.len())
        .map(|i| root.join(parts[i..].iter().collect::<PathBuf>()))
        .find(|p| p.starts_with(&settings.install_tree) || p.starts_with(&settings.dkms_tree))
        .unwrap_or_else(|| recorded.to_path_buf())
}

impl StateTree {
    /// Where the record of `<m>/<v>` on `ka` lives.
    pub fn manifest_path(&self, module: &str, version: &str, ka: &KernelArch) -> PathBuf {
        self.build_dir(module, version, ka).join(FILE_NAME)
    }

    /// The record of `<m>/<v>` on `ka`, if it has one that reads, in this machine's paths.
    pub fn manifest(
        &self,
        settings: &Settings,
        module: &str,
        version: &str,
        ka: &KernelArch,
    ) -> Option<Manifest> {
        let text = std::fs::read_to_string(self.manifest_path(module, version, ka)).ok()?;
        Manifest::parse(&text, settings)
    }
}

/// One installed module version on one kernel, and its record (None: installed by a
/// dkms that keeps none).
#[derive(Debug, Clone)]
pub struct Installed {
    pub module: String,
    pub version: String,
    pub ka: KernelArch,
    pub manifest: Option<Manifest>,
}

/// Every installed (module, version, kernel, arch), in status order, with its record.
pub fn installed(
    tree: &StateTree,
    settings: &Settings,
    module: Option<&str>,
    version: Option<&str>,
) -> Vec<Installed> {
    let mut out = Vec::new();
    for (m, v) in tree.module_versions(module, version) {
        for ka in tree.built(&m, &v, None, None) {
            if tree.is_installed(&m, &v, &ka) {
                let manifest = tree.manifest(settings, &m, &v, &ka);
                out.push(Installed {
                    module: m.clone(),
                    version: v.clone(),
                    ka,
                    manifest,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_notices_a_changed_a_missing_and_a_relinked_file() {
        let dir = tempfile::tempdir().unwrap();
        let module = dir.path().join("m.ko");
        std::fs::write(&module, b"module bytes").unwrap();
        let link = dir.path().join("l.ko");
        std::os::unix::fs::symlink(&module, &link).unwrap();
        let placed = Placed::of(&module, Kind::Module).unwrap();
        let linked = Placed::of(&link, Kind::Link).unwrap();
        assert_eq!(placed.size, 12);
        assert_eq!(
            placed.sha256,
            "5c073b6de205a83e4df87dcd07111be224ad4435a8c08ca0ba10e68dcf38fe92"
        );
        assert_eq!((placed.check(), linked.check()), (Check::Ok, Check::Ok));
        std::fs::write(&module, b"module bytez").unwrap();
        assert_eq!(placed.check(), Check::Modified);
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink("/elsewhere", &link).unwrap();
        assert_eq!(linked.check(), Check::Modified);
        std::fs::remove_file(&module).unwrap();
        assert_eq!(placed.check(), Check::Missing);
    }
}
