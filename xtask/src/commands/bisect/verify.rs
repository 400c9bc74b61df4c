//! The checks at the end of a bisect, as KernelCI's bisections carry them: the culprit's
//! parent must pass K times, and the bad commit with the culprit reverted must pass K times
//! when the revert applies. One flake at the boundary names the wrong commit; these two checks
//! are what catches it.
//!
//! Both run in the user's tree, as git bisect's own steps do: the tree's snapshot in the
//! cache follows the checkout, so a check is an incremental build of the bisect's last one.
//! A temporary worktree would be another tree to the cache and cost a full kernel build. The
//! revert is applied to the working files (`git revert --no-commit` on a detached HEAD), so no
//! commit or branch is made, and HEAD goes back to where it was whatever happens.

use std::path::Path;

use anyhow::Context as _;

use super::confidence::Decision;
use super::Step;
use crate::sys::proc::git;

/// The bad commit with the culprit reverted.
#[derive(Debug, Clone)]
pub enum Reverted {
    /// `git revert` did not apply there (a conflict, a merge commit): git's first line.
    DoesNotApply(String),
    /// The revert applied, and the kernel was run.
    Ran(Step),
}

/// What the two checks found.
#[derive(Debug, Clone)]
pub struct Checks {
    pub culprit: String,
    pub bad: String,
    /// The culprit's first parent's runs; `None` when the culprit is a root commit.
    pub parent: Option<Step>,
    pub reverted: Reverted,
}

/// The bisect's result, in the words of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The parent passed every run, and so did the bad commit with the culprit reverted.
    Verified,
    /// The parent, or the reverted bad commit, did not pass every run.
    NotVerified,
    /// The parent passed every run; the culprit does not revert on the bad commit.
    RevertDoesNotApply,
}

impl Verdict {
    pub fn words(self) -> &'static str {
        match self {
            Verdict::Verified => "verified",
            Verdict::NotVerified => "not verified",
            Verdict::RevertDoesNotApply => "revert does not apply",
        }
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// How one check's runs went, in a few words.
fn runs_words(step: &Step) -> String {
    if let Some(why) = &step.unbuildable {
        let first = why.lines().next().unwrap_or_default();
        return format!("does not build ({first})");
    }
    let t = &step.tally;
    if step.decision == Decision::Good {
        return format!("passed {} of {} run(s)", t.runs, t.runs);
    }
    let trials: Vec<String> = t
        .by_count()
        .iter()
        .map(|(name, n)| format!("{name} {n}×"))
        .collect();
    format!(
        "failed in {} of {} run(s): {}",
        t.failed_runs,
        t.runs,
        trials.join(", ")
    )
}

impl Checks {
    pub fn verdict(&self) -> Verdict {
        let passed = |s: &Step| s.decision == Decision::Good;
        match (&self.parent, &self.reverted) {
            (Some(p), Reverted::Ran(r)) if passed(p) && passed(r) => Verdict::Verified,
            (Some(p), Reverted::DoesNotApply(_)) if passed(p) => Verdict::RevertDoesNotApply,
            _ => Verdict::NotVerified,
        }
    }

