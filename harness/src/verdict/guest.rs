//! Other people's test programs (`--guest-test`, `--guest-crate`): a libtest test is judged
//! by its own output line and its process, a plain program by its exit status and, when it
//! prints TAP/KTAP, by each of its results. Apart from the scenarios because their results
//! come from output the host parses, not from the guest runner's own checks.

use result_channel::Outcome;

use super::{planned, record_output};

use crate::ktap::{self, KtapResult};
use crate::libtest::{self, LibtestResult};
use crate::model::{
    Expectation, FailCause, GuestProgram, GuestTestStyle, Origin, ScenarioVerdict, Verdict,
};
use crate::vm::VmReport;

/// The verdict of one guest test record from what its process did and said. The exit status
/// is the guest's; a libtest test's own result and message come from its output.
pub(super) fn judge(
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
pub(super) fn expand_ktap(
    verdicts: &mut Vec<ScenarioVerdict>,
    report: &VmReport,
    programs: &[GuestProgram],
    expected: &Expectation,
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
            let trial = result_channel::guest_test_name(&p.name, Some(&desc));
            let (own, symptom) = match r {
                KtapResult::Ok => (Verdict::Pass, None),
                KtapResult::Skip(why) => (Verdict::Ignored(format!("SKIP {why}")), None),
                KtapResult::NotOk(n) => (
                    Verdict::fail(
                        FailCause::Guest,
                        if n.diag.is_empty() {
                            "not ok".into()
                        } else {
                            n.diag
                        },
                    ),
                    n.symptom,
                ),
            };
            // A result the kernel list names as a known bug's is judged like a scenario's:
            // its symptom is the bug, its passing asks for the list to be updated.
            let verdict = planned::against_known_bugs(own, &trial, symptom.as_deref(), expected);
            ScenarioVerdict::new(trial, Origin::Guest, verdict)
        });
        let at = i + 1;
        verdicts.splice(at..at, sub);
    }
}
