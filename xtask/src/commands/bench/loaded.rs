//! Row 12: the whole suite, `--runs` times, on the default kernel while the host is loaded
//! with two busy processes per core, interleaved run by run with the same suite unloaded.
//! It counts the failed trials. On a clean kernel the count should be zero: a trial that
//! fails only under load has a wait that is not a poll, or a window that does not scale with
//! a slow guest. That is a defect of the scenario, and this row is how it is found.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::sys::proc;

use super::suite::{warm_suite, SuiteSample};
use super::table::Row;
use super::{say, Group, Setup};

/// Busy processes per host core while the loaded runs go.
const BUSY_PER_CORE: usize = 2;

/// Busy processes that load the host while they live. Each is a tracked child (its own
/// process group, killed by SIGKILL if the bench dies, stopped by the interrupt watcher on
/// Ctrl-C); dropping the guard kills and reaps every one, on every path out of the row.
pub(super) struct HostLoad {
    busy: Vec<(Child, proc::Tracked)>,
}

impl HostLoad {
    /// Starts `processes` shell loops that never sleep.
    pub(super) fn start(processes: usize) -> anyhow::Result<HostLoad> {
        // The guard exists before the first spawn, so a spawn that fails midway still
        // kills the ones already running.
        let mut load = HostLoad { busy: Vec::new() };
        for i in 0..processes {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", "while :; do :; done"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let child = proc::spawn(&mut cmd)
                .with_context(|| format!("start busy process {} of {processes} (sh)", i + 1))?;
            load.busy.push(child);
        }
        Ok(load)
    }

    #[cfg(test)]
    fn pids(&self) -> Vec<u32> {
        self.busy.iter().map(|(c, _)| c.id()).collect()
    }
}

impl Drop for HostLoad {
    fn drop(&mut self) {
        for (child, _tracked) in &mut self.busy {
            let _ = proc::kill_and_reap(child);
        }
    }
}

/// Samples the host's runnable threads once a second while it lives: the load a run really
/// saw. The 1-minute load average lags by about a minute, which is most of a run.
struct LoadSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<f64>>,
}

impl LoadSampler {
    fn start() -> LoadSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !seen.load(Ordering::Relaxed) {
                samples.extend(runnable_now());
                std::thread::sleep(Duration::from_secs(1));
            }
            samples
        });
        LoadSampler { stop, thread }
    }

    /// The mean of the samples (None when the run was too short for one).
    fn finish(self) -> Option<f64> {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.thread.join().unwrap_or_default();
        (!samples.is_empty()).then(|| samples.iter().sum::<f64>() / samples.len() as f64)
    }
}

/// Runnable threads on the host now, from /proc/loadavg's `running/total` field, less the
/// reading thread itself.
fn runnable_now() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    runnable_in(&text)
}

fn runnable_in(loadavg: &str) -> Option<f64> {
    let running: f64 = loadavg
        .split_whitespace()
        .nth(3)?
        .split('/')
        .next()?
        .parse()
        .ok()?;
    Some((running - 1.0).max(0.0))
}

/// The 1-minute load average now.
fn load_1min() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One run of the suite, as row 12 keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteRun {
    /// End to end, seconds (what row 2 measures).
    pub wall_s: f64,
    /// The trials that failed, by name (empty: the run passed).
    pub failed: Vec<String>,
    /// The run's folder: its console log and results.json.
    pub run_dir: PathBuf,
    /// The mean of the host's runnable threads, sampled once a second through the run.
    pub runnable_mean: Option<f64>,
    /// The 1-minute load average at the run's end.
    pub load_1min_at_end: Option<f64>,
}

/// How often one trial failed among a set of runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialFailures {
    pub name: String,
    pub runs: usize,
}

/// A set of runs of the suite (loaded or not) and what failed in them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SuiteRuns {
    pub runs: Vec<SuiteRun>,
}

impl SuiteRuns {
    pub fn runs_failed(&self) -> usize {
        self.runs.iter().filter(|r| !r.failed.is_empty()).count()
    }

    pub fn failed_trials(&self) -> usize {
        self.runs.iter().map(|r| r.failed.len()).sum()
    }

    /// Each trial that failed and in how many runs, most often first.
    pub fn by_trial(&self) -> Vec<TrialFailures> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for name in self.runs.iter().flat_map(|r| &r.failed) {
            *counts.entry(name).or_default() += 1;
        }
        let mut by: Vec<TrialFailures> = counts
            .into_iter()
            .map(|(name, runs)| TrialFailures {
                name: name.to_owned(),
                runs,
            })
            .collect();
        by.sort_by(|a, b| b.runs.cmp(&a.runs).then_with(|| a.name.cmp(&b.name)));
        by
    }

    fn walls(&self) -> Vec<f64> {
        self.runs.iter().map(|r| r.wall_s).collect()
    }

    /// `5 runs, 0 with a failed trial` or `..., 1 with a failed trial, 2 failed trials: a (1), b (1)`,
    /// then the load the runs saw.
    fn note(&self) -> String {
        let mut s = format!(
            "{} run(s), {} with a failed trial",
            self.runs.len(),
            self.runs_failed()
        );
        let failed = self.failed_trials();
        if failed > 0 {
            let names: Vec<String> = self
                .by_trial()
                .iter()
                .map(|t| format!("{} ({})", t.name, t.runs))
                .collect();
            s.push_str(&format!(
                ", {failed} failed trial(s): {} (run folders in bench.json)",
                names.join(", ")
            ));
        }
        let runnable: Vec<f64> = self.runs.iter().filter_map(|r| r.runnable_mean).collect();
        let at_end: Vec<f64> = self
            .runs
            .iter()
            .filter_map(|r| r.load_1min_at_end)
            .collect();
        if let (Some(r), Some(l)) = (median(&runnable), median(&at_end)) {
            s.push_str(&format!(
                "; host load: {r:.1} runnable threads on average (median of runs), 1-min load average {l:.1} at a run's end"
            ));
        }
        s
    }
}

