//! `cargo xtask selftest`: the harness's own integration tests. Each case boots the real kernel
//! with deliberately broken guests (the `selftest::` scenarios, a guest without a runner) and
//! checks the exact outcome the harness reports, and that no QEMU is left running.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use harness::model::{
    FailCause, KernelRun, KernelUnderTest, Origin, ScenarioInfo, SuiteOptions, TroubleKind,
    Verdict, HEALTH,
};
use harness::run::{run_kernel, Selection};
use harness::vm::VmEnd;

use crate::sys::proc::{self, Wait, Waited};

pub struct Case {
    pub name: &'static str,
    pub run: fn(&KernelUnderTest, &SuiteOptions) -> anyhow::Result<()>,
}

pub const CASES: &[Case] = &[
    Case {
        name: "selftest::crashes_fail_alone",
        run: crashes_fail_alone,
    },
    Case {
        name: "selftest::panic_is_reported_not_hung",
        run: panic_is_reported,
    },
    Case {
        name: "selftest::a_panic_beside_another_scenario_names_the_culprit",
        run: panic_beside_another,
    },
    Case {
        name: "selftest::host_limit_catches_a_stuck_guest",
        run: host_limit,
    },
    Case {
        name: "selftest::init_that_never_reports",
        run: init_never_reports,
    },
];

fn verdict<'a>(run: &'a KernelRun, name: &str) -> anyhow::Result<&'a Verdict> {
    run.verdicts
        .iter()
        .find(|v| v.name == name)
        .map(|v| &v.verdict)
        .with_context(|| format!("no verdict for {name}"))
}

/// `name` failed for the cause `cause` accepts (`why` names it in the error), and its message
/// says each of `needles`: the cause decides what kind of failure it is, the needles only
/// that the message carries its details.
fn expect_fail(
    run: &KernelRun,
    name: &str,
    (why, cause): (&str, fn(&FailCause) -> bool),
    needles: &[&str],
) -> anyhow::Result<()> {
    match verdict(run, name)? {
        Verdict::Fail(f) if cause(&f.cause) && needles.iter().all(|n| f.message.contains(n)) => {
            Ok(())
        }
        other => bail!("{name}: want a failure ({why}) mentioning {needles:?}, got {other:?}"),
    }
}

/// The check itself failed (the guest said so).
const GUEST: (&str, fn(&FailCause) -> bool) = ("the guest's own", |c| *c == FailCause::Guest);
/// The boot itself (the health trial).
const BOOT: (&str, fn(&FailCause) -> bool) = ("the boot's", |c| *c == FailCause::Boot);
/// Never started.
const NOT_RUN: (&str, fn(&FailCause) -> bool) = ("not run", |c| *c == FailCause::NotRun);
/// Started, and the kernel panicked before it ended.
const PANICKED_IN_IT: (&str, fn(&FailCause) -> bool) = ("not finished: the kernel panicked", |c| {
    *c == FailCause::NotFinished(VmEnd::KernelPanicked)
});
/// Started, and a host limit ran out before it ended (a hang).
const HUNG_IN_IT: (&str, fn(&FailCause) -> bool) = ("not finished: timed out", |c| {
    matches!(c, FailCause::NotFinished(VmEnd::TimedOut { .. }))
});
/// The kernel warned while it ran.
const KERNEL_WARNING: (&str, fn(&FailCause) -> bool) = ("the kernel's warning", |c| {
    *c == FailCause::KernelTrouble(TroubleKind::Warning)
});

fn expect_pass(run: &KernelRun, name: &str) -> anyhow::Result<()> {
    match verdict(run, name)? {
        Verdict::Pass => Ok(()),
        other => bail!("{name}: want pass, got {other:?}"),
    }
}

/// A plan of named scenarios. The `selftest::` ones are in no listing (only these cases plan
/// them), so each is described here: none of them expects fault warnings.
fn names(list: &[&str]) -> Selection {
    let info = |name: &&str| ScenarioInfo {
        name: name.to_string(),
        family: name.split("::").next().unwrap_or_default().to_owned(),
        about: String::new(),
        optional: false,
        fault_warnings: false,
        fault_worker: false,
        alone: true,
        requires: vec![],
    };
    Selection {
        scenarios: list.iter().map(info).collect(),
        kselftests: vec![],
        ..Default::default()
    }
}

