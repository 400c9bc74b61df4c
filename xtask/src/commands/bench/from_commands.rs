//! Rows taken from other commands: the newest `cargo xtask matrix` run (row 6) and the median
//! killed mutant of one fail-fast `cargo xtask mutants` pass (row 9).

use std::path::Path;

use super::table::Row;
use super::Group;
use super::{say, Setup};

// Row 9: how long a killed mutant takes from its patch to its verdict.
pub(super) fn killed_mutants(s: &Setup) -> anyhow::Result<Vec<Row>> {
    say("9 killed mutants: `cargo xtask mutants` in-process, fail-fast (every shipped mutant, once)");
    let args = crate::commands::mutants::MutantsArgs {
        kernel: s.kernel_args.clone(),
        run: s.run_args.clone(),
        only: None,
        no_fail_fast: false,
        same_verdicts: false,
    };
    let judged = crate::commands::mutants::judge(&args)?;
    let (base_failing, rows) = (judged.base_failing, judged.rows);
    let killed: Vec<f64> = rows
        .iter()
        .filter(|r| r.caught)
        .map(|r| r.verdict_secs)
        .collect();
    let rebuilt = rows.iter().filter(|r| r.build_secs.is_some()).count();
    Ok(vec![Row::new(
        Group::KilledMutant,
        "9",
        "killed mutant, patch → verdict (rebuild, boot, suite stopping at the first failure of a scenario it names)",
        killed.clone(),
        format!(
            "median over the {} killed of {} shipped mutants, one pass; {rebuilt} rebuilt by make, the rest from the cache; {} scenario(s) failing unpatched; target ≤ 20 s",
            killed.len(),
            rows.len(),
            base_failing.len()
        ),
    )])
}

pub(super) fn matrix(runs_dir: &Path) -> anyhow::Result<Vec<Row>> {
    let newest = std::fs::read_dir(runs_dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("matrix.json"))
                .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
                .max()
        })
        .ok()
        .flatten();
    let Some((_, path)) = newest else {
        return Ok(vec![Row::text(
            Group::LastMatrix,
            "6",
            "matrix (`cargo xtask matrix`)",
            format!("not run (no {}/matrix-*/matrix.json)", runs_dir.display()),
        )]);
    };
    let report: harness::report::MatrixReport = match std::fs::read(&path)
        .map_err(anyhow::Error::from)
        .and_then(|b| Ok(serde_json::from_slice(&b)?))
    {
        Ok(r) => r,
        Err(e) => {
            return Ok(vec![Row::text(
                Group::LastMatrix,
                "6",
                "matrix",
                format!(
                    "{} is not a matrix report of this version: {e}",
                    path.display()
                ),
            )])
        }
    };
    let mut rows = vec![Row::new(
        Group::LastMatrix,
        "6",
        "matrix, all kernels (recorded)",
        vec![report.wall_secs],
        format!("from {} (not run by the bench)", path.display()),
    )];
    for k in &report.kernels {
        rows.push(Row::new(
            Group::LastMatrix,
            &format!("6.{}", k.kernel),
            &format!("  VM wall of {}", k.kernel),
            vec![k.wall_ms as f64 / 1000.0],
            "matrix.json wall_ms",
        ));
    }
    Ok(rows)
}
