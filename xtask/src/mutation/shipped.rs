//! The shipped kernel mutants: proof that the suite can fail. Each patch in
//! `kernel-configs/mutants/` breaks one promise of the ABI; built on top of the cached kernel
//! (an incremental rebuild), it must make at least one of the scenarios it names fail, while
//! the unpatched kernel passes them all.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use harness::model::{KernelRun, Origin, ScenarioInfo};

/// A mutant patch, with what its preamble says: the promise it `Breaks:` and the scenarios
/// that `Must catch:` it (full names, or `family::*`), over as many comment lines as needed.
#[derive(Debug, Clone)]
pub struct Mutant {
    pub name: String,
    pub path: PathBuf,
    pub breaks: String,
    pub catches: Vec<Catch>,
}

/// One entry of `Must catch:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Catch {
    Scenario(String),
    /// `family::*`: any scenario the family declares.
    Family(String),
}

impl std::fmt::Display for Catch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Catch::Scenario(n) => f.write_str(n),
            Catch::Family(fam) => write!(f, "{fam}::*"),
        }
    }
}

impl Catch {
    fn parse(token: &str) -> Catch {
        match token.strip_suffix("::*") {
            Some(family) => Catch::Family(family.to_owned()),
            None => Catch::Scenario(token.to_owned()),
        }
    }

    pub fn matches(&self, s: &ScenarioInfo) -> bool {
        match self {
            Catch::Scenario(n) => *n == s.name,
            Catch::Family(f) => *f == s.family,
        }
    }
}

impl Mutant {
    /// Does `scenario` count as catching this mutant?
    pub fn names(&self, scenario: &ScenarioInfo) -> bool {
        self.catches.iter().any(|c| c.matches(scenario))
    }
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
    let preamble: String = text
        .lines()
        .take_while(|l| !l.starts_with("--- ") && !l.starts_with("diff "))
        .map(|l| l.trim_start_matches(['#', ' ']))
        .collect::<Vec<_>>()
        .join(" ");
    // Each field runs until the next one starts.
    let field = |name: &str| -> Option<String> {
        let start = preamble.find(name)? + name.len();
        let rest = &preamble[start..];
        let end = ["Breaks:", "Must catch:"]
            .iter()
            .filter_map(|f| rest.find(f))
            .min()
            .unwrap_or(rest.len());
        Some(rest[..end].trim().to_owned())
    };
    let catches: Vec<Catch> = field("Must catch:")
        .unwrap_or_default()
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '*'))
        .filter(|t| t.contains("::"))
        .map(Catch::parse)
        .collect();
    if catches.is_empty() {
        bail!(
            "{}: the preamble names no scenario (`Must catch: family::name, family::*`)",
            path.display()
        );
    }
    let breaks = field("Breaks:").unwrap_or_default();
    let first_sentence = breaks
        .split_inclusive(". ")
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    Ok(Mutant {
        name: path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        path: path.to_owned(),
        breaks: first_sentence,
        catches,
    })
}

pub struct Row {
    pub mutant: Mutant,
    /// Failing scenarios, and apart from them the upstream selftests that fail on this mutant
    /// but not on the unpatched kernel: the comparison is the point.
    pub failing: Vec<String>,
    pub kselftests_failing: Vec<String>,
    pub caught: bool,
    /// With `--same-verdicts`: the failing scenarios of the second run, with `--jobs 1`.
    pub failing_one_at_a_time: Option<Vec<String>>,
    /// Seconds make took, or None when the build came from the cache.
    pub build_secs: Option<f64>,
    /// Seconds from the patch to the verdict: rebuild, boot, suite.
    pub verdict_secs: f64,
}

/// The median time from patch to verdict over the caught mutants.
pub fn killed_median_secs(rows: &[Row]) -> Option<f64> {
    let mut t: Vec<f64> = rows
        .iter()
        .filter(|r| r.caught)
        .map(|r| r.verdict_secs)
        .collect();
    if t.is_empty() {
        return None;
    }
    t.sort_by(f64::total_cmp);
    let n = t.len();
    Some(if n % 2 == 1 {
        t[n / 2]
    } else {
        (t[n / 2 - 1] + t[n / 2]) / 2.0
    })
}

/// The failing scenarios of one run, and apart from them the failing upstream selftests
/// (program-level verdicts left out where their tests are listed). The VM's own health trial
/// does not count: a mutant must break a promise that a check names.
pub fn failing(run: &KernelRun) -> (Vec<String>, Vec<String>) {
    let failed = |origin: Origin| -> Vec<String> {
        run.verdicts
            .iter()
            .filter(|v| v.origin == origin && v.verdict.is_fail())
            .map(|v| v.name.clone())
            .collect()
    };
    (failed(Origin::Scenario), failed(Origin::Upstream))
}

