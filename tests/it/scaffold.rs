//! `dkms scaffold` and `dkms lint` on real module sources: Debian's `*-dkms` packages with
//! their dkms.conf deleted and scaffolded again from their Kbuild install the same `.ko`
//! files in the same places as with the shipped conf, on 6.1 and 6.12 (where the shipped
//! one builds); lint is quiet on every shipped conf of the corpus and speaks on a fixture
//! per mistake.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{self, Needs, Root};
use dkms::exit;

const DEBS: &str = "/var/cache/dkms-rs-test/debs";

/// `usr/src/<name>-<version>` of a package, unpacked into `into`.
fn unpack(package: &str, into: &Path) -> PathBuf {
    let deb = std::fs::read_dir(DEBS)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{package}_"))
        })
        .unwrap_or_else(|| panic!("{package} in {DEBS}"));
    assert!(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(into)
        .status()
        .unwrap()
        .success());
    std::fs::read_dir(into.join("usr/src"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("dkms.conf").exists())
        .unwrap()
}

/// Install `name-version` from `root`'s source tree on `k`: the exit code and the module
/// files installed for it.
fn install(root: &Root, mv: &str, k: &str) -> (i32, Vec<String>) {
    let code = root.dkms(&["install", mv, "-k", k]).code;
    let dir = root.install_tree().join(k).join("updates");
    let mut files: Vec<String> = walk(&dir);
    files.sort();
    (code, files)
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path().display().to_string());
        }
    }
    out
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_headers_6_12, dkms_host_test_packages)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's 6.12 kernel headers, the real *-dkms packages (.ci/install-deps)"
)]
fn scaffolded_confs_install_what_the_shipped_ones_install() {
    if !common::host_ready(&[
        Needs::Headers("6.1"),
        Needs::Headers("6.12"),
        Needs::TestPackages,
    ]) {
        return;
    }
    let kernels = [common::headers("6.1"), common::headers("6.12")];
    for package in [
        "acpi-call-dkms",
        "bbswitch-dkms",
        "dm-writeboost-dkms",
        "r8168-dkms",
        "v4l2loopback-dkms",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let src = unpack(package, tmp.path());
        let base = src.file_name().unwrap().to_string_lossy().into_owned();
        let (name, version) = base.rsplit_once('-').unwrap();
        let mv = format!("{name}/{version}");
        let (shipped, ours) = (Root::new(), Root::new());
        for r in [&shipped, &ours] {
            for k in &kernels {
                r.real_kernel(k);
            }
            common::copy_dir(&src, &r.source_tree().join(&base));
        }
        let conf = ours.source_tree().join(&base).join("dkms.conf");
        std::fs::remove_file(&conf).unwrap();
        let out = ours.dkms(&["scaffold", ours.source_tree().join(&base).to_str().unwrap()]);
        assert_eq!(out.code, exit::SUCCESS, "{package}: {}", out.stderr);
        assert_eq!(out.stdout, format!("Wrote {}\n", conf.display()));
        for k in &kernels {
            let (code, files) = install(&shipped, &mv, k);
            let (our_code, our_files) = install(&ours, &mv, k);
            if code == exit::SUCCESS {
                assert_eq!(
                    (
                        our_code,
                        our_files
                            .iter()
                            .map(|f| f.replace(&ours.path().display().to_string(), ""))
                            .collect::<Vec<_>>()
                    ),
                    (
                        code,
                        files
                            .iter()
                            .map(|f| f.replace(&shipped.path().display().to_string(), ""))
                            .collect::<Vec<_>>()
                    ),
                    "{package} on {k}"
                );
            } else {
                // The shipped conf does not build here (the source is too old for the
                // kernel): neither does ours, which has nothing else to go on.
                assert_ne!(
                    our_code,
                    exit::SUCCESS,
                    "{package} on {k}: the shipped conf fails with {code}"
                );
            }
        }
    }
}

