//! Several `-k` on one command line: each kernel is its own attempt, as in the
//! original's loop, and the exit status is the last kernel's. Real kbuild against
//! Debian's 6.1 and 6.12 headers.

use crate::common::SIGNING;
use crate::common::{self, Needs, Root};

/// A root with the 6.1 and 6.12 headers, the fixture `fixture`, and a signing key made
/// beforehand (so the outputs below do not include its creation).
fn two_kernels(fixture: &str) -> (Root, String, String) {
    let root = Root::new();
    let (old, new) = (common::headers("6.1"), common::headers("6.12"));
    root.real_kernel(&old).real_kernel(&new).fixture(fixture);
    root.dkms(&["generate_mok"]).ok();
    (root, old, new)
}

/// The signing lines every build prints.
/// `exclusive` limited to the 6.12 series.
fn only_on_612(root: &Root) {
    let conf = root.source_tree().join("exclusive-1.0/dkms.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, text.replace("^5\\.", "^6\\.12\\.")).unwrap();
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_headers_6_12)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's 6.12 kernel headers (.ci/install-deps)"
)]
fn a_kernel_excluded_by_build_exclusive_does_not_stop_the_next() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::Headers("6.12")]) {
        return;
    }
    let (root, old, new) = two_kernels("exclusive-1.0");
    only_on_612(&root);
    let excluded = format!("\nError! The dkms.conf for module exclusive includes a BUILD_EXCLUSIVE directive which does not match this kernel/arch/config:\n  kernel {old} does not match BUILD_EXCLUSIVE_KERNEL=\"^6\\.12\\.\"\nThis indicates that it should not be built.\n");
    root.dkms(&["install", "exclusive/1.0", "-k", &old, "-k", &new]).is(
        &root,
        dkms::exit::SUCCESS,
        &format!("Creating symlink $ROOT/var/lib/dkms/exclusive/1.0/source -> $ROOT/usr/src/exclusive-1.0\n\n{SIGNING}Building module(s) for kernel {new} (x86_64)...\nSigning module $ROOT/var/lib/dkms/exclusive/1.0/build/fx_exclusive.ko\nInstalling $ROOT/lib/modules/{new}/updates/dkms/fx_exclusive.ko.xz\nSkipping depmod because '$ROOT/lib/modules/{new}/modules.dep' is missing.\n\ninstall of exclusive/1.0, per kernel:\n  {old} (x86_64): skipped: BUILD_EXCLUSIVE does not match (77)\n  {new} (x86_64): installed\n"),
        &excluded,
    );
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("exclusive/1.0, {new}, x86_64: installed\n")
    );
    // The other order: the last kernel is the excluded one, so the status is its 77.
    root.dkms(&["build", "exclusive/1.0", "-k", &new, "-k", &old]).is(
        &root,
        dkms::exit::EXCLUDED,
        &format!("Module exclusive/1.0 already built for kernel {new} (x86_64), skip. You may override by specifying --force.\n\nbuild of exclusive/1.0, per kernel:\n  {new} (x86_64): already built, skipped\n  {old} (x86_64): skipped: BUILD_EXCLUSIVE does not match (77)\n"),
        &excluded,
    );
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_headers_6_12)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's 6.12 kernel headers (.ci/install-deps)"
)]
fn a_kernel_that_fails_to_compile_does_not_stop_the_next() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::Headers("6.12")]) {
        return;
    }
    let (root, old, new) = two_kernels("classdev-1.0");
    let out = root.dkms(&["install", "classdev/1.0", "-k", &new, "-k", &old]);
    // make's own messages (the compiler's wording, paths in the headers) vary with the
    // toolchain, so the error is checked by its lines of ours; stdout is whole.
    assert_eq!(out.code, dkms::exit::SUCCESS, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!("Creating symlink {r}/var/lib/dkms/classdev/1.0/source -> {r}/usr/src/classdev-1.0\n\n{s}Building module(s) for kernel {new} (x86_64)...\n{s}Building module(s) for kernel {old} (x86_64)...\nSigning module {r}/var/lib/dkms/classdev/1.0/build/fx_classdev.ko\nInstalling {r}/lib/modules/{old}/updates/dkms/fx_classdev.ko\nSkipping depmod because '{r}/lib/modules/{old}/modules.dep' is missing.\n\ninstall of classdev/1.0, per kernel:\n  {new} (x86_64): failed (10)\n  {old} (x86_64): installed\nThe exit status is the last kernel's (0), as the original's: check the lines above.\n",
            r = root.path().display(), s = SIGNING.replace("$ROOT", &root.path().display().to_string())),
    );
    assert!(out.stderr.starts_with(&format!(
        "\nError! Bad return status for module build on kernel: {new} (x86_64)\n"
    )));
    assert!(out.stderr.contains("too many arguments to function"));
    // The failed kernel's log is kept for it, though the next kernel's build reused
    // the build directory; the error names it.
    let kept = root
        .dkms_tree()
        .join(format!("classdev/1.0/.failed/{new}/x86_64/make.log"));
    assert!(std::fs::read_to_string(&kept)
        .unwrap()
        .contains("too many arguments to function"));
    assert!(out
        .stderr
        .contains(&format!("Consult {} for more information.", kept.display())));
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("classdev/1.0, {old}, x86_64: installed\n")
    );
    // Failing last: the failure is the exit status, the kernel before it still built.
    let out = root.dkms(&["build", "classdev/1.0", "-k", &old, "-k", &new]);
    assert_eq!(out.code, dkms::exit::BUILD_FAILED, "{}", out.stderr);
    assert!(out.stdout.ends_with(&format!(
        "\nbuild of classdev/1.0, per kernel:\n  {old} (x86_64): already built, skipped\n  {new} (x86_64): failed (10)\n"
    )));
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_headers_6_12, dkms_host_debian_dkms)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's 6.12 kernel headers, Debian's bash dkms (.ci/install-deps)"
)]
fn the_exit_status_of_several_kernels_is_the_originals() {
    if !common::host_ready(&[
        Needs::Headers("6.1"),
        Needs::Headers("6.12"),
        Needs::DebianDkms,
    ]) {
        return;
    }
    for (first, second) in [("6.1", "6.12"), ("6.12", "6.1")] {
        let (a, b) = (common::headers(first), common::headers(second));
        let ours = Root::new();
        ours.real_kernel(&a)
            .real_kernel(&b)
            .fixture("exclusive-1.0");
        only_on_612(&ours);
        let theirs = Root::new();
        theirs
            .real_kernel(&a)
            .real_kernel(&b)
            .fixture("exclusive-1.0");
        only_on_612(&theirs);
        let args = [
            "install",
            "exclusive/1.0",
            "-k",
            a.as_str(),
            "-k",
            b.as_str(),
        ];
        let (o, t) = (ours.dkms(&args), theirs.bash_dkms(&args));
        assert_eq!(o.code, t.code, "-k {a} -k {b}: ours {o:?}\ntheirs {t:?}");
        assert_eq!(
            ours.dkms(&["status"]).stdout,
            theirs.dkms(&["status"]).stdout
        );
    }
}
