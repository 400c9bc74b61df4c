//! The `stress` family: hammers the asynchronous paths (fault worker, fork duplication, exit
//! teardown, munmap/remap) for a bounded time and reports counts. Off by default (`cargo
//! xtask test --stress`); meant for the debug kernel, whose checkers turn a race into a splat
//! that the console watch reports against the scenario.
//!
//! Each ends by checking that the kernel converged: once the flipping stops, every word
//! still registered must show the event's final state.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::framework::{fork, Ctx, Family, Mapping, Scenario, R, REMOTE_WRITE};
use crate::{check, tracefs, uapi};

const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "fork_exit_while_flipping",
        "children fork and exit while the event flips; the parent's private word converges",
        fork_exit_while_flipping,
    ),
    Scenario::new(
        "threads_reg_unreg_while_flipping",
        "threads register and unregister their own bits on one page while the event flips",
        threads_reg_unreg_while_flipping,
    ),
    Scenario::new(
        "munmap_remap_while_flipping",
        "the word's page is unmapped and remapped in a loop while the event flips",
        munmap_remap_while_flipping,
    )
    .fault_warnings(true),
    Scenario::new(
        "many_events_one_page",
        "64 events on the 64 bits of one word: every bit follows its own event",
        many_events_one_page,
    ),
];

pub const FAMILY: Family = Family::new("stress", SCENARIOS)
    .requires(REMOTE_WRITE)
    .optional()
    .alone();

/// How long each stress scenario hammers (the guest's scenario limit must exceed it).
const HAMMER: Duration = Duration::from_millis(1500);

/// Flips `event` on and off from a thread until `stop`; counts the flips.
fn flipper<'a>(
    scope: &'a std::thread::Scope<'a, '_>,
    event: &'a str,
    stop: &'a AtomicBool,
    flips: &'a AtomicU64,
) {
    scope.spawn(move || {
        let mut on = false;
        while !stop.load(Ordering::Relaxed) {
            on = !on;
            if tracefs::set_enabled(event, on).is_ok() {
                flips.fetch_add(1, Ordering::Relaxed);
            }
        }
        let _ = tracefs::set_enabled(event, false);
    });
}

fn fork_exit_while_flipping(cx: &mut Ctx) -> R {
    cx.require_remote_write()?;
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    cx.reg(&name, page.addr(0), 4, 0)?;
    let (stop, flips, children) = (AtomicBool::new(false), AtomicU64::new(0), AtomicU64::new(0));
    let mut errors = Vec::new();
    std::thread::scope(|s| {
        flipper(s, &name, &stop, &flips);
        let start = Instant::now();
        while start.elapsed() < HAMMER {
            // Each child writes the page (COW) half the time, then exits at once.
            let n = children.load(Ordering::Relaxed);
            match fork(|| {
                if n % 2 == 0 {
                    crate::framework::write32(page.addr(8), 1);
                }
                Ok(())
            })
            .and_then(|c| c.join(Duration::from_secs(10)))
            {
                Ok(()) => {}
                Err(e) => errors.push(format!("{e:?}")),
            }
            children.fetch_add(1, Ordering::Relaxed);
        }
        stop.store(true, Ordering::Relaxed);
    });
    cx.note(format!(
        "{} children, {} flips",
        children.load(Ordering::Relaxed),
        flips.load(Ordering::Relaxed)
    ));
    check!(
        errors.is_empty(),
        "{} child(ren) failed, first: {}",
        errors.len(),
        errors[0]
    );
    cx.wait_for("word converged to disabled", || page.u32_at(0) == 0)?;
    Ok(())
}

