//! From what one boot produced (a [`VmReport`]) to one verdict per planned scenario. Every
//! planned scenario gets exactly one: a scenario the guest never reported is a failure that
//! says why, never a pass and never missing.

use result_channel::{Outcome, Record, Snapshot};

use crate::console::{Trouble, TroubleKind};
use crate::ktap::{self, KtapResult};
use crate::suite::KselftestBinary;
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
    if !report.user_events {
        // One cause, said once per trial in the same words: no scenario can run.
        let msg = format!("this kernel ({}) has no user_events: tracefs has no user_events_data. \
                           Build it with CONFIG_USER_EVENTS=y (kernel-configs/user_events.config)",
                          report.kernel_release.as_deref().unwrap_or("?"));
        for name in planned {
            out.push(ScenarioVerdict { name: name.clone(), verdict: Verdict::Fail(msg.clone()), duration_us: None, snapshots: vec![], notes: vec![] });
        }
        out.push(health(report, planned));
        return out;
    }
    for name in planned {
        let end = report.records.iter().find_map(|r| match r {
            Record::End { name: n, outcome, message, duration_us, snapshots, notes, .. } if n == name => {
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

/// The upstream selftests: `kselftest::P` keeps the program's own verdict (exit status, crash,
/// panic), with build failures and KTAP stream problems folded in; each KTAP result becomes
/// a verdict of its own, `kselftest::P::<test>`.
pub fn expand_kselftests(verdicts: &mut Vec<ScenarioVerdict>, report: &VmReport, programs: &[KselftestBinary], selected: &[String]) {
    for p in programs.iter().filter(|p| selected.contains(&p.name)) {
        let name = result_channel::kselftest_name(&p.name);
        let Some(i) = verdicts.iter().position(|v| v.name == name) else { continue };
        if let Some(err) = &p.build_error {
            verdicts[i].verdict = if p.path.is_none() && err.starts_with("this kernel's tree has no") {
                Verdict::Ignored(err.clone())
            } else {
                Verdict::Fail(format!("does not build for this kernel: {err}"))
            };
            continue;
        }
        let output = report.records.iter().find_map(|r| match r {
            Record::End { name: n, output, .. } if *n == name => Some(output.as_str()),
            _ => None,
        });
        let Some(output) = output else { continue };
        let ktap = ktap::parse(output);
        let problems = ktap.problems();
        if !problems.is_empty() {
            let extra = problems.join("; ");
            verdicts[i].verdict = match &verdicts[i].verdict {
                Verdict::Fail(m) => Verdict::Fail(format!("{m}; {extra}")),
                _ => Verdict::Fail(format!("the program's TAP output is incomplete: {extra}")),
            };
        }
        if let Some(t) = &ktap.totals {
            verdicts[i].notes.push(format!("totals: {t}"));
        }
        let sub = ktap.results.into_iter().map(|(desc, r)| ScenarioVerdict {
            name: format!("{name}::{desc}"),
            verdict: match r {
                KtapResult::Ok => Verdict::Pass,
                KtapResult::Skip(why) => Verdict::Ignored(format!("SKIP {why}")),
                KtapResult::NotOk(diag) => Verdict::Fail(if diag.is_empty() { "not ok".into() } else { diag }),
            },
            duration_us: None,
            snapshots: vec![],
            notes: vec![],
        });
        let at = i + 1;
        verdicts.splice(at..at, sub);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::Watch;

    fn report(records: Vec<Record>, console: &[(&str, Option<&str>)], end: VmEnd) -> VmReport {
        let mut w = Watch::new();
        for (l, during) in console {
            w.feed(l, *during);
        }
        let unfinished = records.iter().fold(None, |cur, r| match r {
            Record::Start { name } => Some(name.clone()),
            Record::End { .. } => None,
            _ => cur,
        });
        VmReport {
            kernel_release: Some("6.12.117".into()),
            user_events: true,
            guest_hello_ms: Some(1500),
            guest_done_ms: None,
            records,
            unfinished,
            troubles: w.found,
            garbage: vec![],
            end,
            wall_ms: 5000,
            qemu_stderr: String::new(),
            console_log: "console.log".into(),
        }
    }

    fn end(name: &str, outcome: Outcome, message: &str) -> Record {
        Record::End { name: name.into(), outcome, message: message.into(), duration_us: 10, snapshots: vec![], notes: vec![], output: String::new(), missing: None }
    }

    fn start(name: &str) -> Record {
        Record::Start { name: name.into() }
    }

    fn get<'a>(v: &'a [ScenarioVerdict], name: &str) -> &'a Verdict {
        &v.iter().find(|x| x.name == name).unwrap().verdict
    }

    #[test]
    fn every_planned_scenario_gets_exactly_one_verdict() {
        let planned: Vec<String> = ["a::x", "a::y", "a::z"].map(String::from).to_vec();
        let r = report(
            vec![start("a::x"), end("a::x", Outcome::Pass, ""), start("a::y")],
            &[("[    2.1] Kernel panic - not syncing: sysrq triggered crash", Some("a::y"))],
            VmEnd::KernelPanicked,
        );
        let v = verdicts(&r, &planned);
        assert_eq!(v.len(), 4, "three scenarios and the health trial");
        assert_eq!(get(&v, "a::x"), &Verdict::Pass);
        let Verdict::Fail(y) = get(&v, "a::y") else { panic!() };
        assert!(y.starts_with("not finished: the kernel panicked while running a::y") && y.contains("sysrq triggered crash"), "{y}");
        let Verdict::Fail(z) = get(&v, "a::z") else { panic!() };
        assert_eq!(z, "not run: the kernel panicked while running a::y before this scenario started");
        assert!(matches!(get(&v, HEALTH), Verdict::Fail(m) if m.contains("the kernel panicked")));
    }

    #[test]
    fn kernel_trouble_fails_a_scenario_the_guest_passed() {
        let planned = vec!["a::x".to_owned()];
        let r = report(
            vec![start("a::x"), end("a::x", Outcome::Pass, "")],
            &[
                ("[    3.0] WARNING: CPU: 1 PID: 57 at kernel/trace/trace_events_user.c:2690 user_events_ioctl+0x1/0x2", Some("a::x")),
                ("[    3.0] Call Trace:", Some("a::x")),
                ("[    3.0] ---[ end trace 0000000000000000 ]---", Some("a::x")),
            ],
            VmEnd::Finished,
        );
        let v = verdicts(&r, &planned);
        let Verdict::Fail(m) = get(&v, "a::x") else { panic!() };
        assert!(m.contains("Warning") && m.contains("trace_events_user.c:2690") && m.contains("Call Trace"), "{m}");
        assert!(m.contains("the guest's own checks passed"), "{m}");
    }

    #[test]
    fn fault_warnings_are_expected_only_in_the_munmap_family() {
        let line = "[ 3.7] user_events: Fault for mm: 0x(____ptrval____) @ 0x7f1ae5c43000 event: e";
        let planned: Vec<String> = ["munmap::a", "fork::b"].map(String::from).to_vec();
        let r = report(
            vec![start("munmap::a"), end("munmap::a", Outcome::Pass, ""), start("fork::b"), end("fork::b", Outcome::Pass, "")],
            &[(line, Some("munmap::a")), (line, Some("fork::b"))],
            VmEnd::Finished,
        );
        let v = verdicts(&r, &planned);
        assert_eq!(get(&v, "munmap::a"), &Verdict::Pass);
        assert!(matches!(get(&v, "fork::b"), Verdict::Fail(m) if m.contains("UserEventsFault")));
        assert_eq!(get(&v, HEALTH), &Verdict::Pass);
    }

    #[test]
    fn a_kernel_without_user_events_is_one_clear_message() {
        let planned: Vec<String> = ["a::x", "a::y"].map(String::from).to_vec();
        let mut r = report(vec![start("a::x"), end("a::x", Outcome::Fail, "cannot open user_events_data")], &[], VmEnd::Finished);
        r.user_events = false;
        let v = verdicts(&r, &planned);
        for n in &planned {
            assert!(matches!(get(&v, n), Verdict::Fail(m) if m.contains("has no user_events") && m.contains("CONFIG_USER_EVENTS=y")));
        }
    }

    #[test]
    fn ignored_keeps_its_reason_and_a_silent_guest_is_never_a_pass() {
        let planned: Vec<String> = ["a::x", "a::y"].map(String::from).to_vec();
        let r = report(vec![start("a::x"), end("a::x", Outcome::Ignored, "no PERSIST")], &[], VmEnd::ExitedEarly { status: "exit status: 0".into() });
        let v = verdicts(&r, &planned);
        assert_eq!(get(&v, "a::x"), &Verdict::Ignored("no PERSIST".into()));
        assert!(matches!(get(&v, "a::y"), Verdict::Fail(m) if m.starts_with("not run: QEMU exited early")));
        let mut silent = report(vec![], &[], VmEnd::TimedOut { what: "no report from the guest within 40.0 s".into() });
        silent.kernel_release = None;
        let v = verdicts(&silent, &planned);
        assert!(matches!(get(&v, "a::x"), Verdict::Fail(m) if m.starts_with("not run: the guest never started the runner (timed out")));
    }
}
