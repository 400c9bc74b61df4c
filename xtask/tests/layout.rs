//! Rules of xtask's layout that the compiler cannot keep: test-only crates stay in the
//! self-test module, and every wait for a child with a limit goes through `sys::proc` (where
//! the kill-and-reap is written once).

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Files under xtask/src (relative paths) whose text contains `needle`.
fn files_naming(needle: &str) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    sources(&src, &mut files);
    let mut hits: Vec<String> = files
        .iter()
        .filter(|p| std::fs::read_to_string(p).unwrap().contains(needle))
        .map(|p| p.strip_prefix(&src).unwrap().display().to_string())
        .collect();
    hits.sort();
    hits
}

#[test]
fn rexpect_is_used_by_the_self_tests_alone() {
    let outside: Vec<String> = files_naming("rexpect::")
        .into_iter()
        .filter(|p| !p.starts_with("selftest/"))
        .collect();
    assert!(
        outside.is_empty(),
        "rexpect is a self-test crate; used outside src/selftest/ in {outside:?}"
    );
}

/// harness's files whose text contains `needle`: its one wait is `proc.rs`, and `vm.rs`
/// owns the QEMU child in its own event loop (reading, limits and reaping are one loop).
#[test]
fn harness_children_are_waited_for_by_proc_and_the_vm_alone() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../harness/src");
    let mut files = vec![];
    sources(&src, &mut files);
    for needle in [".try_wait()", "libc::kill("] {
        let outside: Vec<String> = files
            .iter()
            .filter(|p| std::fs::read_to_string(p).unwrap().contains(needle))
            .map(|p| p.strip_prefix(&src).unwrap().display().to_string())
            .filter(|p| p != "proc.rs" && p != "vm.rs")
            .collect();
        assert!(
            outside.is_empty(),
            "`{needle}` in harness outside proc.rs and vm.rs (use proc::wait_with_deadline): {outside:?}"
        );
    }
}

#[test]
fn children_are_waited_for_by_sys_proc_alone() {
    for needle in [".try_wait()", "libc::kill("] {
        let outside: Vec<String> = files_naming(needle)
            .into_iter()
            .filter(|p| p != "sys/proc.rs")
            .collect();
        assert!(
            outside.is_empty(),
            "`{needle}` outside sys/proc.rs (use proc::wait_for and friends): {outside:?}"
        );
    }
}
