//! Enable words whose memory goes away or becomes read-only after REG: the kernel's write
//! fails quietly (a pr_warn from the fault worker), the registration is kept, and the
//! process goes on working. And the pages the kernel wrote are freed with their mapping.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use result_channel::Feature;

use crate::framework::{
    fork, kmsg_count, poll_until, read64, write32, Ctx, Family, Mapping, Scenario, Stop, R,
    REMOTE_WRITE,
};
use crate::uapi::{self, Errno};
use crate::{check, check_eq, fail, tracefs};

const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "enable_after_munmap",
        "enabling an event whose word was unmapped neither kills nor hangs the process; other words still follow",
        enable_after_munmap,
    ),
    Scenario::new(
        "remap_fixed_gets_next_change",
        "the registration outlives a failed write: a page MAP_FIXED at the address receives the next change",
        remap_fixed_gets_next_change,
    ),
    Scenario::new(
        "enable_in_failed_fault_window",
        "an enable that comes while a failed fault still holds the registration FAULTING is not lost: the page mapped again at the address receives it",
        enable_in_failed_fault_window,
    ),
    Scenario::new(
        "unreg_unmapped",
        "the (addr, bit) stays taken after munmap (EADDRINUSE); UNREG gives EFAULT, then ENOENT",
        unreg_unmapped,
    )
    .fault_worker(false).fault_warnings(false),
    Scenario::new(
        "mprotect_readonly",
        "a word made read-only is not written; once writable again it follows the next change",
        mprotect_readonly,
    ),
    Scenario::new(
        "madv_dontneed_before_enable",
        "after MADV_DONTNEED dropped the page, enable faults a new one in and sets the bit",
        madv_dontneed_before_enable,
    ).fault_warnings(false).requires(&[Feature::RemoteWrite, Feature::Madvise]),
    Scenario::new(
        "written_pages_freed",
        "pages whose words the kernel wrote are freed at munmap and exit: 4096 pages with a registration each come back like 4096 without",
        written_pages_freed,
    )
    .fault_worker(false).fault_warnings(false).alone(true),
];

pub const FAMILY: Family = Family::new("munmap", SCENARIOS)
    .fault_worker()
    .requires(REMOTE_WRITE)
    .fault_warnings();

/// Waits for the fault worker's "user_events: Fault for mm: ... event: NAME" warning, which
/// ends its (failed) attempt to write the word.
pub(super) fn wait_fault_warning(cx: &mut Ctx, name: &str, nth: usize) -> Result<Duration, Stop> {
    let needle = format!("event: {name}\n");
    let mut err = None;
    let took = cx.wait_for(&format!("fault warning #{nth} for {name}"), || {
        kmsg_count(&needle).map(|n| n >= nth).unwrap_or_else(|e| {
            err = Some(e);
            true
        })
    })?;
    err.map_or(Ok(took), Err)
}

fn enable_after_munmap(cx: &mut Ctx) -> R {
    // A witness on each side of the unmapped word: the kernel walks an mm's registrations
    // newest first, so a walk that gave up at the failed write would still have written a
    // witness registered after it, and only the one registered before shows the loss.
    let (older, gone, newer) = (
        Mapping::anon(libc::MAP_PRIVATE)?,
        Mapping::anon(libc::MAP_PRIVATE)?,
        Mapping::anon(libc::MAP_PRIVATE)?,
    );
    // Present and writable, so that their writes need no fault of their own.
    write32(older.addr(0), 0);
    write32(newer.addr(0), 0);
    let name = cx.event_name();
    cx.reg(&name, older.addr(0), 4, 0)?;
    cx.reg(&name, gone.addr(0), 4, 0)?;
    cx.reg(&name, newer.addr(0), 4, 0)?;
    drop(gone);
    tracefs::set_enabled(&name, true)?;
    cx.wait_for(
        "the witness registered before the unmapped word set",
        || older.u32_at(0) == 1,
    )?;
    cx.wait_for("the witness registered after it set", || {
        newer.u32_at(0) == 1
    })?;
    wait_fault_warning(cx, &name, 1)?;
    tracefs::set_enabled(&name, false)?;
    cx.wait_for("both witness words cleared", || {
        older.u32_at(0) == 0 && newer.u32_at(0) == 0
    })?;
    Ok(())
}

/// The fault worker's warning is printed *before* it takes event_mutex and clears the
/// registration's FAULTING bit (user_event_enabler_fault_fixup); a transition that comes in
/// between finds FAULTING set and is skipped for that registration, and nothing retries it.
/// So the first transition after a warning may be lost even though the registration lives:
/// the known kernel bug `lost-update` (docs/kernel-bugs/lost-update.md), which
/// [`enable_in_failed_fault_window`] pins where it happens every time (`6.12-slowfault`).
/// On the stock kernels it is a rare race; these helpers tell it apart from a kernel that
/// never writes the word again, so that the scenarios about something else stay deterministic.
const DROPPED_NOTE: &str = "the first enable after the failed fault was dropped: it came while \
     the registration was still FAULTING (the worker prints its warning before clearing that)";

