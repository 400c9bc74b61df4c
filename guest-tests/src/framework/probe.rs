//! Whether the kernel has a [`Feature`] a scenario declares, found by probing it (never by
//! version string). The runner probes every feature a scenario requires before running it
//! ([`Entry::run_if_present`](super::Entry::run_if_present)), so a kernel without one
//! reports the scenario ignored with what the probe found, and no scenario checks its
//! requirements again by hand.
//!
//! Each probe's answer is read by a function of its own (`*_answer`), apart from the system
//! call, so that what each answer means is checked by unit tests on the host.

use result_channel::Feature;

use super::{Ctx, Stop, R};
use crate::fail;
use crate::uapi::{self, Errno};

impl Ctx {
    /// Ignores the scenario unless the kernel has every one of `features`, probed in the
    /// order given: the first one missing is the one reported.
    pub fn require_all(&mut self, features: &[Feature]) -> R {
        features.iter().try_for_each(|&f| self.require(f))
    }

    /// Ignores the scenario unless the kernel has `feature`.
    pub fn require(&mut self, feature: Feature) -> R {
        match feature {
            Feature::RemoteWrite => self.require_remote_write(),
            Feature::StatusPage => self.require_status_page(),
            Feature::RegPersist | Feature::RegMultiFormat => self.require_flag(feature),
            Feature::Madvise => require_madvise(),
            Feature::Failslab => require_failslab(),
            Feature::Secretmem => require_secretmem(),
            Feature::Userfaultfd => require_userfaultfd(),
        }
    }

    /// Ignores the scenario unless the kernel has the 6.4+ remote-write ABI. The probe is an
    /// UNREG of nothing: 6.4+ answers ENOENT, the old status-page ABI does not know the ioctl.
    pub fn require_remote_write(&self) -> R {
        remote_write_answer(uapi::unreg(self.fd(), 0, 0))
    }

    /// Ignores the scenario unless the kernel has the old status-page ABI: the same probe as
    /// [`Ctx::require_remote_write`], read the other way (there DIAG_IOCSUNREG does not exist).
    pub fn require_status_page(&self) -> R {
        status_page_answer(uapi::unreg(self.fd(), 0, 0))
    }

    /// Ignores the scenario unless REG accepts the flag of `feature` ([`Feature::RegPersist`]
    /// from 6.7, [`Feature::RegMultiFormat`] from 6.9). The probe registers an event of the
    /// scenario's own (its first event name) with the flag, then removes it again.
    pub fn require_flag(&mut self, feature: Feature) -> R {
        let (flag, what) = match feature {
            Feature::RegPersist => (uapi::USER_EVENT_REG_PERSIST, "PERSIST"),
            Feature::RegMultiFormat => (uapi::USER_EVENT_REG_MULTI_FORMAT, "MULTI_FORMAT"),
            other => fail!("require_flag({other}): not a DIAG_IOCSREG flag"),
        };
        self.require_remote_write()?;
        let name = self.event_name();
        let word = Box::new(0u64);
        let reg = uapi::reg(self.fd(), &name, &*word as *const u64 as u64, 8, 0, flag);
        if reg.is_ok() {
            uapi::unreg(self.fd(), &*word as *const u64 as u64, 0)?;
            // A PERSIST probe event stays until deleted; delete it so it leaves no trace.
            let _ = uapi::del(self.fd(), &name);
        }
        flag_answer(feature, what, reg.map(drop))
    }
}

/// Ignores the scenario unless the kernel has madvise(2) (CONFIG_ADVISE_SYSCALLS, which a
/// small config may leave out). An madvise of no bytes answers 0 before it looks at any
/// mapping; without the option the system call is not there (ENOSYS).
fn require_madvise() -> R {
    let r = unsafe { libc::madvise(std::ptr::null_mut(), 0, libc::MADV_NORMAL) };
    MADVISE.answer(if r == 0 { Ok(()) } else { Err(Errno::last()) })
}

/// Ignores the scenario unless memfd_secret(2) gives a descriptor.
fn require_secretmem() -> R {
    SECRETMEM.answer(fd_probe(unsafe {
        libc::syscall(libc::SYS_memfd_secret, 0)
    }))
}

/// Ignores the scenario unless userfaultfd(2) gives a descriptor that may handle kernel
/// faults (no UFFD_USER_MODE_ONLY; the runner is root).
fn require_userfaultfd() -> R {
    USERFAULTFD.answer(fd_probe(unsafe {
        libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC)
    }))
}

