//! Making the signing key pair as the original does (`openssl req -x509 -newkey
//! rsa:2048 ...`), and the kernel's names of hash algorithms.

use std::path::Path;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{X509NameBuilder, X509};

use super::SignError;

/// The digest of `CONFIG_MODULE_SIG_HASH`.
pub fn digest(name: &str) -> Result<MessageDigest, SignError> {
    Ok(match name {
        "sha1" => MessageDigest::sha1(),
        "sha224" => MessageDigest::sha224(),
        "sha256" => MessageDigest::sha256(),
        "sha384" => MessageDigest::sha384(),
        "sha512" => MessageDigest::sha512(),
        "sha3-256" => MessageDigest::sha3_256(),
        "sha3-384" => MessageDigest::sha3_384(),
        "sha3-512" => MessageDigest::sha3_512(),
        other => return Err(SignError::Hash(other.to_string())),
    })
}

/// Create the key pair the original makes with `openssl req` (on first need, or by
/// `dkms generate_mok`). Written beside their destinations and renamed into place.
pub fn generate(key_path: &Path, cert_path: &Path) -> Result<(), SignError> {
    let fail = |e: &dyn std::fmt::Display| SignError::Generate {
        key: key_path.into(),
        cert: cert_path.into(),
        reason: e.to_string(),
    };
    let rsa = Rsa::generate(2048)?;
    let key = PKey::from_rsa(rsa)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", "DKMS module signing key")?;
    let name = name.build();
    let mut serial = BigNum::new()?;
    serial.rand(159, MsbOption::MAYBE_ZERO, false)?;
    let mut builder = X509::builder()?;
    builder.set_version(2)?;
    let serial = serial.to_asn1_integer()?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(&name)?;
    builder.set_pubkey(&key)?;
    let (not_before, not_after) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(36500)?);
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&not_after)?;
    let ski = SubjectKeyIdentifier::new().build(&builder.x509v3_context(None, None))?;
    builder.append_extension(ski)?;
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&builder.x509v3_context(None, None))?;
    builder.append_extension(aki)?;
    builder.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    builder.append_extension(ExtendedKeyUsage::new().code_signing().build()?)?;
    builder.sign(&key, MessageDigest::sha256())?;
    let cert = builder.build();

    for p in [key_path, cert_path] {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        }
    }
    crate::fsutil::write_atomically(key_path, &key.private_key_to_pem_pkcs8()?, 0o600)
        .map_err(|e| fail(&e))?;
    crate::fsutil::write_atomically(cert_path, &cert.to_der()?, 0o644).map_err(|e| fail(&e))?;
    Ok(())
}
