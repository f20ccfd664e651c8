//! The hooks the distributions call, installed by `scripts/install --destdir` and run
//! as the kernel and package tools run them, against a scratch root.

use crate::common::{self, Needs};
use crate::common::{NEW_KEY, SIGNING};

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Root;

struct Installed {
    dest: tempfile::TempDir,
    root: Root,
}

impl Installed {
    fn new() -> Installed {
        let dest = tempfile::tempdir().unwrap();
        let status = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install"))
            .arg("--destdir")
            .arg(dest.path())
            .arg("--binary")
            .arg(env!("CARGO_BIN_EXE_dkms"))
            .status()
            .unwrap();
        assert!(status.success());
        Installed {
            dest,
            root: Root::new(),
        }
    }

    fn file(&self, path: &str) -> PathBuf {
        self.dest.path().join(path.trim_start_matches('/'))
    }

    /// Run an installed hook the way its caller would, pointed at the scratch root.
    fn run(&self, hook: &str, args: &[&str], stdin: &str) -> common::Output {
        let mut child = Command::new(self.file(hook))
            .args(args)
            .env("DKMS_SYSROOT", self.root.path())
            .env("DKMS_BIN", self.file("/usr/sbin/dkms"))
            .env("DKMS_LIBDIR", self.file("/usr/lib/dkms"))
            .env("DKMS_INSTALL_TREE", self.root.install_tree())
            .env("DKMS_SOURCE_TREE", self.root.source_tree())
            .env("DKMS_CONFIG_DIR", self.root.path().join("etc/dkms"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        common::Output::from(child.wait_with_output().unwrap())
    }

    fn autoinstall_fixture(&self, fixture: &str) {
        self.root.fixture(fixture);
        let conf = self.root.source_tree().join(fixture).join("dkms.conf");
        let text = std::fs::read_to_string(&conf).unwrap() + "AUTOINSTALL=yes\n";
        std::fs::write(conf, text).unwrap();
    }
}

#[test]
fn the_install_step_puts_every_hook_in_place() {
    let i = Installed::new();
    for f in [
        "/usr/sbin/dkms",
        "/etc/kernel/postinst.d/dkms",
        "/etc/kernel/header_postinst.d/dkms",
        "/etc/kernel/preinst.d/dkms",
        "/etc/kernel/prerm.d/dkms",
        "/usr/lib/dkms/dkms_autoinstaller",
        "/usr/lib/dkms/common.postinst",
        "/usr/lib/kernel/install.d/40-dkms.install",
        "/usr/share/libalpm/scripts/dkms",
        "/usr/share/libalpm/scripts/dkms-preflight",
        "/usr/lib/dkms/apt-preflight",
    ] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(i.file(f)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o111, 0o111, "{f} is executable");
    }
    for f in [
        "/usr/share/bash-completion/completions/dkms",
        "/usr/share/zsh/vendor-completions/_dkms",
        "/usr/share/fish/vendor_completions.d/dkms.fish",
    ] {
        assert!(i.file(f).is_file(), "{f}");
    }
    let man = std::process::Command::new("gzip")
        .args(["-dc"])
        .arg(i.file("/usr/share/man/man8/dkms.8.gz"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&man.stdout).starts_with(".TH DKMS 8"));
    let service = std::fs::read_to_string(i.file("/usr/lib/systemd/system/dkms.service")).unwrap();
    assert!(service.contains("ExecStart=/usr/sbin/dkms autoinstall --verbose --kernelver %v"));
    let hook =
        std::fs::read_to_string(i.file("/usr/share/libalpm/hooks/70-dkms-install.hook")).unwrap();
    assert!(
        hook.contains("Target = usr/src/*/dkms.conf") && hook.contains("When = PostTransaction")
    );
    let out = Command::new(i.file("/usr/sbin/dkms"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "dkms-3.4.3\n");
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn a_new_kernel_gets_every_module_and_a_removed_one_loses_them() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let i = Installed::new();
    let k = common::headers("6.1");
    i.root.real_kernel(&k);
    i.autoinstall_fixture("patched-1.0");
    i.root.dkms(&["add", "patched/1.0", "-k", &k]).ok();
    let out = i.run("/etc/kernel/postinst.d/dkms", &[&k], "");
    out.is(&i.root, 0, &format!(
            "Autoinstall of module patched/1.0 for kernel {k} (x86_64)\n{SIGNING}{NEW_KEY}Building patched/1.0 module(s) for kernel {k} (x86_64)...\nSigning module $ROOT/var/lib/dkms/patched/1.0/.build-{k}-x86_64/fx_patched.ko\nInstalling $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko\ndkms: patched/1.0 for kernel {k} (x86_64): installed\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\nAutoinstall on {k} succeeded for module(s) patched.\n"
        ),
        "");
    assert_eq!(
        i.root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: installed\n")
    );
    // Headers package of a kernel whose headers are not there (yet): skipped, success.
    let out = i.run(
        "/etc/kernel/header_postinst.d/dkms",
        &["6.1.0-99-amd64"],
        "",
    );
    out.is(&i.root, 0, "Automatic installation of modules for kernel 6.1.0-99-amd64 was skipped since the kernel headers for this kernel do not seem to be installed.\n",
        "");
    // Removal: nothing of ours stays in /lib/modules/<k>.
    i.run("/etc/kernel/prerm.d/dkms", &[&k], "").ok();
    assert_eq!(i.root.dkms(&["status"]).stdout, "patched/1.0: added\n");
    assert!(!i.root.install_tree().join(&k).join("updates").exists());
    // systemd's kernel-install plugin does the same.
    i.run(
        "/usr/lib/kernel/install.d/40-dkms.install",
        &["add", &k],
        "",
    )
    .ok();
    assert!(i.root.dkms(&["status"]).stdout.ends_with(": installed\n"));
    i.run(
        "/usr/lib/kernel/install.d/40-dkms.install",
        &["remove", &k],
        "",
    )
    .ok();
    assert_eq!(i.root.dkms(&["status"]).stdout, "patched/1.0: added\n");
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn debian_package_postinst_interface() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let i = Installed::new();
    let k = common::headers("6.1");
    i.root.real_kernel(&k);
    i.root
        .write("etc/dkms/framework.conf", "autoinstall_all_kernels=1\n");
    i.autoinstall_fixture("patched-1.0");
    // What a *-dkms package's postinst runs (dh_dkms): NAME VERSION TARBALL_ROOT ARCH UPGRADE
    let out = i.run(
        "/usr/lib/dkms/common.postinst",
        &["patched", "1.0", "/usr/share/patched-dkms", "", ""],
        "",
    );
    out.ok();
    assert_eq!(
        i.root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: installed\n")
    );
    // Reinstalling the package: the same version is removed and installed again.
    i.run(
        "/usr/lib/dkms/common.postinst",
        &["patched", "1.0", "", "", "1.0"],
        "",
    )
    .ok();
    assert_eq!(
        i.root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: installed\n")
    );
    // And its prerm: `dkms remove -m NAME -v VERSION --all`.
    i.root
        .dkms(&["remove", "-m", "patched", "-v", "1.0", "--all"])
        .ok();
    assert!(!i.root.install_tree().join(&k).join("updates").exists());
}

/// The worker's own lines (`==> ...`), without the output of the dkms it runs.
fn worker_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with("==> ")).collect()
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn pacman_hooks_install_every_module_for_kernels_with_headers_and_modules() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let i = Installed::new();
    let k = common::headers("6.1");
    i.root.real_kernel(&k);
    std::fs::create_dir_all(i.root.install_tree().join(&k).join("kernel")).unwrap();
    // Headers without a modules tree: reported, never built.
    i.root
        .fake_kernel("6.1.0-0-headers-only", "CONFIG_MODULES=y\n");
    std::fs::create_dir_all(
        i.root
            .install_tree()
            .join("6.1.0-0-headers-only/build/include"),
    )
    .unwrap();
    // Not an AUTOINSTALL module: pacman's hooks build it all the same.
    i.root.fixture("patched-1.0");
    let out = i.run(
        "/usr/share/libalpm/scripts/dkms",
        &["install"],
        "usr/src/patched-1.0/dkms.conf\n",
    );
    out.ok();
    assert_eq!(
        worker_lines(&out.stdout),
        [
            format!("==> dkms install --no-depmod patched/1.0 -k {k}"),
            format!("==> depmod {k}"),
            "==> Unable to install module patched/1.0 for kernel 6.1.0-0-headers-only: Missing kernel modules tree.".to_string(),
        ]
    );
    assert_eq!(
        i.root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: installed\n")
    );
    let out = i.run(
        "/usr/share/libalpm/scripts/dkms",
        &["remove"],
        "usr/src/patched-1.0/dkms.conf\n",
    );
    out.ok();
    assert_eq!(
        worker_lines(&out.stdout),
        [
            format!("==> dkms remove --no-depmod patched/1.0 -k {k}"),
            format!("==> depmod {k}"),
        ]
    );
    assert_eq!(i.root.dkms(&["status"]).stdout, "");
}

