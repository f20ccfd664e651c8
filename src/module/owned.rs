//! Files a package owns: dkms never overwrites or deletes them.
//!
//! Why: a prebuilt module package (`dkms mkbmdeb`, `mkbmpkg`) puts modules exactly where
//! dkms would, and registers them in the dkms tree. A later `dkms install` or `uninstall`
//! of the same module must not take the package manager's files from under it: the
//! package manager would then report, reinstall or delete the wrong file. So before it
//! replaces or deletes module files, dkms asks the package managers of the root it works
//! on (dpkg's, pacman's and rpm's databases under the sysroot, when they exist), and
//! refuses with the owning package's name.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fsutil::through_real_dir;

/// The package manager whose database names a file's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    Dpkg,
    Pacman,
    Rpm,
}

impl Manager {
    /// How a user removes one of its packages, for messages.
    pub fn remove_command(self) -> &'static str {
        match self {
            Manager::Dpkg => "apt remove",
            Manager::Pacman => "pacman -R",
            Manager::Rpm => "dnf remove",
        }
    }
}

/// A file some package owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub path: PathBuf,
    pub package: String,
    pub manager: Manager,
}

/// The owner of each of `paths` that some package owns.
pub fn owners(sysroot: &Path, paths: &[PathBuf]) -> Vec<Owned> {
    if paths.is_empty() {
        return Vec::new();
    }
    let inside =
        |p: &PathBuf| -> PathBuf { Path::new("/").join(p.strip_prefix(sysroot).unwrap_or(p)) };
    let asked: Vec<PathBuf> = paths.iter().map(inside).collect();
    let tag = |m: Manager| move |(path, package): (PathBuf, String)| (path, package, m);
    let mut found = Vec::new();
    // dpkg's database lists paths inside the root; pacman takes real paths and `--root`
    // (and may answer with the path resolved through a /lib -> usr/lib link).
    for (path, package, manager) in dpkg_owners(sysroot, &asked)
        .into_iter()
        .map(tag(Manager::Dpkg))
        .chain(
            pacman_owners(sysroot, paths)
                .into_iter()
                .map(tag(Manager::Pacman)),
        )
        .chain(
            rpm_owners(sysroot, &asked)
                .into_iter()
                .map(tag(Manager::Rpm)),
        )
    {
        let at = asked.iter().position(|a| *a == path);
        let at = at.or_else(|| {
            let real = through_real_dir(&path);
            paths.iter().position(|p| through_real_dir(p) == real)
        });
        if let Some(i) = at {
            found.push(Owned {
                path: paths[i].clone(),
                package,
                manager,
            });
        }
    }
    found
}

/// `dpkg-query -S` prints `pkg[, pkg...]: /path` for each owned path (and diversion
/// notes, skipped).
fn dpkg_owners(sysroot: &Path, paths: &[PathBuf]) -> Vec<(PathBuf, String)> {
    let admindir = sysroot.join("var/lib/dpkg");
    if !admindir.join("status").is_file() {
        return Vec::new();
    }
    let Ok(out) = Command::new("dpkg-query")
        .arg("--admindir")
        .arg(&admindir)
        .arg("-S")
        .args(paths)
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("diversion by") && !l.starts_with("local diversion"))
        .filter_map(|l| l.split_once(": "))
        .map(|(packages, path)| (PathBuf::from(path), packages.to_string()))
        .collect()
}

/// `pacman -Qo` prints `/path is owned by pkg version` for each owned path.
fn pacman_owners(sysroot: &Path, paths: &[PathBuf]) -> Vec<(PathBuf, String)> {
    pacman_query(sysroot, paths)
        .into_iter()
        .map(|(path, package, _)| (path, package))
        .collect()
}

/// (path, package, version) for each of `paths` a package of the root's pacman
/// database owns (none without that database).
fn pacman_query(sysroot: &Path, paths: &[PathBuf]) -> Vec<(PathBuf, String, String)> {
    let dbpath = sysroot.join("var/lib/pacman");
    if !dbpath.join("local").is_dir() {
        return Vec::new();
    }
    let Ok(out) = Command::new("pacman")
        .arg("--root")
        .arg(sysroot)
        .arg("--dbpath")
        .arg(&dbpath)
        .arg("-Qo")
        .args(paths)
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(" is owned by "))
        .filter_map(|(path, owner)| {
            let (package, version) = owner.trim().split_once(' ')?;
            Some((
                PathBuf::from(path),
                package.to_string(),
                version.to_string(),
            ))
        })
        .collect()
}

/// The pacman package owning `path` (a real path under `sysroot`) and its version.
pub fn pacman_package(sysroot: &Path, path: &Path) -> Option<(String, String)> {
    let (_, package, version) = pacman_query(sysroot, &[path.to_path_buf()])
        .into_iter()
        .next()?;
    Some((package, version))
}

/// The root's rpm database directory, if it has one (rpm 4.16+ keeps `rpmdb.sqlite`;
/// older, `Packages`). Named explicitly because rpm's compiled-in default differs by
/// distribution (Debian's own rpm looks in `~/.rpmdb`, so it never meets dpkg's packages).
fn rpm_dbpath(sysroot: &Path) -> Option<&'static str> {
    [
        ("/var/lib/rpm", "rpmdb.sqlite"),
        ("/var/lib/rpm", "Packages"),
        ("/usr/lib/sysimage/rpm", "rpmdb.sqlite"),
        ("/usr/lib/sysimage/rpm", "Packages"),
    ]
    .into_iter()
    .find(|(dir, db)| sysroot.join(&dir[1..]).join(db).is_file())
    .map(|(dir, _)| dir)
}

/// (path, name, version-release) for each of `paths` (inside the root) an rpm package owns.
fn rpm_query(sysroot: &Path, paths: &[PathBuf]) -> Vec<(PathBuf, String, String)> {
    let Some(dbpath) = rpm_dbpath(sysroot) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for path in paths {
        let Ok(out) = Command::new("rpm")
            .arg("--root")
            .arg(sysroot)
            .args(["--dbpath", dbpath])
            .args([
                "-qf",
                "--queryformat",
                "%{NAME} %|EPOCH?{%{EPOCH}:}|%{VERSION}-%{RELEASE}\\n",
            ])
            .arg(path)
            .output()
        else {
            return Vec::new();
        };
        if !out.status.success() {
            continue;
        }
        if let Some((name, version)) = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .and_then(|l| l.split_once(' '))
        {
            found.push((path.clone(), name.to_string(), version.to_string()));
        }
    }
    found
}

fn rpm_owners(sysroot: &Path, paths: &[PathBuf]) -> Vec<(PathBuf, String)> {
    rpm_query(sysroot, paths)
        .into_iter()
        .map(|(path, package, _)| (path, package))
        .collect()
}

/// The rpm package owning `path` (inside the root) and its `[epoch:]version-release`.
pub fn rpm_package(sysroot: &Path, path: &Path) -> Option<(String, String)> {
    let (_, package, version) = rpm_query(sysroot, &[path.to_path_buf()])
        .into_iter()
        .next()?;
    Some((package, version))
}
