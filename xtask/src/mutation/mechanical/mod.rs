//! Mechanical mutants of the user_events source, made by an established tool
//! (universalmutator, from PyPI, installed into the cache), not by the people who wrote the
//! scenarios: generated once per source and tool version, selected (by function, a seeded
//! sample, a shard), pruned (does not compile; object code identical to the unmutated build),
//! and classified from a boot of the suite and, apart, the upstream selftests.
//!
//! In the order a run uses them: [`generate`] (the tool, the mutants), [`choose`] (which ones,
//! and those judged by a person), [`workbench`] (built and pruned one at a time), [`report`].

use anyhow::bail;
use serde::{Deserialize, Serialize};

mod choose;
mod generate;
pub mod kernel_ops;
mod report;
pub mod training;
mod workbench;

pub use choose::{choose, parse_shard, Choice, JudgedList};
pub use generate::{generate, tool, tool_installed};
pub use report::{ArchResult, MutantResult, Outcome, Report, Upstream};
pub use training::{SampleKind, Training};
pub use workbench::{Build, Workbench};

/// The files whose mutants are made, relative to the kernel tree.
pub const TARGETS: [&str; 2] = [
    "kernel/trace/trace_events_user.c",
    "include/linux/user_events.h",
];

/// universalmutator's version, pinned so a cached set of mutants stays the same set.
pub const TOOL_VERSION: &str = "1.14.1";

/// The functions that carry the ABI's promises: the enabler write and its fault handling,
/// the mm's duplication on fork and removal on exit/exec, REG, UNREG and DEL, the lookup and
/// matching of an event, the `user_events_status` and `dynamic_events` output, an event's
/// references and destruction, and the release of the data file. Their score is reported
/// apart from the whole file's, and `--function key` takes every mutant of them.
pub const KEY_FUNCTIONS: &[&str] = &[
    "user_event_enabler_write",
    "user_event_enabler_fault_fixup",
    "user_event_enabler_queue_fault",
    "user_event_mm_fault_in",
    "user_event_enabler_update",
    "user_event_enabler_dup",
    "user_event_mm_dup",
    "user_event_mm_remove",
    "user_event_mm_destroy",
    "user_event_mm_release",
    "user_event_mm_get_all",
    "user_event_mm_attach",
    "user_event_mm_alloc",
    "user_event_mm_get",
    "user_event_mm_put",
    "user_event_enabler_create",
    "user_event_enabler_destroy",
    "user_event_enabler_exists",
    "user_event_mm_clear_bit",
    "user_events_fork",
    "user_events_exit",
    "user_events_execve",
    "user_events_ioctl_reg",
    "user_events_ioctl_unreg",
    "user_reg_get",
    "user_unreg_get",
    "current_user_event_enabler_exists",
    "user_event_last_ref",
    "user_events_ioctl_del",
    "delete_user_event",
    "find_user_event",
    "user_event_match",
    "user_fields_match",
    "user_field_match",
    "user_event_show",
    "user_seq_show",
    "user_events_release",
    "user_events_ref_add",
    "user_event_get",
    "user_event_put",
    "destroy_user_event",
    "user_event_free",
    "user_event_is_busy",
];

/// `--function`'s name for [`KEY_FUNCTIONS`].
pub const KEY: &str = "key";

/// One mutant: one line of one file changed by one of the tool's rules.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MutantSpec {
    /// `<file stem>.<the tool's number>`, stable for a source and tool version.
    pub id: String,
    /// Relative to the kernel tree.
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// The function the line is in, or `(file scope)`.
    pub function: String,
    pub original: String,
    pub mutated: String,
}