/// A segfault, an exit without a result, a hang and junk on the result port each fail their
/// own scenario; the scenario after them still runs and passes.
fn crashes_fail_alone(k: &KernelUnderTest, opts: &SuiteOptions) -> anyhow::Result<()> {
    let mut o = opts.clone();
    o.scenario_timeout = Duration::from_secs(1);
    let plan = names(&[
        "selftest::segfault",
        "selftest::exits_without_result",
        "selftest::hangs",
        "selftest::garbage_on_channel",
        "basic::present",
    ]);
    let run = run_kernel(k, &o, &plan)?;
    expect_fail(
        &run,
        "selftest::segfault",
        GUEST,
        &["killed by signal 11 (SIGSEGV)"],
    )?;
    expect_fail(
        &run,
        "selftest::exits_without_result",
        GUEST,
        &["exited (status 3) without a result"],
    )?;
    expect_fail(
        &run,
        "selftest::hangs",
        GUEST,
        &["timed out after", "in the guest; killed"],
    )?;
    expect_pass(&run, "basic::present")?;
    expect_fail(
        &run,
        HEALTH,
        BOOT,
        &["1 unreadable record(s)", "this is not a record"],
    )?;
    if run.report.end != VmEnd::Finished {
        bail!(
            "the VM should have finished normally, ended {:?}",
            run.report.end
        );
    }
    Ok(())
}

/// A kernel panic mid-run: the scenario that caused it says so with the panic text, the one
/// before it keeps its pass, and the VM ends by itself. With no restart allowed the one after
/// it is "not run"; by default a fresh VM runs it and it passes.
fn panic_is_reported(k: &KernelUnderTest, opts: &SuiteOptions) -> anyhow::Result<()> {
    let plan = names(&[
        "basic::present",
        "selftest::kernel_panic",
        "basic::private_anon_enable_disable",
    ]);
    for max_restarts in [0, 1] {
        let mut o = opts.clone();
        o.max_restarts = max_restarts;
        // One at a time: which scenario the panic leaves unstarted is the plan's order.
        o.jobs = 1;
        let run = run_kernel(k, &o, &plan)?;
        expect_pass(&run, "basic::present")?;
        expect_fail(
            &run,
            "selftest::kernel_panic",
            PANICKED_IN_IT,
            &["while running selftest::kernel_panic", "sysrq"],
        )?;
        if run.report.end != VmEnd::KernelPanicked {
            bail!("want VmEnd::KernelPanicked, got {:?}", run.report.end);
        }
        if max_restarts == 0 {
            expect_fail(
                &run,
                "basic::private_anon_enable_disable",
                NOT_RUN,
                &["the kernel panicked while running selftest::kernel_panic"],
            )?;
            continue;
        }
        expect_pass(&run, "basic::private_anon_enable_disable")?;
        // The restart came after the first VM's panic (checked above): one fresh VM.
        if run.restarts.len() != 1 {
            bail!("want one restart after the panic, got {:?}", run.restarts);
        }
    }
    Ok(())
}

/// Side by side, the VM dies with two scenarios in flight. Neither is blamed from that: both
/// run again one at a time, where the culprit dies alone and its neighbour passes.
fn panic_beside_another(k: &KernelUnderTest, opts: &SuiteOptions) -> anyhow::Result<()> {
    let plan = names(&[
        "basic::present",
        "selftest::in_flight_beside",
        "selftest::panic_beside",
        "basic::private_anon_enable_disable",
    ]);
    let mut o = opts.clone();
    o.jobs = 2;
    o.max_restarts = 3;
    let run = run_kernel(k, &o, &plan)?;
    if run.report.running.len() < 2 {
        bail!(
            "the first VM died with {:?} in flight: the panic did not come beside another scenario",
            run.report.running
        );
    }
    expect_fail(
        &run,
        "selftest::panic_beside",
        PANICKED_IN_IT,
        &["while running selftest::panic_beside"],
    )?;
    expect_pass(&run, "selftest::in_flight_beside")?;
    expect_pass(&run, "basic::private_anon_enable_disable")?;
    // Each restart follows a VM that panicked: the first VM, then the first fresh one.
    match run.restarts.as_slice() {
        [a, _]
            if run.report.end == VmEnd::KernelPanicked && a.report.end == VmEnd::KernelPanicked =>
        {
            Ok(())
        }
        other => bail!(
            "want two restarts (suspects one at a time, then the rest), each after a panic; \
             the first VM ended {:?}, got {other:?}",
            run.report.end
        ),
    }
}

