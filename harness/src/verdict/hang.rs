//! Records the guest runner found stuck in the kernel ([`RecordEnd::hang`]) or never started
//! because user_events was blocked behind one ([`RecordEnd::blocked`]). Apart from the other
//! failures because their words come from typed facts the guest sent (the stuck task, its
//! kernel stack, the culprit), and because a blocked record's cause is another record's
//! stack, found in that record's own End.

use result_channel::{Hang, Outcome, Record, RecordEnd};

use super::trouble_text;
use crate::console::{Trouble, TroubleKind};
use crate::model::{FailCause, Verdict};
use crate::vm::VmReport;

/// The verdict of a record the runner found hung or blocked; None for any other.
pub(super) fn judge(end: &RecordEnd, report: &VmReport, troubles: &[&Trouble]) -> Option<Verdict> {
    let (cause, mut message) = match (&end.hang, &end.blocked) {
        (Some(h), _) => match &h.blocked_behind {
            None => (FailCause::Hung, hung(h)),
            Some(behind) => (
                FailCause::Blocked {
                    behind: behind.clone(),
                },
                waited_behind(h, behind, report),
            ),
        },
        (None, Some(b)) => (
            FailCause::Blocked {
                behind: b.culprit.clone(),
            },
            format!(
                "blocked behind {}: not run. After {0} hung in the kernel, user_events no longer \
                 answered: {} did not come back; it sleeps in:\n{}{}",
                b.culprit,
                b.probe,
                frames(&b.probe_stack),
                culprit_stack(&b.culprit, report)
            ),
        ),
        (None, None) => return None,
    };
    if let Some(r) = end.hang.as_ref().and_then(|h| h.reported.as_ref()) {
        message.push_str(&match r.outcome {
            Outcome::Pass => "\n(before it hung, its own checks had passed)".to_owned(),
            o => format!("\n(before it hung, it had reported {o:?}: {})", r.message),
        });
    }
    message.push_str(&after_the_kernel_died(report, troubles));
    // The detector reports a task again at every check while it stays stuck: its first
    // report of each task says it all.
    let mut reported_tasks = Vec::new();
    for t in troubles {
        if t.kind == TroubleKind::HungTask {
            if reported_tasks.contains(&t.pid) {
                continue;
            }
            reported_tasks.push(t.pid);
        }
        message.push('\n');
        message.push_str(&if t.kind == TroubleKind::HungTask {
            format!(
                "the kernel's own hung-task report:\n    {}",
                t.excerpt.join("\n    ")
            )
        } else {
            trouble_text(t)
        });
    }
    Some(Verdict::fail(cause, message))
}

/// A record whose own process was stuck.
fn hung(h: &Hang) -> String {
    let lock = if h.waits_on_lock {
        "\n(it waits on a lock whose holder is no scenario's process: the kernel's list of \
         blocked tasks, sysrq w, is in the console log)"
    } else {
        ""
    };
    format!(
        "hung in the kernel: {}; the runner killed it and left it behind\n  kernel stack:\n{}{lock}",
        stuck(h),
        frames(&h.stack)
    )
}

/// A record whose process waited on a lock while `behind`'s stayed stuck.
fn waited_behind(h: &Hang, behind: &str, report: &VmReport) -> String {
    format!(
        "blocked behind {behind}: {} while {behind}'s process stayed stuck in the kernel; the \
         runner killed it and left it behind\n  its stack:\n{}{}",
        stuck(h),
        frames(&h.stack),
        culprit_stack(behind, report)
    )
}

