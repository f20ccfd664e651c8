//! The original's summary of an autoinstall: per kernel, which modules succeeded, were
//! skipped, and failed (with their exit codes).

use std::collections::BTreeMap;

use super::super::context::Context;
use super::super::schedule::Outcome;
use super::Install;
use crate::exit;

/// Print the summary lines of every kernel; true if any module failed.
pub(super) fn report(
    ctx: &Context,
    kernels: &[String],
    mut early: BTreeMap<String, Vec<(String, Outcome)>>,
    installs: &[Install],
    outcomes: &[Outcome],
) -> bool {
    let mut failed_any = false;
    for kernel in kernels {
        let mut results = early.remove(kernel).unwrap_or_default();
        for (install, outcome) in installs.iter().zip(outcomes) {
            if &install.ka.kernel == kernel && *outcome != Outcome::Deferred {
                results.push((install.module.clone(), outcome.clone()));
            }
        }
        failed_any |= results
            .iter()
            .any(|(_, o)| matches!(o, Outcome::Failed(_) | Outcome::DependencyFailed(_)));
        for line in kernel_lines(kernel, &results) {
            ctx.report.line(&line);
        }
    }
    failed_any
}

/// The summary lines of one kernel.
fn kernel_lines(kernel: &str, results: &[(String, Outcome)]) -> Vec<String> {
    let name = |m: &str| m.split('/').next().unwrap_or(m).to_string();
    let names = |want: fn(&Outcome) -> bool| -> Vec<String> {
        results
            .iter()
            .filter(|(_, o)| want(o))
            .map(|(m, _)| name(m))
            .collect()
    };
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(m, o)| match o {
            Outcome::Failed(code) => Some(format!("{}({code})", name(m))),
            Outcome::DependencyFailed(_) => {
                Some(format!("{}({})", name(m), exit::AUTOINSTALL_FAILED))
            }
            _ => None,
        })
        .collect();
    let mut lines = Vec::new();
    for (list, what) in [
        (names(|o| matches!(o, Outcome::Done)), "succeeded"),
        (names(|o| matches!(o, Outcome::Skipped)), "was skipped"),
        (failed, "failed"),
    ] {
        if !list.is_empty() {
            lines.push(format!(
                "Autoinstall on {kernel} {what} for module(s) {}.",
                list.join(" ")
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_are_the_originals() {
        let results = vec![
            ("a/1".to_string(), Outcome::Done),
            ("b/2".to_string(), Outcome::Skipped),
            ("c/3".to_string(), Outcome::Failed(10)),
            (
                "d/4".to_string(),
                Outcome::DependencyFailed(vec!["c/3".into()]),
            ),
            ("e/5".to_string(), Outcome::Done),
        ];
        assert_eq!(
            kernel_lines("6.1", &results),
            [
                "Autoinstall on 6.1 succeeded for module(s) a e.",
                "Autoinstall on 6.1 was skipped for module(s) b.",
                "Autoinstall on 6.1 failed for module(s) c(10) d(11).",
            ]
        );
        assert!(kernel_lines("6.1", &[]).is_empty());
    }
}
