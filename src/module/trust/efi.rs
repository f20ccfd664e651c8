//! What the firmware says, read from efivarfs (`/sys/firmware/efi/efivars/<Name>-<GUID>`:
//! four bytes of attributes, then the value) without `mokutil`, and the
//! EFI_SIGNATURE_LISTs that the MOK variables hold (UEFI 2.x §32.4.1).

use std::path::{Path, PathBuf};

/// The global variables' GUID (SecureBoot, SetupMode).
pub const GLOBAL: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
/// shim's GUID (MokListRT, MokNew, MokSBStateRT).
pub const SHIM: &str = "605dab50-e046-4300-abb6-3dd810dd8b23";
/// EFI_CERT_X509_GUID and EFI_CERT_SHA256_GUID, as their bytes appear (mixed endian).
const CERT_X509: [u8; 16] = guid_bytes(
    0xa5c0_59a1,
    0x94e4,
    0x4aa7,
    [0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72],
);
const CERT_SHA256: [u8; 16] = guid_bytes(
    0xc1c4_1626,
    0x504c,
    0x4092,
    [0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28],
);

const fn guid_bytes(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// One entry of a signature list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// An X.509 certificate (DER).
    X509(Vec<u8>),
    /// A SHA-256 hash (of a binary, for shim).
    Sha256([u8; 32]),
    /// Another type, kept by its type GUID bytes.
    Other([u8; 16]),
}

/// Why a signature list cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EslError {
    #[error("the signature list at byte {0} is cut short")]
    Truncated(usize),
    #[error("a signature list at byte {at} has an impossible size ({size} bytes)")]
    BadSize { at: usize, size: u32 },
}

/// Every entry of the EFI_SIGNATURE_LISTs in `data`, in order.
pub fn entries(data: &[u8]) -> Result<Vec<Entry>, EslError> {
    let mut out = Vec::new();
    let mut at = 0;
    let u32_at = |d: &[u8], i: usize| u32::from_le_bytes(d[i..i + 4].try_into().expect("4 bytes"));
    while at < data.len() {
        if data.len() - at < 28 {
            return Err(EslError::Truncated(at));
        }
        let kind: [u8; 16] = data[at..at + 16].try_into().expect("16 bytes");
        let (list, header, size) = (
            u32_at(data, at + 16),
            u32_at(data, at + 20),
            u32_at(data, at + 24),
        );
        if list < 28 + header || size <= 16 {
            return Err(EslError::BadSize { at, size: list });
        }
        let end = at + list as usize;
        if end > data.len() {
            return Err(EslError::Truncated(at));
        }
        let mut entry = at + 28 + header as usize;
        while entry < end {
            let next = entry + size as usize;
            if next > end {
                return Err(EslError::Truncated(entry));
            }
            let body = &data[entry + 16..next];
            out.push(match kind {
                CERT_X509 => Entry::X509(body.to_vec()),
                CERT_SHA256 if body.len() == 32 => {
                    Entry::Sha256(body.try_into().expect("32 bytes"))
                }
                other => Entry::Other(other),
            });
            entry = next;
        }
        at = end;
    }
    Ok(out)
}

/// The efivarfs and mok-variables directories of a root.
pub struct Firmware {
    pub efi: PathBuf,
}

impl Firmware {
    pub fn of(sysroot: &Path) -> Firmware {
        Firmware {
            efi: sysroot.join("sys/firmware/efi"),
        }
    }

    /// Booted by UEFI: the kernel made `/sys/firmware/efi`.
    pub fn is_efi(&self) -> bool {
        self.efi.is_dir()
    }

    /// Whether efivarfs is mounted (it has at least one variable).
    pub fn has_efivars(&self) -> bool {
        std::fs::read_dir(self.efi.join("efivars")).is_ok_and(|mut d| d.next().is_some())
    }

    /// A variable's value (after its attributes), if it exists.
    pub fn var(&self, name: &str, guid: &str) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.efi.join("efivars").join(format!("{name}-{guid}"))).ok()?;
        (bytes.len() >= 4).then(|| bytes[4..].to_vec())
    }

    /// A one-byte flag variable set to 1.
    pub fn flag(&self, name: &str, guid: &str) -> Option<bool> {
        self.var(name, guid).map(|v| v.first() == Some(&1))
    }

    /// A MOK list as the running kernel sees it: shim's EFI configuration table
    /// (`/sys/firmware/efi/mok-variables/<name>`, newer kernels) or the runtime variable
    /// and its continuations (`<name>`, `<name>1`, `<name>2`... when it is large).
    pub fn mok_list(&self, name: &str) -> Option<Vec<u8>> {
        if let Ok(table) = std::fs::read(self.efi.join("mok-variables").join(name)) {
            return Some(table);
        }
        let mut data = self.var(name, SHIM)?;
        for n in 1.. {
            match self.var(&format!("{name}{n}"), SHIM) {
                Some(more) => data.extend(more),
                None => break,
            }
        }
        Some(data)
    }
}
