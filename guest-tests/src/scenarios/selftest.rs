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
