//! Real clients: Microsoft's `tracepoint` (low-level `TracepointState`; the crate has no
//! macros) and `eventheader` (`define_provider!`/`write_event!`/`provider_enabled!`) crates
//! keep their enable words in the program's own static data. These check that what the crates
//! believe matches what the kernel does: enable and disable, written events, fork,
//! copy-on-write, unregister, exec.
//!
//! An eventheader event's "is enabled" is its `write_event!` result: the call site's own
//! tracepoint reads enabled iff it writes (0) rather than returning EBADF unsent.
//! `provider_enabled!` cannot serve: eventheader_macros 0.5.0 never registers its tracepoint
//! (see [`provider_enabled_never_registered`]).
//! The exec'd side runs as `ue-scenarios --helper client-exec ...` ([`helper`]).
//!
//! Each provider and static tracepoint belongs to one scenario: statics are fresh in each
//! scenario's process (forked from a runner that never registers), and distinct names keep
//! one scenario's events out of another's checks.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use eventheader as eh;
use tracepoint::{EventDataDescriptor, TracepointState};

use crate::framework::{
    exec_helper, fork, helper_verdict, keep_across_exec, wait_until, Ctx, Family, Mapping, Pipe,
    Scenario, Stop, R, REMOTE_WRITE,
};
use crate::perf::PerfRing;
use crate::uapi::{self, Errno};
use crate::{check, check_eq, fail, tracefs};

const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "tracepoint_follows_tracefs",
        "a static TracepointState reads disabled, enabled after `enable` is set in tracefs, disabled after it is cleared",
        tracepoint_follows_tracefs,
    ),
    Scenario::new(
        "tracepoint_follows_perf",
        "a static TracepointState reads enabled while perf holds the tracepoint open, disabled once perf closes it",
        tracepoint_follows_perf,
    ),
    Scenario::new(
        "eventheader_follows_tracefs",
        "write_event! sends (not EBADF) after tracefs enables its Provider_L<level>K<keyword> tracepoint, and only that one",
        eventheader_follows_tracefs,
    ),
    Scenario::new(
        "eventheader_follows_perf",
        "write_event! sends while perf holds its Provider_L<level>K<keyword> tracepoint open, and stops once perf closes it",
        eventheader_follows_perf,
    ),
    Scenario::new(
        "provider_enabled_never_registered",
        "crate divergence: provider_enabled! stays false while write_event! of the same level and keyword sends",
        provider_enabled_never_registered,
    ),
    Scenario::new(
        "tracepoint_write_reaches_trace",
        "TracepointState::write events appear in `trace` decoded by the registered fields; the crate doc's `char Field2[20]` is a 1-byte field",
        tracepoint_write_reaches_trace,
    ),
    Scenario::new(
        "eventheader_write_reaches_trace",
        "write_event! events, with and without fields, appear in `trace` and in perf samples with the eventheader payload",
        eventheader_write_reaches_trace,
    ),
    Scenario::new(
        "fork_child_follows",
        "a fork child, without re-registering, sees the provider's enable changes and its events appear under its own pid",
        fork_child_follows,
    )
    .fault_worker(true),
    Scenario::new(
        "fork_cow_both_follow",
        "after child and then parent write the page holding a static enable word, each still follows enable and disable",
        fork_cow_both_follow,
    )
    .fault_worker(true),
    Scenario::new(
        "unregister_reads_disabled",
        "unregister/drop leave the words disabled for good; the event stays in user_events_status until the crate's fd closes",
        unregister_reads_disabled,
    )
    // Reads a global seq_file list: see `Scenario::alone`.
    .alone(true),
    Scenario::new(
        "exec_fresh_registration",
        "after exec from a process with a registered provider, a fresh register in the new image follows enable and writes",
        exec_fresh_registration,
    )
    .fault_worker(true),
];

pub const FAMILY: Family = Family::new("client", SCENARIOS).requires(REMOTE_WRITE);

const STEP: Duration = Duration::from_secs(10);
/// `write`'s and `write_event!`'s answer when the word reads disabled (the crates' EBADF).
const EBADF: i32 = libc::EBADF;

