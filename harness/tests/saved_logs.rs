//! The console watch on real logs from `test_data/` (see its README for what each one is).

use harness::console::{scan, TroubleKind};

fn log(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test_data")
        .join(name);
    String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .into_owned()
}

fn kinds(name: &str) -> Vec<TroubleKind> {
    scan(&log(name)).into_iter().map(|t| t.kind).collect()
}

#[test]
fn a_clean_run_has_only_the_expected_fault_warnings() {
    assert_eq!(
        kinds("clean_run_with_fault_warnings.log"),
        vec![TroubleKind::UserEventsFault; 5]
    );
}

#[test]
fn a_sysrq_panic_is_one_panic_with_its_call_trace() {
    let found = scan(&log("sysrq_panic_mid_run.log"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, TroubleKind::Panic);
    assert!(
        found[0]
            .excerpt
            .iter()
            .any(|l| l.contains("sysrq_handle_crash")),
        "{:?}",
        found[0].excerpt
    );
}

#[test]
fn a_log_cut_mid_line_still_shows_the_panic() {
    let found = scan(&log("panic_cut_mid_line.log"));
    assert_eq!(
        found.iter().map(|t| t.kind).collect::<Vec<_>>(),
        [TroubleKind::Panic]
    );
}

#[test]
fn a_warning_splat_is_one_trouble_with_file_line_and_call_trace() {
    let found = scan(&log("warn_in_unreg.log"));
    assert_eq!(found.len(), 1, "{found:?}");
    let t = &found[0];
    assert_eq!(t.kind, TroubleKind::Warning);
    assert!(
        t.excerpt[0].contains("at kernel/trace/trace_events_user.c:"),
        "{:?}",
        t.excerpt
    );
    assert!(t.excerpt.iter().any(|l| l.contains("Call Trace:")));
    assert!(
        t.excerpt.last().unwrap().contains("---[ end trace"),
        "the excerpt stops at the end marker"
    );
}

#[test]
fn the_runner_markers_attribute_a_splat_to_its_scenario() {
    let mut w = harness::console::Watch::new();
    for l in log("warn_in_unreg.log").lines() {
        // The result channel's view is deliberately wrong: the markers in the console win.
        w.feed(l, Some("basic::present"));
    }
    assert_eq!(
        w.found[0].during.as_deref(),
        Some("basic::private_anon_enable_disable")
    );
}

#[test]
fn quiet_boots_have_no_trouble() {
    for name in ["init_without_runner.log", "host_killed_hung_scenario.log"] {
        assert!(scan(&log(name)).is_empty(), "{name}");
    }
}

/// The runner's own dump of blocked tasks (sysrq w) is not trouble: the hang is judged from
/// the result channel, and the dump is the console's witness of it.
#[test]
fn a_dump_of_blocked_tasks_is_no_trouble() {
    assert_eq!(kinds("del_hangs_holding_locks.log"), vec![]);
    let log = log("del_hangs_holding_locks.log");
    assert!(
        log.contains("? __mutex_lock.constprop.0+"),
        "the waiter's lock frame"
    );
    assert!(log.contains("? schedule_timeout+"), "the holder's sleep");
}

/// Each hung-task report names a task the runner left behind and marked: it goes to that
/// task's scenario, though it came seconds later while others ran side by side, and its
/// excerpt is the report with its stack, nothing after it.
#[test]
fn a_hung_task_report_goes_to_the_scenario_whose_task_it_names() {
    let log = log("exit_hangs_reported_later.log");
    let marked: Vec<(u32, String)> = log
        .lines()
        .filter_map(|l| {
            let rest =
                harness::console::strip_timestamp(l).strip_prefix(harness::channel::KMSG_MARKER)?;
            let (pid, name) = harness::channel::parse_pid_marker(rest)?;
            Some((pid, name.to_owned()))
        })
        .collect();
    let found = scan(&log);
    let hung: Vec<_> = found
        .iter()
        .filter(|t| t.kind == TroubleKind::HungTask)
        .collect();
    assert!(!hung.is_empty(), "{found:?}");
    for t in hung {
        let pid = t.pid.expect("the report names its task");
        let owner = marked.iter().rev().find(|(p, _)| *p == pid).map(|(_, n)| n);
        assert_eq!(t.during.as_ref(), owner, "{t:?}");
        assert!(t.beside.is_empty(), "{t:?}");
        assert!(t.excerpt[0].contains(&format!("INFO: task ue-scenarios:{pid} blocked")));
        assert!(t
            .excerpt
            .iter()
            .any(|l| l.contains("user_event_mm_remove+")));
        assert!(
            t.excerpt.last().unwrap().trim_end().ends_with("</TASK>"),
            "{t:?}"
        );
    }
}
