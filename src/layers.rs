//! The import rules of the house, checked on the import graph of the source itself.
//!
//! Every `crate::` path of every file is read (`use` declarations with their groups,
//! and paths written inline), giving arrows between the crate's top-level units (a
//! folder or a file below `src/`). The rules:
//! * an arrow never points from a unit to one in a higher layer of [`LAYERS`];
//! * the arrows inside a layer make no circle;
//! * a file in a folder never calls a function of its own folder's `mod.rs` through
//!   `super::` (types may be named there; shared functions live in a file of their own).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// From the top: the edge, the dispatcher and commands, operations on one module on one
/// kernel, the state tree and its transactions, dkms.conf, the foundation.
const LAYERS: &[&[&str]] = &[
    &["lib", "main", "error", "layers"],
    &["commands"],
    &["module", "scaffold", "cmdlog"],
    &["state", "transaction"],
    &["conf"],
    &[
        "framework",
        "kernel",
        "sourcing",
        "bash",
        "cli",
        "report",
        "fsutil",
        "stamp",
        "crashpoint",
        "exit",
    ],
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Each source file (relative to `src/`) with its text, comments removed.
fn files() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    sources(&src, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|f| {
            let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&f).unwrap();
            let code: Vec<&str> = text
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .map(|l| {
                    if l.trim_start().starts_with('*') {
                        ""
                    } else {
                        l
                    }
                })
                .collect();
            (rel, code.join("\n"))
        })
        .collect()
}

/// The crate's top-level unit a file belongs to: `commands/build.rs` -> `commands`.
fn unit(rel: &str) -> String {
    let first = rel.split('/').next().unwrap();
    first.trim_end_matches(".rs").to_string()
}

/// The first path segment of each path a `use crate::...` or inline `crate::...` names;
/// a group (`crate::{a, b::{c, d}}`) names each of its members.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(group.len(), |(i, _)| i);
            out.extend(top_level_members(&group[..end]));
        } else {
            out.push(ident(rest));
        }
    }
    out.retain(|s| !s.is_empty() && s != "self");
    out
}

fn ident(text: &str) -> String {
    text.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The first segment of each top-level member of a `{...}` group.
fn top_level_members(group: &str) -> Vec<String> {
    let mut members = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                members.push(ident(&group[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    members.push(ident(&group[start..]));
    members
}

/// Arrows between units: (from, to) -> the files that draw it.
fn arrows() -> BTreeMap<(String, String), BTreeSet<String>> {
    let units: BTreeSet<String> = files().iter().map(|(rel, _)| unit(rel)).collect();
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (rel, code) in files() {
        let from = unit(&rel);
        for to in crate_paths(&code) {
            // Items of the crate root (`crate::run`) belong to lib.rs.
            let to = if units.contains(&to) {
                to
            } else {
                "lib".into()
            };
            if to != from {
                out.entry((from.clone(), to))
                    .or_default()
                    .insert(rel.clone());
            }
        }
    }
    out
}

fn layer(unit: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&unit))
        .unwrap_or_else(|| panic!("src/{unit}: add it to a layer of LAYERS in src/layers.rs"))
}

#[test]
fn the_parser_reads_grouped_and_inline_paths() {
    let code =
        "use crate::{conf::{self, A}, state::B};\nlet x = crate::kernel::ver(y);\nuse crate::exit;";
    assert_eq!(crate_paths(code), ["conf", "state", "kernel", "exit"]);
}

#[test]
fn no_arrow_points_to_a_higher_layer() {
    let upward: Vec<String> = arrows()
        .into_iter()
        .filter(|((from, to), _)| layer(to) < layer(from))
        .map(|((from, to), by)| format!("{from} -> {to} (in {by:?})"))
        .collect();
    assert!(upward.is_empty(), "arrows to a higher layer: {upward:#?}");
}

#[test]
fn no_circle_between_units() {
    let arrows = arrows();
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in arrows.keys() {
        next.entry(from).or_default().push(to);
    }
    // Depth-first search; a unit met again while still on the path closes a circle.
    fn visit<'a>(
        u: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| *p == u) {
            let mut circle: Vec<String> = path[i..].iter().map(|s| s.to_string()).collect();
            circle.push(u.to_string());
            return Some(circle);
        }
        if !done.insert(u) {
            return None;
        }
        path.push(u);
        for v in next.get(u).into_iter().flatten() {
            if let Some(c) = visit(v, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for u in next.keys() {
        if let Some(circle) = visit(u, &next, &mut Vec::new(), &mut done) {
            panic!("a circle of imports: {}", circle.join(" -> "));
        }
    }
}

/// Functions defined at the top of a `mod.rs` (at column 0: not in an `impl` or a
/// nested module).
fn mod_functions(code: &str) -> BTreeSet<String> {
    code.lines()
        .filter_map(|l| {
            ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn "]
                .iter()
                .find_map(|p| l.strip_prefix(p))
        })
        .map(ident)
        .collect()
}

#[test]
fn no_file_calls_a_function_of_its_own_mod_rs() {
    let files = files();
    let mut offending = Vec::new();
    for (rel, code) in &files {
        let Some((dir, _)) = rel.rsplit_once('/') else {
            continue;
        };
        if rel.ends_with("/mod.rs") {
            continue;
        }
        let Some((_, parent)) = files.iter().find(|(r, _)| *r == format!("{dir}/mod.rs")) else {
            continue;
        };
        let parent_fns = mod_functions(parent);
        let named = super_paths(code);
        for f in named.intersection(&parent_fns) {
            offending.push(format!("{rel} calls {dir}/mod.rs's {f}()"));
        }
    }
    assert!(offending.is_empty(), "{offending:#?}");
}

/// What a file names through `super::` (one level up), groups included.
fn super_paths(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("super::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "super::".len()..];
        if before == Some(':') || before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if rest.starts_with("super::") {
            continue;
        }
        match rest.strip_prefix('{') {
            Some(group) => {
                let end = group.find('}').unwrap_or(group.len());
                out.extend(top_level_members(&group[..end]));
            }
            None => {
                out.insert(ident(rest));
            }
        }
    }
    out
}