/// A system call that returns a descriptor: closed again, or its errno.
fn fd_probe(ret: libc::c_long) -> Result<(), Errno> {
    if ret < 0 {
        return Err(Errno::last());
    }
    unsafe { libc::close(ret as i32) };
    Ok(())
}

/// A feature that is a system call: without its Kconfig option the call is not there
/// (ENOSYS), which is an ignore; any other error is a failure of the probe.
struct SyscallFeature {
    feature: Feature,
    /// The probe's call, for a failure's message.
    probe: &'static str,
    /// What ENOSYS says about the kernel.
    missing: &'static str,
}

const MADVISE: SyscallFeature = SyscallFeature {
    feature: Feature::Madvise,
    probe: "madvise(NULL, 0)",
    missing: "madvise gives ENOSYS (kernel without CONFIG_ADVISE_SYSCALLS)",
};

const SECRETMEM: SyscallFeature = SyscallFeature {
    feature: Feature::Secretmem,
    probe: "memfd_secret(0)",
    missing: "memfd_secret gives ENOSYS (kernel without CONFIG_SECRETMEM, or before 6.5 \
              without secretmem.enable=1)",
};

const USERFAULTFD: SyscallFeature = SyscallFeature {
    feature: Feature::Userfaultfd,
    probe: "userfaultfd(O_CLOEXEC)",
    missing: "userfaultfd gives ENOSYS (kernel without CONFIG_USERFAULTFD)",
};

impl SyscallFeature {
    fn answer(&self, r: Result<(), Errno>) -> R {
        match r {
            Ok(()) => Ok(()),
            Err(Errno(libc::ENOSYS)) => Err(Stop::ignore(self.feature, self.missing)),
            Err(e) => Err(Stop::Fail(format!("probe {}: unexpected {e}", self.probe))),
        }
    }
}

/// `/proc/thread-self/fail-nth`: the N-th fault site this thread reaches fails.
pub const FAIL_NTH: &str = "/proc/thread-self/fail-nth";
/// debugfs's failslab knobs, where the init mounts debugfs.
pub const FAILSLAB_DIR: &str = "/sys/kernel/debug/failslab";

/// Ignores the scenario unless the kernel can fail the N-th slab allocation of this thread,
/// the sleeping ones included: fail-nth (CONFIG_FAULT_INJECTION) and the failslab knobs in
/// debugfs (CONFIG_FAILSLAB, CONFIG_FAULT_INJECTION_DEBUG_FS), without which failslab skips
/// every GFP_KERNEL allocation.
fn require_failslab() -> R {
    let knob = format!("{FAILSLAB_DIR}/ignore-gfp-wait");
    failslab_answer(
        std::path::Path::new(FAIL_NTH).exists(),
        std::path::Path::new(&knob).exists(),
    )
}

/// What the two files of the failslab probe say.
fn failslab_answer(fail_nth: bool, knobs: bool) -> R {
    let found = match (fail_nth, knobs) {
        (true, true) => return Ok(()),
        (false, _) => format!("no {FAIL_NTH} (kernel without CONFIG_FAULT_INJECTION)"),
        (true, false) => format!(
            "no {FAILSLAB_DIR}/ignore-gfp-wait (kernel without CONFIG_FAILSLAB or CONFIG_FAULT_INJECTION_DEBUG_FS, or debugfs not mounted)"
        ),
    };
    Err(Stop::Ignore {
        missing: Feature::Failslab,
        found,
    })
}

