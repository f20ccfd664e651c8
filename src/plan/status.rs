//! `dkms status [m[/v]] [-k k]... [-a a]... [--json]`: always exit 0.

use super::Context;
use crate::error::Result;
use crate::report::{status_json, status_line};
use crate::state::status::{collect, Filter, State, StatusEntry};

pub fn run(ctx: &Context) -> Result<i32> {
    let req = ctx.req;
    let mut entries: Vec<StatusEntry> = Vec::new();
    let base = Filter {
        module: req.module.as_deref(),
        version: req.version.as_deref(),
        ..Filter::default()
    };
    if req.kernels.is_empty() {
        let filter = Filter {
            arch: req.arches.first().map(String::as_str),
            ..base
        };
        entries.extend(collect(ctx.settings, &filter));
    } else {
        // One pass per -k, like the original; a single -a applies to every kernel.
        for (j, kernel) in req.kernels.iter().enumerate() {
            let arch = req.arches.get(j).or(req.arches.first()).map(String::as_str);
            let filter = Filter {
                kernel: Some(kernel),
                arch,
                ..base.clone()
            };
            entries.extend(collect(ctx.settings, &filter));
        }
    }
    if req.json {
        crate::state::status::add_signatures(ctx.settings, &mut entries);
        ctx.report.line(&status_json(&entries));
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
    Ok(0)
}
