//! The asynchronous fault worker's bookkeeping (user_event_enabler_fault_fixup): while a
//! fault is in flight the registration is FAULTING, a transition skips it, an UNREG leaves
//! it to the worker to free (and the event's reference goes with it), and the worker drops
//! its reference to the process's user_event_mm when done. A fork in that window copies
//! what the registration means, never that state: a FREEING registration is not copied, and
//! a FAULTING one is copied without its FAULTING bit (user_event_enabler_dup), since only
//! the parent has a fault in flight to clear it.
//!
//! "While a fault is in flight" is made deterministic by holding the worker: schedule_work()
//! queues on the CPU that calls it (system_wq is per-CPU), so a process pinned to one CPU
//! and running SCHED_FIFO keeps that CPU's kworker (SCHED_NORMAL) from running until it
//! drops back to SCHED_OTHER ([`HeldWorker`]). Each scenario also checks, from what the
//! kernel left, that the hold really held; an attempt where it did not is noted and redone.

use std::os::fd::{AsFd, AsRawFd};
use std::time::Instant;

use result_channel::Feature;

use super::munmap::{resident, wait_fault_warning};
use crate::framework::uffd::{Fault, MissingTrap};
use crate::framework::{
    fork, kmsg_count, wait_until, write32, Context, Ctx, Family, JobThread, Mapping, Pipe,
    Scenario, Stop, R,
};
use crate::uapi::{self, Errno};
use crate::{check, check_eq, fail, tracefs};

const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "exit_after_fault_frees_event",
        "a process whose word was written by the fault worker exits: its registration goes, and the unused event is deleted by itself",
        exit_after_fault_frees_event,
    ),
    Scenario::new(
        "unreg_while_faulting",
        "DIAG_IOCSUNREG while the fault worker is held with the write pending: the worker frees the registration, never writes the word, and the event deletes itself once its fd is closed",
        unreg_while_faulting,
    ),
    Scenario::new(
        "exit_while_fault_pending",
        "a process that exits while the fault worker is held with its write pending: the worker skips the dead mm quietly (no fault warning, nothing written), drops what it held, and the unused event deletes itself",
        exit_while_fault_pending,
    ),
    Scenario::new(
        "thread_exit_during_fault_in",
        "a thread whose fault the worker is faulting in (held there by a userfaultfd trap on the word's page) exits, its process living on: once the page comes in, the worker writes nothing; the same fault with the thread alive writes the bit",
        thread_exit_during_fault_in,
    )
    .requires(&[Feature::RemoteWrite, Feature::Madvise, Feature::Userfaultfd]),
    Scenario::new(
        "transition_while_faulting_skipped",
        "a disable that comes while the enable's fault is in flight queues no second fault: one fault warning, not two",
        transition_while_faulting_skipped,
    )
    .fault_warnings(true)
    .requires(&[Feature::RemoteWrite]),
    Scenario::new(
        "fork_skips_unreg_pending",
        "a fork while an UNREG'd registration waits for its fault worker does not copy it: the child's UNREG of the (addr, bit) is ENOENT",
        fork_skips_unreg_pending,
    ),
    Scenario::new(
        "fork_while_faulting_child_follows",
        "a fork while the parent's fault is in flight gives the child a registration that follows the next enable and disable",
        fork_while_faulting_child_follows,
    ),
    Scenario::new(
        "unpinnable_word_gives_up",
        "a word the kernel can fault in but never pin (memfd_secret memory): REG gives up with ENOMEM and the event stays; a registration whose page became such memory makes the fault worker give up after an enable, with one fault warning",
        unpinnable_word_gives_up,
    )
    .fault_warnings(true)
    .requires(&[Feature::RemoteWrite, Feature::Secretmem]),
];

pub const FAMILY: Family = Family::new("faults", SCENARIOS)
    .fault_worker()
    .requires(&[Feature::RemoteWrite, Feature::Madvise])
    .alone();

/// How many times a scenario tries to hold the worker before it gives up.
const HOLD_ATTEMPTS: u32 = 5;

/// `madvise(MADV_DONTNEED)` of a private anonymous page: the page is gone (a later write
/// fault gets a fresh zeroed one). Its callers' scenarios require madvise, which the runner
/// has probed, so any error here is a failure.
pub(super) fn drop_page(page: &Mapping) -> R {
    if unsafe { libc::madvise(page.ptr as *mut _, page.len, libc::MADV_DONTNEED) } != 0 {
        fail!("madvise(MADV_DONTNEED): {}", Errno::last());
    }
    check!(
        !resident(page.ptr)?,
        "the page is still mapped in after MADV_DONTNEED"
    );
    Ok(())
}

