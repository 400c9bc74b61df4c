//! The scenario runner. In the guest it runs a plan, one child process per scenario, and
//! writes result records to stdout (which the init points at the result port). On the host,
//! `--list`/`--list-json` print the scenarios without running anything.

mod children;
mod hangs;
mod janitor;
mod programs;
mod supervise;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use children::{signal_name, spawn, ChildEnd, Collected, Spawned};
use guest_tests::framework::{Ctx, Entry, Stop, R};
use guest_tests::scenarios;
use guest_tests::schedule::{self, Attribution, Traits};
use guest_tests::tracefs;
use programs::{guest_test_runs, start_guest_test, start_kselftest};
use result_channel::{Outcome, Plan, Record, RecordEnd, ScenarioInfo};
use supervise::{MakeRecord, Supervisor};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["--list"] => {
            for s in scenarios::all().iter().filter(|s| !s.optional) {
                println!("{}: {}", s.name, s.about);
            }
            0
        }
        ["--list-json"] => {
            let list: Vec<ScenarioInfo> = scenarios::all().iter().map(Entry::info).collect();
            println!(
                "{}",
                serde_json::to_string(&list).expect("scenario infos always serialise")
            );
            0
        }
        ["--plan", path] => run_plan(path),
        // The exec'd side of a scenario that checks what exec does; not for people.
        ["--helper", which, rest @ ..] => scenarios::helper(which, rest),
        ["--run", name] | ["--run", name, "--json"] | ["--json", "--run", name] => {
            // For a person at a guest shell: one scenario, in this process; a line for the
            // person, or with --json the record as the host reads it.
            let json = args.iter().any(|a| a == "--json");
            let plan = Plan {
                scenarios: vec![name.to_string()],
                scenario_timeout_ms: 60_000,
                poll_deadline_ms: 5_000,
                kselftests: vec![],
                stop_at_first_failure: false,
                stop_on: vec![],
                jobs: 1,
                guest_tests: vec![],
                // At a shell nobody knows the accelerator: a limit that holds under TCG.
                hang_limit_ms: 5_000,
                defer: vec![],
            };
            let mut sup = Supervisor::new(&plan);
            let rec = run_alone(&mut sup, name, &plan, false);
            sup.finish();
            if json {
                print!("{}", rec.to_line());
            } else {
                println!("{}", human(&rec));
            }
            // The shell's `$?` says how it went, as a test program's status would.
            match &rec {
                Record::End(end) if end.outcome == Outcome::Fail => 1,
                _ => 0,
            }
        }
        _ => {
            eprintln!(
                "usage: ue-scenarios --list | --list-json | --plan FILE | --run NAME [--json]"
            );
            2
        }
    };
    std::process::exit(code);
}

/// One scenario's end for a person: `NAME: pass in 12.3 ms`, then why it failed or was
/// ignored, and what it measured, indented.
fn human(rec: &Record) -> String {
    let Record::End(end) = rec else {
        return format!("{rec:?}");
    };
    let outcome = match end.outcome {
        Outcome::Pass => "pass",
        Outcome::Fail => "FAIL",
        Outcome::Ignored => "ignored",
    };
    let mut out = format!(
        "{}: {outcome} in {:.1} ms",
        end.name,
        end.duration_us as f64 / 1000.0
    );
    for line in end
        .message
        .lines()
        .chain(end.notes.iter().map(String::as_str))
    {
        out.push_str("\n    ");
        out.push_str(line);
    }
    out
}

