//! Helpers shared by the coverage families (types, validate, limits, privilege, multi):
//! `trace` lines as raw bytes (the kernel prints printable Latin-1 bytes as they are, so
//! the text is not always UTF-8), a perf ring buffer, the `format` file's lines, the
//! `user_events_status` counters, and dropping a forked child's privileges.

use std::io;

use crate::framework::{Ctx, Mapping, Stop, R};
use crate::{check, check_eq, fail, tracefs, uapi};

/// The lines of `trace` for `name` (the text after `NAME: `), as bytes, in order.
pub fn trace_fields(name: &str) -> Result<Vec<Vec<u8>>, Stop> {
    let p = tracefs::instance_path("trace")?;
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

/// `Active: N` of `user_events_status`: how many events the kernel holds.
pub fn active_events() -> Result<u32, Stop> {
    let s = tracefs::status()?;
    let line = s.lines().find_map(|l| l.strip_prefix("Active: "));
    match line.and_then(|n| n.trim().parse().ok()) {
        Some(n) => Ok(n),
        None => fail!("user_events_status has no Active: line:\n{s}"),
    }
}

/// `Busy: N` of `user_events_status`: how many events something (ftrace, perf) is attached to.
pub fn busy_events() -> Result<u32, Stop> {
    let s = tracefs::status()?;
    let line = s.lines().find_map(|l| l.strip_prefix("Busy: "));
    match line.and_then(|n| n.trim().parse().ok()) {
        Some(n) => Ok(n),
        None => fail!("user_events_status has no Busy: line:\n{s}"),
    }
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

/// Checks a perf raw sample is the record the kernel builds for `payload`: a `trace_entry`
/// whose type is the event's id and whose pid is this process, then the payload, then only
/// zero padding.
pub fn check_sample(what: &str, raw: &[u8], id: u64, payload: &[u8]) -> R {
    // perf's layout of a tracepoint's raw sample: the u32 size, the trace_entry (8 bytes) and
    // the payload, zero-padded so that size and data end on a u64 boundary (every
    // perf_trace_buf_alloc caller sizes its record so); a reader steps over records by it.
    let want = (4 + 8 + payload.len()).next_multiple_of(8) - 4;
    check!(
        raw.len() == want,
        "{what}: sample of {} bytes for a payload of {}, want {want} (u32 size, 8-byte \
         trace_entry and payload, padded to a u64 boundary)",
        raw.len(),
        payload.len()
    );
    let ty = u16::from_ne_bytes([raw[0], raw[1]]) as u64;
    let pid = i32::from_ne_bytes(raw[4..8].try_into().unwrap());
    check_eq!(ty, id, "{what}: trace_entry type");
    check_eq!(pid, unsafe { libc::getpid() }, "{what}: trace_entry pid");
    let (body, pad) = raw[8..].split_at(payload.len());
    check!(
        body == payload && pad.iter().all(|&b| b == 0),
        "{what}: sample body {body:02x?} (padding {pad:02x?}), want {payload:02x?}"
    );
    Ok(())
}

pub const CAP_DAC_READ_SEARCH: u32 = 2;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;

/// In a forked child: become `uid`/`gid` with no supplementary groups and exactly the
/// capabilities `keep` (effective and permitted), then confirm it from /proc/self/status.
pub fn become_user(uid: u32, gid: u32, keep: &[u32]) -> R {
    unsafe {
        if uid != 0 && libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
            fail!("PR_SET_KEEPCAPS: {}", io::Error::last_os_error());
        }
        if libc::setgroups(0, std::ptr::null()) != 0 {
            fail!("setgroups: {}", io::Error::last_os_error());
        }
        if libc::setresgid(gid, gid, gid) != 0 {
            fail!("setresgid {gid}: {}", io::Error::last_os_error());
        }
        if libc::setresuid(uid, uid, uid) != 0 {
            fail!("setresuid {uid}: {}", io::Error::last_os_error());
        }
    }
    set_caps(keep)
}

/// Sets the effective and permitted capability sets to exactly `keep` (inheritable empty).
pub fn set_caps(keep: &[u32]) -> R {
    let mask: u64 = keep.iter().fold(0, |m, &c| m | 1 << c);
    // struct __user_cap_header_struct { u32 version; int pid; }, version 3, then two
    // struct __user_cap_data_struct { u32 effective, permitted, inheritable; }.
    let header = [0x2008_0522u32, 0];
    let (lo, hi) = (mask as u32, (mask >> 32) as u32);
    let data = [lo, lo, 0, hi, hi, 0];
    let r = unsafe { libc::syscall(libc::SYS_capset, header.as_ptr(), data.as_ptr()) };
    check!(r == 0, "capset {mask:#x}: {}", io::Error::last_os_error());
    let status = std::fs::read_to_string("/proc/self/status")?;
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok());
    check_eq!(eff, Some(mask), "CapEff after dropping privileges");
    Ok(())
}