/// The guest's own limit is set far beyond the host's: the host's limit must end the VM and
/// name the scenario.
fn host_limit(k: &KernelUnderTest, opts: &SuiteOptions) -> anyhow::Result<()> {
    let mut o = opts.clone();
    o.scenario_timeout = Duration::from_secs(1);
    o.guest_scenario_timeout = Some(Duration::from_secs(3600));
    let run = run_kernel(k, &o, &names(&["selftest::hangs"]))?;
    expect_fail(
        &run,
        "selftest::hangs",
        HUNG_IN_IT,
        &["scenario selftest::hangs gave no result within"],
    )?;
    match &run.report.end {
        VmEnd::TimedOut { .. } => Ok(()),
        other => bail!("want VmEnd::TimedOut, got {other:?}"),
    }
}

/// An initramfs without the runner: init cannot start it and ends the VM; every scenario is
/// "not run" and the health trial says the runner never reported.
fn init_never_reports(k: &KernelUnderTest, opts: &SuiteOptions) -> anyhow::Result<()> {
    let dir = opts.runs_dir.join("selftest-manifest");
    std::fs::create_dir_all(&dir)?;
    let manifest = dir.join("init-only.toml");
    std::fs::write(&manifest, "dirs = [\"proc\", \"sys\", \"dev\", \"tmp\", \"etc\"]\n[[file]]\npath = \"init\"\nguest_bin = \"ue-init\"\n")?;
    let mut o = opts.clone();
    o.manifest = manifest;
    let run = run_kernel(k, &o, &names(&["basic::present"]))?;
    expect_fail(
        &run,
        "basic::present",
        NOT_RUN,
        &["the guest never started the runner"],
    )?;
    expect_fail(&run, HEALTH, BOOT, &["never reported"])?;
    Ok(())
}

/// A kernel that WARNs in DIAG_IOCSUNREG (kernel-configs/selftest/warn-in-unreg.patch): the
/// first scenario to unregister passes its own checks but fails with the splat; the one
/// before it passes, and so does the one after it (WARN_ON_ONCE).
pub fn warning_fails_the_running_scenario(
    k: &KernelUnderTest,
    opts: &SuiteOptions,
) -> anyhow::Result<()> {
    let plan = names(&[
        "basic::present",
        "basic::private_anon_enable_disable",
        "basic::write_reaches_trace",
    ]);
    let run = run_kernel(k, opts, &plan)?;
    expect_pass(&run, "basic::present")?;
    expect_fail(
        &run,
        "basic::private_anon_enable_disable",
        KERNEL_WARNING,
        &[
            "at kernel/trace/trace_events_user.c:",
            "Call Trace:",
            "the guest's own checks passed",
        ],
    )?;
    expect_pass(&run, "basic::write_reaches_trace")?;
    expect_pass(&run, HEALTH)
}

/// A kernel whose fault worker sleeps a second after its warning
/// (kernel-configs/selftest/slow-fault-worker.patch): the munmap scenarios meet the window in
/// which the kernel drops a transition, and must pass, saying they met it. Before they told
/// the cases apart they failed on this kernel every time.
/// The scenario that pins docs/kernel-bugs/lost-update.md: it must fail where the fault
/// worker's window is widened, as the other munmap scenarios must not.
const LOST_UPDATE: &str = "munmap::enable_in_failed_fault_window";

