//! A pure-Rust evaluator for dkms.conf files made only of plain assignments.
//!
//! Most real dkms.conf files are lists of `NAME="value"` / `NAME[i]="value"` lines whose
//! values use at most `$kernelver`-style variables. Starting bash for each of them is
//! what makes the original's `status` slow, so such files are evaluated here; anything
//! else (command substitution, conditionals, unknown variables, values that the
//! original's echo-back would re-interpret) makes this evaluator give up and the caller
//! uses bash. `tests/it/conf_corpus.rs` proves the result identical to bash's on every
//! corpus file this evaluator accepts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::eval::{RawValues, Scope, DIRECTIVES, REGEX_DIRECTIVES};

/// Evaluate `files` (already filtered to existing ones) or return `None` when the files
/// need bash.
pub fn plain_assignments(files: &[PathBuf], scope: &Scope) -> Option<RawValues> {
    plain_assignments_with(files, scope, false)
}

/// Like [`plain_assignments`]; with `regex_may_stay_unresolved`, package-wide regex directives
/// (index 0 only) are returned without their bash `=~` verdict. Used by `status`, which
/// only needs module names; builds always get bash's verdict.
pub fn plain_assignments_with(
    files: &[PathBuf],
    scope: &Scope,
    regex_may_stay_unresolved: bool,
) -> Option<RawValues> {
    if directive_environment() {
        return None;
    }
    let mut kept: BTreeMap<String, BTreeMap<usize, String>> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(file).ok()?;
        let mut vars = kept.clone();
        parse_file(&text, scope, &mut vars)?;
        kept = echo_back(vars)?;
    }
    // Regex verdicts need bash's `=~`; status may do without package-wide ones (index 0).
    let unresolvable = |name: &str| match kept.get(name) {
        None => false,
        Some(values) => !regex_may_stay_unresolved || values.keys().any(|i| *i != 0),
    };
    if REGEX_DIRECTIVES.iter().any(|(name, _)| unresolvable(name)) {
        return None;
    }
    for values in kept.values_mut() {
        for v in values.values_mut() {
            while v.ends_with('\r') {
                v.pop();
            }
        }
    }
    Some(RawValues {
        vars: kept,
        ..RawValues::default()
    })
}

/// Whether `DKMS_DIRECTIVE*` variables inject directives (only bash handles them).
pub(crate) fn directive_environment() -> bool {
    std::env::vars_os().any(|(k, _)| k.to_string_lossy().starts_with("DKMS_DIRECTIVE"))
}

/// Keep whitelisted variables, transformed as the original's `eval echo` + re-source
/// would; `None` when that transformation needs bash (quotes, `$`, globs, ...).
fn echo_back(
    vars: BTreeMap<String, BTreeMap<usize, String>>,
) -> Option<BTreeMap<String, BTreeMap<usize, String>>> {
    let mut out = BTreeMap::new();
    for (name, values) in vars {
        if !DIRECTIVES.contains(&name.as_str()) {
            continue;
        }
        let mut kept = BTreeMap::new();
        for (i, v) in values {
            if !survives_echo_back(&v) {
                return None;
            }
            // Unquoted echo: IFS word splitting, words joined by one space.
            let words: Vec<&str> = v
                .split([' ', '\t', '\n'])
                .filter(|w| !w.is_empty())
                .collect();
            kept.insert(i, words.join(" "));
        }
        out.insert(name, kept);
    }
    Some(out)
}

/// Whether `eval echo NAME[i]=\"$value\"` followed by re-sourcing yields the value with
/// its words joined by single spaces, and nothing else:
/// * `$`, backquotes and `"` would be interpreted again;
/// * a backslash is kept inside double quotes unless it precedes `$`, backquote, `"` or
///   a backslash (or ends the value, where it would escape the closing quote);
/// * glob characters are harmless only in a single-word value, whose one word carries
///   the literal `NAME[i]="` prefix and closing `"`, so it cannot match a file name.
fn survives_echo_back(value: &str) -> bool {
    if value.chars().any(|c| matches!(c, '$' | '`' | '"')) {
        return false;
    }
    let chars: Vec<char> = value.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if *c == '\\' && matches!(chars.get(i + 1), None | Some('\\')) {
            return false;
        }
    }
    let globby = value.chars().any(|c| matches!(c, '*' | '?' | '[' | '('));
    let words = value
        .split([' ', '\t', '\n'])
        .filter(|w| !w.is_empty())
        .count();
    !globby || words <= 1
}

