//! `cargo xtask bench`: how long the harness takes, and where the time goes. Each row is the
//! median of several runs with min and max, measured side by side in one invocation (rows 1–3
//! interleaved run by run, so they see the same background load). The table goes to stdout and,
//! with a JSON copy, to `target/ue-runs/bench-<stamp>/`.
//!
//! Rows: 1 boot floor (harness init with an empty plan; a static C init that reboots at once),
//! 2 the warm suite end to end (scenarios side by side, and with `--jobs 1`), 3 a no-op
//! `build-kernel`, 4 a one-line kernel edit rebuilt and rerun, 5 recorded cold builds, 6 the
//! newest matrix run, 7 virtme-ng on the same kernel, 8 an own tree's one-line edit to
//! results, 9 the median killed mutant from patch to verdict (one fail-fast pass of
//! `cargo xtask mutants`). Two rows run only when `--only` names them, each once (tens of
//! minutes of both cores): 10 `cargo xtask matrix` from an empty cache, against the sum of
//! its parts; 11 one cold build without ccache, with an empty ccache, with a warm one, and
//! with a warm one and one more `--kconfig` option.

use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use harness::channel::{Event, Outcome, Plan, Record};
use harness::initramfs::Initramfs;
use harness::model::{KernelRun, KernelUnderTest, ScenarioInfo, SuiteOptions, Verdict};
use harness::qemu::QemuConfig;
use harness::run::Selection;
use harness::vm::{self, VmEnd};
use serde::{Deserialize, Serialize};

use crate::args::{KernelArgs, RunArgs};
use crate::kernel::build::{BuildRequest, Source};
use crate::session::Session;
use crate::sys::proc::{self, Wait, Waited};
use crate::sys::progress::{Progress, Step};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Runs per measured row (each row reports the median, min and max).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Only these rows (comma list of row numbers, 1–11). Rows 10 (cold matrix from an empty
    /// cache, ~20 min here) and 11 (four cold builds for ccache, ~15 min) run only when named.
    #[arg(long, value_delimiter = ',')]
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

const LAST_ROW: u32 = 11;
/// Rows that take tens of minutes of every core: never part of the default bench (or CI).
const ONLY_WHEN_NAMED: [u32; 2] = [10, 11];

/// Whether row `r` runs under `--only only` (empty: the default rows).
fn selected(only: &[u32], r: u32) -> bool {
    only.contains(&r) || (only.is_empty() && !ONLY_WHEN_NAMED.contains(&r))
}

/// Limits for the commands the bench runs: generous, but every wait ends.
const VNG_LIMIT: Duration = Duration::from_secs(6 * 60);

/// One row of the table; `bench.json` holds them as [`BenchReport`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// The issue's row number (what `--only` selects).
    row: u32,
    /// `1a`, `2.vm`, ...
    id: String,
    what: String,
    /// Seconds, one per run (empty when the row is a note only).
    samples: Vec<f64>,
    median: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    ratio: Option<String>,
    note: String,
}

impl Row {
    fn new(row: u32, id: &str, what: &str, samples: Vec<f64>, note: impl Into<String>) -> Row {
        let mut sorted = samples.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let median = (!sorted.is_empty()).then(|| {
            let n = sorted.len();
            if n % 2 == 1 {
                sorted[n / 2]
            } else {
                (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
            }
        });
        Row {
            row,
            id: id.into(),
            what: what.into(),
            min: sorted.first().copied(),
            max: sorted.last().copied(),
            median,
            samples,
            ratio: None,
            note: note.into(),
        }
    }

    fn text(row: u32, id: &str, what: &str, note: impl Into<String>) -> Row {
        Row::new(row, id, what, vec![], note)
    }

    fn ratio_to(mut self, other: Option<f64>, name: &str) -> Row {
        if let (Some(a), Some(b)) = (self.median, other) {
            if b > 0.0 {
                self.ratio = Some(format!("{:.1}× {name}", a / b));
            }
        }
        self
    }
}

fn secs(x: Option<f64>) -> String {
    x.map_or("–".into(), |s| {
        if s < 10.0 {
            format!("{s:.2}")
        } else {
            format!("{s:.1}")
        }
    })
}

fn markdown(rows: &[Row], header: &str) -> String {
    let mut s = String::new();
    s.push_str(header);
    s.push_str("\n\n| # | what | median s | min s | max s | n | ratio | notes |\n|---|---|---:|---:|---:|---:|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.id,
            r.what,
            secs(r.median),
            secs(r.min),
            secs(r.max),
            if r.samples.is_empty() {
                "–".into()
            } else {
                r.samples.len().to_string()
            },
            r.ratio.as_deref().unwrap_or(""),
            r.note.replace('|', "\\|").replace('\n', " ")
        ));
    }
    s
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

/// `bench.json`: the rows and the conditions they were measured in.
#[derive(Debug, Serialize, Deserialize)]
pub struct BenchReport {
    pub accel: harness::qemu::Accel,
    pub runs: usize,
    pub cpus: usize,
    pub load_before: String,
    pub load_after: String,
    pub rows: Vec<Row>,
}