eh::define_provider!(ENABLE_TRACEFS, "UeClient_EnTracefs");
eh::define_provider!(ENABLE_PERF, "UeClient_EnPerf");
eh::define_provider!(PROBE, "UeClient_Probe");
eh::define_provider!(WRITE, "UeClient_Write");
eh::define_provider!(FORKED, "UeClient_Fork");
eh::define_provider!(UNREG, "UeClient_Unreg");
eh::define_provider!(EXEC, "UeClient_Exec");

static TP_TRACEFS: TracepointState = TracepointState::new(0);
static TP_PERF: TracepointState = TracepointState::new(0);
static TP_WRITE: TracepointState = TracepointState::new(0);
static TP_DOC_EXAMPLE: TracepointState = TracepointState::new(0);
static TP_FORK: TracepointState = TracepointState::new(0);
static TP_UNREG: TracepointState = TracepointState::new(0);

/// A static enable word with a neighbour in its own page, so that a process can write that
/// page (breaking copy-on-write after fork) without touching the word the kernel owns.
#[repr(C, align(4096))]
struct TpPage {
    tp: TracepointState,
    scratch: AtomicU32,
}
static TP_COW: TpPage = TpPage {
    tp: TracepointState::new(0),
    scratch: AtomicU32::new(0),
};

/// Registers a static tracepoint through the crate; the crate returns an errno, 0 for success.
fn register(tp: &'static TracepointState, name_args: &str) -> R {
    let c = CString::new(name_args).expect("no NUL in event names");
    // Safety: the state is static, so it is never deallocated while registered.
    let err = unsafe { Pin::static_ref(tp).register(&c) };
    check_eq!(err, 0, "TracepointState::register({name_args:?})");
    Ok(())
}

/// Writes a one-`u32` event through the crate.
fn write_u32(tp: &TracepointState, v: u32) -> i32 {
    tp.write(&mut [
        EventDataDescriptor::zero(),
        EventDataDescriptor::from_value(&v),
    ])
}

/// Registers a provider through the crate.
macro_rules! register_provider {
    ($p:ident) => {{
        // Safety: the provider is a static of this (never unloaded) program.
        let err = unsafe { $p.register() };
        check_eq!(err, 0, "{}.register()", stringify!($p));
    }};
}

fn tracepoint_follows_tracefs(cx: &mut Ctx) -> R {
    let name = cx.event_name();
    register(&TP_TRACEFS, &format!("{name} u32 n"))?;
    check_eq!(
        (TP_TRACEFS.enabled(), write_u32(&TP_TRACEFS, 1)),
        (false, EBADF),
        "(enabled, write) right after register"
    );
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("TracepointState::enabled() after enable", || {
        TP_TRACEFS.enabled()
    })?;
    check_eq!(
        write_u32(&TP_TRACEFS, 1),
        0,
        "TracepointState::write while enabled"
    );
    tracefs::set_enabled(&name, false)?;
    cx.wait_for("TracepointState::enabled() false after disable", || {
        !TP_TRACEFS.enabled()
    })?;
    check_eq!(
        write_u32(&TP_TRACEFS, 1),
        EBADF,
        "TracepointState::write after disable"
    );
    Ok(())
}

fn tracepoint_follows_perf(cx: &mut Ctx) -> R {
    let name = cx.event_name();
    register(&TP_PERF, &format!("{name} u32 n"))?;
    check!(!TP_PERF.enabled(), "enabled() right after register");
    let perf = uapi::perf_open_tracepoint(tracefs::event_id(&name)?)?;
    cx.wait_for("TracepointState::enabled() with perf attached", || {
        TP_PERF.enabled()
    })?;
    check_eq!(
        write_u32(&TP_PERF, 1),
        0,
        "TracepointState::write with perf attached"
    );
    drop(perf);
    cx.wait_for("TracepointState::enabled() false after perf closes", || {
        !TP_PERF.enabled()
    })?;
    Ok(())
}

/// `write_event!` results for the two tracepoints of [`ENABLE_TRACEFS`]: Informational with
/// keyword 1, Verbose with keyword 0x2a.
fn tracefs_writes() -> (u32, u32) {
    (
        eh::write_event!(ENABLE_TRACEFS, "Info", level(Informational), keyword(1)),
        eh::write_event!(
            ENABLE_TRACEFS,
            "Chatty",
            level(Verbose),
            keyword(0x2a),
            u32("n", &1)
        ),
    )
}

const EH_EBADF: u32 = EBADF as u32;

