//! The status-page ABI of 5.18–6.3 (6.1 here, built with its BROKEN dependency lifted): the
//! kernel keeps one bit per event in a page that programs map read-only from
//! `user_events_status`. These checks run only where that ABI is what the kernel has.

use std::ffi::CString;
use std::os::fd::AsRawFd;

use result_channel::Feature;

use crate::framework::{Ctx, Family, Mapping, Scenario, Stop, R};
use crate::uapi::{self, Errno};
use crate::{check, check_eq, tracefs};

const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "status_bit_follows_enable",
        "old ABI: the event's bit in the mmap'd status page is set on enable and cleared on disable",
        status_bit_follows_enable,
    ),
    Scenario::new(
        "write_reaches_trace",
        "old ABI: a written event reaches `trace` as a hex dump of the entry: its id, then the payload",
        write_reaches_trace,
    ),
    Scenario::new(
        "format_array_fields",
        "old ABI: the `format` file of an event with char[N], unsigned char[N], __rel_loc and __data_loc fields shows every field line exactly, array lengths included (snapshot of the whole file)",
        format_array_fields,
    ),
];

pub const FAMILY: Family = Family::new("legacy", SCENARIOS).requires(&[Feature::StatusPage]);

/// `struct user_reg` before 6.4: packed, 20 bytes, the kernel answers with a status bit.
#[repr(C, packed)]
#[derive(Default)]
struct OldUserReg {
    size: u32,
    name_args: u64,
    status_bit: u32,
    write_index: u32,
}

fn old_reg(cx: &Ctx, name_args: &str) -> Result<(u32, u32), Stop> {
    let c = CString::new(name_args).unwrap();
    let mut r = OldUserReg {
        size: 20,
        name_args: c.as_ptr() as u64,
        status_bit: u32::MAX,
        write_index: u32::MAX,
    };
    let rc = unsafe {
        libc::ioctl(
            cx.fd().as_raw_fd(),
            uapi::DIAG_IOCSREG,
            &mut r as *mut OldUserReg,
        )
    };
    check!(
        rc == 0,
        "old-ABI DIAG_IOCSREG {name_args:?}: {}",
        Errno::last()
    );
    Ok((r.status_bit, r.write_index))
}

fn status_bit_follows_enable(cx: &mut Ctx) -> R {
    let name = cx.event_name();
    let (bit, _) = old_reg(cx, &name)?;
    let status = std::fs::File::open(tracefs::path("user_events_status"))?;
    let page = Mapping::map(
        4096,
        libc::PROT_READ,
        libc::MAP_SHARED,
        status.as_raw_fd(),
        0,
    )?;
    let (byte, mask) = ((bit / 8) as usize, 1u8 << (bit % 8));
    let read = || unsafe { std::ptr::read_volatile(page.addr(byte)) } & mask;
    check_eq!(read(), 0, "status bit {bit} of a disabled event");
    tracefs::set_enabled(&name, true)?;
    cx.wait_for(&format!("status bit {bit} set after enable"), || {
        read() != 0
    })?;
    tracefs::set_enabled(&name, false)?;
    cx.wait_for(&format!("status bit {bit} cleared after disable"), || {
        read() == 0
    })?;
    Ok(())
}

fn write_reaches_trace(cx: &mut Ctx) -> R {
    let name = cx.event_name();
    let (_, idx) = old_reg(cx, &format!("{name} u32 count"))?;
    tracefs::clear_trace()?;
    tracefs::set_enabled(&name, true)?;
    let n = uapi::write_event(cx.fd(), idx, &0x2a_u32.to_ne_bytes())?;
    check_eq!(n, 8, "bytes accepted by write()");
    tracefs::set_enabled(&name, false)?;
    // The old ABI prints no field names, not even the event's: `trace` shows a hex dump of
    // the entry, whose first two bytes are the event id (common_type) and whose payload
    // follows the 8-byte header.
    let id = tracefs::event_id(&name)?;
    let head = format!("00000000: {:02x} {:02x} ", id & 0xff, (id >> 8) & 0xff);
    let lines = tracefs::trace_lines()?;
    let dumps: Vec<&String> = lines.iter().filter(|l| l.contains(&head)).collect();
    check_eq!(
        dumps.len(),
        1,
        "hex dumps of event id {id} in trace: {lines:?}"
    );
    let bytes: Vec<&str> = dumps[0]
        .split(&head)
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .take(10)
        .collect();
    check_eq!(
        bytes.get(6..10),
        Some(&["2a", "00", "00", "00"][..]),
        "payload bytes after the header in {:?}",
        dumps[0]
    );
    Ok(())
}

/// The same `format` check as `trace::format_array_fields`, for events the old ABI registers.
fn format_array_fields(cx: &mut Ctx) -> R {
    let mut names = Vec::new();
    for _ in 0..4 {
        let name = cx.event_name();
        old_reg(cx, &format!("{name} {}", super::trace::ARRAY_FIELDS))?;
        names.push(name);
    }
    super::trace::check_array_format(cx, &names)
}
