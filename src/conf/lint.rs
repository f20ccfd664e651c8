//! The authoring mistakes that most often break third-party modules, found in a
//! dkms.conf's text, each with its line and its fix. `dkms lint` prints them; `add`
//! prints them as warnings.
//!
//! Why these: they come from hand-written or script-generated confs and fail only on some
//! machines — `uname -r` builds for the running kernel instead of the one being built
//! for (a kernel upgrade builds the old one's modules), `AUTOINSTALL='Y'` is not "yes",
//! a MAKE that sets CC breaks clang-built kernels (dkms passes LLVM=1 and the kernel's
//! compiler only when MAKE leaves them alone), `REMAKE_INITRD` is deprecated (dkms 3 ignores it),
//! and `NO_WEAK_MODULES` takes only yes or no in newer dkms. (A MAKE that names no kernel
//! is not one: dkms adds KERNELRELEASE=$kernelver to a command that starts with make.)

use std::path::{Path, PathBuf};

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
    pub fix: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {}\n  fix: {}",
            self.file.display(),
            self.line,
            self.message,
            self.fix
        )
    }
}

/// Directives whose values dkms runs or uses for the kernel being built for.
const KERNEL_BOUND: [&str; 9] = [
    "MAKE",
    "CLEAN",
    "PRE_BUILD",
    "POST_BUILD",
    "BUILT_MODULE_LOCATION",
    "DEST_MODULE_LOCATION",
    "BUILD_EXCLUSIVE_KERNEL",
    "PRE_INSTALL",
    "POST_INSTALL",
];

/// The findings of the dkms.conf at `file`.
pub fn lint(file: &Path) -> std::io::Result<Vec<Finding>> {
    let text = std::fs::read_to_string(file)?;
    Ok(lint_text(file, &text))
}

pub fn lint_text(file: &Path, text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = assignment(line) else {
            continue;
        };
        let mut add = |message: String, fix: String| {
            out.push(Finding {
                file: file.to_path_buf(),
                line: i + 1,
                message,
                fix,
            })
        };
        let unquoted = value.trim_matches(['"', '\'']);
        if KERNEL_BOUND.contains(&name) && value.contains("uname -r") {
            add(
                format!("{name} uses `uname -r`, the running kernel, where the kernel being built for is meant: a kernel upgrade would build against the old one"),
                "use $kernelver (and ${kernel_source_dir} for its headers)".into(),
            );
        }
        match name {
            "AUTOINSTALL" if !unquoted.is_empty() && !["yes", "no"].contains(&unquoted.to_ascii_lowercase().as_str()) => add(
                format!("AUTOINSTALL={value} is not yes: the module would never be built for new kernels"),
                "AUTOINSTALL=\"yes\"".into(),
            ),
            "NO_WEAK_MODULES" if !unquoted.is_empty() && !["yes", "no"].contains(&unquoted.to_ascii_lowercase().as_str()) => add(
                format!("NO_WEAK_MODULES={value}: newer dkms takes only yes or no"),
                "NO_WEAK_MODULES=\"yes\"".into(),
            ),
            "REMAKE_INITRD" => add(
                "REMAKE_INITRD is deprecated (dkms 3.0 ignores it; this dkms reads it as NEEDED_AT_BOOT)".into(),
                "NEEDED_AT_BOOT=\"yes\" if the module must be in the initramfs, else remove it".into(),
            ),
            "MAKE" => make_findings(value, &mut add),
            _ => {}
        }
    }
    out
}

fn make_findings(value: &str, add: &mut impl FnMut(String, String)) {
    let words: Vec<&str> = value.trim_matches(['"', '\'']).split_whitespace().collect();
    if words
        .iter()
        .any(|w| w.starts_with("CC=") || w.starts_with("LLVM=") || w.starts_with("HOSTCC="))
    {
        add(
            "MAKE sets the compiler: a kernel built with clang (dkms passes LLVM=1 and the kernel's own compiler) would get modules it cannot load".into(),
            "drop CC=/LLVM= from MAKE and let kbuild use the kernel's compiler".into(),
        );
    }
}

/// `NAME=value` or `NAME[i]=value` (name without the index).
fn assignment(line: &str) -> Option<(&str, &str)> {
    let (lhs, value) = line.split_once('=')?;
    let name = lhs.split('[').next()?.trim();
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    ok.then_some((name, value.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<(usize, String)> {
        lint_text(Path::new("dkms.conf"), text)
            .into_iter()
            .map(|f| (f.line, f.message))
            .collect()
    }

    #[test]
    fn each_mistake_with_its_line() {
        assert_eq!(
            messages("MAKE[0]=\"make -C /lib/modules/$(uname -r)/build M=$PWD\"\n")[0].0,
            1
        );
        assert_eq!(
            messages("PACKAGE_NAME=x\nAUTOINSTALL='Y'\n"),
            [(
                2,
                "AUTOINSTALL='Y' is not yes: the module would never be built for new kernels"
                    .to_string()
            )]
        );
        assert_eq!(messages("REMAKE_INITRD=yes\n").len(), 1);
        assert_eq!(messages("NO_WEAK_MODULES=1\n").len(), 1);
        assert_eq!(
            messages("MAKE=\"make CC=gcc -C ${kernel_source_dir} M=$PWD\"\n").len(),
            1
        );
    }

    #[test]
    fn what_is_right_is_not_a_mistake() {
        for text in [
            "AUTOINSTALL=\"YES\"\nNO_WEAK_MODULES=\"yes\"\n",
            "kernelver=${kernelver:-$(uname -r)}\n",
            "MAKE=\"make all KERNEL_TREE=$kernel_source_dir V=1\"\n",
            "# MAKE=\"make CC=gcc\"\n",
            "MAKE=\"make all\"\n",
        ] {
            assert!(messages(text).is_empty(), "{text}");
        }
    }
}
