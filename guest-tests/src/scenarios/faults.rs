//! The asynchronous fault worker's bookkeeping (user_event_enabler_fault_fixup): while a
//! fault is in flight the registration is FAULTING, a transition skips it, an UNREG leaves
//! it to the worker to free, and the worker drops its reference to the process's
//! user_event_mm when done.
//!
//! "While a fault is in flight" is made deterministic by holding the worker: schedule_work()
//! queues on the CPU that calls it (system_wq is per-CPU), so a process pinned to one CPU
//! and running SCHED_FIFO keeps that CPU's kworker (SCHED_NORMAL) from running until it
//! drops back to SCHED_OTHER ([`HeldWorker`]). Each scenario also checks, from what the
//! kernel left, that the hold really held; an attempt where it did not is noted and redone.

use std::os::fd::AsFd;

use result_channel::Feature;

use super::munmap::resident;
use crate::framework::{fork, wait_until, Context, Ctx, Family, Mapping, Pipe, Scenario, Stop, R};
use crate::uapi::{self, Errno};
use crate::{check, check_eq, fail, tracefs};

const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "exit_after_fault_frees_event",
        "a process whose word was written by the fault worker exits: its registration goes, and the unused event is deleted by itself",
        exit_after_fault_frees_event,
    ),
];

pub const FAMILY: Family = Family::new("faults", SCENARIOS)
    .requires(&[Feature::RemoteWrite, Feature::Madvise])
    .alone();

/// `madvise(MADV_DONTNEED)` of a private anonymous page: the page is gone (a later write
/// fault gets a fresh zeroed one); ignored on a kernel without madvise.
fn drop_page(page: &Mapping) -> R {
    if unsafe { libc::madvise(page.ptr as *mut _, page.len, libc::MADV_DONTNEED) } != 0 {
        let e = Errno::last();
        if e == Errno(libc::ENOSYS) {
            return Err(Stop::ignore(
                Feature::Madvise,
                "madvise gives ENOSYS (kernel without CONFIG_ADVISE_SYSCALLS)",
            ));
        }
        fail!("madvise(MADV_DONTNEED): {e}");
    }
    check!(
        !resident(page.ptr)?,
        "the page is still mapped in after MADV_DONTNEED"
    );
    Ok(())
}

/// A child registers an event on a word whose page is gone; the parent enables it, so the
/// kernel's write fails and the fault worker writes the bit; the child exits. The worker must
/// have dropped its reference to the child's user_event_mm: otherwise the mm is never
/// destroyed, its registration keeps the event referenced and the unused event never goes.
fn exit_after_fault_frees_event(cx: &mut Ctx) -> R {
    cx.require_remote_write()?;
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
