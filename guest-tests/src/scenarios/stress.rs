//! The `stress` family: hammers the asynchronous paths (fault worker, fork duplication, exit
//! teardown, munmap/remap) for a bounded time and reports counts. Off by default (`cargo
//! xtask test --stress`); meant for the debug kernel, whose checkers turn a race into a splat
//! that the console watch reports against the scenario.
//!
//! Each flipping scenario fails if the flipper's tracefs writes fail, and proves progress:
//! the word must be seen set and cleared while the stress runs (a word that never moved
//! would "converge" to disabled trivially). It then checks that the kernel converged: once
//! the flipping stops, every word still registered must show the event's final state.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use crate::framework::{
    fork, pause, poll_until, read32, read64, Ctx, Family, Mapping, Scenario, Stop, R, REMOTE_WRITE,
};
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

/// Flips `event` on and off from a thread until `stop`, then leaves it off. Returns the
/// transitions it made; the first failed `enable` write ends it (and the stress) with an error.
fn flipper<'scope>(
    scope: &'scope Scope<'scope, '_>,
    event: &'scope str,
    stop: &'scope AtomicBool,
) -> ScopedJoinHandle<'scope, Result<u64, String>> {
    scope.spawn(move || {
        let mut transitions = 0u64;
        let mut on = false;
        let set = |on: bool, transitions: &mut u64| {
            tracefs::set_enabled(event, on)
                .map(|()| *transitions += 1)
                .map_err(|e| {
                    stop.store(true, Ordering::Relaxed);
                    format!(
                        "flipper: enable={} after {transitions} transitions: {e}",
                        on as u8
                    )
                })
        };
        while !stop.load(Ordering::Relaxed) {
            on = !on;
            set(on, &mut transitions)?;
        }
        if on {
            set(false, &mut transitions)?;
        }
        Ok(transitions)
    })
}

/// What an observer saw of one bit: how often it went from clear (or unseen) to set, and
/// from set to clear. Converging to "clear" proves nothing unless the bit was seen set.
#[derive(Default, Clone, Copy)]
struct Seen {
    sets: u64,
    clears: u64,
    last: Option<bool>,
}

impl Seen {
    fn sample(&mut self, on: bool) {
        if self.last != Some(on) {
            if on {
                self.sets += 1;
            } else if self.last == Some(true) {
                self.clears += 1;
            }
            self.last = Some(on);
        }
    }
}

/// Samples `bit` of the u64 at `addr` from a thread until `stop` (the word must stay mapped).
fn observer<'scope>(
    scope: &'scope Scope<'scope, '_>,
    addr: usize,
    bit: u32,
    stop: &'scope AtomicBool,
) -> ScopedJoinHandle<'scope, Seen> {
    scope.spawn(move || {
        let mut seen = Seen::default();
        while !stop.load(Ordering::Relaxed) {
            seen.sample(read64(addr as *const u8) & 1 << bit != 0);
            pause();
        }
        seen
    })
}

/// Fails unless the flipper made transitions without error and the word was seen to follow
/// them both ways during the stress; notes the counts.
fn check_progress(cx: &mut Ctx, what: String, flips: Result<u64, String>, seen: Seen) -> R {
    let transitions = flips.map_err(Stop::Fail)?;
    cx.note(format!(
        "{what}, {transitions} transitions, word seen set {} and cleared {} times",
        seen.sets, seen.clears
    ));
    check!(
        transitions >= 2,
        "the flipper made only {transitions} transition(s) in {} ms",
        HAMMER.as_millis()
    );
    check!(
        seen.sets > 0 && seen.clears > 0,
        "the word was seen set {} and cleared {} times during {transitions} transitions: \
         the kernel did not follow the event while under stress",
        seen.sets,
        seen.clears
    );
    Ok(())
}

fn join<T>(h: ScopedJoinHandle<'_, T>, who: &str) -> Result<T, Stop> {
    h.join()
        .map_err(|_| Stop::Fail(format!("the {who} thread panicked")))
}

