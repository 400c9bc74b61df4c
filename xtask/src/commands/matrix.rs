//! `cargo xtask matrix`: every kernel of the list (or --kernel's). Builds run one after
//! another (each uses every core); each kernel boots as soon as it is built, beside the next
//! build, with at most one VM per core; the next kernel's source downloads and extracts while
//! the current one builds. Ends with one table, also as Markdown, JSON and JUnit.

use std::collections::VecDeque;
use std::process::ExitCode;
use std::thread::ScopedJoinHandle;
use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::Args;
use harness::model::KernelRun;
use harness::run::Selection;
use serde::{Deserialize, Serialize};

use crate::args::{GuestTestArgs, KernelArgs, RetryArgs, RunArgs};
use crate::session::Session;

#[derive(Args)]
// The upstream selftests always run in a matrix (unless guest tests take their place), and no
// VM waits for a debugger: --kselftest and --gdb-port would do nothing.
#[command(mut_arg("kselftest", |a| a.hide(true)), mut_arg("gdb_port", |a| a.hide(true)))]
pub struct MatrixArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// With --guest-crate or --guest-test the table is those tests alone, by kernel (a
    /// library author's matrix); without, the suite and the upstream selftests.
    #[command(flatten)]
    pub guest: GuestTestArgs,
    #[command(flatten)]
    pub retry: RetryArgs,
}

/// A matrix runs every kernel, unattended, on a machine busy with builds: one retry tells a
/// flake from a failure for the price of one more VM for the failed trials alone.
pub const DEFAULT_RETRIES: u32 = 1;

/// Where a matrix run's time went, kernel by kernel (`timings.json` beside `matrix.json`):
/// the parts overlap (the next download beside a build, VMs beside the next build), so their
/// sum exceeds the wall time by what the overlap saved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timings {
    pub wall_secs: f64,
    /// Outside every kernel's parts: host tools, the guest programs, the accelerator probe.
    pub prepare_secs: f64,
    pub kernels: Vec<KernelTimes>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KernelTimes {
    /// The trial label (`6.12`).
    pub kernel: String,
    /// The package index (first kernel of a fresh cache) and the `.deb`.
    pub download_secs: f64,
    pub extract_secs: f64,
    /// Getting the kernel once its source is there: copy, configure, make, selftests.
    pub build_secs: f64,
    /// Of `build_secs`, make alone (None: the build came from the cache).
    pub make_secs: Option<f64>,
    pub steps: Option<usize>,
    pub ccache: Option<crate::kernel::ccache::Stats>,
    /// The VM, from the run's report.
    pub vm_secs: f64,
}

impl KernelTimes {
    pub fn sum(&self) -> f64 {
        self.download_secs + self.extract_secs + self.build_secs + self.vm_secs
    }
}

impl Timings {
    /// Σ of the parts: what the run would take with nothing side by side.
    pub fn sum_of_parts(&self) -> f64 {
        self.prepare_secs + self.kernels.iter().map(KernelTimes::sum).sum::<f64>()
    }
}

/// What a matrix run leaves: the run folder and its timings.
pub struct Outcome {
    pub dir: std::path::PathBuf,
    pub timings: Timings,
    pub failed: bool,
}

pub fn run(a: MatrixArgs) -> anyhow::Result<ExitCode> {
    crate::args::refuse_unused(
        "matrix",
        &[
            ("--kselftest", a.run.kselftest),
            ("--gdb-port", a.kernel.gdb_port != 1234),
        ],
    )?;
    let o = matrix(a)?;
    Ok(crate::exit::trials(o.failed))
}

