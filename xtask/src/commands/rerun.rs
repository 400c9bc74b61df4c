//! `cargo xtask rerun RUN_DIR [-- FILTER]`: boots a kept run again (its kernel, initramfs and
//! QEMU options, as `results.json`'s run had them) and reports the trials as `test` does. A
//! filter picks among the scenarios that run planned; the new plan is laid over the kept
//! image, so the guest programs are the kept ones too.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use harness::model::SuiteOptions;
use harness::run::{Kept, RERUN_FILE};

use crate::session::Session;

#[derive(Args)]
pub struct RerunArgs {
    /// A run folder under target/ue-runs/ that was kept (it failed, or ran with --keep).
    pub run_dir: PathBuf,
    /// Stream the kernel console to stderr while the VM runs.
    #[arg(short = 'v', long = "console")]
    pub console: bool,
    /// Keep this run's artifacts too.
    #[arg(long)]
    pub keep: bool,
    #[command(flatten)]
    pub trials: crate::args::FilterArgs,
}

pub fn load(run_dir: &std::path::Path) -> anyhow::Result<Kept> {
    let path = run_dir.join(RERUN_FILE);
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "{} was not kept (no {RERUN_FILE}): only a run with a failure, or one run with --keep, can be run again",
            run_dir.display()
        )
    })?;
    serde_json::from_slice(&bytes).with_context(|| format!("parse {}", path.display()))
}

pub fn run(a: RerunArgs) -> anyhow::Result<ExitCode> {
    let kept = load(&a.run_dir)?;
    let initramfs = a.run_dir.join("initramfs.cpio");
    if !initramfs.is_file() || !kept.kernel.bzimage.is_file() {
        anyhow::bail!(
            "{} lacks its kept initramfs.cpio or bzImage: it cannot be booted again",
            a.run_dir.display()
        );
    }
    let args = a.trials.libtest_args("rerun")?;
    if let Some(code) = crate::commands::test::empty_selection(
        &args,
        std::slice::from_ref(&kept.kernel.label),
        &kept.scenarios,
        !kept.kselftests.is_empty(),
        &kept.guest,
    ) {
        return Ok(code);
    }
    let s = Session::new(None, false);
    let arch = kept.kernel.arch;
    harness::qemu::check_version(std::path::Path::new(arch.qemu_binary()))?;
    // A foreign architecture's kept image holds its C guest; its programs are that guest's.
    let (guest_programs, arch_guests) = if arch.is_native() {
        (kept.guest.clone(), vec![])
    } else {
        let g = harness::model::ArchGuest {
            arch,
            bin_dir: PathBuf::new(),
            manifest: PathBuf::new(),
            programs: kept.guest.clone(),
        };
        (vec![], vec![g])
    };
    let opts = SuiteOptions {
        guest_bin_dir: PathBuf::new(),
        manifest: PathBuf::new(),
        qemu_binary: "qemu-system-x86_64".into(),
        accel: kept.accel,
        runs_dir: s.runs_dir(),
        scenario_timeout: Duration::from_millis(kept.scenario_timeout_ms),
        poll_deadline: Duration::from_millis(kept.poll_deadline_ms),
        boot_timeout: Duration::from_millis(kept.boot_timeout_ms),
        hang_limit: Duration::from_millis(kept.hang_limit_ms),
        memory_mib: kept.memory_mib,
        cpus: kept.cpus,
        guest_scenario_timeout: None,
        kselftests: !kept.kselftests.is_empty(),
        stop_at_first_failure: false,
        stop_on: vec![],
        jobs: kept.cpus,
        // A fresh VM after a dead one boots the kept image with the rest of the plan.
        max_restarts: 3,
        // A rerun is asked for to see a trial again, once.
        retries: 0,
        flaky_fails: false,
        guest_programs,
        arch_guests,
        extra_cmdline: kept.extra_cmdline.clone(),
        qemu_args: kept.qemu_args.clone(),
        keep: a.keep,
        gdb: None,
        base_initramfs: Some(initramfs),
        stream_console: a.console,
    };
    let boot = |k: &harness::model::KernelUnderTest, sel: &harness::run::Selection| {
        let run = harness::run::run_kernel(k, &opts, sel)?;
        harness::artifacts::write(&run)?;
        crate::cache::history::record(&s.cache, &run);
        Ok(run)
    };
    let conclusion = harness::trials::run(
        &args,
        std::slice::from_ref(&kept.kernel),
        &kept.scenarios,
        &opts,
        boot,
        |run| {
            eprintln!(
                "{}: booted the kept {} again in {:.1} s wall, artifacts in {}",
                run.kernel.label,
                a.run_dir.display(),
                run.report.wall_ms as f64 / 1000.0,
                run.run_dir.display()
            )
        },
    )?;
    // libtest's 101 for failed trials, as `test` exits (not 1, which no caller expects).
    Ok(crate::exit::trials(conclusion.has_failed()))
}
