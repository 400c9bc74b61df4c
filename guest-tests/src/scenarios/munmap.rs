//! Enable words whose memory goes away or becomes read-only after REG: the kernel's write
//! fails quietly (a pr_warn from the fault worker), the registration is kept, and the
//! process goes on working.

use result_channel::Feature;

use crate::framework::{kmsg_count, Ctx, Family, Mapping, Scenario, Stop, R, REMOTE_WRITE};
use crate::uapi::{self, Errno};
use crate::{check_eq, tracefs};

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
        "unreg_unmapped",
        "the (addr, bit) stays taken after munmap (EADDRINUSE); UNREG gives EFAULT, then ENOENT",
        unreg_unmapped,
    ).fault_warnings(false),
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
];

pub const FAMILY: Family = Family::new("munmap", SCENARIOS)
    .requires(REMOTE_WRITE)
    .fault_warnings();

/// Waits for the fault worker's "user_events: Fault for mm: ... event: NAME" warning, which
/// ends its (failed) attempt to write the word.
fn wait_fault_warning(cx: &mut Ctx, name: &str, nth: usize) -> R {
    let needle = format!("event: {name}\n");
    let mut err = None;
    cx.wait_for(&format!("fault warning #{nth} for {name}"), || {
        kmsg_count(&needle).map(|n| n >= nth).unwrap_or_else(|e| {
            err = Some(e);
            true
        })
    })?;
    err.map_or(Ok(()), Err)
}

fn enable_after_munmap(cx: &mut Ctx) -> R {
    cx.require_remote_write()?;
    let (gone, witness) = (
        Mapping::anon(libc::MAP_PRIVATE)?,
        Mapping::anon(libc::MAP_PRIVATE)?,
    );
    let name = cx.event_name();
    cx.reg(&name, gone.addr(0), 4, 0)?;
    cx.reg(&name, witness.addr(0), 4, 0)?;
    drop(gone);
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("witness word set", || witness.u32_at(0) == 1)?;
    wait_fault_warning(cx, &name, 1)?;
    tracefs::set_enabled(&name, false)?;
    cx.wait_for("witness word cleared", || witness.u32_at(0) == 0)?;
    Ok(())
}

fn remap_fixed_gets_next_change(cx: &mut Ctx) -> R {
    cx.require_remote_write()?;
    let (ptr, len) = Mapping::anon(libc::MAP_PRIVATE)?.forget();
    let name = cx.event_name();
    cx.reg(&name, ptr.wrapping_add(8), 8, 33)?;
    unsafe { libc::munmap(ptr as *mut _, len) };
    // A transition with nothing mapped: the worker's write fails, the registration stays.
    tracefs::set_enabled(&name, true)?;
    wait_fault_warning(cx, &name, 1)?;
    tracefs::set_enabled(&name, false)?;
    // The disable fails the same way. Until its worker is done, an enable that finds the
    // registration still FAULTING is skipped, and a fault that failed before the remap
    // rewrites nothing: map only once that worker has given up.
    wait_fault_warning(cx, &name, 2)?;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED;
    let again = Mapping::map_at(ptr, len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0)?;
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit 33 set in the page mapped at the old address", || {
        again.u64_at(8) == 1 << 33
    })?;
    Ok(())
}

fn unreg_unmapped(cx: &mut Ctx) -> R {
    cx.require_remote_write()?;
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
    cx.require_remote_write()?;
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
    cx.wait_for("bit 5 set once the page is writable again", || {
        page.u32_at(0) == 1 << 5
    })?;
    Ok(())
}

fn madv_dontneed_before_enable(cx: &mut Ctx) -> R {
    cx.require_remote_write()?;
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    cx.reg(&name, page.addr(0), 4, 31)?;
    if unsafe { libc::madvise(page.ptr as *mut _, page.len, libc::MADV_DONTNEED) } != 0 {
        let e = Errno::last();
        if e == Errno(libc::ENOSYS) {
            return Err(Stop::Ignore {
                missing: Feature::Madvise,
                found: "madvise gives ENOSYS (kernel without CONFIG_ADVISE_SYSCALLS)".into(),
            });
        }
        crate::fail!("madvise(MADV_DONTNEED): {e}");
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
