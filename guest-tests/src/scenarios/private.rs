//! Enable words in private memory: REG breaks copy-on-write in this process, so the kernel
//! writes this process's own copy and never the page it was copied from.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::framework::{
    pread, read32, tmpfs_file, Ctx, Family, Mapping, Scenario, R, REMOTE_WRITE,
};
use crate::{check_eq, tracefs};

const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "anon_untouched_reg_while_enabled",
        "REG on a never-touched MAP_PRIVATE anonymous page of an enabled event sets the bit at once",
        anon_untouched_reg_while_enabled,
    ),
    Scenario::new(
        "static_data_word",
        "a word in the program's .data follows enable/disable and keeps its other bits",
        static_data_word,
    ),
    Scenario::new(
        "static_bss_word",
        "a u64 word in the program's .bss follows enable/disable (size 8, bit 40)",
        static_bss_word,
    ),
    Scenario::new(
        "tmpfs_file_unchanged",
        "a MAP_PRIVATE tmpfs file mapping gets the bit while read() of the file is unchanged",
        tmpfs_file_unchanged,
    ),
    Scenario::new(
        "tmpfs_file_read_first_unchanged",
        "as tmpfs_file_unchanged, with the page read (mapped from the page cache) before REG",
        tmpfs_file_read_first_unchanged,
    ),
];

pub const FAMILY: Family = Family::new("private", SCENARIOS).requires(REMOTE_WRITE);

/// Other bits set so that a write to the wrong bit, or a whole-word store, shows.
const DATA_PATTERN: u32 = 0x5a5a_0000;
static DATA_WORD: AtomicU32 = AtomicU32::new(DATA_PATTERN);
static BSS_WORD: AtomicU64 = AtomicU64::new(0);

fn anon_untouched_reg_while_enabled(cx: &mut Ctx) -> R {
    // A first registration makes the event exist so that it can be enabled.
    let holder = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    cx.reg(&name, holder.addr(0), 4, 0)?;
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("holder's bit set", || holder.u32_at(0) == 1)?;
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    cx.reg(&name, page.addr(4), 4, 9)?;
    check_eq!(
        page.u32_at(4),
        1 << 9,
        "word right after REG (no poll: REG writes synchronously)"
    );
    tracefs::set_enabled(&name, false)?;
    cx.wait_for("bit cleared after disable", || page.u32_at(4) == 0)?;
    Ok(())
}

fn static_data_word(cx: &mut Ctx) -> R {
    let word = DATA_WORD.as_ptr() as *const u8;
    let name = cx.event_name();
    cx.reg(&name, word, 4, 3)?;
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit 3 set in .data", || {
        read32(word) == DATA_PATTERN | 1 << 3
    })?;
    tracefs::set_enabled(&name, false)?;
    cx.wait_for("bit 3 cleared in .data", || read32(word) == DATA_PATTERN)?;
    Ok(())
}

fn static_bss_word(cx: &mut Ctx) -> R {
    let name = cx.event_name();
    cx.reg(&name, BSS_WORD.as_ptr() as *const u8, 8, 40)?;
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit 40 set in .bss", || {
        BSS_WORD.load(Ordering::SeqCst) == 1 << 40
    })?;
    tracefs::set_enabled(&name, false)?;
    cx.wait_for("bit 40 cleared in .bss", || {
        BSS_WORD.load(Ordering::SeqCst) == 0
    })?;
    Ok(())
}

/// Bit 0 of every word is clear in this content, so the kernel's bit is the only difference.
const FILE_BYTE: u8 = 0x10;

fn private_file(cx: &mut Ctx, read_first: bool) -> R {
    let file = tmpfs_file(&[FILE_BYTE; 4096])?;
    let map = Mapping::map(
        4096,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE,
        file.as_raw_fd(),
        0,
    )?;
    let unchanged = u32::from_ne_bytes([FILE_BYTE; 4]);
    if read_first {
        check_eq!(
            map.u32_at(32),
            unchanged,
            "word read through the mapping before REG"
        );
    }
    let name = cx.event_name();
    cx.reg(&name, map.addr(32), 4, 0)?;
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit 0 set in the private mapping", || {
        map.u32_at(32) == unchanged | 1
    })?;
    check_eq!(
        pread(file.as_fd(), 4096, 0)?,
        vec![FILE_BYTE; 4096],
        "file contents read() after enable"
    );
    // A second, shared mapping shows the page cache page, which must be untouched too.
    let shared = Mapping::map(4096, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0)?;
    check_eq!(
        shared.u32_at(32),
        unchanged,
        "word in a MAP_SHARED mapping of the file"
    );
    tracefs::set_enabled(&name, false)?;
    cx.wait_for("bit 0 cleared in the private mapping", || {
        map.u32_at(32) == unchanged
    })?;
    Ok(())
}

fn tmpfs_file_unchanged(cx: &mut Ctx) -> R {
    private_file(cx, false)
}

fn tmpfs_file_read_first_unchanged(cx: &mut Ctx) -> R {
    private_file(cx, true)
}
