//! The libtest-mimic runner: every guest scenario on every kernel becomes one trial named
//! `<kernel>::<scenario>`, so libtest's options (`--list`, `--exact`, `--skip`, a filter,
//! `--format json`) work as they do for `cargo test`. Selection is decided before booting,
//! and one boot per kernel runs all selected scenarios.

use std::collections::HashSet;
use std::path::PathBuf;

use libtest_mimic::{Arguments, Completion, Conclusion, Failed, Trial};
use result_channel::{guest_test_name, kselftest_name, Snapshot};

use crate::model::{
    FailCause, GuestProgram, GuestTestStyle, KernelRun, KernelUnderTest, Origin, ScenarioInfo,
    ScenarioVerdict, SuiteOptions, Verdict, HEALTH, KSELFTESTS,
};
use crate::run::Selection;

pub fn trial_name(kernel: &str, scenario: &str) -> String {
    format!("{kernel}::{scenario}")
}

fn is_selected(args: &Arguments, name: &str) -> bool {
    let t = Trial::test(name, || Ok(()));
    !args.is_filtered_out(&t) && !args.is_ignored(&t)
}

/// What libtest's filters select for this kernel: scenarios, and the upstream programs whose
/// program-level trial is selected or whose tests a filter names (`kselftest::abi_test::user.flags`).
pub fn selection(
    args: &Arguments,
    kernel: &str,
    scenarios: &[ScenarioInfo],
    kselftests: bool,
    guest: &[GuestProgram],
) -> Selection {
    let scenarios = scenarios
        .iter()
        .filter(|s| is_selected(args, &trial_name(kernel, &s.name)))
        .cloned()
        .collect();
    let kselftests = if kselftests {
        KSELFTESTS
            .iter()
            .filter(|p| {
                let prog = kselftest_name(p);
                is_selected(args, &trial_name(kernel, &prog)) || named_test(args, p).is_some()
            })
            .map(|p| p.to_string())
            .collect()
    } else {
        vec![]
    };
    Selection {
        scenarios,
        kselftests,
        guest: guest_selection(args, kernel, guest),
    }
}

/// The guest test programs the filters select: a libtest program's selected tests; another
/// program whole, when its trial is selected or a filter names one of its tests.
fn guest_selection(args: &Arguments, kernel: &str, guest: &[GuestProgram]) -> Vec<GuestProgram> {
    guest
        .iter()
        .filter_map(|g| {
            let mut g = g.clone();
            match &mut g.style {
                GuestTestStyle::Libtest { tests, .. } => {
                    tests.retain(|t| {
                        is_selected(
                            args,
                            &trial_name(kernel, &guest_test_name(&g.name, Some(t))),
                        )
                    });
                    (!tests.is_empty()).then_some(g)
                }
                GuestTestStyle::Program => {
                    let own = guest_test_name(&g.name, None);
                    let names_a_test = args
                        .filter
                        .as_deref()
                        .is_some_and(|f| f.contains(&format!("{own}::")));
                    (is_selected(args, &trial_name(kernel, &own)) || names_a_test).then_some(g)
                }
            }
        })
        .collect()
}

/// The test of `program` the filter names (`kselftest::abi_test::user.flags` → `user.flags`).
fn named_test(args: &Arguments, program: &str) -> Option<String> {
    let prefix = format!("{}::", kselftest_name(program));
    let f = args.filter.as_deref()?;
    let at = f.find(&prefix)?;
    Some(f[at + prefix.len()..].to_owned())
}

