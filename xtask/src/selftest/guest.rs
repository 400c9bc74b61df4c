//! `cargo xtask selftest`'s cases for other people's tests in the guest (`--guest-test`,
//! `--guest-crate`): a fixture crate written here (no dependencies, so no network) has a
//! libtest lib whose tests pass, fail, crash, hang, are ignored, read their environment and
//! unregister an event, and three programs of its own (`harness = false`): one that prints
//! TAP, one that crashes half-way through its TAP, one that only exits. Each outcome must be
//! reported against that test or program, by name. A copy of examples/ue-tiny-client with one
//! assertion inverted must fail that test alone, and a crate that cannot link statically gets
//! the one error that says so. [`flaky_fork`] is the program that fails every other boot, for
//! the devloop bisect case. On s390x, C programs given with `--guest-c` that pass, fail,
//! crash and hang must be reported the same way by the foreign architectures' C guest.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use harness::model::{
    FailCause, GuestProgram, GuestTestStyle, KernelRun, KernelUnderTest, SuiteOptions, TroubleKind,
    Verdict, HEALTH,
};
use harness::run::{run_kernel, Selection};
use harness::vm::VmEnd;

use crate::args::GuestTestArgs;
use crate::sys::progress::Progress;

const FIXTURE: &str = "ue_guest_fixture";

const FIXTURE_LIB: &str = r#"//! The harness's own fixture: tests that end in each way a test can.
#[cfg(test)]
mod tests {
    unsafe extern "C" {
        fn ioctl(fd: i32, req: u64, ...) -> i32;
    }

    #[test]
    fn passes() {}

    #[test]
    fn fails() {
        assert_eq!(1 + 1, 3, "the fixture's failing assertion");
    }

    #[test]
    fn crashes() {
        // Address 8: never mapped (mmap_min_addr), so the store faults.
        unsafe { std::ptr::write_volatile(std::ptr::dangling_mut::<u64>(), 1) };
    }

    #[test]
    fn hangs() {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    }

    #[test]
    #[ignore = "the fixture's ignored test"]
    fn ignored() {}

    #[test]
    fn sees_its_env() {
        assert_eq!(std::env::var("UE_FIXTURE").as_deref(), Ok("from --guest-env"));
    }

    /// REG then UNREG: the self-test kernel WARNs in DIAG_IOCSUNREG.
    #[test]
    fn unregisters() {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/sys/kernel/tracing/user_events_data")
            .expect("open user_events_data");
        let word = Box::new(0u32);
        let name = b"ue_fixture u32 v\0";
        let mut reg = [0u8; 28];
        reg[0..4].copy_from_slice(&28u32.to_ne_bytes());
        reg[5] = 4; // enable_size
        reg[8..16].copy_from_slice(&(&*word as *const u32 as u64).to_ne_bytes());
        reg[16..24].copy_from_slice(&(name.as_ptr() as u64).to_ne_bytes());
        let r = unsafe { ioctl(f.as_raw_fd(), 0xC008_2A00, reg.as_mut_ptr()) };
        assert_eq!(r, 0, "DIAG_IOCSREG: {}", std::io::Error::last_os_error());
        let mut unreg = [0u8; 16];
        unreg[0..4].copy_from_slice(&16u32.to_ne_bytes());
        unreg[8..16].copy_from_slice(&(&*word as *const u32 as u64).to_ne_bytes());
        let r = unsafe { ioctl(f.as_raw_fd(), 0x4008_2A02, unreg.as_ptr()) };
        assert_eq!(r, 0, "DIAG_IOCSUNREG: {}", std::io::Error::last_os_error());
    }
}
"#;

const FIXTURE_TAP: &str = r#"fn main() {
    println!("TAP version 13\n1..3\nok 1 first\n# second: the fixture says no\nnot ok 2 second\nok 3 third # SKIP the fixture skips it");
    std::process::exit(1);
}
"#;

const FIXTURE_TAP_CRASH: &str = r#"use std::io::Write;
fn main() {
    println!("TAP version 13\n1..2\nok 1 before_the_crash");
    std::io::stdout().flush().unwrap();
    unsafe { std::ptr::write_volatile(std::ptr::dangling_mut::<u64>(), 1) };
    println!("ok 2 never");
}
"#;