pub fn slow_fault_worker_keeps_munmap_deterministic(
    k: &KernelUnderTest,
    opts: &SuiteOptions,
    listing: &[ScenarioInfo],
) -> anyhow::Result<()> {
    let munmap: Vec<ScenarioInfo> = listing
        .iter()
        .filter(|s| s.family == "munmap")
        .cloned()
        .collect();
    if munmap.is_empty() {
        bail!("the guest lists no munmap family");
    }
    let run = run_kernel(
        k,
        opts,
        &Selection {
            scenarios: munmap.clone(),
            kselftests: vec![],
            ..Default::default()
        },
    )?;
    for s in &munmap {
        if s.name == LOST_UPDATE {
            // The reproducer of the lost update, which this amplifier makes happen every time.
            expect_fail(&run, &s.name, GUEST, &["the enable was lost"])?;
        } else {
            expect_pass(&run, &s.name)?;
        }
    }
    expect_pass(&run, HEALTH)?;
    let met = run
        .verdicts
        .iter()
        .flat_map(|v| &v.notes)
        .any(|n| n.contains("was dropped"));
    if !met {
        bail!("no munmap scenario noted a dropped transition: the amplifier did not open the window, so this case proved nothing");
    }
    Ok(())
}

/// The scenario whose DEL never returns on kernel-configs/selftest/hang-in-del.patch.
pub const HANGS_IN_DEL: &str = "abi::del_busy_then_auto_deleted";

/// Hung in the kernel: the guest runner found its process stuck and left it behind.
const HUNG: (&str, fn(&FailCause) -> bool) = ("hung in the kernel", |c| *c == FailCause::Hung);

/// Every scenario and program of the suite, the upstream selftests included.
fn whole_suite(listing: &[ScenarioInfo]) -> Selection {
    Selection {
        scenarios: listing.iter().filter(|s| !s.optional).cloned().collect(),
        kselftests: harness::model::KSELFTESTS.map(String::from).to_vec(),
        guest: vec![],
    }
}

/// The whole suite's scenarios, without the upstream selftests.
fn scenarios_only(listing: &[ScenarioInfo]) -> Selection {
    Selection {
        kselftests: vec![],
        ..whole_suite(listing)
    }
}

/// Every planned record has a verdict of its own: none is "not run" or "not finished" (what
/// a dead VM leaves), and every VM finished by itself, within the host's scenario limit (the
/// least one hang used to cost, when the host had to end the VM to see it).
fn every_record_judged_in_bounded_time(run: &KernelRun, sel: &Selection) -> anyhow::Result<()> {
    let mut wrong = vec![];
    for name in sel.scenarios.iter().map(|s| s.name.clone()).chain(
        sel.kselftests
            .iter()
            .map(|p| harness::channel::kselftest_name(p)),
    ) {
        let v = verdict(run, &name)?;
        if let Some(FailCause::NotRun | FailCause::NotFinished(_)) = v.fail_cause() {
            wrong.push(format!("{name}: {v:?}"));
        }
    }
    if !wrong.is_empty() {
        bail!(
            "{} record(s) without a verdict of their own:\n  {}",
            wrong.len(),
            wrong.join("\n  ")
        );
    }
    let boots = std::iter::once(&run.report).chain(run.restarts.iter().map(|r| &r.report));
    for (i, b) in boots.enumerate() {
        if b.end != VmEnd::Finished {
            bail!(
                "boot {} ended {:?}: the guest should have judged every hang itself",
                i + 1,
                b.end
            );
        }
        // What this guards is that hangs overlap instead of adding up: forty scenarios each
        // hung for a hang limit one after another would take minutes. The boot itself may
        // take the suite's own time plus one scenario limit for the hangs; the suite alone
        // is now about one limit under TCG with the SLUB witnesses (36 s of 40 s idle, 42 s
        // for a boot of this case on CI's 2 cores once two scenarios were added).
        let bound = run.limits.scenario * 2;
        if b.wall_ms > bound.as_millis() as u64 {
            bail!(
                "boot {} took {:.1} s, more than the suite's own time and one scenario limit allow ({:.1} s: twice the host's scenario limit)",
                i + 1,
                b.wall_ms as f64 / 1000.0,
                bound.as_secs_f64()
            );
        }
    }
    Ok(())
}

