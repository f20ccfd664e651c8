//! Whether and how modules are signed for one kernel, decided once per kernel before its
//! first build, with the original's messages (reference §5):
//! `try_sign_modules` (`false`, or `not_in_chroot` inside a chroot: no signing), the
//! kernel config and its `CONFIG_MODULE_SIG_HASH`, the signing tool (a configured
//! `sign_file` is honoured; otherwise our in-process signer), the key and certificate
//! (framework settings read lazily with `$kernelver`, Ubuntu's shim MOK, Gentoo's, or
//! `<dkms_tree>/mok.key` + `mok.pub`, generated on first need). Every problem is a
//! warning and an unsigned module, never a failed build.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::keys::{digest, generate};
use super::SigningKey;
use crate::framework::Settings;
use crate::kernel::KernelConfig;
use crate::report::Reporter;

/// How this kernel's modules get signed.
pub enum ModuleSigner {
    InProcess {
        key: SigningKey,
        hash: openssl::hash::MessageDigest,
    },
    External {
        tool: PathBuf,
        hash: String,
        key: String,
        cert: PathBuf,
    },
}

impl ModuleSigner {
    /// The certificate that verifies what this signer signs.
    pub fn cert_path(&self) -> &Path {
        match self {
            ModuleSigner::InProcess { key, .. } => &key.cert_path,
            ModuleSigner::External { cert, .. } => cert,
        }
    }

    /// Sign `module` (a stripped, uncompressed .ko) in place; a failure is a warning.
    pub fn sign(&self, module: &Path, report: &Reporter) {
        report.line(&format!("Signing module {}", module.display()));
        let result = match self {
            ModuleSigner::InProcess { key, hash } => std::fs::read(module)
                .map_err(|e| e.to_string())
                .and_then(|bytes| key.sign_module(&bytes, *hash).map_err(|e| e.to_string()))
                .and_then(|signed| std::fs::write(module, signed).map_err(|e| e.to_string())),
            ModuleSigner::External {
                tool,
                hash,
                key,
                cert,
            } => Command::new(tool)
                .arg(hash)
                .arg(key)
                .arg(cert)
                .arg(module)
                .status()
                .map_err(|e| e.to_string())
                .and_then(|s| {
                    if s.success() {
                        Ok(())
                    } else {
                        Err(format!("{} exited with {s}", tool.display()))
                    }
                }),
        };
        if let Err(e) = result {
            report.warn(&format!(
                "Failed to sign {}: {e}. The module is left unsigned.",
                module.display()
            ));
        }
    }
}

/// Decide for `kernel`; `None` means its modules stay unsigned (the reason was printed).
pub fn prepare(
    settings: &Settings,
    kernel: &str,
    kernel_config: &Path,
    report: &Reporter,
) -> Option<ModuleSigner> {
    let (config, hash) = signing_wanted(settings, kernel_config, report)?;
    let (key, cert) = key_paths(settings, kernel, &config);
    let pkcs11 = key.starts_with("pkcs11:");
    let tool = sign_tool(settings, kernel, pkcs11, report)?;
    report.line(&format!("Signing key: {key}"));
    report.line(&format!("Public certificate (MOK): {}", cert.display()));
    if !pkcs11 {
        ensure_key(&key, &cert, report)?;
    }
    match tool {
        Some(tool) => Some(ModuleSigner::External {
            tool,
            hash,
            key,
            cert,
        }),
        None => in_process(&key, &cert, &hash, report),
    }
}

/// The original's reasons not to sign, in its order (policy, chroot, no kernel config, a
/// kernel without module signing); else the kernel's config and its signature hash.
fn signing_wanted(
    settings: &Settings,
    kernel_config: &Path,
    report: &Reporter,
) -> Option<(KernelConfig, String)> {
    let policy = settings.try_sign_modules.as_str();
    if policy == "false" {
        report.line("Module signing is disabled by policy, modules won't be signed");
        return None;
    }
    if policy != "true" && in_chroot() {
        report.line("Running in chroot, modules won't be signed");
        return None;
    }
    let Some(config) = KernelConfig::read(kernel_config) else {
        report.line(&format!(
            "Kernel config {} not found, modules won't be signed",
            kernel_config.display()
        ));
        return None;
    };
    let Some(hash) = (config
        .get("CONFIG_MODULE_SIG_HASH")
        .filter(|h| !h.is_empty()))
    .map(str::to_string) else {
        report.line("The kernel is built without module signing facility, modules won't be signed");
        return None;
    };
    Some((config, hash))
}

/// The external `sign_file` to run, if one is configured (or a `pkcs11:` key needs the
/// kernel's); `Some(None)` signs in-process; `None` if the tool is missing.
fn sign_tool(
    settings: &Settings,
    kernel: &str,
    pkcs11: bool,
    report: &Reporter,
) -> Option<Option<PathBuf>> {
    let configured = Some(settings.lazy_value("sign_file", kernel)).filter(|t| !t.is_empty());
    let tool = match (configured, pkcs11) {
        (Some(t), _) => Some(PathBuf::from(t)),
        (None, true) => Some(default_sign_file(settings, kernel)),
        (None, false) => None,
    };
    let Some(t) = tool else {
        report.line("Sign command: built-in (the kernel's sign-file format, in-process)");
        return Some(None);
    };
    report.line(&format!("Sign command: {}", t.display()));
    if !t.is_file() || rustix::fs::access(&t, rustix::fs::Access::EXEC_OK).is_err() {
        report.line(&format!(
            "Binary {} not found, modules won't be signed",
            t.display()
        ));
        return None;
    }
    Some(Some(t))
}

