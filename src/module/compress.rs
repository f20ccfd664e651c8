//! Module compression exactly as the kernel's own `modules_install` does it.
//!
//! Which compression: the suffix of the kernel's own installed modules (`<k>/kernel/`),
//! as the original and the distributions decide it (Fedora and RHEL kernels say
//! `CONFIG_MODULE_COMPRESS_NONE=y` while their packages ship `.ko.xz`); where the kernel
//! has no module tree (headers only), its config (`CONFIG_MODULE_COMPRESS_*`); where that
//! is silent too, the suffix of any other module installed for it.
//! How: in-process, with the kernel's parameters. xz uses a CRC32 check and a 1 MiB
//! dictionary (the kernel's in-kernel decompressor rejects CRC64 and large
//! dictionaries); levels come from the framework's `compress_*_opts` (`-N`).

use std::io::{Read, Write};
use std::path::Path;

use crate::kernel::KernelConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

impl Compression {
    /// The suffix after `.ko`.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
        }
    }

    /// The compression of a module file, from its name.
    pub fn of_file(path: &Path) -> Compression {
        let name = path.to_string_lossy();
        if name.ends_with(".ko.gz") {
            Compression::Gzip
        } else if name.ends_with(".ko.xz") {
            Compression::Xz
        } else if name.ends_with(".ko.zst") {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// What the kernel uses: its own modules' suffix, else its config, else the suffix
    /// of other modules installed for it, else none.
    pub fn for_kernel(config: Option<&KernelConfig>, kernel_modules_dir: &Path) -> Compression {
        if let Some(own) = first_module_suffix(&kernel_modules_dir.join("kernel")) {
            return own;
        }
        if let Some(c) = config {
            for (name, comp) in [
                ("CONFIG_MODULE_COMPRESS_ZSTD", Compression::Zstd),
                ("CONFIG_MODULE_COMPRESS_XZ", Compression::Xz),
                ("CONFIG_MODULE_COMPRESS_GZIP", Compression::Gzip),
                ("CONFIG_MODULE_COMPRESS_NONE", Compression::None),
            ] {
                if c.get(name) == Some("y") {
                    return comp;
                }
            }
        }
        first_module_suffix(kernel_modules_dir).unwrap_or(Compression::None)
    }

    /// Compress `data` with the kernel's parameters; `opts` is the framework's
    /// `compress_<kind>_opts` (only a `-N` level is taken from it).
    pub fn compress(self, data: &[u8], opts: &str) -> std::io::Result<Vec<u8>> {
        let level = opts
            .split_whitespace()
            .rev()
            .find_map(|w| w.strip_prefix('-')?.parse::<u32>().ok());
        match self {
            Compression::None => Ok(data.to_vec()),
            Compression::Gzip => {
                let level = flate2::Compression::new(level.unwrap_or(6).min(9));
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), level);
                enc.write_all(data)?;
                enc.finish()
            }
            Compression::Xz => {
                let mut options =
                    liblzma::stream::LzmaOptions::new_preset(level.unwrap_or(6).min(9))
                        .map_err(std::io::Error::other)?;
                options.dict_size(1 << 20);
                let mut filters = liblzma::stream::Filters::new();
                filters.lzma2(&options);
                let stream = liblzma::stream::Stream::new_stream_encoder(
                    &filters,
                    liblzma::stream::Check::Crc32,
                )
                .map_err(std::io::Error::other)?;
                let mut enc = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
                enc.write_all(data)?;
                enc.finish()
            }
            Compression::Zstd => zstd::bulk::compress(data, level.unwrap_or(3) as i32),
        }
    }
}

/// The uncompressed bytes of a module file (by its suffix).
pub fn read_module(path: &Path) -> std::io::Result<Vec<u8>> {
    let raw = std::fs::read(path)?;
    let mut out = Vec::new();
    match Compression::of_file(path) {
        Compression::None => return Ok(raw),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out)?;
        }
        Compression::Xz => {
            liblzma::read::XzDecoder::new(&raw[..]).read_to_end(&mut out)?;
        }
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(&raw[..])?.read_to_end(&mut out)?;
        }
    }
    Ok(out)
}

