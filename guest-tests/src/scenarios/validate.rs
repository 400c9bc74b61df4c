//! What the kernel checks in a written payload, on each kind of probe: the minimum size
//! (the sum of the fixed fields, checked in user_events_write_core before anything else
//! about the event), then, inside each probe (ftrace's user_event_ftrace, perf's
//! user_event_perf), every __data_loc/__rel_loc field in turn: its data must end inside the
//! payload and, for char strings, with a NUL. Every byte the kernel reads is set here, so
//! each case is accepted or rejected by exactly one rule.

use crate::framework::{Ctx, Family, Mapping, Scenario, Stop, R, REMOTE_WRITE};
use crate::perf::PerfRing;
use crate::scenarios::kit::{check_sample, check_trace, record, Pinned};
use crate::uapi::{self, Errno};
use crate::{check_eq, tracefs};

const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "ftrace_checks_payloads",
        "with ftrace attached: out-of-bounds __data_loc/__rel_loc (by one byte), a missing NUL in any of three dynamic fields, and a payload one byte short of the fixed fields are rejected with EFAULT/EINVAL; exact fits reach trace",
        ftrace_checks_payloads,
    ),
    Scenario::new(
        "perf_checks_payloads",
        "with only perf attached: the same payloads get the same errnos, and exactly the accepted ones reach the ring as trace_entry + payload",
        perf_checks_payloads,
    ),
    Scenario::new(
        "check_order",
        "the minimum size is checked before the probes (EINVAL even with none attached), the validators only inside them (EBADF with none); with both attached a bad payload is EFAULT and reaches neither",
        check_order,
    ),
    Scenario::new(
        "perf_one_byte_payload",
        "an event of one u8 field written with 1, 2 and 8 payload bytes while only perf is attached: each sample holds exactly those bytes",
        perf_one_byte_payload,
    ),
    Scenario::new(
        "perf_sample_sizes",
        "with only perf attached, payloads of every length from 1 to 24 bytes (each right after 64 bytes of 0xff on the same CPU) and the largest perf holds (8177 to 8184 bytes) each give one sample of exactly trace_entry and its bytes, zero-padded to a u64 boundary",
        perf_sample_sizes,
    ),
];

pub const FAMILY: Family = Family::new("validate", SCENARIOS).requires(REMOTE_WRITE);

/// `u32 n` at 8, loc fields of a, b, c at 12, 16, 20; their data from 24. The payload (what
/// follows the index) starts at entry offset 8, so entry offset X is payload byte X - 8.
const DYN: &str = "u32 n;__data_loc char[] a;__rel_loc char[] b;__data_loc unsigned char[] c";

fn dyn_payload(a: u32, b: u32, c: u32, tail: &[u8]) -> Vec<u8> {
    let mut p = 7u32.to_ne_bytes().to_vec();
    for loc in [a, b, c] {
        p.extend(loc.to_ne_bytes());
    }
    p.extend_from_slice(tail);
    p
}

fn loc(len: u32, off: u32) -> u32 {
    len << 16 | off
}

/// `u32 a;u64 b;u16 c`: 14 bytes of fixed fields.
const FIXED: &str = "u32 a;u64 b;u16 c";

fn fixed_payload(len: usize) -> Vec<u8> {
    let mut p = 1u32.to_ne_bytes().to_vec();
    p.extend(2u64.to_ne_bytes());
    p.extend(3u16.to_ne_bytes());
    p.resize(len, 0);
    p
}

struct Case {
    what: &'static str,
    /// Which event: the dynamic one, or the fixed one.
    dynamic: bool,
    payload: Vec<u8>,
    /// The errno, or None (accepted) with the fields as `trace` renders them.
    want: Result<&'static [u8], i32>,
}

