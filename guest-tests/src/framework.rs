//! What a scenario is made of: its outcome type, the checks that end it, the context it runs
//! in (a `user_events_data` fd, unique event names, snapshots, notes), and the tools it needs
//! for processes and memory (fork with a result pipe, mappings, polling with a deadline).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use result_channel::{Feature, ScenarioInfo, Snapshot};

use crate::tracefs;
use crate::uapi::{self, Errno};

/// A scenario ends early with one of these; falling off the end is a pass.
#[derive(Debug)]
pub enum Stop {
    Fail(String),
    /// A failure that is the symptom of a known kernel bug, named as in kernels.toml
    /// (`format-array-len`): the host excuses it only on a kernel that lists that bug for
    /// this scenario. Any other failure of the scenario stays a plain failure.
    Symptom {
        bug: &'static str,
        message: String,
    },
    /// The kernel lacks `missing`: `found` is what the probe saw, never a version string.
    /// There is no ignore without a feature: the host checks it against what the kernel
    /// under test must have, so an ignore it did not expect is a failure, not a quiet skip.
    Ignore {
        missing: Feature,
        found: String,
    },
}

pub type R = Result<(), Stop>;

impl Stop {
    pub fn ignore(missing: Feature, found: impl Into<String>) -> Self {
        Stop::Ignore {
            missing,
            found: found.into(),
        }
    }
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Fail(e.to_string())
    }
}

impl From<Errno> for Stop {
    fn from(e: Errno) -> Self {
        Stop::Fail(format!("unexpected error {e}"))
    }
}

/// Adds what was being done to an error, as `anyhow::Context` would.
pub trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, Stop>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, Stop> {
        self.map_err(|e| Stop::Fail(format!("{}: {e}", what())))
    }
}

/// Fails with the symptom of the known kernel bug `$bug` (see [`Stop::Symptom`]).
#[macro_export]
macro_rules! symptom {
    ($bug:expr, $($fmt:tt)+) => {
        return Err($crate::framework::Stop::Symptom { bug: $bug, message: format!($($fmt)+) })
    };
}

#[macro_export]
macro_rules! fail {
    ($($fmt:tt)+) => { return Err($crate::framework::Stop::Fail(format!($($fmt)+))) };
}

#[macro_export]
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond { $crate::fail!($($fmt)+) }
    };
}

/// Compares what the kernel produced (`got`) with what the ABI promises (`want`).
#[macro_export]
macro_rules! check_eq {
    ($got:expr, $want:expr, $($fmt:tt)+) => {{
        let (got, want) = (&$got, &$want);
        if got != want {
            $crate::fail!("{}: got {:?}, want {:?}", format!($($fmt)+), got, want)
        }
    }};
}

/// One scenario as its family file declares it: a name within the family, its promise and
/// its function, plus whatever it says differently from the family's defaults.
/// `Scenario::new("name", "about", run).fault_warnings(true)` in a `const`.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// The name within the family; the full name is `family::name`.
    pub name: &'static str,
    /// One line: the promise of the ABI this scenario checks.
    pub about: &'static str,
    pub run: fn(&mut Ctx) -> R,
    fault_warnings: Option<bool>,
    alone: Option<bool>,
    requires: Option<&'static [Feature]>,
}

impl Scenario {
    pub const fn new(name: &'static str, about: &'static str, run: fn(&mut Ctx) -> R) -> Self {
        Scenario {
            name,
            about,
            run,
            fault_warnings: None,
            alone: None,
            requires: None,
        }
    }

    /// The kernel's "user_events: Fault for mm" warning is an expected outcome here (the
    /// scenario unmaps or protects its word on purpose), or, with `false`, trouble.
    pub const fn fault_warnings(mut self, yes: bool) -> Self {
        self.fault_warnings = Some(yes);
        self
    }

    /// Must run with no other scenario beside it (load-making, timing-sensitive, or using
    /// global state such as a sysctl). The trace buffer is not such state: each scenario
    /// traces into a tracefs instance of its own. The global lists are (`dynamic_events`,
    /// `user_events_status`): seq_file hands them out a page per read() and finds its place
    /// again by position, so an event another scenario adds or removes between two pages
    /// shifts the lines, and a line can be skipped (seen: an event just registered missing
    /// from `dynamic_events`), which could also make an absence check pass. Their readers run
    /// alone so that the list mostly holds still, and read it until two reads agree
    /// (`tracefs::status`, `tracefs::dynamic_events`): the kernel also deletes events in the
    /// background once their last reference goes.
    pub const fn alone(mut self, yes: bool) -> Self {
        self.alone = Some(yes);
        self
    }

