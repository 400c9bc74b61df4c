//! One planned record (a scenario, an upstream program, a guest test) and its verdict: from
//! its last end record, judged against the kernel's trouble and the known-bug list, or, with
//! no end record, a failure that says why it never ended or never started. Here because each
//! planned record is judged the same way whatever it is; only its own result differs.

use result_channel::{Feature, Outcome, Record, RecordEnd};

use super::{guest, hang, trouble_text};
use crate::console::{Trouble, TroubleKind};
use crate::model::{
    Expectation, FailCause, GuestProgram, GuestTestStyle, Origin, ScenarioInfo, ScenarioVerdict,
    Verdict,
};
use crate::vm::VmReport;

/// What the host knows of one planned record before the guest says anything.
pub(super) struct Planned<'a> {
    pub(super) name: std::borrow::Cow<'a, str>,
    /// The scenario's own declaration; None for an upstream or guest test program.
    pub(super) scenario: Option<&'a ScenarioInfo>,
    /// The guest test program this record belongs to, and its libtest test if it is one.
    pub(super) guest: Option<(&'a GuestProgram, Option<&'a str>)>,
}

impl Planned<'_> {
    pub(super) fn origin(&self) -> Origin {
        if self.scenario.is_some() {
            Origin::Scenario
        } else if self.guest.is_some() {
            Origin::Guest
        } else {
            Origin::Upstream
        }
    }

    /// The kernel's "user_events: Fault for mm" warning is what this scenario (or guest test
    /// program) provokes.
    fn expects_fault_warnings(&self) -> bool {
        self.scenario.is_some_and(|s| s.fault_warnings)
            || self.guest.is_some_and(|(g, _)| g.fault_warnings)
    }
}

/// Every record the plan holds, in the order the verdicts are reported: the scenarios, the
/// upstream programs (`programs`: their record names), then other people's test programs.
pub(super) fn records<'a>(
    scenarios: &'a [ScenarioInfo],
    programs: &'a [String],
    guest: &'a [GuestProgram],
) -> Vec<Planned<'a>> {
    let guest_records = guest.iter().flat_map(|g| match &g.style {
        GuestTestStyle::Libtest { tests, .. } => tests
            .iter()
            .map(|t| Planned {
                name: result_channel::guest_test_name(&g.name, Some(t)).into(),
                scenario: None,
                guest: Some((g, Some(t.as_str()))),
            })
            .collect::<Vec<_>>(),
        GuestTestStyle::Program => vec![Planned {
            name: result_channel::guest_test_name(&g.name, None).into(),
            scenario: None,
            guest: Some((g, None)),
        }],
    });
    scenarios
        .iter()
        .map(|s| Planned {
            name: s.name.as_str().into(),
            scenario: Some(s),
            guest: None,
        })
        .chain(programs.iter().map(|p| Planned {
            name: p.as_str().into(),
            scenario: None,
            guest: None,
        }))
        .chain(guest_records)
        .collect()
}

/// The verdict of one planned record on a kernel with user_events.
pub(super) fn judge(p: &Planned, report: &VmReport, expected: &Expectation) -> ScenarioVerdict {
    let name = p.name.as_ref();
    // The last End: a scenario run again alone (a splat beside others) is judged by that run.
    let end = report.records.iter().rev().find_map(|r| match r {
        Record::End(end) if end.name == name => Some(end),
        _ => None,
    });
    let troubles: Vec<&Trouble> = report
        .troubles
        .iter()
        .filter(|t| t.counts_against(name))
        .filter(|t| !(t.kind == TroubleKind::UserEventsFault && p.expects_fault_warnings()))
        .collect();
    match (end, stopped_at(report)) {
        (Some(end), _) => judge_ended(p, end, report, &troubles, expected),
        (None, Some(stop)) if p.scenario.is_some() => ScenarioVerdict::new(
            name,
            p.origin(),
            Verdict::Ignored(format!(
                "not run: the run stopped at the first failure ({stop})"
            )),
        ),
        (None, _) => ScenarioVerdict::new(name, p.origin(), never_ended(name, report, &troubles)),
    }
}

/// A plan that stops at its first failure skips what had not started: skipped, not lost.
/// The scenario it stopped at, if it did.
fn stopped_at(report: &VmReport) -> Option<&str> {
    report.records.iter().find_map(|r| match r {
        Record::Done {
            stopped_at: Some(s),
            ..
        } => Some(s.as_str()),
        _ => None,
    })
}

/// A record with an end: its own result, unless the kernel's trouble or the known-bug list
/// says otherwise.
fn judge_ended(
    p: &Planned,
    end: &RecordEnd,
    report: &VmReport,
    troubles: &[&Trouble],
    expected: &Expectation,
) -> ScenarioVerdict {
    let judged = |verdict| ScenarioVerdict {
        name: p.name.as_ref().to_owned(),
        origin: p.origin(),
        verdict,
        duration_us: Some(end.duration_us),
        snapshots: end.snapshots.clone(),
        notes: end.notes.clone(),
    };
    // Stuck in the kernel, or blocked behind a record that was: that is the verdict, the
    // kernel's own reports of it are added to its words.
    if let Some(verdict) = hang::judge(end, report, troubles) {
        return judged(verdict);
    }
    let own = match (end.outcome, p.guest) {
        (_, Some((program, test))) => {
            guest::judge(program, test, end.outcome, &end.message, &end.output)
        }
        (Outcome::Pass, None) => Verdict::Pass,
        (Outcome::Fail, None) => Verdict::fail(
            FailCause::Guest,
            format!(
                "{}{}",
                end.message,
                hang::after_the_kernel_died(report, troubles)
            ),
        ),
        (Outcome::Ignored, None) => judge_ignore(p, &end.message, end.missing, expected),
    };
    let verdict = match troubles.first() {
        Some(t) => with_kernel_trouble(p, t, &own, end),
        None => against_known_bugs(own, p.name.as_ref(), end.symptom.as_deref(), expected),
    };
    judged(verdict)
}