#[test]
fn pacman_hooks_report_a_failed_build_and_never_fail_the_transaction() {
    let i = Installed::new();
    broken_kernel(&i.root, "6.1.0-0-broken");
    std::fs::create_dir_all(i.root.install_tree().join("6.1.0-0-broken/build/include")).unwrap();
    std::fs::create_dir_all(i.root.install_tree().join("6.1.0-0-broken/kernel")).unwrap();
    i.root
        .source("solo", "1.0", &common::simple_conf("solo", "1.0"))
        .write("usr/src/solo-1.0/Makefile", "obj-m := solo.o\n");
    let out = i.run(
        "/usr/share/libalpm/scripts/dkms",
        &["install"],
        "usr/lib/modules/6.1.0-0-broken/build/include/\n",
    );
    out.ok();
    assert_eq!(
        worker_lines(&out.stdout),
        [
            "==> dkms install --no-depmod solo/1.0 -k 6.1.0-0-broken",
            "==> Unable to install module solo/1.0 for kernel 6.1.0-0-broken: dkms install failed (exit 10).",
        ]
    );
    // The source goes away: what was added goes with it.
    let out = i.run(
        "/usr/share/libalpm/scripts/dkms",
        &["remove"],
        "usr/src/solo-1.0/dkms.conf\n",
    );
    out.ok();
    assert_eq!(
        worker_lines(&out.stdout),
        ["==> dkms remove --no-depmod solo/1.0 --all"]
    );
    assert_eq!(i.root.dkms(&["status"]).stdout, "");
}