/// How the failing scenarios of a side-by-side run and a one-at-a-time run of one kernel
/// differ, if they do.
pub fn verdict_difference(side_by_side: &[String], one_at_a_time: &[String]) -> Option<String> {
    let only = |a: &[String], b: &[String]| -> Vec<String> {
        a.iter().filter(|n| !b.contains(n)).cloned().collect()
    };
    let (only_side, only_one) = (
        only(side_by_side, one_at_a_time),
        only(one_at_a_time, side_by_side),
    );
    (!only_side.is_empty() || !only_one.is_empty()).then(|| {
        format!(
            "failing only side by side: [{}]; failing only one at a time: [{}]",
            only_side.join(", "),
            only_one.join(", ")
        )
    })
}

/// The table docs/mutants.md shows: each mutant, its promise, what caught it.
pub fn table(base_failing: &[String], rows: &[Row]) -> String {
    let code = |names: &[String]| {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = String::from(
        "| mutant | the promise it breaks | scenarios failing | upstream selftests newly failing | rebuild |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        let failing = if r.failing.is_empty() {
            "**none: NOT CAUGHT**".to_owned()
        } else {
            format!("{}: {}", r.failing.len(), code(&r.failing))
        };
        let caught = if r.caught {
            String::new()
        } else {
            " (**not by a scenario its header names**)".to_owned()
        };
        // Upstream trial names without the shared `kselftest::` of every one of them.
        let upstream: Vec<String> = r
            .kselftests_failing
            .iter()
            .map(|n| {
                n.split_once("::")
                    .map_or(n.clone(), |(_, rest)| rest.to_owned())
            })
            .collect();
        s.push_str(&format!(
            "| `{}` | {} | {failing}{caught} | {} | {} |\n",
            r.mutant.name,
            r.mutant.breaks.trim_end_matches('.'),
            if upstream.is_empty() {
                "none".to_owned()
            } else {
                upstream.join(", ")
            },
            r.build_secs
                .map_or("cached".into(), |s| format!("{s:.0} s")),
        ));
    }
    if !base_failing.is_empty() {
        s.push_str(&format!(
            "\nThe unpatched kernel FAILED: {}\n",
            base_failing.join(", ")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_differ_only_when_a_scenario_fails_in_one_run_alone() {
        let v = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            verdict_difference(&v(&["a::x", "b::y"]), &v(&["b::y", "a::x"])),
            None
        );
        assert_eq!(verdict_difference(&v(&[]), &v(&[])), None);
        assert_eq!(
            verdict_difference(&v(&["a::x"]), &v(&["b::y"])).as_deref(),
            Some("failing only side by side: [a::x]; failing only one at a time: [b::y]")
        );
    }

    #[test]
    fn preamble_names_the_scenarios() {
        let m = parse(
            Path::new("fork-no-dup.patch"),
            "# Breaks: fork duplicates registrations. More prose.\n# Must catch: fork::a,\n# cow::* (the child\n# never sees a change).\n\n--- a/x\n+++ b/x\n",
        )
        .unwrap();
        assert_eq!(
            m.catches,
            [
                Catch::Scenario("fork::a".into()),
                Catch::Family("cow".into())
            ]
        );
        assert_eq!(m.breaks, "fork duplicates registrations.");
        let info = |name: &str| ScenarioInfo {
            name: name.into(),
            family: name.split("::").next().unwrap().into(),
            about: String::new(),
            optional: false,
            fault_warnings: false,
            fault_worker: false,
            alone: false,
            requires: vec![],
        };
        assert!(
            m.names(&info("cow::child_writes_first"))
                && m.names(&info("fork::a"))
                && !m.names(&info("fork::b"))
        );
        assert_eq!(m.name, "fork-no-dup");
        assert!(parse(Path::new("x.patch"), "--- a/x\n").is_err());
    }

    #[test]
    fn shipped_mutants_name_existing_scenarios() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-configs/mutants");
        let infos: Vec<ScenarioInfo> = guest_tests::scenarios::all()
            .iter()
            .map(guest_tests::framework::Entry::info)
            .collect();
        let mutants = load(&dir).unwrap();
        assert!(
            mutants.len() >= 10,
            "the shipped mutants are missing from {}",
            dir.display()
        );
        for m in mutants {
            for c in &m.catches {
                let probe = Mutant {
                    catches: vec![c.clone()],
                    ..m.clone()
                };
                assert!(
                    infos.iter().any(|i| probe.names(i)),
                    "{}: names {c}, which matches no scenario",
                    m.path.display()
                );
            }
        }
    }
}
