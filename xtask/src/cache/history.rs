//! The flake history: each run of `test`, `matrix` and `rerun` appends one line per kernel
//! run to `<cache>/history.jsonl` (its trials' outcomes, when, the host's load, the run
//! folder), the last [`KEEP`] kept. `cargo xtask flakes` reads it. A flaky scenario is a
//! defect to fix; this is how it is found after the run that showed it is gone.
//!
//! Writing it never fails a run: a cache that cannot take it is said once, on stderr.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use harness::model::{KernelRun, Verdict};

/// The file, under the cache.
pub const FILE: &str = "history.jsonl";
/// Lines (kernel runs) kept: enough for `flakes --last` over weeks of use, small enough to
/// read whole every time (a line is a few kB).
pub const KEEP: usize = 500;

/// One trial's outcome in one run, as `flakes` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    Ignored,
    /// Failed as the kernel's known bug says it must: not a flake.
    KnownBug,
    /// Failed, then passed on a retry in the same run (`--retries`): a flake seen in one run.
    Flaky,
}

impl From<&Verdict> for Outcome {
    fn from(v: &Verdict) -> Outcome {
        match v {
            Verdict::Pass => Outcome::Pass,
            Verdict::Fail(_) => Outcome::Fail,
            Verdict::Ignored(_) => Outcome::Ignored,
            Verdict::KnownBug { .. } => Outcome::KnownBug,
            Verdict::Flaky { .. } => Outcome::Flaky,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Trial {
    pub name: String,
    pub outcome: Outcome,
}

/// One kernel's run: a line of the file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// Seconds since the epoch, when the run was recorded.
    pub time: u64,
    pub kernel: String,
    /// The host's 1-minute load average then (`/proc/loadavg`), when readable: a flake
    /// under load points at a wait that does not scale.
    pub load: Option<f64>,
    pub run_dir: PathBuf,
    pub trials: Vec<Trial>,
}

impl Entry {
    pub fn of(run: &KernelRun, time: u64, load: Option<f64>) -> Entry {
        Entry {
            time,
            kernel: run.kernel.label.clone(),
            load,
            run_dir: run.run_dir.clone(),
            trials: run
                .verdicts
                .iter()
                .map(|v| Trial {
                    name: v.name.clone(),
                    outcome: (&v.verdict).into(),
                })
                .collect(),
        }
    }
}

/// The 1-minute load average, from `/proc/loadavg`.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

static WARNED: AtomicBool = AtomicBool::new(false);

/// Appends `run` to the history under `cache`; a failure is a warning, said once per process.
pub fn record(cache: &Path, run: &KernelRun) {
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if let Err(e) = append(cache, &Entry::of(run, time, load_average()), KEEP) {
        if !WARNED.swap(true, Ordering::Relaxed) {
            eprintln!("warning: the flake history is not kept for this run: {e:#}");
        }
    }
}

/// Adds `entry` and keeps the last `keep` lines: under the cache's lock, the whole file
/// written aside and renamed, so a reader (or a killed writer) never sees half a line, and
/// kernels of a matrix finishing together do not lose each other's lines.
pub fn append(cache: &Path, entry: &Entry, keep: usize) -> anyhow::Result<()> {
    let path = cache.join(FILE);
    let lock = cache.join("history.lock");
    let _lock = super::lock(&lock).with_context(|| format!("lock {}", lock.display()))?;
    let old = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    let mut lines: Vec<&str> = old.lines().filter(|l| !l.trim().is_empty()).collect();
    let new = serde_json::to_string(entry)?;
    lines.push(&new);
    let from = lines.len().saturating_sub(keep);
    let mut text = lines[from..].join("\n");
    text.push('\n');
    super::write_atomic(&path, text.as_bytes())
}

/// The history's entries, oldest first; a line that does not read (a newer or damaged
/// format) is skipped rather than losing the rest. No file is no history.
pub fn read(cache: &Path) -> anyhow::Result<Vec<Entry>> {
    let path = cache.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness::model::{FailCause, Origin, ScenarioVerdict};

    fn entry(kernel: &str, time: u64) -> Entry {
        Entry {
            time,
            kernel: kernel.into(),
            load: Some(1.5),
            run_dir: format!("runs/{time}").into(),
            trials: vec![Trial {
                name: "a::b".into(),
                outcome: Outcome::Pass,
            }],
        }
    }

    #[test]
    fn appends_and_keeps_the_last_lines() {
        let d = tempfile::tempdir().unwrap();
        for t in 0..7 {
            append(d.path(), &entry("6.12", t), 5).unwrap();
        }
        let got = read(d.path()).unwrap();
        assert_eq!(
            got.iter().map(|e| e.time).collect::<Vec<_>>(),
            [2, 3, 4, 5, 6]
        );
        assert_eq!(got[0], entry("6.12", 2));
        // A damaged line loses itself alone.
        let path = d.path().join(FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{{half\n{text}")).unwrap();
        assert_eq!(read(d.path()).unwrap().len(), 5);
    }

    #[test]
    fn no_history_is_empty_and_an_unwritable_cache_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        assert!(read(d.path()).unwrap().is_empty());
        let file = d.path().join("not-a-dir");
        std::fs::write(&file, "").unwrap();
        let e = append(&file, &entry("6.12", 1), 5).unwrap_err();
        assert!(format!("{e:#}").contains("not-a-dir"), "{e:#}");
    }

    #[test]
    fn a_run_becomes_its_trials_outcomes() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/report/baseline-6.12");
        let mut run = harness::artifacts::read_results(&dir).unwrap();
        run.verdicts = vec![
            ScenarioVerdict::new("a::pass", Origin::Scenario, Verdict::Pass),
            ScenarioVerdict::new(
                "a::fail",
                Origin::Scenario,
                Verdict::fail(FailCause::Guest, "no"),
            ),
            ScenarioVerdict::new("a::skip", Origin::Scenario, Verdict::Ignored("x".into())),
        ];
        let e = Entry::of(&run, 7, None);
        assert_eq!(e.kernel, "6.12");
        assert_eq!(
            e.trials.iter().map(|t| t.outcome).collect::<Vec<_>>(),
            [Outcome::Pass, Outcome::Fail, Outcome::Ignored]
        );
    }
}