#[test]
fn bash_completion_offers_actions_options_and_modules() {
    let i = Installed::new();
    i.root
        .fake_kernel("6.1.0-1-amd64", "")
        .source("comp", "2.0", &common::simple_conf("comp", "2.0"))
        .added("comp", "2.0");
    let script = i.file("/usr/share/bash-completion/completions/dkms");
    let complete = |line: &str| -> String {
        let words: Vec<&str> = line.split(' ').collect();
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                ". {}; COMP_WORDS=({}); COMP_CWORD={}; _dkms; echo \"${{COMPREPLY[*]}}\"",
                script.display(),
                words
                    .iter()
                    .map(|w| format!("'{w}'"))
                    .collect::<Vec<_>>()
                    .join(" "),
                words.len() - 1
            ))
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    i.file("/usr/sbin").display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .env("DKMS_SYSROOT", i.root.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(complete("dkms sta"), "status");
    assert_eq!(complete("dkms status --js"), "--json");
    assert_eq!(complete("dkms remove co"), "comp/2.0");
    assert_eq!(complete("dkms install -m co"), "comp/2.0");
}

/// `kernel`: headers-like, but its kbuild is missing, so every build fails (exit 10).
fn broken_kernel(root: &Root, kernel: &str) {
    root.fake_kernel(kernel, "CONFIG_MODULES=y\n");
}

