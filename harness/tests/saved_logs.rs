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
