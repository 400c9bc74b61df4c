//! `cargo xtask test`: the suite on one or more kernels, one libtest-mimic trial per scenario.
//! Reads, in pipeline order: kernel list → source → config → build → guest → image → VM →
//! results → verdicts → trials and reports.

use std::process::ExitCode;

use clap::Args;
use harness::model::{FailCause, KernelUnderTest};

use crate::args::{FilterArgs, GuestTestArgs, KernelArgs, RetryArgs, RunArgs};
use crate::session::Session;

#[derive(Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub guest: GuestTestArgs,
    #[command(flatten)]
    pub retry: RetryArgs,
    #[command(flatten)]
    pub trials: FilterArgs,
}

/// `test` runs each trial once unless asked: a person at the terminal sees every failure.
pub const DEFAULT_RETRIES: u32 = 0;

pub fn run(mut a: TestArgs) -> anyhow::Result<ExitCode> {
    // Another tree's selftests are asked for in order to run them.
    a.run.kselftest |= a.kernel.kselftest_from.is_some();
    let args = a.trials.libtest_args("test")?;
    let mut s = Session::for_kernels(&a.kernel);
    if args.list {
        return list(&mut s, &a, &args);
    }
    let started = std::time::Instant::now();
    let labels = s.check_kernels(&a.kernel)?;
    a.run.check()?;
    crate::guest::programs::check(&a.guest)?;
    let arches = a.kernel.arches()?;
    crate::guest::foreign::check(&a.guest, &arches)?;
    s.host_tools()?;
    // The guest first: its scenario list says whether the filters select anything, before
    // a kernel is built for nothing.
    let guest = s.guest_for(&arches)?;
    let scenarios = guest.scenarios(a.run.stress);
    let mut opts = s.suite_options(&a.run, &guest);
    if let Some(note) = a.retry.apply(&mut opts, DEFAULT_RETRIES) {
        s.progress.note(&note);
    }
    opts.guest_programs =
        crate::guest::programs::resolve(&a.guest, &s.target, &s.cache, &mut s.progress)?;
    opts.guest_programs
        .extend(crate::guest::foreign::native_programs(
            &s.cache,
            &arches,
            &a.guest,
            true,
            &mut s.progress,
        )?);
    opts.arch_guests =
        crate::guest::foreign::prepare_all(&s.root, &s.cache, &arches, &a.guest, &mut s.progress)?;
    if let Some(code) = empty_selection(
        &args,
        &labels,
        &scenarios,
        opts.kselftests,
        &all_programs(&opts),
    ) {
        return Ok(code);
    }
    let build_started = std::time::Instant::now();
    let kernels: Vec<KernelUnderTest> = s
        .kernels(&a.kernel)?
        .into_iter()
        .map(|r| r.kernel)
        .collect();
    let build = build_started.elapsed();
    s.choose_accel(&mut opts, &a.run, &kernels[0])?;
    if a.kernel.gdb {
        Session::wait_for_debugger(&mut opts, a.kernel.gdb_port);
    }
    s.progress.step(
        crate::sys::progress::Step::Boot,
        &format!("{} kernel(s) under {:?}", kernels.len(), opts.accel),
    );
    let mut failed_runs = Vec::new();
    // Boot (VM start to the runner's hello) and scenarios (hello to the VM's end), summed
    // over the kernels, for the closing line.
    let (mut boot_ms, mut suite_ms) = (0u64, 0u64);
    let boot = |k: &KernelUnderTest, sel: &harness::run::Selection| {
        let run = harness::run::run_kernel(k, &opts, sel)?;
        harness::artifacts::write(&run)?;
        crate::cache::history::record(&s.cache, &run);
        Ok(run)
    };
    let conclusion = harness::trials::run(&args, &kernels, &scenarios, &opts, boot, |run| {
        if !run.report.user_events {
            eprintln!("error: {} has no user_events (no user_events_data in tracefs): build it with CONFIG_USER_EVENTS=y", run.kernel.label);
        }
        eprintln!(
            "{}: booted {} in {:.1} s wall ({} ms to the runner's hello), artifacts in {}",
            run.kernel.label,
            run.kernel.provenance,
            run.report.wall_ms as f64 / 1000.0,
            run.report
                .guest_hello_ms
                .map_or("-".into(), |m| m.to_string()),
            run.run_dir.display()
        );
        for (i, r) in run.restarts.iter().enumerate() {
            eprintln!(
                "{}: restart {} of at most {}: a fresh VM for {} scenario(s) after the VM {}; {} s from its death to the new runner's hello",
                run.kernel.label,
                i + 1,
                opts.max_restarts,
                r.planned.len(),
                r.after,
                r.cost_ms.map_or("-".into(), |c| format!("{:.1}", c as f64 / 1000.0))
            );
        }
        let not_run = run
            .verdicts
            .iter()
            .filter(|v| v.verdict.fail_cause() == Some(&FailCause::NotRun))
            .count();
        if not_run > 0 && run.report.kernel_release.is_some() {
            eprintln!(
                "{}: {not_run} planned record(s) not run: {} of at most {} fresh VM(s) used (--max-restarts)",
                run.kernel.label,
                run.restarts.len(),
                opts.max_restarts
            );
        }
        if let Some(line) = hangs_line(run) {
            eprintln!("{}: {line}", run.kernel.label);
        }
        let guest_tests = run
            .verdicts
            .iter()
            .filter(|v| v.origin == harness::model::Origin::Guest);
        let (n, us) = guest_tests.fold((0, 0), |(n, us), v| {
            (n + 1, us + v.duration_us.unwrap_or(0))
        });
        if n > 0 {
            eprintln!(
                "{}: {n} guest test record(s) took {:.2} s in the guest (their processes' wall time)",
                run.kernel.label,
                us as f64 / 1e6
            );
        }
        if !run.retries.is_empty() {
            eprintln!("{}: {}", run.kernel.label, retries_line(run));
        }
        if run.failed() {
            failed_runs.push(("failures", run.run_dir.clone()));
        } else if run.flaky() {
            failed_runs.push(("flakes", run.run_dir.clone()));
        }
        // Every attempt's first VM: a retry's boot and scenarios are the run's time too.
        let reports = std::iter::once(&run.report).chain(
            run.retries
                .iter()
                .filter_map(|r| Some(&r.run.as_deref()?.report)),
        );
        for report in reports {
            let hello = report.guest_hello_ms.unwrap_or(report.wall_ms);
            boot_ms += hello.min(report.wall_ms);
            suite_ms += report.wall_ms.saturating_sub(hello);
        }
    })?;
    for (what, d) in &failed_runs {
        eprintln!(
            "{what}: console log, QEMU command line and results.json are in {}",
            d.display()
        );
    }
    eprintln!(
        "{}",
        closing_line(started.elapsed(), build, boot_ms, suite_ms)
    );
    Ok(crate::exit::trials(conclusion.has_failed()))
}