    /// The features its probes require, replacing the family's list.
    pub const fn requires(mut self, features: &'static [Feature]) -> Self {
        self.requires = Some(features);
        self
    }
}

/// What nearly every scenario requires: the 6.4+ ABI ([`Ctx::require_remote_write`]).
pub const REMOTE_WRITE: &[Feature] = &[Feature::RemoteWrite];

/// A family of scenarios (one file under `scenarios/`): its name, whether it runs only on
/// request, and the defaults its scenarios inherit unless they say otherwise.
pub struct Family {
    pub name: &'static str,
    pub optional: bool,
    pub fault_warnings: bool,
    pub alone: bool,
    pub requires: &'static [Feature],
    pub scenarios: &'static [Scenario],
}

impl Family {
    /// A family of scenarios that run by default, expect no fault warning, may share the
    /// machine, and require nothing; the builders below change that.
    pub const fn new(name: &'static str, scenarios: &'static [Scenario]) -> Self {
        Family {
            name,
            optional: false,
            fault_warnings: false,
            alone: false,
            requires: &[],
            scenarios,
        }
    }

    /// Runs only when asked for (`cargo xtask test --stress`).
    pub const fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    pub const fn fault_warnings(mut self) -> Self {
        self.fault_warnings = true;
        self
    }

    pub const fn alone(mut self) -> Self {
        self.alone = true;
        self
    }

    pub const fn requires(mut self, features: &'static [Feature]) -> Self {
        self.requires = features;
        self
    }

    /// Its scenarios, with the family's defaults filled in.
    pub fn entries(&'static self) -> impl Iterator<Item = Entry> {
        self.scenarios.iter().map(move |s| Entry {
            name: format!("{}::{}", self.name, s.name),
            family: self.name,
            about: s.about,
            run: s.run,
            optional: self.optional,
            fault_warnings: s.fault_warnings.unwrap_or(self.fault_warnings),
            alone: s.alone.unwrap_or(self.alone),
            requires: s.requires.unwrap_or(self.requires),
        })
    }
}

/// A scenario as the runner sees it: full name, and every property resolved.
#[derive(Clone)]
pub struct Entry {
    /// `family::name`; the family groups it for `cargo xtask test -- family`.
    pub name: String,
    pub family: &'static str,
    pub about: &'static str,
    pub run: fn(&mut Ctx) -> R,
    pub optional: bool,
    pub fault_warnings: bool,
    pub alone: bool,
    pub requires: &'static [Feature],
}

impl Entry {
    /// What the host learns about it (`ue-scenarios --list-json`).
    pub fn info(&self) -> ScenarioInfo {
        ScenarioInfo {
            name: self.name.clone(),
            family: self.family.to_owned(),
            about: self.about.to_owned(),
            optional: self.optional,
            fault_warnings: self.fault_warnings,
            alone: self.alone,
            requires: self.requires.to_vec(),
        }
    }
}

pub struct Ctx {
    pub scenario: String,
    pub data: OwnedFd,
    pub poll_deadline: Duration,
    pub snapshots: Vec<Snapshot>,
    pub notes: Vec<String>,
    names: u32,
    /// This is the scenario's second run in this boot (it ran beside a splat): its names
    /// must differ from the first run's, whose events may still be there.
    again: bool,
}

impl Ctx {
    pub fn new(scenario: String, poll_deadline: Duration) -> io::Result<Self> {
        Ok(Ctx {
            scenario,
            data: tracefs::open_data()?,
            poll_deadline,
            snapshots: vec![],
            notes: vec![],
            names: 0,
            again: false,
        })
    }

    /// For a second run in the same boot: new event names, never the first run's.
    pub fn run_again(mut self) -> Self {
        self.again = true;
        self
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.data.as_fd()
    }

    /// An event name no other scenario uses, so that a leftover from a crashed scenario
    /// can never satisfy this one's checks.
    pub fn event_name(&mut self) -> String {
        self.names += 1;
        let key = tracefs::scenario_key(&self.scenario, self.again);
        format!("ue_{key}_{}", self.names)
    }

