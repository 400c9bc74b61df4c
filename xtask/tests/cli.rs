//! The command line given odd values: each ends in one `error:` line and exit status 1 (or
//! clap's usage error, 2), never a panic, and before anything is downloaded, built or booted.

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
        assert_eq!(code, 1, "{args:?}: exit {code}\n{stderr}");
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
        assert_eq!(code, 1, "{cmd}: {stderr}");
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