/// A filter that names one upstream test must not come back empty because its program died
/// before reaching it: that test gets a failure naming how the program ended.
fn unreported_named_tests(
    args: &Arguments,
    run: &KernelRun,
    sel: &Selection,
) -> Vec<ScenarioVerdict> {
    let mut out = vec![];
    for p in &sel.kselftests {
        let Some(test) = named_test(args, p).filter(|t| !t.is_empty()) else {
            continue;
        };
        let prog = kselftest_name(p);
        let wanted = format!("{prog}::{test}");
        // The same test libtest's filter applies: does any upstream trial of this run match it?
        let reported = run.verdicts.iter().any(|v| {
            v.origin == Origin::Upstream
                && v.name != prog
                && is_selected(args, &trial_name(&run.kernel.label, &v.name))
        });
        if reported {
            continue;
        }
        let how =
            run.verdicts
                .iter()
                .find(|v| v.name == prog)
                .map_or("it was not run".to_owned(), |v| match &v.verdict {
                    Verdict::Pass => "it exited 0 without reporting this test".to_owned(),
                    Verdict::Fail(f) => {
                        format!("it failed: {}", f.message.lines().next().unwrap_or(""))
                    }
                    Verdict::Ignored(m) => format!("it was ignored: {m}"),
                    Verdict::KnownBug { bug, .. } => format!("it showed known bug {bug}"),
                    Verdict::Flaky { passed_on, .. } => {
                        format!("it passed on attempt {passed_on} without reporting this test")
                    }
                });
        out.push(ScenarioVerdict::new(
            wanted,
            Origin::Upstream,
            Verdict::fail(
                FailCause::NotReported,
                format!("{prog} never reported {test}: {how}"),
            ),
        ));
    }
    out
}

/// Every trial name a kernel can have, for `--list` and for the stand-ins of what was not run.
fn all_names(scenarios: &[ScenarioInfo], kselftests: bool, guest: &[GuestProgram]) -> Vec<String> {
    let programs: &[&str] = if kselftests { &KSELFTESTS } else { &[] };
    scenarios
        .iter()
        .map(|s| s.name.clone())
        .chain([HEALTH.to_owned()])
        .chain(programs.iter().map(|p| kselftest_name(p)))
        .chain(guest.iter().flat_map(|g| g.record_names()))
        .collect()
}

/// Whether the filters leave any trial of a run on these kernels, decided before anything is
/// built, by the rules that decide what a boot plans. `Err` is the message for a person: how
/// many trials there were, and the families closest to the filter (a typo, or `fork` for
/// `fork::`), since an empty run that passes would hide the mistake.
pub fn check_selection(
    args: &Arguments,
    labels: &[String],
    scenarios: &[ScenarioInfo],
    kselftests: bool,
    guest: &[GuestProgram],
) -> Result<(), String> {
    let names = all_names(scenarios, kselftests, guest);
    let any = labels.iter().any(|k| {
        !selection(args, k, scenarios, kselftests, guest).is_empty()
            || is_selected(args, &trial_name(k, HEALTH))
    });
    if any {
        return Ok(());
    }
    let total = names.len() * labels.len();
    let what = match (&args.filter, args.skip.as_slice()) {
        (Some(f), _) => format!("match {f:?}{}", if args.exact { " exactly" } else { "" }),
        (None, []) => "are selected".to_owned(),
        (None, skip) => format!("are left by --skip {}", skip.join(", --skip ")),
    };
    let mut msg = format!("0 of {total} trials {what}");
    let families = families(&names);
    if let Some(f) = &args.filter {
        // The family part of the filter: after a kernel label, before the first `::`.
        let bare = labels
            .iter()
            .find_map(|l| f.strip_prefix(&format!("{l}::")))
            .unwrap_or(f);
        let bare = bare.split("::").next().unwrap_or(bare);
        let mut near: Vec<(usize, &str)> = families
            .iter()
            .map(|fam| (edit_distance(bare, fam), fam.as_str()))
            .collect();
        near.sort();
        let near: Vec<String> = near.iter().take(3).map(|(_, f)| format!("{f}::")).collect();
        msg.push_str(&format!("; the closest families: {}", near.join(", ")));
        if let Some(l) = labels.first() {
            msg.push_str(&format!(" (a trial is named {l}::<family>::<scenario>)"));
        }
    }
    Err(msg)
}