fn cases() -> Vec<Case> {
    // The exact fit: a "A" at 24, b "bb" at 26 (relative to the end of b's loc, 20: 6), c
    // "c" at 29; the entry ends at 31.
    let good_tail = b"A\0bb\0c\0";
    let (a, b, c) = (loc(2, 24), loc(3, 6), loc(2, 29));
    let zeros = [0u8; 7];
    vec![
        Case {
            what: "three strings ending exactly at the end",
            dynamic: true,
            payload: dyn_payload(a, b, c, good_tail),
            want: Ok(b"n=0x7 (7) a=A b=bb c=c"),
        },
        Case {
            what:
                "__rel_loc data ending exactly at the end (offset counted from the end of its loc)",
            dynamic: true,
            payload: dyn_payload(loc(1, 24), loc(3, 8), loc(1, 25), &zeros),
            want: Ok(b"n=0x7 (7) a= b= c="),
        },
        Case {
            what: "__data_loc data one byte past the end",
            dynamic: true,
            payload: dyn_payload(loc(2, 30), b, c, good_tail),
            want: Err(libc::EFAULT),
        },
        Case {
            // Had the offset counted from the loc field itself, this would end inside, on a NUL.
            what: "__rel_loc data one byte past the end",
            dynamic: true,
            payload: dyn_payload(loc(1, 24), loc(3, 9), loc(1, 25), &zeros),
            want: Err(libc::EFAULT),
        },
        Case {
            what: "__data_loc char[] (first dynamic field) without its NUL",
            dynamic: true,
            payload: dyn_payload(a, b, c, b"AXbb\0c\0"),
            want: Err(libc::EFAULT),
        },
        Case {
            what: "__rel_loc char[] (second dynamic field) without its NUL",
            dynamic: true,
            payload: dyn_payload(a, b, c, b"A\0bbbc\0"),
            want: Err(libc::EFAULT),
        },
        Case {
            what: "__data_loc unsigned char[] (third dynamic field) without its NUL",
            dynamic: true,
            payload: dyn_payload(a, b, c, b"A\0bb\0cc"),
            want: Err(libc::EFAULT),
        },
        Case {
            what: "15 bytes for 16 bytes of fixed fields (n and three locs)",
            dynamic: true,
            payload: dyn_payload(a, b, c, b"")[..15].to_vec(),
            want: Err(libc::EINVAL),
        },
        Case {
            what: "4 of 14 bytes of fixed fields (only the first)",
            dynamic: false,
            payload: fixed_payload(4),
            want: Err(libc::EINVAL),
        },
        Case {
            what: "12 of 14 bytes of fixed fields (all but the last)",
            dynamic: false,
            payload: fixed_payload(12),
            want: Err(libc::EINVAL),
        },
        Case {
            what: "13 of 14 bytes of fixed fields",
            dynamic: false,
            payload: fixed_payload(13),
            want: Err(libc::EINVAL),
        },
        Case {
            what: "exactly the 14 bytes of fixed fields",
            dynamic: false,
            payload: fixed_payload(14),
            want: Ok(b"a=0x1 (1) b=0x2 (2) c=0x3 (3)"),
        },
    ]
}

/// The two events, registered with their words in `page` (bits 0 and 1 of the u32 at 0).
struct Events {
    dynamic: (String, u32),
    fixed: (String, u32),
}

fn register(cx: &mut Ctx, page: &Mapping) -> Result<Events, Stop> {
    let (d, f) = (cx.event_name(), cx.event_name());
    let di = cx.reg(&format!("{d} {DYN}"), page.addr(0), 4, 0)?;
    let fi = cx.reg(&format!("{f} {FIXED}"), page.addr(0), 4, 1)?;
    Ok(Events {
        dynamic: (d, di),
        fixed: (f, fi),
    })
}

/// Writes every case, checking its errno; returns the accepted ones.
fn write_cases(cx: &mut Ctx, ev: &Events, probe: &str) -> Result<Vec<Case>, Stop> {
    let mut accepted = vec![];
    for case in cases() {
        let idx = if case.dynamic {
            ev.dynamic.1
        } else {
            ev.fixed.1
        };
        let buf = record(idx, &case.payload);
        let got = uapi::write(cx.fd(), &buf);
        match case.want {
            Ok(_) => check_eq!(got, Ok(buf.len()), "{probe}: write of {}", case.what),
            Err(e) => check_eq!(got, Err(Errno(e)), "{probe}: write of {}", case.what),
        }
        if case.want.is_ok() {
            accepted.push(case);
        }
    }
    Ok(accepted)
}

