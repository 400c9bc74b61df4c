//! What the kernel console calls trouble: one classifier, so that the guest's runner (which
//! decides when scenarios side by side must run again alone) and the host's console watch
//! (which fails scenarios) count exactly the same lines.

use serde::{Deserialize, Serialize};

/// What kind of trouble a console line starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TroubleKind {
    Panic,
    Oops,
    Bug,
    Warning,
    Sanitizer,
    Lockdep,
    Lockup,
    /// The hung-task detector: `INFO: task COMM:PID blocked for more than N seconds.` A
    /// task sat in uninterruptible sleep that long without being scheduled.
    HungTask,
    /// A write of a registration's bit that user_events could not make: the fault worker
    /// could not fault the page in (`user_events: Fault for mm`), or the fault could not be
    /// handed to the worker at all (`user_events: Unable to queue fault handler`). Expected
    /// only where a scenario takes the word away (unmaps it) or fails the allocation on purpose.
    UserEventsFault,
    /// An event user_events could not free when its last reference went (`user_events:
    /// Unable to delete event`, `... Unable to queue delayed destroy`): it stays until someone
    /// deletes it. Nothing the suite does on purpose makes either happen.
    UserEventsLeft,
}

impl TroubleKind {
    /// A one-line message, not a splat with a stack that ends in `---[ end`.
    pub fn is_one_line(self) -> bool {
        matches!(
            self,
            TroubleKind::UserEventsFault | TroubleKind::UserEventsLeft
        )
    }
}

/// Classifies one console line (timestamps and all).
pub fn classify(line: &str) -> Option<TroubleKind> {
    let l = strip_timestamp(line);
    let starts = |p: &str| l.starts_with(p);
    if starts("Kernel panic - not syncing") {
        Some(TroubleKind::Panic)
    } else if starts("Oops:") || l.contains("] Oops:") || starts("general protection fault") {
        Some(TroubleKind::Oops)
    } else if starts("INFO: task ") && l.contains(" blocked for more than ") {
        Some(TroubleKind::HungTask)
    } else if l.contains("BUG: soft lockup") {
        // `watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [COMM:PID]`
        Some(TroubleKind::Lockup)
    } else if starts("BUG:") && !starts("BUG: KASAN") {
        if l.contains("soft lockup") {
            Some(TroubleKind::Lockup)
        } else {
            Some(TroubleKind::Bug)
        }
    } else if starts("kernel BUG at") {
        Some(TroubleKind::Bug)
    } else if starts("Unexpected gfp:") && l.contains("Fix your code!") {
        // kmalloc_fix_flags(): an allocation asked for with flags a slab cannot take (a
        // size and flags swapped, say), fixed up, with a stack dump: WARN()'s in all but name.
        Some(TroubleKind::Warning)
    } else if starts("WARNING:") && l.contains(" at ") {
        // "WARNING: CPU: 0 PID: 1 at kernel/...": a WARN(); lockdep's own "WARNING: possible
        // circular locking dependency detected" has no " at ".
        Some(TroubleKind::Warning)
    } else if starts("WARNING: possible")
        || starts("WARNING: inconsistent lock state")
        || l.contains("lockdep") && starts("WARNING")
    {
        Some(TroubleKind::Lockdep)
    } else if starts("BUG: KASAN")
        || starts("UBSAN:")
        || starts("BUG: KFENCE")
        || starts("KFENCE:")
        || is_slab_debug_report(l)
    {
        Some(TroubleKind::Sanitizer)
    } else if l.contains("Watchdog detected hard LOCKUP")
        || l.contains("rcu_sched self-detected stall")
        || l.contains("rcu: INFO: rcu_") && l.contains("stall")
    {
        Some(TroubleKind::Lockup)
    } else if starts("user_events: Fault for mm")
        || starts("user_events: Unable to queue fault handler")
    {
        Some(TroubleKind::UserEventsFault)
    } else if starts("user_events: Unable to delete event")
        || starts("user_events: Unable to queue delayed destroy")
    {
        Some(TroubleKind::UserEventsLeft)
    } else {
        None
    }
}

/// SLUB's own checks (`slub_debug`, which the harness boots with): `BUG CACHE (TAINT):
/// WHAT`, e.g. `BUG kmalloc-cg-64 (Not tainted): Poison overwritten` when a freed object was
/// written (a use after free) and then handed out again, or `Object already free`. No colon
/// follows the BUG, so the `BUG:` test above misses it.
fn is_slab_debug_report(l: &str) -> bool {
    l.strip_prefix("BUG ").is_some_and(|rest| {
        rest.split_once(" (")
            .is_some_and(|(cache, after)| !cache.contains(' ') && after.contains("): "))
    })
}

/// `[    1.234567] text` → `text`.
pub fn strip_timestamp(line: &str) -> &str {
    let t = line.trim_start_matches(['\r', '\0']);
    if t.starts_with('[') {
        if let Some(end) = t.find("] ") {
            if t[1..end]
                .trim()
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.')
            {
                return &t[end + 2..];
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slub_debug_reports_are_sanitizer_trouble() {
        for l in [
            "[    9.1] BUG kmalloc-cg-64 (Not tainted): Poison overwritten",
            "[    9.1] BUG kmalloc-64 (Tainted: G        W ): Object already free",
            "[    9.1] BUG user_event_enabler_fault (Not tainted): Redzone overwritten",
        ] {
            assert_eq!(classify(l), Some(TroubleKind::Sanitizer), "{l}");
        }
        assert_eq!(
            classify("[    9.1] BUG in the test (not a kernel line)"),
            None
        );
        assert_eq!(
            classify("[    9.1] BUG: kernel NULL pointer dereference, address: 0"),
            Some(TroubleKind::Bug)
        );
    }

    #[test]
    fn user_events_own_warnings_are_one_line_trouble() {
        let fault = "[    3.7] user_events: Fault for mm: 0x(____ptrval____) @ 0x7f00 event: e";
        let unqueued = "[    2.1] user_events: Unable to queue fault handler";
        assert_eq!(classify(fault), Some(TroubleKind::UserEventsFault));
        assert_eq!(classify(unqueued), Some(TroubleKind::UserEventsFault));
        for left in [
            "[    4.0] user_events: Unable to delete event",
            "[    4.0] user_events: Unable to queue delayed destroy",
        ] {
            assert_eq!(classify(left), Some(TroubleKind::UserEventsLeft), "{left}");
        }
        assert!(TroubleKind::UserEventsFault.is_one_line());
        assert!(TroubleKind::UserEventsLeft.is_one_line());
        assert!(!TroubleKind::Warning.is_one_line());
        // Its boot-time messages are not scenario trouble (a kernel without user_events is
        // told apart by the runner), nor is another subsystem's line that merely names it.
        assert_eq!(
            classify("[    0.5] user_events could not register with tracefs"),
            None
        );
    }
}
