//! `cargo xtask bench`: how long the harness takes, and where the time goes. Each row is the
//! median of several runs with min and max, measured side by side in one invocation (rows 1–3
//! interleaved run by run, so they see the same background load). The table goes to stdout and,
//! with a JSON copy, to `target/ue-runs/bench-<stamp>/`.
//!
//! Rows: 1 boot floor (harness init with an empty plan; a static C init that reboots at once),
//! 2 the warm suite end to end (scenarios side by side, with `--jobs 1`, and without the SLUB
//! witnesses), 3 a no-op `build-kernel`, 4 a one-line kernel edit rebuilt and rerun, 5
//! recorded cold builds, 6 the newest matrix run, 7 virtme-ng on the same kernel, 8 an own
//! tree's one-line edit to results, 9 the median killed mutant from patch to verdict (one fail-fast pass of
//! `cargo xtask mutants`). Three rows run only when `--only` names them (tens of minutes of
//! both cores): 10 `cargo xtask matrix` from an empty cache, against the sum of its parts,
//! once; 11 one cold build without ccache, with an empty ccache, with a warm one, and with a
//! warm one and one more `--kconfig` option, once; 12 the whole suite `--runs` times beside
//! two busy processes per core, interleaved with it unloaded, counting the failed trials
//! (a clean kernel should have none: each one is a scenario to fix). Row 13, also named
//! only: each foreign architecture's boot floor and warm C guest under TCG.

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use harness::model::{KernelUnderTest, ScenarioInfo, SuiteOptions};

use crate::args::{KernelArgs, RunArgs};
use crate::session::Session;

use cold::{ccache_builds, cold_builds, cold_matrix};
use edits::{edit_rerun, own_tree_edit};
use from_commands::{killed_mutants, matrix};
use table::{markdown, BenchReport, Row};

mod arches;
mod cold;
mod edits;
mod floor;
mod from_commands;
mod interleaved;
mod loaded;
mod suite;
mod table;
mod vng;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Runs per measured row (each row reports the median, min and max).
    #[arg(long, default_value_t = 5, allow_negative_numbers = true, value_parser = crate::args::number_in::<usize, 1, 100>)]
    runs: usize,
    /// Only these rows (comma list of row numbers, 1–13). Rows 10 (cold matrix from an empty
    /// cache, ~20 min here), 11 (four cold builds for ccache, ~15 min), 12 (the suite under
    /// load and unloaded, ~2 min per run) and 13 (s390x and arm64 under TCG; a cold cache
    /// cross-builds each, ~7 min) run only when named.
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true, value_parser = crate::args::number_in::<u32, 1, 100>)]
    only: Vec<u32>,
    /// Cache directory (default $UE_CACHE_DIR or ~/.cache/ue-harness), passed on to the runs.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Row 8's own tree (a git kernel tree; default: the self-test's scratch tree in the
    /// cache, made by `cargo xtask selftest -- devloop`). The row edits one line and puts
    /// the file back with `git checkout`.
    #[arg(long)]
    tree: Option<PathBuf>,
}

/// The bench's row groups, numbered as the issue numbers them: the number is what `--only`
/// selects and what `row` holds in bench.json.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Group {
    BootFloor = 1,
    WarmSuite = 2,
    NoopBuild = 3,
    EditRerun = 4,
    ColdBuilds = 5,
    LastMatrix = 6,
    Vng = 7,
    OwnTreeEdit = 8,
    KilledMutant = 9,
    ColdMatrix = 10,
    Ccache = 11,
    LoadedSuite = 12,
    Arches = 13,
}

impl Group {
    const LAST: Group = Group::Arches;

    fn number(self) -> u32 {
        self as u32
    }

    /// Rows that take tens of minutes of every core: never part of the default bench (or CI).
    /// Row 12 also loads the host on purpose, which the other rows' timings must not see.
    fn only_when_named(self) -> bool {
        matches!(
            self,
            Group::ColdMatrix | Group::Ccache | Group::LoadedSuite | Group::Arches
        )
    }

    /// Whether this group runs under `--only only` (empty: the default rows).
    fn selected(self, only: &[u32]) -> bool {
        only.contains(&self.number()) || (only.is_empty() && !self.only_when_named())
    }
}