fn ftrace_checks_payloads(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let ev = register(cx, &page)?;
    tracefs::clear_trace()?;
    tracefs::set_enabled(&ev.dynamic.0, true)?;
    tracefs::set_enabled(&ev.fixed.0, true)?;
    cx.wait_for("both bits set after enable", || page.u32_at(0) == 0b11)?;
    let accepted = write_cases(cx, &ev, "ftrace")?;
    tracefs::set_enabled(&ev.dynamic.0, false)?;
    tracefs::set_enabled(&ev.fixed.0, false)?;
    for (name, dynamic) in [(&ev.dynamic.0, true), (&ev.fixed.0, false)] {
        let want: Vec<&[u8]> = accepted
            .iter()
            .filter(|c| c.dynamic == dynamic)
            .map(|c| c.want.unwrap())
            .collect();
        check_trace(cx, name, &want)?;
    }
    Ok(())
}

fn perf_checks_payloads(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let ev = register(cx, &page)?;
    let ids = (
        tracefs::event_id(&ev.dynamic.0)?,
        tracefs::event_id(&ev.fixed.0)?,
    );
    let rings = (PerfRing::open(ids.0)?, PerfRing::open(ids.1)?);
    cx.wait_for("both bits set with perf attached", || {
        page.u32_at(0) == 0b11
    })?;
    let accepted = write_cases(cx, &ev, "perf")?;
    for (ring, id, dynamic) in [(&rings.0, ids.0, true), (&rings.1, ids.1, false)] {
        let samples = ring.raw_samples()?;
        let want: Vec<&Case> = accepted.iter().filter(|c| c.dynamic == dynamic).collect();
        check_eq!(
            samples.len(),
            want.len(),
            "perf samples of the {} event",
            if dynamic { "dynamic" } else { "fixed" }
        );
        for (s, c) in samples.iter().zip(want) {
            check_sample(c.what, s, id, &c.payload)?;
        }
    }
    Ok(())
}

fn check_order(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let ev = register(cx, &page)?;
    let all = cases();
    let short = &all[7];
    let unterminated = &all[5];
    let good = &all[0];
    let send = |cx: &Ctx, c: &Case| uapi::write(cx.fd(), &record(ev.dynamic.1, &c.payload));
    // No probe: the size check still runs, the validators do not.
    check_eq!(
        send(cx, short),
        Err(Errno(libc::EINVAL)),
        "no probe: write of {}",
        short.what
    );
    check_eq!(
        send(cx, unterminated),
        Err(Errno(libc::EBADF)),
        "no probe: write of {}",
        unterminated.what
    );
    check_eq!(
        send(cx, good),
        Err(Errno(libc::EBADF)),
        "no probe: write of {}",
        good.what
    );
    // Both probes: a bad payload fails once, and neither probe keeps it.
    let name = ev.dynamic.0.clone();
    let id = tracefs::event_id(&name)?;
    tracefs::clear_trace()?;
    tracefs::set_enabled(&name, true)?;
    let ring = PerfRing::open(id)?;
    cx.wait_for("bit set with ftrace and perf", || page.u32_at(0) & 1 == 1)?;
    let good_len = record(ev.dynamic.1, &good.payload).len();
    for (c, want) in [
        (short, Err(Errno(libc::EINVAL))),
        (unterminated, Err(Errno(libc::EFAULT))),
        (good, Ok(good_len)),
    ] {
        check_eq!(send(cx, c), want, "ftrace and perf: write of {}", c.what);
    }
    tracefs::set_enabled(&name, false)?;
    check_trace(cx, &name, &[good.want.unwrap()])?;
    let samples = ring.raw_samples()?;
    check_eq!(samples.len(), 1, "perf samples with both probes attached");
    check_sample(good.what, &samples[0], id, &good.payload)?;
    drop(ring);
    cx.wait_for("bit cleared once both probes are gone", || {
        page.u32_at(0) & 1 == 0
    })?;
    Ok(())
}