fn run_plan(path: &str) -> i32 {
    let plan: Plan = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ue-scenarios: cannot read plan {path}: {e}");
            return 1;
        }
    };
    let mut out = std::io::stdout().lock();
    let emit = |out: &mut std::io::StdoutLock, r: &Record| {
        let _ = out.write_all(r.to_line().as_bytes());
        let _ = out.flush();
    };
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let user_events = std::path::Path::new(&tracefs::path("user_events_data")).exists();
    let planned = plan.scenarios.len() as u32;
    emit(
        &mut out,
        &Record::Hello {
            kernel_release: release,
            uptime_ms: uptime_ms(),
            planned,
            user_events,
        },
    );
    let mut sup = Supervisor::new(&plan);
    let stopped_at = run_scenarios(&plan, &mut sup, &mut |r| emit(&mut out, r));
    for k in &plan.kselftests {
        let name = result_channel::kselftest_name(&k.name);
        let rec = run_program(&mut sup, &name, || start_kselftest(&name, k), &mut |r| {
            emit(&mut out, r)
        });
        emit(&mut out, &rec);
    }
    for g in &plan.guest_tests {
        for (name, argv) in guest_test_runs(g) {
            let rec = run_program(
                &mut sup,
                &name,
                || start_guest_test(&name, g, &argv),
                &mut |r| emit(&mut out, r),
            );
            emit(&mut out, &rec);
        }
    }
    sup.finish();
    emit(
        &mut out,
        &Record::Done {
            uptime_ms: uptime_ms(),
            stopped_at,
        },
    );
    0
}

/// Runs one program (an upstream selftest, a guest test process) to its End under `sup`:
/// its Start is emitted, and while it runs nothing else does. Blocked, it does not start.
fn run_program(
    sup: &mut Supervisor,
    name: &str,
    start: impl FnOnce() -> Result<(Spawned, MakeRecord), Box<Record>>,
    emit: &mut dyn FnMut(&Record),
) -> Record {
    if let Some(rec) = sup.blocked_end(name) {
        return rec;
    }
    emit(&Record::Start {
        name: name.to_owned(),
    });
    kmsg_marker("start", name);
    let rec = match start() {
        Err(rec) => *rec,
        Ok((s, make)) => {
            kmsg_marker("pid", &format!("{} {name}", s.pid));
            sup.add(name, ALONE, s, None, make);
            wait_for_the_one(sup)
        }
    };
    kmsg_marker("end", name);
    rec
}

/// What a program or a scenario run alone declares for the schedule: nothing beside it.
const ALONE: Traits = Traits {
    alone: true,
    fault_warnings: false,
    deferred: false,
};

/// Ticks `sup`, which supervises one child, until that child's record is ready.
fn wait_for_the_one(sup: &mut Supervisor) -> Record {
    loop {
        if let Some(e) = sup.tick().into_iter().next() {
            return e.record;
        }
    }
}

/// Marks where a scenario starts and ends in the kernel log itself, so the host attributes
/// a console splat by its place in the console stream, not by when it happened to arrive.
pub fn kmsg_marker(what: &str, name: &str) {
    // Level 4 (warning): shown at the harness's loglevel=5, like the splats it brackets.
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/kmsg")
        .and_then(|mut f| {
            f.write_all(format!("<4>{}{what} {name}\n", result_channel::KMSG_MARKER).as_bytes())
        });
}

fn uptime_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

pub fn end(name: &str, outcome: Outcome, message: String, started: Instant) -> Record {
    Record::End(RecordEnd {
        name: name.to_owned(),
        outcome,
        message,
        duration_us: started.elapsed().as_micros() as u64,
        snapshots: vec![],
        notes: vec![],
        output: String::new(),
        missing: None,
        symptom: None,
        hang: None,
        blocked: None,
    })
}

/// Runs the plan's scenarios: up to `plan.jobs` side by side as [`schedule::next`] allows,
/// then again, one at a time, those a splat left unattributable ([`schedule::Attribution`]).
/// With `stop_at_first_failure`, nothing new starts after a failure (of one of `stop_on`, if
/// named); what runs finishes. Once `sup` finds user_events blocked, nothing new starts and
/// every scenario not yet ended is reported blocked. Returns the scenario whose failure
/// stopped the run.
fn run_scenarios(
    plan: &Plan,
    sup: &mut Supervisor,
    emit: &mut dyn FnMut(&Record),
) -> Option<String> {
    let expects_faults = |name: &str| traits(name).fault_warnings;
    // Without the kernel log the runner cannot tell whose splat is whose: one at a time.
    let mut kmsg = if plan.jobs > 1 { Kmsg::open() } else { None };
    let jobs_allowed = if kmsg.is_some() {
        plan.jobs as usize
    } else {
        1
    };
    let mut attribution = Attribution::default();
    let mut pending: Vec<(String, Traits)> = plan
        .scenarios
        .iter()
        .map(|n| (n.clone(), traits(n)))
        .collect();
    // One at a time (debugging), the plan's order is the order; so it is under fail-fast,
    // where a mutant's named scenarios come first.
    if !plan.stop_at_first_failure && jobs_allowed > 1 {
        schedule::start_order(&mut pending);
    }
    schedule::defer(&mut pending, &plan.defer);
    let mut run = SideBySide {
        plan,
        pending,
        stopped_at: None,
    };
    loop {
        let jobs = if attribution.fell_back() {
            1
        } else {
            jobs_allowed
        };
        run.start_what_fits(sup, jobs, emit);
        if sup.is_empty() {
            break;
        }
        run.end_finished(sup, emit);
        if let Some(k) = &mut kmsg {
            k.drain(&mut attribution, expects_faults);
        }
        run.stop_at_trouble(&attribution);
    }
    if let Some(k) = &mut kmsg {
        k.drain(&mut attribution, expects_faults);
    }
    if run.stopped_at.is_none() {
        for (name, _) in std::mem::take(&mut run.pending) {
            if let Some(rec) = sup.blocked_end(&name) {
                emit(&rec);
            }
        }
    }
    rerun_alone(plan, sup, &attribution, emit);
    run.stopped_at
}