fn eventheader_follows_tracefs(cx: &mut Ctx) -> R {
    register_provider!(ENABLE_TRACEFS);
    check_eq!(
        tracefs_writes(),
        (EH_EBADF, EH_EBADF),
        "(L4K1, L5K2a) write_event! results after register"
    );
    // The crate documents the tracepoint name as ProviderName_L<level hex>K<keyword hex>.
    let (info, chatty) = ("UeClient_EnTracefs_L4K1", "UeClient_EnTracefs_L5K2a");
    check!(
        tracefs::exists(&format!("events/user_events/{chatty}")),
        "no tracepoint {chatty} in tracefs"
    );
    tracefs::set_enabled(info, true)?;
    cx.wait_for("L4K1 write_event! sends after enable", || {
        tracefs_writes().0 == 0
    })?;
    check_eq!(
        tracefs_writes(),
        (0, EH_EBADF),
        "(L4K1, L5K2a) write_event! results with only L4K1 enabled"
    );
    tracefs::set_enabled(info, false)?;
    cx.wait_for("L4K1 write_event! EBADF after disable", || {
        tracefs_writes().0 == EH_EBADF
    })?;
    check_eq!(
        tracefs_writes(),
        (EH_EBADF, EH_EBADF),
        "(L4K1, L5K2a) write_event! results after disable"
    );
    Ok(())
}

fn eventheader_follows_perf(cx: &mut Ctx) -> R {
    register_provider!(ENABLE_PERF);
    let write = || {
        eh::write_event!(
            ENABLE_PERF,
            "Warn",
            level(Warning),
            keyword(0x10),
            u32("n", &1)
        )
    };
    check_eq!(write(), EH_EBADF, "write_event! after register");
    let perf = uapi::perf_open_tracepoint(tracefs::event_id("UeClient_EnPerf_L3K10")?)?;
    cx.wait_for("write_event! sends with perf attached", || write() == 0)?;
    drop(perf);
    cx.wait_for("write_event! EBADF after perf closes", || {
        write() == EH_EBADF
    })?;
    Ok(())
}

/// Pins a divergence from the docs, which say `provider_enabled!` "returns true if a
/// `write_event!` macro using the specified PROVIDER_SYMBOL, level, and keyword would be
/// enabled" by registering an inert tracepoint. Its section entry lacks `#[used]` (unlike
/// `write_event!`'s), so the linker drops it, `register()` never sees it, and it reads false
/// for good. If this fails, the crate has been fixed: use `provider_enabled!` again.
fn provider_enabled_never_registered(cx: &mut Ctx) -> R {
    register_provider!(PROBE);
    tracefs::set_enabled("UeClient_Probe_L4K1", true)?;
    cx.wait_for("write_event! sends after enable", || {
        eh::write_event!(PROBE, "Probe", level(Informational), keyword(1)) == 0
    })?;
    check!(
        !eh::provider_enabled!(PROBE, eh::Level::Informational, 1),
        "provider_enabled!(Informational, 1) reads true: its tracepoint is registered now (crate fixed?)"
    );
    cx.note(
        "provider_enabled! reads false while write_event! of the same level and keyword sends"
            .into(),
    );
    tracefs::set_enabled("UeClient_Probe_L4K1", false)?;
    Ok(())
}

/// `trace` lines that are events of `name`.
fn lines_of(name: &str) -> Result<Vec<String>, Stop> {
    Ok(tracefs::trace_lines()?
        .into_iter()
        .filter(|l| l.contains(&format!(" {name}: ")))
        .collect())
}

/// Whether a `trace` line was written by `pid` (its `comm-pid` prefix).
fn by_pid(line: &str, pid: libc::pid_t) -> bool {
    line.split_whitespace()
        .next()
        .is_some_and(|task| task.ends_with(&format!("-{pid}")))
}