/// Create the key pair if either half is missing (once, even for parallel builds).
fn ensure_key(key: &str, cert: &Path, report: &Reporter) -> Option<()> {
    static KEY_CREATION: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _only_one = KEY_CREATION.lock().unwrap_or_else(|e| e.into_inner());
    if Path::new(key).is_file() && cert.is_file() {
        return Some(());
    }
    report.line("Certificate or key are missing, generating self signed certificate for MOK...");
    if let Err(e) = generate(Path::new(key), cert) {
        report.warn(&format!("{e}; modules won't be signed"));
        return None;
    }
    report.line(&enrollment_hint(cert));
    Some(())
}

/// Our own signer, with the key loaded once for the whole build.
fn in_process(key: &str, cert: &Path, hash: &str, report: &Reporter) -> Option<ModuleSigner> {
    let md = match digest(hash) {
        Ok(md) => md,
        Err(e) => {
            report.warn(&format!("{e}; modules won't be signed"));
            return None;
        }
    };
    match SigningKey::load(Path::new(key), cert) {
        Ok(key) => Some(ModuleSigner::InProcess { key, hash: md }),
        Err(e) => {
            report.warn(&format!("{e}; modules won't be signed. Fix the key (mok_signing_key / mok_certificate in /etc/dkms/framework.conf) or remove both files to have a new pair generated."));
            None
        }
    }
}

/// How to make a Secure Boot machine trust the new key (said once, when it is created).
pub fn enrollment_hint(cert: &Path) -> String {
    format!(
        "A new module signing key was created. For a Secure Boot machine to load modules signed with it, enroll its certificate:\n  mokutil --import {}\nthen reboot and confirm the enrollment in MokManager (the blue screen shown at boot).",
        cert.display()
    )
}

/// The key and certificate: framework settings (read with `$kernelver`), else the
/// distribution's, else the dkms tree's `mok.key` / `mok.pub`.
pub fn key_paths(settings: &Settings, kernel: &str, config: &KernelConfig) -> (String, PathBuf) {
    let key = settings.lazy_value("mok_signing_key", kernel);
    let cert = settings.lazy_value("mok_certificate", kernel);
    if !key.is_empty() || !cert.is_empty() {
        let key = if key.is_empty() {
            settings.dkms_tree.join("mok.key").display().to_string()
        } else {
            key
        };
        let cert = if cert.is_empty() {
            settings.dkms_tree.join("mok.pub")
        } else {
            PathBuf::from(cert)
        };
        return (key, cert);
    }
    let distro = settings
        .distribution()
        .map(|d| d.running)
        .unwrap_or_default();
    if distro.starts_with("ubuntu") {
        let dir = settings.sysroot.join("var/lib/shim-signed/mok");
        return (
            dir.join("MOK.priv").display().to_string(),
            dir.join("MOK.der"),
        );
    }
    if distro.starts_with("gentoo") {
        if let (Ok(k), Ok(c)) = (
            std::env::var("MODULES_SIGN_KEY"),
            std::env::var("MODULES_SIGN_CERT"),
        ) {
            return (k, PathBuf::from(c));
        }
        if let Some(k) = config
            .get("CONFIG_MODULE_SIG_KEY")
            .filter(|k| !k.is_empty())
        {
            return (k.to_string(), PathBuf::from(k));
        }
    }
    (
        settings.dkms_tree.join("mok.key").display().to_string(),
        settings.dkms_tree.join("mok.pub"),
    )
}

/// The kernel's own `sign-file` (needed for `pkcs11:` keys): Debian's linux-kbuild, else
/// the kernel build tree's.
fn default_sign_file(settings: &Settings, kernel: &str) -> PathBuf {
    let kbuild = kernel
        .rsplit_once('.')
        .map(|(base, _)| base)
        .unwrap_or(kernel);
    let debian = settings
        .sysroot
        .join(format!("usr/lib/linux-kbuild-{kbuild}/scripts/sign-file"));
    if debian.is_file() {
        return debian;
    }
    settings
        .install_tree
        .join(kernel)
        .join("build/scripts/sign-file")
}

/// The original's chroot detection: `FAKECHROOT=true`, or a root directory that is not
/// the one of process 1.
pub fn in_chroot() -> bool {
    if std::env::var("FAKECHROOT").is_ok_and(|v| v == "true") {
        return true;
    }
    let stat = |p: &str| {
        std::fs::metadata(p).map(|m| {
            (
                std::os::unix::fs::MetadataExt::dev(&m),
                std::os::unix::fs::MetadataExt::ino(&m),
            )
        })
    };
    match (stat("/"), stat("/proc/1/root")) {
        (Ok(ours), Ok(init)) => ours != init,
        _ => false,
    }
}