fn fork_exit_while_flipping(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    cx.reg(&name, page.addr(0), 4, 0)?;
    let stop = AtomicBool::new(false);
    let (mut children, mut errors) = (0u64, Vec::new());
    let addr = page.addr(0) as usize;
    let (flips, seen) = std::thread::scope(|s| {
        let (flips, seen) = (flipper(s, &name, &stop), observer(s, addr, 0, &stop));
        let start = Instant::now();
        while start.elapsed() < HAMMER && !stop.load(Ordering::Relaxed) {
            // Each child writes the page (COW) half the time, then exits at once.
            let n = children;
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
            children += 1;
        }
        stop.store(true, Ordering::Relaxed);
        Ok::<_, Stop>((join(flips, "flipper")?, join(seen, "observer")?))
    })?;
    check_progress(cx, format!("{children} children"), flips, seen)?;
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
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    // The main thread registers first, so threads created now share its registrations.
    cx.reg(&name, page.addr(0), 8, 63)?;
    let (stop, cycles) = (AtomicBool::new(false), AtomicU64::new(0));
    let fd = cx.fd();
    let errors = std::sync::Mutex::new(Vec::<String>::new());
    let addr = page.addr(0) as u64;
    let (flips, seen) = std::thread::scope(|s| {
        let (flips, seen) = (
            flipper(s, &name, &stop),
            observer(s, addr as usize, 63, &stop),
        );
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
        let start = Instant::now();
        while start.elapsed() < HAMMER && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        Ok::<_, Stop>((join(flips, "flipper")?, join(seen, "observer")?))
    })?;
    let errors = errors.into_inner().unwrap();
    let cycles = cycles.load(Ordering::Relaxed);
    check_progress(cx, format!("{cycles} reg/unreg cycles"), flips, seen)?;
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
    let (ptr, len) = Mapping::anon(libc::MAP_PRIVATE)?.forget();
    let name = cx.event_name();
    const BIT: u32 = 1 << 5;
    cx.reg(&name, ptr, 4, 5)?;
    let (stop, mut remaps, mut seen) = (AtomicBool::new(false), 0u64, Seen::default());
    let mut failure = None;
    // A fresh mapping reads 0: only a transition that reaches it sets the bit. Each mapping
    // is watched for a moment (longer until one has been seen set); the first one seen set
    // is kept until a later transition clears it, so both directions are seen reaching
    // remapped pages.
    let (watch, watch_until_set) = (Duration::from_millis(2), Duration::from_millis(20));
    let flips = std::thread::scope(|s| {
        let flips = flipper(s, &name, &stop);
        let start = Instant::now();
        while start.elapsed() < HAMMER && !stop.load(Ordering::Relaxed) {
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
            remaps += 1;
            let mut fresh = Seen::default();
            let t = Instant::now();
            let watch = if seen.sets == 0 {
                watch_until_set
            } else {
                watch
            };
            while t.elapsed() < watch
                || (seen.clears == 0 && fresh.sets > 0 && t.elapsed() < cx.poll_deadline)
            {
                fresh.sample(read32(ptr) & BIT != 0);
                if fresh.clears > 0 {
                    break;
                }
                pause();
            }
            (seen.sets, seen.clears) = (seen.sets + fresh.sets, seen.clears + fresh.clears);
        }
        stop.store(true, Ordering::Relaxed);
        join(flips, "flipper")
    })?;
    check!(failure.is_none(), "{}", failure.unwrap_or_default());
    check_progress(cx, format!("{remaps} remaps"), flips, seen)?;
    // The registration survived (the kernel keeps it across failed faults): the next
    // transition reaches the page mapped now.
    // A fault that failed during the stress may still hold the registration FAULTING (its
    // warning is printed before that is cleared), and drop this enable: re-flip if so.
    tracefs::set_enabled(&name, true)?;
    let what = "bit 5 set in the last mapping";
    match poll_until(cx.poll_deadline, &mut || read32(ptr) == BIT) {
        Ok(d) => cx.note(format!("{what}: {} us", d.as_micros())),
        Err(_) => {
            super::munmap::retry_enable(cx, &name, what, (ptr as u64, 4, 5), || read32(ptr) == BIT)?
        }
    }
    tracefs::set_enabled(&name, false)?;
    unsafe { libc::munmap(ptr as *mut _, len) };
    Ok(())
}

fn many_events_one_page(cx: &mut Ctx) -> R {
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
