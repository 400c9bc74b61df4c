//! One event registered at several (addr, bit) in one process: every registration follows
//! the event (user_event_enabler_update writes each enabler of the event in each mm), fork
//! copies all of them, and UNREG removes exactly the one it names.

use std::os::fd::AsFd;
use std::time::Duration;

use crate::framework::{
    fork, wait_until, write32, Ctx, Family, Mapping, Pipe, Scenario, R, REMOTE_WRITE,
};
use crate::uapi::{self, Errno};
use crate::{check_eq, tracefs};

const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "three_registrations_follow",
        "one event at bits 0 and 5 of one u32 and bit 63 of another word: one index, and all three follow enable and disable; a neighbour event's bit does not",
        three_registrations_follow,
    ),
    Scenario::new(
        "fork_child_has_both",
        "after fork the child holds both registrations of an event: each follows; the child's UNREG of one leaves its other and both of the parent's",
        fork_child_has_both,
    )
    .fault_worker(true),
    Scenario::new(
        "unreg_one_keeps_other",
        "UNREG of one of two bits of an event clears that bit only; the other keeps following and keeps the event busy (DEL EBUSY with no fd reference and no tracer); UNREG of it lets the event go",
        unreg_one_keeps_other,
    ),
    Scenario::new(
        "other_events_bits_untouched",
        "a transition of one event leaves another event's bit as the process left it (set by hand, the kernel never writes it); in both orders of the two events",
        other_events_bits_untouched,
    ),
];

pub const FAMILY: Family = Family::new("multi", SCENARIOS).requires(REMOTE_WRITE);

const STEP: Duration = Duration::from_secs(10);

fn three_registrations_follow(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let (name, other) = (cx.event_name(), cx.event_name());
    let i0 = cx.reg(&name, page.addr(0), 4, 0)?;
    let i5 = cx.reg(&name, page.addr(0), 4, 5)?;
    let i63 = cx.reg(&name, page.addr(8), 8, 63)?;
    cx.reg(&other, page.addr(0), 4, 1)?;
    check_eq!(
        (i5, i63),
        (i0, i0),
        "indexes of the second and third REG of the event"
    );
    let words = || (page.u32_at(0), page.u64_at(8));
    for round in 0..2 {
        tracefs::set_enabled(&name, true)?;
        cx.wait_for(&format!("round {round}: bits 0, 5 and 63 set"), || {
            words() == (1 | 1 << 5, 1 << 63)
        })?;
        tracefs::set_enabled(&name, false)?;
        cx.wait_for(&format!("round {round}: all three cleared"), || {
            words() == (0, 0)
        })?;
    }
    for (addr, bit) in [
        (page.addr(0), 0),
        (page.addr(0), 5),
        (page.addr(8), 63),
        (page.addr(0), 1),
    ] {
        uapi::unreg(cx.fd(), addr as u64, bit)?;
    }
    Ok(())
}

fn fork_child_has_both(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    cx.reg(&name, page.addr(0), 4, 2)?;
    cx.reg(&name, page.addr(8), 8, 40)?;
    let both_on = (1u32 << 2, 1u64 << 40);
    let words = || (page.u32_at(0), page.u64_at(8));
    let (to_child, to_parent) = (Pipe::new()?, Pipe::new()?);
    let (fd, deadline) = (cx.fd(), cx.poll_deadline);
    let child = fork(|| {
        for (tag, want) in [(b'1', both_on), (b'0', (0, 0))] {
            to_child.expect(tag, STEP)?;
            wait_until(&format!("child sees {want:x?}"), deadline, || {
                words() == want
            })?;
            to_parent.send(&[tag])?;
        }
        uapi::unreg(fd, page.addr(8) as u64, 40)?;
        check_eq!(
            uapi::unreg(fd, page.addr(8) as u64, 40).err(),
            Some(Errno(libc::ENOENT)),
            "child's second UNREG of bit 40"
        );
        to_parent.send(b"u")?;
        to_child.expect(b'e', STEP)?;
        wait_until("child's remaining bit 2 set", deadline, || {
            page.u32_at(0) == 1 << 2
        })?;
        // Writes are synchronous by now (COW was broken on the first change): the other word
        // would have been written in the same pass.
        check_eq!(
            words(),
            (1 << 2, 0),
            "child's words after its UNREG of bit 40 and an enable"
        );
        to_parent.send(b"e")
    })?;
    let parent = (|| {
        for (on, tag, want) in [(true, b'1', both_on), (false, b'0', (0, 0))] {
            tracefs::set_enabled(&name, on)?;
            cx.wait_for(&format!("parent sees {want:x?}"), || words() == want)?;
            to_child.send(&[tag])?;
            to_parent.expect(tag, STEP)?;
        }
        to_parent.expect(b'u', STEP)?;
        tracefs::set_enabled(&name, true)?;
        cx.wait_for("parent's both bits set after the child's UNREG", || {
            words() == both_on
        })?;
        to_child.send(b"e")?;
        to_parent.expect(b'e', STEP)?;
        tracefs::set_enabled(&name, false)?;
        cx.wait_for("parent's both bits cleared", || words() == (0, 0))
            .map(drop)
    })();
    child.join_with(parent, STEP)
}