/// The compression of the first module found under `dir` (depth-first, bounded).
fn first_module_suffix(dir: &Path) -> Option<Compression> {
    let mut stack = vec![dir.to_path_buf()];
    let mut visited = 0;
    while let Some(d) = stack.pop() {
        visited += 1;
        if visited > 2000 {
            return None;
        }
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(".ko") && e.file_type().is_ok_and(|t| t.is_file()) {
                return Some(Compression::of_file(&p));
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn tool_accepts(tool: &[&str], data: &[u8], compression: Compression) -> String {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join(format!("m.ko{}", compression.suffix()));
        std::fs::write(&f, compression.compress(data, "").unwrap()).unwrap();
        assert_eq!(read_module(&f).unwrap(), data);
        let out = Command::new(tool[0])
            .args(&tool[1..])
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn xz_uses_crc32_and_a_1mib_dictionary() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let listing = tool_accepts(&["xz", "--list", "-vv"], &data, Compression::Xz);
        assert!(listing.contains("CRC32"), "{listing}");
        assert!(listing.contains("dict=1MiB"), "{listing}");
    }

    #[test]
    fn gzip_and_zstd_round_trip_through_the_real_tools() {
        let data = b"\x7fELF module bytes".repeat(1000);
        tool_accepts(&["gzip", "-t"], &data, Compression::Gzip);
        tool_accepts(&["zstd", "-t", "-q"], &data, Compression::Zstd);
    }

    #[test]
    fn the_kernels_own_modules_decide_over_its_config() {
        // A Fedora/RHEL kernel: its config says none, its package ships .ko.xz.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("kernel/drivers/x")).unwrap();
        std::fs::write(dir.path().join("kernel/drivers/x/a.ko.xz"), b"").unwrap();
        let none = KernelConfig::parse("CONFIG_MODULE_COMPRESS_NONE=y\n");
        assert_eq!(
            Compression::for_kernel(Some(&none), dir.path()),
            Compression::Xz
        );
        // Debian: uncompressed modules, whatever the config says.
        let plain = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(plain.path().join("kernel/fs")).unwrap();
        std::fs::write(plain.path().join("kernel/fs/b.ko"), b"").unwrap();
        let zstd = KernelConfig::parse("CONFIG_MODULE_COMPRESS_ZSTD=y\n");
        assert_eq!(
            Compression::for_kernel(Some(&zstd), plain.path()),
            Compression::None
        );
    }

    #[test]
    fn headers_only_kernels_follow_their_config_then_other_modules() {
        let dir = tempfile::tempdir().unwrap();
        let xz = KernelConfig::parse("CONFIG_MODULE_COMPRESS=y\nCONFIG_MODULE_COMPRESS_XZ=y\n");
        assert_eq!(
            Compression::for_kernel(Some(&xz), dir.path()),
            Compression::Xz
        );
        let none = KernelConfig::parse("CONFIG_MODULE_COMPRESS_NONE=y\n");
        assert_eq!(
            Compression::for_kernel(Some(&none), dir.path()),
            Compression::None
        );
        // Only dkms's own modules are installed, and the config is silent.
        std::fs::create_dir_all(dir.path().join("updates/dkms")).unwrap();
        std::fs::write(dir.path().join("updates/dkms/a.ko.zst"), b"").unwrap();
        let silent = KernelConfig::parse("CONFIG_MODULES=y\n");
        assert_eq!(
            Compression::for_kernel(Some(&silent), dir.path()),
            Compression::Zstd
        );
        assert_eq!(Compression::for_kernel(None, dir.path()), Compression::Zstd);
        assert_eq!(
            Compression::for_kernel(Some(&xz), dir.path()),
            Compression::Xz
        );
    }
}
