//! dkms: Dynamic Kernel Module Support, a drop-in replacement for the bash original.
//!
//! Data flows one way: [`cli`] → [`plan`] → ([`conf`], [`kernel`], [`state`]) →
//! [`report`]. [`run`] is the edge: it renders every error exactly once, with the
//! original's exit code.

pub mod bash;
pub mod build;
pub mod cli;
pub mod cmdlog;
pub mod compress;
pub mod conf;
pub mod crashpoint;
pub mod error;
pub mod exit;
pub mod framework;
pub mod fsutil;
pub mod install;
pub mod kernel;
pub mod modinfo;
pub mod plan;
pub mod report;
pub mod sign;
pub mod stamp;
pub mod state;
pub mod transaction;

use cli::{Notice, Parsed};
use error::Error;
use report::Reporter;

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
                report.line(cli::usage());
            }
            return e.exit_code();
        }
    };
    let req = match parsed {
        Parsed::Version => {
            println!("dkms-{UPSTREAM_VERSION}");
            return 0;
        }
        Parsed::Help => {
            println!("{}", cli::usage());
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
        .and_then(|settings| plan::run(&req, &settings, &report));
    match result {
        Ok(code) => code,
        Err(e) => {
            report.error(&e.to_string());
            e.exit_code()
        }
    }
}
