//! Registrations live in a per-task user_event_mm that clone() shares only from the first
//! REG on: threads created later share the process's registrations, threads that already
//! existed get a user_event_mm of their own on their first REG (study §8).

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::framework::{Ctx, Family, JobThread, Mapping, Scenario, Stop, R, REMOTE_WRITE};
use crate::uapi::{self, Errno};
use crate::{check_eq, tracefs};

const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "later_thread_shares",
        "a thread created after the first REG shares it: its REG of the (addr, bit) is EADDRINUSE, its UNREG removes it",
        later_thread_shares,
    ),
    Scenario::new(
        "later_thread_registration_outlives_it",
        "a registration made by a thread created after the first REG keeps working after that thread exits",
        later_thread_registration_outlives_it,
    ),
    Scenario::new(
        "earlier_thread_has_its_own",
        "a thread that predates the first REG sees none of the process's registrations (UNREG ENOENT, REG of the same (addr, bit) works)",
        earlier_thread_has_its_own,
    ),
    Scenario::new(
        "earlier_thread_registration_dies_with_it",
        "a registration made by a pre-existing thread follows enable while it lives and stops when it exits",
        earlier_thread_registration_dies_with_it,
    ),
];

pub const FAMILY: Family = Family::new("threads", SCENARIOS).requires(REMOTE_WRITE);

const STEP: Duration = Duration::from_secs(10);

/// Runs `f` on a new thread and waits for its result (bounded: a stuck thread fails the
/// scenario, whose process the runner then ends).
fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Stop> {
    let (tx, rx) = mpsc::channel();
    let t = thread::spawn(move || {
        let _ = tx.send(f());
    });
    let r = rx
        .recv_timeout(STEP)
        .map_err(|_| Stop::Fail("thread gave no result".into()))?;
    t.join().map_err(|_| Stop::Fail("thread panicked".into()))?;
    Ok(r)
}

/// The data fd number, for use on other threads (the Ctx outlives them all).
fn raw_fd(cx: &Ctx) -> i32 {
    std::os::fd::AsRawFd::as_raw_fd(&cx.data)
}

fn fd(raw: i32) -> std::os::fd::BorrowedFd<'static> {
    unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) }
}

fn later_thread_shares(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let (name, other) = (cx.event_name(), cx.event_name());
    cx.reg(&name, page.addr(0), 4, 0)?;
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit 0 set", || page.u32_at(0) == 1)?;
    let (raw, addr) = (raw_fd(cx), page.addr(0) as u64);
    let (reg, unreg) = on_thread(move || {
        (
            uapi::reg(fd(raw), &other, addr, 4, 0, 0).err(),
            uapi::unreg(fd(raw), addr, 0),
        )
    })?;
    check_eq!(
        reg,
        Some(Errno(libc::EADDRINUSE)),
        "later thread's REG of the process's (addr, bit)"
    );
    check_eq!(
        unreg,
        Ok(()),
        "later thread's UNREG of the process's registration"
    );
    check_eq!(page.u32_at(0), 0, "word right after the thread's UNREG");
    check_eq!(
        uapi::unreg(cx.fd(), addr, 0).err(),
        Some(Errno(libc::ENOENT)),
        "main thread's UNREG after the thread's"
    );
    Ok(())
}

fn later_thread_registration_outlives_it(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let (first, threads) = (cx.event_name(), cx.event_name());
    cx.reg(&first, page.addr(0), 4, 0)?;
    let (raw, addr, name) = (raw_fd(cx), page.addr(0) as u64, threads.clone());
    on_thread(move || uapi::reg(fd(raw), &name, addr, 4, 1, 0))??;
    tracefs::set_enabled(&threads, true)?;
    cx.wait_for("bit 1 (registered by the exited thread) set", || {
        page.u32_at(0) == 1 << 1
    })?;
    tracefs::set_enabled(&threads, false)?;
    cx.wait_for("bit 1 cleared", || page.u32_at(0) == 0)?;
    Ok(())
}

fn earlier_thread_has_its_own(cx: &mut Ctx) -> R {
    let early = JobThread::start();
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let (name, other) = (cx.event_name(), cx.event_name());
    cx.reg(&name, page.addr(0), 4, 0)?;
    let (raw, addr) = (raw_fd(cx), page.addr(0) as u64);
    let unreg = early.run(move || uapi::unreg(fd(raw), addr, 0))?;
    check_eq!(
        unreg.err(),
        Some(Errno(libc::ENOENT)),
        "early thread's UNREG of the main thread's registration"
    );
    let reg = early.run(move || uapi::reg(fd(raw), &other, addr, 4, 0, 0))?;
    check_eq!(
        reg.err(),
        None,
        "early thread's REG of the (addr, bit) the main thread holds"
    );
    // Each of the two user_event_mms now has its own entry for (addr, 0).
    check_eq!(
        uapi::unreg(cx.fd(), addr, 0).err(),
        None,
        "main thread's UNREG"
    );
    check_eq!(
        early.run(move || uapi::unreg(fd(raw), addr, 0))?.err(),
        None,
        "early thread's UNREG of its own"
    );
    early.exit()
}

fn earlier_thread_registration_dies_with_it(cx: &mut Ctx) -> R {
    let early = JobThread::start();
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let (mains, earlys) = (cx.event_name(), cx.event_name());
    cx.reg(&mains, page.addr(0), 4, 0)?;
    let (raw, addr, name) = (raw_fd(cx), page.addr(0) as u64, earlys.clone());
    early.run(move || uapi::reg(fd(raw), &name, addr, 4, 1, 0))??;
    tracefs::set_enabled(&earlys, true)?;
    cx.wait_for("early thread's bit 1 set while it lives", || {
        page.u32_at(0) == 1 << 1
    })?;
    tracefs::set_enabled(&earlys, false)?;
    cx.wait_for("bit 1 cleared", || page.u32_at(0) == 0)?;
    early.exit()?;
    // Its user_event_mm went with it: nothing writes bit 1 now, while bit 0 still follows.
    tracefs::set_enabled(&earlys, true)?;
    tracefs::set_enabled(&mains, true)?;
    // The main thread's bit, enabled second, is the control: the early event's update (which
    // would write bit 1 if the early thread's registration were still there) ran before it,
    // on the same path.
    let control = cx.wait_for_unless(
        "main thread's bit 0 set",
        || page.u32_at(0) & 1 == 1,
        "bit 1 set after the early thread exited",
        || page.u32_at(0) & 2 != 0,
    )?;
    cx.never_after("bit 1 set after the early thread exited", control, || {
        page.u32_at(0) != 1
    })?;
    Ok(())
}
