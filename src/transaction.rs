//! Reversible, crash-safe changes to the module and state trees.
//!
//! Every change an install or uninstall makes goes through a [`Transaction`]:
//! * a new file is written beside its destination (`.<name>.dkms-new.<pid>`) and renamed
//!   into place; a file it replaces is first renamed to `.<name>.dkms-old.<pid>`;
//! * moves (archiving an original module) are renames; new files and directories are
//!   recorded so they can be removed.
//!
//! Before each step, its intent is appended to a journal (`<dkms_tree>/.journal`, one
//! JSON line, fsynced). A failure undoes the steps in reverse order. A *kill* leaves
//! the journal behind: the next dkms that takes the lock calls [`recover`], which undoes
//! the steps the same way (every undo is idempotent: it checks what is on disk), so the
//! machine is back to the previous working module. [`Transaction::commit`] first writes
//! a commit mark, then deletes the backups; a kill during that is finished by
//! [`recover`] instead of being undone. The journal is a dot-file: the original never
//! reads it.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::crashpoint::step;

/// A failed step of a transaction.
pub type TxError = crate::fsutil::IoError;
pub(crate) use crate::fsutil::io_error as err;

/// Journals are `<dkms_tree>/.journal.<pid>.<n>`: one per transaction, so the builds
/// of a parallel autoinstall can commit independently.
const JOURNAL: &str = ".journal";

/// Whether an interrupted transaction left a journal in `dkms_tree`.
pub fn pending(dkms_tree: &Path) -> bool {
    journals(dkms_tree).next().is_some()
}

fn journals(dkms_tree: &Path) -> impl Iterator<Item = PathBuf> {
    std::fs::read_dir(dkms_tree)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(JOURNAL))
        .map(|e| e.path())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Step {
    /// `staged` is renamed to `path`; what was at `path` goes to `backup` first.
    Placed {
        path: PathBuf,
        staged: PathBuf,
        backup: Option<PathBuf>,
    },
    /// `from` is renamed to `to`.
    Moved { from: PathBuf, to: PathBuf },
    /// A file or directory that did not exist is created.
    Created(PathBuf),
    /// A temporary name (staging, or renamed away before deletion) that must not outlive
    /// its owner: undoing or finishing deletes it.
    Leftover(PathBuf),
    /// Once committed, `dir` and its parents below `stop` are removed while empty.
    PruneEmpty { dir: PathBuf, stop: PathBuf },
    /// Everything before this line is kept.
    Commit,
}

impl Step {
    /// Put things back as they were before this step; safe to repeat, and correct for
    /// a step interrupted at any point.
    fn undo(&self) {
        match self {
            Step::Placed {
                path,
                staged,
                backup,
            } => {
                step("undo: unlink", staged);
                let _ = std::fs::remove_file(staged);
                match backup {
                    Some(b) if std::fs::symlink_metadata(b).is_ok() => {
                        step("undo: rename back", path);
                        let _ = std::fs::rename(b, path);
                    }
                    Some(_) => {} // never moved aside: the old file is still in place
                    None => {
                        step("undo: unlink", path);
                        let _ = std::fs::remove_file(path);
                    }
                }
            }
            Step::Moved { from, to } => {
                if std::fs::symlink_metadata(to).is_ok() && std::fs::symlink_metadata(from).is_err()
                {
                    step("undo: rename back", from);
                    let _ = std::fs::rename(to, from);
                }
            }
            Step::Created(p) => {
                step("undo: remove created", p);
                let _ = if p.is_dir() && !p.is_symlink() {
                    std::fs::remove_dir(p)
                } else {
                    std::fs::remove_file(p)
                };
            }
            Step::Leftover(p) => remove_any(p),
            Step::PruneEmpty { .. } | Step::Commit => {}
        }
    }

    /// Delete what a committed step kept only for undoing.
    fn finish(&self) {
        match self {
            Step::Placed {
                backup: Some(b), ..
            } => {
                step("finish: unlink backup", b);
                let _ = std::fs::remove_file(b);
            }
            Step::Moved { to, .. } if is_backup(to) => {
                step("finish: unlink backup", to);
                let _ = std::fs::remove_file(to);
            }
            Step::Leftover(p) => remove_any(p),
            Step::PruneEmpty { dir, stop } => {
                let mut d = dir.as_path();
                while d.starts_with(stop) && d != stop {
                    step("prune empty dir", d);
                    match std::fs::remove_dir(d) {
                        // Already gone: a recovery repeating an interrupted finish.
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => break,
                        _ => {}
                    }
                    let Some(parent) = d.parent() else { break };
                    d = parent;
                }
            }
            _ => {}
        }
    }
}