/// This process pinned to the CPU it runs on, SCHED_FIFO: that CPU's kworker, which runs
/// every fault work item this process queues, cannot run until [`HeldWorker::release`] (or
/// this process sleeps). Drop puts scheduling and affinity back.
struct HeldWorker {
    cpu: i32,
    old_mask: libc::cpu_set_t,
    since: Instant,
    released: bool,
}

impl HeldWorker {
    fn hold() -> Result<Self, Stop> {
        let set_size = std::mem::size_of::<libc::cpu_set_t>();
        let mut old_mask: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        check_eq!(
            unsafe { libc::sched_getaffinity(0, set_size, &mut old_mask) },
            0,
            "sched_getaffinity: {}",
            std::io::Error::last_os_error()
        );
        let cpu = unsafe { libc::sched_getcpu() };
        check!(
            cpu >= 0,
            "sched_getcpu: {}",
            std::io::Error::last_os_error()
        );
        let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        unsafe { libc::CPU_SET(cpu as usize, &mut one) };
        check_eq!(
            unsafe { libc::sched_setaffinity(0, set_size, &one) },
            0,
            "sched_setaffinity to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
        // From here on, Drop puts the affinity (and the policy) back.
        let mut held = HeldWorker {
            cpu,
            old_mask,
            since: Instant::now(),
            released: true,
        };
        let param = libc::sched_param { sched_priority: 10 };
        // RESET_ON_FORK: a child forked while held starts SCHED_OTHER, so it waits for the
        // CPU like the kworker instead of holding it as well.
        check_eq!(
            unsafe {
                libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param)
            },
            0,
            "sched_setscheduler(SCHED_FIFO | SCHED_RESET_ON_FORK, 10): {}",
            std::io::Error::last_os_error()
        );
        held.released = false;
        held.since = Instant::now();
        check_eq!(
            unsafe { libc::sched_getcpu() },
            cpu,
            "the CPU this process is pinned to"
        );
        Ok(held)
    }

    /// Back to SCHED_OTHER: the kworker runs at the next tick or when this process sleeps.
    /// Returns how long the worker was held (RT throttling would end it after 0.95 s).
    fn release(&mut self) -> Result<std::time::Duration, Stop> {
        let held = self.since.elapsed();
        if !self.released {
            self.released = true;
            let param = libc::sched_param { sched_priority: 0 };
            check_eq!(
                unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) },
                0,
                "sched_setscheduler(SCHED_OTHER): {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(held)
    }
}

impl Drop for HeldWorker {
    fn drop(&mut self) {
        let _ = self.release();
        unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.old_mask)
        };
    }
}

