//! The kernel tree's own user_events selftests (`kselftest::*`): a program that never built
//! gets its verdict from the build alone, and one that ran gets its KTAP results as verdicts
//! of their own. Apart because what decides here is the tree and its KTAP, not the guest
//! runner's checks.

use result_channel::Feature;

use super::record_output;

use crate::ktap::{self, KtapResult};
use crate::model::{
    Expectation, FailCause, KselftestBinary, KselftestBuild, Origin, ScenarioVerdict, Verdict,
    HEALTH,
};
use crate::vm::VmReport;

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
        let Some(output) = record_output(report, &name) else {
            continue;
        };
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
                    (KtapResult::NotOk(n), Some(bug)) => bug.verdict(n.diag),
                    // Upstream skips when it is not root or tracefs is missing: never so here.
                    (KtapResult::Skip(why), _) => Verdict::fail(
                        FailCause::UnexpectedSkip,
                        format!("the upstream test skipped itself: SKIP {why}"),
                    ),
                    (KtapResult::NotOk(n), None) => Verdict::fail(
                        FailCause::Guest,
                        if n.diag.is_empty() {
                            "not ok".into()
                        } else {
                            n.diag
                        },
                    ),
                },
            )
        });
        let at = i + 1;
        verdicts.splice(at..at, sub);
    }
}