/// What the remote-write probe's UNREG of nothing means.
fn remote_write_answer(unreg: Result<(), Errno>) -> R {
    match unreg {
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

/// What the status-page probe's UNREG of nothing means.
fn status_page_answer(unreg: Result<(), Errno>) -> R {
    match unreg {
        Err(Errno(libc::ENOTTY)) => Ok(()),
        Err(Errno(libc::ENOENT)) => Err(Stop::Ignore {
            missing: Feature::StatusPage,
            found:
                "DIAG_IOCSUNREG exists (the remote-write ABI, which removed the status page in 6.4)"
                    .into(),
        }),
        other => Err(Stop::Fail(format!(
            "probe DIAG_IOCSUNREG: unexpected {other:?}"
        ))),
    }
}

/// What REG with the flag `what` of `feature` answered.
fn flag_answer(feature: Feature, what: &str, reg: Result<(), Errno>) -> R {
    match reg {
        Ok(()) => Ok(()),
        Err(Errno(libc::EINVAL)) => Err(Stop::Ignore {
            missing: feature,
            found: format!("DIAG_IOCSREG rejects the {what} flag with EINVAL"),
        }),
        Err(e) => Err(Stop::Fail(format!(
            "probe of the {what} flag: unexpected {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secretmem_enosys_is_an_ignore_and_other_errors_fail() {
        assert!(SECRETMEM.answer(Ok(())).is_ok());
        assert_eq!(
            ignored(SECRETMEM.answer(Err(Errno(libc::ENOSYS)))).0,
            Feature::Secretmem
        );
        assert!(matches!(
            SECRETMEM.answer(Err(Errno(libc::EMFILE))),
            Err(Stop::Fail(_))
        ));
    }

    #[test]
    fn userfaultfd_enosys_is_an_ignore_and_other_errors_fail() {
        assert!(USERFAULTFD.answer(Ok(())).is_ok());
        assert_eq!(
            ignored(USERFAULTFD.answer(Err(Errno(libc::ENOSYS)))).0,
            Feature::Userfaultfd
        );
        // EPERM would be a runner without CAP_SYS_PTRACE: not a kernel without the feature.
        assert!(matches!(
            USERFAULTFD.answer(Err(Errno(libc::EPERM))),
            Err(Stop::Fail(_))
        ));
    }

    fn ignored(r: R) -> (Feature, String) {
        match r {
            Err(Stop::Ignore { missing, found }) => (missing, found),
            other => panic!("not an ignore: {other:?}"),
        }
    }

    fn failed(r: R) -> bool {
        matches!(r, Err(Stop::Fail(_)))
    }

    #[test]
    fn the_unreg_probe_tells_the_two_abis_apart() {
        let (enoent, enotty) = (Err(Errno(libc::ENOENT)), Err(Errno(libc::ENOTTY)));
        assert!(remote_write_answer(enoent).is_ok());
        assert_eq!(
            ignored(remote_write_answer(enotty)),
            (
                Feature::RemoteWrite,
                "DIAG_IOCSUNREG gives ENOTTY (old status-page user_events)".into()
            )
        );
        assert!(status_page_answer(enotty).is_ok());
        assert_eq!(
            ignored(status_page_answer(enoent)),
            (
                Feature::StatusPage,
                "DIAG_IOCSUNREG exists (the remote-write ABI, which removed the status page in 6.4)"
                    .into()
            )
        );
        // Any other answer is neither ABI as the probe knows it: a failure, never an ignore.
        for other in [Ok(()), Err(Errno(libc::EINVAL))] {
            assert!(failed(remote_write_answer(other)), "{other:?}");
            assert!(failed(status_page_answer(other)), "{other:?}");
        }
    }

    #[test]
    fn a_rejected_flag_is_its_own_feature_missing() {
        assert!(flag_answer(Feature::RegPersist, "PERSIST", Ok(())).is_ok());
        assert_eq!(
            ignored(flag_answer(
                Feature::RegMultiFormat,
                "MULTI_FORMAT",
                Err(Errno(libc::EINVAL))
            )),
            (
                Feature::RegMultiFormat,
                "DIAG_IOCSREG rejects the MULTI_FORMAT flag with EINVAL".into()
            )
        );
        assert!(failed(flag_answer(
            Feature::RegPersist,
            "PERSIST",
            Err(Errno(libc::EFAULT))
        )));
    }

    #[test]
    fn failslab_needs_both_fail_nth_and_its_debugfs_knobs() {
        assert!(failslab_answer(true, true).is_ok());
        for (fail_nth, knobs, says) in [
            (false, true, "CONFIG_FAULT_INJECTION"),
            (false, false, "CONFIG_FAULT_INJECTION"),
            (true, false, "debugfs"),
        ] {
            let (missing, found) = ignored(failslab_answer(fail_nth, knobs));
            assert_eq!(missing, Feature::Failslab);
            assert!(found.contains(says), "{found}");
        }
    }

    #[test]
    fn madvise_is_missing_only_when_the_system_call_is() {
        assert!(MADVISE.answer(Ok(())).is_ok());
        assert_eq!(
            ignored(MADVISE.answer(Err(Errno(libc::ENOSYS)))).0,
            Feature::Madvise
        );
        assert!(failed(MADVISE.answer(Err(Errno(libc::EINVAL)))));
        // The host has madvise: the real probe finds it.
        assert!(require_madvise().is_ok());
    }
}
