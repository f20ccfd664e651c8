//! From the raw values of an evaluated dkms.conf to a typed [`ModuleConf`] and the list of
//! problems the strict read rejects, one helper per directive (or family of directives),
//! each with the original's defaults and checks.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::eval::RawValues;
use super::exclusion::{global_exclusion, module_exclusion, package_exclusion};
use super::{records, ConfRequest, Evaluated, ModuleConf, Problem};

/// Turn raw values into a [`ModuleConf`] and the list of problems the strict read
/// rejects.
pub fn interpret(req: &ConfRequest, ev: &Evaluated) -> (ModuleConf, Vec<Problem>) {
    let v = &ev.values;
    let locator = Locator::new(&ev.files, &req.file);
    let problem = |name: &str, message: String, fix: String| locator.problem(name, message, fix);
    let mut problems = shell_problems(ev);
    let package_name = text(v, "PACKAGE_NAME").unwrap_or_default();
    let package_version = text(v, "PACKAGE_VERSION").unwrap_or_default();
    let count = records::count(v);
    let global = global_exclusion(req, v, count);
    let modules = records::module_records(v, &package_name, &problem, &mut problems, &|index| {
        module_exclusion(req, v, index, &global)
    });
    problems.extend(package_problems(
        req,
        &package_name,
        &package_version,
        &problem,
    ));
    let mut flag = |name: &str| yes_no(v, name, &problem, &mut problems);
    let (autoinstall, no_weak_modules, build_depends_rebuild) = (
        flag("AUTOINSTALL"),
        flag("NO_WEAK_MODULES"),
        flag("BUILD_DEPENDS_REBUILD"),
    );
    // REMAKE_INITRD (deprecated, its value never checked by the original) maps to it.
    let remake_initrd = v
        .scalar("REMAKE_INITRD")
        .is_some_and(|r| r.eq_ignore_ascii_case("yes"));
    let needed_at_boot = flag("NEEDED_AT_BOOT") || remake_initrd;
    let (make_command, make_is_default) = select_make(req, v);
    let script = |name: &str| text(v, name);
    let mut conf = ModuleConf {
        file: req.file.clone(),
        package_name,
        package_version,
        exclusion: package_exclusion(&modules),
        modules,
        make_command,
        make_is_default,
        clean: script("CLEAN"),
        patches: matching_entries(v, "PATCH", "PATCH_MATCH"),
        pre_build: script("PRE_BUILD"),
        post_build: script("POST_BUILD"),
        post_add: script("POST_ADD"),
        pre_install: script("PRE_INSTALL"),
        post_install: script("POST_INSTALL"),
        post_remove: script("POST_REMOVE"),
        autoinstall,
        build_depends: non_empty(v, "BUILD_DEPENDS"),
        build_depends_rebuild,
        no_weak_modules,
        needed_at_boot,
        obsolete_by: script("OBSOLETE_BY"),
        deprecated: deprecations(req, v),
        warnings: (count == 0)
            .then(|| "dkms.conf: Warning! Zero modules specified.".to_string())
            .into_iter()
            .collect(),
    };
    if ev.syntax_error.is_some() {
        // bash stopped at the error: whatever is missing after it follows from it, and
        // reporting it would point at lines that are fine.
        problems = shell_problems(ev);
        conf.warnings.clear();
    }
    (conf, problems)
}

/// Where each directive is assigned, looked up once per name (a conf with thousands of
/// bad records must not read its files once per problem).
struct Locator<'a> {
    files: &'a [PathBuf],
    conf: &'a PathBuf,
    found: RefCell<BTreeMap<String, Option<(PathBuf, u32)>>>,
}

impl<'a> Locator<'a> {
    fn new(files: &'a [PathBuf], conf: &'a PathBuf) -> Self {
        Locator {
            files,
            conf,
            found: RefCell::default(),
        }
    }

    /// A problem with `name`, at the line of its effective assignment if there is one.
    fn problem(&self, name: &str, message: String, fix: String) -> Problem {
        let at = self
            .found
            .borrow_mut()
            .entry(name.to_string())
            .or_insert_with(|| locate_assignment(self.files, name))
            .clone();
        let (file, line) = at
            .map(|(f, l)| (f, Some(l)))
            .unwrap_or((self.conf.clone(), None));
        Problem {
            file,
            line,
            message,
            fix,
            strict_only: false,
        }
    }
}

/// A scalar that is set and not empty.
fn text(v: &RawValues, name: &str) -> Option<String> {
    v.scalar(name).filter(|s| !s.is_empty()).map(str::to_string)
}

/// The non-empty values of an array, in index order.
fn non_empty(v: &RawValues, name: &str) -> Vec<String> {
    v.array(name)
        .map(|a| a.values().filter(|s| !s.is_empty()).cloned().collect())
        .unwrap_or_default()
}

/// A bash syntax error, or an `exit` in a file: none of its settings can be trusted.
fn shell_problems(ev: &Evaluated) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Some((file, line, message)) = &ev.syntax_error {
        problems.push(Problem {
            file: file.clone(),
            line: Some(*line),
            message: format!("bash: {message}"),
            fix: if message.ends_with("is never closed") {
                "close it (fi, esac, done, } or the matching quote) where it should end".into()
            } else {
                "correct the shell syntax on that line (the file is sourced by bash)".into()
            },
            strict_only: false,
        });
    }
    for file in &ev.values.exited {
        problems.push(Problem {
            file: file.clone(),
            line: None,
            message: "the file calls `exit`, so none of its settings can be read".into(),
            fix: "remove the `exit` statement; dkms.conf must only assign variables".into(),
            strict_only: false,
        });
    }
    problems
}

