//! Module signing in the kernel's format, and the signing key ([`policy`] decides when).
//!
//! A signed module is `<module bytes><PKCS#7 signature><struct module_signature>
//! "~Module signature appended~\n"`. The signature is a detached CMS SignedData with
//! no signed attributes and the signer identified by issuer and serial number, over
//! the whole (stripped, uncompressed) module, with the hash of the kernel's
//! `CONFIG_MODULE_SIG_HASH`. [`SigningKey::sign_module`] makes exactly the calls of the kernel's
//! `scripts/sign-file.c` (`CMS_sign` + `CMS_add1_signer` + `CMS_final`); the rust
//! openssl crate wraps only the first, so the other two are declared here. A test
//! checks the output byte for byte against Debian's `sign-file`.
//!
//! Keys are made like the original's `openssl req -x509 -newkey rsa:2048 ...`: RSA-2048,
//! `CN=DKMS module signing key`, 36500 days, extendedKeyUsage codeSigning; the key as
//! PEM (mode 0600), the certificate as DER.

mod keys;
pub mod policy;

pub use keys::{digest, generate};

/// The signatures `status --json` shows: each module read from its end, each kernel's
/// certificate (the dkms MOK the kernel's config points at) looked up once.
pub struct StatusSignatures<'a> {
    settings: &'a crate::framework::Settings,
    overrides: &'a crate::conf::ConfOverrides,
    certs: std::collections::BTreeMap<String, Option<Certificate>>,
}

impl<'a> StatusSignatures<'a> {
    pub fn new(
        settings: &'a crate::framework::Settings,
        overrides: &'a crate::conf::ConfOverrides,
    ) -> StatusSignatures<'a> {
        StatusSignatures {
            settings,
            overrides,
            certs: Default::default(),
        }
    }
}

impl crate::state::status::SignatureReader for StatusSignatures<'_> {
    fn read(&mut self, kernel: &str, file: &Path) -> Option<crate::state::status::Signature> {
        let (settings, overrides) = (self.settings, self.overrides);
        let cert = self.certs.entry(kernel.to_string()).or_insert_with(|| {
            let dirs = overrides.kernel_dirs(settings, kernel);
            let config = crate::kernel::KernelConfig::read(&dirs.config).unwrap_or_default();
            let (_, path) = policy::key_paths(settings, kernel, &config);
            Certificate::read(&path)
        });
        let signer = signer_of_file(file).ok()?;
        Some(match signer {
            Some(s) => crate::state::status::Signature {
                signed: true,
                key: cert.as_ref().filter(|c| s.is_of(c)).map(|c| c.path.clone()),
                signer: Some(s.issuer()),
                serial: Some(s.serial_hex),
            },
            None => crate::state::status::Signature {
                signed: false,
                signer: None,
                serial: None,
                key: None,
            },
        })
    }
}

use std::ffi::{c_int, c_uint, c_void};
use std::path::{Path, PathBuf};
use std::ptr;

use foreign_types::ForeignType;
use openssl::bn::BigNum;
use openssl::cms::CmsContentInfo;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use thiserror::Error;

/// `~Module signature appended~\n`, the kernel's MODULE_SIG_STRING.
pub const MAGIC: &[u8] = b"~Module signature appended~\n";
/// `PKEY_ID_PKCS7` in `struct module_signature`.
const PKEY_ID_PKCS7: u8 = 2;

extern "C" {
    fn CMS_add1_signer(
        cms: *mut openssl_sys::CMS_ContentInfo,
        signer: *mut openssl_sys::X509,
        pk: *mut openssl_sys::EVP_PKEY,
        md: *const openssl_sys::EVP_MD,
        flags: c_uint,
    ) -> *mut c_void;
    fn CMS_final(
        cms: *mut openssl_sys::CMS_ContentInfo,
        data: *mut openssl_sys::BIO,
        dcont: *mut openssl_sys::BIO,
        flags: c_uint,
    ) -> c_int;
}