fn unreg_one_keeps_other(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    let addr = page.addr(0) as u64;
    // Registered through an fd that is closed before the DELs, and DEL'd with ftrace off:
    // then only the remaining registration can make DEL EBUSY (an fd that registered an
    // event holds a reference of its own, and so does an attached tracer).
    let reg_fd = tracefs::open_data()?;
    uapi::reg(reg_fd.as_fd(), &name, addr, 4, 1, 0)?;
    uapi::reg(reg_fd.as_fd(), &name, addr, 4, 2, 0)?;
    drop(reg_fd);
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bits 1 and 2 set", || page.u32_at(0) == 0b110)?;
    uapi::unreg(cx.fd(), addr, 1)?;
    check_eq!(
        page.u32_at(0),
        0b100,
        "word right after UNREG of bit 1 (event still enabled)"
    );
    tracefs::set_enabled(&name, false)?;
    cx.wait_for("bit 2 cleared on disable", || page.u32_at(0) == 0)?;
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit 2 alone set on enable", || page.u32_at(0) == 0b100)?;
    check_eq!(
        uapi::unreg(cx.fd(), addr, 1).err(),
        Some(Errno(libc::ENOENT)),
        "second UNREG of bit 1"
    );
    tracefs::set_enabled(&name, false)?;
    cx.wait_for("bit 2 cleared on the last disable", || page.u32_at(0) == 0)?;
    check_eq!(
        uapi::del(cx.fd(), &name).err(),
        Some(Errno(libc::EBUSY)),
        "DEL from an fd that never registered it, with no tracer, while bit 2 is registered"
    );
    uapi::unreg(cx.fd(), addr, 2)?;
    // With its last registration gone the event goes: deleted by the kernel once the
    // registration's reference is dropped (after an RCU grace period), or by a DEL.
    let dir = format!("events/user_events/{name}");
    let del_fd = tracefs::open_data()?;
    cx.wait_for(
        "the event gone after the UNREG of its last registration",
        || {
            // A DEL that comes within the grace period is EBUSY, which is no answer yet.
            !tracefs::exists(&dir) || {
                let _ = uapi::del(del_fd.as_fd(), &name);
                !tracefs::exists(&dir)
            }
        },
    )?;
    Ok(())
}

/// The kernel writes an event's bit only at that event's own transitions (and at REG and
/// UNREG of it). Each event's word is set by hand while that event is disabled: a transition
/// of the other event must leave it set. Both orders, since which event the kernel would
/// wrongly revisit can depend on where the two were allocated.
fn other_events_bits_untouched(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let names = [cx.event_name(), cx.event_name()];
    cx.reg(&names[0], page.addr(0), 4, 0)?;
    cx.reg(&names[1], page.addr(4), 4, 0)?;
    for (on, off) in [(0usize, 1usize), (1, 0)] {
        let (on_at, off_at) = (on * 4, off * 4);
        write32(page.addr(off_at), 1);
        // Event `on`'s own write is the control: the same update pass would make the wrong
        // one, so once it is seen a short window is enough.
        for (enable, step) in [(true, "enable"), (false, "disable")] {
            let wrong = format!("event {off}'s hand-set bit changed by event {on}'s {step}");
            tracefs::set_enabled(&names[on], enable)?;
            let control = cx.wait_for_unless(
                &format!(
                    "event {on}'s bit {} on its {step}",
                    if enable { "set" } else { "cleared" }
                ),
                || page.u32_at(on_at) == u32::from(enable),
                &wrong,
                || page.u32_at(off_at) != 1,
            )?;
            cx.never_after(&wrong, control, || page.u32_at(off_at) != 1)?;
        }
        write32(page.addr(off_at), 0);
    }
    uapi::unreg(cx.fd(), page.addr(0) as u64, 0)?;
    uapi::unreg(cx.fd(), page.addr(4) as u64, 0)?;
    Ok(())
}