/// Notes the conditions the hold relies on: the CPU count and RT throttling.
fn note_hold_conditions(cx: &mut Ctx, held: &HeldWorker) {
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let rt = |f: &str| {
        std::fs::read_to_string(format!("/proc/sys/kernel/{f}"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|e| format!("? ({e})"))
    };
    cx.note(format!(
        "worker held on CPU {} of {cpus}, SCHED_FIFO 10; sched_rt_runtime_us {} of sched_rt_period_us {}",
        held.cpu,
        rt("sched_rt_runtime_us"),
        rt("sched_rt_period_us")
    ));
}

/// A child registers an event on a word whose page is gone; the parent enables it, so the
/// kernel's write fails and the fault worker writes the bit; the child exits. The worker must
/// have dropped its reference to the child's user_event_mm: otherwise the mm is never
/// destroyed, its registration keeps the event referenced and the unused event never goes.
fn exit_after_fault_frees_event(cx: &mut Ctx) -> R {
    let name = cx.event_name();
    let to_parent = Pipe::new()?;
    let deadline = cx.poll_deadline;
    let child = fork(|| {
        let data = tracefs::open_data()?;
        let page = Mapping::anon(libc::MAP_PRIVATE)?;
        uapi::reg(data.as_fd(), &name, page.addr(0) as u64, 4, 0, 0)
            .ctx(|| format!("DIAG_IOCSREG {name:?} in the child"))?;
        drop_page(&page)?;
        to_parent.send(b"r")?;
        // Reading maps at most the read-only zero page: the kernel's write still needs the
        // worker to fault a writable page in.
        wait_until(
            "child sees bit 0 written by the fault worker",
            deadline,
            || page.u32_at(0) == 1,
        )
    })?;
    let parent = to_parent
        .expect(b'r', deadline)
        .and_then(|()| Ok(tracefs::set_enabled(&name, true)?));
    child.join_with(parent, deadline * 2)?;
    cx.note("the child saw the bit (written through the fault worker) and exited".into());
    tracefs::set_enabled(&name, false)?;
    let dir = format!("events/user_events/{name}");
    let gone = cx.wait_for(
        "the unused event deleted by itself after the child's exit",
        || !tracefs::exists(&dir),
    );
    if let Err(Stop::Fail(m)) = gone {
        let del = uapi::del(cx.fd(), &name);
        fail!(
            "{m}; DIAG_IOCSDEL now gives {del:?} (EBUSY: something still holds the event, such \
             as the exited child's registration in a user_event_mm the fault worker never put)"
        );
    }
    gone?;
    check_eq!(
        uapi::del(cx.fd(), &name).err(),
        Some(Errno(libc::ENOENT)),
        "DEL after the automatic delete"
    );
    Ok(())
}

/// Holds the worker, enables the event so that its write to the absent page is queued as a
/// fault (FAULTING), and UNREGs at once: UNREG must mark the registration FREEING so that the
/// worker frees it instead of re-issuing the write. While held, the registration is still
/// there (REG of its (addr, bit) is EADDRINUSE): that is the proof UNREG saw FAULTING.
/// The free is for good: once the fd that registered the event is closed too, nothing
/// references the event, and it deletes itself.
fn unreg_while_faulting(cx: &mut Ctx) -> R {
    const BIT: u8 = 7;
    for attempt in 1..=HOLD_ATTEMPTS {
        let page = Mapping::anon(libc::MAP_PRIVATE)?;
        let word = page.addr(0);
        let name = cx.event_name();
        let probe_name = cx.event_name();
        // An fd of its own, closed at the end, so that the registration is the event's only
        // other reference.
        let reg_fd = tracefs::open_data()?;
        uapi::reg(reg_fd.as_fd(), &name, word as u64, 4, BIT, 0)
            .ctx(|| format!("DIAG_IOCSREG {name:?}"))?;
        drop_page(&page)?;
        let mut held = HeldWorker::hold()?;
        let enabled = tracefs::set_enabled(&name, true);
        let before_unreg = page.u32_at(0);
        let unreg = uapi::unreg(cx.fd(), word as u64, BIT);
        let probe = uapi::reg(cx.fd(), &probe_name, word as u64, 4, BIT, 0);
        let word_held = page.u32_at(0);
        let for_ms = held.release()?;
        note_hold_conditions(cx, &held);
        drop(held);
        enabled?;
        check_eq!(unreg, Ok(()), "DIAG_IOCSUNREG while the fault is pending");
        if before_unreg & 1 << BIT != 0 {
            cx.note(format!(
                "attempt {attempt}: held {} us, but bit {BIT} was already set before UNREG: \
                 the worker had run; trying again",
                for_ms.as_micros()
            ));
            if probe.is_ok() {
                uapi::unreg(cx.fd(), word as u64, BIT)?;
            }
            tracefs::set_enabled(&name, false)?;
            continue;
        }
        check_eq!(
            word_held & 1 << BIT,
            0,
            "bit {BIT} after UNREG, before the worker ran"
        );
        match probe {
            Err(Errno(libc::EADDRINUSE)) => {
                cx.note(format!(
                    "attempt {attempt}: held {} us; bit {BIT} not yet set before UNREG, and \
                     right after UNREG the registration was still there (EADDRINUSE): UNREG \
                     left it to the pending fault",
                    for_ms.as_micros()
                ));
            }
            Ok(_) => {
                cx.note(format!(
                    "attempt {attempt}: held {} us, but the registration was gone right after \
                     UNREG: the worker had run before UNREG; trying again",
                    for_ms.as_micros()
                ));
                uapi::unreg(cx.fd(), word as u64, BIT)?;
                tracefs::set_enabled(&name, false)?;
                continue;
            }
            Err(e) => fail!("REG of the (addr, bit) right after UNREG: {e}"),
        }
        // Released: the worker faults the page in (UNREG already did) and, finding FREEING,
        // frees the registration without writing. The free is the control: once it is seen,
        // the worker is done, and a write it re-issued would already be there.
        let rewritten =
            format!("bit {BIT} set in the unregistered word (the worker re-issued the write)");
        let fd = cx.data.try_clone()?;
        let mut last = Ok(0);
        let gone = cx.wait_for_unless(
            "the registration freed by the worker: REG of its (addr, bit) succeeds",
            || {
                last = uapi::reg(fd.as_fd(), &probe_name, word as u64, 4, BIT, 0);
                last.is_ok()
            },
            &rewritten,
            || page.u32_at(0) & 1 << BIT != 0,
        );
        match gone {
            Ok(control) => {
                cx.never_after(&rewritten, control, || page.u32_at(0) & 1 << BIT != 0)?
            }
            // The wrong write came first: that message stands as it is.
            Err(e) if page.u32_at(0) & 1 << BIT != 0 => return Err(e),
            Err(Stop::Fail(m)) => fail!(
                "{m} (last REG: {last:?}): the UNREG that returned 0 left a live registration \
                 (word now {:#x})",
                page.u32_at(0)
            ),
            Err(e) => return Err(e),
        }
        tracefs::set_enabled(&name, false)?;
        drop(reg_fd);
        return gone_for_good(cx, &name);
    }
    fail!("could not hold the fault worker in {HOLD_ATTEMPTS} attempts (see the notes)")
}

/// A child registers a word whose page is gone and parks on the other CPU; with the worker
/// held, the parent enables the event (the write to the child's word is queued as a fault)
/// and lets the child exit, and only once the child is dead releases the worker. The
/// process's last task left (user_event_mm_remove) before the fault ran, so the worker must
/// see the mm has no tasks and give up without touching it: faulting pages into an mm after
/// exit_mm() is what the kernel's comment there forbids (rss counted after it was snapped),
/// and past exit_mmap() the fault-in fails and warns. The warning is this scenario's failure
/// (the console watch names it by the event). The event going by itself afterwards is the
/// control that the worker ran and put the user_event_mm it held.
fn exit_while_fault_pending(cx: &mut Ctx) -> R {
    const BIT: u8 = 3;
    // Long enough for a child to exit on a loaded TCG vCPU, short of RT throttling (0.95 s),
    // which would hand the held CPU back to the kworker.
    const EXIT_LIMIT: std::time::Duration = std::time::Duration::from_millis(800);
    let _pinned = super::kit::Pinned::here()?;
    let held_cpu = unsafe { libc::sched_getcpu() };
    for attempt in 1..=HOLD_ATTEMPTS {
        let name = cx.event_name();
        let (to_child, to_parent) = (Pipe::new()?, Pipe::new()?);
        let deadline = cx.poll_deadline;
        let child = fork(|| {
            pin_away_from(held_cpu)?;
            let data = tracefs::open_data()?;
            let page = Mapping::anon(libc::MAP_PRIVATE)?;
            uapi::reg(data.as_fd(), &name, page.addr(0) as u64, 4, BIT, 0)
                .ctx(|| format!("DIAG_IOCSREG {name:?} in the child"))?;
            drop_page(&page)?;
            to_parent.send(b"r")?;
            to_child.expect(b'x', deadline * 4)?;
            // What the worker had done by the time this process goes: 's' if it already
            // wrote the bit (the hold did not hold), 'c' if not.
            let set = page.u32_at(0) & 1 << BIT != 0;
            to_parent.send(if set { b"s" } else { b"c" })
        })?;
        to_parent.expect(b'r', deadline * 2)?;
        let mut held = HeldWorker::hold()?;
        let enabled = tracefs::set_enabled(&name, true);
        let told = to_child.send(b"x");
        // Busy: this process must not sleep while it holds the worker.
        let exit_seen = told.is_ok() && exited(child.pid, EXIT_LIMIT);
        let for_ms = held.release()?;
        note_hold_conditions(cx, &held);
        drop(held);
        enabled?;
        told?;
        let written = to_parent.recv(1, deadline * 2)?;
        child.join(deadline * 2)?;
        if !exit_seen || written != b"c" {
            cx.note(format!(
                "attempt {attempt}: held {} us; the child {} before the release, and its bit                  was {} when it left: trying again",
                for_ms.as_micros(),
                if exit_seen { "exited" } else { "had not exited" },
                if written == b"s" { "already set (the worker had run)" } else { "clear" },
            ));
            tracefs::set_enabled(&name, false)?;
            continue;
        }
        cx.note(format!(
            "attempt {attempt}: held {} us; the child exited with its fault still queued",
            for_ms.as_micros()
        ));
        tracefs::set_enabled(&name, false)?;
        return gone_for_good(cx, &name);
    }
    fail!("could not hold the fault worker past a child's exit in {HOLD_ATTEMPTS} attempts (see the notes)")
}

/// user_events asks twice whether a registration's user_event_mm still has a task: before
/// the fault worker faults the page in, and again in the write after it, under event_mutex:
/// the fault-in sleeps, and the last task may exit meanwhile. [`exit_while_fault_pending`]
/// reaches the first; this scenario the second. A userfaultfd trap on the word's page holds
/// the worker inside its fault-in while the thread that registered exits. The scenario's
/// main thread never registers, so that thread's user_event_mm was its own, and the process
/// lives on: a write after the exit lands where the scenario sees it. The same fault with
/// the thread alive comes first, and its bit must come: the trap holds the worker on the path
/// to the write.
fn thread_exit_during_fault_in(cx: &mut Ctx) -> R {
    const BIT: u8 = 0;
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    // Present before the trap is set, so that REG's own write needs no fault-in.
    write32(page.addr(0), 0);
    let trap = MissingTrap::register(&page)?;
    let name = cx.event_name();
    let data = tracefs::open_data()?;
    let raw = data.as_raw_fd();
    let word = page.addr(0) as u64;
    let thread = JobThread::start();
    let reg_name = name.clone();
    thread
        .run(move || {
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
            uapi::reg(fd, &reg_name, word, 4, BIT, 0)
        })?
        .ctx(|| format!("DIAG_IOCSREG {name:?} on a thread of its own"))?;
    // The thread's user_event_mm must be its own, or its exit would end nothing.
    check_eq!(
        uapi::unreg(data.as_fd(), word, BIT).err(),
        Some(Errno(libc::ENOENT)),
        "the main thread's UNREG of the thread's registration (the main thread must have no user_event_mm)"
    );
    let limit = cx.poll_deadline * 4;
    let trapped = |cx: &mut Ctx, when: &str| -> Result<Fault, Stop> {
        drop_page(&page)?;
        tracefs::set_enabled(&name, true)?;
        let fault = trap.next_fault(limit).map_err(|s| {
            s.prefixed(&format!(
                "the fault worker's fault-in of the word's dropped page, enabled {when}"
            ))
        })?;
        check_eq!(fault.page, word, "the page the fault worker faulted in");
        cx.note(format!(
            "{when}: the fault worker (kworker {}) waits in its fault-in ({})",
            fault.tid,
            if fault.write {
                "a write fault"
            } else {
                "a read fault"
            }
        ));
        Ok(fault)
    };

    let fault = trapped(cx, "with the thread alive")?;
    trap.supply_zeroed(&fault)?;
    cx.wait_for("the bit set by the worker once the page came in", || {
        page.u32_at(0) == 1 << BIT
    })?;
    tracefs::set_enabled(&name, false)?;
    cx.wait_for("the bit cleared by the disable", || page.u32_at(0) == 0)?;

    let fault = trapped(cx, "then the thread exits")?;
    thread.exit()?;
    // Its exit is done (the wait is for the kernel to release it) and removed its
    // user_event_mm; the worker cannot have gone on, since its page is still missing. Polled:
    // a spurious wakeup leaves it runnable for a moment before it waits again.
    cx.wait_for(
        "the fault worker still waiting for its page (state D)",
        || matches!(task_state(fault.tid), Ok(Some('D'))),
    )?;
    trap.supply_zeroed(&fault)?;
    // Still enabled: a worker that went on to write would set the bit (it writes the event's
    // state at the time of the write, so a disable before it would hide the write). Its work
    // item is over when it sleeps idle (state I) or has gone; a mutex or mmap_lock on the
    // way is state D. Nothing but that write sets the bit.
    cx.wait_for_unless(
        "the fault worker done with its fault (idle or gone), the event still enabled",
        || matches!(task_state(fault.tid), Ok(None | Some('I'))),
        "the bit set: the fault worker finished a fault whose registering thread had exited, and must have skipped the write (the user_event_mm has no task)",
        || page.u32_at(0) != 0,
    )?;
    check_eq!(
        page.u32_at(0),
        0,
        "the word, the event still enabled, once the fault worker was done: it must have skipped the write of a fault whose registering thread had exited"
    );
    tracefs::set_enabled(&name, false)?;
    drop(data);
    gone_for_good(cx, &name)?;
    // The event goes only once the worker has dropped the user_event_mm it held (its
    // enablers hold the event): nothing writes this word any more (the disable finds no
    // live registration).
    check_eq!(
        page.u32_at(0),
        0,
        "the word once the event was gone: the fault worker finished a fault whose registering thread had exited, and must have skipped the write (the user_event_mm has no task)"
    );
    Ok(())
}

/// The state letter of task `tid` (`/proc/TID/stat`'s third field), or None once it is gone.
fn task_state(tid: i32) -> Result<Option<char>, Stop> {
    let path = format!("/proc/{tid}/stat");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => fail!("{path}: {e}"),
    };
    // The command name (field 2) is in parentheses and may hold anything: the state follows
    // the last ')'.
    let after = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or_else(|| Stop::Fail(format!("{path} has no ')': {text:?}")))?;
    Ok(after.trim_start().chars().next())
}

