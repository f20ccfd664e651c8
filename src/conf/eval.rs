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

/// The original's echo-back, fork-free: the index list is read with an array assignment
/// instead of `$(eval echo ...)`; the `eval echo` of each value is kept verbatim because
/// its word splitting and globbing are part of the semantics.
pub const ECHO_BACK_FUNCTION: &str = r#"
__dkms_echo_back() {
    echo "__dkms_file_done=1"
    for _export_env in $__dkms_vars; do
        eval "__dkms_idx=(\${!$_export_env[@]})"
        for _i in "${__dkms_idx[@]}"; do
            eval echo '$_export_env[$_i]=\"${'$_export_env'[$_i]}\"'
        done
    done
    if compgen -v DKMS_DIRECTIVE >/dev/null; then
        for directive in $(set | grep ^DKMS_DIRECTIVE | cut -d = -f 2-3); do
            directive_name=${directive%%=*}
            directive_value=${directive#*=}
            echo "$directive_name=\"$directive_value\""
        done
    fi
}
"#;

/// Report every whitelisted variable as NUL-separated records.
pub const EMIT_FUNCTION: &str = r#"
__dkms_emit() {
    local __v __i
    for __v in $__dkms_vars; do
        eval "__dkms_idx=(\"\${!$__v[@]}\")"
        for __i in "${__dkms_idx[@]}"; do
            eval "printf '%s\0%s\0%s\0' \"\$__v\" \"\$__i\" \"\${$__v[\$__i]}\""
        done
    done
}
"#;

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
pub fn evaluate(
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

/// Group a NUL-separated stream into `(name, index, value)` triples.
pub fn parse_records(bytes: &[u8]) -> Vec<(String, String, String)> {
    let fields = bash::nul_fields(bytes);
    fields
        .chunks_exact(3)
        .map(|c| (c[0].clone(), c[1].clone(), c[2].clone()))
        .collect()
}

/// Whether a message of bash (after `file: line N: `) reports a syntax error, or quotes
/// the line of one (bash follows "near unexpected token" with the line in `...').
pub fn is_syntax_message(message: &str) -> bool {
    message.contains("syntax error")
        || message.contains("unexpected EOF")
        || message.contains("unexpected end of file")
        || (message.starts_with('`') && message.ends_with('\''))
}

/// The first bash syntax error reported against one of `files`: `(file, line, message)`.
pub fn first_syntax_error(stderr: &str, files: &[PathBuf]) -> Option<(PathBuf, u32, String)> {
    for line in stderr.lines() {
        for f in files {
            let prefix = format!("{}: line ", f.display());
            let Some(rest) = line.strip_prefix(&prefix) else {
                continue;
            };
            let Some((num, message)) = rest.split_once(": ") else {
                continue;
            };
            let is_syntax = is_syntax_message(message);
            if let (true, Ok(n)) = (is_syntax, num.parse::<u32>()) {
                if message.contains("unexpected end of file") {
                    if let Some(open) = unclosed_opening(f, n) {
                        return Some((f.clone(), open, format!("{message}: what line {open} opens (an if, case, loop, function or quote) is never closed")));
                    }
                }
                return Some((f.clone(), n, message.to_string()));
            }
        }
    }
    None
}

/// Where the construct that bash found unclosed at the end of `file` begins: the line
/// after the longest prefix of the file that bash reads without error (bash itself only
/// says the file ended, `reported` being its last line). Runs `bash -n` on prefixes,
/// on this error path only.
fn unclosed_opening(file: &Path, reported: u32) -> Option<u32> {
    let text = std::fs::read_to_string(file).ok()?;
    let text = text.replace('\r', "");
    let lines: Vec<&str> = text.lines().collect();
    let complete = |n: usize| -> bool {
        let mut child = match std::process::Command::new("bash")
            .arg("-n")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(_) => return true,
        };
        if let Some(mut stdin) = child.stdin.take() {
            let _ =
                std::io::Write::write_all(&mut stdin, (lines[..n].join("\n") + "\n").as_bytes());
        }
        child.wait().is_ok_and(|s| s.success())
    };
    let last = lines.len().min(reported as usize);
    (0..last).rev().find(|&n| complete(n)).map(|n| n as u32 + 1)
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
