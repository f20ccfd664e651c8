//! The status model: one entry per line of `dkms status`, with the facts behind it, and
//! its two forms: the line (machine-read, byte for byte as upstream 3.4.3 prints it) and
//! the `--json` document (a versioned schema, [`STATUS_SCHEMA`], documented in README.md
//! and locked by a snapshot test).
//!
//! State comes from the tree alone; only the suffixes need the module names from
//! dkms.conf, which is evaluated leniently (plain files without bash, see
//! `conf::fast`), like the original's `read_conf ... 2>/dev/null`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::identical::Memo;
use super::{KernelArch, Registration, StateTree};
use crate::conf::{self, ConfOverrides, ConfRequest};
use crate::framework::Settings;
use crate::fsutil::module_file;

/// Version tag of the `status --json` document.
pub const STATUS_SCHEMA: &str = "dkms-status/1";

/// The state word of a status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Added,
    Broken,
    Built,
    Installed,
}

/// A suffix problem, in the original's order of checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Problem {
    /// A module named in dkms.conf has no built copy in the dkms tree.
    BuiltModulesMissing,
    /// The installed copy differs from the built copy (or is gone).
    InstalledDiffers,
}

/// Files of one kernel module of a built entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModuleFiles {
    pub name: String,
    pub built: Option<PathBuf>,
    pub installed: Option<PathBuf>,
    /// Who signed the installed (else the built) file; filled for `status --json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
}

/// A module's signature as the kernel will check it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signature {
    pub signed: bool,
    /// The signer's issuer (`CN=...`) and serial number (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// The certificate of ours that made it (the dkms MOK), if it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusEntry {
    pub module: String,
    pub version: String,
    pub state: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    pub original_modules: bool,
    pub problem: Option<Problem>,
    pub modules: Vec<ModuleFiles>,
}

/// Filters of `dkms status`.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    pub module: Option<&'a str>,
    pub version: Option<&'a str>,
    pub kernel: Option<&'a str>,
    pub arch: Option<&'a str>,
}

/// The entries for one filter, in the original's order; each dkms.conf is read with the
/// run's `overrides` (`--kernelsourcedir`, `--config`, `--directive`).
pub fn collect(
    settings: &Settings,
    overrides: &ConfOverrides,
    filter: &Filter,
) -> Vec<StatusEntry> {
    let tree = StateTree::new(&settings.dkms_tree);
    let install_dir = settings.module_dir_override();
    let mut out = Vec::new();
    for (m, v) in tree.module_versions(filter.module, filter.version) {
        match tree.registration(&m, &v, &settings.source_tree) {
            Registration::NotAdded => continue,
            Registration::Broken => out.push(simple(&m, &v, State::Broken)),
            Registration::Added { .. } => {
                let built = tree.built(&m, &v, filter.kernel, filter.arch);
                if built.is_empty() {
                    out.push(simple(&m, &v, State::Added));
                }
                for ka in built {
                    out.push(built_entry(
                        settings,
                        overrides,
                        &tree,
                        &m,
                        &v,
                        ka,
                        install_dir.as_deref(),
                    ));
                }
            }
        }
    }
    out
}

fn simple(m: &str, v: &str, state: State) -> StatusEntry {
    StatusEntry {
        module: m.into(),
        version: v.into(),
        state,
        kernel: None,
        arch: None,
        original_modules: false,
        problem: None,
        modules: Vec::new(),
    }
}

fn built_entry(
    settings: &Settings,
    overrides: &ConfOverrides,
    tree: &StateTree,
    m: &str,
    v: &str,
    ka: KernelArch,
    install_dir: Option<&str>,
) -> StatusEntry {
    let installed = tree.is_installed(m, v, &ka);
    let module_dir = tree.build_dir(m, v, &ka).join("module");
    let mut modules = Vec::new();
    let mut problem = None;
    let mut memo = Memo::open(&tree.build_dir(m, v, &ka));
    let file = tree.conf_file(m, v);
    let req = ConfRequest::new(settings, overrides, file, m, v, &ka.kernel, &ka.arch)
        .with_cache(tree.build_dir(m, v, &ka).join(conf::cache::FILE_NAME));
    if let Ok(conf) = conf::load_lenient(&req) {
        for entry in conf.modules.iter().filter(|e| !e.exclusion.excluded()) {
            let built = module_file(&module_dir, &entry.dest_name);
            let installed_file = if installed && built.is_some() {
                installed_copy(
                    &mut memo,
                    settings,
                    &ka.kernel,
                    install_dir,
                    &entry.dest_location,
                    &entry.dest_name,
                    built.as_deref(),
                )
            } else {
                None
            };
            if problem.is_none() {
                if built.is_none() {
                    problem = Some(Problem::BuiltModulesMissing);
                } else if installed && installed_file.as_ref().is_none_or(|(_, same)| !same) {
                    problem = Some(Problem::InstalledDiffers);
                }
            }
            modules.push(ModuleFiles {
                name: entry.dest_name.clone(),
                built,
                installed: installed_file.map(|(p, _)| p),
                signature: None,
            });
        }
    }
    memo.save();
    StatusEntry {
        module: m.into(),
        version: v.into(),
        state: if installed {
            State::Installed
        } else {
            State::Built
        },
        original_modules: tree.has_original_modules(m, &ka),
        kernel: Some(ka.kernel),
        arch: Some(ka.arch),
        problem,
        modules,
    }
}