/// This process onto every online CPU but `cpu`, so that it runs while `cpu` is held.
fn pin_away_from(cpu: i32) -> R {
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for c in (0..cpus as usize).filter(|&c| c as i32 != cpu) {
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    check!(
        cpus > 1,
        "one CPU online: a process cannot run beside the one holding the worker"
    );
    check_eq!(
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) },
        0,
        "sched_setaffinity away from CPU {cpu}: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// Whether the child `pid` has exited within `limit`, found without sleeping (WNOHANG) and
/// without reaping it (WNOWAIT: [`Child::join`] reaps it and reads its verdict).
fn exited(pid: libc::pid_t, limit: std::time::Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if r == 0 && unsafe { info.si_pid() } == pid {
            return true;
        }
        if r != 0 {
            return false;
        }
        std::hint::spin_loop();
    }
    false
}

/// The event `name`, disabled, whose fd is closed and whose one registration was freed by
/// the fault worker: nothing references it, so it deletes itself, and DEL then finds no such
/// event.
fn gone_for_good(cx: &mut Ctx, name: &str) -> R {
    let dir = format!("events/user_events/{name}");
    let gone = cx.wait_for(
        "the event deleted by itself once its fd was closed too",
        || !tracefs::exists(&dir),
    );
    if let Err(Stop::Fail(m)) = gone {
        let del = uapi::del(cx.fd(), name);
        fail!(
            "{m}; DIAG_IOCSDEL now gives {del:?} (EBUSY: something still holds the event, \
             such as the unregistered registration the fault worker never destroyed)"
        );
    }
    gone?;
    check_eq!(
        uapi::del(cx.fd(), name).err(),
        Some(Errno(libc::ENOENT)),
        "DEL after the automatic delete"
    );
    Ok(())
}