/// How a planned scenario may share the machine, as it declares.
fn traits(name: &str) -> Traits {
    scenarios::find(name).map_or(
        // Unknown: it fails at once; alone keeps that failure its own.
        Traits {
            alone: true,
            fault_warnings: false,
            deferred: false,
        },
        |e| Traits {
            alone: e.alone,
            fault_warnings: e.fault_warnings,
            deferred: false,
        },
    )
}

/// The failure that stops the run, if this record is one. A failure that carries a known
/// bug's symptom does not stop it: the host excuses it where the kernel list expects that
/// bug (trace::format_array_fields on every 6.12), and a run stopped there would leave the
/// scenarios after it unrun and a mutant they would have caught counted as a survivor.
fn stopping_failure(plan: &Plan, r: &Record) -> Option<String> {
    match r {
        Record::End(RecordEnd {
            name,
            outcome: Outcome::Fail,
            symptom: None,
            ..
        }) if plan.stop_at_first_failure
            && (plan.stop_on.is_empty() || plan.stop_on.contains(name)) =>
        {
            Some(name.clone())
        }
        _ => None,
    }
}

/// The first pass over the plan's scenarios: those still to start, and the failure that
/// stopped the run, if one did; the supervisor holds those running side by side.
///
/// Once a scenario has sent its End record it is only exiting (the kernel's exit path for a
/// process with user_events registrations waits out an RCU grace period), so its slot goes to
/// the next scenario, while its `end` marker waits for the reap, so that a splat from its
/// exit is still attributed to it.
struct SideBySide<'a> {
    plan: &'a Plan,
    pending: Vec<(String, Traits)>,
    stopped_at: Option<String>,
}

