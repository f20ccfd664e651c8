//! A cache of dkms.conf evaluations for `status`.
//!
//! Files with shell logic must be evaluated by bash, and some run commands of their own
//! (lttng-modules runs `sed` three times): about 10 ms per kernel, every time. `status`
//! only needs the module names from them, and they only change when an input changes, so
//! the result of a bash evaluation is kept beside the build it describes
//! (`<m>/<v>/<k>/<a>/.dkms-conf-cache.json`, a dot-file the original never reads and
//! deletes together with the build).
//!
//! An entry is used only if its key is equal: the exact variables in scope (kernel,
//! arch, trees, distribution, ...) and the stamps (inode, size, mtime, ctime: `crate::stamp`) of every file
//! the original would source or the conf commonly reads (dkms.conf, each `/etc/dkms`
//! override path, present or not, and the kernel config). Builds never use the cache:
//! `add`, `build` and `install` always evaluate afresh. Writing is best effort (a user
//! without write access simply evaluates every time).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::eval::{RawValues, Scope};
use crate::stamp::Stamp;

/// Bump when the meaning of cached values changes.
const FORMAT: u32 = 2;

pub const FILE_NAME: &str = ".dkms-conf-cache.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key {
    format: u32,
    scope: Vec<(String, String)>,
    inputs: Vec<(PathBuf, Option<Stamp>)>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    key: Key,
    values: RawValues,
}

/// The key for evaluating `inputs` (every candidate file, present or not) in `scope`.
pub fn key(scope: &Scope, inputs: &[PathBuf]) -> Key {
    Key {
        format: FORMAT,
        scope: scope.vars.clone(),
        inputs: inputs.iter().map(|p| (p.clone(), Stamp::of(p))).collect(),
    }
}

/// The cached values for `key`, if the entry at `path` was made with the same key.
pub fn load(path: &Path, key: &Key) -> Option<RawValues> {
    let text = std::fs::read(path).ok()?;
    let entry: Entry = serde_json::from_slice(&text).ok()?;
    (entry.key == *key).then_some(entry.values)
}

/// Store `values` under `key` at `path` (written beside it, then renamed); errors are
/// ignored, the cache is only an optimisation.
pub fn store(path: &Path, key: Key, values: &RawValues) {
    if !path.parent().is_some_and(Path::is_dir) {
        return;
    }
    if let Ok(text) = serde_json::to_vec(&Entry {
        key,
        values: values.clone(),
    }) {
        // Readable by everyone, like the rest of the tree, so a user's `status` can use it.
        let _ = crate::fsutil::write_atomically(path, &text, 0o644);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_used_only_with_an_equal_key() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("dkms.conf");
        let absent = dir.path().join("override.conf");
        std::fs::write(&conf, "PACKAGE_NAME=a\n").unwrap();
        let mut scope = Scope::default();
        scope.set("kernelver", "6.1.0-1-amd64");
        let inputs = vec![conf.clone(), absent.clone()];
        let cache = dir.path().join(FILE_NAME);
        let mut values = RawValues::default();
        values
            .vars
            .entry("PACKAGE_NAME".into())
            .or_default()
            .insert(0, "a".into());

        store(&cache, key(&scope, &inputs), &values);
        assert_eq!(load(&cache, &key(&scope, &inputs)), Some(values.clone()));

        // Another kernel in scope: miss.
        let mut other = Scope::default();
        other.set("kernelver", "6.12.1-amd64");
        assert_eq!(load(&cache, &key(&other, &inputs)), None);
        // An override file appears: miss.
        std::fs::write(&absent, "X=1\n").unwrap();
        assert_eq!(load(&cache, &key(&scope, &inputs)), None);
        std::fs::remove_file(&absent).unwrap();
        // The conf is rewritten (new inode, size): miss.
        std::fs::remove_file(&conf).unwrap();
        std::fs::write(&conf, "PACKAGE_NAME=bb\n").unwrap();
        assert_eq!(load(&cache, &key(&scope, &inputs)), None);
    }
}
