//! docs/promises.md kept true: every promise row names real scenarios (or checks of the
//! compat32 and abi_core guest programs) and real shipped mutants, each mutant named on a row must catch
//! one of that row's scenarios, and the
//! `## Unchecked` lists say exactly which promises have no scenario and which have no mutant
//! (so a gap is never silent: a new row without a check, or a check that goes, fails here
//! until the list says so). The counts are printed: they are the work left.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

struct Row {
    id: String,
    scenarios: Vec<String>,
    mutants: Vec<String>,
}

/// The backticked names of a cell, or none for `—`.
fn names(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn rows(doc: &str) -> Vec<Row> {
    let mut out = vec![];
    let mut in_table = false;
    for line in doc.lines() {
        if line.starts_with("| id |") {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 7, "a row of five cells: {line}");
        out.push(Row {
            id: cells[1].to_owned(),
            scenarios: names(cells[4]),
            mutants: names(cells[5]),
        });
    }
    out
}

/// The ids listed under `### heading` of `## Unchecked`.
fn unchecked(doc: &str, heading: &str) -> BTreeSet<String> {
    doc.lines()
        .skip_while(|l| *l != "## Unchecked")
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| !l.starts_with("#"))
        .filter_map(|l| l.strip_prefix("- "))
        .filter_map(|l| l.split(':').next())
        .map(str::to_owned)
        .collect()
}

/// Each shipped mutant's `Must catch:` entries (full names, or `family::*`).
fn mutants(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "patch") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let preamble: String = text
            .lines()
            .take_while(|l| !l.starts_with("--- ") && !l.starts_with("diff "))
            .map(|l| l.trim_start_matches(['#', ' ']))
            .collect::<Vec<_>>()
            .join(" ");
        let catches = preamble
            .split_once("Must catch:")
            .map(|(_, r)| r.split("Breaks:").next().unwrap_or(r))
            .unwrap_or("")
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '*'))
            .filter(|t| t.contains("::"))
            .map(str::to_owned)
            .collect();
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        out.insert(stem, catches);
    }
    out
}

/// The checks of the compat32 guest program, as its trials are named
/// (`guest::compat32::<check>`): the first argument of its `ok`, `not_ok` and `skip` calls.
fn compat32_checks(source: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(source).unwrap();
    let mut out = vec![];
    for call in ["ok(\"", "not_ok(\"", "skip(\""] {
        for (at, _) in text.match_indices(call) {
            let rest = &text[at + call.len()..];
            if let Some(end) = rest.find('"') {
                out.push(format!("guest::compat32::{}", &rest[..end]));
            }
        }
    }
    assert!(out.len() > 5, "only {} compat32 checks read", out.len());
    out
}

/// The checks of the abi_core guest program (`guest::abi_core::<check>`): the names of its
/// CHECKS table, `{ "name", function, ... },` one a line.
fn abi_core_checks(source: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(source).unwrap();
    let out: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("{ \""))
        .filter_map(|l| l.split_once('"'))
        .filter(|(_, rest)| rest.starts_with(", "))
        .map(|(name, _)| format!("guest::abi_core::{name}"))
        .collect();
    assert!(out.len() > 10, "only {} abi_core checks read", out.len());
    out
}

fn catches(entry: &str, scenario: &str) -> bool {
    match entry.strip_suffix('*') {
        Some(family) => scenario.starts_with(family),
        None => entry == scenario,
    }
}

#[test]
fn every_promise_is_traced_or_listed_as_unchecked() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = std::fs::read_to_string(root.join("docs/promises.md")).unwrap();
    let rows = rows(&doc);
    assert!(rows.len() > 50, "only {} rows read", rows.len());
    let mut scenarios: BTreeSet<String> = guest_tests::scenarios::all()
        .into_iter()
        .map(|e| e.name)
        .collect();
    scenarios.extend(compat32_checks(&root.join("guest-tests/c/compat32.c")));
    scenarios.extend(abi_core_checks(&root.join("guest-tests/c/abi_core.c")));
    let shipped = mutants(&root.join("kernel-configs/mutants"));
    let mut wrong = vec![];
    let mut ids = BTreeSet::new();
    for r in &rows {
        if !ids.insert(r.id.clone()) {
            wrong.push(format!("{}: the id is used twice", r.id));
        }
        for s in &r.scenarios {
            if !scenarios.contains(s) {
                wrong.push(format!("{}: no scenario {s}", r.id));
            }
        }
        for m in &r.mutants {
            match shipped.get(m) {
                None => wrong.push(format!("{}: no mutant {m}.patch", r.id)),
                Some(c) if !r.scenarios.iter().any(|s| c.iter().any(|e| catches(e, s))) => wrong
                    .push(format!(
                        "{}: mutant {m} must catch none of the row's scenarios",
                        r.id
                    )),
                Some(_) => {}
            }
        }
    }
    let no_scenario: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.scenarios.is_empty())
        .map(|r| r.id.clone())
        .collect();
    let no_mutant: BTreeSet<String> = rows
        .iter()
        .filter(|r| !r.scenarios.is_empty() && r.mutants.is_empty())
        .map(|r| r.id.clone())
        .collect();
    for (heading, want) in [
        ("### No scenario", &no_scenario),
        ("### No mutant", &no_mutant),
    ] {
        let listed = unchecked(&doc, heading);
        for id in want.difference(&listed) {
            wrong.push(format!("{id}: missing from `{heading}`"));
        }
        for id in listed.difference(want) {
            wrong.push(format!(
                "{id}: listed under `{heading}`, but the row says otherwise"
            ));
        }
    }
    println!(
        "{} promises: {} with a scenario, {} of them with a mutant; {} without a scenario, {} without a mutant",
        rows.len(),
        rows.len() - no_scenario.len(),
        rows.len() - no_scenario.len() - no_mutant.len(),
        no_scenario.len(),
        no_mutant.len()
    );
    assert!(
        wrong.is_empty(),
        "docs/promises.md is out of step:\n{}",
        wrong.join("\n")
    );
}