const FIXTURE_EXIT: &str = r#"fn main() {
    eprintln!("fixture: exiting with 3");
    std::process::exit(3);
}
"#;

fn write_crate(dir: &Path, manifest: &str, files: &[(&str, &str)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("Cargo.toml"), manifest)?;
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap_or(dir))?;
        std::fs::write(&p, text).with_context(|| format!("write {}", p.display()))?;
    }
    Ok(())
}

fn programs(
    target: &Path,
    dir: &Path,
    env: &[&str],
    timeout: u64,
) -> anyhow::Result<Vec<GuestProgram>> {
    let a = GuestTestArgs {
        guest_crate: Some(dir.to_owned()),
        guest_env: env.iter().map(|s| s.to_string()).collect(),
        guest_test_timeout: timeout,
        ..Default::default()
    };
    // Without --compat32 nothing is fetched: the target folder stands in for the cache.
    crate::guest::programs::resolve(&a, target, target, &mut Progress::new())
}

/// The fixture crate, built for the guest.
pub fn fixture(target: &Path) -> anyhow::Result<Vec<GuestProgram>> {
    let dir = target.join("ue-selftest").join(FIXTURE);
    let manifest = format!(
        "[package]\nname = \"{FIXTURE}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [[test]]\nname = \"tap\"\nharness = false\n\n\
         [[test]]\nname = \"tap_crash\"\nharness = false\n\n\
         [[test]]\nname = \"exit_status\"\nharness = false\n\n[workspace]\n"
    );
    write_crate(
        &dir,
        &manifest,
        &[
            ("src/lib.rs", FIXTURE_LIB),
            ("tests/tap.rs", FIXTURE_TAP),
            ("tests/tap_crash.rs", FIXTURE_TAP_CRASH),
            ("tests/exit_status.rs", FIXTURE_EXIT),
        ],
    )?;
    programs(target, &dir, &["UE_FIXTURE=from --guest-env"], 2)
}

/// The scenario whose failure [`FLAKY_FORK`] reports every other boot: one that catches the
/// devloop bisect's mutant.
pub const FLAKY_FORK_SCENARIO: &str = "fork::child_inherits_registration";

/// A bug that reproduces every other boot, as a race that fires half the time does: the
/// program runs the fork scenario (`ue-scenarios --run`) and reports its failure on odd boots
/// only. A boot's number cannot live in the guest, which starts from the same image each
/// time; the host gives it on the kernel command line (`ue.selftest_boot=N`), from a counter
/// the self-test keeps ([`super::devloop`]'s QEMU wrapper). Without the number it fails, so
/// a wrapper that stopped working is said, not taken for a pass.
const FLAKY_FORK: &str = r#"use std::process::{exit, Command};

const SCENARIO: &str = "SCENARIO_NAME";

fn main() {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let Some(boot) = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ue.selftest_boot="))
        .and_then(|n| n.parse::<u64>().ok())
    else {
        eprintln!("no ue.selftest_boot=N on the kernel command line: {cmdline:?}");
        exit(2);
    };
    let st = match Command::new("/bin/ue-scenarios").args(["--run", SCENARIO]).status() {
        Ok(st) => st,
        Err(e) => {
            eprintln!("run /bin/ue-scenarios: {e}");
            exit(2);
        }
    };
    if st.success() {
        println!("boot {boot}: {SCENARIO} passes");
    } else if boot % 2 == 1 {
        eprintln!("boot {boot}: {SCENARIO} fails, and an odd boot says so");
        exit(1);
    } else {
        println!("boot {boot}: {SCENARIO} fails, and an even boot hides it");
    }
}
"#;

/// The program of [`FLAKY_FORK`], built for the guest; its trial is `guest::flaky_fork`.
pub fn flaky_fork(target: &Path) -> anyhow::Result<GuestProgram> {
    let dir = target.join("ue-selftest").join("ue_flaky_fork");
    let manifest = "[package]\nname = \"ue_flaky_fork\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
                    autotests = false\n\n[lib]\ntest = false\n\n\
                    [[test]]\nname = \"flaky_fork\"\nharness = false\n\n[workspace]\n";
    write_crate(
        &dir,
        manifest,
        &[
            (
                "src/lib.rs",
                "//! Empty: the program is tests/flaky_fork.rs.\n",
            ),
            (
                "tests/flaky_fork.rs",
                &FLAKY_FORK.replace("SCENARIO_NAME", FLAKY_FORK_SCENARIO),
            ),
        ],
    )?;
    programs(target, &dir, &[], 30)?
        .into_iter()
        .find(|p| p.name == "flaky_fork")
        .context("the flaky fixture's program was not built")
}