/// Delete a file, link or whole directory, if it is there.
fn remove_any(p: &Path) {
    step("remove scratch", p);
    let _ = match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(_) => Ok(()),
    };
}

/// A temporary name outside any install transaction (a staging directory, a directory
/// renamed away before it is deleted): journaled before it exists, so that if the
/// process dies the next dkms deletes it. Dropping the guard deletes it too (when it is
/// still there: a staged name renamed into place is not) and forgets the journal.
pub struct Scratch {
    path: PathBuf,
    journal: PathBuf,
}

impl Scratch {
    pub fn new(dkms_tree: &Path, path: &Path) -> Result<Scratch, TxError> {
        let mut tx = Transaction::begin(dkms_tree)?;
        tx.record(Step::Leftover(path.into()))?;
        remove_any(path); // a dead process's, under a reused pid
        Ok(Scratch {
            path: path.into(),
            journal: tx.journal_path,
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        remove_any(&self.path);
        step("unlink journal", &self.journal);
        let _ = std::fs::remove_file(&self.journal);
    }
}

fn is_backup(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().contains(".dkms-old."))
}

fn sibling(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.dkms-{tag}.{}", std::process::id()))
}

/// A set of changes that is either kept whole or undone whole.
pub struct Transaction {
    steps: Vec<Step>,
    journal_path: PathBuf,
    journal: File,
}

impl Transaction {
    /// Start a transaction journaled in `dkms_tree` (the caller holds the lock).
    pub fn begin(dkms_tree: &Path) -> Result<Transaction, TxError> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let journal_path = dkms_tree.join(format!("{JOURNAL}.{}.{n}", std::process::id()));
        step("create journal", &journal_path);
        let journal = File::create(&journal_path).map_err(err("create", &journal_path))?;
        Ok(Transaction {
            steps: Vec::new(),
            journal_path,
            journal,
        })
    }

    fn record(&mut self, entry: Step) -> Result<(), TxError> {
        let mut line = serde_json::to_string(&entry).expect("steps serialize");
        line.push('\n');
        step("journal record", &self.journal_path);
        self.journal
            .write_all(line.as_bytes())
            .map_err(err("write", &self.journal_path))?;
        step("fsync journal", &self.journal_path);
        self.journal
            .sync_data()
            .map_err(err("write", &self.journal_path))?;
        self.steps.push(entry);
        Ok(())
    }

