//! The runner's own tracefs work, done by a child of its own: removing each scenario's
//! tracefs instance once its process group is gone. Removing an instance takes the kernel's
//! event_mutex, which a kernel stuck in user_events may hold forever; done by the runner
//! itself, that would stop the whole run in `D`.
//!
//! The runner hands over one name at a time and waits for the janitor's answer, as it used
//! to wait for its own removal (so a removal never overlaps the next scenario, whose timing
//! may depend on event_mutex being free), but only for a bound: a janitor that does not
//! answer is stuck, and from then on instances are left (one costs memory, not a verdict),
//! said at the end.

use std::io::{BufRead, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use guest_tests::framework::Pipe;
use guest_tests::tracefs;

pub struct Janitor {
    pid: libc::pid_t,
    /// Names to remove, one a line; non-blocking.
    wr: Option<std::fs::File>,
    /// One byte per name handled.
    acks: Option<OwnedFd>,
    /// It did not answer within its bound: nothing more is handed over or waited for.
    stuck: bool,
    /// Removals not handed over (stuck, a full pipe, or no janitor).
    left: usize,
}

/// Whether the kernel has oopsed or hit a BUG (TAINT_DIE, `D` in its taint flags). Removing
/// an instance then may never end: it holds event_mutex while it waits for an SRCU grace
/// period, which needs workqueues that a kworker's oops leaves dead, and every scenario would
/// wait behind it. Seen with a fault worker that oopses: the janitor's removal, not the
/// kernel's bug, blocked every later scenario.
fn kernel_died() -> bool {
    const TAINT_DIE: u64 = 1 << 7;
    std::fs::read_to_string("/proc/sys/kernel/tainted")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .is_some_and(|t| t & TAINT_DIE != 0)
}

impl Janitor {
    /// Forks the janitor (in a process group of its own, so that no scenario's kill reaches
    /// it). Without a fork, instances are left (said at the end).
    pub fn start() -> Janitor {
        let none = Janitor {
            pid: -1,
            wr: None,
            acks: None,
            stuck: false,
            left: 0,
        };
        let (Ok(names), Ok(acks)) = (Pipe::new(), Pipe::new()) else {
            return none;
        };
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return none;
        }
        if pid == 0 {
            unsafe {
                libc::setpgid(0, 0);
                // Never the result port: errors go to the console.
                libc::dup2(2, 1);
            }
            drop(names.wr);
            drop(acks.rd);
            serve(std::fs::File::from(names.rd), std::fs::File::from(acks.wr));
            unsafe { libc::_exit(0) };
        }
        drop(names.rd);
        drop(acks.wr);
        let wr: OwnedFd = names.wr;
        unsafe {
            let fl = libc::fcntl(wr.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(wr.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        super::children::not_for_children(wr.as_raw_fd());
        Janitor {
            pid,
            wr: Some(std::fs::File::from(wr)),
            acks: Some(acks.rd),
            stuck: false,
            left: 0,
        }
    }

    /// Has instance `name` removed, waiting at most `limit` for it; never blocks longer.
    pub fn remove(&mut self, name: &str, limit: Duration) {
        if self.stuck {
            self.left += 1;
            return;
        }
        let line = format!("{name}\n");
        let sent = self
            .wr
            .as_mut()
            .is_some_and(|w| w.write_all(line.as_bytes()).is_ok());
        if !sent {
            self.left += 1;
            return;
        }
        let Some(acks) = &self.acks else { return };
        let mut pfd = libc::pollfd {
            fd: acks.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = limit.as_millis().min(i32::MAX as u128) as i32;
        let mut byte = 0u8;
        let answered = unsafe { libc::poll(&mut pfd, 1, ms) } > 0
            && unsafe { libc::read(acks.as_raw_fd(), &mut byte as *mut u8 as *mut _, 1) } == 1;
        if !answered {
            self.stuck = true;
            eprintln!(
                "ue-scenarios: the tracefs janitor (pid {}) did not remove {name} within {} ms: \
                 it is stuck in the kernel; instances are left from now on",
                self.pid,
                limit.as_millis()
            );
        }
    }

    /// Lets the janitor end, for at most `limit`. Returns its pid if it is still there (stuck
    /// in the kernel, most likely), for the caller to say so.
    pub fn finish(mut self, limit: Duration) -> Option<libc::pid_t> {
        super::children::not_for_children(-1);
        drop(self.wr.take());
        if self.left > 0 {
            eprintln!(
                "ue-scenarios: {} tracefs instance(s) left: the janitor was stuck",
                self.left
            );
        }
        if self.pid <= 0 {
            return None;
        }
        let started = Instant::now();
        loop {
            let mut status = 0;
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r == self.pid || r < 0 {
                return None;
            }
            if started.elapsed() >= limit {
                return Some(self.pid);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }
}

/// The janitor's loop: each name removed (unless the kernel died), then one byte back.
fn serve(names: std::fs::File, mut acks: std::fs::File) {
    let mut left = 0;
    for name in std::io::BufReader::new(names).lines().map_while(Result::ok) {
        if kernel_died() {
            left += 1;
        } else if let Err(e) = tracefs::remove_instance(&name) {
            eprintln!("ue-scenarios: the tracefs instance {name} stays: {e}");
        }
        if acks.write_all(b".").is_err() {
            break;
        }
    }
    if left > 0 {
        eprintln!(
            "ue-scenarios: {left} tracefs instance(s) left: the kernel oopsed, and removing one \
             waits for an SRCU grace period that the oops may have made impossible"
        );
    }
}
