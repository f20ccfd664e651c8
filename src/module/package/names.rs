//! Names and versions as each package format allows them.

/// `<module>-modules-<kernel>`, in the characters both formats allow in a name.
pub(super) fn package_name(module: &str, kernel: &str) -> String {
    sanitize_name(&format!("{module}-modules-{kernel}"))
}

/// The virtual package every kernel's package of the module provides: `<module>-modules`.
pub(super) fn provided(module: &str) -> String {
    sanitize_name(&format!("{module}-modules"))
}

/// The packages that build the same modules from source on the host, which a prebuilt
/// package conflicts with: Debian's and Arch's `<module>-dkms`, and the `dkms-<module>`
/// some Arch packagers use.
pub(super) fn source_packages(module: &str, pacman: bool) -> Vec<String> {
    let mut names = vec![sanitize_name(&format!("{module}-dkms"))];
    if pacman {
        names.push(sanitize_name(&format!("dkms-{module}")));
    }
    names
}

fn sanitize_name(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+-.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Debian's name for a machine architecture.
pub(super) fn deb_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i486" | "i586" | "i686" => "i386",
        "armv7l" => "armhf",
        "ppc64le" => "ppc64el",
        other => other,
    }
}

/// Words that mark a version before its release (`1.0_rc1` comes before `1.0`).
const PRE_RELEASE: [&str; 5] = ["alpha", "beta", "rc", "pre", "dev"];

/// `v` with a pre-release word (and the separator before it, if any) marked by `mark`:
/// `1.0_rc1` -> `1.0` + mark + `rc1`. A word counts only after a digit or a separator
/// and before a digit or the end (`1.0-rc1`, `2beta`, not `1.0-prerelease-fix`).
fn mark_pre_release(v: &str, mark: &str) -> String {
    let lower = v.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    for start in 1..bytes.len() {
        let Some(word) = PRE_RELEASE.iter().find(|w| lower[start..].starts_with(*w)) else {
            continue;
        };
        let end = start + word.len();
        let before = bytes[start - 1];
        let after_ok =
            end == bytes.len() || bytes[end].is_ascii_digit() || b".-_".contains(&bytes[end]);
        let separated = b"._-~".contains(&before);
        if !(after_ok && (before.is_ascii_digit() || separated)) {
            continue;
        }
        let cut = if separated { start - 1 } else { start };
        return format!("{}{mark}{}", &v[..cut], &v[start..]);
    }
    v.to_string()
}

/// The upstream part of a Debian version: starting with a digit, `~` before a
/// pre-release word (so it sorts before the release), other characters dpkg refuses as
/// `.`. The package's version is this, `-`, its revision.
pub(super) fn deb_version(v: &str) -> String {
    let clean: String = mark_pre_release(v, "~")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".+~-".contains(c) {
                c
            } else {
                '.'
            }
        })
        .collect();
    if clean.starts_with(|c: char| c.is_ascii_digit()) {
        clean
    } else {
        format!("0~{clean}")
    }
}

/// A version as pacman allows it for pkgver (no '-', ':' or '/'), a pre-release word
/// joined to the number before it: pacman sorts `1.0rc1` before `1.0` (but `1.0_rc1`
/// and `1.0.rc1` after it).
pub(super) fn pacman_version(v: &str) -> String {
    mark_pre_release(v, "")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions_follow_each_package_format() {
        assert_eq!(
            package_name("Acpi_call", "6.12.117+deb12-amd64"),
            "acpi-call-modules-6.12.117+deb12-amd64"
        );
        assert_eq!(
            source_packages("acpi_call", true),
            ["acpi-call-dkms", "dkms-acpi-call"]
        );
        assert_eq!(
            source_packages("v4l2loopback", false),
            ["v4l2loopback-dkms"]
        );
        assert_eq!(deb_version("1.2.3"), "1.2.3");
        assert_eq!(deb_version("v2_beta"), "0~v2~beta");
        assert_eq!(pacman_version("1.0-x:y"), "1.0_x_y");
        assert_eq!(deb_arch("x86_64"), "amd64");
        assert_eq!(deb_arch("riscv64"), "riscv64");
    }

    #[test]
    fn a_pre_release_sorts_before_its_release_in_both_formats() {
        for (v, deb, pacman) in [
            ("1.0_rc1", "1.0~rc1", "1.0rc1"),
            ("1.0-rc1", "1.0~rc1", "1.0rc1"),
            ("1.0rc1", "1.0~rc1", "1.0rc1"),
            ("2.1.BETA", "2.1~BETA", "2.1BETA"),
            ("3.0-pre", "3.0~pre", "3.0pre"),
            (
                "1.0-prerelease-fix",
                "1.0-prerelease-fix",
                "1.0_prerelease_fix",
            ),
            ("1.0_devices", "1.0.devices", "1.0_devices"),
        ] {
            assert_eq!(
                (deb_version(v).as_str(), pacman_version(v).as_str()),
                (deb, pacman),
                "{v}"
            );
        }
    }
}
