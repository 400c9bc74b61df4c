//! The libtest-mimic runner: every guest scenario on every kernel becomes one trial named
//! `<kernel>::<scenario>`, so libtest's options (`--list`, `--exact`, `--skip`, a filter,
//! `--format json`) work as they do for `cargo test`. Selection is decided before booting,
//! and one boot per kernel runs all selected scenarios.

use std::collections::HashMap;
use std::path::PathBuf;

use libtest_mimic::{Arguments, Completion, Conclusion, Failed, Trial};
use result_channel::Snapshot;

use crate::suite::{self, KernelRun, KernelUnderTest, ScenarioInfo, SuiteOptions};
use crate::verdict::{Verdict, HEALTH};

pub fn trial_name(kernel: &str, scenario: &str) -> String {
    format!("{kernel}::{scenario}")
}

/// Which scenarios libtest's filters select for this kernel.
pub fn selected(args: &Arguments, kernel: &str, scenarios: &[ScenarioInfo]) -> Vec<String> {
    scenarios
        .iter()
        .filter(|s| {
            let t = Trial::test(trial_name(kernel, &s.name), || Ok(()));
            !args.is_filtered_out(&t) && !args.is_ignored(&t)
        })
        .map(|s| s.name.clone())
        .collect()
}

/// Runs everything and hands the results to libtest-mimic. `on_run` sees each kernel's run
/// as soon as it ends (reports, artifacts).
pub fn run(
    args: &Arguments,
    kernels: &[KernelUnderTest],
    scenarios: &[ScenarioInfo],
    opts: &SuiteOptions,
    mut on_run: impl FnMut(&KernelRun),
) -> anyhow::Result<Conclusion> {
    let mut trials = Vec::new();
    for k in kernels {
        let names: Vec<String> = scenarios.iter().map(|s| s.name.clone()).chain([HEALTH.to_owned()]).collect();
        if args.list {
            trials.extend(names.iter().map(|n| Trial::test(trial_name(&k.label, n), || Ok(()))));
            continue;
        }
        let chosen = selected(args, &k.label, scenarios);
        if chosen.is_empty() {
            // Nothing to boot for: list the trials so libtest counts them as filtered out.
            trials.extend(names.iter().map(|n| Trial::test(trial_name(&k.label, n), || Ok(()))));
            continue;
        }
        let run = suite::run_kernel(k, opts, &chosen)?;
        on_run(&run);
        let console = run.report.console_log.clone();
        let by_name: HashMap<&str, _> = run.verdicts.iter().map(|v| (v.name.as_str(), v)).collect();
        for n in &names {
            let name = trial_name(&k.label, n);
            match by_name.get(n.as_str()) {
                Some(v) => {
                    let (verdict, snaps) = (v.verdict.clone(), v.snapshots.clone());
                    let (label, console) = (k.label.clone(), console.clone());
                    let scenario = n.clone();
                    trials.push(Trial::ignorable_test(name, move || conclude(&label, &scenario, verdict, snaps, console)));
                }
                // Not selected: libtest-mimic filters it out itself, with the same rules.
                None => trials.push(Trial::test(name, || Ok(()))),
            }
        }
    }
    Ok(libtest_mimic::run(args, trials))
}

fn conclude(kernel: &str, scenario: &str, verdict: Verdict, snaps: Vec<Snapshot>, console: PathBuf) -> Result<Completion, Failed> {
    match verdict {
        Verdict::Pass => {
            for s in &snaps {
                crate::snapshots::assert_snapshot(kernel, scenario, s).map_err(Failed::from)?;
            }
            Ok(Completion::Completed)
        }
        Verdict::Ignored(reason) => Ok(Completion::ignored_with(reason)),
        Verdict::Fail(msg) => Err(format!("{msg}\n  console log: {}", console.display()).into()),
    }
}
