//! Module files an uninstall set aside because they had changed since dkms installed
//! them: `<dkms_tree>/.kept/<m>/<v>/<k>/<a>/<path below the kernel's modules dir>`, each
//! with a `<file>.kept.json` record beside it.
//!
//! Why: a user who re-signs `updates/dkms/foo.ko` with their own key owns that file's
//! bytes now. Deleting it would destroy their work; leaving it where it was wedges the
//! module (the next install finds "the same version already installed" and refuses, and
//! a version-less module would be taken for the kernel's own). So it is moved here, in
//! the uninstall's transaction, the uninstall says where, and `dkms verify` lists what
//! is kept until the user deletes it. A dot-directory, so the original's globs (which
//! take every `<dkms_tree>/*` for a module) never see it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::manifest::in_root;
use super::{KernelArch, StateTree};
use crate::framework::Settings;

pub const SCHEMA: &str = "dkms-kept/1";
const DIR: &str = ".kept";
const RECORD_SUFFIX: &str = ".kept.json";

/// The record of one kept file. Paths as the root sees them, like the install records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    pub schema: String,
    /// Where the file is now.
    pub kept: PathBuf,
    /// Where dkms had installed it.
    pub from: PathBuf,
    pub module: String,
    pub version: String,
    pub kernel: String,
    pub arch: String,
    /// When it was set aside (`date -u`).
    pub time: String,
    /// The SHA-256 the install recorded, and the one the file had when set aside.
    pub installed_sha256: String,
    pub sha256: String,
}

impl StateTree {
    /// Where `file` (installed below `lib`, the kernel's modules directory) is kept: a
    /// name not taken yet (`.1`, `.2`... appended when the same file is kept again).
    pub fn kept_path(
        &self,
        module: &str,
        version: &str,
        ka: &KernelArch,
        lib: &Path,
        file: &Path,
    ) -> PathBuf {
        let below = file.strip_prefix(lib).unwrap_or(file);
        let base = self
            .root
            .join(DIR)
            .join(module)
            .join(version)
            .join(&ka.kernel)
            .join(&ka.arch)
            .join(below);
        let taken = |p: &Path| std::fs::symlink_metadata(p).is_ok();
        if !taken(&base) {
            return base;
        }
        (1..)
            .map(|n| PathBuf::from(format!("{}.{n}", base.display())))
            .find(|p| !taken(p))
            .expect("a free name")
    }

    /// Every kept file's record, in path order, paths on this machine.
    pub fn kept(&self, settings: &Settings) -> Vec<Kept> {
        let mut records = Vec::new();
        let mut stack = vec![self.root.join(DIR)];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(path);
                } else if path.to_string_lossy().ends_with(RECORD_SUFFIX) {
                    records.extend(read(&path, settings));
                }
            }
        }
        records.sort_by(|a, b| a.kept.cmp(&b.kept));
        records
    }
}

/// The record file of a kept file.
pub fn record_path(kept: &Path) -> PathBuf {
    PathBuf::from(format!("{}{RECORD_SUFFIX}", kept.display()))
}

fn read(path: &Path, settings: &Settings) -> Option<Kept> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut k: Kept = serde_json::from_str(&text).ok()?;
    if k.schema != SCHEMA {
        return None;
    }
    let on_host = |p: &Path| settings.sysroot.join(p.strip_prefix("/").unwrap_or(p));
    k.kept = on_host(&k.kept);
    k.from = on_host(&k.from);
    Some(k)
}

impl Kept {
    /// The record as written (paths as the root sees them).
    pub fn to_json(&self, settings: &Settings) -> String {
        let mut written = self.clone();
        written.kept = in_root(&settings.sysroot, &self.kept);
        written.from = in_root(&settings.sysroot, &self.from);
        serde_json::to_string_pretty(&written).expect("kept record serializes") + "\n"
    }
}
