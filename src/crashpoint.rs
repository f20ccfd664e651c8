//! Test builds only: stop the process dead at its N-th filesystem step.
//!
//! Every change dkms makes to the trees (a journal record and its fsync, a write, a
//! rename, an unlink, a symlink, a new directory, running depmod) first calls [`step`].
//! The crash-injection tests (`tests/it/crash.rs`) run an operation once for every N with
//! `DKMS_TEST_CRASH_AT=N`: at the N-th step the process SIGKILLs itself, as a power cut
//! or the OOM killer would stop it (no destructor, no buffer flushed), and the test checks
//! what the next dkms makes of the trees. `DKMS_TEST_CRASH_LOG=FILE` appends one line per
//! step (`N what path`), so a failure names the step.
//!
//! The variables are read only in builds with debug assertions (how `cargo test` builds
//! the binary); in a release build [`step`] is empty.

use std::path::Path;

#[cfg(debug_assertions)]
mod armed {
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Mutex, OnceLock};

    struct Plan {
        at: Option<usize>,
        log: Option<PathBuf>,
    }

    static PLAN: OnceLock<Plan> = OnceLock::new();
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    static LOG: Mutex<()> = Mutex::new(());

    pub fn step(what: &str, path: &Path) {
        let plan = PLAN.get_or_init(|| Plan {
            at: std::env::var("DKMS_TEST_CRASH_AT")
                .ok()
                .and_then(|n| n.parse().ok()),
            log: std::env::var_os("DKMS_TEST_CRASH_LOG").map(PathBuf::from),
        });
        if plan.at.is_none() && plan.log.is_none() {
            return;
        }
        let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(log) = &plan.log {
            let _guard = LOG.lock();
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
            {
                let _ = writeln!(f, "{n} {what} {}", path.display());
            }
        }
        if plan.at == Some(n) {
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
            // The signal is delivered before kill() returns to us; never go on.
            loop {
                std::thread::park();
            }
        }
    }
}

/// Count one filesystem step (and die here if a crash test asked for this one).
#[inline]
pub fn step(what: &str, path: &Path) {
    #[cfg(debug_assertions)]
    armed::step(what, path);
    #[cfg(not(debug_assertions))]
    let _ = (what, path);
}