fn tracepoint_write_reaches_trace(cx: &mut Ctx) -> R {
    let (name, doc) = (cx.event_name(), cx.event_name());
    register(
        &TP_WRITE,
        &format!("{name} u32 count; u64 big; char[6] tag"),
    )?;
    // The crate's doc example for register(), verbatim but for the name.
    register(
        &TP_DOC_EXAMPLE,
        &format!("{doc} u32 Field1; char Field2[20]"),
    )?;
    tracefs::clear_trace()?;
    for n in [&name, &doc] {
        tracefs::set_enabled(n, true)?;
    }
    cx.wait_for("both tracepoints enabled", || {
        TP_WRITE.enabled() && TP_DOC_EXAMPLE.enabled()
    })?;
    let (count, big, tag) = (7u32, 0x1_0000_0001u64, *b"hello\0");
    let err = TP_WRITE.write(&mut [
        EventDataDescriptor::zero(),
        EventDataDescriptor::from_value(&count),
        EventDataDescriptor::from_value(&big),
        EventDataDescriptor::from_bytes(&tag),
    ]);
    check_eq!(err, 0, "TracepointState::write with three fields");
    let (field1, field2) = (5u32, *b"twenty bytes of text");
    let err = TP_DOC_EXAMPLE.write(&mut [
        EventDataDescriptor::zero(),
        EventDataDescriptor::from_value(&field1),
        EventDataDescriptor::from_bytes(&field2),
    ]);
    check_eq!(
        err,
        0,
        "TracepointState::write of the doc example's 24 bytes"
    );
    for n in [&name, &doc] {
        tracefs::set_enabled(n, false)?;
    }
    let (lines, doc_lines) = (lines_of(&name)?, lines_of(&doc)?);
    cx.snapshot(
        "trace",
        format!("{}\n{}\n", lines.join("\n"), doc_lines.join("\n")),
    );
    check_eq!(lines.len(), 1, "lines for {name} in trace: {lines:?}");
    let want = format!("{name}: count=0x7 (7) big=0x100000001 (4294967297) tag=hello");
    check!(
        lines[0].ends_with(&want),
        "trace line {:?} does not end with {want:?}",
        lines[0]
    );
    // `char Field2[20]` parses as type `char`, name `Field2[20]`: one byte, not an array.
    let format = tracefs::format(&doc)?;
    check!(
        format.contains("field:char Field2[20];\toffset:12;\tsize:1;"),
        "the crate doc's `char Field2[20]` should be a 1-byte char named \"Field2[20]\" to the kernel: format is {format:?}"
    );
    check_eq!(
        doc_lines.len(),
        1,
        "lines for {doc} in trace: {doc_lines:?}"
    );
    let want = format!("{doc}: Field1=0x5 (5) Field2[20]='t'(116)");
    check!(
        doc_lines[0].ends_with(&want),
        "trace line {:?} does not end with {want:?}",
        doc_lines[0]
    );
    Ok(())
}

/// An eventheader payload as the crate documents it: an 8-byte header (flags, version, id,
/// tag, opcode, level), a metadata extension (u16 size, u16 kind 1) holding the event name
/// and field definitions, then the field data.
struct Decoded {
    flags: u8,
    level: u8,
    event: String,
    meta: Vec<u8>,
    data: Vec<u8>,
}

fn decode_eventheader(raw: &[u8]) -> Result<Decoded, Stop> {
    // Skip the kernel's 8-byte trace_entry.
    let p = raw.get(8..).unwrap_or_default();
    check!(p.len() >= 12, "eventheader payload of {} bytes", p.len());
    let (flags, level) = (p[0], p[7]);
    let (meta_len, kind) = (
        u16::from_le_bytes([p[8], p[9]]) as usize,
        u16::from_le_bytes([p[10], p[11]]) & 0x7fff,
    );
    check_eq!(kind, 1, "extension kind (1 = metadata)");
    let Some(meta) = p.get(12..12 + meta_len) else {
        fail!(
            "metadata of {meta_len} bytes past the payload's {}",
            p.len()
        )
    };
    let end = meta.iter().position(|&b| b == 0).unwrap_or(meta.len());
    Ok(Decoded {
        flags,
        level,
        event: String::from_utf8_lossy(&meta[..end]).into_owned(),
        meta: meta[end + 1..].to_vec(),
        data: p[12 + meta_len..].to_vec(),
    })
}

/// Checks `data` is `want` followed only by the perf sample's zero padding.
fn check_data(what: &str, data: &[u8], want: &[u8]) -> R {
    check!(
        data.starts_with(want)
            && data.len() - want.len() < 8
            && data[want.len()..].iter().all(|&b| b == 0),
        "{what}: data {data:02x?}, want {want:02x?} then padding"
    );
    Ok(())
}