#[test]
#[cfg_attr(
    not(dkms_host_test_packages),
    ignore = "needs the real *-dkms packages (.ci/install-deps)"
)]
fn what_scaffold_cannot_infer_it_says() {
    if !common::host_ready(&[Needs::TestPackages]) {
        return;
    }
    // xtables-addons: its modules are built by extensions/Kbuild with variables the
    // shipped MAKE passes (XA_ABSTOPSRCDIR): nothing at the top to read.
    let tmp = tempfile::tempdir().unwrap();
    let src = unpack("xtables-addons-dkms", tmp.path());
    std::fs::remove_file(src.join("dkms.conf")).unwrap();
    let root = Root::new();
    root.dkms(&["scaffold", src.to_str().unwrap()]).is(
        &root,
        exit::SCAFFOLD_FAILED,
        "",
        &format!(
            "\nError! {} has no Kbuild or Makefile: scaffold reads the module's own build files.\n",
            src.display()
        ),
    );
    let out = root.dkms(&[
        "scaffold",
        src.join("extensions").to_str().unwrap(),
        "--directive",
        "PACKAGE_VERSION=3.23",
        "--dry-run",
    ]);
    assert_eq!(out.code, exit::SUCCESS, "{}", out.stderr);
    // The other notes follow Debian's xtables-addons as it is packaged today: the one
    // that matters here is looked for.
    assert!(out.stderr.contains("include ${XA_ABSTOPSRCDIR}/mconfig was not followed: it needs XA_ABSTOPSRCDIR, which nothing here sets"), "{}", out.stderr);
}

#[test]
fn bad_sources_are_refused_with_the_reason() {
    let root = Root::new();
    let dir = root.path().join("src");
    let p = |rel: &str| dir.join(rel).display().to_string();
    std::fs::create_dir_all(dir.join("empty-1.0")).unwrap();
    root.dkms(&["scaffold", &p("empty-1.0")]).is(
        &root,
        exit::SCAFFOLD_FAILED,
        "",
        &format!(
            "\nError! {} has no Kbuild or Makefile: scaffold reads the module's own build files.\n",
            p("empty-1.0")
        ),
    );
    // A userspace Makefile.
    root.write(
        "src/tool-1.0/Makefile",
        "all: tool\n\ntool: tool.c\n\t$(CC) -o $@ $<\n",
    );
    root.dkms(&["scaffold", &p("tool-1.0")]).is(
        &root,
        exit::SCAFFOLD_FAILED,
        "",
        &format!(
            "\nError! {} builds no kernel module: it has no obj-m (is it a userspace Makefile?).\n",
            p("tool-1.0/Makefile")
        ),
    );
    // Only under a CONFIG option nothing turns on: said; the rest scaffolded.
    root.write(
        "src/opt-1.0/Kbuild",
        "obj-m += base.o\nobj-$(CONFIG_OPT_EXTRA) += extra.o\n",
    );
    let out = root.dkms(&["scaffold", &p("opt-1.0"), "--dry-run"]);
    assert_eq!(out.code, exit::SUCCESS);
    assert_eq!(out.stderr, format!("Warning: scaffold could not infer everything: {}: built only under a CONFIG option that nothing here turns on, so left out: extra.o\n", p("opt-1.0/Kbuild")));
    // Two modules of one name.
    root.write("src/twice-1.0/Kbuild", "obj-m += a/ b/\n")
        .write("src/twice-1.0/a/Kbuild", "obj-m := same.o\n")
        .write("src/twice-1.0/b/Kbuild", "obj-m := same.o\n");
    root.dkms(&["scaffold", &p("twice-1.0")]).is(&root, exit::SCAFFOLD_FAILED, "", "\nError! Two modules are named same, in a/ and b/: dkms installs modules by name, so one would replace the other.\n");
    // A version dkms could not use.
    root.write("src/spaced/Kbuild", "obj-m := spaced.o\n")
        .write("src/spaced/VERSION", "1.0 beta\n");
    root.dkms(&["scaffold", &p("spaced")]).is(&root, exit::SCAFFOLD_FAILED, "", "\nError! The version '1.0 beta' contains white space: a version names directories (/usr/src/<name>-<version>) and make arguments.\nGive another with --directive PACKAGE_VERSION=<version>.\n");
}