/// The families of these trial names (`fork` of `fork::child_inherits_registration`), in order.
fn families(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let fam = n.split("::").next().unwrap_or(n).to_owned();
        if !out.contains(&fam) {
            out.push(fam);
        }
    }
    out
}

/// Levenshtein's distance, by characters: how far a filter is from a family's name.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// `--list --format json`: the trials as libtest's JSON discovery events (libtest-mimic
/// prints its list as text whatever the format), one object a line.
fn print_json_list(args: &Arguments, trials: &[Trial]) {
    let listed: Vec<&Trial> = trials
        .iter()
        .filter(|t| !args.is_filtered_out(t))
        .filter(|t| !args.ignored || t.has_ignored_flag())
        .collect();
    println!("{{ \"type\": \"suite\", \"event\": \"discovery\" }}");
    for t in &listed {
        println!(
            "{}",
            serde_json::json!({"type": "test", "event": "discovered", "name": t.name(), "ignore": t.has_ignored_flag()})
        );
    }
    println!(
        "{}",
        serde_json::json!({"type": "suite", "event": "completed", "tests": listed.len(), "benchmarks": 0, "total": listed.len(), "ignored": listed.iter().filter(|t| t.has_ignored_flag()).count()})
    );
}

/// Runs everything and hands the results to libtest-mimic. `boot` runs one kernel (the
/// pipeline's run-and-write step); `on_run` sees each kernel's run as soon as it ends.
pub fn run(
    args: &Arguments,
    kernels: &[KernelUnderTest],
    scenarios: &[ScenarioInfo],
    opts: &SuiteOptions,
    mut boot: impl FnMut(&KernelUnderTest, &Selection) -> anyhow::Result<KernelRun>,
    mut on_run: impl FnMut(&KernelRun),
) -> anyhow::Result<Conclusion> {
    let mut trials = Vec::new();
    // `--show-output`: each trial's notes after the summary, as cargo test prints captured
    // output; `--nocapture`: as each trial ends.
    let mut shown_notes: Vec<(String, Vec<String>)> = Vec::new();
    // The flaky trials, said again after the summary (libtest has no word for them).
    let mut flaky: Vec<(String, String)> = Vec::new();
    for k in kernels {
        // A foreign architecture's kernel runs its own guest's programs, no x86-64 scenario.
        let guest = opts.guest_for(k.arch, scenarios);
        let (scenarios, guest_programs) = (guest.scenarios, guest.programs);
        let kselftests = opts.kselftests && k.arch.is_native();
        let names = all_names(scenarios, kselftests, guest_programs);
        // Stand-ins for trials that are not run: libtest-mimic lists them, or filters them out
        // by the same rules that left them unplanned. They are never reported as passes.
        let stand_in = |n: &str| Trial::test(trial_name(&k.label, n), || Ok(()));
        if args.list {
            trials.extend(names.iter().map(|n| stand_in(n)));
            continue;
        }
        let sel = selection(args, &k.label, scenarios, kselftests, guest_programs);
        if sel.is_empty() && !is_selected(args, &trial_name(&k.label, HEALTH)) {
            trials.extend(names.iter().map(|n| stand_in(n)));
            continue;
        }
        let mut run = boot(k, &sel)?;
        let extra = unreported_named_tests(args, &run, &sel);
        run.verdicts.extend(extra);
        on_run(&run);
        for v in &run.verdicts {
            let (verdict, snaps) = (v.verdict.clone(), v.snapshots.clone());
            let console = run.console_log_of(&v.name).to_owned();
            let (label, scenario) = (k.label.clone(), v.name.clone());
            let name = trial_name(&k.label, &v.name);
            let notes = if args.nocapture {
                v.notes.clone()
            } else {
                vec![]
            };
            if args.show_output && !v.notes.is_empty() {
                shown_notes.push((name.clone(), v.notes.clone()));
            }
            // `test [flaky] 6.12::a::b ... ok`: libtest-mimic's kind, shown before the name
            // (filters still match the name alone).
            let kind = if v.verdict.is_flaky() {
                flaky.push((name.clone(), flaky_block(&v.verdict)));
                "flaky"
            } else {
                ""
            };
            let flaky_fails = opts.flaky_fails;
            let trial = Trial::ignorable_test(name.clone(), move || {
                if !notes.is_empty() {
                    println!("\n{}", notes_block(&name, &notes));
                }
                conclude(&label, &scenario, verdict, snaps, console, flaky_fails)
            });
            trials.push(trial.with_kind(kind));
        }
        let run_names: HashSet<&str> = run.verdicts.iter().map(|v| v.name.as_str()).collect();
        trials.extend(
            names
                .iter()
                .filter(|n| !run_names.contains(n.as_str()))
                .map(|n| stand_in(n)),
        );
    }
    if args.list && args.format == Some(libtest_mimic::FormatSetting::Json) {
        print_json_list(args, &trials);
        return Ok(Conclusion {
            num_filtered_out: 0,
            num_passed: 0,
            num_failed: 0,
            num_ignored: 0,
            num_measured: 0,
        });
    }
    let conclusion = libtest_mimic::run(args, trials);
    let shown: Vec<&(String, Vec<String>)> = shown_notes
        .iter()
        .filter(|(n, _)| is_selected(args, n))
        .collect();
    if !shown.is_empty() {
        println!("notes:\n");
        for (name, notes) in shown {
            println!("{}", notes_block(name, notes));
        }
    }
    let flaky: Vec<&(String, String)> =
        flaky.iter().filter(|(n, _)| is_selected(args, n)).collect();
    if !flaky.is_empty() {
        let mut section = format!(
            "FLAKY: {} trial(s) failed and then passed in a fresh VM ({}):\n\n",
            flaky.len(),
            if opts.flaky_fails {
                "--flaky-fails: they fail the run"
            } else {
                "they do not fail the run; --flaky-fails makes them"
            }
        );
        for (name, block) in flaky {
            section.push_str(&format!("{name}\n{block}\n"));
        }
        // `--format json` keeps stdout to libtest's events, for the programs that read them.
        if args.format == Some(libtest_mimic::FormatSetting::Json) {
            eprint!("{section}");
        } else {
            print!("{section}");
        }
    }
    Ok(conclusion)
}

