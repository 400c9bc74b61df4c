//! What a written event becomes in `trace`: each field type's rendering, fixed and dynamic
//! strings, write() and writev(), and the errors of the write path. The raw lines and the
//! `format` file also go to the host as snapshots; the guest asserts the field text itself.

use crate::framework::{Ctx, Family, Mapping, Scenario, R, REMOTE_WRITE};
use crate::uapi::{self, Errno};
use crate::{check, check_eq, tracefs};

const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "integers_via_write",
        "u8/u16/u32/u64 fields written with one write() render as 'c'(n), 0x%x (%d) and 0x%llx (%lld)",
        integers_via_write,
    ),
    Scenario::new(
        "char_arrays_via_writev",
        "char[N] fields written with writev() split mid-field render as strings, NUL-terminated or full",
        char_arrays_via_writev,
    ),
    Scenario::new(
        "rel_loc_string",
        "a __rel_loc char[] string (offset from the end of its loc field) renders as its text",
        rel_loc_string,
    ),
    Scenario::new(
        "data_loc_string",
        "a __data_loc char[] string (offset from the start of the entry) renders as its text",
        data_loc_string,
    ),
    Scenario::new(
        "write_errors",
        "write() rejects short, negative, unknown, unprobed, unterminated, out-of-bounds and pwrite data with exact errnos",
        write_errors,
    ),
];

pub const FAMILY: Family = Family::new("trace", SCENARIOS)
    .requires(REMOTE_WRITE)
    .alone();

/// Registers `name_args`, enables its event and empties `trace`; returns the write index.
fn enabled_event(
    cx: &mut Ctx,
    page: &Mapping,
    name: &str,
    fields: &str,
) -> Result<u32, crate::framework::Stop> {
    let idx = cx.reg(&format!("{name} {fields}"), page.addr(0), 4, 0)?;
    tracefs::clear_trace()?;
    tracefs::set_enabled(name, true)?;
    cx.wait_for("bit set after enable", || page.u32_at(0) == 1)?;
    Ok(idx)
}

/// The event's lines of `trace`, snapshotted raw, with its `format` unless that has a
/// fixed-size or `__rel_loc` array (see [`array_lines`]); checks each line ends with the
/// matching `want` (the text after the host-normalised prefix).
fn check_lines(cx: &mut Ctx, name: &str, want: &[String]) -> R {
    tracefs::set_enabled(name, false)?;
    let lines: Vec<String> = tracefs::trace_lines()?
        .into_iter()
        .filter(|l| l.contains(&format!("{name}:")))
        .collect();
    cx.snapshot("trace", lines.join("\n") + "\n");
    let format = tracefs::format(name)?;
    if array_lines(&format).next().is_none() {
        cx.snapshot("format", format);
    }
    check_eq!(
        lines.len(),
        want.len(),
        "lines for {name} in trace: {lines:?}"
    );
    for (line, want) in lines.iter().zip(want) {
        check!(
            line.ends_with(&format!(" {name}: {want}")),
            "trace line {line:?} does not end with {want:?}"
        );
    }
    Ok(())
}

/// `format` lines of array fields. The kernel prints their length from a field struct member
/// user_events never sets (kmalloc'd, so garbage without init_on_alloc): not snapshot material.
fn array_lines(format: &str) -> impl Iterator<Item = &str> {
    format
        .lines()
        .filter(|l| l.starts_with("\tfield:") && l.contains('[') && !l.contains("__data_loc"))
}

/// Checks an array field's `format` line apart from its printed length, and notes that.
fn check_array_line(cx: &mut Ctx, format: &str, before: &str, after: &str) -> R {
    let line = array_lines(format).find(|l| l.starts_with(before) && l.ends_with(after));
    check!(
        line.is_some(),
        "format has no line {before:?}[..]{after:?}:\n{format}"
    );
    cx.note(format!("format shows {:?}", line.unwrap()));
    Ok(())
}

