//! `dkms mkbmdeb`: binary packages of built modules, read back with dpkg-deb.

use crate::common::{self, Needs};

use std::process::Command;

use common::Root;
use dkms::exit;

fn dpkg_deb(args: &[&str], deb: &str) -> String {
    let out = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn mkbmdeb_builds_what_is_missing_and_packages_the_kernel() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let root = Root::new();
    let k = common::headers("6.1");
    root.real_kernel(&k).fixture("patched-1.0");
    root.dkms(&["add", "patched/1.0"]).ok();
    let out = root.dkms(&["mkbmdeb", "patched/1.0", "-k", &k]);
    out.ok();
    let deb = root.dkms_tree().join(format!(
        "patched/1.0/deb/patched-modules-{k}_1.0-1_amd64.deb"
    ));
    assert_eq!(out.stdout.lines().last(), Some(deb.to_str().unwrap()));
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: built\n"),
        "built first, not installed"
    );
    let deb = deb.to_str().unwrap();
    let listing: Vec<String> = dpkg_deb(&["-c"], deb)
        .lines()
        .map(|l| l.split_whitespace().skip(5).collect::<Vec<_>>().join(" "))
        .filter(|l| !l.ends_with('/'))
        .collect();
    assert_eq!(
        listing,
        [
            format!("./lib/modules/{k}/updates/dkms/fx_patched.ko"),
            format!("./usr/share/doc/patched-modules-{k}/copyright"),
            format!("./var/lib/dkms/patched/1.0/{k}/x86_64/.dkms.conf"),
            format!("./var/lib/dkms/patched/1.0/{k}/x86_64/.installed-files.json"),
            format!("./var/lib/dkms/patched/1.0/{k}/x86_64/module/fx_patched.ko"),
            format!("./var/lib/dkms/patched/kernel-{k}-x86_64 -> 1.0/{k}/x86_64"),
        ]
    );
    let control = Command::new("dpkg-deb")
        .args([
            "-f",
            deb,
            "Package",
            "Version",
            "Architecture",
            "Depends",
            "Conflicts",
            "Provides",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&control.stdout),
        format!("Package: patched-modules-{k}\nVersion: 1.0-1\nArchitecture: amd64\nDepends: linux-image-{k}\nConflicts: patched-dkms\nProvides: patched-modules\n")
    );
    // The module in the package is the built one: signed, as an install would place it.
    let unpacked = tempfile::tempdir().unwrap();
    let x = Command::new("dpkg-deb")
        .args(["-x", deb])
        .arg(unpacked.path())
        .status()
        .unwrap();
    assert!(x.success());
    let packaged = unpacked
        .path()
        .join(format!("lib/modules/{k}/updates/dkms/fx_patched.ko"));
    let built = root
        .dkms_tree()
        .join(format!("patched/1.0/{k}/x86_64/module/fx_patched.ko"));
    assert_eq!(
        std::fs::read(&packaged).unwrap(),
        std::fs::read(&built).unwrap()
    );
    assert!(
        dkms::module::sign::signer_of(&std::fs::read(&packaged).unwrap()).is_some(),
        "the packaged module is signed"
    );
    // md5sums covers every file, as dpkg --verify reads it.
    let control_dir = tempfile::tempdir().unwrap();
    let e = Command::new("dpkg-deb")
        .args(["-e", deb])
        .arg(control_dir.path())
        .status()
        .unwrap();
    assert!(e.success());
    let sums = std::fs::read_to_string(control_dir.path().join("md5sums")).unwrap();
    assert_eq!(sums.lines().count(), 5, "{sums}");
    let check = Command::new("md5sum")
        .args(["--check", "--quiet", "--strict"])
        .arg(control_dir.path().join("md5sums"))
        .current_dir(unpacked.path())
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    // The packaged dkms.conf never asks the host to build it for another kernel.
    let conf = std::fs::read_to_string(
        unpacked
            .path()
            .join(format!("var/lib/dkms/patched/1.0/{k}/x86_64/.dkms.conf")),
    )
    .unwrap();
    assert!(conf.ends_with("AUTOINSTALL=\"\"\n"), "{conf}");
    // A rebuild of the same version ships under a higher revision.
    let out = root.dkms(&["mkbmdeb", "patched/1.0", "-k", &k, "--revision", "2"]);
    out.ok();
    assert_eq!(
        out.stdout.lines().last().unwrap(),
        root.dkms_tree()
            .join(format!(
                "patched/1.0/deb/patched-modules-{k}_1.0-2_amd64.deb"
            ))
            .display()
            .to_string()
    );
    root.dkms(&["mkbmdeb", "patched/1.0", "-k", &k, "--revision=0"])
        .is(
            &root,
            exit::FAILURE,
            "",
            "\nError! Invalid package revision '0' given to --revision: a number from 1 up.\n",
        );
}

