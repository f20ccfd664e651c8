//! What a build's result depends on, hashed: the module's source tree, the kernel's
//! `Module.symvers` (the exported symbols and their CRCs), its configuration
//! (`include/config/auto.conf`, else the `.config`) and the compiler that built it
//! (`CONFIG_CC_VERSION_TEXT`), with the kernel release and arch.
//!
//! Why: a kernel release string does not name one set of headers. Distributions respin
//! headers under the same release (a CRC changes, a config option flips), and a build kept
//! from before would install and then fail to load. Every build records its fingerprint
//! (`<build>/.fingerprint.json`); a build made ahead of a kernel (`dkms preflight`) is
//! used only if the installed headers give the same one, an existing build whose
//! headers changed is rebuilt, and a failure is not retried until something it depends
//! on changes. Each part is kept beside the whole, so a mismatch can say what changed.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::KernelArch;

pub const SCHEMA: &str = "dkms-fingerprint/1";
pub const FILE_NAME: &str = ".fingerprint.json";

/// The parts and their combination, each a lower-case hex SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub schema: String,
    /// All of the parts below together.
    pub fingerprint: String,
    pub kernel: String,
    pub arch: String,
    /// Every file of the module's source (paths, contents, link targets).
    pub source: String,
    /// The kernel's `Module.symvers` ("none" when the headers have none).
    pub symvers: String,
    /// `include/config/auto.conf`, else the kernel's `.config`.
    pub config: String,
    /// `CONFIG_CC_VERSION_TEXT`, as the kernel's configuration gives it.
    pub compiler: String,
}

impl Fingerprint {
    /// The fingerprint of building `source` against the headers in `kernel_build`
    /// (configured by `config`) for `ka`.
    pub fn compute(
        source: &Path,
        kernel_build: &Path,
        config: &Path,
        ka: &KernelArch,
    ) -> std::io::Result<Fingerprint> {
        let source = hash_tree(&std::fs::canonicalize(source)?)?;
        let symvers = hash_file(&kernel_build.join("Module.symvers"))?;
        let auto_conf = kernel_build.join("include/config/auto.conf");
        let config_file = if auto_conf.is_file() {
            auto_conf
        } else {
            config.to_path_buf()
        };
        let config_text = std::fs::read_to_string(&config_file).unwrap_or_default();
        let compiler = config_text
            .lines()
            .find_map(|l| l.strip_prefix("CONFIG_CC_VERSION_TEXT="))
            .unwrap_or("")
            .trim_matches('"')
            .to_string();
        let config = hex(&openssl::sha::sha256(config_text.as_bytes()));
        let mut all = openssl::sha::Sha256::new();
        for part in [&ka.kernel, &ka.arch, &source, &symvers, &config, &compiler] {
            all.update(part.as_bytes());
            all.update(b"\0");
        }
        Ok(Fingerprint {
            schema: SCHEMA.into(),
            fingerprint: hex(&all.finish()),
            kernel: ka.kernel.clone(),
            arch: ka.arch.clone(),
            source,
            symvers,
            config,
            compiler,
        })
    }

    /// The fingerprint recorded in a build directory, if any.
    pub fn recorded(build_dir: &Path) -> Option<Fingerprint> {
        let text = std::fs::read_to_string(build_dir.join(FILE_NAME)).ok()?;
        serde_json::from_str::<Fingerprint>(&text)
            .ok()
            .filter(|f| f.schema == SCHEMA)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("fingerprint serializes") + "\n"
    }

    /// What differs between `self` (then) and `now`, in words.
    pub fn changes(&self, now: &Fingerprint) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.source != now.source {
            out.push("the module's source");
        }
        if self.symvers != now.symvers {
            out.push("the kernel's Module.symvers");
        }
        if self.config != now.config {
            out.push("the kernel's configuration");
        }
        if self.compiler != now.compiler {
            out.push("the kernel's compiler");
        }
        if self.kernel != now.kernel || self.arch != now.arch {
            out.push("the kernel");
        }
        out
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file's bytes, "none" if it does not exist.
fn hash_file(path: &Path) -> std::io::Result<String> {
    match std::fs::File::open(path) {
        Ok(mut f) => {
            let mut h = openssl::sha::Sha256::new();
            copy_into(&mut f, &mut h)?;
            Ok(hex(&h.finish()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok("none".into()),
        Err(e) => Err(e),
    }
}

fn copy_into(f: &mut std::fs::File, h: &mut openssl::sha::Sha256) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        h.update(&buf[..n]);
    }
}

/// SHA-256 over every entry below `root` in path order: its relative path, then a
/// file's bytes or a link's target (a `.git` directory is not part of a source).
fn hash_tree(root: &Path) -> std::io::Result<String> {
    let mut entries = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let path = e.path();
            let ty = e.file_type()?;
            if ty.is_dir() {
                if e.file_name() != ".git" {
                    stack.push(path);
                }
            } else {
                entries.push((path, ty.is_symlink()));
            }
        }
    }
    entries.sort();
    let mut h = openssl::sha::Sha256::new();
    for (path, link) in entries {
        let rel = path.strip_prefix(root).unwrap_or(&path);
        h.update(rel.as_os_str().as_encoded_bytes());
        h.update(b"\0");
        if link {
            h.update(std::fs::read_link(&path)?.as_os_str().as_encoded_bytes());
        } else {
            copy_into(&mut std::fs::File::open(&path)?, &mut h)?;
        }
        h.update(b"\0");
    }
    Ok(hex(&h.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ka() -> KernelArch {
        KernelArch {
            kernel: "6.1.0-1-amd64".into(),
            arch: "x86_64".into(),
        }
    }

    #[test]
    fn one_crc_or_one_source_byte_changes_it_and_says_what() {
        let dir = tempfile::tempdir().unwrap();
        let (src, build) = (dir.path().join("src"), dir.path().join("build"));
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::create_dir_all(build.join("include/config")).unwrap();
        std::fs::write(src.join("a.c"), "int a;\n").unwrap();
        std::fs::write(src.join("sub/b.c"), "int b;\n").unwrap();
        std::fs::write(
            build.join("Module.symvers"),
            "0x12345678\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n",
        )
        .unwrap();
        std::fs::write(
            build.join("include/config/auto.conf"),
            "CONFIG_CC_VERSION_TEXT=\"gcc (Debian 12.2.0-14) 12.2.0\"\n",
        )
        .unwrap();
        let config = build.join(".config");
        let first = Fingerprint::compute(&src, &build, &config, &ka()).unwrap();
        assert_eq!(first.compiler, "gcc (Debian 12.2.0-14) 12.2.0");
        assert_eq!(
            Fingerprint::compute(&src, &build, &config, &ka()).unwrap(),
            first
        );
        std::fs::write(
            build.join("Module.symvers"),
            "0x12345679\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n",
        )
        .unwrap();
        let crc = Fingerprint::compute(&src, &build, &config, &ka()).unwrap();
        assert_ne!(crc.fingerprint, first.fingerprint);
        assert_eq!(first.changes(&crc), ["the kernel's Module.symvers"]);
        std::fs::write(src.join("sub/b.c"), "int c;\n").unwrap();
        let edited = Fingerprint::compute(&src, &build, &config, &ka()).unwrap();
        assert_eq!(crc.changes(&edited), ["the module's source"]);
    }
}
