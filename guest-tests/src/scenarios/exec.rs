//! exec and exit end a process's registrations (its user_event_mm goes); they never clear a
//! bit, and they leave other processes' registrations, including a vfork parent's, alone.
//! The exec'd side runs as `ue-scenarios --helper NAME ...` ([`helper`]).

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use crate::framework::{
    clone_vm, exec_helper, fork, helper_verdict, keep_across_exec, poll_until, Ctx, Family,
    Mapping, Pipe, Scenario, Stop, R, REMOTE_WRITE,
};
use crate::uapi::{self, Errno};
use crate::{check, check_eq, fail, tracefs};

const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "registrations_dropped",
        "after exec the old (addr, bit) is gone: a new page there is never written, UNREG is ENOENT, REG works",
        registrations_dropped,
    )
    .fault_worker(true),
    Scenario::new(
        "fd_survives_exec",
        "a data fd kept across exec still writes events with the index it got before exec",
        fd_survives_exec,
    ),
    Scenario::new(
        "exit_freezes_child_bit",
        "a child's exit clears no bit and ends only its own registrations; the parent's still follow",
        exit_freezes_child_bit,
    ),
    Scenario::new(
        "vfork_exec_keeps_parent",
        "a vfork child that execs leaves the registrations it shared with its parent in place",
        vfork_exec_keeps_parent,
    ),
];

pub const FAMILY: Family = Family::new("exec", SCENARIOS).requires(REMOTE_WRITE);

const STEP: Duration = Duration::from_secs(10);
/// Free in both the old and the new image (static-pie images and mmaps live far above).
const FIXED_ADDR: usize = 0x3000_0000_0000;

fn private_rw() -> (i32, i32) {
    (
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
    )
}

/// The exec'd side of this family; `args` follow `--helper NAME`. Returns the exit code.
pub fn helper(which: &str, args: &[&str]) -> i32 {
    match (which, args) {
        ("exec-dropped", [rd, wr, name, window_ms]) => {
            helper_verdict(|| dropped_after_exec(pipe(rd, wr)?, name, window_ms))
        }
        ("exec-write", [fd, index]) => helper_verdict(|| write_after_exec(fd, index)),
        ("exit0", []) => 0,
        _ => {
            eprintln!("ue-scenarios: unknown helper {which} {args:?}");
            2
        }
    }
}

fn pipe(rd: &str, wr: &str) -> Result<Pipe, Stop> {
    match (rd.parse(), wr.parse()) {
        (Ok(rd), Ok(wr)) => Ok(Pipe::from_raw(rd, wr)),
        _ => fail!("bad helper fds {rd:?} {wr:?}"),
    }
}

fn registrations_dropped(cx: &mut Ctx) -> R {
    // The parent's registration keeps the event alive and shows when an enable has happened.
    let witness = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    cx.reg(&name, witness.addr(0), 4, 0)?;
    let (to_helper, to_parent) = (Pipe::new()?, Pipe::new()?);
    let fd = cx.fd();
    let args = [
        to_helper.rd.as_raw_fd().to_string(),
        to_parent.wr.as_raw_fd().to_string(),
        name.clone(),
        // The helper watches only after the parent's witness bit shows the enable's update
        // done (a control, as in Ctx::never_after), so the short window after a control; its
        // floor, since the control's latency is not known yet when the helper is exec'd.
        cx.negative_window_after(Duration::ZERO)
            .as_millis()
            .to_string(),
    ];
    let child = exec_helper("exec-dropped", &args, || {
        let (prot, flags) = private_rw();
        let old = Mapping::map_at(
            FIXED_ADDR as *const u8,
            4096,
            prot,
            flags | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )?;
        uapi::reg(fd, &name, old.addr(0) as u64, 4, 0, 0)?;
        // Left mapped: exec replaces the whole address space.
        old.forget();
        keep_across_exec(to_helper.rd.as_fd())?;
        keep_across_exec(to_parent.wr.as_fd())
    })?;
    let parent = (|| {
        to_parent.expect(b'r', STEP)?;
        tracefs::set_enabled(&name, true)?;
        cx.wait_for("witness bit set", || witness.u32_at(0) == 1)?;
        to_helper.send(b"e")
    })();
    child.join_with(parent, STEP)
}