fn integers_via_write(cx: &mut Ctx) -> R {
    cx.require_remote_write()?;
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    let idx = enabled_event(cx, &page, &name, "u8 a;u16 b;u32 c;u64 d")?;
    for a in [b'A', 7u8] {
        let mut buf = idx.to_ne_bytes().to_vec();
        buf.push(a);
        buf.extend(0xbeefu16.to_ne_bytes());
        buf.extend(0xffff_fffeu32.to_ne_bytes());
        buf.extend(0x8000_0000_0000_0001u64.to_ne_bytes());
        check_eq!(
            uapi::write(cx.fd(), &buf)?,
            buf.len(),
            "bytes accepted by write()"
        );
    }
    let format = tracefs::format(&name)?;
    for line in [
        "\tfield:u8 a;\toffset:8;\tsize:1;\tsigned:0;",
        "\tfield:u16 b;\toffset:9;\tsize:2;\tsigned:0;",
        "\tfield:u32 c;\toffset:11;\tsize:4;\tsigned:0;",
        "\tfield:u64 d;\toffset:15;\tsize:8;\tsigned:0;",
        "print fmt: \"a=%u b=%u c=%u d=%llu\", REC->a, REC->b, REC->c, REC->d",
    ] {
        check!(
            format.lines().any(|l| l == line),
            "format has no line {line:?}:\n{format}"
        );
    }
    let rest = "b=0xbeef (48879) c=0xfffffffe (-2) d=0x8000000000000001 (-9223372036854775807)";
    check_lines(
        cx,
        &name,
        &[format!("a='A'(65) {rest}"), format!("a=(7) {rest}")],
    )
}

fn char_arrays_via_writev(cx: &mut Ctx) -> R {
    cx.require_remote_write()?;
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    let idx = enabled_event(cx, &page, &name, "char[8] s;char[4] t;u16 n")?;
    let idx = idx.to_ne_bytes();
    let (head, tail): (&[u8], &[u8]) = (b"hi\0\0\0", b"\0\0\0abcd\x02\x01");
    let iov = [iovec(&idx), iovec(head), iovec(tail)];
    check_eq!(
        uapi::writev(cx.fd(), &iov)?,
        4 + 8 + 4 + 2,
        "bytes accepted by writev()"
    );
    let format = tracefs::format(&name)?;
    check_array_line(
        cx,
        &format,
        "\tfield:char s[",
        "];\toffset:8;\tsize:8;\tsigned:1;",
    )?;
    check_array_line(
        cx,
        &format,
        "\tfield:char t[",
        "];\toffset:16;\tsize:4;\tsigned:1;",
    )?;
    check_lines(cx, &name, &["s=hi t=abcd n=0x102 (258)".to_owned()])
}

fn rel_loc_string(cx: &mut Ctx) -> R {
    cx.require_remote_write()?;
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    let idx = enabled_event(cx, &page, &name, "u32 n;__rel_loc char[] msg")?;
    let text = b"hello\0";
    // The string starts right after the loc field: relative offset 0.
    let loc = (text.len() as u32) << 16;
    let (idx, n, loc) = (idx.to_ne_bytes(), 3u32.to_ne_bytes(), loc.to_ne_bytes());
    let iov = [iovec(&idx), iovec(&n), iovec(&loc), iovec(text)];
    check_eq!(
        uapi::writev(cx.fd(), &iov)?,
        4 + 4 + 4 + text.len(),
        "bytes accepted by writev()"
    );
    let format = tracefs::format(&name)?;
    check_array_line(
        cx,
        &format,
        "\tfield:__rel_loc char msg[",
        "];\toffset:12;\tsize:4;\tsigned:1;",
    )?;
    check_lines(cx, &name, &["n=0x3 (3) msg=hello".to_owned()])
}

