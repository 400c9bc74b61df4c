//! `cargo xtask flakes`: the trials that both failed and passed on one kernel over the last
//! runs of the flake history ([`crate::cache::history`]), by flake rate, with the load the
//! host had when they failed. A trial that failed and then passed on a retry within one run
//! (`--retries`) is flaky by itself. A trial that fails every time is broken, not flaky, and
//! is not listed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::cache::history::{self, Entry, Outcome};

#[derive(Args)]
pub struct FlakesArgs {
    /// How many of the last recorded kernel runs to look at (each kernel of a matrix is one).
    #[arg(long, default_value_t = 50, allow_negative_numbers = true, value_parser = crate::args::number_in::<usize, 1, 100_000>)]
    pub last: usize,
    /// Print the list as JSON, for scripts.
    #[arg(long)]
    pub json: bool,
    /// Cache directory (default $UE_CACHE_DIR or ~/.cache/ue-harness).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

/// A trial on one kernel that failed in some runs and passed in others.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Flake {
    pub trial: String,
    pub kernel: String,
    /// Runs where it failed, including those where it then passed on a retry.
    pub failed: usize,
    /// Of `failed`, the runs where it passed on a retry (`--retries`): flaky within the run.
    pub flaky_in_run: usize,
    /// Runs that judged it: failed + passed (ignored runs are not counted).
    pub runs: usize,
    /// The host's load average at each failure, when it was read.
    pub loads_when_failed: Vec<f64>,
    /// The run folders of the failures, newest last.
    pub failed_runs: Vec<PathBuf>,
}

impl Flake {
    pub fn rate(&self) -> f64 {
        self.failed as f64 / self.runs as f64
    }
}

/// The flaky trials of `entries`, the highest rate first.
pub fn flakes(entries: &[Entry]) -> Vec<Flake> {
    let mut by: BTreeMap<(String, String), Flake> = BTreeMap::new();
    for e in entries {
        for t in &e.trials {
            let f = by
                .entry((t.name.clone(), e.kernel.clone()))
                .or_insert_with(|| Flake {
                    trial: t.name.clone(),
                    kernel: e.kernel.clone(),
                    failed: 0,
                    flaky_in_run: 0,
                    runs: 0,
                    loads_when_failed: vec![],
                    failed_runs: vec![],
                });
            match t.outcome {
                Outcome::Fail => {
                    f.failed += 1;
                    f.runs += 1;
                    f.loads_when_failed.extend(e.load);
                    f.failed_runs.push(e.run_dir.clone());
                }
                // Failed and passed within one run: a flake on its own, counted as a run that
                // failed (it needed a retry) where the host's load was what it was.
                Outcome::Flaky => {
                    f.failed += 1;
                    f.runs += 1;
                    f.flaky_in_run += 1;
                    f.loads_when_failed.extend(e.load);
                    f.failed_runs.push(e.run_dir.clone());
                }
                Outcome::Pass | Outcome::KnownBug => f.runs += 1,
                Outcome::Ignored => {}
            }
        }
    }
    // A flake within a run is one by itself; otherwise it takes a failed run and a passed one.
    let mut out: Vec<Flake> = by
        .into_values()
        .filter(|f| f.flaky_in_run > 0 || (f.failed > 0 && f.failed < f.runs))
        .collect();
    out.sort_by(|a, b| {
        b.rate()
            .total_cmp(&a.rate())
            .then(b.failed.cmp(&a.failed))
            .then(a.trial.cmp(&b.trial))
            .then(a.kernel.cmp(&b.kernel))
    });
    out
}