/// The run's real time, after libtest's summary (whose "finished in" counts only the trials'
/// own time, once the VM has reported): the wall clock and where it went.
fn closing_line(
    wall: std::time::Duration,
    build: std::time::Duration,
    boot_ms: u64,
    suite_ms: u64,
) -> String {
    let wall = wall.as_secs_f64();
    let build = build.as_secs_f64();
    let (boot, suite) = (boot_ms as f64 / 1000.0, suite_ms as f64 / 1000.0);
    let rest = (wall - build - boot - suite).max(0.0);
    format!(
        "run finished in {wall:.1} s wall: kernel build {build:.1} s, boot {boot:.1} s, scenarios {suite:.1} s, the rest {rest:.1} s (host tools, guest, accelerator, image, reports)"
    )
}

/// `-- --list`: every trial name, without building a kernel or booting.
fn list(
    s: &mut Session,
    a: &TestArgs,
    args: &libtest_mimic::Arguments,
) -> anyhow::Result<ExitCode> {
    // As fully as a run checks them, short of building: a list of trials for a kernel
    // that could never be built or booted would be a list of nothing.
    let labels = s.check_kernels(&a.kernel)?;
    crate::guest::programs::check(&a.guest)?;
    let arches = a.kernel.arches()?;
    crate::guest::foreign::check(&a.guest, &arches)?;
    let guest = s.guest_for(&arches)?;
    let list_arches = crate::kernel::resolve::label_arches(&a.kernel, &s.kernel_list()?)?;
    let stubs: Vec<KernelUnderTest> = labels
        .into_iter()
        .zip(list_arches)
        .map(|(label, arch)| KernelUnderTest {
            label,
            bzimage: Default::default(),
            config: None,
            provenance: String::new(),
            identity: String::new(),
            kselftests: vec![],
            expected: Default::default(),
            arch,
        })
        .collect();
    let mut opts = s.suite_options(&a.run, &guest);
    opts.guest_programs =
        crate::guest::programs::resolve(&a.guest, &s.target, &s.cache, &mut s.progress)?;
    // The C programs by name, unbuilt: a list builds nothing.
    opts.guest_programs
        .extend(crate::guest::foreign::native_programs(
            &s.cache,
            &arches,
            &a.guest,
            false,
            &mut s.progress,
        )?);
    opts.arch_guests = crate::guest::foreign::listed(&s.root, &arches, &a.guest)?;
    let scenarios = guest.scenarios(a.run.stress);
    let labels: Vec<String> = stubs.iter().map(|k| k.label.clone()).collect();
    if let Some(code) = empty_selection(
        args,
        &labels,
        &scenarios,
        opts.kselftests,
        &all_programs(&opts),
    ) {
        return Ok(code);
    }
    let never = |_: &KernelUnderTest,
                 _: &harness::run::Selection|
     -> anyhow::Result<harness::model::KernelRun> {
        anyhow::bail!("--list boots nothing")
    };
    let conclusion = harness::trials::run(args, &stubs, &scenarios, &opts, never, |_| {})?;
    Ok(crate::exit::trials(conclusion.has_failed()))
}