fn data_loc_string(cx: &mut Ctx) -> R {
    cx.require_remote_write()?;
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    let idx = enabled_event(cx, &page, &name, "__data_loc char[] msg;u32 n")?;
    let text = b"world\0";
    // Offsets count from the entry's start: 8-byte header, loc at 8, n at 12, text at 16.
    let loc = (text.len() as u32) << 16 | 16;
    let mut buf = idx.to_ne_bytes().to_vec();
    buf.extend(loc.to_ne_bytes());
    buf.extend(0xffff_ffffu32.to_ne_bytes());
    buf.extend(text);
    check_eq!(
        uapi::write(cx.fd(), &buf)?,
        buf.len(),
        "bytes accepted by write()"
    );
    let format = tracefs::format(&name)?;
    let want = "\tfield:__data_loc char[] msg;\toffset:8;\tsize:4;\tsigned:1;";
    check!(
        format.lines().any(|l| l == want),
        "format has no line {want:?}:\n{format}"
    );
    check_lines(cx, &name, &["msg=world n=0xffffffff (-1)".to_owned()])
}

fn write_errors(cx: &mut Ctx) -> R {
    cx.require_remote_write()?;
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    let idx = cx.reg(
        &format!("{name} u32 n;__data_loc char[] msg"),
        page.addr(0),
        4,
        0,
    )?;
    let event = |loc: u32, text: &[u8]| {
        let mut b = idx.to_ne_bytes().to_vec();
        b.extend(7u32.to_ne_bytes());
        b.extend(loc.to_ne_bytes());
        b.extend(text);
        b
    };
    // The text starts at entry offset 16 (8 header + n + loc).
    let good = event(3 << 16 | 16, b"ok\0");
    // Event type ids are reused once an event is auto-deleted, and records of the deleted
    // event still in the buffer then print under this event's name (seen on 7.3-rc7).
    tracefs::clear_trace()?;
    check_eq!(
        uapi::write(cx.fd(), &good).err(),
        Some(Errno(libc::EBADF)),
        "write with no probe attached"
    );
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit set after enable", || page.u32_at(0) == 1)?;
    let cases: [(&str, Vec<u8>, i32); 6] = [
        ("3 bytes (no whole index)", vec![0; 3], libc::EFAULT),
        (
            "index -1",
            [(-1i32).to_ne_bytes(), [0; 4]].concat(),
            libc::EINVAL,
        ),
        (
            "an index this fd never got",
            [(idx + 1).to_ne_bytes(), [0; 4]].concat(),
            libc::ENOENT,
        ),
        (
            "a payload shorter than the fields",
            idx.to_ne_bytes().to_vec(),
            libc::EINVAL,
        ),
        (
            "a string without NUL",
            event(2 << 16 | 16, b"no"),
            libc::EFAULT,
        ),
        (
            "a string past the end",
            event(8 << 16 | 16, b"ok\0"),
            libc::EFAULT,
        ),
    ];
    for (what, buf, want) in cases {
        check_eq!(
            uapi::write(cx.fd(), &buf).err(),
            Some(Errno(want)),
            "write of {what}"
        );
    }
    let r = unsafe {
        libc::pwrite(
            std::os::fd::AsRawFd::as_raw_fd(&cx.data),
            good.as_ptr() as *const _,
            good.len(),
            4,
        )
    };
    check_eq!(
        (r, Errno::last()),
        (-1, Errno(libc::EFAULT)),
        "pwrite at offset 4"
    );
    check_eq!(
        uapi::write(cx.fd(), &good)?,
        good.len(),
        "the good write after the rejected ones"
    );
    tracefs::set_enabled(&name, false)?;
    let lines: Vec<String> = tracefs::trace_lines()?
        .into_iter()
        .filter(|l| l.contains(&format!("{name}:")))
        .collect();
    check_eq!(
        lines.len(),
        1,
        "only the good write reached trace: {lines:?}"
    );
    Ok(())
}

fn iovec(b: &[u8]) -> libc::iovec {
    libc::iovec {
        iov_base: b.as_ptr() as *mut _,
        iov_len: b.len(),
    }
}
