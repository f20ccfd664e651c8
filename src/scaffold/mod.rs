//! What a module's source says about how to package it for dkms, read from the source
//! itself: the modules its Kbuild or Makefile builds (every `obj-m`, `obj-$(CONFIG_X)`
//! with the default the file gives X, nested `obj-y += sub/` directories, composite
//! `<mod>-objs`/`<mod>-y` objects), its version (a `VERSION` file, else the newest git
//! tag, else `MODULE_VERSION`), its license (`MODULE_LICENSE`), and the oldest kernel
//! its sources accept (an `#error` under `LINUX_VERSION_CODE < KERNEL_VERSION(...)`).
//!
//! Why: packagers write dkms.conf by hand, or with a script per driver, and the same
//! mistakes break modules again and again. Generated from the Kbuild, the conf lists
//! what the source really builds, with the version in one place.

pub mod makefile;
pub mod render;

use std::path::{Path, PathBuf};

use makefile::Reading;

/// One module the source builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    /// Its directory below the source (`""` or `sub/`).
    pub location: String,
}

/// Everything scaffold read.
#[derive(Debug, Clone)]
pub struct Source {
    pub dir: PathBuf,
    pub name: String,
    pub version: String,
    pub modules: Vec<Module>,
    /// `MODULE_LICENSE` of the sources, if they give one.
    pub license: Option<String>,
    /// The oldest kernel the sources build for, when they say (`#error` under a
    /// `LINUX_VERSION_CODE < KERNEL_VERSION(a,b,c)` test).
    pub kernel_min: Option<String>,
    /// `*.patch` files at the top, applied by the package.
    pub patches: Vec<String>,
    /// What could not be inferred, in words.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("{0} has no Kbuild or Makefile: scaffold reads the module's own build files.")]
    NoBuildFile(PathBuf),
    #[error(
        "{file} builds no kernel module: it has no obj-m (is it a userspace Makefile?).{}",
        notes_text(notes)
    )]
    NoModules { file: PathBuf, notes: Vec<String> },
    #[error("No version found for {0}: no VERSION file, no git tag, no MODULE_VERSION in the sources.\nGive one with --directive PACKAGE_VERSION=<version>.")]
    NoVersion(PathBuf),
    #[error("Two modules are named {name}, in {first} and {second}: dkms installs modules by name, so one would replace the other.")]
    SameName {
        name: String,
        first: String,
        second: String,
    },
    #[error("The version '{0}' {1}: a version names directories (/usr/src/<name>-<version>) and make arguments.\nGive another with --directive PACKAGE_VERSION=<version>.")]
    BadVersion(String, &'static str),
}

fn notes_text(notes: &[String]) -> String {
    notes.iter().map(|n| format!("\n  {n}")).collect()
}

/// Read the source in `dir`; `name` and `version` override what it says.
pub fn read(
    dir: &Path,
    name: Option<&str>,
    version: Option<&str>,
) -> Result<Source, ScaffoldError> {
    let build_file =
        build_file(dir).ok_or_else(|| ScaffoldError::NoBuildFile(dir.to_path_buf()))?;
    let mut notes = Vec::new();
    let mut modules = Vec::new();
    collect(dir, "", &mut modules, &mut notes, 0);
    if modules.is_empty() {
        return Err(ScaffoldError::NoModules {
            file: build_file,
            notes,
        });
    }
    for (i, m) in modules.iter().enumerate() {
        if let Some(other) = modules[..i].iter().find(|o| o.name == m.name) {
            return Err(ScaffoldError::SameName {
                name: m.name.clone(),
                first: format!("{}/", other.location.trim_end_matches('/')),
                second: format!("{}/", m.location.trim_end_matches('/')),
            });
        }
    }
    let sources = c_sources(dir);
    let version = match version {
        Some(v) => v.to_string(),
        None => find_version(dir, &sources)
            .ok_or_else(|| ScaffoldError::NoVersion(dir.to_path_buf()))?,
    };
    if let Some(flaw) = crate::state::name_flaw(&version) {
        return Err(ScaffoldError::BadVersion(version, flaw));
    }
    let name = name
        .map(str::to_string)
        .unwrap_or_else(|| package_name(dir, &version, &modules));
    Ok(Source {
        dir: dir.to_path_buf(),
        name,
        version,
        license: find_in_sources(&sources, "MODULE_LICENSE(\""),
        kernel_min: kernel_min(&sources),
        patches: top_patches(dir),
        modules,
        notes,
    })
}

/// `Kbuild`, else `Makefile` (what kbuild reads with `M=`).
fn build_file(dir: &Path) -> Option<PathBuf> {
    ["Kbuild", "Makefile"]
        .iter()
        .map(|f| dir.join(f))
        .find(|f| f.is_file())
}

