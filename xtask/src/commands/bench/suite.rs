//! The warm suite, in-process, as `cargo xtask test --no-install` runs it, with where its
//! time went: rows 2, 4, 8 and 12 each time one.

use std::time::Instant;

use harness::model::KernelRun;
use harness::run::Selection;

use crate::args::{KernelArgs, RunArgs};
use crate::session::Session;
use crate::sys::progress::{Progress, Step};

use super::Setup;

pub(super) struct SuiteSample {
    pub(super) ok: bool,
    /// The trials that failed, by name (row 12 counts them).
    pub(super) failed: Vec<String>,
    /// The run's folder, where its console log is.
    pub(super) run_dir: std::path::PathBuf,
    pub(super) total: f64,
    pub(super) vm: f64,
    pub(super) hello: f64,
    pub(super) done: f64,
    pub(super) scenarios: f64,
    pub(super) verdicts: usize,
    /// From the start to the boot (kernel lookup, guest cargo check, options).
    pub(super) prep: f64,
    /// The pipeline's own step log, for the rows that split a run further.
    pub(super) progress: Progress,
    /// Seconds make ran (a patched kernel), None from the cache.
    pub(super) make: Option<f64>,
}

/// What `cargo xtask test --no-install` runs, in-process: session, kernel, guest, one boot,
/// artifacts. The accelerator is the one the bench chose once (its probe is cached anyway).
pub(super) fn warm_suite(s: &Setup, kernel_args: &KernelArgs) -> anyhow::Result<SuiteSample> {
    warm_suite_with(s, kernel_args, &s.run_args)
}

/// [`warm_suite`] with other run options (row 2.nowit's `--append`).
pub(super) fn warm_suite_with(
    s: &Setup,
    kernel_args: &KernelArgs,
    run_args: &RunArgs,
) -> anyhow::Result<SuiteSample> {
    let started = Instant::now();
    let mut session = Session::for_kernels(kernel_args);
    session.host_tools()?;
    let resolved = session.kernels(kernel_args)?.remove(0);
    let guest = session.guest()?;
    let mut opts = session.suite_options(run_args, &guest);
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
        failed: run
            .verdicts
            .iter()
            .filter(|v| v.verdict.is_fail())
            .map(|v| v.name.clone())
            .collect(),
        run_dir: run.run_dir.clone(),
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
