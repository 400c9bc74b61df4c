//! `cargo xtask report`: the matrix table from kept runs, without booting anything. CI's last
//! job runs it over the `results.json` every kernel's job uploaded; people run it over
//! `target/ue-runs/latest-*`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;
use harness::model::KernelRun;

#[derive(Args)]
pub struct ReportArgs {
    /// Run folders (holding results.json), or folders to search for them.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Also write the table as Markdown to this file (CI: $GITHUB_STEP_SUMMARY).
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

pub fn run(a: ReportArgs) -> anyhow::Result<ExitCode> {
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
    if let Some(path) = &a.markdown {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("--markdown {}", path.display()))?;
        writeln!(f, "{md}").with_context(|| format!("write {}", path.display()))?;
    }
    Ok(crate::exit::trials(runs.iter().any(KernelRun::failed)))
}
