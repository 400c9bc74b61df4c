//! `cargo xtask report`: the matrix table from kept runs, without booting anything. CI's last
//! job runs it over the `results.json` every kernel's job uploaded; people run it over
//! `target/ue-runs/latest-*`. With `--baseline`, only what changed against the baseline runs
//! ([`diff`]), failures grouped by [`symptom`].

mod diff;
mod symptom;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;
use harness::model::KernelRun;

#[derive(Args)]
pub struct ReportArgs {
    /// Run folders (holding results.json), or folders to search for them; with --baseline,
    /// the new runs.
    // Checked in `run`, not by clap: with --baseline, a missing `--` leaves no new runs,
    // and clap's "required argument" would not say that `--` is what was missing.
    #[arg(value_name = "DIR")]
    pub runs: Vec<PathBuf>,
    /// Compare against these runs (folders as DIR) and list only what changed: new failures
    /// grouped by symptom, fixes, new flakes, trials that appeared or went. Exits 101 when a
    /// trial fails that did not fail in the baseline. Put `--` before the new runs.
    #[arg(long, num_args = 1.., value_name = "BASE_DIR")]
    pub baseline: Vec<PathBuf>,
    /// Also write the table (with --baseline, the changes) as Markdown to this file, appended
    /// (CI: $GITHUB_STEP_SUMMARY).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

/// Every results.json at or below `dir` (eight levels at most: downloaded artifacts keep their runner paths).
fn find_results(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    if dir.join(harness::artifacts::RESULTS).is_file() {
        out.push(dir.to_owned());
        return;
    }
    if depth == 0 {
        return;
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for e in entries.into_iter().filter(|e| e.is_dir()) {
        find_results(&e, depth - 1, out);
    }
}

/// The runs at or below each of `dirs`, each of which must hold at least one: a baseline
/// folder given by mistake would otherwise compare against nothing and report everything.
fn read_each(dirs: &[PathBuf], what: &str) -> anyhow::Result<Vec<KernelRun>> {
    let mut runs = Vec::new();
    for d in dirs {
        let mut found = Vec::new();
        find_results(d, 8, &mut found);
        if found.is_empty() {
            bail!("{what} {}: no results.json in it or below it", d.display());
        }
        for f in found {
            runs.push(harness::artifacts::read_results(&f)?);
        }
    }
    Ok(runs)
}

fn write_markdown(path: Option<&Path>, md: &str) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("--markdown {}", path.display()))?;
    writeln!(f, "{md}").with_context(|| format!("write {}", path.display()))
}

pub fn run(a: ReportArgs) -> anyhow::Result<ExitCode> {
    if a.runs.is_empty() && !a.baseline.is_empty() {
        bail!(
            "--baseline {}: no new runs to compare; --baseline takes every folder up to `--`, put the new ones after it (cargo xtask report --baseline BASE_DIR -- DIR)",
            a.baseline
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    if a.runs.is_empty() {
        bail!("no run folders: give kept runs (target/ue-runs/latest-*) or folders holding them");
    }
    if !a.baseline.is_empty() {
        let base = read_each(&a.baseline, "--baseline")?;
        let new = read_each(&a.runs, "new run")?;
        let d = diff::Diff::new(&base, &new);
        let md = d.markdown();
        println!("{md}");
        write_markdown(a.markdown.as_deref(), &md)?;
        return Ok(crate::exit::trials(d.regressed()));
    }
    let mut dirs = Vec::new();
    for d in &a.runs {
        find_results(d, 8, &mut dirs);
    }
    dirs.dedup();
    if dirs.is_empty() {
        bail!(
            "no results.json under {}",
            a.runs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let runs: Vec<KernelRun> = dirs
        .iter()
        .map(|d| harness::artifacts::read_results(d))
        .collect::<anyhow::Result<_>>()?;
    let md = harness::report::matrix_markdown(&runs);
    println!("{md}");
    write_markdown(a.markdown.as_deref(), &md)?;
    Ok(crate::exit::trials(runs.iter().any(KernelRun::failed)))
}
