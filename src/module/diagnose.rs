//! Why a build failed, in terms a user can act on: the first compiler error in the
//! module's own source (not the notes gcc prints from the kernel's headers), and, when it
//! names a kernel symbol, that symbol's declaration in the failing kernel's headers beside
//! its declaration in the newest kernel where the module built.
//!
//! Most out-of-tree modules break on a new kernel because an interface changed:
//! `class_create()` lost its `owner` argument in 6.4, `strlcpy()` went in 6.8. "Bad
//! return status" says nothing of that; two declarations side by side say it all.

use std::path::{Path, PathBuf};

/// What could be told about a failed build.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diagnosis {
    /// `file:line:col: error: message`, the file relative to the build directory.
    pub first_error: Option<String>,
    /// The kernel symbol the error is about, if it names one.
    pub symbol: Option<String>,
    /// The declarations, ready to print.
    pub text: Option<String>,
}

impl Diagnosis {
    /// The diagnosis as the error report shows it.
    pub fn explained(&self) -> String {
        let first = self.first_error.as_deref().unwrap_or("(none found)");
        match &self.text {
            Some(text) => format!("The first error in the module's source:\n  {first}\n{text}"),
            None => format!("The first error in the module's source:\n  {first}"),
        }
    }
}

/// A kernel's headers: where to look for declarations.
pub struct Headers<'a> {
    pub kernel: &'a str,
    pub dir: &'a Path,
}

/// Diagnose the build whose log is `log`, built in `build_dir`, against `failing`;
/// `built_on` are kernels where the same module version built, newest first.
pub fn diagnose(
    log: &Path,
    build_dir: &Path,
    failing: &Headers,
    built_on: &[Headers],
) -> Diagnosis {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let Some((file, rest)) = first_own_error(&text, build_dir) else {
        return Diagnosis::default();
    };
    let first_error = Some(format!("{file}:{rest}"));
    let symbol = symbol_of(&rest);
    let Some(sym) = &symbol else {
        return Diagnosis {
            first_error,
            symbol,
            text: None,
        };
    };
    let mut lines = Vec::new();
    match declaration(failing.dir, sym) {
        Some(found) => lines.push(format!(
            "{} in the headers of {}:\n  {found}",
            shown(sym),
            failing.kernel
        )),
        None => lines.push(format!(
            "{} is not declared in the headers of {}.",
            shown(sym),
            failing.kernel
        )),
    }
    if let Some((kernel, found)) = built_on
        .iter()
        .find_map(|h| declaration(h.dir, sym).map(|d| (h.kernel, d)))
    {
        lines.push(format!(
            "and in those of {kernel}, where this module built:\n  {found}"
        ));
    }
    Diagnosis {
        first_error,
        symbol,
        text: Some(lines.join("\n")),
    }
}

fn shown(sym: &str) -> String {
    if sym.starts_with("struct ") {
        sym.to_string()
    } else {
        format!("{sym}()")
    }
}

/// The first `path:line:col: error: ...` line whose file is in the build directory
/// (the module's own source), as (file relative to it, `line:col: error: ...`).
fn first_own_error(log: &str, build_dir: &Path) -> Option<(String, String)> {
    let dir = build_dir.to_string_lossy();
    log.lines().find_map(|l| {
        let (path, rest) = l.split_once(':')?;
        if !rest.contains(" error: ") {
            return None;
        }
        let own = path.strip_prefix(&*dir)?.trim_start_matches('/');
        Some((own.to_string(), rest.to_string()))
    })
}

