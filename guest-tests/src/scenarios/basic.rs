//! The first slice: the feature is there, a private word follows enable and disable, and a
//! written event reaches `trace` with its fields.

use crate::framework::{Ctx, Family, Mapping, Scenario, R, REMOTE_WRITE};
use crate::{check, check_eq, tracefs, uapi};

const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "present",
        "tracefs has user_events_data and user_events_status",
        present,
    )
    .requires(&[]),
    Scenario::new(
        "private_anon_enable_disable",
        "a word in a MAP_PRIVATE anonymous page gets its bit on enable and loses it on disable",
        private_anon_enable_disable,
    ),
    Scenario::new(
        "write_reaches_trace",
        "an event written with fields appears in `trace` with those values",
        write_reaches_trace,
    ),
];

pub const FAMILY: Family = Family::new("basic", SCENARIOS).requires(REMOTE_WRITE);

fn present(_: &mut Ctx) -> R {
    for f in ["user_events_data", "user_events_status", "events"] {
        check!(
            tracefs::exists(f),
            "{} is missing: kernel without CONFIG_USER_EVENTS?",
            tracefs::path(f)
        );
    }
    Ok(())
}

fn private_anon_enable_disable(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    cx.reg(&name, page.addr(0), 4, 3)?;
    check_eq!(page.u32_at(0), 0, "word after REG of a disabled event");
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit 3 set after enable", || page.u32_at(0) == 1 << 3)?;
    tracefs::set_enabled(&name, false)?;
    cx.wait_for("bit 3 cleared after disable", || page.u32_at(0) == 0)?;
    Ok(())
}

fn write_reaches_trace(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    let idx = cx.reg(&format!("{name} u32 count;u64 big"), page.addr(0), 4, 0)?;
    tracefs::clear_trace()?;
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit 0 set after enable", || page.u32_at(0) == 1)?;
    let mut payload = 7u32.to_ne_bytes().to_vec();
    payload.extend(0x1_0000_0001u64.to_ne_bytes());
    let n = uapi::write_event(cx.fd(), idx, &payload)?;
    check_eq!(n, 4 + payload.len(), "bytes accepted by write()");
    tracefs::set_enabled(&name, false)?;
    let lines: Vec<String> = tracefs::trace_lines()?
        .into_iter()
        .filter(|l| l.contains(&name))
        .collect();
    check_eq!(lines.len(), 1, "lines for {name} in trace: {lines:?}");
    let want = format!("{name}: count=0x7 (7) big=0x100000001 (4294967297)");
    check!(
        lines[0].ends_with(&want),
        "trace line {:?} does not end with {want:?}",
        lines[0]
    );
    Ok(())
}
