//! Running bash to evaluate configuration fragments (dkms.conf, framework.conf).
//!
//! The original *sources* these files, so their semantics are bash's: conditionals,
//! `$(...)`, arrays. We run the real bash, never a re-implementation, but contain it:
//! stdin is `/dev/null` (a `read` cannot hang us), the child gets its own process group
//! (a runaway file and anything it started in the background are killed together when
//! the time limit passes or when bash is done), and results come back on stdout in a
//! NUL-separated form that cannot be ambiguous, while the file's own output goes to
//! `/dev/null` inside the driver script.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use thiserror::Error;

/// Default time a configuration file may take to evaluate. `DKMS_CONF_TIMEOUT` (seconds)
/// overrides it; tests use a short one.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Error)]
pub enum BashError {
    #[error("cannot run bash: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("evaluation did not finish within {0} seconds")]
    Timeout(u64),
}

/// What a driver script produced.
#[derive(Debug)]
pub struct BashOutput {
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub status: Option<i32>,
}

/// The evaluation time limit in force.
pub fn timeout() -> Duration {
    std::env::var("DKMS_CONF_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// Run `script` with `bash --norc --noprofile -c`, killing its whole process group if it
/// outlives `limit`. `env_remove` names variables the original unsets at startup.
pub fn run_script(
    script: &str,
    env_remove: &[&str],
    limit: Duration,
) -> Result<BashOutput, BashError> {
    let mut cmd = Command::new("bash");
    cmd.arg("--norc")
        .arg("--noprofile")
        .arg("-c")
        .arg(script)
        .arg("dkms");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in env_remove {
        cmd.env_remove(name);
    }
    cmd.process_group(0);
    let mut child = cmd.spawn().map_err(BashError::Spawn)?;
    let pgid = child.id() as i32;

    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || match done_rx.recv_timeout(limit) {
        Err(mpsc::RecvTimeoutError::Timeout) => {
            kill_group(pgid);
            true
        }
        _ => false,
    });

    let status = child.wait().map_err(BashError::Spawn)?;
    let _ = done_tx.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    // Background processes the file started would keep our pipes open: end them too.
    kill_group(pgid);
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    if timed_out {
        return Err(BashError::Timeout(limit.as_secs().max(1)));
    }
    Ok(BashOutput {
        stdout,
        stderr,
        status: status.code(),
    })
}

fn kill_group(pgid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Quote `text` as one bash word.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Split a NUL-separated record stream into its fields.
pub fn nul_fields(bytes: &[u8]) -> Vec<String> {
    let mut fields: Vec<String> = bytes
        .split(|b| *b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    // A stream ends with a terminating NUL, which leaves one empty trailing field.
    if fields.last().is_some_and(|f| f.is_empty()) {
        fields.pop();
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips_through_bash() {
        let tricky = "a'b\"c $HOME `x` \\ \n end";
        let out = run_script(
            &format!("printf '%s' {}", quote(tricky)),
            &[],
            DEFAULT_TIMEOUT,
        )
        .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), tricky);
    }

    #[test]
    fn a_script_that_never_ends_is_killed() {
        let start = std::time::Instant::now();
        let err = run_script(
            "sleep 30 & while :; do :; done",
            &[],
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(matches!(err, BashError::Timeout(_)));
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn background_children_do_not_hold_us() {
        let start = std::time::Instant::now();
        let out = run_script("sleep 30 & printf ok", &[], Duration::from_secs(20)).unwrap();
        assert_eq!(out.stdout, b"ok");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn nul_fields_split() {
        assert_eq!(nul_fields(b"a\0\0c\0"), vec!["a", "", "c"]);
        assert!(nul_fields(b"").is_empty());
    }
}
