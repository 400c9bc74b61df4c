//! What fork does to registrations: a fork child gets a copy of every registration (and its
//! own address space to apply them to); CLONE_VM children share the parent's.

use std::time::Duration;

use crate::framework::{
    clone_vm, fork, wait_until, Ctx, Family, Mapping, Pipe, Scenario, R, REMOTE_WRITE,
};
use crate::uapi::{self, Errno};
use crate::{check, check_eq, tracefs};

const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "child_inherits_registration",
        "a fork child holds a copy of the parent's (addr, bit): re-REG is EADDRINUSE, UNREG works once",
        child_inherits_registration,
    ),
    Scenario::new(
        "later_registrations_stay_per_process",
        "a bit registered only by the child never appears in the parent's word, and vice versa",
        later_registrations_stay_per_process,
    ),
    Scenario::new(
        "child_unreg_keeps_parent",
        "a child's UNREG leaves the parent's private word and registration as they were",
        child_unreg_keeps_parent,
    )
    .fault_worker(true),
    Scenario::new(
        "vfork_shares_registrations",
        "a vfork child shares the parent's registrations: its REG of a taken (addr, bit) is EADDRINUSE, its new one lives on",
        vfork_shares_registrations,
    ),
    Scenario::new(
        "clone_vm_child_unreg_is_shared",
        "a CLONE_VM child's UNREG removes the parent's registration (shared user_event_mm)",
        clone_vm_child_unreg_is_shared,
    ),
];

pub const FAMILY: Family = Family::new("fork", SCENARIOS).requires(REMOTE_WRITE);

const STEP: Duration = Duration::from_secs(10);

fn child_inherits_registration(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    cx.reg(&name, page.addr(0), 4, 4)?;
    let other = cx.event_name();
    let (fd, addr) = (cx.fd(), page.addr(0) as u64);
    fork(|| {
        check_eq!(
            uapi::reg(fd, &other, addr, 4, 4, 0).err(),
            Some(Errno(libc::EADDRINUSE)),
            "child's REG of the inherited (addr, bit)"
        );
        uapi::unreg(fd, addr, 4)?;
        check_eq!(
            uapi::unreg(fd, addr, 4).err(),
            Some(Errno(libc::ENOENT)),
            "child's second UNREG"
        );
        Ok(())
    })?
    .join(STEP)?;
    // The parent's own registration is untouched by the child's UNREG.
    check_eq!(
        uapi::reg(fd, &other, addr, 4, 4, 0).err(),
        Some(Errno(libc::EADDRINUSE)),
        "parent's re-REG after the child's UNREG"
    );
    Ok(())
}

fn later_registrations_stay_per_process(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let word = page.addr(0);
    let (both, child_only, parent_only) = (cx.event_name(), cx.event_name(), cx.event_name());
    cx.reg(&both, word, 4, 0)?;
    let (to_child, to_parent) = (Pipe::new()?, Pipe::new()?);
    let (fd, deadline) = (cx.fd(), cx.poll_deadline);
    let child = fork(|| {
        uapi::reg(fd, &child_only, word as u64, 4, 1, 0)?;
        to_parent.send(b"r")?;
        wait_until("child's word shows bits 0 and 1", deadline, || {
            page.u32_at(0) == 0b011
        })?;
        to_parent.send(b"s")?;
        to_child.expect(b'd', STEP)?;
        check_eq!(
            page.u32_at(0),
            0b011,
            "child's word once the parent has seen its own update"
        );
        Ok(())
    })?;
    let parent = (|| {
        to_parent.expect(b'r', STEP)?;
        cx.reg(&parent_only, word, 4, 2)?;
        for n in [&both, &child_only, &parent_only] {
            tracefs::set_enabled(n, true)?;
        }
        cx.wait_for("parent's word shows bits 0 and 2", || {
            page.u32_at(0) == 0b101
        })?;
        to_parent.expect(b's', STEP)?;
        check_eq!(
            page.u32_at(0),
            0b101,
            "parent's word once the child has seen its own update"
        );
        to_child.send(b"d")
    })();
    child.join_with(parent, STEP)
}

fn child_unreg_keeps_parent(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    cx.reg(&name, page.addr(0), 4, 6)?;
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit 6 set before fork", || page.u32_at(0) == 1 << 6)?;
    let (to_child, to_parent) = (Pipe::new()?, Pipe::new()?);
    let (fd, addr) = (cx.fd(), page.addr(0) as u64);
    let child = fork(|| {
        uapi::unreg(fd, addr, 6)?;
        check_eq!(page.u32_at(0), 0, "child's word right after its UNREG");
        to_parent.send(b"u")?;
        to_child.expect(b'e', STEP)?;
        check_eq!(
            page.u32_at(0),
            0,
            "child's word after the parent saw a disable and enable"
        );
        Ok(())
    })?;
    let parent = (|| {
        to_parent.expect(b'u', STEP)?;
        check_eq!(
            page.u32_at(0),
            1 << 6,
            "parent's word after the child's UNREG"
        );
        tracefs::set_enabled(&name, false)?;
        cx.wait_for("parent's bit cleared on disable", || page.u32_at(0) == 0)?;
        tracefs::set_enabled(&name, true)?;
        cx.wait_for("parent's bit set on enable", || page.u32_at(0) == 1 << 6)?;
        to_child.send(b"e")
    })();
    child.join_with(parent, STEP)
}

fn vfork_shares_registrations(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let (taken, added) = (cx.event_name(), cx.event_name());
    cx.reg(&taken, page.addr(0), 4, 0)?;
    let (fd, addr) = (cx.fd(), page.addr(0) as u64);
    let (mut reg_taken, mut reg_new) = (Ok(0), Ok(0));
    let status = clone_vm(true, &mut || {
        reg_taken = uapi::reg(fd, &added, addr, 4, 0, 0);
        reg_new = uapi::reg(fd, &added, addr, 4, 1, 0);
        0
    })?;
    check_eq!(status, 0, "vfork child's exit status");
    check_eq!(
        reg_taken.err(),
        Some(Errno(libc::EADDRINUSE)),
        "vfork child's REG of the parent's (addr, bit)"
    );
    check!(reg_new.is_ok(), "vfork child's REG of bit 1: {reg_new:?}");
    tracefs::set_enabled(&added, true)?;
    cx.wait_for(
        "bit 1, registered by the exited vfork child, set on enable",
        || page.u32_at(0) == 1 << 1,
    )?;
    uapi::unreg(cx.fd(), addr, 1)?;
    Ok(())
}

fn clone_vm_child_unreg_is_shared(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    cx.reg(&name, page.addr(0), 4, 3)?;
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit 3 set", || page.u32_at(0) == 1 << 3)?;
    let (fd, addr) = (cx.fd(), page.addr(0) as u64);
    let mut unreg = Ok(());
    let status = clone_vm(false, &mut || {
        unreg = uapi::unreg(fd, addr, 3);
        0
    })?;
    check_eq!(status, 0, "CLONE_VM child's exit status");
    check_eq!(
        unreg,
        Ok(()),
        "CLONE_VM child's UNREG of the parent's registration"
    );
    check_eq!(
        page.u32_at(0),
        0,
        "shared word right after the child's UNREG"
    );
    check_eq!(
        uapi::unreg(fd, addr, 3).err(),
        Some(Errno(libc::ENOENT)),
        "parent's UNREG after the child's"
    );
    Ok(())
}