fn median(xs: &[f64]) -> Option<f64> {
    Row::new(Group::LoadedSuite, "", "", xs.to_vec(), "").median
}

/// Row 12's measurement, as bench.json keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnderLoad {
    /// Busy processes that ran beside each loaded run.
    pub busy_processes: usize,
    pub host_cpus: usize,
    pub loaded: SuiteRuns,
    /// The same suite without the busy processes, run by run between the loaded ones.
    pub unloaded: SuiteRuns,
}

impl UnderLoad {
    pub(super) fn rows(&self) -> Vec<Row> {
        let unloaded = Row::new(
            Group::LoadedSuite,
            "12.idle",
            "  the same without the busy processes, interleaved run by run",
            self.unloaded.walls(),
            self.unloaded.note(),
        );
        let loaded = Row::new(
            Group::LoadedSuite,
            "12",
            &format!(
                "whole suite under load: {} busy processes ({BUSY_PER_CORE} per core), end to end",
                self.busy_processes
            ),
            self.loaded.walls(),
            self.loaded.note(),
        )
        .ratio_to(unloaded.median, "unloaded");
        vec![loaded, unloaded]
    }
}

fn kept(sample: SuiteSample, runnable_mean: Option<f64>) -> SuiteRun {
    SuiteRun {
        wall_s: sample.total,
        failed: sample.failed,
        run_dir: sample.run_dir,
        runnable_mean,
        load_1min_at_end: load_1min(),
    }
}

fn said(run: &SuiteRun) -> String {
    let load = run
        .runnable_mean
        .map_or(String::new(), |r| format!(", {r:.1} runnable threads"));
    if run.failed.is_empty() {
        format!("{:.1} s{load}, passed", run.wall_s)
    } else {
        format!(
            "{:.1} s{load}, FAILED: {} ({})",
            run.wall_s,
            run.failed.join(", "),
            run.run_dir.display()
        )
    }
}

/// Runs the suite `runs` times unloaded and `runs` times loaded, one of each in turn.
pub(super) fn measure(s: &Setup, runs: usize) -> anyhow::Result<UnderLoad> {
    let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let busy_processes = BUSY_PER_CORE * host_cpus;
    let mut m = UnderLoad {
        busy_processes,
        host_cpus,
        loaded: SuiteRuns::default(),
        unloaded: SuiteRuns::default(),
    };
    for i in 0..runs {
        let n = format!("{}/{runs}", i + 1);
        proc::check()?;
        let sampler = LoadSampler::start();
        let sample = warm_suite(s, &s.kernel_args)?;
        let run = kept(sample, sampler.finish());
        say(&format!("12.idle suite unloaded, run {n}: {}", said(&run)));
        m.unloaded.runs.push(run);

        proc::check()?;
        let load = HostLoad::start(busy_processes)?;
        let sampler = LoadSampler::start();
        let sample = warm_suite(s, &s.kernel_args);
        let runnable = sampler.finish();
        drop(load);
        let run = kept(sample?, runnable);
        say(&format!(
            "12 suite beside {busy_processes} busy processes, run {n}: {}",
            said(&run)
        ));
        m.loaded.runs.push(run);
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn the_busy_processes_go_when_the_guard_goes() {
        let load = HostLoad::start(3).unwrap();
        let pids = load.pids();
        assert_eq!(pids.len(), 3);
        assert!(pids.iter().all(|p| alive(*p)), "{pids:?} running");
        drop(load);
        // Killed and reaped by the drop: no zombie left under /proc either.
        assert!(pids.iter().all(|p| !alive(*p)), "{pids:?} gone");
    }

    #[test]
    fn failures_are_counted_per_run_and_per_trial() {
        let run = |failed: &[&str]| SuiteRun {
            wall_s: 40.0,
            failed: failed.iter().map(|s| s.to_string()).collect(),
            run_dir: "r".into(),
            runnable_mean: Some(5.0),
            load_1min_at_end: Some(4.5),
        };
        let runs = SuiteRuns {
            runs: vec![run(&[]), run(&["b::x", "a::y"]), run(&["a::y"])],
        };
        assert_eq!((runs.runs_failed(), runs.failed_trials()), (2, 3));
        assert_eq!(
            runs.by_trial(),
            vec![
                TrialFailures {
                    name: "a::y".into(),
                    runs: 2
                },
                TrialFailures {
                    name: "b::x".into(),
                    runs: 1
                }
            ]
        );
        assert!(runs
            .note()
            .contains("3 failed trial(s): a::y (2), b::x (1)"));
        assert!(SuiteRuns::default().note().starts_with("0 run(s), 0 with"));
    }

    #[test]
    fn the_runnable_count_leaves_out_the_reader() {
        assert_eq!(runnable_in("4.10 3.20 2.90 6/412 31337\n"), Some(5.0));
        assert_eq!(runnable_in("garbage"), None);
    }
}
