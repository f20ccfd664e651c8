//! dkms: Dynamic Kernel Module Support, a drop-in replacement for the bash original.
//!
//! Data flows one way: [`cli`] → [`plan`] → ([`conf`], [`kernel`], [`state`]) →
//! [`report`]. [`run`] is the edge: it renders every error exactly once, with the
//! original's exit code.

pub mod bash;
pub mod cli;
pub mod cmdlog;
pub mod commands;
pub mod conf;
pub mod crashpoint;
pub mod error;
pub mod exit;
pub mod framework;
pub mod fsutil;
pub mod kernel;
pub mod module;
pub mod report;
pub mod scaffold;
pub mod stamp;
pub mod state;
pub mod transaction;

use cli::{Notice, Parsed};
use error::Error;
use report::Reporter;
use std::io::Write;

/// The version printed by `dkms --version` (the upstream release we are compatible with).
pub const UPSTREAM_VERSION: &str = "3.4.3";

/// Run dkms with `args` (without the program name); returns the process exit code.
pub fn run<I, S>(args: I) -> i32
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let parsed = match cli::parse(args) {
        Ok(p) => p,
        Err(e) => {
            let report = Reporter::default();
            report.error(&e.to_string());
            if e.shows_usage() {
                report.line(&cli::usage());
            }
            return e.exit_code();
        }
    };
    let req = match parsed {
        // A closed pipe (`dkms --help | head -1`) is not an error worth a panic.
        Parsed::Version => {
            let _ = writeln!(std::io::stdout(), "dkms-{UPSTREAM_VERSION}");
            return 0;
        }
        Parsed::Help => {
            let _ = writeln!(std::io::stdout(), "{}", cli::usage());
            return 0;
        }
        Parsed::Run(req) => req,
    };
    let report = Reporter::new(req.quiet);
    for notice in &req.notices {
        match notice {
            Notice::Deprecated(name) => report.deprecated(name),
            Notice::UnknownWord(word) => {
                report.warn(&format!("I do not know how to handle {word}."))
            }
            Notice::NotUtf8(word) => report.warn(&format!(
                "The argument '{word}' is not valid UTF-8 ('\u{fffd}' marks the bytes that are not): no module, version, kernel or arch can be named by it, so it matches nothing."
            )),
        }
    }
    // The original reads os-release before anything else and stops with 4 without it.
    let result = framework::Settings::load(&req)
        .and_then(|settings| settings.distribution().map(|_| settings))
        .map_err(Error::from)
        .and_then(|settings| commands::run(&req, &settings, &report));
    match result {
        Ok(code) => code,
        Err(e) => {
            report.error(&e.to_string());
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod layers {
    //! The import rules of the house, checked on the source itself.

    use std::path::{Path, PathBuf};

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// Code lines (comments dropped) of every source file below `src/` except those of
    /// `skip` (relative paths or directories).
    fn code_lines(skip: &[&str]) -> Vec<(String, String)> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let mut out = Vec::new();
        for f in files {
            let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
            if skip
                .iter()
                .any(|s| rel == *s || rel.starts_with(&format!("{s}/")))
            {
                continue;
            }
            for line in std::fs::read_to_string(&f).unwrap().lines() {
                if !line.trim_start().starts_with("//") {
                    out.push((rel.clone(), line.to_string()));
                }
            }
        }
        out
    }

    #[test]
    fn only_the_edge_names_the_commands_layer() {
        let offending: Vec<_> = code_lines(&["commands", "lib.rs", "main.rs", "error.rs"])
            .into_iter()
            .filter(|(_, l)| l.contains("crate::commands"))
            .collect();
        assert!(
            offending.is_empty(),
            "a lower layer names the commands: {offending:#?}"
        );
    }

    #[test]
    fn the_module_layer_never_sees_the_command_line() {
        let offending: Vec<_> = code_lines(&[])
            .into_iter()
            .filter(|(f, l)| {
                f.starts_with("module/") && (l.contains("crate::cli") || l.contains("Request"))
            })
            .collect();
        assert!(
            offending.is_empty(),
            "the module layer reads the request: {offending:#?}"
        );
    }
}
