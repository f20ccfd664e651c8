//! The RPM family's wiring: RHEL's weak-modules called as the original calls it (a
//! stand-in records its calls: RHEL's script is not packaged for Debian), and systemd's
//! kernel-install running our plugin before an initramfs plugin ordered after it.

use crate::common::{self, Root};
use dkms::exit;

const ROCKY: &str =
    "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\n";
const K: &str = "5.14.0-427.el9.x86_64";

/// A RHEL-like root with `m/1.0` built for K and a weak-modules stand-in that logs its
/// arguments and standard input (and exits with `$WEAK_EXIT`).
fn rhel_root() -> (Root, std::path::PathBuf) {
    let root = Root::new();
    root.write("etc/os-release", ROCKY)
        .fake_kernel(K, "")
        .source("m", "1.0", &common::simple_conf("m", "1.0"))
        .added("m", "1.0")
        .built("m", "1.0", K, "x86_64", &["m.ko"]);
    let log = root.path().join("weak-modules.log");
    root.write(
        "usr/sbin/weak-modules",
        &format!("#!/bin/sh\necho \"args: $*\" >> '{}'\nsed 's/^/stdin: /' >> '{}'\nexit ${{WEAK_EXIT:-0}}\n", log.display(), log.display()),
    );
    std::fs::set_permissions(
        root.path().join("usr/sbin/weak-modules"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    (root, log)
}

#[test]
fn weak_modules_hears_of_every_install_and_uninstall() {
    let (root, log) = rhel_root();
    let module = root.install_tree().join(K).join("extra/m.ko");
    root.dkms(&["install", "m/1.0", "-k", K]).ok();
    root.dkms(&["uninstall", "m/1.0", "-k", K]).ok();
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!(
            "args: --no-initramfs --add-modules\nstdin: {m}\nargs: --no-initramfs --remove-modules\nstdin: {m}\n",
            m = module.display()
        )
    );
}

#[test]
fn no_weak_modules_and_a_failing_tool() {
    let (root, log) = rhel_root();
    // The environment, or the module's dkms.conf, opts out.
    root.dkms_env(
        &["install", "m/1.0", "-k", K],
        &[("NO_WEAK_MODULES", "yes")],
    )
    .ok();
    root.dkms_env(
        &["uninstall", "m/1.0", "-k", K],
        &[("NO_WEAK_MODULES", "yes")],
    )
    .ok();
    let conf = root.source_tree().join("m-1.0/dkms.conf");
    std::fs::write(
        &conf,
        common::simple_conf("m", "1.0") + "NO_WEAK_MODULES=\"yes\"\n",
    )
    .unwrap();
    root.dkms(&["install", "m/1.0", "-k", K]).ok();
    root.dkms(&["uninstall", "m/1.0", "-k", K]).ok();
    assert!(!log.exists(), "never called");
    // A tool that fails: said, and the install stands.
    std::fs::write(&conf, common::simple_conf("m", "1.0")).unwrap();
    let out = root.dkms_env(&["install", "m/1.0", "-k", K], &[("WEAK_EXIT", "3")]);
    assert_eq!(out.code, exit::SUCCESS);
    assert_eq!(
        out.stderr,
        format!(
            "Warning: {} exited with exit status: 3; the modules are installed all the same.\n",
            root.path().join("usr/sbin/weak-modules").display()
        )
    );
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("m/1.0, {K}, x86_64: installed\n")
    );
}

