//! The scenario runner. In the guest it runs a plan, one child process per scenario, and
//! writes result records to stdout (which the init points at the result port). On the host,
//! `--list`/`--list-json` print the scenarios without running anything.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use guest_tests::framework::{Ctx, Entry, Pipe, Stop};
use guest_tests::scenarios;
use guest_tests::schedule::{self, Attribution, Traits};
use guest_tests::tracefs;
use result_channel::{
    GuestTestPlan, GuestTestStyle, Outcome, Plan, Record, RecordEnd, ScenarioInfo,
};

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
        ["--run", name] => {
            // For a person at a guest shell: one scenario, in this process, record on stdout.
            let plan = Plan {
                scenarios: vec![name.to_string()],
                scenario_timeout_ms: 60_000,
                poll_deadline_ms: 5_000,
                kselftests: vec![],
                stop_at_first_failure: false,
                stop_on: vec![],
                jobs: 1,
                guest_tests: vec![],
            };
            let rec = run_in_child(name, &plan, false);
            print!("{}", rec.to_line());
            0
        }
        _ => {
            eprintln!("usage: ue-scenarios --list | --list-json | --plan FILE | --run NAME");
            2
        }
    };
    std::process::exit(code);
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
    let stopped_at = run_scenarios(&plan, &mut |r| emit(&mut out, r));
    for k in &plan.kselftests {
        let name = result_channel::kselftest_name(&k.name);
        emit(&mut out, &Record::Start { name: name.clone() });
        kmsg_marker("start", &name);
        let rec = run_kselftest(&name, k);
        kmsg_marker("end", &name);
        emit(&mut out, &rec);
    }
    for g in &plan.guest_tests {
        for (name, argv) in guest_test_runs(g) {
            emit(&mut out, &Record::Start { name: name.clone() });
            kmsg_marker("start", &name);
            let rec = run_guest_test(&name, g, &argv);
            kmsg_marker("end", &name);
            emit(&mut out, &rec);
        }
    }
    emit(
        &mut out,
        &Record::Done {
            uptime_ms: uptime_ms(),
            stopped_at,
        },
    );
    0
}

/// Marks where a scenario starts and ends in the kernel log itself, so the host attributes
/// a console splat by its place in the console stream, not by when it happened to arrive.
fn kmsg_marker(what: &str, name: &str) {
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

fn end(name: &str, outcome: Outcome, message: String, started: Instant) -> Record {
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
    })
}

/// What a forked child left: the bytes it wrote to the pipe, its wait status, and whether
/// the limit ran out (then its whole process group was killed).
struct Collected {
    bytes: Vec<u8>,
    status: i32,
    timed_out: bool,
}

/// How a collected child ended.
enum ChildEnd {
    /// Its limit ran out and it was killed.
    TimedOut,
    /// Killed by this signal (a crash).
    Signal(i32),
    Exited(i32),
}

impl Collected {
    fn end(&self) -> ChildEnd {
        if self.timed_out {
            ChildEnd::TimedOut
        } else if libc::WIFSIGNALED(self.status) {
            ChildEnd::Signal(libc::WTERMSIG(self.status))
        } else {
            ChildEnd::Exited(libc::WEXITSTATUS(self.status))
        }
    }
}

/// A forked child in a process group of its own (so a time-out also kills whatever it forked),
/// and the read end of the pipe it reports on.
struct Spawned {
    pid: libc::pid_t,
    rd: OwnedFd,
    started: Instant,
    limit: Duration,
    bytes: Vec<u8>,
}

/// Forks; the child runs `child` with the write end of the pipe. `child` ends with `_exit` or
/// `exec`; should it return, the child exits 127.
fn spawn(limit: Duration, child: impl FnOnce(i32)) -> Result<Spawned, String> {
    let started = Instant::now();
    let pipe = Pipe::new().map_err(|e| format!("{e:?}"))?;
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        unsafe { libc::setpgid(0, 0) };
        child(pipe.wr.as_raw_fd());
        unsafe { libc::_exit(127) };
    }
    drop(pipe.wr);
    Ok(Spawned {
        pid,
        rd: pipe.rd,
        started,
        limit,
        bytes: Vec::new(),
    })
}

