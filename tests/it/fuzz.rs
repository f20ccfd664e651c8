//! Hostile input, in process: seeded random command lines, dkms.conf files and state
//! trees (the generators and targets are `tests/it/common/fuzz.rs`) must never panic. A
//! bounded number of cases here; `bench/fuzz` runs millions.

use crate::common::fuzz;

use fuzz::Tally;

fn cases(default: u64) -> u64 {
    std::env::var("DKMS_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn assert_no_panic(what: &str, tally: &Tally) {
    eprintln!("{what}: {} cases, {} panics", tally.cases, tally.panics);
    assert_eq!(tally.panics, 0, "{what}: {:#?}", tally.examples);
}

#[test]
fn the_command_line_parser_never_panics() {
    let mut rng = fastrand::Rng::with_seed(1);
    let mut tally = Tally::default();
    for _ in 0..cases(50_000) {
        fuzz::cli_case(&mut rng, &mut tally);
    }
    assert_no_panic("command line", &tally);
}

#[test]
fn the_dkms_conf_reader_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let settings = fuzz::settings(dir.path());
    let mut rng = fastrand::Rng::with_seed(2);
    let mut tally = Tally::default();
    for _ in 0..cases(20_000) {
        fuzz::conf_case(&mut rng, &mut tally, dir.path(), &settings);
    }
    assert_no_panic("dkms.conf", &tally);
}

#[test]
fn the_state_tree_reader_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let settings = fuzz::settings(&root);
    let mut rng = fastrand::Rng::with_seed(3);
    let mut tally = Tally::default();
    for i in 0..cases(4_000) {
        if i.is_multiple_of(200) {
            fuzz::fresh_root(&root);
        }
        fuzz::state_case(&mut rng, &mut tally, &root, &settings);
    }
    assert_no_panic("state tree", &tally);
}
