//! Command logs in the original's entry format (make.log, post_transaction.log).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::state::KernelArch;

/// make.log, in the original's entry format: a blank line, the description,
/// `# command: ...`, the output, a blank line, `# exit code: N`, `# elapsed time:
/// HH:MM:SS`, 64 dashes.
pub struct CommandLog {
    pub path: PathBuf,
    file: File,
    /// Variables every command gets (the compiler, `build_environment` exports).
    pub env: Vec<(String, String)>,
    /// A shared make jobserver handed to every command (MAKEFLAGS and its fds).
    pub jobserver: Option<jobserver::Client>,
    /// `--verbose`: also show each command and its output on the console.
    pub echo: bool,
}

impl CommandLog {
    /// A new (truncated) log.
    pub fn create(path: &Path) -> std::io::Result<CommandLog> {
        Ok(Self::on(path, File::create(path)?))
    }

    /// A log appended to (created if missing).
    pub fn append(path: &Path) -> std::io::Result<CommandLog> {
        let file = OpenOptions::new().append(true).create(true).open(path)?;
        Ok(Self::on(path, file))
    }

    fn on(path: &Path, file: File) -> CommandLog {
        CommandLog {
            path: path.into(),
            file,
            env: Vec::new(),
            jobserver: None,
            echo: false,
        }
    }

    pub fn write(&mut self, text: &str) -> std::io::Result<()> {
        self.file.write_all(text.as_bytes())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }

    pub fn header(&mut self, m: &str, v: &str, ka: &KernelArch) -> std::io::Result<()> {
        self.write(&format!(
            "DKMS (dkms-{}) make.log for {m}/{v} for kernel {} ({})\n{}\n",
            crate::cli::UPSTREAM_VERSION,
            ka.kernel,
            ka.arch,
            crate::report::now_utc()
        ))
    }

    /// Run `command` with bash in `dir`, output into the log; returns the exit status.
    pub fn run(
        &mut self,
        description: &str,
        command: &str,
        dir: &Path,
        env: &[(String, String)],
    ) -> std::io::Result<i32> {
        self.write(&format!("\n{description}\n# command: {command}\n"))?;
        self.flush()?;
        if self.echo {
            // A reader that went away (`| head`) does not stop the build.
            let _ = writeln!(std::io::stdout(), "{command}");
        }
        // Output goes to the log; with --verbose through one pipe copied to both.
        let (out, err, tee) = if self.echo {
            let (reader, writer) = std::io::pipe()?;
            (
                Stdio::from(writer.try_clone()?),
                Stdio::from(writer),
                Some(reader),
            )
        } else {
            (
                Stdio::from(self.file.try_clone()?),
                Stdio::from(self.file.try_clone()?),
                None,
            )
        };
        let start = Instant::now();
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(format!("{DIES_WITH_DKMS}{{ {command}\n}} & wait $!"))
            .current_dir(dir);
        dies_with_this_process(&mut cmd);
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        for v in ["CC", "CXX", "CFLAGS", "CXXFLAGS", "LDFLAGS"] {
            cmd.env_remove(v);
        }
        cmd.envs(self.env.iter().chain(env).map(|(k, v)| (k, v)));
        if let Some(js) = &self.jobserver {
            js.configure_make(&mut cmd);
        }
        let mut child = cmd.spawn()?;
        drop(cmd); // our copies of the pipe's write end: the reader then sees EOF
        if let Some(reader) = tee {
            self.copy_to_log_and_stdout(reader)?;
        }
        let status = child.wait()?;
        let code = status.code().unwrap_or(128);
        let secs = start.elapsed().as_secs();
        self.write(&format!(
            "\n# exit code: {code}\n# elapsed time: {:02}:{:02}:{:02}\n{}\n",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            "-".repeat(64)
        ))?;
        Ok(code)
    }

    /// `--verbose`: what the command prints goes to the log and to our stdout.
    fn copy_to_log_and_stdout(&mut self, mut reader: std::io::PipeReader) -> std::io::Result<()> {
        let mut buf = [0u8; 8192];
        loop {
            let n = std::io::Read::read(&mut reader, &mut buf)?;
            if n == 0 {
                return Ok(());
            }
            self.file.write_all(&buf[..n])?;
            let _ = std::io::stdout().write_all(&buf[..n]);
        }
    }
}

/// What a logged command runs first: on SIGTERM (sent when dkms dies, see
/// [`dies_with_this_process`]) the shell takes its whole process group with it (a make
/// passes SIGTERM on to its own children). The command runs in the background and the
/// shell waits for it, because bash runs a trap only between commands.
const DIES_WITH_DKMS: &str = "trap 'trap - TERM; kill -TERM 0' TERM\n";

/// A dkms killed alone (OOM, `kill -9`) must not leave its builds running: they would go
/// on writing into build directories that the next dkms's recovery deletes, and recreate
/// them. The command gets its own process group, and SIGTERM when the thread that
/// started it (which waits for it) dies.
fn dies_with_this_process(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = rustix::process::getpid();
    cmd.process_group(0);
    // SAFETY: the closure only makes two system calls (prctl, getppid), which are
    // async-signal-safe, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))?;
            // Died between fork and prctl: the signal will never come.
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::from_raw_os_error(
                    rustix::io::Errno::SRCH.raw_os_error(),
                ));
            }
            Ok(())
        });
    }
}