/// Whether the page at `p` is mapped in (mincore), without touching it.
pub(super) fn resident(p: *const u8) -> Result<bool, Stop> {
    let mut v = 0u8;
    let r = unsafe { libc::mincore(p as *mut _, 4096, &mut v) };
    check_eq!(r, 0, "mincore: {}", std::io::Error::last_os_error());
    Ok(v & 1 != 0)
}

/// `cond` did not hold after the enable: re-flip the event (disable, enable) up to three
/// times, each waiting the poll deadline. If a later enable reaches the word, the first was
/// lost in the FAULTING window (noted); if none does, says whether the registration is still
/// there (REG of its (addr, bit) is EADDRINUSE) and fails.
pub(super) fn retry_enable(
    cx: &mut Ctx,
    name: &str,
    what: &str,
    (addr, size, bit): (u64, u8, u8),
    mut cond: impl FnMut() -> bool,
) -> R {
    let queue_failures = kmsg_count("user_events: Unable to queue fault handler")?;
    for attempt in 1..=3 {
        tracefs::set_enabled(name, false)?;
        tracefs::set_enabled(name, true)?;
        if let Ok(d) = poll_until(cx.poll_deadline, &mut cond) {
            check_eq!(
                kmsg_count("user_events: Unable to queue fault handler")?,
                queue_failures,
                "\"Unable to queue fault handler\" warnings (another way to lose an update)"
            );
            cx.note(format!(
                "{DROPPED_NOTE}; re-flip #{attempt} reached it: {what}: {} us",
                d.as_micros()
            ));
            return Ok(());
        }
    }
    let other = cx.event_name();
    match uapi::reg(cx.fd(), &other, addr, size, bit, 0) {
        Err(Errno(libc::EADDRINUSE)) => fail!(
            "{what}: not seen after the enable and 3 more disable/enable pairs ({} ms each), \
             though the registration is still there (REG of its (addr, bit) is EADDRINUSE): \
             the kernel never writes this word again",
            cx.poll_deadline.as_millis()
        ),
        Ok(_) => fail!(
            "{what}: not seen after 4 enables; the registration is gone (REG of its \
             (addr, bit) succeeded): the failed fault dropped it"
        ),
        Err(e) => fail!(
            "{what}: not seen after 4 enables; REG of its (addr, bit) probing for it gives {e}"
        ),
    }
}

fn remap_fixed_gets_next_change(cx: &mut Ctx) -> R {
    let (ptr, len) = Mapping::anon(libc::MAP_PRIVATE)?.forget();
    let name = cx.event_name();
    let word = ptr.wrapping_add(8);
    cx.reg(&name, word, 8, 33)?;
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit 33 set while mapped", || read64(word) == 1 << 33)?;
    unsafe { libc::munmap(ptr as *mut _, len) };
    // A transition with nothing mapped: the worker's write fails, the registration stays.
    // (A disable, so that no earlier fault can still hold the registration FAULTING.)
    tracefs::set_enabled(&name, false)?;
    wait_fault_warning(cx, &name, 1)?;
    let other = cx.event_name();
    check_eq!(
        uapi::reg(cx.fd(), &other, word as u64, 8, 33, 0).err(),
        Some(Errno(libc::EADDRINUSE)),
        "REG of the (addr, bit) after a failed fault (is the registration kept?)"
    );
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED;
    let again = Mapping::map_at(ptr, len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0)?;
    check!(
        !resident(ptr)?,
        "the fresh MAP_FIXED page is already mapped in"
    );
    // Not present: the enable's write must go through the fault worker, which faults the
    // page in and then writes. The word is not read before the page is in (a read would map
    // the zero page), so that "in but not written" and "never faulted in" stay apart.
    tracefs::set_enabled(&name, true)?;
    let what = "bit 33 set in the page mapped at the old address";
    let mut written = || resident(ptr).unwrap_or(false) && again.u64_at(8) == 1 << 33;
    if let Ok(d) = poll_until(cx.poll_deadline, &mut written) {
        cx.note(format!(
            "{what} (by the fault worker): {} us",
            d.as_micros()
        ));
        return Ok(());
    }
    if resident(ptr)? {
        fail!(
            "the fault worker faulted the page at the old address in but never wrote bit 33 \
             (word {:#x} after {} ms): no rewrite after a successful fault-in",
            again.u64_at(8),
            cx.poll_deadline.as_millis()
        );
    }
    // Nothing faulted it in: the enable queued no fault, most likely because it came while
    // the failed fault still held the registration FAULTING (docs/kernel-bugs/lost-update.md).
    // That is long over now: re-flip with the page still absent, so that the write again has
    // to go through the worker, which is what this scenario checks.
    tracefs::set_enabled(&name, false)?;
    tracefs::set_enabled(&name, true)?;
    if let Ok(d) = poll_until(cx.poll_deadline, &mut written) {
        cx.note(format!(
            "{DROPPED_NOTE}; a re-flip with the page still absent reached it through the fault \
             worker: {what}: {} us",
            d.as_micros()
        ));
        return Ok(());
    }
    if resident(ptr)? {
        fail!(
            "after a re-flip, the fault worker faulted the page at the old address in but never \
             wrote bit 33 (word {:#x} after {} ms): no rewrite after a successful fault-in",
            again.u64_at(8),
            cx.poll_deadline.as_millis()
        );
    }
    // Still nothing faulted in. Make the page present and writable (another word of it), so
    // that a transition that gets through writes it at once, and re-flip.
    write32(again.addr(0), 0);
    retry_enable(cx, &name, what, (word as u64, 8, 33), || {
        again.u64_at(8) == 1 << 33
    })
}