fn verdict<'a>(run: &'a KernelRun, name: &str) -> anyhow::Result<&'a Verdict> {
    run.verdicts
        .iter()
        .find(|v| v.name == name)
        .map(|v| &v.verdict)
        .with_context(|| {
            let names: Vec<&str> = run.verdicts.iter().map(|v| v.name.as_str()).collect();
            format!("no verdict for {name}; there are {names:?}")
        })
}

/// `want`: "pass", "ignored", "known_bug", "flaky", or "fail" for the test's own failure
/// ([`FailCause::Guest`]); a failure for another cause (kernel trouble, not run) is not that.
fn expect(run: &KernelRun, name: &str, want: &str, needles: &[&str]) -> anyhow::Result<()> {
    let v = verdict(run, name)?;
    let (kind, text) = match v {
        Verdict::Pass => ("pass", ""),
        Verdict::Fail(f) if f.cause == FailCause::Guest => ("fail", f.message.as_str()),
        Verdict::Fail(f) => ("fail for another cause", f.message.as_str()),
        Verdict::Ignored(m) => ("ignored", m.as_str()),
        Verdict::KnownBug { failure, .. } => ("known_bug", failure.as_str()),
        Verdict::Flaky { .. } => ("flaky", ""),
    };
    if kind != want || !needles.iter().all(|n| text.contains(n)) {
        bail!("{name}: want {want} mentioning {needles:?}, got {v:?}");
    }
    Ok(())
}

fn lib_test(test: &str) -> String {
    harness::channel::guest_test_name(FIXTURE, Some(test))
}

/// Every output style and way of ending, each reported against its own test or program; the
/// libtest program read both as JSON (what it supports) and as text (a copy told it does not).
pub fn each_style_and_ending(
    k: &KernelUnderTest,
    opts: &SuiteOptions,
    target: &Path,
) -> anyhow::Result<()> {
    let mut programs = fixture(target)?;
    let lib = programs
        .iter()
        .find(|p| p.name == FIXTURE)
        .context("the fixture's lib tests were not built")?
        .clone();
    let GuestTestStyle::Libtest { tests, json } = &lib.style else {
        bail!(
            "the fixture's lib was not recognised as libtest: {:?}",
            lib.style
        );
    };
    if !json {
        bail!("libtest's --format json (RUSTC_BOOTSTRAP=1) was not detected on this toolchain");
    }
    let mut text = lib.clone();
    text.name = format!("{FIXTURE}_text");
    text.style = GuestTestStyle::Libtest {
        tests: tests
            .iter()
            .filter(|t| ["tests::fails", "tests::ignored", "tests::passes"].contains(&t.as_str()))
            .cloned()
            .collect(),
        json: false,
    };
    programs.push(text);
    let sel = Selection {
        guest: programs,
        ..Default::default()
    };
    let run = run_kernel(k, opts, &sel)?;
    for prefix in [FIXTURE.to_owned(), format!("{FIXTURE}_text")] {
        let t = |n: &str| harness::channel::guest_test_name(&prefix, Some(n));
        expect(&run, &t("tests::passes"), "pass", &[])?;
        expect(
            &run,
            &t("tests::fails"),
            "fail",
            &["the fixture's failing assertion", "panicked at src/lib.rs"],
        )?;
        expect(
            &run,
            &t("tests::ignored"),
            "ignored",
            &["the fixture's ignored test"],
        )?;
    }
    expect(
        &run,
        &lib_test("tests::crashes"),
        "fail",
        &["killed by signal 11 (SIGSEGV)"],
    )?;
    expect(
        &run,
        &lib_test("tests::hangs"),
        "fail",
        &["timed out after", "--guest-test-timeout"],
    )?;
    expect(&run, &lib_test("tests::sees_its_env"), "pass", &[])?;
    expect(&run, &lib_test("tests::unregisters"), "pass", &[])?;
    let g = |p: &str, t: Option<&str>| harness::channel::guest_test_name(p, t);
    expect(&run, &g("tap", None), "fail", &["exited with status 1"])?;
    expect(&run, &g("tap", Some("first")), "pass", &[])?;
    expect(
        &run,
        &g("tap", Some("second")),
        "fail",
        &["the fixture says no"],
    )?;
    expect(
        &run,
        &g("tap", Some("third")),
        "ignored",
        &["the fixture skips it"],
    )?;
    expect(
        &run,
        &g("tap_crash", None),
        "fail",
        &[
            "killed by signal 11",
            "the plan says 2 tests, the output has 1",
        ],
    )?;
    expect(&run, &g("tap_crash", Some("before_the_crash")), "pass", &[])?;
    expect(
        &run,
        &g("exit_status", None),
        "fail",
        &["exited with status 3", "fixture: exiting with 3"],
    )?;
    expect(&run, HEALTH, "pass", &[])?;
    if run.report.end != VmEnd::Finished {
        bail!(
            "the VM should have finished normally, ended {:?}",
            run.report.end
        );
    }
    Ok(())
}