/// PACKAGE_NAME and PACKAGE_VERSION are required.
fn package_problems(
    req: &ConfRequest,
    name: &str,
    version: &str,
    problem: &records::MakeProblem,
) -> Vec<Problem> {
    let or = |value: &'static str, given: &str| {
        if given.is_empty() {
            value.to_string()
        } else {
            given.to_string()
        }
    };
    let mut out = Vec::new();
    if name.is_empty() {
        out.push(problem(
            "PACKAGE_NAME",
            "No 'PACKAGE_NAME' directive specified.".into(),
            format!("add PACKAGE_NAME=\"{}\"", or("<name>", req.module)),
        ));
    }
    if version.is_empty() {
        out.push(problem(
            "PACKAGE_VERSION",
            "No 'PACKAGE_VERSION' directive specified.".into(),
            format!("add PACKAGE_VERSION=\"{}\"", or("<version>", req.version)),
        ));
    }
    for (directive, value) in [("PACKAGE_NAME", name), ("PACKAGE_VERSION", version)] {
        if let Some(what) = crate::fsutil::name_flaw(value) {
            out.push(problem(
                directive,
                format!("{directive} '{value}' {what}: it names directories (/usr/src/<name>-<version>, the dkms tree) and is passed to make, so it could never build."),
                format!("set {directive}=\"{}\"", crate::fsutil::name_fixed(value)),
            ));
        }
    }
    out
}

/// A yes/no directive (any case; empty is no); anything else is a problem.
fn yes_no(
    v: &RawValues,
    name: &str,
    problem: &records::MakeProblem,
    problems: &mut Vec<Problem>,
) -> bool {
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
}

/// Directives the original still reads but calls deprecated.
fn deprecations(req: &ConfRequest, v: &RawValues) -> Vec<String> {
    let file = req.file.display();
    let mut out: Vec<String> = [
        "REMAKE_INITRD",
        "MODULES_CONF",
        "MODULES_CONF_OBSOLETES",
        "MODULES_CONF_ALIAS_TYPE",
        "MODULES_CONF_OBSOLETE_ONLY",
    ]
    .iter()
    .filter(|name| v.vars.contains_key(**name))
    .map(|name| format!("{name} ({file})"))
    .collect();
    if v.scalar("CLEAN")
        .is_some_and(|c| !c.is_empty() && c != "true")
    {
        out.push(format!("CLEAN ({file})"));
    }
    if v.scalar("OBSOLETE_BY").is_some_and(|c| !c.is_empty()) {
        out.push(format!("OBSOLETE_BY ({file})"));
    }
    out
}

/// MAKE[0] unless MAKE_MATCH[0] is set; the last MAKE[i] whose MAKE_MATCH[i] matches the
/// kernel wins; else the default kbuild command. Returns it and whether it is the default.
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
    let build = (req.settings.dkms_tree.join(req.module))
        .join(req.version)
        .join("build");
    let default = format!(
        "make -C {} M={}",
        req.kernel_source_dir.display(),
        build.display()
    );
    if !command.is_empty() {
        // A MAKE that spells out the default (as `dkms scaffold` writes it) is the
        // default: its builds may run in private directories.
        let is_default = command.split_whitespace().eq(default.split_whitespace());
        return (command, is_default);
    }
    (default, true)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, usize, &str)]) -> RawValues {
        let mut v = RawValues::default();
        for (name, i, value) in pairs {
            v.vars
                .entry(name.to_string())
                .or_default()
                .insert(*i, value.to_string());
        }
        v
    }

    fn problem(name: &str, message: String, fix: String) -> Problem {
        Problem {
            file: PathBuf::from("dkms.conf"),
            line: None,
            message: format!("{name}: {message}"),
            fix,
            strict_only: false,
        }
    }

    #[test]
    fn yes_no_takes_any_case_and_reports_the_rest() {
        let v = values(&[("A", 0, "YES"), ("B", 0, "no"), ("C", 0, "maybe")]);
        let mut problems = Vec::new();
        assert!(yes_no(&v, "A", &problem, &mut problems));
        assert!(!yes_no(&v, "B", &problem, &mut problems));
        assert!(!yes_no(&v, "UNSET", &problem, &mut problems));
        assert!(!yes_no(&v, "C", &problem, &mut problems));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].message, "C: Unsupported C value 'maybe'");
    }

    #[test]
    fn patches_follow_their_match() {
        let mut v = values(&[
            ("PATCH", 0, "always.patch"),
            ("PATCH", 1, "on-six.patch"),
            ("PATCH_MATCH", 1, "^6"),
            ("PATCH", 2, "on-five.patch"),
            ("PATCH_MATCH", 2, "^5"),
            ("PATCH", 3, ""),
        ]);
        v.regex_results.insert("PATCH_MATCH[1]".into(), 1);
        v.regex_results.insert("PATCH_MATCH[2]".into(), 0);
        assert_eq!(
            matching_entries(&v, "PATCH", "PATCH_MATCH"),
            ["always.patch", "on-six.patch"]
        );
    }

    #[test]
    fn non_empty_keeps_index_order() {
        let v = values(&[("D", 2, "b"), ("D", 0, "a"), ("D", 1, "")]);
        assert_eq!(non_empty(&v, "D"), ["a", "b"]);
        assert!(non_empty(&v, "UNSET").is_empty());
    }

    #[test]
    fn the_effective_assignment_is_the_last_one() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.conf"), dir.path().join("b.conf"));
        std::fs::write(&a, "X=1\n# X=2\nexport X=3\nXY=4\n").unwrap();
        std::fs::write(&b, "Y=1\n").unwrap();
        let files = [a.clone(), b];
        assert_eq!(locate_assignment(&files, "X"), Some((a, 3)));
        assert_eq!(locate_assignment(&files, "Z"), None);
    }
}
