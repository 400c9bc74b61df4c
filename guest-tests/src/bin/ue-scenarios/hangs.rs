//! Hangs in the kernel, seen from `/proc` while they happen: which task of a running record's
//! process group has sat in uninterruptible sleep (`D`) for longer than the plan's hang limit,
//! where in the kernel (its wchan and stack), whether it waits on a lock, and whether
//! user_events still answers at all (a canary registration in a child of its own).
//!
//! Why here and not on the host: a process stuck in `D` cannot be killed, so a runner that
//! waits for it stops, and the host can only end the whole VM at its limit. Seen from the
//! guest, the stuck process is one record's failure, with the kernel's own stack, and the run
//! goes on (or, when user_events itself is blocked, reports what is left at once).
//!
//! Everything that reads `/proc/PID/stack` or `wchan` (which take the task's exec lock) or
//! touches user_events runs with a bound: in a thread, or in a child, given up on at its limit.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use super::children::{spawn, Spawned};

/// One task as `/proc/PID/task/TID/stat` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStat {
    pub tid: i32,
    pub comm: String,
    pub state: char,
    pub pgrp: i32,
    /// Time spent in user space and in the kernel, in clock ticks (`utime`, `stime`; 0 when
    /// the line is cut short).
    pub utime: u64,
    pub stime: u64,
}

/// Parses a `stat` line: `TID (COMM) S PPID PGRP SESSION TTY TPGID FLAGS MINFLT CMINFLT
/// MAJFLT CMAJFLT UTIME STIME ...`; COMM may hold spaces and parentheses, so it ends at the
/// last `)`.
pub fn parse_stat(line: &str) -> Option<TaskStat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let tid = line[..open].trim().parse().ok()?;
    let comm = line.get(open + 1..close)?.to_owned();
    let mut rest = line.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let _ppid = rest.next()?;
    let pgrp = rest.next()?.parse().ok()?;
    // SESSION TTY TPGID FLAGS MINFLT CMINFLT MAJFLT CMAJFLT, then the two times.
    let mut rest = rest.skip(8);
    let mut ticks = || rest.next().and_then(|t| t.parse().ok()).unwrap_or(0);
    let (utime, stime) = (ticks(), ticks());
    Some(TaskStat {
        tid,
        comm,
        state,
        pgrp,
        utime,
        stime,
    })
}

fn read_stat(path: &str) -> Option<TaskStat> {
    parse_stat(&std::fs::read_to_string(path).ok()?)
}

/// Every task (threads included) of the processes in process groups `pgids`, as
/// `(tgid, task)`.
pub fn tasks_in_groups(pgids: &[i32]) -> Vec<(i32, TaskStat)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Some(main) = read_stat(&format!("/proc/{pid}/stat")) else {
            continue;
        };
        if !pgids.contains(&main.pgrp) {
            continue;
        }
        let threads: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| {
                d.flatten()
                    .filter_map(|t| t.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        if threads.len() <= 1 {
            out.push((pid, main));
            continue;
        }
        for tid in threads {
            if let Some(t) = read_stat(&format!("/proc/{pid}/task/{tid}/stat")) {
                out.push((pid, t));
            }
        }
    }
    out
}

/// Whether a task is still stuck the way it was found: in `D`, or, for one found spinning,
/// still runnable without having returned to user space (false once it is gone, sleeps, or
/// ran user code again, which a killed task never does).
pub fn still_stuck(tgid: i32, tid: i32, how: StuckHow) -> bool {
    read_stat(&format!("/proc/{tgid}/task/{tid}/stat")).is_some_and(|t| match how {
        StuckHow::Asleep => t.state == 'D',
        StuckHow::Spinning { utime } => t.state == 'R' && t.utime == utime,
    })
}

/// How a task is stuck in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StuckHow {
    /// In uninterruptible sleep (`D`) at every look.
    Asleep,
    /// Runnable (`R`) at every look, its user time never moving (`utime`, in ticks) while
    /// its kernel time grew: a loop in the kernel that never sleeps, which no signal ends,
    /// because a signal is only acted on on the way back to user space.
    Spinning { utime: u64 },
}

/// A task seen stuck at every look since `since`.
#[derive(Debug, Clone)]
pub struct Stuck {
    pub pgid: i32,
    pub tgid: i32,
    pub task: TaskStat,
    pub since: Instant,
    pub how: StuckHow,
}

