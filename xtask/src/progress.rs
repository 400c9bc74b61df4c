//! Shows that a long run is alive: the current step, the elapsed time, and for the kernel
//! build a count of objects. On a terminal the build line updates in place; in CI logs it
//! prints a line every few seconds instead.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// The stages a command reports. The bench reads how long each took from the
/// [`Progress`] it handed to the pipeline, not from the printed lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Download,
    Extract,
    /// A hard-linked copy of the pristine tree, with the patches applied.
    Copy,
    /// A patched build starts from a copy of the unpatched build folder.
    Seed,
    /// A developer's tree brought into its snapshot in the cache.
    Snapshot,
    Configure,
    Build,
    Kselftest,
    Guest,
    Boot,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Download => "download",
            Step::Extract => "extract",
            Step::Copy => "patch",
            Step::Seed => "patch",
            Step::Snapshot => "snapshot",
            Step::Configure => "configure",
            Step::Build => "build",
            Step::Kselftest => "kselftest",
            Step::Guest => "guest",
            Step::Boot => "boot",
        }
    }
}

pub struct Progress {
    start: Instant,
    tty: bool,
    last_line: Instant,
    /// Each step and when it began, seconds from `start`.
    steps: Vec<(Step, f64)>,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            start: Instant::now(),
            tty: std::io::stderr().is_terminal(),
            last_line: Instant::now(),
            steps: vec![],
        }
    }

    fn stamp(&self) -> String {
        format!("[{:>6.1}s]", self.start.elapsed().as_secs_f64())
    }

    /// A new step begins.
    pub fn step(&mut self, step: Step, what: &str) {
        self.steps.push((step, self.start.elapsed().as_secs_f64()));
        eprintln!("{} {:<9} {what}", self.stamp(), step.name());
    }

    /// Seconds since this progress began.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// When `step` first began and when the step after it began (or now), in seconds.
    pub fn span(&self, step: Step) -> Option<(f64, f64)> {
        let i = self.steps.iter().position(|(s, _)| *s == step)?;
        let end = self
            .steps
            .get(i + 1)
            .map_or_else(|| self.elapsed(), |(_, t)| *t);
        Some((self.steps[i].1, end))
    }

    pub fn note(&mut self, what: &str) {
        eprintln!("{} {:<9} {what}", self.stamp(), "");
    }

    /// Build progress: `done` kbuild steps of an expected `total` (from the last build).
    pub fn building(&mut self, what: &str, done: usize, total: Option<usize>) {
        let pct = total
            .filter(|t| *t > 0)
            .map(|t| format!(" (~{}%)", (done * 100 / t).min(99)))
            .unwrap_or_default();
        let line = format!("{} {:<9} {what}: {done} steps{pct}", self.stamp(), "build");
        if self.tty {
            eprint!("\r{line}\x1b[K");
            let _ = std::io::stderr().flush();
        } else if self.last_line.elapsed() >= Duration::from_secs(15) {
            eprintln!("{line}");
            self.last_line = Instant::now();
        }
    }

    pub fn end_building(&mut self) {
        if self.tty {
            eprintln!();
        }
    }
}
