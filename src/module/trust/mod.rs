//! Whether the machine will load modules signed with dkms's key: the firmware's Secure
//! Boot state, shim's, and where the signing certificate stands — held by the kernel
//! (`/proc/keys`), in the enrolled MOK list (`MokListRT`), or queued for the next boot
//! (`MokNew`, what `mokutil --import` writes) — read directly, without `mokutil`.
//!
//! Why: the most reported dkms failure on Secure Boot machines is a module that builds,
//! installs and then will not load ("Key was rejected by service") because the key was
//! never enrolled; the original says nothing about it. All paths are under the sysroot,
//! so a scratch root answers for itself.

pub mod efi;
pub mod keys;

use std::path::{Path, PathBuf};

use openssl::hash::MessageDigest;
use openssl::x509::X509;
use serde::Serialize;

use efi::{Entry, Firmware, GLOBAL, SHIM};

/// Why the state could not be told.
#[derive(Debug, thiserror::Error)]
pub enum SecureBootError {
    #[error(
        "Cannot read the signing certificate {path}: {source}\nCreate it with: dkms generate_mok"
    )]
    NoCertificate {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is neither a DER nor a PEM X.509 certificate.")]
    NotACertificate(PathBuf),
}

/// The signing certificate, as a user compares it with what MokManager shows.
#[derive(Debug, Clone, Serialize)]
pub struct CertInfo {
    pub path: PathBuf,
    pub subject: String,
    /// subjectKeyIdentifier, hex: how the kernel names the key (`/proc/keys`, dmesg).
    pub key_id: Option<String>,
    /// SHA-256 of the DER certificate, as `mokutil --list-enrolled` prints it.
    pub sha256: String,
    #[serde(skip)]
    pub der: Vec<u8>,
}

impl CertInfo {
    pub fn read(path: &Path) -> Result<CertInfo, SecureBootError> {
        let bytes = std::fs::read(path).map_err(|source| SecureBootError::NoCertificate {
            path: path.to_path_buf(),
            source,
        })?;
        let cert = X509::from_der(&bytes)
            .or_else(|_| X509::from_pem(&bytes))
            .map_err(|_| SecureBootError::NotACertificate(path.to_path_buf()))?;
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let der = cert
            .to_der()
            .map_err(|_| SecureBootError::NotACertificate(path.to_path_buf()))?;
        Ok(CertInfo {
            path: path.to_path_buf(),
            subject: crate::module::sign::name_text(cert.subject_name()),
            key_id: cert.subject_key_id().map(|id| hex(id.as_slice())),
            sha256: cert
                .digest(MessageDigest::sha256())
                .map(|d| hex(&d))
                .unwrap_or_default(),
            der,
        })
    }
}

/// Where the machine stands with the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Secure Boot is off (or shim's validation is disabled): modules load unsigned
    /// unless the kernel enforces signatures itself (`enforced`).
    SecureBootOff,
    /// The kernel holds the key, or it is in the enrolled MOK list.
    Enrolled,
    /// Queued with `mokutil --import`: MokManager asks for it at the next boot.
    Pending,
    /// Secure Boot is on and the key is nowhere: modules signed with it will not load.
    NotEnrolled,
    /// Not booted by UEFI: only a kernel that enforces signatures cares, and it trusts
    /// its built-in keys.
    NoEfi,
}

impl State {
    /// Whether modules signed with the certificate load on this machine now (or will
    /// after the next boot, for `Pending`: not yet).
    pub fn trusted(self, enforced: bool) -> bool {
        match self {
            State::Enrolled => true,
            State::SecureBootOff | State::NoEfi => !enforced,
            State::Pending | State::NotEnrolled => false,
        }
    }
}