pub fn run(a: BenchArgs) -> anyhow::Result<std::process::ExitCode> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if let Some(bad) = a.only.iter().find(|r| !(1..=LAST_ROW).contains(*r)) {
        bail!("--only {bad}: rows are numbered 1 to {LAST_ROW}");
    }
    let want = |r: u32| selected(&a.only, r);
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
    session.choose_accel(&mut opts, run_args.accel, &kernel)?;
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
    if want(1) || want(2) || want(3) {
        rows.extend(interleaved(&setup, a.runs, want(1), want(2), want(3))?);
    }
    let floor = rows
        .iter()
        .find(|r| r.id == "1b")
        .or_else(|| rows.iter().find(|r| r.id == "1a"))
        .and_then(|r| r.median);
    if want(4) {
        rows.extend(edit_rerun(&setup, a.runs, floor)?);
    }
    if want(5) {
        rows.extend(cold_builds(&setup.cache)?);
    }
    if want(6) {
        rows.extend(matrix(&session.runs_dir())?);
    }
    if want(7) {
        rows.extend(vng(&setup, a.runs, &mut session)?);
    }
    if want(8) {
        let tree = a
            .tree
            .clone()
            .unwrap_or_else(|| crate::cache::selftest_tree(&setup.cache));
        rows.extend(own_tree_edit(&setup, a.runs, &tree)?);
    }
    if want(9) {
        rows.extend(killed_mutants(&setup)?);
    }
    if want(11) {
        rows.extend(ccache_builds(&setup, &mut session)?);
    }
    if want(10) {
        rows.extend(cold_matrix(&setup)?);
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
    std::fs::write(dir.join("bench.md"), &md)?;
    let json = BenchReport {
        accel: setup.opts.accel,
        runs: a.runs,
        cpus,
        load_before,
        load_after: load_average(),
        rows,
    };
    std::fs::write(dir.join("bench.json"), serde_json::to_vec_pretty(&json)?)?;
    println!("{md}");
    println!("```json\n{}\n```", serde_json::to_string_pretty(&json)?);
    say(&format!("table and JSON in {}", dir.display()));
    Ok(std::process::ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// Rows 1–3, interleaved.

fn interleaved(s: &Setup, runs: usize, r1: bool, r2: bool, r3: bool) -> anyhow::Result<Vec<Row>> {
    let trivial_init = if r1 { Some(trivial_init(&s.dir)) } else { None };
    let (mut floor_h, mut floor_h_hello, mut floor_t) = (vec![], vec![], vec![]);
    let (mut floor_h_reboot, mut floor_t_reboot, mut floor_t_pre) = (vec![], vec![], vec![]);
    let mut suite: Vec<SuiteSample> = vec![];
    let mut suite_seq: Vec<SuiteSample> = vec![];
    let mut noop = vec![];
    let mut noop_made = 0;
    for i in 0..runs {
        let n = format!("{}/{runs}", i + 1);
        if r1 {
            let (wall, hello, reboot) = floor_harness(s, i)?;
            say(&format!("1a floor, harness init, empty plan, run {n}: {wall:.2} s (guest hello at {hello:.2} s, reboot at {} s)", secs(reboot)));
            floor_h.push(wall);
            floor_h_hello.push(hello);
            floor_h_reboot.extend(reboot);
            if let Some(Ok(init)) = &trivial_init {
                let (wall, reboot, pre) = floor_trivial(s, i, init)?;
                say(&format!("1b floor, static C init that reboots, run {n}: {wall:.2} s (reboot at {} s, kernel clock started after {} s)", secs(reboot), secs(pre)));
                floor_t.push(wall);
                floor_t_reboot.extend(reboot);
                floor_t_pre.extend(pre);
            }
        }
        if r2 {
            let sample = warm_suite(s, &s.kernel_args)?;
            say(&format!(
                "2 warm suite run {n}: {:.1} s{}",
                sample.total,
                if sample.ok {
                    ""
                } else {
                    " (the suite reported failures)"
                }
            ));
            suite.push(sample);
            let one_at_a_time = KernelArgs {
                jobs: Some(1),
                ..s.kernel_args.clone()
            };
            let sample = warm_suite(s, &one_at_a_time)?;
            say(&format!(
                "2.seq warm suite, --jobs 1, run {n}: {:.1} s{}",
                sample.total,
                if sample.ok {
                    ""
                } else {
                    " (the suite reported failures)"
                }
            ));
            suite_seq.push(sample);
        }
        if r3 {
            // What `cargo xtask build-kernel --no-install` does: host tools, then the kernel.
            let started = Instant::now();
            let mut session = Session::for_kernels(&s.kernel_args);
            session.host_tools()?;
            let resolved = session.kernels(&s.kernel_args)?.remove(0);
            let secs = started.elapsed().as_secs_f64();
            if resolved.build_secs.is_some() {
                noop_made += 1;
            }
            say(&format!("3 no-op build-kernel run {n}: {secs:.2} s"));
            noop.push(secs);
        }
    }
    let mut rows = vec![];
    let floor_1b = Row::new(
        1,
        "1b",
        "boot floor: static C init, reboot(RB_AUTOBOOT) at once",
        floor_t,
        "same QEMU command line (QemuConfig::args), initramfs holds only /init; QEMU start → exit",
    );
    let floor_1b = match &trivial_init {
        Some(Err(e)) => Row::text(
            1,
            "1b",
            "boot floor: static C init",
            format!("not measured: {e}"),
        ),
        _ => floor_1b,
    };
    let floor = floor_1b.median;
    if r1 {
        let floor_h_row = Row::new(
            1,
            "1a",
            "boot floor of this harness: ue-init, plan with no scenarios",
            floor_h,
            "QEMU start → QEMU exit (vm::run wall); runner says hello/done, VM reboots",
        )
        .ratio_to(floor, "1b");
        rows.push(floor_h_row);
        rows.push(Row::new(
            1,
            "1a.boot",
            "  guest uptime at the runner's hello",
            floor_h_hello,
            "kernel boot + init until the runner starts (guest clock)",
        ));
        rows.push(Row::new(1, "1a.reboot", "  guest uptime at `reboot: Restarting system`", floor_h_reboot, "printk time; the rest of the wall is QEMU start, firmware, decompression before the clock, exit"));
        rows.push(floor_1b);
        if !floor_t_reboot.is_empty() {
            rows.push(Row::new(
                1,
                "1b.reboot",
                "  guest uptime at `reboot: Restarting system`",
                floor_t_reboot,
                "printk time",
            ));
        }
        if !floor_t_pre.is_empty() {
            rows.push(Row::new(
                1,
                "1b.pre",
                "  before the kernel's clock starts (QEMU start, qboot, bzImage decompression)",
                floor_t_pre,
                "host time of the first console line − its printk time",
            ));
        }
    }
    let floor = floor.or_else(|| rows.iter().find(|r| r.id == "1a").and_then(|r| r.median));
    if r2 {
        let failed = suite.iter().filter(|x| !x.ok).count();
        let scen_n = suite.first().map_or(0, |x| x.verdicts);
        let note = format!(
            "what `cargo xtask test --no-install` runs, called in-process; kernel and guest built; {scen_n} verdicts per run{}",
            if failed > 0 { format!("; {failed} run(s) reported failing scenarios (logs in the bench folder)") } else { String::new() }
        );
        let col = |f: fn(&SuiteSample) -> f64| suite.iter().map(f).collect::<Vec<_>>();
        rows.push(
            Row::new(2, "2", "warm suite, end to end", col(|x| x.total), note)
                .ratio_to(floor, "floor"),
        );
        let jobs = s.kernel_args.jobs.map_or(s.opts.jobs, |j| j as u32);
        rows.push(
            Row::new(
                2,
                "2.seq",
                "  the same with `--jobs 1` (scenarios one at a time)",
                suite_seq.iter().map(|x| x.total).collect(),
                format!(
                    "row 2 runs up to {jobs} scenarios side by side on {} vCPUs; interleaved with it run by run",
                    s.opts.cpus
                ),
            )
            .ratio_to(floor, "floor"),
        );
        rows.push(Row::new(
            2,
            "2.seq.scen",
            "    scenarios with `--jobs 1`, guest clock hello → done",
            suite_seq.iter().map(|x| x.done - x.hello).collect(),
            "guest_done_ms − guest_hello_ms",
        ));
        rows.push(Row::new(
            2,
            "2.out",
            "  outside the VM (cargo guest check, cache lookup, initramfs, reports)",
            col(|x| x.total - x.vm),
            "total − VM wall",
        ));
        rows.push(Row::new(
            2,
            "2.prep",
            "    of which before the boot step (kernel cache lookup + guest `cargo build` check)",
            col(|x| x.prep),
            "from the session's start to the boot",
        ));
        rows.push(
            Row::new(
                2,
                "2.vm",
                "  VM wall (QEMU start → exit)",
                col(|x| x.vm),
                "from results.json report.wall_ms",
            )
            .ratio_to(floor, "floor"),
        );
        rows.push(Row::new(
            2,
            "2.boot",
            "    guest boot until the runner's hello",
            col(|x| x.hello),
            "report.guest_hello_ms",
        ));
        rows.push(Row::new(
            2,
            "2.scen",
            "    scenarios, guest clock hello → done",
            col(|x| x.done - x.hello),
            "guest_done_ms − guest_hello_ms (side by side: less than their sum)",
        ));
        rows.push(Row::new(
            2,
            "2.sum",
            "    Σ scenario durations (guest-reported)",
            col(|x| x.scenarios),
            "Σ verdicts' duration_us; over 2.scen = how much ran side by side",
        ));
        rows.push(Row::new(
            2,
            "2.exit",
            "    before the guest clock starts + after done (QEMU start, firmware, power-off)",
            col(|x| x.vm - x.done),
            "VM wall − guest_done_ms",
        ));
    }
    if r3 {
        let note = if noop_made == 0 {
            "no make ran in any run".to_owned()
        } else {
            format!("make RAN in {noop_made} run(s): the cache missed")
        };
        rows.push(Row::new(
            3,
            "3",
            "no-op `cargo xtask build-kernel --no-install` (in-process)",
            noop,
            note,
        ));
    }
    Ok(rows)
}

/// A scratch cache under the system's temp folder, removed when dropped (rows 10 and 11: a
/// cold run must not find, nor leave, anything in the real cache).
struct ScratchCache(PathBuf);

impl ScratchCache {
    fn new(what: &str) -> anyhow::Result<ScratchCache> {
        let dir = std::env::temp_dir().join(format!("ue-bench-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(ScratchCache(dir))
    }
}

impl Drop for ScratchCache {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// Row 10: `cargo xtask matrix` (every kernel of the list) from an empty cache, once.
fn cold_matrix(s: &Setup) -> anyhow::Result<Vec<Row>> {
    let scratch = ScratchCache::new("cold-matrix")?;
    let load_before = load_average();
    say(&format!(
        "10 cold matrix: `cargo xtask matrix` in-process against the empty cache {} (downloads, extraction, builds, VMs; load {load_before})",
        scratch.0.display()
    ));
    let args = crate::commands::matrix::MatrixArgs {
        kernel: KernelArgs {
            cache_dir: Some(scratch.0.clone()),
            ..s.kernel_args.clone()
        },
        run: s.run_args.clone(),
        guest: crate::args::GuestTestArgs::default(),
    };
    let o = crate::commands::matrix::matrix(args)?;
    let t = &o.timings;
    let sum = t.sum_of_parts();
    let load = format!("load {load_before} before, {} after", load_average());
    let mut rows = vec![Row::new(
        10,
        "10",
        &format!(
            "cold matrix, {} kernels, empty cache, end to end",
            t.kernels.len()
        ),
        vec![t.wall_secs],
        format!(
            "one run; {}; {load}; timings in {}",
            if o.failed {
                "some trials failed"
            } else {
                "every kernel as expected"
            },
            o.dir.join("timings.json").display()
        ),
    )];
    rows.push(Row::new(
        10,
        "10.sum",
        "  Σ of its parts, one after another",
        vec![sum],
        format!(
            "prepare {:.0} s + per kernel download, extraction, build, VM (rows below)",
            t.prepare_secs
        ),
    ));
    rows.push(Row::new(
        10,
        "10.saving",
        "  saved by the overlap (Σ − wall)",
        vec![sum - t.wall_secs],
        format!("{:.0}% of Σ", 100.0 * (sum - t.wall_secs) / sum.max(1e-9)),
    ));
    for k in &t.kernels {
        rows.push(Row::new(
            10,
            &format!("10.{}", k.kernel),
            &format!("  {}: download + extraction + build + VM", k.kernel),
            vec![k.sum()],
            format!(
                "download {:.0} s, extraction {:.0} s, build {:.0} s (make {}{}), VM {:.1} s",
                k.download_secs,
                k.extract_secs,
                k.build_secs,
                k.make_secs.map_or("cached".into(), |m| format!("{m:.0} s")),
                k.steps
                    .map_or(String::new(), |n| format!(", {n} kbuild steps")),
                k.vm_secs
            ),
        ));
    }
    Ok(rows)
}

/// One cold build of the default kernel in `scratch`, seeded with the real cache's package
/// index and extracted source (hard links): the make is what is measured, not the download.
fn scratch_build(
    scratch: &Path,
    pristine: &Path,
    real_cache: &Path,
    ccache: bool,
    kconfig: &[&str],
) -> anyhow::Result<(f64, crate::kernel::build::BuildRecord)> {
    let sources = scratch.join("sources");
    std::fs::create_dir_all(&sources)?;
    let seeded = scratch.join("apt").exists();
    for (from, to, flags) in [
        (real_cache.join("apt"), scratch.join("apt"), "-a"),
        (
            pristine.to_owned(),
            sources.join(pristine.file_name().unwrap_or_default()),
            "-al",
        ),
    ] {
        if seeded {
            break;
        }
        let st = Command::new("cp").arg(flags).arg(&from).arg(&to).status()?;
        if !st.success() {
            bail!("cp {flags} {} {} failed", from.display(), to.display());
        }
    }
    let args = KernelArgs {
        cache_dir: Some(scratch.to_owned()),
        no_install: true,
        ccache,
        kconfig: kconfig.iter().map(|k| k.to_string()).collect(),
        ..KernelArgs::default()
    };
    let mut session = Session::for_kernels(&args);
    session.host_tools()?;
    let started = Instant::now();
    let r = session.kernels(&args)?.remove(0);
    let wall = started.elapsed().as_secs_f64();
    let record = r
        .built
        .with_context(|| format!("no build ran in the empty cache {}", scratch.display()))?;
    Ok((wall, record))
}

/// Row 11d's change: an option few objects depend on, so a new cache key whose every object
/// sees another autoconf.h.
const KCONFIG_CHANGE: &str = "CONFIG_IKCONFIG=y";

// Row 11: does ccache pay? One cold build of the default kernel (a) without ccache, (b) with an
// empty ccache, (c) with (b)'s ccache, warm, in another empty cache (other absolute paths),
// (d) with that ccache and one more `--kconfig` option (a new cache key).
fn ccache_builds(s: &Setup, session: &mut Session) -> anyhow::Result<Vec<Row>> {
    let list = session.kernel_list()?;
    let pristine = session.pristine_tree(&list.default)?;
    let mut rows = vec![];
    let mut results = vec![];
    let a = ScratchCache::new("ccache-a")?;
    let b = ScratchCache::new("ccache-b")?;
    let c = ScratchCache::new("ccache-c")?;
    for (id, dir, ccache, kconfig) in [
        ("11a", &a, false, &[][..]),
        ("11b", &b, true, &[]),
        ("11c", &c, true, &[]),
        ("11d", &c, true, &[KCONFIG_CHANGE]),
    ] {
        if id == "11c" {
            std::fs::rename(
                crate::kernel::ccache::dir(&b.0),
                crate::kernel::ccache::dir(&c.0),
            )
            .context("move the warm ccache store to the third scratch cache")?;
        }
        let load = load_average();
        say(&format!(
            "{id}: cold build of {} in {}{} (load {load})",
            list.default,
            dir.0.display(),
            if ccache { ", through ccache" } else { "" }
        ));
        let (wall, rec) = scratch_build(&dir.0, &pristine, &s.cache, ccache, kconfig)?;
        results.push((id, wall, rec, load, load_average()));
    }
    let base = results.first().map(|r| r.2.build_secs);
    for (id, wall, rec, before, after) in results {
        let what = match id {
            "11a" => "cold build, no ccache (make)",
            "11b" => "cold build, empty ccache (make)",
            "11c" => "second cold build, warm ccache, other cache folder (make)",
            _ => "cold build with --kconfig CONFIG_IKCONFIG=y, warm ccache (make)",
        };
        let mut row = Row::new(
            11,
            id,
            what,
            vec![rec.build_secs],
            format!(
                "{} kbuild steps; whole build {wall:.0} s{}; load {before} before, {after} after",
                rec.steps,
                rec.ccache.map_or(String::new(), |c| format!("; {c}"))
            ),
        );
        if id != "11a" {
            row = row.ratio_to(base, "11a");
        }
        rows.push(row);
    }
    Ok(rows)
}

// Row 9: how long a killed mutant takes from its patch to its verdict.
fn killed_mutants(s: &Setup) -> anyhow::Result<Vec<Row>> {
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
        9,
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

/// The harness's own init with a plan of no scenarios: the floor of this harness.
fn floor_harness(s: &Setup, i: usize) -> anyhow::Result<(f64, f64, Option<f64>)> {
    let run_dir = s.dir.join(format!("floor-harness-{i}"));
    std::fs::create_dir_all(&run_dir)?;
    let k = s.opts.accel.slowdown();
    let plan = Plan {
        scenarios: vec![],
        scenario_timeout_ms: (s.opts.scenario_timeout * k).as_millis() as u64,
        poll_deadline_ms: (s.opts.poll_deadline * k).as_millis() as u64,
        kselftests: vec![],
        stop_at_first_failure: false,
        stop_on: vec![],
        jobs: 1,
        guest_tests: vec![],
    };
    let manifest = harness::image::Manifest::load(&s.opts.manifest)?;
    let initrd = run_dir.join("initramfs.cpio");
    std::fs::write(
        &initrd,
        harness::image::build(&manifest, &s.opts.guest_bin_dir, &plan, &[])?,
    )?;
    let started = Instant::now();
    let report = vm::run(
        &qemu_config(s, &s.kernel.bzimage, &run_dir, initrd.clone()),
        &run_dir,
        &s.opts.limits(0, &[]),
    )?;
    let wall = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&initrd);
    if report.end != VmEnd::Finished {
        bail!(
            "the empty-plan boot did not finish cleanly ({:?}); console log: {}",
            report.end,
            report.console_log.display()
        );
    }
    Ok((
        wall,
        report.guest_hello_ms.unwrap_or(0) as f64 / 1000.0,
        reboot_uptime(&report.console_log),
    ))
}

/// The suite's QEMU without the user's additions: the floor is the harness's own boot.
fn qemu_config(s: &Setup, bzimage: &Path, run_dir: &Path, initrd: PathBuf) -> QemuConfig {
    QemuConfig {
        extra_cmdline: String::new(),
        extra_args: vec![],
        gdb: None,
        ..harness::run::qemu_config(&s.opts, bzimage, initrd, run_dir)
    }
}

/// A static C program that reboots at once: with `-no-reboot`, QEMU exits. Returns the binary.
fn trivial_init(dir: &Path) -> Result<Vec<u8>, String> {
    let c = dir.join("trivial-init.c");
    let bin = dir.join("trivial-init");
    std::fs::write(&c, "#include <sys/reboot.h>\n#include <unistd.h>\nint main(void) { reboot(RB_AUTOBOOT); return 1; }\n")
        .map_err(|e| format!("write {}: {e}", c.display()))?;
    let out = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&c)
        .output()
        .map_err(|e| format!("run gcc: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "gcc -static failed (is libc6-dev installed?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    std::fs::read(&bin).map_err(|e| format!("read {}: {e}", bin.display()))
}

/// Boots the trivial init with the harness's QEMU command line, but reads the console itself
/// so each line gets a host timestamp: the first line's host time minus its printk time is what
/// passes before the kernel's clock starts (QEMU start, qboot, bzImage decompression).
/// Returns (wall, guest uptime at reboot, time before the kernel's clock).
fn floor_trivial(
    s: &Setup,
    i: usize,
    init: &[u8],
) -> anyhow::Result<(f64, Option<f64>, Option<f64>)> {
    use std::io::BufRead as _;
    let run_dir = s.dir.join(format!("floor-trivial-{i}"));
    std::fs::create_dir_all(&run_dir)?;
    let mut img = Initramfs::new();
    img.dir("dev");
    img.file("init", 0o755, init.to_vec());
    let initrd = run_dir.join("initramfs.cpio");
    std::fs::write(&initrd, img.to_bytes())?;
    let qemu = qemu_config(s, &s.kernel.bzimage, &run_dir, initrd.clone());
    std::fs::write(run_dir.join("qemu-cmdline.txt"), qemu.shell_line() + "\n")?;
    let _ = std::fs::remove_file(&qemu.result_socket);
    // QEMU connects its second serial port here at start; nothing is ever sent on it.
    let listener = std::os::unix::net::UnixListener::bind(&qemu.result_socket)
        .with_context(|| format!("listen on {}", qemu.result_socket.display()))?;
    let mut cmd = Command::new(&qemu.binary);
    cmd.args(qemu.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    harness::vm::die_with_parent(&mut cmd);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("start {}", qemu.binary.display()))?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .split(b'\n')
            .map_while(Result::ok)
        {
            let _ = tx.send((
                started.elapsed().as_secs_f64(),
                String::from_utf8_lossy(&line).into_owned(),
            ));
        }
    });
    let limit = s.opts.limits(0, &[]).boot;
    let mut lines: Vec<(f64, String)> = vec![];
    // A 5 ms look: the wall time is what this row measures.
    let wait = Wait::until(started + limit)
        .or_interrupt()
        .polling(Duration::from_millis(5));
    let outcome = proc::wait_for(&mut child, wait, || {
        lines.extend(rx.try_iter());
        false
    })?;
    let Waited::Exited(status) = outcome else {
        let _ = std::fs::remove_file(&qemu.result_socket);
        bail!(
            "the trivial-init boot did not end within {} s (or was interrupted); see {}",
            limit.as_secs(),
            run_dir.display()
        );
    };
    let wall = started.elapsed().as_secs_f64();
    drop(listener);
    let _ = std::fs::remove_file(&qemu.result_socket);
    // The reader ends with QEMU's stdout; take what is left.
    let drain_until = Instant::now() + Duration::from_secs(2);
    while let Ok(l) = rx.recv_timeout(drain_until.saturating_duration_since(Instant::now())) {
        lines.push(l);
    }
    let console: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    let console_log = run_dir.join("console.log");
    std::fs::write(&console_log, &console)?;
    let _ = std::fs::remove_file(&initrd);
    // A failed init panics, which also ends the VM, just as fast: it must have rebooted on purpose.
    if console.contains("Kernel panic")
        || !harness::console::scan(&console).is_empty()
        || !console.contains("reboot: Restarting system")
    {
        bail!(
            "the trivial-init boot did not end with a clean reboot ({status}); console log: {}",
            console_log.display()
        );
    }
    let printk = |l: &str| -> Option<f64> {
        l.trim_start()
            .strip_prefix('[')?
            .split(']')
            .next()?
            .trim()
            .parse()
            .ok()
    };
    let before_clock = lines.iter().find_map(|(t, l)| Some(t - printk(l)?));
    Ok((wall, reboot_uptime(&console_log), before_clock))
}

/// The guest's uptime when the kernel printed `reboot: Restarting system` (printk time).
fn reboot_uptime(console_log: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(console_log).ok()?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("reboot: Restarting system"))?;
    line.trim_start()
        .strip_prefix('[')?
        .split(']')
        .next()?
        .trim()
        .parse()
        .ok()
}

struct SuiteSample {
    ok: bool,
    total: f64,
    vm: f64,
    hello: f64,
    done: f64,
    scenarios: f64,
    verdicts: usize,
    /// From the start to the boot (kernel lookup, guest cargo check, options).
    prep: f64,
    /// The pipeline's own step log, for the rows that split a run further.
    progress: Progress,
    /// Seconds make ran (a patched kernel), None from the cache.
    make: Option<f64>,
}

/// What `cargo xtask test --no-install` runs, in-process: session, kernel, guest, one boot,
/// artifacts. The accelerator is the one the bench chose once (its probe is cached anyway).
fn warm_suite(s: &Setup, kernel_args: &KernelArgs) -> anyhow::Result<SuiteSample> {
    let started = Instant::now();
    let mut session = Session::for_kernels(kernel_args);
    session.host_tools()?;
    let resolved = session.kernels(kernel_args)?.remove(0);
    let guest = session.guest()?;
    let mut opts = session.suite_options(&s.run_args, &guest);
    opts.accel = s.opts.accel;
    let sel = Selection {
        scenarios: guest.scenarios(false),
        kselftests: vec![],
        ..Default::default()
    };
    session.progress.step(Step::Boot, &resolved.kernel.label);
    let prep = started.elapsed().as_secs_f64();
    let run = harness::run::run_kernel(&resolved.kernel, &opts, &sel)?;
    harness::artifacts::write(&run)?;
    // Read back what was written, as a reader of results.json would.
    let run: KernelRun = harness::artifacts::read_results(&run.run_dir)?;
    let total = started.elapsed().as_secs_f64();
    let vm = run.report.wall_ms as f64 / 1000.0;
    Ok(SuiteSample {
        ok: !run.failed(),
        total,
        vm,
        hello: run.report.guest_hello_ms.unwrap_or(0) as f64 / 1000.0,
        done: run.report.guest_done_ms.map_or(vm, |m| m as f64 / 1000.0),
        scenarios: run.scenario_secs(),
        verdicts: run.verdicts.len(),
        prep,
        progress: session.progress,
        make: resolved.build_secs,
    })
}

// ---------------------------------------------------------------------------------------------
// Row 4: a one-line edit of kernel/trace/trace_events_user.c, rebuilt and rerun.

fn edit_rerun(s: &Setup, runs: usize, floor: Option<f64>) -> anyhow::Result<Vec<Row>> {
    const FILE: &str = "kernel/trace/trace_events_user.c";
    // The default kernel's build tree is a patched (here: unpatched) copy of the pristine source.
    // <entry>/src/out/arch/x86/boot/bzImage: the source is the build folder's parent.
    let src = s
        .kernel
        .bzimage
        .ancestors()
        .nth(5)
        .context("bzImage path has no build tree")?
        .to_owned();
    let original = std::fs::read_to_string(src.join(FILE))
        .with_context(|| format!("read {}", src.join(FILE).display()))?;
    let first: Vec<&str> = original.lines().take(3).collect();
    if first.len() < 3 {
        bail!("{FILE} is shorter than 3 lines");
    }
    let (mut total, mut make, mut vm, mut other) = (vec![], vec![], vec![], vec![]);
    let (mut guest, mut copy, mut seed, mut kself) = (vec![], vec![], vec![], vec![]);
    let mut failed = 0;
    for i in 0..runs {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let name = format!("bench-edit-{nanos}.patch");
        let patch = s.dir.join(&name);
        std::fs::write(
            &patch,
            format!(
                "--- a/{FILE}\n+++ b/{FILE}\n@@ -1,3 +1,4 @@\n {}\n+/* ue-bench edit {nanos} */\n {}\n {}\n",
                first[0], first[1], first[2]
            ),
        )?;
        let args = KernelArgs {
            patches: vec![patch],
            ..s.kernel_args.clone()
        };
        let sample = warm_suite(s, &args)?;
        let entry = find_build(&s.cache, &name).with_context(|| {
            format!("no complete cache entry for {name} after the patched build")
        })?;
        if !sample.ok {
            failed += 1;
        }
        let made = sample.make.unwrap_or(entry.1);
        say(&format!(
            "4 edit + rebuild + suite run {}/{runs}: {:.1} s (make {made:.1} s, VM {:.1} s)",
            i + 1,
            sample.total,
            sample.vm
        ));
        total.push(sample.total);
        make.push(made);
        vm.push(sample.vm);
        other.push(sample.total - made - sample.vm);
        let p = &sample.progress;
        guest.extend(p.span(Step::Copy).map(|(start, _)| start));
        copy.extend(p.span(Step::Copy).map(|(a, b)| b - a));
        seed.extend(p.span(Step::Seed).map(|(a, b)| b - a));
        kself.extend(p.span(Step::Kselftest).map(|(a, b)| b - a));
        // Each edit is its own cache entry (a copy of the build folder); drop it.
        let _ = std::fs::remove_dir_all(&entry.0);
        let _ = std::fs::remove_file(entry.0.with_extension("lock"));
    }
    let note = format!(
        "`cargo xtask test --patch FILE --no-install` in-process, FILE adds a unique comment line to {FILE}{}",
        if failed > 0 { format!("; {failed} run(s) reported failing scenarios") } else { String::new() }
    );
    Ok(vec![
        Row::new(4, "4", "edit one line, rebuild + boot + suite", total, note)
            .ratio_to(floor, "floor"),
        Row::new(
            4,
            "4.make",
            "  make alone",
            make,
            "the build's own record (build_secs)",
        ),
        Row::new(4, "4.vm", "  VM wall", vm, "results.json report.wall_ms"),
        Row::new(
            4,
            "4.other",
            "  the rest",
            other,
            "total − make − VM; split below from the pipeline's step log",
        ),
        Row::new(
            4,
            "4.guest",
            "    host tools, cache lookups, SHA-256 re-check of the cached .deb",
            guest,
            "start → patch step",
        ),
        Row::new(
            4,
            "4.copy",
            "    hard-linked copy of the source + patch",
            copy,
            "cp -al of the pristine tree, GNU patch",
        ),
        Row::new(
            4,
            "4.seed",
            "    copy of the unpatched build folder",
            seed,
            "cp -a of builds/<key>/src/out",
        ),
        Row::new(
            4,
            "4.kselftest",
            "    upstream user_events selftests rebuilt",
            kself,
            "rebuilt only when the selftests' sources or the uapi header change",
        ),
    ])
}

// Row 8: a developer's own tree (configured in place), one line of the user_events source
// edited there, then `test --kernel-tree`: snapshot sync, incremental make, boot, the suite.

fn own_tree_edit(s: &Setup, runs: usize, tree: &Path) -> anyhow::Result<Vec<Row>> {
    const FILE: &str = "kernel/trace/trace_events_user.c";
    if !tree.join(".git").exists() {
        return Ok(vec![Row::text(
            8,
            "8",
            "own tree: edit one line → results",
            format!("not run: no git kernel tree at {} (`--tree PATH`, or run `cargo xtask selftest -- devloop` once)", tree.display()),
        )]);
    }
    let path = tree.join(FILE);
    let original =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let args = KernelArgs {
        kernel_tree: Some(tree.to_owned()),
        ..s.kernel_args.clone()
    };
    // Once without an edit, so the rows measure an edit and not a first build.
    warm_suite(s, &args)?;
    let (mut total, mut make, mut vm, mut sync) = (vec![], vec![], vec![], vec![]);
    for i in 0..runs {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        // A new file in place of the old, as editors and git write it.
        let tmp = path.with_extension("ue-bench");
        std::fs::write(&tmp, format!("/* ue-bench edit {nanos} */\n{original}"))?;
        std::fs::rename(&tmp, &path)?;
        let sample = warm_suite(s, &args);
        let restore = proc::git(tree, &["checkout", "-q", "--", FILE]);
        let sample = sample?;
        if restore.is_err() {
            bail!(
                "could not put {FILE} back in {} (git checkout)",
                tree.display()
            );
        }
        let made = sample.make.unwrap_or(0.0);
        say(&format!(
            "8 own tree edit → results run {}/{runs}: {:.1} s (make {made:.1} s, VM {:.1} s)",
            i + 1,
            sample.total,
            sample.vm
        ));
        total.push(sample.total);
        make.push(made);
        vm.push(sample.vm);
        sync.extend(sample.progress.span(Step::Snapshot).map(|(a, b)| b - a));
    }
    Ok(vec![
        Row::new(
            8,
            "8",
            "own tree: edit one line → results",
            total,
            format!("`cargo xtask test --kernel-tree {}` in-process after a one-line edit of {FILE}; target ≤ 30 s", tree.display()),
        ),
        Row::new(8, "8.sync", "  snapshot sync", sync, "the tree's sources compared by size and mtime, the changed file copied"),
        Row::new(8, "8.make", "  incremental make", make, "one object, then the link"),
        Row::new(8, "8.vm", "  VM wall", vm, "results.json report.wall_ms"),
    ])
}

/// The cache entry whose record names this patch: (folder, build_secs).
fn find_build(cache: &Path, patch_name: &str) -> Option<(PathBuf, f64)> {
    for e in std::fs::read_dir(cache.join("builds")).ok()?.flatten() {
        let Ok(bytes) = std::fs::read(e.path().join("COMPLETE.json")) else {
            continue;
        };
        let Ok(rec) = serde_json::from_slice::<crate::kernel::build::BuildRecord>(&bytes) else {
            continue;
        };
        if rec.patches.iter().any(|p| p == patch_name) {
            return Some((e.path(), rec.build_secs));
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Rows 5 and 6: recorded figures.

fn cold_builds(cache: &Path) -> anyhow::Result<Vec<Row>> {
    let mut rows = vec![];
    let mut entries: Vec<_> = std::fs::read_dir(cache.join("builds"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_else(|_| vec![]);
    entries.sort();
    for e in entries {
        let Ok(bytes) = std::fs::read(e.join("COMPLETE.json")) else {
            continue;
        };
        let Ok(rec) = serde_json::from_slice::<crate::kernel::build::BuildRecord>(&bytes) else {
            continue;
        };
        if rec.steps <= 500 {
            continue;
        }
        let ident = rec
            .identity
            .split(" sha256:")
            .next()
            .unwrap_or(&rec.identity)
            .trim_start_matches("deb:")
            .to_owned();
        let mut inputs = rec.fragments.join(" + ");
        if !rec.patches.is_empty() {
            inputs.push_str(&format!(", patches {}", rec.patches.join(", ")));
        }
        let mut row = Row::new(
            5,
            "5",
            &format!("cold build {ident} ({inputs})"),
            vec![rec.build_secs],
            "",
        );
        row.note = format!(
            "RECORDED by an earlier build (cache entry {}, {} kbuild steps, -j{}), not measured now; {}",
            rec.key,
            rec.steps,
            std::thread::available_parallelism().map_or(2, |n| n.get()),
            rec.ccache
                .map_or("no ccache".to_owned(), |c| c.to_string())
        );
        rows.push(row);
    }
    if rows.is_empty() {
        rows.push(Row::text(
            5,
            "5",
            "cold build",
            format!(
                "no full build recorded under {}/builds; row 11 measures one now (with and without ccache)",
                cache.display()
            ),
        ));
    }
    Ok(rows)
}

fn matrix(runs_dir: &Path) -> anyhow::Result<Vec<Row>> {
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
            6,
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
                6,
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
        6,
        "6",
        "matrix, all kernels (recorded)",
        vec![report.wall_secs],
        format!("from {} (not run by the bench)", path.display()),
    )];
    for k in &report.kernels {
        rows.push(Row::new(
            6,
            &format!("6.{}", k.kernel),
            &format!("  VM wall of {}", k.kernel),
            vec![k.wall_ms as f64 / 1000.0],
            "matrix.json wall_ms",
        ));
    }
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// Row 7: virtme-ng against this harness, same kernel, same scenarios.

fn vng(s: &Setup, runs: usize, session: &mut Session) -> anyhow::Result<Vec<Row>> {
    let what = "virtme-ng (`vng --run`) vs this harness, same kernel and scenarios";
    let version = Command::new("vng")
        .arg("--version")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    let version = match version {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        Ok(o) => {
            return Ok(vec![Row::text(
                7,
                "7",
                what,
                format!(
                    "not measured: `vng --version` failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            )])
        }
        Err(e) => {
            return Ok(vec![Row::text(
                7,
                "7",
                what,
                format!("not measured: vng not found ({e}); `pip install virtme-ng`"),
            )])
        }
    };
    // The same 6.12 package, with the fragment vng needs on top of the suite's two.
    let cfg = session.configs.clone();
    let list = session.kernel_list()?;
    let spec = &list.kernels[&list.default];
    let aptc = crate::kernel::apt::PrivateApt::new(&s.cache);
    aptc.update(
        &list.all_suites(),
        &list.all_packages(),
        &mut session.progress,
    )?;
    let entry = aptc.newest(&spec.package)?;
    let fetch =
        |p: &mut Progress| crate::kernel::source::fetch_pristine(&aptc, &s.cache, &entry, p);
    let mut fragments = spec.fragment_paths(&cfg);
    fragments.push(cfg.join("vng.config"));
    let req = BuildRequest {
        label: format!("{}+vng", list.default),
        source: Source::Pristine {
            identity: format!(
                "deb:{}={} sha256:{}",
                entry.package, entry.version, entry.sha256
            ),
            fetch: &fetch,
        },
        fragments,
        patches: spec.patch_paths(&cfg),
        extra_patches: 0,
        absent: spec.absent.clone(),
        kconfig: vec![],
        jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
        ccache: s.kernel_args.ccache,
    };
    let built = crate::kernel::build::build(&s.cache, &req, &mut session.progress)?;
    let build_note = if built.ran_make {
        format!("built now in {:.0} s", built.record.build_secs)
    } else {
        "from the cache".into()
    };
    let kernel = KernelUnderTest {
        label: req.label.clone(),
        bzimage: built.bzimage.clone(),
        config: Some(built.config.clone()),
        provenance: format!("{} {} + vng.config", entry.package, entry.version),
        identity: format!(
            "deb:{}={} sha256:{} +vng.config",
            entry.package, entry.version, entry.sha256
        ),
        kselftests: vec![],
        expected: spec.expectation(&list.default),
    };

    // vng runs ue-scenarios from the host's root filesystem, with the suite's own plan; the
    // records come back on vng's stdout (the runner writes them to stdout).
    let k = s.opts.accel.slowdown();
    let plan = Plan {
        scenarios: s.scenarios.iter().map(|x| x.name.clone()).collect(),
        scenario_timeout_ms: (s.opts.scenario_timeout * k).as_millis() as u64,
        poll_deadline_ms: (s.opts.poll_deadline * k).as_millis() as u64,
        kselftests: vec![],
        stop_at_first_failure: false,
        stop_on: vec![],
        jobs: 1,
        guest_tests: vec![],
    };
    let plan_path = s.dir.join("vng-plan.json");
    std::fs::write(&plan_path, serde_json::to_vec_pretty(&plan)?)?;
    let runner = s.opts.guest_bin_dir.join("ue-scenarios");
    // ue-init mounts tracefs for the harness; under vng the command does it itself. The records
    // go to a file in the bench folder, shared read-write (--rwdir): without udev, vng's init
    // finds no virtio-serial ports for the command's output and falls back to the serial
    // console, which vng sends to /dev/null unless -v. Without ACPI (tinyconfig) vng's power-off
    // only halts and QEMU would wait forever: the command ends the VM with a SysRq reboot, which
    // vng's -no-reboot turns into QEMU exiting (vng then exits 255: it got no return code).
    let vng_cmd = |extra: &[&str], records: &Path| {
        let _ = std::fs::remove_file(records);
        let exec = format!(
            "mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null; {} --plan {} > {}; echo b > /proc/sysrq-trigger",
            runner.display(),
            plan_path.display(),
            records.display()
        );
        let mut c = Command::new("vng");
        c.arg("--run").arg(&built.bzimage);
        if s.opts.accel == harness::qemu::Accel::Tcg {
            c.arg("--disable-kvm");
        }
        c.args([
            "--memory",
            &format!("{}M", s.opts.memory_mib),
            "--cpus",
            &s.opts.cpus.to_string(),
        ]);
        c.arg(format!("--rwdir={}", s.dir.display()));
        c.args(extra);
        // Without CONFIG_BLOCK the kernel mounts a 9p root only when root= names its tag; vng
        // leaves root= out for 9p (its configs have CONFIG_BLOCK, where /dev/root is implied).
        c.args(["--append", "root=/dev/root"]);
        c.args(["--exec", &exec]);
        c
    };
    let read_records = |p: &Path| {
        records(&String::from_utf8_lossy(
            &std::fs::read(p).unwrap_or_default(),
        ))
    };

    // First find a way vng boots here: its default (virtiofs) and then 9p.
    let mut how: Option<(&[&str], String)> = None;
    let mut tried = vec![];
    let ways: [(&[&str], &str); 2] = [(&[], "vng's default"), (&["--force-9p"], "9p (--force-9p)")];
    for (extra, name) in ways {
        let rec = s.dir.join(format!(
            "vng-probe-{}.jsonl",
            if extra.is_empty() { "default" } else { "9p" }
        ));
        let out = run_limited(
            vng_cmd(extra, &rec),
            VNG_LIMIT,
            &rec.with_extension(""),
            "vng",
        )?;
        let (hello, ends, passes) = read_records(&rec);
        if hello && ends > 0 {
            say(&format!(
                "7 vng works with {name}: {passes}/{ends} scenarios passed, {:.1} s",
                out.secs
            ));
            // vng picks 9p by itself when it cannot use virtiofsd (here: QEMU 7.2's C daemon,
            // which vng refuses, or no KVM): its --dry-run command line says which it used.
            let mut dry = vng_cmd(extra, &rec);
            dry.arg("--dry-run");
            let dry = run_limited(
                dry,
                Duration::from_secs(60),
                &s.dir.join("vng-dry-run"),
                "vng --dry-run",
            )?;
            let way =
                if dry.stdout.contains("rootfstype=9p") || dry.stderr.contains("rootfstype=9p") {
                    "9p (vng's choice: no usable virtiofsd)".to_owned()
                } else if dry.stdout.contains("rootfstype=virtiofs")
                    || dry.stderr.contains("rootfstype=virtiofs")
                {
                    "virtiofs".to_owned()
                } else {
                    name.to_owned()
                };
            how = Some((extra, way));
            break;
        }
        let tail: String = out
            .stderr
            .lines()
            .chain(out.stdout.lines())
            .filter(|l| !l.trim().is_empty())
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" / ");
        say(&format!(
            "7 vng with {name} did not run the scenarios ({}): {tail}",
            out.status
        ));
        tried.push(format!(
            "{name}: {} — {}",
            out.status,
            tail.chars().take(300).collect::<String>()
        ));
    }
    let Some((extra, way)) = how else {
        return Ok(vec![Row::text(
            7,
            "7",
            what,
            format!(
                "vng {version} could not run the scenarios on this machine: {}",
                tried.join("; ")
            ),
        )]);
    };

    let (mut ours, mut theirs) = (vec![], vec![]);
    let (mut our_pass, mut their_pass, mut their_ends) = (0, 0, 0);
    for i in 0..runs {
        let started = Instant::now();
        let sel = Selection {
            scenarios: s.scenarios.clone(),
            kselftests: vec![],
            ..Default::default()
        };
        let run = harness::run::run_kernel(&kernel, &s.opts, &sel)?;
        let w = started.elapsed().as_secs_f64();
        our_pass = run
            .verdicts
            .iter()
            .filter(|v| v.verdict == Verdict::Pass)
            .count();
        ours.push(w);
        let rec = s.dir.join(format!("vng-{i}.jsonl"));
        let out = run_limited(
            vng_cmd(extra, &rec),
            VNG_LIMIT,
            &rec.with_extension(""),
            "vng",
        )?;
        let (_, ends, passes) = read_records(&rec);
        (their_pass, their_ends) = (passes, ends);
        theirs.push(out.secs);
        say(&format!("7 run {}/{runs}: harness {w:.1} s ({our_pass} pass), vng {:.1} s ({passes}/{ends} pass)", i + 1, out.secs));
    }
    let ours_row = Row::new(
        7,
        "7a",
        "this harness on the vng kernel (initramfs, one boot)",
        ours,
        format!(
            "harness::run::run_kernel, {our_pass}/{} pass; kernel 6.12 + vng.config, {build_note}",
            s.scenarios.len()
        ),
    );
    let ours_median = ours_row.median;
    Ok(vec![
        ours_row,
        Row::new(7, "7b", &format!("vng {version}, same kernel, same ue-scenarios plan"), theirs, format!("`vng --run bzImage{} --rwdir BENCH --append root=/dev/root --exec 'ue-scenarios --plan … > BENCH/…; SysRq reboot'`, root over {way}; {their_pass}/{their_ends} pass", if s.opts.accel == harness::qemu::Accel::Tcg { " --disable-kvm" } else { "" }))
            .ratio_to(ours_median, "7a"),
    ])
}

/// From a runner's stdout: whether it said hello, how many scenarios ended, how many passed.
fn records(stdout: &str) -> (bool, usize, usize) {
    let (mut hello, mut ends, mut passes) = (false, 0, 0);
    for ev in harness::channel::parse_all(stdout.as_bytes()) {
        match ev {
            Event::Record(Record::Hello { .. }) => hello = true,
            Event::Record(Record::End { outcome, .. }) => {
                ends += 1;
                if outcome == Outcome::Pass {
                    passes += 1;
                }
            }
            _ => {}
        }
    }
    (hello, ends, passes)
}

// ---------------------------------------------------------------------------------------------
// Running commands with a limit.

struct Limited {
    secs: f64,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` in its own process group with stdout and stderr in `<log>.stdout/.stderr`; kills
/// the group when `limit` runs out or the bench is interrupted. QEMU under it dies with its
/// parent (PR_SET_PDEATHSIG), and so does the command if the bench itself dies.
fn run_limited(
    mut cmd: Command,
    limit: Duration,
    log: &Path,
    what: &str,
) -> anyhow::Result<Limited> {
    let out_path = log.with_extension("stdout");
    let err_path = log.with_extension("stderr");
    let out_f = std::fs::File::create(&out_path)
        .with_context(|| format!("create {}", out_path.display()))?;
    let err_f = std::fs::File::create(&err_path)
        .with_context(|| format!("create {}", err_path.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(out_f)
        .stderr(err_f)
        .process_group(0);
    harness::vm::die_with_parent(&mut cmd);
    let started = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("start {what}"))?;
    let status = match proc::wait_for(
        &mut child,
        Wait::until(started + limit).or_interrupt(),
        || false,
    )? {
        Waited::Exited(st) => st,
        Waited::Interrupted(_) => bail!(
            "interrupted while running {what}; stopped it (log: {})",
            err_path.display()
        ),
        Waited::TimedOut(_) | Waited::Ready => bail!(
            "{what} ran longer than {} s and was killed; its output is in {}",
            limit.as_secs(),
            err_path.display()
        ),
    };
    let secs = started.elapsed().as_secs_f64();
    // Anything the command left in its group (a stray QEMU) must not run into the next step.
    proc::kill_group(child.id());
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    let _ = std::io::stderr().flush();
    Ok(Limited {
        secs,
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_long_cold_rows_run_only_when_named() {
        assert!(selected(&[], 1) && selected(&[], 9));
        assert!(!selected(&[], 10) && !selected(&[], 11));
        assert!(selected(&[10], 10) && !selected(&[10], 11) && !selected(&[10], 2));
        assert!(selected(&[2, 11], 11));
    }

    #[test]
    fn medians_of_odd_and_even_counts_with_min_and_max() {
        let r = Row::new(1, "1", "x", vec![3.0, 1.0, 2.0], "");
        assert_eq!((r.median, r.min, r.max), (Some(2.0), Some(1.0), Some(3.0)));
        let r = Row::new(1, "1", "x", vec![4.0, 1.0, 2.0, 3.0], "").ratio_to(Some(1.25), "floor");
        assert_eq!(r.median, Some(2.5));
        assert_eq!(r.ratio.as_deref(), Some("2.0× floor"));
        assert_eq!(Row::text(6, "6", "matrix", "not run").median, None);
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
