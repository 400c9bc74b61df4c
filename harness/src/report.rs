//! Reports over finished runs: JUnit XML per kernel (for CI systems), and the matrix table
//! (scenario rows, kernel columns) as Markdown and JSON.

use std::collections::BTreeMap;

use crate::model::{Failure, KernelRun, Verdict};

fn xml_escape(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// One testsuite per kernel, one testcase per trial. A flaky trial is a passing testcase with
/// one `<flakyFailure>` per failed attempt, and a trial that failed every attempt a
/// `<failure>` followed by one `<rerunFailure>` per retry, as cargo-nextest (and Maven
/// Surefire before it) writes them: CI systems that know the elements show the flake, the
/// others see a pass.
pub fn junit(run: &KernelRun) -> String {
    let v = &run.verdicts;
    let failures = v
        .iter()
        .filter(|x| matches!(x.verdict, Verdict::Fail(_)))
        .count();
    let skipped = v
        .iter()
        .filter(|x| matches!(x.verdict, Verdict::Ignored(_) | Verdict::KnownBug { .. }))
        .count();
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{:.3}\">\n",
        xml_escape(&run.kernel.label),
        v.len(),
        run.report.wall_ms as f64 / 1000.0
    );
    for x in v {
        let (class, name) = x.name.rsplit_once("::").unwrap_or(("", &x.name));
        let time = x.duration_us.map_or(0.0, |u| u as f64 / 1e6);
        s.push_str(&format!(
            "  <testcase classname=\"{}::{}\" name=\"{}\" time=\"{time:.6}\"",
            xml_escape(&run.kernel.label),
            xml_escape(class),
            xml_escape(name)
        ));
        match &x.verdict {
            Verdict::Pass => s.push_str("/>\n"),
            // Skipped for CI systems (it does not fail the run), with the bug as a property so
            // it stays told apart from an ignore.
            Verdict::KnownBug { bug, failure, .. } => s.push_str(&format!(
                "><properties><property name=\"known_kernel_bug\" value=\"{}\"/></properties><skipped message=\"{}\">{}</skipped></testcase>\n",
                xml_escape(bug),
                xml_escape(&x.verdict.known_bug_line().unwrap_or_default()),
                xml_escape(failure)
            )),
            Verdict::Ignored(r) => s.push_str(&format!(
                "><skipped message=\"{}\"/></testcase>\n",
                xml_escape(r)
            )),
            Verdict::Fail(Failure { message: m, .. }) => {
                let first = m.lines().next().unwrap_or("");
                s.push_str(&format!(
                    "><failure message=\"{}\">{}</failure>{}</testcase>\n",
                    xml_escape(first),
                    xml_escape(m),
                    rerun_failures(run, &x.name)
                ))
            }
            Verdict::Flaky {
                failed_attempts, ..
            } => {
                s.push('>');
                for a in failed_attempts {
                    s.push_str(&failed_attempt(
                        "flakyFailure",
                        a.attempt,
                        &a.failure.message,
                        &a.console_log,
                    ));
                }
                s.push_str("</testcase>\n");
            }
        }
    }
    s.push_str("</testsuite>\n</testsuites>\n");
    s
}

/// A trial that failed every attempt: each retry's failure, as it judged it in its own VM
/// (the testcase's `<failure>` is the first attempt's).
fn rerun_failures(run: &KernelRun, name: &str) -> String {
    run.retries
        .iter()
        .filter_map(|r| {
            let attempt = r.run.as_deref()?;
            let v = attempt.verdicts.iter().find(|v| v.name == name)?;
            let Verdict::Fail(f) = &v.verdict else {
                return None;
            };
            Some(failed_attempt(
                "rerunFailure",
                r.attempt,
                &f.message,
                attempt.console_log_of(name),
            ))
        })
        .collect()
}

/// One failed attempt inside a testcase (`flakyFailure`, `rerunFailure`): its first line as
/// the message, the attempt as the type, all it said and its console log as its output.
fn failed_attempt(tag: &str, attempt: u32, message: &str, console_log: &std::path::Path) -> String {
    format!(
        "<{tag} message=\"{}\" type=\"attempt {attempt}\"><system-out>{}\n  console log: {}</system-out></{tag}>",
        xml_escape(message.lines().next().unwrap_or("")),
        xml_escape(message),
        xml_escape(&console_log.display().to_string())
    )
}

fn cell(v: &Verdict) -> String {
    match v {
        Verdict::Pass => "pass".into(),
        Verdict::Fail(f) => {
            let line = f.telling_line();
            let line = line.rsplit_once(".c:").map_or(line, |(_, rest)| rest);
            format!("FAIL ({})", line.chars().take(70).collect::<String>())
        }
        Verdict::Ignored(r) => format!("ignored ({})", r.chars().take(60).collect::<String>()),
        Verdict::KnownBug { bug, .. } => format!("KNOWN BUG {bug}"),
        Verdict::Flaky {
            failed_attempts,
            passed_on,
        } => format!(
            "FLAKY ({} failed, passed on attempt {passed_on})",
            failed_attempts.len()
        ),
    }
}