/// The installed copy (distribution directory first, then the raw DEST_MODULE_LOCATION)
/// and whether it is byte-identical to the built copy.
fn installed_copy(
    memo: &mut Memo,
    settings: &Settings,
    kernel: &str,
    install_dir: Option<&str>,
    dest_location: &str,
    name: &str,
    built: Option<&Path>,
) -> Option<(PathBuf, bool)> {
    let mut found = None;
    for dir in install_dir
        .into_iter()
        .chain(std::iter::once(dest_location))
    {
        let dir = settings
            .install_tree
            .join(kernel)
            .join(dir.trim_start_matches('/'));
        if let Some(file) = module_file(&dir, name) {
            let same = built.is_some_and(|b| memo.same(b, &file));
            if same {
                return Some((file, true));
            }
            found.get_or_insert((file, false));
        }
    }
    found
}

/// One `dkms status` line as 3.4.3 prints it.
pub fn status_line(e: &StatusEntry) -> String {
    match (e.state, &e.kernel, &e.arch) {
        (State::Added, ..) => format!("{}/{}: added", e.module, e.version),
        (State::Broken, ..) => format!("{}/{}: broken", e.module, e.version),
        (state, Some(k), Some(a)) => {
            let word = if state == State::Installed {
                "installed"
            } else {
                "built"
            };
            let mut line = format!("{}/{}, {k}, {a}: {word}", e.module, e.version);
            if e.original_modules {
                line.push_str(" (Original modules exist)");
            }
            match e.problem {
                Some(Problem::BuiltModulesMissing) => {
                    line.push_str(" (Built modules are missing in the kernel modules folder)")
                }
                Some(Problem::InstalledDiffers) => {
                    line.push_str(" (Differences between built and installed modules)")
                }
                None => {}
            }
            line
        }
        _ => format!("{}/{}: {:?}", e.module, e.version, e.state),
    }
}

#[derive(Serialize)]
struct StatusDocument<'a> {
    schema: &'static str,
    entries: &'a [StatusEntry],
    /// Builds that failed and are remembered (`state::failed`), in status order.
    failed: &'a [super::failed::Failure],
    /// Per signing certificate of the kernels listed: whether this machine trusts it.
    secure_boot: &'a [serde_json::Value],
}

/// The `status --json` document.
pub fn status_json(
    entries: &[StatusEntry],
    failed: &[super::failed::Failure],
    secure_boot: &[serde_json::Value],
) -> String {
    serde_json::to_string_pretty(&StatusDocument {
        schema: STATUS_SCHEMA,
        entries,
        failed,
        secure_boot,
    })
    .expect("status serializes")
}

/// Reads a module file's signature; the module layer provides it (this layer keeps the
/// model and does not parse signatures).
pub trait SignatureReader {
    /// The signature of `file`, a module built for `kernel`; `None` when it cannot be
    /// read.
    fn read(&mut self, kernel: &str, file: &Path) -> Option<Signature>;
}

/// Fill in the signature of every module of `entries` (`status --json`): of the
/// installed copy, else of the built one.
pub fn add_signatures(entries: &mut [StatusEntry], reader: &mut dyn SignatureReader) {
    for e in entries.iter_mut() {
        let Some(kernel) = e.kernel.clone() else {
            continue;
        };
        for m in &mut e.modules {
            if let Some(file) = m.installed.as_ref().or(m.built.as_ref()) {
                m.signature = reader.read(&kernel, file);
            }
        }
    }
}

/// The line `status --failed` prints for a remembered failure.
pub fn failure_line(f: &super::failed::Failure) -> String {
    let what = f
        .first_error
        .as_deref()
        .or(f.errors.first().map(String::as_str))
        .map(|e| format!(": {}", e.trim()))
        .unwrap_or_default();
    format!(
        "{}/{}, {}, {}: failed (exit {}) on {}{what} (log: {})",
        f.module,
        f.version,
        f.kernel,
        f.arch,
        f.exit_code,
        f.time,
        f.log.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::status::ModuleFiles;

    fn entry(state: State, original: bool, problem: Option<Problem>) -> StatusEntry {
        StatusEntry {
            module: "m".into(),
            version: "1.0".into(),
            state,
            kernel: Some("6.1.0-1-amd64".into()),
            arch: Some("x86_64".into()),
            original_modules: original,
            problem,
            modules: vec![ModuleFiles {
                name: "m".into(),
                built: None,
                installed: None,
                signature: None,
            }],
        }
    }

    #[test]
    fn lines_match_upstream_3_4_3() {
        assert_eq!(
            status_line(&entry(State::Added, false, None)),
            "m/1.0: added"
        );
        assert_eq!(
            status_line(&entry(State::Broken, false, None)),
            "m/1.0: broken"
        );
        assert_eq!(
            status_line(&entry(State::Built, false, None)),
            "m/1.0, 6.1.0-1-amd64, x86_64: built"
        );
        assert_eq!(
            status_line(&entry(State::Installed, true, Some(Problem::InstalledDiffers))),
            "m/1.0, 6.1.0-1-amd64, x86_64: installed (Original modules exist) (Differences between built and installed modules)"
        );
        assert_eq!(
            status_line(&entry(State::Built, false, Some(Problem::BuiltModulesMissing))),
            "m/1.0, 6.1.0-1-amd64, x86_64: built (Built modules are missing in the kernel modules folder)"
        );
    }
}