#[test]
fn mkbmdeb_names_the_kernel_a_module_does_not_build_for() {
    let root = Root::new();
    // Headers whose kbuild is missing: every build fails.
    root.fake_kernel("6.1.0-0-broken", "CONFIG_MODULES=y\n")
        .source("solo", "1.0", &common::simple_conf("solo", "1.0"))
        .write("usr/src/solo-1.0/Makefile", "obj-m := solo.o\n");
    root.dkms(&["add", "solo/1.0"]).ok();
    root.dkms(&["mkbmdeb", "solo/1.0", "-k", "6.1.0-0-broken"]).is(
        &root,
        exit::BUILD_FAILED,
        "The kernel is built without module signing facility, modules won't be signed\nBuilding solo/1.0 module(s) for kernel 6.1.0-0-broken (x86_64)...\n",
        "\nError! Bad return status for module build on kernel: 6.1.0-0-broken (x86_64)\nConsult $ROOT/var/lib/dkms/solo/1.0/.failed/6.1.0-0-broken/x86_64/make.log for more information.\n",
    );
    assert!(!root
        .dkms_tree()
        .join("solo/1.0/deb")
        .read_dir()
        .unwrap()
        .any(|_| true));
}

#[test]
fn a_second_packaging_run_waits_for_the_lock() {
    let root = Root::new();
    root.fake_kernel("6.1.0-0-broken", "CONFIG_MODULES=y\n")
        .source("solo", "1.0", &common::simple_conf("solo", "1.0"))
        .write("usr/src/solo-1.0/Makefile", "obj-m := solo.o\n");
    root.dkms(&["add", "solo/1.0"]).ok();
    let out = common::run_while_locked(
        &root,
        &["mkbmdeb", "solo/1.0", "-k", "6.1.0-0-broken"],
        || {
            assert!(
                !root.dkms_tree().join("solo/1.0/deb").exists(),
                "nothing done while waiting"
            )
        },
    );
    assert_eq!(
        out.code,
        exit::BUILD_FAILED,
        "it went on once the lock was free"
    );
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_kernel_image)),
    ignore = "needs Debian's 6.1 kernel headers, an installed kernel image (.ci/install-deps)"
)]
fn mkbmdeb_never_packages_a_module_that_install_refuses() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::KernelImage]) {
        return;
    }
    // The kernel's real hdaps.ko (Debian 6.1, no version) in the scratch kernel tree:
    // install keeps it, so the package must not shadow it either.
    let root = Root::new();
    let k = common::headers("6.1");
    root.real_kernel(&k).fixture("hdaps-1.0");
    let rel = "kernel/drivers/platform/x86/hdaps.ko";
    let in_tree = root.install_tree().join(&k).join(rel);
    std::fs::create_dir_all(in_tree.parent().unwrap()).unwrap();
    std::fs::copy(format!("/lib/modules/{k}/{rel}"), &in_tree).unwrap();
    root.dkms(&["build", "hdaps/1.0", "-k", &k]).ok();
    root.dkms(&["mkbmdeb", "hdaps/1.0", "-k", &k]).is(
        &root,
        exit::INSTALL_FAILED,
        &format!("hdaps.ko is not packaged for kernel {k}.\n"),
        &format!("Module version (none) for hdaps.ko is not newer than the kernel's own $ROOT/lib/modules/{k}/{rel}; it stays in place.\nYou may override by specifying --force.\n\nError! No module of hdaps/1.0 would be installed on kernel {k} (see above), so no package was made for it.\nYou may override by specifying --force.\n"),
    );
    assert!(!root
        .dkms_tree()
        .join("hdaps/1.0/deb")
        .read_dir()
        .unwrap()
        .any(|_| true));
    // Forced, as install can be; and with ours installed (the kernel's own archived),
    // the archived original still decides.
    root.dkms(&["mkbmdeb", "hdaps/1.0", "-k", &k, "--force"])
        .ok();
    root.dkms(&["install", "hdaps/1.0", "-k", &k, "--force"])
        .ok();
    assert!(!in_tree.exists());
    let out = root.dkms(&["mkbmdeb", "hdaps/1.0", "-k", &k]);
    assert_eq!(out.code, exit::INSTALL_FAILED, "{out:?}");
    assert!(
        out.stderr.starts_with(&format!(
            "Module version (none) for hdaps.ko is not newer than the kernel's own {}",
            root.dkms_tree()
                .join(format!("hdaps/original_module/{k}/x86_64/hdaps.ko"))
                .display()
        )),
        "{}",
        out.stderr
    );
}

