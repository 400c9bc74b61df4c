//! The shipped kernel mutants: proof that the suite can fail. Each patch in
//! `kernel-configs/mutants/` breaks one promise of the ABI; built on top of the cached kernel
//! (an incremental rebuild), it must make at least one of the scenarios it names fail, while
//! the unpatched kernel passes them all.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use harness::model::{KernelRun, Origin, ScenarioInfo};

/// A mutant patch, with what its preamble says: the promise it `Breaks:`, the checks that
/// `Must catch:` it (scenarios by full name or `family::*`, or a guest program's checks as
/// `guest::PROGRAM::CHECK`), over as many comment lines as needed, and the `Arches:` whose
/// kernels compile the code it changes (none said: every architecture).
#[derive(Debug, Clone)]
pub struct Mutant {
    pub name: String,
    pub path: PathBuf,
    pub breaks: String,
    pub catches: Vec<Catch>,
    /// Empty: every architecture. Otherwise the patch changes code only these compile (an
    /// `#ifdef __BIG_ENDIAN` branch, say): elsewhere the patched kernel is the unpatched one,
    /// so the mutant must survive there, and proves nothing.
    pub arches: Vec<Arch>,
}

/// A guest architecture a mutant's code is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Arm64,
    S390x,
}

impl Arch {
    /// As an `Arches:` line or `--arch` spells it.
    pub fn parse(word: &str) -> Option<Arch> {
        match word {
            "x86_64" | "x86-64" => Some(Arch::X86_64),
            "arm64" | "aarch64" => Some(Arch::Arm64),
            "s390x" => Some(Arch::S390x),
            _ => None,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
            Arch::S390x => "s390x",
        })
    }
}

/// One entry of `Must catch:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Catch {
    Scenario(String),
    /// `family::*`: any scenario the family declares.
    Family(String),
    /// `guest::PROGRAM::CHECK`: a KTAP result of one of this repository's guest programs
    /// (guest-tests/c/PROGRAM.c), reported as that trial.
    GuestCheck {
        program: String,
        check: String,
    },
}

impl std::fmt::Display for Catch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Catch::Scenario(n) => f.write_str(n),
            Catch::Family(fam) => write!(f, "{fam}::*"),
            Catch::GuestCheck { program, check } => write!(f, "guest::{program}::{check}"),
        }
    }
}

impl Catch {
    fn parse(token: &str) -> Catch {
        if let Some((program, check)) = token
            .strip_prefix("guest::")
            .and_then(|rest| rest.split_once("::"))
        {
            return Catch::GuestCheck {
                program: program.to_owned(),
                check: check.to_owned(),
            };
        }
        match token.strip_suffix("::*") {
            Some(family) => Catch::Family(family.to_owned()),
            None => Catch::Scenario(token.to_owned()),
        }
    }

    pub fn matches(&self, s: &ScenarioInfo) -> bool {
        match self {
            Catch::Scenario(n) => *n == s.name,
            Catch::Family(f) => *f == s.family,
            Catch::GuestCheck { .. } => false,
        }
    }

    /// Whether a failing trial of a guest program (`guest::PROGRAM::CHECK`) is this entry.
    pub fn matches_guest_trial(&self, trial: &str) -> bool {
        matches!(self, Catch::GuestCheck { .. }) && self.to_string() == trial
    }
}

impl Mutant {
    /// Does `scenario` count as catching this mutant?
    pub fn names(&self, scenario: &ScenarioInfo) -> bool {
        self.catches.iter().any(|c| c.matches(scenario))
    }

    /// Is the code it changes compiled for `arch`? Elsewhere it must survive.
    pub fn applies_to(&self, arch: Arch) -> bool {
        self.arches.is_empty() || self.arches.contains(&arch)
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
        let end = ["Breaks:", "Must catch:", "Arches:"]
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
    let mut arches = Vec::new();
    for word in field("Arches:").unwrap_or_default().split([' ', ',']) {
        let word = word.trim_end_matches('.');
        if word.is_empty() {
            continue;
        }
        match Arch::parse(word) {
            Some(a) => arches.push(a),
            None => bail!(
                "{}: `Arches: {word}` is no architecture (x86_64, arm64, s390x)",
                path.display()
            ),
        }
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
        arches,
    })
}

