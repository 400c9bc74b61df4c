//! From what one boot produced (a [`VmReport`]) to one verdict per planned scenario. Every
//! planned scenario gets exactly one: a scenario the guest never reported is a failure that
//! says why, never a pass and never missing.

use result_channel::{Feature, Outcome, Record, RecordEnd};

use crate::console::{Trouble, TroubleKind};
use crate::ktap::{self, KtapResult};
use crate::libtest::{self, LibtestResult};
use crate::model::{
    Expectation, FailCause, GuestProgram, GuestTestStyle, KselftestBinary, KselftestBuild, Origin,
    ScenarioInfo, ScenarioVerdict, Verdict, HEALTH,
};
use crate::vm::{VmEnd, VmReport};

/// What the host knows of one planned record before the guest says anything.
struct Planned<'a> {
    name: std::borrow::Cow<'a, str>,
    /// The scenario's own declaration; None for an upstream or guest test program.
    scenario: Option<&'a ScenarioInfo>,
    /// The guest test program this record belongs to, and its libtest test if it is one.
    guest: Option<(&'a GuestProgram, Option<&'a str>)>,
}

impl Planned<'_> {
    fn origin(&self) -> Origin {
        if self.scenario.is_some() {
            Origin::Scenario
        } else if self.guest.is_some() {
            Origin::Guest
        } else {
            Origin::Upstream
        }
    }

    /// The kernel's "user_events: Fault for mm" warning is what this scenario provokes.
    fn expects_fault_warnings(&self) -> bool {
        self.scenario.is_some_and(|s| s.fault_warnings)
    }
}

fn trouble_text(t: &Trouble) -> String {
    format!(
        "kernel console reported {:?}:\n    {}",
        t.kind,
        t.excerpt.join("\n    ")
    )
}

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
    let planned: Vec<Planned> = scenarios
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
        .collect();
    let planned_names: Vec<&str> = planned.iter().map(|p| p.name.as_ref()).collect();
    let how_vm_ended = &report.end;
    let panic_excerpt = report
        .troubles
        .iter()
        .find(|t| {
            t.kind == TroubleKind::Panic || t.excerpt.iter().any(|l| l.contains("Kernel panic"))
        })
        .map(|t| format!("\n    {}", t.excerpt.join("\n    ")))
        .unwrap_or_default();
    // A plan that stops at its first failure skips what had not started: skipped, not lost.
    let stopped_at = report.records.iter().find_map(|r| match r {
        Record::Done {
            stopped_at: Some(s),
            ..
        } => Some(s.as_str()),
        _ => None,
    });
    let mut out = Vec::new();
    if !report.user_events {
        // One cause, said once per trial in the same words: no scenario can run.
        let msg = format!(
            "this kernel ({}) has no user_events: tracefs has no user_events_data. \
                           Build it with CONFIG_USER_EVENTS=y (kernel-configs/user_events.config)",
            report.kernel_release.as_deref().unwrap_or("?")
        );
        for p in &planned {
            out.push(ScenarioVerdict::new(
                p.name.as_ref(),
                p.origin(),
                Verdict::fail(FailCause::NoUserEvents, msg.clone()),
            ));
        }
        out.push(health(report, &planned_names));
        return out;
    }
    for p in &planned {
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
        let v = match end {
            Some(RecordEnd {
                outcome,
                message,
                duration_us,
                snapshots,
                notes,
                missing,
                output,
                symptom,
                ..
            }) => {
                let own = match (outcome, p.guest) {
                    (_, Some((program, test))) => {
                        judge_guest(program, test, *outcome, message, output)
                    }
                    (Outcome::Pass, None) => Verdict::Pass,
                    (Outcome::Fail, None) => Verdict::fail(FailCause::Guest, message.clone()),
                    (Outcome::Ignored, None) => judge_ignore(p, message, *missing, expected),
                };
                let verdict = if let Some(t) = troubles.first() {
                    // The guest may have seen nothing wrong; the kernel did.
                    let said = match &own {
                        Verdict::Fail(f) if p.guest.is_some() => format!(
                            "\n(the test itself: {})",
                            f.message.lines().next().unwrap_or("")
                        ),
                        Verdict::Ignored(m) if p.guest.is_some() => {
                            format!("\n(the test itself was ignored: {m})")
                        }
                        _ => guest_said(*outcome, message),
                    };
                    Verdict::fail(
                        FailCause::KernelTrouble(t.kind),
                        format!("{}{said}", trouble_text(t)),
                    )
                } else {
                    // Only the scenario's own verdict is the bug; a panic or a WARN is not.
                    // ... and only its symptom, as the scenario recognised it: any other failure
                    // of that scenario is a breakage the known bug must not hide.
                    match (own, expected.known_bug(name), symptom.as_deref()) {
                        (Verdict::Pass, Some(bug), _) => bug.passed(&expected.source),
                        (Verdict::Fail(f), Some(bug), Some(s)) if s == bug.name => {
                            bug.verdict(f.message)
                        }
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
                };
                ScenarioVerdict {
                    name: name.to_owned(),
                    origin: p.origin(),
                    verdict,
                    duration_us: Some(*duration_us),
                    snapshots: snapshots.clone(),
                    notes: notes.clone(),
                }
            }
            None if p.scenario.is_some() && stopped_at.is_some() => ScenarioVerdict::new(
                name,
                p.origin(),
                Verdict::Ignored(format!(
                    "not run: the run stopped at the first failure ({})",
                    stopped_at.unwrap_or_default()
                )),
            ),
            None => {
                let (cause, msg) = if report.unfinished.as_deref() == Some(name)
                    || report.running.iter().any(|r| r == name)
                {
                    let excerpt = troubles
                        .first()
                        .map(|t| format!("\n{}", trouble_text(t)))
                        .unwrap_or(panic_excerpt.clone());
                    (
                        FailCause::NotFinished(report.end.clone()),
                        format!("not finished: {how_vm_ended} while running {name}{excerpt}"),
                    )
                } else if report.kernel_release.is_none() {
                    (FailCause::NotRun, format!("not run: the guest never started the runner ({how_vm_ended}){panic_excerpt}"))
                } else {
                    let during = report
                        .unfinished
                        .as_deref()
                        .map(|u| format!(" while running {u}"))
                        .unwrap_or_default();
                    (
                        FailCause::NotRun,
                        format!("not run: {how_vm_ended}{during} before this scenario started"),
                    )
                };
                ScenarioVerdict::new(name, p.origin(), Verdict::fail(cause, msg))
            }
        };
        out.push(v);
    }
    expand_guest_ktap(&mut out, report, guest);
    out.push(health(report, &planned_names));
    out
}