impl Spawned {
    fn left(&self) -> Duration {
        self.limit.saturating_sub(self.started.elapsed())
    }

    /// Reads what the pipe holds; true at EOF (the child has exited or closed the pipe).
    fn read_some(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        let n = unsafe {
            libc::read(
                self.rd.as_raw_fd(),
                chunk.as_mut_ptr() as *mut _,
                chunk.len(),
            )
        };
        if n <= 0 {
            return true;
        }
        if self.bytes.len() < 1 << 20 {
            self.bytes.extend_from_slice(&chunk[..n as usize]);
        }
        false
    }

    /// Whether the child has sent its whole report (a scenario's End record is one line).
    fn reported(&self) -> bool {
        self.bytes.ends_with(b"\n")
    }

    /// Reaps the child; with `timed_out`, kills its whole process group first.
    fn finish(self, timed_out: bool) -> Collected {
        if timed_out {
            unsafe {
                libc::kill(-self.pid, libc::SIGKILL);
                libc::kill(self.pid, libc::SIGKILL);
            }
        }
        let mut status = 0;
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
        Collected {
            bytes: self.bytes,
            status,
            timed_out,
        }
    }

    /// Collects until EOF or the limit.
    fn wait(mut self) -> Collected {
        loop {
            let left = self.left();
            if left.is_zero() {
                return self.finish(true);
            }
            let mut pfd = libc::pollfd {
                fd: self.rd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
                continue; // EINTR, or the limit: checked at the top
            }
            if self.read_some() {
                return self.finish(false);
            }
        }
    }
}

/// Forks `child` and collects what it reports until EOF or `limit`.
fn fork_collect(limit: Duration, child: impl FnOnce(i32)) -> Result<Collected, String> {
    Ok(spawn(limit, child)?.wait())
}