/// A flaky trial's attempts, a line each, for the terminal.
fn flaky_block(v: &Verdict) -> String {
    let Verdict::Flaky {
        failed_attempts,
        passed_on,
    } = v
    else {
        return String::new();
    };
    let mut s = String::new();
    for a in failed_attempts {
        s.push_str(&format!(
            "  attempt {}: FAILED: {} (console log: {})\n",
            a.attempt,
            a.failure.telling_line(),
            a.console_log.display()
        ));
    }
    s.push_str(&format!("  attempt {passed_on}: passed\n"));
    s
}

/// A trial's notes as cargo test shows a test's output.
pub fn notes_block(name: &str, notes: &[String]) -> String {
    let mut s = format!("---- {name} notes ----\n");
    for n in notes {
        s.push_str(n);
        s.push('\n');
    }
    s
}

fn conclude(
    kernel: &str,
    scenario: &str,
    verdict: Verdict,
    snaps: Vec<Snapshot>,
    console: PathBuf,
    flaky_fails: bool,
) -> Result<Completion, Failed> {
    match verdict {
        Verdict::Pass => {
            for s in &snaps {
                crate::snapshots::assert_snapshot(kernel, scenario, s).map_err(Failed::from)?;
            }
            Ok(Completion::Completed)
        }
        // The passing attempt's snapshots are checked as a pass's are.
        flaky @ Verdict::Flaky { .. } => {
            for s in &snaps {
                crate::snapshots::assert_snapshot(kernel, scenario, s).map_err(Failed::from)?;
            }
            if flaky_fails {
                return Err(format!(
                    "{} (--flaky-fails)\n{}",
                    flaky.flaky_line().unwrap_or_default(),
                    flaky_block(&flaky)
                )
                .into());
            }
            Ok(Completion::Completed)
        }
        Verdict::Ignored(reason) => Ok(Completion::ignored_with(reason)),
        // Shown as ignored with the bug's line, so it does not fail the run.
        known @ Verdict::KnownBug { .. } => Ok(Completion::ignored_with(
            known.known_bug_line().unwrap_or_default(),
        )),
        Verdict::Fail(msg) => Err(format!("{msg}\n  console log: {}", console.display()).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FailCause, Failure};

    fn args(a: &[&str]) -> Arguments {
        Arguments::from_iter(std::iter::once("t").chain(a.iter().copied()))
    }

    fn run_with(verdicts: Vec<ScenarioVerdict>) -> KernelRun {
        KernelRun::for_test("6.12", verdicts)
    }

    /// The old behaviour: `-- kselftest::abi_test::user.flags` gave zero trials and exit 0
    /// when abi_test crashed before reaching that test.
    #[test]
    fn a_named_upstream_test_its_program_never_reached_fails() {
        let a = args(&["kselftest::abi_test::user.flags"]);
        let sel = selection(&a, "6.12", &[], true, &[]);
        let crashed = ScenarioVerdict::new(
            "kselftest::abi_test",
            Origin::Upstream,
            Verdict::fail(FailCause::Guest, "killed by signal 11 (SIGSEGV)"),
        );
        let extra = unreported_named_tests(&a, &run_with(vec![crashed.clone()]), &sel);
        assert_eq!(extra.len(), 1);
        assert_eq!(extra[0].name, "kselftest::abi_test::user.flags");
        assert!(
            matches!(&extra[0].verdict, Verdict::Fail(Failure { cause: FailCause::NotReported, message: m }) if m.contains("never reported user.flags") && m.contains("SIGSEGV")),
            "{extra:?}"
        );
        // Reported, it is left alone.
        let reached = ScenarioVerdict::new(
            "kselftest::abi_test::user.flags",
            Origin::Upstream,
            Verdict::Pass,
        );
        assert!(unreported_named_tests(&a, &run_with(vec![crashed, reached]), &sel).is_empty());
    }

    #[test]
    fn filters_select_a_libtest_programs_tests_and_a_tap_program_whole() {
        let prog = |name: &str, style| GuestProgram {
            name: name.into(),
            path: "/p".into(),
            args: vec![],
            env: vec![],
            timeout: Default::default(),
            style,
            fault_warnings: false,
        };
        let guest = [
            prog(
                "lib",
                GuestTestStyle::Libtest {
                    tests: vec!["tests::a".into(), "tests::b".into()],
                    json: true,
                },
            ),
            prog("tap", GuestTestStyle::Program),
        ];
        let sel = selection(&args(&["guest::lib::tests::b"]), "6.12", &[], false, &guest);
        assert_eq!(sel.guest.len(), 1);
        assert_eq!(
            sel.guest[0].style,
            GuestTestStyle::Libtest {
                tests: vec!["tests::b".into()],
                json: true
            }
        );
        let sel = selection(
            &args(&["guest::tap::some_test"]),
            "6.12",
            &[],
            false,
            &guest,
        );
        assert_eq!(sel.guest.len(), 1);
        assert_eq!(sel.guest[0].name, "tap");
        let sel = selection(&args(&["fork"]), "6.12", &[], false, &guest);
        assert!(sel.guest.is_empty());
    }

    #[test]
    fn a_filter_naming_an_upstream_test_selects_its_program() {
        let a = args(&["kselftest::abi_test::user.flags"]);
        let sel = selection(&a, "6.12", &[], true, &[]);
        assert_eq!(sel.kselftests, vec!["abi_test".to_owned()]);
        assert_eq!(named_test(&a, "abi_test").as_deref(), Some("user.flags"));
        assert_eq!(named_test(&a, "dyn_test"), None);
    }
}
