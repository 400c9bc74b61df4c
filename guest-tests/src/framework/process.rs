//! Other processes in a scenario: a forked child (or an exec'd helper) whose verdict comes
//! back through a pipe, step-by-step hand-offs over pipes, and CLONE_VM children sharing this
//! process's memory. What happens to registrations across fork, exec and exit is much of what
//! the suite checks, and a child's failure or ignore must reach the scenario's verdict.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use result_channel::Feature;

use super::poll::pause;
use super::{Stop, R};
use crate::{check, fail};

/// A one-way pipe for step-by-step hand-offs between a parent and its forked child.
pub struct Pipe {
    pub rd: OwnedFd,
    pub wr: OwnedFd,
}

impl Pipe {
    /// Adopts two inherited fds (an exec'd helper's ends of two pipes).
    pub fn from_raw(rd: i32, wr: i32) -> Self {
        use std::os::fd::FromRawFd;
        unsafe {
            Pipe {
                rd: OwnedFd::from_raw_fd(rd),
                wr: OwnedFd::from_raw_fd(wr),
            }
        }
    }

    pub fn new() -> Result<Self, Stop> {
        use std::os::fd::FromRawFd;
        let mut fds = [0; 2];
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            fail!("pipe2: {}", io::Error::last_os_error());
        }
        Ok(unsafe {
            Pipe {
                rd: OwnedFd::from_raw_fd(fds[0]),
                wr: OwnedFd::from_raw_fd(fds[1]),
            }
        })
    }

    pub fn send(&self, bytes: &[u8]) -> R {
        use std::os::fd::AsRawFd;
        let n =
            unsafe { libc::write(self.wr.as_raw_fd(), bytes.as_ptr() as *const _, bytes.len()) };
        check!(
            n == bytes.len() as isize,
            "pipe write: {}",
            io::Error::last_os_error()
        );
        Ok(())
    }

    /// Reads up to `max` bytes, waiting at most `limit`; EOF gives an empty vector.
    pub fn recv(&self, max: usize, limit: Duration) -> Result<Vec<u8>, Stop> {
        use std::os::fd::AsRawFd;
        let mut pfd = libc::pollfd {
            fd: self.rd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let r = unsafe { libc::poll(&mut pfd, 1, limit.as_millis() as i32) };
        check!(
            r > 0,
            "no message from the other process within {} ms",
            limit.as_millis()
        );
        let mut buf = vec![0u8; max];
        let n = unsafe { libc::read(self.rd.as_raw_fd(), buf.as_mut_ptr() as *mut _, max) };
        check!(n >= 0, "pipe read: {}", io::Error::last_os_error());
        buf.truncate(n as usize);
        Ok(buf)
    }

    /// Waits for one byte and checks it is `tag` (the other side's step marker).
    pub fn expect(&self, tag: u8, limit: Duration) -> R {
        let got = self.recv(1, limit)?;
        check!(
            got == [tag],
            "expected step {:?} from the other process, got {:?}",
            tag as char,
            got
        );
        Ok(())
    }
}

/// A forked child running a closure; its failure message comes back through a pipe.
pub struct Child {
    pub pid: libc::pid_t,
    result: Pipe,
}

/// Forks; the child runs `f` and exits. Use [`Child::join`] to collect its verdict.
pub fn fork(f: impl FnOnce() -> R) -> Result<Child, Stop> {
    fork_with_result_pipe(|_| f())
}

/// [`fork`], giving the child its end of the verdict pipe (for [`exec_helper`]).
fn fork_with_result_pipe(f: impl FnOnce(&Pipe) -> R) -> Result<Child, Stop> {
    let result = Pipe::new()?;
    let pid = unsafe { libc::fork() };
    check!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        let verdict = verdict_text(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
            || f(&result),
        )));
        let _ = result.send(verdict.as_bytes());
        unsafe { libc::_exit(0) };
    }
    Ok(Child { pid, result })
}