/// Scenario rows, kernel columns; a scenario a kernel did not run shows "-".
/// Each run's column heading: its kernel's label, and where two runs share a label (two runs
/// of one kernel), the run folder's name too, so that the columns can be told apart.
pub fn column_names(runs: &[KernelRun]) -> Vec<String> {
    runs.iter()
        .map(|r| {
            let label = r.kernel.label.as_str();
            if runs.iter().filter(|o| o.kernel.label == label).count() > 1 {
                let run = r.run_dir.file_name().map_or_else(
                    || r.run_dir.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                format!("{label} ({run})")
            } else {
                label.to_owned()
            }
        })
        .collect()
}

pub fn matrix_markdown(runs: &[KernelRun]) -> String {
    let labels = column_names(runs);
    let mut rows: BTreeMap<&str, Vec<Option<String>>> = BTreeMap::new();
    for (i, r) in runs.iter().enumerate() {
        for v in &r.verdicts {
            rows.entry(v.name.as_str())
                .or_insert_with(|| vec![None; runs.len()])[i] =
                Some(cell(&v.verdict).replace('|', "\\|"));
        }
    }
    let mut s = format!(
        "| scenario | {} |\n|---|{}\n",
        labels.join(" | "),
        "---|".repeat(labels.len())
    );
    for (name, cells) in &rows {
        let cols: Vec<String> = cells
            .iter()
            .map(|c| c.clone().unwrap_or_else(|| "-".into()))
            .collect();
        s.push_str(&format!("| {name} | {} |\n", cols.join(" | ")));
    }
    s.push('\n');
    for (r, label) in runs.iter().zip(&labels) {
        let count = |f: fn(&Verdict) -> bool| r.verdicts.iter().filter(|v| f(&v.verdict)).count();
        s.push_str(&format!(
            "- {}: {} — {} passed, {} flaky, {} failed, {} ignored, {} known kernel bug(s); boot + suite {:.1} s\n",
            label,
            r.kernel.provenance,
            count(|v| matches!(v, Verdict::Pass)),
            count(|v| matches!(v, Verdict::Flaky { .. })),
            count(|v| matches!(v, Verdict::Fail(_))),
            count(|v| matches!(v, Verdict::Ignored(_))),
            count(|v| matches!(v, Verdict::KnownBug { .. })),
            r.report.wall_ms as f64 / 1000.0
        ));
    }
    let bugs = known_bugs(runs);
    if !bugs.is_empty() {
        s.push_str("\nKnown kernel bugs (docs/kernel-bugs/NAME.md):\n");
        for (bug, (cause, kernels)) in &bugs {
            s.push_str(&format!("- {bug}: {} ({cause})\n", kernels.join(", ")));
        }
    }
    s
}

/// Which kernels showed which known bug, with its cause.
fn known_bugs(runs: &[KernelRun]) -> BTreeMap<String, (String, Vec<String>)> {
    let mut out: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for r in runs {
        for v in &r.verdicts {
            if let Verdict::KnownBug { bug, cause, .. } = &v.verdict {
                let e = out
                    .entry(bug.clone())
                    .or_insert_with(|| (cause.clone(), vec![]));
                if !e.1.contains(&r.kernel.label) {
                    e.1.push(r.kernel.label.clone());
                }
            }
        }
    }
    out
}

/// `matrix.json`: one entry per kernel, and the wall time of the whole matrix.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct MatrixReport {
    pub wall_secs: f64,
    pub kernels: Vec<MatrixKernel>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct MatrixKernel {
    pub kernel: String,
    pub provenance: String,
    pub kernel_release: Option<String>,
    pub wall_ms: u64,
    pub run_dir: std::path::PathBuf,
    pub verdicts: Vec<MatrixCell>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct MatrixCell {
    pub name: String,
    pub result: Verdict,
}

impl MatrixReport {
    pub fn new(runs: &[KernelRun], wall_secs: f64) -> Self {
        let kernels = runs
            .iter()
            .map(|r| MatrixKernel {
                kernel: r.kernel.label.clone(),
                provenance: r.kernel.provenance.clone(),
                kernel_release: r.report.kernel_release.clone(),
                wall_ms: r.report.wall_ms,
                run_dir: r.run_dir.clone(),
                verdicts: r
                    .verdicts
                    .iter()
                    .map(|v| MatrixCell {
                        name: v.name.clone(),
                        result: v.verdict.clone(),
                    })
                    .collect(),
            })
            .collect();
        MatrixReport { wall_secs, kernels }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(label: &str, verdicts: Vec<crate::model::ScenarioVerdict>) -> KernelRun {
        KernelRun::for_test(label, verdicts)
    }

    /// A known bug is its own cell and its own line under the table, skipped (not failed)
    /// in JUnit with the bug's name as a property; it does not fail the run.
    #[test]
    fn known_bugs_show_apart_in_the_matrix_and_junit() {
        use crate::model::{Origin, ScenarioVerdict};
        let bug = Verdict::KnownBug {
            bug: "format-array-len".into(),
            cause: "len never set".into(),
            failure: "char s[3344090]".into(),
        };
        let runs = vec![
            run(
                "6.12",
                vec![ScenarioVerdict::new(
                    "trace::f",
                    Origin::Scenario,
                    bug.clone(),
                )],
            ),
            run(
                "6.12+fixes",
                vec![ScenarioVerdict::new(
                    "trace::f",
                    Origin::Scenario,
                    Verdict::Pass,
                )],
            ),
        ];
        assert!(!runs[0].failed());
        let md = matrix_markdown(&runs);
        assert!(
            md.contains("| trace::f | KNOWN BUG format-array-len | pass |"),
            "{md}"
        );
        assert!(
            md.contains("- format-array-len: 6.12 (len never set)"),
            "{md}"
        );
        assert!(
            md.contains("0 failed, 0 ignored, 1 known kernel bug(s)"),
            "{md}"
        );
        let x = junit(&runs[0]);
        assert!(
            x.contains("failures=\"0\" skipped=\"1\"")
                && x.contains("<property name=\"known_kernel_bug\" value=\"format-array-len\"/>")
                && x.contains("known kernel bug: format-array-len (len never set)"),
            "{x}"
        );
    }

    fn flaky() -> Verdict {
        Verdict::Flaky {
            failed_attempts: vec![crate::model::FailedAttempt {
                attempt: 1,
                failure: crate::model::Failure {
                    cause: crate::model::FailCause::Guest,
                    message: "timed out <waiting>\nsecond line".into(),
                },
                console_log: "run/console.log".into(),
            }],
            passed_on: 2,
        }
    }

    /// As nextest writes it: a passing testcase holding one `<flakyFailure>` per failed
    /// attempt, with its message and its output; the suite counts no failure.
    #[test]
    fn a_flaky_trial_is_a_passing_testcase_with_its_failed_attempts() {
        use crate::model::{Origin, ScenarioVerdict};
        let r = run(
            "6.12",
            vec![ScenarioVerdict::new("a::b", Origin::Scenario, flaky())],
        );
        let x = junit(&r);
        assert!(
            x.contains("tests=\"1\" failures=\"0\" skipped=\"0\""),
            "{x}"
        );
        assert!(
            x.contains(
                "<testcase classname=\"6.12::a\" name=\"b\" time=\"0.000000\">\
                 <flakyFailure message=\"timed out &lt;waiting&gt;\" type=\"attempt 1\">\
                 <system-out>timed out &lt;waiting&gt;\nsecond line\n  console log: run/console.log</system-out>\
                 </flakyFailure></testcase>"
            ),
            "{x}"
        );
        assert!(!x.contains("<failure"), "{x}");
        let md = matrix_markdown(&[r]);
        assert!(
            md.contains("| a::b | FLAKY (1 failed, passed on attempt 2) |"),
            "{md}"
        );
        assert!(md.contains("0 passed, 1 flaky, 0 failed"), "{md}");
    }

    /// A trial that failed every attempt: the first attempt's `<failure>`, then one
    /// `<rerunFailure>` per retry, each from its attempt's own run.
    #[test]
    fn a_trial_that_failed_every_attempt_has_a_rerun_failure_per_retry() {
        use crate::model::{FailCause, Origin, Retry, ScenarioVerdict};
        let fail = |m: &str| {
            vec![ScenarioVerdict::new(
                "a::b",
                Origin::Scenario,
                Verdict::fail(FailCause::Guest, m),
            )]
        };
        let mut r = run("6.12", fail("first"));
        let mut again = run("6.12", fail("second"));
        again.report.console_log = "run/attempt-2/console.log".into();
        r.retries.push(Retry {
            attempt: 2,
            planned: vec!["a::b".into()],
            run_dir: "run/attempt-2".into(),
            run: Some(Box::new(again)),
        });
        let x = junit(&r);
        assert!(
            x.contains(
                "<failure message=\"first\">first</failure>\
                 <rerunFailure message=\"second\" type=\"attempt 2\"><system-out>second\n  console log: run/attempt-2/console.log</system-out></rerunFailure></testcase>"
            ),
            "{x}"
        );
        assert!(x.contains("failures=\"1\""), "{x}");
    }

    #[test]
    fn xml_special_characters_and_control_bytes_are_escaped() {
        assert_eq!(
            xml_escape("a<b & \"c\"\u{1b}[0m"),
            "a&lt;b &amp; &quot;c&quot;[0m"
        );
    }
}