/// Parse one file of plain assignments into `vars`; `None` on anything else.
fn parse_file(
    text: &str,
    scope: &Scope,
    vars: &mut BTreeMap<String, BTreeMap<usize, String>>,
) -> Option<()> {
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
    };
    loop {
        p.skip_blanks();
        match p.peek() {
            None => return Some(()),
            Some('\n') => {
                p.pos += 1;
            }
            Some('#') => p.skip_comment(),
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let (name, index) = p.assignment_target()?;
                let value = p.word(scope, vars)?;
                p.skip_blanks();
                match p.peek() {
                    None | Some('\n') => {}
                    Some('#') => p.skip_comment(),
                    _ => return None,
                }
                vars.entry(name).or_default().insert(index, value);
            }
            _ => return None,
        }
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ') | Some('\t')) {
            self.pos += 1;
        }
    }

    fn skip_comment(&mut self) {
        while !matches!(self.peek(), None | Some('\n')) {
            self.pos += 1;
        }
    }

    fn name(&mut self) -> String {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// `NAME=` or `NAME[digits]=`.
    fn assignment_target(&mut self) -> Option<(String, usize)> {
        let name = self.name();
        let mut index = 0;
        if self.peek() == Some('[') {
            self.pos += 1;
            let start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
            let digits: String = self.chars[start..self.pos].iter().collect();
            if digits.is_empty() || self.peek() != Some(']') {
                return None;
            }
            self.pos += 1;
            index = digits.parse().ok()?;
        }
        if self.peek() != Some('=') {
            return None;
        }
        self.pos += 1;
        Some((name, index))
    }

    /// An assignment value: unquoted, `"..."` and `'...'` segments.
    fn word(
        &mut self,
        scope: &Scope,
        vars: &BTreeMap<String, BTreeMap<usize, String>>,
    ) -> Option<String> {
        let mut out = String::new();
        loop {
            match self.peek() {
                None | Some(' ') | Some('\t') | Some('\n') => return Some(out),
                Some('\'') => {
                    self.pos += 1;
                    loop {
                        match self.peek()? {
                            '\'' => break,
                            c => out.push(c),
                        }
                        self.pos += 1;
                    }
                    self.pos += 1;
                }
                Some('"') => {
                    self.pos += 1;
                    loop {
                        match self.peek()? {
                            '"' => break,
                            '\\' => {
                                let next = *self.chars.get(self.pos + 1)?;
                                match next {
                                    '$' | '`' | '"' | '\\' => out.push(next),
                                    '\n' => {}
                                    _ => {
                                        out.push('\\');
                                        out.push(next);
                                    }
                                }
                                self.pos += 2;
                                continue;
                            }
                            '$' => {
                                out.push_str(&self.expansion(scope, vars)?);
                                continue;
                            }
                            '`' => return None,
                            c => out.push(c),
                        }
                        self.pos += 1;
                    }
                    self.pos += 1;
                }
                Some('$') => out.push_str(&self.expansion(scope, vars)?),
                Some(c) if "\\`;&|()<>{}~".contains(c) => return None,
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// `$name` or `${name}` of a variable whose value is known; `$` before anything that
    /// cannot start a name is literal. Everything else needs bash.
    fn expansion(
        &mut self,
        scope: &Scope,
        vars: &BTreeMap<String, BTreeMap<usize, String>>,
    ) -> Option<String> {
        self.pos += 1; // '$'
        let name = match self.peek() {
            Some('{') => {
                self.pos += 1;
                let name = self.name();
                if name.is_empty() {
                    return None;
                }
                if self.peek() != Some('}') {
                    return self.operator_expansion(&name, scope, vars);
                }
                self.pos += 1;
                name
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => self.name(),
            Some(c) if c.is_ascii_digit() || "@*#?-$!(".contains(c) => return None,
            _ => return Some("$".into()),
        };
        self.lookup(&name, scope, vars)
            .map(|v| v.unwrap_or_default())
    }

    /// `Some(Some(v))` set, `Some(None)` unset, `None` unknown (needs bash).
    fn lookup(
        &self,
        name: &str,
        scope: &Scope,
        vars: &BTreeMap<String, BTreeMap<usize, String>>,
    ) -> Option<Option<String>> {
        if let Some(values) = vars.get(name) {
            return Some(values.get(&0).cloned());
        }
        if DIRECTIVES.contains(&name) {
            // Whitelisted names are unset before sourcing.
            return Some(None);
        }
        scope.get(name).map(|v| Some(v.to_string()))
    }

    /// `${name+word}`, `${name-word}`, `${name:+word}`, `${name:-word}` with a word of
    /// plain characters and simple expansions (inside double quotes, as used in practice).
    fn operator_expansion(
        &mut self,
        name: &str,
        scope: &Scope,
        vars: &BTreeMap<String, BTreeMap<usize, String>>,
    ) -> Option<String> {
        let colon = self.peek() == Some(':');
        if colon {
            self.pos += 1;
        }
        let op = self.peek()?;
        if op != '+' && op != '-' {
            return None;
        }
        self.pos += 1;
        let mut word = String::new();
        loop {
            match self.peek()? {
                '}' => break,
                '$' => word.push_str(&self.expansion(scope, vars)?),
                c if "\\\"'`{".contains(c) => return None,
                c => {
                    word.push(c);
                    self.pos += 1;
                }
            }
        }
        self.pos += 1;
        let value = self.lookup(name, scope, vars)?;
        let set = match (&value, colon) {
            (Some(v), true) => !v.is_empty(),
            (Some(_), false) => true,
            (None, _) => false,
        };
        Some(match (op, set) {
            ('+', true) | ('-', false) => word,
            ('+', false) => String::new(),
            _ => value.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval_text(text: &str) -> Option<RawValues> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("dkms.conf");
        std::fs::write(&f, text).unwrap();
        let mut scope = Scope::default();
        scope.set("kernelver", "6.1.0-1-amd64");
        scope.set("dkms_tree", "/var/lib/dkms");
        super::plain_assignments(&[f], &scope)
    }

    #[test]
    fn plain_assignments() {
        let v = eval_text(
            "# c\nPACKAGE_NAME=\"acpi-call\"\nPACKAGE_VERSION=1.2.2 # trailing\n\
             BUILT_MODULE_NAME[0]='acpi_call'\nMAKE[0]=\"make   KVERSION=$kernelver\n  -C ${dkms_tree}\"\n\
             DEST_MODULE_LOCATION[2]=\"/updates\"\nname=$PACKAGE_NAME\nSTRIP[0]=\"$name\"\n",
        )
        .unwrap();
        assert_eq!(v.scalar("PACKAGE_NAME"), Some("acpi-call"));
        assert_eq!(
            v.scalar("MAKE"),
            Some("make KVERSION=6.1.0-1-amd64 -C /var/lib/dkms")
        );
        assert_eq!(
            v.array("DEST_MODULE_LOCATION")
                .unwrap()
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            vec![2]
        );
        assert_eq!(v.scalar("STRIP"), Some("acpi-call"));
        assert!(!v.vars.contains_key("name"));
    }

    #[test]
    fn gives_up_on_shell_logic() {
        for text in [
            "MAKE=\"make -j$(nproc)\"\n",
            "if true; then A=1; fi\n",
            "A=`uname`\n",
            "MAKE=\"$UNKNOWN_VAR\"\n",
            "MAKE='make \"quoted\"'\n",
            "MAKE_MATCH[0]=\"^6\"\n",
            "A=1 B=2\n",
            "export A=1\n",
        ] {
            assert!(eval_text(text).is_none(), "{text}");
        }
    }
}