/// `window_ms`: the scenario's negative window after a control ([`Ctx::negative_window_after`]).
fn dropped_after_exec(steps: Pipe, name: &str, window_ms: &str) -> R {
    let Ok(window) = window_ms.parse().map(Duration::from_millis) else {
        fail!("bad helper window {window_ms:?}")
    };
    let (prot, flags) = private_rw();
    let page = Mapping::map_at(
        FIXED_ADDR as *const u8,
        4096,
        prot,
        flags | libc::MAP_FIXED_NOREPLACE,
        -1,
        0,
    )?;
    // Present and writable, so a leftover registration would be written synchronously.
    crate::framework::write32(page.addr(0), 0);
    let data = tracefs::open_data()?;
    check_eq!(
        uapi::unreg(data.as_fd(), FIXED_ADDR as u64, 0).err(),
        Some(Errno(libc::ENOENT)),
        "UNREG of the pre-exec (addr, bit)"
    );
    steps.send(b"r")?;
    steps.expect(b'e', STEP)?;
    check!(
        poll_until(window, &mut || page.u32_at(0) != 0).is_err(),
        "the kernel wrote {:#x} into the new page at the pre-exec address",
        page.u32_at(0)
    );
    uapi::reg(data.as_fd(), name, FIXED_ADDR as u64, 4, 0, 0)
        .map_err(|e| Stop::Fail(format!("REG after exec: {e}")))?;
    check_eq!(
        page.u32_at(0),
        1,
        "word right after a fresh REG of the enabled event"
    );
    Ok(())
}

fn fd_survives_exec(cx: &mut Ctx) -> R {
    let witness = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    cx.reg(&format!("{name} u32 v"), witness.addr(0), 4, 0)?;
    tracefs::clear_trace()?;
    tracefs::set_enabled(&name, true)?;
    let kept: OwnedFd = tracefs::open_data()?;
    // The second fd's own first index: 0, which the helper uses after exec.
    let index = uapi::reg(
        kept.as_fd(),
        &format!("{name} u32 v"),
        witness.addr(4) as u64,
        4,
        0,
        0,
    )?;
    let args = [kept.as_raw_fd().to_string(), index.to_string()];
    exec_helper("exec-write", &args, || keep_across_exec(kept.as_fd()))?.join(STEP)?;
    let lines: Vec<String> = tracefs::trace_lines()?
        .into_iter()
        .filter(|l| l.contains(&name))
        .collect();
    check_eq!(lines.len(), 1, "lines for {name} in trace: {lines:?}");
    let want = format!("{name}: v=0xc0ffee (12648430)");
    check!(
        lines[0].ends_with(&want),
        "trace line {:?} does not end with {want:?}",
        lines[0]
    );
    Ok(())
}

fn write_after_exec(fd: &str, index: &str) -> R {
    let (Ok(fd), Ok(index)) = (fd.parse::<i32>(), index.parse::<u32>()) else {
        fail!("bad helper args {fd:?} {index:?}")
    };
    let data = unsafe { BorrowedFd::borrow_raw(fd) };
    let n = uapi::write_event(data, index, &0xc0ffeeu32.to_ne_bytes())
        .map_err(|e| Stop::Fail(format!("write after exec: {e}")))?;
    check_eq!(n, 8, "bytes accepted by write() after exec");
    Ok(())
}

fn exit_freezes_child_bit(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_SHARED)?;
    let (parents, childs) = (cx.event_name(), cx.event_name());
    cx.reg(&parents, page.addr(0), 4, 0)?;
    let (fd, addr) = (cx.fd(), page.addr(0) as u64);
    let (to_child, to_parent) = (Pipe::new()?, Pipe::new()?);
    let child = fork(|| {
        uapi::reg(fd, &childs, addr, 4, 1, 0)?;
        to_parent.send(b"r")?;
        to_child.expect(b'x', STEP)
    })?;
    let parent = (|| {
        to_parent.expect(b'r', STEP)?;
        for n in [&parents, &childs] {
            tracefs::set_enabled(n, true)?;
        }
        cx.wait_for("both bits set", || page.u32_at(0) == 0b11)?;
        to_child.send(b"x")
    })();
    child.join_with(parent, STEP)?;
    check_eq!(page.u32_at(0), 0b11, "shared word after the child exited");
    for n in [&parents, &childs] {
        tracefs::set_enabled(n, false)?;
    }
    // Bit 1's only registration died with the child: it keeps the last value written.
    cx.wait_for("parent's bit 0 cleared, child's bit 1 frozen", || {
        page.u32_at(0) == 0b10
    })?;
    Ok(())
}

fn vfork_exec_keeps_parent(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    cx.reg(&name, page.addr(0), 4, 8)?;
    let exe = CString::new("/proc/self/exe").unwrap();
    let argv: Vec<CString> = ["ue-scenarios", "--helper", "exit0"]
        .iter()
        .map(|a| CString::new(*a).unwrap())
        .collect();
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let status = clone_vm(true, &mut || {
        unsafe { libc::execv(exe.as_ptr(), ptrs.as_ptr()) };
        127
    })?;
    check_eq!(status, 0, "exit status of the vfork child's exec'd helper");
    let other = cx.event_name();
    check_eq!(
        uapi::reg(cx.fd(), &other, page.addr(0) as u64, 4, 8, 0).err(),
        Some(Errno(libc::EADDRINUSE)),
        "re-REG after the child's exec"
    );
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("parent's bit 8 set on enable", || page.u32_at(0) == 1 << 8)?;
    Ok(())
}