/// Everything that was read, for `dkms secureboot` and `status --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub state: State,
    pub certificate: CertInfo,
    pub efi: bool,
    /// The firmware's `SecureBoot` and `SetupMode`, when readable.
    pub secure_boot: Option<bool>,
    pub setup_mode: Option<bool>,
    /// shim's validation disabled (`mokutil --disable-validation`: MokSBStateRT).
    pub shim_validation_disabled: bool,
    /// The kernel refuses unsigned modules (`module.sig_enforce`, or lockdown).
    pub enforced: bool,
    pub in_kernel_keys: bool,
    pub in_mok_list: bool,
    pub in_mok_new: bool,
    /// A MOK variable that could not be read (truncated, no X.509 entries), said once.
    pub problems: Vec<String>,
}

/// Where the machine at `sysroot` stands with the certificate at `cert`.
pub fn assess(sysroot: &Path, cert: &Path) -> Result<Report, SecureBootError> {
    let certificate = CertInfo::read(cert)?;
    let fw = Firmware::of(sysroot);
    let mut problems = Vec::new();
    let in_mok_list = holds(
        fw.mok_list("MokListRT"),
        "MokListRT",
        &certificate,
        &mut problems,
    );
    let in_mok_new = holds(
        fw.var("MokNew", SHIM),
        "MokNew",
        &certificate,
        &mut problems,
    );
    let keys = std::fs::read_to_string(sysroot.join("proc/keys")).unwrap_or_default();
    let in_kernel_keys = certificate
        .key_id
        .as_deref()
        .is_some_and(|id| keys::holding(&keys::parse(&keys), id).is_some());
    let secure_boot = fw.flag("SecureBoot", GLOBAL);
    let shim_validation_disabled = fw.flag("MokSBStateRT", SHIM).unwrap_or(false);
    let efi = fw.is_efi();
    let enforced = enforced(sysroot);
    let unreadable = efi && !fw.has_efivars();
    if unreadable {
        problems.push("the firmware's variables: efivarfs is not mounted (mount -t efivarfs efivarfs /sys/firmware/efi/efivars); the state is told from the kernel alone".into());
    }
    let state = if !efi {
        State::NoEfi
    } else if unreadable {
        // Without the variables, the kernel's keys and its enforcement tell.
        match (in_kernel_keys, enforced) {
            (true, _) => State::Enrolled,
            (false, true) => State::NotEnrolled,
            (false, false) => State::SecureBootOff,
        }
    } else if secure_boot != Some(true) || shim_validation_disabled {
        State::SecureBootOff
    } else if in_kernel_keys || in_mok_list {
        State::Enrolled
    } else if in_mok_new {
        State::Pending
    } else {
        State::NotEnrolled
    };
    Ok(Report {
        state,
        certificate,
        efi,
        secure_boot,
        setup_mode: fw.flag("SetupMode", GLOBAL),
        shim_validation_disabled,
        enforced,
        in_kernel_keys,
        in_mok_list,
        in_mok_new,
        problems,
    })
}

/// Whether the signature lists in `data` (the variable `name`) hold the certificate; a
/// list that does not read is a problem, said once, and holds nothing.
fn holds(data: Option<Vec<u8>>, name: &str, cert: &CertInfo, problems: &mut Vec<String>) -> bool {
    let Some(data) = data else {
        return false;
    };
    match efi::entries(&data) {
        Ok(entries) => entries
            .iter()
            .any(|e| matches!(e, Entry::X509(der) if *der == cert.der)),
        Err(e) => {
            problems.push(format!("{name}: {e}"));
            false
        }
    }
}

/// Whether the running kernel refuses unsigned modules: its `sig_enforce` parameter (set
/// by `module.sig_enforce=1`, by CONFIG_MODULE_SIG_FORCE, and by Secure Boot lockdown).
fn enforced(sysroot: &Path) -> bool {
    let param = sysroot.join("sys/module/module/parameters/sig_enforce");
    if let Ok(v) = std::fs::read_to_string(param) {
        return v.trim() == "Y";
    }
    std::fs::read_to_string(sysroot.join("proc/cmdline"))
        .is_ok_and(|c| c.split_whitespace().any(|w| w == "module.sig_enforce=1"))
}
