//! The runner's children while they run: reports read, exits reaped, limits enforced, hangs
//! in the kernel found ([`super::hangs`]), and none of it ever waiting on a child without a
//! bound. Scenarios side by side and the programs after them all run under one
//! [`Supervisor`], so that what one hang taught (a culprit still stuck, user_events blocked)
//! holds for everything after it.
//!
//! How a child ends: it reports and exits (its record); it overruns its limit (killed, then
//! reaped within a grace, or written off); or a task of its group sits in `D` past the hang
//! limit (killed and written off at once, its record a hang with the task's kernel stack).
//! After a hang, a canary asks whether user_events answers at all; if not, every record not
//! yet started is reported blocked behind the culprit, at once.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use result_channel::{Blocked, Hang, Outcome, Plan, Record, Reported};

use super::children::{ChildEnd, Collected, Spawned};
use super::hangs::{self, Canary, HangWatch};
use super::janitor::Janitor;
use super::{end, kmsg_marker};
use guest_tests::schedule::Traits;

/// The name the janitor's pid marker gives it: no planned record's, so that the kernel's
/// trouble naming it fails `vm::health` (unless a culprit's hang explains it, see
/// [`Supervisor::finish`]).
const JANITOR: &str = "ue-runner::janitor";

/// The name the canary's pid marker gives it when no culprit is known (see [`JANITOR`]).
const CANARY: &str = "ue-runner::canary";

/// Builds a record's End from what its child left.
pub type MakeRecord = Box<dyn FnOnce(Collected) -> Record>;

/// A running child and what the supervisor needs to end it.
pub struct Job {
    pub name: String,
    pub tag: Traits,
    pub spawned: Spawned,
    make: MakeRecord,
    /// The tracefs instance to remove once its group is gone.
    instance: Option<String>,
    /// It reports by one End line (a scenario; a program's output is not a result).
    sends_end: bool,
}

/// A record that ended, in the order it ended.
pub struct Ended {
    pub name: String,
    pub record: Record,
}

/// A child given up on, reaped later with `WNOHANG` if it ever goes.
struct WrittenOff {
    name: String,
    pid: libc::pid_t,
    /// Its stuck task, while it stays stuck the way it was found.
    stuck: Option<(i32, i32, hangs::StuckHow)>,
    /// Its record's hang (None for a canary, or a child killed at its limit not in `D`).
    hang: Option<Hang>,
}

/// What the canary found when user_events stopped answering.
pub struct BlockedCause {
    pub culprit: String,
    pub probe: String,
    pub probe_stack: Vec<String>,
}

pub struct Supervisor {
    jobs: Vec<Job>,
    watch: HangWatch,
    /// How long a killed child may take to go before it is written off.
    grace: Duration,
    written_off: Vec<WrittenOff>,
    /// Where a record's task hung waiting on nothing (its innermost frame outside the
    /// scheduler), and which record: a later task asleep at the same place is that hang again.
    known_sites: Vec<(String, String)>,
    blocked: Option<BlockedCause>,
    janitor: Janitor,
}

impl Supervisor {
    pub fn new(plan: &Plan) -> Supervisor {
        let limit = Duration::from_millis(plan.hang_limit_ms);
        let janitor = Janitor::start();
        // A kernel report naming the janitor is the runner's, not a running scenario's.
        if janitor.pid() > 0 {
            kmsg_marker("pid", &format!("{} {JANITOR}", janitor.pid()));
        }
        Supervisor {
            jobs: Vec::new(),
            watch: HangWatch::new(limit),
            // A killed process that is not stuck is gone in milliseconds, even under TCG.
            grace: if limit.is_zero() {
                Duration::from_secs(2)
            } else {
                (limit / 2).clamp(Duration::from_millis(500), Duration::from_secs(5))
            },
            written_off: Vec::new(),
            known_sites: Vec::new(),
            blocked: None,
            janitor,
        }
    }