    /// Put `src`'s bytes (or a symlink to `src`) at `dest`, atomically. The step is
    /// journaled before its staged file exists, so a kill at any point is undone.
    pub fn place_file(&mut self, src: &Path, dest: &Path, symlink: bool) -> Result<(), TxError> {
        self.place_with(dest, |staged| {
            if symlink {
                return std::os::unix::fs::symlink(src, staged);
            }
            std::fs::copy(src, staged)?;
            step("fsync staged", staged);
            std::fs::set_permissions(staged, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
            File::open(staged)?.sync_all()
        })
    }

    /// Put `text` at `dest` (replacing what is there), atomically.
    pub fn place_text(&mut self, dest: &Path, text: &str) -> Result<(), TxError> {
        self.place_with(dest, |staged| {
            std::fs::write(staged, text)?;
            File::open(staged)?.sync_all()
        })
    }

    /// Stage `dest` (journaled first), let `write` make the staged file, rename it in.
    fn place_with(
        &mut self,
        dest: &Path,
        write: impl FnOnce(&Path) -> std::io::Result<()>,
    ) -> Result<(), TxError> {
        let staged = self.stage(dest)?;
        step("write staged", &staged);
        if let Err(e) = write(&staged) {
            let _ = std::fs::remove_file(&staged);
            return Err(err("write", &staged)(e));
        }
        self.commit_staged(&staged, dest)
    }

    /// Make `dest` a symlink to `target`, atomically.
    pub fn place_symlink(&mut self, target: &Path, dest: &Path) -> Result<(), TxError> {
        let staged = self.stage(dest)?;
        step("symlink staged", &staged);
        std::os::unix::fs::symlink(target, &staged).map_err(err("create link", &staged))?;
        self.commit_staged(&staged, dest)
    }

    /// Journal the placing of `dest` (its staged name, and the backup of what is there
    /// now), before anything is written; returns the staged name, free.
    fn stage(&mut self, dest: &Path) -> Result<PathBuf, TxError> {
        let staged = sibling(dest, "new");
        let backup = std::fs::symlink_metadata(dest)
            .is_ok()
            .then(|| sibling(dest, "old"));
        self.record(Step::Placed {
            path: dest.into(),
            staged: staged.clone(),
            backup,
        })?;
        step("unlink stale staged", &staged);
        let _ = std::fs::remove_file(&staged);
        Ok(staged)
    }

    /// Move what is at `dest` aside (as journaled by [`Self::stage`]) and rename `staged` in.
    fn commit_staged(&mut self, staged: &Path, dest: &Path) -> Result<(), TxError> {
        if let Some(Step::Placed {
            backup: Some(b), ..
        }) = self.steps.last()
        {
            step("rename aside", dest);
            std::fs::rename(dest, b).map_err(err("move aside", dest))?;
        }
        step("rename into place", dest);
        std::fs::rename(staged, dest).map_err(err("rename into", dest))
    }

    /// Move `from` to `to`: a rename, or across filesystems (the module tree and the
    /// state tree may be on different ones) a copy placed at `to` and the removal of
    /// `from` — two steps, each undone on rollback.
    pub fn move_file(&mut self, from: &Path, to: &Path) -> Result<(), TxError> {
        let device = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
                .ok()
        };
        let same_fs = match (device(from), to.parent().and_then(device)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        if !same_fs {
            self.place_file(from, to, false)?;
            return self.remove(from);
        }
        self.record(Step::Moved {
            from: from.into(),
            to: to.into(),
        })?;
        step("rename (move)", from);
        std::fs::rename(from, to).map_err(err("move", from))
    }

    /// Delete `path` (kept as a backup beside it, on its filesystem, until commit).
    pub fn remove(&mut self, path: &Path) -> Result<(), TxError> {
        let backup = sibling(path, "old");
        self.record(Step::Moved {
            from: path.into(),
            to: backup.clone(),
        })?;
        step("rename aside (remove)", path);
        std::fs::rename(path, &backup).map_err(err("remove", path))
    }

    /// Write a small file that does not exist yet.
    pub fn write_new(&mut self, path: &Path, text: &str) -> Result<(), TxError> {
        self.record(Step::Created(path.into()))?;
        step("write new", path);
        std::fs::write(path, text).map_err(err("write", path))
    }

    /// Create `dir` and its missing parents. A directory another build of this run
    /// creates at the same moment is simply used.
    pub fn create_dirs(&mut self, dir: &Path) -> Result<(), TxError> {
        let mut missing = Vec::new();
        let mut d = dir.to_path_buf();
        while std::fs::symlink_metadata(&d).is_err() {
            missing.push(d.clone());
            if !d.pop() {
                break;
            }
        }
        for d in missing.into_iter().rev() {
            // Journaled first; undoing removes it only while it is empty, so a directory
            // another build of this run filled meanwhile stays.
            self.record(Step::Created(d.clone()))?;
            step("mkdir", &d);
            match std::fs::create_dir(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => {}
                Err(e) => return Err(err("create", &d)(e)),
            }
        }
        Ok(())
    }

    /// After the commit, remove `dir` and its parents below `stop` while they are empty
    /// (a kill after the commit leaves this to recovery, like the rest of the commit).
    pub fn prune_on_commit(&mut self, dir: &Path, stop: &Path) -> Result<(), TxError> {
        self.record(Step::PruneEmpty {
            dir: dir.into(),
            stop: stop.into(),
        })
    }

    /// Undo every step, newest first.
    pub fn rollback(self) {
        for step in self.steps.iter().rev() {
            step.undo();
        }
        step("unlink journal", &self.journal_path);
        let _ = std::fs::remove_file(&self.journal_path);
    }

    /// Keep the changes: mark the journal committed, then delete the backups.
    pub fn commit(mut self) -> Result<(), TxError> {
        self.record(Step::Commit)?;
        for step in &self.steps {
            step.finish();
        }
        step("unlink journal", &self.journal_path);
        std::fs::remove_file(&self.journal_path).map_err(err("remove", &self.journal_path))
    }
}

/// What [`recover`] did.
#[derive(Debug, PartialEq)]
pub enum Recovery {
    Nothing,
    RolledBack(usize),
    Completed(usize),
}

/// Finish the business of every dkms transaction that was killed: undo its steps, or
/// complete its commit if it had committed. The caller holds the lock.
pub fn recover(dkms_tree: &Path) -> Recovery {
    let mut outcome = Recovery::Nothing;
    let mut found: Vec<PathBuf> = journals(dkms_tree).collect();
    found.sort();
    for path in found {
        outcome = match (recover_one(&path), outcome) {
            (Recovery::RolledBack(a), Recovery::RolledBack(b)) => Recovery::RolledBack(a + b),
            (Recovery::Completed(a), Recovery::Completed(b)) => Recovery::Completed(a + b),
            (new, Recovery::Nothing) => new,
            (_, previous) => previous,
        };
    }
    outcome
}

fn recover_one(path: &Path) -> Recovery {
    let Ok(file) = File::open(path) else {
        return Recovery::Nothing;
    };
    // A line cut short by the kill was never acted upon: it is ignored.
    let steps: Vec<Step> = std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    let committed = steps.iter().any(|s| matches!(s, Step::Commit));
    let outcome = if committed {
        steps.iter().for_each(Step::finish);
        Recovery::Completed(steps.len() - 1)
    } else {
        steps.iter().rev().for_each(Step::undo);
        Recovery::RolledBack(steps.len())
    };
    step("truncate journal", path);
    let _ = OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(0));
    step("unlink journal", path);
    let _ = std::fs::remove_file(path);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        let src = dir.path().join("new.ko");
        std::fs::write(&src, "new").unwrap();
        (dir, tree, src)
    }

    #[test]
    fn rollback_restores_replaced_and_removes_created() {
        let (dir, tree, src) = setup();
        let dest = dir.path().join("lib/updates/m.ko");
        let old = dir.path().join("lib/old.ko");
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        std::fs::write(&old, "old").unwrap();
        let mut tx = Transaction::begin(&tree).unwrap();
        tx.create_dirs(dest.parent().unwrap()).unwrap();
        tx.place_file(&src, &dest, false).unwrap();
        tx.place_file(&src, &old, false).unwrap();
        tx.rollback();
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "old");
        assert!(!dir.path().join("lib/updates").exists());
        assert!(!pending(&tree));
        assert_eq!(
            std::fs::read_dir(dir.path().join("lib")).unwrap().count(),
            1,
            "no stray files"
        );
    }

    #[test]
    fn a_killed_transaction_is_undone_by_recover() {
        let (dir, tree, src) = setup();
        let old = dir.path().join("m.ko");
        std::fs::write(&old, "old").unwrap();
        let mut tx = Transaction::begin(&tree).unwrap();
        tx.place_file(&src, &old, false).unwrap();
        std::mem::forget(tx); // killed: no rollback, no commit
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "new");
        assert_eq!(recover(&tree), Recovery::RolledBack(1));
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "old");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            3,
            "tree, new.ko, m.ko only"
        );
        assert_eq!(recover(&tree), Recovery::Nothing);
    }

    #[test]
    fn a_step_interrupted_after_moving_aside_is_undone() {
        let (dir, tree, _) = setup();
        let dest = dir.path().join("m.ko");
        std::fs::write(&dest, "old").unwrap();
        // The journal says a file was being placed; the kill came after the old file was
        // moved aside and before the new one was renamed in.
        let backup = sibling(&dest, "old");
        std::fs::rename(&dest, &backup).unwrap();
        let step = Step::Placed {
            path: dest.clone(),
            staged: sibling(&dest, "new"),
            backup: Some(backup),
        };
        std::fs::write(
            tree.join(JOURNAL),
            serde_json::to_string(&step).unwrap() + "\n{\"Moved\":{\"fr",
        )
        .unwrap();
        assert_eq!(recover(&tree), Recovery::RolledBack(1));
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "old");
    }

    #[test]
    fn a_kill_during_commit_is_completed() {
        let (dir, tree, src) = setup();
        let dest = dir.path().join("m.ko");
        std::fs::write(&dest, "old").unwrap();
        let mut tx = Transaction::begin(&tree).unwrap();
        tx.place_file(&src, &dest, false).unwrap();
        tx.record(Step::Commit).unwrap();
        std::mem::forget(tx); // killed before the backups were deleted
        assert_eq!(recover(&tree), Recovery::Completed(1));
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "new");
        assert!(!sibling(&dest, "old").exists());
    }
}
