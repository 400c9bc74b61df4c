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
    /// When the current long step's first unit was counted, for its ETA.
    build_began: Option<Instant>,
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
            build_began: None,
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
        self.advance(Step::Build, what, done, total, "steps");
    }

    /// Progress of a long step: `done` units of an expected `total`, with a percentage and
    /// an ETA at the pace so far; on a terminal the line updates in place.
    pub fn advance(
        &mut self,
        step: Step,
        what: &str,
        done: usize,
        total: Option<usize>,
        unit: &str,
    ) {
        let began = *self.build_began.get_or_insert_with(Instant::now);
        let pct = total
            .filter(|t| *t > 0)
            .map(|t| {
                let eta = eta(began.elapsed(), done, t)
                    .map(|e| format!(", ~{} left", clock(e)))
                    .unwrap_or_default();
                format!(" (~{}%{eta})", (done * 100 / t).min(99))
            })
            .unwrap_or_default();
        let line = format!(
            "{} {:<9} {what}: {done} {unit}{pct}",
            self.stamp(),
            step.name()
        );
        if self.tty {
            eprint!("\r{line}\x1b[K");
            let _ = std::io::stderr().flush();
        } else if self.last_line.elapsed() >= Duration::from_secs(15) {
            eprintln!("{line}");
            self.last_line = Instant::now();
        }
    }

    pub fn end_long_step(&mut self) {
        self.build_began = None;
        if self.tty {
            eprintln!();
        }
    }
}

/// What is left of a step, at the pace so far: `done` of `total` units took `elapsed`. None
/// until the pace means something (a few units in) or once past the expected total.
pub fn eta(elapsed: Duration, done: usize, total: usize) -> Option<Duration> {
    if done < total / 50 || done == 0 || done >= total {
        return None;
    }
    Some(elapsed.mul_f64((total - done) as f64 / done as f64))
}

/// `75 s`, `3 min 05 s`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s < 90 {
        format!("{s} s")
    } else {
        format!("{} min {:02} s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eta_follows_the_pace_so_far() {
        let e = eta(Duration::from_secs(60), 1000, 4000).unwrap();
        assert_eq!(e, Duration::from_secs(180));
        assert_eq!(clock(e), "3 min 00 s");
        assert_eq!(eta(Duration::from_secs(1), 5, 4000), None, "too early");
        assert!(eta(Duration::from_secs(1), 5, 100).is_some());
        assert_eq!(
            eta(Duration::from_secs(60), 4100, 4000),
            None,
            "past the count"
        );
    }
}