/// Both fault-in loops retry only while the fault-in succeeds and the pin then fails, up to
/// a cap ("ensure that it cannot be taken advantage of by bad user processes to cause
/// excessive looping"). Memory of memfd_secret is the one kind a process can hand over where
/// that is so every time: fixup_user_fault() maps it in, pin_user_pages_remote() refuses
/// it. Without the cap, REG loops in the kernel for good (the runner judges it a loop) and
/// the worker queues itself again for good (no warning ever comes).
fn unpinnable_word_gives_up(cx: &mut Ctx) -> R {
    // The synchronous loop of REG (user_event_enabler_create).
    let secret = Mapping::secret(None)?;
    write32(secret.addr(0), 0);
    let name = cx.event_name();
    let started = Instant::now();
    let reg = uapi::reg(cx.fd(), &name, secret.addr(0) as u64, 4, 0, 0);
    let took = started.elapsed();
    check_eq!(
        reg.err(),
        Some(Errno(libc::ENOMEM)),
        "REG of a word in memfd_secret memory (fault-in works, the pin never does)"
    );
    cx.note(format!("REG gave up in {} us", took.as_micros()));
    check!(
        tracefs::exists(&format!("events/user_events/{name}")),
        "the event does not exist after the refused REG"
    );

    // The worker's loop (user_event_enabler_fault_fixup): a registration made on an
    // ordinary page, which then becomes memfd_secret memory at the same address.
    let name = cx.event_name();
    let (ptr, _) = Mapping::anon(libc::MAP_PRIVATE)?.forget();
    write32(ptr, 0);
    cx.reg(&name, ptr, 4, 0)?;
    let secret = Mapping::secret(Some(ptr))?;
    write32(secret.addr(0), 0);
    tracefs::set_enabled(&name, true)?;
    let control = wait_fault_warning(cx, &name, 1)?;
    let needle = format!("event: {name}\n");
    cx.never_after(
        "a second fault warning (the worker went on after giving up)",
        control,
        || kmsg_count(&needle).map(|n| n >= 2).unwrap_or(true),
    )?;
    tracefs::set_enabled(&name, false)?;
    // The disable queues a fault of its own, which gives up the same way.
    wait_fault_warning(cx, &name, 2)?;
    Ok(())
}

