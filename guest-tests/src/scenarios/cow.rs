//! Private words after fork are copy-on-write in both processes: the kernel's write in each
//! address space first breaks COW (asynchronously, in the fault worker), so both processes
//! must see every later change, whoever wrote the page first.

use std::time::Duration;

use crate::framework::{
    fork, wait_until, write32, Ctx, Family, Mapping, Pipe, Scenario, R, REMOTE_WRITE,
};
use crate::tracefs;

const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "fork_disabled_untouched",
        "forked while disabled, nobody writes the page: both see enable then disable",
        fork_disabled_untouched,
    ),
    Scenario::new(
        "fork_enabled_untouched",
        "forked while enabled, nobody writes the page: both see disable then enable",
        fork_enabled_untouched,
    ),
    Scenario::new(
        "child_writes_first",
        "the child writes the page before the first change: both still see every change",
        child_writes_first,
    ),
    Scenario::new(
        "parent_writes_first",
        "the parent writes the page before the first change: both still see every change",
        parent_writes_first,
    ),
];

pub const FAMILY: Family = Family::new("cow", SCENARIOS)
    .fault_worker()
    .requires(REMOTE_WRITE);

const STEP: Duration = Duration::from_secs(10);
const BIT: u32 = 1 << 12;
/// Where a process writes to break COW itself: same page, not the enable word.
const SCRATCH: usize = 512;

#[derive(PartialEq)]
enum FirstWriter {
    Nobody,
    Child,
    Parent,
}

/// Registers bit 12 of a private word, forks (with the event enabled or not), lets
/// `first` write the page, then flips the event twice; after each flip both processes wait
/// for the new value before the next one.
fn follow(cx: &mut Ctx, fork_enabled: bool, first: FirstWriter) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    cx.reg(&name, page.addr(0), 4, 12)?;
    if fork_enabled {
        tracefs::set_enabled(&name, true)?;
        cx.wait_for("bit set before fork", || page.u32_at(0) == BIT)?;
    }
    let steps: [(bool, u32); 2] = if fork_enabled {
        [(false, 0), (true, BIT)]
    } else {
        [(true, BIT), (false, 0)]
    };
    let (to_child, to_parent) = (Pipe::new()?, Pipe::new()?);
    let deadline = cx.poll_deadline;
    let child = fork(|| {
        if first == FirstWriter::Child {
            write32(page.addr(SCRATCH), 1);
        }
        to_parent.send(b"r")?;
        for (_, want) in steps {
            to_child.expect(b'f', STEP)?;
            wait_until(&format!("child sees {want:#x}"), deadline, || {
                page.u32_at(0) == want
            })?;
            to_parent.send(b"s")?;
        }
        Ok(())
    })?;
    let parent = (|| {
        to_parent.expect(b'r', STEP)?;
        if first == FirstWriter::Parent {
            write32(page.addr(SCRATCH), 1);
        }
        for (on, want) in steps {
            tracefs::set_enabled(&name, on)?;
            to_child.send(b"f")?;
            cx.wait_for(&format!("parent sees {want:#x}"), || page.u32_at(0) == want)?;
            to_parent.expect(b's', STEP)?;
        }
        Ok(())
    })();
    child.join_with(parent, STEP)
}

fn fork_disabled_untouched(cx: &mut Ctx) -> R {
    follow(cx, false, FirstWriter::Nobody)
}

fn fork_enabled_untouched(cx: &mut Ctx) -> R {
    follow(cx, true, FirstWriter::Nobody)
}

fn child_writes_first(cx: &mut Ctx) -> R {
    follow(cx, false, FirstWriter::Child)
}

fn parent_writes_first(cx: &mut Ctx) -> R {
    follow(cx, true, FirstWriter::Parent)
}
