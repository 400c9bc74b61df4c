//! `cargo xtask mutants`: proves that the suite can fail. Each patch in
//! `kernel-configs/mutants/` breaks one promise of the ABI; built on top of the cached kernel
//! (an incremental rebuild), it must make at least one of the scenarios it names fail, while
//! the unpatched kernel passes them all.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use harness::suite;
use harness::verdict::Verdict;

/// A mutant patch and the scenarios it names in its preamble (`Catches: a::b, c::d`).
#[derive(Debug, Clone)]
pub struct Mutant {
    pub name: String,
    pub path: PathBuf,
    pub breaks: String,
    pub catches: Vec<String>,
}

pub fn load(dir: &Path) -> anyhow::Result<Vec<Mutant>> {
    let mut out = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "patch"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path)?;
        out.push(parse(&path, &text)?);
    }
    Ok(out)
}

pub fn parse(path: &Path, text: &str) -> anyhow::Result<Mutant> {
    let preamble: Vec<&str> = text.lines().take_while(|l| !l.starts_with("--- ") && !l.starts_with("diff ")).collect();
    let field = |name: &str| preamble.iter().find_map(|l| l.trim_start_matches(['#', ' ']).strip_prefix(name)).map(str::trim);
    let catches: Vec<String> = field("Catches:")
        .map(|s| s.split(',').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect())
        .unwrap_or_default();
    if catches.is_empty() {
        bail!("{}: the preamble names no scenario (`Catches: family::name, ...`)", path.display());
    }
    Ok(Mutant {
        name: path.file_stem().unwrap_or_default().to_string_lossy().into_owned(),
        path: path.to_owned(),
        breaks: field("Breaks:").unwrap_or("").to_owned(),
        catches,
    })
}

pub struct Row {
    pub mutant: Mutant,
    pub failing: Vec<String>,
    pub caught: bool,
    /// Seconds make took, or None when the build came from the cache.
    pub build_secs: Option<f64>,
}

/// The failing scenarios of one run; the VM's own health trial does not count, since a
/// mutant must break a promise a scenario checks.
pub fn failing(run: &suite::KernelRun) -> Vec<String> {
    run.verdicts
        .iter()
        .filter(|v| matches!(v.verdict, Verdict::Fail(_)) && v.name != harness::verdict::HEALTH)
        .map(|v| v.name.clone())
        .collect()
}

pub fn table(base_failing: &[String], rows: &[Row]) -> String {
    let mut s = String::from("| mutant | breaks | expected to fail | observed failing | caught | rebuild |\n|---|---|---|---|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.mutant.name,
            r.mutant.breaks,
            r.mutant.catches.join(", "),
            if r.failing.is_empty() { "none".to_owned() } else { r.failing.join(", ") },
            if r.caught { "yes" } else { "**NO**" },
            r.build_secs.map_or("cached".into(), |s| format!("{s:.0} s")),
        ));
    }
    if !base_failing.is_empty() {
        s.push_str(&format!("\nThe unpatched kernel FAILED: {}\n", base_failing.join(", ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble_names_the_scenarios() {
        let m = parse(
            Path::new("fork-no-dup.patch"),
            "Breaks: fork duplicates registrations\nCatches: fork::a, cow::b\n\ndiff --git a/x b/x\n--- a/x\n+++ b/x\n",
        )
        .unwrap();
        assert_eq!(m.catches, ["fork::a", "cow::b"]);
        assert_eq!(m.name, "fork-no-dup");
        assert!(parse(Path::new("x.patch"), "--- a/x\n").is_err());
    }

    #[test]
    fn shipped_mutants_name_existing_scenarios() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-configs/mutants");
        if !dir.exists() {
            return;
        }
        let names: Vec<String> = {
            // The guest's list, compiled into this test through the guest crate's sources is not
            // possible (it is a static binary); read the names from its source files instead.
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-tests/src/scenarios");
            std::fs::read_dir(src)
                .unwrap()
                .flatten()
                .flat_map(|e| {
                    let t = std::fs::read_to_string(e.path()).unwrap();
                    t.split("name: \"").skip(1).map(|s| s.split('"').next().unwrap().to_owned()).collect::<Vec<_>>()
                })
                .collect()
        };
        for m in load(&dir).unwrap() {
            for c in &m.catches {
                assert!(names.contains(c), "{}: names {c}, which is not a scenario", m.path.display());
            }
        }
    }
}