/// Holds the worker, enables the event (its write to the unmapped word fails: one fault
/// queued, FAULTING) and disables it: that transition must skip the FAULTING registration
/// (EBUSY inside the kernel), so exactly one fault runs and warns once. While held, no
/// warning has been printed yet: that is the proof the disable came while FAULTING.
fn transition_while_faulting_skipped(cx: &mut Ctx) -> R {
    const FIRST_BIT: u8 = 3;
    for attempt in 1..=HOLD_ATTEMPTS {
        let (ptr, len) = Mapping::anon(libc::MAP_PRIVATE)?.forget();
        let name = cx.event_name();
        // A bit of its own per attempt: the last attempt's registration stays (its page is
        // gone, so it cannot be UNREG'd cleanly), and this attempt's page may be mapped at
        // the very address it names; the same (addr, bit) would then be EADDRINUSE.
        let bit = FIRST_BIT + attempt as u8 - 1;
        cx.reg(&name, ptr, 4, bit)?;
        unsafe { libc::munmap(ptr as *mut _, len) };
        let needle = format!("event: {name}\n");
        let mut held = HeldWorker::hold()?;
        let enabled = tracefs::set_enabled(&name, true);
        let disabled = tracefs::set_enabled(&name, false);
        let early = kmsg_count(&needle);
        let for_ms = held.release()?;
        note_hold_conditions(cx, &held);
        drop(held);
        enabled?;
        disabled?;
        let early = early?;
        if early != 0 {
            cx.note(format!(
                "attempt {attempt}: held {} us, but {early} fault warning(s) already printed: \
                 the worker ran before the disable; trying again",
                for_ms.as_micros()
            ));
            continue;
        }
        cx.note(format!(
            "attempt {attempt}: held {} us; no fault warning yet after the disable: it came \
             while the enable's fault was in flight",
            for_ms.as_micros()
        ));
        // The first warning is the control: a second fault, had the disable queued one, was
        // queued beside it, on the same CPU's workqueue, while the worker was held.
        let control = wait_fault_warning(cx, &name, 1)?;
        cx.never_after(
            "a second fault warning (the disable queued a fault of its own)",
            control,
            || kmsg_count(&needle).map(|n| n >= 2).unwrap_or(true),
        )?;
        check_eq!(kmsg_count(&needle)?, 1, "fault warnings for {name}");
        return Ok(());
    }
    fail!("could not hold the fault worker in {HOLD_ATTEMPTS} attempts (see the notes)")
}

