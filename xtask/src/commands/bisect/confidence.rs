//! How the K runs of one commit become a bisect step's decision (`--runs K`, `--bad-at M`).
//!
//! A step is good only if every run passed: a failure that shows once is never waved
//! through, since a bug that reproduces one time in three is still a bug. It is bad once one
//! trial has failed in M runs: the same trial, because two different trials failing once each
//! are two flakes, not a reproduction. Anything between is neither, and git bisect skips the
//! commit rather than guess. A step stops booting as soon as its decision cannot change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a step tells `git bisect run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Good,
    Bad,
    Skip,
}

impl Decision {
    /// `git bisect run`'s meaning of a step's exit code: 0 good, 1 bad, 125 skip.
    pub fn exit_code(self) -> u8 {
        match self {
            Decision::Good => 0,
            Decision::Bad => 1,
            Decision::Skip => 125,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Decision::Good => "good",
            Decision::Bad => "bad",
            Decision::Skip => "skip",
        }
    }
}

/// How the runs of one commit went so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Runs done (boots of the commit's kernel).
    pub runs: u32,
    /// Runs in which some trial failed.
    pub failed_runs: u32,
    /// Each trial that failed, with the number of runs it failed in.
    pub failures: BTreeMap<String, u32>,
}

impl Tally {
    /// One more run, with the trials that failed in it (none: it passed).
    pub fn add_run(&mut self, failing: &[String]) {
        self.runs += 1;
        if !failing.is_empty() {
            self.failed_runs += 1;
        }
        let mut seen: Vec<&String> = failing.iter().collect();
        seen.sort();
        seen.dedup();
        for trial in seen {
            *self.failures.entry(trial.clone()).or_default() += 1;
        }
    }

    /// The failed trials, the most often failed first (by name among equals).
    pub fn by_count(&self) -> Vec<(&str, u32)> {
        let mut v: Vec<(&str, u32)> = self
            .failures
            .iter()
            .map(|(t, n)| (t.as_str(), *n))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v
    }

    /// How many runs the most often failed trial failed in (0 when none failed).
    pub fn most_failures(&self) -> u32 {
        self.failures.values().copied().max().unwrap_or(0)
    }
}

/// The rule of a bisect: K runs per step, bad when one trial fails in M of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confidence {
    pub runs: u32,
    pub bad_at: u32,
}

impl Confidence {
    /// `--runs` and `--bad-at` (default: all the runs), checked against each other.
    pub fn new(runs: u32, bad_at: Option<u32>) -> anyhow::Result<Confidence> {
        let bad_at = bad_at.unwrap_or(runs);
        if runs == 0 || bad_at == 0 || bad_at > runs {
            anyhow::bail!(
                "--bad-at {bad_at} with --runs {runs}: a step fails at most {runs} time(s); give \
                 --bad-at from 1 to {runs}"
            );
        }
        Ok(Confidence { runs, bad_at })
    }

    /// The decision the runs so far already force, or `None` while another run could still
    /// change it.
    pub fn decided(&self, tally: &Tally) -> Option<Decision> {
        let most = tally.most_failures();
        if most >= self.bad_at {
            return Some(Decision::Bad);
        }
        let left = self.runs.saturating_sub(tally.runs);
        // Not good any more, and no trial can reach M in the runs that are left.
        if tally.failed_runs > 0 && most + left < self.bad_at {
            return Some(Decision::Skip);
        }
        if left == 0 {
            // Here no run failed: a failed run with no runs left was a skip above.
            return Some(Decision::Good);
        }
        None
    }