/// A child's verdict on its result pipe: `ok`, `child: MESSAGE` for a failure, or
/// `ignore FEATURE MESSAGE` (parsed back by [`Child::join`] into a [`Stop::Ignore`]).
fn verdict_text(r: std::thread::Result<R>) -> String {
    match r {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(Stop::Fail(m))) => format!("child: {m}"),
        // No scenario recognises a known bug's symptom in a child: a plain failure there.
        Ok(Err(Stop::Symptom { message, .. })) => format!("child: {message}"),
        Ok(Err(Stop::Ignore { missing, found })) => format!("{IGNORE_VERDICT}{missing} {found}"),
        Err(_) => "child panicked".to_owned(),
    }
}

const IGNORE_VERDICT: &str = "ignore ";

/// A child's verdict text as the parent's outcome.
fn verdict_stop(pid: libc::pid_t, verdict: &str) -> R {
    if verdict == "ok" {
        return Ok(());
    }
    if let Some(rest) = verdict.strip_prefix(IGNORE_VERDICT) {
        let (feature, found) = rest.split_once(' ').unwrap_or((rest, ""));
        return match Feature::from_name(feature) {
            Some(missing) => Err(Stop::Ignore {
                missing,
                found: format!("child {pid}: {found}"),
            }),
            None => fail!("child {pid} ignored for an unknown feature: {verdict:?}"),
        };
    }
    fail!("{verdict}")
}

impl Child {
    /// Joins after the parent's side of a step-by-step exchange has run: if that failed, the
    /// child (likely stuck waiting for the parent, or failed first) gets a short limit, and
    /// both messages are reported, since either may be the cause.
    pub fn join_with(self, parent: R, limit: Duration) -> R {
        let limit = if parent.is_ok() {
            limit
        } else {
            Duration::from_millis(500)
        };
        match (parent, self.join(limit)) {
            (Ok(()), child) => child,
            (Err(Stop::Fail(p)), Err(Stop::Fail(c))) => fail!("{p} ({c})"),
            (Err(p), _) => Err(p),
        }
    }

    /// Waits for the child's verdict (at most `limit`) and reaps it.
    pub fn join(self, limit: Duration) -> R {
        use std::os::fd::AsRawFd;
        // Close our copy of the write end so EOF means "the child died without a verdict".
        drop(self.result.wr);
        let rd = self.result.rd;
        let mut pfd = libc::pollfd {
            fd: rd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ready = unsafe { libc::poll(&mut pfd, 1, limit.as_millis() as i32) };
        if ready <= 0 {
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        let mut buf = vec![0u8; 4096];
        let n = if ready > 0 {
            unsafe { libc::read(rd.as_raw_fd(), buf.as_mut_ptr() as *mut _, buf.len()) }
        } else {
            0
        };
        let mut status = 0;
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
        check!(
            ready > 0,
            "child {} gave no verdict within {} ms",
            self.pid,
            limit.as_millis()
        );
        let verdict = String::from_utf8_lossy(&buf[..n.max(0) as usize]).into_owned();
        if verdict.is_empty() {
            fail!(
                "child {} died without a verdict (wait status {status:#x})",
                self.pid
            );
        }
        verdict_stop(self.pid, &verdict)
    }
}

/// The fd on which an exec'd helper sends its verdict.
const HELPER_VERDICT_FD: i32 = 200;

/// Clears FD_CLOEXEC so that `fd` reaches an exec'd helper under the same number.
pub fn keep_across_exec(fd: BorrowedFd<'_>) -> R {
    use std::os::fd::AsRawFd;
    check!(
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) } == 0,
        "fcntl: {}",
        io::Error::last_os_error()
    );
    Ok(())
}

/// Forks a child that runs `pre_exec` and then re-executes this program as
/// `ue-scenarios --helper WHICH ARGS...`; the helper reports with [`helper_verdict`], so
/// [`Child::join`] collects its verdict as for [`fork`].
pub fn exec_helper(
    which: &str,
    args: &[String],
    pre_exec: impl FnOnce() -> R,
) -> Result<Child, Stop> {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    let argv: Vec<CString> = ["ue-scenarios", "--helper", which]
        .into_iter()
        .map(str::to_owned)
        .chain(args.iter().cloned())
        .map(|a| CString::new(a).expect("no NUL in helper arguments"))
        .collect();
    let exe = CString::new("/proc/self/exe").unwrap();
    fork_with_result_pipe(move |result| {
        pre_exec()?;
        // dup2 leaves the new fd without FD_CLOEXEC.
        check!(
            unsafe { libc::dup2(result.wr.as_raw_fd(), HELPER_VERDICT_FD) } == HELPER_VERDICT_FD,
            "dup2"
        );
        let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        unsafe { libc::execv(exe.as_ptr(), ptrs.as_ptr()) };
        fail!("execv /proc/self/exe: {}", io::Error::last_os_error())
    })
}

