//! From what one boot produced (a [`VmReport`]) to one verdict per planned scenario. Every
//! planned scenario gets exactly one: a scenario the guest never reported is a failure that
//! says why, never a pass and never missing.
//!
//! Split by what is judged, because each has rules of its own: `planned` (one planned
//! record from its end record, or from its absence), `hang` (a record the guest runner found
//! stuck in the kernel, or blocked behind one), `guest` (other people's test
//! programs: libtest output and TAP), `kselftest` (the kernel tree's own selftests: builds
//! and KTAP), `health` (the boot itself). This module ties them together in the order the
//! verdicts are reported.

mod guest;
mod hang;
mod health;
mod kselftest;
mod planned;

#[cfg(test)]
mod guest_tests;
#[cfg(test)]
mod ignore_policy;
#[cfg(test)]
mod tests;

pub use kselftest::expand_kselftests;

use result_channel::Record;

use crate::console::Trouble;
use crate::model::{Expectation, FailCause, GuestProgram, ScenarioInfo, ScenarioVerdict, Verdict};
use crate::vm::VmReport;
use planned::Planned;

/// One verdict per planned scenario and upstream program (`programs`: their record names),
/// plus the health trial. An `ignored` stands only for a feature `expected` says the kernel
/// lacks; any other is a failure that says what was expected and what the probe saw.
pub fn verdicts(
    report: &VmReport,
    scenarios: &[ScenarioInfo],
    programs: &[String],
    expected: &Expectation,
) -> Vec<ScenarioVerdict> {
    verdicts_with_guest(report, scenarios, programs, &[], expected)
}

/// [`verdicts`], with other people's test programs run last (`guest::*` records: one per
/// libtest test, or one per program followed by one per result of its KTAP/TAP output).
pub fn verdicts_with_guest(
    report: &VmReport,
    scenarios: &[ScenarioInfo],
    programs: &[String],
    guest: &[GuestProgram],
    expected: &Expectation,
) -> Vec<ScenarioVerdict> {
    let planned = planned::records(scenarios, programs, guest);
    let planned_names: Vec<&str> = planned.iter().map(|p| p.name.as_ref()).collect();
    let mut out = if report.user_events {
        let mut out: Vec<ScenarioVerdict> = planned
            .iter()
            .map(|p| planned::judge(p, report, expected))
            .collect();
        guest::expand_ktap(&mut out, report, guest, expected);
        out
    } else {
        without_user_events(report, &planned)
    };
    out.push(health::health(report, &planned_names));
    out
}

/// A kernel without user_events: one cause, said once per trial in the same words, since no
/// scenario can run.
fn without_user_events(report: &VmReport, planned: &[Planned]) -> Vec<ScenarioVerdict> {
    let msg = format!(
        "this kernel ({}) has no user_events: tracefs has no user_events_data. \
                           Build it with CONFIG_USER_EVENTS=y (kernel-configs/user_events.config)",
        report.kernel_release.as_deref().unwrap_or("?")
    );
    planned
        .iter()
        .map(|p| {
            ScenarioVerdict::new(
                p.name.as_ref(),
                p.origin(),
                Verdict::fail(FailCause::NoUserEvents, msg.clone()),
            )
        })
        .collect()
}

/// Kernel trouble as a failure message says it: its kind, then its lines.
pub(super) fn trouble_text(t: &Trouble) -> String {
    format!(
        "kernel console reported {:?}:\n    {}",
        t.kind,
        t.excerpt.join("\n    ")
    )
}

/// What the program of record `name` printed, from its first end record (an upstream or
/// guest program's TAP/KTAP is parsed from it).
pub(super) fn record_output<'r>(report: &'r VmReport, name: &str) -> Option<&'r str> {
    report.records.iter().find_map(|r| match r {
        Record::End(end) if end.name == name => Some(end.output.as_str()),
        _ => None,
    })
}
