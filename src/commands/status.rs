//! `dkms status [m[/v]] [-k k]... [-a a]... [--json]`: always exit 0.

use super::context::Context;
use crate::commands::error::Result;
use crate::module::sign;
use crate::state::failed::Failure;
use crate::state::status::{
    add_signatures, collect, failure_line, status_json, status_line, Filter, State, StatusEntry,
};

pub fn run(ctx: &Context) -> Result<i32> {
    let opts = ctx.opts;
    let mut entries: Vec<StatusEntry> = Vec::new();
    let base = Filter {
        module: opts.target.module.as_deref(),
        version: opts.target.version.as_deref(),
        ..Filter::default()
    };
    if opts.target.kernels.is_empty() {
        let filter = Filter {
            arch: opts.target.arches.first().map(String::as_str),
            ..base
        };
        entries.extend(collect(ctx.settings, &ctx.opts.conf, &filter));
    } else {
        // One pass per -k, like the original; a single -a applies to every kernel.
        for (j, kernel) in opts.target.kernels.iter().enumerate() {
            let arch = opts
                .target
                .arches
                .get(j)
                .or(opts.target.arches.first())
                .map(String::as_str);
            let filter = Filter {
                kernel: Some(kernel),
                arch,
                ..base.clone()
            };
            entries.extend(collect(ctx.settings, &ctx.opts.conf, &filter));
        }
    }
    let failed: Vec<Failure> = ctx
        .tree
        .failures(
            opts.target.module.as_deref(),
            opts.target.version.as_deref(),
        )
        .into_iter()
        .filter(|f| opts.target.kernels.is_empty() || opts.target.kernels.contains(&f.kernel))
        .collect();
    if opts.output.json {
        let mut reader = sign::StatusSignatures::new(ctx.settings, &ctx.opts.conf);
        add_signatures(&mut entries, &mut reader);
        let trust = super::secureboot::per_certificate(ctx, &entries);
        ctx.report.line(&status_json(&entries, &failed, &trust));
        return Ok(0);
    }
    if opts.output.failed {
        for f in &failed {
            ctx.report.line(&failure_line(f));
        }
        return Ok(0);
    }
    for e in &entries {
        ctx.report.line(&status_line(e));
        if e.state == State::Broken {
            ctx.report.error(&format!(
                "{}/{}: Missing the module source directory or the symbolic link pointing to it.\nManual intervention is required!",
                e.module, e.version
            ));
        }
    }
    // On a terminal only: scripts read these lines, with stderr or without.
    if !failed.is_empty() && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ctx.report.stderr(&format!(
            "dkms: {} failed build(s) remembered; dkms status --failed lists them.",
            failed.len()
        ));
    }
    Ok(0)
}