/// Where a runnable task's window began: when, and its times then.
#[derive(Debug, Clone, Copy)]
struct RunningSince {
    at: Instant,
    utime: u64,
    stime: u64,
}

/// The share of the wall time a spinning task must have spent in the kernel: a vCPU of a
/// loaded TCG host runs a fraction of the time, and a task that is runnable but waits for a
/// CPU gains nothing at all.
const SPIN_KERNEL_SHARE: f64 = 0.2;

/// `USER_HZ`: the unit of `utime` and `stime` in `/proc/PID/stat`, 100 on every Linux ABI.
const TICKS_PER_SEC: f64 = 100.0;

/// Whether a task runnable since `from` and now at `now` spun in the kernel all along: no
/// user time at all, and at least [`SPIN_KERNEL_SHARE`] of the wall time in the kernel.
fn spun(from: RunningSince, now: &TaskStat, wall: Duration) -> bool {
    let kernel = now.stime.saturating_sub(from.stime) as f64 / TICKS_PER_SEC;
    now.utime == from.utime && kernel > 0.0 && kernel >= wall.as_secs_f64() * SPIN_KERNEL_SHARE
}

/// Looks at the running groups' tasks every `interval` and remembers since when each has
/// been in `D`, or runnable without user time; a task that left that state at one look
/// starts again from zero.
pub struct HangWatch {
    pub limit: Duration,
    interval: Duration,
    last: Option<Instant>,
    d_since: HashMap<i32, Instant>,
    r_since: HashMap<i32, RunningSince>,
}

