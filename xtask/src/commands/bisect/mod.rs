//! `cargo xtask bisect --good REV --bad REV --kernel-tree T [-- FILTER]`: drives
//! `git bisect run` on a git kernel tree with the harness as the test: a commit whose kernel
//! does not build is skipped (125). Ends with the first bad commit, the trials that fail there,
//! how each step was decided and its time, then the end checks ([`verify`]); leaves the tree's
//! HEAD and bisect state as it found them.
//!
//! With `--runs K` each step boots its kernel up to K times, and [`confidence`] decides: good
//! only if every run passed, bad once one trial failed in `--bad-at M` runs (default: all K),
//! skipped when neither, so that one flake does not name the wrong commit.
//!
//! Each step is this program again (`bisect-step`, the same arguments), so a step is exactly
//! what `cargo xtask test` would do on that commit: the tree's snapshot follows the checkout
//! and the build is incremental. The end checks run the same step on the culprit's parent and
//! on the bad commit with the culprit reverted.
//!
//! Exit status: 0 when a commit was named and verified, or its revert does not apply (said);
//! 101 when it was named but not verified; 2 when none could be named (bad input, a harness
//! failure, or only skipped commits left: the candidates are listed).

pub mod confidence;
pub mod verify;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::Args;
use harness::model::KernelUnderTest;

use crate::args::{number_in, GuestTestArgs, KernelArgs, RunArgs};
use crate::session::Session;
use crate::sys::proc::{git, RunTracked as _};
use confidence::{Confidence, Decision, Tally};

/// Where a step appends its record (a JSON line) for the bisect's report.
const STEP_LOG_ENV: &str = "UE_BISECT_STEP_LOG";
/// A step's exit code when the harness itself failed: above 127, it stops `git bisect run`.
const HARNESS_FAILED: u8 = 128;

#[derive(Args, Clone)]
// The tree is what is bisected: required here, so that the usage line shows it.
// Its steps run the suite unattended: no VM waits for a debugger.
#[command(
    mut_arg("kernel_tree", |a| a.required(true)),
    mut_arg("gdb_port", |a| a.hide(true))
)]
pub struct BisectArgs {
    /// A commit where the selected trials pass.
    #[arg(long)]
    pub good: String,
    /// A commit where one of them fails.
    #[arg(long)]
    pub bad: String,
    #[command(flatten)]
    pub kernel: KernelArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Boot each step's kernel up to this many times: a step is good only if every run
    /// passes. For a failure that does not show every time, or a harness that flakes.
    #[arg(help_heading = "Bisect", long, value_name = "K", default_value_t = 1, allow_negative_numbers = true, value_parser = number_in::<u32, 1, 100>)]
    pub runs: u32,
    /// A step is bad when one trial fails in at least M of its runs (default: all of them,
    /// --runs). Between one failure and M, the step is skipped. For a bug that reproduces now
    /// and then, --bad-at 1 calls a commit bad at its first failure.
    #[arg(help_heading = "Bisect", long, value_name = "M", allow_negative_numbers = true, value_parser = number_in::<u32, 1, 100>)]
    pub bad_at: Option<u32>,
    /// Name the first bad commit without checking it: by default its parent must pass every
    /// run, and so must the bad commit with it reverted (when the revert applies).
    #[arg(help_heading = "Bisect", long)]
    pub no_verify: bool,
    /// Run every selected trial at every step. By default a run stops at its first failed
    /// trial: a commit is bad as soon as one fails, and waiting out the rest only slows the
    /// bisect (the step then names the trial that failed first). With --bad-at above 1 every
    /// run runs every trial anyway, so that a trial's failures are all counted.
    #[arg(help_heading = "Bisect", long)]
    pub no_fail_fast: bool,
    #[command(flatten)]
    pub guest: GuestTestArgs,
    /// Which trials decide whether a commit is good.
    #[command(flatten)]
    pub trials: crate::args::FilterArgs,
}

/// One step's record, as the step wrote it: how its commit's runs went and what was decided.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Step {
    pub commit: String,
    pub decision: Decision,
    /// Why the kernel did not build (the step is then skipped, with no run).
    pub unbuildable: Option<String>,
    pub tally: Tally,
    pub build_secs: Option<f64>,
    pub secs: f64,
}

