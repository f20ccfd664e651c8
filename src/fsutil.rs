//! Small filesystem helpers shared by the actions, and the one I/O error every layer
//! reports a failed file operation with.

use std::path::{Path, PathBuf};

/// A file operation that failed: what was done, to which path, and the system's reason.
#[derive(Debug, thiserror::Error)]
#[error("Cannot {action} {path}: {source}")]
pub struct IoError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// `.map_err(io_error("read", &path))`: the one way a failed file operation gets its
/// action and path.
pub fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IoError {
    let path = path.to_path_buf();
    move |source| IoError {
        action,
        path,
        source,
    }
}

/// Recursive copy keeping symlinks as symlinks and permission bits (`cp -pr`).
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    std::fs::set_permissions(to, std::fs::metadata(from)?.permissions())?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let ty = entry.file_type()?;
        crate::crashpoint::step("copy", &dst);
        if ty.is_symlink() {
            let _ = std::fs::remove_file(&dst);
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if ty.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// Write `bytes` to `path` atomically: a temporary file beside it, with `mode`, synced,
/// then renamed over `path`. Readers see the old file or the whole new one.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".dkms-write.")
        .tempfile_in(dir)?;
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    crate::crashpoint::step("rename written file", path);
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// `path` made absolute, through the real directory holding it: `/lib/modules/x` and
/// `/usr/lib/modules/x` compare equal on a merged-/usr system. The last component is
/// kept, so a link is named, not followed; a path whose directory does not exist stays
/// as it is.
pub fn through_real_dir(path: &Path) -> PathBuf {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or(path),
        _ => path,
    }
}

/// The path from directory `from` to `to`, both absolute and without `..`: what a
/// relative symlink in `from` holds to point at `to`.
pub fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let (a, b): (Vec<_>, Vec<_>) = (from.components().collect(), to.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c);
    }
    out
}

/// Why `name` cannot be a module, version, kernel or arch name (each is a path component
/// of the trees, and a word of make's command line), if it cannot.
pub fn name_flaw(name: &str) -> Option<&'static str> {
    if name.contains('/') {
        Some("contains '/'")
    } else if name.chars().any(char::is_whitespace) {
        Some("contains white space")
    } else if name.starts_with('.') {
        Some("starts with '.'")
    } else if name.contains('\0') {
        Some("contains a NUL byte")
    } else {
        None
    }
}

/// `name` with what [`name_flaw`] refuses replaced by `-` (a suggestion for the fix).
pub fn name_fixed(name: &str) -> String {
    let fixed: String = name
        .chars()
        .map(|c| {
            if c == '/' || c.is_whitespace() || c == '\0' {
                '-'
            } else {
                c
            }
        })
        .collect();
    fixed.trim_start_matches('.').to_string()
}

/// Directory entries not starting with `.`, as names (unsorted callers sort).
pub fn visible_entries(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| !n.as_encoded_bytes().starts_with(b"."))
        .map(|n: std::ffi::OsString| std::ffi::OsStr::to_string_lossy(&n).into_owned())
        .collect();
    names.sort();
    names
}

/// The file of a built or installed module: `<dir>/<name>.ko`, else with a compression
/// suffix (the original tries the uncompressed name first).
pub fn module_file(dir: &Path, name: &str) -> Option<PathBuf> {
    ["", ".zst", ".xz", ".gz"]
        .iter()
        .map(|ext| dir.join(format!("{name}.ko{ext}")))
        .find(|p| p.exists())
}

#[cfg(test)]
mod tests {
    #[test]
    fn relative_paths_climb_to_the_common_directory() {
        use std::path::Path;
        assert_eq!(
            super::relative_path(
                Path::new("/img/var/lib/dkms/m/1.0"),
                Path::new("/img/usr/src/m-1.0")
            ),
            Path::new("../../../../../usr/src/m-1.0")
        );
        assert_eq!(
            super::relative_path(Path::new("/a/b"), Path::new("/a/b/c")),
            Path::new("c")
        );
    }
}
