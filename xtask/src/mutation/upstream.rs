//! The comparison with the kernel tree's own selftests, which boot together with the suite
//! (after it): a verdict of theirs counts only where it is their own finding.

use harness::model::{KernelRun, KernelUnderTest, Origin, ScenarioVerdict};
use harness::run::Selection;

/// The upstream selftests of `run` that fail and did not fail on the unmutated kernel
/// (`base_failing`), in the order they ran.
pub fn newly_failing<'r>(
    run: &'r KernelRun,
    base_failing: &'r [String],
) -> impl Iterator<Item = &'r ScenarioVerdict> {
    run.verdicts.iter().filter(|v| {
        v.origin == Origin::Upstream && v.verdict.is_fail() && !base_failing.contains(&v.name)
    })
}

/// Whether the upstream selftests must run again in a boot of their own before their verdict
/// on a mutant counts: the suite caught it (`suite_caught`), and every upstream failure of the
/// shared boot may be the suite's wreck (an oops that left a lock held, a VM that ended:
/// [`harness::model::FailCause::may_be_inherited`]) rather than something the upstream
/// programs found. Without this, the comparison would credit upstream with the suite's kills.
pub fn needs_its_own_boot(run: &KernelRun, suite_caught: bool, base_failing: &[String]) -> bool {
    let mut failing = newly_failing(run, base_failing).peekable();
    suite_caught
        && failing.peek().is_some()
        && failing.all(|v| v.verdict.fail_cause().is_none_or(|c| c.may_be_inherited()))
}

/// The upstream programs of `sel` alone, for that boot.
pub fn alone(sel: &Selection) -> Selection {
    Selection {
        kselftests: sel.kselftests.clone(),
        ..Selection::default()
    }
}

/// `kernel` for that boot: the same image, its run directory named apart.
pub fn alone_kernel(kernel: &KernelUnderTest) -> KernelUnderTest {
    KernelUnderTest {
        label: format!("{}-upstream-alone", kernel.label),
        ..kernel.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness::model::{FailCause, Verdict};
    use std::path::Path;

    /// A saved 6.12 run with these upstream verdicts in place of its own.
    fn run(upstream: &[(&str, Verdict)]) -> KernelRun {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/report/baseline-6.12");
        let mut r = harness::artifacts::read_results(&dir).unwrap();
        r.verdicts.retain(|v| v.origin != Origin::Upstream);
        r.verdicts.extend(
            upstream
                .iter()
                .map(|(n, v)| ScenarioVerdict::new(*n, Origin::Upstream, v.clone())),
        );
        r
    }

    fn blocked() -> Verdict {
        Verdict::fail(
            FailCause::Blocked {
                behind: "failslab::attach_ftrace_page_absent".into(),
            },
            "blocked behind failslab::attach_ftrace_page_absent: not run",
        )
    }

    fn own() -> Verdict {
        Verdict::fail(FailCause::Guest, "not ok 3 user.flags")
    }

    #[test]
    fn upstream_blocked_behind_the_suites_kill_boots_again_alone() {
        let r = run(&[("kselftest::ftrace_test", blocked())]);
        assert!(needs_its_own_boot(&r, true, &[]));
        // Its failure in the shared boot is not a kill of its own.
        let r = run(&[
            ("kselftest::abi_test", Verdict::Pass),
            ("kselftest::ftrace_test", blocked()),
            (
                "kselftest::perf_test",
                Verdict::fail(FailCause::NotRun, "not run: the kernel panicked"),
            ),
        ]);
        assert!(needs_its_own_boot(&r, true, &[]));
    }

    #[test]
    fn an_upstream_finding_of_its_own_counts_in_the_shared_boot() {
        let r = run(&[("kselftest::abi_test", own())]);
        assert!(!needs_its_own_boot(&r, true, &[]));
        let r = run(&[
            ("kselftest::abi_test", own()),
            ("kselftest::ftrace_test", blocked()),
        ]);
        assert!(!needs_its_own_boot(&r, true, &[]));
    }

    #[test]
    fn without_a_suite_kill_or_a_new_upstream_failure_one_boot_is_enough() {
        // Nothing of the suite's failed, so nothing of the suite's wrecked the kernel.
        let r = run(&[("kselftest::ftrace_test", blocked())]);
        assert!(!needs_its_own_boot(&r, false, &[]));
        // Failing on the unmutated kernel too: no verdict on the mutant to protect.
        let base = vec!["kselftest::ftrace_test".to_owned()];
        assert!(!needs_its_own_boot(&r, true, &base));
        let r = run(&[("kselftest::abi_test", Verdict::Pass)]);
        assert!(!needs_its_own_boot(&r, true, &[]));
    }

    #[test]
    fn the_boot_of_its_own_runs_only_the_upstream_programs() {
        let sel = Selection {
            scenarios: vec![harness::model::ScenarioInfo {
                name: "failslab::attach_ftrace_page_absent".into(),
                family: "failslab".into(),
                about: String::new(),
                optional: false,
                fault_warnings: true,
                fault_worker: true,
                alone: true,
                requires: vec![],
            }],
            kselftests: vec!["abi_test".into(), "ftrace_test".into()],
            guest: vec![],
        };
        let a = alone(&sel);
        assert_eq!(a.kselftests, sel.kselftests);
        assert!(a.scenarios.is_empty() && a.guest.is_empty());
    }
}