/// Holds the worker, enables the event (its write to the absent page is queued as a fault:
/// FAULTING), UNREGs (FREEING: the registration is left to the worker to free) and forks.
/// The fork must not copy a registration its parent has already unregistered
/// (user_event_enabler_dup skips FREEING ones): the child's UNREG of the (addr, bit) is
/// ENOENT. Right after the fork, still held, the parent's REG of the (addr, bit) is
/// EADDRINUSE: the proof that the fork found the registration still listed, FREEING.
fn fork_skips_unreg_pending(cx: &mut Ctx) -> R {
    const BIT: u8 = 9;
    for attempt in 1..=HOLD_ATTEMPTS {
        let page = Mapping::anon(libc::MAP_PRIVATE)?;
        let word = page.addr(0) as u64;
        let (name, probe_name) = (cx.event_name(), cx.event_name());
        cx.reg(&name, page.addr(0), 4, BIT)?;
        drop_page(&page)?;
        let fd = cx.data.try_clone()?;
        let mut held = HeldWorker::hold()?;
        let enabled = tracefs::set_enabled(&name, true);
        let unreg = uapi::unreg(fd.as_fd(), word, BIT);
        // The child runs once this process sleeps (it is SCHED_OTHER on the held CPU); what
        // it got was settled by the fork.
        let child = fork(|| {
            let unreg = uapi::unreg(fd.as_fd(), word, BIT);
            check!(
                unreg == Err(Errno(libc::ENOENT)),
                "the child's UNREG of the (addr, bit) its parent had unregistered before the \
                 fork gave {unreg:?}, not ENOENT: fork copied a registration that was being \
                 freed (FREEING, its fault still in flight)"
            );
            Ok(())
        });
        let probe = uapi::reg(fd.as_fd(), &probe_name, word, 4, BIT, 0);
        let for_ms = held.release()?;
        note_hold_conditions(cx, &held);
        drop(held);
        let child = child?;
        let parent = enabled.map_err(Stop::from).and_then(|()| {
            check_eq!(unreg, Ok(()), "DIAG_IOCSUNREG while the fault is pending");
            Ok(())
        });
        child.join_with(parent, cx.poll_deadline * 2)?;
        tracefs::set_enabled(&name, false)?;
        match probe {
            Err(Errno(libc::EADDRINUSE)) => {
                cx.note(format!(
                    "attempt {attempt}: held {} us; right after the fork the unregistered \
                     registration was still listed (EADDRINUSE): the fork came while it was \
                     FREEING",
                    for_ms.as_micros()
                ));
                // The worker still has the enable's fault to run, and its run frees the
                // registration. The page must stay mapped until then: a fault on a page
                // already unmapped fails, and the kernel warns of it (a loaded host can run
                // the worker after this scenario has returned).
                cx.wait_for(
                    "the fault worker freed the unregistered registration (its (addr, bit) free)",
                    || match uapi::reg(fd.as_fd(), &probe_name, word, 4, BIT, 0) {
                        Ok(_) => uapi::unreg(fd.as_fd(), word, BIT).is_ok(),
                        Err(_) => false,
                    },
                )?;
                return Ok(());
            }
            Ok(_) => {
                cx.note(format!(
                    "attempt {attempt}: held {} us, but the registration was gone right after \
                     the fork: the worker had freed it; trying again",
                    for_ms.as_micros()
                ));
                uapi::unreg(cx.fd(), word, BIT)?;
            }
            Err(e) => fail!("REG of the (addr, bit) right after the fork: {e}"),
        }
    }
    fail!("could not hold the fault worker in {HOLD_ATTEMPTS} attempts (see the notes)")
}