impl SideBySide<'_> {
    /// Keeps the first failure that stops the run.
    fn stop_if_stopping(&mut self, rec: &Record) {
        if self.stopped_at.is_none() {
            self.stopped_at = stopping_failure(self.plan, rec);
        }
    }

    /// Under fail-fast with no scenario named (`mutate`), kernel trouble stops the run too:
    /// the host fails a scenario for it even where the scenario's own checks pass, so the
    /// verdict is already decided, and the rest of the suite would only add time (a mutant
    /// that WARNs on every free took the whole suite, ~40 s under TCG, instead of a few).
    /// With scenarios named (`mutants`), only their own failures stop it.
    fn stop_at_trouble(&mut self, a: &Attribution) {
        if self.stopped_at.is_some() || !self.plan.stop_at_first_failure {
            return;
        }
        if let (true, Some((_, running))) = (self.plan.stop_on.is_empty(), &a.first_trouble) {
            self.stopped_at = running.first().cloned();
        }
    }

    /// Starts scenarios while [`schedule::next`] lets one more start with `jobs` slots, no
    /// failure has stopped the run and user_events is not blocked.
    fn start_what_fits(
        &mut self,
        sup: &mut Supervisor,
        jobs: usize,
        emit: &mut dyn FnMut(&Record),
    ) {
        while self.stopped_at.is_none() && sup.blocked().is_none() {
            // With one job (debugging, or after a splat made the run fall back), the next
            // scenario waits for the last one's exit too: strictly one at a time.
            let (exiting, busy): (Vec<_>, Vec<_>) = sup
                .running()
                .partition(|(_, reported)| jobs > 1 && *reported);
            let busy: Vec<Traits> = busy.iter().map(|r| *r.0).collect();
            let exiting: Vec<Traits> = exiting.iter().map(|r| *r.0).collect();
            let waiting: Vec<Traits> = self.pending.iter().map(|p| p.1).collect();
            let keep_order = self.plan.stop_at_first_failure;
            let Some(i) = schedule::next(&waiting, &busy, &exiting, jobs, keep_order) else {
                break;
            };
            let (name, t) = self.pending.remove(i);
            emit(&Record::Start { name: name.clone() });
            kmsg_marker("start", &name);
            match spawn_scenario(&name, self.plan, false) {
                Ok((s, make)) => {
                    kmsg_marker("pid", &format!("{} {name}", s.pid));
                    let instance = tracefs::scenario_key(&name, false);
                    sup.add(&name, t, s, Some(instance), make);
                }
                Err(rec) => {
                    kmsg_marker("end", &name);
                    self.stop_if_stopping(&rec);
                    emit(&rec);
                }
            }
        }
    }

    /// Lets the supervisor wait for the running scenarios (at most 200 ms) and emits the End
    /// of each one that exited, overran its limit or hung.
    fn end_finished(&mut self, sup: &mut Supervisor, emit: &mut dyn FnMut(&Record)) {
        for e in sup.tick() {
            kmsg_marker("end", &e.name);
            self.stop_if_stopping(&e.record);
            emit(&e.record);
        }
    }
}

/// Runs again, one at a time, the scenarios a splat left unattributable: each rerun is
/// alone, so its console is its own, and its End is the one the host keeps.
fn rerun_alone(
    plan: &Plan,
    sup: &mut Supervisor,
    attribution: &Attribution,
    emit: &mut dyn FnMut(&Record),
) {
    let reruns: Vec<&String> = plan
        .scenarios
        .iter()
        .filter(|n| attribution.rerun.contains(*n))
        .collect();
    if let Some(what) = &attribution.first_ambiguous {
        eprintln!(
            "ue-scenarios: {what:?} came while {} scenarios ran side by side; running them again one at a time",
            reruns.len()
        );
    }
    for name in reruns {
        // Blocked: the first run's End stands (a rerun would only hang).
        if sup.blocked().is_some() {
            break;
        }
        emit(&Record::Start { name: name.clone() });
        kmsg_marker("start", name);
        let rec = run_alone(sup, name, plan, true);
        kmsg_marker("end", name);
        emit(&rec);
    }
}

/// The kernel log, read from where it was when the runner started.
struct Kmsg(std::fs::File);

impl Kmsg {
    fn open() -> Option<Kmsg> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .ok()?;
        (unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_END) } >= 0).then_some(Kmsg(f))
    }

    /// Feeds every record logged since the last call.
    fn drain(&mut self, a: &mut Attribution, expects_faults: impl Fn(&str) -> bool) {
        use std::io::Read;
        let mut buf = vec![0u8; 8192];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if let Some(r) = schedule::parse_kmsg(&String::from_utf8_lossy(&buf[..n])) {
                        a.feed(&r, &expects_faults);
                    }
                }
                // A record was overwritten before this read: go on with the next.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
                Err(_) => return,
            }
        }
    }
}

/// Runs one scenario in a child process of its own, alone under `sup`; a crash or hang
/// fails that scenario only.
fn run_alone(sup: &mut Supervisor, name: &str, plan: &Plan, again: bool) -> Record {
    match spawn_scenario(name, plan, again) {
        Err(rec) => *rec,
        Ok((s, make)) => {
            kmsg_marker("pid", &format!("{} {name}", s.pid));
            let instance = tracefs::scenario_key(name, again);
            sup.add(name, ALONE, s, Some(instance), make);
            wait_for_the_one(sup)
        }
    }
}

