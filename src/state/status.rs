//! The status model: one entry per line of `dkms status`, with the facts behind it.
//!
//! State comes from the tree alone; only the suffixes need the module names from
//! dkms.conf, which is evaluated leniently (plain files without bash, see
//! `conf::fast`), like the original's `read_conf ... 2>/dev/null`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::identical::Memo;
use super::{module_file, KernelArch, Registration, StateTree};
use crate::conf::{self, ConfRequest};
use crate::framework::Settings;

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

/// Read the signatures of every module of `entries` (decompressing as needed).
pub fn add_signatures(settings: &Settings, entries: &mut [StatusEntry]) {
    for e in entries.iter_mut() {
        let Some(kernel) = e.kernel.clone() else {
            continue;
        };
        let build = crate::kernel::build_dir(settings, None, &kernel);
        let config = crate::kernel::KernelConfig::read(&crate::kernel::config_file(&build, None))
            .unwrap_or_default();
        let (_, cert) = crate::sign::policy::key_paths(settings, &kernel, &config);
        for m in &mut e.modules {
            let Some(file) = m.installed.clone().or_else(|| m.built.clone()) else {
                continue;
            };
            let Ok(bytes) = crate::compress::read_module(&file) else {
                continue;
            };
            m.signature = Some(match crate::sign::signer_of(&bytes) {
                Some(s) => Signature {
                    signed: true,
                    key: s.is(&cert).then(|| cert.clone()),
                    signer: Some(s.issuer()),
                    serial: Some(s.serial_hex),
                },
                None => Signature {
                    signed: false,
                    signer: None,
                    serial: None,
                    key: None,
                },
            });
        }
    }
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

/// The entries for one filter, in the original's order.
pub fn collect(settings: &Settings, filter: &Filter) -> Vec<StatusEntry> {
    let tree = StateTree::new(&settings.dkms_tree);
    let install_dir = settings
        .addon_modules_dir()
        .map(|d| format!("/{d}"))
        .or_else(|| {
            settings
                .distribution()
                .ok()
                .and_then(|d| d.module_dir_override().map(str::to_string))
        });
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
    let file = tree.version_dir(m, v).join("source/dkms.conf");
    let req = ConfRequest::new(settings, file, m, v, &ka.kernel, &ka.arch)
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