/// The whole run's VM time, and how the verdicts fall, for the case's output.
fn tally(run: &KernelRun) -> String {
    let count =
        |f: &dyn Fn(&Verdict) -> bool| run.verdicts.iter().filter(|v| f(&v.verdict)).count();
    let wall: u64 = run.report.wall_ms + run.restarts.iter().map(|r| r.report.wall_ms).sum::<u64>();
    format!(
        "{} boot(s), {:.1} s of VM time: {} passed, {} hung, {} blocked, {} other failures",
        run.restarts.len() + 1,
        wall as f64 / 1000.0,
        count(&|v| *v == Verdict::Pass),
        count(&|v| v.fail_cause() == Some(&FailCause::Hung)),
        count(&|v| matches!(v.fail_cause(), Some(FailCause::Blocked { .. }))),
        count(
            &|v| matches!(v.fail_cause(), Some(c) if *c != FailCause::Hung && !matches!(c, FailCause::Blocked { .. }))
        ),
    )
}

/// How the DEL of one scenario's events never returns.
#[derive(Clone, Copy)]
pub enum DelStuck {
    /// It sleeps, unkillably (kernel-configs/selftest/hang-in-del.patch): state D.
    Sleeps,
    /// It loops on its CPU without sleeping (kernel-configs/selftest/spin-in-del.patch):
    /// state R, which no signal ends and /proc/PID/stack does not show.
    Spins,
}

impl DelStuck {
    /// What the culprit's failure must say: hung, how, and the DEL's frame.
    fn witness(self) -> &'static [&'static str] {
        match self {
            DelStuck::Sleeps => &["hung in the kernel: process", "user_events_ioctl"],
            DelStuck::Spins => &[
                "hung in the kernel: process",
                "without sleeping or returning to user space",
                "user_events_ioctl",
            ],
        }
    }
}

/// A kernel whose DIAG_IOCSDEL never returns for one scenario's events, holding the group's
/// reg_mutex (`how`: asleep or spinning): the guest runner reports that scenario hung, with
/// its kernel stack, and goes on. What waited behind its lock is blocked behind it, not
/// named the culprit, and runs again in one fresh VM without it; every other scenario and
/// program gets its real verdict (this kernel passes them all), none "not run", no VM left
/// to the host's limit.
pub fn a_hang_costs_one_scenario(
    k: &KernelUnderTest,
    opts: &SuiteOptions,
    listing: &[ScenarioInfo],
    how: DelStuck,
) -> anyhow::Result<()> {
    let sel = whole_suite(listing);
    if !sel.scenarios.iter().any(|s| s.name == HANGS_IN_DEL) {
        bail!("the guest lists no {HANGS_IN_DEL}: the fault patch hangs nothing");
    }
    let mut o = opts.clone();
    o.max_restarts = 2;
    o.kselftests = true;
    let run = run_kernel(k, &o, &sel)?;
    expect_fail(&run, HANGS_IN_DEL, HUNG, how.witness())?;
    every_record_judged_in_bounded_time(&run, &sel)?;
    // Our scenarios all pass on this kernel. Some upstream tests fail on 6.12 anyway
    // (docs/findings.md): theirs must be a verdict of their own run, not a stand-in.
    let wrong: Vec<String> = run
        .verdicts
        .iter()
        .filter(|v| v.name != HANGS_IN_DEL && v.name != HEALTH)
        .filter(|v| {
            v.origin == Origin::Scenario
                || matches!(
                    v.verdict.fail_cause(),
                    Some(FailCause::Blocked { .. } | FailCause::Hung)
                )
        })
        .filter_map(|v| match &v.verdict {
            Verdict::Fail(f) => Some(format!(
                "{}: {}",
                v.name,
                f.message.lines().next().unwrap_or("")
            )),
            _ => None,
        })
        .collect();
    if !wrong.is_empty() {
        bail!(
            "{} verdict(s) other than the culprit's failed:\n  {}",
            wrong.len(),
            wrong.join("\n  ")
        );
    }
    match run.restarts.as_slice() {
        [] => {}
        [r] if r.after.contains(&format!("blocked behind {HANGS_IN_DEL}"))
            && !r.planned.iter().any(|p| p == HANGS_IN_DEL) => {}
        other => bail!("want at most one fresh VM, for what the hang blocked, got {other:?}"),
    }
    expect_pass(&run, HEALTH)?;
    let what = match how {
        DelStuck::Sleeps => "a hang",
        DelStuck::Spins => "a loop",
    };
    eprintln!("{what} in one scenario's DEL: {}", tally(&run));
    Ok(())
}