/// The verdict of one guest test record from what its process did and said. The exit status
/// is the guest's; a libtest test's own result and message come from its output.
fn judge_guest(
    program: &GuestProgram,
    test: Option<&str>,
    outcome: Outcome,
    message: &str,
    output: &str,
) -> Verdict {
    let Some(test) = test else {
        return match outcome {
            Outcome::Pass => Verdict::Pass,
            _ => Verdict::fail(
                FailCause::Guest,
                format!("{message}{}", output_tail(output)),
            ),
        };
    };
    match (outcome, libtest::result_of(output, test)) {
        (Outcome::Pass, Some(LibtestResult::Ok)) => Verdict::Pass,
        (Outcome::Pass, Some(LibtestResult::Ignored(why))) => Verdict::Ignored(if why.is_empty() {
            "#[ignore]".to_owned()
        } else {
            why
        }),
        (_, Some(LibtestResult::Failed(text))) => Verdict::fail(
            FailCause::Guest,
            if text.trim().is_empty() {
                format!("failed ({message})")
            } else {
                text.trim().to_owned()
            },
        ),
        (Outcome::Pass, _) => Verdict::fail(
            FailCause::Guest,
            format!(
                "{} exited 0 but did not report test {test:?} (is it a libtest program? it \
                 listed this test){}",
                program.name,
                output_tail(output)
            ),
        ),
        (_, _) => Verdict::fail(
            FailCause::Guest,
            format!("{message}{}", output_tail(output)),
        ),
    }
}

/// The end of a program's output, for a failure message.
fn output_tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let from = lines.len().saturating_sub(20);
    format!(
        "\n  output (last lines):\n    {}",
        lines[from..].join("\n    ")
    )
}

/// A guest program that is not libtest: its KTAP/TAP results, if it printed any, become
/// `guest::P::<test>` verdicts after the program's own, whose verdict also carries what is
/// wrong with the stream (missing plan, fewer results, bail-out). Without TAP the exit status
/// alone is the verdict. A SKIP is the author's own: reported `ignored` with its reason.
fn expand_guest_ktap(
    verdicts: &mut Vec<ScenarioVerdict>,
    report: &VmReport,
    programs: &[GuestProgram],
) {
    for p in programs
        .iter()
        .filter(|p| p.style == GuestTestStyle::Program)
    {
        let name = result_channel::guest_test_name(&p.name, None);
        let Some(i) = verdicts.iter().position(|v| v.name == name) else {
            continue;
        };
        let Some(output) = record_output(report, &name) else {
            continue;
        };
        let tap = ktap::parse(output);
        if tap.plan.is_none() && tap.results.is_empty() {
            continue;
        }
        let problems = tap.problems();
        if !problems.is_empty() {
            let extra = problems.join("; ");
            verdicts[i].verdict = match &verdicts[i].verdict {
                Verdict::Fail(f) => Verdict::Fail(f.clone().followed_by(&format!("\n{extra}"))),
                _ => Verdict::fail(
                    FailCause::IncompleteTap,
                    format!("the program's TAP output is incomplete: {extra}"),
                ),
            };
        }
        let sub = tap.results.into_iter().map(|(desc, r)| {
            ScenarioVerdict::new(
                result_channel::guest_test_name(&p.name, Some(&desc)),
                Origin::Guest,
                match r {
                    KtapResult::Ok => Verdict::Pass,
                    KtapResult::Skip(why) => Verdict::Ignored(format!("SKIP {why}")),
                    KtapResult::NotOk(diag) => Verdict::fail(
                        FailCause::Guest,
                        if diag.is_empty() {
                            "not ok".into()
                        } else {
                            diag
                        },
                    ),
                },
            )
        });
        let at = i + 1;
        verdicts.splice(at..at, sub);
    }
}