#[derive(Debug, Error)]
pub enum SignError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot use the signing key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("cannot use the certificate {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("the certificate {cert} does not belong to the key {key}")]
    Mismatch { key: PathBuf, cert: PathBuf },
    #[error("unknown module signature hash '{0}' (CONFIG_MODULE_SIG_HASH)")]
    Hash(String),
    #[error("cannot create the key pair {key} / {cert}: {reason}")]
    Generate {
        key: PathBuf,
        cert: PathBuf,
        reason: String,
    },
    #[error("signing failed: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
}

/// A private key and its certificate, loaded and checked to match.
pub struct SigningKey {
    pub key_path: PathBuf,
    pub cert_path: PathBuf,
    key: PKey<Private>,
    cert: X509,
}

impl SigningKey {
    /// Load a PEM (or DER) private key — with `KBUILD_SIGN_PIN` as its passphrase if it
    /// is protected, like sign-file — and a DER (or PEM) certificate.
    pub fn load(key_path: &Path, cert_path: &Path) -> Result<SigningKey, SignError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| SignError::Read {
                path: p.into(),
                source,
            })
        };
        let key_bytes = read(key_path)?;
        let pin = std::env::var("KBUILD_SIGN_PIN").ok();
        let key = match &pin {
            Some(pin) => PKey::private_key_from_pem_passphrase(&key_bytes, pin.as_bytes()),
            None => PKey::private_key_from_pem_callback(&key_bytes, |_| Ok(0)),
        }
        .or_else(|_| PKey::private_key_from_der(&key_bytes))
        .map_err(|e| SignError::Key {
            path: key_path.into(),
            reason: if pin.is_none() && String::from_utf8_lossy(&key_bytes).contains("ENCRYPTED") {
                "it is protected by a passphrase; set KBUILD_SIGN_PIN".into()
            } else {
                e.to_string()
            },
        })?;
        let cert_bytes = read(cert_path)?;
        let cert = X509::from_der(&cert_bytes)
            .or_else(|_| X509::from_pem(&cert_bytes))
            .map_err(|e| SignError::Cert {
                path: cert_path.into(),
                reason: e.to_string(),
            })?;
        let matches = cert
            .public_key()
            .map(|p| p.public_eq(&key))
            .unwrap_or(false);
        if !matches {
            return Err(SignError::Mismatch {
                key: key_path.into(),
                cert: cert_path.into(),
            });
        }
        Ok(SigningKey {
            key_path: key_path.into(),
            cert_path: cert_path.into(),
            key,
            cert,
        })
    }

    /// The certificate's serial number, as lowercase hex.
    pub fn serial_hex(&self) -> String {
        serial_hex(&self.cert)
    }

    pub fn subject(&self) -> String {
        name_text(self.cert.subject_name())
    }

    /// `module` followed by its signature, in the kernel's format.
    pub fn sign_module(&self, module: &[u8], md: MessageDigest) -> Result<Vec<u8>, SignError> {
        let signature = self.cms_signature(module, md)?;
        let mut out = Vec::with_capacity(module.len() + signature.len() + 40);
        out.extend_from_slice(module);
        out.extend_from_slice(&signature);
        // struct module_signature: algo, hash, id_type, signer_len, key_id_len, __pad[3],
        // __be32 sig_len.
        out.extend_from_slice(&[0, 0, PKEY_ID_PKCS7, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&(signature.len() as u32).to_be_bytes());
        out.extend_from_slice(MAGIC);
        Ok(out)
    }

    /// The detached CMS signature exactly as `sign-file` makes it.
    fn cms_signature(&self, data: &[u8], md: MessageDigest) -> Result<Vec<u8>, SignError> {
        use openssl_sys::{
            CMS_BINARY, CMS_DETACHED, CMS_NOATTR, CMS_NOCERTS, CMS_NOSMIMECAP, CMS_PARTIAL,
            CMS_STREAM,
        };
        unsafe {
            let cms = openssl_sys::CMS_sign(
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                CMS_NOCERTS | CMS_PARTIAL | CMS_BINARY | CMS_DETACHED | CMS_STREAM,
            );
            if cms.is_null() {
                return Err(openssl::error::ErrorStack::get().into());
            }
            // Owned from here on: freed on every path.
            let cms = CmsContentInfo::from_ptr(cms);
            let signer = CMS_add1_signer(
                cms.as_ptr(),
                self.cert.as_ptr(),
                self.key.as_ptr(),
                md.as_ptr(),
                CMS_NOCERTS | CMS_BINARY | CMS_NOSMIMECAP | CMS_NOATTR,
            );
            if signer.is_null() {
                return Err(openssl::error::ErrorStack::get().into());
            }
            let len = c_int::try_from(data.len())
                .map_err(|_| SignError::Hash("module too large".into()))?;
            let bio = openssl_sys::BIO_new_mem_buf(data.as_ptr() as *const c_void, len);
            if bio.is_null() {
                return Err(openssl::error::ErrorStack::get().into());
            }
            let ok = CMS_final(cms.as_ptr(), bio, ptr::null_mut(), CMS_NOCERTS | CMS_BINARY);
            openssl_sys::BIO_free_all(bio);
            if ok != 1 {
                return Err(openssl::error::ErrorStack::get().into());
            }
            Ok(cms.to_der()?)
        }
    }
}