    pub fn snapshot(&mut self, name: &str, content: String) {
        self.snapshots.push(Snapshot {
            name: name.to_owned(),
            content,
        });
    }

    pub fn note(&mut self, s: String) {
        self.notes.push(s);
    }

    /// Polls `cond` until it holds or the deadline passes; reports how long it took, since
    /// asynchronous updates (the fault worker) are what this project measures.
    pub fn wait_for(
        &mut self,
        what: &str,
        mut cond: impl FnMut() -> bool,
    ) -> Result<Duration, Stop> {
        let d = poll_until(self.poll_deadline, &mut cond).map_err(|waited| {
            Stop::Fail(format!("{what}: not seen within {} ms", waited.as_millis()))
        })?;
        self.note(format!("{what}: {} us", d.as_micros()));
        Ok(d)
    }

    /// Polls until `cond` holds, like [`Ctx::wait_for`], but fails at once when `wrong`
    /// holds first: the kernel did what it must not (wrote a bit it should have left alone),
    /// so the outcome is certain and waiting out the deadline would only make a broken kernel
    /// slow to judge. `wrong` names what it means ("event 1's bit changed").
    pub fn wait_for_unless(
        &mut self,
        what: &str,
        mut cond: impl FnMut() -> bool,
        wrong_what: &str,
        mut wrong: impl FnMut() -> bool,
    ) -> Result<Duration, Stop> {
        let start = Instant::now();
        let mut wrong_seen = false;
        let d = poll_until(self.poll_deadline, &mut || {
            wrong_seen = wrong();
            wrong_seen || cond()
        })
        .map_err(|waited| {
            Stop::Fail(format!("{what}: not seen within {} ms", waited.as_millis()))
        })?;
        if wrong_seen {
            fail!(
                "{wrong_what} after {} us, while waiting for: {what}",
                start.elapsed().as_micros()
            );
        }
        self.note(format!("{what}: {} us", d.as_micros()));
        Ok(d)
    }

    /// How long a "must not happen" check watches once a control has shown the kernel's
    /// update done: see [`negative_window_after`].
    pub fn negative_window_after(&self, control: Duration) -> Duration {
        negative_window_after(self.poll_deadline, control)
    }

    /// Confirms that `cond` stays false, for "the kernel must NOT write" checks, once a
    /// control has shown the update that would make the wrong write done. A negative can
    /// only be bounded, not proven: `control` is how long the kernel took, just before, to
    /// make the change the forbidden one would come with (the same update pass, on the same
    /// path: the other event's bit set by the enable that must leave this word alone), or
    /// zero where that update is the system call just returned (a present, writable word is
    /// written before it returns). The window is [`negative_window_after`] of it; the notes
    /// say what it was.
    pub fn never_after(
        &mut self,
        what: &str,
        control: Duration,
        mut cond: impl FnMut() -> bool,
    ) -> R {
        let window = self.negative_window_after(control);
        let start = Instant::now();
        while start.elapsed() < window {
            if cond() {
                fail!("{what} after {} us", start.elapsed().as_micros());
            }
            pause();
        }
        self.note(format!("not {what} within {} ms", window.as_millis()));
        Ok(())
    }

    /// Registers an event whose enable word is `bit` of the `size`-byte word at `addr`.
    pub fn reg(
        &mut self,
        name_args: &str,
        addr: *const u8,
        size: u8,
        bit: u8,
    ) -> Result<u32, Stop> {
        uapi::reg(self.fd(), name_args, addr as u64, size, bit, 0)
            .ctx(|| format!("DIAG_IOCSREG {name_args:?}"))
    }

    /// Ignores the scenario unless the kernel has the 6.4+ remote-write ABI. The probe is an
    /// UNREG of nothing: 6.4+ answers ENOENT, the old status-page ABI does not know the ioctl.
    pub fn require_remote_write(&self) -> R {
        match uapi::unreg(self.fd(), 0, 0) {
            Err(Errno(libc::ENOENT)) => Ok(()),
            Err(Errno(libc::ENOTTY)) => Err(Stop::Ignore {
                missing: Feature::RemoteWrite,
                found: "DIAG_IOCSUNREG gives ENOTTY (old status-page user_events)".into(),
            }),
            other => Err(Stop::Fail(format!(
                "probe DIAG_IOCSUNREG(addr 0): unexpected {other:?}"
            ))),
        }
    }

