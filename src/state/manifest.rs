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

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{KernelArch, StateTree};

/// The record's schema name, bumped only when a field changes meaning.
pub const SCHEMA: &str = "dkms-files/1";
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

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest serializes") + "\n"
    }
}

impl StateTree {
    /// Where the record of `<m>/<v>` on `ka` lives.
    pub fn manifest_path(&self, module: &str, version: &str, ka: &KernelArch) -> PathBuf {
        self.build_dir(module, version, ka).join(FILE_NAME)
    }

    /// The record of `<m>/<v>` on `ka`, if it has one that reads.
    pub fn manifest(&self, module: &str, version: &str, ka: &KernelArch) -> Option<Manifest> {
        let text = std::fs::read_to_string(self.manifest_path(module, version, ka)).ok()?;
        serde_json::from_str::<Manifest>(&text)
            .ok()
            .filter(|m| m.schema == SCHEMA)
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
pub fn installed(tree: &StateTree, module: Option<&str>, version: Option<&str>) -> Vec<Installed> {
    let mut out = Vec::new();
    for (m, v) in tree.module_versions(module, version) {
        for ka in tree.built(&m, &v, None, None) {
            if tree.is_installed(&m, &v, &ka) {
                let manifest = tree.manifest(&m, &v, &ka);
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
