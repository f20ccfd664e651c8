//! POST_ADD / PRE_INSTALL / POST_INSTALL / POST_REMOVE scripts, run as the original runs
//! them: `/etc/dkms/<module>/<script>` wins over the one in the source directory
//! (3.4+), the first word must be executable, cwd is the source directory, the command
//! line is split on blanks (no shell), output goes to the console.

use std::path::Path;
use std::process::Command;

use crate::framework::Settings;
use crate::report::Reporter;

/// Run a module script; returns its exit status (`None` if it was not run).
pub fn run(
    settings: &Settings,
    report: &Reporter,
    kind: &str,
    command: &str,
    module: &str,
    source_dir: &Path,
) -> Option<i32> {
    let mut words = command.split_whitespace();
    let first = words.next()?;
    let override_path = settings.config_dir.join(module).join(first);
    let program = if override_path.is_file() {
        override_path
    } else {
        source_dir.join(first)
    };
    let executable =
        rustix::fs::access(&program, rustix::fs::Access::EXEC_OK).is_ok() && program.is_file();
    report.line("");
    if !executable {
        report.warn(&format!("The {kind} script is not executable."));
        return None;
    }
    report.line(&format!("Running the {kind} script:"));
    let mut cmd = Command::new(&program);
    cmd.args(words).current_dir(source_dir);
    if report.quiet {
        // -q silences everything, the scripts' own output included (as the original's
        // `exec >/dev/null 2>&1`).
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
    }
    let status = cmd.status();
    match status {
        Ok(s) => s.code(),
        Err(e) => {
            report.warn(&format!(
                "Cannot run the {kind} script {}: {e}",
                program.display()
            ));
            None
        }
    }
}
