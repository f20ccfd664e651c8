//! Where everything dkms prints goes: lines, warnings, errors (rendered once, at the
//! edge), the progress bar of a long run. What the lines say is decided by their
//! callers (the status lines by [`crate::state::status`]).

use std::io::Write;

/// Where output goes; `-q` silences everything. While a progress bar is shown (a long
/// run on a terminal), every line is printed above it so the bar stays whole.
#[derive(Debug, Default)]
pub struct Reporter {
    pub quiet: bool,
    progress: std::sync::Mutex<Option<indicatif::ProgressBar>>,
}

impl Reporter {
    pub fn new(quiet: bool) -> Reporter {
        Reporter {
            quiet,
            progress: Default::default(),
        }
    }

    /// Show a live progress bar of `total` steps, on stderr, if both stdout and stderr are
    /// a terminal: lines are then printed above the bar (on stderr), which must not take
    /// them away from a redirected stdout.
    pub fn start_progress(&self, total: usize) {
        use std::io::IsTerminal;
        let terminal = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        if self.quiet || total == 0 || !terminal {
            return;
        }
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        *self.progress.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
    }

    /// One step done (`what` is shown beside the bar).
    pub fn step(&self, what: &str) {
        if let Some(bar) = self
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            bar.inc(1);
            bar.set_message(what.to_string());
        }
    }

    pub fn finish_progress(&self) {
        if let Some(bar) = self
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            bar.finish_and_clear();
        }
    }

    /// Print above the progress bar if there is one; returns whether it did.
    fn above_bar(&self, text: &str) -> bool {
        match self
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            Some(bar) => {
                bar.println(text);
                true
            }
            None => false,
        }
    }

    /// A line on stdout.
    pub fn line(&self, text: &str) {
        if !self.quiet && !self.above_bar(text) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
        }
    }

    /// `Warning: ...` on stderr.
    pub fn warn(&self, text: &str) {
        self.stderr(&format!("Warning: {text}"));
    }

    /// `Deprecated feature: ...` on stderr.
    pub fn deprecated(&self, text: &str) {
        self.stderr(&format!("Deprecated feature: {text}"));
    }

    /// A line on stderr.
    pub fn stderr(&self, text: &str) {
        if !self.quiet && !self.above_bar(text) {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }

    /// The original's error block: a blank line, then `Error! ` and the message lines.
    pub fn error(&self, text: &str) {
        self.stderr(&format!("\nError! {text}"));
    }
}

/// The time now, as `date -u` prints it in the C locale (`Wed Nov 25 07:45:00 UTC 2026`).
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_utc(secs)
}

fn format_utc(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} UTC {year}",
        DAYS[(days.rem_euclid(7)) as usize],
        MONTHS[(month - 1) as usize],
        day,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates_format_like_date() {
        assert_eq!(super::format_utc(0), "Thu Jan  1 00:00:00 UTC 1970");
        assert_eq!(
            super::format_utc(1_795_590_000),
            "Wed Nov 25 07:00:00 UTC 2026"
        );
        assert_eq!(
            super::format_utc(951_782_400),
            "Tue Feb 29 00:00:00 UTC 2000"
        );
    }
}
