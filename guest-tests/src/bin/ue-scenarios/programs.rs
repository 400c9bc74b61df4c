//! Other people's test programs in the guest: the upstream user_events selftests (KTAP) and
//! guest test programs (`--guest-test`, `--guest-crate`; libtest or any program). Each process
//! runs as a child of its own with its output captured; the verdict here is how it ended, and
//! the host reads the output.

use std::time::{Duration, Instant};

use result_channel::{GuestTestPlan, GuestTestStyle, Outcome, Record, RecordEnd};

use super::children::{signal_name, spawn, ChildEnd, Collected, Spawned};
use super::end;
use super::supervise::MakeRecord;

/// Starts an upstream selftest program with its output captured; the host parses the KTAP.
/// It is forked and exec'd by hand: std's spawn with a process group or a pre_exec hook fails
/// with ENOSYS on these tinyconfig kernels. Returns the child and how its End is made, or the
/// End of a program that could not start.
pub fn start_kselftest(
    name: &str,
    k: &result_channel::KselftestPlan,
) -> Result<(Spawned, MakeRecord), Box<Record>> {
    let started = Instant::now();
    let path = std::ffi::CString::new(k.path.as_str()).unwrap();
    let limit = Duration::from_millis(k.timeout_ms);
    // One pipe for stdout and stderr: the harness's assertion messages (stderr) then sit
    // next to the KTAP line they explain. The cwd must be writable.
    let spawned = spawn(limit, |fd| unsafe {
        libc::chdir(c"/tmp".as_ptr());
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        libc::dup2(null, 0);
        libc::dup2(fd, 1);
        libc::dup2(fd, 2);
        let argv = [path.as_ptr(), std::ptr::null()];
        libc::execv(path.as_ptr(), argv.as_ptr());
        let msg = format!("exec {}: {}\n", k.path, std::io::Error::last_os_error());
        libc::write(2, msg.as_ptr() as *const _, msg.len());
        libc::_exit(127)
    });
    let s = spawned.map_err(|e| Box::new(end(name, Outcome::Fail, e, started)))?;
    let name = name.to_owned();
    Ok((
        s,
        Box::new(move |c: Collected| kselftest_end(&name, limit, started, c)),
    ))
}

/// An upstream selftest's End: its exit status judged as kselftest counts it, its output
/// for the host.
fn kselftest_end(name: &str, limit: Duration, started: Instant, c: Collected) -> Record {
    // Exit 0 is pass and 4 is KSFT_SKIP (the whole program skipped), as kselftest counts them.
    let (outcome, message) = match c.end() {
        ChildEnd::TimedOut => (
            Outcome::Fail,
            format!(
                "timed out after {} ms (selftest settings); killed",
                limit.as_millis()
            ),
        ),
        ChildEnd::Hung => (Outcome::Fail, "hung in the kernel".into()),
        ChildEnd::Signal(sig) => (
            Outcome::Fail,
            format!("killed by signal {sig} ({})", signal_name(sig)),
        ),
        ChildEnd::Exited(0) => (Outcome::Pass, String::new()),
        ChildEnd::Exited(4) => (
            Outcome::Ignored,
            "the program skipped itself (KSFT_SKIP)".into(),
        ),
        ChildEnd::Exited(code) => (Outcome::Fail, format!("exited with status {code}")),
    };
    let mut rec = end(name, outcome, message, started);
    if let Record::End(RecordEnd { output, .. }) = &mut rec {
        *output = String::from_utf8_lossy(&c.bytes).into_owned();
    }
    rec
}

/// Each process to start for a guest test program: its record name and its arguments. A
/// libtest program runs one test per process, so what goes wrong belongs to that test.
pub fn guest_test_runs(g: &GuestTestPlan) -> Vec<(String, Vec<String>)> {
    match &g.style {
        GuestTestStyle::Libtest { tests, json } => tests
            .iter()
            .map(|t| {
                let mut argv = vec!["--exact".to_owned(), t.clone(), "--test-threads=1".into()];
                if *json {
                    argv.extend(["--format", "json", "-Z", "unstable-options"].map(String::from));
                }
                argv.extend(g.args.iter().cloned());
                (result_channel::guest_test_name(&g.program, Some(t)), argv)
            })
            .collect(),
        GuestTestStyle::Program => vec![(
            result_channel::guest_test_name(&g.program, None),
            g.args.clone(),
        )],
    }
}