fn eventheader_write_reaches_trace(cx: &mut Ctx) -> R {
    register_provider!(WRITE);
    let tp = "UeClient_Write_L4K5";
    tracefs::clear_trace()?;
    tracefs::set_enabled(tp, true)?;
    let ring = PerfRing::open(tracefs::event_id(tp)?)?;
    // The first `Bare` that sends is the one event without fields.
    cx.wait_for("write_event! sends after enable", || {
        eh::write_event!(WRITE, "Bare", level(Informational), keyword(5)) == 0
    })?;
    let (count, msg) = (42u32, "hello");
    let fields = eh::write_event!(
        WRITE,
        "Fields",
        level(Informational),
        keyword(5),
        u32("count", &count),
        str8("msg", msg)
    );
    check_eq!(fields, 0, "write_event! with fields");
    let samples = ring.raw_samples()?;
    tracefs::set_enabled(tp, false)?;
    let lines = lines_of(tp)?;
    cx.snapshot("trace", lines.join("\n") + "\n");
    // `trace` decodes only the fields in the registered command: the eventheader header.
    // flags 7 = pointer64 | little-endian | extension; level 4 = Informational.
    let want = format!(
        "{tp}: eventheader_flags=(7) version=(0) id=0x0 (0) tag=0x0 (0) opcode=(0) level=(4)"
    );
    check_eq!(lines.len(), 2, "lines for {tp} in trace: {lines:?}");
    for l in &lines {
        check!(
            l.ends_with(&want),
            "trace line {l:?} does not end with {want:?}"
        );
    }
    check_eq!(samples.len(), 2, "perf samples of {tp}");
    let (b, f) = (
        decode_eventheader(&samples[0])?,
        decode_eventheader(&samples[1])?,
    );
    check_eq!(
        (b.flags, b.level, f.flags, f.level),
        (7, 4, 7, 4),
        "eventheader (flags, level) of the two events"
    );
    check_eq!(
        (b.event.as_str(), f.event.as_str()),
        ("Bare", "Fields"),
        "event names in the metadata"
    );
    check!(
        b.meta.is_empty(),
        "metadata of the field-less event has field definitions {:02x?}",
        b.meta
    );
    // Field definitions: name, NUL, encoding (Value32 = 4, StringLength16Char8 = 10).
    check_eq!(
        f.meta,
        b"count\0\x04msg\0\x0a".to_vec(),
        "field definitions of Fields"
    );
    check_data("Bare", &b.data, &[])?;
    check_data(
        "Fields",
        &f.data,
        &[
            &count.to_le_bytes()[..],
            &5u16.to_le_bytes(),
            msg.as_bytes(),
        ]
        .concat(),
    )
}

/// The eventheader view of [`FORKED`]; it writes an event whenever it reads enabled.
fn fork_eh_sends() -> bool {
    eh::write_event!(
        FORKED,
        "Forked",
        level(Informational),
        keyword(1),
        u32("n", &7)
    ) == 0
}