/// `cargo xtask matrix`, for the command and for the bench's cold-matrix row.
pub fn matrix(mut a: MatrixArgs) -> anyhow::Result<Outcome> {
    let theirs = a.guest.any();
    a.run.kselftest = !theirs;
    if a.kernel.kernel_image.is_some() || a.kernel.kernel_tree.is_some() {
        bail!(
            "matrix runs kernels of kernel-configs/kernels.toml; use `test` for a tree or an image"
        );
    }
    let started = Instant::now();
    let mut s = Session::for_kernels(&a.kernel);
    s.check_kernels(&a.kernel)?;
    a.run.check()?;
    crate::guest::programs::check(&a.guest)?;
    let arches = a.kernel.arches()?;
    crate::guest::foreign::check(&a.guest, &arches)?;
    s.host_tools()?;
    let list = s.kernel_list()?;
    // Each kernel for each architecture it builds for, one column each (`6.12-s390x`).
    let wanted: Vec<(String, harness::arch::Arch)> = list
        .select_for(Some(a.kernel.kernel.as_deref().unwrap_or("all")), &arches)?
        .into_iter()
        .map(|(n, _, arch)| (n, arch))
        .collect();
    let guest = s.guest_for(&arches)?;
    let mut opts = s.suite_options(&a.run, &guest);
    if let Some(note) = a.retry.apply(&mut opts, DEFAULT_RETRIES) {
        s.progress.note(&note);
    }
    opts.guest_programs =
        crate::guest::programs::resolve(&a.guest, &s.target, &s.cache, &mut s.progress)?;
    opts.arch_guests =
        crate::guest::foreign::prepare_all(&s.root, &s.cache, &arches, &a.guest, &mut s.progress)?;
    let mut sel = selection(theirs, &guest, &opts, a.run.stress);
    // --guest-c's programs on the x86-64 kernels too: the same checks in every column.
    sel.guest.extend(crate::guest::foreign::native_programs(
        &s.cache,
        &arches,
        &a.guest,
        true,
        &mut s.progress,
    )?);
    let mut prepare_secs = started.elapsed().as_secs_f64();
    let mut runs: Vec<KernelRun> = Vec::new();
    let mut times: Vec<KernelTimes> = Vec::new();
    let mut accel_chosen = false;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let mut vms: VecDeque<ScopedJoinHandle<'_, anyhow::Result<KernelRun>>> = VecDeque::new();
        let mut finish =
            |vm: ScopedJoinHandle<'_, anyhow::Result<KernelRun>>| -> anyhow::Result<()> {
                let run = vm
                    .join()
                    .map_err(|_| anyhow::anyhow!("a VM thread panicked"))??;
                eprintln!(
                    "{}: done in {:.1} s, artifacts in {}",
                    run.kernel.label,
                    run.report.wall_ms as f64 / 1000.0,
                    run.run_dir.display()
                );
                if !run.retries.is_empty() {
                    eprintln!(
                        "{}: {}",
                        run.kernel.label,
                        crate::commands::test::retries_line(&run)
                    );
                }
                runs.push(run);
                Ok(())
            };
        // The next kernel's download and extraction overlap this one's build.
        let mut next_source: Option<
            ScopedJoinHandle<'_, anyhow::Result<crate::kernel::source::SourceTimes>>,
        > = None;
        for (i, (name, arch)) in wanted.iter().enumerate() {
            // Newer selftests must run on older kernels: by default each kernel runs those of
            // the newest kernel of the list that has its ABI generation.
            let kselftest_from = a
                .kernel
                .kselftest_from
                .clone()
                .or_else(|| list.newest_of_same_abi(name))
                // The upstream selftests are x86-64 programs: a foreign kernel runs its C guest.
                .filter(|_| arch.is_native());
            let one = KernelArgs {
                kernel: Some(name.clone()),
                kselftest_from,
                arch: vec![arch.name().to_owned()],
                ..a.kernel.clone()
            };
            let source = match next_source.take() {
                Some(job) => job
                    .join()
                    .map_err(|_| anyhow::anyhow!("the source download thread panicked"))??,
                None => s.prefetch_source(name)?,
            };
            if let Some((next, _)) = wanted.get(i + 1) {
                next_source = Some(scope.spawn(s.prefetch_source_job(next.clone())));
            }
            let build_started = Instant::now();
            let resolved = s.kernels(&one)?.remove(0);
            let kernel = resolved.kernel;
            times.push(KernelTimes {
                kernel: kernel.label.clone(),
                download_secs: source.download_secs,
                extract_secs: source.extract_secs,
                build_secs: build_started.elapsed().as_secs_f64(),
                make_secs: resolved.built.as_ref().map(|r| r.build_secs),
                steps: resolved.built.as_ref().map(|r| r.steps),
                ccache: resolved.built.as_ref().and_then(|r| r.ccache),
                vm_secs: 0.0,
            });
            // KVM is probed with a kernel it could run: an x86-64 one.
            if !accel_chosen && kernel.arch.is_native() {
                let probe = Instant::now();
                s.choose_accel(&mut opts, &a.run, &kernel)?;
                prepare_secs += probe.elapsed().as_secs_f64();
                accel_chosen = true;
            }
            s.progress.step(
                crate::sys::progress::Step::Boot,
                &format!("{} (beside the next build)", kernel.label),
            );
            if vms.len() >= cores {
                if let Some(vm) = vms.pop_front() {
                    finish(vm)?;
                }
            }
            let sel = if kernel.arch.is_native() {
                sel.clone()
            } else {
                Selection {
                    guest: opts.guest_for(kernel.arch, &[]).programs.to_vec(),
                    ..Default::default()
                }
            };
            let (opts, cache) = (opts.clone(), s.cache.clone());
            vms.push_back(scope.spawn(move || {
                let run = harness::run::run_kernel(&kernel, &opts, &sel)?;
                harness::artifacts::write(&run)?;
                crate::cache::history::record(&cache, &run);
                Ok(run)
            }));
        }
        while let Some(vm) = vms.pop_front() {
            finish(vm)?;
        }
        Ok(())
    })?;
    write_reports(&s, &runs, times, started, prepare_secs, opts.flaky_fails)
}