#[test]
fn scaffold_writes_one_version_in_each_place() {
    let root = Root::new();
    root.write("src/hello/Kbuild", "obj-m := hello.o\nhello-y := main.o util.o\nobj-y += extra/\n")
        .write("src/hello/extra/Kbuild", "obj-m := hello_extra.o\n")
        .write("src/hello/VERSION", "2.1\n")
        .write("src/hello/main.c", "MODULE_LICENSE(\"GPL\");\n#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 4, 0)\n#error too old\n#endif\n")
        .write("src/hello/fix.patch", "");
    let dir = root.path().join("src/hello");
    let out = root.dkms(&[
        "scaffold",
        dir.to_str().unwrap(),
        "--pkgbuild",
        "--install-script",
        "--debian",
    ]);
    assert_eq!(out.code, exit::SUCCESS, "{}", out.stderr);
    let read = |rel: &str| std::fs::read_to_string(dir.join(rel)).unwrap();
    let conf = read("dkms.conf");
    assert_eq!(
        conf.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n"),
        "PACKAGE_NAME=\"hello\"\nPACKAGE_VERSION=\"2.1\"\nMAKE[0]=\"make -C ${kernel_source_dir} M=${dkms_tree}/${PACKAGE_NAME}/${PACKAGE_VERSION}/build\"\nBUILT_MODULE_NAME[0]=\"hello\"\nDEST_MODULE_LOCATION[0]=\"/updates/dkms\"\nBUILT_MODULE_NAME[1]=\"hello_extra\"\nBUILT_MODULE_LOCATION[1]=\"extra/\"\nDEST_MODULE_LOCATION[1]=\"/updates/dkms\"\nBUILD_EXCLUSIVE_KERNEL_MIN=\"5.4.0\"\nAUTOINSTALL=\"yes\""
    );
    // The PKGBUILD carries the version; its dkms.conf a placeholder; so does Debian's.
    // The tarball's sum changes with the files' times: it is computed here.
    let sum = |rel: &str| {
        let out = Command::new("sha256sum")
            .arg(dir.join(rel))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)[..64].to_string()
    };
    assert_eq!(
        read("dkms-hello/PKGBUILD"),
        format!(
            "# Made by `dkms scaffold --arch` from hello's Kbuild. Set url and the source's\n\
             # address (the tarball beside this file is the local source it was made from).\n\
             _name=hello\npkgname=dkms-hello\npkgver=2.1\npkgrel=1\n\
             pkgdesc='hello kernel module(s) (DKMS sources)'\narch=('any')\nurl=''\n\
             license=('GPL-2.0-only')\ndepends=('dkms')\ninstall=dkms-hello.install\n\
             source=(\"$_name-$pkgver.tar.gz\"\n        'dkms.conf'\n        'fix.patch')\n\
             sha256sums=('{}'\n            '{}'\n            'SKIP')\n\n\
             prepare() {{\n    cd \"$_name-$pkgver\"\n    local p\n    for p in \"${{source[@]}}\"; do\n\
             \x20       case $p in *.patch) patch -Np1 -i \"$srcdir/${{p##*/}}\" ;; esac\n    done\n}}\n\n\
             package() {{\n    local dest=\"$pkgdir/usr/src/$_name-$pkgver\"\n    install -d \"$dest\"\n\
             \x20   cp -a \"$srcdir/$_name-$pkgver/.\" \"$dest/\"\n\
             \x20   install -Dm644 \"$srcdir/dkms.conf\" \"$dest/dkms.conf\"\n\
             \x20   sed -i \"s/@PKGVER@/$pkgver/\" \"$dest/dkms.conf\"\n}}\n",
            sum("dkms-hello/hello-2.1.tar.gz"),
            sum("dkms-hello/dkms.conf")
        )
    );
    assert_eq!(read("dkms-hello/dkms.conf"), PACKAGED_CONF);
    assert_eq!(read("dkms-hello/dkms-hello.install"), INSTALL_SCRIPT);
    assert_eq!(
        read("debian/hello-dkms.dkms"),
        PACKAGED_CONF.replace("@PKGVER@", "#MODULE_VERSION#")
    );
    // The changelog's trailer carries today's date: its first line is checked.
    assert!(read("debian/changelog").starts_with("hello (2.1) unstable;"));
    // The source tarball holds the sources, not what scaffold wrote, nor the patch.
    let list = Command::new("tar")
        .arg("-tzf")
        .arg(dir.join("dkms-hello/hello-2.1.tar.gz"))
        .output()
        .unwrap();
    let mut names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "hello-2.1/Kbuild",
            "hello-2.1/VERSION",
            "hello-2.1/extra",
            "hello-2.1/extra/Kbuild",
            "hello-2.1/main.c"
        ]
    );
    // Not again without --force.
    assert_eq!(
        root.dkms(&["scaffold", dir.to_str().unwrap()]).code,
        exit::SCAFFOLD_FAILED
    );
}