fn fork_child_follows(cx: &mut Ctx) -> R {
    register_provider!(FORKED);
    let name = cx.event_name();
    register(&TP_FORK, &format!("{name} u32 n"))?;
    let eh_tp = "UeClient_Fork_L4K1";
    tracefs::clear_trace()?;
    let to_parent = Pipe::new()?;
    let deadline = cx.poll_deadline;
    let child = fork(|| {
        // The child counts its eventheader sends: polling sends one whenever it reads enabled.
        let sent = std::cell::Cell::new(0u8);
        let state = || {
            let on = fork_eh_sends();
            sent.set(sent.get() + on as u8);
            (on, TP_FORK.enabled())
        };
        check_eq!(
            state(),
            (false, false),
            "child's (eventheader, tracepoint) state at fork"
        );
        to_parent.send(b"f")?;
        wait_until("child sees both enabled", deadline, || {
            state() == (true, true)
        })?;
        check_eq!(write_u32(&TP_FORK, 7), 0, "child's TracepointState::write");
        // Every send so far came while the event was enabled: each must be in the trace. The
        // parent disables only after this message.
        let sent_enabled = sent.get();
        to_parent.send(b"w")?;
        wait_until("child sees both disabled", deadline, || {
            state() == (false, false)
        })?;
        to_parent.send(&[b'd', sent_enabled, sent.get()])
    })?;
    let pid = child.pid;
    let (mut sent_enabled, mut sent) = (0, 0);
    let parent = (|| {
        to_parent.expect(b'f', STEP)?;
        for n in [eh_tp, &name] {
            tracefs::set_enabled(n, true)?;
        }
        cx.wait_for("parent sees both enabled", || {
            (fork_eh_sends(), TP_FORK.enabled()) == (true, true)
        })?;
        to_parent.expect(b'w', STEP)?;
        for n in [eh_tp, &name] {
            tracefs::set_enabled(n, false)?;
        }
        cx.wait_for("parent sees both disabled", || {
            (fork_eh_sends(), TP_FORK.enabled()) == (false, false)
        })?;
        let got = to_parent.recv(3, STEP)?;
        check!(
            got.len() == 3 && got[0] == b'd',
            "expected the child's counts of sends, got {got:?}"
        );
        (sent_enabled, sent) = (got[1] as usize, got[2] as usize);
        Ok(())
    })();
    child.join_with(parent, STEP)?;
    // The parent's own polling sent events too, under its pid.
    let eh_lines: Vec<String> = lines_of(eh_tp)?
        .into_iter()
        .filter(|l| by_pid(l, pid))
        .collect();
    let tp_lines = lines_of(&name)?;
    cx.snapshot(
        "trace",
        format!(
            "{}\n{}\n",
            eh_lines.first().map_or("", |l| l.as_str()),
            tp_lines.join("\n")
        ),
    );
    check!(
        sent_enabled >= 1,
        "the child saw both enabled without an eventheader send"
    );
    // A send while the parent disables can lose its race with the detach: the child read the
    // bit set, then the probe went before its write() (the bit is cleared after the probe is
    // removed), and the kernel accepts the write with nowhere to record it. So every send made
    // while the event was surely enabled is in the trace, and none beyond the child's count.
    check!(
        (sent_enabled..=sent).contains(&eh_lines.len()),
        "{eh_tp} lines in trace from child {pid}: {}, want {sent_enabled} (its sends while \
         enabled) to {sent} (all its sends): {eh_lines:?}",
        eh_lines.len()
    );
    check!(
        tp_lines.len() == 1 && by_pid(&tp_lines[0], pid),
        "{name} lines in trace, want one from child {pid}: {tp_lines:?}"
    );
    check!(
        tp_lines[0].ends_with(&format!("{name}: n=0x7 (7)")),
        "child's {name} line {:?}",
        tp_lines[0]
    );
    Ok(())
}

fn fork_cow_both_follow(cx: &mut Ctx) -> R {
    let name = cx.event_name();
    register(&TP_COW.tp, &format!("{name} u32 n"))?;
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("enabled before fork", || TP_COW.tp.enabled())?;
    let to_parent = Pipe::new()?;
    let deadline = cx.poll_deadline;
    let child = fork(|| {
        // The child's first write to the page gives it its own copy (the parent's stays shared
        // read-only until it writes too).
        TP_COW.scratch.fetch_add(1, Ordering::Relaxed);
        to_parent.send(b"c")?;
        wait_until("child's copy disabled", deadline, || !TP_COW.tp.enabled())?;
        to_parent.send(b"d")?;
        wait_until("child's copy enabled again", deadline, || {
            TP_COW.tp.enabled()
        })?;
        to_parent.send(b"e")?;
        wait_until(
            "child's copy disabled after the parent wrote its page",
            deadline,
            || !TP_COW.tp.enabled(),
        )?;
        check_eq!(
            write_u32(&TP_COW.tp, 1),
            EBADF,
            "child's write once disabled"
        );
        to_parent.send(b"f")
    })?;
    let parent = (|| {
        to_parent.expect(b'c', STEP)?;
        tracefs::set_enabled(&name, false)?;
        cx.wait_for("parent's word disabled after the child's copy", || {
            !TP_COW.tp.enabled()
        })?;
        to_parent.expect(b'd', STEP)?;
        tracefs::set_enabled(&name, true)?;
        cx.wait_for("parent's word enabled again", || TP_COW.tp.enabled())?;
        to_parent.expect(b'e', STEP)?;
        TP_COW.scratch.fetch_add(1, Ordering::Relaxed);
        tracefs::set_enabled(&name, false)?;
        cx.wait_for(
            "parent's word disabled after its own write to the page",
            || !TP_COW.tp.enabled(),
        )?;
        to_parent.expect(b'f', STEP)
    })();
    child.join_with(parent, STEP)
}

