//! The runner's child processes: each scenario, upstream selftest and guest test program runs
//! in a forked child of its own, in a process group of its own, reporting on a pipe, so that a
//! crash, a hang or a stray fork ends that one run (killed with its whole group at its limit)
//! and never the runner.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use guest_tests::framework::Pipe;

/// What a forked child left: the bytes it wrote to the pipe, its wait status, and whether
/// the limit ran out (then its whole process group was killed).
pub struct Collected {
    pub bytes: Vec<u8>,
    status: i32,
    timed_out: bool,
}

/// How a collected child ended.
pub enum ChildEnd {
    /// Its limit ran out and it was killed.
    TimedOut,
    /// Killed by this signal (a crash).
    Signal(i32),
    Exited(i32),
}

impl Collected {
    pub fn end(&self) -> ChildEnd {
        if self.timed_out {
            ChildEnd::TimedOut
        } else if libc::WIFSIGNALED(self.status) {
            ChildEnd::Signal(libc::WTERMSIG(self.status))
        } else {
            ChildEnd::Exited(libc::WEXITSTATUS(self.status))
        }
    }
}

/// A forked child in a process group of its own (so a time-out also kills whatever it forked),
/// and the read end of the pipe it reports on.
pub struct Spawned {
    pub pid: libc::pid_t,
    pub rd: OwnedFd,
    pub started: Instant,
    pub limit: Duration,
    bytes: Vec<u8>,
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
        child(pipe.wr.as_raw_fd());
        unsafe { libc::_exit(127) };
    }
    drop(pipe.wr);
    Ok(Spawned {
        pid,
        rd: pipe.rd,
        started,
        limit,
        bytes: Vec::new(),
    })
}

impl Spawned {
    pub fn left(&self) -> Duration {
        self.limit.saturating_sub(self.started.elapsed())
    }

    /// Reads what the pipe holds; true at EOF (the child has exited or closed the pipe).
    pub fn read_some(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        let n = unsafe {
            libc::read(
                self.rd.as_raw_fd(),
                chunk.as_mut_ptr() as *mut _,
                chunk.len(),
            )
        };
        if n <= 0 {
            return true;
        }
        if self.bytes.len() < 1 << 20 {
            self.bytes.extend_from_slice(&chunk[..n as usize]);
        }
        false
    }

    /// Whether the child has sent its whole report (a scenario's End record is one line).
    pub fn reported(&self) -> bool {
        self.bytes.ends_with(b"\n")
    }

    /// Reaps the child; with `timed_out`, kills its whole process group first.
    pub fn finish(self, timed_out: bool) -> Collected {
        if timed_out {
            unsafe {
                libc::kill(-self.pid, libc::SIGKILL);
                libc::kill(self.pid, libc::SIGKILL);
            }
        }
        let mut status = 0;
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
        Collected {
            bytes: self.bytes,
            status,
            timed_out,
        }
    }

    /// Collects until EOF or the limit.
    pub fn wait(mut self) -> Collected {
        loop {
            let left = self.left();
            if left.is_zero() {
                return self.finish(true);
            }
            let mut pfd = libc::pollfd {
                fd: self.rd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
                continue; // EINTR, or the limit: checked at the top
            }
            if self.read_some() {
                return self.finish(false);
            }
        }
    }
}

/// Forks `child` and collects what it reports until EOF or `limit`.
pub fn fork_collect(limit: Duration, child: impl FnOnce(i32)) -> Result<Collected, String> {
    Ok(spawn(limit, child)?.wait())
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