#[test]
fn lint_is_quiet_on_shipped_confs_and_names_each_mistake() {
    let root = Root::new();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dkms-conf");
    for e in std::fs::read_dir(&corpus).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "conf") {
            root.dkms(&["lint", p.to_str().unwrap()])
                .is(&root, exit::SUCCESS, "", "");
        }
    }
    root.write("bad/dkms.conf", "PACKAGE_NAME=bad\nPACKAGE_VERSION=1\nMAKE[0]=\"make -C /lib/modules/$(uname -r)/build M=$PWD CC=gcc\"\nAUTOINSTALL='Y'\nREMAKE_INITRD=yes\nNO_WEAK_MODULES=1\n");
    root.dkms(&["lint", root.path().join("bad").to_str().unwrap()]).is(
        &root,
        exit::LINT_FINDINGS,
        "$ROOT/bad/dkms.conf:3: MAKE uses `uname -r`, the running kernel, where the kernel being built for is meant: a kernel upgrade would build against the old one\n  fix: use $kernelver (and ${kernel_source_dir} for its headers)\n\
         $ROOT/bad/dkms.conf:3: MAKE sets the compiler: a kernel built with clang (dkms passes LLVM=1 and the kernel's own compiler) would get modules it cannot load\n  fix: drop CC=/LLVM= from MAKE and let kbuild use the kernel's compiler\n\
         $ROOT/bad/dkms.conf:4: AUTOINSTALL='Y' is not yes: the module would never be built for new kernels\n  fix: AUTOINSTALL=\"yes\"\n\
         $ROOT/bad/dkms.conf:5: REMAKE_INITRD is deprecated (dkms 3.0 ignores it; this dkms reads it as NEEDED_AT_BOOT)\n  fix: NEEDED_AT_BOOT=\"yes\" if the module must be in the initramfs, else remove it\n\
         $ROOT/bad/dkms.conf:6: NO_WEAK_MODULES=1: newer dkms takes only yes or no\n  fix: NO_WEAK_MODULES=\"yes\"\n",
        "",
    );
}

/// The dkms.conf that `scaffold --pkgbuild` puts beside the PKGBUILD: the version a
/// placeholder the PKGBUILD fills.
const PACKAGED_CONF: &str = r#"# dkms.conf made by `dkms scaffold` from the source's own Kbuild; check it, and keep
# it with the source. dkms runs MAKE with KERNELRELEASE=$kernelver against each
# kernel's headers (${kernel_source_dir}); the kernel's compiler is its own. (No
# CLEAN: dkms cleans the build directory itself, and deprecates CLEAN.)
PACKAGE_NAME="hello"
PACKAGE_VERSION="@PKGVER@"
MAKE[0]="make -C ${kernel_source_dir} M=${dkms_tree}/${PACKAGE_NAME}/${PACKAGE_VERSION}/build"
BUILT_MODULE_NAME[0]="hello"
DEST_MODULE_LOCATION[0]="/updates/dkms"
BUILT_MODULE_NAME[1]="hello_extra"
BUILT_MODULE_LOCATION[1]="extra/"
DEST_MODULE_LOCATION[1]="/updates/dkms"
# The sources refuse kernels older than 5.4.0.
BUILD_EXCLUSIVE_KERNEL_MIN="5.4.0"
AUTOINSTALL="yes"
"#;

/// The `--install-script` for dkms-hello.
const INSTALL_SCRIPT: &str = r#"# dkms-hello: add, build and install the module with the package (only where no
# pacman hook runs dkms; dkms runs depmod itself).
post_install() {
    dkms install -m hello -v "${1%-*}"
}

pre_upgrade() {
    pre_remove "$2"
}

post_upgrade() {
    post_install "$1"
}

pre_remove() {
    dkms remove -m hello -v "${1%-*}" --all
}
"#;
