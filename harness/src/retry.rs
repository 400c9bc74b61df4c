//! `--retries`: which failed trials run again in a fresh VM, and what a trial's attempts come
//! to. [`crate::run`] boots the attempts; this module decides, on verdicts alone, so that the
//! rules are pure functions with tests of their own.
//!
//! A trial that fails and then passes is [`Verdict::Flaky`]; one that fails every time keeps
//! its first failure, with what each later attempt said. A known kernel bug is never run
//! again: its failure is the expected outcome, and its passing (the list is out of date)
//! would not be made true by a second try.

use std::path::PathBuf;

use crate::model::{Expectation, FailedAttempt, Origin, ScenarioVerdict, Verdict};

/// The environment variable guest test programs find their attempt in (`1`, then `2` on the
/// first retry ...), as nextest's tests find theirs in `NEXTEST_ATTEMPT`: a test may log more
/// when it runs again.
pub const ATTEMPT_ENV: &str = "UE_ATTEMPT";

/// Whether `v`, as one attempt judged it, runs again: it failed for a cause that can come and
/// go between boots, it is not the boot's own trial (each VM has its own), and the kernel
/// list names no bug of this kernel that it shows.
pub fn may_retry(v: &ScenarioVerdict, expected: &Expectation) -> bool {
    let Verdict::Fail(f) = &v.verdict else {
        return false;
    };
    v.origin != Origin::Vm && f.cause.can_flake() && expected.known_bug(&v.name).is_none()
}

/// One run of one trial.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// 1 for the run's own, 2 for the first retry ...
    pub number: u32,
    pub verdict: ScenarioVerdict,
    /// The console log of the VM that ran it.
    pub console_log: PathBuf,
}

/// Whether a trial with these attempts, in order, is still failing: its last attempt failed.
pub fn still_failing(attempts: &[Attempt]) -> bool {
    attempts.last().is_some_and(|a| a.verdict.verdict.is_fail())
}

/// What a trial's attempts, in order, come to. The first to pass makes it flaky, carrying the
/// failed attempts before it; its duration, snapshots and notes are the trial's. None passing,
/// it keeps the first attempt's verdict (a failure keeps its cause), followed by a line for
/// each later attempt. A trial run once is its verdict.
pub fn outcome(attempts: Vec<Attempt>) -> Option<ScenarioVerdict> {
    let mut attempts = attempts.into_iter();
    let first = attempts.next()?;
    let later: Vec<Attempt> = attempts.collect();
    let mut failed: Vec<FailedAttempt> = Vec::new();
    for a in std::iter::once(&first).chain(&later) {
        match &a.verdict.verdict {
            Verdict::Pass if !failed.is_empty() => {
                let mut v = a.verdict.clone();
                v.verdict = Verdict::Flaky {
                    failed_attempts: failed,
                    passed_on: a.number,
                };
                return Some(v);
            }
            Verdict::Fail(f) => failed.push(FailedAttempt {
                attempt: a.number,
                failure: f.clone(),
                console_log: a.console_log.clone(),
            }),
            // A pass first, an ignore, a known bug: not a failure to retry past.
            _ => break,
        }
    }
    let mut v = first.verdict;
    if let Verdict::Fail(f) = &v.verdict {
        let total = later.len() + 1;
        let lines: String = later
            .iter()
            .map(|a| {
                format!(
                    "\nattempt {} of {total} (a fresh VM): {} (console log: {})",
                    a.number,
                    attempt_said(&a.verdict.verdict),
                    a.console_log.display()
                )
            })
            .collect();
        v.verdict = Verdict::Fail(f.clone().followed_by(&lines));
    }
    Some(v)
}