/// An RPM that owns `paths` (relative to the root), made by rpmbuild, recorded in the
/// root's rpm database (`--justdb`: the files are the root's already).
fn rpm_install_into(root: &Root, name: &str, version: &str, paths: &[&str]) {
    let top = tempfile::tempdir().unwrap();
    let files: String = paths.iter().map(|p| format!("\"/{p}\"\n")).collect();
    let copies: String = paths
        .iter()
        .map(|p| {
            format!(
                "mkdir -p \"$(dirname %{{buildroot}}/{p})\"\ncp -a {r}/{p} %{{buildroot}}/{p}\n",
                r = root.path().display()
            )
        })
        .collect();
    let spec = top.path().join("k.spec");
    std::fs::write(&spec, format!("Name: {name}\nVersion: {version}\nRelease: 1\nSummary: a kernel\nLicense: GPL\nAutoReqProv: no\n%description\na kernel\n%install\n{copies}%files\n{files}")).unwrap();
    let out = Command::new("rpmbuild")
        .args(["-bb", "--define"])
        .arg(format!("_topdir {}", top.path().display()))
        .arg(&spec)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rpm = std::fs::read_dir(top.path().join("RPMS/x86_64"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let db = Command::new("rpm")
        .arg("--root")
        .arg(root.path())
        .args(["--dbpath", "/var/lib/rpm", "--initdb"])
        .status()
        .unwrap();
    assert!(db.success());
    let out = Command::new("rpm")
        .arg("--root")
        .arg(root.path())
        .args([
            "--dbpath",
            "/var/lib/rpm",
            "-i",
            "--nodeps",
            "--justdb",
            "--noscripts",
        ])
        .arg(&rpm)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_rpm)),
    ignore = "needs Debian's 6.1 kernel headers, rpm and rpmbuild (.ci/install-deps)"
)]
fn mkbmrpm_makes_a_kmod_package_requiring_the_kernels_rpm() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::Rpm]) {
        return;
    }
    let root = Root::new();
    let k = common::headers("6.1");
    root.real_kernel(&k).fixture("patched-1.0");
    root.dkms(&["add", "patched/1.0"]).ok();
    // No rpm knows the kernel: refused, as mkbmpkg does without pacman's.
    let out = root.dkms(&["mkbmrpm", "patched/1.0", "-k", &k]);
    assert_eq!(out.code, exit::TARBALL_FAILED, "{}", out.stderr);
    assert!(out.stderr.ends_with(&format!("\nError! No rpm package owns {}, so a package of modules for it could not require its kernel.\nInstall the kernel with rpm or dnf, or make a .deb (dkms mkbmdeb).\n", root.install_tree().join(&k).join("modules.builtin").display())), "{}", out.stderr);
    root.write(
        &format!("lib/modules/{k}/modules.builtin"),
        "kernel/fs/ext4/ext4.ko\n",
    );
    rpm_install_into(
        &root,
        "kernel-core",
        "6.1.0",
        &[&format!("lib/modules/{k}/modules.builtin")],
    );
    // Without rpmbuild (a PATH of every program but it): the package to install is named.
    root.dkms(&["build", "patched/1.0", "-k", &k]).ok();
    let bin = root.path().join("no-rpmbuild");
    std::fs::create_dir_all(&bin).unwrap();
    for dir in ["/usr/bin", "/usr/sbin"] {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.file_name() != "rpmbuild" && !bin.join(entry.file_name()).exists() {
                std::os::unix::fs::symlink(entry.path(), bin.join(entry.file_name())).unwrap();
            }
        }
    }
    root.dkms_env(
        &["mkbmrpm", "patched/1.0", "-k", &k],
        &[("PATH", bin.to_str().unwrap())],
    )
    .is(
        &root,
        exit::TARBALL_FAILED,
        "",
        "\nError! rpmbuild is not installed: dkms mkbmrpm builds with it.\nInstall it: dnf install rpm-build (Debian: apt-get install rpm).\n",
    );
    let out = root.dkms(&["mkbmrpm", "patched/1.0", "-k", &k]);
    out.ok();
    let rpm = root
        .dkms_tree()
        .join(format!("patched/1.0/rpm/kmod-patched-{k}-1.0-1.x86_64.rpm"));
    assert_eq!(out.stdout.lines().last(), Some(rpm.to_str().unwrap()));
    let q = |args: &[&str]| {
        let o = Command::new("rpm").args(args).arg(&rpm).output().unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(
        q(&["-qp", "--queryformat", "%{NAME} %{VERSION}-%{RELEASE}\\n"]),
        format!("kmod-patched-{k} 1.0-1\n")
    );
    assert!(
        q(&["-qp", "--requires"])
            .lines()
            .any(|l| l == "kernel-core = 6.1.0-1"),
        "{}",
        q(&["-qp", "--requires"])
    );
    assert_eq!(q(&["-qp", "--conflicts"]), "patched-dkms\n");
    assert_eq!(q(&["-qpl"]), format!(
            "/lib/modules/{k}/updates/dkms/fx_patched.ko\n/var/lib/dkms/patched/1.0/{k}\n/var/lib/dkms/patched/1.0/{k}/x86_64\n/var/lib/dkms/patched/1.0/{k}/x86_64/.dkms.conf\n/var/lib/dkms/patched/1.0/{k}/x86_64/.installed-files.json\n/var/lib/dkms/patched/1.0/{k}/x86_64/module\n/var/lib/dkms/patched/1.0/{k}/x86_64/module/fx_patched.ko\n/var/lib/dkms/patched/kernel-{k}-x86_64\n"
        ));
    // A shell `%` survives rpm's macro expansion (`${o%/*}`).
    assert_eq!(q(&["-qp", "--scripts"]), SCRIPTS.replace("@K@", &k));
}

