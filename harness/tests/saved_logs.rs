//! The console watch on real logs from `test_data/` (see its README for what each one is).

use harness::console::{scan, TroubleKind};

fn log(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data").join(name);
    String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).into_owned()
}

fn kinds(name: &str) -> Vec<TroubleKind> {
    scan(&log(name)).into_iter().map(|t| t.kind).collect()
}

#[test]
fn a_clean_run_has_only_the_expected_fault_warnings() {
    assert_eq!(kinds("clean_run_with_fault_warnings.log"), vec![TroubleKind::UserEventsFault; 5]);
}
