//! `dkms status [m[/v]] [-k k]... [-a a]... [--json]`: always exit 0.

use super::Context;
use crate::error::Result;
use crate::framework::Settings;
use crate::module::sign;
use crate::state::failed::Failure;
use crate::state::status::Signature;
use crate::state::status::{
    collect, failure_line, status_json, status_line, Filter, State, StatusEntry,
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
        add_signatures(ctx.settings, &ctx.opts.conf, &mut entries);
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

/// Read the signatures of every module of `entries`: each kernel's certificate is
/// looked up once, each module read from its end (see [`sign::signer_of_file`]).
pub fn add_signatures(
    settings: &Settings,
    overrides: &crate::conf::ConfOverrides,
    entries: &mut [StatusEntry],
) {
    let mut certs: std::collections::BTreeMap<String, Option<sign::Certificate>> =
        Default::default();
    for e in entries.iter_mut() {
        let Some(kernel) = e.kernel.clone() else {
            continue;
        };
        let cert = certs.entry(kernel.clone()).or_insert_with(|| {
            let dirs = overrides.kernel_dirs(settings, &kernel);
            let config = crate::kernel::KernelConfig::read(&dirs.config).unwrap_or_default();
            let (_, path) = sign::policy::key_paths(settings, &kernel, &config);
            sign::Certificate::read(&path)
        });
        for m in &mut e.modules {
            let Some(file) = m.installed.clone().or_else(|| m.built.clone()) else {
                continue;
            };
            let Ok(signer) = sign::signer_of_file(&file) else {
                continue;
            };
            m.signature = Some(match signer {
                Some(s) => Signature {
                    signed: true,
                    key: cert.as_ref().filter(|c| s.is_of(c)).map(|c| c.path.clone()),
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
