//! Signing during build, end to end: the key made on first need, modules signed after
//! strip and before compression, the original's policy and messages, and every bad
//! input ending in a warning and an unsigned module, never a failed install.

use crate::common::{self, Needs};
use crate::common::{NEW_KEY, SIGNING};

use std::path::{Path, PathBuf};

use common::Root;
use dkms::module::sign;

/// A root that signs (the CI sandbox counts as a chroot for the default policy).
fn signing_root(k: &str, framework: &str) -> Root {
    let root = Root::new();
    root.real_kernel(k).fixture("patched-1.0");
    root.write(
        "etc/dkms/framework.conf",
        &format!("try_sign_modules=true\n{framework}"),
    );
    root
}

fn installed(root: &Root, k: &str, suffix: &str) -> PathBuf {
    root.install_tree()
        .join(k)
        .join(format!("updates/dkms/fx_patched.ko{suffix}"))
}

fn signer(path: &Path) -> Option<sign::Signer> {
    sign::signer_of(&dkms::module::compress::read_module(path).unwrap())
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn the_key_is_made_once_and_modules_are_signed_with_it() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let k = common::headers("6.1");
    let root = signing_root(&k, "");
    let out = root.dkms(&["install", "patched/1.0", "-k", &k]);
    let (key, cert) = (
        root.dkms_tree().join("mok.key"),
        root.dkms_tree().join("mok.pub"),
    );
    out.is(
        &root,
        0,
        &format!("Creating symlink $ROOT/var/lib/dkms/patched/1.0/source -> $ROOT/usr/src/patched-1.0\n\n{SIGNING}{NEW_KEY}Building module(s) for kernel {k} (x86_64)...\nSigning module $ROOT/var/lib/dkms/patched/1.0/build/fx_patched.ko\nInstalling $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\n"),
        "",
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions())
            & 0o777;
    assert_eq!(mode, 0o600);
    let who = signer(&installed(&root, &k, "")).expect("signed");
    assert!(who.is(&cert));
    // The built copy in the dkms tree is the signed one too; status --json says so.
    let json: serde_json::Value =
        serde_json::from_str(&root.dkms(&["status", "--json"]).stdout).unwrap();
    let sig = &json["entries"][0]["modules"][0]["signature"];
    assert_eq!(sig["signed"], true);
    assert_eq!(sig["signer"], "CN=DKMS module signing key");
    assert_eq!(sig["key"], cert.display().to_string());
    // A second build reuses the key and says nothing about enrolling.
    let out = root.dkms(&["install", "patched/1.0", "-k", &k, "--force"]);
    out.is(
        &root,
        0,
        &format!(
            "Module patched/1.0 for kernel {k} (x86_64):\nBefore uninstall, this module version was ACTIVE on this kernel.\nDeleting $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\n\nInstalling $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\n"
        ),
        "",
    );
    assert!(signer(&installed(&root, &k, "")).unwrap().is(&cert));
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_headers_6_12)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's 6.12 kernel headers (.ci/install-deps)"
)]
fn signed_before_compression_on_an_xz_kernel() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::Headers("6.12")]) {
        return;
    }
    let k = common::headers("6.12");
    let root = signing_root(&k, "");
    root.dkms(&["install", "patched/1.0", "-k", &k]).ok();
    let file = installed(&root, &k, ".xz");
    assert!(file.exists());
    assert!(
        signer(&file).unwrap().is(&root.dkms_tree().join("mok.pub")),
        "the signature is inside the compressed module"
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn policy_and_kernel_config_decide_like_the_original() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let k = common::headers("6.1");
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: [(&str, Env, &str); 2] = [
        (
            "try_sign_modules=false\n",
            &[],
            "Module signing is disabled by policy, modules won't be signed",
        ),
        (
            "try_sign_modules=not_in_chroot\n",
            &[("FAKECHROOT", "true")],
            "Running in chroot, modules won't be signed",
        ),
    ];
    for (framework, env, message) in cases {
        let root = Root::new();
        root.real_kernel(&k).fixture("patched-1.0");
        root.write("etc/dkms/framework.conf", framework);
        let out = root.dkms_env(&["install", "patched/1.0", "-k", &k], env);
        out.is(
            &root,
            0,
            &format!("Creating symlink $ROOT/var/lib/dkms/patched/1.0/source -> $ROOT/usr/src/patched-1.0\n\n{message}\nBuilding module(s) for kernel {k} (x86_64)...\nInstalling $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\n"),
            "",
        );
        assert!(signer(&installed(&root, &k, "")).is_none());
    }
    // A kernel config without CONFIG_MODULE_SIG_HASH, and one with an unknown hash.
    for (line, message) in [
        ("", "built without module signing facility"),
        (
            "CONFIG_MODULE_SIG_HASH=\"md4\"\n",
            "unknown module signature hash 'md4'",
        ),
    ] {
        let root = signing_root(&k, "");
        let config = root.path().join("config");
        let real = std::fs::read_to_string(format!("/usr/src/linux-headers-{k}/.config")).unwrap();
        let edited: String = real
            .lines()
            .filter(|l| !l.starts_with("CONFIG_MODULE_SIG_HASH="))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            + line;
        std::fs::write(&config, edited).unwrap();
        let out = root.dkms(&[
            "install",
            "patched/1.0",
            "-k",
            &k,
            "--config",
            config.to_str().unwrap(),
        ]);
        out.ok();
        // One case says it on stdout, the other warns on stderr after the key's lines:
        // the message is looked for in both.
        assert!(
            format!("{}{}", out.stdout, out.stderr).contains(message),
            "{}{}",
            out.stdout,
            out.stderr
        );
        assert!(signer(&installed(&root, &k, "")).is_none());
    }
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn an_external_sign_file_is_honoured_and_a_missing_one_only_warns() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let k = common::headers("6.1");
    let tool = format!(
        "/usr/lib/linux-kbuild-{}/scripts/sign-file",
        k.rsplit_once('.')
            .unwrap()
            .0
            .rsplit_once('.')
            .map(|(a, _)| a)
            .unwrap_or("6.1")
    );
    let tool = if Path::new(&tool).exists() {
        tool
    } else {
        "/usr/lib/linux-kbuild-6.1/scripts/sign-file".to_string()
    };
    let root = signing_root(&k, &format!("sign_file={tool}\n"));
    let out = root.dkms(&["install", "patched/1.0", "-k", &k]);
    out.is(
        &root,
        0,
        &format!("Creating symlink $ROOT/var/lib/dkms/patched/1.0/source -> $ROOT/usr/src/patched-1.0\n\nSign command: {tool}\nSigning key: $ROOT/var/lib/dkms/mok.key\nPublic certificate (MOK): $ROOT/var/lib/dkms/mok.pub\n{NEW_KEY}Building module(s) for kernel {k} (x86_64)...\nSigning module $ROOT/var/lib/dkms/patched/1.0/build/fx_patched.ko\nInstalling $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\n"),
        "",
    );
    assert!(signer(&installed(&root, &k, ""))
        .unwrap()
        .is(&root.dkms_tree().join("mok.pub")));

    let root = signing_root(&k, "sign_file=/nonexistent/kmodsign\n");
    let out = root.dkms(&["install", "patched/1.0", "-k", &k]);
    out.is(
        &root,
        0,
        &format!("Creating symlink $ROOT/var/lib/dkms/patched/1.0/source -> $ROOT/usr/src/patched-1.0\n\nSign command: /nonexistent/kmodsign\nBinary /nonexistent/kmodsign not found, modules won't be signed\nBuilding module(s) for kernel {k} (x86_64)...\nInstalling $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\n"),
        "",
    );
    assert!(signer(&installed(&root, &k, "")).is_none());
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn bad_keys_leave_modules_unsigned_with_a_clear_warning() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let k = common::headers("6.1");
    // Passphrase-protected key: unsigned without KBUILD_SIGN_PIN, signed with it.
    let root = signing_root(&k, "");
    let (key, cert) = (
        root.dkms_tree().join("mok.key"),
        root.dkms_tree().join("mok.pub"),
    );
    sign::generate(&key, &cert).unwrap();
    let plain = std::fs::read(&key).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["pkey", "-aes256", "-passout", "pass:s3cret", "-out"])
        .arg(&key)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&plain)?;
            c.wait()
        })
        .unwrap();
    assert!(out.success());
    let out = root.dkms(&["install", "patched/1.0", "-k", &k]);
    out.is(
        &root,
        0,
        &format!("Creating symlink $ROOT/var/lib/dkms/patched/1.0/source -> $ROOT/usr/src/patched-1.0\n\n{SIGNING}Building module(s) for kernel {k} (x86_64)...\nInstalling $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\n"),
        "Warning: cannot use the signing key $ROOT/var/lib/dkms/mok.key: it is protected by a passphrase; set KBUILD_SIGN_PIN; modules won't be signed. Fix the key (mok_signing_key / mok_certificate in /etc/dkms/framework.conf) or remove both files to have a new pair generated.\n",
    );
    assert!(signer(&installed(&root, &k, "")).is_none());
    // install --force reinstalls the existing build, like the original: rebuild it.
    root.dkms(&["unbuild", "patched/1.0", "-k", &k]).ok();
    let out = root.dkms_env(
        &["install", "patched/1.0", "-k", &k],
        &[("KBUILD_SIGN_PIN", "s3cret")],
    );
    out.ok();
    assert!(signer(&installed(&root, &k, "")).unwrap().is(&cert));

    // A certificate of another key.
    let root = signing_root(&k, "");
    sign::generate(
        &root.dkms_tree().join("mok.key"),
        &root.dkms_tree().join("mok.pub"),
    )
    .unwrap();
    sign::generate(
        &root.path().join("other.key"),
        &root.dkms_tree().join("mok.pub"),
    )
    .unwrap();
    let out = root.dkms(&["install", "patched/1.0", "-k", &k]);
    out.is(
        &root,
        0,
        &format!("Creating symlink $ROOT/var/lib/dkms/patched/1.0/source -> $ROOT/usr/src/patched-1.0\n\n{SIGNING}Building module(s) for kernel {k} (x86_64)...\nInstalling $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\n"),
        "Warning: the certificate $ROOT/var/lib/dkms/mok.pub does not belong to the key $ROOT/var/lib/dkms/mok.key; modules won't be signed. Fix the key (mok_signing_key / mok_certificate in /etc/dkms/framework.conf) or remove both files to have a new pair generated.\n",
    );
    assert!(signer(&installed(&root, &k, "")).is_none());
}

