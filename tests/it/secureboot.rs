//! `dkms secureboot` and the trust line after an install, on scratch roots whose
//! `/sys/firmware/efi/efivars` and `/proc/keys` are fixtures: the EFI signature lists are
//! made by the distribution's `virt-fw-vars` (python3-virt-firmware), not written by
//! hand; the `/proc/keys` text is recorded from Debian's 6.1 kernel booted under OVMF
//! Secure Boot with a key in MokListRT (tests/fixtures/proc-keys-6.1-mok.txt).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{self, Needs, Root};
use dkms::exit;

const SHIM: &str = "605dab50-e046-4300-abb6-3dd810dd8b23";
const GLOBAL: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// An efivarfs file: four bytes of attributes (NV|BS|RT), then the value.
fn efivar(root: &Root, name: &str, guid: &str, value: &[u8]) {
    let dir = root.path().join("sys/firmware/efi/efivars");
    std::fs::create_dir_all(&dir).unwrap();
    let mut bytes = 7u32.to_le_bytes().to_vec();
    bytes.extend_from_slice(value);
    std::fs::write(dir.join(format!("{name}-{guid}")), bytes).unwrap();
}

/// A self-signed certificate (PEM) made by openssl, with its key.
fn certificate(dir: &Path, name: &str) -> PathBuf {
    let pem = dir.join(format!("{name}.pem"));
    let out = Command::new("openssl")
        .args([
            "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .arg("-subj")
        .arg(format!("/CN={name}"))
        .arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(&pem)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    pem
}

/// The MOK list `virt-fw-vars` makes for these certificates and SHA-256 hashes (the
/// value shim reads as MokList and mirrors into MokListRT).
fn mok_list(certs: &[&Path], hashes: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("virt-fw-vars");
    cmd.args(["-i", "/usr/share/OVMF/OVMF_VARS_4M.fd"]);
    for c in certs {
        cmd.args(["--add-mok", SHIM]).arg(c);
    }
    for h in hashes {
        cmd.args(["--add-mok-hash", SHIM, h]);
    }
    let json = dir.path().join("vars.json");
    cmd.arg("--output-json").arg(&json);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let var = doc["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "MokList")
        .unwrap();
    let hex = var["data"].as_str().unwrap();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// A root whose signing certificate is `mok.pub` (DER, as dkms makes it) and whose
/// firmware has Secure Boot on.
fn secure_boot_root() -> (Root, PathBuf) {
    let root = Root::new();
    root.dkms(&["generate_mok"]).ok();
    efivar(&root, "SecureBoot", GLOBAL, &[1]);
    efivar(&root, "SetupMode", GLOBAL, &[0]);
    let pem = root.path().join("mok.pem");
    let out = Command::new("openssl")
        .args(["x509", "-inform", "DER", "-outform", "PEM", "-in"])
        .arg(root.dkms_tree().join("mok.pub"))
        .arg("-out")
        .arg(&pem)
        .output()
        .unwrap();
    assert!(out.status.success());
    (root, pem)
}

fn state(root: &Root) -> (i32, serde_json::Value) {
    let out = root.dkms(&["secureboot", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect(&out.stderr);
    (out.code, doc["secure_boot"][0].clone())
}

#[test]
#[cfg_attr(
    not(dkms_host_secure_boot_proof),
    ignore = "needs qemu, OVMF and the Secure Boot tools (.ci/install-deps)"
)]
fn the_key_is_found_in_a_real_mok_list_among_other_certificates_and_hashes() {
    if !common::host_ready(&[Needs::SecureBootProof]) {
        return;
    }
    let (root, ours) = secure_boot_root();
    let others = tempfile::tempdir().unwrap();
    let (a, b) = (
        certificate(others.path(), "other A"),
        certificate(others.path(), "other B"),
    );
    let hash = "0b0dcf5361997989c086fedb0adfba94fa9996a9c9335096bfdb616afc026706";
    // Not there: not enrolled, exit 1.
    efivar(&root, "MokListRT", SHIM, &mok_list(&[&a, &b], &[hash]));
    let (code, s) = state(&root);
    assert_eq!(
        (code, s["state"].as_str(), s["trusted"].as_bool()),
        (exit::KEY_NOT_TRUSTED, Some("not-enrolled"), Some(false))
    );
    // Between two other certificates and a hash: enrolled.
    efivar(
        &root,
        "MokListRT",
        SHIM,
        &mok_list(&[&a, &ours, &b], &[hash]),
    );
    let (code, s) = state(&root);
    assert_eq!(
        (code, s["state"].as_str(), s["in_mok_list"].as_bool()),
        (exit::SUCCESS, Some("enrolled"), Some(true))
    );
    // Queued by mokutil --import (MokNew): pending, and not trusted yet.
    std::fs::remove_file(
        root.path()
            .join(format!("sys/firmware/efi/efivars/MokListRT-{SHIM}")),
    )
    .unwrap();
    efivar(&root, "MokNew", SHIM, &mok_list(&[&ours], &[]));
    let (code, s) = state(&root);
    assert_eq!(
        (code, s["state"].as_str()),
        (exit::KEY_NOT_TRUSTED, Some("pending"))
    );
    // Shim's validation disabled, or Secure Boot off: nothing needed.
    efivar(&root, "MokSBStateRT", SHIM, &[1]);
    assert_eq!(state(&root).1["state"], "secure-boot-off");
}

#[test]
#[cfg_attr(
    not(dkms_host_secure_boot_proof),
    ignore = "needs qemu, OVMF and the Secure Boot tools (.ci/install-deps)"
)]
fn a_truncated_mok_list_is_reported_and_never_trusted() {
    if !common::host_ready(&[Needs::SecureBootProof]) {
        return;
    }
    let (root, ours) = secure_boot_root();
    let list = mok_list(&[&ours], &[]);
    efivar(&root, "MokListRT", SHIM, &list[..list.len() - 100]);
    let out = root.dkms(&["secureboot"]);
    assert_eq!(out.code, exit::KEY_NOT_TRUSTED);
    assert_eq!(
        out.stderr,
        "Warning: cannot read MokListRT: the signature list at byte 0 is cut short\n"
    );
    // A list of hashes only holds no certificate.
    efivar(
        &root,
        "MokListRT",
        SHIM,
        &mok_list(
            &[],
            &["0b0dcf5361997989c086fedb0adfba94fa9996a9c9335096bfdb616afc026706"],
        ),
    );
    assert_eq!(state(&root).1["state"], "not-enrolled");
}

#[test]
fn the_kernels_own_keyring_is_read_from_proc_keys() {
    let (root, _) = secure_boot_root();
    // A /proc/keys recorded in Debian's 6.1 kernel, its MOK key replaced by ours.
    let recorded = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proc-keys-6.1-mok.txt"),
    )
    .unwrap();
    let key_id = state(&root).1["certificate"]["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(state(&root).1["state"], "not-enrolled");
    let with_ours = recorded.replace("MOKKEYID", &key_id);
    root.write("proc/keys", &with_ours);
    let (code, s) = state(&root);
    assert_eq!(
        (code, s["state"].as_str(), s["in_kernel_keys"].as_bool()),
        (exit::SUCCESS, Some("enrolled"), Some(true))
    );
}

#[test]
fn the_whole_report_and_what_an_install_says() {
    let (root, _) = secure_boot_root();
    let out = root.dkms(&["secureboot"]);
    let s = state(&root).1;
    let cert = root.dkms_tree().join("mok.pub");
    assert_eq!(
        (out.code, out.stdout),
        (
            exit::KEY_NOT_TRUSTED,
            format!(
                "Secure Boot: on (setup mode off)\nModule signature enforcement: off\nSigning certificate: {}\n  subject: CN=DKMS module signing key\n  key id: {}\n  SHA-256 fingerprint: {}\nState: not enrolled: Secure Boot is on and the firmware does not know this key, so modules signed with it will not load (\"Key was rejected by service\").\n  Fix: dkms secureboot --enroll, then reboot and confirm in MokManager.\nModules signed with it: none\n",
                cert.display(),
                s["certificate"]["key_id"].as_str().unwrap(),
                s["certificate"]["sha256"].as_str().unwrap()
            )
        )
    );
    // Without EFI: nothing to enroll, unless the kernel enforces signatures.
    let plain = Root::new();
    plain.dkms(&["generate_mok"]).ok();
    assert_eq!(state(&plain).1["state"], "no-efi");
    assert_eq!(state(&plain).0, exit::SUCCESS);
    plain.write("sys/module/module/parameters/sig_enforce", "Y\n");
    assert_eq!(state(&plain).0, exit::KEY_NOT_TRUSTED);
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn an_install_that_signs_with_an_untrusted_key_says_so() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, _) = secure_boot_root();
    let k = common::headers("6.1");
    root.real_kernel(&k).fixture("patched-1.0");
    root.write("etc/dkms/framework.conf", "try_sign_modules=true\n");
    let out = root.dkms(&["install", "patched/1.0", "-k", &k]);
    out.ok();
    assert!(out.stderr.ends_with(&format!("Warning: the modules were signed with {}, which this machine does not trust yet: not enrolled: Secure Boot is on and the firmware does not know this key, so modules signed with it will not load (\"Key was rejected by service\").\n  Fix: dkms secureboot --enroll, then reboot and confirm in MokManager.\n", root.dkms_tree().join("mok.pub").display())), "{}", out.stderr);
    let json: serde_json::Value =
        serde_json::from_str(&root.dkms(&["status", "--json"]).stdout).unwrap();
    assert_eq!(json["secure_boot"][0]["state"], "not-enrolled");
    assert_eq!(
        json["secure_boot"][0]["modules"][0],
        format!("patched/1.0, {k}, x86_64: installed")
    );
}

#[test]
fn enroll_queues_the_key_with_mokutil() {
    let (root, _) = secure_boot_root();
    let calls = root.path().join("mokutil-calls");
    let path = root.first_on_path(
        "mokutil",
        &format!("#!/bin/sh\necho \"$@\" >> '{}'\n", calls.display()),
    );
    // No terminal and no --root-pw: mokutil could not ask for the password.
    let out = root.dkms_env(&["secureboot", "--enroll"], &[("PATH", &path)]);
    assert_eq!(out.code, exit::FAILURE);
    assert_eq!(out.stderr, "\nError! mokutil asks for a one-time password, which MokManager asks for again at the next boot: run dkms secureboot --enroll on a terminal, or add --root-pw to use root's password instead.\n");
    assert!(!calls.exists());
    let cert = root.dkms_tree().join("mok.pub");
    root.dkms_env(&["secureboot", "--enroll", "--root-pw"], &[("PATH", &path)]).is(
        &root,
        exit::SUCCESS,
        &format!("The key {} is queued. At the next boot, MokManager (a blue screen) asks to enroll it: choose Enroll MOK, Continue, Yes, then type root's password.\n", cert.display()),
        "",
    );
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        format!("--import {} --root-pw\n", cert.display())
    );
}