pub struct Row {
    pub mutant: Mutant,
    /// Failing scenarios, and apart from them the upstream selftests that fail on this mutant
    /// but not on the unpatched kernel: the comparison is the point.
    pub failing: Vec<String>,
    pub kselftests_failing: Vec<String>,
    pub caught: bool,
    /// The mutant changes code this run's architecture does not compile (`Arches:`): it must
    /// survive, every trial passing.
    pub off_arch: bool,
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

/// The failing scenarios (and checks of guest programs) of one run, and apart from them the
/// failing upstream selftests (program-level verdicts left out where their tests are
/// listed). The VM's own health trial does not count: a mutant must break a promise that a
/// check names.
pub fn failing(run: &KernelRun) -> (Vec<String>, Vec<String>) {
    let failed = |origins: &[Origin]| -> Vec<String> {
        run.verdicts
            .iter()
            .filter(|v| origins.contains(&v.origin) && v.verdict.is_fail())
            .map(|v| v.name.clone())
            .collect()
    };
    (
        failed(&[Origin::Scenario, Origin::Guest]),
        failed(&[Origin::Upstream]),
    )
}

/// Whether a row is as it must be: caught by a check it names, or, off its architectures,
/// caught by nothing.
pub fn row_holds(r: &Row) -> bool {
    if r.off_arch {
        r.failing.is_empty()
    } else {
        r.caught
    }
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
        let arches = || {
            r.mutant
                .arches
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let failing = match (r.failing.is_empty(), r.off_arch) {
            (true, true) => format!(
                "none: survives, as it must where its code is not compiled (only for {})",
                arches()
            ),
            (true, false) => "**none: NOT CAUGHT**".to_owned(),
            (false, _) => format!("{}: {}", r.failing.len(), code(&r.failing)),
        };
        let caught = match (r.caught, r.off_arch) {
            (_, true) if !r.failing.is_empty() => format!(
                " (**caught where its code is not compiled: is `Arches: {}` wrong?**)",
                arches()
            ),
            (true, _) | (false, true) => String::new(),
            (false, false) => " (**not by a check its header names**)".to_owned(),
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

    /// The check names of a C guest program's table (`{ "name", function, ... },` lines of
    /// abi_core.c's CHECKS): the names its KTAP results carry.
    fn c_program_checks(source: &str) -> Vec<String> {
        source
            .lines()
            .filter_map(|l| l.trim().strip_prefix("{ \""))
            .filter_map(|l| l.split_once('"'))
            .filter(|(_, rest)| rest.starts_with(", "))
            .map(|(name, _)| name.to_owned())
            .collect()
    }

    #[test]
    fn an_arch_restricted_mutant_names_guest_checks() {
        let m = parse(
            Path::new("be.patch"),
            "# Breaks: big-endian words. The rest.\n# Arches: s390x\n# Must catch: \n# guest::abi_core::word4_at0_bit0, fork::a.\n--- a/x\n",
        )
        .unwrap();
        assert_eq!(m.arches, [Arch::S390x]);
        assert!(m.applies_to(Arch::S390x) && !m.applies_to(Arch::X86_64));
        assert_eq!(
            m.catches[0],
            Catch::GuestCheck {
                program: "abi_core".into(),
                check: "word4_at0_bit0".into()
            }
        );
        assert!(m.catches[0].matches_guest_trial("guest::abi_core::word4_at0_bit0"));
        assert!(!m.catches[0].matches_guest_trial("guest::abi_core::word4_at4_bit0"));
        assert!(!m.catches[1].matches_guest_trial("fork::a"));
        assert_eq!(m.breaks, "big-endian words.");
        let every = parse(Path::new("x.patch"), "# Must catch: fork::a\n--- a/x\n").unwrap();
        assert!(every.arches.is_empty() && every.applies_to(Arch::X86_64));
        assert!(parse(
            Path::new("x.patch"),
            "# Arches: vax\n# Must catch: fork::a\n"
        )
        .is_err());
        let source = "static const struct check CHECKS[] = {\n\t{ \"a_b\", a_b, NULL },\n};\n";
        assert_eq!(c_program_checks(source), ["a_b"]);
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
                if let Catch::GuestCheck { program, check } = c {
                    let source = dir.join(format!("../../guest-tests/c/{program}.c"));
                    let text = std::fs::read_to_string(&source).unwrap_or_else(|e| {
                        panic!("{}: names {c}: {}: {e}", m.path.display(), source.display())
                    });
                    assert!(
                        c_program_checks(&text).contains(check),
                        "{}: names {c}, which {} does not report",
                        m.path.display(),
                        source.display()
                    );
                    continue;
                }
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