/// A kernel whose DIAG_IOCSDEL sleeps forever for every caller, holding reg_mutex and
/// event_mutex (kernel-configs/selftest/del-hangs-holding-locks.patch): the first scenario to
/// delete an event hangs and everything after it waits on its locks. Every planned record
/// still gets a verdict of its own, in at most two boots (the second for what the first hang
/// blocked), each within the suite's own time and one scenario limit: hung (with the kernel's stack of the DEL),
/// blocked behind a named culprit, or passed.
pub fn a_hang_holding_the_locks_blocks_in_bounded_time(
    k: &KernelUnderTest,
    opts: &SuiteOptions,
    listing: &[ScenarioInfo],
) -> anyhow::Result<()> {
    let sel = whole_suite(listing);
    let mut o = opts.clone();
    o.max_restarts = 3;
    o.kselftests = true;
    let run = run_kernel(k, &o, &sel)?;
    every_record_judged_in_bounded_time(&run, &sel)?;
    if run.restarts.len() > 1 {
        bail!(
            "want at most two boots, got {}: {:?}",
            run.restarts.len() + 1,
            run.restarts.iter().map(|r| &r.after).collect::<Vec<_>>()
        );
    }
    let hung: Vec<_> = run
        .verdicts
        .iter()
        .filter(|v| v.verdict.fail_cause() == Some(&FailCause::Hung))
        .collect();
    let Some(first) = hung.first() else {
        bail!("no scenario hung: {}", tally(&run));
    };
    let Verdict::Fail(f) = &first.verdict else {
        unreachable!()
    };
    if !f.message.contains("schedule_timeout") || !f.message.contains("user_events_ioctl") {
        bail!(
            "{}: the hang's stack is not the DEL's sleep:\n{}",
            first.name,
            f.message
        );
    }
    let culprits: Vec<&str> = hung.iter().map(|v| v.name.as_str()).collect();
    let mut wrong = vec![];
    for v in run.verdicts.iter().filter(|v| v.origin == Origin::Scenario) {
        match v.verdict.fail_cause() {
            None | Some(FailCause::Hung) => {}
            Some(FailCause::Blocked { behind }) if culprits.contains(&behind.as_str()) => {}
            Some(c) => wrong.push(format!("{}: {c:?}", v.name)),
        }
    }
    if !wrong.is_empty() {
        bail!(
            "want every scenario passed, hung or blocked behind a hung one:\n  {}",
            wrong.join("\n  ")
        );
    }
    eprintln!(
        "DEL hanging for every caller, holding the locks: {}",
        tally(&run)
    );
    Ok(())
}

/// A kernel where the exit of every process with registrations never ends
/// (kernel-configs/selftest/exit-hangs.patch): each scenario that registers hangs on its own,
/// on its way out, blocking nothing. Each is reported hung with its stack, in one boot,
/// within the suite's own time and one scenario limit; none is blocked, and the ones that never register pass.
pub fn exit_hangs_are_each_their_own(
    k: &KernelUnderTest,
    opts: &SuiteOptions,
    listing: &[ScenarioInfo],
) -> anyhow::Result<()> {
    let sel = scenarios_only(listing);
    let run = run_kernel(k, opts, &sel)?;
    every_record_judged_in_bounded_time(&run, &sel)?;
    if !run.restarts.is_empty() {
        bail!("want one boot, got {}", run.restarts.len() + 1);
    }
    let mut hung = 0;
    let mut wrong = vec![];
    for v in run.verdicts.iter().filter(|v| v.origin == Origin::Scenario) {
        match &v.verdict {
            Verdict::Fail(f) if f.cause == FailCause::Hung => {
                hung += 1;
                if !f.message.contains("user_event_mm_remove") {
                    wrong.push(format!("{}: not the exit's stack: {}", v.name, f.message));
                }
            }
            Verdict::Fail(f) => wrong.push(format!(
                "{}: {:?}: {}",
                v.name,
                f.cause,
                f.message.lines().next().unwrap_or("")
            )),
            _ => {}
        }
    }
    if !wrong.is_empty() || hung < 10 {
        bail!(
            "want each registering scenario hung on its own ({hung} were):\n  {}",
            wrong.join("\n  ")
        );
    }
    eprintln!("exit hanging for every registered process: {}", tally(&run));
    Ok(())
}