/// The guest may have seen nothing wrong; the kernel did: a failure for the first trouble,
/// saying what the check itself found.
fn with_kernel_trouble(p: &Planned, t: &Trouble, own: &Verdict, end: &RecordEnd) -> Verdict {
    let said = match own {
        Verdict::Fail(f) if p.guest.is_some() => format!(
            "\n(the test itself: {})",
            f.message.lines().next().unwrap_or("")
        ),
        Verdict::Ignored(m) if p.guest.is_some() => {
            format!("\n(the test itself was ignored: {m})")
        }
        _ => guest_said(end.outcome, &end.message),
    };
    Verdict::fail(
        FailCause::KernelTrouble(t.kind),
        format!("{}{said}", trouble_text(t)),
    )
}

/// Only the scenario's own verdict is the bug; a panic or a WARN is not. ... and only its
/// symptom, as the scenario recognised it: any other failure of that scenario is a breakage
/// the known bug must not hide.
pub(super) fn against_known_bugs(
    own: Verdict,
    name: &str,
    symptom: Option<&str>,
    expected: &Expectation,
) -> Verdict {
    match (own, expected.known_bug(name), symptom) {
        (Verdict::Pass, Some(bug), _) => bug.passed(&expected.source),
        (Verdict::Fail(f), Some(bug), Some(s)) if s == bug.name => bug.verdict(f.message),
        (Verdict::Fail(f), Some(bug), _) => Verdict::Fail(f.followed_by(&format!(
            "\n(not known kernel bug {}: this failure is not its symptom)",
            bug.name
        ))),
        (Verdict::Fail(f), None, Some(s)) => Verdict::Fail(f.followed_by(&format!(
            "\n(the symptom of known kernel bug {s}, which {} does not list for this kernel)",
            expected.source
        ))),
        (own, _, _) => own,
    }
}

/// A record without an end: it was running when the VM ended (not finished), or it never
/// started (not run); either way a failure that says how the VM ended.
fn never_ended(name: &str, report: &VmReport, troubles: &[&Trouble]) -> Verdict {
    let how_vm_ended = &report.end;
    let panic_excerpt = report
        .troubles
        .iter()
        .find(|t| {
            t.kind == TroubleKind::Panic || t.excerpt.iter().any(|l| l.contains("Kernel panic"))
        })
        .map(|t| format!("\n    {}", t.excerpt.join("\n    ")))
        .unwrap_or_default();
    if report.unfinished.as_deref() == Some(name) || report.running.iter().any(|r| r == name) {
        let excerpt = troubles
            .first()
            .map(|t| format!("\n{}", trouble_text(t)))
            .unwrap_or(panic_excerpt);
        Verdict::fail(
            FailCause::NotFinished(report.end.clone()),
            format!("not finished: {how_vm_ended} while running {name}{excerpt}"),
        )
    } else if report.kernel_release.is_none() {
        Verdict::fail(
            FailCause::NotRun,
            format!("not run: the guest never started the runner ({how_vm_ended}){panic_excerpt}"),
        )
    } else {
        let during = report
            .unfinished
            .as_deref()
            .map(|u| format!(" while running {u}"))
            .unwrap_or_default();
        Verdict::fail(
            FailCause::NotRun,
            format!("not run: {how_vm_ended}{during} before this scenario started"),
        )
    }
}

/// The guest reported `ignored`: it stands only where the host expected the kernel to lack
/// the feature the probe found missing.
fn judge_ignore(
    p: &Planned,
    found: &str,
    missing: Option<Feature>,
    expected: &Expectation,
) -> Verdict {
    match (p.scenario, missing) {
        (None, _) => Verdict::fail(
            FailCause::UnexpectedSkip,
            format!("the upstream program skipped itself ({found}); it runs as root with tracefs mounted, so a skip hides what it checks"),
        ),
        (Some(_), None) => Verdict::fail(
            FailCause::UnexpectedSkip,
            format!("ignored without naming the feature it lacks: {found}"),
        ),
        (Some(_), Some(f)) if expected.has(f) => Verdict::fail(
            FailCause::UnexpectedSkip,
            format!(
                "ignored for want of {f}, but {} says this kernel has {f}; the probe found: {found}",
                expected.source
            ),
        ),
        (Some(_), Some(f)) => Verdict::Ignored(format!("{found} (expected: {} does not list {f})", expected.source)),
    }
}

fn guest_said(outcome: Outcome, message: &str) -> String {
    match outcome {
        Outcome::Pass => "\n(the guest's own checks passed)".to_owned(),
        _ => format!("\n(the guest said: {outcome:?}: {message})"),
    }
}
