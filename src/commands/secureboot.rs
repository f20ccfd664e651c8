//! `dkms secureboot [--enroll [--root-pw]] [--json] [-k KERNEL]`: whether this machine
//! loads modules signed with dkms's key, the certificate as MokManager shows it, the
//! modules signed with it; `--enroll` queues it with the distribution's tool. And the one
//! line an install prints when it signed modules that will not load here.

use std::path::{Path, PathBuf};

use super::context::Context;
use crate::commands::error::{ActionError, Result};
use crate::exit;
use crate::module::trust::{self, Report, State};
use crate::state::status::{collect, Filter};

/// The certificate modules for `kernel` are signed with (the framework's, the
/// distribution's, or the dkms tree's).
pub(crate) fn certificate(ctx: &Context, kernel: &str) -> PathBuf {
    let config =
        crate::kernel::KernelConfig::read(&ctx.kernel_dirs(kernel).config).unwrap_or_default();
    crate::module::sign::policy::key_paths(ctx.settings, kernel, &config).1
}

pub fn run(ctx: &Context) -> Result<i32> {
    let kernel = ctx
        .opts
        .target
        .kernels
        .first()
        .cloned()
        .unwrap_or_else(|| ctx.settings.current_kernel.clone());
    let cert = certificate(ctx, &kernel);
    let report = trust::assess(&ctx.settings.sysroot, &cert).map_err(key_error)?;
    if ctx.opts.secureboot.enroll {
        return enroll(ctx, &report);
    }
    let signed = signed_with(ctx, &cert);
    if ctx.opts.output.json {
        let doc = serde_json::json!({
            "schema": crate::state::status::STATUS_SCHEMA,
            "secure_boot": [report_json(&report, &signed)],
        });
        ctx.report
            .line(&serde_json::to_string_pretty(&doc).expect("report serializes"));
    } else {
        print(ctx, &report, &signed);
    }
    Ok(if report.state.trusted(report.enforced) {
        exit::SUCCESS
    } else {
        exit::KEY_NOT_TRUSTED
    })
}

fn key_error(e: trust::SecureBootError) -> crate::commands::error::Error {
    ActionError::Key(e.to_string()).into()
}

/// The report as `status --json` and `secureboot --json` give it.
pub(crate) fn report_json(report: &Report, signed: &[String]) -> serde_json::Value {
    let mut v = serde_json::to_value(report).expect("report serializes");
    v["trusted"] = report.state.trusted(report.enforced).into();
    v["modules"] = signed.into();
    v
}

/// `m/v, kernel, arch: state` of every installed or built module signed with `cert`.
fn signed_with(ctx: &Context, cert: &Path) -> Vec<String> {
    let mut entries = collect(ctx.settings, &ctx.opts.conf, &Filter::default());
    let mut reader = crate::module::sign::StatusSignatures::new(ctx.settings, &ctx.opts.conf);
    crate::state::status::add_signatures(&mut entries, &mut reader);
    signed_in(&entries, cert)
}

fn signed_in(entries: &[crate::state::status::StatusEntry], cert: &Path) -> Vec<String> {
    entries
        .iter()
        .filter(|e| {
            e.modules.iter().any(|m| {
                m.signature
                    .as_ref()
                    .and_then(|s| s.key.as_deref())
                    .is_some_and(|k| k == cert)
            })
        })
        .map(|e| {
            format!(
                "{}/{}, {}, {}: {}",
                e.module,
                e.version,
                e.kernel.as_deref().unwrap_or(""),
                e.arch.as_deref().unwrap_or(""),
                serde_json::to_value(e.state)
                    .ok()
                    .and_then(|s| s.as_str().map(str::to_string))
                    .unwrap_or_default()
            )
        })
        .collect()
}

