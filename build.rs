//! Tells the integration tests what this machine has (kernel headers, Debian's bash dkms,
//! rpm, qemu...), as `dkms_host_*` cfg flags, so a test that needs a missing piece is
//! compiled with `#[ignore = "needs ..."]` and reported as skipped, never as passed.
//!
//! With `DKMS_TESTS_REQUIRE_HOST` set (CI), every flag is on: each test runs, and the
//! test's own check (`common::host_ready`) fails it loudly when a piece is missing.
//! Nothing here changes the program itself.

use std::path::Path;

/// (flag, whether this machine has it).
fn flags() -> Vec<(&'static str, bool)> {
    let exists = |p: &str| Path::new(p).exists();
    let headers = |pred: fn(&str) -> bool| {
        std::fs::read_dir("/usr/src")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix("linux-headers-").map(str::to_string)
            })
            .any(|k| pred(&k) && Path::new(&format!("/usr/src/linux-headers-{k}/include")).is_dir())
    };
    vec![
        (
            "dkms_host_headers_6_1",
            headers(|k| k.starts_with("6.1.") && k.ends_with("-amd64") && plain(k)),
        ),
        (
            "dkms_host_headers_6_12",
            headers(|k| k.starts_with("6.12.") && k.ends_with("+deb12-amd64") && plain(k)),
        ),
        (
            "dkms_host_debian_dkms",
            std::fs::read_to_string("/usr/sbin/dkms").is_ok_and(|s| s.starts_with("#!/bin/bash")),
        ),
        (
            "dkms_host_kernel_image",
            std::fs::read_dir("/lib/modules")
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.path().join("kernel").is_dir()),
        ),
        (
            "dkms_host_test_packages",
            std::fs::read_dir("/var/cache/dkms-rs-test/debs").is_ok_and(|mut d| d.next().is_some()),
        ),
        (
            "dkms_host_secure_boot_proof",
            [
                "/usr/bin/qemu-system-x86_64",
                "/usr/share/OVMF",
                "/bin/busybox",
                "/usr/bin/virt-fw-vars",
                "/usr/bin/sbattach",
                "/usr/bin/mokutil",
            ]
            .iter()
            .all(|p| exists(p)),
        ),
        (
            "dkms_host_rpm",
            exists("/usr/bin/rpmbuild") && exists("/usr/bin/rpm"),
        ),
        (
            "dkms_host_pkcs11",
            exists("/usr/bin/softhsm2-util")
                && exists("/usr/lib/x86_64-linux-gnu/ossl-modules/pkcs11.so")
                && exists("/usr/lib/linux-kbuild-6.1/scripts/sign-file"),
        ),
        ("dkms_host_zsh", exists("/usr/bin/zsh")),
        ("dkms_host_fish", exists("/usr/bin/fish")),
        (
            "dkms_host_kernel_install",
            exists("/usr/bin/kernel-install"),
        ),
    ]
}

/// Debian's plain flavour: not cloud, not rt.
fn plain(k: &str) -> bool {
    !k.contains("cloud") && !k.contains("-rt")
}

fn main() {
    let require = std::env::var_os("DKMS_TESTS_REQUIRE_HOST").is_some();
    println!("cargo::rerun-if-env-changed=DKMS_TESTS_REQUIRE_HOST");
    println!("cargo::rerun-if-changed=build.rs");
    // Directories whose entries change when a piece is installed or removed.
    for dir in [
        "/usr/src",
        "/usr/bin",
        "/usr/sbin",
        "/bin",
        "/lib/modules",
        "/usr/share",
        "/var/cache/dkms-rs-test/debs",
        "/usr/lib/x86_64-linux-gnu/ossl-modules",
        "/usr/lib/linux-kbuild-6.1/scripts",
    ] {
        if Path::new(dir).is_dir() {
            println!("cargo::rerun-if-changed={dir}");
        }
    }
    for (flag, has) in flags() {
        println!("cargo::rustc-check-cfg=cfg({flag})");
        if has || require {
            println!("cargo::rustc-cfg={flag}");
        }
    }
}
