//! How a scenario ends: [`Stop`] and the checks that produce it. A scenario returns [`R`];
//! falling off its end is a pass, and each of the macros here (`fail!`, `check!`,
//! `check_eq!`, `symptom!`) returns early with the failure it describes, so a check reads as
//! one line in the scenario and says in its message what the kernel did.

use std::io;

use result_channel::Feature;

use crate::uapi::Errno;

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
    /// A failure with `what` in front of its message; an ignore or a symptom as it is.
    pub fn prefixed(self, what: &str) -> Self {
        match self {
            Stop::Fail(m) => Stop::Fail(format!("{what}: {m}")),
            other => other,
        }
    }

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
