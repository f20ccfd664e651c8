//! Evaluating dkms.conf with bash, exactly as the original's `safe_source` does.
//!
//! The original sources each file (dkms.conf, then the `/etc/dkms` override files) in a
//! subshell with stdout discarded, then *echoes back* every whitelisted variable as
//! `NAME[i]="value"` (unquoted `echo`: word splitting and globbing apply) and sources
//! that text in the parent. So values are evaluated twice, and only whitelisted
//! variables survive from one file to the next. The driver below reproduces that
//! protocol line for line (minus the forks of `$(eval echo ...)`, which change nothing
//! but the speed), then reports the final values to Rust as NUL-separated records:
//! `NAME\0INDEX\0VALUE\0`. Special records start with `!`:
//! * `!exit\0\0FILE\0` — the file called `exit` (its values were lost, as in the original);
//! * `!match\0NAME[INDEX]\0RESULT\0` — bash's own `=~` verdict for a regex directive
//!   (`1` match, `0` no match, `2` invalid regex), so regex semantics stay bash's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::bash;
pub use crate::sourcing::{
    first_syntax_error, is_syntax_message, parse_records, ECHO_BACK_FUNCTION, EMIT_FUNCTION,
};

/// Every variable the original accepts from dkms.conf (3.4.3 names).
pub const DIRECTIVES: &[&str] = &[
    "CLEAN",
    "PACKAGE_NAME",
    "PACKAGE_VERSION",
    "POST_ADD",
    "POST_BUILD",
    "POST_INSTALL",
    "POST_REMOVE",
    "PRE_BUILD",
    "PRE_INSTALL",
    "BUILD_DEPENDS",
    "BUILD_DEPENDS_REBUILD",
    "BUILD_EXCLUSIVE_KERNEL",
    "BUILD_EXCLUSIVE_KERNEL_MIN",
    "BUILD_EXCLUSIVE_KERNEL_MAX",
    "BUILD_EXCLUSIVE_ARCH",
    "BUILD_EXCLUSIVE_CONFIG",
    "OBSOLETE_BY",
    "MAKE",
    "MAKE_MATCH",
    "PATCH",
    "PATCH_MATCH",
    "BUILT_MODULE_NAME",
    "BUILT_MODULE_LOCATION",
    "DEST_MODULE_NAME",
    "DEST_MODULE_LOCATION",
    "STRIP",
    "AUTOINSTALL",
    "NO_WEAK_MODULES",
    "SIGN_FILE",
    "MOK_SIGNING_KEY",
    "MOK_CERTIFICATE",
    "REMAKE_INITRD",
    "NEEDED_AT_BOOT",
    "MODULES_CONF",
    "MODULES_CONF_OBSOLETES",
    "MODULES_CONF_ALIAS_TYPE",
    "MODULES_CONF_OBSOLETE_ONLY",
];

/// Directives whose values are bash regular expressions, with the variable they are
/// matched against.
pub const REGEX_DIRECTIVES: &[(&str, &str)] = &[
    ("MAKE_MATCH", "kernelver"),
    ("PATCH_MATCH", "kernelver"),
    ("BUILD_EXCLUSIVE_KERNEL", "kernelver"),
    ("BUILD_EXCLUSIVE_ARCH", "arch"),
];

/// The variables the original has in scope while a dkms.conf is sourced.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub vars: Vec<(String, String)>,
}

impl Scope {
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.vars.push((name.to_string(), value.into()));
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Raw result of evaluating the configuration files.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RawValues {
    /// name → index → value (trailing CR stripped), whitelisted names only.
    pub vars: BTreeMap<String, BTreeMap<usize, String>>,
    /// `NAME[INDEX]` → bash's `=~` verdict (1 match, 0 no match, 2 bad regex).
    pub regex_results: BTreeMap<String, u8>,
    /// Files that called `exit`.
    pub exited: Vec<PathBuf>,
}

impl RawValues {
    pub fn scalar(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .and_then(|m| m.get(&0))
            .map(String::as_str)
    }

