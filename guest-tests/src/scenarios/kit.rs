//! Helpers shared by the coverage families (types, validate, limits, privilege, multi):
//! `trace` lines as raw bytes (the kernel prints printable Latin-1 bytes as they are, so
//! the text is not always UTF-8), a perf ring buffer, the `format` file's lines, the
//! `user_events_status` counters, and dropping a forked child's privileges.

use crate::framework::{Ctx, Mapping, Stop, R};
use crate::{check, check_eq, tracefs};

/// The lines of `trace` for `name` (the text after `NAME: `), as bytes, in order.
pub fn trace_fields(name: &str) -> Result<Vec<Vec<u8>>, Stop> {
    let p = tracefs::path("trace");
    let raw = std::fs::read(&p).map_err(|e| Stop::Fail(format!("{p}: {e}")))?;
    let marker = format!(" {name}:");
    let mut out = vec![];
    for line in raw.split(|&b| b == b'\n') {
        if line.starts_with(b"#") {
            continue;
        }
        if let Some(at) = find(line, marker.as_bytes()) {
            let rest = &line[at + marker.len()..];
            out.push(rest.strip_prefix(b" ").unwrap_or(rest).to_vec());
        }
    }
    Ok(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Shows bytes as text, with anything outside printable ASCII escaped.
pub fn show(b: &[u8]) -> String {
    b.iter()
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect()
}

/// Checks the event's `trace` lines are exactly `want`, in order. No snapshot: the guest
/// asserts the whole rendered text itself.
pub fn check_trace(cx: &mut Ctx, name: &str, want: &[&[u8]]) -> R {
    let got = trace_fields(name)?;
    cx.note(format!("{} trace line(s) of {name} as expected", got.len()));
    check_eq!(
        got.len(),
        want.len(),
        "lines of {name} in trace: {:?}",
        got.iter().map(|l| show(l)).collect::<Vec<_>>()
    );
    for (g, w) in got.iter().zip(want) {
        check!(
            g == w,
            "trace line of {name}: got {:?}, want {:?}",
            show(g),
            show(w)
        );
    }
    Ok(())
}

/// Checks the event's `format` file has each of `lines` (whole lines, tabs included).
pub fn check_format(name: &str, lines: &[&str]) -> R {
    let format = tracefs::format(name)?;
    for line in lines {
        check!(
            format.lines().any(|l| l == *line),
            "format of {name} has no line {line:?}:\n{format}"
        );
    }
    Ok(())
}

/// The `format` line of an array field, whose printed length the kernel takes from a field
/// member user_events never sets: checks the parts before and after `[..]`.
pub fn check_array_format(name: &str, before: &str, after: &str) -> R {
    let format = tracefs::format(name)?;
    check!(
        format
            .lines()
            .any(|l| l.starts_with(before) && l.ends_with(after) && l.contains('[')),
        "format of {name} has no line {before:?}[..]{after:?}:\n{format}"
    );
    Ok(())
}

/// An index and enabled event with its word in `page` (bit 0 of the u32 at 0).
pub fn enabled(cx: &mut Ctx, page: &Mapping, name_args: &str) -> Result<u32, Stop> {
    let name = name_args.split(' ').next().unwrap_or(name_args).to_owned();
    let idx = cx.reg(name_args, page.addr(0), 4, 0)?;
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit set after enable", || page.u32_at(0) == 1)?;
    Ok(idx)
}

/// `[index][payload]` as one buffer.
pub fn record(idx: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = idx.to_ne_bytes().to_vec();
    b.extend_from_slice(payload);
    b
}
