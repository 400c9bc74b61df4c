//! When an `ignored` stands: only for a feature the kernel list says the kernel lacks.

use result_channel::{Outcome, Record, RecordEnd};

use super::{expand_kselftests, verdicts};
use crate::model::{
    Expectation, FailCause, Failure, KselftestBinary, KselftestBuild, ScenarioInfo, Verdict,
};
use crate::vm::{VmEnd, VmReport};
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
        hang: None,
        blocked: None,
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
        fault_worker: false,
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
