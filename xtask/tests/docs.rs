//! The scenario table in docs/scenarios.md is written by hand, from the one scenario list
//! (the guest crate's, the same that `ue-scenarios --list-json` prints): every scenario has
//! its row under its family, saying what the scenario's own `about` says, and no row names
//! a scenario that is gone.

use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn the_scenario_table_matches_the_scenario_list() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let table = std::fs::read_to_string(root.join("docs/scenarios.md")).unwrap();
    // Rows: `| **family** | `name` | about |` or `|  | `name` | about |` (family carried down).
    let mut rows = BTreeSet::new();
    let mut abouts = std::collections::BTreeMap::new();
    let mut family = String::new();
    for line in table.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 {
            continue;
        }
        if let Some(f) = cells[1]
            .strip_prefix("**")
            .and_then(|f| f.strip_suffix("**"))
        {
            family = f.to_owned();
        }
        if let Some(name) = cells[2].strip_prefix('`').and_then(|n| n.strip_suffix('`')) {
            rows.insert(format!("{family}::{name}"));
            abouts.insert(format!("{family}::{name}"), cells[3].to_owned());
        }
    }
    let all = guest_tests::scenarios::all();
    // The row says what the scenario's own `about` says (a note may follow it).
    let mut wrong = vec![];
    for e in &all {
        if let Some(row) = abouts.get(&e.name) {
            if !row.starts_with(e.about) {
                wrong.push(format!(
                    "{}:\n  docs:     {row}\n  scenario: {}",
                    e.name, e.about
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/scenarios.md rows differ from the scenarios' own words:\n{}",
        wrong.join("\n")
    );
    let scenarios: BTreeSet<String> = all.into_iter().map(|e| e.name).collect();
    let missing: Vec<_> = scenarios.difference(&rows).collect();
    let stale: Vec<_> = rows.difference(&scenarios).collect();
    assert!(
        missing.is_empty(),
        "docs/scenarios.md has no row for {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "docs/scenarios.md has rows for scenarios that do not exist: {stale:?}"
    );
}
