//! Proof with a real kernel: Debian's own signed `linux-image-6.1.0-NN-amd64` boots under
//! qemu with OVMF Secure Boot on and our certificate in `MokListRT` (what a machine has
//! after `mokutil --import`), so lockdown enforces module signatures. A module built,
//! signed and installed by our dkms loads — plain, xz- and zstd-compressed — while an
//! unsigned one and one signed by another key are refused.
//!
//! The boot and the checks are `../shared/kernel-proof/prove-signed-load.sh --uefi-mok`
//! (exit 0 accepted with a verified signature, 1 refused, 2 setup error, 3 boot
//! inconclusive). `.ci/install-deps` installs qemu, OVMF, busybox and the image.

use crate::common::{self, Needs};

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Root;

fn prover() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/kernel-proof/prove-signed-load.sh")
}

/// The 6.1 kernel whose headers and signed image are both installed.
fn kernel() -> String {
    common::installed_headers("6.1")
        .into_iter()
        .rfind(|k| Path::new(&format!("/boot/vmlinuz-{k}")).exists())
        .expect("linux-image-amd64 and linux-headers-amd64 of the same ABI (.ci/install-deps)")
}

/// Build and install the example module with our dkms; returns the installed file.
fn install(root: &Root, k: &str, framework: &str, extra: &[&str]) -> PathBuf {
    root.write("etc/dkms/framework.conf", framework);
    if !root.source_tree().join("dkms-hello-1.0").exists() {
        common::copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dkms-hello-1.0"),
            &root.source_tree().join("dkms-hello-1.0"),
        );
    }
    let mut args = vec!["install", "dkms-hello/1.0", "-k", k];
    args.extend_from_slice(extra);
    root.dkms(&args).ok();
    let dir = root.install_tree().join(k).join("updates/dkms");
    std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("dkms_hello.ko"))
        .unwrap()
}