/// The stuck task in words: who, how long, where.
fn stuck(h: &Hang) -> String {
    let how_long = if h.spinning {
        let ran = if h.state_ms == 0 {
            "still ran in the kernel when its limit ran out".to_owned()
        } else {
            format!("ran in the kernel for {:.1} s", h.state_ms as f64 / 1000.0)
        };
        format!(
            "{ran} without sleeping or returning to user space (state R, its user time still: \
             a loop in the kernel, which no signal ends)"
        )
    } else if h.state_ms == 0 {
        "was still asleep in the kernel when its limit ran out".to_owned()
    } else {
        format!(
            "slept uninterruptibly (state D) for {:.1} s",
            h.state_ms as f64 / 1000.0
        )
    };
    let wchan = if h.wchan.is_empty() {
        String::new()
    } else {
        format!(" in {}", h.wchan)
    };
    let same = h
        .same_place_as
        .as_ref()
        .map(|r| {
            format!(
                ", at the very place where {r}'s task has been stuck all along (so known before \
                 the limit)"
            )
        })
        .unwrap_or_default();
    format!("process {} ({}) {how_long}{wchan}{same}", h.pid, h.comm)
}

/// The culprit's stack, from its own End (the cause of a blocked record).
fn culprit_stack(culprit: &str, report: &VmReport) -> String {
    let hang = report.records.iter().rev().find_map(|r| match r {
        Record::End(e) if e.name == culprit => e.hang.as_ref(),
        _ => None,
    });
    match hang {
        Some(h) => format!(
            "\n  {culprit}'s stack (the cause), process {} {}:\n{}",
            h.pid,
            if h.spinning {
                "spinning on a CPU".to_owned()
            } else {
                format!("in {}", h.wchan)
            },
            frames(&h.stack)
        ),
        None => String::new(),
    }
}

fn frames(stack: &[String]) -> String {
    if stack.is_empty() {
        return "    (no stack: /proc/PID/stack was empty or unreadable)".into();
    }
    stack
        .iter()
        .map(|f| format!("    {f}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A failure in a boot where the kernel had already oopsed (or hit a BUG) in another record
/// is most likely what that left behind: a lock never released, a kworker (and with it its
/// pool's work: the fault worker, RCU and SRCU callbacks) dead. Says where the kernel died,
/// or nothing when it did not (or did only in this record, whose own trouble says so).
pub(super) fn after_the_kernel_died(report: &VmReport, troubles: &[&Trouble]) -> String {
    let Some(t) = report
        .troubles
        .iter()
        .find(|t| matches!(t.kind, TroubleKind::Oops | TroubleKind::Bug) && !troubles.contains(t))
    else {
        return String::new();
    };
    let whose = match (&t.during, t.beside.is_empty()) {
        (Some(d), _) => format!("while {d} ran"),
        (None, false) => format!("while {} ran side by side", t.beside.join(", ")),
        (None, true) => "outside every scenario".to_owned(),
    };
    format!(
        "\n(earlier in this boot the kernel reported {:?} {whose}: {}; what it left behind, a \
         lock or a dead kworker, may be what this waited for)",
        t.kind,
        t.excerpt
            .first()
            .map_or("", |l| crate::console::strip_timestamp(l))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task that never slept is said to run in the kernel, with the CPU's frames, not to
    /// sleep in an empty wchan.
    #[test]
    fn a_spinning_task_is_said_to_run_in_the_kernel() {
        let h = Hang {
            pid: 3603,
            comm: "ue-scenarios".into(),
            state_ms: 3100,
            spinning: true,
            wchan: String::new(),
            stack: vec!["user_events_ioctl+0x438/0x6b9".into()],
            waits_on_lock: false,
            blocked_behind: None,
            after_result: false,
            reported: None,
            same_place_as: None,
        };
        let m = hung(&h);
        assert!(
            m.starts_with(
                "hung in the kernel: process 3603 (ue-scenarios) ran in the kernel for 3.1 s \
                 without sleeping or returning to user space"
            ),
            "{m}"
        );
        assert!(m.contains("    user_events_ioctl+0x438/0x6b9"), "{m}");
        assert!(!m.contains("slept") && !m.contains(" in \n"), "{m}");
        let asleep = Hang {
            spinning: false,
            wchan: "user_events_ioctl".into(),
            ..h
        };
        assert!(hung(&asleep)
            .contains("slept uninterruptibly (state D) for 3.1 s in user_events_ioctl"));
    }
}
