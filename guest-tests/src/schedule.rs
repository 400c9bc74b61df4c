//! Which scenario starts next when several may run side by side, and which scenarios must run
//! again alone because the kernel complained while more than one of them was running.
//!
//! Both are pure (no processes, no files) so that the host's tests check them; the runner
//! (`ue-scenarios --plan`) drives them with its children and its reads of `/dev/kmsg`.

use std::collections::BTreeSet;

use result_channel::trouble::{classify, TroubleKind};
use result_channel::{parse_pid_marker, splat_pid, KMSG_MARKER};

/// What the scheduler needs to know about a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traits {
    /// Runs with nothing beside it.
    pub alone: bool,
    /// The kernel's fault warning is an expected outcome of it. Such scenarios share the
    /// machine only with each other: a fault warning while they run is then excused for
    /// every candidate, and never forces a second run.
    pub fault_warnings: bool,
    /// The plan starts it last ([`result_channel::Plan::defer`]), and only once everything
    /// not deferred has ended: beside one of them it could break the kernel under it.
    pub deferred: bool,
}

/// The index in `pending` of the scenario to start now, if any: the first one, in plan order,
/// that may join what is `running` (at most `jobs` at once; an `alone` one only into an empty
/// machine; fault-warning scenarios only beside their own kind). `exiting` ones have reported
/// and are only being reaped: they take no slot, but a splat from their exit must stay
/// attributable, so they count for who may run beside whom. With `keep_order`, an `alone`
/// one is a barrier too: nothing planned after it starts before it, so the plan's order holds
/// around it. A plan that stops at its first failure keeps its order: its first scenarios (a
/// mutant's named ones) are the ones that decide. Otherwise the others go ahead, side by side.
pub fn next(
    pending: &[Traits],
    running: &[Traits],
    exiting: &[Traits],
    jobs: usize,
    keep_order: bool,
) -> Option<usize> {
    let mut present = running.iter().chain(exiting);
    if pending.is_empty() || running.len() >= jobs.max(1) || present.any(|r| r.alone) {
        return None;
    }
    let Some(r) = running.iter().chain(exiting).next() else {
        return Some(0);
    };
    let barrier = if keep_order {
        pending
            .iter()
            .position(|p| p.alone)
            .unwrap_or(pending.len())
    } else {
        pending.len()
    };
    let only_deferred_present = running.iter().chain(exiting).all(|r| r.deferred);
    pending[..barrier].iter().position(|p| {
        !p.alone && p.fault_warnings == r.fault_warnings && (!p.deferred || only_deferred_present)
    })
}

/// The order scenarios start in side by side, when the plan's own order does not matter (not
/// under fail-fast, not with one job at a time): those that must
/// run alone first, while the machine is empty anyway, then the fault-warning ones (beside
/// each other only), then the rest side by side. Each switch between these kinds waits for
/// the machine to drain, so that there are two switches, and the long tail of the run is
/// the side-by-side part, where the slots are all used. Stable within each kind.
pub fn start_order(pending: &mut [(String, Traits)]) {
    pending.sort_by_key(|(_, t)| match (t.alone, t.fault_warnings) {
        (true, _) => 0,
        (false, true) => 1,
        (false, false) => 2,
    });
}

/// Marks the `deferred` scenarios and moves them behind all others, each group keeping its
/// order (a stable partition): the plan's deferral outranks the start order's kinds.
/// [`next`] then starts none of them beside one that is not deferred.
pub fn defer(pending: &mut [(String, Traits)], deferred: &[String]) {
    if deferred.is_empty() {
        return;
    }
    for (name, t) in pending.iter_mut() {
        t.deferred = deferred.contains(name);
    }
    pending.sort_by_key(|(_, t)| t.deferred);
}

/// One record of `/dev/kmsg` as the runner needs it: its level and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    pub level: u8,
    pub text: String,
}

/// Parses one read of `/dev/kmsg`: `PRIO,SEQ,USEC,FLAGS;TEXT\n` and continuation lines.
pub fn parse_kmsg(raw: &str) -> Option<KmsgRecord> {
    let (head, rest) = raw.split_once(';')?;
    let prio: u32 = head.split(',').next()?.parse().ok()?;
    let text = rest.lines().next().unwrap_or("").to_owned();
    Some(KmsgRecord {
        level: (prio & 7) as u8,
        text,
    })
}

