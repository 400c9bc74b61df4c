//! The process's exit status, as `cargo test` has it, so that CI and scripts can tell a kernel
//! that fails its checks from a harness that could not check it:
//! 0 every trial passed, 101 some trial failed, 2 the harness could not do its job (bad input,
//! a build that failed, missing tools, no network and no cached index), 130 interrupted.

use std::process::ExitCode;

/// Some trial (scenario, upstream selftest, mutant, console scan) failed: libtest's code.
pub const TRIALS_FAILED: u8 = 101;
/// Bad input, a failed build, missing tools, infrastructure: nothing was judged.
pub const HARNESS_ERROR: u8 = 2;
/// SIGINT or SIGTERM stopped the run (128 + SIGINT, as a shell reports a Ctrl-C).
pub const INTERRUPTED: u8 = 130;

/// 0 when nothing failed, [`TRIALS_FAILED`] otherwise.
pub fn trials(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(TRIALS_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// The status of a command that ended in an error: interrupted, or the harness's own failure.
pub fn error(interrupted: bool) -> ExitCode {
    ExitCode::from(if interrupted {
        INTERRUPTED
    } else {
        HARNESS_ERROR
    })
}