impl HangWatch {
    /// `limit`: the plan's hang limit (zero: no watch). A look every sixth of it (50–500 ms)
    /// finds a hang at most a sixth late.
    pub fn new(limit: Duration) -> HangWatch {
        HangWatch {
            limit,
            interval: (limit / 6).clamp(Duration::from_millis(50), Duration::from_millis(500)),
            last: None,
            d_since: HashMap::new(),
            r_since: HashMap::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.limit.is_zero()
    }

    /// Looks four times as often from now on: a hang is known, and the next task asleep at
    /// its place is judged at its second look.
    pub fn hurry(&mut self) {
        self.interval = (self.limit / 24).max(Duration::from_millis(50));
    }

    /// The time between two looks.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Time until the next look is due.
    pub fn next_look(&self) -> Duration {
        match self.last {
            Some(l) => self.interval.saturating_sub(l.elapsed()),
            None => Duration::ZERO,
        }
    }

    /// Looks at `groups` (process group, age) if a look is due and some group has run for a
    /// look's interval (a younger one cannot have hung yet, and most records end sooner, so a
    /// clean run mostly never reads `/proc`). Returns the tasks in `D`, and those that have
    /// spun in the kernel since an earlier look, with since when, longest first: the caller
    /// judges (the limit, or a known place).
    pub fn look(&mut self, groups: &[(i32, Duration)]) -> Vec<Stuck> {
        if !self.enabled() || !self.next_look().is_zero() {
            return vec![];
        }
        self.last = Some(Instant::now());
        if !groups.iter().any(|(_, age)| *age >= self.interval) {
            // Nothing old enough: forget what was seen, it belonged to groups now gone.
            self.d_since.clear();
            self.r_since.clear();
            return vec![];
        }
        let pgids: Vec<i32> = groups.iter().map(|(g, _)| *g).collect();
        let now = Instant::now();
        let mut seen = HashMap::new();
        let mut running = HashMap::new();
        let mut stuck = Vec::new();
        for (tgid, t) in tasks_in_groups(&pgids) {
            match t.state {
                'D' => {
                    let since = *self.d_since.get(&t.tid).unwrap_or(&now);
                    seen.insert(t.tid, since);
                    stuck.push(Stuck {
                        pgid: t.pgrp,
                        tgid,
                        how: StuckHow::Asleep,
                        task: t,
                        since,
                    });
                }
                'R' => {
                    let from = match self.r_since.get(&t.tid) {
                        Some(f) if f.utime == t.utime => *f,
                        // New, or it ran user code since: its window starts now.
                        _ => RunningSince {
                            at: now,
                            utime: t.utime,
                            stime: t.stime,
                        },
                    };
                    running.insert(t.tid, from);
                    if spun(from, &t, now - from.at) {
                        stuck.push(Stuck {
                            pgid: t.pgrp,
                            tgid,
                            how: StuckHow::Spinning { utime: t.utime },
                            task: t,
                            since: from.at,
                        });
                    }
                }
                _ => {}
            }
        }
        self.d_since = seen;
        self.r_since = running;
        stuck.sort_by_key(|s| s.since);
        stuck
    }

    /// Forgets the tasks of groups given up on (their records have ended).
    pub fn forget(&mut self, tids: &[i32]) {
        self.d_since.retain(|tid, _| !tids.contains(tid));
        self.r_since.retain(|tid, _| !tids.contains(tid));
    }
}

/// Where a task sleeps in the kernel.
pub struct Where {
    pub wchan: String,
    /// Innermost frame first, the kernel's dump's when there was one.
    pub stack: Vec<String>,
    /// The innermost frame outside the scheduler (`/proc/PID/stack`'s first, offset and
    /// all): the place it sleeps, by which two hangs are the same.
    pub site: String,
}

/// Where a stuck task sleeps: its wchan and kernel stack. The stack is the kernel's own
/// dump's (`dump`, from [`blocked_tasks`]) when it has the task: `/proc/PID/stack` leaves out
/// the scheduler's functions, and with them every sleeping lock's (`__mutex_lock`,
/// `rwsem_down_*`, `schedule_timeout`), which is what tells a task waiting on a lock from the
/// one holding it. Otherwise `/proc`'s, read in a thread given `limit` (both files take the
/// task's exec lock, which a task stuck in exec holds).
pub fn where_stuck(
    tgid: i32,
    tid: i32,
    limit: Duration,
    dump: &HashMap<i32, Vec<String>>,
) -> Where {
    let (wchan, stack) = read_where(tgid, tid, limit);
    let site = stack.first().cloned().unwrap_or_else(|| wchan.clone());
    let stack = match dump.get(&tid) {
        Some(frames) if !frames.is_empty() => frames.clone(),
        _ => stack,
    };
    Where { wchan, stack, site }
}

/// Where a task that runs in the kernel is: its frames from the kernel's backtrace of the
/// CPUs (`cpus`, from [`running_tasks`]), empty when it was not on a CPU at that moment; it
/// sleeps nowhere, so no wchan.
pub fn where_running(tid: i32, cpus: &HashMap<i32, Vec<String>>) -> Where {
    let stack = cpus.get(&tid).cloned().unwrap_or_default();
    Where {
        wchan: String::new(),
        site: stack.first().cloned().unwrap_or_default(),
        stack,
    }
}

/// [`Where::site`] alone.
pub fn site_of(tgid: i32, tid: i32, limit: Duration) -> String {
    let (wchan, stack) = read_where(tgid, tid, limit);
    stack.first().cloned().unwrap_or(wchan)
}

/// At most this many tasks left stuck before the runner stops asking the kernel to dump the
/// blocked tasks: each dump lists them all, and the kernel's log buffer (128 KiB here) holds
/// a few dozen stacks.
pub const DUMP_WHILE_STUCK_AT_MOST: usize = 8;

/// Asks the kernel to dump every task in `D` with its stack (sysrq `w`) and reads the dump
/// back from `/dev/kmsg`, which carries it whatever the console's log level: the stacks by
/// pid, innermost frame first, scheduler frames included.
pub fn blocked_tasks() -> HashMap<i32, Vec<String>> {
    parse_blocked_dump(&sysrq_read_back(b'w'))
}

/// Asks the kernel for a backtrace of every CPU (sysrq `l`, by NMI) and reads it back: the
/// stacks of the tasks running in the kernel right now, by pid, innermost frame (the
/// interrupted instruction's function) first. `/proc/PID/stack` cannot give these: it shows
/// where a task last slept, not where it runs.
pub fn running_tasks() -> HashMap<i32, Vec<String>> {
    parse_cpu_backtraces(&sysrq_read_back(b'l'))
}

/// Triggers sysrq `key` and reads what the kernel logged for it from `/dev/kmsg` (empty when
/// the log cannot be read). Read back, not shown: on the slow serial console each dump would
/// cost the runner, which prints it, a second or more.
fn sysrq_read_back(key: u8) -> Vec<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(mut kmsg) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
    else {
        return Vec::new();
    };
    if unsafe { libc::lseek(kmsg.as_raw_fd(), 0, libc::SEEK_END) } < 0 {
        return Vec::new();
    }
    let raised = INFO_ON_CONSOLE.load(std::sync::atomic::Ordering::Relaxed);
    if raised {
        set_console_level(5);
    }
    // Both dumps are complete when the write returns: `w` prints from the caller, and `l`
    // waits for every CPU's NMI handler (up to its own bound of 10 s).
    let _ = std::fs::write("/proc/sysrq-trigger", [key]);
    if raised {
        set_console_level(7);
    }
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        match kmsg.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let raw = String::from_utf8_lossy(&buf[..n]);
                if let Some(r) = guest_tests::schedule::parse_kmsg(&raw) {
                    lines.push(r.text);
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
            Err(_) => break,
        }
    }
    lines
}