/// Forks the child that runs scenario `name`, with how its End is made; a failure to start
/// is its End record. `again`: its second run in this boot, with event names of its own.
fn spawn_scenario(
    name: &str,
    plan: &Plan,
    again: bool,
) -> Result<(Spawned, MakeRecord), Box<Record>> {
    let started = Instant::now();
    let Some(scenario) = scenarios::find(name) else {
        return Err(Box::new(end(
            name,
            Outcome::Fail,
            format!("the guest has no scenario {name:?}"),
            started,
        )));
    };
    let limit = Duration::from_millis(plan.scenario_timeout_ms);
    let spawned = spawn(limit, |fd| {
        // Nothing a scenario prints may reach the result port: send stdout to the console.
        unsafe { libc::dup2(2, 1) };
        tracefs::use_instance(&tracefs::scenario_key(name, again));
        let poll = Duration::from_millis(plan.poll_deadline_ms);
        let rec =
            match Ctx::new(scenario.name.clone(), poll)
                .map(|cx| if again { cx.run_again() } else { cx })
            {
                Err(e) => end(
                    name,
                    Outcome::Fail,
                    format!("cannot open user_events_data: {e}"),
                    started,
                ),
                Ok(mut cx) => {
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        scenario.run_if_present(&mut cx)
                    }));
                    let mut rec = scenario_end(&scenario, r, started);
                    if let Record::End(RecordEnd {
                        snapshots, notes, ..
                    }) = &mut rec
                    {
                        *snapshots = std::mem::take(&mut cx.snapshots);
                        *notes = std::mem::take(&mut cx.notes);
                    }
                    rec
                }
            };
        let line = rec.to_line();
        let mut off = 0;
        while off < line.len() {
            let n = unsafe { libc::write(fd, line[off..].as_ptr() as *const _, line.len() - off) };
            if n <= 0 {
                break;
            }
            off += n as usize;
        }
        unsafe { libc::_exit(0) }
    })
    .map_err(|e| Box::new(end(name, Outcome::Fail, e, started)))?;
    let owned = name.to_owned();
    let make: MakeRecord =
        Box::new(move |c: Collected| scenario_record(&owned, started, limit, Ok(c)));
    Ok((spawned, make))
}

/// The End record of a scenario that ran to its verdict `r`: pass, fail (a known bug's
/// symptom named), or ignored for a feature it requires, the probe's finding in the message
/// (`no FEATURE: FOUND`) and the feature in `missing` for the host to judge.
fn scenario_end(scenario: &Entry, r: std::thread::Result<R>, started: Instant) -> Record {
    let (mut bug, mut lacks) = (None, None);
    let (outcome, message) = match r {
        Ok(Ok(())) => (Outcome::Pass, String::new()),
        Ok(Err(Stop::Fail(m))) => (Outcome::Fail, m),
        Ok(Err(Stop::Symptom { bug: b, message })) => {
            bug = Some(b.to_owned());
            (Outcome::Fail, message)
        }
        // An ignore for a feature the scenario does not declare would let the host excuse it
        // for the wrong reason: that is the scenario's bug.
        Ok(Err(Stop::Ignore { missing, found })) if !scenario.requires.contains(&missing) => {
            let declared: Vec<_> = scenario.requires.iter().map(|f| f.name()).collect();
            let m = format!(
                "ignored for missing {missing} ({found}), which it does not declare \
                 (requires: {declared:?})"
            );
            (Outcome::Fail, m)
        }
        Ok(Err(Stop::Ignore { missing, found })) => {
            lacks = Some(missing);
            (Outcome::Ignored, format!("no {missing}: {found}"))
        }
        Err(p) => (
            Outcome::Fail,
            format!("scenario panicked: {}", panic_text(&p)),
        ),
    };
    let mut rec = end(&scenario.name, outcome, message, started);
    if let Record::End(RecordEnd {
        missing, symptom, ..
    }) = &mut rec
    {
        *missing = lacks;
        *symptom = bug;
    }
    rec
}