#[test]
fn generate_mok_creates_the_pair_once() {
    let root = Root::new();
    let paths = "Signing key: $ROOT/var/lib/dkms/mok.key\nPublic certificate (MOK): $ROOT/var/lib/dkms/mok.pub\n";
    root.dkms(&["generate_mok"])
        .is(&root, 0, &format!("{paths}{NEW_KEY}"), "");
    let key = std::fs::read(root.dkms_tree().join("mok.key")).unwrap();
    root.dkms(&["generate_mok"]).is(
        &root,
        0,
        &format!("{paths}The signing key and certificate already exist.\n"),
        "",
    );
    assert_eq!(
        std::fs::read(root.dkms_tree().join("mok.key")).unwrap(),
        key
    );
}

/// A SoftHSM2 token (its own directory and config) holding `key` (PEM, PKCS#8) as
/// object "mok", and an OpenSSL configuration that loads the pkcs11 provider with it:
/// the environment sign-file needs to sign with `pkcs11:token=dkms;object=mok`.
fn token_with(root: &Root, key: &Path) -> Vec<(String, String)> {
    let dir = root.path().join("softhsm");
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\n",
            dir.join("tokens").display()
        ),
    )
    .unwrap();
    let ossl = dir.join("openssl.cnf");
    std::fs::write(
        &ossl,
        "openssl_conf = openssl_init\n[openssl_init]\nproviders = provider_sect\n[provider_sect]\ndefault = default_sect\npkcs11 = pkcs11_sect\n[default_sect]\nactivate = 1\n[pkcs11_sect]\nmodule = /usr/lib/x86_64-linux-gnu/ossl-modules/pkcs11.so\npkcs11-module-path = /usr/lib/softhsm/libsofthsm2.so\npkcs11-module-token-pin = 1234\nactivate = 1\n",
    )
    .unwrap();
    let env = vec![
        ("SOFTHSM2_CONF".to_string(), conf.display().to_string()),
        ("OPENSSL_CONF".to_string(), ossl.display().to_string()),
    ];
    let run = |args: &[&str]| {
        let out = std::process::Command::new("softhsm2-util")
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    run(&[
        "--init-token",
        "--free",
        "--label",
        "dkms",
        "--pin",
        "1234",
        "--so-pin",
        "5678",
    ]);
    run(&[
        "--import",
        key.to_str().unwrap(),
        "--token",
        "dkms",
        "--label",
        "mok",
        "--id",
        "01",
        "--pin",
        "1234",
    ]);
    env
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_pkcs11)),
    ignore = "needs Debian's 6.1 kernel headers, SoftHSM2 and the pkcs11 provider (.ci/install-deps)"
)]
fn a_key_in_a_pkcs11_token_signs_byte_for_byte_as_the_same_key_in_a_file() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::Pkcs11Token]) {
        return;
    }
    let k = common::headers("6.1");
    let sign_file = "/usr/lib/linux-kbuild-6.1/scripts/sign-file";
    // Signed in-process with the key file.
    let root = signing_root(&k, "");
    root.dkms(&["build", "patched/1.0", "-k", &k]).ok();
    let built = root
        .dkms_tree()
        .join(format!("patched/1.0/{k}/x86_64/module/fx_patched.ko"));
    let by_file = std::fs::read(&built).unwrap();
    // The same key in a SoftHSM2 token, used through the kernel's sign-file.
    let env = token_with(&root, &root.dkms_tree().join("mok.key"));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    root.write(
        "etc/dkms/framework.conf",
        &format!(
            "try_sign_modules=true\nmok_signing_key=\"pkcs11:token=dkms;object=mok;type=private\"\nmok_certificate={}\nsign_file={sign_file}\n",
            root.dkms_tree().join("mok.pub").display()
        ),
    );
    root.dkms(&["unbuild", "patched/1.0", "-k", &k]).ok();
    let out = root.dkms_env(&["build", "patched/1.0", "-k", &k], &env);
    out.is(
        &root,
        0,
        &format!("Sign command: {sign_file}\nSigning key: pkcs11:token=dkms;object=mok;type=private\nPublic certificate (MOK): $ROOT/var/lib/dkms/mok.pub\nBuilding module(s) for kernel {k} (x86_64)...\nSigning module $ROOT/var/lib/dkms/patched/1.0/build/fx_patched.ko\n"),
        "",
    );
    assert_eq!(
        std::fs::read(&built).unwrap(),
        by_file,
        "byte for byte the same signed module"
    );
    // A URI that names no key: sign-file fails, the build goes on, the module stays
    // unsigned, and the warning says why.
    root.write(
        "etc/dkms/framework.conf",
        &format!(
            "try_sign_modules=true\nmok_signing_key=\"pkcs11:token=dkms;object=nosuch;type=private\"\nmok_certificate={}\nsign_file={sign_file}\n",
            root.dkms_tree().join("mok.pub").display()
        ),
    );
    root.dkms(&["unbuild", "patched/1.0", "-k", &k]).ok();
    let out = root.dkms_env(&["build", "patched/1.0", "-k", &k], &env);
    out.ok();
    // sign-file's own OpenSSL errors come first and vary with OpenSSL: our warning is
    // looked for.
    assert!(
        out.stderr.contains(&format!(
            "Warning: Failed to sign {}",
            root.dkms_tree()
                .join("patched/1.0/build/fx_patched.ko")
                .display()
        )),
        "{}",
        out.stderr
    );
    assert!(signer(&built).is_none());
}
