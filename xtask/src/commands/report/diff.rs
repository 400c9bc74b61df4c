//! `report --baseline`: what changed between the baseline runs and the new ones, and nothing
//! else. A trial is matched by its kernel's label and its name; when each side's only label
//! is unmatched (a mutant or patched kernel against the clean one: `6.12+patched` against
//! `6.12`), those two labels are compared with each other, which is what a person comparing a
//! mutant against a clean run means.

use std::collections::{BTreeMap, BTreeSet};

use harness::model::{KernelRun, Verdict};

use super::symptom;

/// The most of a symptom's line shown.
const SHOWN: usize = 160;

/// One trial's outcome in one run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Passed, or failed as its known kernel bug says it must: nothing to act on.
    Ok,
    Fail(String),
    /// Ignored: not judged in that run (a feature the kernel lacks, a run that stopped at
    /// the first failure).
    Skipped,
}

/// A trial's outcomes over one side's runs, summed up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Passed,
    /// Failed in every run that judged it; the first failure's message.
    Failed(String),
    /// Failed in some runs and passed in others, or within one run failed and then passed
    /// on a retry (`fails` and `runs` then count attempts).
    Flaky {
        fails: usize,
        runs: usize,
        message: String,
    },
    Skipped,
}

impl Status {
    fn of(outcomes: &[Outcome]) -> Status {
        let fails: Vec<&String> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Fail(m) => Some(m),
                _ => None,
            })
            .collect();
        let oks = outcomes.iter().filter(|o| **o == Outcome::Ok).count();
        match (fails.first(), oks) {
            (Some(m), 0) => Status::Failed((*m).clone()),
            (Some(m), _) => Status::Flaky {
                fails: fails.len(),
                runs: fails.len() + oks,
                message: (*m).clone(),
            },
            (None, 0) => Status::Skipped,
            (None, _) => Status::Passed,
        }
    }

    fn failed(&self) -> bool {
        matches!(self, Status::Failed(_))
    }

    fn word(&self) -> String {
        match self {
            Status::Passed => "passed".into(),
            Status::Failed(_) => "failed".into(),
            Status::Flaky { fails, runs, .. } => format!("flaky ({fails} of {runs} failed)"),
            Status::Skipped => "ignored".into(),
        }
    }
}

/// A verdict's outcomes, one per attempt: a trial that was flaky within its run (failed, then
/// passed on a retry) counts each failed attempt and the pass, so that one run can show a
/// flake as several runs do.
fn outcomes_of(v: &Verdict) -> Vec<Outcome> {
    match v {
        Verdict::Pass | Verdict::KnownBug { .. } => vec![Outcome::Ok],
        Verdict::Fail(f) => vec![Outcome::Fail(f.message.clone())],
        Verdict::Ignored(_) => vec![Outcome::Skipped],
        Verdict::Flaky {
            failed_attempts, ..
        } => failed_attempts
            .iter()
            .map(|a| Outcome::Fail(a.failure.message.clone()))
            .chain([Outcome::Ok])
            .collect(),
    }
}

/// A trial in one side's runs: its kernel's label and its name.
type Key = (String, String);

/// Each side's trials with their outcomes over that side's runs.
fn outcomes(runs: &[KernelRun]) -> BTreeMap<Key, Vec<Outcome>> {
    let mut out: BTreeMap<Key, Vec<Outcome>> = BTreeMap::new();
    for r in runs {
        let label = &r.kernel.label;
        for v in &r.verdicts {
            out.entry((label.clone(), v.name.clone()))
                .or_default()
                .extend(outcomes_of(&v.verdict));
        }
    }
    out
}

/// New label → baseline label: each label to itself; then the one label each side has left
/// unmatched to the other's (`6.12+patched` against `6.12`), or, when the baseline is one
/// kernel alone, every new label to it, each compared on its own (several mutants against
/// one clean run). Otherwise which is which cannot be told from labels, and the unmatched
/// kernels appear and disappear.
fn pair_labels(base: &BTreeSet<String>, new: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = new
        .intersection(base)
        .map(|l| (l.clone(), l.clone()))
        .collect();
    let only_base: Vec<&String> = base.difference(new).collect();
    let only_new: Vec<&String> = new.difference(base).collect();
    if let [b] = only_base.as_slice() {
        if only_new.len() > 1 && base.len() > 1 {
            return map;
        }
        for n in only_new {
            map.insert(n.clone(), (*b).clone());
        }
    }
    map
}

