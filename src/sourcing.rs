//! Sourcing a shell file as the original does and reading its variables back: the bash
//! functions its driver script defines, the records they print, and bash's syntax
//! errors located in the file. Shared by dkms.conf (`conf::eval`) and framework.conf
//! (`framework`), so neither has to import the other.

use std::path::{Path, PathBuf};

use crate::bash;

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