fn print(ctx: &Context, r: &Report, signed: &[String]) {
    let on_off = |b: Option<bool>| match b {
        Some(true) => "on",
        Some(false) => "off",
        None => "unknown",
    };
    let line = |t: String| ctx.report.line(&t);
    if r.efi {
        line(format!(
            "Secure Boot: {} (setup mode {}){}",
            on_off(r.secure_boot),
            on_off(r.setup_mode),
            if r.shim_validation_disabled {
                "; shim's validation disabled"
            } else {
                ""
            }
        ));
    } else {
        line("Secure Boot: not an EFI machine".into());
    }
    line(format!(
        "Module signature enforcement: {}",
        if r.enforced { "on" } else { "off" }
    ));
    let c = &r.certificate;
    line(format!("Signing certificate: {}", c.path.display()));
    line(format!("  subject: {}", c.subject));
    line(format!(
        "  key id: {}",
        c.key_id.as_deref().unwrap_or("(none)")
    ));
    line(format!("  SHA-256 fingerprint: {}", c.sha256));
    line(format!("State: {}", words(r)));
    for p in &r.problems {
        ctx.report.warn(&format!("cannot read {p}"));
    }
    if signed.is_empty() {
        line("Modules signed with it: none".into());
    } else {
        line("Modules signed with it:".into());
        for s in signed {
            line(format!("  {s}"));
        }
    }
}

/// The state in words, with what to do.
pub(crate) fn words(r: &Report) -> String {
    match r.state {
        State::Enrolled => "enrolled: modules signed with it load.".into(),
        State::Pending => "pending: queued with mokutil; at the next boot MokManager asks to enroll it (choose Enroll MOK, Continue, Yes, and type the password given then).".into(),
        State::NotEnrolled => "not enrolled: Secure Boot is on and the firmware does not know this key, so modules signed with it will not load (\"Key was rejected by service\").\n  Fix: dkms secureboot --enroll, then reboot and confirm in MokManager.".into(),
        State::SecureBootOff if r.enforced => "Secure Boot is off, but the kernel enforces module signatures: it loads only modules signed with a key it holds, and it does not hold this one.".into(),
        State::SecureBootOff => "Secure Boot is off: modules load whether signed or not; nothing to enroll.".into(),
        State::NoEfi if r.enforced => "not an EFI machine, and the kernel enforces module signatures: only keys built into the kernel are trusted.".into(),
        State::NoEfi => "not an EFI machine: modules load whether signed or not; nothing to enroll.".into(),
    }
}

/// Queue the certificate for the next boot with the distribution's tool.
fn enroll(ctx: &Context, r: &Report) -> Result<i32> {
    match r.state {
        State::Enrolled => {
            ctx.report
                .line("The key is enrolled already: nothing to do.");
            return Ok(exit::SUCCESS);
        }
        State::Pending => {
            ctx.report
                .line("The key is queued already: reboot, and confirm it in MokManager.");
            return Ok(exit::SUCCESS);
        }
        State::SecureBootOff | State::NoEfi if !r.enforced => {
            ctx.report.line(&format!(
                "{} It can still be queued for when Secure Boot is turned on.",
                words(r)
            ));
        }
        _ => {}
    }
    let sysroot = &ctx.settings.sysroot;
    let ubuntu_key = sysroot.join("var/lib/shim-signed/mok/MOK.der");
    let policy = sysroot.join("usr/sbin/update-secureboot-policy");
    let mut cmd = if r.certificate.path == ubuntu_key && policy.is_file() {
        // Ubuntu's own key and tool, as the original picks them.
        let mut c = std::process::Command::new(&policy);
        c.arg("--enroll-key");
        c
    } else {
        let der = der_file(ctx, r)?;
        let mut c = std::process::Command::new("mokutil");
        c.arg("--import").arg(&der);
        if ctx.opts.secureboot.root_pw {
            c.arg("--root-pw");
        } else if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            return Err(ActionError::Key("mokutil asks for a one-time password, which MokManager asks for again at the next boot: run dkms secureboot --enroll on a terminal, or add --root-pw to use root's password instead.".into()).into());
        }
        c
    };
    let status = cmd.status().map_err(|e| {
        ActionError::Key(format!(
            "Cannot run {:?}: {e}\nInstall mokutil (apt-get install mokutil, pacman -S mokutil, dnf install mokutil).",
            cmd.get_program()
        ))
    })?;
    if !status.success() {
        return Err(ActionError::Key(format!(
            "{:?} failed ({status}); the key is not queued.",
            cmd.get_program()
        ))
        .into());
    }
    ctx.report.line(&format!(
        "The key {} is queued. At the next boot, MokManager (a blue screen) asks to enroll it: choose Enroll MOK, Continue, Yes, then type {}.",
        r.certificate.path.display(),
        if ctx.opts.secureboot.root_pw { "root's password" } else { "the password you just chose" }
    ));
    Ok(exit::SUCCESS)
}