/// The tree, checked: a git work tree with no bisect running and no local changes to
/// tracked files (a checkout would refuse them, or carry them into every step).
fn checked_tree(a: &BisectArgs) -> anyhow::Result<PathBuf> {
    let Some(tree) = &a.kernel.kernel_tree else {
        bail!("bisect runs on your git kernel tree: add --kernel-tree PATH");
    };
    crate::kernel::source::check_kernel_tree(tree)?;
    git(tree, &["rev-parse", "--is-inside-work-tree"])
        .with_context(|| format!("{} is not a git work tree", tree.display()))?;
    let log = git(tree, &["rev-parse", "--git-path", "BISECT_LOG"])?;
    let log = if Path::new(&log).is_absolute() {
        PathBuf::from(log)
    } else {
        tree.join(log)
    };
    if log.exists() {
        bail!(
            "a bisect is already running in {} (git bisect log): finish it or `git bisect reset` first",
            tree.display()
        );
    }
    let dirty = git(tree, &["status", "--porcelain", "--untracked-files=no"])?;
    if !dirty.is_empty() {
        bail!(
            "{} has local changes to tracked files; commit or stash them first:\n{dirty}",
            tree.display()
        );
    }
    for rev in [&a.good, &a.bad] {
        git(
            tree,
            &["rev-parse", "--verify", &format!("{rev}^{{commit}}")],
        )
        .with_context(|| format!("{rev} is not a commit of {}", tree.display()))?;
    }
    Ok(tree.clone())
}

pub fn run(a: BisectArgs) -> anyhow::Result<ExitCode> {
    crate::args::refuse_unused(
        "bisect",
        &[
            ("--gdb-port", a.kernel.gdb_port != 1234),
            // x86-64 only: its steps run the Rust guest (test and matrix take --arch).
            ("--arch", !a.kernel.arch.is_empty()),
        ],
    )?;
    let started = Instant::now();
    let rule = Confidence::new(a.runs, a.bad_at)?;
    let mut s = Session::for_kernels(&a.kernel);
    let labels = s.check_kernels(&a.kernel)?;
    a.run.check()?;
    crate::guest::programs::check(&a.guest)?;
    let args = a.trials.libtest_args("bisect")?;
    // git and what every step's build and boot need, at once (one message if missing).
    s.host_tools_with(&[&crate::sys::host_tools::GIT])?;
    let tree = checked_tree(&a)?;
    // A filter that selects nothing would make every commit good: said now, before the
    // first checkout.
    let guest = s.guest()?;
    let programs = crate::guest::programs::resolve(&a.guest, &s.target, &s.cache, &mut s.progress)?;
    if let Some(code) = crate::commands::test::empty_selection(
        &args,
        &labels,
        &guest.scenarios(a.run.stress),
        a.run.kselftest,
        &programs,
    ) {
        return Ok(code);
    }
    let work = s.runs_dir().join(format!("bisect-{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let step_log = work.join("steps.jsonl");
    let run_log = work.join("git-bisect-run.log");
    // The step is this same command line with `bisect` swapped for `bisect-step`.
    let argv: Vec<String> = std::env::args().collect();
    let at = argv
        .iter()
        .position(|x| x == "bisect")
        .context("the command line has no `bisect`")?;
    let mut step_argv = argv[1..].to_vec();
    step_argv[at - 1] = "bisect-step".into();
    let exe = std::env::current_exe()?;

    eprintln!(
        "bisect: {} good, {} bad, in {}; each step up to {} run(s), bad at {} (log: {})",
        a.good,
        a.bad,
        tree.display(),
        rule.runs,
        rule.bad_at,
        run_log.display()
    );
    // The bad commit as it is now: `--bad HEAD` must mean the same commit after the bisect
    // moved HEAD about, for the end checks.
    let bad = git(&tree, &["rev-parse", &format!("{}^{{commit}}", a.bad)])?;
    git(&tree, &["bisect", "start", &a.bad, &a.good])?;
    let result = (|| -> anyhow::Result<String> {
        let log = std::fs::File::create(&run_log)?;
        let st = Command::new("git")
            .arg("-C")
            .arg(&tree)
            .args(["bisect", "run"])
            .arg(&exe)
            .args(&step_argv)
            .env(STEP_LOG_ENV, &step_log)
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .context("run git bisect run")?;
        let text = std::fs::read_to_string(&run_log).unwrap_or_default();
        if let Some(commits) = only_skipped_left(&text) {
            bail!(
                "the bisect cannot name one commit: the first bad commit is one of these, and \
                 the steps that would tell them apart were skipped (each step's decision is \
                 above):\n  {}",
                commits.join("\n  ")
            );
        }
        if !st.success() {
            bail!(
                "git bisect run failed ({st}); last lines of {}:\n{}",
                run_log.display(),
                tail(&text, 15)
            );
        }
        first_bad(&text).with_context(|| {
            format!(
                "git bisect run ended without a first bad commit; last lines of {}:\n{}",
                run_log.display(),
                tail(&text, 15)
            )
        })
    })();
    // Whatever happened, the tree goes back to where it was.
    let reset = git(&tree, &["bisect", "reset"]);
    let steps = read_steps(&step_log);
    for st in &steps {
        eprintln!(
            "  step {}: {} in {:.1} s{}: {}",
            short(&st.commit),
            st.decision.word(),
            st.secs,
            st.build_secs
                .map_or(String::new(), |b| format!(" (make {b:.1} s)")),
            step_words(&rule, st)
        );
    }
    let first = result?;
    reset?;
    let subject = git(&tree, &["log", "-1", "--format=%s", &first]).unwrap_or_default();
    println!("first bad commit: {first} {subject}");
    if let Some(st) = steps.iter().find(|s| s.commit == first) {
        for (trial, n) in st.tally.by_count() {
            println!("  fails there: {trial} ({n} of {} run(s))", st.tally.runs);
        }
    }
    let mean = if steps.is_empty() {
        0.0
    } else {
        steps.iter().map(|s| s.secs).sum::<f64>() / steps.len() as f64
    };
    println!("{} step(s), {:.1} s per step on average", steps.len(), mean);
    let code = if a.no_verify {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "bisect: checking {}: its parent, then {} with it reverted, {} run(s) each (log: {})",
            short(&first),
            short(&bad),
            rule.runs,
            work.join("verify.log").display()
        );
        let checks = verify::run_checks(&tree, &first, &bad, || {
            run_step(
                &exe,
                &step_argv,
                &tree,
                &work.join("verify.log"),
                &work.join("verify-step.jsonl"),
            )
        })?;
        println!("{}", checks.report());
        match checks.verdict() {
            verify::Verdict::NotVerified => ExitCode::from(crate::exit::TRIALS_FAILED),
            verify::Verdict::Verified | verify::Verdict::RevertDoesNotApply => ExitCode::SUCCESS,
        }
    };
    println!("{:.1} s in all", started.elapsed().as_secs_f64());
    Ok(code)
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// Why a step was decided as it was, for the report.
fn step_words(rule: &Confidence, st: &Step) -> String {
    match &st.unbuildable {
        Some(why) => format!(
            "does not build ({})",
            why.lines().next().unwrap_or_default()
        ),
        None => rule.explain(st.decision, &st.tally),
    }
}

/// The records the steps appended to `log`, in order (none when no step wrote one).
fn read_steps(log: &Path) -> Vec<Step> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// One step as a program, on the tree's working files as they are (an end check): its
/// output appended to `log`, its record read back from `record`.
fn run_step(
    exe: &Path,
    step_argv: &[String],
    tree: &Path,
    log: &Path,
    record: &Path,
) -> anyhow::Result<Step> {
    let _ = std::fs::remove_file(record);
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("open {}", log.display()))?;
    // Where `git bisect run` runs its steps: the top of the tree.
    let st = Command::new(exe)
        .args(step_argv)
        .current_dir(tree)
        .env(STEP_LOG_ENV, record)
        .stdout(out.try_clone()?)
        .stderr(out)
        .status_tracked()
        .context("run bisect-step")?;
    crate::sys::proc::check()?;
    match read_steps(record).pop() {
        Some(step) if st.code().is_some_and(|c| c < 128) => Ok(step),
        _ => bail!(
            "the step failed ({st}); last lines of {}:\n{}",
            log.display(),
            tail(&std::fs::read_to_string(log).unwrap_or_default(), 15)
        ),
    }
}

/// `git bisect run`'s verdict line: `<sha> is the first bad commit`.
pub fn first_bad(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_suffix(" is the first bad commit"))
        .map(|s| s.trim().to_owned())
}

