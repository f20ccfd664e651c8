//! One global lock for everything that changes the system.
//!
//! Two `dkms` processes started at once (two kernel hooks racing, a package install
//! during an autoinstall) must not interleave their changes. Writers take an exclusive
//! `flock` on `<dkms_tree>/.lock` (a dot-file, invisible to the original); a second
//! writer says which process holds it and waits. The kernel drops the lock when the
//! holder dies, so a killed `dkms` never leaves it stuck, and the kernel is also who we
//! ask for the holder (`/proc/locks`): a pid written into the file could be stale.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use super::StateError;
use crate::fsutil::io_error;

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
    std::fs::create_dir_all(dkms_tree).map_err(io_error("create", dkms_tree))?;
    let path = dkms_tree.join(".lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error("open", &path))?;
    // The holder the kernel lists can be gone by the time we ask (it just released the
    // lock): then try again rather than name nobody. Without /proc, say "another".
    for attempt in 0.. {
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
            return Ok(Lock { _file: file, path });
        }
        let who = holder(&file);
        if who.is_some() || attempt == 3 {
            on_wait(who);
            break;
        }
    }
    flock(&file, FlockOperation::LockExclusive).map_err(|e| io_error("lock", &path)(e.into()))?;
    Ok(Lock { _file: file, path })
}

/// The process holding the `flock` on `file`, as the kernel lists it in `/proc/locks`
/// (`N: FLOCK ADVISORY WRITE <pid> <major>:<minor>:<inode> 0 EOF`; waiters are the
/// lines marked `->`). `None` without /proc or if the lock was just released.
fn holder(file: &File) -> Option<u32> {
    let stat = rustix::fs::fstat(file).ok()?;
    let (major, minor) = (
        rustix::fs::major(stat.st_dev),
        rustix::fs::minor(stat.st_dev),
    );
    let id = format!("{major:02x}:{minor:02x}:{}", stat.st_ino);
    let table = std::fs::read_to_string("/proc/locks").ok()?;
    holder_in(&table, &id)
}

fn holder_in(table: &str, id: &str) -> Option<u32> {
    table.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [_, "FLOCK", _, _, pid, file, ..] if *file == id => pid.parse().ok(),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_the_process_the_kernel_names() {
        let table = "1: POSIX  ADVISORY  WRITE 10 fe:00:77 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4242 fe:00:99 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 5151 fe:00:99 0 EOF\n";
        assert_eq!(holder_in(table, "fe:00:99"), Some(4242));
        assert_eq!(
            holder_in(table, "fe:00:77"),
            None,
            "a POSIX lock is not ours"
        );
        assert_eq!(holder_in(table, "fe:00:12"), None);
    }

    #[test]
    fn a_real_holder_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let _held = acquire(dir.path(), |_| {}).unwrap();
        let other = File::open(dir.path().join(".lock")).unwrap();
        assert_eq!(holder(&other), Some(std::process::id()));
    }
}