/// A kernel whose fault worker oopses on every fault (kernel-configs/selftest/
/// oops-in-fault-worker.patch): the scenario whose fault killed the worker fails with the
/// Oops and its call trace in the worker; what then waits for the dead worker's pool (an SRCU
/// grace period, under event_mutex) hangs and blocks the rest. Every planned record still
/// gets a verdict of its own, in at most two boots, each within the suite's own time and one scenario limit.
pub fn an_oops_in_the_fault_worker_costs_bounded_time(
    k: &KernelUnderTest,
    opts: &SuiteOptions,
    listing: &[ScenarioInfo],
) -> anyhow::Result<()> {
    let sel = scenarios_only(listing);
    let run = run_kernel(k, opts, &sel)?;
    every_record_judged_in_bounded_time(&run, &sel)?;
    if run.restarts.len() > 1 {
        bail!("want at most two boots, got {}", run.restarts.len() + 1);
    }
    let oops = run.verdicts.iter().find(|v| {
        matches!(&v.verdict, Verdict::Fail(f)
            if matches!(f.cause, FailCause::KernelTrouble(TroubleKind::Oops | TroubleKind::Bug))
                && f.message.contains("NULL pointer dereference"))
    });
    let Some(oops) = oops else {
        bail!("no scenario failed with the worker's Oops: {}", tally(&run));
    };
    let drives_the_worker = listing
        .iter()
        .any(|s| s.name == oops.name && s.fault_worker);
    if oops.origin != Origin::Scenario || !drives_the_worker {
        bail!(
            "the Oops went to {}, which never drives the fault worker",
            oops.name
        );
    }
    // What never makes the worker run is not on the broken path: it passes (or is ignored,
    // as on a clean kernel), in the first VM or, blocked there, in the fresh one that starts
    // the worker's users last.
    let off_the_path: Vec<String> = run
        .verdicts
        .iter()
        .filter(|v| v.origin == Origin::Scenario && matches!(v.verdict, Verdict::Fail(_)))
        .filter(|v| listing.iter().any(|s| s.name == v.name && !s.fault_worker))
        .map(|v| match &v.verdict {
            Verdict::Fail(f) => format!("{}: {}", v.name, f.message),
            _ => v.name.clone(),
        })
        .collect();
    if !off_the_path.is_empty() {
        bail!(
            "scenarios that never drive the fault worker failed ({}):\n{}",
            tally(&run),
            off_the_path.join("\n")
        );
    }
    eprintln!("the fault worker oopsing: {}", tally(&run));
    Ok(())
}

/// On a kernel that prints a line each time user_events queues a fault for its worker
/// (selftest/fault-queue-marker.patch), every scenario that makes it queue one declares
/// `fault_worker`, which the fresh VM after a broken worker relies on to run everything else
/// first. One scenario at a time, so that the runner's start and end markers in the console
/// say whose each line is. Declared but not seen is only said: whether a page is present when
/// the bit changes can depend on timing, and starting such a scenario late costs nothing.
pub fn fault_worker_users_are_declared(
    k: &KernelUnderTest,
    opts: &SuiteOptions,
    listing: &[ScenarioInfo],
) -> anyhow::Result<()> {
    let sel = scenarios_only(listing);
    let mut o = opts.clone();
    o.jobs = 1;
    let run = run_kernel(k, &o, &sel)?;
    let reports = std::iter::once(&run.report).chain(run.restarts.iter().map(|r| &r.report));
    let mut queued = std::collections::BTreeMap::<String, usize>::new();
    for r in reports {
        let log = std::fs::read_to_string(&r.console_log)
            .with_context(|| format!("read {}", r.console_log.display()))?;
        queued.extend(fault_queuers(&log));
    }
    if queued.is_empty() {
        bail!(
            "no scenario queued a fault: the marker patch printed nothing ({})",
            tally(&run)
        );
    }
    let declared = |name: &str| listing.iter().any(|s| s.name == name && s.fault_worker);
    let undeclared: Vec<String> = queued
        .iter()
        .filter(|(n, _)| !declared(n))
        .map(|(n, c)| format!("{n} ({c} faults)"))
        .collect();
    let unseen: Vec<&str> = listing
        .iter()
        .filter(|s| s.fault_worker && !s.optional && !queued.contains_key(&s.name))
        .map(|s| s.name.as_str())
        .collect();
    eprintln!(
        "{} scenarios queued faults; declared but not seen this time: {unseen:?}",
        queued.len()
    );
    if !undeclared.is_empty() {
        bail!(
            "these scenarios make user_events queue faults for its worker but do not declare \
             fault_worker: {}",
            undeclared.join(", ")
        );
    }
    Ok(())
}