/// Other people's programs when given, else the scenarios and the upstream selftests.
fn selection(
    theirs: bool,
    guest: &crate::session::Guest,
    opts: &harness::model::SuiteOptions,
    stress: bool,
) -> Selection {
    if theirs {
        Selection {
            guest: opts.guest_programs.clone(),
            ..Default::default()
        }
    } else {
        Selection {
            scenarios: guest.scenarios(stress),
            kselftests: harness::model::KSELFTESTS.map(String::from).to_vec(),
            ..Default::default()
        }
    }
}

/// The matrix's outputs, printed and in one folder: the table (Markdown and JSON), the
/// timings, one JUnit file per kernel.
fn write_reports(
    s: &Session,
    runs: &[KernelRun],
    mut times: Vec<KernelTimes>,
    started: Instant,
    prepare_secs: f64,
    flaky_fails: bool,
) -> anyhow::Result<Outcome> {
    for t in &mut times {
        if let Some(run) = runs.iter().find(|r| r.kernel.label == t.kernel) {
            t.vm_secs = run.report.wall_ms as f64 / 1000.0;
        }
    }
    let md = harness::report::matrix_markdown(runs);
    println!("{md}");
    let dir = s.runs_dir().join(format!("matrix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let wall = started.elapsed().as_secs_f64();
    std::fs::write(
        dir.join("matrix.md"),
        format!("{md}\nwall time: {wall:.0} s\n"),
    )?;
    std::fs::write(
        dir.join("matrix.json"),
        serde_json::to_vec_pretty(&harness::report::MatrixReport::new(runs, wall))?,
    )?;
    let timings = Timings {
        wall_secs: wall,
        prepare_secs,
        kernels: times,
    };
    std::fs::write(
        dir.join("timings.json"),
        serde_json::to_vec_pretty(&timings)?,
    )?;
    for run in runs {
        std::fs::write(
            dir.join(format!(
                "junit-{}.xml",
                harness::run::safe_label(&run.kernel.label)
            )),
            harness::report::junit(run),
        )?;
    }
    eprintln!(
        "matrix wall time {:.0} s (its parts one after another: {:.0} s); table, JSON, timings and JUnit XML in {}",
        started.elapsed().as_secs_f64(),
        timings.sum_of_parts(),
        dir.display()
    );
    Ok(Outcome {
        dir,
        timings,
        failed: runs.iter().any(|r| r.fails_the_run(flaky_fails)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sum_of_parts_adds_every_kernels_steps_and_what_no_kernel_owns() {
        let k = |download, build, vm| KernelTimes {
            kernel: "k".into(),
            download_secs: download,
            extract_secs: 1.0,
            build_secs: build,
            make_secs: Some(build - 2.0),
            steps: Some(1284),
            ccache: None,
            vm_secs: vm,
        };
        let t = Timings {
            wall_secs: 100.0,
            prepare_secs: 5.0,
            kernels: vec![k(10.0, 60.0, 8.0), k(12.0, 70.0, 9.0)],
        };
        assert_eq!(t.kernels[0].sum(), 79.0);
        assert_eq!(t.sum_of_parts(), 5.0 + 79.0 + 92.0);
    }
}
