//! The command line given odd values: each ends in one `error:` line and exit status 2 (a
//! harness error, as clap's usage errors), never a panic, and before anything is downloaded,
//! built or booted. Failed trials exit 101, as with `cargo test`.

use std::process::Command;

fn xtask(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        // A cache folder of its own: nothing here may touch the real one.
        .env(
            "UE_CACHE_DIR",
            std::env::temp_dir().join("ue-harness-cli-test"),
        )
        .output()
        .expect("run the xtask binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn odd_values_are_messages_not_panics() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["test", "--kernel", ",", "--", "--list"],
            "names no kernel",
        ),
        (&["test", "--kernel", "", "--", "--list"], "names no kernel"),
        (
            &["test", "--kernel", "6.66", "--", "--list"],
            "unknown kernel \"6.66\"",
        ),
        (
            &["test", "--kernel-tree", "/nonexistent/tree", "--", "--list"],
            "--kernel-tree /nonexistent/tree",
        ),
        (&["kernels", "--cache-key", ","], "names no kernel"),
        (
            &["report", "/nonexistent/runs"],
            "no results.json under /nonexistent/runs",
        ),
        (&["parse"], "nothing to parse"),
    ];
    for (args, needle) in cases {
        let (code, stderr) = xtask(args);
        assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
        assert_eq!(code, 2, "{args:?}: exit {code}\n{stderr}");
        assert!(
            stderr.contains("error: ") && stderr.contains(needle),
            "{args:?}: {stderr}"
        );
    }
}

/// Commands that compare one kernel against its mutants or self-tests refuse a list, and say
/// so, whether or not the host tools are installed yet.
#[test]
fn one_kernel_commands_refuse_a_list() {
    for cmd in ["mutants", "selftest"] {
        let (code, stderr) = xtask(&[cmd, "--no-install", "--kernel", "all"]);
        assert!(!stderr.contains("panicked"), "{cmd} panicked:\n{stderr}");
        assert_eq!(code, 2, "{cmd}: {stderr}");
        assert!(
            stderr.contains("runs on one kernel") || stderr.contains("missing"),
            "{cmd}: {stderr}"
        );
    }
}

#[test]
fn clap_refuses_out_of_range_limits() {
    let (code, stderr) = xtask(&["test", "--scenario-timeout", "0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A kept run with one failed trial: `report` exits 101 (trials failed), and 0 once it passed.
#[test]
fn failed_trials_exit_101_and_passed_ones_0() {
    let d = tempfile::tempdir().unwrap();
    let run = |verdict: serde_json::Value| {
        serde_json::json!({
            "kernel": {"label": "6.12", "bzimage": "bzImage", "config": null, "provenance": "",
                       "kselftests": [], "expected": {"features": [], "source": ""}},
            "accel": "tcg", "run_dir": "run",
            "limits": {"boot": {"secs": 1, "nanos": 0}, "scenario": {"secs": 1, "nanos": 0},
                       "programs": [], "whole": {"secs": 1, "nanos": 0}, "silence": {"secs": 1, "nanos": 0}},
            "report": {"kernel_release": "6.12.117", "user_events": true, "guest_hello_ms": 1,
                       "guest_done_ms": 2, "records": [], "unfinished": null, "troubles": [],
                       "garbage": [], "end": {"how": "finished"}, "wall_ms": 3, "qemu_stderr": "",
                       "console_log": "console.log"},
            "verdicts": [{"name": "basic::present", "origin": "scenario", "verdict": verdict,
                          "duration_us": 1, "snapshots": [], "notes": []}]
        })
    };
    let dir = d.path().to_str().unwrap();
    let results = d.path().join("results.json");
    std::fs::write(
        &results,
        run(serde_json::json!({"verdict": "fail", "message": "got 0, want 1"})).to_string(),
    )
    .unwrap();
    let (code, stderr) = xtask(&["report", dir]);
    assert_eq!(code, 101, "{stderr}");
    std::fs::write(
        &results,
        run(serde_json::json!({"verdict": "pass"})).to_string(),
    )
    .unwrap();
    let (code, stderr) = xtask(&["report", dir]);
    assert_eq!(code, 0, "{stderr}");
}

/// CI's check (issue 21): dpkg's log from the run's start offset. A removal after it fails
/// with exit 2 and names the package; one before it does not count.
#[test]
fn host_tools_fails_on_a_removal_in_dpkgs_log_since_the_offset() {
    let d = std::env::temp_dir().join(format!("ue-cli-dpkg-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let log = d.join("dpkg.log");
    let before = "2026-12-01 10:00:00 remove old-thing:amd64 1.0 <none>\n";
    let during =
        "2026-12-03 11:40:00 install qemu-system-x86:amd64 <none> 1:10.0.2+ds-2+deb13u1~bpo12+1\n";
    std::fs::write(&log, format!("{before}{during}")).unwrap();
    let offset = before.len().to_string();
    let log_arg = log.display().to_string();
    let args = [
        "host-tools",
        "--dpkg-log",
        &log_arg,
        "--dpkg-log-since",
        &offset,
    ];
    let (code, stderr) = xtask(&args);
    assert_eq!(code, 0, "{stderr}");
    std::fs::write(
        &log,
        format!(
            "{before}{during}2026-12-03 11:41:00 remove qemu-utils:amd64 1:10.0.2+ds-2+deb13u1~bpo12+1 <none>\n"
        ),
    )
    .unwrap();
    let (code, stderr) = xtask(&args);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("removed or downgraded during the run")
            && stderr.contains("qemu-utils:amd64 1:10.0.2+ds-2+deb13u1~bpo12+1 removed")
            && !stderr.contains("old-thing"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
