//! The mutation report: each mutant's outcome (and the upstream selftests' apart), scores per
//! function and for the key functions, shards merged, as Markdown and JSON.

use std::collections::BTreeMap;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::training::{wilson95, SampleKind};
use super::{MutantSpec, KEY_FUNCTIONS};

/// What became of one mutant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// A scenario failed (the first one, by name).
    Killed { by: String },
    /// Every scenario passed.
    Survived,
    /// A limit ran out (a hang is a detection, counted apart).
    TimedOut { what: String },
    /// Object code identical to the unmutated build's (trivial compiler equivalence).
    Equivalent,
    /// Judged equivalent by a person (kernel-configs/mutate/judged.toml).
    JudgedEquivalent { reason: String },
    /// The compiler or the linker refused it.
    NotCompiled { error: String },
}

/// What the upstream selftests made of the same mutant, counted apart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Upstream {
    Killed { by: String },
    Survived,
    NotRun,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MutantResult {
    pub mutant: MutantSpec,
    pub outcome: Outcome,
    pub upstream: Upstream,
    /// Wall seconds spent on it (build and boot).
    pub secs: f64,
    /// Of those, the build's (compile, compare with the unmutated objects, link); reports
    /// from before this was recorded have none.
    #[serde(default)]
    pub build_secs: Option<f64>,
    /// The change with two lines of context, for the report.
    pub diff: String,
    /// What became of it on the other architectures it was run on (`mutate --arch`, which
    /// runs a report's survivors there): a change the x86-64 kernel compiles away or never
    /// reaches (a big-endian branch, a 32-bit path) can still be caught on another.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elsewhere: Vec<ArchResult>,
    /// For a survivor: the reason of its `[[gap]]` entry in judged.toml (a difference no
    /// check here sees). Still a miss in every score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<String>,
}

/// One survivor run again on another architecture, with its C guest programs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchResult {
    pub arch: harness::arch::Arch,
    pub outcome: Outcome,
    pub secs: f64,
    /// The checkout whose guest programs judged it (as [`Report::suite`]).
    #[serde(default)]
    pub suite: Option<String>,
}

impl MutantResult {
    /// The architecture whose checks detected it where x86-64's did not (the first, in the
    /// order they ran), if any.
    pub fn detected_elsewhere(&self) -> Option<&ArchResult> {
        if self.outcome != Outcome::Survived {
            return None;
        }
        self.elsewhere
            .iter()
            .find(|e| matches!(e.outcome, Outcome::Killed { .. } | Outcome::TimedOut { .. }))
    }
}

/// `mutate.json`: one run, or several shards merged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub source: String,
    pub tool: String,
    pub seed: u64,
    pub sample: Option<usize>,
    /// Whether the seed trained the suite (kernel-configs/mutate/training.toml) when the run
    /// started; reports written before this was recorded have none.
    #[serde(default)]
    pub kind: Option<SampleKind>,
    pub shards: Vec<String>,
    pub functions: Vec<String>,
    pub wall_secs: f64,
    /// Scenarios that failed on the unmutated kernel: left out, since they decide nothing.
    pub unreliable: Vec<String>,
    /// Upstream tests that fail on the unmutated kernel (in any of its boots): their failures
    /// do not count.
    pub upstream_failing_unmutated: Vec<String>,
    /// Upstream tests that fail on the unmutated kernel when they boot alone, as they do
    /// again for a mutant the suite caught (see `mutation::upstream`): there they do not
    /// count either. Right after boot, with no suite before them, some of the tree's own
    /// tests fail by their timing (a DEL in an RCU grace period). Reports from before this
    /// was recorded have none, and their upstream figures are high by those failures.
    #[serde(default)]
    pub upstream_failing_unmutated_alone: Vec<String>,
    /// How many times the unmutated kernel booted before the mutants (reports from before
    /// this was recorded booted it once).
    #[serde(default = "one")]
    pub baseline_runs: u32,
    /// The list kernel whose tree's selftests were the upstream side (None: the mutated tree's
    /// own).
    #[serde(default)]
    pub kselftests_from: Option<String>,
    /// The checkout whose scenarios judged the newest results (its commit, `-dirty` with
    /// uncommitted changes): a figure is that suite's. Reports from before this was recorded
    /// have none.
    #[serde(default)]
    pub suite: Option<String>,
    pub results: Vec<MutantResult>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Tally {
    /// Killed on x86-64, or a survivor there killed on another architecture (also counted in
    /// `elsewhere`).
    pub killed: usize,
    /// Of `killed`: survivors on x86-64 that another architecture's run caught.
    pub elsewhere: usize,
    pub survived: usize,
    pub timed_out: usize,
    pub equivalent: usize,
    pub not_compiled: usize,
    pub upstream_killed: usize,
    pub upstream_survived: usize,
}