/// The shortest payloads perf copies: one byte (the whole fixed part of a `u8 v` event), two,
/// and eight. Each byte is non-zero, so a byte the kernel failed to copy (the ring's padding
/// is zeroed) shows.
fn perf_one_byte_payload(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    let idx = cx.reg(&format!("{name} u8 v"), page.addr(0), 4, 0)?;
    let id = tracefs::event_id(&name)?;
    let ring = PerfRing::open(id)?;
    cx.wait_for("bit set with perf attached", || page.u32_at(0) == 1)?;
    let payloads: [&[u8]; 3] = [&[0xa5], &[0x5a, 0xc3], &[1, 2, 3, 4, 5, 6, 7, 8]];
    for p in payloads {
        check_eq!(
            uapi::write_event(cx.fd(), idx, p),
            Ok(4 + p.len()),
            "write of {} payload byte(s)",
            p.len()
        );
    }
    let samples = ring.raw_samples()?;
    check_eq!(samples.len(), payloads.len(), "perf samples");
    for (s, p) in samples.iter().zip(payloads) {
        check_sample(&format!("{} payload byte(s)", p.len()), s, id, p)?;
    }
    drop(ring);
    cx.wait_for("bit cleared once perf is gone", || page.u32_at(0) == 0)?;
    Ok(())
}

/// perf's tracepoint records are built in a buffer per CPU, of PERF_MAX_TRACE_SIZE (8 KiB),
/// sized by user_event_perf as the record (trace_entry and payload) rounded up to 8 bytes;
/// the sample then carries the record padded to a u64 boundary with its u32 size, the
/// padding never written from that buffer. So: every payload length from 1 to 24 bytes (every
/// padding, 0 to 7 bytes), each right after 64 bytes of 0xff on the same CPU, so that a byte
/// of the earlier record shows; and the largest payloads perf holds, 8177 to 8184 bytes
/// (records of 8185 to 8192 bytes, all within the buffer once rounded). Each gives exactly
/// one sample of exactly its bytes.
fn perf_sample_sizes(cx: &mut Ctx) -> R {
    const PERF_MAX_TRACE_SIZE: usize = 8192;
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    let idx = cx.reg(&format!("{name} u8 v"), page.addr(0), 4, 0)?;
    let id = tracefs::event_id(&name)?;
    let _pinned = Pinned::here()?;
    // 8 samples of up to 8.2 KiB, 48 small ones: 128 KiB never wraps.
    let ring = PerfRing::open_pages(id, 32)?;
    cx.wait_for("bit set with perf attached", || page.u32_at(0) == 1)?;
    let stale = vec![0xffu8; 64];
    let small = (1..=24usize).flat_map(|n| [stale.clone(), (1..=n as u8).collect()]);
    let largest = (PERF_MAX_TRACE_SIZE - 8 - 7..=PERF_MAX_TRACE_SIZE - 8)
        .map(|n| (0..n).map(|b| (b % 251 + 1) as u8).collect::<Vec<u8>>());
    let payloads: Vec<Vec<u8>> = small.chain(largest).collect();
    for p in &payloads {
        check_eq!(
            uapi::write_event(cx.fd(), idx, p),
            Ok(4 + p.len()),
            "write of {} payload byte(s)",
            p.len()
        );
    }
    let samples = ring.raw_samples()?;
    check_eq!(
        samples.len(),
        payloads.len(),
        "perf samples (payloads of 1 to 24 bytes, each after 64 of 0xff, and of 8177 to 8184)"
    );
    for (s, p) in samples.iter().zip(&payloads) {
        check_sample(&format!("{} payload byte(s)", p.len()), s, id, p)?;
    }
    drop(ring);
    cx.wait_for("bit cleared once perf is gone", || page.u32_at(0) == 0)?;
    Ok(())
}