/// Runs the plan's scenarios: up to `plan.jobs` side by side as [`schedule::next`] allows,
/// then again, one at a time, those a splat left unattributable ([`schedule::Attribution`]).
/// With `stop_at_first_failure`, nothing new starts after a failure (of one of `stop_on`, if
/// named); what runs finishes. Returns the scenario whose failure stopped the run.
fn run_scenarios(plan: &Plan, emit: &mut dyn FnMut(&Record)) -> Option<String> {
    let traits = |name: &str| {
        scenarios::find(name).map_or(
            // Unknown: it fails at once; alone keeps that failure its own.
            Traits {
                alone: true,
                fault_warnings: false,
            },
            |e| Traits {
                alone: e.alone,
                fault_warnings: e.fault_warnings,
            },
        )
    };
    let expects_faults = |name: &str| traits(name).fault_warnings;
    // The failure that stops the run, if this record is one.
    let stops = |r: &Record| match r {
        Record::End(RecordEnd {
            name,
            outcome: Outcome::Fail,
            ..
        }) if plan.stop_at_first_failure
            && (plan.stop_on.is_empty() || plan.stop_on.contains(name)) =>
        {
            Some(name.clone())
        }
        _ => None,
    };
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
    // Once a scenario has sent its End record it is only exiting (the kernel's exit path for
    // a process with user_events registrations waits out an RCU grace period), so its slot
    // goes to the next scenario, while its `end` marker waits for the reap, so that a splat
    // from its exit is still attributed to it.
    let mut running: Vec<(String, Traits, Spawned)> = Vec::new();
    let mut stopped_at: Option<String> = None;
    loop {
        let jobs = if attribution.fell_back() {
            1
        } else {
            jobs_allowed
        };
        while stopped_at.is_none() {
            // With one job (debugging, or after a splat made the run fall back), the next
            // scenario waits for the last one's exit too: strictly one at a time.
            let (exiting, busy): (Vec<_>, Vec<_>) =
                running.iter().partition(|r| jobs > 1 && r.2.reported());
            let busy: Vec<Traits> = busy.iter().map(|r| r.1).collect();
            let exiting: Vec<Traits> = exiting.iter().map(|r| r.1).collect();
            let waiting: Vec<Traits> = pending.iter().map(|p| p.1).collect();
            let keep_order = plan.stop_at_first_failure;
            let Some(i) = schedule::next(&waiting, &busy, &exiting, jobs, keep_order) else {
                break;
            };
            let (name, t) = pending.remove(i);
            emit(&Record::Start { name: name.clone() });
            kmsg_marker("start", &name);
            match spawn_scenario(&name, plan, false) {
                Ok(s) => {
                    kmsg_marker("pid", &format!("{} {name}", s.pid));
                    running.push((name, t, s))
                }
                Err(rec) => {
                    kmsg_marker("end", &name);
                    stopped_at = stopped_at.or_else(|| stops(&rec));
                    emit(&rec);
                }
            }
        }
        if running.is_empty() {
            break;
        }
        let mut pfds: Vec<libc::pollfd> = running
            .iter()
            .map(|r| libc::pollfd {
                fd: r.2.rd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let soonest = running.iter().map(|r| r.2.left()).min().unwrap_or_default();
        let ms = soonest.min(Duration::from_millis(200)).as_millis() as i32;
        unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        let mut i = 0;
        while i < running.len() {
            let ready = pfds[i].revents != 0 && running[i].2.read_some();
            let overdue = !ready && running[i].2.left().is_zero();
            if ready || overdue {
                pfds.remove(i);
                let (name, _, s) = running.remove(i);
                let (started, limit) = (s.started, s.limit);
                let rec = scenario_record(&name, started, limit, Ok(s.finish(overdue)));
                remove_trace_instance(&name, false);
                kmsg_marker("end", &name);
                stopped_at = stopped_at.or_else(|| stops(&rec));
                emit(&rec);
            } else {
                i += 1;
            }
        }
        if let Some(k) = &mut kmsg {
            k.drain(&mut attribution, expects_faults);
        }
    }
    if let Some(k) = &mut kmsg {
        k.drain(&mut attribution, expects_faults);
    }
    // Each rerun is alone: its console is its own, and its End is the one the host keeps.
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
        emit(&Record::Start { name: name.clone() });
        kmsg_marker("start", name);
        let rec = run_in_child(name, plan, true);
        kmsg_marker("end", name);
        emit(&rec);
    }
    stopped_at
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

/// Runs one scenario in a child process of its own; a crash or hang fails that scenario only.
fn run_in_child(name: &str, plan: &Plan, again: bool) -> Record {
    match spawn_scenario(name, plan, again) {
        Err(rec) => *rec,
        Ok(s) => {
            let (started, limit) = (s.started, s.limit);
            let rec = scenario_record(name, started, limit, Ok(s.wait()));
            remove_trace_instance(name, again);
            rec
        }
    }
}

/// Removes the tracefs instance the scenario traced into, once its process group is gone.
/// One left behind costs memory, not a verdict, so a failure is only logged.
fn remove_trace_instance(name: &str, again: bool) {
    if let Err(e) = tracefs::remove_instance(&tracefs::scenario_key(name, again)) {
        eprintln!("ue-scenarios: {name}: its tracefs instance stays: {e}");
    }
}

/// Forks the child that runs scenario `name`; a failure to start is its End record.
/// `again`: its second run in this boot, with event names of its own.
fn spawn_scenario(name: &str, plan: &Plan, again: bool) -> Result<Spawned, Box<Record>> {
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
    spawn(limit, |fd| {
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
                        (scenario.run)(&mut cx)
                    }));
                    let mut bug = None;
                    let (outcome, message, lacks) = match r {
                        Ok(Ok(())) => (Outcome::Pass, String::new(), None),
                        Ok(Err(Stop::Fail(m))) => (Outcome::Fail, m, None),
                        Ok(Err(Stop::Symptom { bug: b, message })) => {
                            bug = Some(b.to_owned());
                            (Outcome::Fail, message, None)
                        }
                        // An ignore for a feature the scenario does not declare would let the
                        // host excuse it for the wrong reason: that is the scenario's bug.
                        Ok(Err(Stop::Ignore { missing, found }))
                            if !scenario.requires.contains(&missing) =>
                        {
                            let declared: Vec<_> =
                                scenario.requires.iter().map(|f| f.name()).collect();
                            let m = format!(
                            "ignored for missing {missing} ({found}), which it does not declare \
                             (requires: {declared:?})"
                        );
                            (Outcome::Fail, m, None)
                        }
                        Ok(Err(Stop::Ignore { missing, found })) => (
                            Outcome::Ignored,
                            format!("no {missing}: {found}"),
                            Some(missing),
                        ),
                        Err(p) => (
                            Outcome::Fail,
                            format!("scenario panicked: {}", panic_text(&p)),
                            None,
                        ),
                    };
                    let mut rec = end(name, outcome, message, started);
                    if let Record::End(RecordEnd {
                        snapshots,
                        notes,
                        missing,
                        symptom,
                        ..
                    }) = &mut rec
                    {
                        *snapshots = std::mem::take(&mut cx.snapshots);
                        *notes = std::mem::take(&mut cx.notes);
                        *missing = lacks;
                        *symptom = bug;
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
    .map_err(|e| Box::new(end(name, Outcome::Fail, e, started)))
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
        (_, Ok(rec @ Record::End(_))) => return rec,
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

/// Runs an upstream selftest program with its output captured; the host parses the KTAP.
/// It is forked and exec'd by hand: std's spawn with a process group or a pre_exec hook fails
/// with ENOSYS on these tinyconfig kernels.
fn run_kselftest(name: &str, k: &result_channel::KselftestPlan) -> Record {
    let started = Instant::now();
    let path = std::ffi::CString::new(k.path.as_str()).unwrap();
    let limit = Duration::from_millis(k.timeout_ms);
    // One pipe for stdout and stderr: the harness's assertion messages (stderr) then sit
    // next to the KTAP line they explain. The cwd must be writable.
    let collected = fork_collect(limit, |fd| unsafe {
        libc::chdir(c"/tmp".as_ptr());
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        libc::dup2(null, 0);
        libc::dup2(fd, 1);
        libc::dup2(fd, 2);
        let argv = [path.as_ptr(), std::ptr::null()];
        libc::execv(path.as_ptr(), argv.as_ptr());
        let msg = format!("exec {}: {}\n", k.path, std::io::Error::last_os_error());
        libc::write(2, msg.as_ptr() as *const _, msg.len());
        libc::_exit(127)
    });
    let c = match collected {
        Ok(c) => c,
        Err(e) => return end(name, Outcome::Fail, e, started),
    };
    // Exit 0 is pass and 4 is KSFT_SKIP (the whole program skipped), as kselftest counts them.
    let (outcome, message) = match c.end() {
        ChildEnd::TimedOut => (
            Outcome::Fail,
            format!(
                "timed out after {} ms (selftest settings); killed",
                limit.as_millis()
            ),
        ),
        ChildEnd::Signal(sig) => (
            Outcome::Fail,
            format!("killed by signal {sig} ({})", signal_name(sig)),
        ),
        ChildEnd::Exited(0) => (Outcome::Pass, String::new()),
        ChildEnd::Exited(4) => (
            Outcome::Ignored,
            "the program skipped itself (KSFT_SKIP)".into(),
        ),
        ChildEnd::Exited(code) => (Outcome::Fail, format!("exited with status {code}")),
    };
    let mut rec = end(name, outcome, message, started);
    if let Record::End(RecordEnd { output, .. }) = &mut rec {
        *output = String::from_utf8_lossy(&c.bytes).into_owned();
    }
    rec
}

/// Each process to start for a guest test program: its record name and its arguments. A
/// libtest program runs one test per process, so what goes wrong belongs to that test.
fn guest_test_runs(g: &GuestTestPlan) -> Vec<(String, Vec<String>)> {
    match &g.style {
        GuestTestStyle::Libtest { tests, json } => tests
            .iter()
            .map(|t| {
                let mut argv = vec!["--exact".to_owned(), t.clone(), "--test-threads=1".into()];
                if *json {
                    argv.extend(["--format", "json", "-Z", "unstable-options"].map(String::from));
                }
                argv.extend(g.args.iter().cloned());
                (result_channel::guest_test_name(&g.program, Some(t)), argv)
            })
            .collect(),
        GuestTestStyle::Program => vec![(
            result_channel::guest_test_name(&g.program, None),
            g.args.clone(),
        )],
    }
}

/// Runs one process of a guest test program with stdout and stderr captured together; the
/// verdict here is the exit status alone, the host reads the output (libtest, KTAP).
fn run_guest_test(name: &str, g: &GuestTestPlan, args: &[String]) -> Record {
    let started = Instant::now();
    let cstr = |s: &str| std::ffi::CString::new(s.replace('\0', "")).unwrap_or_default();
    let path = cstr(&g.path);
    let argv: Vec<std::ffi::CString> = std::iter::once(path.clone())
        .chain(args.iter().map(|a| cstr(a)))
        .collect();
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), "/bin:/usr/bin".into()),
        ("HOME".into(), "/tmp".into()),
    ];
    if matches!(g.style, GuestTestStyle::Libtest { json: true, .. }) {
        // libtest's `-Z unstable-options` (for `--format json`) checks this at run time.
        env.push(("RUSTC_BOOTSTRAP".into(), "1".into()));
    }
    env.extend(g.env.iter().cloned());
    let envp: Vec<std::ffi::CString> = env.iter().map(|(k, v)| cstr(&format!("{k}={v}"))).collect();
    let limit = Duration::from_millis(g.timeout_ms);
    let collected = fork_collect(limit, |fd| unsafe {
        libc::chdir(c"/tmp".as_ptr());
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        libc::dup2(null, 0);
        libc::dup2(fd, 1);
        libc::dup2(fd, 2);
        let mut a: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
        a.push(std::ptr::null());
        let mut e: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
        e.push(std::ptr::null());
        libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr());
        let msg = format!("exec {}: {}\n", g.path, std::io::Error::last_os_error());
        libc::write(2, msg.as_ptr() as *const _, msg.len());
        libc::_exit(127)
    });
    let c = match collected {
        Ok(c) => c,
        Err(e) => return end(name, Outcome::Fail, e, started),
    };
    let (outcome, message) = match c.end() {
        ChildEnd::TimedOut => (
            Outcome::Fail,
            format!(
                "timed out after {} ms (its limit, --guest-test-timeout); killed",
                limit.as_millis()
            ),
        ),
        ChildEnd::Signal(sig) => (
            Outcome::Fail,
            format!("crashed: killed by signal {sig} ({})", signal_name(sig)),
        ),
        ChildEnd::Exited(0) => (Outcome::Pass, String::new()),
        ChildEnd::Exited(code) => (Outcome::Fail, format!("exited with status {code}")),
    };
    let mut rec = end(name, outcome, message, started);
    if let Record::End(RecordEnd { output, .. }) = &mut rec {
        *output = bounded_output(&c.bytes);
    }
    rec
}

/// A program's output as a record carries it: a record is at most MAX_RECORD_LEN on the
/// wire, escapes included, so a chatty program keeps its beginning and its end (where
/// libtest and TAP put their results) and says how much was cut.
fn bounded_output(bytes: &[u8]) -> String {
    const HEAD: usize = 16 * 1024;
    const TAIL: usize = 48 * 1024;
    if bytes.len() <= HEAD + TAIL {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let cut = bytes.len() - HEAD - TAIL;
    format!(
        "{}\n[... {cut} bytes of output cut ...]\n{}",
        String::from_utf8_lossy(&bytes[..HEAD]),
        String::from_utf8_lossy(&bytes[bytes.len() - TAIL..])
    )
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        _ => "signal",
    }
}
