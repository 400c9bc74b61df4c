//! Which samples trained the suite: seeds whose survivors were turned into scenarios (or
//! judged). A score measured again on such a sample is a training figure, not a detection
//! rate, so the report labels every score by its sample's kind and `mutate` warns before it
//! re-measures one. The list is `kernel-configs/mutate/training.toml`, committed, so every
//! machine and CI job knows it; `--resume --rerun-survivors` (the step after writing
//! scenarios for a sample's survivors) adds its seed by itself.

use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// The file under `kernel-configs/`.
pub const FILE: &str = "mutate/training.toml";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Training {
    #[serde(default, rename = "sample")]
    pub samples: Vec<TrainingSample>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingSample {
    /// Every sample drawn with this seed counts as training: a larger sample of the same
    /// seed draws the same mutants first.
    pub seed: u64,
    /// The set it was drawn from (`--operators`): universalmutator's unless said.
    #[serde(default = "universal")]
    pub operators: String,
    /// What was done with it, and when.
    pub why: String,
}

fn universal() -> String {
    "universal".to_owned()
}

/// Whether a report's sample trained the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleKind {
    /// Its survivors were used to write scenarios: the score says they were dealt with.
    Training,
    /// Never used to write scenarios: the score estimates the detection rate.
    Validation,
}

impl Training {
    pub fn load(path: &Path) -> anyhow::Result<Training> {
        match std::fs::read_to_string(path) {
            Ok(t) => toml::from_str(&t).with_context(|| format!("parse {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Training::default()),
            Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
        }
    }

    /// A run of `operators` (`universal`, `kernel` or `all`) with `seed`: training when a
    /// listed sample of the same set used that seed; a run of every mutant (no `--sample`)
    /// is training when any sample of its set trained the suite, since it contains them.
    pub fn kind(&self, operators: &str, seed: u64, sampled: bool) -> SampleKind {
        let mut same_set = self
            .samples
            .iter()
            .filter(|s| operators == "all" || s.operators == operators);
        if same_set.any(|s| !sampled || s.seed == seed) {
            SampleKind::Training
        } else {
            SampleKind::Validation
        }
    }

    /// Adds `seed` (once) and writes the file back, keeping its leading comment.
    pub fn record(path: &Path, operators: &str, seed: u64, why: &str) -> anyhow::Result<bool> {
        let mut t = Training::load(path)?;
        if t.samples
            .iter()
            .any(|s| s.seed == seed && s.operators == operators)
        {
            return Ok(false);
        }
        t.samples.push(TrainingSample {
            seed,
            operators: operators.to_owned(),
            why: why.to_owned(),
        });
        let old = std::fs::read_to_string(path).unwrap_or_default();
        let header: String = old
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let body = toml::to_string(&t)?;
        std::fs::write(path, format!("{header}\n{body}"))
            .with_context(|| format!("write {}", path.display()))?;
        Ok(true)
    }
}

/// The 95% Wilson score interval of `k` detected of `n`: honest at the small counts and
/// scores near 100% a mutation sample has, where the normal approximation is not.
pub fn wilson95(k: usize, n: usize) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let (k, n, z) = (k as f64, n as f64, 1.959_964);
    let p = k / n;
    let d = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / d;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / d;
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_of_the_measured_validation_score() {
        // 73 of 102 (the two out-of-sample samples of December 2026): about 62-80%.
        let (lo, hi) = wilson95(73, 102).unwrap();
        assert!(
            (0.62..0.63).contains(&lo) && (0.79..0.80).contains(&hi),
            "{lo} {hi}"
        );
        let (lo, hi) = wilson95(10, 10).unwrap();
        assert!(lo > 0.69 && lo < 0.73 && hi > 0.999_999, "{lo} {hi}");
        assert_eq!(wilson95(0, 0), None);
    }

    #[test]
    fn a_recorded_seed_is_training_and_the_header_stays() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("training.toml");
        std::fs::write(&p, "# the header\n\n[[sample]]\nseed = 1\nwhy = \"x\"\n").unwrap();
        let t = Training::load(&p).unwrap();
        assert_eq!(t.kind("universal", 1, true), SampleKind::Training);
        assert_eq!(t.kind("universal", 2, true), SampleKind::Validation);
        // Every universal mutant contains seed 1's sample; the kernel set trained nothing.
        assert_eq!(t.kind("universal", 2, false), SampleKind::Training);
        assert_eq!(t.kind("kernel", 1, false), SampleKind::Validation);
        assert_eq!(t.kind("all", 1, true), SampleKind::Training);
        assert!(Training::record(&p, "kernel", 2, "survivors rerun").unwrap());
        assert!(!Training::record(&p, "kernel", 2, "again").unwrap());
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("# the header\n"), "{text}");
        assert_eq!(
            Training::load(&p).unwrap().kind("kernel", 2, true),
            SampleKind::Training
        );
        assert_eq!(
            Training::load(&d.path().join("none")).unwrap(),
            Training::default()
        );
    }

    /// The committed list parses and holds the samples the docs call training.
    #[test]
    fn the_committed_list_parses() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../kernel-configs")
            .join(FILE);
        let t = Training::load(&p).unwrap();
        for seed in [1, 20261203, 777] {
            assert_eq!(
                t.kind("universal", seed, true),
                SampleKind::Training,
                "seed {seed}"
            );
        }
    }
}