/// The stacks in the kernel's backtrace of all CPUs (sysrq `l`): per CPU, `NMI backtrace for
/// cpu N`, `CPU: N UID: U PID: P Comm: ...`, `RIP: 0010:func+0x1/0x2` (the interrupted
/// kernel instruction), then `Call Trace:` with the NMI's own frames in `<NMI>`..`</NMI>`
/// and the task's in `<TASK>`..`</TASK>`. An idle CPU says `skipped: idling`; a CPU that
/// was in user space has no kernel `RIP: 0010:` and no task frames.
pub fn parse_cpu_backtraces(lines: &[String]) -> HashMap<i32, Vec<String>> {
    let mut out = HashMap::new();
    let mut current: Option<(i32, Vec<String>)> = None;
    // Inside `<TASK>`..`</TASK>`: the interrupted task's frames, not the NMI's or an IRQ's.
    let mut in_task = false;
    for l in lines {
        let t = l.trim();
        if t.starts_with("NMI backtrace for cpu") {
            if let Some((pid, frames)) = current.take() {
                out.insert(pid, frames);
            }
            in_task = false;
            continue;
        }
        if t.starts_with("CPU: ") && current.is_none() {
            let words: Vec<&str> = t.split_whitespace().collect();
            current = words
                .iter()
                .position(|w| *w == "PID:")
                .and_then(|i| words.get(i + 1)?.parse().ok())
                .map(|p| (p, Vec::new()));
            continue;
        }
        let Some((_, frames)) = current.as_mut() else {
            continue;
        };
        match t {
            "<TASK>" => in_task = true,
            "</TASK>" => {
                in_task = false;
                if let Some((pid, frames)) = current.take() {
                    out.insert(pid, frames);
                }
            }
            // The kernel instruction the NMI interrupted: the innermost frame (user space
            // runs with code segment 0033, and is no kernel frame).
            f if f.starts_with("RIP: 0010:") && frames.is_empty() => {
                frames.push(f["RIP: 0010:".len()..].to_owned());
            }
            f if in_task && l.starts_with(' ') && f.contains('+') && !f.starts_with("RIP:") => {
                let f = f.trim_start_matches("? ").to_owned();
                if frames.first() != Some(&f) {
                    frames.push(f);
                }
            }
            _ => {}
        }
    }
    if let Some((pid, frames)) = current {
        out.insert(pid, frames);
    }
    out
}

/// The stacks in a dump of blocked tasks (sysrq `w`, a hung-task report): `task:COMM
/// state:D ... pid:N ...`, then `Call Trace:`, ` <TASK>`, one ` ? func+0x1/0x2` a line, and
/// ` </TASK>`.
pub fn parse_blocked_dump(lines: &[String]) -> HashMap<i32, Vec<String>> {
    let mut out = HashMap::new();
    let mut current: Option<(i32, Vec<String>)> = None;
    for l in lines {
        let t = l.trim();
        if t.starts_with("task:") {
            if let Some((pid, frames)) = current.take() {
                out.insert(pid, frames);
            }
            let words: Vec<&str> = t.split_whitespace().collect();
            // `pid:43` or, padded, `pid: 43`.
            let pid = words
                .iter()
                .enumerate()
                .find_map(|(i, w)| match w.strip_prefix("pid:") {
                    Some("") => words.get(i + 1).and_then(|n| n.parse().ok()),
                    Some(n) => n.parse().ok(),
                    None => None,
                });
            current = pid.map(|p| (p, Vec::new()));
            continue;
        }
        let Some((_, frames)) = current.as_mut() else {
            continue;
        };
        match t {
            "Call Trace:" | "<TASK>" => {}
            "</TASK>" => {
                if let Some((pid, frames)) = current.take() {
                    out.insert(pid, frames);
                }
            }
            f if l.starts_with(' ') && f.contains('+') => {
                frames.push(f.trim_start_matches("? ").to_owned());
            }
            _ => {}
        }
    }
    if let Some((pid, frames)) = current {
        out.insert(pid, frames);
    }
    out
}