impl MutantSpec {
    /// The mutated file's text.
    pub fn apply(&self, original_text: &str) -> anyhow::Result<String> {
        let mut lines: Vec<&str> = original_text.split('\n').collect();
        let Some(l) = lines.get_mut(self.line - 1) else {
            bail!(
                "{}: line {} is past the end of {}",
                self.id,
                self.line,
                self.file
            )
        };
        if *l != self.original {
            bail!(
                "{}: line {} of {} is not what the mutant was made from",
                self.id,
                self.line,
                self.file
            );
        }
        *l = &self.mutated;
        Ok(lines.join("\n"))
    }

    /// A unified diff of the one line, with `context` lines around it, for reports.
    pub fn diff(&self, original_text: &str, context: usize) -> String {
        let lines: Vec<&str> = original_text.split('\n').collect();
        let at = self.line - 1;
        let from = at.saturating_sub(context);
        let to = (at + context + 1).min(lines.len());
        let mut s = format!(
            "--- a/{0}\n+++ b/{0}\n@@ -{1},{2} +{1},{2} @@ {3}\n",
            self.file,
            from + 1,
            to - from,
            self.function
        );
        for (i, l) in lines[from..to].iter().enumerate() {
            if from + i == at {
                s.push_str(&format!("-{l}\n+{}\n", self.mutated));
            } else {
                s.push_str(&format!(" {l}\n"));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::generate::functions_by_line;
    use super::*;

    const SRC: &str = "static int x;\n\nstatic void user_event_mm_dup(struct task_struct *t,\n\t\t\t      struct user_event_mm *old_mm)\n{\n\tint a = 1;\n\tif (a)\n\t\treturn;\n}\n\nint y;\n";

    fn spec(line: usize, mutated: &str) -> MutantSpec {
        let original = SRC.split('\n').nth(line - 1).unwrap().to_owned();
        MutantSpec {
            id: format!("t.{line}"),
            file: "k.c".into(),
            line,
            function: functions_by_line(SRC)[line - 1].clone(),
            original,
            mutated: mutated.into(),
        }
    }

    #[test]
    fn key_stands_for_the_key_functions_beside_other_names() {
        let all = vec![
            spec(6, "\tint a = 2;"),
            {
                let mut m = spec(11, "int y = 1;");
                m.function = "user_event_show".into();
                m
            },
            {
                let mut m = spec(1, "static int z;");
                m.function = "user_event_validate".into();
                m
            },
        ];
        let c = |f: &[&str]| Choice {
            functions: f.iter().map(|s| s.to_string()).collect(),
            ..Choice::default()
        };
        let ids = |f: &[&str]| -> Vec<String> {
            choose(&all, &c(f))
                .unwrap()
                .into_iter()
                .map(|m| m.id)
                .collect()
        };
        assert_eq!(ids(&[KEY]), ["t.6", "t.11"]);
        assert_eq!(ids(&[KEY, "user_event_validate"]), ["t.6", "t.11", "t.1"]);
    }

    #[test]
    fn lines_belong_to_the_function_whose_body_holds_them() {
        let f = functions_by_line(SRC);
        assert_eq!(f[0], "(file scope)");
        assert_eq!(f[5], "user_event_mm_dup");
        assert_eq!(f[8], "user_event_mm_dup");
        assert_eq!(f[10], "(file scope)");
    }

    #[test]
    fn a_mutant_applies_to_its_line_only_and_refuses_another_source() {
        let m = spec(7, "\tif (!a)");
        let out = m.apply(SRC).unwrap();
        assert!(out.contains("\tif (!a)\n\t\treturn;"));
        assert_eq!(out.len(), SRC.len() + 1);
        assert!(m.apply(&SRC.replace("if (a)", "if (b)")).is_err());
        let d = m.diff(SRC, 1);
        assert!(
            d.contains("-\tif (a)\n+\tif (!a)\n")
                && d.contains("@@ -6,3 +6,3 @@ user_event_mm_dup"),
            "{d}"
        );
    }

    #[test]
    fn samples_and_shards_are_deterministic_and_partition() {
        let all: Vec<MutantSpec> = (0..100)
            .map(|i| MutantSpec {
                id: format!("t.{i}"),
                file: "k.c".into(),
                line: 1,
                function: if i % 2 == 0 { "a".into() } else { "b".into() },
                original: String::new(),
                mutated: String::new(),
            })
            .collect();
        let c = Choice {
            sample: Some(30),
            seed: 7,
            ..Choice::default()
        };
        let one = choose(&all, &c).unwrap();
        assert_eq!(one, choose(&all, &c).unwrap());
        assert_eq!(one.len(), 30);
        // A larger sample of the same seed begins with the smaller one (`--resume` grows one).
        let more = choose(
            &all,
            &Choice {
                sample: Some(50),
                ..c.clone()
            },
        )
        .unwrap();
        assert_eq!(more[..30], one[..]);
        assert_ne!(
            one,
            choose(
                &all,
                &Choice {
                    seed: 8,
                    ..c.clone()
                }
            )
            .unwrap()
        );
        let mut shards: Vec<MutantSpec> = (1..=4)
            .flat_map(|i| {
                choose(
                    &all,
                    &Choice {
                        shard: Some((i, 4)),
                        ..c.clone()
                    },
                )
                .unwrap()
            })
            .collect();
        shards.sort_by(|a, b| a.id.cmp(&b.id));
        let mut sorted = one.clone();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(shards, sorted, "the shards of a sample are the sample");
        let only_a = choose(
            &all,
            &Choice {
                functions: vec!["a".into()],
                ..Choice::default()
            },
        )
        .unwrap();
        assert!(only_a.len() == 50 && only_a.iter().all(|m| m.function == "a"));
        assert!(choose(
            &all,
            &Choice {
                functions: vec!["zzz".into()],
                ..Choice::default()
            }
        )
        .unwrap_err()
        .to_string()
        .contains("functions with mutants: a, b"));
        assert_eq!(parse_shard("2/8"), Ok((2, 8)));
        assert!(
            parse_shard("0/8").is_err() && parse_shard("9/8").is_err() && parse_shard("x").is_err()
        );
    }

    #[test]
    fn the_shipped_judged_list_parses_and_gives_reasons() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-configs/mutate/judged.toml");
        let list = JudgedList::load(&path).unwrap();
        assert!(!list.equivalent.is_empty());
        for j in &list.equivalent {
            assert!(j.reason.len() > 20 && j.original != j.mutated, "{j:?}");
        }
        for j in &list.gaps {
            assert!(j.reason.len() > 20 && j.original != j.mutated, "{j:?}");
        }
        // One judgment per mutant: equivalent or a gap, never both, never twice.
        let mut seen = std::collections::BTreeSet::new();
        for j in list.equivalent.iter().chain(&list.gaps) {
            assert!(
                seen.insert((&j.file, j.line, &j.original, &j.mutated)),
                "judged twice: {j:?}"
            );
        }
    }

    #[test]
    fn scores_leave_out_equivalent_and_uncompiled_mutants() {
        let r = |outcome, upstream| MutantResult {
            mutant: spec(7, "x"),
            outcome,
            upstream,
            secs: 1.0,
            build_secs: None,
            diff: String::new(),
            elsewhere: vec![],
            gap: None,
        };
        let results = [
            r(Outcome::Killed { by: "a::b".into() }, Upstream::Survived),
            r(
                Outcome::Survived,
                Upstream::Killed {
                    by: "kselftest::abi_test".into(),
                },
            ),
            r(Outcome::TimedOut { what: "x".into() }, Upstream::Survived),
            r(Outcome::Equivalent, Upstream::NotRun),
            r(Outcome::NotCompiled { error: "e".into() }, Upstream::NotRun),
        ];
        let t = Report::tally(results.iter());
        assert_eq!(t.score(), Some(2.0 / 3.0));
        assert_eq!(t.upstream_score(), Some(1.0 / 3.0));
        assert_eq!((t.equivalent, t.not_compiled), (1, 1));
    }
}