/// On the kernel that WARNs in DIAG_IOCSUNREG: the test that unregisters passes its own
/// checks but fails with the splat; the tests before and after it pass.
pub fn kernel_warning_is_the_tests(
    k: &KernelUnderTest,
    opts: &SuiteOptions,
    target: &Path,
) -> anyhow::Result<()> {
    let mut lib = fixture(target)?
        .into_iter()
        .find(|p| p.name == FIXTURE)
        .context("the fixture's lib tests were not built")?;
    let json = matches!(lib.style, GuestTestStyle::Libtest { json: true, .. });
    lib.style = GuestTestStyle::Libtest {
        tests: ["tests::passes", "tests::unregisters", "tests::sees_its_env"]
            .map(String::from)
            .to_vec(),
        json,
    };
    let run = run_kernel(
        k,
        opts,
        &Selection {
            guest: vec![lib],
            ..Default::default()
        },
    )?;
    expect(&run, &lib_test("tests::passes"), "pass", &[])?;
    match verdict(&run, &lib_test("tests::unregisters"))? {
        Verdict::Fail(f)
            if f.cause == FailCause::KernelTrouble(TroubleKind::Warning)
                && f.message.contains("at kernel/trace/trace_events_user.c:")
                && f.message.contains("the guest's own checks passed") => {}
        other => bail!(
            "tests::unregisters: want a failure for the kernel's warning, naming where it \
             warned and that the test's own checks passed, got {other:?}"
        ),
    }
    expect(&run, &lib_test("tests::sees_its_env"), "pass", &[])?;
    expect(&run, HEALTH, "pass", &[])
}

/// The line of examples/ue-tiny-client the broken copy inverts.
const INVERTED: &str = "assert!(ev.is_enabled(), \"the kernel set the enable bit\");";

/// A copy of the example with one assertion inverted: that test fails, by its name, with the
/// assertion's message, and the example's other tests still pass.
pub fn broken_example_fails_by_name(
    k: &KernelUnderTest,
    opts: &SuiteOptions,
    target: &Path,
    root: &Path,
) -> anyhow::Result<()> {
    let example = root.join("examples/ue-tiny-client");
    let copy = target.join("ue-selftest").join("ue-tiny-client-broken");
    let lib = std::fs::read_to_string(example.join("src/lib.rs"))?;
    if lib.matches(INVERTED).count() != 1 {
        bail!(
            "examples/ue-tiny-client/src/lib.rs must hold `{INVERTED}` exactly once: it is the \
             assertion the broken copy inverts"
        );
    }
    let broken = lib.replace(INVERTED, &INVERTED.replacen("ev.", "!ev.", 1));
    let manifest = std::fs::read_to_string(example.join("Cargo.toml"))?;
    write_crate(&copy, &manifest, &[("src/lib.rs", &broken)])?;
    if let Ok(lock) = std::fs::read(example.join("Cargo.lock")) {
        std::fs::write(copy.join("Cargo.lock"), lock)?;
    }
    let programs = programs(target, &copy, &[], 30)?;
    let names: Vec<String> = programs.iter().flat_map(|p| p.record_names()).collect();
    let run = run_kernel(
        k,
        opts,
        &Selection {
            guest: programs,
            ..Default::default()
        },
    )?;
    let broken_test = "guest::ue_tiny_client::tests::tracing_sets_and_clears_the_enable_word";
    expect(
        &run,
        broken_test,
        "fail",
        &["the kernel set the enable bit"],
    )?;
    if names.len() < 4 {
        bail!("the copy lists {names:?}: want the example's four tests");
    }
    for n in names.iter().filter(|n| *n != broken_test) {
        expect(&run, n, "pass", &[])?;
    }
    expect(&run, HEALTH, "pass", &[])
}