/// The fd the crates opened on `user_events_data` (theirs is O_WRONLY; the Ctx's is O_RDWR).
fn crate_data_fd() -> Result<i32, Stop> {
    let mut found = vec![];
    for e in std::fs::read_dir("/proc/self/fd")? {
        let e = e?;
        let Ok(fd) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let is_data = std::fs::read_link(e.path())
            .is_ok_and(|t| t.as_os_str() == tracefs::path("user_events_data").as_str());
        if is_data && unsafe { libc::fcntl(fd, libc::F_GETFL) } & libc::O_ACCMODE == libc::O_WRONLY
        {
            found.push(fd);
        }
    }
    check_eq!(
        found.len(),
        1,
        "O_WRONLY user_events_data fds in this process: {found:?}"
    );
    Ok(found[0])
}

fn status_lists(name: &str) -> Result<bool, Stop> {
    Ok(tracefs::status()?
        .lines()
        .any(|l| l == name || l.starts_with(&format!("{name} "))))
}

fn unregister_reads_disabled(cx: &mut Ctx) -> R {
    register_provider!(UNREG);
    let (name, boxed_name) = (cx.event_name(), cx.event_name());
    register(&TP_UNREG, &format!("{name} u32 n"))?;
    let boxed = Box::pin(TracepointState::new(0));
    let c = CString::new(format!("{boxed_name} u32 n")).unwrap();
    // Safety: dropped (and so unregistered) below, before its memory goes.
    check_eq!(
        unsafe { boxed.as_ref().register(&c) },
        0,
        "register of a boxed TracepointState"
    );
    let addr = &*boxed as *const TracepointState as u64;
    let eh_tp = "UeClient_Unreg_L4K1";
    let eh_on = || eh::write_event!(UNREG, "Probe", level(Informational), keyword(1)) == 0;
    for n in [eh_tp, &name, &boxed_name] {
        tracefs::set_enabled(n, true)?;
    }
    cx.wait_for("all three enabled", || {
        eh_on() && TP_UNREG.enabled() && boxed.enabled()
    })?;

    check_eq!(UNREG.unregister(), 0, "Provider::unregister()");
    check_eq!(TP_UNREG.unregister(), 0, "TracepointState::unregister()");
    drop(boxed);
    // UNREG clears the bit synchronously, so the crates read disabled at once.
    check_eq!(
        (eh_on(), TP_UNREG.enabled()),
        (false, false),
        "(write_event! sends, static enabled()) right after unregister"
    );
    check_eq!(
        write_u32(&TP_UNREG, 1),
        EBADF,
        "TracepointState::write after unregister"
    );
    // The boxed state's enabler is gone from the kernel: UNREG of either of its words (the
    // enable word is one of them) finds nothing, and touches no freed memory doing so.
    for off in [0, 4] {
        check_eq!(
            uapi::unreg(cx.fd(), addr + off, 0).err(),
            Some(Errno(libc::ENOENT)),
            "UNREG at dropped state + {off}"
        );
    }
    // A word still registered for `name`, through an fd of its own, is the control that the
    // enables' updates ran (`name`'s comes after `eh_tp`'s). It is unregistered and its fd
    // closed below, so that it holds no reference when the crate's fd closes.
    let witness_fd = tracefs::open_data()?;
    let witness = Mapping::anon(libc::MAP_PRIVATE)?;
    let witness_at = witness.addr(0) as u64;
    uapi::reg(
        witness_fd.as_fd(),
        &format!("{name} u32 n"),
        witness_at,
        4,
        0,
        0,
    )?;
    for n in [eh_tp, &name] {
        tracefs::set_enabled(n, false)?;
    }
    cx.wait_for("the witness word cleared by the disables", || {
        witness.u32_at(0) == 0
    })?;
    for n in [eh_tp, &name] {
        tracefs::set_enabled(n, true)?;
    }
    let wrong = "an unregistered word enabled again";
    let control = cx.wait_for_unless(
        "the witness word set by the enables",
        || witness.u32_at(0) == 1,
        wrong,
        || eh_on() || TP_UNREG.enabled(),
    )?;
    cx.never_after(wrong, control, || eh_on() || TP_UNREG.enabled())?;
    uapi::unreg(witness_fd.as_fd(), witness_at, 0)?;
    drop(witness_fd);
    for n in [eh_tp, &name, &boxed_name] {
        tracefs::set_enabled(n, false)?;
    }

    // The crate's `user_events_data` fd stays open (a leaked static): it keeps its reference
    // to every event it registered, so unregister leaves them listed and undeletable.
    for n in [eh_tp, &name, &boxed_name] {
        check!(
            status_lists(n)?,
            "{n} not in user_events_status after unregister, while the crate's fd is open"
        );
        check_eq!(
            uapi::del(cx.fd(), n).err(),
            Some(Errno(libc::EBUSY)),
            "DEL of {n} after unregister"
        );
    }
    let fd = crate_data_fd()?;
    // Only the process's exit would close it otherwise; nothing in this process uses it again.
    check_eq!(
        unsafe { libc::close(fd) },
        0,
        "close of the crate's fd {fd}"
    );
    for n in [eh_tp, &name, &boxed_name] {
        cx.wait_for(
            &format!("{n} gone from user_events_status once the crate's fd closed"),
            || !status_lists(n).unwrap_or(true),
        )?;
    }
    Ok(())
}

