//! The boot itself, reported as the `vm::health` trial beside the scenarios: what went wrong
//! that belongs to no planned record (no hello, garbage on the channel, kernel trouble
//! outside every scenario, a VM that did not end as it should).

use super::trouble_text;
use crate::model::{FailCause, Origin, ScenarioVerdict, Verdict, HEALTH};
use crate::vm::{VmEnd, VmReport};

/// The boot itself: the runner said hello, the channel carried only records, no kernel
/// trouble outside any scenario, and the VM ended the way it should.
pub(super) fn health(report: &VmReport, planned: &[&str]) -> ScenarioVerdict {
    let mut problems = Vec::new();
    if report.kernel_release.is_none() {
        problems
            .push("the guest runner never reported (no hello on the result channel)".to_owned());
    }
    match &report.end {
        VmEnd::Finished => {}
        VmEnd::KernelPanicked => problems.push("the kernel panicked".into()),
        VmEnd::ExitedEarly { status } => {
            problems.push(format!("QEMU exited before the guest was done ({status})"))
        }
        VmEnd::TimedOut { what } => problems.push(format!("timed out: {what}")),
    }
    for t in report
        .troubles
        .iter()
        // One beside others belongs to those scenarios (or was settled by their reruns).
        .filter(|t| t.beside.is_empty())
        .filter(|t| t.during.as_deref().is_none_or(|d| !planned.contains(&d)))
    {
        problems.push(trouble_text(t));
    }
    if !report.garbage.is_empty() {
        problems.push(format!(
            "{} unreadable record(s) on the result channel, first: {}",
            report.garbage.len(),
            report.garbage[0]
        ));
    }
    if !report.qemu_stderr.trim().is_empty() && report.end != VmEnd::Finished {
        problems.push(format!("QEMU said: {}", report.qemu_stderr.trim()));
    }
    ScenarioVerdict {
        name: HEALTH.to_owned(),
        origin: Origin::Vm,
        verdict: if problems.is_empty() {
            Verdict::Pass
        } else {
            Verdict::fail(FailCause::Boot, problems.join("\n"))
        },
        duration_us: Some(report.wall_ms * 1000),
        snapshots: vec![],
        notes: vec![],
    }
}
