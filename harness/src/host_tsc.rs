//! The host's TSC frequency, handed to a TCG guest as `tsc_early_khz=`.
//!
//! Under TCG the guest's RDTSC reads the host's TSC (QEMU's `cpu_get_host_ticks`), so the
//! host knows the guest TSC's frequency exactly. Left to itself, the guest measures it at
//! boot against the emulated PIT over a few milliseconds. On a loaded host, the vCPU thread
//! is descheduled through that window, and the guest gets it wrong. Seen in bench row 12,
//! beside four busy processes on two cores: the guest clock ran about 45 times too fast
//! (193 s of guest uptime at the runner's hello, 4.3 s of wall time). Soft-lockup reports
//! followed, and every in-guest deadline of that boot expired early: six failed trials on a
//! clean kernel. Or the PIT calibration fails, the TSC is not used, and the guest keeps
//! time in jiffies, which lose ticks while the vCPU waits. Giving the frequency removes the
//! measurement. The lapic timer is then calibrated against the TSC, and both read host time.
//! Given with `tsc=reliable`: the clocksource watchdog would otherwise compare the TSC with
//! jiffies, which lag under load, and mark the TSC unstable. A constant host TSC is not
//! unstable (only such a host gets a figure here).

use std::sync::OnceLock;

/// The host's TSC frequency in kHz, measured once per process. `None` where a guest must
/// measure its own: a host that is not x86_64, or whose TSC rate is not constant.
pub fn khz() -> Option<u32> {
    static KHZ: OnceLock<Option<u32>> = OnceLock::new();
    *KHZ.get_or_init(measure)
}

#[cfg(target_arch = "x86_64")]
fn measure() -> Option<u32> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    if !constant_rate(&cpuinfo) {
        return None;
    }
    let (ns0, tsc0) = reading()?;
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (ns1, tsc1) = reading()?;
    khz_between((ns0, tsc0), (ns1, tsc1))
}

#[cfg(not(target_arch = "x86_64"))]
fn measure() -> Option<u32> {
    None
}

/// `constant_tsc` among the first CPU's flags: the TSC ticks at one rate whatever the
/// CPU's frequency, so one figure describes it.
fn constant_rate(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .is_some_and(|l| l.split_whitespace().any(|f| f == "constant_tsc"))
}

/// Ticks per millisecond between two (monotonic ns, TSC) readings, if plausible (0.1–10 GHz).
fn khz_between(a: (u64, u64), b: (u64, u64)) -> Option<u32> {
    let ns = b.0.checked_sub(a.0)?;
    let ticks = b.1.checked_sub(a.1)?;
    if ns == 0 {
        return None;
    }
    let khz = (ticks as u128 * 1_000_000 / ns as u128) as u64;
    (100_000..=10_000_000).contains(&khz).then_some(khz as u32)
}

/// The monotonic clock and the TSC read together: a pair whose two clock reads lie more
/// than 20 µs apart was preempted between them (this host is loaded too) and is read
/// again, so the 100 ms between readings gives the rate within 0.04%.
#[cfg(target_arch = "x86_64")]
fn reading() -> Option<(u64, u64)> {
    fn now_ns() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // CLOCK_MONOTONIC_RAW: not slewed by NTP, as the TSC is not.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_RAW, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
    for _ in 0..1000 {
        let before = now_ns();
        let tsc = unsafe { core::arch::x86_64::_rdtsc() };
        let after = now_ns();
        if after - before < 20_000 {
            return Some((before + (after - before) / 2, tsc));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_ticks_per_millisecond_and_plausible() {
        assert_eq!(
            khz_between((0, 0), (100_000_000, 260_000_000)),
            Some(2_600_000)
        );
        assert_eq!(khz_between((0, 0), (100_000_000, 1_000)), None, "10 kHz");
        assert_eq!(khz_between((5, 0), (5, 10)), None);
        assert_eq!(khz_between((10, 10), (5, 20)), None);
    }

    #[test]
    fn only_a_constant_rate_tsc_is_described() {
        assert!(constant_rate(
            "processor\t: 0\nflags\t\t: fpu tsc constant_tsc nonstop_tsc\n"
        ));
        assert!(!constant_rate("flags\t\t: fpu tsc\n"));
        assert!(!constant_rate(""));
    }

    /// On this host, the measurement agrees with itself within 0.1%.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn two_measurements_agree() {
        let (Some(a), Some(b)) = (measure(), measure()) else {
            return; // no constant TSC here: nothing to hand a guest
        };
        let diff = (a as i64 - b as i64).unsigned_abs();
        assert!(diff * 1000 <= a as u64, "{a} kHz then {b} kHz");
    }
}