/// A later attempt's verdict in one line.
fn attempt_said(v: &Verdict) -> String {
    let first_line = |s: &str| s.lines().next().unwrap_or("").to_owned();
    match v {
        Verdict::Fail(f) => format!("failed again: {}", f.telling_line()),
        Verdict::Pass => "passed".into(),
        Verdict::Ignored(r) => format!("ignored: {}", first_line(r)),
        Verdict::KnownBug { bug, .. } => format!("showed known kernel bug {bug}"),
        Verdict::Flaky { .. } => "flaky".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FailCause, Failure, KnownBug};

    fn attempt(number: u32, verdict: Verdict) -> Attempt {
        let mut v = ScenarioVerdict::new("a::b", Origin::Scenario, verdict);
        v.duration_us = Some(u64::from(number));
        Attempt {
            number,
            verdict: v,
            console_log: if number == 1 {
                "run/console.log".into()
            } else {
                format!("run/attempt-{number}/console.log").into()
            },
        }
    }

    fn fail(m: &str) -> Verdict {
        Verdict::fail(FailCause::Guest, m)
    }

    #[test]
    fn failed_then_passed_is_flaky_with_each_failed_attempt() {
        let v = outcome(vec![
            attempt(1, fail("timed out waiting\nmore")),
            attempt(2, fail("again")),
            attempt(3, Verdict::Pass),
        ])
        .unwrap();
        assert_eq!(
            v.verdict,
            Verdict::Flaky {
                failed_attempts: vec![
                    FailedAttempt {
                        attempt: 1,
                        failure: Failure {
                            cause: FailCause::Guest,
                            message: "timed out waiting\nmore".into()
                        },
                        console_log: "run/console.log".into(),
                    },
                    FailedAttempt {
                        attempt: 2,
                        failure: Failure {
                            cause: FailCause::Guest,
                            message: "again".into()
                        },
                        console_log: "run/attempt-2/console.log".into(),
                    },
                ],
                passed_on: 3,
            }
        );
        // The passing attempt's own record (its duration, here its number).
        assert_eq!(v.duration_us, Some(3));
        assert_eq!(
            v.verdict.flaky_line().as_deref(),
            Some("flaky: failed on attempt 1, 2, passed on attempt 3")
        );
        assert!(!v.verdict.is_fail());
    }

    #[test]
    fn failed_every_time_keeps_the_first_failure_and_its_cause() {
        let v = outcome(vec![
            attempt(1, Verdict::fail(FailCause::Hung, "stuck in D\nstack")),
            attempt(2, fail("exit 1")),
            attempt(3, Verdict::Ignored("no feature".into())),
        ])
        .unwrap();
        let Verdict::Fail(f) = &v.verdict else {
            panic!("{v:?}")
        };
        assert_eq!(f.cause, FailCause::Hung);
        assert!(
            f.message.starts_with("stuck in D\nstack\n"),
            "{}",
            f.message
        );
        assert!(
            f.message.contains(
                "attempt 2 of 3 (a fresh VM): failed again: exit 1 (console log: run/attempt-2/console.log)"
            ),
            "{}",
            f.message
        );
        assert!(
            f.message
                .contains("attempt 3 of 3 (a fresh VM): ignored: no feature"),
            "{}",
            f.message
        );
        assert_eq!(v.duration_us, Some(1));
    }

    /// A Rust test's first line is where it panicked; its retry line says what it said.
    #[test]
    fn a_retry_line_tells_a_panics_message() {
        let panic = "thread 'tests::t' (38) panicked at src/lib.rs:7:9:\nattempt 2: always fails";
        let v = outcome(vec![attempt(1, fail("first")), attempt(2, fail(panic))]).unwrap();
        let Verdict::Fail(f) = &v.verdict else {
            panic!("{v:?}")
        };
        assert!(
            f.message
                .contains("attempt 2 of 2 (a fresh VM): failed again: attempt 2: always fails"),
            "{}",
            f.message
        );
    }

    #[test]
    fn a_trial_run_once_is_its_verdict() {
        for verdict in [Verdict::Pass, fail("no"), Verdict::Ignored("x".into())] {
            let v = outcome(vec![attempt(1, verdict.clone())]).unwrap();
            assert_eq!(v.verdict, verdict);
        }
        assert!(outcome(vec![]).is_none());
    }

    #[test]
    fn only_failures_that_can_come_and_go_are_retried_never_a_known_bug() {
        let expected = Expectation {
            known_bugs: vec![KnownBug {
                name: "format-array-len".into(),
                scenario: "trace::f".into(),
                cause: "len never set".into(),
            }],
            ..Default::default()
        };
        let v = |name: &str, origin, verdict| ScenarioVerdict::new(name, origin, verdict);
        assert!(may_retry(
            &v("a::b", Origin::Scenario, fail("no")),
            &expected
        ));
        assert!(may_retry(
            &v(
                "kselftest::dyn_test::user.matching",
                Origin::Upstream,
                Verdict::fail(FailCause::NotRun, "not run")
            ),
            &expected
        ));
        // A known bug's scenario: neither its bug nor its passing, nor another failure of it.
        for verdict in [
            Verdict::KnownBug {
                bug: "format-array-len".into(),
                cause: "c".into(),
                failure: "f".into(),
            },
            Verdict::fail(FailCause::KnownBugPassed, "passes"),
            fail("another failure"),
        ] {
            assert!(!may_retry(
                &v("trace::f", Origin::Scenario, verdict),
                &expected
            ));
        }
        // The boot's own trial, and failures the kernel or the build decides.
        assert!(!may_retry(
            &v(
                crate::model::HEALTH,
                Origin::Vm,
                Verdict::fail(FailCause::Boot, "x")
            ),
            &expected
        ));
        for cause in [FailCause::NoUserEvents, FailCause::BuildFailed] {
            assert!(!may_retry(
                &v("a::b", Origin::Scenario, Verdict::fail(cause, "x")),
                &expected
            ));
        }
        assert!(!may_retry(
            &v("a::b", Origin::Scenario, Verdict::Pass),
            &expected
        ));
    }
}
