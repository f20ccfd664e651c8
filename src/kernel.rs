//! Kernels: version ordering, build directories, and their configuration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::framework::Settings;

/// The original's `VER()`: every number padded to at least three digits, so versions
/// compare correctly as strings (`2.6.9-1` → `002.006.009-001`).
pub fn ver(version: &str) -> String {
    let mut out = String::new();
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if !digits.is_empty() {
            for _ in digits.len()..3 {
                out.push('0');
            }
            out.push_str(digits);
            digits.clear();
        }
    };
    for c in version.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            if c != ' ' {
                out.push(c);
            }
        }
    }
    flush(&mut digits, &mut out);
    out
}

/// Whether `name` looks like a kernel release as the original's status glob requires
/// (`+([0-9]).*`: digits, then a dot).
pub fn is_kernel_name(name: &str) -> bool {
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && name.as_bytes().get(digits) == Some(&b'.')
}

/// The kernel's build directory: `--kernelsourcedir`, else `<install_tree>/<k>/build`.
pub fn build_dir(settings: &Settings, override_dir: Option<&Path>, kernel: &str) -> PathBuf {
    match override_dir {
        Some(d) => d.to_path_buf(),
        None => settings.install_tree.join(kernel).join("build"),
    }
}

/// The kernel config file: `--config`, else `include/config/auto.conf` if it exists,
/// else `.config` (3.1+ order).
pub fn config_file(build_dir: &Path, override_file: Option<&Path>) -> PathBuf {
    if let Some(f) = override_file {
        return f.to_path_buf();
    }
    let auto = build_dir.join("include/config/auto.conf");
    if auto.exists() {
        auto
    } else {
        build_dir.join(".config")
    }
}

/// A parsed kernel configuration (`CONFIG_X=value` lines).
#[derive(Debug, Clone, Default)]
pub struct KernelConfig {
    values: BTreeMap<String, String>,
}

impl KernelConfig {
    pub fn read(path: &Path) -> Option<KernelConfig> {
        let text = std::fs::read_to_string(path).ok()?;
        Some(KernelConfig::parse(&text))
    }

    pub fn parse(text: &str) -> KernelConfig {
        let values = text
            .lines()
            .filter(|l| l.starts_with("CONFIG_"))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        KernelConfig { values }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// `=y` or `=m`.
    pub fn is_enabled(&self, name: &str) -> bool {
        matches!(self.get(name), Some("y") | Some("m"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ver_pads_numbers() {
        assert_eq!(
            ver("2.6.9-1cvs200409091247"),
            "002.006.009-001cvs200409091247"
        );
        assert_eq!(ver("6.1.0-56-amd64"), "006.001.000-056-amd064");
        assert!(ver("6.12.117+deb12-amd64") > ver("6.1.0-56-amd64"));
        assert!(ver("1.10") > ver("1.9"));
    }

    #[test]
    fn kernel_names() {
        assert!(is_kernel_name("6.1.0-56-amd64"));
        assert!(is_kernel_name("10.x"));
        assert!(!is_kernel_name("source"));
        assert!(!is_kernel_name("6"));
        assert!(!is_kernel_name("v6.1"));
        assert!(!is_kernel_name(".tmp_x86_64_abc"));
    }

    #[test]
    fn config_parsing() {
        let c = KernelConfig::parse(
            "# c\nCONFIG_A=y\nCONFIG_B=m\nCONFIG_C=\"sha512\"\n# CONFIG_D is not set\n",
        );
        assert!(c.is_enabled("CONFIG_A") && c.is_enabled("CONFIG_B"));
        assert!(!c.is_enabled("CONFIG_D"));
        assert_eq!(c.get("CONFIG_C"), Some("sha512"));
    }
}