/// Follows the kernel log in its own order, as the host's console watch does: the runner's
/// start and end markers say what was running when each other record was logged. Trouble (as
/// the host's console watch classifies it) while two or more scenarios ran, naming none of
/// their processes, cannot be attributed to one of them by its place in the log: every one of
/// them is then marked to run again, alone.
#[derive(Debug, Default)]
pub struct Attribution {
    running: Vec<String>,
    /// Each scenario's process (its process group's leader), from the `pid` markers.
    pids: Vec<(u32, String)>,
    /// Scenarios to run again alone, with the first record that made them ambiguous.
    pub rerun: BTreeSet<String>,
    pub first_ambiguous: Option<String>,
    /// The first trouble the host will fail a scenario for, logged while one or more ran
    /// (whoever it belongs to), and what was running: a fail-fast run stops there, as it
    /// stops at a scenario's own failure.
    pub first_trouble: Option<(String, Vec<String>)>,
}

impl Attribution {
    /// `expects_faults(name)` says whether a scenario declared fault warnings.
    pub fn feed(&mut self, rec: &KmsgRecord, expects_faults: impl Fn(&str) -> bool) {
        if let Some(rest) = rec.text.strip_prefix(KMSG_MARKER) {
            if let Some(name) = rest.strip_prefix("start ") {
                self.running.push(name.to_owned());
            } else if let Some((pid, name)) = parse_pid_marker(rest) {
                self.pids.push((pid, name.to_owned()));
            } else if let Some(name) = rest.strip_prefix("end ") {
                if let Some(i) = self.running.iter().position(|r| r == name) {
                    self.running.remove(i);
                }
            }
            return;
        }
        let Some(kind) = classify(&rec.text) else {
            return;
        };
        if self.running.is_empty()
            || kind == TroubleKind::UserEventsFault
                && self.running.iter().all(|r| expects_faults(r))
        {
            return;
        }
        self.first_trouble
            .get_or_insert_with(|| (rec.text.clone(), self.running.clone()));
        if self.running.len() < 2 {
            return;
        }
        // A splat that names a scenario's own process is that scenario's. A hung-task report
        // names the stuck task, which may belong to a scenario that has ended (the runner
        // left it behind and marked its pid): that one's too, never the running ones'.
        if let Some(pid) = splat_pid(&rec.text) {
            let stuck_task = kind == TroubleKind::HungTask;
            if self
                .pids
                .iter()
                .any(|(p, n)| *p == pid && (stuck_task || self.running.contains(n)))
            {
                return;
            }
        }
        self.rerun.extend(self.running.iter().cloned());
        self.first_ambiguous.get_or_insert_with(|| rec.text.clone());
    }

