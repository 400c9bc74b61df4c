//! Other people's test programs: each libtest test and TAP result is judged on its own.

use result_channel::{Outcome, Record, RecordEnd};

use super::verdicts_with_guest;
use crate::console::Watch;
use crate::model::{
    Expectation, FailCause, Failure, GuestProgram, GuestTestStyle, Origin, ScenarioVerdict,
    TroubleKind, Verdict, HEALTH,
};
use crate::vm::{VmEnd, VmReport};
use std::time::Duration;

fn program(name: &str, style: GuestTestStyle) -> GuestProgram {
    GuestProgram {
        name: name.into(),
        path: "/t/p".into(),
        args: vec![],
        env: vec![],
        timeout: Duration::from_secs(1),
        style,
        fault_warnings: false,
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
        hang: None,
        blocked: None,
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

/// A KTAP result that kernels.toml names as a known bug's scenario is that bug when the
/// program names its symptom, a failure when it fails otherwise, and a failure that asks for
/// the list to be updated when it passes.
#[test]
fn a_tap_result_can_be_a_known_kernel_bug() {
    use crate::model::KnownBug;
    let p = program("compat32", GuestTestStyle::Program);
    let expected = Expectation {
        source: "kernels.toml".into(),
        known_bugs: ["reg", "other", "passes"]
            .map(|s| KnownBug {
                name: "no-compat-ioctl".into(),
                scenario: format!("guest::compat32::{s}"),
                cause: "no compat_ioctl".into(),
            })
            .to_vec(),
        ..Expectation::default()
    };
    let out = "TAP version 13\n1..4\nnot ok 1 - reg # symptom no-compat-ioctl: ENOTTY\n\
               not ok 2 - other # EINVAL\nok 3 - passes\nnot ok 4 - unlisted # symptom no-compat-ioctl: x\n";
    let r = report(vec![end("guest::compat32", Outcome::Pass, "", out)], &[]);
    let v = verdicts_with_guest(&r, &[], &[], &[p], &expected);
    assert!(
        matches!(get(&v, "guest::compat32::reg"), Verdict::KnownBug { bug, failure, .. } if bug == "no-compat-ioctl" && failure.contains("ENOTTY"))
    );
    assert!(
        matches!(get(&v, "guest::compat32::other"), Verdict::Fail(Failure { message: m, .. }) if m.contains("not its symptom"))
    );
    assert_eq!(
        get(&v, "guest::compat32::passes").fail_cause(),
        Some(&FailCause::KnownBugPassed)
    );
    assert!(
        matches!(get(&v, "guest::compat32::unlisted"), Verdict::Fail(Failure { message: m, .. }) if m.contains("does not list"))
    );
}
