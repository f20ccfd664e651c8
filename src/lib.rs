//! dkms: Dynamic Kernel Module Support, a drop-in replacement for the bash original.
//!
//! Data flows one way: [`cli`] parses the command line into a request; [`commands`]
//! resolves it once ([`commands::Options`]) and does the actions, each on [`module`]
//! operations (one module version on one kernel), which work on [`state`] (the dkms
//! tree) through [`transaction`]s; below them [`conf`] (dkms.conf) and the foundation
//! ([`framework`], [`kernel`], [`sourcing`], [`bash`], [`report`], [`fsutil`]). [`run`]
//! is the edge: it renders every error exactly once, with the original's exit code. The
//! test module `layers` checks these rules on the import graph.

pub mod bash;
pub mod cli;
pub mod cmdlog;
pub mod commands;
pub mod conf;
pub mod crashpoint;
pub mod exit;
pub mod framework;
pub mod fsutil;
pub mod kernel;
pub mod module;
pub mod report;
pub mod scaffold;
pub mod sourcing;
pub mod stamp;
pub mod state;
pub mod transaction;

use cli::{Notice, Parsed};
use commands::error::Error;
use report::Reporter;
use std::io::Write;

pub use cli::UPSTREAM_VERSION;

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
mod layers;
