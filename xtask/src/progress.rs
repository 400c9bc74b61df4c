//! Shows that a long run is alive: the current step, the elapsed time, and for the kernel
//! build a count of objects. On a terminal the build line updates in place; in CI logs it
//! prints a line every few seconds instead.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    start: Instant,
    tty: bool,
    last_line: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        Progress { start: Instant::now(), tty: std::io::stderr().is_terminal(), last_line: Instant::now() }
    }

    fn stamp(&self) -> String {
        format!("[{:>6.1}s]", self.start.elapsed().as_secs_f64())
    }

    /// A new step: `download`, `extract`, `patch`, `configure`, `build`, `guest`, `image`, `boot`.
    pub fn step(&mut self, step: &str, what: &str) {
        eprintln!("{} {step:<9} {what}", self.stamp());
    }

    pub fn note(&mut self, what: &str) {
        eprintln!("{} {:<9} {what}", self.stamp(), "");
    }

    /// Build progress: `done` kbuild steps of an expected `total` (from the last build).
    pub fn building(&mut self, what: &str, done: usize, total: Option<usize>) {
        let pct = total.filter(|t| *t > 0).map(|t| format!(" (~{}%)", (done * 100 / t).min(99))).unwrap_or_default();
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