/// systemd's real `kernel-install` (Debian 12's, 252) in a scratch root: its plugins are
/// ours (hooks/40-dkms.install) and a probe at 50, where dracut's initramfs plugin
/// stands, which notes whether the module is there when an initramfs would be made.
fn kernel_install(root: &Root, args: &[&str]) -> common::Output {
    let plugins = format!(
        "{} {}",
        root.path()
            .join("usr/lib/kernel/install.d/40-dkms.install")
            .display(),
        root.path()
            .join("etc/kernel/install.d/50-probe.install")
            .display()
    );
    common::Output::from(
        std::process::Command::new("kernel-install")
            .args(args)
            .env("KERNEL_INSTALL_PLUGINS", plugins)
            .env("KERNEL_INSTALL_CONF_ROOT", root.path().join("etc/kernel"))
            .env("BOOT_ROOT", root.path().join("boot"))
            .env("MACHINE_ID", "0123456789abcdef0123456789abcdef")
            .env("DKMS_BIN", env!("CARGO_BIN_EXE_dkms"))
            .env("DKMS_SYSROOT", root.path())
            .output()
            .unwrap(),
    )
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_kernel_install)),
    ignore = "needs Debian's 6.1 kernel headers, systemd's kernel-install (.ci/install-deps)"
)]
fn kernel_install_builds_before_the_initramfs_plugin_and_removes_on_remove() {
    if !common::host_ready(&[common::Needs::Headers("6.1")])
        || !std::path::Path::new("/usr/bin/kernel-install").exists()
    {
        return;
    }
    let k = common::headers("6.1");
    let root = Root::new();
    root.real_kernel(&k).fixture("patched-1.0");
    let conf = root.source_tree().join("patched-1.0/dkms.conf");
    std::fs::write(
        &conf,
        std::fs::read_to_string(&conf).unwrap() + "AUTOINSTALL=yes\n",
    )
    .unwrap();
    root.dkms(&["add", "patched/1.0"]).ok();
    let plugin = root.path().join("usr/lib/kernel/install.d/40-dkms.install");
    std::fs::create_dir_all(plugin.parent().unwrap()).unwrap();
    common::copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks/40-dkms.install"),
        &plugin,
    );
    let module = root
        .install_tree()
        .join(&k)
        .join("updates/dkms/fx_patched.ko");
    let seen = root.path().join("probe.log");
    root.write("etc/kernel/install.conf", "layout=other\n").write(
        "etc/kernel/install.d/50-probe.install",
        &format!("#!/bin/sh\nif [ -e '{}' ]; then echo \"$1: module there\"; else echo \"$1: no module\"; fi >> '{}'\n", module.display(), seen.display()),
    );
    std::fs::set_permissions(
        root.path().join("etc/kernel/install.d/50-probe.install"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    root.write("boot/vmlinuz", "an image");
    let image = root.path().join("boot/vmlinuz").display().to_string();
    let out = kernel_install(&root, &["add", &k, &image]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: installed\n")
    );
    let out = kernel_install(&root, &["remove", &k]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        "add: module there\nremove: no module\n"
    );
    assert_eq!(root.dkms(&["status"]).stdout, "patched/1.0: added\n");
    // A kernel without headers: dkms says so, kernel-install goes on (exit 0), as the
    // original's plugin.
    let bare = "6.1.0-99-amd64";
    std::fs::create_dir_all(root.install_tree().join(bare)).unwrap();
    let out = kernel_install(&root, &["add", bare, &image]);
    assert_eq!(out.code, 0, "{out:?}");
    // kernel-install's own plugins (systemd's version) print around ours: our message is
    // looked for.
    assert!(
        out.stderr.contains(&format!(
            "Error! Your kernel headers for kernel {bare} cannot be found"
        )),
        "{}",
        out.stderr
    );
}

/// A root with the patched fixture marked NEEDED_AT_BOOT, built for a fake kernel, and
/// stand-ins for update-initramfs (logs its arguments, writes an "image" listing the
/// modules dkms asked for, or fails with $TOOL_EXIT) and lsinitramfs (prints the image,
/// less $DROP).
fn boot_root(marked: bool) -> (Root, std::path::PathBuf) {
    let root = Root::new();
    let k = "6.1.0-1-amd64";
    let conf = common::simple_conf("m", "1.0")
        + if marked {
            "NEEDED_AT_BOOT=\"yes\"\n"
        } else {
            ""
        };
    root.fake_kernel(k, "")
        .source("m", "1.0", &conf)
        .added("m", "1.0")
        .built("m", "1.0", k, "x86_64", &["m.ko"]);
    let log = root.path().join("tool.log");
    let r = root.path().display().to_string();
    root.write(
        "usr/sbin/update-initramfs",
        &format!("#!/bin/sh\necho \"update-initramfs $*\" >> '{r}/tool.log'\n[ \"${{TOOL_EXIT:-0}}\" = 0 ] || exit $TOOL_EXIT\nsed 's|^|usr/lib/modules/{k}/updates/dkms/|; s|$|.ko|' '{r}/var/lib/dkms/.initramfs/{k}' > '{r}/boot/initrd.img-{k}' 2>/dev/null || : > '{r}/boot/initrd.img-{k}'\n"),
    )
    .write("usr/bin/lsinitramfs", "#!/bin/sh\ngrep -v \"${DROP:-^$}\" \"$1\" || true\n")
    .write("boot/.keep", "");
    for f in ["usr/sbin/update-initramfs", "usr/bin/lsinitramfs"] {
        std::fs::set_permissions(
            root.path().join(f),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    (root, log)
}

#[test]
fn a_module_needed_at_boot_goes_into_the_initramfs_and_is_checked_there() {
    let k = "6.1.0-1-amd64";
    let (root, log) = boot_root(true);
    let image = root.path().join(format!("boot/initrd.img-{k}"));
    root.dkms(&["install", "m/1.0", "-k", k]).is(
        &root,
        exit::SUCCESS,
        &format!("Installing $ROOT/lib/modules/{k}/updates/dkms/m.ko\nSkipping depmod because '$ROOT/lib/modules/{k}/modules.dep' is missing.\nUpdating the initramfs of {k} with update-initramfs (modules needed at boot: m)...\nm in {}.\n", image.display()),
        "",
    );
    assert_eq!(
        std::fs::read_to_string(root.dkms_tree().join(format!(".initramfs/{k}"))).unwrap(),
        "m\n"
    );
    // The tool leaves it out: said.
    root.dkms(&["uninstall", "m/1.0", "-k", k]).ok();
    let out = root.dkms_env(&["install", "m/1.0", "-k", k], &[("DROP", "m.ko")]);
    assert_eq!(out.code, exit::SUCCESS);
    assert_eq!(out.stderr, format!("Warning: m not in {}, though needed at boot: update-initramfs left it out. A machine that needs it to find its root may not boot {k}.\n", image.display()));
    // The tool fails: said; the install stands.
    root.dkms(&["uninstall", "m/1.0", "-k", k]).ok();
    let out = root.dkms_env(&["install", "m/1.0", "-k", k], &[("TOOL_EXIT", "1")]);
    assert_eq!(out.code, exit::SUCCESS);
    assert_eq!(out.stderr, format!("Warning: The initramfs of {k} was not updated: update-initramfs exited with exit status: 1: \nThe modules are installed; run update-initramfs for {k} once the problem is fixed.\n"));
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("m/1.0, {k}, x86_64: installed\n")
    );
    // Uninstalled: the image is made again without it.
    root.dkms(&["uninstall", "m/1.0", "-k", k]).ok();
    assert!(!root.dkms_tree().join(format!(".initramfs/{k}")).exists());
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().lines().count(),
        6,
        "once for each install and uninstall"
    );
}

#[test]
fn other_modules_leave_the_initramfs_alone_and_framework_conf_can_mark_them() {
    let k = "6.1.0-1-amd64";
    let (root, log) = boot_root(false);
    root.dkms(&["install", "m/1.0", "-k", k]).ok();
    root.dkms(&["uninstall", "m/1.0", "-k", k]).ok();
    assert!(!log.exists(), "not needed at boot: no initramfs update");
    root.write("etc/dkms/framework.conf", "boot_modules=\"m\"\n");
    root.dkms(&["install", "m/1.0", "-k", k]).ok();
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!("update-initramfs -u -k {k}\n")
    );
}