    /// Why a step came to its decision, for the bisect's report.
    pub fn explain(&self, decision: Decision, tally: &Tally) -> String {
        let trials = || {
            tally
                .by_count()
                .iter()
                .map(|(t, n)| format!("{t} {n}×"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match decision {
            Decision::Good => format!("{} of {} run(s) passed", tally.runs, tally.runs),
            Decision::Bad => format!(
                "failed in {} of {} run(s): {}",
                tally.failed_runs,
                tally.runs,
                trials()
            ),
            Decision::Skip => format!(
                "neither good nor bad: failed in {} of {} run(s) ({}), and bad needs one trial \
                 to fail in {} (--bad-at)",
                tally.failed_runs,
                tally.runs,
                trials(),
                self.bad_at
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(runs: &[&[&str]]) -> Tally {
        let mut t = Tally::default();
        for r in runs {
            t.add_run(&r.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        }
        t
    }

    fn rule(runs: u32, bad_at: u32) -> Confidence {
        Confidence::new(runs, Some(bad_at)).unwrap()
    }

    #[test]
    fn one_run_is_the_plain_bisect() {
        let r = Confidence::new(1, None).unwrap();
        assert_eq!(r.bad_at, 1);
        assert_eq!(r.decided(&tally(&[&[]])), Some(Decision::Good));
        assert_eq!(r.decided(&tally(&[&["a"]])), Some(Decision::Bad));
    }

    #[test]
    fn good_only_when_every_run_passed() {
        let r = rule(3, 3);
        assert_eq!(r.decided(&tally(&[&[], &[]])), None);
        assert_eq!(r.decided(&tally(&[&[], &[], &[]])), Some(Decision::Good));
        // A failure in the last run is not outweighed by two passes.
        let r = rule(3, 1);
        assert_eq!(r.decided(&tally(&[&[], &[], &["a"]])), Some(Decision::Bad));
    }

    #[test]
    fn bad_when_one_trial_fails_often_enough_and_no_sooner() {
        let r = rule(3, 2);
        assert_eq!(r.decided(&tally(&[&["a"]])), None);
        assert_eq!(r.decided(&tally(&[&["a"], &["a"]])), Some(Decision::Bad));
        // Two trials failing once each are two flakes, not a reproduction.
        assert_eq!(r.decided(&tally(&[&["a"], &["b"]])), None);
        assert_eq!(
            r.decided(&tally(&[&["a"], &["b"], &[]])),
            Some(Decision::Skip)
        );
        // By default a step is bad only when every run failed.
        let r = Confidence::new(3, None).unwrap();
        assert_eq!(r.decided(&tally(&[&["a"], &["a"]])), None);
        assert_eq!(
            r.decided(&tally(&[&["a"], &["a"], &["a"]])),
            Some(Decision::Bad)
        );
    }

    #[test]
    fn skipped_as_soon_as_neither_can_be_reached() {
        // One failure, one pass: bad needs three of three, which cannot happen any more.
        let r = rule(3, 3);
        assert_eq!(r.decided(&tally(&[&["a"], &[]])), Some(Decision::Skip));
        let r = rule(5, 3);
        assert_eq!(r.decided(&tally(&[&["a"], &[], &[]])), None);
        assert_eq!(
            r.decided(&tally(&[&["a"], &[], &[], &[]])),
            Some(Decision::Skip)
        );
    }

    #[test]
    fn a_trial_counts_once_per_run() {
        let t = tally(&[&["a", "a", "b"], &["a"]]);
        assert_eq!(t.runs, 2);
        assert_eq!(t.failed_runs, 2);
        assert_eq!(t.by_count(), [("a", 2), ("b", 1)]);
    }

    #[test]
    fn bad_at_must_fit_in_the_runs() {
        let e = Confidence::new(3, Some(4)).unwrap_err().to_string();
        assert!(
            e.contains("--bad-at 4 with --runs 3") && e.contains("from 1 to 3"),
            "{e}"
        );
        assert!(Confidence::new(3, Some(0)).is_err());
    }

    #[test]
    fn the_explanation_names_the_counts_and_the_rule() {
        let r = rule(3, 2);
        assert_eq!(
            r.explain(Decision::Good, &tally(&[&[], &[], &[]])),
            "3 of 3 run(s) passed"
        );
        assert_eq!(
            r.explain(Decision::Bad, &tally(&[&["k::b", "k::a"], &["k::a"]])),
            "failed in 2 of 2 run(s): k::a 2×, k::b 1×"
        );
        assert_eq!(
            r.explain(Decision::Skip, &tally(&[&["k::a"], &[], &[]])),
            "neither good nor bad: failed in 1 of 3 run(s) (k::a 1×), and bad needs one trial \
             to fail in 2 (--bad-at)"
        );
    }
}