/// The identifier a gcc/clang error is about: the one after "function", "of", or the
/// first quoted identifier; `struct X` for a missing member.
fn symbol_of(message: &str) -> Option<String> {
    let quoted: Vec<String> = message
        .split(['‘', '’', '\'', '`'])
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    if message.contains("has no member named") {
        return quoted.first().filter(|q| q.starts_with("struct ")).cloned();
    }
    quoted
        .into_iter()
        .find(|q| !q.is_empty() && q.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// Where `sym` is declared under `headers` (the build tree and, on Debian, the
/// `-common` tree its Makefile includes): `include/...h:line: text`.
fn declaration(headers: &Path, sym: &str) -> Option<String> {
    for root in header_roots(headers) {
        let mut stack = vec![root.join("include")];
        let mut files = Vec::new();
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                match e.file_type() {
                    Ok(t) if t.is_dir() => stack.push(p),
                    Ok(t) if t.is_file() && p.extension().is_some_and(|x| x == "h") => {
                        files.push(p)
                    }
                    _ => {}
                }
            }
        }
        files.sort();
        for f in files {
            let Ok(text) = std::fs::read_to_string(&f) else {
                continue;
            };
            if !text.contains(sym.trim_start_matches("struct ")) {
                continue;
            }
            if let Some((n, line)) = text.lines().enumerate().find(|(_, l)| declares(l, sym)) {
                let rel = f.strip_prefix(&root).unwrap_or(&f);
                return Some(format!("{}:{}: {}", rel.display(), n + 1, line.trim()));
            }
        }
    }
    None
}

/// Whether `line` declares or defines `sym`: `#define sym(`, `struct sym {`, or a
/// prototype (`... sym(` at the top level, not a statement).
fn declares(line: &str, sym: &str) -> bool {
    let t = line.trim_start();
    if let Some(name) = sym.strip_prefix("struct ") {
        return t.starts_with(&format!("struct {name} {{"));
    }
    if t.starts_with(&format!("#define {sym}(")) {
        return true;
    }
    let Some(at) = find_word(t, sym) else {
        return false;
    };
    let after = t[at + sym.len()..].trim_start();
    let before = t[..at].trim_end();
    after.starts_with('(')
        && !line.starts_with([' ', '\t'])
        && !before.is_empty()
        && !before.ends_with(['=', '(', ',', '.', '>', '!', '&'])
        && !t.starts_with("return")
        && !t.starts_with('#')
}

fn find_word(text: &str, word: &str) -> Option<usize> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).map(|(i, _)| i).find(|&i| {
        !text[..i].chars().next_back().is_some_and(ident)
            && !text[i + word.len()..].chars().next().is_some_and(ident)
    })
}

/// The headers directory and the tree it includes (Debian's `-common`).
fn header_roots(headers: &Path) -> Vec<PathBuf> {
    let mut roots = vec![headers.to_path_buf()];
    if let Ok(makefile) = std::fs::read_to_string(headers.join("Makefile")) {
        for l in makefile.lines() {
            if let Some(inc) = l.strip_prefix("include ") {
                if let Some(dir) = Path::new(inc.trim()).parent() {
                    roots.push(dir.to_path_buf());
                }
            }
        }
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_symbol_of_common_errors() {
        for (message, symbol) in [
            ("15:20: error: too many arguments to function ‘class_create’", Some("class_create")),
            ("9:5: error: implicit declaration of function ‘strlcpy’; did you mean ‘strscpy’? [-Werror=implicit-function-declaration]", Some("strlcpy")),
            ("3:1: error: ‘struct net_device’ has no member named ‘trans_start’", Some("struct net_device")),
            ("7:2: error: expected ‘;’ before ‘}’ token", None),
        ] {
            assert_eq!(symbol_of(message).as_deref(), symbol, "{message}");
        }
    }

    #[test]
    fn declarations_not_calls() {
        assert!(declares(
            "struct class * __must_check class_create(const char *name);",
            "class_create"
        ));
        assert!(declares(
            "#define class_create(owner, name)\t\\",
            "class_create"
        ));
        assert!(declares("struct net_device {", "struct net_device"));
        assert!(!declares("\tcls = class_create(\"x\");", "class_create"));
        assert!(!declares(
            "extern int my_class_create(void);",
            "class_create"
        ));
    }
}
