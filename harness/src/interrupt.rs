//! The one flag that says SIGINT or SIGTERM reached the process. The signal handler (in the
//! binary) may only store to an atomic, so the flag is a static; every long wait (a boot, a
//! restart loop, a build, a bench) polls it between steps and stops cleanly. It lives here,
//! not in one of its readers, so that none of them owns what all of them read.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Records that an interrupt arrived. Async-signal-safe: one atomic store.
pub fn set() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// True once [`set`] was called: the caller stops what it is doing and fails with
/// "interrupted".
pub fn is_set() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
