//! `dkms status [m[/v]] [-k k]... [-a a]... [--json]`: always exit 0.

use super::Context;
use crate::error::Result;
use crate::framework::Settings;
use crate::module::sign;
use crate::state::status::Signature;
use crate::state::status::{collect, status_json, status_line, Filter, State, StatusEntry};

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
        add_signatures(ctx.settings, &mut entries);
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

/// Read the signatures of every module of `entries` (decompressing as needed).
pub fn add_signatures(settings: &Settings, entries: &mut [StatusEntry]) {
    for e in entries.iter_mut() {
        let Some(kernel) = e.kernel.clone() else {
            continue;
        };
        let build = crate::kernel::build_dir(settings, None, &kernel);
        let config = crate::kernel::KernelConfig::read(&crate::kernel::config_file(&build, None))
            .unwrap_or_default();
        let (_, cert) = sign::policy::key_paths(settings, &kernel, &config);
        for m in &mut e.modules {
            let Some(file) = m.installed.clone().or_else(|| m.built.clone()) else {
                continue;
            };
            let Ok(bytes) = crate::module::compress::read_module(&file) else {
                continue;
            };
            m.signature = Some(match sign::signer_of(&bytes) {
                Some(s) => Signature {
                    signed: true,
                    key: s.is(&cert).then(|| cert.clone()),
                    signer: Some(s.issuer()),
                    serial: Some(s.serial_hex),
                },
                None => Signature {
                    signed: false,
                    signer: None,
                    serial: None,
                    key: None,
                },
            });
        }
    }
}
