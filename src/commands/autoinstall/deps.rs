//! BUILD_DEPENDS between the jobs of one autoinstall: a dependency installed on the
//! kernel already is satisfied, one with a job here is waited for, one known to dkms but
//! not installable fails the module (11), one unknown to dkms defers it (3.4.1: its
//! package may not be configured yet). A cycle fails every module in it.

use super::super::context::Context;
use super::super::schedule::{self, Outcome};
use super::collect::Plan;
use crate::exit;

/// Set each job's dependencies (or its outcome); returns the lines of deferred modules,
/// printed after the run as the original does.
pub(super) fn resolve(ctx: &Context, plan: &mut Plan) -> Vec<String> {
    let mut deferred = Vec::new();
    for i in 0..plan.jobs.len() {
        let ka = plan.jobs[i].data.ka.clone();
        let (mut unknown, mut missing) = (Vec::new(), Vec::new());
        for dep in &plan.deps_of[i] {
            if ctx.tree.kernel_link(dep, &ka).exists() {
                continue;
            }
            let job = plan
                .jobs
                .iter()
                .position(|j| &j.data.module == dep && j.data.ka == ka);
            match job {
                Some(j) => plan.jobs[i].after.push(j),
                None if plan.latest.contains_key(dep) => missing.push(dep.clone()),
                None => unknown.push(dep.clone()),
            }
        }
        let job = &mut plan.jobs[i];
        if !missing.is_empty() {
            ctx.report.line(&format!(
                "{} autoinstall failed due to missing dependencies: {}",
                job.name,
                missing.join(" ")
            ));
            job.data.decided = Some(Outcome::Failed(exit::AUTOINSTALL_FAILED));
        } else if !unknown.is_empty() {
            deferred.push(format!(
                "{} autoinstall deferred: BUILD_DEPENDS not registered with DKMS: {}",
                job.name,
                unknown.join(" ")
            ));
            job.data.decided = Some(Outcome::Deferred);
        }
    }
    fail_cycle(ctx, plan);
    deferred
}

/// A BUILD_DEPENDS cycle fails its members; the others no longer wait on anything.
fn fail_cycle(ctx: &Context, plan: &mut Plan) {
    let Some(cycle) = schedule::find_cycle(&plan.jobs) else {
        return;
    };
    ctx.report.error(&format!(
        "BUILD_DEPENDS form a cycle: {}. None of these modules can be installed; remove one of the dependencies.",
        cycle.join(" -> ")
    ));
    for j in plan.jobs.iter_mut() {
        if cycle.contains(&j.name) {
            j.data.decided = Some(Outcome::Failed(exit::AUTOINSTALL_FAILED));
        }
        j.after.clear();
    }
}