/// Every capability this kernel knows (from /proc/sys/kernel/cap_last_cap) except `drop`.
pub fn all_caps_but(drop: &[u32]) -> Result<Vec<u32>, Stop> {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")?
        .trim()
        .parse()
        .map_err(|e| Stop::Fail(format!("cap_last_cap: {e}")))?;
    Ok((0..=last).filter(|c| !drop.contains(c)).collect())
}

/// The errno of opening `path` with `flags`, or None when it opened.
pub fn open_errno(path: &str, flags: i32) -> Option<uapi::Errno> {
    let c = std::ffi::CString::new(path).unwrap();
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        Some(uapi::Errno::last())
    } else {
        unsafe { libc::close(fd) };
        None
    }
}

/// The `user_events_status` line of `name` (the name, then what uses it), if it has one.
pub fn status_line(name: &str) -> Result<Option<String>, Stop> {
    let s = tracefs::status()?;
    Ok(s.lines()
        .find(|l| *l == name || l.starts_with(&format!("{name} ")))
        .map(str::to_owned))
}

/// DEL of `name`, retried while it is EBUSY: since the stable fix that defers an enabler's
/// event reference to an RCU work item, the last references of an UNREG'd or exited
/// registration go some time after the call returns. Returns the first other outcome.
pub fn del_once_unused(
    fd: std::os::fd::BorrowedFd<'_>,
    name: &str,
    deadline: std::time::Duration,
) -> uapi::SysResult<()> {
    let mut last = Ok(());
    let _ = crate::framework::poll_until(deadline, &mut || {
        last = uapi::del(fd, name);
        last != Err(uapi::Errno(libc::EBUSY))
    });
    last
}

/// Writes one command to `dynamic_events` (opened for appending: O_TRUNC would delete every
/// dynamic event) and returns the errno the write gave, or None when it took the whole line.
pub fn dynamic_events_errno(cmd: &str) -> Result<Option<uapi::Errno>, Stop> {
    use std::io::Write;
    let p = tracefs::path("dynamic_events");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&p)
        .map_err(|e| Stop::Fail(format!("{p}: {e}")))?;
    match f.write(cmd.as_bytes()) {
        Ok(n) if n == cmd.len() => Ok(None),
        Ok(n) => fail!("{p}: {cmd:?} written {n} of {} bytes", cmd.len()),
        Err(e) => Ok(Some(uapi::Errno(e.raw_os_error().unwrap_or(0)))),
    }
}

/// This process pinned to the CPU it runs on, until dropped; the children and threads it
/// makes inherit that. For what the kernel keeps per CPU and reuses: a task's kernel stack
/// (leaks: with parent and child on different CPUs, each stack freed on one is vfree'd
/// lazily, its vmap_area left in unreclaimable slab, 196 kB for 2000 threads unpinned), and
/// perf's record buffer (validate: one sample's bytes under the next one's padding).
pub struct Pinned {
    old: libc::cpu_set_t,
}

impl Pinned {
    pub fn here() -> Result<Self, Stop> {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        if unsafe { libc::sched_getaffinity(0, size, &mut old) } != 0 {
            fail!("sched_getaffinity: {}", uapi::Errno::last());
        }
        let cpu = unsafe { libc::sched_getcpu() };
        if cpu < 0 {
            fail!("sched_getcpu: {}", uapi::Errno::last());
        }
        let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        unsafe { libc::CPU_SET(cpu as usize, &mut one) };
        if unsafe { libc::sched_setaffinity(0, size, &one) } != 0 {
            fail!("sched_setaffinity to CPU {cpu}: {}", uapi::Errno::last());
        }
        Ok(Pinned { old })
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        unsafe { libc::sched_setaffinity(0, size, &self.old) };
    }
}
