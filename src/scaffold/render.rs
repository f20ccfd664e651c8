//! The files scaffold writes, from what it read ([`super::Source`]): a dkms.conf, an Arch
//! `dkms-<name>` PKGBUILD (and, on request, the older `.install` script), and a Debian
//! source package built with dh-dkms. The version lives in one place each time: the
//! dkms.conf of the source; `pkgver` in the PKGBUILD (its dkms.conf says `@PKGVER@`,
//! replaced at package time); `debian/changelog` for Debian (its dkms.conf says
//! `#MODULE_VERSION#`, which dh_dkms replaces).

use super::Source;

/// A dkms.conf whose version is `version` (the real one, or a placeholder).
pub fn dkms_conf(s: &Source, version: &str) -> String {
    let build = "${dkms_tree}/${PACKAGE_NAME}/${PACKAGE_VERSION}/build";
    let mut out = format!(
        "# dkms.conf made by `dkms scaffold` from the source's own Kbuild; check it, and keep\n\
         # it with the source. dkms runs MAKE with KERNELRELEASE=$kernelver against each\n\
         # kernel's headers (${{kernel_source_dir}}); the kernel's compiler is its own. (No\n\
         # CLEAN: dkms cleans the build directory itself, and deprecates CLEAN.)\n\
         PACKAGE_NAME=\"{}\"\nPACKAGE_VERSION=\"{version}\"\n\
         MAKE[0]=\"make -C ${{kernel_source_dir}} M={build}\"\n",
        s.name
    );
    for (i, m) in s.modules.iter().enumerate() {
        out.push_str(&format!("BUILT_MODULE_NAME[{i}]=\"{}\"\n", m.name));
        if !m.location.is_empty() {
            out.push_str(&format!("BUILT_MODULE_LOCATION[{i}]=\"{}\"\n", m.location));
        }
        out.push_str(&format!("DEST_MODULE_LOCATION[{i}]=\"/updates/dkms\"\n"));
    }
    if let Some(min) = &s.kernel_min {
        out.push_str(&format!("# The sources refuse kernels older than {min}.\nBUILD_EXCLUSIVE_KERNEL_MIN=\"{min}\"\n"));
    }
    out.push_str("AUTOINSTALL=\"yes\"\n");
    out
}

/// Arch's name for a `MODULE_LICENSE` (SPDX, as Arch's license field wants it).
pub fn spdx(license: Option<&str>) -> &'static str {
    match license.unwrap_or("") {
        "GPL" | "GPL v2" | "GPL-2.0" => "GPL-2.0-only",
        "Dual BSD/GPL" => "BSD-3-Clause OR GPL-2.0-only",
        "Dual MIT/GPL" => "MIT OR GPL-2.0-only",
        "Dual MPL/GPL" => "MPL-1.1 OR GPL-2.0-only",
        _ => "LicenseRef-unknown",
    }
}

/// The PKGBUILD of `dkms-<name>`: the sources (from `<name>-<version>.tar.gz`, which
/// scaffold writes beside it; replace it with the upstream URL) go to
/// `/usr/src/<name>-<version>`, patches are applied in prepare(), the dkms.conf gets
/// `pkgver` at package time, `depends` is dkms (never linux-headers: the user picks
/// theirs).
pub fn pkgbuild(s: &Source, sha_tarball: &str, sha_conf: &str, install_script: bool) -> String {
    let mut sources = String::from("\"$_name-$pkgver.tar.gz\"\n        'dkms.conf'");
    let mut sums = format!("'{sha_tarball}'\n            '{sha_conf}'");
    for p in &s.patches {
        sources.push_str(&format!("\n        '{p}'"));
        sums.push_str("\n            'SKIP'");
    }
    let install = if install_script {
        format!("install=dkms-{}.install\n", s.name)
    } else {
        String::new()
    };
    format!(
        "# Made by `dkms scaffold --arch` from {name}'s Kbuild. Set url and the source's\n\
         # address (the tarball beside this file is the local source it was made from).\n\
         _name={name}\n\
         pkgname=dkms-{name}\n\
         pkgver={version}\n\
         pkgrel=1\n\
         pkgdesc='{name} kernel module(s) (DKMS sources)'\n\
         arch=('any')\n\
         url=''\n\
         license=('{license}')\n\
         depends=('dkms')\n\
         {install}\
         source=({sources})\n\
         sha256sums=({sums})\n\
         \n\
         prepare() {{\n\
         \x20   cd \"$_name-$pkgver\"\n\
         \x20   local p\n\
         \x20   for p in \"${{source[@]}}\"; do\n\
         \x20       case $p in *.patch) patch -Np1 -i \"$srcdir/${{p##*/}}\" ;; esac\n\
         \x20   done\n\
         }}\n\
         \n\
         package() {{\n\
         \x20   local dest=\"$pkgdir/usr/src/$_name-$pkgver\"\n\
         \x20   install -d \"$dest\"\n\
         \x20   cp -a \"$srcdir/$_name-$pkgver/.\" \"$dest/\"\n\
         \x20   install -Dm644 \"$srcdir/dkms.conf\" \"$dest/dkms.conf\"\n\
         \x20   sed -i \"s/@PKGVER@/$pkgver/\" \"$dest/dkms.conf\"\n\
         }}\n",
        name = s.name,
        version = s.version,
        license = spdx(s.license.as_deref()),
    )
}

