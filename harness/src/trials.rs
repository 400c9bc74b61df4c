//! The libtest-mimic runner: every guest scenario on every kernel becomes one trial named
//! `<kernel>::<scenario>`, so libtest's options (`--list`, `--exact`, `--skip`, a filter,
//! `--format json`) work as they do for `cargo test`. Selection is decided before booting,
//! and one boot per kernel runs all selected scenarios.

use std::collections::HashSet;
use std::path::PathBuf;

use libtest_mimic::{Arguments, Completion, Conclusion, Failed, Trial};
use result_channel::Snapshot;

use result_channel::kselftest_name;

use crate::suite::{self, KernelRun, KernelUnderTest, ScenarioInfo, SuiteOptions, KSELFTESTS};
use crate::verdict::{Verdict, HEALTH};

pub fn trial_name(kernel: &str, scenario: &str) -> String {
    format!("{kernel}::{scenario}")
}

fn is_selected(args: &Arguments, name: &str) -> bool {
    let t = Trial::test(name, || Ok(()));
    !args.is_filtered_out(&t) && !args.is_ignored(&t)
}

/// Which scenarios libtest's filters select for this kernel.
pub fn selected(args: &Arguments, kernel: &str, scenarios: &[ScenarioInfo]) -> Vec<String> {
    scenarios.iter().filter(|s| is_selected(args, &trial_name(kernel, &s.name))).map(|s| s.name.clone()).collect()
}

/// Which upstream selftest programs to run: those whose program-level trial is selected, or
/// whose tests a filter names (`kselftest::abi_test::user.flags`).
pub fn selected_kselftests(args: &Arguments, kernel: &str) -> Vec<String> {
    KSELFTESTS
        .iter()
        .filter(|p| {
            let prog = kselftest_name(p);
            is_selected(args, &trial_name(kernel, &prog)) || args.filter.as_deref().is_some_and(|f| f.contains(&format!("{prog}::")))
        })
        .map(|p| p.to_string())
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
        let programs: &[&str] = if opts.kselftests { &KSELFTESTS } else { &[] };
        let names: Vec<String> = scenarios
            .iter()
            .map(|s| s.name.clone())
            .chain([HEALTH.to_owned()])
            .chain(programs.iter().map(|p| kselftest_name(p)))
            .collect();
        // Stand-ins for trials that are not run: libtest-mimic lists them, or filters them out
        // by the same rules that left them unplanned. They are never reported as passes.
        let stand_in = |n: &str| Trial::test(trial_name(&k.label, n), || Ok(()));
        if args.list {
            trials.extend(names.iter().map(|n| stand_in(n)));
            continue;
        }
        let chosen = selected(args, &k.label, scenarios);
        let chosen_ks = if opts.kselftests { selected_kselftests(args, &k.label) } else { vec![] };
        if chosen.is_empty() && chosen_ks.is_empty() && !is_selected(args, &trial_name(&k.label, HEALTH)) {
            trials.extend(names.iter().map(|n| stand_in(n)));
            continue;
        }
        let run = suite::run_kernel(k, opts, &chosen, &chosen_ks)?;
        on_run(&run);
        let console = run.report.console_log.clone();
        for v in &run.verdicts {
            let (verdict, snaps) = (v.verdict.clone(), v.snapshots.clone());
            let (label, console, scenario) = (k.label.clone(), console.clone(), v.name.clone());
            trials.push(Trial::ignorable_test(trial_name(&k.label, &v.name), move || conclude(&label, &scenario, verdict, snaps, console)));
        }
        let run_names: HashSet<&str> = run.verdicts.iter().map(|v| v.name.as_str()).collect();
        trials.extend(names.iter().filter(|n| !run_names.contains(n.as_str())).map(|n| stand_in(n)));
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