fn exec_fresh_registration(cx: &mut Ctx) -> R {
    register_provider!(EXEC);
    let tp = "UeClient_Exec_L4K1";
    let exec_on = || eh::write_event!(EXEC, "Parent", level(Informational), keyword(1)) == 0;
    let fd = crate_data_fd()?;
    let fd_flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if fd_flags & libc::FD_CLOEXEC == 0 {
        cx.note(format!(
            "the crate's user_events_data fd {fd} lacks FD_CLOEXEC: it leaks into exec'd images"
        ));
    }
    tracefs::clear_trace()?;
    let (to_helper, to_parent) = (Pipe::new()?, Pipe::new()?);
    let args = [
        to_helper.rd.as_raw_fd().to_string(),
        to_parent.wr.as_raw_fd().to_string(),
        cx.poll_deadline.as_millis().to_string(),
    ];
    // The forked child holds the provider's registrations (copied at fork) when it execs.
    let child = exec_helper("client-exec", &args, || {
        keep_across_exec(to_helper.rd.as_fd())?;
        keep_across_exec(to_parent.wr.as_fd())
    })?;
    let pid = child.pid;
    let parent = (|| {
        to_parent.expect(b'r', STEP)?;
        tracefs::set_enabled(tp, true)?;
        cx.wait_for("parent's write_event! sends", exec_on)?;
        to_helper.send(b"e")?;
        to_parent.expect(b'w', STEP)?;
        Ok(tracefs::set_enabled(tp, false)?)
    })();
    child.join_with(parent, STEP)?;
    let lines: Vec<String> = lines_of(tp)?
        .into_iter()
        .filter(|l| by_pid(l, pid))
        .collect();
    cx.snapshot("trace", lines.join("\n") + "\n");
    check_eq!(
        lines.len(),
        1,
        "{tp} lines in trace from the exec'd {pid}: {lines:?}"
    );
    Ok(())
}

/// The exec'd side of this family; `args` follow `--helper NAME`. Returns the exit code.
pub fn helper(which: &str, args: &[&str]) -> i32 {
    match (which, args) {
        ("client-exec", [rd, wr, ms]) => helper_verdict(|| registered_after_exec(rd, wr, ms)),
        _ => {
            eprintln!("ue-scenarios: unknown helper {which} {args:?}");
            2
        }
    }
}

fn registered_after_exec(rd: &str, wr: &str, ms: &str) -> R {
    let (Ok(rd), Ok(wr), Ok(ms)) = (rd.parse(), wr.parse(), ms.parse()) else {
        fail!("bad helper args {rd:?} {wr:?} {ms:?}")
    };
    let steps = Pipe::from_raw(rd, wr);
    // Sends at most once: the first time it reads enabled.
    let on = || {
        eh::write_event!(
            EXEC,
            "AfterExec",
            level(Informational),
            keyword(1),
            u32("n", &1)
        ) == 0
    };
    check!(!on(), "the new image's write_event! sent before register");
    register_provider!(EXEC);
    steps.send(b"r")?;
    steps.expect(b'e', STEP)?;
    wait_until(
        "the new image's write_event! sends",
        Duration::from_millis(ms),
        on,
    )?;
    steps.send(b"w")
}