fn threads_reg_unreg_while_flipping(cx: &mut Ctx) -> R {
    cx.require_remote_write()?;
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    // The main thread registers first, so threads created now share its registrations.
    cx.reg(&name, page.addr(0), 8, 63)?;
    let (stop, flips, cycles) = (AtomicBool::new(false), AtomicU64::new(0), AtomicU64::new(0));
    let fd = cx.fd();
    let errors = std::sync::Mutex::new(Vec::<String>::new());
    let addr = page.addr(0) as u64;
    std::thread::scope(|s| {
        flipper(s, &name, &stop, &flips);
        for bit in 0..4u8 {
            let (stop, cycles, errors, name) = (&stop, &cycles, &errors, &name);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = uapi::reg(fd, name, addr, 8, bit, 0)
                        .and_then(|_| uapi::unreg(fd, addr, bit));
                    if let Err(e) = r {
                        errors.lock().unwrap().push(format!("bit {bit}: {e}"));
                        return;
                    }
                    cycles.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(HAMMER);
        stop.store(true, Ordering::Relaxed);
    });
    let errors = errors.into_inner().unwrap();
    cx.note(format!(
        "{} reg/unreg cycles, {} flips",
        cycles.load(Ordering::Relaxed),
        flips.load(Ordering::Relaxed)
    ));
    check!(
        errors.is_empty(),
        "{} thread(s) failed, first: {}",
        errors.len(),
        errors[0]
    );
    // Every thread's bit was unregistered (UNREG clears it); bit 63 follows the final disable.
    cx.wait_for("word converged to 0", || page.u64_at(0) == 0)?;
    Ok(())
}

fn munmap_remap_while_flipping(cx: &mut Ctx) -> R {
    cx.require_remote_write()?;
    let (ptr, len) = Mapping::anon(libc::MAP_PRIVATE)?.forget();
    let name = cx.event_name();
    cx.reg(&name, ptr, 4, 5)?;
    let (stop, flips, remaps) = (AtomicBool::new(false), AtomicU64::new(0), AtomicU64::new(0));
    let mut failure = None;
    std::thread::scope(|s| {
        flipper(s, &name, &stop, &flips);
        let start = Instant::now();
        while start.elapsed() < HAMMER {
            unsafe { libc::munmap(ptr as *mut _, len) };
            let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED;
            let p = unsafe {
                libc::mmap(
                    ptr as *mut _,
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    flags,
                    -1,
                    0,
                )
            };
            if p != ptr as *mut _ {
                failure = Some(format!("remap at {ptr:?} gave {p:?}"));
                break;
            }
            remaps.fetch_add(1, Ordering::Relaxed);
        }
        stop.store(true, Ordering::Relaxed);
    });
    cx.note(format!(
        "{} remaps, {} flips",
        remaps.load(Ordering::Relaxed),
        flips.load(Ordering::Relaxed)
    ));
    check!(failure.is_none(), "{}", failure.unwrap_or_default());
    // The registration survived (the kernel keeps it across failed faults): the next
    // transition reaches the page mapped now.
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit 5 set in the last mapping", || {
        crate::framework::read32(ptr) == 1 << 5
    })?;
    tracefs::set_enabled(&name, false)?;
    unsafe { libc::munmap(ptr as *mut _, len) };
    Ok(())
}

fn many_events_one_page(cx: &mut Ctx) -> R {
    cx.require_remote_write()?;
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let names: Vec<String> = (0..64).map(|_| cx.event_name()).collect();
    for (bit, n) in names.iter().enumerate() {
        cx.reg(n, page.addr(0), 8, bit as u8)?;
    }
    let mut want = 0u64;
    // Enable the odd bits, then the even ones, then disable all: each word state is exact.
    for (bit, n) in names.iter().enumerate().filter(|(b, _)| b % 2 == 1) {
        tracefs::set_enabled(n, true)?;
        want |= 1 << bit;
    }
    cx.wait_for("odd bits set", || page.u64_at(0) == want)?;
    for (bit, n) in names.iter().enumerate().filter(|(b, _)| b % 2 == 0) {
        tracefs::set_enabled(n, true)?;
        want |= 1 << bit;
    }
    cx.wait_for("all 64 bits set", || page.u64_at(0) == want)?;
    for n in &names {
        tracefs::set_enabled(n, false)?;
    }
    cx.wait_for("all 64 bits cleared", || page.u64_at(0) == 0)?;
    Ok(())
}
