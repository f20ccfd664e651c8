//! Failed builds, remembered per kernel: `<m>/<v>/.failed/<k>/<a>/` holds the build's
//! `make.log` and a `record.json` (when, the exit status, the first errors, the
//! fingerprint of what was built, and a diagnosis when one could be made).
//!
//! Why: the original keeps only the last failure of any kernel (`<v>/build/make.log`) and
//! forgets it at the next build, so a module that does not build for a new kernel is
//! recompiled, and fails again, at every boot, and the user is never told more than "bad
//! return status". Here the failure stays visible (`dkms status`, `--json`) until a build
//! for that kernel succeeds or the version is removed, and autoinstall does not retry it
//! while its fingerprint is unchanged. A dot-name, so the original's globs never take it
//! for a kernel, and the original's `remove` deletes it with the version.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fingerprint::Fingerprint;
use super::{KernelArch, StateTree};

pub const SCHEMA: &str = "dkms-failed/1";
const DIR: &str = ".failed";
const RECORD: &str = "record.json";

/// One kernel's failed build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub schema: String,
    pub module: String,
    pub version: String,
    pub kernel: String,
    pub arch: String,
    /// When it failed (`date -u`).
    pub time: String,
    /// The exit status dkms gave (10 for make, 7 for a missing module...).
    pub exit_code: i32,
    /// The kept make.log.
    pub log: PathBuf,
    /// The first compiler error in the module's own source (`file:line:col: error: ...`,
    /// the file relative to the build directory), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// The first error lines of the log (the compiler's `file:line: error: ...`).
    pub errors: Vec<String>,
    /// What the failing symbol looks like in this kernel's headers and where it built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<String>,
    pub fingerprint: Option<Fingerprint>,
}

impl StateTree {
    /// `<m>/<v>/.failed/<k>/<a>`.
    pub fn failed_dir(&self, module: &str, version: &str, ka: &KernelArch) -> PathBuf {
        self.version_dir(module, version)
            .join(DIR)
            .join(&ka.kernel)
            .join(&ka.arch)
    }

    /// The failure recorded for `m/v` on `ka`, if any.
    pub fn failure(&self, module: &str, version: &str, ka: &KernelArch) -> Option<Failure> {
        let text =
            std::fs::read_to_string(self.failed_dir(module, version, ka).join(RECORD)).ok()?;
        serde_json::from_str::<Failure>(&text)
            .ok()
            .filter(|f| f.schema == SCHEMA)
    }

    /// Every recorded failure, by module, version, kernel and arch.
    pub fn failures(&self, module: Option<&str>, version: Option<&str>) -> Vec<Failure> {
        let mut out = Vec::new();
        for (m, v) in self.module_versions(module, version) {
            let dir = self.version_dir(&m, &v).join(DIR);
            for k in crate::fsutil::visible_entries(&dir) {
                for a in crate::fsutil::visible_entries(&dir.join(&k)) {
                    let ka = KernelArch {
                        kernel: k.clone(),
                        arch: a,
                    };
                    out.extend(self.failure(&m, &v, &ka));
                }
            }
        }
        out
    }

    /// Keep `failure` (its log already copied to `failure.log`); best effort.
    pub fn record_failure(&self, failure: &Failure) -> std::io::Result<()> {
        let ka = KernelArch {
            kernel: failure.kernel.clone(),
            arch: failure.arch.clone(),
        };
        let dir = self.failed_dir(&failure.module, &failure.version, &ka);
        std::fs::create_dir_all(&dir)?;
        let text = serde_json::to_string_pretty(failure).expect("failure serializes") + "\n";
        crate::fsutil::write_atomically(&dir.join(RECORD), text.as_bytes(), 0o644)
    }

    /// A build for `ka` succeeded: what was kept of an earlier failure there goes.
    pub fn forget_failure(&self, module: &str, version: &str, ka: &KernelArch) {
        let dir = self.failed_dir(module, version, ka);
        if std::fs::symlink_metadata(&dir).is_err() {
            return;
        }
        let _ = std::fs::remove_dir_all(&dir);
        prune(&dir);
    }
}

/// Remove the empty `<k>` and `.failed` directories above a removed `<a>`.
fn prune(dir: &Path) {
    for parent in dir.ancestors().skip(1).take(2) {
        if std::fs::remove_dir(parent).is_err() {
            break;
        }
    }
}
