//! Small filesystem helpers shared by the actions.

use std::path::{Path, PathBuf};

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