    /// The result line: the verdict, then each check and how it went (for "not verified",
    /// that is the why).
    pub fn report(&self) -> String {
        let parent = match &self.parent {
            Some(p) => format!("its parent {} {}", short(&p.commit), runs_words(p)),
            None => format!(
                "{} has no parent to check (a root commit)",
                short(&self.culprit)
            ),
        };
        let reverted = match &self.reverted {
            Reverted::Ran(r) => format!("{} with it reverted {}", short(&self.bad), runs_words(r)),
            Reverted::DoesNotApply(why) => {
                format!("it does not revert cleanly on {} ({why})", short(&self.bad))
            }
        };
        format!("{}: {parent}; {reverted}", self.verdict().words())
    }
}

/// Where HEAD was, to go back to: the branch, or the commit when HEAD was detached.
fn home(tree: &Path) -> anyhow::Result<String> {
    match git(tree, &["symbolic-ref", "-q", "--short", "HEAD"]) {
        Ok(branch) if !branch.is_empty() => Ok(branch),
        _ => git(tree, &["rev-parse", "HEAD"]),
    }
}

/// Back to `home` with the working files as committed. The bisect started on a tree with no
/// local changes to tracked files (`checked_tree`), so `reset --hard` only drops what the
/// checks put there: a revert, applied or half-applied.
fn go_home(tree: &Path, home: &str) -> anyhow::Result<()> {
    // Only a revert that stopped on a conflict leaves something to abort.
    let _ = git(tree, &["revert", "--abort"]);
    git(tree, &["reset", "-q", "--hard"])?;
    git(tree, &["checkout", "-q", home, "--"])
        .map(drop)
        .map_err(|e| e.context(format!("put {} back on {home}", tree.display())))
}

/// Runs both checks in `tree`; `check` runs the kernel of the tree's working files K times.
/// HEAD and the working files are back as they were afterwards, whatever happened.
pub fn run_checks(
    tree: &Path,
    culprit: &str,
    bad: &str,
    mut check: impl FnMut() -> anyhow::Result<Step>,
) -> anyhow::Result<Checks> {
    let home = home(tree)?;
    let result = (|| -> anyhow::Result<Checks> {
        let parent = match git(
            tree,
            &["rev-parse", "--verify", "-q", &format!("{culprit}^")],
        ) {
            Ok(parent) => {
                git(tree, &["checkout", "-q", "--detach", &parent])?;
                Some(check().context("checking the culprit's parent")?)
            }
            Err(_) => None,
        };
        git(tree, &["checkout", "-q", "--detach", bad])?;
        let reverted = match git(tree, &["revert", "--no-commit", culprit]) {
            Ok(_) => {
                Reverted::Ran(check().context("checking the bad commit with the culprit reverted")?)
            }
            Err(e) => {
                let why = format!("{e:#}");
                let first = why
                    .lines()
                    .map(str::trim)
                    .find(|l| l.starts_with("error:") || l.starts_with("fatal:"))
                    .unwrap_or_else(|| why.lines().next().unwrap_or_default())
                    .to_owned();
                Reverted::DoesNotApply(first)
            }
        };
        Ok(Checks {
            culprit: culprit.to_owned(),
            bad: bad.to_owned(),
            parent,
            reverted,
        })
    })();
    let back = go_home(tree, &home);
    let checks = result?;
    back?;
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::super::confidence::Tally;
    use super::*;

    fn step(commit: &str, decision: Decision, failing: &[&[&str]]) -> Step {
        let mut tally = Tally::default();
        for f in failing {
            tally.add_run(&f.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        }
        Step {
            commit: commit.into(),
            decision,
            unbuildable: None,
            tally,
            build_secs: None,
            secs: 1.0,
        }
    }

    const CULPRIT: &str = "cccccccccccccccccccc";
    const PARENT: &str = "pppppppppppppppppppp";
    const BAD: &str = "bbbbbbbbbbbbbbbbbbbb";

    fn checks(parent: Option<Step>, reverted: Reverted) -> Checks {
        Checks {
            culprit: CULPRIT.into(),
            bad: BAD.into(),
            parent,
            reverted,
        }
    }

    fn passed(commit: &str) -> Step {
        step(commit, Decision::Good, &[&[], &[], &[]])
    }

    #[test]
    fn verified_when_both_pass_every_run() {
        let c = checks(Some(passed(PARENT)), Reverted::Ran(passed(BAD)));
        assert_eq!(c.verdict(), Verdict::Verified);
        assert_eq!(
            c.report(),
            "verified: its parent pppppppppppp passed 3 of 3 run(s); bbbbbbbbbbbb with it \
             reverted passed 3 of 3 run(s)"
        );
    }

    #[test]
    fn not_verified_says_which_check_failed_and_how() {
        let flaky_parent = step(PARENT, Decision::Skip, &[&[], &["k::a"]]);
        let c = checks(Some(flaky_parent), Reverted::Ran(passed(BAD)));
        assert_eq!(c.verdict(), Verdict::NotVerified);
        assert_eq!(
            c.report(),
            "not verified: its parent pppppppppppp failed in 1 of 2 run(s): k::a 1×; \
             bbbbbbbbbbbb with it reverted passed 3 of 3 run(s)"
        );
        let still_bad = step(BAD, Decision::Bad, &[&["k::a", "k::b"]]);
        let c = checks(Some(passed(PARENT)), Reverted::Ran(still_bad));
        assert_eq!(c.verdict(), Verdict::NotVerified);
        assert!(
            c.report().ends_with(
                "bbbbbbbbbbbb with it reverted failed in 1 of 1 run(s): k::a 1×, k::b 1×"
            ),
            "{}",
            c.report()
        );
        // A root commit has no parent to pass: nothing confirms it.
        let c = checks(None, Reverted::Ran(passed(BAD)));
        assert_eq!(c.verdict(), Verdict::NotVerified);
        assert!(c.report().contains("cccccccccccc has no parent to check"));
        // A parent that does not build proves nothing either.
        let mut unbuilt = step(PARENT, Decision::Skip, &[]);
        unbuilt.unbuildable = Some("make failed\nmore".into());
        let c = checks(Some(unbuilt), Reverted::Ran(passed(BAD)));
        assert_eq!(c.verdict(), Verdict::NotVerified);
        assert!(c
            .report()
            .contains("its parent pppppppppppp does not build (make failed)"));
    }

    #[test]
    fn a_revert_that_does_not_apply_is_said_and_the_parent_still_counts() {
        let conflict = Reverted::DoesNotApply("error: could not revert ccccccc".into());
        let c = checks(Some(passed(PARENT)), conflict.clone());
        assert_eq!(c.verdict(), Verdict::RevertDoesNotApply);
        assert_eq!(
            c.report(),
            "revert does not apply: its parent pppppppppppp passed 3 of 3 run(s); it does not \
             revert cleanly on bbbbbbbbbbbb (error: could not revert ccccccc)"
        );
        let c = checks(Some(step(PARENT, Decision::Bad, &[&["k::a"]])), conflict);
        assert_eq!(c.verdict(), Verdict::NotVerified);
    }

    /// A small repository: `base`, `culprit` (adds a line), `later` (another file), and a
    /// branch `conflict` whose last commit rewrites the culprit's line.
    fn repo() -> (tempfile::TempDir, [String; 4]) {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        let sh = |script: &str| {
            let out = std::process::Command::new("sh")
                .args(["-c", script])
                .current_dir(t)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@t")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@t")
                .output()
                .unwrap();
            assert!(out.status.success(), "{script}: {out:?}");
        };
        sh("git init -q -b main && echo a > f && git add f && git commit -q -m base");
        sh("echo broken >> f && git commit -q -am culprit");
        sh("echo x > g && git add g && git commit -q -m later");
        sh("git checkout -q -b conflict && echo rewritten > f && git commit -q -am rewrite && git checkout -q main");
        let rev = |r: &str| git(t, &["rev-parse", r]).unwrap();
        let shas = [rev("main~2"), rev("main~1"), rev("main"), rev("conflict")];
        (dir, shas)
    }

    #[test]
    fn the_checks_run_on_the_parent_and_the_revert_and_head_comes_back() {
        let (dir, [base, culprit, later, _]) = repo();
        let t = dir.path();
        let mut seen = vec![];
        let checks = run_checks(t, &culprit, &later, || {
            let f = std::fs::read_to_string(t.join("f")).unwrap();
            seen.push((
                git(t, &["rev-parse", "HEAD"]).unwrap(),
                f.contains("broken"),
            ));
            Ok(passed(&git(t, &["rev-parse", "HEAD"]).unwrap()))
        })
        .unwrap();
        // The parent as committed; the bad commit with the culprit's line taken out.
        assert_eq!(seen, [(base, false), (later.clone(), false)]);
        assert_eq!(checks.verdict(), Verdict::Verified);
        assert_eq!(
            git(t, &["symbolic-ref", "--short", "HEAD"]).unwrap(),
            "main"
        );
        assert_eq!(git(t, &["rev-parse", "HEAD"]).unwrap(), later);
        assert_eq!(git(t, &["status", "--porcelain"]).unwrap(), "");
    }

    #[test]
    fn a_revert_with_a_conflict_does_not_apply_and_leaves_nothing_behind() {
        let (dir, [_, culprit, _, conflict]) = repo();
        let t = dir.path();
        // Detached, as a user may be: HEAD comes back to the same commit.
        git(t, &["checkout", "-q", "--detach", &conflict]).unwrap();
        let mut runs = 0;
        let checks = run_checks(t, &culprit, &conflict, || {
            runs += 1;
            Ok(passed(&git(t, &["rev-parse", "HEAD"]).unwrap()))
        })
        .unwrap();
        assert_eq!(runs, 1, "only the parent is run");
        assert_eq!(checks.verdict(), Verdict::RevertDoesNotApply);
        assert!(
            matches!(&checks.reverted, Reverted::DoesNotApply(why) if why.contains("could not revert")),
            "{checks:?}"
        );
        assert_eq!(git(t, &["rev-parse", "HEAD"]).unwrap(), conflict);
        assert_eq!(git(t, &["status", "--porcelain"]).unwrap(), "");
    }

    #[test]
    fn a_harness_failure_in_a_check_still_puts_head_back() {
        let (dir, [_, culprit, later, _]) = repo();
        let t = dir.path();
        let mut n = 0;
        let err = run_checks(t, &culprit, &later, || {
            n += 1;
            if n == 2 {
                anyhow::bail!("the VM could not start");
            }
            Ok(passed("x"))
        })
        .unwrap_err();
        let e = format!("{err:#}");
        assert!(
            e.contains("checking the bad commit with the culprit reverted")
                && e.contains("the VM could not start"),
            "{e}"
        );
        assert_eq!(
            git(t, &["symbolic-ref", "--short", "HEAD"]).unwrap(),
            "main"
        );
        assert_eq!(git(t, &["status", "--porcelain"]).unwrap(), "");
    }
}