/// How many fault-queue markers each scenario's span of the console holds (between the
/// runner's `ue-runner: start NAME` and `ue-runner: end NAME`). A marker outside any span
/// (the worker re-queueing itself after the scenario ended) counts for the last one started.
pub fn fault_queuers(console: &str) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    let mut last: Option<&str> = None;
    for line in console.lines() {
        if let Some(i) = line.find("ue-runner: start ") {
            last = line[i + "ue-runner: start ".len()..]
                .split_whitespace()
                .next();
        } else if line.contains("ue-fault-queued by ") {
            if let Some(n) = last {
                *counts.entry(n.to_owned()).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// QEMU processes whose command line mentions `dir`: none may outlive a run.
pub fn leftover_qemus(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let s = String::from_utf8_lossy(&c);
                    s.contains("qemu-system") && s.contains(&needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Ctrl-C of `cargo xtask test` while the VM runs: the harness exits, and QEMU with it.
pub fn ctrl_c_leaves_nothing(xtask: &Path, runs_dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let sockets_before = walk_sockets(runs_dir);
    let mut child = std::process::Command::new(xtask)
        .args(["test", "--accel", "tcg", "--no-install", "--", "basic"])
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    // Wait until a QEMU of ours is running, then interrupt the whole group as a terminal would.
    let started_qemu = proc::wait_for(
        &mut child,
        Wait::within(Duration::from_secs(120)).polling(Duration::from_millis(100)),
        || !leftover_qemus(runs_dir).is_empty(),
    )?;
    // Not ready: it exited, or it ran out of time and was killed.
    if !matches!(started_qemu, Waited::Ready) {
        bail!("the child run never started QEMU");
    }
    proc::signal_group(child.id(), libc::SIGINT);
    let status = match proc::wait_for(
        &mut child,
        Wait::within(Duration::from_secs(20)).polling(Duration::from_millis(50)),
        || false,
    )? {
        Waited::Exited(st) => st,
        _ => bail!("cargo xtask test did not exit within 20 s of Ctrl-C"),
    };
    if status.success() {
        bail!("an interrupted run must not exit 0");
    }
    std::thread::sleep(Duration::from_millis(300));
    let left = leftover_qemus(runs_dir);
    if !left.is_empty() {
        bail!("QEMU still running after Ctrl-C: pids {left:?}");
    }
    let sockets: Vec<PathBuf> = walk_sockets(runs_dir)
        .into_iter()
        .filter(|s| !sockets_before.contains(s))
        .collect();
    if !sockets.is_empty() {
        bail!("result sockets left behind: {sockets:?}");
    }
    Ok(())
}

fn walk_sockets(dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            out.extend(walk_sockets(&e.path()));
        } else if t.is_socket() {
            out.push(e.path());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Markers go to the scenario whose span they are in, or after it ended, to the last one
    /// started; none before any scenario.
    #[test]
    fn fault_markers_go_to_the_scenario_that_ran() {
        let console = "\
[    0.5] ue-fault-queued by 1
[    1.0] ue-runner: start a::one
[    1.1] ue-fault-queued by 40
[    1.2] ue-fault-queued by 40
[    1.3] ue-runner: end a::one
[    1.4] ue-fault-queued by 12
[    1.5] ue-runner: start a::two
[    1.6] ue-runner: end a::two
";
        let q = fault_queuers(console);
        assert_eq!(
            q.into_iter().collect::<Vec<_>>(),
            [("a::one".to_owned(), 3)]
        );
    }
}