/// Modules of `dir` (at `location` below the source) and of the directories it builds.
fn collect(
    dir: &Path,
    location: &str,
    out: &mut Vec<Module>,
    notes: &mut Vec<String>,
    depth: usize,
) {
    let Some(file) = build_file(dir) else {
        notes.push(format!("{location} has no Kbuild or Makefile"));
        return;
    };
    let r = Reading::of(
        &file,
        dir,
        &[
            ("KERNELRELEASE", "kernelrelease"),
            ("src", &dir.to_string_lossy()),
            ("obj", &dir.to_string_lossy()),
        ],
    );
    notes.extend(r.notes.iter().map(|n| format!("{}: {n}", file.display())));
    for word in r.words("obj-m") {
        if let Some(name) = word.strip_suffix(".o") {
            out.push(Module {
                name: name.to_string(),
                location: location.to_string(),
            });
        }
    }
    let subdirs = r.words("obj-m").into_iter().chain(r.words("obj-y"));
    for sub in subdirs.filter(|w| w.ends_with('/')) {
        if depth < 8 {
            collect(
                &dir.join(&sub),
                &format!("{location}{sub}"),
                out,
                notes,
                depth + 1,
            );
        }
    }
    let off: Vec<String> = r
        .vars
        .keys()
        .filter(|k| *k == "obj-" || *k == "obj-n")
        .flat_map(|k| r.words(k))
        .collect();
    if !off.is_empty() {
        notes.push(format!(
            "{}: built only under a CONFIG option that nothing here turns on, so left out: {}",
            file.display(),
            off.join(" ")
        ));
    }
}

/// Every `.c` and `.h` file of the source, with its text.
fn c_sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if !e.file_name().to_string_lossy().starts_with('.') {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "c" || x == "h") {
                if let Ok(text) = std::fs::read_to_string(&p) {
                    out.push((p, text));
                }
            }
        }
    }
    out.sort();
    out
}

/// `VERSION`, else the newest git tag (`v` dropped), else `MODULE_VERSION`, else the
/// directory's name (`<name>-<version>`).
fn find_version(dir: &Path, sources: &[(PathBuf, String)]) -> Option<String> {
    if let Ok(v) = std::fs::read_to_string(dir.join("VERSION")) {
        let v = v.trim();
        if !v.is_empty() {
            return Some(v.to_string());
        }
    }
    let tag = std::process::Command::new("git")
        .args(["describe", "--tags", "--abbrev=0"])
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|t| !t.is_empty());
    if let Some(tag) = tag {
        return Some(tag.trim_start_matches('v').to_string());
    }
    module_version(sources).or_else(|| dir_name(dir).map(|(_, v)| v))
}

/// `MODULE_VERSION("x")`, or `MODULE_VERSION(DRV_VERSION)` with `#define DRV_VERSION "x"`.
fn module_version(sources: &[(PathBuf, String)]) -> Option<String> {
    let raw = find_in_sources(sources, "MODULE_VERSION(")?;
    if let Some(v) = raw.strip_prefix('"') {
        return Some(v.trim_end_matches('"').to_string());
    }
    let define = format!("#define {raw} \"");
    sources.iter().find_map(|(_, text)| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(&define))
            .map(|rest| rest.split('"').next().unwrap_or("").to_string())
    })
}

/// A directory named `<name>-<version>` (the version starting with a digit), as sources
/// unpack and as `/usr/src` holds them.
fn dir_name(dir: &Path) -> Option<(String, String)> {
    let base = std::fs::canonicalize(dir)
        .ok()?
        .file_name()?
        .to_string_lossy()
        .into_owned();
    let (name, version) = base.rsplit_once('-')?;
    (version.starts_with(|c: char| c.is_ascii_digit()) && !name.is_empty())
        .then(|| (name.to_string(), version.to_string()))
}

/// The argument of the first `prefix...)` in the sources (`MODULE_LICENSE("` gives the
/// string, `MODULE_VERSION(` the raw argument).
fn find_in_sources(sources: &[(PathBuf, String)], prefix: &str) -> Option<String> {
    sources
        .iter()
        .find_map(|(_, text)| {
            text.lines().find_map(|l| {
                let l = l.trim();
                let rest = l.strip_prefix(prefix)?;
                let end = rest.find(')')?;
                Some(rest[..end].trim_end_matches('"').to_string())
            })
        })
        .filter(|s| !s.is_empty())
}

/// `KERNEL_VERSION(a,b,c)` of an `#if LINUX_VERSION_CODE < KERNEL_VERSION(a,b,c)` that
/// leads to `#error` (the sources refuse older kernels).
fn kernel_min(sources: &[(PathBuf, String)]) -> Option<String> {
    sources.iter().find_map(|(_, text)| {
        let lines: Vec<&str> = text.lines().collect();
        lines.iter().enumerate().find_map(|(i, l)| {
            let l = l.replace(' ', "");
            let at = l.find("#ifLINUX_VERSION_CODE<KERNEL_VERSION(")?;
            let args = &l[at + "#ifLINUX_VERSION_CODE<KERNEL_VERSION(".len()..];
            let args = &args[..args.find(')')?];
            let next = lines.get(i + 1)?.trim_start();
            next.starts_with("#error")
                .then(|| args.split(',').map(str::trim).collect::<Vec<_>>().join("."))
        })
    })
}

fn top_patches(dir: &Path) -> Vec<String> {
    let mut p: Vec<String> = crate::state::visible_entries(dir)
        .into_iter()
        .filter(|n| n.ends_with(".patch"))
        .collect();
    p.sort();
    p
}

/// The directory's name without a trailing `-<version>`, else the only module's name.
fn package_name(dir: &Path, version: &str, modules: &[Module]) -> String {
    if let Some((name, v)) = dir_name(dir) {
        if v == version {
            return name;
        }
    }
    let base = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let base = base
        .strip_suffix(&format!("-{version}"))
        .unwrap_or(&base)
        .to_string();
    if modules.len() == 1 && (base.is_empty() || base == "src") {
        return modules[0].name.clone();
    }
    if base.is_empty() {
        modules[0].name.clone()
    } else {
        base
    }
}
