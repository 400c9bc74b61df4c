//! Whether the kernel has a [`Feature`] a scenario declares, found by probing it (never by
//! version string). The runner probes every feature a scenario requires before running it,
//! so a kernel without one reports the scenario ignored with what the probe found, and no
//! scenario checks its requirements again by hand.

use result_channel::Feature;

use super::{Ctx, Stop, R};
use crate::fail;
use crate::uapi::{self, Errno};

impl Ctx {
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