/// Ends an exec'd helper: sends its verdict to the scenario that started it; returns the
/// exit code.
pub fn helper_verdict(f: impl FnOnce() -> R) -> i32 {
    use std::os::fd::FromRawFd;
    let verdict = verdict_text(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    let out = unsafe { OwnedFd::from_raw_fd(HELPER_VERDICT_FD) };
    let n = unsafe {
        libc::write(
            std::os::fd::AsRawFd::as_raw_fd(&out),
            verdict.as_ptr() as *const _,
            verdict.len(),
        )
    };
    if n == verdict.len() as isize {
        0
    } else {
        1
    }
}

/// Runs `f` in a child that shares this process's memory (clone with CLONE_VM, plus
/// CLONE_VFORK when `vfork`: this thread is suspended until the child exits or execs), then
/// reaps it and returns its exit status. `f` may record its findings in captured variables;
/// it must not panic (it runs on a borrowed stack with the parent's thread-local storage).
pub fn clone_vm(vfork: bool, f: &mut dyn FnMut() -> i32) -> Result<i32, Stop> {
    extern "C" fn trampoline(arg: *mut libc::c_void) -> libc::c_int {
        let f = unsafe { &mut *(arg as *mut &mut dyn FnMut() -> i32) };
        f()
    }
    let mut stack = vec![0u8; 256 * 1024];
    let top = unsafe { stack.as_mut_ptr().add(stack.len()) } as usize & !15;
    let flags = libc::CLONE_VM | libc::SIGCHLD | if vfork { libc::CLONE_VFORK } else { 0 };
    let mut f = f;
    let pid = unsafe {
        libc::clone(
            trampoline,
            top as *mut _,
            flags,
            &mut f as *mut _ as *mut libc::c_void,
        )
    };
    check!(pid > 0, "clone: {}", io::Error::last_os_error());
    let mut status = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if Instant::now() > deadline {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            unsafe { libc::waitpid(pid, &mut status, 0) };
            fail!("CLONE_VM child {pid} did not exit within 10 s");
        }
        pause();
    }
    check!(
        libc::WIFEXITED(status),
        "CLONE_VM child {pid} died (wait status {status:#x})"
    );
    Ok(libc::WEXITSTATUS(status))
}

/// Runs `f` on a new thread of this process, made with a bare clone (CLONE_THREAD and the
/// rest a thread shares) on `stack`, and waits until it has exited. Far cheaper than
/// `std::thread` (no stack mapping, guard page or signal stack per thread), for scenarios
/// that make thousands. `f` runs with this thread's thread-local storage (no CLONE_SETTLS)
/// while this thread waits: it must not panic, allocate or use thread-locals; it reports
/// through captured variables.
pub fn clone_thread(stack: &mut [u8], f: &mut dyn FnMut()) -> R {
    extern "C" fn trampoline(arg: *mut libc::c_void) -> libc::c_int {
        let f = unsafe { &mut *(arg as *mut &mut dyn FnMut()) };
        f();
        0
    }
    let top = unsafe { stack.as_mut_ptr().add(stack.len()) } as usize & !15;
    let flags = libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM
        | libc::CLONE_PARENT_SETTID
        | libc::CLONE_CHILD_CLEARTID;
    // The kernel sets it to the thread's id before the thread runs, and clears it (waking
    // the futex) once the thread is gone.
    let tid = std::sync::atomic::AtomicI32::new(0);
    let mut f = f;
    let r = unsafe {
        libc::clone(
            trampoline,
            top as *mut _,
            flags,
            &mut f as *mut _ as *mut libc::c_void,
            tid.as_ptr(),
            std::ptr::null_mut::<libc::c_void>(),
            tid.as_ptr(),
        )
    };
    check!(r > 0, "clone: {}", io::Error::last_os_error());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = tid.load(std::sync::atomic::Ordering::Acquire);
        if t == 0 {
            return Ok(());
        }
        check!(
            Instant::now() < deadline,
            "thread {t} did not exit within 10 s"
        );
        let limit = libc::timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                tid.as_ptr(),
                libc::FUTEX_WAIT,
                t,
                &limit as *const libc::timespec,
            )
        };
    }
}