/// A crate whose tests link a library that exists only as a shared object: one error that
/// says the tests do not link statically, and why.
pub fn crate_that_cannot_link_statically(target: &Path) -> anyhow::Result<()> {
    let dir: PathBuf = target.join("ue-selftest").join("ue_dynamic_only");
    write_crate(
        &dir,
        "[package]\nname = \"ue_dynamic_only\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[workspace]\n",
        &[(
            "src/lib.rs",
            "// libgcc_s is a shared library only: no static archive to link.\n\
             #[link(name = \"gcc_s\")]\nunsafe extern \"C\" {\n    fn _Unwind_GetIP(c: *mut u8) -> usize;\n}\n\
             #[test]\nfn uses_it() {\n    let _ = _Unwind_GetIP as unsafe extern \"C\" fn(*mut u8) -> usize;\n}\n",
        )],
    )?;
    match programs(target, &dir, &[], 30) {
        Ok(p) => bail!("the crate built and was accepted: {p:?}"),
        Err(e) => {
            let m = format!("{e:#}");
            if m.contains("do not link statically") && m.contains("gcc_s") {
                Ok(())
            } else {
                bail!("want one error saying the tests do not link statically (gcc_s), got: {m}")
            }
        }
    }
}

/// A guest test that fails on odd attempts and passes on even ones: `UE_ATTEMPT`, which the
/// harness gives each boot, is the only state it has across boots (the guest's RAM is new
/// every time).
const FLAKY_PROGRAM: &str = r#"//! Fails every other boot: on attempt 1, 3 ... of the harness's retries.
fn main() {
    let attempt = std::env::var("UE_ATTEMPT").unwrap_or_default();
    match attempt.parse::<u32>() {
        Ok(n) if n % 2 == 0 => println!("attempt {n}: passes on an even attempt"),
        Ok(n) => {
            eprintln!("attempt {n}: the fixture fails on an odd attempt");
            std::process::exit(1);
        }
        Err(_) => {
            eprintln!("UE_ATTEMPT is {attempt:?}: the harness did not say which attempt this is");
            std::process::exit(2);
        }
    }
}
"#;

/// The trial of [`FLAKY_PROGRAM`], without its kernel's label.
const FLAKY_TRIAL: &str = "guest::every_other_boot";

/// The crate holding [`FLAKY_PROGRAM`] as its only test (a lib with no tests, since cargo
/// wants a lib or a bin).
fn flaky_fixture(target: &Path) -> anyhow::Result<PathBuf> {
    let dir = target.join("ue-selftest").join("ue_flaky_fixture");
    write_crate(
        &dir,
        "[package]\nname = \"ue_flaky_fixture\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [[test]]\nname = \"every_other_boot\"\nharness = false\n\n[workspace]\n",
        &[
            (
                "src/lib.rs",
                "//! Nothing: the test is tests/every_other_boot.rs.\n",
            ),
            ("tests/every_other_boot.rs", FLAKY_PROGRAM),
        ],
    )?;
    Ok(dir)
}