/// The End record of a scenario's child: what it reported, or why it reported nothing.
fn scenario_record(
    name: &str,
    started: Instant,
    limit: Duration,
    collected: Result<Collected, String>,
) -> Record {
    let c = match collected {
        Ok(c) => c,
        Err(e) => return end(name, Outcome::Fail, e, started),
    };
    let record = serde_json::from_slice::<Record>(c.bytes.trim_ascii_end());
    let message = match (c.end(), record) {
        (ChildEnd::TimedOut, _) => format!(
            "timed out after {} ms in the guest; killed",
            limit.as_millis()
        ),
        // Its own End, if it sent one before it hung: the hang is added to it.
        (_, Ok(rec @ Record::End(_))) => return rec,
        (ChildEnd::Hung, _) => "hung in the kernel".to_owned(),
        (ChildEnd::Signal(sig), _) => format!(
            "scenario process crashed: killed by signal {sig} ({})",
            signal_name(sig)
        ),
        (ChildEnd::Exited(code), _) => {
            format!("scenario process exited (status {code}) without a result")
        }
    };
    end(name, Outcome::Fail, message, started)
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_prints_a_line_for_a_person() {
        let end = |outcome, message: &str| {
            Record::End(RecordEnd {
                name: "fork::child_inherits_registration".into(),
                outcome,
                message: message.into(),
                duration_us: 12_345,
                snapshots: vec![],
                notes: vec!["poll 3 ms".into()],
                output: String::new(),
                missing: None,
                symptom: None,
                hang: None,
                blocked: None,
            })
        };
        assert_eq!(
            human(&end(Outcome::Pass, "")),
            "fork::child_inherits_registration: pass in 12.3 ms\n    poll 3 ms"
        );
        assert_eq!(
            human(&end(Outcome::Fail, "got 0, want 1")),
            "fork::child_inherits_registration: FAIL in 12.3 ms\n    got 0, want 1\n    poll 3 ms"
        );
    }
    use result_channel::Feature;

    /// The End record of scenario `name` ending with `r`: its outcome, message and missing
    /// feature.
    fn verdict(name: &str, r: R) -> (Outcome, String, Option<Feature>) {
        let scenario = scenarios::find(name).unwrap();
        match scenario_end(&scenario, Ok(r), Instant::now()) {
            Record::End(RecordEnd {
                outcome,
                message,
                missing,
                ..
            }) => (outcome, message, missing),
            other => panic!("not an End record: {other:?}"),
        }
    }

    #[test]
    fn a_declared_feature_missing_is_ignored_with_what_the_probe_found() {
        let lacks = |f, found| Err(Stop::ignore(f, found));
        assert_eq!(
            verdict(
                "basic::write_reaches_trace",
                lacks(
                    Feature::RemoteWrite,
                    "DIAG_IOCSUNREG gives ENOTTY (old status-page user_events)"
                )
            ),
            (
                Outcome::Ignored,
                "no remote_write: DIAG_IOCSUNREG gives ENOTTY (old status-page user_events)".into(),
                Some(Feature::RemoteWrite)
            )
        );
        let (outcome, _, missing) = verdict(
            "abi::del_right_after_unreg",
            lacks(Feature::RegPersist, "EINVAL"),
        );
        assert_eq!(
            (outcome, missing),
            (Outcome::Ignored, Some(Feature::RegPersist))
        );
        // A feature the scenario does not declare is never an excuse: a failure.
        let (outcome, message, missing) = verdict(
            "basic::write_reaches_trace",
            lacks(Feature::RegPersist, "EINVAL"),
        );
        assert_eq!((outcome, missing), (Outcome::Fail, None));
        assert!(message.contains("which it does not declare"), "{message}");
    }

    #[test]
    fn a_known_bugs_symptom_does_not_stop_a_fail_fast_run() {
        let plan = Plan {
            scenarios: vec![],
            scenario_timeout_ms: 60_000,
            poll_deadline_ms: 5_000,
            kselftests: vec![],
            stop_at_first_failure: true,
            stop_on: vec![],
            jobs: 1,
            guest_tests: vec![],
            hang_limit_ms: 3_000,
            defer: vec![],
        };
        let end = |r| {
            scenario_end(
                &scenarios::find("basic::present").unwrap(),
                Ok(r),
                Instant::now(),
            )
        };
        let symptom = end(Err(Stop::Symptom {
            bug: "format-array-len",
            message: "len 0".into(),
        }));
        assert_eq!(stopping_failure(&plan, &symptom), None);
        let fail = end(Err(Stop::Fail("bit 3".into())));
        assert_eq!(
            stopping_failure(&plan, &fail).as_deref(),
            Some("basic::present")
        );
    }
}