/// A thread that runs jobs on request until it is told to exit. What user_events keeps per
/// task follows clone(): a thread started before its process's first REG has no
/// user_event_mm and makes its own on its own first REG; one started after shares the
/// process's.
pub struct JobThread {
    jobs: Option<mpsc::Sender<Box<dyn FnOnce() + Send>>>,
    handle: thread::JoinHandle<()>,
    /// Its kernel thread id, for [`JobThread::exit`]'s bounded wait.
    tid: i32,
}

impl JobThread {
    pub fn start() -> Self {
        let (jobs, rx) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let (tid_tx, tid_rx) = mpsc::channel();
        let handle = thread::spawn(move || {
            let _ = tid_tx.send(unsafe { libc::gettid() });
            while let Ok(job) = rx.recv() {
                job();
            }
        });
        // A new thread's first statement: it comes unless the thread could not start.
        let tid = tid_rx.recv().unwrap_or(0);
        JobThread {
            jobs: Some(jobs),
            handle,
            tid,
        }
    }

    /// Runs `f` on the thread and returns its result, waiting at most [`JOB_LIMIT`] (a job
    /// stuck in the kernel fails the scenario, whose process the runner then ends).
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Stop> {
        let (tx, rx) = mpsc::channel();
        let job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs
            .as_ref()
            .and_then(|j| j.send(job).ok())
            .ok_or_else(|| Stop::Fail("job thread is gone".into()))?;
        rx.recv_timeout(JOB_LIMIT)
            .map_err(|_| Stop::Fail(format!("job thread gave no result in {JOB_LIMIT:?}")))
    }

    /// Ends the thread and waits, at most [`JOB_LIMIT`], until it has exited (its exit
    /// removes a user_event_mm of its own). A thread stuck in the kernel on its way out fails
    /// the scenario rather than hang it: the wait is for its `/proc/self/task/TID` to go,
    /// which happens only once the kernel has released it.
    pub fn exit(mut self) -> R {
        // Closing the job channel ends the thread's loop.
        self.jobs = None;
        let task = format!("/proc/self/task/{}", self.tid);
        let gone =
            super::poll::poll_until(JOB_LIMIT, &mut || !std::path::Path::new(&task).exists());
        if gone.is_err() {
            fail!(
                "job thread {} did not exit within {JOB_LIMIT:?}: stuck in the kernel on its way out",
                self.tid
            );
        }
        match self.handle.join() {
            Err(_) => fail!("job thread panicked"),
            Ok(()) => Ok(()),
        }
    }
}

/// How long [`JobThread::run`] waits for one job.
pub const JOB_LIMIT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_childs_ignore_keeps_its_feature_through_the_pipe() {
        let text = verdict_text(Ok(Err(Stop::ignore(
            Feature::RegPersist,
            "EINVAL for flag 1",
        ))));
        match verdict_stop(42, &text) {
            Err(Stop::Ignore { missing, found }) => {
                assert_eq!(missing, Feature::RegPersist);
                assert_eq!(found, "child 42: EINVAL for flag 1");
            }
            other => panic!("{other:?}"),
        }
        assert!(verdict_stop(42, &verdict_text(Ok(Ok(())))).is_ok());
        let fail = verdict_stop(42, &verdict_text(Ok(Err(Stop::Fail("bit 3".into())))));
        assert!(matches!(fail, Err(Stop::Fail(m)) if m == "child: bit 3"));
        // A verdict naming no known feature is a failure, never an ignore.
        assert!(matches!(
            verdict_stop(42, "ignore warp_drive x"),
            Err(Stop::Fail(_))
        ));
    }
}
