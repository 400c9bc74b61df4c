//! `cargo xtask matrix`: every kernel of the list (or --kernel's). Builds run one after
//! another (each uses every core); each kernel boots as soon as it is built, beside the next
//! build, with at most one VM per core. Ends with one table, also as Markdown, JSON and JUnit.

use std::collections::VecDeque;
use std::process::ExitCode;
use std::thread::ScopedJoinHandle;
use std::time::Instant;

use anyhow::bail;
use clap::Args;
use harness::model::KernelRun;
use harness::run::Selection;

use crate::args::{GuestTestArgs, KernelArgs, RunArgs};
use crate::session::Session;

#[derive(Args)]
pub struct MatrixArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// With --guest-crate or --guest-test the table is those tests alone, by kernel (a
    /// library author's matrix); without, the suite and the upstream selftests.
    #[command(flatten)]
    pub guest: GuestTestArgs,
}

pub fn run(mut a: MatrixArgs) -> anyhow::Result<ExitCode> {
    let theirs = a.guest.any();
    a.run.kselftest = !theirs;
    if a.kernel.kernel_image.is_some() || a.kernel.kernel_tree.is_some() {
        bail!(
            "matrix runs kernels of kernel-configs/kernels.toml; use `test` for a tree or an image"
        );
    }
    let started = Instant::now();
    let mut s = Session::for_kernels(&a.kernel);
    s.host_tools()?;
    let list = s.kernel_list()?;
    let wanted: Vec<String> = list
        .select(Some(a.kernel.kernel.as_deref().unwrap_or("all")))?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let guest = s.guest()?;
    let mut opts = s.suite_options(&a.run, &guest);
    opts.guest_programs = crate::guest_programs::resolve(&a.guest, &s.target, &mut s.progress)?;
    let sel = if theirs {
        Selection {
            guest: opts.guest_programs.clone(),
            ..Default::default()
        }
    } else {
        Selection {
            scenarios: guest.scenarios(a.run.stress),
            kselftests: harness::model::KSELFTESTS.map(String::from).to_vec(),
            ..Default::default()
        }
    };
    let mut runs: Vec<KernelRun> = Vec::new();
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
                runs.push(run);
                Ok(())
            };
        for name in &wanted {
            // Newer selftests must run on older kernels: by default each kernel runs those of
            // the newest kernel of the list that has its ABI generation.
            let kselftest_from = a
                .kernel
                .kselftest_from
                .clone()
                .or_else(|| list.newest_of_same_abi(name));
            let one = KernelArgs {
                kernel: Some(name.clone()),
                kselftest_from,
                ..a.kernel.clone()
            };
            let kernel = s.kernels(&one)?.remove(0).kernel;
            if !accel_chosen {
                s.choose_accel(&mut opts, a.run.accel, &kernel)?;
                accel_chosen = true;
            }
            s.progress.step(
                crate::progress::Step::Boot,
                &format!("{} (beside the next build)", kernel.label),
            );
            if vms.len() >= cores {
                if let Some(vm) = vms.pop_front() {
                    finish(vm)?;
                }
            }
            let (opts, sel) = (opts.clone(), sel.clone());
            vms.push_back(scope.spawn(move || {
                let run = harness::run::run_kernel(&kernel, &opts, &sel)?;
                harness::artifacts::write(&run)?;
                Ok(run)
            }));
        }
        while let Some(vm) = vms.pop_front() {
            finish(vm)?;
        }
        Ok(())
    })?;
    let md = harness::report::matrix_markdown(&runs);
    println!("{md}");
    let dir = s.runs_dir().join(format!("matrix-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let wall = started.elapsed().as_secs_f64();
    std::fs::write(
        dir.join("matrix.md"),
        format!("{md}\nwall time: {wall:.0} s\n"),
    )?;
    std::fs::write(
        dir.join("matrix.json"),
        serde_json::to_vec_pretty(&harness::report::MatrixReport::new(&runs, wall))?,
    )?;
    for run in &runs {
        std::fs::write(
            dir.join(format!(
                "junit-{}.xml",
                harness::run::safe_label(&run.kernel.label)
            )),
            harness::report::junit(run),
        )?;
    }
    eprintln!(
        "matrix wall time {:.0} s; table, JSON and JUnit XML in {}",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(crate::exit::trials(runs.iter().any(KernelRun::failed)))
}
