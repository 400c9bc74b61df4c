//! Enable words in MAP_SHARED memory: the kernel writes the one page every mapper sees, so
//! a write by any registration (or an UNREG in another process) is visible to all of them.

use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use crate::framework::{
    fork, pread, tmpfs_file, wait_until, Ctx, Family, Mapping, Pipe, Scenario, R, REMOTE_WRITE,
};
use crate::{check_eq, tracefs, uapi};

const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "anon_follows_ftrace",
        "a word in a MAP_SHARED anonymous page gets its bit on ftrace enable and loses it on disable",
        anon_follows_ftrace,
    ),
    Scenario::new(
        "anon_follows_perf",
        "opening a perf tracepoint event sets the bit; closing the perf fd clears it",
        anon_follows_perf,
    ),
    Scenario::new(
        "bit_means_any_probe",
        "with ftrace and perf both attached, the bit stays set until the last of them detaches",
        bit_means_any_probe,
    ),
    Scenario::new(
        "tmpfs_file_written_through",
        "a word in a MAP_SHARED tmpfs file mapping is updated in the file itself (read() sees the bit)",
        tmpfs_file_written_through,
    ),
    Scenario::new(
        "fork_both_see_changes",
        "after fork, parent and child both see every enable and disable in a shared word",
        fork_both_see_changes,
    )
    .fault_worker(true),
    Scenario::new(
        "child_unreg_clears_parent_view",
        "a child's DIAG_IOCSUNREG clears the shared bit the parent sees, until the next transition",
        child_unreg_clears_parent_view,
    ),
];

pub const FAMILY: Family = Family::new("shared", SCENARIOS).requires(REMOTE_WRITE);

const STEP: Duration = Duration::from_secs(10);

fn anon_follows_ftrace(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_SHARED)?;
    let name = cx.event_name();
    cx.reg(&name, page.addr(8), 8, 63)?;
    check_eq!(page.u64_at(8), 0, "word after REG of a disabled event");
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit 63 set after enable", || page.u64_at(8) == 1 << 63)?;
    tracefs::set_enabled(&name, false)?;
    cx.wait_for("bit 63 cleared after disable", || page.u64_at(8) == 0)?;
    Ok(())
}

fn anon_follows_perf(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_SHARED)?;
    let name = cx.event_name();
    cx.reg(&name, page.addr(0), 4, 5)?;
    let perf = uapi::perf_open_tracepoint(tracefs::event_id(&name)?)?;
    cx.wait_for("bit 5 set after perf open", || page.u32_at(0) == 1 << 5)?;
    drop(perf);
    cx.wait_for("bit 5 cleared after perf close", || page.u32_at(0) == 0)?;
    Ok(())
}

fn bit_means_any_probe(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_SHARED)?;
    let name = cx.event_name();
    cx.reg(&name, page.addr(0), 4, 0)?;
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit set after ftrace enable", || page.u32_at(0) == 1)?;
    let perf = uapi::perf_open_tracepoint(tracefs::event_id(&name)?)?;
    tracefs::set_enabled(&name, false)?;
    // The page is present and writable, so the detach's update pass wrote this word before
    // the write() to `enable` returned: a wrong clear is already visible. The short window
    // after a control covers a kernel that defers it to the fault worker.
    cx.never_after(
        "bit cleared while perf is still attached",
        Duration::ZERO,
        || page.u32_at(0) != 1,
    )?;
    drop(perf);
    cx.wait_for("bit cleared after the last probe (perf) detached", || {
        page.u32_at(0) == 0
    })?;
    Ok(())
}

fn tmpfs_file_written_through(cx: &mut Ctx) -> R {
    let file = tmpfs_file(&[0u8; 4096])?;
    let map = Mapping::map(
        4096,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED,
        file.as_raw_fd(),
        0,
    )?;
    let name = cx.event_name();
    cx.reg(&name, map.addr(16), 4, 2)?;
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit 2 set in the mapping", || map.u32_at(16) == 1 << 2)?;
    check_eq!(
        pread(file.as_fd(), 4, 16)?,
        (1u32 << 2).to_ne_bytes().to_vec(),
        "word as read() from the file"
    );
    tracefs::set_enabled(&name, false)?;
    cx.wait_for("bit 2 cleared in the mapping", || map.u32_at(16) == 0)?;
    check_eq!(
        pread(file.as_fd(), 4096, 0)?,
        vec![0u8; 4096],
        "file after disable"
    );
    Ok(())
}

fn fork_both_see_changes(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_SHARED)?;
    let name = cx.event_name();
    cx.reg(&name, page.addr(0), 4, 7)?;
    let (to_child, to_parent) = (Pipe::new()?, Pipe::new()?);
    let deadline = cx.poll_deadline;
    let child = fork(|| {
        for (want, tag) in [(1u32 << 7, b'1'), (0, b'0')] {
            to_child.expect(tag, STEP)?;
            wait_until(&format!("child sees {want:#x}"), deadline, || {
                page.u32_at(0) == want
            })?;
            to_parent.send(&[tag])?;
        }
        Ok(())
    })?;
    let parent = (|| {
        for (on, want, tag) in [(true, 1u32 << 7, b'1'), (false, 0, b'0')] {
            tracefs::set_enabled(&name, on)?;
            cx.wait_for(&format!("parent sees {want:#x}"), || page.u32_at(0) == want)?;
            to_child.send(&[tag])?;
            to_parent.expect(tag, STEP)?;
        }
        Ok(())
    })();
    child.join_with(parent, STEP)
}

fn child_unreg_clears_parent_view(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_SHARED)?;
    let name = cx.event_name();
    cx.reg(&name, page.addr(0), 4, 1)?;
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit set after enable", || page.u32_at(0) == 2)?;
    let (fd, addr) = (cx.fd(), page.addr(0) as u64);
    fork(|| Ok(uapi::unreg(fd, addr, 1)?))?.join(STEP)?;
    // UNREG clears synchronously, and the event is still enabled: only the UNREG did this.
    check_eq!(page.u32_at(0), 0, "parent's view after the child's UNREG");
    tracefs::set_enabled(&name, false)?;
    tracefs::set_enabled(&name, true)?;
    cx.wait_for(
        "parent's registration sets the bit again on the next enable",
        || page.u32_at(0) == 2,
    )?;
    Ok(())
}