/// Every guest program of the run, the foreign architectures' too: what a filter may select.
pub fn all_programs(opts: &harness::model::SuiteOptions) -> Vec<harness::model::GuestProgram> {
    opts.guest_programs
        .iter()
        .chain(opts.arch_guests.iter().flat_map(|g| &g.programs))
        .cloned()
        .collect()
}

/// A filter that selects nothing says so, with libtest's failure status: an empty run that
/// passed would hide a mistyped filter (in CI, for good).
pub fn empty_selection(
    args: &libtest_mimic::Arguments,
    labels: &[String],
    scenarios: &[harness::model::ScenarioInfo],
    kselftests: bool,
    guest: &[harness::model::GuestProgram],
) -> Option<ExitCode> {
    let err = harness::trials::check_selection(args, labels, scenarios, kselftests, guest).err()?;
    eprintln!("{err}");
    Some(crate::exit::trials(true))
}

/// What the retries of a run did, in one line: how many attempts, how many trials came out
/// flaky and how many failed every time, and where each attempt's files are.
pub fn retries_line(run: &harness::model::KernelRun) -> String {
    let retried: std::collections::BTreeSet<&str> = run
        .retries
        .iter()
        .flat_map(|r| r.planned.iter().map(String::as_str))
        .collect();
    let flaky = run.verdicts.iter().filter(|v| v.verdict.is_flaky()).count();
    let failed = run
        .verdicts
        .iter()
        .filter(|v| retried.contains(v.name.as_str()) && v.verdict.is_fail())
        .count();
    format!(
        "{} retr{} of {} failed trial(s): {flaky} flaky, {failed} failed every time; each attempt's console log and results in {}",
        run.retries.len(),
        if run.retries.len() == 1 { "y" } else { "ies" },
        retried.len(),
        run.run_dir.join("attempt-N").display()
    )
}

/// The hangs of a run in one line: which records hung in the kernel (the guest runner killed
/// and left them, with their stacks in their failures) and how many were blocked behind each.
fn hangs_line(run: &harness::model::KernelRun) -> Option<String> {
    let hung: Vec<&str> = run
        .verdicts
        .iter()
        .filter(|v| v.verdict.fail_cause() == Some(&FailCause::Hung))
        .map(|v| v.name.as_str())
        .collect();
    let mut behind: Vec<(&str, usize)> = Vec::new();
    for v in &run.verdicts {
        if let Some(FailCause::Blocked { behind: b }) = v.verdict.fail_cause() {
            match behind.iter_mut().find(|(n, _)| n == b) {
                Some((_, k)) => *k += 1,
                None => behind.push((b.as_str(), 1)),
            }
        }
    }
    if hung.is_empty() && behind.is_empty() {
        return None;
    }
    let mut line = format!(
        "{} record(s) hung in the kernel, each failed with its kernel stack and left behind",
        hung.len()
    );
    if hung.len() <= 5 && !hung.is_empty() {
        line.push_str(&format!(" ({})", hung.join(", ")));
    }
    for (b, k) in behind {
        line.push_str(&format!("; {k} blocked behind {b}"));
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_closing_line_splits_the_wall_time() {
        let line = closing_line(
            Duration::from_secs(100),
            Duration::from_secs(60),
            9_500,
            28_000,
        );
        assert_eq!(
            line,
            "run finished in 100.0 s wall: kernel build 60.0 s, boot 9.5 s, scenarios 28.0 s, the rest 2.5 s (host tools, guest, accelerator, image, reports)"
        );
    }
}