/// The older form of Arch's dkms packages, for systems without pacman hooks that run
/// dkms: install and remove the module version with the package.
pub fn install_script(s: &Source) -> String {
    format!(
        "# dkms-{name}: add, build and install the module with the package (only where no\n\
         # pacman hook runs dkms; dkms runs depmod itself).\n\
         post_install() {{\n\
         \x20   dkms install -m {name} -v \"${{1%-*}}\"\n\
         }}\n\
         \n\
         pre_upgrade() {{\n\
         \x20   pre_remove \"$2\"\n\
         }}\n\
         \n\
         post_upgrade() {{\n\
         \x20   post_install \"$1\"\n\
         }}\n\
         \n\
         pre_remove() {{\n\
         \x20   dkms remove -m {name} -v \"${{1%-*}}\" --all\n\
         }}\n",
        name = s.name
    )
}

/// `debian/`: (file, text, mode) of a source package built with dh-dkms.
pub fn debian(s: &Source) -> Vec<(String, String, u32)> {
    let name = &s.name;
    let version = &s.version;
    let when = "Thu, 01 Jan 2026 00:00:00 +0000";
    vec![
        (
            "control".into(),
            format!(
                "Source: {name}\nSection: kernel\nPriority: optional\nMaintainer: dkms scaffold <root@localhost>\nBuild-Depends: debhelper-compat (= 13), dh-dkms\nStandards-Version: 4.6.2\nRules-Requires-Root: no\n\nPackage: {name}-dkms\nArchitecture: all\nDepends: ${{misc:Depends}}\nDescription: {name} kernel module(s) (DKMS sources)\n The sources of the {name} kernel module(s), built and installed for every kernel\n by dkms.\n"
            ),
            0o644,
        ),
        (
            "changelog".into(),
            format!("{name} ({version}) unstable; urgency=medium\n\n  * Packaged with dkms scaffold.\n\n -- dkms scaffold <root@localhost>  {when}\n"),
            0o644,
        ),
        (
            "rules".into(),
            format!(
                "#!/usr/bin/make -f\n%:\n\tdh $@ --with dkms\n\noverride_dh_auto_configure override_dh_auto_build override_dh_auto_test override_dh_auto_install override_dh_auto_clean:\n\ttrue\n\noverride_dh_install:\n\tdh_install -X debian -X .git . usr/src/{name}-{version}/\n\noverride_dh_dkms:\n\tdh_dkms -V {version}\n"
            ),
            0o755,
        ),
        (format!("{name}-dkms.dkms"), dkms_conf(s, "#MODULE_VERSION#"), 0o644),
        ("source/format".into(), "3.0 (native)\n".into(), 0o644),
        (
            "copyright".into(),
            format!(
                "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: {name}\n\nFiles: *\nCopyright: the authors of {name}\nLicense: {}\n",
                spdx(s.license.as_deref())
            ),
            0o644,
        ),
    ]
}
