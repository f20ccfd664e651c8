//! Running many (module, kernel) jobs at once without oversubscribing the machine.
//!
//! One GNU make jobserver of `parallel_jobs` tokens is shared by the whole run: a job
//! holds a token while it runs (the slot of its top-level make), and every make joins
//! the same jobserver for its own parallel steps. So however many builds run, at most
//! `parallel_jobs` processes compile at any time. Jobs wait for the jobs they depend on
//! (BUILD_DEPENDS); a job whose dependency failed fails without running.

use std::sync::{Condvar, Mutex};

/// How one job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done,
    /// BUILD_EXCLUSIVE did not match (exit 77).
    Skipped,
    /// A BUILD_DEPENDS dependency is not registered with dkms yet (3.4.1): the job never
    /// ran, and its dependants wait for a later run too.
    Deferred,
    Failed(i32),
    /// A dependency failed, so the job never ran.
    DependencyFailed(Vec<String>),
}

impl Outcome {
    /// How a step ended: BUILD_EXCLUSIVE's 77 is a skip, any other error is reported
    /// here (the run goes on with the other jobs) and fails the job with its code.
    pub fn of(
        result: crate::commands::error::Result<()>,
        report: &crate::report::Reporter,
    ) -> Outcome {
        match result {
            Ok(()) => Outcome::Done,
            Err(e) if e.exit_code() == crate::exit::EXCLUDED => Outcome::Skipped,
            Err(e) => {
                report.error(&e.to_string());
                Outcome::Failed(e.exit_code())
            }
        }
    }
}

/// A unit of work: its name (for messages), the jobs it waits for, and its exclusive
/// group: jobs of one group never run at the same time (the builds of one module version
/// share `<dkms_tree>/<m>/<v>/build`).
pub struct Job<T> {
    pub name: String,
    /// Jobs that must have succeeded (or been skipped) first (BUILD_DEPENDS): if one
    /// fails, so does this.
    pub after: Vec<usize>,
    /// Jobs that must have ended first, however they ended (a kernel's depmod waits for
    /// every install on that kernel).
    pub after_ended: Vec<usize>,
    pub group: String,
    /// Started before any ready job that is not urgent (a kernel's depmod, so that it
    /// overlaps the builds still running for other kernels instead of trailing them).
    pub urgent: bool,
    pub data: T,
}

impl<T> Job<T> {
    /// A job with no dependencies, alone in its group, not urgent.
    pub fn new(name: impl Into<String>, group: impl Into<String>, data: T) -> Self {
        Job {
            name: name.into(),
            after: Vec::new(),
            after_ended: Vec::new(),
            group: group.into(),
            urgent: false,
            data,
        }
    }

    /// The same job carrying other data.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Job<U> {
        Job {
            name: self.name,
            after: self.after,
            after_ended: self.after_ended,
            group: self.group,
            urgent: self.urgent,
            data: f(self.data),
        }
    }
}

struct Board {
    outcomes: Vec<Option<Outcome>>,
    started: Vec<bool>,
    running: usize,
    busy_groups: Vec<String>,
}

/// Run `jobs` with `run`, at most `tokens` at once (each holds a jobserver token while
/// running); returns one outcome per job, in order. `on_done` is called as each ends.
pub fn run<T: Sync>(
    jobs: &[Job<T>],
    jobserver: &jobserver::Client,
    tokens: usize,
    run: impl Fn(&Job<T>) -> Outcome + Sync,
    on_done: impl Fn(&Job<T>, &Outcome) + Sync,
) -> Vec<Outcome> {
    let board = Mutex::new(Board {
        outcomes: vec![None; jobs.len()],
        started: vec![false; jobs.len()],
        running: 0,
        busy_groups: Vec::new(),
    });
    let wake = Condvar::new();
    let workers = tokens.clamp(1, jobs.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(index) = claim(jobs, &board, &wake) {
                    // (Bound first: a guard in the match scrutinee would hold the lock
                    // for the whole job.)
                    let decided = board.lock().expect("job board").outcomes[index].clone();
                    let outcome = decided.unwrap_or_else(|| {
                        let _token = jobserver.acquire();
                        run(&jobs[index])
                    });
                    on_done(&jobs[index], &outcome);
                    let mut b = board.lock().expect("job board");
                    b.outcomes[index] = Some(outcome);
                    b.running -= 1;
                    b.busy_groups.retain(|g| g != &jobs[index].group);
                    wake.notify_all();
                }
            });
        }
    });
    board
        .into_inner()
        .expect("job board")
        .outcomes
        .into_iter()
        .map(|o| o.expect("every job ran"))
        .collect()
}

