//! From what one boot produced (a [`VmReport`]) to one verdict per planned scenario. Every
//! planned scenario gets exactly one: a scenario the guest never reported is a failure that
//! says why, never a pass and never missing.

use result_channel::{Outcome, Record, Snapshot};

use crate::console::{Trouble, TroubleKind};
use crate::vm::{VmEnd, VmReport};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "verdict", content = "message", rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail(String),
    Ignored(String),
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ScenarioVerdict {
    pub name: String,
    pub verdict: Verdict,
    pub duration_us: Option<u64>,
    pub snapshots: Vec<Snapshot>,
    pub notes: Vec<String>,
}

/// The host's own check of the boot itself, reported as a trial beside the scenarios.
pub const HEALTH: &str = "vm::health";

/// Families whose scenarios unmap or protect the enable word on purpose: the kernel's
/// "user_events: Fault for mm" warning is the expected outcome there, and trouble elsewhere.
fn expects_fault_warnings(scenario: &str) -> bool {
    scenario.starts_with("munmap::") || scenario.starts_with("stress::")
}

fn trouble_text(t: &Trouble) -> String {
    format!("kernel console reported {:?}:\n    {}", t.kind, t.excerpt.join("\n    "))
}

pub fn verdicts(report: &VmReport, planned: &[String]) -> Vec<ScenarioVerdict> {
    let how_vm_ended = match &report.end {
        VmEnd::Finished => "the VM finished".to_owned(),
        VmEnd::KernelPanicked => "the kernel panicked".to_owned(),
        VmEnd::ExitedEarly { status } => format!("QEMU exited early ({status})"),
        VmEnd::TimedOut { what } => format!("timed out: {what}"),
    };
    let panic_excerpt = report
        .troubles
        .iter()
        .find(|t| t.kind == TroubleKind::Panic || t.excerpt.iter().any(|l| l.contains("Kernel panic")))
        .map(|t| format!("\n    {}", t.excerpt.join("\n    ")))
        .unwrap_or_default();
    let mut out = Vec::new();
    for name in planned {
        let end = report.records.iter().find_map(|r| match r {
            Record::End { name: n, outcome, message, duration_us, snapshots, notes } if n == name => {
                Some((outcome, message, duration_us, snapshots, notes))
            }
            _ => None,
        });
        let troubles: Vec<&Trouble> = report
            .troubles
            .iter()
            .filter(|t| t.during.as_deref() == Some(name.as_str()))
            .filter(|t| !(t.kind == TroubleKind::UserEventsFault && expects_fault_warnings(name)))
            .collect();
        let v = match end {
            Some((outcome, message, duration_us, snapshots, notes)) => {
                let verdict = if let Some(t) = troubles.first() {
                    // The guest may have seen nothing wrong; the kernel did.
                    Verdict::Fail(format!("{}{}", trouble_text(t), guest_said(*outcome, message)))
                } else {
                    match outcome {
                        Outcome::Pass => Verdict::Pass,
                        Outcome::Fail => Verdict::Fail(message.clone()),
                        Outcome::Ignored => Verdict::Ignored(message.clone()),
                    }
                };
                ScenarioVerdict {
                    name: name.clone(),
                    verdict,
                    duration_us: Some(*duration_us),
                    snapshots: snapshots.clone(),
                    notes: notes.clone(),
                }
            }
            None => {
                let msg = if report.unfinished.as_deref() == Some(name.as_str()) {
                    let excerpt = troubles.first().map(|t| format!("\n{}", trouble_text(t))).unwrap_or(panic_excerpt.clone());
                    format!("not finished: {how_vm_ended} while running {name}{excerpt}")
                } else if report.kernel_release.is_none() {
                    format!("not run: the guest never started the runner ({how_vm_ended}){panic_excerpt}")
                } else {
                    let during = report.unfinished.as_deref().map(|u| format!(" while running {u}")).unwrap_or_default();
                    format!("not run: {how_vm_ended}{during} before this scenario started")
                };
                ScenarioVerdict { name: name.clone(), verdict: Verdict::Fail(msg), duration_us: None, snapshots: vec![], notes: vec![] }
            }
        };
        out.push(v);
    }
    out.push(health(report, planned));
    out
}

fn guest_said(outcome: Outcome, message: &str) -> String {
    match outcome {
        Outcome::Pass => "\n(the guest's own checks passed)".to_owned(),
        _ => format!("\n(the guest said: {outcome:?}: {message})"),
    }
}

/// The boot itself: the runner said hello, the channel carried only records, no kernel
/// trouble outside any scenario, and the VM ended the way it should.
fn health(report: &VmReport, planned: &[String]) -> ScenarioVerdict {
    let mut problems = Vec::new();
    if report.kernel_release.is_none() {
        problems.push("the guest runner never reported (no hello on the result channel)".to_owned());
    }
    match &report.end {
        VmEnd::Finished => {}
        VmEnd::KernelPanicked => problems.push("the kernel panicked".into()),
        VmEnd::ExitedEarly { status } => problems.push(format!("QEMU exited before the guest was done ({status})")),
        VmEnd::TimedOut { what } => problems.push(format!("timed out: {what}")),
    }
    for t in report.troubles.iter().filter(|t| t.during.as_ref().is_none_or(|d| !planned.contains(d))) {
        problems.push(trouble_text(t));
    }
    if !report.garbage.is_empty() {
        problems.push(format!("{} unreadable record(s) on the result channel, first: {}", report.garbage.len(), report.garbage[0]));
    }
    if !report.qemu_stderr.trim().is_empty() && report.end != VmEnd::Finished {
        problems.push(format!("QEMU said: {}", report.qemu_stderr.trim()));
    }
    ScenarioVerdict {
        name: HEALTH.to_owned(),
        verdict: if problems.is_empty() { Verdict::Pass } else { Verdict::Fail(problems.join("\n")) },
        duration_us: Some(report.wall_ms * 1000),
        snapshots: vec![],
        notes: vec![],
    }
}