/// What `rpm -qp --scripts` shows of a kmod package for kernel `@K@`.
const SCRIPTS: &str = r#"postuninstall scriptlet (using /bin/sh):
if [ "$1" -eq 0 ]; then
d='/var/lib/dkms/patched'; v='1.0'; k='@K@'; a='x86_64'
rm -rf "$d/$v/$k/$a"
rmdir "$d/$v/$k" 2>/dev/null || true
if [ -f "$d/$v/source/.from-package" ] && ! ls -d "$d/$v"/*/*/module >/dev/null 2>&1; then
    rm -rf "$d/$v"
fi
rmdir "$d" 2>/dev/null || true
if [ -d /lib/modules/"$k"/kernel ]; then depmod -a "$k"; fi || true
fi
posttrans scriptlet (using /bin/sh):
d='/var/lib/dkms/patched'; v='1.0'; k='@K@'; a='x86_64'
if [ ! -e "$d/$v/source" ]; then
    mkdir -p "$d/$v/source"
    cp "$d/$v/$k/$a/.dkms.conf" "$d/$v/source/dkms.conf"
    : > "$d/$v/source/.from-package"
fi
for o in "$d"/*/"$k/$a"; do
    if [ "$o" != "$d/$v/$k/$a" ] && [ -d "$o" ] && [ ! -d "$o/module" ]; then
        rm -rf "$o"
        rmdir "${o%/*}" 2>/dev/null || true
    fi
done
for s in "$d"/*/source/.from-package; do
    o=${s%/source/.from-package}
    if [ "$o" != "$d/$v" ] && [ -f "$s" ] && ! ls -d "$o"/*/*/module >/dev/null 2>&1; then
        rm -rf "$o"
    fi
done
if [ -d /lib/modules/"$k"/kernel ]; then depmod -a "$k"; fi
"#;