/// `cargo xtask test` of the flaky fixture alone, as a person runs it, on a scratch cache
/// (its flake history is the case's own) with the self-test's kernel image.
fn test_flaky_fixture(
    exe: &Path,
    kernel: &KernelUnderTest,
    cache: &Path,
    fixture: &Path,
    extra: &[&str],
) -> anyhow::Result<(super::devloop::Output, KernelRun)> {
    let mut args = vec![
        "test",
        "--no-install",
        "--accel",
        "tcg",
        "--cache-dir",
        path_str(cache)?,
        "--kernel-image",
        path_str(&kernel.bzimage)?,
        "--guest-crate",
        path_str(fixture)?,
    ];
    args.extend(extra);
    args.extend(["--", FLAKY_TRIAL]);
    let out = super::devloop::xtask(exe, &args)?;
    let dir = super::devloop::run_dir(&out.stderr).with_context(|| {
        format!(
            "cargo xtask {}: {}",
            args.join(" "),
            super::devloop::tail(&out.stderr)
        )
    })?;
    let run = harness::artifacts::read_results(&dir)?;
    Ok((out, run))
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

/// Issue 25's "done when": a guest test that fails every other boot is FLAKY with
/// `--retries 2` (the run passes; the terminal, results.json, JUnit and attempt-2/ say so,
/// and the flake history counts it), FAILED without retries, and fails the run with
/// `--flaky-fails`.
pub fn every_other_boot_is_flaky_with_retries_and_failed_without(
    exe: &Path,
    kernel: &KernelUnderTest,
    target: &Path,
    scratch: &Path,
) -> anyhow::Result<()> {
    let fixture = flaky_fixture(target)?;
    let cache = scratch.join("retries-cache");
    std::fs::create_dir_all(&cache).with_context(|| format!("create {}", cache.display()))?;
    let trial = |run: &KernelRun| format!("{}::{FLAKY_TRIAL}", run.kernel.label);

    let (out, run) = test_flaky_fixture(exe, kernel, &cache, &fixture, &["--retries", "2"])?;
    let shown = format!(
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        super::devloop::tail(&out.stderr)
    );
    if out.code != Some(0) {
        bail!(
            "--retries 2: want exit 0 (a flaky trial does not fail the run), got {:?}\n{shown}",
            out.code
        );
    }
    if !out
        .stdout
        .contains(&format!("test [flaky] {} ... ok", trial(&run)))
        || !out
            .stdout
            .contains("FLAKY: 1 trial(s) failed and then passed")
        || !out.stdout.contains("attempt 1: FAILED")
    {
        bail!("--retries 2: the terminal does not show the trial as flaky\n{shown}");
    }
    match verdict(&run, FLAKY_TRIAL)? {
        Verdict::Flaky {
            failed_attempts,
            passed_on: 2,
        } if failed_attempts.len() == 1
            && failed_attempts[0].attempt == 1
            && failed_attempts[0]
                .failure
                .message
                .contains("fails on an odd attempt") => {}
        other => {
            bail!("--retries 2: want flaky, failed on attempt 1 and passed on 2; got {other:?}")
        }
    }
    let attempt_2 = run.run_dir.join("attempt-2");
    for f in ["console.log", "results.json", "junit.xml"] {
        if !attempt_2.join(f).is_file() {
            bail!("the retry's {f} was not kept in {}", attempt_2.display());
        }
    }
    if run.run_dir.join("attempt-3").exists() {
        bail!("a third attempt ran after the trial passed on the second");
    }
    let again = harness::artifacts::read_results(&attempt_2)?;
    expect(&again, FLAKY_TRIAL, "pass", &[])
        .context("attempt-2/results.json: the second attempt as its own VM judged it")?;
    let junit = std::fs::read_to_string(run.run_dir.join("junit.xml"))?;
    if !junit.contains("<flakyFailure") || !junit.contains("the fixture fails on an odd attempt") {
        bail!("junit.xml has no <flakyFailure> with the first attempt's output:\n{junit}");
    }

    let (out, run) = test_flaky_fixture(exe, kernel, &cache, &fixture, &[])?;
    if out.code != Some(101)
        || !out
            .stdout
            .contains(&format!("test {} ... FAILED", trial(&run)))
    {
        bail!(
            "without retries: want the trial FAILED and exit 101, got {:?}\nstdout:\n{}",
            out.code,
            out.stdout
        );
    }
    // Read back from results.json, a failure is its words alone (its cause is not kept).
    match verdict(&run, FLAKY_TRIAL)? {
        Verdict::Fail(f) if f.message.contains("fails on an odd attempt") => {}
        other => bail!("without retries: want the odd attempt's failure, got {other:?}"),
    }
    if run.run_dir.join("attempt-2").exists() {
        bail!("without --retries, a second attempt ran");
    }

    let (out, run) = test_flaky_fixture(
        exe,
        kernel,
        &cache,
        &fixture,
        &["--retries", "2", "--flaky-fails"],
    )?;
    if out.code != Some(101) || !out.stdout.contains("(--flaky-fails)") {
        bail!(
            "--flaky-fails: want the flaky trial to fail the run (exit 101), got {:?}\nstdout:\n{}",
            out.code,
            out.stdout
        );
    }
    expect(&run, FLAKY_TRIAL, "flaky", &[])?;

    // The flake history of the scratch cache: two runs flaky within themselves, one failed.
    let flakes =
        super::devloop::xtask(exe, &["flakes", "--json", "--cache-dir", path_str(&cache)?])?;
    let listed: serde_json::Value = serde_json::from_str(&flakes.stdout)
        .with_context(|| format!("flakes --json: {}", flakes.stdout))?;
    let found = listed
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["trial"] == FLAKY_TRIAL);
    match found {
        Some(f) if f["flaky_in_run"] == 2 && f["failed"] == 3 && f["runs"] == 3 => Ok(()),
        _ => bail!("flakes: want {FLAKY_TRIAL} failed in 3 of 3 runs, 2 of them passed on a retry; got {listed}"),
    }
}

