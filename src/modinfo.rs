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
}

pub fn read(path: &Path) -> Result<ModInfo, ModInfoError> {
    let bytes = crate::compress::read_module(path).map_err(|source| ModInfoError::Read {
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
            _ => continue,
        };
        slot.get_or_insert_with(|| value.to_string());
    }
    Ok(info)
}