#[test]
fn no_efivarfs_and_a_certificate_that_is_none() {
    let root = Root::new();
    root.dkms(&["generate_mok"]).ok();
    // An EFI machine whose efivarfs is not mounted: said, and the kernel decides.
    std::fs::create_dir_all(root.path().join("sys/firmware/efi")).unwrap();
    root.write("sys/module/module/parameters/sig_enforce", "Y\n");
    let out = root.dkms(&["secureboot"]);
    assert_eq!(out.code, exit::KEY_NOT_TRUSTED);
    assert_eq!(out.stderr, "Warning: cannot read the firmware's variables: efivarfs is not mounted (mount -t efivarfs efivarfs /sys/firmware/efi/efivars); the state is told from the kernel alone\n");
    assert_eq!(state(&root).1["state"], "not-enrolled");
    // A PEM certificate reads as well as DER; a file that is neither is an error.
    let pem = root.path().join("mok.pem");
    let der = root.dkms_tree().join("mok.pub");
    let conv = Command::new("openssl")
        .args(["x509", "-inform", "DER", "-outform", "PEM", "-in"])
        .arg(&der)
        .arg("-out")
        .arg(&pem)
        .status()
        .unwrap();
    assert!(conv.success());
    let key_id = state(&root).1["certificate"]["key_id"].clone();
    std::fs::copy(&pem, &der).unwrap();
    assert_eq!(state(&root).1["certificate"]["key_id"], key_id);
    std::fs::write(&der, "neither DER nor PEM").unwrap();
    root.dkms(&["secureboot"]).is(
        &root,
        exit::FAILURE,
        "",
        "\nError! $ROOT/var/lib/dkms/mok.pub is neither a DER nor a PEM X.509 certificate.\n",
    );
}
