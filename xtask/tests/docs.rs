//! The scenario table in docs/scenarios.md is written by hand, from the one scenario list
//! (the guest crate's, the same that `ue-scenarios --list-json` prints): every scenario has
//! its row under its family, saying what the scenario's own `about` says, and no row names
//! a scenario that is gone. And the module tree in docs/how-it-works.md is xtask/src's: every
//! module is there, and every entry there is a module.

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

/// The modules docs/how-it-works.md's tree names under `xtask/src/`, as paths relative to it
/// (a folder `x/` is its `x/mod.rs`). Entries are names at the start of a line indented by two
/// spaces per level (`a.rs`, `b/`, or a comma list of them); deeper-indented lines carry on a
/// description.
fn documented_modules(doc: &str, heading: &str) -> BTreeSet<String> {
    let mut lines = doc.lines().skip_while(|l| !l.starts_with(heading)).skip(1);
    let mut folders: Vec<String> = vec![];
    let mut out = BTreeSet::new();
    for line in lines.by_ref() {
        let indent = line.len() - line.trim_start().len();
        if indent == 0 {
            break;
        }
        if indent >= 20 || indent % 2 != 0 {
            continue;
        }
        let depth = indent / 2;
        folders.truncate(depth - 1);
        let names: Vec<&str> = line
            .trim_start()
            .split("  ")
            .next()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() || !names.iter().all(|n| n.ends_with(".rs") || n.ends_with('/')) {
            continue;
        }
        for name in names {
            let parent: String = folders.iter().map(|f| format!("{f}/")).collect();
            if let Some(folder) = name.strip_suffix('/') {
                out.insert(format!("{parent}{folder}/mod.rs"));
                folders.truncate(depth - 1);
                folders.push(folder.to_owned());
            } else {
                out.insert(format!("{parent}{name}"));
            }
        }
    }
    out
}

fn source_modules(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() {
            source_modules(&e.path(), &format!("{prefix}{name}/"), out);
        } else if name.ends_with(".rs") {
            out.insert(format!("{prefix}{name}"));
        }
    }
}

/// Every source file of every crate is in docs/how-it-works.md's module tree, under its
/// crate's heading, and every file the tree names exists.
#[test]
fn the_module_tree_in_how_it_works_is_the_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = std::fs::read_to_string(root.join("docs/how-it-works.md")).unwrap();
    for src in [
        "xtask/src/",
        "harness/src/",
        "guest-tests/src/",
        "result-channel/src/",
    ] {
        let documented = documented_modules(&doc, src);
        let mut actual = BTreeSet::new();
        source_modules(&root.join(src), "", &mut actual);
        let missing: Vec<_> = actual.difference(&documented).collect();
        // A folder without mod.rs (bin/, a binary's own folder with main.rs) is still a folder.
        let stale: Vec<_> = documented
            .difference(&actual)
            .filter(|m| {
                m.strip_suffix("mod.rs")
                    .is_none_or(|folder| !actual.iter().any(|a| a.starts_with(folder)))
            })
            .collect();
        assert!(
            missing.is_empty(),
            "docs/how-it-works.md's module tree of {src} lacks {missing:?}"
        );
        assert!(
            stale.is_empty(),
            "docs/how-it-works.md's module tree of {src} names modules that do not exist: {stale:?}"
        );
    }
}

#[test]
fn the_module_tree_parser_reads_folders_lists_and_descriptions() {
    let doc = "```\nxtask/src/\n  main.rs             x\n                      more\n  a/                  y\n    b.rs, c.rs        z\n    d/\n      e.rs\n  f.rs\nother/\n```\n";
    let got: Vec<String> = documented_modules(doc, "xtask/src/").into_iter().collect();
    assert_eq!(
        got,
        [
            "a/b.rs",
            "a/c.rs",
            "a/d/e.rs",
            "a/d/mod.rs",
            "a/mod.rs",
            "f.rs",
            "main.rs"
        ]
    );
}
