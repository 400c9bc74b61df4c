//! Polling with a deadline, and how long a "must not happen" check watches: the kernel
//! updates enable words asynchronously (the fault worker), so a positive is waited for up to
//! the plan's deadline and a negative is watched for a window scaled from a positive control.

use std::time::{Duration, Instant};

use super::{Stop, R};

/// The longest a "must not happen" check watches, from the poll deadline of the plan: a
/// quarter of it, at least [`NEGATIVE_FLOOR`] (125 ms under KVM, 500 ms under TCG by
/// default). It was every such check's window before each had a control; now it only caps
/// [`negative_window_after`] when a control was slow.
pub fn negative_window(poll_deadline: Duration) -> Duration {
    (poll_deadline / 4).max(NEGATIVE_FLOOR)
}

pub const NEGATIVE_FLOOR: Duration = Duration::from_millis(100);

/// How long a "must not happen" check watches after a positive control (see
/// [`Ctx::never_after`](super::Ctx::never_after)): [`CONTROL_MULTIPLE`] times the control's latency, at least an
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

/// [`Ctx::wait_for`](super::Ctx::wait_for) for a forked child, whose notes are not reported.
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

#[cfg(test)]
mod tests {
    use super::*;

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
