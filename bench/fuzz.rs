//! `bench/fuzz [cases]`: throw millions of seeded random command lines, dkms.conf files
//! and state-tree mutations at dkms's readers (the generators of `tests/it/common/fuzz.rs`)
//! and print how many ran, how fast, and how many panicked (with the first inputs that
//! did). Built with panics that unwind (`--profile fuzz`), so one is counted, not fatal.

#[path = "../tests/it/common/fuzz.rs"]
mod fuzz;

use std::time::Instant;

use fuzz::Tally;

fn main() {
    let cases: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let seed: u64 = std::env::var("DKMS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261202);
    // Quiet panics: the tally reports them.
    std::panic::set_hook(Box::new(|_| {}));
    let dir = tempfile::tempdir().expect("scratch directory");
    let root = dir.path().join("root");
    fuzz::fresh_root(&root);
    let settings = fuzz::settings(&root);
    let conf_dir = dir.path().join("conf");
    std::fs::create_dir_all(&conf_dir).expect("scratch directory");
    let conf_settings = fuzz::settings(&conf_dir);

    println!("fuzz: {cases} cases per target, seed {seed}");
    println!("| target            |      cases |  panics |   seconds |    cases/s |");
    println!("|-------------------|------------|---------|-----------|------------|");
    let mut failed = false;
    let mut report = |name: &str, tally: Tally, start: Instant| {
        let secs = start.elapsed().as_secs_f64();
        println!(
            "| {name:<17} | {:>10} | {:>7} | {secs:>9.1} | {:>10.0} |",
            tally.cases,
            tally.panics,
            tally.cases as f64 / secs
        );
        for e in &tally.examples {
            println!("  panic: {e}");
        }
        failed |= tally.panics > 0;
    };

    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut tally, start) = (Tally::default(), Instant::now());
    for _ in 0..cases {
        fuzz::cli_case(&mut rng, &mut tally);
    }
    report("command line", tally, start);

    let (mut tally, start) = (Tally::default(), Instant::now());
    for _ in 0..cases {
        fuzz::conf_case(&mut rng, &mut tally, &conf_dir, &conf_settings);
    }
    report("dkms.conf", tally, start);

    let (mut tally, start) = (Tally::default(), Instant::now());
    for i in 0..cases {
        if i.is_multiple_of(200) {
            fuzz::fresh_root(&root);
        }
        fuzz::state_case(&mut rng, &mut tally, &root, &settings);
    }
    report("state tree", tally, start);
    std::process::exit(i32::from(failed));
}
