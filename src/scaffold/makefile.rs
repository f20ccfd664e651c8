//! The part of GNU make that a module's Kbuild or Makefile uses to name its modules:
//! variable assignments (`=`, `:=`, `::=`, `?=`, `+=`, with `export`/`override`), `$(VAR)`
//! and `${VAR}` references (left-hand sides included: `obj-$(CONFIG_FOO) += foo.o`),
//! `ifeq`/`ifneq`/`ifdef`/`ifndef`/`else`/`endif`, and `include`. It reads the file as
//! kbuild does when dkms builds it: `KERNELRELEASE` is set (the "Kbuild mode" branch of
//! a dual Makefile is taken), recipes are skipped, and what it cannot know (a variable
//! no file sets, a `$(shell ...)`, an include it cannot find) is empty, as in make, and
//! noted, so that scaffold can say what it could not infer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The variables after reading a file, and what could not be followed.
#[derive(Debug, Default)]
pub struct Reading {
    pub vars: BTreeMap<String, String>,
    pub notes: Vec<String>,
}

impl Reading {
    /// Read `file` (its includes resolved from `dir`), with `preset` already set.
    pub fn of(file: &Path, dir: &Path, preset: &[(&str, &str)]) -> Reading {
        let mut r = Reading::default();
        for (k, v) in preset {
            r.vars.insert((*k).to_string(), (*v).to_string());
        }
        r.read(file, dir, 0);
        r
    }

    /// The words of `name`'s value.
    pub fn words(&self, name: &str) -> Vec<String> {
        self.vars
            .get(name)
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }

    fn read(&mut self, file: &Path, dir: &Path, depth: usize) {
        let Ok(text) = std::fs::read_to_string(file) else {
            self.notes
                .push(format!("{} cannot be read", file.display()));
            return;
        };
        // Taken branches of the open conditionals: (this branch taken, one taken yet).
        let mut conds: Vec<(bool, bool)> = Vec::new();
        let mut in_recipe = false;
        for line in logical_lines(&text) {
            if line.starts_with('\t') && in_recipe {
                continue;
            }
            let t = strip_comment(&line);
            let t = t.trim();
            if t.is_empty() {
                continue;
            }
            let active = conds.iter().all(|(taken, _)| *taken);
            if self.conditional(t, &mut conds, active) {
                continue;
            }
            if !active {
                continue;
            }
            in_recipe = false;
            if let Some(rest) = t
                .strip_prefix("include ")
                .or_else(|| t.strip_prefix("-include "))
                .or_else(|| t.strip_prefix("sinclude "))
            {
                self.include(rest, dir, depth, t.starts_with("include "));
            } else if !self.assignment(t) && is_rule(t) {
                in_recipe = true;
            }
        }
    }

    /// Handle a conditional directive; false if `t` is not one.
    fn conditional(&mut self, t: &str, conds: &mut Vec<(bool, bool)>, active: bool) -> bool {
        let Some(word) = t.split_whitespace().next() else {
            return false;
        };
        match word {
            "ifeq" | "ifneq" | "ifdef" | "ifndef" => {
                let cond = active && self.test(t);
                conds.push((cond, cond));
            }
            "else" => {
                let outer = conds.len() > 1 && !conds[..conds.len() - 1].iter().all(|c| c.0);
                let rest = t["else".len()..].trim();
                let cond = if rest.is_empty() {
                    true
                } else {
                    self.test(rest)
                };
                if let Some(last) = conds.last_mut() {
                    let take = !outer && !last.1 && cond;
                    *last = (take, last.1 || take);
                }
            }
            "endif" => {
                conds.pop();
            }
            _ => return false,
        }
        true
    }

    /// The truth of `ifeq (a,b)`, `ifneq "a" "b"`, `ifdef X`, `ifndef X`.
    fn test(&mut self, t: &str) -> bool {
        let (word, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
        let rest = rest.trim();
        match word {
            "ifdef" | "ifndef" => {
                let name = self.expand(rest);
                let defined = self.vars.get(name.trim()).is_some_and(|v| !v.is_empty());
                defined == (word == "ifdef")
            }
            _ => {
                let (a, b) = split_args(rest);
                let equal = self.expand(&a).trim() == self.expand(&b).trim();
                equal == (word == "ifeq")
            }
        }
    }

    fn include(&mut self, rest: &str, dir: &Path, depth: usize, required: bool) {
        let unknown = unknown_refs(rest, &self.vars);
        for name in self.expand(rest).split_whitespace() {
            let path = if Path::new(name).is_absolute() {
                PathBuf::from(name)
            } else {
                dir.join(name)
            };
            if path.is_file() && depth < 8 {
                self.read(&path, dir, depth + 1);
            } else if required || !unknown.is_empty() {
                let why = if unknown.is_empty() {
                    String::from("not found")
                } else {
                    format!("it needs {}, which nothing here sets", unknown.join(", "))
                };
                self.notes
                    .push(format!("include {} was not followed: {why}", rest.trim()));
            }
        }
    }

    /// An assignment: stored (right-hand side expanded, except for `=`, expanded on use,
    /// which for our purpose is the same once every file is read); false if not one.
    fn assignment(&mut self, t: &str) -> bool {
        let t = t
            .strip_prefix("export ")
            .or_else(|| t.strip_prefix("override "))
            .unwrap_or(t);
        for op in ["::=", ":=", "?=", "+=", "="] {
            let Some(at) = t.find(op) else { continue };
            let lhs = &t[..at];
            if lhs.contains(':') || lhs.trim().is_empty() {
                continue;
            }
            let noted = self.notes.len();
            let name = self.expand(lhs).trim().to_string();
            let value = self.expand(t[at + op.len()..].trim());
            // What could not be evaluated matters only where modules are named.
            if !name.starts_with("obj-") {
                self.notes.truncate(noted);
            }
            match op {
                "?=" => {
                    self.vars.entry(name).or_insert(value);
                }
                "+=" => {
                    let slot = self.vars.entry(name).or_default();
                    if !slot.is_empty() {
                        slot.push(' ');
                    }
                    slot.push_str(&value);
                }
                _ => {
                    self.vars.insert(name, value);
                }
            }
            return true;
        }
        false
    }

    /// `$(VAR)`, `${VAR}` and `$X` replaced by their values (unknown: empty, as in make;
    /// a function call such as `$(shell ...)`: empty, noted).
    pub fn expand(&mut self, s: &str) -> String {
        let mut out = String::new();
        let chars: Vec<char> = s.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] != '$' || i + 1 >= chars.len() {
                out.push(chars[i]);
                i += 1;
                continue;
            }
            let open = chars[i + 1];
            if open == '$' {
                out.push('$');
                i += 2;
                continue;
            }
            if open != '(' && open != '{' {
                out.push_str(&self.value(&open.to_string()));
                i += 2;
                continue;
            }
            let close = if open == '(' { ')' } else { '}' };
            let mut depth = 0;
            let mut j = i + 1;
            while j < chars.len() {
                if chars[j] == open {
                    depth += 1;
                } else if chars[j] == close {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                j += 1;
            }
            let inner: String = chars[i + 2..j.min(chars.len())].iter().collect();
            if inner.contains(char::is_whitespace) {
                let function = inner.split_whitespace().next().unwrap_or("");
                self.notes
                    .push(format!("$({function} ...) is not evaluated"));
            } else {
                let name = self.expand(&inner);
                out.push_str(&self.value(&name));
            }
            i = j + 1;
        }
        out
    }