    /// Ignores the scenario unless REG accepts the flag of `feature` ([`Feature::RegPersist`]
    /// from 6.7, [`Feature::RegMultiFormat`] from 6.9).
    pub fn require_flag(&mut self, feature: Feature) -> R {
        let (flag, what) = match feature {
            Feature::RegPersist => (uapi::USER_EVENT_REG_PERSIST, "PERSIST"),
            Feature::RegMultiFormat => (uapi::USER_EVENT_REG_MULTI_FORMAT, "MULTI_FORMAT"),
            other => fail!("require_flag({other}): not a DIAG_IOCSREG flag"),
        };
        self.require_remote_write()?;
        let name = self.event_name();
        let word = Box::new(0u64);
        match uapi::reg(self.fd(), &name, &*word as *const u64 as u64, 8, 0, flag) {
            Ok(_) => {
                uapi::unreg(self.fd(), &*word as *const u64 as u64, 0)?;
                // A PERSIST probe event stays until deleted; delete it so it leaves no trace.
                let _ = uapi::del(self.fd(), &name);
                Ok(())
            }
            Err(Errno(libc::EINVAL)) => Err(Stop::Ignore {
                missing: feature,
                found: format!("DIAG_IOCSREG rejects the {what} flag with EINVAL"),
            }),
            Err(e) => Err(Stop::Fail(format!(
                "probe of the {what} flag: unexpected {e}"
            ))),
        }
    }
}

/// The longest a "must not happen" check watches, from the poll deadline of the plan: a
/// quarter of it, at least [`NEGATIVE_FLOOR`] (125 ms under KVM, 500 ms under TCG by
/// default). It was every such check's window before each had a control; now it only caps
/// [`negative_window_after`] when a control was slow.
pub fn negative_window(poll_deadline: Duration) -> Duration {
    (poll_deadline / 4).max(NEGATIVE_FLOOR)
}

pub const NEGATIVE_FLOOR: Duration = Duration::from_millis(100);

/// How long a "must not happen" check watches after a positive control (see
/// [`Ctx::never_after`]): [`CONTROL_MULTIPLE`] times the control's latency, at least an
/// eightieth of the poll deadline (25 ms under TCG, 6 ms under KVM by default: several times
/// the 0.1–7 ms the kernel's synchronous writes and its fault worker take there, so a wrong
/// write deferred to a slower path still lands inside), at most the blind [`negative_window`].
pub fn negative_window_after(poll_deadline: Duration, control: Duration) -> Duration {
    (control * CONTROL_MULTIPLE)
        .max(poll_deadline / 80)
        .min(negative_window(poll_deadline))
}

pub const CONTROL_MULTIPLE: u32 = 4;

/// The poll step: yield first (the worker may be runnable on this CPU), then a short sleep so
/// that a slow TCG guest is not starved by the poller.
pub fn pause() {
    unsafe { libc::sched_yield() };
    std::thread::sleep(Duration::from_micros(200));
}

/// [`Ctx::wait_for`] for a forked child, whose notes are not reported.
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) -> R {
    poll_until(deadline, &mut cond)
        .map(drop)
        .map_err(|waited| Stop::Fail(format!("{what}: not seen within {} ms", waited.as_millis())))
}

/// Ok(time it took) or Err(time waited).
pub fn poll_until(
    deadline: Duration,
    cond: &mut dyn FnMut() -> bool,
) -> Result<Duration, Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= deadline {
            return Err(start.elapsed());
        }
        pause();
    }
}

/// An mmap'd region, unmapped on drop.
pub struct Mapping {
    pub ptr: *mut u8,
    pub len: usize,
}