/// The table people read.
pub fn table(flakes: &[Flake], runs: usize) -> String {
    if flakes.is_empty() {
        return format!("no flaky trials in the last {runs} runs\n");
    }
    let rows: Vec<[String; 4]> = flakes
        .iter()
        .map(|f| {
            [
                f.trial.clone(),
                f.kernel.clone(),
                if f.flaky_in_run > 0 {
                    format!(
                        "{} of {} ({:.0}%; {} passed on a retry)",
                        f.failed,
                        f.runs,
                        f.rate() * 100.0,
                        f.flaky_in_run
                    )
                } else {
                    format!("{} of {} ({:.0}%)", f.failed, f.runs, f.rate() * 100.0)
                },
                if f.loads_when_failed.is_empty() {
                    "-".into()
                } else {
                    f.loads_when_failed
                        .iter()
                        .map(|l| format!("{l:.1}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ]
        })
        .collect();
    let head = ["trial", "kernel", "failed", "load when it failed"];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([head[i].len()])
            .max()
            .unwrap_or(0)
    };
    let w = [width(0), width(1), width(2)];
    let line = |r: [&str; 4]| {
        format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}\n",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2]
        )
    };
    let mut s = format!(
        "{} flaky trial(s) in the last {runs} runs (failed in some, passed in others, on one kernel; or passed on a retry):\n",
        flakes.len()
    );
    s.push_str(&line(head));
    for r in &rows {
        s.push_str(&line([&r[0], &r[1], &r[2], &r[3]]));
    }
    s
}

pub fn run(a: FlakesArgs) -> anyhow::Result<ExitCode> {
    let cache = crate::cache::cache_dir(a.cache_dir.as_deref());
    let all = history::read(&cache)?;
    if all.is_empty() && !a.json {
        println!(
            "no flaky trials: no run recorded yet in {} (test, matrix and rerun record theirs)",
            cache.join(history::FILE).display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let last = &all[all.len().saturating_sub(a.last)..];
    let found = flakes(last);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        print!("{}", table(&found, last.len()));
    }
    // A list, not a verdict: the flakes are there to be fixed, and the runs already failed.
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::history::Trial;

    fn entry(kernel: &str, load: f64, trials: &[(&str, Outcome)]) -> Entry {
        Entry {
            time: 0,
            kernel: kernel.into(),
            load: Some(load),
            run_dir: format!("runs/{kernel}-{load}").into(),
            trials: trials
                .iter()
                .map(|(n, o)| Trial {
                    name: (*n).into(),
                    outcome: *o,
                })
                .collect(),
        }
    }

    #[test]
    fn flaky_is_failed_and_passed_on_one_kernel_highest_rate_first() {
        use Outcome::*;
        let h = [
            entry(
                "6.12",
                0.5,
                &[
                    ("steady", Pass),
                    ("broken", Fail),
                    ("rare", Pass),
                    ("often", Fail),
                    ("bug", KnownBug),
                ],
            ),
            entry(
                "6.12",
                4.2,
                &[
                    ("steady", Pass),
                    ("broken", Fail),
                    ("rare", Fail),
                    ("often", Fail),
                    ("bug", KnownBug),
                ],
            ),
            entry(
                "6.12",
                0.7,
                &[
                    ("steady", Pass),
                    ("broken", Fail),
                    ("rare", Pass),
                    ("often", Pass),
                    ("bug", KnownBug),
                ],
            ),
            entry(
                "7.2",
                3.0,
                &[
                    ("steady", Ignored),
                    ("broken", Fail),
                    ("rare", Pass),
                    ("often", Pass),
                ],
            ),
            // Failed on one kernel, passed on another: two kernels, no flake.
            entry("7.2", 3.0, &[("split", Fail)]),
            entry("6.12", 3.0, &[("split", Pass)]),
        ];
        let f = flakes(&h);
        let got: Vec<(&str, &str, usize, usize)> = f
            .iter()
            .map(|f| (f.trial.as_str(), f.kernel.as_str(), f.failed, f.runs))
            .collect();
        assert_eq!(got, [("often", "6.12", 2, 3), ("rare", "6.12", 1, 3)]);
        assert_eq!(f[1].loads_when_failed, [4.2]);
        assert_eq!(f[1].failed_runs, [PathBuf::from("runs/6.12-4.2")]);
        let t = table(&f, h.len());
        assert!(t.starts_with("2 flaky trial(s) in the last 6 runs"), "{t}");
        assert!(t.contains("often  6.12    2 of 3 (67%)  0.5, 4.2"), "{t}");
    }

    /// Failed and then passed on a retry within one run: flaky with that run alone, and
    /// counted as a failed run beside the runs where it passed at once.
    #[test]
    fn a_flake_within_one_run_is_listed_alone() {
        use Outcome::*;
        let h = [
            entry("6.12", 3.5, &[("retried", Flaky), ("steady", Pass)]),
            entry("6.12", 0.5, &[("retried", Pass), ("steady", Pass)]),
        ];
        let f = flakes(&h);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].failed, f[0].flaky_in_run, f[0].runs), (1, 1, 2));
        assert_eq!(f[0].loads_when_failed, [3.5]);
        let t = table(&f, h.len());
        assert!(t.contains("1 of 2 (50%; 1 passed on a retry)"), "{t}");
        assert_eq!(flakes(&h[..1]).len(), 1, "one run is enough");
    }

    #[test]
    fn none_says_so() {
        let h = [entry("6.12", 1.0, &[("a", Outcome::Pass)])];
        assert_eq!(
            table(&flakes(&h), 1),
            "no flaky trials in the last 1 runs\n"
        );
    }
}
