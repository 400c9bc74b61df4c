//! The runner's child processes: each scenario, upstream selftest and guest test program runs
//! in a forked child of its own, in a process group of its own, reporting on a pipe, so that a
//! crash, a hang or a stray fork ends that one run (killed with its whole group at its limit)
//! and never the runner.
//!
//! Nothing here waits on a child without a bound: a child stuck in the kernel (state `D`)
//! outlives SIGKILL, and a blocking `waitpid` on it would stop the whole runner. Reaping is
//! `WNOHANG`, woken by a pidfd where the kernel has them; a child that does not go within a
//! grace after its kill is written off ([`Spawned::write_off`]) and reaped later, if ever.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use guest_tests::framework::Pipe;

/// What a forked child left: the bytes it wrote to the pipe and how it ended.
pub struct Collected {
    pub bytes: Vec<u8>,
    end: ChildEnd,
}

/// How a collected child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEnd {
    /// Its limit ran out and it was killed (and reaped, or written off after the grace).
    TimedOut,
    /// Killed by this signal (a crash).
    Signal(i32),
    Exited(i32),
    /// Stuck in the kernel past the hang limit: killed and written off, not reaped.
    Hung,
}

impl Collected {
    pub fn end(&self) -> ChildEnd {
        self.end
    }
}

/// A forked child in a process group of its own (so a time-out also kills whatever it forked),
/// and the read end of the pipe it reports on.
pub struct Spawned {
    pub pid: libc::pid_t,
    pub rd: OwnedFd,
    /// Readable once the child has exited (None where the kernel has no pidfd_open: the
    /// caller then polls with a short timeout while a reap is due).
    pub pidfd: Option<OwnedFd>,
    pub started: Instant,
    pub limit: Duration,
    bytes: Vec<u8>,
    eof: bool,
    status: Option<i32>,
    /// When its group was killed at its limit: the grace for the reap runs from here.
    killed_at: Option<Instant>,
}

/// Forks; the child runs `child` with the write end of the pipe. `child` ends with `_exit` or
/// `exec`; should it return, the child exits 127.
pub fn spawn(limit: Duration, child: impl FnOnce(i32)) -> Result<Spawned, String> {
    let started = Instant::now();
    let pipe = Pipe::new().map_err(|e| format!("{e:?}"))?;
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        unsafe { libc::setpgid(0, 0) };
        let keep_out = NOT_FOR_CHILDREN.load(std::sync::atomic::Ordering::Relaxed);
        if keep_out >= 0 {
            unsafe { libc::close(keep_out) };
        }
        child(pipe.wr.as_raw_fd());
        unsafe { libc::_exit(127) };
    }
    // The parent sets the group too, so that it exists before anyone signals it.
    unsafe { libc::setpgid(pid, pid) };
    drop(pipe.wr);
    Ok(Spawned {
        pid,
        rd: pipe.rd,
        pidfd: pidfd_open(pid),
        started,
        limit,
        bytes: Vec::new(),
        eof: false,
        status: None,
        killed_at: None,
    })
}

/// An fd of the runner's that its children must not hold (the janitor's pipe: a stuck child
/// holding it would keep the janitor from ever seeing the end of its work). -1: none.
static NOT_FOR_CHILDREN: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Children forked from now on close `fd` first thing.
pub fn not_for_children(fd: i32) {
    NOT_FOR_CHILDREN.store(fd, std::sync::atomic::Ordering::Relaxed);
}

fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

impl Spawned {
    /// Time left before its limit (zero once killed).
    pub fn left(&self) -> Duration {
        if self.killed_at.is_some() {
            return Duration::ZERO;
        }
        self.limit.saturating_sub(self.started.elapsed())
    }

    /// Reads what the pipe holds; at EOF (the child and whatever it forked have closed the
    /// pipe) notes it.
    pub fn read_some(&mut self) {
        let mut chunk = [0u8; 65536];
        let n = unsafe {
            libc::read(
                self.rd.as_raw_fd(),
                chunk.as_mut_ptr() as *mut _,
                chunk.len(),
            )
        };
        if n <= 0 {
            self.eof = true;
            return;
        }
        if self.bytes.len() < 1 << 20 {
            self.bytes.extend_from_slice(&chunk[..n as usize]);
        }
    }

    pub fn eof(&self) -> bool {
        self.eof
    }

    /// Whether the child has sent its whole report (a scenario's End record is one line).
    pub fn reported(&self) -> bool {
        self.bytes.ends_with(b"\n")
    }

    /// Reaps the child if it has exited, without waiting; true once reaped.
    pub fn try_reap(&mut self) -> bool {
        if self.status.is_none() {
            let mut status = 0;
            if unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) } == self.pid {
                self.status = Some(status);
            }
        }
        self.status.is_some()
    }

    pub fn reaped(&self) -> bool {
        self.status.is_some()
    }

    /// SIGKILLs its whole group; [`Spawned::killed`] says since when.
    pub fn kill(&mut self) {
        kill_group(self.pid);
        self.killed_at.get_or_insert_with(Instant::now);
    }

    /// How long ago its group was killed, if it was.
    pub fn killed(&self) -> Option<Duration> {
        self.killed_at.map(|k| k.elapsed())
    }

    /// Done: it has exited and closed its pipe (or was killed and has exited).
    pub fn finished(&self) -> bool {
        self.status.is_some() && (self.eof || self.killed_at.is_some())
    }

    /// What it left, once [`Spawned::finished`].
    pub fn collect(self) -> Collected {
        let status = self.status.unwrap_or(0);
        let end = if self.killed_at.is_some() {
            ChildEnd::TimedOut
        } else if libc::WIFSIGNALED(status) {
            ChildEnd::Signal(libc::WTERMSIG(status))
        } else {
            ChildEnd::Exited(libc::WEXITSTATUS(status))
        };
        Collected {
            bytes: self.bytes,
            end,
        }
    }

    /// Gives up on it without reaping it: it is stuck (`end` says how it was given up on). Its
    /// pid goes to the caller's list of processes to reap later with `WNOHANG`.
    pub fn write_off(self, end: ChildEnd) -> (libc::pid_t, Collected) {
        (
            self.pid,
            Collected {
                bytes: self.bytes,
                end,
            },
        )
    }
}

/// SIGKILLs process group `pgid` and its leader.
pub fn kill_group(pgid: libc::pid_t) {
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
        libc::kill(pgid, libc::SIGKILL);
    }
}

/// The name of a signal that means a crash (or the kill at a limit), for failure messages.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        _ => "signal",
    }
}
