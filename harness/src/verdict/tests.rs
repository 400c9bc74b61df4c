//! The verdicts of planned scenarios: every one gets exactly one, and the kernel's trouble,
//! the known-bug list and a VM that died each decide as the rules say.

use result_channel::{Outcome, Record, RecordEnd};

use crate::console::Watch;
use crate::model::{
    Expectation, FailCause, Failure, ScenarioInfo, ScenarioVerdict, TroubleKind, Verdict, HEALTH,
};
use crate::vm::{VmEnd, VmReport};
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
        hang: None,
        blocked: None,
    })
}

fn info(name: &str) -> ScenarioInfo {
    crate::test_support::scenario(name)
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
        m.contains("Warning") && m.contains("trace_events_user.c:2690") && m.contains("Call Trace"),
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
        let console: Vec<(&str, Option<&str>)> = lines.iter().map(|l| (l.as_str(), None)).collect();
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

/// The guest runner found a::culprit's process stuck in the kernel and a::waiter's waiting on
/// a lock behind it, and never started a::never once user_events stopped answering. The
/// kernel's own hung-task report of the culprit's task comes later, while a::waiter runs: it
/// is the culprit's (the runner marked its pid), and joins its failure.
#[test]
fn a_hang_is_judged_where_it_happened_and_what_waited_behind_it_is_blocked() {
    let planned = plan(&["a::oopser", "a::culprit", "a::waiter", "a::never"]);
    let hang =
        |pid: u32, behind: Option<&str>, frames: &[&str]| Box::new(hang_of(pid, behind, frames));
    fn hang_of(pid: u32, behind: Option<&str>, frames: &[&str]) -> result_channel::Hang {
        result_channel::Hang {
            pid,
            comm: "ue-scenarios".into(),
            state_ms: 3100,
            spinning: false,
            wchan: "user_events_ioctl".into(),
            stack: frames.iter().map(|f| f.to_string()).collect(),
            waits_on_lock: behind.is_some(),
            blocked_behind: behind.map(Into::into),
            after_result: false,
            reported: None,
            same_place_as: None,
        }
    }
    let with = |name: &str, f: &dyn Fn(&mut RecordEnd)| {
        let mut r = end(name, Outcome::Fail, "hung in the kernel");
        if let Record::End(e) = &mut r {
            f(e);
        }
        r
    };
    let r = report(
        vec![
            start("a::oopser"),
            end("a::oopser", Outcome::Fail, "not seen within 2000 ms"),
            start("a::culprit"),
            with("a::culprit", &|e| {
                e.hang = Some(hang(
                    43,
                    None,
                    &["schedule_timeout+0x32/0xbc", "user_events_ioctl+0x444/0x6b0"],
                ))
            }),
            start("a::waiter"),
            with("a::waiter", &|e| {
                e.hang = Some(hang(
                    45,
                    Some("a::culprit"),
                    &[
                        "__mutex_lock.constprop.0+0x137/0x257",
                        "user_events_ioctl+0x5b/0x6b0",
                    ],
                ))
            }),
            with("a::never", &|e| {
                e.blocked = Some(Box::new(result_channel::Blocked {
                    culprit: "a::culprit".into(),
                    probe: "a canary process".into(),
                    probe_stack: vec!["__mutex_lock.constprop.0+0x137/0x257".into()],
                }))
            }),
        ],
        &[
            ("[    1.1] ue-runner: start a::oopser", None),
            ("[    1.2] BUG: kernel NULL pointer dereference, address: 0000000000000000", None),
            ("[    1.2] Oops: Oops: 0000 [#1] SMP", None),
            ("[    1.2] ---[ end trace 0000000000000000 ]---", None),
            ("[    1.8] ue-runner: end a::oopser", None),
            ("[    1.9] ue-runner: start a::culprit", None),
            ("[    1.9] ue-runner: pid 43 a::culprit", None),
            ("[    5.0] ue-runner: end a::culprit", None),
            ("[    5.0] ue-runner: start a::waiter", None),
            (
                "[    6.0] INFO: task ue-scenarios:43 blocked for more than 4 seconds.",
                None,
            ),
            ("[    6.0]       Not tainted 6.12.118 #1", None),
            (
                "[    6.0] \"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.",
                None,
            ),
            ("[    6.0] task:ue-scenarios    state:D stack:0     pid:43", None),
            ("[    6.0] Call Trace:", None),
            ("[    6.0]  <TASK>", None),
            ("[    6.0]  ? schedule_timeout+0x32/0xbc", None),
            ("[    6.0]  </TASK>", None),
            ("[    6.1] something else entirely", None),
            ("[    8.0] ue-runner: end a::waiter", None),
        ],
        VmEnd::Finished,
    );
    // The BUG with its Oops line (one splat, a::oopser's), then the hung-task report.
    assert_eq!(r.troubles.len(), 2, "{:?}", r.troubles);
    let report = &r.troubles[1];
    assert_eq!(report.kind, TroubleKind::HungTask);
    assert_eq!(report.during.as_deref(), Some("a::culprit"));
    assert_eq!(report.excerpt.len(), 8, "{:?}", report.excerpt);
    let v = verdicts(&r, &planned);
    let Verdict::Fail(Failure {
        cause: FailCause::Hung,
        message: m,
    }) = get(&v, "a::culprit")
    else {
        panic!("{v:?}")
    };
    assert!(m.starts_with("hung in the kernel: process 43 (ue-scenarios) slept uninterruptibly (state D) for 3.1 s in user_events_ioctl"), "{m}");
    assert!(m.contains("    schedule_timeout+0x32/0xbc"), "{m}");
    assert!(m.contains("the kernel's own hung-task report:"), "{m}");
    assert!(!m.contains("something else"), "{m}");
    assert!(
        m.contains("earlier in this boot the kernel reported Bug while a::oopser ran: BUG: kernel NULL pointer dereference"),
        "{m}"
    );
    let Verdict::Fail(Failure {
        cause: FailCause::Blocked { behind },
        message: m,
    }) = get(&v, "a::waiter")
    else {
        panic!("{v:?}")
    };
    assert_eq!(behind, "a::culprit");
    assert!(
        m.starts_with("blocked behind a::culprit: process 45"),
        "{m}"
    );
    assert!(m.contains("__mutex_lock"), "{m}");
    assert!(
        m.contains("a::culprit's stack (the cause), process 43 in user_events_ioctl:\n    schedule_timeout"),
        "{m}"
    );
    assert!(
        matches!(get(&v, "a::never"), Verdict::Fail(Failure { cause: FailCause::Blocked { behind }, message: m })
            if behind == "a::culprit" && m.starts_with("blocked behind a::culprit: not run") && m.contains("user_events_ioctl+0x444")),
        "{v:?}"
    );
    assert_eq!(get(&v, HEALTH), &Verdict::Pass);
}