impl Outcome {
    /// Its kind, as the JSON's `outcome` spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Killed { .. } => "killed",
            Outcome::Survived => "survived",
            Outcome::TimedOut { .. } => "timed_out",
            Outcome::Equivalent => "equivalent",
            Outcome::JudgedEquivalent { .. } => "judged_equivalent",
            Outcome::NotCompiled { .. } => "not_compiled",
        }
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

impl Tally {
    fn add(&mut self, r: &MutantResult) {
        match &r.outcome {
            Outcome::Killed { .. } => self.killed += 1,
            Outcome::Survived if r.detected_elsewhere().is_some() => {
                self.killed += 1;
                self.elsewhere += 1;
            }
            Outcome::Survived => self.survived += 1,
            Outcome::TimedOut { .. } => self.timed_out += 1,
            Outcome::Equivalent | Outcome::JudgedEquivalent { .. } => self.equivalent += 1,
            Outcome::NotCompiled { .. } => self.not_compiled += 1,
        }
        match r.upstream {
            Upstream::Killed { .. } => self.upstream_killed += 1,
            Upstream::Survived => self.upstream_survived += 1,
            Upstream::NotRun => {}
        }
    }

    /// Detected (killed or hung) of the mutants that ran and are not equivalent.
    pub fn score(&self) -> Option<f64> {
        let n = self.killed + self.survived + self.timed_out;
        (n > 0).then(|| (self.killed + self.timed_out) as f64 / n as f64)
    }

    pub fn upstream_score(&self) -> Option<f64> {
        let n = self.upstream_killed + self.upstream_survived;
        (n > 0).then(|| self.upstream_killed as f64 / n as f64)
    }
}

impl Report {
    /// Names each survivor's `[[gap]]` entry of `judged` (and drops one whose entry went),
    /// so that the report reads the current judged.toml.
    pub fn note_gaps(&mut self, judged: &super::JudgedList) {
        for r in &mut self.results {
            r.gap = match r.outcome {
                Outcome::Survived => judged.find_gap(&r.mutant).map(|j| j.reason.clone()),
                _ => None,
            };
        }
    }