fn serial_hex(cert: &X509) -> String {
    cert.serial_number()
        .to_bn()
        .map(|b| b.to_hex_str().map(|s| s.to_lowercase()).unwrap_or_default())
        .unwrap_or_default()
}

pub fn name_text(name: &openssl::x509::X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let field = e.object().nid().short_name().unwrap_or("?");
            format!("{field}={}", e.data().to_string().unwrap_or_default())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Who signed a module: the signer's issuer name (DER) and serial from the PKCS#7
/// SignerInfo, read from the signature appended to the (uncompressed) module.
#[derive(Debug, Clone, PartialEq)]
pub struct Signer {
    pub issuer_der: Vec<u8>,
    pub serial_hex: String,
}

/// A signing certificate (DER or PEM), as far as telling its signatures needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Certificate {
    pub path: PathBuf,
    pub issuer_der: Vec<u8>,
    pub serial_hex: String,
}

impl Certificate {
    /// The certificate in `path`, if it reads as one.
    pub fn read(path: &Path) -> Option<Certificate> {
        let bytes = std::fs::read(path).ok()?;
        let cert = X509::from_der(&bytes)
            .or_else(|_| X509::from_pem(&bytes))
            .ok()?;
        Some(Certificate {
            path: path.to_path_buf(),
            issuer_der: cert.issuer_name().to_der().ok()?,
            serial_hex: serial_hex(&cert),
        })
    }
}

impl Signer {
    /// Whether `key`'s certificate made this signature.
    pub fn is(&self, cert_path: &Path) -> bool {
        Certificate::read(cert_path).is_some_and(|c| self.is_of(&c))
    }

    /// Whether `cert` made this signature (its issuer and serial are the SignerInfo's).
    pub fn is_of(&self, cert: &Certificate) -> bool {
        cert.issuer_der == self.issuer_der && cert.serial_hex == self.serial_hex
    }

    /// The issuer as text (`CN=...`).
    pub fn issuer(&self) -> String {
        openssl::x509::X509Name::from_der(&self.issuer_der)
            .map(|n| name_text(&n))
            .unwrap_or_default()
    }
}