/// The certificate as DER (mokutil takes nothing else): the file itself, or a DER copy
/// beside the dkms tree's temporary files.
fn der_file(ctx: &Context, r: &Report) -> Result<PathBuf> {
    let bytes = std::fs::read(&r.certificate.path).unwrap_or_default();
    if bytes == r.certificate.der {
        return Ok(r.certificate.path.clone());
    }
    let der = ctx.settings.dkms_tree.join("mok-enroll.der");
    std::fs::write(&der, &r.certificate.der)
        .map_err(|e| ActionError::Key(format!("Cannot write {}: {e}", der.display())))?;
    Ok(der)
}

/// `status --json`'s `secure_boot`: each certificate the listed kernels sign with (the
/// running kernel's when none is listed), with its state; certificates that do not
/// exist yet (nothing signed) are left out.
pub(crate) fn per_certificate(
    ctx: &Context,
    entries: &[crate::state::status::StatusEntry],
) -> Vec<serde_json::Value> {
    let mut kernels: Vec<String> = entries.iter().filter_map(|e| e.kernel.clone()).collect();
    kernels.push(ctx.settings.current_kernel.clone());
    let mut certs: Vec<PathBuf> = kernels.iter().map(|k| certificate(ctx, k)).collect();
    certs.sort();
    certs.dedup();
    certs
        .iter()
        .filter_map(|c| trust::assess(&ctx.settings.sysroot, c).ok())
        .map(|r| {
            let signed = signed_in(entries, &r.certificate.path);
            report_json(&r, &signed)
        })
        .collect()
}

/// After an install that signed modules: one line when this machine will not load them.
pub(crate) fn warn_if_untrusted(ctx: &Context, cert: &Path) {
    let Ok(r) = trust::assess(&ctx.settings.sysroot, cert) else {
        return;
    };
    if !r.state.trusted(r.enforced) {
        ctx.report.warn(&format!(
            "the modules were signed with {}, which this machine does not trust yet: {}",
            cert.display(),
            words(&r)
        ));
    }
}

/// `dkms generate_mok`: create the signing key pair if it does not exist yet.
pub(super) fn generate_mok(ctx: &Context) -> Result<i32> {
    let kernel = ctx
        .opts
        .target
        .kernels
        .first()
        .cloned()
        .unwrap_or_else(|| ctx.settings.current_kernel.clone());
    let config =
        crate::kernel::KernelConfig::read(&ctx.kernel_dirs(&kernel).config).unwrap_or_default();
    let (key, cert) = crate::module::sign::policy::key_paths(ctx.settings, &kernel, &config);
    ctx.report.line(&format!("Signing key: {key}"));
    ctx.report
        .line(&format!("Public certificate (MOK): {}", cert.display()));
    if key.starts_with("pkcs11:") || (std::path::Path::new(&key).is_file() && cert.is_file()) {
        ctx.report
            .line("The signing key and certificate already exist.");
        return Ok(0);
    }
    ctx.report
        .line("Certificate or key are missing, generating self signed certificate for MOK...");
    crate::module::sign::generate(std::path::Path::new(&key), &cert)
        .map_err(|e| ActionError::Key(e.to_string()))?;
    ctx.report
        .line(&crate::module::sign::policy::enrollment_hint(&cert));
    Ok(0)
}
