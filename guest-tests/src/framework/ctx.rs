//! The context a scenario runs in ([`Ctx`]): its own `user_events_data` fd, event names no
//! other scenario uses, the snapshots and notes it reports, and the polls and "must not
//! happen" watches that judge the kernel's asynchronous updates against the plan's deadline.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use result_channel::Snapshot;

use super::poll::{negative_window_after, pause, poll_until};
use super::{Context, Stop, R};
use crate::{fail, tracefs, uapi};

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
}
