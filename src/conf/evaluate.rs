//! Evaluating a dkms.conf (and the `/etc/dkms` files that override it) for one module,
//! version, kernel and arch: the pure-Rust fast path for plain files, else bash exactly as
//! the original sources them (with status's cache of bash evaluations).

use std::path::{Path, PathBuf};

use super::eval::{self, Scope};
use super::{cache, fast, ConfError, ConfRequest, Evaluated};

/// Evaluate the conf files for `req` (fast path first, bash otherwise).
pub fn evaluate(req: &ConfRequest) -> Result<Evaluated, ConfError> {
    evaluate_with(req, false)
}

/// [`evaluate`], letting the fast path leave package-wide regex verdicts unresolved
/// when `lenient` (status needs only module names).
pub(super) fn evaluate_with(req: &ConfRequest, lenient: bool) -> Result<Evaluated, ConfError> {
    check_readable(&req.file)?;
    let overrides = eval::override_files(
        &req.settings.config_dir,
        req.module,
        req.version,
        req.kernel,
        req.arch,
    );
    let mut files = vec![req.file.clone()];
    files.extend(overrides.iter().filter(|f| f.exists()).cloned());
    let directives = parse_directives(req.directives);
    let scope = scope_for(req);
    let plain = |values| Evaluated {
        files: files.clone(),
        values,
        messages: Vec::new(),
        syntax_error: None,
    };
    if directives.is_empty() {
        if let Some(values) = fast::plain_assignments_with(&files, &scope, lenient) {
            return Ok(plain(values));
        }
    }
    // Status may reuse an earlier bash evaluation made with exactly the same inputs.
    let cached = (lenient && directives.is_empty() && !fast::directive_environment())
        .then(|| cache_slot(req, &overrides, &scope))
        .flatten();
    if let Some(values) = cached
        .as_ref()
        .and_then(|(path, key)| cache::load(path, key))
    {
        return Ok(plain(values));
    }
    let evaluated = with_bash(req, files, &scope, &directives)?;
    if let Some((path, key)) = cached {
        cache::store(&path, key, &evaluated.values);
    }
    Ok(evaluated)
}

fn check_readable(file: &Path) -> Result<(), ConfError> {
    if !file.exists() {
        return Err(ConfError::Missing(file.to_path_buf()));
    }
    rustix::fs::access(file, rustix::fs::Access::READ_OK).map_err(|e| ConfError::Unreadable {
        file: file.to_path_buf(),
        source: e.into(),
    })
}

/// Where status caches this evaluation, and the key of its inputs.
fn cache_slot(
    req: &ConfRequest,
    overrides: &[PathBuf],
    scope: &Scope,
) -> Option<(PathBuf, cache::Key)> {
    let path = req.cache.clone()?;
    let mut inputs = vec![req.file.clone()];
    inputs.extend(overrides.iter().cloned());
    inputs.push(req.kernel_config.clone());
    inputs.push(req.kernel_source_dir.join(".config"));
    // `--directive` values change the result too.
    let mut scope = scope.clone();
    for d in req.directives {
        scope.set("--directive", d.as_str());
    }
    Some((path, cache::key(&scope, &inputs)))
}

/// Source the files with bash (CR-stripped copies where needed), as the original does.
fn with_bash(
    req: &ConfRequest,
    files: Vec<PathBuf>,
    scope: &Scope,
    directives: &[(String, String)],
) -> Result<Evaluated, ConfError> {
    let stripped = CrStripped::new(&files, &req.settings.tmp_location);
    let out = eval::source_with_bash(&stripped.sourced, scope, directives).map_err(|source| {
        ConfError::Bash {
            file: req.file.clone(),
            source,
        }
    })?;
    let stderr = stripped.restore_names(&out.stderr);
    Ok(Evaluated {
        syntax_error: eval::first_syntax_error(&stderr, &files),
        messages: eval::messages_about(&stderr, &files),
        files,
        values: out.values,
    })
}

/// CR+LF files are accepted (3.4.3): bash sources a copy without the CRs, and messages
/// about the copy are reported against the real file.
struct CrStripped {
    sourced: Vec<PathBuf>,
    copies: Vec<(tempfile::TempPath, PathBuf)>,
}

impl CrStripped {
    fn new(files: &[PathBuf], tmp: &Path) -> CrStripped {
        let mut sourced = Vec::new();
        let mut copies = Vec::new();
        for f in files {
            match strip_cr_copy(f, tmp) {
                Some(copy) => {
                    sourced.push(copy.to_path_buf());
                    copies.push((copy, f.clone()));
                }
                None => sourced.push(f.clone()),
            }
        }
        CrStripped { sourced, copies }
    }

    fn restore_names(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (copy, real) in &self.copies {
            out = out.replace(&copy.display().to_string(), &real.display().to_string());
        }
        out
    }
}

/// A temporary copy of `file` without CRs before LFs, if it has any.
fn strip_cr_copy(file: &Path, tmp: &Path) -> Option<tempfile::TempPath> {
    let bytes = std::fs::read(file).ok()?;
    if !bytes.windows(2).any(|w| w == b"\r\n") {
        return None;
    }
    let lines: Vec<&[u8]> = bytes
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    let mut copy = tempfile::Builder::new()
        .prefix("dkms.conf.")
        .tempfile_in(tmp)
        .ok()?;
    std::io::Write::write_all(&mut copy, &lines.join(&b'\n')).ok()?;
    Some(copy.into_temp_path())
}

/// `NAME=VALUE` → `(NAME, VALUE)`; names must be identifiers, optionally `NAME[i]`.
fn parse_directives(raw: &[String]) -> Vec<(String, String)> {
    raw.iter()
        .filter_map(|d| {
            let (name, value) = d.split_once('=')?;
            let base = name.split('[').next().unwrap_or("");
            let ok = !base.is_empty()
                && base.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !base.starts_with(|c: char| c.is_ascii_digit());
            ok.then(|| (name.to_string(), value.to_string()))
        })
        .collect()
}

/// The variables the original has in scope while sourcing.
pub fn scope_for(req: &ConfRequest) -> Scope {
    let s = req.settings;
    let mut scope = Scope::default();
    let p = |p: &Path| p.to_string_lossy().into_owned();
    scope.set("kernelver", req.kernel);
    scope.set("arch", req.arch);
    scope.set("kernel_source_dir", p(&req.kernel_source_dir));
    scope.set("kernel_config", p(&req.kernel_config));
    scope.set("dkms_tree", p(&s.dkms_tree));
    scope.set("source_tree", p(&s.source_tree));
    scope.set("install_tree", p(&s.install_tree));
    scope.set("tmp_location", p(&s.tmp_location));
    scope.set("module", req.module);
    scope.set("module_version", req.version);
    scope.set(
        "parallel_jobs",
        s.parallel_jobs.map(|n| n.to_string()).unwrap_or_default(),
    );
    scope.set("current_kernel", s.current_kernel.as_str());
    scope.set("current_os", "Linux");
    scope.set("verbose", if s.verbose { "true" } else { "" });
    if let Ok(d) = s.distribution() {
        scope.set("running_distribution", d.running);
    }
    scope
}