/// `/proc/PID/task/TID/{wchan,stack}`, read in a thread given `limit`.
fn read_where(tgid: i32, tid: i32, limit: Duration) -> (String, Vec<String>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let _ = std::thread::Builder::new()
        .name("ue-stack".into())
        .spawn(move || {
            let dir = format!("/proc/{tgid}/task/{tid}");
            let wchan = std::fs::read_to_string(format!("{dir}/wchan")).unwrap_or_default();
            let stack = std::fs::read_to_string(format!("{dir}/stack")).unwrap_or_default();
            let _ = tx.send((wchan, stack));
        });
    match rx.recv_timeout(limit) {
        Ok((wchan, stack)) => (wchan.trim().to_owned(), parse_stack(&stack)),
        Err(_) => (
            String::new(),
            vec![format!(
                "(its stack could not be read within {} ms)",
                limit.as_millis()
            )],
        ),
    }
}

/// The innermost frame of a stack that is not the scheduler's own (`__schedule`,
/// `schedule_timeout`, ...): where in the kernel the task went to sleep, or waits on a lock.
pub fn place(stack: &[String]) -> &str {
    let scheduler = |f: &str| {
        let func = f.split('+').next().unwrap_or(f);
        func == "__schedule"
            || func == "schedule"
            || func.starts_with("schedule_")
            || func.starts_with("io_schedule")
            || func.starts_with("preempt_schedule")
    };
    stack
        .iter()
        .find(|f| !scheduler(f))
        .map_or("?", String::as_str)
}

/// `/proc/PID/stack` lines (`[<0>] func+0x1/0x2`) as frames (`func+0x1/0x2`).
pub fn parse_stack(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            let l = l.trim();
            l.strip_prefix("[<0>] ")
                .or_else(|| l.split_once("] ").map(|(_, f)| f))
                .unwrap_or(l)
                .to_owned()
        })
        .filter(|l| !l.is_empty())
        .collect()
}

/// Whether a stack (or, without one, the wchan) waits on a sleeping lock: a mutex, an rwsem
/// (mmap_lock too), a semaphore, an rt_mutex. Such a task is blocked behind the lock's
/// holder, not stuck on its own. Only the kernel's own dump shows these frames
/// ([`blocked_tasks`]): `/proc/PID/stack` leaves them out.
pub fn waits_on_lock(stack: &[String], wchan: &str) -> bool {
    sleeps_in(stack, wchan, |func| {
        func.contains("mutex_lock")
            || func.starts_with("rwsem_down")
            || func.starts_with("down_read")
            || func.starts_with("down_write")
            || func.starts_with("__down")
            || func.starts_with("rt_mutex")
            || func.starts_with("percpu_down")
            || func.starts_with("percpu_rwsem")
    })
}

/// Whether a stack (or, without one, the wchan) waits for an RCU or SRCU grace period (a
/// tracepoint's probe update does: synchronize_srcu). A CPU that loops in the kernel without
/// scheduling never passes a quiescent state, so while such a loop lasts, the task waits
/// behind it as a lock's waiter waits behind the holder.
pub fn waits_for_grace_period(stack: &[String], wchan: &str) -> bool {
    sleeps_in(stack, wchan, |func| {
        func.contains("synchronize_rcu")
            || func.contains("synchronize_srcu")
            || func.contains("wait_rcu_gp")
            || func.starts_with("rcu_barrier")
            || func.starts_with("srcu_barrier")
    })
}

