//! A kernel module's own metadata, read from its `.modinfo` ELF section.
//!
//! The original runs `modinfo` for each module it compares; we parse the ELF in-process
//! with the `object` crate (compressed modules are decompressed first). `.modinfo` is a
//! sequence of NUL-terminated `key=value` strings.

use std::path::Path;

use object::{Object, ObjectSection};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ModInfoError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a kernel module (ELF with a .modinfo section): {reason}")]
    NotAModule {
        path: std::path::PathBuf,
        reason: String,
    },
}

/// The fields dkms uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModInfo {
    pub version: Option<String>,
    pub srcversion: Option<String>,
    pub vermagic: Option<String>,
    pub name: Option<String>,
    /// `MODULE_LICENSE`, for the packages made of built modules.
    pub license: Option<String>,
}

pub fn read(path: &Path) -> Result<ModInfo, ModInfoError> {
    let bytes =
        crate::module::compress::read_module(path).map_err(|source| ModInfoError::Read {
            path: path.into(),
            source,
        })?;
    parse(&bytes).map_err(|reason| ModInfoError::NotAModule {
        path: path.into(),
        reason,
    })
}

/// Parse the `.modinfo` section of an (uncompressed) module image.
pub fn parse(elf: &[u8]) -> Result<ModInfo, String> {
    let file = object::File::parse(elf).map_err(|e| e.to_string())?;
    let section = file
        .section_by_name(".modinfo")
        .ok_or("no .modinfo section")?;
    let data = section.data().map_err(|e| e.to_string())?;
    let mut info = ModInfo::default();
    for entry in data.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let text = String::from_utf8_lossy(entry);
        let Some((key, value)) = text.split_once('=') else {
            continue;
        };
        let slot = match key {
            "version" => &mut info.version,
            "srcversion" => &mut info.srcversion,
            "vermagic" => &mut info.vermagic,
            "name" => &mut info.name,
            "license" => &mut info.license,
            _ => continue,
        };
        // `modinfo` lists every entry and the original keeps the last one it reads.
        *slot = Some(value.to_string());
    }
    Ok(info)
}

/// How an installed module's version compares with ours (the original's
/// `compare_module_version`, its first argument being the installed one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Same version and same srcversion ("==", both may be empty).
    Same,
    /// Same version, different srcversion ("=").
    SameVersion,
    /// The installed one is newer (">").
    InstalledNewer,
    /// The installed one is older ("<").
    InstalledOlder,
}

impl ModInfo {
    /// The pair the original reads from `modinfo` (`get_module_verinfo`): the first word
    /// of the version, and the srcversion or else the version's second word (an old
    /// checksum). A missing value is the empty string, and two empty values are equal.
    pub fn verinfo(&self) -> (String, String) {
        let mut words = self.version.as_deref().unwrap_or("").split_whitespace();
        let version = words.next().unwrap_or("").to_string();
        let checksum = words.next().unwrap_or("");
        let source = match self.srcversion.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => s.split_whitespace().next().unwrap_or(""),
            _ => checksum,
        };
        (version, source.to_string())
    }
}

/// Compare an installed module with ours: versions first (as the original's `VER`
/// strings), then srcversions, empty values included.
pub fn compare(installed: &ModInfo, ours: &ModInfo) -> Order {
    let (iv, isrc) = installed.verinfo();
    let (ov, osrc) = ours.verinfo();
    if iv == ov {
        if isrc == osrc {
            Order::Same
        } else {
            Order::SameVersion
        }
    } else if crate::kernel::ver(&iv) > crate::kernel::ver(&ov) {
        Order::InstalledNewer
    } else {
        Order::InstalledOlder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(version: Option<&str>, srcversion: Option<&str>) -> ModInfo {
        ModInfo {
            version: version.map(String::from),
            srcversion: srcversion.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn two_versionless_modules_are_the_same_version() {
        assert_eq!(compare(&info(None, None), &info(None, None)), Order::Same);
        assert_eq!(
            compare(&info(None, None), &info(None, Some("ABC"))),
            Order::SameVersion
        );
    }

    #[test]
    fn versions_compare_numerically_then_by_srcversion() {
        let v = |s| info(Some(s), Some("X"));
        assert_eq!(compare(&v("2.0"), &v("1.0")), Order::InstalledNewer);
        assert_eq!(compare(&v("1.9"), &v("1.10")), Order::InstalledOlder);
        assert_eq!(compare(&v("1.0"), &v("1.0")), Order::Same);
        assert_eq!(
            compare(&info(Some("1.0"), Some("X")), &info(Some("1.0"), Some("Y"))),
            Order::SameVersion
        );
        // A version beats none, as the original's padded string comparison has it.
        assert_eq!(compare(&v("1.0"), &info(None, None)), Order::InstalledNewer);
    }

    #[test]
    fn an_old_checksum_stands_in_for_a_missing_srcversion() {
        assert_eq!(
            info(Some("1.0 DEADBEEF"), None).verinfo(),
            ("1.0".into(), "DEADBEEF".into())
        );
    }
}
