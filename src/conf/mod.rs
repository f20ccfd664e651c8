//! dkms.conf: evaluation for one (module, version, kernel, arch) into a typed
//! [`ModuleConf`], with the original's strict checks.
//!
//! Evaluation is bash's (see [`eval`]); plain-assignment files take a proven pure-Rust
//! path ([`fast`]). Validation collects every problem, like the original, and reports
//! each with the file, the line of the offending assignment where there is one, and the
//! fix; the whole is exit code 8 ("Bad conf file").

pub mod cache;
pub mod eval;
pub mod fast;
mod records;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::bash::BashError;
use eval::{RawValues, Scope};

/// One problem found in a dkms.conf.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<u32>,
    pub message: String,
    pub fix: String,
    /// Only the strict read (add, build, install) rejects it; the original's plain
    /// `read_conf` accepts it (duplicate module names).
    pub strict_only: bool,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file.display(), l, self.message)?,
            None => write!(f, "{}: {}", self.file.display(), self.message)?,
        }
        write!(f, "\n  fix: {}", self.fix)
    }
}

#[derive(Debug, Error)]
pub enum ConfError {
    #[error("Could not locate dkms.conf file.\nFile: {0} does not exist.")]
    Missing(PathBuf),
    #[error("Cannot read {file}: {source}")]
    Unreadable {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Bad conf file.\nFile: {file} does not represent a valid dkms.conf file.\n{}", render(.problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
    #[error("Bad conf file.\n{file}: {source}\n  fix: make the file finish quickly; dkms.conf is sourced every time dkms reads it")]
    Bash {
        file: PathBuf,
        #[source]
        source: BashError,
    },
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfError::Missing(_) => crate::exit::CONF_MISSING,
            _ => crate::exit::BAD_CONF,
        }
    }
}

/// Per-kernel restrictions (`BUILD_EXCLUSIVE_*`), already decided for this kernel/arch.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Exclusion {
    /// Why this kernel/arch is excluded, if it is.
    pub reasons: Vec<String>,
}

impl Exclusion {
    pub fn excluded(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// One kernel module of a package (one index of the module arrays).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModuleEntry {
    pub index: usize,
    pub built_name: String,
    /// Relative to the build directory, with a trailing `/` (or empty).
    pub built_location: String,
    pub dest_name: String,
    /// The raw `DEST_MODULE_LOCATION` (the distribution may override where it installs).
    pub dest_location: String,
    pub strip: bool,
    pub exclusion: Exclusion,
}

/// A dkms.conf evaluated for one kernel and architecture.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModuleConf {
    pub file: PathBuf,
    pub package_name: String,
    pub package_version: String,
    pub modules: Vec<ModuleEntry>,
    /// MAKE / MAKE_MATCH resolved for this kernel, or the default kbuild command.
    pub make_command: String,
    pub make_is_default: bool,
    pub clean: Option<String>,
    pub patches: Vec<String>,
    pub pre_build: Option<String>,
    pub post_build: Option<String>,
    pub post_add: Option<String>,
    pub pre_install: Option<String>,
    pub post_install: Option<String>,
    pub post_remove: Option<String>,
    pub autoinstall: bool,
    pub build_depends: Vec<String>,
    pub build_depends_rebuild: bool,
    pub no_weak_modules: bool,
    pub obsolete_by: Option<String>,
    /// Package-wide BUILD_EXCLUSIVE verdict for this kernel/arch.
    pub exclusion: Exclusion,
    pub deprecated: Vec<String>,
    pub warnings: Vec<String>,
}

/// Everything needed to evaluate one dkms.conf.
#[derive(Debug, Clone)]
pub struct ConfRequest<'a> {
    pub file: PathBuf,
    pub module: &'a str,
    pub version: &'a str,
    pub kernel: &'a str,
    pub arch: &'a str,
    pub kernel_source_dir: PathBuf,
    pub kernel_config: PathBuf,
    pub settings: &'a crate::framework::Settings,
    /// `--directive NAME=VALUE`, applied after the files.
    pub directives: &'a [String],
    /// Where `status` may cache a bash evaluation (see [`cache`]); never set for builds.
    pub cache: Option<PathBuf>,
}