    fn value(&self, name: &str) -> String {
        self.vars.get(name).cloned().unwrap_or_default()
    }
}

/// The variable names referenced in `s` that nothing sets.
fn unknown_refs(s: &str, vars: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (open, close) in [("$(", ')'), ("${", '}')] {
        let mut rest = s;
        while let Some(at) = rest.find(open) {
            let after = &rest[at + 2..];
            let end = after.find(close).unwrap_or(after.len());
            let name = &after[..end];
            if !name.contains(char::is_whitespace) && !vars.contains_key(name) {
                out.push(name.to_string());
            }
            rest = &after[end..];
        }
    }
    out
}

/// Lines with their backslash continuations joined.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(body) = line.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
        } else {
            current.push_str(line);
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn strip_comment(line: &str) -> String {
    match line.find('#') {
        Some(at) if !line[..at].ends_with('\\') => line[..at].to_string(),
        _ => line.to_string(),
    }
}

/// `target: prerequisites` (not an assignment).
fn is_rule(t: &str) -> bool {
    t.contains(':') && !t.contains(":=") && !t.contains("::=")
}

/// `(a,b)` or `"a" "b"` / `'a' 'b'`.
fn split_args(rest: &str) -> (String, String) {
    if let Some(inner) = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        let mut depth = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '(' | '{' => depth += 1,
                ')' | '}' => depth -= 1,
                ',' if depth == 0 => return (inner[..i].to_string(), inner[i + 1..].to_string()),
                _ => {}
            }
        }
        return (inner.to_string(), String::new());
    }
    let parts: Vec<&str> = rest
        .split(['"', '\''])
        .filter(|p| !p.trim().is_empty())
        .collect();
    (
        parts.first().unwrap_or(&"").to_string(),
        parts.get(1).unwrap_or(&"").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Reading {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("Makefile");
        std::fs::write(&f, text).unwrap();
        Reading::of(&f, dir.path(), &[("KERNELRELEASE", "6.1.0")])
    }

    #[test]
    fn the_kbuild_branch_of_a_dual_makefile() {
        let r = read("modname := bbswitch\nifneq ($(KERNELRELEASE),)\nobj-m := $(modname).o\nelse\nKDIR ?= /lib/modules/$(shell uname -r)/build\ndefault:\n\t$(MAKE) -C $(KDIR) M=$(CURDIR) modules\nobj-m := wrong.o\nendif\n");
        assert_eq!(r.words("obj-m"), ["bbswitch.o"]);
    }

    #[test]
    fn config_defaults_composites_and_tab_indented_assignments() {
        let r = read("CONFIG_ASPM = y\nCONFIG_FOO ?= m\nifneq ($(KERNELRELEASE),)\n\tobj-m := r8168.o\n\tr8168-objs := a.o b.o\n\tifeq ($(CONFIG_ASPM), y)\n\t\tr8168-objs += c.o\n\tendif\nendif\nobj-$(CONFIG_FOO) += foo.o\nobj-$(CONFIG_OFF) += off.o\n");
        assert_eq!(r.words("obj-m"), ["r8168.o", "foo.o"]);
        assert_eq!(r.words("r8168-objs"), ["a.o", "b.o", "c.o"]);
        assert_eq!(r.words("obj-"), ["off.o"]);
    }

    #[test]
    fn recipes_are_not_read_and_unknown_includes_are_noted() {
        let r = read("all:\n\tobj-m := not-this.o\ninclude ${TOPDIR}/mconfig\nobj-m += x.o\n");
        assert_eq!(r.words("obj-m"), ["x.o"]);
        assert_eq!(r.notes, ["include ${TOPDIR}/mconfig was not followed: it needs TOPDIR, which nothing here sets"]);
    }
}