/// Whether a frame of `stack` (`function+0xoff/0xlen`), or the wchan when there is no
/// stack, names a function `is` picks.
fn sleeps_in(stack: &[String], wchan: &str, is: impl Fn(&str) -> bool) -> bool {
    let named = |f: &str| is(f.split('+').next().unwrap_or(f));
    stack.iter().any(|f| named(f)) || (stack.is_empty() && named(wchan))
}

/// What the canary found: user_events answers, or the canary itself is stuck.
pub enum Canary {
    Answers,
    /// It did not come back within its limit: where it sleeps.
    Stuck {
        what: String,
        wchan: String,
        stack: Vec<String>,
    },
}

/// The canary's event; it registers and unregisters it, nothing else uses it.
const CANARY_EVENT: &str = "ue_runner_canary u32 x";

/// Probes whether user_events answers at all: a child of its own opens `user_events_data`,
/// registers and unregisters a canary event (the registration takes the group's reg_mutex and
/// event_mutex), and reads `user_events_status`. It must report within `limit`; it is not
/// waited for beyond that (a stuck canary is returned with its pid, for the caller to write
/// off). Any answer counts, errors included: the question is whether the calls return.
/// With `dump`, a stuck canary's stack (and every other blocked task's, returned last) comes
/// from the kernel's dump of blocked tasks.
pub fn probe(limit: Duration, dump: bool) -> (Canary, Option<Spawned>, HashMap<i32, Vec<String>>) {
    let what = format!(
        "a canary process that opens user_events_data, registers and unregisters the event \
         {CANARY_EVENT:?} and reads user_events_status, given {} ms",
        limit.as_millis()
    );
    let spawned = spawn(limit, |fd| {
        unsafe { libc::dup2(2, 1) };
        let word = Box::leak(Box::new(0u32));
        if let Ok(data) = guest_tests::tracefs::open_data() {
            let addr = word as *mut u32 as u64;
            if guest_tests::uapi::reg(data.as_fd(), CANARY_EVENT, addr, 4, 0, 0).is_ok() {
                let _ = guest_tests::uapi::unreg(data.as_fd(), addr, 0);
            }
            drop(data);
        }
        let _ = std::fs::read(guest_tests::tracefs::path("user_events_status"));
        unsafe {
            libc::write(fd, b"ok\n".as_ptr() as *const _, 3);
            libc::_exit(0)
        }
    });
    let mut s = match spawned {
        Ok(s) => s,
        // No fork: nothing can be said of user_events; carry on as if it answered.
        Err(_) => return (Canary::Answers, None, HashMap::new()),
    };
    while !s.reported() && !s.left().is_zero() {
        let mut pfd = libc::pollfd {
            fd: s.rd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = s.left().as_millis().clamp(1, 100) as i32;
        if unsafe { libc::poll(&mut pfd, 1, ms) } > 0 {
            s.read_some();
            if s.eof() {
                break;
            }
        }
    }
    if s.reported() {
        s.kill();
        return (Canary::Answers, Some(s), HashMap::new());
    }
    let pid = s.pid;
    // Its stuck task: the one in D, or the leader.
    let task = tasks_in_groups(&[pid])
        .into_iter()
        .find(|(_, t)| t.state == 'D')
        .map_or((pid, pid), |(tgid, t)| (tgid, t.tid));
    let dump = if dump {
        blocked_tasks()
    } else {
        HashMap::new()
    };
    let Where { wchan, stack, .. } = where_stuck(task.0, task.1, Duration::from_millis(500), &dump);
    s.kill();
    (Canary::Stuck { what, wchan, stack }, Some(s), dump)
}

/// Asks the kernel to print every task in `D` with its stack (sysrq `w`) on the console,
/// the kernel's own witness of what blocks what.
pub fn sysrq_show_blocked() {
    let _ = std::fs::write("/proc/sysrq-trigger", b"w");
}

/// Raises the console's log level so that the kernel's INFO-level parts of its reports reach
/// the console too: the hung-task detector's and sysrq's stacks are printed at KERN_INFO,
/// which the harness's `loglevel=5` keeps off the console while all is well. Done once a
/// hang is known, when that chatter is worth its time on the slow serial console.
pub fn console_shows_info() {
    if !INFO_ON_CONSOLE.swap(true, std::sync::atomic::Ordering::Relaxed) {
        set_console_level(7);
    }
}

/// Set once [`console_shows_info`] raised the console's level.
static INFO_ON_CONSOLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// SYSLOG_ACTION_CONSOLE_LEVEL: messages below `level` reach the console (7: KERN_INFO too;
/// 5: the harness's `loglevel=5`).
fn set_console_level(level: i32) {
    unsafe { libc::klogctl(8, std::ptr::null_mut(), level) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sysrq-w dump as /dev/kmsg gave it on 6.12 with del-hangs-holding-locks.patch: the
    /// DEL that sleeps holding the locks, and a task waiting for the group's reg_mutex.
    #[test]
    fn the_kernels_dump_of_blocked_tasks_gives_each_stack_with_its_lock_frames() {
        let lines: Vec<String> = [
            "sysrq: Show Blocked State",
            "task:ue-scenarios    state:D stack:0     pid:43    tgid:43    ppid:33     flags:0x00000004",
            "Call Trace:",
            " <TASK>",
            " ? __schedule+0x43d/0x467",
            " ? schedule+0x2d/0x3e",
            " ? schedule_timeout+0x32/0xbc",
            " ? user_events_ioctl+0x444/0x6b0",
            " </TASK>",
            "task:ue-scenarios    state:D stack:0     pid: 45   tgid:45    ppid:33     flags:0x00000004",
            "Call Trace:",
            " <TASK>",
            " ? __schedule+0x43d/0x467",
            " ? schedule_preempt_disabled+0xd/0xf",
            " ? __mutex_lock.constprop.0+0x137/0x257",
            " ? user_events_ioctl+0x5b/0x6b0",
            " </TASK>",
        ]
        .map(String::from)
        .to_vec();
        let dump = parse_blocked_dump(&lines);
        assert_eq!(dump.len(), 2);
        assert_eq!(dump[&43][2], "schedule_timeout+0x32/0xbc");
        assert!(!waits_on_lock(&dump[&43], ""));
        assert!(waits_on_lock(&dump[&45], ""));
        assert_eq!(dump[&45].last().unwrap(), "user_events_ioctl+0x5b/0x6b0");
        assert_eq!(place(&dump[&45]), "__mutex_lock.constprop.0+0x137/0x257");
        assert_eq!(place(&dump[&43]), "user_events_ioctl+0x444/0x6b0");
    }

    #[test]
    fn stat_lines_with_odd_comms_parse() {
        let t = parse_stat("85 (ue-scenarios) D 80 85 80 0 -1 4194560 129 0").unwrap();
        assert_eq!(
            t,
            TaskStat {
                tid: 85,
                comm: "ue-scenarios".into(),
                state: 'D',
                pgrp: 85,
                utime: 0,
                stime: 0,
            }
        );
        // A whole line (6.12): utime and stime are the 14th and 15th fields.
        let t = parse_stat(
            "3603 (ue-scenarios) R 35 3603 35 0 -1 4194560 96 0 0 0 2 311 0 0 20 0 1 0 2331 \
             6074368 175 18446744073709551615",
        )
        .unwrap();
        assert_eq!((t.state, t.utime, t.stime), ('R', 2, 311));
        let t = parse_stat("9 (a) b (c)) S 1 7 7 0").unwrap();
        assert_eq!((t.comm.as_str(), t.state, t.pgrp), ("a) b (c)", 'S', 7));
        assert_eq!(parse_stat("garbage"), None);
    }

    /// A sysrq-l dump as /dev/kmsg gave it on 6.12 with spin-in-del.patch: the runner's own
    /// CPU (its dump_stack, no RIP), and the DEL spinning on CPU 1, interrupted at its loop.
    #[test]
    fn the_kernels_backtrace_of_all_cpus_gives_each_running_tasks_frames() {
        let lines: Vec<String> = [
            "sysrq: Show backtrace of all active CPUs",
            "NMI backtrace for cpu 0",
            "CPU: 0 UID: 0 PID: 35 Comm: ue-scenarios Not tainted 6.12.118 #2 ",
            "Call Trace:",
            " <TASK>",
            " ? dump_stack_lvl+0x56/0x65",
            " ? nmi_cpu_backtrace+0xce/0xef",
            " ? write_sysrq_trigger+0x3f/0x57",
            " </TASK>",
            "NMI backtrace for cpu 1",
            "CPU: 1 UID: 0 PID: 3603 Comm: ue-scenarios Not tainted 6.12.118 #2 ",
            "RIP: 0010:user_events_ioctl+0x438/0x6b9",
            "Code: 03 00 49 89 c6 48 89 c5 48 3d 00 f0 ff ff 0f 87 cd 00 00 00 48 <eb> fc",
            "RSP: 0018:ffffc9000028fe30 EFLAGS: 00010282",
            "RAX: ffff8880031b2508 RBX: fffffffffffffff7 RCX: 0000000000000002",
            "Call Trace:",
            " <NMI>",
            " ? nmi_cpu_backtrace_handler+0x11/0x16",
            " </NMI>",
            " <TASK>",
            " ? vfs_ioctl+0x1a/0x27",
            " ? __x64_sys_ioctl+0x7da/0x7fa",
            " ? do_syscall_64+0x4e/0xa4",
            " </TASK>",
            "NMI backtrace for cpu 2 skipped: idling at default_idle+0xf/0x14",
        ]
        .map(String::from)
        .to_vec();
        let cpus = parse_cpu_backtraces(&lines);
        assert_eq!(cpus.len(), 2, "{cpus:?}");
        assert_eq!(
            cpus[&3603],
            [
                "user_events_ioctl+0x438/0x6b9",
                "vfs_ioctl+0x1a/0x27",
                "__x64_sys_ioctl+0x7da/0x7fa",
                "do_syscall_64+0x4e/0xa4"
            ]
        );
        assert!(!waits_on_lock(&cpus[&3603], ""));
        let w = where_running(3603, &cpus);
        assert_eq!(
            (w.wchan.as_str(), w.site.as_str()),
            ("", "user_events_ioctl+0x438/0x6b9")
        );
        assert!(where_running(77, &cpus).stack.is_empty());
    }

    /// A spinner gains kernel time and no user time; a task that ran user code, or waited
    /// for a CPU without gaining anything, is none.
    #[test]
    fn spinning_is_kernel_time_without_user_time() {
        let at = |utime, stime| TaskStat {
            tid: 9,
            comm: "x".into(),
            state: 'R',
            pgrp: 9,
            utime,
            stime,
        };
        let from = RunningSince {
            at: Instant::now(),
            utime: 5,
            stime: 100,
        };
        let sec = Duration::from_secs(1);
        assert!(spun(from, &at(5, 200), sec));
        assert!(spun(from, &at(5, 121), sec), "a fifth of the time on a CPU");
        assert!(!spun(from, &at(5, 110), sec), "too little of it");
        assert!(!spun(from, &at(6, 200), sec), "it ran user code");
        assert!(
            !spun(from, &at(5, 100), Duration::ZERO),
            "nothing gained yet"
        );
    }

    /// `/proc/PID/stack` leaves the scheduler's functions out: the place is the first frame.
    #[test]
    fn proc_stacks_parse_to_frames_and_wchan_alone_can_say_lock() {
        let holder = parse_stack(
            "[<0>] user_events_ioctl+0x444/0x6b0\n[<0>] vfs_ioctl+0x1a/0x27\n\
             [<0>] __x64_sys_ioctl+0x7da/0x7fa\n",
        );
        assert_eq!(holder[0], "user_events_ioctl+0x444/0x6b0");
        assert!(!waits_on_lock(&holder, "user_events_ioctl"));
        assert!(waits_on_lock(
            &parse_stack("[<0>] rwsem_down_write_slowpath+0x1/0x2\n"),
            ""
        ));
        assert!(waits_on_lock(&[], "__mutex_lock.constprop.0"));
        assert!(!waits_on_lock(&[], "do_wait"));
        // A tracepoint's probe update behind a CPU that loops in the kernel (seen beside
        // spin-in-del.patch's DEL): a grace period, not a lock.
        let srcu: Vec<String> = [
            "__synchronize_srcu+0x9a/0x130",
            "tracepoint_probe_register_prio_may_exist+0x7d/0xb0",
            "user_event_reg+0x1f0/0x2c0",
        ]
        .map(String::from)
        .to_vec();
        assert!(!waits_on_lock(&srcu, ""));
        assert!(waits_for_grace_period(&srcu, ""));
        assert!(waits_for_grace_period(&[], "synchronize_rcu_expedited"));
        assert!(!waits_for_grace_period(&holder, "user_events_ioctl"));
    }
}