/// The next job for a worker, waiting until one is ready; `None` once every job has
/// ended or nothing can ever become ready.
fn claim<T>(jobs: &[Job<T>], board: &Mutex<Board>, wake: &Condvar) -> Option<usize> {
    let mut b = board.lock().expect("job board");
    loop {
        if b.outcomes.iter().all(Option::is_some) {
            return None;
        }
        if let Some(i) = next_ready(jobs, &mut b) {
            return Some(i);
        }
        let waiting = b
            .started
            .iter()
            .zip(&b.outcomes)
            .any(|(s, o)| !s && o.is_none());
        if b.running == 0 && !waiting {
            return None;
        }
        b = wake.wait(b).expect("job board");
    }
}

/// The next job whose dependencies have all ended (urgent ones first, then in order):
/// started (and counted as running). A job whose dependency failed gets its outcome here
/// and is handed out to be reported.
fn next_ready<T>(jobs: &[Job<T>], b: &mut Board) -> Option<usize> {
    let ready = |i: usize| {
        let job = &jobs[i];
        !b.started[i]
            && !b.busy_groups.contains(&job.group)
            && job
                .after
                .iter()
                .chain(&job.after_ended)
                .all(|d| b.outcomes[*d].is_some())
    };
    let i = (0..jobs.len())
        .filter(|&i| jobs[i].urgent)
        .chain((0..jobs.len()).filter(|&i| !jobs[i].urgent))
        .find(|&i| ready(i))?;
    let failed: Vec<String> = jobs[i]
        .after
        .iter()
        // A skipped dependency (BUILD_EXCLUSIVE) satisfies its dependants, as in the
        // original's autoinstall: they run and decide for themselves.
        .filter(|d| !matches!(b.outcomes[**d], Some(Outcome::Done | Outcome::Skipped)))
        .map(|d| jobs[*d].name.clone())
        .collect();
    b.started[i] = true;
    b.running += 1;
    b.busy_groups.push(jobs[i].group.clone());
    if !failed.is_empty() {
        b.outcomes[i] = Some(Outcome::DependencyFailed(failed));
    }
    Some(i)
}