fn say(msg: &str) {
    eprintln!("[bench] {msg}");
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The state every row shares: the default kernel (built), the guest, the suite's options.
struct Setup {
    dir: PathBuf,
    cache: PathBuf,
    /// What `cargo xtask test --no-install` gets by default.
    kernel_args: KernelArgs,
    run_args: RunArgs,
    opts: SuiteOptions,
    kernel: KernelUnderTest,
    /// What `cargo xtask test` runs by default: the optional (stress) family left out.
    scenarios: Vec<ScenarioInfo>,
}

pub fn run(a: BenchArgs) -> anyhow::Result<std::process::ExitCode> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let last = Group::LAST.number();
    if let Some(bad) = a.only.iter().find(|r| !(1..=last).contains(*r)) {
        bail!("--only {bad}: rows are numbered 1 to {last}");
    }
    let want = |g: Group| g.selected(&a.only);
    let kernel_args = KernelArgs {
        no_install: true,
        cache_dir: a.cache_dir.clone(),
        ..KernelArgs::default()
    };
    let run_args = RunArgs::default();
    let mut session = Session::for_kernels(&kernel_args);
    session.host_tools()?;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let dir = session.runs_dir().join(format!("bench-{stamp}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let load_before = load_average();
    let started = Instant::now();

    let kernel = session.kernels(&kernel_args)?.remove(0).kernel;
    let guest = session.guest()?;
    let mut opts = session.suite_options(&run_args, &guest);
    session.choose_accel(&mut opts, &run_args, &kernel)?;
    let setup = Setup {
        dir: dir.clone(),
        cache: session.cache.clone(),
        kernel_args,
        run_args,
        opts,
        kernel,
        scenarios: guest.scenarios(false),
    };
    say(&format!(
        "writing to {}; {} run(s) per row; accelerator {:?}",
        dir.display(),
        a.runs,
        setup.opts.accel
    ));

    let mut rows: Vec<Row> = Vec::new();
    let first_three = interleaved::Wanted {
        floor: want(Group::BootFloor),
        suite: want(Group::WarmSuite),
        noop_build: want(Group::NoopBuild),
    };
    let mut floor = None;
    if first_three.floor || first_three.suite || first_three.noop_build {
        let measured = interleaved::rows(&setup, a.runs, &first_three)?;
        rows.extend(measured.rows);
        floor = measured.floor;
    }
    if want(Group::EditRerun) {
        rows.extend(edit_rerun(&setup, a.runs, floor)?);
    }
    if want(Group::ColdBuilds) {
        rows.extend(cold_builds(&setup.cache)?);
    }
    if want(Group::LastMatrix) {
        rows.extend(matrix(&session.runs_dir())?);
    }
    if want(Group::Vng) {
        rows.extend(vng::rows(&setup, a.runs, &mut session)?);
    }
    if want(Group::OwnTreeEdit) {
        let tree = a
            .tree
            .clone()
            .unwrap_or_else(|| crate::cache::selftest_tree(&setup.cache));
        rows.extend(own_tree_edit(&setup, a.runs, &tree)?);
    }
    if want(Group::KilledMutant) {
        rows.extend(killed_mutants(&setup)?);
    }
    let mut under_load = None;
    if want(Group::LoadedSuite) {
        let measured = loaded::measure(&setup, a.runs)?;
        rows.extend(measured.rows());
        under_load = Some(measured);
    }
    if want(Group::Ccache) {
        rows.extend(ccache_builds(&setup, &mut session)?);
    }
    if want(Group::ColdMatrix) {
        rows.extend(cold_matrix(&setup)?);
    }
    if want(Group::Arches) {
        rows.extend(arches::rows(&setup, a.runs, floor, &mut session)?);
    }

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let header = format!(
        "## cargo xtask bench ({} run(s) per row, {:?}, {} CPUs)\n\n\
         Noisy machine: {cpus} cores shared with whatever else runs (other kernel builds, VMs). \
         Load average {load_before} at the start, {} at the end; the bench took {:.0} s. \
         Each row is the median of its runs with min and max, all measured in this one invocation \
         (rows 1–3 interleaved run by run); compare ratios, not absolute seconds, across machines.",
        a.runs,
        setup.opts.accel,
        cpus,
        load_average(),
        started.elapsed().as_secs_f64()
    );
    let md = markdown(&rows, &header);
    std::fs::write(dir.join("bench.md"), &md)
        .with_context(|| format!("write {}", dir.join("bench.md").display()))?;
    let json = BenchReport {
        accel: setup.opts.accel,
        runs: a.runs,
        cpus,
        load_before,
        load_after: load_average(),
        rows,
        under_load,
    };
    std::fs::write(dir.join("bench.json"), serde_json::to_vec_pretty(&json)?)
        .with_context(|| format!("write {}", dir.join("bench.json").display()))?;
    println!("{md}");
    println!("```json\n{}\n```", serde_json::to_string_pretty(&json)?);
    say(&format!("table and JSON in {}", dir.display()));
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use harness::channel::Record;

    use super::floor::reboot_uptime;
    use super::vng::records;
    use super::*;

    #[test]
    fn the_long_cold_rows_run_only_when_named() {
        use Group::*;
        assert!(BootFloor.selected(&[]) && KilledMutant.selected(&[]));
        assert!(!ColdMatrix.selected(&[]) && !Ccache.selected(&[]));
        assert!(
            ColdMatrix.selected(&[10]) && !Ccache.selected(&[10]) && !WarmSuite.selected(&[10])
        );
        assert!(Ccache.selected(&[2, 11]));
        assert!(!LoadedSuite.selected(&[]) && LoadedSuite.selected(&[12]));
    }

    #[test]
    fn medians_of_odd_and_even_counts_with_min_and_max() {
        let r = Row::new(Group::BootFloor, "1", "x", vec![3.0, 1.0, 2.0], "");
        assert_eq!((r.median, r.min, r.max), (Some(2.0), Some(1.0), Some(3.0)));
        let r = Row::new(Group::BootFloor, "1", "x", vec![4.0, 1.0, 2.0, 3.0], "")
            .ratio_to(Some(1.25), "floor");
        assert_eq!(r.median, Some(2.5));
        assert_eq!(r.ratio.as_deref(), Some("2.0× floor"));
        assert_eq!(
            Row::text(Group::LastMatrix, "6", "matrix", "not run").median,
            None
        );
    }

    #[test]
    fn runner_records_are_found_among_console_lines() {
        let hello = Record::Hello {
            kernel_release: "6.12".into(),
            uptime_ms: 1,
            planned: 1,
            user_events: true,
        }
        .to_line();
        let out = format!("[    1.0] booting\r\n{hello}not json\n");
        assert_eq!(records(&out), (true, 0, 0));
        let reboot = "[    0.1] x\n[    2.984129] reboot: Restarting system\n";
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.log"), reboot).unwrap();
        assert_eq!(reboot_uptime(&dir.path().join("c.log")), Some(2.984129));
    }
}
