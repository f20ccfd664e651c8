//! The module records of a dkms.conf: one per index of the four module arrays
//! (`BUILT_MODULE_NAME`, `BUILT_MODULE_LOCATION`, `DEST_MODULE_NAME`,
//! `DEST_MODULE_LOCATION`), with the original's defaults and checks.
//!
//! The original counts records up to the highest index set in any of the arrays (they
//! may be sparse), so `BUILT_MODULE_NAME[999999]="x"` makes a million records, all but
//! one empty and each an error. We reach the same verdict in time linear in the number
//! of indices actually set: a run of indices set in none of the arrays is one group of
//! problems, not one record each.

use std::collections::{BTreeMap, BTreeSet};

use super::eval::RawValues;
use super::{Exclusion, ModuleEntry, Problem};

const MODULE_ARRAYS: [&str; 4] = [
    "BUILT_MODULE_NAME",
    "BUILT_MODULE_LOCATION",
    "DEST_MODULE_NAME",
    "DEST_MODULE_LOCATION",
];

/// Builds a [`Problem`] located at the effective assignment of a directive.
pub(super) type MakeProblem<'a> = dyn Fn(&str, String, String) -> Problem + 'a;

/// The original's `num_modules`: one more than the highest index set in any module array.
pub(super) fn count(v: &RawValues) -> usize {
    MODULE_ARRAYS
        .iter()
        .filter_map(|n| v.array(n).and_then(|a| a.keys().next_back()))
        .map(|i| i.saturating_add(1))
        .max()
        .unwrap_or(0)
}

/// Every record that has an index set, with its problems (and those of the empty records
/// between them) appended to `problems` in index order.
pub(super) fn module_records(
    v: &RawValues,
    package_name: &str,
    problem: &MakeProblem,
    problems: &mut Vec<Problem>,
    exclusion_of: &dyn Fn(usize) -> Exclusion,
) -> Vec<ModuleEntry> {
    let empty = BTreeMap::new();
    let arr = |name: &str| v.array(name).unwrap_or(&empty);
    let count = count(v);
    let indices: BTreeSet<usize> = MODULE_ARRAYS
        .iter()
        .flat_map(|n| arr(n).keys().copied())
        .collect();
    let strip0 = !matches!(
        arr("STRIP").get(&0).and_then(|s| s.chars().next()),
        Some('n' | 'N')
    );
    let mut modules = Vec::new();
    let mut next = 0;
    for &index in &indices {
        if index > next {
            empty_records(next, index - 1, problem, problems);
        }
        let entry = record(
            v,
            index,
            count == 1,
            package_name,
            strip0,
            exclusion_of(index),
        );
        check_record(&entry, problem, problems);
        modules.push(entry);
        next = index.saturating_add(1);
    }
    let any_location = arr("DEST_MODULE_LOCATION").values().any(|s| !s.is_empty());
    let location_reported = problems
        .iter()
        .any(|p| p.message.contains("DEST_MODULE_LOCATION"));
    if count > 0 && !any_location && !location_reported {
        problems.push(problem(
            "DEST_MODULE_LOCATION",
            "No 'DEST_MODULE_LOCATION' directive specified.".into(),
            "add DEST_MODULE_LOCATION[0]=\"/updates/dkms\"".into(),
        ));
    }
    check_duplicates(&modules, problems, problem);
    modules
}

/// Record `index` with the original's defaults: BUILT_MODULE_NAME is PACKAGE_NAME for a
/// single record, DEST_MODULE_NAME the built name, a location ends in `/`, STRIP
/// defaults to record 0's.
fn record(
    v: &RawValues,
    index: usize,
    single: bool,
    package_name: &str,
    strip0: bool,
    exclusion: Exclusion,
) -> ModuleEntry {
    let get = |name: &str| {
        v.array(name)
            .and_then(|a| a.get(&index))
            .cloned()
            .unwrap_or_default()
    };
    let mut built_name = get("BUILT_MODULE_NAME");
    if built_name.is_empty() && single {
        built_name = package_name.to_string();
    }
    let mut dest_name = get("DEST_MODULE_NAME");
    if dest_name.is_empty() {
        dest_name = built_name.clone();
    }
    let mut built_location = get("BUILT_MODULE_LOCATION");
    if !built_location.is_empty() && !built_location.ends_with('/') {
        built_location.push('/');
    }
    ModuleEntry {
        index,
        built_name,
        built_location,
        dest_name,
        dest_location: get("DEST_MODULE_LOCATION"),
        strip: match get("STRIP").chars().next() {
            Some('n' | 'N') => false,
            Some('y' | 'Y') => true,
            _ => strip0,
        },
        exclusion,
    }
}