fn record_output<'r>(report: &'r VmReport, name: &str) -> Option<&'r str> {
    report.records.iter().find_map(|r| match r {
        Record::End(RecordEnd {
            name: n, output, ..
        }) if n == name => Some(output.as_str()),
        _ => None,
    })
}

/// The guest reported `ignored`: it stands only where the host expected the kernel to lack
/// the feature the probe found missing.
fn judge_ignore(
    p: &Planned,
    found: &str,
    missing: Option<result_channel::Feature>,
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

/// The upstream selftests: `kselftest::P` keeps the program's own verdict (exit status, crash,
/// panic), with build failures and KTAP stream problems folded in; each KTAP result becomes
/// a verdict of its own, `kselftest::P::<test>`.
pub fn expand_kselftests(
    verdicts: &mut Vec<ScenarioVerdict>,
    report: &VmReport,
    programs: &[KselftestBinary],
    selected: &[String],
    expected: &Expectation,
) {
    for p in programs.iter().filter(|p| selected.contains(&p.name)) {
        let name = result_channel::kselftest_name(&p.name);
        let verdict = match &p.build {
            KselftestBuild::Built { .. } => None,
            KselftestBuild::NotInTree => Some(Verdict::Ignored(format!(
                "this kernel's tree has no tools/testing/selftests/user_events/{}.c",
                p.name
            ))),
            // The upstream programs are written against the remote-write ABI (6.4+, its
            // uapi header): on a kernel expected to lack it, a build failure is that absence,
            // not a defect. Anywhere else it fails.
            KselftestBuild::Failed { message } if !expected.has(Feature::RemoteWrite) => {
                Some(Verdict::Ignored(format!(
                    "does not build: the program needs the remote-write ABI, which {} does not list ({})",
                    expected.source,
                    message
                        .lines()
                        .find(|l| l.contains("error:"))
                        .or(message.lines().next())
                        .unwrap_or_default()
                        .trim()
                )))
            }
            KselftestBuild::Failed { message } => Some(Verdict::fail(
                FailCause::BuildFailed,
                format!("does not build for this kernel: {message}"),
            )),
        };
        if let Some(verdict) = verdict {
            // Never built, so never planned: its verdict comes from the build alone.
            verdicts.retain(|v| v.name != name);
            let at = verdicts
                .iter()
                .position(|v| v.name == HEALTH)
                .unwrap_or(verdicts.len());
            verdicts.insert(at, ScenarioVerdict::new(name, Origin::Upstream, verdict));
            continue;
        }
        let Some(i) = verdicts.iter().position(|v| v.name == name) else {
            continue;
        };
        let output = report.records.iter().find_map(|r| match r {
            Record::End(RecordEnd {
                name: n, output, ..
            }) if *n == name => Some(output.as_str()),
            _ => None,
        });
        let Some(output) = output else { continue };
        let ktap = ktap::parse(output);
        let problems = ktap.problems();
        if !problems.is_empty() {
            let extra = problems.join("; ");
            verdicts[i].verdict = match &verdicts[i].verdict {
                Verdict::Fail(f) => Verdict::Fail(f.clone().followed_by(&format!("; {extra}"))),
                _ => Verdict::fail(
                    FailCause::IncompleteTap,
                    format!("the program's TAP output is incomplete: {extra}"),
                ),
            };
        }
        if let Some(t) = &ktap.totals {
            verdicts[i].notes.push(format!("totals: {t}"));
        }
        let sub = ktap.results.into_iter().map(|(desc, r)| {
            let trial = format!("{name}::{desc}");
            let bug = expected.known_bug(&trial);
            ScenarioVerdict::new(
                trial.clone(),
                Origin::Upstream,
                match (r, bug) {
                    (KtapResult::Ok, None) => Verdict::Pass,
                    (KtapResult::Ok, Some(bug)) => bug.passed(&expected.source),
                    (KtapResult::NotOk(diag), Some(bug)) => bug.verdict(diag),
                    // Upstream skips when it is not root or tracefs is missing: never so here.
                    (KtapResult::Skip(why), _) => Verdict::fail(
                        FailCause::UnexpectedSkip,
                        format!("the upstream test skipped itself: SKIP {why}"),
                    ),
                    (KtapResult::NotOk(diag), None) => Verdict::fail(
                        FailCause::Guest,
                        if diag.is_empty() {
                            "not ok".into()
                        } else {
                            diag
                        },
                    ),
                },
            )
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
fn health(report: &VmReport, planned: &[&str]) -> ScenarioVerdict {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::Watch;
    use crate::model::Failure;
    use result_channel::Feature;

    fn report(records: Vec<Record>, console: &[(&str, Option<&str>)], end: VmEnd) -> VmReport {
        let mut w = Watch::new();
        for (l, during) in console {
            w.feed(l, *during);
        }
        w.settle();
        let unfinished = records.iter().fold(None, |cur, r| match r {
            Record::Start { name } => Some(name.clone()),
            Record::End(_) => None,
            _ => cur,
        });
        VmReport {
            kernel_release: Some("6.12.117".into()),
            user_events: true,
            guest_hello_ms: Some(1500),
            guest_done_ms: None,
            hello_wall_ms: None,
            records,
            unfinished,
            running: vec![],
            troubles: w.found,
            garbage: vec![],
            end,
            wall_ms: 5000,
            qemu_stderr: String::new(),
            console_log: "console.log".into(),
        }
    }

    fn end(name: &str, outcome: Outcome, message: &str) -> Record {
        Record::End(RecordEnd {
            name: name.into(),
            outcome,
            message: message.into(),
            duration_us: 10,
            snapshots: vec![],
            notes: vec![],
            output: String::new(),
            missing: None,
            symptom: None,
        })
    }

    fn info(name: &str) -> ScenarioInfo {
        let family = name.split("::").next().unwrap().to_owned();
        ScenarioInfo {
            name: name.into(),
            family,
            about: String::new(),
            optional: false,
            fault_warnings: false,
            alone: false,
            requires: vec![],
        }
    }

    fn plan(names: &[&str]) -> Vec<ScenarioInfo> {
        names.iter().map(|n| info(n)).collect()
    }

    fn all_features() -> Expectation {
        Expectation {
            features: result_channel::Feature::ALL.into_iter().collect(),
            source: "the test's list".into(),
            known_bugs: vec![],
        }
    }

    fn verdicts(r: &VmReport, planned: &[ScenarioInfo]) -> Vec<ScenarioVerdict> {
        super::verdicts(r, planned, &[], &all_features())
    }

    fn start(name: &str) -> Record {
        Record::Start { name: name.into() }
    }

    fn get<'a>(v: &'a [ScenarioVerdict], name: &str) -> &'a Verdict {
        &v.iter().find(|x| x.name == name).unwrap().verdict
    }

    #[test]
    fn every_planned_scenario_gets_exactly_one_verdict() {
        let planned = plan(&["a::x", "a::y", "a::z"]);
        let r = report(
            vec![start("a::x"), end("a::x", Outcome::Pass, ""), start("a::y")],
            &[(
                "[    2.1] Kernel panic - not syncing: sysrq triggered crash",
                Some("a::y"),
            )],
            VmEnd::KernelPanicked,
        );
        let v = verdicts(&r, &planned);
        assert_eq!(v.len(), 4, "three scenarios and the health trial");
        assert_eq!(get(&v, "a::x"), &Verdict::Pass);
        let Verdict::Fail(Failure {
            cause: FailCause::NotFinished(VmEnd::KernelPanicked),
            message: y,
        }) = get(&v, "a::y")
        else {
            panic!()
        };
        // The words people read stay as they were.
        assert_eq!(
            y.lines().next(),
            Some("not finished: the kernel panicked while running a::y")
        );
        assert!(y.contains("sysrq triggered crash"), "{y}");
        let Verdict::Fail(Failure {
            cause: FailCause::NotRun,
            message: z,
        }) = get(&v, "a::z")
        else {
            panic!()
        };
        assert_eq!(
            z,
            "not run: the kernel panicked while running a::y before this scenario started"
        );
        assert!(
            matches!(get(&v, HEALTH), Verdict::Fail(Failure { cause: FailCause::Boot, message: m }) if m.contains("the kernel panicked"))
        );
    }

    /// A listed bug's scenario failing is the bug, not a failure; passing fails the run and
    /// asks to update the list; a kernel WARN stays a failure even there.
    #[test]
    fn known_bugs_are_their_own_outcome_and_must_stay_true() {
        let planned = plan(&["t::bug", "t::other", "t::fixed", "t::warned"]);
        let with_symptom = |name: &str, bug: &str, message: &str| {
            let mut r = end(name, Outcome::Fail, message);
            if let Record::End(RecordEnd { symptom, .. }) = &mut r {
                *symptom = Some(bug.into());
            }
            r
        };
        let r = report(
            vec![
                start("t::bug"),
                with_symptom("t::bug", "bug-bug", "format line char s[3344090]"),
                // The listed bug's scenario, broken another way: never excused.
                start("t::other"),
                end("t::other", Outcome::Fail, "offset:9 where 8 is right"),
                start("t::fixed"),
                end("t::fixed", Outcome::Pass, ""),
                start("t::warned"),
                end("t::warned", Outcome::Fail, "x"),
            ],
            &[
                ("[    3.0] WARNING: CPU: 1 PID: 57 at kernel/trace/trace_events_user.c:2690 f+0x1/0x2", Some("t::warned")),
                ("[    3.0] ---[ end trace 0000000000000000 ]---", Some("t::warned")),
            ],
            VmEnd::Finished,
        );
        let mut e = all_features();
        e.known_bugs = ["bug", "other", "fixed", "warned"]
            .iter()
            .map(|n| crate::model::KnownBug {
                name: format!("{n}-bug"),
                scenario: format!("t::{n}"),
                cause: "len never set".into(),
            })
            .collect();
        let v = super::verdicts(&r, &planned, &[], &e);
        let bug = get(&v, "t::bug");
        assert!(
            matches!(bug, Verdict::KnownBug { bug, failure, .. } if bug == "bug-bug" && failure.contains("3344090")),
            "{bug:?}"
        );
        assert_eq!(
            bug.known_bug_line().unwrap(),
            "known kernel bug: bug-bug (len never set)"
        );
        assert!(!bug.is_fail());
        assert!(
            matches!(get(&v, "t::other"), Verdict::Fail(Failure { cause: FailCause::Guest, message: m }) if m.contains("offset:9") && m.contains("not known kernel bug other-bug")),
            "{v:?}"
        );
        assert!(
            matches!(get(&v, "t::fixed"), Verdict::Fail(Failure { cause: FailCause::KnownBugPassed, message: m }) if m.starts_with("passes: is fixed-bug fixed in this kernel? update kernels.toml")),
            "{v:?}"
        );
        assert!(
            matches!(get(&v, "t::warned"), Verdict::Fail(Failure { cause: FailCause::KernelTrouble(TroubleKind::Warning), message: m }) if m.contains("trace_events_user.c:2690"))
        );
    }

    #[test]
    fn kernel_trouble_fails_a_scenario_the_guest_passed() {
        let planned = plan(&["a::x"]);
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
        let Verdict::Fail(Failure {
            cause: FailCause::KernelTrouble(TroubleKind::Warning),
            message: m,
        }) = get(&v, "a::x")
        else {
            panic!()
        };
        assert!(
            m.contains("Warning")
                && m.contains("trace_events_user.c:2690")
                && m.contains("Call Trace"),
            "{m}"
        );
        assert!(m.contains("the guest's own checks passed"), "{m}");
    }

    fn marker(what: &str, name: &str) -> String {
        format!("[ 1.0] {}{what} {name}", result_channel::KMSG_MARKER)
    }

    #[test]
    fn a_splat_beside_others_is_judged_by_the_reruns_alone() {
        let warn = "[ 2.0] WARNING: CPU: 1 PID: 77 at kernel/trace/trace_events_user.c:1 x";
        let lines = [
            marker("start", "a::x"),
            marker("start", "a::y"),
            warn.to_owned(),
            "[ 2.1] ---[ end trace 0000000000000000 ]---".to_owned(),
            marker("end", "a::x"),
            marker("end", "a::y"),
            // The runner ran both again, one at a time: only y splats again.
            marker("start", "a::x"),
            marker("end", "a::x"),
            marker("start", "a::y"),
            warn.to_owned(),
            "[ 2.1] ---[ end trace 0000000000000000 ]---".to_owned(),
            marker("end", "a::y"),
        ];
        let console: Vec<(&str, Option<&str>)> = lines.iter().map(|l| (l.as_str(), None)).collect();
        let r = report(
            vec![
                start("a::x"),
                start("a::y"),
                end("a::x", Outcome::Pass, ""),
                end("a::y", Outcome::Pass, ""),
                start("a::x"),
                end("a::x", Outcome::Pass, ""),
                start("a::y"),
                end("a::y", Outcome::Pass, ""),
            ],
            &console,
            VmEnd::Finished,
        );
        let v = verdicts(&r, &plan(&["a::x", "a::y"]));
        assert_eq!(get(&v, "a::x"), &Verdict::Pass);
        assert!(
            matches!(get(&v, "a::y"), Verdict::Fail(Failure { cause: FailCause::KernelTrouble(TroubleKind::Warning), message: m }) if m.contains("Warning"))
        );
        assert_eq!(get(&v, HEALTH), &Verdict::Pass, "{v:?}");
    }

    #[test]
    fn a_splat_beside_others_without_a_rerun_fails_every_candidate() {
        let warn = "[ 2.0] WARNING: CPU: 1 PID: 77 at kernel/trace/trace_events_user.c:1 x";
        let lines = [
            marker("start", "a::x"),
            marker("start", "a::y"),
            warn.to_owned(),
            marker("end", "a::x"),
            marker("end", "a::y"),
        ];
        let console: Vec<(&str, Option<&str>)> = lines.iter().map(|l| (l.as_str(), None)).collect();
        let r = report(
            vec![
                start("a::x"),
                start("a::y"),
                end("a::x", Outcome::Pass, ""),
                end("a::y", Outcome::Pass, ""),
            ],
            &console,
            VmEnd::Finished,
        );
        let v = verdicts(&r, &plan(&["a::x", "a::y", "a::z"]));
        assert!(get(&v, "a::x").is_fail() && get(&v, "a::y").is_fail());
        // Not run at all, with no stop: still a failure.
        assert!(get(&v, "a::z").is_fail());
    }

    #[test]
    fn a_splat_no_rerun_reproduces_fails_every_candidate_unless_its_pid_names_one() {
        let warn = |pid: u32| format!("[ 2.0] WARNING: CPU: 1 PID: {pid} at kernel/trace/x.c:1 x");
        let records = vec![
            start("a::x"),
            start("a::y"),
            end("a::x", Outcome::Pass, ""),
            end("a::y", Outcome::Pass, ""),
            start("a::x"),
            end("a::x", Outcome::Pass, ""),
            start("a::y"),
            end("a::y", Outcome::Pass, ""),
        ];
        for (pid, blamed) in [(77, &["a::x", "a::y"][..]), (41, &["a::y"][..])] {
            let lines = [
                marker("start", "a::x"),
                format!("[ 1.0] {}pid 40 a::x", result_channel::KMSG_MARKER),
                marker("start", "a::y"),
                format!("[ 1.0] {}pid 41 a::y", result_channel::KMSG_MARKER),
                warn(pid),
                marker("end", "a::x"),
                marker("end", "a::y"),
                // A WARN_ONCE: the reruns alone stay clean.
                marker("start", "a::x"),
                marker("end", "a::x"),
                marker("start", "a::y"),
                marker("end", "a::y"),
            ];
            let console: Vec<(&str, Option<&str>)> =
                lines.iter().map(|l| (l.as_str(), None)).collect();
            let r = report(records.clone(), &console, VmEnd::Finished);
            let v = verdicts(&r, &plan(&["a::x", "a::y"]));
            for name in ["a::x", "a::y"] {
                assert_eq!(
                    get(&v, name).is_fail(),
                    blamed.contains(&name),
                    "PID {pid}: {name}"
                );
            }
        }
    }

    #[test]
    fn a_stopped_run_skips_what_had_not_started() {
        let r = report(
            vec![
                start("a::x"),
                end("a::x", Outcome::Fail, "bit 3"),
                Record::Done {
                    uptime_ms: 9,
                    stopped_at: Some("a::x".into()),
                },
            ],
            &[],
            VmEnd::Finished,
        );
        let v = verdicts(&r, &plan(&["a::x", "a::y"]));
        assert!(get(&v, "a::x").is_fail());
        assert!(
            matches!(get(&v, "a::y"), Verdict::Ignored(m) if m.contains("stopped at the first failure (a::x)"))
        );
    }

    #[test]
    fn fault_warnings_are_expected_only_where_the_scenario_declares_them() {
        let line = "[ 3.7] user_events: Fault for mm: 0x(____ptrval____) @ 0x7f1ae5c43000 event: e";
        let mut planned = plan(&["munmap::a", "fork::b"]);
        planned[0].fault_warnings = true;
        let r = report(
            vec![
                start("munmap::a"),
                end("munmap::a", Outcome::Pass, ""),
                start("fork::b"),
                end("fork::b", Outcome::Pass, ""),
            ],
            &[(line, Some("munmap::a")), (line, Some("fork::b"))],
            VmEnd::Finished,
        );
        let v = verdicts(&r, &planned);
        assert_eq!(get(&v, "munmap::a"), &Verdict::Pass);
        assert!(
            matches!(get(&v, "fork::b"), Verdict::Fail(Failure { cause: FailCause::KernelTrouble(TroubleKind::UserEventsFault), message: m }) if m.contains("UserEventsFault"))
        );
        assert_eq!(get(&v, HEALTH), &Verdict::Pass);
    }

    #[test]
    fn a_kernel_without_user_events_is_one_clear_message() {
        let planned = plan(&["a::x", "a::y"]);
        let mut r = report(
            vec![
                start("a::x"),
                end("a::x", Outcome::Fail, "cannot open user_events_data"),
            ],
            &[],
            VmEnd::Finished,
        );
        r.user_events = false;
        let v = verdicts(&r, &planned);
        for n in &planned {
            assert!(
                matches!(get(&v, &n.name), Verdict::Fail(Failure { cause: FailCause::NoUserEvents, message: m }) if m.contains("has no user_events") && m.contains("CONFIG_USER_EVENTS=y"))
            );
        }
    }

    #[test]
    fn ignored_keeps_its_reason_and_a_silent_guest_is_never_a_pass() {
        let planned = plan(&["a::x", "a::y"]);
        let mut ignored = end(
            "a::x",
            Outcome::Ignored,
            "REG with the PERSIST flag: EINVAL",
        );
        if let Record::End(RecordEnd { missing, .. }) = &mut ignored {
            *missing = Some(Feature::RegPersist);
        }
        let r = report(
            vec![start("a::x"), ignored],
            &[],
            VmEnd::ExitedEarly {
                status: "exit status: 0".into(),
            },
        );
        let without = Expectation {
            features: [Feature::RemoteWrite].into_iter().collect(),
            source: "kernels.toml".into(),
            known_bugs: vec![],
        };
        let v = super::verdicts(&r, &planned, &[], &without);
        assert!(
            matches!(get(&v, "a::x"), Verdict::Ignored(m) if m.contains("does not list reg_persist") && m.contains("PERSIST flag: EINVAL")),
            "{v:?}"
        );
        assert!(
            matches!(get(&v, "a::y"), Verdict::Fail(Failure { cause: FailCause::NotRun, message: m }) if m.contains("QEMU exited early"))
        );
        let mut silent = report(
            vec![],
            &[],
            VmEnd::TimedOut {
                what: "no report from the guest within 40.0 s".into(),
            },
        );
        silent.kernel_release = None;
        let v = verdicts(&silent, &planned);
        assert!(
            matches!(get(&v, "a::x"), Verdict::Fail(Failure { cause: FailCause::NotRun, message: m }) if m.contains("the guest never started the runner (timed out"))
        );
    }
}

#[cfg(test)]
mod ignore_policy {
    use super::*;
    use crate::model::Failure;
    use result_channel::Feature;

    fn ignored(missing: Option<Feature>) -> VmReport {
        let end = Record::End(RecordEnd {
            name: "abi::multi_format".into(),
            outcome: Outcome::Ignored,
            message: "kernel rejects the MULTI_FORMAT flag with EINVAL".into(),
            duration_us: 10,
            snapshots: vec![],
            notes: vec![],
            output: String::new(),
            missing,
            symptom: None,
        });
        VmReport {
            kernel_release: Some("6.12.117".into()),
            user_events: true,
            guest_hello_ms: Some(1),
            guest_done_ms: Some(2),
            hello_wall_ms: None,
            records: vec![
                Record::Start {
                    name: "abi::multi_format".into(),
                },
                end,
            ],
            unfinished: None,
            running: vec![],
            troubles: vec![],
            garbage: vec![],
            end: VmEnd::Finished,
            wall_ms: 3,
            qemu_stderr: String::new(),
            console_log: "console.log".into(),
        }
    }

    fn scenario() -> Vec<ScenarioInfo> {
        vec![ScenarioInfo {
            name: "abi::multi_format".into(),
            family: "abi".into(),
            about: String::new(),
            optional: false,
            fault_warnings: false,
            alone: false,
            requires: vec![Feature::RemoteWrite, Feature::RegMultiFormat],
        }]
    }

    /// The old behaviour let a kernel that rejects every REG flag pass with two ignores.
    #[test]
    fn an_ignore_the_kernel_list_does_not_expect_fails_and_names_both_sides() {
        let expected = Expectation {
            features: [Feature::RemoteWrite, Feature::RegMultiFormat]
                .into_iter()
                .collect(),
            source: "kernel-configs/kernels.toml [kernel.\"6.12\"]".into(),
            known_bugs: vec![],
        };
        let v = verdicts(
            &ignored(Some(Feature::RegMultiFormat)),
            &scenario(),
            &[],
            &expected,
        );
        let Verdict::Fail(Failure {
            cause: FailCause::UnexpectedSkip,
            message: m,
        }) = &v[0].verdict
        else {
            panic!("{v:?}")
        };
        assert!(
            m.contains("reg_multi_format") && m.contains("kernels.toml") && m.contains("EINVAL"),
            "{m}"
        );
    }

    #[test]
    fn an_ignore_that_names_no_feature_fails() {
        let v = verdicts(&ignored(None), &scenario(), &[], &Expectation::default());
        assert!(
            matches!(&v[0].verdict, Verdict::Fail(Failure { cause: FailCause::UnexpectedSkip, message: m }) if m.contains("without naming the feature")),
            "{v:?}"
        );
    }

    /// 6.1's tree carries the selftests but not the uapi header they include: that absence
    /// is what the kernel list expects of a kernel without remote_write, and nothing else.
    #[test]
    fn an_upstream_build_failure_is_ignored_only_where_the_abi_is_expected_missing() {
        let programs = [KselftestBinary {
            name: "abi_test".into(),
            build: KselftestBuild::Failed {
                message: "gcc failed:\nabi_test.c:9:10: fatal error: linux/user_events.h".into(),
            },
            timeout: std::time::Duration::from_secs(30),
        }];
        let judge = |expected: &Expectation| {
            let mut v = vec![];
            let r = ignored(None);
            expand_kselftests(&mut v, &r, &programs, &["abi_test".into()], expected);
            v.remove(0).verdict
        };
        let without = Expectation {
            features: Default::default(),
            source: "kernel-configs/kernels.toml [kernel.\"6.1\"]".into(),
            known_bugs: vec![],
        };
        assert!(
            matches!(judge(&without), Verdict::Ignored(m) if m.contains("remote-write") && m.contains("6.1")),
        );
        let with = Expectation {
            features: Feature::ALL.into_iter().collect(),
            source: "kernel-configs/kernels.toml [kernel.\"6.12\"]".into(),
            known_bugs: vec![],
        };
        assert!(
            matches!(judge(&with), Verdict::Fail(Failure { cause: FailCause::BuildFailed, message: m }) if m.contains("does not build"))
        );
    }

    #[test]
    fn an_expected_ignore_stays_ignored() {
        let expected = Expectation {
            features: [Feature::RemoteWrite].into_iter().collect(),
            source: "6.8 tree".into(),
            known_bugs: vec![],
        };
        let v = verdicts(
            &ignored(Some(Feature::RegMultiFormat)),
            &scenario(),
            &[],
            &expected,
        );
        assert!(matches!(&v[0].verdict, Verdict::Ignored(_)), "{v:?}");
    }
}

#[cfg(test)]
mod guest_tests {
    use super::*;
    use crate::console::Watch;
    use crate::model::Failure;
    use std::time::Duration;

    fn program(name: &str, style: GuestTestStyle) -> GuestProgram {
        GuestProgram {
            name: name.into(),
            path: "/t/p".into(),
            args: vec![],
            env: vec![],
            timeout: Duration::from_secs(1),
            style,
        }
    }

    fn end(name: &str, outcome: Outcome, message: &str, output: &str) -> Record {
        Record::End(RecordEnd {
            name: name.into(),
            outcome,
            message: message.into(),
            duration_us: 10,
            snapshots: vec![],
            notes: vec![],
            output: output.into(),
            missing: None,
            symptom: None,
        })
    }

    fn report(records: Vec<Record>, console: &[(&str, &str)]) -> VmReport {
        let mut w = Watch::new();
        for (l, during) in console {
            w.feed(l, Some(during));
        }
        w.settle();
        VmReport {
            kernel_release: Some("6.12.117".into()),
            user_events: true,
            guest_hello_ms: Some(1),
            guest_done_ms: Some(2),
            hello_wall_ms: None,
            records,
            unfinished: None,
            running: vec![],
            troubles: w.found,
            garbage: vec![],
            end: VmEnd::Finished,
            wall_ms: 3,
            qemu_stderr: String::new(),
            console_log: "console.log".into(),
        }
    }

    fn get<'a>(v: &'a [ScenarioVerdict], name: &str) -> &'a Verdict {
        &v.iter()
            .find(|x| x.name == name)
            .unwrap_or_else(|| panic!("no {name} in {v:?}"))
            .verdict
    }

    #[test]
    fn each_libtest_test_is_judged_by_its_own_output_and_process() {
        let tests = ["ok", "fails", "ign", "crash", "warns", "never"].map(String::from);
        let p = program(
            "lib",
            GuestTestStyle::Libtest {
                tests: tests.to_vec(),
                json: false,
            },
        );
        let n = |t: &str| result_channel::guest_test_name("lib", Some(t));
        let r = report(
            vec![
                end(&n("ok"), Outcome::Pass, "", "test ok ... ok\n"),
                end(
                    &n("fails"),
                    Outcome::Fail,
                    "exited with status 101",
                    "test fails ... FAILED\n\nfailures:\n\n---- fails stdout ----\nthread 'fails' panicked at src/lib.rs:3:5:\nboom\n\nfailures:\n    fails\n",
                ),
                end(&n("ign"), Outcome::Pass, "", "test ign ... ignored, later\n"),
                end(
                    &n("crash"),
                    Outcome::Fail,
                    "crashed: killed by signal 11 (SIGSEGV)",
                    "\nrunning 1 test\n",
                ),
                end(&n("warns"), Outcome::Pass, "", "test warns ... ok\n"),
            ],
            &[(
                "[ 3.0] WARNING: CPU: 0 PID: 9 at kernel/trace/trace_events_user.c:2673 x",
                &n("warns"),
            )],
        );
        let v = verdicts_with_guest(&r, &[], &[], &[p], &Expectation::default());
        assert_eq!(get(&v, &n("ok")), &Verdict::Pass);
        assert!(
            matches!(get(&v, &n("fails")), Verdict::Fail(Failure { cause: FailCause::Guest, message: m }) if m.contains("boom") && m.starts_with("thread 'fails'"))
        );
        assert_eq!(get(&v, &n("ign")), &Verdict::Ignored("later".into()));
        assert!(
            matches!(get(&v, &n("crash")), Verdict::Fail(Failure { cause: FailCause::Guest, message: m }) if m.contains("SIGSEGV"))
        );
        assert!(
            matches!(get(&v, &n("warns")), Verdict::Fail(Failure { cause: FailCause::KernelTrouble(TroubleKind::Warning), message: m }) if m.contains("Warning") && m.contains("own checks passed"))
        );
        assert_eq!(get(&v, &n("never")).fail_cause(), Some(&FailCause::NotRun));
        assert!(v
            .iter()
            .all(|x| x.name == HEALTH || x.origin == Origin::Guest));
        // The kernel's trouble was inside a planned record: the boot itself is healthy.
        assert_eq!(get(&v, HEALTH), &Verdict::Pass);
    }

    #[test]
    fn a_libtest_program_that_exits_0_without_the_test_fails() {
        let p = program(
            "lib",
            GuestTestStyle::Libtest {
                tests: vec!["t".into()],
                json: true,
            },
        );
        let n = result_channel::guest_test_name("lib", Some("t"));
        let r = report(vec![end(&n, Outcome::Pass, "", "running 0 tests\n")], &[]);
        let v = verdicts_with_guest(&r, &[], &[], &[p], &Expectation::default());
        assert!(
            matches!(get(&v, &n), Verdict::Fail(Failure { cause: FailCause::Guest, message: m }) if m.contains("did not report test"))
        );
    }

    #[test]
    fn a_tap_program_gets_a_verdict_per_result_and_one_for_itself() {
        let p = program("tap", GuestTestStyle::Program);
        let plain = program("plain", GuestTestStyle::Program);
        let out = "TAP version 13\n1..3\nok 1 a\n# b: nope\nnot ok 2 b\n";
        let r = report(
            vec![
                end(
                    "guest::tap",
                    Outcome::Fail,
                    "crashed: killed by signal 6 (SIGABRT)",
                    out,
                ),
                end(
                    "guest::plain",
                    Outcome::Fail,
                    "exited with status 3",
                    "bad input\n",
                ),
            ],
            &[],
        );
        let v = verdicts_with_guest(&r, &[], &[], &[p, plain], &Expectation::default());
        assert!(
            matches!(get(&v, "guest::tap"), Verdict::Fail(Failure { cause: FailCause::Guest, message: m }) if m.contains("SIGABRT") && m.contains("the plan says 3 tests, the output has 2"))
        );
        assert_eq!(get(&v, "guest::tap::a"), &Verdict::Pass);
        assert!(
            matches!(get(&v, "guest::tap::b"), Verdict::Fail(Failure { cause: FailCause::Guest, message: m }) if m.contains("b: nope"))
        );
        assert!(
            matches!(get(&v, "guest::plain"), Verdict::Fail(Failure { cause: FailCause::Guest, message: m }) if m.contains("exited with status 3") && m.contains("bad input"))
        );
        assert!(!v.iter().any(|x| x.name.starts_with("guest::plain::")));
    }
}