/// A trial that changed, as shown: its name (with the new side's kernel label when more than
/// one kernel is compared) and its statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub trial: String,
    pub before: Option<Status>,
    pub after: Option<Status>,
}

/// Failures that share a symptom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymptomGroup {
    pub symptom: String,
    pub trials: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Diff {
    /// `6.12+patched against 6.12`, one per compared kernel pair.
    pub compared: Vec<String>,
    pub base_runs: usize,
    pub new_runs: usize,
    /// Trials failing in every new run that did not fail in every baseline run, by symptom,
    /// the largest group first.
    pub new_failures: Vec<SymptomGroup>,
    pub fixed: Vec<Change>,
    pub new_flakes: Vec<Change>,
    pub appeared: Vec<Change>,
    pub disappeared: Vec<Change>,
    /// Judged in the baseline, ignored in every new run (a run that stopped at its first
    /// failure): counted, not listed, since nothing there changed that can be told.
    pub not_run: usize,
}

impl Diff {
    /// Whether a trial fails now that did not: the exit status.
    pub fn regressed(&self) -> bool {
        !self.new_failures.is_empty()
    }

    pub fn new(base: &[KernelRun], new: &[KernelRun]) -> Diff {
        let labels = |runs: &[KernelRun]| -> BTreeSet<String> {
            runs.iter().map(|r| r.kernel.label.clone()).collect()
        };
        let (base_labels, new_labels) = (labels(base), labels(new));
        let map = pair_labels(&base_labels, &new_labels);
        let before = outcomes(base);
        let after = outcomes(new);
        let several = base_labels.len().max(new_labels.len()) > 1;
        let show = |label: &str, name: &str| {
            if several {
                format!("{label}::{name}")
            } else {
                name.to_owned()
            }
        };
        let names = |o: &BTreeMap<Key, Vec<Outcome>>, label: &str| -> BTreeSet<String> {
            o.keys()
                .filter(|(l, _)| l == label)
                .map(|(_, n)| n.clone())
                .collect()
        };
        // Every trial to look at: (shown as, baseline key, new key).
        let mut pairs: Vec<(String, Option<Key>, Option<Key>)> = Vec::new();
        for l in &new_labels {
            let b = map.get(l);
            let mut all = names(&after, l);
            if let Some(b) = b {
                all.extend(names(&before, b));
            }
            for n in all {
                pairs.push((
                    show(l, &n),
                    b.map(|b| (b.clone(), n.clone())),
                    Some((l.clone(), n)),
                ));
            }
        }
        let targets: BTreeSet<&String> = map.values().collect();
        for b in base_labels.iter().filter(|b| !targets.contains(b)) {
            for n in names(&before, b) {
                pairs.push((show(b, &n), Some((b.clone(), n)), None));
            }
        }
        let mut d = Diff {
            compared: map
                .iter()
                .map(|(n, b)| {
                    if n == b {
                        n.clone()
                    } else {
                        format!("{n} against {b}")
                    }
                })
                .collect(),
            base_runs: base.len(),
            new_runs: new.len(),
            ..Diff::default()
        };
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (trial, bk, ak) in pairs {
            let b = bk.and_then(|k| before.get(&k)).map(|o| Status::of(o));
            let a = ak.and_then(|k| after.get(&k)).map(|o| Status::of(o));
            let change = Change {
                trial,
                before: b.clone(),
                after: a.clone(),
            };
            match (&b, &a) {
                (_, Some(Status::Failed(m))) if !b.as_ref().is_some_and(Status::failed) => {
                    groups
                        .entry(symptom::of(m))
                        .or_default()
                        .push(change.trial.clone());
                }
                (Some(Status::Failed(_) | Status::Flaky { .. }), Some(Status::Passed)) => {
                    d.fixed.push(change.clone())
                }
                (b, Some(Status::Flaky { .. })) if !matches!(b, Some(Status::Flaky { .. })) => {
                    d.new_flakes.push(change.clone())
                }
                (
                    Some(Status::Passed | Status::Failed(_) | Status::Flaky { .. }),
                    Some(Status::Skipped),
                ) => d.not_run += 1,
                _ => {}
            }
            match (&b, &a) {
                (None, Some(_)) => d.appeared.push(change),
                (Some(_), None) => d.disappeared.push(change),
                _ => {}
            }
        }
        d.new_failures = groups
            .into_iter()
            .map(|(symptom, trials)| SymptomGroup { symptom, trials })
            .collect();
        d.new_failures.sort_by(|x, y| {
            y.trials
                .len()
                .cmp(&x.trials.len())
                .then(x.symptom.cmp(&y.symptom))
        });
        d
    }