    pub fn tally<'a>(results: impl Iterator<Item = &'a MutantResult>) -> Tally {
        let mut t = Tally::default();
        for r in results {
            t.add(r);
        }
        t
    }

    /// Shards of one run (same source, tool, seed and sample) as one report.
    pub fn merge(parts: Vec<Report>) -> anyhow::Result<Report> {
        let mut it = parts.into_iter();
        let Some(mut first) = it.next() else {
            bail!("no report to merge")
        };
        for p in it {
            if (p.source.as_str(), p.tool.as_str(), p.seed, p.sample)
                != (
                    first.source.as_str(),
                    first.tool.as_str(),
                    first.seed,
                    first.sample,
                )
            {
                bail!(
                    "reports of different runs: {} seed {} sample {:?} vs {} seed {} sample {:?}",
                    first.source,
                    first.seed,
                    first.sample,
                    p.source,
                    p.seed,
                    p.sample
                );
            }
            if p.kselftests_from != first.kselftests_from {
                bail!(
                    "reports whose upstream sides differ: {:?}'s selftests vs {:?}'s",
                    first.kselftests_from,
                    p.kselftests_from
                );
            }
            // A shard's baseline is as strong as its fewest boots.
            first.baseline_runs = first.baseline_runs.min(p.baseline_runs);
            first
                .upstream_failing_unmutated
                .extend(p.upstream_failing_unmutated);
            first.upstream_failing_unmutated.sort();
            first.upstream_failing_unmutated.dedup();
            first
                .upstream_failing_unmutated_alone
                .extend(p.upstream_failing_unmutated_alone);
            first.upstream_failing_unmutated_alone.sort();
            first.upstream_failing_unmutated_alone.dedup();
            // A shard that knew its seed as training makes the whole a training figure.
            if p.kind == Some(SampleKind::Training) || first.kind.is_none() {
                first.kind = p.kind;
            }
            first.shards.extend(p.shards);
            first.unreliable.extend(p.unreliable);
            first.unreliable.sort();
            first.unreliable.dedup();
            if p.suite != first.suite {
                bail!(
                    "reports of different suites: {:?} vs {:?} (shards of one run come from one commit)",
                    first.suite,
                    p.suite
                );
            }
            first.wall_secs = first.wall_secs.max(p.wall_secs);
            first.results.extend(p.results);
        }
        first.results.sort_by(|a, b| a.mutant.id.cmp(&b.mutant.id));
        first.results.dedup_by(|a, b| a.mutant.id == b.mutant.id);
        Ok(first)
    }

    /// The whole file's score, with its 95% interval and what kind of figure it is.
    fn headline(&self, all: &Tally) -> String {
        let ran = all.killed + all.timed_out + all.survived;
        let detected = all.killed + all.timed_out;
        let elsewhere = if all.elsewhere > 0 {
            format!(
                ", {} of them survivors on x86-64 caught on {}",
                all.elsewhere,
                self.arches_elsewhere().join(" and ")
            )
        } else {
            String::new()
        };
        let score = match (all.score(), wilson95(detected, ran)) {
            (Some(p), Some((lo, hi))) => format!(
                "{:.1}% ({detected} of {ran}{elsewhere}; 95% interval {:.0}–{:.0}%)",
                p * 100.0,
                lo * 100.0,
                hi * 100.0
            ),
            _ => "no mutant ran".to_owned(),
        };
        let kind = match self.kind {
            Some(SampleKind::Validation) => "**Validation figure**: no mutant of this sample trained the suite; this estimates how often it catches a mutant nobody pointed at".to_owned(),
            Some(SampleKind::Training) => "**Training figure**: this sample's survivors (or those of a sample it contains) were used to write scenarios (kernel-configs/mutate/training.toml); this says they were dealt with, not how often the suite catches a new mutant".to_owned(),
            None => "Sample kind not recorded (a report from before training seeds were kept)".to_owned(),
        };
        let up_ran = all.upstream_killed + all.upstream_survived;
        let upstream = match (all.upstream_score(), wilson95(all.upstream_killed, up_ran)) {
            (Some(p), Some((lo, hi))) => format!(
                "{:.1}% ({} of {up_ran}; 95% interval {:.0}–{:.0}%)",
                p * 100.0,
                all.upstream_killed,
                lo * 100.0,
                hi * 100.0
            ),
            _ => "not run".to_owned(),
        };
        let basis = format!(
            "the selftests of {}, counting only the tests that passed on all {} boot{} of the unmutated kernel",
            self.kselftests_from
                .as_deref()
                .map_or("the mutated tree".to_owned(), |k| format!("{k}'s tree")),
            self.baseline_runs,
            if self.baseline_runs == 1 { "" } else { "s" }
        );
        format!("{kind}. This suite: {score}. Upstream selftests on the same mutants ({basis}): {upstream}.\n\n")
    }

    /// The other architectures that caught a survivor, in the order of the first result that
    /// names each (one that ran and caught nothing is not named in the headline).
    fn arches_elsewhere(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = vec![];
        for e in self
            .results
            .iter()
            .filter_map(MutantResult::detected_elsewhere)
        {
            if !v.contains(&e.arch.name()) {
                v.push(e.arch.name());
            }
        }
        v
    }

    /// What the run cost: per kind of outcome, how many, their total and median seconds, and
    /// for those that booted, how much of it was the build. A run of every mutant of a set is
    /// planned from these.
    fn cost(&self) -> String {
        let mut by_kind: BTreeMap<&str, Vec<&MutantResult>> = BTreeMap::new();
        for r in &self.results {
            by_kind.entry(r.outcome.kind()).or_default().push(r);
        }
        if by_kind.is_empty() {
            return String::new();
        }
        let n = self.results.len();
        let mut s = format!(
            "\nCost: {:.0} s wall for {n} mutants, {:.1} s per mutant (the unmutated boots included).\n\n| outcome | mutants | total s | median s | median build s |\n|---|---:|---:|---:|---:|\n",
            self.wall_secs,
            self.wall_secs / n as f64
        );
        for (kind, rs) in &by_kind {
            let total: f64 = rs.iter().map(|r| r.secs).sum();
            let builds: Vec<f64> = rs.iter().filter_map(|r| r.build_secs).collect();
            s.push_str(&format!(
                "| {kind} | {} | {total:.0} | {:.1} | {} |\n",
                rs.len(),
                median(rs.iter().map(|r| r.secs).collect()).unwrap_or(0.0),
                median(builds).map_or("–".to_owned(), |m| format!("{m:.1}"))
            ));
        }
        s
    }

    pub fn markdown(&self) -> String {
        let pct = |x: Option<f64>| x.map_or("–".to_owned(), |v| format!("{:.1}%", v * 100.0));
        let all = Report::tally(self.results.iter());
        let key = Report::tally(
            self.results
                .iter()
                .filter(|r| KEY_FUNCTIONS.contains(&r.mutant.function.as_str())),
        );
        let mut s = format!(
            "## cargo xtask mutate\n\n{} mutants of {} ({}; seed {}, sample {}, shards {}), {:.0} s wall; the suite of {}.\n\n",
            self.results.len(),
            self.source,
            self.tool,
            self.seed,
            self.sample.map_or("all".to_owned(), |n| n.to_string()),
            if self.shards.is_empty() { "-".to_owned() } else { self.shards.join(", ") },
            self.wall_secs,
            self.suite.as_deref().unwrap_or("an unrecorded commit")
        );
        s.push_str(&self.headline(&all));
        s.push_str("| where | killed | timed out | survived | equivalent | not compiled | this suite | upstream selftests |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
        let row = |name: &str, t: &Tally| {
            format!(
                "| {name} | {} | {} | {} | {} | {} | {} | {} |\n",
                t.killed,
                t.timed_out,
                t.survived,
                t.equivalent,
                t.not_compiled,
                pct(t.score()),
                pct(t.upstream_score())
            )
        };
        s.push_str(&row("**whole file(s)**", &all));
        s.push_str(&row(
            "**key functions** (enabler write, faults, mm dup/remove, REG/UNREG)",
            &key,
        ));
        let mut by_fn: BTreeMap<&str, Vec<&MutantResult>> = BTreeMap::new();
        for r in &self.results {
            by_fn.entry(r.mutant.function.as_str()).or_default().push(r);
        }
        for (f, rs) in &by_fn {
            s.push_str(&row(&format!("`{f}`"), &Report::tally(rs.iter().copied())));
        }
        s.push_str("\nScores: detected (killed or timed out) of the mutants that ran and are not equivalent; the upstream selftests on the same mutants (their tests that fail on the unmutated kernel too do not count).\n");
        s.push_str(&self.cost());
        if !self.unreliable.is_empty() {
            s.push_str(&format!(
                "\nLeft out, failing on the unmutated kernel: {}.\n",
                self.unreliable.join(", ")
            ));
        }
        let caught_elsewhere: Vec<&MutantResult> = self
            .results
            .iter()
            .filter(|r| r.detected_elsewhere().is_some())
            .collect();
        if !caught_elsewhere.is_empty() {
            s.push_str(&format!(
                "\n### Survivors on x86-64 caught on another architecture ({})\n\n",
                caught_elsewhere.len()
            ));
            for r in caught_elsewhere {
                let e = r.detected_elsewhere().expect("filtered on it");
                s.push_str(&format!(
                    "- `{}` in `{}`: {} on {} ({:.0} s)\n",
                    r.mutant.id,
                    r.mutant.function,
                    match &e.outcome {
                        Outcome::Killed { by } => format!("killed by {by}"),
                        other => other.kind().replace('_', " "),
                    },
                    e.arch.name(),
                    e.secs
                ));
            }
        }
        let survivors: Vec<&MutantResult> = self
            .results
            .iter()
            .filter(|r| r.outcome == Outcome::Survived && r.detected_elsewhere().is_none())
            .collect();
        if !survivors.is_empty() {
            let gaps = survivors.iter().filter(|r| r.gap.is_some()).count();
            let of_them = match gaps {
                0 => String::new(),
                n => format!(
                    "; {n} of them known gaps, judged not equivalent with a reason in judged.toml and still counted as misses"
                ),
            };
            s.push_str(&format!("\n### Survivors ({}{of_them})\n", survivors.len()));
            for r in survivors {
                s.push_str(&format!(
                    "\n`{}` in `{}` (upstream: {}):\n\n```diff\n{}```\n",
                    r.mutant.id,
                    r.mutant.function,
                    match &r.upstream {
                        Upstream::Killed { by } => format!("killed by {by}"),
                        Upstream::Survived => "survived".into(),
                        Upstream::NotRun => "not run".into(),
                    },
                    r.diff
                ));
                if let Some(why) = &r.gap {
                    s.push_str(&format!("\nKnown gap: {why}\n"));
                }
                for e in &r.elsewhere {
                    s.push_str(&format!(
                        "\nOn {}: {}.\n",
                        e.arch.name(),
                        e.outcome.kind().replace('_', " ")
                    ));
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, outcome: Outcome, upstream: Upstream) -> MutantResult {
        MutantResult {
            mutant: MutantSpec {
                id: id.into(),
                file: "kernel/trace/trace_events_user.c".into(),
                line: 1,
                function: "user_event_mm_dup".into(),
                original: "a".into(),
                mutated: "b".into(),
            },
            outcome,
            upstream,
            secs: 1.0,
            build_secs: Some(0.5),
            gap: None,
            diff: String::new(),
            elsewhere: vec![],
        }
    }

    fn report(from: Option<&str>, runs: u32, results: Vec<MutantResult>) -> Report {
        Report {
            source: "linux 6.12".into(),
            tool: "kernel operators".into(),
            seed: 5,
            sample: Some(10),
            kind: Some(SampleKind::Validation),
            shards: vec![],
            functions: vec![],
            wall_secs: 1.0,
            unreliable: vec![],
            upstream_failing_unmutated: vec![],
            upstream_failing_unmutated_alone: vec![],
            baseline_runs: runs,
            kselftests_from: from.map(String::from),
            suite: Some("abc123".into()),
            results,
        }
    }

    #[test]
    fn the_upstream_figure_has_its_interval_and_says_what_counted() {
        let killed = || Outcome::Killed { by: "x".into() };
        let up = || Upstream::Killed {
            by: "kselftest::abi_test::y".into(),
        };
        let r = report(
            Some("7.3-rc"),
            3,
            vec![
                result("a", killed(), up()),
                result("b", killed(), Upstream::Survived),
                result("c", Outcome::Survived, Upstream::Survived),
                result("d", Outcome::Equivalent, Upstream::NotRun),
            ],
        );
        let md = r.markdown();
        assert!(
            md.contains("This suite: 66.7% (2 of 3; 95% interval"),
            "{md}"
        );
        assert!(
            md.contains("| killed | 2 | 2 | 1.0 | 0.5 |\n")
                && md.contains("| equivalent | 1 | 1 | 1.0 | 0.5 |\n"),
            "{md}"
        );
        assert!(md.contains("Upstream selftests on the same mutants (the selftests of 7.3-rc's tree, counting only the tests that passed on all 3 boots of the unmutated kernel): 33.3% (1 of 3; 95% interval"), "{md}");
    }

    #[test]
    fn a_survivors_gap_entry_is_named_and_still_a_miss() {
        let mut report = report(
            None,
            1,
            vec![
                result("gap", Outcome::Survived, Upstream::Survived),
                result("open", Outcome::Survived, Upstream::Survived),
                result("k", Outcome::Killed { by: "x".into() }, Upstream::Survived),
            ],
        );
        report.results[2].mutant.line = 2;
        let entry = |line: usize| super::super::choose::Judged {
            file: "kernel/trace/trace_events_user.c".into(),
            line,
            original: "a".into(),
            mutated: "b".into(),
            reason: "differs only on a HIGHMEM kernel, which the harness does not build".into(),
        };
        report.results[1].mutant.mutated = "c".into();
        let judged = super::super::JudgedList {
            equivalent: vec![],
            // Line 2 is the killed one's: a gap entry names survivors only.
            gaps: vec![entry(1), entry(2)],
        };
        report.note_gaps(&judged);
        assert!(report.results[0]
            .gap
            .as_deref()
            .is_some_and(|g| g.contains("HIGHMEM")));
        assert_eq!(
            (
                report.results[1].gap.as_ref(),
                report.results[2].gap.as_ref()
            ),
            (None, None)
        );
        let t = Report::tally(report.results.iter());
        assert_eq!((t.killed, t.survived), (1, 2));
        let md = report.markdown();
        assert!(
            md.contains("### Survivors (2; 1 of them known gaps"),
            "{md}"
        );
        assert!(
            md.contains("Known gap: differs only on a HIGHMEM kernel"),
            "{md}"
        );
    }

    #[test]
    fn a_survivor_caught_on_another_architecture_counts_as_detected_and_is_named() {
        let mut caught = result("be", Outcome::Survived, Upstream::Survived);
        caught.elsewhere.push(ArchResult {
            arch: harness::arch::Arch::S390x,
            outcome: Outcome::Killed {
                by: "guest::abi_core::bits".into(),
            },
            secs: 40.0,
            suite: None,
        });
        let mut missed = result("both", Outcome::Survived, Upstream::Survived);
        missed.elsewhere.push(ArchResult {
            arch: harness::arch::Arch::S390x,
            outcome: Outcome::Survived,
            secs: 50.0,
            suite: None,
        });
        let r = report(
            None,
            3,
            vec![
                result("k", Outcome::Killed { by: "x".into() }, Upstream::Survived),
                caught,
                missed,
            ],
        );
        let t = Report::tally(r.results.iter());
        assert_eq!((t.killed, t.elsewhere, t.survived), (2, 1, 1));
        let md = r.markdown();
        assert!(
            md.contains(
                "This suite: 66.7% (2 of 3, 1 of them survivors on x86-64 caught on s390x;"
            ),
            "{md}"
        );
        assert!(
            md.contains("- `be` in `user_event_mm_dup`: killed by guest::abi_core::bits on s390x"),
            "{md}"
        );
        assert!(
            md.contains("### Survivors (1)") && md.contains("On s390x: survived."),
            "{md}"
        );
        // Written only where there is something, so that older reports read the same.
        let v = serde_json::to_value(result("k", Outcome::Survived, Upstream::NotRun)).unwrap();
        assert!(v.get("elsewhere").is_none());
    }

    #[test]
    fn shards_merge_only_with_the_same_upstream_side_and_keep_the_weakest_baseline() {
        let a = report(Some("7.3-rc"), 3, vec![]);
        let b = report(Some("7.3-rc"), 2, vec![]);
        assert_eq!(Report::merge(vec![a.clone(), b]).unwrap().baseline_runs, 2);
        let c = report(None, 3, vec![]);
        assert!(Report::merge(vec![a, c]).is_err());
    }

    #[test]
    fn a_report_from_before_the_baseline_was_recorded_reads_as_one_boot_of_the_own_tree() {
        let mut v = serde_json::to_value(report(None, 3, vec![])).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("baseline_runs");
        o.remove("kselftests_from");
        let r: Report = serde_json::from_value(v).unwrap();
        assert_eq!((r.baseline_runs, r.kselftests_from), (1, None));
    }
}