/// The commits git lists when skipped steps leave it unable to name one:
/// `The first bad commit could be any of:` and a line per commit.
pub fn only_skipped_left(text: &str) -> Option<Vec<String>> {
    let mut lines = text
        .lines()
        .skip_while(|l| !l.starts_with("The first bad commit could be any of:"));
    lines.next()?;
    Some(
        lines
            .map(str::trim)
            .take_while(|l| l.len() >= 7 && l.chars().all(|c| c.is_ascii_hexdigit()))
            .map(str::to_owned)
            .collect(),
    )
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One step, run by `git bisect run` on the commit it checked out (or by the end checks on
/// the working files they prepared). A failure of the harness itself (not of the kernel)
/// stops the bisect: exit codes above 127 abort `git bisect run`.
pub fn step(a: BisectArgs) -> anyhow::Result<ExitCode> {
    match step_on_head(a) {
        Ok(st) => {
            record(&st);
            Ok(ExitCode::from(st.decision.exit_code()))
        }
        Err(e) => {
            eprintln!("bisect-step: the harness failed, stopping the bisect: {e:#}");
            Ok(ExitCode::from(HARNESS_FAILED))
        }
    }
}

/// Appends the step's record to the file the bisect named (none when run by hand).
fn record(st: &Step) {
    if let Some(p) = std::env::var_os(STEP_LOG_ENV) {
        let line = serde_json::to_string(st).unwrap_or_default() + "\n";
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
    }
}

/// A run that failed with no failed verdict to name (a snapshot mismatch fails a passed
/// verdict's trial): counted under this name, the step's log has the trial.
const UNNAMED_FAILURE: &str = "(a trial the step's log names)";

fn step_on_head(a: BisectArgs) -> anyhow::Result<Step> {
    let started = Instant::now();
    let rule = Confidence::new(a.runs, a.bad_at)?;
    let tree = a
        .kernel
        .kernel_tree
        .clone()
        .context("bisect-step needs --kernel-tree")?;
    let commit = git(&tree, &["rev-parse", "HEAD"])?;
    let mut s = Session::for_kernels(&a.kernel);
    s.host_tools()?;
    let resolved = match s.kernels(&a.kernel) {
        Ok(mut k) => k.remove(0),
        Err(e) => {
            // An interrupt is not a commit that does not build.
            crate::sys::proc::check()?;
            eprintln!("bisect-step: {commit} does not build, skipped: {e:#}");
            return Ok(Step {
                commit,
                decision: Decision::Skip,
                unbuildable: Some(format!("{e:#}")),
                tally: Tally::default(),
                build_secs: None,
                secs: started.elapsed().as_secs_f64(),
            });
        }
    };
    let kernel: KernelUnderTest = resolved.kernel;
    let guest = s.guest()?;
    let mut opts = s.suite_options(&a.run, &guest);
    // The same trial must fail M times: a run stopped by another trial's failure would
    // leave this one's uncounted, and a commit that fails two trials every time could be
    // skipped for counts of one each.
    opts.stop_at_first_failure = !a.no_fail_fast && rule.bad_at == 1;
    opts.guest_programs =
        crate::guest::programs::resolve(&a.guest, &s.target, &s.cache, &mut s.progress)?;
    s.choose_accel(&mut opts, &a.run, &kernel)?;
    let args = a.trials.libtest_args("bisect")?;
    let boot = |k: &KernelUnderTest, sel: &harness::run::Selection| {
        let run = harness::run::run_kernel(k, &opts, sel)?;
        harness::artifacts::write(&run)?;
        Ok(run)
    };
    let mut tally = Tally::default();
    let decision = loop {
        eprintln!(
            "bisect-step: {} run {} of at most {}",
            short(&commit),
            tally.runs + 1,
            rule.runs
        );
        let mut failing = Vec::new();
        let conclusion = harness::trials::run(
            &args,
            std::slice::from_ref(&kernel),
            &guest.scenarios(a.run.stress),
            &opts,
            boot,
            |run| {
                failing = run
                    .verdicts
                    .iter()
                    .filter(|v| v.verdict.is_fail())
                    .map(|v| harness::trials::trial_name(&run.kernel.label, &v.name))
                    .collect();
            },
        )?;
        if conclusion.has_failed() && failing.is_empty() {
            failing.push(UNNAMED_FAILURE.to_owned());
        }
        tally.add_run(&failing);
        if let Some(d) = rule.decided(&tally) {
            break d;
        }
    };
    eprintln!(
        "bisect-step: {} is {}: {}",
        short(&commit),
        decision.word(),
        rule.explain(decision, &tally)
    );
    Ok(Step {
        commit,
        decision,
        unbuildable: None,
        tally,
        build_secs: resolved.build_secs,
        secs: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bad_commit_is_read_from_git_bisect_run() {
        let out = "running  './step'\nabc123 is the first bad commit\ncommit abc123\n";
        assert_eq!(first_bad(out).as_deref(), Some("abc123"));
        assert_eq!(first_bad("bisect found nothing"), None);
    }

    #[test]
    fn the_candidates_are_read_when_only_skipped_commits_are_left() {
        let out = "running './step'\nThere are only 'skip'ped commits left to test.\n\
                   The first bad commit could be any of:\n\
                   1111111111111111111111111111111111111111\n\
                   2222222222222222222222222222222222222222\n\
                   We cannot bisect more!\nbisect run cannot continue any more\n";
        assert_eq!(
            only_skipped_left(out).unwrap(),
            [
                "1111111111111111111111111111111111111111",
                "2222222222222222222222222222222222222222"
            ]
        );
        assert_eq!(only_skipped_left("abc is the first bad commit\n"), None);
    }

    #[test]
    fn a_step_record_reads_back_as_written() {
        let mut tally = Tally::default();
        tally.add_run(&["6.12::fork::a".into()]);
        let st = Step {
            commit: "abc".into(),
            decision: Decision::Bad,
            unbuildable: None,
            tally,
            build_secs: Some(1.5),
            secs: 3.0,
        };
        let line = serde_json::to_string(&st).unwrap();
        assert!(line.contains(r#""decision":"bad""#), "{line}");
        let back: Step = serde_json::from_str(&line).unwrap();
        assert_eq!(back.tally, st.tally);
        assert_eq!(back.decision, Decision::Bad);
    }
}
