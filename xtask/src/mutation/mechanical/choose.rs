//! Which mutants a run takes (a function filter, a seeded sample, a shard of it) and the ones
//! judged equivalent by a person (kernel-configs/mutate/judged.toml).

use std::path::Path;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use super::MutantSpec;

/// Which mutants to run: a function filter, then a seeded sample, then a shard of it.
#[derive(Debug, Clone, Default)]
pub struct Choice {
    pub functions: Vec<String>,
    pub sample: Option<usize>,
    pub seed: u64,
    /// (index from 1, count)
    pub shard: Option<(usize, usize)>,
}

/// `I/N`, 1 ≤ I ≤ N.
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("--shard {s:?}: write I/N, e.g. 2/8"))?;
    let (i, n): (usize, usize) = (
        i.trim()
            .parse()
            .map_err(|_| format!("--shard {s:?}: I is not a number"))?,
        n.trim()
            .parse()
            .map_err(|_| format!("--shard {s:?}: N is not a number"))?,
    );
    if n == 0 || i == 0 || i > n {
        return Err(format!("--shard {s:?}: need 1 ≤ I ≤ N"));
    }
    Ok((i, n))
}

/// A small deterministic generator (splitmix64): the same seed gives the same sample on
/// every machine, which is what lets shards of one run agree.
pub(super) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub fn choose(all: &[MutantSpec], c: &Choice) -> anyhow::Result<Vec<MutantSpec>> {
    // `key` stands for the key functions, so that "every mutant of the key functions" is one
    // word on the command line and in CI, and changes with the list.
    let functions: Vec<&str> = c
        .functions
        .iter()
        .flat_map(|f| {
            if f == super::KEY {
                super::KEY_FUNCTIONS.to_vec()
            } else {
                vec![f.as_str()]
            }
        })
        .collect();
    let mut v: Vec<MutantSpec> = all
        .iter()
        .filter(|m| functions.is_empty() || functions.contains(&m.function.as_str()))
        .cloned()
        .collect();
    if v.is_empty() {
        let mut known: Vec<&str> = all.iter().map(|m| m.function.as_str()).collect();
        known.sort();
        known.dedup();
        bail!(
            "no mutant in the function(s) {:?}; functions with mutants: {}",
            c.functions,
            known.join(", ")
        );
    }
    if let Some(n) = c.sample {
        // Fisher-Yates with the seeded generator, then the first n.
        let mut state = c.seed;
        for i in (1..v.len()).rev() {
            let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
        v.truncate(n);
    }
    if let Some((i, n)) = c.shard {
        v = v
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % n == i - 1)
            .map(|(_, m)| m)
            .collect();
    }
    Ok(v)
}

/// A mutant judged by a person: equivalent (no behaviour a user could see changes), with the
/// reason. Kept in `kernel-configs/mutate/judged.toml` so the next run skips it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Judged {
    pub file: String,
    pub line: usize,
    pub original: String,
    pub mutated: String,
    pub reason: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JudgedList {
    #[serde(default, rename = "equivalent")]
    pub equivalent: Vec<Judged>,
    /// Survivors judged NOT equivalent: a real difference no check here sees (only on an
    /// architecture the harness does not build, only under KASAN within a grace period, only
    /// under a memory cgroup's limit), with why and what would see it. They still run and
    /// still count as misses; the entry only says the survivor was looked at.
    #[serde(default, rename = "gap")]
    pub gaps: Vec<Judged>,
}

impl JudgedList {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(t) => toml::from_str(&t).with_context(|| format!("parse {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(JudgedList::default()),
            Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
        }
    }

    /// Entries that match no mutant of this source: written for another version of it.
    pub fn stale<'a>(&'a self, all: &[MutantSpec]) -> Vec<&'a Judged> {
        self.equivalent
            .iter()
            .chain(&self.gaps)
            .filter(|j| !all.iter().any(|m| j.matches(m)))
            .collect()
    }

    pub fn find(&self, m: &MutantSpec) -> Option<&Judged> {
        self.equivalent.iter().find(|j| j.matches(m))
    }

    /// The gap entry of a survivor, if one was written.
    pub fn find_gap(&self, m: &MutantSpec) -> Option<&Judged> {
        self.gaps.iter().find(|j| j.matches(m))
    }
}

impl Judged {
    fn matches(&self, m: &MutantSpec) -> bool {
        self.file == m.file
            && self.line == m.line
            && self.original.trim() == m.original.trim()
            && self.mutated.trim() == m.mutated.trim()
    }
}
