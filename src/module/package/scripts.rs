//! The shell steps a prebuilt module package runs on the host, the same for dpkg's
//! `postinst`/`postrm` and pacman's `.INSTALL`.
//!
//! The package ships its build, record and link; what it cannot ship is what it shares
//! or what appears beside it later: the version's `source/dkms.conf` (the packages of
//! every kernel need one; two packages shipping it would conflict), marked with
//! `.from-package` so that only such a copy is ever deleted, and the status caches dkms
//! writes into `<m>/<v>/<k>/<a>/`. After an install, upgrade, downgrade or reinstall the
//! settle step creates the source copy if none is there and deletes what another
//! version's package left for this kernel (the package manager took its files but could
//! not remove directories still holding caches) and any packaged version no build is
//! left of; a removal deletes this package's build directory whole and the version's
//! source copy with the last build. So every path ends as a fresh install of the package
//! that stays leaves it. Then depmod, for this kernel only, unless the distribution has
//! a hook that runs it (Arch's kmod package does).

use crate::bash::quote;

/// Where the host keeps kernel modules, and whether a package-manager hook runs depmod.
pub(super) struct Host<'a> {
    /// `lib/modules` (Debian) or `usr/lib/modules` (Arch).
    pub modules: &'a str,
    /// Ask for depmod only where no pacman hook runs it.
    pub depmod_hook_possible: bool,
}

/// (install, remove): the steps after the package's files arrived or left.
pub(super) fn scripts(m: &str, v: &str, k: &str, a: &str, host: &Host) -> (String, String) {
    let mut depmod = format!(
        "if [ -d /{}/\"$k\"/kernel ]; then depmod -a \"$k\"; fi",
        host.modules
    );
    if host.depmod_hook_possible {
        depmod = format!(
            "if ! grep -qs '^Exec *=.*depmod' /usr/share/libalpm/hooks/*.hook /etc/pacman.d/hooks/*.hook; then\n    {depmod}\nfi"
        );
    }
    let vars = format!(
        "d={}; v={}; k={}; a={}",
        quote(&format!("/var/lib/dkms/{m}")),
        quote(v),
        quote(k),
        quote(a)
    );
    let install = format!(
        r#"{vars}
if [ ! -e "$d/$v/source" ]; then
    mkdir -p "$d/$v/source"
    cp "$d/$v/$k/$a/.dkms.conf" "$d/$v/source/dkms.conf"
    : > "$d/$v/source/.from-package"
fi
for o in "$d"/*/"$k/$a"; do
    if [ "$o" != "$d/$v/$k/$a" ] && [ -d "$o" ] && [ ! -d "$o/module" ]; then
        rm -rf "$o"
        rmdir "${{o%/*}}" 2>/dev/null || true
    fi
done
for s in "$d"/*/source/.from-package; do
    o=${{s%/source/.from-package}}
    if [ "$o" != "$d/$v" ] && [ -f "$s" ] && ! ls -d "$o"/*/*/module >/dev/null 2>&1; then
        rm -rf "$o"
    fi
done
{depmod}
"#
    );
    let remove = format!(
        r#"{vars}
rm -rf "$d/$v/$k/$a"
rmdir "$d/$v/$k" 2>/dev/null || true
if [ -f "$d/$v/source/.from-package" ] && ! ls -d "$d/$v"/*/*/module >/dev/null 2>&1; then
    rm -rf "$d/$v"
fi
rmdir "$d" 2>/dev/null || true
{depmod} || true
"#
    );
    (install, remove)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run the scripts with `sh` on a scratch `/var/lib/dkms` (the paths rewritten into
    /// a temporary directory), as the package manager would.
    fn run(script: &str, root: &std::path::Path) {
        let script = script.replace(
            "/var/lib/dkms",
            &root.join("var/lib/dkms").display().to_string(),
        );
        let out = std::process::Command::new("sh")
            .arg("-ec")
            .arg(&script)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    fn tree(root: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                out.push(e.path().strip_prefix(root).unwrap().display().to_string());
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                }
            }
        }
        out.sort();
        out
    }

    /// What dpkg or pacman unpacks for `v` (the build, its files and the link), plus
    /// the caches a `dkms status` writes.
    fn unpack(root: &std::path::Path, v: &str) {
        let build = root.join(format!("var/lib/dkms/m/{v}/6.1/x86_64"));
        std::fs::create_dir_all(build.join("module")).unwrap();
        std::fs::write(build.join("module/m.ko"), v).unwrap();
        std::fs::write(build.join(".dkms.conf"), format!("PACKAGE_VERSION={v}\n")).unwrap();
        std::fs::write(build.join(".dkms-conf-cache.json"), "{}").unwrap();
    }

    /// What the package manager deletes of `v` when another version replaces it: its
    /// files (and directories it can empty), never the caches.
    fn take_files(root: &std::path::Path, v: &str) {
        let build = root.join(format!("var/lib/dkms/m/{v}/6.1/x86_64"));
        std::fs::remove_dir_all(build.join("module")).unwrap();
        std::fs::remove_file(build.join(".dkms.conf")).unwrap();
    }

    #[test]
    fn an_upgrade_leaves_what_a_fresh_install_leaves() {
        let host = Host {
            modules: "lib/modules",
            depmod_hook_possible: false,
        };
        let fresh = tempfile::tempdir().unwrap();
        unpack(fresh.path(), "2.0");
        run(&scripts("m", "2.0", "6.1", "x86_64", &host).0, fresh.path());
        let upgraded = tempfile::tempdir().unwrap();
        unpack(upgraded.path(), "1.0");
        run(
            &scripts("m", "1.0", "6.1", "x86_64", &host).0,
            upgraded.path(),
        );
        unpack(upgraded.path(), "2.0");
        take_files(upgraded.path(), "1.0");
        run(
            &scripts("m", "2.0", "6.1", "x86_64", &host).0,
            upgraded.path(),
        );
        assert_eq!(tree(upgraded.path()), tree(fresh.path()));
        // Removed: nothing of the module is left.
        run(
            &scripts("m", "2.0", "6.1", "x86_64", &host).1,
            upgraded.path(),
        );
        assert_eq!(tree(upgraded.path()), ["var", "var/lib", "var/lib/dkms"]);
    }
}