/// Holds the worker, enables the event (its write to the absent page is queued as a fault:
/// the parent's registration is FAULTING) and forks. The child's copy must not inherit
/// FAULTING (user_event_enabler_dup copies only the bit number and the 32-on-64 flag): no
/// fault of the child's will ever clear it, and a FAULTING registration is never written.
/// So, once the parent's worker has run, the child's word must follow the next enable and
/// disable. The parent's bit, still clear right after the fork, is the proof that the fork
/// came while the fault was in flight.
fn fork_while_faulting_child_follows(cx: &mut Ctx) -> R {
    const BIT: u8 = 5;
    for attempt in 1..=HOLD_ATTEMPTS {
        let page = Mapping::anon(libc::MAP_PRIVATE)?;
        let name = cx.event_name();
        cx.reg(&name, page.addr(0), 4, BIT)?;
        drop_page(&page)?;
        let (to_child, to_parent) = (Pipe::new()?, Pipe::new()?);
        let deadline = cx.poll_deadline;
        let mut held = HeldWorker::hold()?;
        let enabled = tracefs::set_enabled(&name, true);
        let child = fork(|| {
            // A write to another word of the page maps it in, so that the transitions below
            // write this word at once; its bit is still clear (nothing was written at fork).
            write32(page.addr(64), 0);
            to_parent.send(b"r")?;
            to_child.expect(b'e', deadline * 2)?;
            wait_until(
                &format!(
                    "the child's bit {BIT} set by the enable after the fork (a registration \
                     copied while the parent's fault was in flight is never written: it kept \
                     FAULTING, which no fault of the child's clears)"
                ),
                deadline,
                || page.u32_at(0) & 1 << BIT != 0,
            )?;
            to_parent.send(b"s")?;
            to_child.expect(b'd', deadline * 2)?;
            wait_until(
                &format!("the child's bit {BIT} cleared by the next disable"),
                deadline,
                || page.u32_at(0) & 1 << BIT == 0,
            )
        });
        let word_held = page.u32_at(0);
        let for_ms = held.release()?;
        note_hold_conditions(cx, &held);
        drop(held);
        let child = child?;
        let parent = enabled.map_err(Stop::from).and_then(|()| {
            // The control: the released worker rewrites the parent's word, so the parent's
            // registration is no longer FAULTING.
            cx.wait_for("the parent's bit written by the released worker", || {
                page.u32_at(0) & 1 << BIT != 0
            })?;
            to_parent.expect(b'r', deadline * 2)?;
            tracefs::set_enabled(&name, false)?;
            tracefs::set_enabled(&name, true)?;
            to_child.send(b"e")?;
            to_parent.expect(b's', deadline * 2)?;
            tracefs::set_enabled(&name, false)?;
            to_child.send(b"d")
        });
        child.join_with(parent, deadline * 3)?;
        if word_held & 1 << BIT == 0 {
            cx.note(format!(
                "attempt {attempt}: held {} us; the parent's bit {BIT} still clear right after \
                 the fork: the fork came while the fault was in flight",
                for_ms.as_micros()
            ));
            return Ok(());
        }
        cx.note(format!(
            "attempt {attempt}: held {} us, but the parent's bit {BIT} was already set right \
             after the fork: the worker had run; trying again",
            for_ms.as_micros()
        ));
    }
    fail!("could not hold the fault worker in {HOLD_ATTEMPTS} attempts (see the notes)")
}
