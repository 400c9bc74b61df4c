//! `cargo xtask bisect --good REV --bad REV --kernel-tree T [-- FILTER]`: drives
//! `git bisect run` on a git kernel tree with the harness as the test: a commit whose kernel
//! does not build is skipped (125), one with a failing trial is bad. Ends with the first bad
//! commit, the trials that fail there and the time of each step, and leaves the tree's HEAD
//! and bisect state as it found them.
//!
//! Each step is this program again (`bisect-step`, the same arguments), so a step is exactly
//! what `cargo xtask test` would do on that commit: the tree's snapshot follows the checkout
//! and the build is incremental.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::Args;
use harness::model::KernelUnderTest;

use crate::args::{KernelArgs, RunArgs};
use crate::session::Session;
use crate::sys::proc::git;

/// `git bisect run`'s meaning of a step's exit code.
const SKIP: u8 = 125;
/// Where a step appends its line (JSON) for the bisect's report.
const STEP_LOG_ENV: &str = "UE_BISECT_STEP_LOG";

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
    /// Run every selected trial at every step. By default a step stops at its first failed
    /// trial: a commit is bad as soon as one fails, and waiting out the rest only slows the
    /// bisect (the step then names the trial that failed first).
    #[arg(long)]
    pub no_fail_fast: bool,
    /// Which trials decide whether a commit is good.
    #[command(flatten)]
    pub trials: crate::args::FilterArgs,
}

/// One step's outcome, as the step wrote it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Step {
    pub commit: String,
    /// good, bad or skip.
    pub outcome: String,
    pub failing: Vec<String>,
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
    crate::args::refuse_unused("bisect", &[("--gdb-port", a.kernel.gdb_port != 1234)])?;
    let started = Instant::now();
    let mut s = Session::for_kernels(&a.kernel);
    let labels = s.check_kernels(&a.kernel)?;
    a.run.check()?;
    let args = a.trials.libtest_args("bisect")?;
    // git and what every step's build and boot need, at once (one message if missing).
    s.host_tools_with(&[&crate::sys::host_tools::GIT])?;
    let tree = checked_tree(&a)?;
    // A filter that selects nothing would make every commit good: said now, before the
    // first checkout.
    let guest = s.guest()?;
    if let Some(code) = crate::commands::test::empty_selection(
        &args,
        &labels,
        &guest.scenarios(a.run.stress),
        a.run.kselftest,
        &[],
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
        "bisect: {} good, {} bad, in {} (log: {})",
        a.good,
        a.bad,
        tree.display(),
        run_log.display()
    );
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
    let steps: Vec<Step> = std::fs::read_to_string(&step_log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for st in &steps {
        eprintln!(
            "  step {}: {} in {:.1} s{}",
            &st.commit[..st.commit.len().min(12)],
            st.outcome,
            st.secs,
            st.build_secs
                .map_or(String::new(), |b| format!(" (make {b:.1} s)"))
        );
    }
    let first = result?;
    reset?;
    let subject = git(&tree, &["log", "-1", "--format=%s", &first]).unwrap_or_default();
    println!("first bad commit: {first} {subject}");
    if let Some(st) = steps.iter().find(|s| s.commit == first) {
        for f in &st.failing {
            println!("  fails there: {f}");
        }
    }
    let mean = if steps.is_empty() {
        0.0
    } else {
        steps.iter().map(|s| s.secs).sum::<f64>() / steps.len() as f64
    };
    println!(
        "{} step(s), {:.1} s per step on average, {:.1} s in all",
        steps.len(),
        mean,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// `git bisect run`'s verdict line: `<sha> is the first bad commit`.
pub fn first_bad(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_suffix(" is the first bad commit"))
        .map(|s| s.trim().to_owned())
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One step, run by `git bisect run` on the commit it checked out. A failure of the harness
/// itself (not of the kernel) stops the bisect: exit codes above 127 abort `git bisect run`.
pub fn step(a: BisectArgs) -> anyhow::Result<ExitCode> {
    match step_on_head(a) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("bisect-step: the harness failed, stopping the bisect: {e:#}");
            Ok(ExitCode::from(128))
        }
    }
}

fn step_on_head(a: BisectArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let tree = a
        .kernel
        .kernel_tree
        .clone()
        .context("bisect-step needs --kernel-tree")?;
    let commit = git(&tree, &["rev-parse", "HEAD"])?;
    let mut s = Session::for_kernels(&a.kernel);
    s.host_tools()?;
    let record = |outcome: &str, failing: Vec<String>, build_secs: Option<f64>| {
        let st = Step {
            commit: commit.clone(),
            outcome: outcome.into(),
            failing,
            build_secs,
            secs: started.elapsed().as_secs_f64(),
        };
        if let Some(p) = std::env::var_os(STEP_LOG_ENV) {
            let line = serde_json::to_string(&st).unwrap_or_default() + "\n";
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
        }
    };
    let resolved = match s.kernels(&a.kernel) {
        Ok(mut k) => k.remove(0),
        Err(e) => {
            eprintln!("bisect-step: {commit} does not build, skipped: {e:#}");
            record("skip", vec![], None);
            return Ok(ExitCode::from(SKIP));
        }
    };
    let kernel: KernelUnderTest = resolved.kernel;
    let guest = s.guest()?;
    let mut opts = s.suite_options(&a.run, &guest);
    opts.stop_at_first_failure = !a.no_fail_fast;
    s.choose_accel(&mut opts, &a.run, &kernel)?;
    let args = a.trials.libtest_args("bisect")?;
    let mut failing = Vec::new();
    let boot = |k: &KernelUnderTest, sel: &harness::run::Selection| {
        let run = harness::run::run_kernel(k, &opts, sel)?;
        harness::artifacts::write(&run)?;
        Ok(run)
    };
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
    let bad = conclusion.has_failed();
    record(
        if bad { "bad" } else { "good" },
        failing,
        resolved.build_secs,
    );
    Ok(ExitCode::from(u8::from(bad)))
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
}