impl<'a> ConfRequest<'a> {
    /// A request for `file` on kernel/arch, with the kernel's default build directory and
    /// config (`<install_tree>/<k>/build`, auto.conf or .config) and no directives.
    pub fn new(
        settings: &'a crate::framework::Settings,
        file: PathBuf,
        module: &'a str,
        version: &'a str,
        kernel: &'a str,
        arch: &'a str,
    ) -> ConfRequest<'a> {
        ConfRequest {
            file,
            module,
            version,
            kernel,
            arch,
            kernel_source_dir: PathBuf::new(),
            kernel_config: PathBuf::new(),
            settings,
            directives: &[],
            cache: None,
        }
        .with_kernel_overrides(None, None)
    }

    /// Apply `--kernelsourcedir` / `--config` (or the defaults when `None`).
    pub fn with_kernel_overrides(
        mut self,
        source_dir: Option<&Path>,
        config: Option<&Path>,
    ) -> ConfRequest<'a> {
        self.kernel_source_dir = crate::kernel::build_dir(self.settings, source_dir, self.kernel);
        self.kernel_config = crate::kernel::config_file(&self.kernel_source_dir, config);
        self
    }

    /// Let a lenient (status) evaluation cache bash's result at `path`.
    pub fn with_cache(mut self, path: PathBuf) -> ConfRequest<'a> {
        self.cache = Some(path);
        self
    }

    /// `--directive NAME=VALUE` values applied after the files.
    pub fn with_directives(mut self, directives: &'a [String]) -> ConfRequest<'a> {
        self.directives = directives;
        self
    }
}

/// Result of evaluation before validation, with the bash messages about the files.
#[derive(Debug)]
pub struct Evaluated {
    pub files: Vec<PathBuf>,
    pub values: RawValues,
    pub messages: Vec<String>,
    pub syntax_error: Option<(PathBuf, u32, String)>,
}

/// Evaluate the conf files for `req` (fast path first, bash otherwise).
pub fn evaluate(req: &ConfRequest) -> Result<Evaluated, ConfError> {
    evaluate_with(req, false)
}