    /// Whether a splat has made the run fall back to one scenario at a time.
    pub fn fell_back(&self) -> bool {
        !self.rerun.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Traits = Traits {
        alone: false,
        fault_warnings: false,
        deferred: false,
    };
    const ALONE: Traits = Traits {
        alone: true,
        fault_warnings: false,
        deferred: false,
    };
    const FAULTY: Traits = Traits {
        alone: false,
        fault_warnings: true,
        deferred: false,
    };

    /// The deferred ones go behind everything, alone ones included; each group keeps its
    /// order. No deferral leaves the order as it was.
    #[test]
    fn deferred_scenarios_start_last_in_their_order() {
        let mut p: Vec<(String, Traits)> =
            [("a", ALONE), ("f", FAULTY), ("b", PLAIN), ("g", FAULTY)]
                .map(|(n, t)| (n.to_owned(), t))
                .to_vec();
        defer(&mut p, &[]);
        let names = |p: &[(String, Traits)]| p.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&p), ["a", "f", "b", "g"]);
        defer(&mut p, &["a".into(), "g".into()]);
        assert_eq!(names(&p), ["f", "b", "a", "g"]);
        // A deferred one never starts beside one that is not: it waits for it to end.
        let late = Traits {
            deferred: true,
            ..PLAIN
        };
        assert_eq!(next(&[late], &[PLAIN], &[], 2, false), None);
        assert_eq!(next(&[late], &[], &[PLAIN], 2, false), None);
        assert_eq!(next(&[late], &[late], &[], 2, false), Some(0));
        assert_eq!(next(&[late], &[], &[], 2, false), Some(0));
    }

    #[test]
    fn alone_scenarios_wait_for_an_empty_machine_and_keep_it() {
        for keep in [false, true] {
            assert_eq!(next(&[ALONE], &[PLAIN], &[], 4, keep), None);
            assert_eq!(next(&[ALONE], &[], &[], 4, keep), Some(0));
            assert_eq!(next(&[], &[], &[], 4, keep), None);
            assert_eq!(next(&[PLAIN], &[ALONE], &[], 4, keep), None);
            assert_eq!(
                next(&[PLAIN, ALONE, PLAIN], &[PLAIN], &[], 4, keep),
                Some(0)
            );
        }
        assert_eq!(
            next(&[ALONE, PLAIN], &[PLAIN], &[], 4, false),
            Some(1),
            "others go ahead"
        );
        assert_eq!(
            next(&[ALONE, PLAIN], &[PLAIN], &[], 4, true),
            None,
            "in order: none passes it"
        );
        assert_eq!(next(&[FAULTY, ALONE, PLAIN], &[PLAIN], &[], 4, true), None);
    }

    #[test]
    fn jobs_bound_what_runs_and_one_means_one_at_a_time() {
        assert_eq!(next(&[PLAIN], &[PLAIN, PLAIN], &[], 2, false), None);
        assert_eq!(next(&[PLAIN], &[PLAIN], &[], 1, false), None);
        assert_eq!(next(&[PLAIN], &[], &[], 1, false), Some(0));
        assert_eq!(next(&[PLAIN], &[], &[], 0, false), Some(0));
    }

    #[test]
    fn fault_warning_scenarios_share_only_with_their_kind() {
        assert_eq!(next(&[FAULTY, PLAIN], &[PLAIN], &[], 4, false), Some(1));
        assert_eq!(next(&[PLAIN, FAULTY], &[FAULTY], &[], 4, false), Some(1));
        assert_eq!(next(&[PLAIN], &[FAULTY], &[], 4, false), None);
    }

    #[test]
    fn alone_ones_start_first_then_fault_warning_ones_then_the_rest_in_plan_order() {
        let mut p: Vec<(String, Traits)> = [
            ("a", PLAIN),
            ("b", FAULTY),
            ("c", ALONE),
            ("d", PLAIN),
            ("e", ALONE),
            ("f", FAULTY),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_owned(), t))
        .collect();
        start_order(&mut p);
        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["c", "e", "b", "f", "a", "d"]);
    }

    #[test]
    fn exiting_scenarios_take_no_slot_but_still_keep_kinds_apart() {
        // One running, one exiting, two jobs: a slot is free.
        assert_eq!(next(&[PLAIN], &[PLAIN], &[PLAIN], 2, false), Some(0));
        // An exiting plain scenario keeps a fault-warning one out, and an alone one waits.
        assert_eq!(next(&[FAULTY, PLAIN], &[], &[PLAIN], 2, false), Some(1));
        assert_eq!(next(&[ALONE], &[], &[PLAIN], 2, false), None);
        assert_eq!(next(&[PLAIN], &[], &[ALONE], 2, false), None);
    }

    fn rec(level: u8, text: &str) -> KmsgRecord {
        KmsgRecord {
            level,
            text: text.into(),
        }
    }

    fn marker(what: &str, name: &str) -> KmsgRecord {
        rec(4, &format!("{KMSG_MARKER}{what} {name}"))
    }

    #[test]
    fn kmsg_reads_give_level_and_first_line() {
        let r = parse_kmsg("12,345,6789,-;ue-runner: start a::b\n SUBSYSTEM=x\n").unwrap();
        assert_eq!(r, rec(4, "ue-runner: start a::b"));
        assert_eq!(parse_kmsg("4,1,2,c;WARNING: CPU: 1").unwrap().level, 4);
        assert_eq!(parse_kmsg("garbage"), None);
    }

    #[test]
    fn a_splat_beside_another_scenario_reruns_both_but_one_alone_is_attributed() {
        let mut a = Attribution::default();
        let none = |_: &str| false;
        a.feed(&marker("start", "x"), none);
        a.feed(&rec(4, "WARNING: CPU: 0 PID: 9 at kernel/x.c"), none);
        assert!(!a.fell_back(), "one scenario running: the console names it");
        a.feed(&marker("start", "y"), none);
        a.feed(&rec(6, "random: crng init done"), none);
        a.feed(&rec(4, "clocksource: timekeeping watchdog on CPU0: Marking clocksource 'tsc-early' as unstable"), none);
        assert!(!a.fell_back(), "records the console watch calls no trouble");
        a.feed(&rec(4, "WARNING: CPU: 1 PID: 10 at kernel/y.c"), none);
        a.feed(&marker("end", "x"), none);
        a.feed(&marker("start", "z"), none);
        assert_eq!(a.rerun.iter().collect::<Vec<_>>(), ["x", "y"]);
        assert!(a.first_ambiguous.unwrap().starts_with("WARNING"));
    }

    #[test]
    fn the_first_trouble_is_kept_with_what_ran_and_expected_faults_are_none() {
        let mut a = Attribution::default();
        let faults = |n: &str| n == "munmap::x";
        a.feed(&rec(4, "WARNING: CPU: 0 PID: 1 at kernel/boot.c"), faults);
        assert_eq!(
            a.first_trouble, None,
            "nothing ran: boot trouble is the host's"
        );
        a.feed(&marker("start", "munmap::x"), faults);
        a.feed(
            &rec(4, "user_events: Fault for mm: 0x1 @ 0x2 event: e"),
            faults,
        );
        assert_eq!(
            a.first_trouble, None,
            "a fault warning its scenario declares"
        );
        a.feed(&marker("start", "abi::y"), faults);
        a.feed(
            &rec(4, "user_events: Unable to queue fault handler"),
            faults,
        );
        a.feed(
            &rec(1, "BUG: kernel NULL pointer dereference, address: 0"),
            faults,
        );
        let (line, running) = a.first_trouble.clone().unwrap();
        assert!(line.contains("Unable to queue"), "{line}");
        assert_eq!(running, ["munmap::x", "abi::y"]);
    }

    #[test]
    fn a_splat_naming_a_scenarios_own_process_is_its_own() {
        let mut a = Attribution::default();
        let none = |_: &str| false;
        a.feed(&marker("start", "x"), none);
        a.feed(&rec(4, &format!("{KMSG_MARKER}pid 36 x")), none);
        a.feed(&marker("start", "y"), none);
        a.feed(
            &rec(4, "WARNING: CPU: 0 PID: 36 at kernel/trace/x.c:1"),
            none,
        );
        assert!(!a.fell_back());
        a.feed(
            &rec(4, "WARNING: CPU: 0 PID: 99 at kernel/trace/x.c:1"),
            none,
        );
        assert!(
            a.fell_back(),
            "a process of neither (a kworker, a grandchild)"
        );
        assert_eq!(
            splat_pid("CPU: 1 UID: 0 PID: 123 Comm: ue-scenarios"),
            Some(123)
        );
        assert_eq!(splat_pid("no pid here"), None);
        assert_eq!(parse_pid_marker("pid 7 a::b"), Some((7, "a::b")));
    }

    /// The runner left x's stuck task 41 behind and marked it; the kernel's hung-task
    /// report of it comes while y and z run: it is x's, and neither y nor z runs again.
    #[test]
    fn a_hung_task_report_of_a_task_left_behind_is_its_scenarios() {
        let mut a = Attribution::default();
        let none = |_: &str| false;
        a.feed(&marker("start", "x"), none);
        a.feed(&rec(4, &format!("{KMSG_MARKER}pid 40 x")), none);
        a.feed(&rec(4, &format!("{KMSG_MARKER}pid 41 x")), none);
        a.feed(&marker("end", "x"), none);
        a.feed(&marker("start", "y"), none);
        a.feed(&marker("start", "z"), none);
        let report = "INFO: task ue-scenarios:41 blocked for more than 4 seconds.";
        assert_eq!(splat_pid(report), Some(41));
        a.feed(&rec(3, report), none);
        assert!(!a.fell_back(), "{:?}", a.rerun);
        // A task of no scenario's (a kworker): the running ones cannot be told apart.
        a.feed(
            &rec(
                3,
                "INFO: task kworker/0:1:12 blocked for more than 4 seconds.",
            ),
            none,
        );
        assert!(a.fell_back());
    }

    #[test]
    fn fault_warnings_among_scenarios_that_all_expect_them_need_no_rerun() {
        let mut a = Attribution::default();
        let faulty = |n: &str| n != "plain";
        a.feed(&marker("start", "f1"), faulty);
        a.feed(&marker("start", "f2"), faulty);
        a.feed(&rec(4, "user_events: Fault for mm: 0000 @ 0x1"), faulty);
        assert!(!a.fell_back());
        a.feed(&marker("start", "plain"), faulty);
        a.feed(&rec(4, "user_events: Fault for mm: 0000 @ 0x1"), faulty);
        assert_eq!(a.rerun.len(), 3);
    }
}
