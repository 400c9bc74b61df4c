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

/// Runs the binary with a cache folder of its own; the exit code, stdout and stderr.
fn xtask_in(cache: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("UE_CACHE_DIR", cache)
        .output()
        .expect("run the xtask binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The refusals of issue 24, each with its one line and exit 2, before anything is done.
#[test]
fn flags_that_would_do_nothing_are_refused_naming_the_combination() {
    let cases: &[(&[&str], &str)] = &[
        // A number that would silently mean "the default", or that clap would take for a flag.
        (
            &["test", "--jobs", "0"],
            "0 is out of range: a whole number from 1",
        ),
        (
            &["test", "--build-jobs", "0"],
            "0 is out of range: a whole number from 1",
        ),
        (&["build-kernel", "--build-jobs", "0"], "0 is out of range"),
        (
            &["test", "--poll-deadline-ms", "-1"],
            "\"-1\" is not a whole number from 1 to 600000",
        ),
        (
            &["test", "--cpus", "-2"],
            "\"-2\" is not a whole number from 1 to 64",
        ),
        (&["mutate", "--sample", "0"], "0 is out of range"),
        (&["bench", "--runs", "0"], "0 is out of range"),
        (&["bench", "--only", "-1"], "\"-1\" is not a whole number"),
        (
            &["cache", "gc", "--keep-days", "-1"],
            "\"-1\" is not a whole number",
        ),
        (
            &["test", "--memory", "-1"],
            "give MiB or a size with M or G",
        ),
        (&["mutate", "--seed", "-1"], "\"-1\" is not a whole number"),
        (
            &["mutate", "--no-upstream", "--kselftest-from", "7.3-rc"],
            "'--no-upstream' cannot be used with '--kselftest-from",
        ),
        // Another architecture runs a report's survivors: the report chooses the mutants.
        (
            &["mutate", "--arch", "s390x"],
            "--arch s390x runs the survivors of an x86-64 report on s390x: give --out DIR",
        ),
        (
            &[
                "mutate", "--arch", "s390x", "--sample", "5", "--out", "/tmp",
            ],
            "--sample does nothing in `cargo xtask mutate --arch`",
        ),
        (
            &["mutate", "--arch", "s390x,arm64", "--out", "/tmp"],
            "`cargo xtask mutate` runs on one architecture; --arch names s390x,arm64",
        ),
        // What changes a build, with a ready image.
        (
            &["build-kernel", "--kernel-image", "/k", "--debug"],
            "'--kernel-image <KERNEL_IMAGE>' cannot be used with '--debug'",
        ),
        (
            &[
                "build-kernel",
                "--kernel-image",
                "/k",
                "--kconfig",
                "CONFIG_X=y",
            ],
            "cannot be used with '--kconfig",
        ),
        (
            &["build-kernel", "--kernel-image", "/k", "--ccache"],
            "cannot be used with '--ccache'",
        ),
        (
            &["test", "--kernel-image", "/k", "--patch", "p"],
            "cannot be used with '--patch",
        ),
        (
            &["build-kernel", "--kernel-image", "/k", "--gdb"],
            "--kernel-image with --gdb: build-kernel builds nothing",
        ),
        // Run options in commands that do not run them.
        (
            &["build-kernel", "--jobs", "2"],
            "--jobs does nothing in `cargo xtask build-kernel`",
        ),
        (
            &["build-kernel", "--features", "madvise"],
            "--features does nothing in `cargo xtask build-kernel`",
        ),
        (
            &["selftest", "--stress"],
            "--stress does nothing in `cargo xtask selftest`",
        ),
        (
            &["mutate", "--stress"],
            "--stress does nothing in `cargo xtask mutate`",
        ),
        (&["test", "--gdb-port", "9000"], "--gdb"),
        (&["setup", "--jobs", "2"], "unexpected argument '--jobs'"),
        (
            &["shell", "--max-restarts", "1"],
            "--max-restarts does nothing in `cargo xtask shell`",
        ),
        (
            &["shell", "--stress", "--jobs", "2"],
            "--stress, --jobs does nothing in `cargo xtask shell`",
        ),
        (
            &["matrix", "--kselftest"],
            "--kselftest does nothing in `cargo xtask matrix`",
        ),
        (
            &["mutants", "--kselftest"],
            "--kselftest does nothing in `cargo xtask mutants`",
        ),
        (
            &[
                "bisect",
                "--good",
                "a",
                "--bad",
                "b",
                "--kernel-tree",
                "/t",
                "--gdb",
                "--gdb-port",
                "9",
            ],
            "--gdb-port does nothing in `cargo xtask bisect`",
        ),
        (&["host-tools", "--dpkg-log", "/x"], "--dpkg-log-since"),
        // The test runner's flags belong after `--`, as with cargo test.
        (
            &["test", "--nocapture"],
            "--nocapture is the test runner's: put it after `--`",
        ),
        (
            &["rerun", "/r", "--show-output"],
            "(cargo xtask rerun -- --show-output)",
        ),
        (
            &["test", "fork::", "--", "cow::"],
            "two filters: \"fork::\" before `--` and \"cow::\" after it",
        ),
        (
            &["test", "--", "--bogus"],
            "the test runner's arguments after `--`: unexpected argument '--bogus'",
        ),
        // A probe asked for where none is made.
        (
            &["test", "--accel", "tcg", "--reprobe"],
            "--reprobe with --accel tcg",
        ),
        (
            &["shell", "--accel", "tcg", "--reprobe"],
            "--reprobe with --accel tcg",
        ),
        // bisect needs its tree, and says so in its usage.
        (
            &["bisect", "--good", "a", "--bad", "b"],
            "--kernel-tree <KERNEL_TREE>",
        ),
        // A step cannot fail more often than it runs.
        (
            &[
                "bisect",
                "--good",
                "a",
                "--bad",
                "b",
                "--kernel-tree",
                "/t",
                "--runs",
                "3",
                "--bad-at",
                "4",
            ],
            "--bad-at 4 with --runs 3: a step fails at most 3 time(s); give --bad-at from 1 to 3",
        ),
    ];
    let cache = tempfile::tempdir().unwrap();
    for (args, needle) in cases {
        let (code, _, stderr) = xtask_in(cache.path(), args);
        assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
        assert_eq!(code, 2, "{args:?}: exit {code}\n{stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: wanted {needle:?} in:\n{stderr}"
        );
        assert!(
            !stderr.contains("tip: to pass '-"),
            "{args:?}: clap's `-- -1` tip:\n{stderr}"
        );
    }
    assert!(
        std::fs::read_dir(cache.path()).unwrap().next().is_none(),
        "a refused command wrote to the cache"
    );
}

/// `--list` checks the kernel options as a run does, short of building; each bad one exits 2
/// with its reason, and lists nothing.
#[test]
fn list_checks_the_kernel_options_as_a_run_does() {
    let cache = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--kernel-tree", "/tmp"],
            "/tmp is not a kernel source tree",
        ),
        (
            &["--kernel-image", "/etc/passwd"],
            "/etc/passwd is not an x86 bzImage",
        ),
        (
            &["--kselftest-from", "bogus"],
            "--kselftest-from bogus: unknown kernel \"bogus\"",
        ),
        (
            &["--patch", "/no/such.patch"],
            "--patch /no/such.patch: no such file",
        ),
        (&["--kconfig", "KASAN"], "--kconfig \"KASAN\""),
        (&["--features", "telepathy"], "telepathy"),
        (
            &["--guest-crate", "/nonexistent"],
            "--guest-crate /nonexistent: no Cargo.toml there",
        ),
        (&["--guest-env", "X"], "--guest-env \"X\": write NAME=VALUE"),
        (&["--arch", "mips"], "--arch: unknown architecture \"mips\""),
        (
            &["--arch", "s390x", "--kernel", "6.1"],
            "kernel \"6.1\" is not built for s390x",
        ),
        (
            &["--arch", "arm64", "--kernel-image", "/etc/passwd"],
            "needs a kernel of the list",
        ),
        (
            &["--arch", "s390x", "--guest-c", "/tmp/x.c"],
            "--guest-c /tmp/x.c: no such file",
        ),
        (
            &["--arch", "s390x", "--compat32"],
            "are x86-64 programs, and --arch s390x boots no x86-64 kernel",
        ),
    ];
    for (args, needle) in cases {
        let mut argv = vec!["test"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--", "--list"]);
        let (code, stdout, stderr) = xtask_in(cache.path(), &argv);
        assert_eq!(code, 2, "{argv:?}: exit {code}\n{stderr}");
        assert!(
            stderr.contains(needle),
            "{argv:?}: wanted {needle:?} in:\n{stderr}"
        );
        assert!(stdout.is_empty(), "{argv:?} listed:\n{stdout}");
    }
}

/// A foreign architecture's trials carry it in their kernel label, x86-64's do not, and a
/// C program given with --guest-c is listed for each foreign architecture (nothing built).
#[test]
fn foreign_architectures_list_their_c_guest_programs() {
    let cache = tempfile::tempdir().unwrap();
    let probe = cache.path().join("probe.c");
    std::fs::write(&probe, "int main(void) { return 0; }\n").unwrap();
    let probe = probe.display().to_string();
    let (code, stdout, stderr) = xtask_in(
        cache.path(),
        &[
            "test",
            "--arch",
            "s390x,arm64",
            "--guest-c",
            &probe,
            "--",
            "--list",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    for name in [
        "6.12-s390x::guest::probe: test",
        "6.12-arm64::guest::probe: test",
        "6.12-s390x::vm::health: test",
    ] {
        assert!(stdout.contains(name), "{name} not in:\n{stdout}");
    }
    assert!(!stdout.contains("fork::"), "no x86-64 scenario: {stdout}");
}

/// Filters as in cargo: before `--`; a family with `::`; nothing matched is an error with
/// libtest's failure status and the closest families; `--format json` lists as JSON.
#[test]
fn filters_work_as_cargo_tests_do() {
    let cache = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = xtask_in(cache.path(), &["test", "fork::", "--", "--list"]);
    assert_eq!(code, 0, "{stderr}");
    let names: Vec<&str> = stdout.lines().collect();
    assert!(!names.is_empty(), "{stderr}");
    assert!(
        names
            .iter()
            .all(|n| n.contains("::fork::") && n.ends_with(": test")),
        "{stdout}"
    );

    let (code, _, stderr) = xtask_in(cache.path(), &["test", "frok::", "--", "--list"]);
    assert_eq!(code, 101, "{stderr}");
    assert!(
        stderr.contains("0 of ") && stderr.contains(" trials match \"frok::\""),
        "{stderr}"
    );
    assert!(stderr.contains("the closest families: fork::"), "{stderr}");

    let (code, _, stderr) = xtask_in(cache.path(), &["test", "--", "--skip", "::", "--list"]);
    assert_eq!(code, 101, "{stderr}");
    assert!(stderr.contains("trials are left by --skip ::"), "{stderr}");

    let (code, stdout, stderr) = xtask_in(
        cache.path(),
        &["test", "fork::", "--", "--list", "--format", "json"],
    );
    assert_eq!(code, 0, "{stderr}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let tests: Vec<&serde_json::Value> = events.iter().filter(|e| e["type"] == "test").collect();
    assert_eq!(tests.len(), names.len(), "{stdout}");
    assert!(tests.iter().all(|t| t["event"] == "discovered"), "{stdout}");
    assert_eq!(events.last().unwrap()["tests"], names.len(), "{stdout}");

    // The harness's own cases: listed from their names, without tools, kernels or KVM.
    let (code, stdout, stderr) = xtask_in(cache.path(), &["selftest", "--", "--list"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("selftest::"), "{stdout}");
    assert!(!stderr.contains("KVM"), "{stderr}");
    let (code, _, stderr) = xtask_in(cache.path(), &["selftest", "nosuch"]);
    assert_eq!(code, 101, "{stderr}");
    assert!(
        stderr.contains("0 of ") && stderr.contains("match \"nosuch\""),
        "{stderr}"
    );
}

/// Help as a cargo user reads it: `cargo xtask CMD` in usage, headings, only the options a
/// command uses, the default kernel, examples; and a version with the git revision.
#[test]
fn help_teaches() {
    let cache = tempfile::tempdir().unwrap();
    let (code, help, _) = xtask_in(cache.path(), &["test", "--help"]);
    assert_eq!(code, 0);
    assert!(
        help.contains("Usage: cargo xtask test [OPTIONS] [FILTER] [-- <TEST_RUNNER_ARGS>...]"),
        "{help}"
    );
    for heading in [
        "Kernel:",
        "Run:",
        "VM:",
        "Output:",
        "Guest tests:",
        "Trials:",
        "Examples:",
    ] {
        assert!(
            help.lines().any(|l| l == heading),
            "no {heading} in:\n{help}"
        );
    }
    assert!(
        help.contains("(default: 6.12)") || help.contains("(default: "),
        "{help}"
    );
    assert!(
        help.contains("--nocapture") && help.contains("--show-output"),
        "{help}"
    );

    let (_, help, _) = xtask_in(cache.path(), &["bisect", "--help"]);
    assert!(
        help.contains("--kernel-tree <KERNEL_TREE> [FILTER]"),
        "{help}"
    );
    for (cmd, absent) in [
        (
            "setup",
            &["--jobs", "--gdb-port", "--stress", "--keep", "--kernel "][..],
        ),
        (
            "build-kernel",
            &["--jobs ", "--gdb-port", "--stress", "--keep", "--features"],
        ),
        ("selftest", &["--stress", "--gdb-port"]),
        ("mutate", &["--stress", "--gdb-port"]),
        ("matrix", &["--kselftest ", "--gdb-port"]),
        ("mutants", &["--kselftest ", "--gdb-port"]),
        (
            "shell",
            &[
                "--stress",
                "--jobs <",
                "--max-restarts",
                "--scenario-timeout",
                "--hang-limit-ms",
            ],
        ),
    ] {
        let (code, help, _) = xtask_in(cache.path(), &[cmd, "--help"]);
        assert_eq!(code, 0, "{cmd}");
        assert!(help.contains("Examples:"), "{cmd}:\n{help}");
        for a in absent {
            assert!(!help.contains(a), "{cmd} --help shows {a}:\n{help}");
        }
    }

    let (code, version, _) = xtask_in(cache.path(), &["--version"]);
    assert_eq!(code, 0);
    let version = version.trim();
    assert!(
        version.starts_with(&format!("cargo xtask {} (", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    assert!(
        version.ends_with(')') && version.len() > "cargo xtask 0.1.0 ()".len(),
        "{version}"
    );
}

/// Every command given a bad argument, with no network and a cache of its own: each fails
/// with exit 2 and leaves the cache as it was (nothing installed, downloaded or probed).
#[test]
fn a_bad_argument_changes_nothing_even_offline() {
    if !offline_allowed() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(cache.path().join("marker"), "before").unwrap();
    let snapshot = |dir: &std::path::Path| -> Vec<(std::path::PathBuf, u64)> {
        let mut out = vec![];
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let m = e.metadata().unwrap();
                if m.is_dir() {
                    stack.push(e.path());
                }
                out.push((e.path(), m.len()));
            }
        }
        out.sort();
        out
    };
    let before = snapshot(cache.path());
    let bad: &[&[&str]] = &[
        &["test", "--kernel", "bogus"],
        &["test", "--kernel", "bogus", "--", "--list"],
        &["test", "--guest-crate", "/nonexistent"],
        &["test", "--guest-test", "/nonexistent", "--", "--list"],
        &["matrix", "--guest-env", "NOEQUALS"],
        &["build-kernel", "--kernel", "bogus"],
        &["setup", "--bogus"],
        &["kernels", "--cache-key", "bogus"],
        &["matrix", "--kernel", "bogus"],
        &["mutants", "--kernel", "bogus"],
        &["mutate", "--sample", "0"],
        &["mutate", "--kernel", "bogus"],
        &["selftest", "--kernel", "bogus"],
        &["selftest", "--kernel", "bogus", "--", "--list"],
        &["bench", "--runs", "0"],
        &["cache", "bogus"],
        &["host-tools", "--dpkg-log-since", "-1"],
        &["parse", "--console", "/nonexistent"],
        &["report", "/nonexistent"],
        &["rerun", "/nonexistent"],
        &["shell", "--kernel", "bogus"],
        &["shell", "--no-install", "--kernel", "bogus"],
        &[
            "bisect",
            "--good",
            "a",
            "--bad",
            "b",
            "--kernel-tree",
            "/nonexistent",
        ],
    ];
    for args in bad {
        let out = Command::new("unshare")
            .arg("-n")
            .arg(env!("CARGO_BIN_EXE_xtask"))
            .args(*args)
            .env("UE_CACHE_DIR", cache.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}:\n{stderr}");
        assert!(stderr.contains("error"), "{args:?}:\n{stderr}");
        assert_eq!(
            snapshot(cache.path()),
            before,
            "{args:?} changed the cache:\n{stderr}"
        );
    }
}

/// `parse --console`: the fault warnings scenarios provoke are skipped and a clean log says
/// so (exit 0); a real splat is trouble (101); a file that is no console log is refused (2).
#[test]
fn parse_judges_a_console_as_a_run_does() {
    let cache = tempfile::tempdir().unwrap();
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../harness/test_data/");
    let clean = format!("{data}clean_run_with_fault_warnings.log");
    let (code, stdout, stderr) = xtask_in(cache.path(), &["parse", "--console", &clean]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("no kernel trouble found"), "{stdout}");
    assert!(stderr.contains("fault warning(s) skipped"), "{stderr}");
    let warn = format!("{data}warn_in_unreg.log");
    let (code, stdout, _) = xtask_in(cache.path(), &["parse", "--console", &warn]);
    assert_eq!(code, 101, "{stdout}");
    assert!(stdout.contains("Warning:"), "{stdout}");
    let (code, _, stderr) = xtask_in(cache.path(), &["parse", "--console", "/etc/passwd"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("/etc/passwd is not a console log"),
        "{stderr}"
    );
}

/// `report`: two runs of one kernel get two columns told apart by run, and a Markdown file
/// that cannot be written is named in the error.
#[test]
fn report_tells_runs_apart_and_names_paths() {
    let d = tempfile::tempdir().unwrap();
    for run in ["20261203-101010-6.12", "20261203-111111-6.12"] {
        let dir = d.path().join(run);
        std::fs::create_dir_all(&dir).unwrap();
        let results = serde_json::json!({
            "kernel": {"label": "6.12", "bzimage": "bzImage", "config": null, "provenance": "",
                       "kselftests": [], "expected": {"features": [], "source": ""}},
            "accel": "tcg", "run_dir": dir,
            "limits": {"boot": {"secs": 1, "nanos": 0}, "scenario": {"secs": 1, "nanos": 0},
                       "programs": [], "whole": {"secs": 1, "nanos": 0}, "silence": {"secs": 1, "nanos": 0}},
            "report": {"kernel_release": "6.12.117", "user_events": true, "guest_hello_ms": 1,
                       "guest_done_ms": 2, "records": [], "unfinished": null, "troubles": [],
                       "garbage": [], "end": {"how": "finished"}, "wall_ms": 3, "qemu_stderr": "",
                       "console_log": "console.log"},
            "verdicts": [{"name": "basic::present", "origin": "scenario", "verdict": {"verdict": "pass"},
                          "duration_us": 1, "snapshots": [], "notes": []}]
        });
        std::fs::write(dir.join("results.json"), results.to_string()).unwrap();
    }
    let dir = d.path().to_str().unwrap();
    let (code, stdout, stderr) = xtask_in(d.path(), &["report", dir]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("| scenario | 6.12 (20261203-101010-6.12) | 6.12 (20261203-111111-6.12) |"),
        "{stdout}"
    );
    let (code, _, stderr) = xtask_in(
        d.path(),
        &["report", dir, "--markdown", "/no/such/dir/x.md"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/no/such/dir/x.md"), "{stderr}");
}

/// `report --baseline`: the new runs are required, a folder without results.json is named,
/// and a mutant's run against its clean one exits 101 with its failures, the clean run
/// against itself 0 (xtask/test_data/report: two kept runs of a `mutants` batch, trimmed).
#[test]
fn report_baseline_refuses_and_compares() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/test_data/report");
    let base = format!("{data}/baseline-6.12");
    let mutant = format!("{data}/mutant-copy-long");
    let (code, stderr) = xtask(&["report", "--baseline", &base, &mutant]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("error: --baseline ") && stderr.contains("no new runs to compare"),
        "{stderr}"
    );
    let (code, stderr) = xtask(&["report"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("error: no run folders"), "{stderr}");
    let (code, stderr) = xtask(&["report", "--baseline", "/nonexistent/base", "--", &mutant]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("error: --baseline /nonexistent/base: no results.json"),
        "{stderr}"
    );
    let (code, stderr) = xtask(&["report", "--baseline", &base, "--", "/nonexistent/new"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/nonexistent/new"), "{stderr}");
    let d = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) =
        xtask_in(d.path(), &["report", "--baseline", &base, "--", &mutant]);
    assert_eq!(code, 101, "{stderr}");
    assert!(stdout.contains("### New failures: 16 trial(s)"), "{stdout}");
    let (code, stdout, stderr) = xtask_in(d.path(), &["report", &base, "--baseline", &base]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("No changes"), "{stdout}");
}

/// `flakes` reads the cache's history: none yet is said, not an error; --last 0 is refused.
#[test]
fn flakes_reads_the_history_of_its_cache() {
    let d = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = xtask_in(d.path(), &["flakes"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("no run recorded yet"), "{stdout}");
    let line = |t: u64, outcome: &str| {
        format!(
            r#"{{"time":{t},"kernel":"6.12","load":3.9,"run_dir":"r{t}","trials":[{{"name":"munmap::x","outcome":"{outcome}"}}]}}"#
        )
    };
    std::fs::write(
        d.path().join("history.jsonl"),
        format!("{}\n{}\n", line(1, "fail"), line(2, "pass")),
    )
    .unwrap();
    let (code, stdout, stderr) = xtask_in(d.path(), &["flakes"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("munmap::x  6.12    1 of 2 (50%)  3.9"),
        "{stdout}"
    );
    let (code, stdout, _) = xtask_in(d.path(), &["flakes", "--last", "1"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("no flaky trials in the last 1 runs"),
        "{stdout}"
    );
    let (code, _, stderr) = xtask_in(d.path(), &["flakes", "--last", "0"]);
    assert_eq!(code, 2, "{stderr}");
}

/// `kernels` prints columns that line up (offline here: the newest versions are unknown).
#[test]
fn kernels_prints_aligned_columns() {
    if !offline_allowed() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new("unshare")
        .arg("-n")
        .arg(env!("CARGO_BIN_EXE_xtask"))
        .arg("kernels")
        .env("UE_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    let header = lines[0];
    assert!(header.starts_with("kernel "), "{stdout}");
    assert!(!stdout.contains('\t'), "{stdout}");
    for col in ["package", "pinned", "cached", "newest", "features"] {
        let at = header.find(col).unwrap();
        for l in &lines[1..] {
            let before = &l[..at];
            assert!(
                before.ends_with("  ") && !l[at..].starts_with(' '),
                "{col} does not line up in:\n{stdout}"
            );
        }
    }
    assert!(lines.iter().any(|l| l.contains("(default)")), "{stdout}");
}

/// Whether this machine lets a test cut itself off from the network (`unshare -n`, root or a
/// user namespace); says so when it does not, and the offline test is then skipped.
fn offline_allowed() -> bool {
    let ok = Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: `unshare -n` is not allowed here");
    }
    ok
}
