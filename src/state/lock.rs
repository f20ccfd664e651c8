//! One global lock for everything that changes the system.
//!
//! Two `dkms` processes started at once (two kernel hooks racing, a package install
//! during an autoinstall) must not interleave their changes. Writers take an exclusive
//! `flock` on `<dkms_tree>/.lock` (a dot-file, invisible to the original); a second
//! writer says which process holds it and waits. The kernel drops the lock when the
//! holder dies, so a killed `dkms` never leaves it stuck.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use super::{io_err, StateError};

/// Held while the value lives.
#[derive(Debug)]
pub struct Lock {
    _file: File,
    pub path: PathBuf,
}

/// Take the lock only if nobody holds it (`None` otherwise, or if it cannot be opened).
pub fn try_acquire(dkms_tree: &Path) -> Option<Lock> {
    let path = dkms_tree.join(".lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .ok()?;
    flock(&file, FlockOperation::NonBlockingLockExclusive).ok()?;
    Some(Lock { _file: file, path })
}

/// Take the lock, calling `on_wait(holder_pid)` once if another process holds it.
pub fn acquire(dkms_tree: &Path, on_wait: impl FnOnce(Option<u32>)) -> Result<Lock, StateError> {
    std::fs::create_dir_all(dkms_tree).map_err(io_err("create", dkms_tree))?;
    let path = dkms_tree.join(".lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err("open", &path))?;
    if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        on_wait(text.trim().parse().ok());
        flock(&file, FlockOperation::LockExclusive).map_err(|e| io_err("lock", &path)(e.into()))?;
    }
    file.set_len(0).map_err(io_err("write", &path))?;
    file.rewind().map_err(io_err("write", &path))?;
    writeln!(file, "{}", std::process::id()).map_err(io_err("write", &path))?;
    Ok(Lock { _file: file, path })
}
