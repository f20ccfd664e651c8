//! A memo of built/installed module pairs found byte-identical, for `status`.
//!
//! The "(Differences between built and installed modules)" suffix needs a byte
//! comparison of every installed module with its built copy (the original runs
//! `diff -q`): tens of megabytes read on every `status` (an NVIDIA driver is ~50 MB).
//! A pair found identical is remembered in `<m>/<v>/<k>/<a>/.dkms-identical.json` with
//! both files' stamps (`crate::stamp`); while neither file changes, the comparison is
//! not repeated. Any write to either file changes its stamp, so a changed module is
//! always compared again. Differences are never memoized. Writing is best effort.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::stamp::Stamp;

pub const FILE_NAME: &str = ".dkms-identical.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pair {
    built: PathBuf,
    built_stamp: Stamp,
    installed: PathBuf,
    installed_stamp: Stamp,
}

/// The memo of one build directory.
pub struct Memo {
    path: PathBuf,
    pairs: Vec<Pair>,
    learned: bool,
}

impl Memo {
    pub fn open(build_dir: &Path) -> Memo {
        let path = build_dir.join(FILE_NAME);
        let pairs = std::fs::read(&path)
            .ok()
            .and_then(|t| serde_json::from_slice(&t).ok())
            .unwrap_or_default();
        Memo {
            path,
            pairs,
            learned: false,
        }
    }

    /// Whether `built` and `installed` have the same bytes.
    pub fn same(&mut self, built: &Path, installed: &Path) -> bool {
        let (Some(built_stamp), Some(installed_stamp)) = (Stamp::of(built), Stamp::of(installed))
        else {
            return false;
        };
        let pair = Pair {
            built: built.into(),
            built_stamp,
            installed: installed.into(),
            installed_stamp,
        };
        if self.pairs.contains(&pair) {
            return true;
        }
        if !same_contents(built, installed) {
            return false;
        }
        self.pairs
            .retain(|p| !(p.built == pair.built && p.installed == pair.installed));
        self.pairs.push(pair);
        self.learned = true;
        true
    }

    /// Write what was learned (written beside, then renamed; errors ignored).
    pub fn save(self) {
        if !self.learned {
            return;
        }
        if let Ok(text) = serde_json::to_vec(&self.pairs) {
            let _ = crate::fsutil::write_atomically(&self.path, &text, 0o644);
        }
    }
}

/// Byte comparison, sizes first.
fn same_contents(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    if ma.len() != mb.len() {
        return false;
    }
    let (Ok(mut fa), Ok(mut fb)) = (File::open(a), File::open(b)) else {
        return false;
    };
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let n = match fa.read(&mut ba) {
            Ok(n) => n,
            Err(_) => return false,
        };
        if n == 0 {
            return true;
        }
        if fb.read_exact(&mut bb[..n]).is_err() || ba[..n] != bb[..n] {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_pairs_are_remembered_until_a_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (built, installed) = (dir.path().join("m.ko"), dir.path().join("i.ko"));
        std::fs::write(&built, b"same bytes").unwrap();
        std::fs::write(&installed, b"same bytes").unwrap();
        let mut memo = Memo::open(dir.path());
        assert!(memo.same(&built, &installed));
        memo.save();
        assert!(dir.path().join(FILE_NAME).exists());

        // Same length, other bytes: the stamp changes (ctime), so it is compared again.
        std::fs::write(&installed, b"SAME BYTES").unwrap();
        let mut memo = Memo::open(dir.path());
        assert!(!memo.same(&built, &installed));
        // Differences are not remembered; restoring the bytes makes them equal again.
        std::fs::write(&installed, b"same bytes").unwrap();
        assert!(memo.same(&built, &installed));
    }
}
