//! What a finished run leaves in its folder for people, CI uploads and the bench:
//! `results.json` (a [`KernelRun`], read back typed by [`read_results`]), `junit.xml` and the
//! kernel's `.config`. The console log and QEMU command line are written while it runs.
//! Each retry (`--retries`) leaves the same files in its own `attempt-N/` folder, and the
//! run's own files hold the trials' outcomes over all attempts.

use std::path::Path;

use anyhow::Context as _;

use crate::model::KernelRun;

pub const RESULTS: &str = "results.json";

pub fn write(run: &KernelRun) -> anyhow::Result<()> {
    if let Some(cfg) = &run.kernel.config {
        let _ = std::fs::copy(cfg, run.run_dir.join("kernel.config"));
    }
    write_judged(run)
}

/// results.json and junit.xml of `run` and of each of its retries (the same kernel: its
/// `.config` is kept once, in the run's folder).
fn write_judged(run: &KernelRun) -> anyhow::Result<()> {
    let results = run.run_dir.join(RESULTS);
    std::fs::write(&results, serde_json::to_vec_pretty(run)?)
        .with_context(|| format!("write {}", results.display()))?;
    std::fs::write(run.run_dir.join("junit.xml"), crate::report::junit(run))
        .with_context(|| format!("write {}", run.run_dir.join("junit.xml").display()))?;
    for attempt in run.retries.iter().filter_map(|r| r.run.as_deref()) {
        write_judged(attempt)?;
    }
    Ok(())
}

pub fn read_results(run_dir: &Path) -> anyhow::Result<KernelRun> {
    let path = run_dir.join(RESULTS);
    let bytes = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parse {}", path.display()))
}