/// [`evaluate`], letting the fast path leave package-wide regex verdicts unresolved
/// when `lenient` (status needs only module names).
fn evaluate_with(req: &ConfRequest, lenient: bool) -> Result<Evaluated, ConfError> {
    if !req.file.exists() {
        return Err(ConfError::Missing(req.file.clone()));
    }
    if let Err(source) =
        rustix::fs::access(&req.file, rustix::fs::Access::READ_OK).map_err(std::io::Error::from)
    {
        return Err(ConfError::Unreadable {
            file: req.file.clone(),
            source,
        });
    }
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
    if directives.is_empty() {
        if let Some(values) = fast::evaluate_with(&files, &scope, lenient) {
            return Ok(Evaluated {
                files,
                values,
                messages: Vec::new(),
                syntax_error: None,
            });
        }
    }
    // Status may reuse an earlier bash evaluation made with exactly the same inputs.
    let cached = req
        .cache
        .as_ref()
        .filter(|_| lenient && directives.is_empty() && !fast::directive_environment())
        .map(|path| {
            let mut inputs = vec![req.file.clone()];
            inputs.extend(overrides.iter().cloned());
            inputs.push(req.kernel_config.clone());
            inputs.push(req.kernel_source_dir.join(".config"));
            (path.clone(), cache::key(&scope, &inputs))
        });
    if let Some(values) = cached
        .as_ref()
        .and_then(|(path, key)| cache::load(path, key))
    {
        return Ok(Evaluated {
            files,
            values,
            messages: Vec::new(),
            syntax_error: None,
        });
    }
    let stripped = CrStripped::new(&files, &req.settings.tmp_location);
    let out = eval::evaluate(&stripped.sourced, &scope, &directives).map_err(|source| {
        ConfError::Bash {
            file: req.file.clone(),
            source,
        }
    })?;
    let stderr = stripped.restore_names(&out.stderr);
    if let Some((path, key)) = cached {
        cache::store(&path, key, &out.values);
    }
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

/// Evaluate and validate strictly (add/build/install): any problem is an error.
pub fn load_strict(req: &ConfRequest) -> Result<ModuleConf, ConfError> {
    let evaluated = evaluate(req)?;
    let (conf, problems) = interpret(req, &evaluated);
    if problems.is_empty() {
        Ok(conf)
    } else {
        Err(ConfError::Invalid {
            file: req.file.clone(),
            problems,
        })
    }
}

/// The original's plain `read_conf` (`add` from a path reads this before copying the
/// source): every problem but those only the strict read rejects.
pub fn load_checked(req: &ConfRequest) -> Result<ModuleConf, ConfError> {
    let evaluated = evaluate(req)?;
    let (conf, mut problems) = interpret(req, &evaluated);
    problems.retain(|p| !p.strict_only);
    if problems.is_empty() {
        Ok(conf)
    } else {
        Err(ConfError::Invalid {
            file: req.file.clone(),
            problems,
        })
    }
}

/// Evaluate leniently (status): problems are ignored, whatever could be read is used.
pub fn load_lenient(req: &ConfRequest) -> Result<ModuleConf, ConfError> {
    let evaluated = evaluate_with(req, true)?;
    Ok(interpret(req, &evaluated).0)
}

/// Turn raw values into a [`ModuleConf`] and the list of problems the strict read
/// rejects.
pub fn interpret(req: &ConfRequest, ev: &Evaluated) -> (ModuleConf, Vec<Problem>) {
    let v = &ev.values;
    let mut problems = Vec::new();
    // Where each directive is assigned, looked up once per name (a conf with thousands
    // of bad records must not read its files once per problem).
    let located: std::cell::RefCell<BTreeMap<String, Option<(PathBuf, u32)>>> = Default::default();
    let locate = |name: &str| {
        located
            .borrow_mut()
            .entry(name.to_string())
            .or_insert_with(|| locate_assignment(&ev.files, name))
            .clone()
    };
    let problem = |name: &str, message: String, fix: String| {
        let (file, line) = locate(name)
            .map(|(f, l)| (f, Some(l)))
            .unwrap_or((req.file.clone(), None));
        Problem {
            file,
            line,
            message,
            fix,
            strict_only: false,
        }
    };

    if let Some((file, line, message)) = &ev.syntax_error {
        problems.push(Problem {
            file: file.clone(),
            line: Some(*line),
            message: format!("bash: {message}"),
            fix: "correct the shell syntax on that line (the file is sourced by bash)".into(),
            strict_only: false,
        });
    }
    for file in &v.exited {
        problems.push(Problem {
            file: file.clone(),
            line: None,
            message: "the file calls `exit`, so none of its settings can be read".into(),
            fix: "remove the `exit` statement; dkms.conf must only assign variables".into(),
            strict_only: false,
        });
    }

    let text = |name: &str| v.scalar(name).filter(|s| !s.is_empty()).map(str::to_string);
    let package_name = text("PACKAGE_NAME").unwrap_or_default();
    let package_version = text("PACKAGE_VERSION").unwrap_or_default();

    let empty = BTreeMap::new();
    let arr = |name: &str| v.array(name).unwrap_or(&empty);
    let count = records::count(v);
    let global = global_exclusion(req, v, count);
    let modules = records::module_records(v, &package_name, &problem, &mut problems, &|index| {
        module_exclusion(req, v, index, &global)
    });

    if package_name.is_empty() {
        problems.push(problem(
            "PACKAGE_NAME",
            "No 'PACKAGE_NAME' directive specified.".into(),
            format!(
                "add PACKAGE_NAME=\"{}\"",
                or_placeholder(req.module, "<name>")
            ),
        ));
    }
    if package_version.is_empty() {
        problems.push(problem(
            "PACKAGE_VERSION",
            "No 'PACKAGE_VERSION' directive specified.".into(),
            format!(
                "add PACKAGE_VERSION=\"{}\"",
                or_placeholder(req.version, "<version>")
            ),
        ));
    }
    let yes_no = |name: &str, problems: &mut Vec<Problem>| -> bool {
        let raw = v.scalar(name).unwrap_or("");
        match raw.to_ascii_lowercase().as_str() {
            "yes" => true,
            "no" | "" => false,
            _ => {
                problems.push(problem(
                    name,
                    format!("Unsupported {name} value '{raw}'"),
                    format!("set {name}=\"yes\", {name}=\"no\" or leave it empty"),
                ));
                false
            }
        }
    };
    let autoinstall = yes_no("AUTOINSTALL", &mut problems);
    let no_weak_modules = yes_no("NO_WEAK_MODULES", &mut problems);
    let build_depends_rebuild = yes_no("BUILD_DEPENDS_REBUILD", &mut problems);

    let mut warnings = Vec::new();
    if count == 0 {
        warnings.push("dkms.conf: Warning! Zero modules specified.".to_string());
    }
    let mut deprecated = Vec::new();
    for name in [
        "REMAKE_INITRD",
        "MODULES_CONF",
        "MODULES_CONF_OBSOLETES",
        "MODULES_CONF_ALIAS_TYPE",
        "MODULES_CONF_OBSOLETE_ONLY",
    ] {
        if v.vars.contains_key(name) {
            deprecated.push(format!("{name} ({})", req.file.display()));
        }
    }
    if v.scalar("CLEAN")
        .is_some_and(|c| !c.is_empty() && c != "true")
    {
        deprecated.push(format!("CLEAN ({})", req.file.display()));
    }
    if v.scalar("OBSOLETE_BY").is_some_and(|c| !c.is_empty()) {
        deprecated.push(format!("OBSOLETE_BY ({})", req.file.display()));
    }

    let (make_command, make_is_default) = select_make(req, v);
    let patches = matching_entries(v, "PATCH", "PATCH_MATCH");
    let exclusion = package_exclusion(&modules);
    let script = |name: &str| text(name);
    let conf = ModuleConf {
        file: req.file.clone(),
        package_name,
        package_version,
        modules,
        make_command,
        make_is_default,
        clean: script("CLEAN"),
        patches,
        pre_build: script("PRE_BUILD"),
        post_build: script("POST_BUILD"),
        post_add: script("POST_ADD"),
        pre_install: script("PRE_INSTALL"),
        post_install: script("POST_INSTALL"),
        post_remove: script("POST_REMOVE"),
        autoinstall,
        build_depends: arr("BUILD_DEPENDS")
            .values()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect(),
        build_depends_rebuild,
        no_weak_modules,
        obsolete_by: script("OBSOLETE_BY"),
        exclusion,
        deprecated,
        warnings,
    };
    (conf, problems)
}

fn or_placeholder<'a>(value: &'a str, placeholder: &'a str) -> &'a str {
    if value.is_empty() {
        placeholder
    } else {
        value
    }
}

/// MAKE[0] unless MAKE_MATCH[0] is set; the last MAKE[i] whose MAKE_MATCH[i] matches the
/// kernel wins; else the default kbuild command.
fn select_make(req: &ConfRequest, v: &RawValues) -> (String, bool) {
    let empty = BTreeMap::new();
    let make = v.array("MAKE").unwrap_or(&empty);
    let matches = v.array("MAKE_MATCH").unwrap_or(&empty);
    let mut command = if matches.get(&0).is_none_or(|m| m.is_empty()) {
        make.get(&0).cloned().unwrap_or_default()
    } else {
        String::new()
    };
    for (i, cmd) in make {
        let has_match = matches.get(i).is_some_and(|m| !m.is_empty());
        if !cmd.is_empty()
            && has_match
            && v.regex_results.get(&format!("MAKE_MATCH[{i}]")) == Some(&1)
        {
            command = cmd.clone();
        }
    }
    if command.is_empty() {
        let build = req
            .settings
            .dkms_tree
            .join(req.module)
            .join(req.version)
            .join("build");
        (
            format!(
                "make -C {} M={}",
                req.kernel_source_dir.display(),
                build.display()
            ),
            true,
        )
    } else {
        (command, false)
    }
}

/// `PATCH[i]` entries whose `PATCH_MATCH[i]` is empty or matches.
fn matching_entries(v: &RawValues, name: &str, match_name: &str) -> Vec<String> {
    let empty = BTreeMap::new();
    let matches = v.array(match_name).unwrap_or(&empty);
    v.array(name)
        .unwrap_or(&empty)
        .iter()
        .filter(|(i, p)| {
            !p.is_empty()
                && (matches.get(i).is_none_or(|m| m.is_empty())
                    || v.regex_results.get(&format!("{match_name}[{i}]")) == Some(&1))
        })
        .map(|(_, p)| p.clone())
        .collect()
}

/// The BUILD_EXCLUSIVE_* values at index 0, which the original reads as plain scalars
/// (`$BUILD_EXCLUSIVE_KERNEL` is element 0 of the array) and applies to every module.
/// OBSOLETE_BY stands in for a missing maximum when no module sets one of its own.
fn global_exclusion(req: &ConfRequest, v: &RawValues, count: usize) -> Exclusion {
    let per_module_max = v
        .array("BUILD_EXCLUSIVE_KERNEL_MAX")
        .is_some_and(|a| a.iter().any(|(i, m)| *i < count && !m.is_empty()));
    exclusion_for_index(req, v, 0, !per_module_max)
}

/// One module's BUILD_EXCLUSIVE_* (3.3+): the global values and its own index.
fn module_exclusion(
    req: &ConfRequest,
    v: &RawValues,
    index: usize,
    global: &Exclusion,
) -> Exclusion {
    let mut reasons = global.reasons.clone();
    if index != 0 {
        reasons.extend(exclusion_for_index(req, v, index, false).reasons);
    }
    Exclusion { reasons }
}

/// The package is excluded from this kernel only when every one of its modules is
/// (`build_exclude` of the original); a conf without modules never is.
fn package_exclusion(modules: &[ModuleEntry]) -> Exclusion {
    if modules.is_empty() || modules.iter().any(|m| !m.exclusion.excluded()) {
        return Exclusion::default();
    }
    let mut reasons: Vec<String> = Vec::new();
    for r in modules.iter().flat_map(|m| &m.exclusion.reasons) {
        if !reasons.contains(r) {
            reasons.push(r.clone());
        }
    }
    Exclusion { reasons }
}

fn exclusion_for_index(
    req: &ConfRequest,
    v: &RawValues,
    index: usize,
    obsolete_by_is_max: bool,
) -> Exclusion {
    let mut reasons = Vec::new();
    let get = |name: &str| -> Option<String> {
        v.array(name)
            .and_then(|a| a.get(&index))
            .filter(|s| !s.is_empty())
            .cloned()
    };
    if let Some(re) = get("BUILD_EXCLUSIVE_KERNEL") {
        // Unresolved (status's fast path) is not a verdict: only a known non-match excludes.
        if v.regex_results
            .get(&format!("BUILD_EXCLUSIVE_KERNEL[{index}]"))
            .is_some_and(|r| *r != 1)
        {
            reasons.push(format!(
                "kernel {} does not match BUILD_EXCLUSIVE_KERNEL=\"{re}\"",
                req.kernel
            ));
        }
    }
    if let Some(re) = get("BUILD_EXCLUSIVE_ARCH") {
        // Unresolved (status's fast path) is not a verdict: only a known non-match excludes.
        if v.regex_results
            .get(&format!("BUILD_EXCLUSIVE_ARCH[{index}]"))
            .is_some_and(|r| *r != 1)
        {
            reasons.push(format!(
                "arch {} does not match BUILD_EXCLUSIVE_ARCH=\"{re}\"",
                req.arch
            ));
        }
    }
    if let Some(min) = get("BUILD_EXCLUSIVE_KERNEL_MIN") {
        if crate::kernel::ver(req.kernel) < crate::kernel::ver(&min) {
            reasons.push(format!(
                "kernel {} is older than BUILD_EXCLUSIVE_KERNEL_MIN=\"{min}\"",
                req.kernel
            ));
        }
    }
    let max = get("BUILD_EXCLUSIVE_KERNEL_MAX").or_else(|| {
        if obsolete_by_is_max {
            get("OBSOLETE_BY")
        } else {
            None
        }
    });
    if let Some(max) = max {
        if crate::kernel::ver(req.kernel) > crate::kernel::ver(&max) {
            reasons.push(format!(
                "kernel {} is newer than BUILD_EXCLUSIVE_KERNEL_MAX=\"{max}\"",
                req.kernel
            ));
        }
    }
    if let Some(list) = get("BUILD_EXCLUSIVE_CONFIG") {
        if let Some(config) = crate::kernel::KernelConfig::read(&req.kernel_config) {
            for item in list.split_whitespace() {
                let (negated, name) = match item.strip_prefix('!') {
                    Some(n) => (true, n),
                    None => (false, item),
                };
                if config.is_enabled(name) == negated {
                    reasons.push(format!(
                        "kernel config does not satisfy BUILD_EXCLUSIVE_CONFIG item '{item}'"
                    ));
                }
            }
        }
    }
    Exclusion { reasons }
}

/// The file and line of the last assignment to `name` among `files` (the effective one).
pub fn locate_assignment(files: &[PathBuf], name: &str) -> Option<(PathBuf, u32)> {
    let mut found = None;
    for file in files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            let t = line.trim_start();
            let t = t.strip_prefix("export ").map(str::trim_start).unwrap_or(t);
            if let Some(rest) = t.strip_prefix(name) {
                if rest.starts_with('=') || rest.starts_with('[') || rest.starts_with("+=") {
                    found = Some((file.clone(), i as u32 + 1));
                }
            }
        }
    }
    found
}