/// How long `kernel-configs/patches/6.12-fault-window-amplifier.patch` holds FAULTING after
/// a failed fault-in (the stock kernels hold it for microseconds).
const AMPLIFIED_WINDOW: Duration = Duration::from_millis(1500);

/// Where the enable goes: a fifteenth of the amplified window after the fault warning. On a
/// stock kernel the worker has cleared FAULTING long before (it does so microseconds after
/// the warning), so the enable meets no fault in flight; on the amplified kernel it always
/// does. This fixed pause places the enable in (or after) the window; it waits for no
/// update of the kernel's.
const INTO_WINDOW: Duration = Duration::from_millis(100);

/// The lost update of docs/kernel-bugs/lost-update.md, made deterministic by the amplified
/// kernel `6.12-slowfault`: an enable skipped with -EBUSY while a failed fault is in flight
/// must still reach the word once the page is back.
fn enable_in_failed_fault_window(cx: &mut Ctx) -> R {
    let (ptr, len) = Mapping::anon(libc::MAP_PRIVATE)?.forget();
    let name = cx.event_name();
    cx.reg(&name, ptr, 4, 5)?;
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit 5 set while mapped", || read64(ptr) as u32 == 1 << 5)?;
    unsafe { libc::munmap(ptr as *mut _, len) };
    // A disable with nothing mapped: the write fails, the worker's fault-in fails too.
    tracefs::set_enabled(&name, false)?;
    wait_fault_warning(cx, &name, 1)?;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED;
    let again = Mapping::map_at(ptr, len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0)?;
    std::thread::sleep(INTO_WINDOW);
    tracefs::set_enabled(&name, true)?;
    // With the kernel fixed, the worker re-issues the skipped enable when its window ends.
    let deadline = cx.poll_deadline + AMPLIFIED_WINDOW;
    match poll_until(deadline, &mut || again.u32_at(0) == 1 << 5) {
        Ok(d) => {
            cx.note(format!(
                "bit 5 set in the page mapped again, {} ms after the enable",
                d.as_millis()
            ));
            Ok(())
        }
        Err(waited) => crate::symptom!(
            "lost-update",
            "the enable was lost: {} ms after it, the word of the page mapped again at the \
             address is {:#x} while the event is enabled (it came {} ms after the fault \
             warning, while the failed fault could still hold the registration FAULTING)",
            waited.as_millis(),
            again.u32_at(0),
            INTO_WINDOW.as_millis()
        ),
    }
}

fn unreg_unmapped(cx: &mut Ctx) -> R {
    let (ptr, len) = Mapping::anon(libc::MAP_PRIVATE)?.forget();
    let name = cx.event_name();
    cx.reg(&name, ptr, 4, 2)?;
    unsafe { libc::munmap(ptr as *mut _, len) };
    let other = cx.event_name();
    check_eq!(
        uapi::reg(cx.fd(), &other, ptr as u64, 4, 2, 0).err(),
        Some(Errno(libc::EADDRINUSE)),
        "REG of the unmapped (addr, bit)"
    );
    check_eq!(
        uapi::unreg(cx.fd(), ptr as u64, 2).err(),
        Some(Errno(libc::EFAULT)),
        "UNREG of the unmapped (addr, bit)"
    );
    check_eq!(
        uapi::unreg(cx.fd(), ptr as u64, 2).err(),
        Some(Errno(libc::ENOENT)),
        "second UNREG"
    );
    Ok(())
}