/// The lines common.postinst itself prints (not those of the dkms it runs).
fn postinst_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| {
            [
                "Building for ",
                "Building initial ",
                "Builds for ",
                "Module build",
                "Loading new",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .collect()
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn common_postinst_goes_on_after_a_failed_kernel_and_fails_the_package() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let i = Installed::new();
    let k = common::headers("6.1");
    i.root.real_kernel(&k);
    broken_kernel(&i.root, "6.1.0-999-amd64");
    std::fs::create_dir_all(i.root.install_tree().join("6.1.0-5-amd64/build")).unwrap();
    i.root
        .write("etc/dkms/framework.conf", "autoinstall_all_kernels=1\n");
    i.autoinstall_fixture("patched-1.0");
    let out = i.run(
        "/usr/lib/dkms/common.postinst",
        &["patched", "1.0", "", "", ""],
        "",
    );
    assert_eq!(out.code, dkms::exit::BUILD_FAILED, "{out:?}");
    assert_eq!(
        postinst_lines(&out.stdout),
        [
            "Loading new patched/1.0 DKMS files...".to_string(),
            format!("Building for 6.1.0-5-amd64, {k} and 6.1.0-999-amd64"),
            "Module build for kernel 6.1.0-5-amd64 was skipped since the".to_string(),
            format!("Building initial module patched/1.0 for {k}"),
            "Building initial module patched/1.0 for 6.1.0-999-amd64".to_string(),
            "Builds for the following kernel(s) failed: 6.1.0-999-amd64".to_string(),
        ]
    );
    assert_eq!(
        i.root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: installed\n")
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn common_postinst_stops_at_the_first_failure_without_continue_on_error() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let i = Installed::new();
    let k = common::headers("6.1");
    i.root.real_kernel(&k);
    broken_kernel(&i.root, "6.1.0-1-amd64");
    i.root.write(
        "etc/dkms/framework.conf",
        "autoinstall_all_kernels=1\ncontinue_on_error=false\n",
    );
    i.autoinstall_fixture("patched-1.0");
    let out = i.run(
        "/usr/lib/dkms/common.postinst",
        &["patched", "1.0", "", "", ""],
        "",
    );
    assert_eq!(out.code, dkms::exit::BUILD_FAILED, "{out:?}");
    assert_eq!(
        postinst_lines(&out.stdout),
        [
            "Loading new patched/1.0 DKMS files...".to_string(),
            format!("Building for 6.1.0-1-amd64 and {k}"),
            "Building initial module patched/1.0 for 6.1.0-1-amd64".to_string(),
        ]
    );
    assert_eq!(i.root.dkms(&["status"]).stdout, "patched/1.0: added\n");
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn common_postinst_skips_boot_variants_and_kernels_a_binaries_only_package_lacks() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let i = Installed::new();
    let k = common::headers("6.1");
    i.root.real_kernel(&k);
    // A binaries-only package: the module prebuilt for k, no source.
    i.autoinstall_fixture("patched-1.0");
    i.root.dkms(&["build", "patched/1.0", "-k", &k]).ok();
    let tarball = i
        .root
        .path()
        .join("usr/share/patched-dkms/patched-1.0.dkms.tar.gz");
    std::fs::create_dir_all(tarball.parent().unwrap()).unwrap();
    i.root
        .dkms(&[
            "mktarball",
            "patched/1.0",
            "-k",
            &k,
            "--binaries-only",
            "--archive",
            tarball.to_str().unwrap(),
        ])
        .ok();
    i.root.dkms(&["remove", "patched/1.0", "--all"]).ok();
    std::fs::remove_dir_all(i.root.source_tree().join("patched-1.0")).unwrap();
    i.root.fake_kernel("6.1.0-2-amd64", "CONFIG_MODULES=y\n");
    std::fs::create_dir_all(i.root.install_tree().join("6.1.0-3-BOOT/build")).unwrap();
    std::fs::create_dir_all(i.root.install_tree().join("6.1.0-4-amd64/build")).unwrap();
    i.root
        .write("etc/dkms/framework.conf", "autoinstall_all_kernels=1\n");
    let out = i.run(
        "/usr/lib/dkms/common.postinst",
        &[
            "patched",
            "1.0",
            tarball.parent().unwrap().to_str().unwrap(),
            "",
            "",
        ],
        "",
    );
    out.ok();
    let skips: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("Module build") || l.starts_with("This package"))
        .collect();
    assert_eq!(
        skips,
        [
            "This package appears to be a binaries-only package",
            "Module build and install for 6.1.0-3-BOOT was skipped as ",
            "This package appears to be a binaries-only package",
        ],
        "{}",
        out.stdout
    );
    assert_eq!(
        i.root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: installed\n")
    );
}
