//! Signing: our in-process signature is byte for byte the one the kernel's own
//! `scripts/sign-file` (Debian's linux-kbuild) makes; keys look like the original's.

use crate::common::{self, Needs};

use std::path::{Path, PathBuf};
use std::process::Command;

use dkms::module::sign::{self, SigningKey};

fn sign_file_tool() -> PathBuf {
    let mut tools: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
        .unwrap()
        .flatten()
        .map(|e| e.path().join("scripts/sign-file"))
        .filter(|p| p.to_string_lossy().contains("linux-kbuild-") && p.is_file())
        .collect();
    tools.sort();
    tools
        .pop()
        .expect("linux-kbuild's sign-file (installed with the kernel headers)")
}

/// Some real module bytes (uncompressed).
fn a_module() -> Vec<u8> {
    let mut stack = vec![PathBuf::from("/lib/modules")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else if p.to_string_lossy().contains(".ko") {
                return dkms::module::compress::read_module(&p).unwrap();
            }
        }
    }
    panic!("no kernel module installed");
}

fn keypair(dir: &Path) -> (PathBuf, PathBuf) {
    let (key, cert) = (dir.join("mok.key"), dir.join("mok.pub"));
    sign::generate(&key, &cert).unwrap();
    (key, cert)
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_kernel_image)),
    ignore = "needs Debian's 6.1 kernel headers, an installed kernel image (.ci/install-deps)"
)]
fn byte_for_byte_the_kernels_sign_file() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::KernelImage]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = keypair(dir.path());
    let module = a_module();
    let signer = SigningKey::load(&key, &cert).unwrap();
    for hash in ["sha256", "sha384", "sha512"] {
        let ours = signer
            .sign_module(&module, sign::digest(hash).unwrap())
            .unwrap();
        let theirs = dir.path().join(format!("theirs-{hash}.ko"));
        std::fs::write(&theirs, &module).unwrap();
        let status = Command::new(sign_file_tool())
            .arg(hash)
            .arg(&key)
            .arg(&cert)
            .arg(&theirs)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            ours,
            std::fs::read(&theirs).unwrap(),
            "{hash}: identical to sign-file"
        );
        let who = sign::signer_of(&ours).unwrap();
        assert_eq!(who.serial_hex, signer.serial_hex());
        assert!(who.is(&cert));
        assert_eq!(who.issuer(), "CN=DKMS module signing key");
    }
    assert!(sign::signer_of(b"\x7fELF an unsigned module").is_none());
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn keys_are_made_like_the_original() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = keypair(dir.path());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions())
            & 0o777;
    assert_eq!(mode, 0o600);
    assert!(std::fs::read_to_string(&key)
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    let text = Command::new("openssl")
        .args(["x509", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    // openssl's own rendering, with a random serial number and today's dates: the
    // fields we set are looked for.
    assert!(
        text.contains("Subject: CN = DKMS module signing key"),
        "{text}"
    );
    assert!(text.contains("Public-Key: (2048 bit)"), "{text}");
    assert!(text.contains("Code Signing"), "{text}");
    let year = |label: &str| {
        text.lines()
            .find(|l| l.contains(label))
            .and_then(|l| l.split_whitespace().rev().nth(1))
            .and_then(|y| y.parse::<i32>().ok())
            .unwrap()
    };
    assert!(year("Not After") - year("Not Before") >= 99, "36500 days");
    // The key and the certificate match (openssl's own check).
    let modulus = |args: &[&str], p: &Path| {
        Command::new("openssl")
            .args(args)
            .arg(p)
            .output()
            .unwrap()
            .stdout
    };
    assert_eq!(
        modulus(&["rsa", "-noout", "-modulus", "-in"], &key),
        modulus(
            &["x509", "-inform", "DER", "-noout", "-modulus", "-in"],
            &cert
        )
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn bad_keys_are_clear_errors() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = keypair(dir.path());
    let (_, other_cert) = {
        let d = dir.path().join("other");
        std::fs::create_dir(&d).unwrap();
        keypair(&d)
    };
    let err = SigningKey::load(&key, &other_cert)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        err,
        format!(
            "the certificate {} does not belong to the key {}",
            other_cert.display(),
            key.display()
        )
    );
    // A passphrase-protected key without KBUILD_SIGN_PIN.
    let protected = dir.path().join("protected.key");
    let status = Command::new("openssl")
        .args(["pkey", "-aes256", "-passout", "pass:secret", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&protected)
        .status()
        .unwrap();
    assert!(status.success());
    let err = SigningKey::load(&protected, &cert)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        err,
        format!(
            "cannot use the signing key {}: it is protected by a passphrase; set KBUILD_SIGN_PIN",
            protected.display()
        )
    );
    assert!(sign::digest("md4").is_err());
    let err = SigningKey::load(&dir.path().join("missing.key"), &cert)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        err,
        format!(
            "cannot read {}: No such file or directory (os error 2)",
            dir.path().join("missing.key").display()
        )
    );
}