fn mprotect_readonly(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    cx.reg(&name, page.addr(0), 4, 5)?;
    protect(&page, libc::PROT_READ)?;
    tracefs::set_enabled(&name, true)?;
    wait_fault_warning(cx, &name, 1)?;
    check_eq!(
        page.u32_at(0),
        0,
        "read-only word once the fault worker gave up"
    );
    protect(&page, libc::PROT_READ | libc::PROT_WRITE)?;
    tracefs::set_enabled(&name, false)?;
    tracefs::set_enabled(&name, true)?;
    let what = "bit 5 set once the page is writable again";
    if let Ok(d) = poll_until(cx.poll_deadline, &mut || page.u32_at(0) == 1 << 5) {
        cx.note(format!("{what}: {} us", d.as_micros()));
        return Ok(());
    }
    retry_enable(cx, &name, what, (page.addr(0) as u64, 4, 5), || {
        page.u32_at(0) == 1 << 5
    })
}

fn madv_dontneed_before_enable(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    cx.reg(&name, page.addr(0), 4, 31)?;
    // The scenario requires madvise, which the runner has probed: any error is a failure.
    if unsafe { libc::madvise(page.ptr as *mut _, page.len, libc::MADV_DONTNEED) } != 0 {
        crate::fail!("madvise(MADV_DONTNEED): {}", Errno::last());
    }
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit 31 set in the refaulted page", || {
        page.u32_at(0) == 1 << 31
    })?;
    Ok(())
}

fn protect(page: &Mapping, prot: i32) -> R {
    check_eq!(
        unsafe { libc::mprotect(page.ptr as *mut _, page.len, prot) },
        0,
        "mprotect"
    );
    Ok(())
}

/// Pages per run of [`written_pages_freed`]: 16 MiB of the guest's 512.
const PAGES: usize = 4096;

/// Free pages, counting those on the per-CPU lists (a freed page may wait there, out of
/// MemFree), and pins held (nr_foll_pin_acquired - nr_foll_pin_released), for the message.
fn free_and_pins() -> Result<(i64, i64), Stop> {
    let zoneinfo = std::fs::read_to_string("/proc/zoneinfo")?;
    let mut free = 0;
    for l in zoneinfo.lines().map(str::trim) {
        if let Some(n) = l
            .strip_prefix("pages free")
            .or_else(|| l.strip_prefix("count:"))
        {
            free += n.trim().parse::<i64>().unwrap_or(0);
        }
    }
    let vmstat = std::fs::read_to_string("/proc/vmstat")?;
    let counter = |key: &str| -> i64 {
        vmstat
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    };
    Ok((
        free,
        counter("nr_foll_pin_acquired") - counter("nr_foll_pin_released"),
    ))
}

/// In a child: maps [`PAGES`] pages, touches each, and with `register` registers a word in
/// each (the kernel pins the page, writes the word, unpins it); then unmaps them and exits.
/// Returns the pages the system lost over it, and the pins it left held.
fn pages_lost(fd: BorrowedFd<'_>, name: &str, register: bool) -> Result<(i64, i64), Stop> {
    let before = free_and_pins()?;
    fork(|| {
        let pages =
            Mapping::anon_pages(PAGES, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE)?;
        // Base pages: a pin leaked on a huge page would hold 512 of them, and freed huge
        // pages sit on the per-CPU lists in bulk. (EINVAL without THP: base pages anyway.)
        unsafe { libc::madvise(pages.ptr as *mut _, pages.len, libc::MADV_NOHUGEPAGE) };
        for i in 0..PAGES {
            write32(pages.addr(i * 4096), 0);
        }
        if register {
            for i in 0..PAGES {
                uapi::reg(fd, name, pages.addr(i * 4096) as u64, 4, 0, 0)?;
            }
        }
        drop(pages);
        Ok(())
    })?
    .join(Duration::from_secs(10))?;
    let after = free_and_pins()?;
    Ok((before.0 - after.0, after.1 - before.1))
}

fn written_pages_freed(cx: &mut Ctx) -> R {
    let name = cx.event_name();
    // The event and the fd's reference to it exist before either run, so that neither
    // counts their allocation.
    let first = Mapping::anon(libc::MAP_PRIVATE)?;
    cx.reg(&name, first.addr(0), 4, 0)?;
    let t = Instant::now();
    let (plain, _) = pages_lost(cx.fd(), &name, false)?;
    let (written, pins) = pages_lost(cx.fd(), &name, true)?;
    cx.note(format!(
        "pages lost: {written} with {PAGES} registrations, {plain} without; pins held \
         {pins}; {} ms",
        t.elapsed().as_millis()
    ));
    check!(
        written - plain < PAGES as i64 / 2,
        "{written} pages are not free after a child registered a word in each of {PAGES} \
         pages, unmapped them and exited ({plain} without the registrations): the kernel \
         holds the pages it wrote ({pins} pins taken and not released)"
    );
    Ok(())
}