/// Boot the signed kernel with `cert` enrolled and try to load `module`. The log is the
/// guest's console (firmware, kernel and timing lines that vary from boot to boot): the
/// tests look for the kernel's own verdict lines in it. So does the `/proc/keys` check,
/// whose other entries are the kernel's built-in keys.
fn boot(k: &str, module: &Path, cert: &Path) -> (i32, String) {
    let out = Command::new("bash")
        .arg(prover())
        .arg("--uefi-mok")
        .args(["--kernel-image", &format!("/boot/vmlinuz-{k}")])
        .arg("--module")
        .arg(module)
        .arg("--cert")
        .arg(cert)
        .args(["--retries", "2"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A kernel config like the real one, with module compression `kind` switched on.
fn config_compressing(root: &Root, k: &str, kind: &str) -> PathBuf {
    let real = std::fs::read_to_string(format!("/usr/src/linux-headers-{k}/.config")).unwrap();
    let text: String = real
        .lines()
        .filter(|l| !l.contains("CONFIG_MODULE_COMPRESS_"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + &format!("CONFIG_MODULE_COMPRESS_{kind}=y\n");
    let path = root.path().join(format!("config-{kind}"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
#[cfg_attr(
    not(all(
        dkms_host_headers_6_1,
        dkms_host_kernel_image,
        dkms_host_secure_boot_proof
    )),
    ignore = "needs Debian's 6.1 kernel headers, an installed kernel image, qemu, OVMF and the Secure Boot tools (.ci/install-deps)"
)]
fn a_secure_boot_kernel_loads_our_signed_modules_and_refuses_others() {
    if !common::host_ready(&[
        Needs::Headers("6.1"),
        Needs::KernelImage,
        Needs::SecureBootProof,
    ]) {
        return;
    }
    let k = kernel();
    let root = Root::new();
    root.real_kernel(&k);
    let cert = root.dkms_tree().join("mok.pub");

    // Signed by our dkms: plain, then xz and zstd as a compressing kernel gets them.
    let plain = install(&root, &k, "try_sign_modules=true\n", &[]);
    let (code, log) = boot(&k, &plain, &cert);
    assert_eq!(code, 0, "plain signed module refused:\n{log}");
    assert!(
        log.contains("sig_enforce=Y") && log.contains("UEFI Secure Boot is enabled"),
        "{log}"
    );
    for kind in ["XZ", "ZSTD"] {
        root.dkms(&["unbuild", "dkms-hello/1.0", "-k", &k]).ok();
        let config = config_compressing(&root, &k, kind);
        let module = install(
            &root,
            &k,
            "try_sign_modules=true\n",
            &["--config", config.to_str().unwrap()],
        );
        assert!(
            module
                .to_string_lossy()
                .ends_with(if kind == "XZ" { ".ko.xz" } else { ".ko.zst" }),
            "{}",
            module.display()
        );
        let (code, log) = boot(&k, &module, &cert);
        assert_eq!(code, 0, "{kind}-compressed signed module refused:\n{log}");
    }
    root.dkms(&["unbuild", "dkms-hello/1.0", "-k", &k]).ok();

    // Unsigned: refused by the enforcing kernel.
    let unsigned = install(&root, &k, "try_sign_modules=false\n", &[]);
    let (code, log) = boot(&k, &unsigned, &cert);
    assert_eq!(code, 1, "an unsigned module must be refused:\n{log}");
    assert!(
        log.contains("Loading of unsigned module is rejected"),
        "{log}"
    );
    root.dkms(&["unbuild", "dkms-hello/1.0", "-k", &k]).ok();

    // Signed by a key the machine never enrolled: refused.
    let other = root.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let framework = format!(
        "try_sign_modules=true\nmok_signing_key={}\nmok_certificate={}\n",
        other.join("other.key").display(),
        other.join("other.pub").display()
    );
    let foreign = install(&root, &k, &framework, &[]);
    let signer =
        dkms::module::sign::signer_of(&dkms::module::compress::read_module(&foreign).unwrap())
            .unwrap();
    assert!(signer.is(&other.join("other.pub")) && !signer.is(&cert));
    let (code, log) = boot(&k, &foreign, &cert);
    assert_eq!(
        code, 1,
        "a module signed by another key must be refused:\n{log}"
    );
    assert!(log.contains("Key was rejected by service"), "{log}");
}

/// Boot the signed kernel under OVMF Secure Boot with our certificate `mode`
/// (not-enrolled, pending: queued by mokutil inside the guest, enrolled: in MokListRT),
/// run our `dkms secureboot --json` inside it and try to load `module`: (state, insmod's
/// status, the guest's /proc/keys).
fn guest(k: &str, cert: &Path, module: &Path, mode: &str) -> (serde_json::Value, String, String) {
    let out_dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/qemu/secureboot-guest.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(["--kernel-image", &format!("/boot/vmlinuz-{k}")])
        .args(["--dkms", env!("CARGO_BIN_EXE_dkms")])
        .arg("--cert")
        .arg(cert)
        .arg("--module")
        .arg(module)
        .args(["--mode", mode])
        .arg("--out")
        .arg(out_dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{mode}: {out:?}");
    let read = |f: &str| std::fs::read_to_string(out_dir.path().join(f)).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&read("secureboot.json"))
        .unwrap_or_else(|e| panic!("{mode}: {e}\n{}", read("serial.txt")));
    (
        doc["secure_boot"][0].clone(),
        read("insmod.txt").trim().to_string(),
        read("proc-keys.txt"),
    )
}

#[test]
#[cfg_attr(
    not(all(
        dkms_host_headers_6_1,
        dkms_host_kernel_image,
        dkms_host_secure_boot_proof
    )),
    ignore = "needs Debian's 6.1 kernel headers, an installed kernel image, qemu, OVMF and the Secure Boot tools (.ci/install-deps)"
)]
fn a_secure_boot_machine_is_told_whether_it_trusts_our_key() {
    if !common::host_ready(&[
        Needs::Headers("6.1"),
        Needs::KernelImage,
        Needs::SecureBootProof,
    ]) {
        return;
    }
    let k = kernel();
    let root = Root::new();
    root.real_kernel(&k);
    let module = install(&root, &k, "try_sign_modules=true\n", &[]);
    let cert = root.dkms_tree().join("mok.pub");
    let fields = |s: &serde_json::Value| {
        (
            s["state"].as_str().unwrap().to_string(),
            s["secure_boot"].as_bool(),
            s["enforced"].as_bool(),
            s["trusted"].as_bool(),
        )
    };
    // (a) Never enrolled: refused, and we say so.
    let (s, insmod, _) = guest(&k, &cert, &module, "not-enrolled");
    assert_eq!(
        fields(&s),
        ("not-enrolled".into(), Some(true), Some(true), Some(false))
    );
    assert_ne!(insmod, "0", "an unenrolled key's module must be refused");
    // (b) Queued by mokutil --import in the guest (MokNew): pending, still refused.
    let (s, insmod, _) = guest(&k, &cert, &module, "pending");
    assert_eq!(
        fields(&s),
        ("pending".into(), Some(true), Some(true), Some(false))
    );
    assert_eq!(s["in_mok_new"], true);
    assert_ne!(insmod, "0");
    // (c) In MokListRT: the kernel holds it, enrolled, and the module loads.
    let (s, insmod, keys) = guest(&k, &cert, &module, "enrolled");
    assert_eq!(
        fields(&s),
        ("enrolled".into(), Some(true), Some(true), Some(true))
    );
    assert_eq!(
        (s["in_mok_list"].as_bool(), s["in_kernel_keys"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(insmod, "0", "the enrolled key's module must load");
    let key_id = s["certificate"]["key_id"].as_str().unwrap();
    assert!(
        keys.contains(&format!("DKMS module signing key: {key_id}: X509.rsa")),
        "{keys}"
    );
}