/// A foreign architecture's C guest program that passes a check, fails one, then crashes.
const FOREIGN_ENDING: &str = r#"#include <signal.h>
#include <stdio.h>
int main(void)
{
	printf("TAP version 13\n1..3\nok 1 - passes\nnot ok 2 - fails # the fixture's failing check\n");
	fflush(stdout);
	raise(SIGSEGV);
	return 0;
}
"#;

/// One that starts its KTAP and never ends.
const FOREIGN_SLEEPER: &str = r#"#include <stdio.h>
#include <unistd.h>
int main(void)
{
	printf("TAP version 13\n1..1\n");
	fflush(stdout);
	for (;;)
		pause();
}
"#;

/// Issue 26: on s390x (the C init, cross-built programs, the virtio-serial result port), each
/// way a C program ends is reported against it by name, as on x86-64: a passing and a failing
/// KTAP check, a crash (the program's own trial, with the signal), a program past its limit
/// (killed by the init, the host told why), and the VM itself healthy. Run as people run it:
/// `cargo xtask test --arch s390x --guest-c FILE.c`.
pub fn foreign_c_guest_reports_each_ending(exe: &Path, scratch: &Path) -> anyhow::Result<()> {
    let dir = scratch.join("foreign-c");
    std::fs::create_dir_all(&dir)?;
    let (ending, sleeper) = (dir.join("ending.c"), dir.join("sleeper.c"));
    std::fs::write(&ending, FOREIGN_ENDING)?;
    std::fs::write(&sleeper, FOREIGN_SLEEPER)?;
    let args = [
        "test",
        "--no-install",
        "--arch",
        "s390x",
        "--guest-c",
        path_str(&ending)?,
        "--guest-c",
        path_str(&sleeper)?,
        "--guest-test-timeout",
        "3",
    ];
    let out = super::devloop::xtask(exe, &args)?;
    if out.code != Some(101) {
        bail!(
            "cargo xtask {}: exit {:?}, want 101 (failed trials):\n{}",
            args.join(" "),
            out.code,
            super::devloop::tail(&out.stderr)
        );
    }
    let dir = super::devloop::run_dir(&out.stderr)?;
    let run = harness::artifacts::read_results(&dir)?;
    let verdict = |name: &str| -> anyhow::Result<&Verdict> {
        run.verdicts
            .iter()
            .find(|v| v.name == name)
            .map(|v| &v.verdict)
            .with_context(|| format!("no verdict for {name} in {}", dir.display()))
    };
    let failed_with = |name: &str, words: &str| -> anyhow::Result<()> {
        match verdict(name)? {
            Verdict::Fail(f) if f.message.contains(words) => Ok(()),
            other => bail!("{name}: want a failure saying {words:?}, got {other:?}"),
        }
    };
    anyhow::ensure!(
        run.kernel.label == "6.12-s390x",
        "label {}",
        run.kernel.label
    );
    anyhow::ensure!(
        matches!(verdict("guest::ending::passes")?, Verdict::Pass),
        "guest::ending::passes: {:?}",
        verdict("guest::ending::passes")?
    );
    failed_with("guest::ending::fails", "the fixture's failing check")?;
    failed_with("guest::ending", "killed by signal 11")?;
    failed_with("guest::sleeper", "timed out after 12000 ms")?;
    anyhow::ensure!(
        matches!(verdict(HEALTH)?, Verdict::Pass),
        "vm::health: {:?}",
        verdict(HEALTH)?
    );
    Ok(())
}