    /// The report, in Markdown (read as plain text in a terminal, rendered in a job summary).
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "## Changes: {} new run(s) against {} baseline run(s) ({})\n\n",
            self.new_runs,
            self.base_runs,
            if self.compared.is_empty() {
                "no kernel in common".to_owned()
            } else {
                self.compared.join(", ")
            }
        );
        let nothing = self.new_failures.is_empty()
            && self.fixed.is_empty()
            && self.new_flakes.is_empty()
            && self.appeared.is_empty()
            && self.disappeared.is_empty();
        if nothing {
            s.push_str("No changes: every trial has the outcome it had in the baseline.\n");
        }
        if !self.new_failures.is_empty() {
            let n: usize = self.new_failures.iter().map(|g| g.trials.len()).sum();
            s.push_str(&format!(
                "### New failures: {n} trial(s), {} symptom(s)\n\n",
                self.new_failures.len()
            ));
            for g in &self.new_failures {
                // The group is told by the whole line; a long one is shown by its start.
                let shown: String = if g.symptom.chars().count() > SHOWN {
                    g.symptom.chars().take(SHOWN).chain(['…']).collect()
                } else {
                    g.symptom.clone()
                };
                s.push_str(&format!(
                    "- `{}` ({}): {}\n",
                    shown.replace('`', "'"),
                    g.trials.len(),
                    g.trials.join(", ")
                ));
            }
            s.push('\n');
        }
        let list = |s: &mut String, title: &str, changes: &[Change]| {
            if changes.is_empty() {
                return;
            }
            s.push_str(&format!("### {title}: {}\n\n", changes.len()));
            for c in changes {
                let word = |st: &Option<Status>| st.as_ref().map_or("absent".into(), Status::word);
                s.push_str(&format!(
                    "- {}: {} → {}\n",
                    c.trial,
                    word(&c.before),
                    word(&c.after)
                ));
            }
            s.push('\n');
        };
        list(&mut s, "Fixed", &self.fixed);
        list(&mut s, "New flakes", &self.new_flakes);
        list(&mut s, "Appeared", &self.appeared);
        list(&mut s, "Disappeared", &self.disappeared);
        if self.not_run > 0 {
            s.push_str(&format!(
                "{} trial(s) judged in the baseline were ignored in the new runs (not compared).\n",
                self.not_run
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness::model::{FailCause, Origin, ScenarioVerdict};
    use std::path::Path;

    fn data(name: &str) -> KernelRun {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("test_data/report")
            .join(name);
        harness::artifacts::read_results(&dir).unwrap()
    }

    fn run(label: &str, verdicts: &[(&str, Verdict)]) -> KernelRun {
        let mut r = data("baseline-6.12");
        r.kernel.label = label.into();
        r.verdicts = verdicts
            .iter()
            .map(|(n, v)| ScenarioVerdict::new(*n, Origin::Scenario, v.clone()))
            .collect();
        r
    }

    fn fail(m: &str) -> Verdict {
        Verdict::fail(FailCause::Guest, m)
    }

    /// The done-when of #25: the clean 6.12 run of a `mutants` batch against the run of one
    /// of its mutants (copy-long, which WARNs in user_events_ioctl) lists exactly the
    /// mutant's failures, those the clean run does not have, grouped by symptom.
    #[test]
    fn a_mutant_against_its_clean_run_lists_exactly_its_failures() {
        let base = data("baseline-6.12");
        let new = data("mutant-copy-long");
        let d = Diff::new(std::slice::from_ref(&base), std::slice::from_ref(&new));
        // What the mutant fails that the clean run does not, computed from the files.
        let base_fails: BTreeSet<&str> = base
            .verdicts
            .iter()
            .filter(|v| v.verdict.is_fail())
            .map(|v| v.name.as_str())
            .collect();
        let expected: BTreeSet<&str> = new
            .verdicts
            .iter()
            .filter(|v| v.verdict.is_fail() && !base_fails.contains(v.name.as_str()))
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(expected.len(), 16);
        let listed: Vec<&str> = d
            .new_failures
            .iter()
            .flat_map(|g| g.trials.iter().map(String::as_str))
            .collect();
        assert_eq!(listed.len(), expected.len(), "each trial once: {listed:?}");
        assert_eq!(listed.iter().copied().collect::<BTreeSet<_>>(), expected);
        // By symptom: the kselftest calls that register fail alike; the splat is one line.
        let group = |needle: &str| {
            d.new_failures
                .iter()
                .find(|g| g.symptom.contains(needle))
                .unwrap_or_else(|| panic!("no symptom with {needle}: {:#?}", d.new_failures))
        };
        assert_eq!(
            group("WARNING:").symptom,
            "WARNING: CPU: N PID: N at include/linux/uaccess.h:N user_events_ioctl+N/N"
        );
        assert_eq!(
            group("WARNING:").trials,
            ["basic::private_anon_enable_disable"]
        );
        assert!(
            d.new_failures.len() < expected.len(),
            "{:#?}",
            d.new_failures
        );
        assert_eq!(
            d.compared,
            ["6.12+trace_events_user.k-copy-long.2457.0 against 6.12"]
        );
        assert!(d.fixed.is_empty() && d.new_flakes.is_empty());
        assert!(d.appeared.is_empty() && d.disappeared.is_empty());
        assert!(d.regressed());
        let md = d.markdown();
        assert!(md.contains("### New failures: 16 trial(s)"), "{md}");
        // The clean run's own kselftest failures are not the mutant's: not listed.
        assert!(!md.contains("user.flags"), "{md}");
    }

    #[test]
    fn the_same_run_on_both_sides_is_no_change() {
        let base = data("mutant-copy-long");
        let d = Diff::new(std::slice::from_ref(&base), std::slice::from_ref(&base));
        assert!(!d.regressed());
        assert!(d.markdown().contains("No changes"), "{}", d.markdown());
    }

    #[test]
    fn one_bug_failing_many_trials_is_one_line() {
        let splat = |pid: u32, t: &str| {
            fail(&format!(
                "kernel console reported Bug:\n    [    {t}] BUG: kernel NULL pointer dereference, address: 0000000000000000\n    [    {t}] #PF: supervisor read access in kernel mode\nPID: {pid}"
            ))
        };
        let base = run(
            "6.12",
            &[
                ("a::x", Verdict::Pass),
                ("a::y", Verdict::Pass),
                ("a::z", Verdict::Pass),
            ],
        );
        let new = run(
            "6.12",
            &[
                ("a::x", splat(40, "2.300108")),
                ("a::y", splat(51, "3.1")),
                ("a::z", fail("got 1, want 2")),
            ],
        );
        let d = Diff::new(&[base], &[new]);
        assert_eq!(
            d.new_failures,
            [
                SymptomGroup {
                    symptom: "BUG: kernel NULL pointer dereference, address: N".into(),
                    trials: vec!["a::x".into(), "a::y".into()]
                },
                SymptomGroup {
                    symptom: "got N, want N".into(),
                    trials: vec!["a::z".into()]
                },
            ]
        );
    }

    #[test]
    fn fixes_flakes_and_trials_that_came_and_went() {
        let base = [
            run(
                "6.12",
                &[
                    ("fixed", fail("no")),
                    ("steady", Verdict::Pass),
                    ("flaky", Verdict::Pass),
                    ("gone", Verdict::Pass),
                    ("broken", fail("no")),
                ],
            ),
            run(
                "6.12",
                &[
                    ("fixed", fail("no")),
                    ("steady", Verdict::Pass),
                    ("flaky", Verdict::Pass),
                    ("gone", Verdict::Pass),
                    ("broken", fail("no")),
                ],
            ),
        ];
        let new = [
            run(
                "6.12",
                &[
                    ("fixed", Verdict::Pass),
                    ("steady", Verdict::Pass),
                    ("flaky", fail("slow")),
                    ("new", Verdict::Pass),
                    ("broken", fail("no")),
                ],
            ),
            run(
                "6.12",
                &[
                    ("fixed", Verdict::Pass),
                    ("steady", Verdict::Pass),
                    ("flaky", Verdict::Pass),
                    ("new", Verdict::Pass),
                    ("broken", fail("no")),
                ],
            ),
        ];
        let d = Diff::new(&base, &new);
        let names = |c: &[Change]| c.iter().map(|c| c.trial.clone()).collect::<Vec<_>>();
        assert_eq!(names(&d.fixed), ["fixed"]);
        assert_eq!(names(&d.new_flakes), ["flaky"]);
        assert_eq!(names(&d.appeared), ["new"]);
        assert_eq!(names(&d.disappeared), ["gone"]);
        // Still broken, flaky or not: nothing regressed.
        assert!(!d.regressed(), "{:#?}", d.new_failures);
        let md = d.markdown();
        assert!(
            md.contains("- flaky: passed → flaky (1 of 2 failed)"),
            "{md}"
        );
        assert!(!md.contains("steady") && !md.contains("broken"), "{md}");
    }

    /// One run where a trial failed and then passed on a retry: a new flake against a clean
    /// baseline, not a new failure; a trial that failed every attempt is.
    #[test]
    fn a_flake_within_one_run_is_a_new_flake_not_a_failure() {
        let within = Verdict::Flaky {
            failed_attempts: vec![harness::model::FailedAttempt {
                attempt: 1,
                failure: harness::model::Failure {
                    cause: harness::model::FailCause::Guest,
                    message: "slow".into(),
                },
                console_log: "run/console.log".into(),
            }],
            passed_on: 2,
        };
        let base = [run(
            "6.12",
            &[("retried", Verdict::Pass), ("broke", Verdict::Pass)],
        )];
        let new = [run("6.12", &[("retried", within), ("broke", fail("no"))])];
        let d = Diff::new(&base, &new);
        let names = |c: &[Change]| c.iter().map(|c| c.trial.clone()).collect::<Vec<_>>();
        assert_eq!(names(&d.new_flakes), ["retried"]);
        assert_eq!(d.new_failures.len(), 1);
        assert_eq!(d.new_failures[0].trials, ["broke"]);
        assert!(
            d.markdown()
                .contains("- retried: passed → flaky (1 of 2 failed)"),
            "{}",
            d.markdown()
        );
    }

    /// Kernels of the same label are compared with each other; the label is shown when more
    /// than one kernel is compared, and a kernel only one side has is there or gone.
    #[test]
    fn labels_match_first_then_the_one_left_on_each_side() {
        let base = [
            run("6.12", &[("t", Verdict::Pass)]),
            run("7.2", &[("t", Verdict::Pass)]),
        ];
        let new = [
            run("6.12", &[("t", fail("x"))]),
            run("7.2+patched", &[("t", Verdict::Pass)]),
        ];
        let d = Diff::new(&base, &new);
        assert_eq!(d.new_failures[0].trials, ["6.12::t"]);
        assert!(d.appeared.is_empty() && d.disappeared.is_empty());
        assert_eq!(d.compared, ["6.12", "7.2+patched against 7.2"]);
        let new = [
            run("6.12", &[("t", Verdict::Pass)]),
            run("6.1", &[("t", Verdict::Pass)]),
            run("7.3", &[("t", Verdict::Pass)]),
        ];
        let d = Diff::new(&base, &new);
        assert_eq!(d.appeared.len(), 2);
        assert_eq!(d.disappeared.len(), 1);
    }
}
