//! What a killed dkms leaves behind outside its journal, and its removal.
//!
//! Installs and uninstalls are journaled ([`crate::transaction`]); the state-tree
//! changes around them are single renames of staged names instead: `add` stages
//! `<m>/.<v>.adding.<pid>`, `remove` renames `<m>/<v>` to `<m>/.<v>.removing.<pid>` and
//! `<v>/<k>/<a>` to `<v>/<k>/.<a>.removing.<pid>` before deleting them, a build fills
//! `<v>/<k>/.tmp_<a>_*` (and, in a parallel run, `<v>/.build-<k>-<a>`), `add <dir>`
//! copies into `<source_tree>/.<m>-<v>.copy.<pid>`, atomic writes go through
//! `.dkms-write.*`. A kill leaves such a name behind, and the state stays what it was
//! (the rename did not happen, or did). Each of these names is journaled before it
//! exists ([`crate::transaction::Scratch`]), so the next dkms's recovery deletes it;
//! [`sweep`] is the second net, for names left by a dkms that did not journal them (ours
//! before it did). Every one of them belongs to a dkms that held the lock, so whoever
//! holds the lock now may delete them all, and the kernel and module directories they
//! leave empty.

use std::path::{Path, PathBuf};

/// Every leftover of ours in the trees.
pub fn find(dkms_tree: &Path, source_tree: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    collect(dkms_tree, &mut out, |n| n.starts_with(".dkms-write."));
    collect(source_tree, &mut out, |n| pid_tagged(n, ".copy."));
    for m in crate::fsutil::visible_entries(dkms_tree) {
        let module_dir = dkms_tree.join(&m);
        collect(&module_dir, &mut out, |n| {
            pid_tagged(n, ".removing.") || pid_tagged(n, ".adding.")
        });
        for v in crate::fsutil::visible_entries(&module_dir) {
            let version_dir = module_dir.join(&v);
            collect(&version_dir, &mut out, |n| {
                n.starts_with(".build-") || pid_tagged(n, ".source.")
            });
            collect(&version_dir.join("build"), &mut out, |n| {
                n.starts_with(".dkms-write.")
            });
            for k in crate::fsutil::visible_entries(&version_dir) {
                collect(&version_dir.join(&k), &mut out, |n| {
                    n.starts_with(".tmp_") || pid_tagged(n, ".removing.")
                });
            }
        }
    }
    out
}

/// Delete every leftover (the caller holds the lock), then the kernel directories of a
/// version and the module directories left empty. Returns how many were deleted.
pub fn sweep(dkms_tree: &Path, source_tree: &Path) -> usize {
    let found = find(dkms_tree, source_tree);
    for path in &found {
        crate::crashpoint::step("sweep leftover", path);
        let is_dir = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
        let _ = if is_dir {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        // `<v>/<k>` and `<m>` that only held the leftover go too.
        for dir in path.ancestors().skip(1).take(3) {
            if dir == dkms_tree || !dir.starts_with(dkms_tree) {
                break;
            }
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
    found.len()
}

/// `.<anything><marker><pid>`: a dot-name tagged with a process id.
fn pid_tagged(name: &str, marker: &str) -> bool {
    let Some((head, pid)) = name.rsplit_once('.') else {
        return false;
    };
    name.starts_with('.')
        && !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && format!("{head}.").contains(marker)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>, ours: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if ours(&e.file_name().to_string_lossy()) {
            out.push(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_tagged_names_are_garbage() {
        assert!(pid_tagged(".1.0.removing.123", ".removing."));
        assert!(pid_tagged(".x86_64.removing.9", ".removing."));
        assert!(pid_tagged(".foo-1.0.copy.77", ".copy."));
        assert!(!pid_tagged(".1.0.removing.", ".removing."));
        assert!(
            !pid_tagged("1.0.removing.5", ".removing."),
            "not a dot-name"
        );
        assert!(!pid_tagged(".1.0.removing.5x", ".removing."));
        assert!(!pid_tagged(".notes.copy", ".copy."));
    }

    #[test]
    fn a_sweep_deletes_leftovers_and_the_directories_they_leave_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (tree, src) = (dir.path().join("dkms"), dir.path().join("src"));
        let keep = tree.join("m/1.0/6.1.0-1-amd64/x86_64/module");
        std::fs::create_dir_all(&keep).unwrap();
        let leftovers = [
            tree.join("m/.2.0.removing.41"),
            tree.join("m/1.0/6.12.1-amd64/.x86_64.removing.41"),
            tree.join("m/1.0/.build-6.1.0-1-amd64-x86_64"),
            tree.join("m/1.0/6.1.0-1-amd64/.tmp_x86_64_abc"),
            tree.join("gone/.1.adding.7"),
            src.join(".m-1.0.copy.41"),
        ];
        for l in &leftovers {
            std::fs::create_dir_all(l.join("inside")).unwrap();
        }
        std::fs::create_dir_all(src.join("m-1.0")).unwrap();
        assert_eq!(find(&tree, &src).len(), leftovers.len());
        assert_eq!(sweep(&tree, &src), leftovers.len());
        assert!(find(&tree, &src).is_empty());
        assert!(keep.is_dir());
        assert!(
            !tree.join("m/1.0/6.12.1-amd64").exists(),
            "emptied kernel dir"
        );
        assert!(!tree.join("gone").exists(), "emptied module dir");
        assert!(src.join("m-1.0").is_dir());
    }
}
