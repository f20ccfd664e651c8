//! File stamps: what changes whenever a file's contents may have changed.
//!
//! Inode, size, mtime and ctime together: replacing a file changes the inode, writing
//! it changes mtime and ctime, and ctime cannot be set back by `touch`. The status caches
//! (`conf::cache`, the identical-module memo in `state::status`) trust an earlier result
//! only while every stamp it depended on is unchanged.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    /// The stamp of `path` (following symlinks), or `None` if it does not exist.
    pub fn of(path: &Path) -> Option<Stamp> {
        let m = std::fs::metadata(path).ok()?;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Some(Stamp {
            ino: m.ino(),
            size: m.size(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        })
    }
}