/// Starts one process of a guest test program with stdout and stderr captured together;
/// the verdict is the exit status alone, the host reads the output (libtest, KTAP).
pub fn start_guest_test(
    name: &str,
    g: &GuestTestPlan,
    args: &[String],
) -> Result<(Spawned, MakeRecord), Box<Record>> {
    let started = Instant::now();
    let cstr = |s: &str| std::ffi::CString::new(s.replace('\0', "")).unwrap_or_default();
    let path = cstr(&g.path);
    let argv: Vec<std::ffi::CString> = std::iter::once(path.clone())
        .chain(args.iter().map(|a| cstr(a)))
        .collect();
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), "/bin:/usr/bin".into()),
        ("HOME".into(), "/tmp".into()),
    ];
    if matches!(g.style, GuestTestStyle::Libtest { json: true, .. }) {
        // libtest's `-Z unstable-options` (for `--format json`) checks this at run time.
        env.push(("RUSTC_BOOTSTRAP".into(), "1".into()));
    }
    env.extend(g.env.iter().cloned());
    let envp: Vec<std::ffi::CString> = env.iter().map(|(k, v)| cstr(&format!("{k}={v}"))).collect();
    let limit = Duration::from_millis(g.timeout_ms);
    let spawned = spawn(limit, |fd| unsafe {
        libc::chdir(c"/tmp".as_ptr());
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        libc::dup2(null, 0);
        libc::dup2(fd, 1);
        libc::dup2(fd, 2);
        let mut a: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
        a.push(std::ptr::null());
        let mut e: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
        e.push(std::ptr::null());
        libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr());
        let msg = format!("exec {}: {}\n", g.path, std::io::Error::last_os_error());
        libc::write(2, msg.as_ptr() as *const _, msg.len());
        libc::_exit(127)
    });
    let s = spawned.map_err(|e| Box::new(end(name, Outcome::Fail, e, started)))?;
    let name = name.to_owned();
    Ok((
        s,
        Box::new(move |c: Collected| guest_test_end(&name, limit, started, c)),
    ))
}

/// A guest test process's End: its exit status, its output for the host.
fn guest_test_end(name: &str, limit: Duration, started: Instant, c: Collected) -> Record {
    let (outcome, message) = match c.end() {
        ChildEnd::TimedOut => (
            Outcome::Fail,
            format!(
                "timed out after {} ms (its limit, --guest-test-timeout); killed",
                limit.as_millis()
            ),
        ),
        ChildEnd::Hung => (Outcome::Fail, "hung in the kernel".into()),
        ChildEnd::Signal(sig) => (
            Outcome::Fail,
            format!("crashed: killed by signal {sig} ({})", signal_name(sig)),
        ),
        ChildEnd::Exited(0) => (Outcome::Pass, String::new()),
        ChildEnd::Exited(code) => (Outcome::Fail, format!("exited with status {code}")),
    };
    let mut rec = end(name, outcome, message, started);
    if let Record::End(RecordEnd { output, .. }) = &mut rec {
        *output = bounded_output(&c.bytes);
    }
    rec
}

/// A program's output as a record carries it: a record is at most MAX_RECORD_LEN on the
/// wire, escapes included, so a chatty program keeps its beginning and its end (where
/// libtest and TAP put their results) and says how much was cut.
fn bounded_output(bytes: &[u8]) -> String {
    const HEAD: usize = 16 * 1024;
    const TAIL: usize = 48 * 1024;
    if bytes.len() <= HEAD + TAIL {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let cut = bytes.len() - HEAD - TAIL;
    format!(
        "{}\n[... {cut} bytes of output cut ...]\n{}",
        String::from_utf8_lossy(&bytes[..HEAD]),
        String::from_utf8_lossy(&bytes[bytes.len() - TAIL..])
    )
}