    pub fn array(&self, name: &str) -> Option<&BTreeMap<usize, String>> {
        self.vars.get(name)
    }
}

/// What running the driver gave.
#[derive(Debug)]
pub struct Evaluation {
    pub values: RawValues,
    pub stderr: String,
}

/// Build the driver script for `files` with `scope` in effect.
pub fn driver_script(files: &[PathBuf], scope: &Scope, directives: &[(String, String)]) -> String {
    let mut s = String::from("shopt -s extglob\n");
    for (name, value) in &scope.vars {
        s.push_str(&format!("{name}={}\n", bash::quote(value)));
    }
    s.push_str(&format!(
        "__dkms_vars={}\n",
        bash::quote(&DIRECTIVES.join(" "))
    ));
    s.push_str("for __v in $__dkms_vars; do unset \"$__v\"; done\n");
    s.push_str(ECHO_BACK_FUNCTION);
    s.push_str(EMIT_FUNCTION);
    for f in files {
        let q = bash::quote(&f.to_string_lossy());
        s.push_str(&format!(
            "__dkms_file_done=0\n__dkms_out=$(. {q} >/dev/null; __dkms_echo_back)\neval \"$__dkms_out\"\n\
             [[ $__dkms_file_done = 1 ]] || printf '%s\\0%s\\0%s\\0' '!exit' '' {q}\n"
        ));
    }
    for (name, value) in directives {
        s.push_str(&format!(
            "printf -v {} '%s' {}\n",
            bash::quote(name),
            bash::quote(value)
        ));
    }
    s.push_str("__dkms_emit\n");
    for (name, subject) in REGEX_DIRECTIVES {
        s.push_str(&format!(
            "for __i in \"${{!{name}[@]}}\"; do __r=0; [[ ${subject} =~ ${{{name}[$__i]}} ]]; __rc=$?; \
             [[ $__rc = 0 ]] && __r=1; [[ $__rc = 2 ]] && __r=2; \
             printf '%s\\0%s\\0%s\\0' '!match' \"{name}[$__i]\" \"$__r\"; done\n"
        ));
    }
    s
}

/// Run the driver and collect the values.
pub fn source_with_bash(
    files: &[PathBuf],
    scope: &Scope,
    directives: &[(String, String)],
) -> Result<Evaluation, bash::BashError> {
    let script = driver_script(files, scope, directives);
    let out = bash::run_script(
        &script,
        &["CC", "CXX", "CFLAGS", "CXXFLAGS", "LDFLAGS"],
        bash::timeout(),
    )?;
    let mut values = RawValues::default();
    for (name, index, value) in parse_records(&out.stdout) {
        match name.as_str() {
            "!exit" => values.exited.push(PathBuf::from(value)),
            "!match" => {
                values
                    .regex_results
                    .insert(index, value.parse().unwrap_or(2));
            }
            _ => {
                let Ok(i) = index.parse::<usize>() else {
                    continue;
                };
                let value = value.trim_end_matches('\r').to_string();
                values.vars.entry(name).or_default().insert(i, value);
            }
        }
    }
    Ok(Evaluation {
        values,
        stderr: out.stderr,
    })
}

/// Lines of bash's stderr that are about the conf files themselves (for display).
pub fn messages_about(stderr: &str, files: &[PathBuf]) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| {
            files
                .iter()
                .any(|f| l.starts_with(&format!("{}:", f.display())))
        })
        .map(str::to_string)
        .collect()
}

/// The override files the original sources after the main dkms.conf, in its order.
pub fn override_files(
    config_dir: &Path,
    module: &str,
    version: &str,
    kernel: &str,
    arch: &str,
) -> Vec<PathBuf> {
    [
        format!("{module}.conf"),
        format!("{module}-{version}.conf"),
        format!("{module}-{version}-{kernel}.conf"),
        format!("{module}-{version}-{kernel}-{arch}.conf"),
        format!("{module}--{kernel}.conf"),
        format!("{module}--{kernel}-{arch}.conf"),
    ]
    .into_iter()
    .map(|n| config_dir.join(n))
    .collect()
}
