//! Deliberately broken scenarios for the harness's own tests (`cargo xtask selftest`): each
//! fails in one of the ways a real scenario or kernel can, so the host's reporting of that
//! failure can be checked. Never part of the suite's list.

use std::io::Write;

use crate::framework::{pause, Ctx, Family, Scenario, R};

const SCENARIOS: &[Scenario] = &[
    Scenario::new("segfault", "dereferences a bad pointer", segfault),
    Scenario::new(
        "exits_without_result",
        "exits before reporting",
        exits_without_result,
    ),
    Scenario::new("hangs", "never returns", hangs),
    Scenario::new(
        "garbage_on_channel",
        "writes junk to the result port",
        garbage_on_channel,
    ),
    Scenario::new(
        "kernel_panic",
        "panics the kernel through sysrq",
        kernel_panic,
    ),
    // The two below run side by side (jobs ≥ 2): the panic comes while its neighbour is in
    // flight, so the host cannot tell from the dead VM which of the two is the culprit.
    Scenario::new(
        "in_flight_beside",
        "marks itself running, stays 3 s, passes",
        in_flight_beside,
    )
    .alone(false),
    Scenario::new(
        "panic_beside",
        "panics the kernel while in_flight_beside runs (after 5 s alone)",
        panic_beside,
    )
    .alone(false),
];

/// Alone: each breaks something on purpose (a panic ends every scenario beside it).
pub const FAMILY: Family = Family::new("selftest", SCENARIOS).alone();

fn segfault(_: &mut Ctx) -> R {
    // Address 8: never mapped (mmap_min_addr), so the store faults.
    unsafe { std::ptr::write_volatile(std::ptr::dangling_mut::<u64>(), 1) };
    Ok(())
}

fn exits_without_result(_: &mut Ctx) -> R {
    unsafe { libc::_exit(3) }
}

fn hangs(_: &mut Ctx) -> R {
    loop {
        pause();
    }
}

fn garbage_on_channel(_: &mut Ctx) -> R {
    let mut port = std::fs::OpenOptions::new().write(true).open("/dev/ttyS1")?;
    port.write_all(b"\x01\x02 this is not a record\n")?;
    Ok(())
}

fn kernel_panic(_: &mut Ctx) -> R {
    std::fs::write("/proc/sys/kernel/sysrq", "1")?;
    std::fs::write("/proc/sysrq-trigger", "c")?;
    crate::fail!("the kernel survived sysrq-c")
}

const BESIDE_MARK: &str = "/tmp/selftest-in-flight-beside";

// Fixed waits are right here: nothing asynchronous in the kernel is awaited, only the other
// scenario's presence, and both must behave the same when run alone.
fn in_flight_beside(_: &mut Ctx) -> R {
    std::fs::create_dir_all("/tmp")?;
    std::fs::write(BESIDE_MARK, b"")?;
    std::thread::sleep(std::time::Duration::from_secs(3));
    let _ = std::fs::remove_file(BESIDE_MARK);
    Ok(())
}

fn panic_beside(c: &mut Ctx) -> R {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !std::path::Path::new(BESIDE_MARK).exists() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    kernel_panic(c)
}