/// The members of a dependency cycle among `jobs`, if there is one.
pub fn find_cycle<T>(jobs: &[Job<T>]) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit<T>(
        i: usize,
        jobs: &[Job<T>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        marks[i] = Mark::Active;
        path.push(i);
        for &d in &jobs[i].after {
            match marks[d] {
                Mark::Active => {
                    let start = path.iter().position(|p| *p == d).unwrap_or(0);
                    let mut names: Vec<String> = path[start..]
                        .iter()
                        .map(|p| jobs[*p].name.clone())
                        .collect();
                    names.push(jobs[d].name.clone());
                    return Some(names);
                }
                Mark::New => {
                    if let Some(c) = visit(d, jobs, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[i] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; jobs.len()];
    for i in 0..jobs.len() {
        if marks[i] == Mark::New {
            if let Some(c) = visit(i, jobs, &mut marks, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn job(name: &str, after: &[usize]) -> Job<()> {
        Job {
            after: after.to_vec(),
            ..Job::new(name, name, ())
        }
    }

    #[test]
    fn dependencies_run_first_and_failures_propagate() {
        let jobs = vec![
            job("a", &[]),
            job("b", &[0]),
            job("c", &[]),
            job("d", &[2]),
            job("e", &[1, 3]),
        ];
        let order = Mutex::new(Vec::new());
        let js = jobserver::Client::new(2).unwrap();
        let outcomes = run(
            &jobs,
            &js,
            2,
            |j| {
                order.lock().unwrap().push(j.name.clone());
                if j.name == "c" {
                    Outcome::Failed(crate::exit::BUILD_FAILED)
                } else {
                    Outcome::Done
                }
            },
            |_, _| {},
        );
        assert_eq!(outcomes[0], Outcome::Done);
        assert_eq!(outcomes[1], Outcome::Done);
        assert_eq!(outcomes[2], Outcome::Failed(crate::exit::BUILD_FAILED));
        assert_eq!(outcomes[3], Outcome::DependencyFailed(vec!["c".into()]));
        assert_eq!(outcomes[4], Outcome::DependencyFailed(vec!["d".into()]));
        let order = order.into_inner().unwrap();
        assert!(order.iter().position(|n| n == "a") < order.iter().position(|n| n == "b"));
        assert!(!order.contains(&"d".to_string()));
    }

    #[test]
    fn a_skipped_dependency_lets_its_dependants_run() {
        let jobs = vec![job("a", &[]), job("b", &[0])];
        let js = jobserver::Client::new(2).unwrap();
        let outcomes = run(
            &jobs,
            &js,
            2,
            |j| {
                if j.name == "a" {
                    Outcome::Skipped
                } else {
                    Outcome::Done
                }
            },
            |_, _| {},
        );
        assert_eq!(outcomes, vec![Outcome::Skipped, Outcome::Done]);
    }

    #[test]
    fn never_more_jobs_at_once_than_tokens() {
        let jobs: Vec<Job<()>> = (0..8).map(|i| job(&format!("j{i}"), &[])).collect();
        let (now, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let js = jobserver::Client::new(3).unwrap();
        run(
            &jobs,
            &js,
            8,
            |_| {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(30));
                now.fetch_sub(1, Ordering::SeqCst);
                Outcome::Done
            },
            |_, _| {},
        );
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn jobs_of_one_group_never_overlap() {
        let jobs: Vec<Job<()>> = (0..6)
            .map(|i| Job::new(format!("j{i}"), format!("g{}", i % 2), ()))
            .collect();
        let running = Mutex::new(Vec::<String>::new());
        let overlap = std::sync::atomic::AtomicBool::new(false);
        let js = jobserver::Client::new(4).unwrap();
        run(
            &jobs,
            &js,
            4,
            |j| {
                {
                    let mut r = running.lock().unwrap();
                    if r.contains(&j.group) {
                        overlap.store(true, Ordering::SeqCst);
                    }
                    r.push(j.group.clone());
                }
                std::thread::sleep(Duration::from_millis(20));
                running.lock().unwrap().retain(|g| g != &j.group);
                Outcome::Done
            },
            |_, _| {},
        );
        assert!(!overlap.load(Ordering::SeqCst));
    }

    #[test]
    fn a_job_after_ended_ones_runs_whatever_they_did_and_urgent_ones_start_first() {
        // One worker: the order of starts is the order of choice.
        let mut jobs = vec![job("a", &[]), job("b", &[]), job("c", &[]), job("d", &[])];
        jobs.push(Job {
            after_ended: vec![0],
            urgent: true,
            ..Job::new("after-a", "after-a", ())
        });
        let order = Mutex::new(Vec::new());
        let js = jobserver::Client::new(1).unwrap();
        let outcomes = run(
            &jobs,
            &js,
            1,
            |j| {
                order.lock().unwrap().push(j.name.clone());
                if j.name == "a" {
                    Outcome::Failed(crate::exit::BUILD_FAILED)
                } else {
                    Outcome::Done
                }
            },
            |_, _| {},
        );
        assert_eq!(outcomes[4], Outcome::Done);
        assert_eq!(order.into_inner().unwrap(), ["a", "after-a", "b", "c", "d"]);
    }

    #[test]
    fn cycles_are_found_with_their_members() {
        let jobs = vec![job("a", &[2]), job("b", &[]), job("c", &[0])];
        assert_eq!(
            find_cycle(&jobs),
            Some(vec!["a".into(), "c".into(), "a".into()])
        );
        assert_eq!(find_cycle(&[job("a", &[]), job("b", &[0])]), None);
    }
}
