//! `--rpm_safe_upgrade`: during an RPM upgrade, the new package's scriptlet runs
//! `dkms add` before the old package's runs `dkms remove` of the same version, which
//! would undo the add. With the option, `add` leaves a lock naming the upgrade
//! transaction (the process that runs both scriptlets: our parent's parent) and its start
//! time; a `remove` of the same module version from that transaction finds it, deletes
//! it, and does nothing else (exit 0).

use std::path::{Path, PathBuf};

/// `(pid, start time)` of our parent's parent, read from /proc.
fn transaction() -> Option<(u32, String)> {
    let parent = rustix::process::getppid()?.as_raw_nonzero().get() as u32;
    let pppid = ppid_of(parent)?;
    Some((pppid, start_time(pppid)?))
}

/// Field 4 of /proc/<pid>/stat (after the parenthesised command name).
fn ppid_of(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// Field 22, the start time in clock ticks since boot.
fn start_time(pid: u32) -> Option<String> {
    stat_fields(pid)?.get(19).cloned()
}

fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &text[text.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(str::to_string).collect())
}

/// `add --rpm_safe_upgrade`: leave the lock for this transaction.
pub fn leave_lock(tmp: &Path, module: &str, version: &str) {
    let Some((pid, started)) = transaction() else {
        return;
    };
    if let Ok(file) = tempfile::Builder::new()
        .prefix(&format!("dkms_rpm_safe_upgrade_lock.{pid}."))
        .rand_bytes(6)
        .tempfile_in(tmp)
    {
        if std::fs::write(file.path(), format!("{module}-{version}\n{started}\n")).is_ok() {
            let _ = file.keep();
        }
    }
}

/// `remove --rpm_safe_upgrade`: whether a lock of this transaction for this module
/// version exists (it is then deleted and the remove cancelled).
pub fn cancels_remove(tmp: &Path, module: &str, version: &str) -> bool {
    let Some((pid, started)) = transaction() else {
        return false;
    };
    let prefix = format!("dkms_rpm_safe_upgrade_lock.{pid}.");
    let locks: Vec<PathBuf> = std::fs::read_dir(tmp)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    for lock in locks {
        let text = std::fs::read_to_string(&lock).unwrap_or_default();
        let mut lines = text.lines();
        if lines.next() == Some(&format!("{module}-{version}"))
            && lines.next() == Some(started.as_str())
        {
            let _ = std::fs::remove_file(&lock);
            return true;
        }
    }
    false
}
