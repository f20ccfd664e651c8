//! `mktarball` / `ldtarball`: prebuilt modules moved to machines without compilers, and
//! archives exchanged with Debian's bash dkms in both directions.

use crate::common::{self, Needs};

use std::path::PathBuf;

use common::Root;

fn built_root() -> (Root, String) {
    let root = Root::new();
    let k = common::headers("6.1");
    root.real_kernel(&k).fixture("patched-1.0");
    root.dkms(&["build", "patched/1.0", "-k", &k]).ok();
    (root, k)
}

fn tarball(root: &Root, name: &str) -> PathBuf {
    root.dkms_tree().join("patched/1.0/tarball").join(name)
}

/// A machine with the kernel directory but no headers and no source.
fn bare_root(k: &str) -> Root {
    let root = Root::new();
    std::fs::create_dir_all(root.install_tree().join(k)).unwrap();
    root
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn round_trip_with_source() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = built_root();
    let out = root.dkms(&["mktarball", "patched/1.0", "-k", &k]);
    let archive = tarball(&root, &format!("patched-1.0-kernel{k}-x86_64.dkms.tar.gz"));
    out.is(&root, 0, &format!(
            "Marking modules for {k} (x86_64) for archiving...\n\nMarking $ROOT/var/lib/dkms/patched/1.0/source for archiving...\n\nTarball location: {}\n",
            archive.display()
        ),
        "");
    let other = bare_root(&k);
    other.dkms(&["ldtarball", archive.to_str().unwrap()]).ok();
    assert!(other.source_tree().join("patched-1.0/dkms.conf").exists());
    assert_eq!(
        other.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: built\n")
    );
    // Installs without headers: the module is prebuilt.
    other.dkms(&["install", "patched/1.0", "-k", &k]).ok();
    assert!(other
        .install_tree()
        .join(&k)
        .join("updates/dkms/fx_patched.ko")
        .exists());
    // Loading again needs --force.
    assert_eq!(
        other.dkms(&["ldtarball", archive.to_str().unwrap()]).code,
        8
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn binaries_only_needs_no_source() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = built_root();
    let dest = root.path().join("out/prebuilt.dkms.tar.xz");
    root.dkms(&[
        "mktarball",
        "patched/1.0",
        "-k",
        &k,
        "--binaries-only",
        "--archive",
        dest.to_str().unwrap(),
    ])
    .ok();
    let listing = std::process::Command::new("tar")
        .arg("-tJf")
        .arg(&dest)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("dkms_binaries_only/PACKAGE_NAME")
            && !listing.contains("dkms_source_tree"),
        "{listing}"
    );
    let other = bare_root(&k);
    other
        .dkms(&["ldtarball", "--archive", dest.to_str().unwrap()])
        .ok();
    assert!(!other.source_tree().join("patched-1.0").exists());
    assert!(
        other
            .dkms_tree()
            .join("patched/1.0/source/dkms.conf")
            .is_file(),
        "binaries-only source is a real directory"
    );
    assert_eq!(
        other.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: built\n")
    );
    other.dkms(&["install", "patched/1.0", "-k", &k]).ok();
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn source_only_naming() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = built_root();
    root.dkms(&["mktarball", "patched/1.0", "-k", &k, "--source-only"])
        .ok();
    assert!(tarball(&root, "patched-1.0-source-only.dkms.tar.gz").is_file());
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_debian_dkms)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's bash dkms (.ci/install-deps)"
)]
fn archives_are_exchanged_with_debians_dkms() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::DebianDkms]) {
        return;
    }
    let (root, k) = built_root();
    // Ours → theirs.
    root.dkms(&["mktarball", "patched/1.0", "-k", &k]).ok();
    let ours = tarball(&root, &format!("patched-1.0-kernel{k}-x86_64.dkms.tar.gz"));
    let theirs_root = bare_root(&k);
    let out = theirs_root.bash_dkms(&["ldtarball", ours.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        theirs_root.bash_dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: built\n")
    );
    // Theirs → ours.
    let bash_built = Root::new();
    bash_built.real_kernel(&k).fixture("patched-1.0");
    assert_eq!(
        bash_built
            .bash_dkms(&["build", "patched/1.0", "-k", &k])
            .code,
        0
    );
    let theirs = bash_built.path().join("theirs.dkms.tar.gz");
    let out = bash_built.bash_dkms(&[
        "mktarball",
        "patched/1.0",
        "-k",
        &k,
        "--archive",
        theirs.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let ours_root = bare_root(&k);
    ours_root
        .dkms(&["ldtarball", theirs.to_str().unwrap()])
        .ok();
    assert_eq!(
        ours_root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: built\n")
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn bad_archives_and_requests() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let (root, k) = built_root();
    root.dkms(&["mktarball", "patched/1.0", "-k", "6.1.0-99-amd64"]).is(
        &root,
        dkms::exit::TARBALL_FAILED,
        "",
        "\nError! No modules built for 6.1.0-99-amd64 (x86_64).\nModules must already be in the built state before using mktarball.\n",
    );
    let other = bare_root(&k);
    assert_eq!(
        other
            .dkms(&["ldtarball", "--archive", "/nonexistent.tar.gz"])
            .code,
        2
    );
    let garbage = other.path().join("garbage.tar.gz");
    std::fs::write(&garbage, b"\x1f\x8bnot really gzip").unwrap();
    assert_eq!(
        other.dkms(&["ldtarball", garbage.to_str().unwrap()]).code,
        7
    );
    // A tarball with no dkms.conf at all.
    let empty = other.path().join("empty");
    std::fs::create_dir_all(empty.join("dir")).unwrap();
    let plain = other.path().join("plain.tar");
    assert!(std::process::Command::new("tar")
        .arg("-cf")
        .arg(&plain)
        .arg("-C")
        .arg(&empty)
        .arg(".")
        .status()
        .unwrap()
        .success());
    assert_eq!(
        other.dkms(&["ldtarball", plain.to_str().unwrap()]).code,
        dkms::exit::ARCHIVE_WITHOUT_CONF
    );
    assert_eq!(other.dkms(&["status"]).stdout, "");
}