impl Mapping {
    pub fn anon(flags: i32) -> Result<Self, Stop> {
        Self::map(
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            flags | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    }

    pub fn map(len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> Result<Self, Stop> {
        Self::map_at(std::ptr::null(), len, prot, flags, fd, off)
    }

    /// mmap with an address; with MAP_FIXED or MAP_FIXED_NOREPLACE, anything else is a failure.
    pub fn map_at(
        addr: *const u8,
        len: usize,
        prot: i32,
        flags: i32,
        fd: i32,
        off: i64,
    ) -> Result<Self, Stop> {
        let p = unsafe { libc::mmap(addr as *mut _, len, prot, flags, fd, off) };
        if p == libc::MAP_FAILED {
            fail!("mmap at {addr:p}: {}", io::Error::last_os_error());
        }
        let m = Mapping {
            ptr: p as *mut u8,
            len,
        };
        if flags & (libc::MAP_FIXED | libc::MAP_FIXED_NOREPLACE) != 0 {
            check!(
                std::ptr::eq(m.ptr, addr),
                "mmap gave {:p}, not the fixed {addr:p}",
                m.ptr
            );
        }
        Ok(m)
    }

    pub fn addr(&self, off: usize) -> *const u8 {
        unsafe { self.ptr.add(off) }
    }

    pub fn u32_at(&self, off: usize) -> u32 {
        read32(self.addr(off))
    }

    pub fn u64_at(&self, off: usize) -> u64 {
        read64(self.addr(off))
    }

    /// Leaks the mapping, for scenarios that unmap it themselves.
    pub fn forget(self) -> (*mut u8, usize) {
        let r = (self.ptr, self.len);
        std::mem::forget(self);
        r
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.ptr as *mut _, self.len) };
    }
}

/// Reads an enable word as the kernel left it (it changes behind the compiler's back).
pub fn read32(p: *const u8) -> u32 {
    unsafe { std::ptr::read_volatile(p as *const u32) }
}

pub fn read64(p: *const u8) -> u64 {
    unsafe { std::ptr::read_volatile(p as *const u64) }
}

pub fn write32(p: *const u8, v: u32) {
    unsafe { std::ptr::write_volatile(p as *mut u32, v) }
}

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

/// A file on the guest's tmpfs holding `content`, already unlinked.
pub fn tmpfs_file(content: &[u8]) -> Result<OwnedFd, Stop> {
    use std::os::fd::FromRawFd;
    let dir = std::ffi::CString::new("/tmp").unwrap();
    let fd = unsafe {
        libc::open(
            dir.as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            0o600,
        )
    };
    check!(fd >= 0, "O_TMPFILE in /tmp: {}", io::Error::last_os_error());
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let n = unsafe {
        libc::pwrite(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            content.as_ptr() as *const _,
            content.len(),
            0,
        )
    };
    check!(
        n == content.len() as isize,
        "pwrite: {}",
        io::Error::last_os_error()
    );
    Ok(fd)
}

/// Reads `len` bytes at `off` with pread(), bypassing any mapping.
pub fn pread(fd: BorrowedFd<'_>, len: usize, off: i64) -> Result<Vec<u8>, Stop> {
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; len];
    let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr() as *mut _, len, off) };
    check!(n == len as isize, "pread: {}", io::Error::last_os_error());
    Ok(buf)
}

/// How many kernel log records (read from /dev/kmsg, from the start) contain `needle`: for
/// waiting on a pr_warn that marks the end of asynchronous kernel work.
pub fn kmsg_count(needle: &str) -> Result<usize, Stop> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")?;
    let mut buf = vec![0u8; 8192];
    let mut count = 0;
    loop {
        // One record per read; EAGAIN at the end, EPIPE when a record was overwritten.
        match f.read(&mut buf) {
            Ok(0) => return Ok(count),
            Ok(n) => count += usize::from(String::from_utf8_lossy(&buf[..n]).contains(needle)),
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(count),
            Err(e) => fail!("/dev/kmsg: {e}"),
        }
    }
}

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

    #[test]
    fn the_window_after_a_control_scales_with_it_between_a_floor_and_the_blind_window() {
        let ms = Duration::from_millis;
        let tcg = ms(2000);
        // A synchronous update (no latency to scale): the floor, 25 ms under TCG.
        assert_eq!(negative_window_after(tcg, Duration::ZERO), ms(25));
        // A 20 ms deferred delete: four times that.
        assert_eq!(negative_window_after(tcg, ms(20)), ms(80));
        // Never longer than the blind window.
        assert_eq!(negative_window_after(tcg, ms(400)), negative_window(tcg));
        assert_eq!(negative_window(tcg), ms(500));
    }
}