    /// Supervises a started child; `instance`: its tracefs instance, removed once its group
    /// is gone (never while a process of it may still use it).
    pub fn add(
        &mut self,
        name: &str,
        tag: Traits,
        spawned: Spawned,
        instance: Option<String>,
        make: MakeRecord,
    ) {
        self.jobs.push(Job {
            name: name.to_owned(),
            tag,
            spawned,
            make,
            // Scenarios, and only they, trace into an instance of their own.
            sends_end: instance.is_some(),
            instance,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// The running children's tags, with whether each has sent its whole report (then it
    /// is only exiting).
    pub fn running(&self) -> impl Iterator<Item = (&Traits, bool)> {
        self.jobs.iter().map(|j| (&j.tag, j.spawned.reported()))
    }

    /// Set once user_events stopped answering: nothing more may start.
    pub fn blocked(&self) -> Option<&BlockedCause> {
        self.blocked.as_ref()
    }

    /// The End of record `name`, never started because user_events is blocked.
    pub fn blocked_end(&self, name: &str) -> Option<Record> {
        let b = self.blocked.as_ref()?;
        let mut rec = end(
            name,
            Outcome::Fail,
            format!(
                "blocked behind {}: not run, user_events stopped answering after it hung in the kernel",
                b.culprit
            ),
            Instant::now(),
        );
        if let Record::End(e) = &mut rec {
            e.blocked = Some(Box::new(Blocked {
                culprit: b.culprit.clone(),
                probe: b.probe.clone(),
                probe_stack: b.probe_stack.clone(),
            }));
        }
        Some(rec)
    }

    /// Waits for something to happen (at most 200 ms) and ends what has: children that
    /// reported and exited, overran their limit, or hung.
    pub fn tick(&mut self) -> Vec<Ended> {
        self.wait();
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.jobs.len() {
            let s = &mut self.jobs[i].spawned;
            s.try_reap();
            if s.finished() {
                let j = self.jobs.remove(i);
                if let Some(inst) = &j.instance {
                    self.janitor.remove(inst, self.grace);
                }
                out.push(Ended {
                    record: (j.make)(j.spawned.collect()),
                    name: j.name,
                });
                continue;
            }
            if s.killed().is_none() && s.left().is_zero() {
                s.kill();
            }
            if s.killed().is_some_and(|k| k >= self.grace) {
                let j = self.jobs.remove(i);
                out.push(self.write_off_at_limit(j));
                continue;
            }
            i += 1;
        }
        self.reap_written_off();
        out.extend(self.end_hangs());
        out
    }

    /// Polls the pipes of children still reporting and the pidfds of those not reaped, until
    /// one is ready, a limit or a look of the hang watch is due, or 200 ms.
    fn wait(&mut self) {
        let mut fds: Vec<(usize, bool, libc::pollfd)> = Vec::new();
        let mut reap_without_pidfd = false;
        let mut soonest = Duration::from_millis(200);
        for (i, j) in self.jobs.iter().enumerate() {
            let s = &j.spawned;
            if !s.eof() {
                fds.push((i, true, pollin(s.rd.as_raw_fd())));
            }
            match (&s.pidfd, s.reaped()) {
                (_, true) => {}
                (Some(p), false) => fds.push((i, false, pollin(p.as_raw_fd()))),
                (None, false) => reap_without_pidfd = true,
            }
            soonest = soonest.min(match s.killed() {
                Some(k) => self.grace.saturating_sub(k).max(Duration::from_millis(10)),
                None => s.left(),
            });
        }
        if reap_without_pidfd {
            soonest = soonest.min(Duration::from_millis(10));
        }
        if self.watch.enabled() && !self.jobs.is_empty() {
            soonest = soonest.min(self.watch.next_look());
        }
        let mut pfds: Vec<libc::pollfd> = fds.iter().map(|f| f.2).collect();
        let ms = soonest.as_millis() as i32;
        if unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) } <= 0 {
            return;
        }
        for (k, (i, is_pipe, _)) in fds.iter().enumerate() {
            if *is_pipe && pfds[k].revents != 0 {
                self.jobs[*i].spawned.read_some();
            }
        }
    }

    /// A child killed at its limit that did not go within the grace: stuck, most likely in
    /// the kernel. Its record says it timed out and was left behind.
    fn write_off_at_limit(&mut self, j: Job) -> Ended {
        let pgid = j.spawned.pid;
        let limit = j.spawned.limit;
        // Asleep in the kernel, or else running in it (a killed task that still runs has not
        // returned to user space since the kill).
        let tasks = hangs::tasks_in_groups(&[pgid]);
        let task = tasks
            .iter()
            .find(|(_, t)| t.state == 'D')
            .map(|(tgid, t)| (*tgid, t.clone(), hangs::StuckHow::Asleep))
            .or_else(|| {
                tasks.iter().find(|(_, t)| t.state == 'R').map(|(tgid, t)| {
                    let how = hangs::StuckHow::Spinning { utime: t.utime };
                    (*tgid, t.clone(), how)
                })
            });
        if let Some((_, t, _)) = &task {
            if t.tid != pgid {
                kmsg_marker("pid", &format!("{} {}", t.tid, j.name));
            }
        }
        let (pid, collected) = j.spawned.write_off(ChildEnd::TimedOut);
        let mut record = (j.make)(collected);
        let hang = task.as_ref().map(|(tgid, t, how)| {
            let w = self.where_is(*tgid, t.tid, *how);
            let waits = hangs::waits_on_lock(&w.stack, &w.wchan);
            let blocked_behind = self.behind(&w.stack, &w.wchan);
            Hang {
                pid: t.tid as u32,
                comm: t.comm.clone(),
                state_ms: 0,
                spinning: matches!(how, hangs::StuckHow::Spinning { .. }),
                wchan: w.wchan,
                stack: w.stack,
                waits_on_lock: waits,
                blocked_behind,
                after_result: false,
                reported: None,
                same_place_as: None,
            }
        });
        if let Record::End(e) = &mut record {
            e.outcome = Outcome::Fail;
            e.message = format!(
                "timed out after {} ms in the guest; killed, and its process {pid} did not go \
                 within {} ms: left behind{}",
                limit.as_millis(),
                self.grace.as_millis(),
                hang.as_ref()
                    .map(|h| match (h.spinning, h.stack.first()) {
                        (true, Some(f)) => format!(" (running in the kernel, in {f})"),
                        (true, None) => " (running in the kernel)".to_owned(),
                        (false, _) => format!(" (in the kernel, in {})", h.wchan),
                    })
                    .unwrap_or_default()
            );
            e.hang = hang.clone().map(Box::new);
        }
        self.written_off.push(WrittenOff {
            name: j.name.clone(),
            pid,
            stuck: task.map(|(tgid, t, how)| (tgid, t.tid, how)),
            hang,
        });
        Ended {
            name: j.name,
            record,
        }
    }

    /// Where a stuck task is: asleep, its wchan and stack (the kernel's dump of blocked tasks
    /// when allowed); spinning, the kernel's backtrace of the CPU it runs on (no wchan: it
    /// does not sleep).
    fn where_is(&self, tgid: i32, tid: i32, how: hangs::StuckHow) -> hangs::Where {
        match how {
            hangs::StuckHow::Asleep => {
                hangs::where_stuck(tgid, tid, Duration::from_millis(500), &self.dump())
            }
            hangs::StuckHow::Spinning { .. } => hangs::where_running(tid, &hangs::running_tasks()),
        }
    }

    /// Whether the kernel's dump of blocked tasks stays small: few tasks left stuck.
    fn may_dump(&self) -> bool {
        self.written_off
            .iter()
            .filter(|w| w.stuck.is_some())
            .count()
            <= hangs::DUMP_WHILE_STUCK_AT_MOST
    }

    /// The kernel's stacks of its blocked tasks, while [`Supervisor::may_dump`].
    fn dump(&self) -> HashMap<i32, Vec<String>> {
        if self.may_dump() {
            hangs::blocked_tasks()
        } else {
            HashMap::new()
        }
    }

    /// The first record whose own process hung (not behind another) and is still stuck.
    fn culprit(&self) -> Option<String> {
        self.culprit_record().map(|w| w.name.clone())
    }

    fn culprit_record(&self) -> Option<&WrittenOff> {
        self.written_off.iter().find(|w| {
            w.stuck.is_some() && w.hang.as_ref().is_some_and(|h| h.blocked_behind.is_none())
        })
    }

    /// The culprit a stuck task with this stack waits behind: on a lock, or, while the
    /// culprit loops on a CPU, on a grace period (see [`hangs::waits_for_grace_period`]).
    fn behind(&self, stack: &[String], wchan: &str) -> Option<String> {
        let culprit = self.culprit_record()?;
        let spins = culprit.hang.as_ref().is_some_and(|h| h.spinning);
        (hangs::waits_on_lock(stack, wchan)
            || (spins && hangs::waits_for_grace_period(stack, wchan)))
        .then(|| culprit.name.clone())
    }

    /// Reaps written-off children that went after all, and notes which stuck tasks left `D`.
    fn reap_written_off(&mut self) {
        self.written_off.retain_mut(|w| {
            if let Some((tgid, tid, how)) = w.stuck {
                if !hangs::still_stuck(tgid, tid, how) {
                    w.stuck = None;
                }
            }
            let mut status = 0;
            let r = unsafe { libc::waitpid(w.pid, &mut status, libc::WNOHANG) };
            // Reaped (or not ours any more): a culprit that went is no culprit.
            !(r == w.pid || r < 0)
        });
    }

    /// Ends the records with a task stuck in the kernel past the hang limit: in `D`, or
    /// spinning (see [`spinners_judged`]); after any, asks the canary whether user_events
    /// still answers.
    fn end_hangs(&mut self) -> Vec<Ended> {
        let groups: Vec<(i32, Duration)> = self
            .jobs
            .iter()
            .map(|j| (j.spawned.pid, j.spawned.started.elapsed()))
            .collect();
        let looked = self.watch.look(&groups);
        // Per group, its longest-stuck task that is hung: in D past the limit, or, past one
        // look, asleep at the very place where an earlier record's task has been stuck all
        // along (the same hang again: no need to wait out the limit to know it).
        let mut seen: Vec<i32> = Vec::new();
        let mut hung: Vec<(hangs::Stuck, Option<String>)> = Vec::new();
        let mut spinning: Vec<hangs::Stuck> = Vec::new();
        for s in looked {
            if seen.contains(&s.pgid) {
                continue;
            }
            if matches!(s.how, hangs::StuckHow::Spinning { .. }) {
                spinning.push(s);
                continue;
            }
            let age = s.since.elapsed();
            if age >= self.watch.limit {
                seen.push(s.pgid);
                hung.push((s, None));
            } else if age >= self.watch.interval() && !self.known_sites.is_empty() {
                let site = hangs::site_of(s.tgid, s.task.tid, Duration::from_millis(500));
                if let Some((_, first)) = self.known_sites.iter().find(|(k, _)| *k == site) {
                    seen.push(s.pgid);
                    let first = first.clone();
                    hung.push((s, Some(first)));
                }
            }
        }
        if hung.is_empty() && spinning.is_empty() {
            return vec![];
        }
        let dump = if hung.is_empty() {
            HashMap::new()
        } else {
            self.dump()
        };
        let mut found: Vec<(hangs::Stuck, Option<String>, hangs::Where, bool)> = hung
            .into_iter()
            .map(|(s, same)| {
                let w = hangs::where_stuck(s.tgid, s.task.tid, Duration::from_millis(500), &dump);
                // On a lock, or on a grace period that a looping CPU may be keeping from
                // ending: either way possibly behind another task.
                let waits = hangs::waits_on_lock(&w.stack, &w.wchan)
                    || hangs::waits_for_grace_period(&w.stack, &w.wchan);
                (s, same, w, waits)
            })
            .collect();
        let waiter_without_holder = found.iter().any(|f| f.3) && self.culprit().is_none();
        let spinners = spinners_judged(spinning, self.watch.limit, waiter_without_holder);
        if !spinners.is_empty() {
            let cpus = hangs::running_tasks();
            for s in spinners {
                if seen.contains(&s.pgid) {
                    continue;
                }
                seen.push(s.pgid);
                let w = hangs::where_running(s.task.tid, &cpus);
                // A spinning waiter (a mutex's optimistic spin) shows the lock in its frames.
                let waits = hangs::waits_on_lock(&w.stack, "");
                found.push((s, None, w, waits));
            }
        }
        if found.is_empty() {
            return vec![];
        }
        // Those that wait on no lock first, so that a holder is known before the tasks that
        // wait behind it are judged.
        found.sort_by_key(|f| f.3);
        let mut out = Vec::new();
        let mut tids = Vec::new();
        let mut new_place = false;
        for (s, same_place_as, w, waits) in found {
            let Some(i) = self.jobs.iter().position(|j| j.spawned.pid == s.pgid) else {
                continue;
            };
            tids.push(s.task.tid);
            let spins = matches!(s.how, hangs::StuckHow::Spinning { .. });
            let blocked_behind = if waits {
                self.behind(&w.stack, &w.wchan)
            } else {
                None
            };
            let hang = Hang {
                pid: s.task.tid as u32,
                comm: s.task.comm.clone(),
                state_ms: s.since.elapsed().as_millis() as u64,
                spinning: spins,
                waits_on_lock: hangs::waits_on_lock(&w.stack, &w.wchan),
                wchan: w.wchan,
                stack: w.stack,
                blocked_behind,
                after_result: self.jobs[i].sends_end && self.jobs[i].spawned.reported(),
                reported: None,
                same_place_as: same_place_as.clone(),
            };
            if same_place_as.is_none() {
                // A place where a task of its own sleeps, waiting on nothing: where the next
                // hang like it is known at once (a spinner's place is where the NMI caught
                // it, no place to sleep at).
                if !waits && !spins && !self.known_sites.iter().any(|(k, _)| *k == w.site) {
                    self.known_sites.push((w.site, self.jobs[i].name.clone()));
                    self.watch.hurry();
                }
                // One stuck on its way out, waiting on no lock, blocks nothing.
                new_place |= !hang.after_result || waits || spins;
            }
            let j = self.jobs.remove(i);
            out.push(self.write_off_hung(j, (s.tgid, s.task.tid, s.how), hang));
        }
        self.watch.forget(&tids);
        if self.blocked.is_none() && new_place {
            self.ask_canary(&mut out);
        }
        out
    }

    /// Kills a hung record's group and writes its child off; its End carries the hang.
    fn write_off_hung(
        &mut self,
        mut j: Job,
        (tgid, tid, how): (i32, i32, hangs::StuckHow),
        hang: Hang,
    ) -> Ended {
        j.spawned.kill();
        hangs::console_shows_info();
        // The kernel's own report of this task names its pid: it is this record's.
        if tid != j.spawned.pid {
            kmsg_marker("pid", &format!("{tid} {}", j.name));
        }
        let (pid, collected) = j.spawned.write_off(ChildEnd::Hung);
        let record = with_hang((j.make)(collected), &hang);
        self.written_off.push(WrittenOff {
            name: j.name.clone(),
            pid,
            stuck: Some((tgid, tid, how)),
            hang: Some(hang),
        });
        Ended {
            name: j.name,
            record,
        }
    }

    /// After a hang: does user_events answer at all? If the canary is stuck too, nothing
    /// more starts (the caller reports the rest blocked), the kernel dumps its blocked tasks,
    /// and the running records waiting on a lock end now, blocked behind the culprit.
    fn ask_canary(&mut self, out: &mut Vec<Ended>) {
        let limit = (self.watch.limit / 2).max(Duration::from_millis(250));
        let (canary, child, dump) = hangs::probe(limit, self.may_dump());
        let culprit = self.culprit().or_else(|| {
            self.written_off
                .iter()
                .rev()
                .find(|w| w.hang.is_some())
                .map(|w| w.name.clone())
        });
        if let Some(c) = child {
            let (pid, _) = c.write_off(ChildEnd::Hung);
            // Whatever the kernel reports of the canary later (stuck here, or on its way out
            // like the hang that called it) is the culprit's doing, not a running scenario's.
            let owner = culprit.as_deref().unwrap_or(CANARY);
            kmsg_marker("pid", &format!("{pid} {owner}"));
            self.written_off.push(WrittenOff {
                name: "ue-runner canary".into(),
                pid,
                stuck: None,
                hang: None,
            });
        }
        let Canary::Stuck {
            what, wchan, stack, ..
        } = canary
        else {
            return;
        };
        let Some(culprit) = culprit else {
            return;
        };
        // The kernel's own list of what blocks, for the console log (the dumps the runner
        // reads for itself stay off the slow console).
        hangs::sysrq_show_blocked();
        let probe_stack = if stack.is_empty() { vec![wchan] } else { stack };
        eprintln!(
            "ue-scenarios: user_events no longer answers after {culprit} hung (the canary sleeps in {}); the rest is reported blocked",
            hangs::place(&probe_stack)
        );
        self.blocked = Some(BlockedCause {
            culprit: culprit.clone(),
            probe: what,
            probe_stack,
        });
        // The running ones that wait on a lock are behind the culprit too: end them now.
        let pgids: Vec<i32> = self.jobs.iter().map(|j| j.spawned.pid).collect();
        for (tgid, t) in hangs::tasks_in_groups(&pgids) {
            if t.state != 'D' {
                continue;
            }
            let Some(i) = self.jobs.iter().position(|j| j.spawned.pid == t.pgrp) else {
                continue;
            };
            let hangs::Where { wchan, stack, .. } =
                hangs::where_stuck(tgid, t.tid, Duration::from_millis(500), &dump);
            if !hangs::waits_on_lock(&stack, &wchan) {
                continue;
            }
            let hang = Hang {
                pid: t.tid as u32,
                comm: t.comm.clone(),
                state_ms: 0,
                spinning: false,
                wchan,
                stack,
                waits_on_lock: true,
                blocked_behind: Some(culprit.clone()),
                after_result: self.jobs[i].sends_end && self.jobs[i].spawned.reported(),
                reported: None,
                same_place_as: None,
            };
            let j = self.jobs.remove(i);
            out.push(self.write_off_hung(j, (tgid, t.tid, hangs::StuckHow::Asleep), hang));
        }
    }

    /// The runner is done: the janitor gets a bound to finish, and what is left stuck is
    /// said on the console (the kernel keeps those processes; nobody waits for them).
    pub fn finish(mut self) {
        self.reap_written_off();
        let janitor_pid = self.janitor.pid();
        let limit = self.grace;
        let culprit = self.culprit();
        if let Some(pid) = self.janitor.finish(limit) {
            let wchan =
                hangs::where_stuck(pid, pid, Duration::from_millis(200), &HashMap::new()).wchan;
            eprintln!(
                "ue-scenarios: the tracefs janitor (pid {janitor_pid}) is stuck in the kernel ({wchan}): tracefs instances are left"
            );
            if let Some(c) = &culprit {
                kmsg_marker("pid", &format!("{pid} {c}"));
            }
        }
        for w in self.written_off.iter().filter(|w| w.stuck.is_some()) {
            eprintln!(
                "ue-scenarios: {} left behind: process {} stays stuck in the kernel",
                w.name, w.pid
            );
        }
    }
}

/// How many hang limits a task must spin in the kernel, with nothing waiting behind it,
/// before it is judged hung. Longer than for a sleeper: a task that makes syscalls in a tight
/// loop is runnable at every look too, and only its user time, a few ticks at most, tells it
/// from a spinner.
const SPIN_ALONE_LIMITS: u32 = 4;

/// The spinning tasks (from [`hangs::HangWatch::look`]) judged hung now: each that has spun
/// for [`SPIN_ALONE_LIMITS`] hang limits, or, when a task waits on a lock past the limit and
/// no hung record holds it (`waiter_without_holder`), every one: the holder is running, and a
/// sleeper behind it must not be named the culprit.
fn spinners_judged(
    spinning: Vec<hangs::Stuck>,
    limit: Duration,
    waiter_without_holder: bool,
) -> Vec<hangs::Stuck> {
    spinning
        .into_iter()
        .filter(|s| waiter_without_holder || s.since.elapsed() >= limit * SPIN_ALONE_LIMITS)
        .collect()
}

fn pollin(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// A hung record's End: a failure that carries the hang, what the record itself reported (if
/// it had) kept after it.
fn with_hang(mut record: Record, hang: &Hang) -> Record {
    if let Record::End(e) = &mut record {
        let mut hang = hang.clone();
        if hang.after_result {
            hang.reported = Some(Reported {
                outcome: e.outcome,
                message: std::mem::take(&mut e.message),
            });
        }
        let behind = hang
            .blocked_behind
            .as_ref()
            .map(|b| format!(", blocked behind {b}"))
            .unwrap_or_default();
        e.message = if hang.spinning {
            format!(
                "hung in the kernel{behind}: {} (pid {}) spinning, runnable for {} ms without \
                 sleeping or returning to user space, in {}; killed and left behind",
                hang.comm,
                hang.pid,
                hang.state_ms,
                hang.stack.first().map_or("?", String::as_str)
            )
        } else {
            format!(
                "hung in the kernel{behind}: {} (pid {}) in D for {} ms in {}; killed and left \
                 behind",
                hang.comm, hang.pid, hang.state_ms, hang.wchan
            )
        };
        e.outcome = Outcome::Fail;
        e.hang = Some(Box::new(hang));
    }
    record
}