/// Records `first..=last` are set in no module array: each lacks a name and a location.
fn empty_records(first: usize, last: usize, problem: &MakeProblem, problems: &mut Vec<Problem>) {
    let (records, at) = if first == last {
        (format!("record #{first}"), first.to_string())
    } else {
        (
            format!("records #{first} to #{last} ({} records)", last - first + 1),
            format!("{first}..{last}"),
        )
    };
    problems.push(problem(
        "BUILT_MODULE_NAME",
        format!("No 'BUILT_MODULE_NAME' directive specified for {records}."),
        format!(
            "give BUILT_MODULE_NAME[{at}] a module name, or number the records from 0 without gaps"
        ),
    ));
    problems.push(problem(
        "DEST_MODULE_LOCATION",
        format!("No 'DEST_MODULE_LOCATION' directive specified for {records}."),
        format!("give DEST_MODULE_LOCATION[{at}] a location such as \"/updates/dkms\", or number the records from 0 without gaps"),
    ));
}

/// The original's checks of one record, in its order.
fn check_record(m: &ModuleEntry, problem: &MakeProblem, problems: &mut Vec<Problem>) {
    let (index, record) = (m.index, format!("record #{}", m.index));
    if m.built_name.is_empty() {
        problems.push(problem(
            "BUILT_MODULE_NAME",
            format!("No 'BUILT_MODULE_NAME' directive specified for {record}."),
            format!("add BUILT_MODULE_NAME[{index}]=\"<module name without .ko>\""),
        ));
    }
    for (label, value) in [
        ("BUILT_MODULE_NAME", &m.built_name),
        ("DEST_MODULE_NAME", &m.dest_name),
    ] {
        if value.ends_with(".o") || value.ends_with(".ko") {
            problems.push(problem(
                label,
                format!("'{label}' directive ends in '.o' or '.ko' in {record}."),
                format!("write {label}[{index}] without the suffix"),
            ));
        }
        if value.contains('/') || value == ".." || value == "." {
            problems.push(problem(
                label,
                format!("'{label}' in {record} is a path ('{value}'), not a module name."),
                format!("set {label}[{index}] to a plain name; use BUILT_MODULE_LOCATION / DEST_MODULE_LOCATION for directories"),
            ));
        }
    }
    let location = &m.dest_location;
    if location.is_empty() {
        problems.push(problem(
            "DEST_MODULE_LOCATION",
            format!("No 'DEST_MODULE_LOCATION' directive specified for {record}."),
            format!("add DEST_MODULE_LOCATION[{index}]=\"/updates/dkms\""),
        ));
    } else if !["/kernel", "/updates", "/extra"]
        .iter()
        .any(|p| location.starts_with(p))
    {
        problems.push(problem(
            "DEST_MODULE_LOCATION",
            format!("Directive 'DEST_MODULE_LOCATION' does not begin with '/kernel', '/updates', or '/extra' in {record}."),
            format!("set DEST_MODULE_LOCATION[{index}] to a path under /kernel, /updates or /extra"),
        ));
    } else if location.split('/').any(|c| c == "..") {
        problems.push(problem(
            "DEST_MODULE_LOCATION",
            format!("Directive 'DEST_MODULE_LOCATION' leaves the module tree ('..') in {record}."),
            format!("remove '..' from DEST_MODULE_LOCATION[{index}]"),
        ));
    }
}

/// Only the strict read (add, build, install) rejects the same module twice. A record
/// without a name is reported as such already, not as a duplicate of another nameless one.
fn check_duplicates(modules: &[ModuleEntry], problems: &mut Vec<Problem>, problem: &MakeProblem) {
    let strict_only = |p: Problem| Problem {
        strict_only: true,
        ..p
    };
    let mut built = BTreeMap::new();
    let mut dest = BTreeMap::new();
    for m in modules.iter().filter(|m| !m.built_name.is_empty()) {
        let key = format!("{}{}", m.built_location, m.built_name);
        if let Some(first) = built.insert(key.clone(), m.index) {
            problems.push(strict_only(problem(
                "BUILT_MODULE_NAME",
                format!(
                    "Duplicate module '{key}' in records #{first} and #{}.",
                    m.index
                ),
                "give every BUILT_MODULE_LOCATION + BUILT_MODULE_NAME pair once".into(),
            )));
        }
        if let Some(first) = dest.insert(m.dest_name.clone(), m.index) {
            problems.push(strict_only(problem(
                "DEST_MODULE_NAME",
                format!(
                    "Duplicate destination module name '{}' in records #{first} and #{}.",
                    m.dest_name, m.index
                ),
                "give every DEST_MODULE_NAME once".into(),
            )));
        }
    }
}