/// The signer of the module in `path`. An uncompressed module is read from its end only
/// (the signature is appended last), so a status of thousands of modules stays cheap; a
/// compressed one is decompressed whole, as the kernel does.
pub fn signer_of_file(path: &Path) -> std::io::Result<Option<Signer>> {
    use std::io::{Read, Seek, SeekFrom};
    let compressed = crate::module::compress::Compression::of_file(path)
        != crate::module::compress::Compression::None;
    if compressed {
        return Ok(signer_of(&crate::module::compress::read_module(path)?));
    }
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let trailer = (MAGIC.len() + 12) as u64;
    if len < trailer {
        return Ok(None);
    }
    let mut tail = vec![0u8; trailer as usize];
    file.seek(SeekFrom::Start(len - trailer))?;
    file.read_exact(&mut tail)?;
    if !tail.ends_with(MAGIC) || tail[2] != PKEY_ID_PKCS7 {
        return Ok(None);
    }
    let sig_len = u64::from(u32::from_be_bytes(tail[8..12].try_into().expect("4 bytes")));
    if sig_len > len - trailer {
        return Ok(None);
    }
    let mut signed = vec![0u8; (sig_len + trailer) as usize];
    file.seek(SeekFrom::Start(len - trailer - sig_len))?;
    file.read_exact(&mut signed)?;
    Ok(signer_of(&signed))
}

/// The signer of a module image, or `None` if it carries no (PKCS#7) signature.
pub fn signer_of(module: &[u8]) -> Option<Signer> {
    let body = module.strip_suffix(MAGIC)?;
    let (body, info) = body.split_at(body.len().checked_sub(12)?);
    if info[2] != PKEY_ID_PKCS7 {
        return None;
    }
    let sig_len = u32::from_be_bytes(info[8..12].try_into().ok()?) as usize;
    let sig = &body[body.len().checked_sub(sig_len)?..];
    parse_signer(sig)
}

/// Walk ContentInfo → SignedData → signerInfos[0] → sid (issuerAndSerialNumber).
fn parse_signer(der: &[u8]) -> Option<Signer> {
    let (content_info, _) = der::element(der, 0x30)?;
    let (_oid, rest) = der::element(content_info, 0x06)?;
    let (explicit, _) = der::element(rest, 0xa0)?;
    let (signed_data, _) = der::element(explicit, 0x30)?;
    let (_version, rest) = der::element(signed_data, 0x02)?;
    let (_digests, rest) = der::element(rest, 0x31)?;
    let (_encap, mut rest) = der::element(rest, 0x30)?;
    // Optional certificates [0] and crls [1], then signerInfos SET.
    while let Some((tag, _, after)) = der::any(rest) {
        if tag == 0x31 {
            let (set, _) = der::element(rest, 0x31)?;
            let (signer_info, _) = der::element(set, 0x30)?;
            let (_version, rest) = der::element(signer_info, 0x02)?;
            let (sid, _) = der::element(rest, 0x30)?;
            let (issuer, rest) = der::raw(sid, 0x30)?;
            let (serial, _) = der::element(rest, 0x02)?;
            let serial = BigNum::from_slice(serial)
                .ok()?
                .to_hex_str()
                .ok()?
                .to_lowercase();
            return Some(Signer {
                issuer_der: issuer.to_vec(),
                serial_hex: serial,
            });
        }
        rest = after;
    }
    None
}

/// Just enough DER to walk a SignedData.
mod der {
    /// `(tag, content, rest)` of the next element.
    pub fn any(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, input) = input.split_first()?;
        let (&first, mut input) = input.split_first()?;
        let len = if first < 0x80 {
            first as usize
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || input.len() < n {
                return None;
            }
            let len = input[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            input = &input[n..];
            len
        };
        (input.len() >= len).then(|| (tag, &input[..len], &input[len..]))
    }

    /// `(content, rest)` of the next element, which must have `tag`.
    pub fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (t, content, rest) = any(input)?;
        (t == tag).then_some((content, rest))
    }

    /// `(whole element including header, rest)`.
    pub fn raw(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (t, _, rest) = any(input)?;
        (t == tag).then(|| (&input[..input.len() - rest.len()], rest))
    }
}
