//! One boot: start QEMU, read the console and the result channel side by side, enforce every
//! time limit, and always reap QEMU. What comes out is a [`VmReport`] that says what the guest
//! reported, what the console showed, and how the VM ended.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use result_channel::{Event, Parser, Record};

use crate::console::{Trouble, Watch};
use crate::qemu::QemuConfig;

/// Every wait has one of these limits, already scaled for the accelerator.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// From QEMU's start to the runner's hello.
    pub boot: Duration,
    /// From a scenario's start record to its end record (the guest enforces a shorter one).
    pub scenario: Duration,
    /// The same for each upstream selftest program, by record name (its `settings`
    /// timeout, scaled): the plan says which records are programs, not their names' shape.
    pub programs: Vec<(String, Duration)>,
    /// The whole VM.
    pub whole: Duration,
    /// Neither channel said anything for this long.
    pub silence: Duration,
}

impl Limits {
    /// Adds records with limits of their own (guest test programs): the whole VM and the
    /// no-output watchdog grow with them.
    pub fn add_programs(&mut self, programs: Vec<(String, Duration)>) {
        for (name, d) in programs {
            self.whole += d;
            self.silence = self.silence.max(d + self.boot);
            self.programs.push((name, d));
        }
    }

    /// The limit between a record's start and its end.
    pub fn limit_for(&self, name: &str) -> Duration {
        self.programs
            .iter()
            .find(|(n, _)| n == name)
            .map_or(self.scenario, |(_, d)| *d)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum VmEnd {
    /// The guest said it was done and QEMU exited.
    Finished,
    /// A kernel panic was seen; the VM ended itself (`panic=-1`).
    KernelPanicked,
    /// QEMU exited before the guest said it was done.
    ExitedEarly { status: String },
    /// A limit ran out; QEMU was killed.
    TimedOut { what: String },
}

/// How the VM ended in the words of the verdicts and the restart records ("not run: the
/// kernel panicked while running ..."; "restart after the VM timed out: ..."): one wording,
/// so that what a verdict says and what the restart says agree.
impl std::fmt::Display for VmEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VmEnd::Finished => f.write_str("the VM finished"),
            VmEnd::KernelPanicked => f.write_str("the kernel panicked"),
            VmEnd::ExitedEarly { status } => write!(f, "QEMU exited early ({status})"),
            VmEnd::TimedOut { what } => write!(f, "timed out: {what}"),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VmReport {
    pub kernel_release: Option<String>,
    /// False when the guest found no `user_events_data` in tracefs.
    pub user_events: bool,
    /// Guest uptime at the runner's hello and at done: the kernel's share of the wall time.
    pub guest_hello_ms: Option<u64>,
    pub guest_done_ms: Option<u64>,
    /// Host wall time from QEMU's start to the runner's hello.
    #[serde(default)]
    pub hello_wall_ms: Option<u64>,
    pub records: Vec<Record>,
    /// The scenario that had started but not ended when the VM stopped (the first of
    /// [`VmReport::running`]).
    pub unfinished: Option<String>,
    /// Every scenario started and not ended, when several ran side by side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub running: Vec<String>,
    pub troubles: Vec<Trouble>,
    pub garbage: Vec<String>,
    pub end: VmEnd,
    pub wall_ms: u64,
    pub qemu_stderr: String,
    pub console_log: PathBuf,
}

enum Msg {
    Console(String),
    ConsoleEof,
    Result(Event),
    ResultEof,
    ResultConnectFailed(String),
}

/// Boots the VM described by `qemu` and collects its report. Artifacts (console log, QEMU
/// command line) go to `run_dir`.
pub fn run(qemu: &QemuConfig, run_dir: &Path, limits: &Limits) -> anyhow::Result<VmReport> {
    run_streaming(qemu, run_dir, limits, false)
}

/// [`run`], and with `stream_console` each console line also goes to stderr as it comes
/// (`--console`): the console log is written either way.
pub fn run_streaming(
    qemu: &QemuConfig,
    run_dir: &Path,
    limits: &Limits,
    stream_console: bool,
) -> anyhow::Result<VmReport> {
    let console_path = run_dir.join("console.log");
    let mut console_log = File::create(&console_path)
        .with_context(|| format!("create {}", console_path.display()))?;
    let _ = std::fs::remove_file(&qemu.result_socket);
    let listener = UnixListener::bind(&qemu.result_socket)
        .with_context(|| format!("listen on {}", qemu.result_socket.display()))?;

    let started = Instant::now();
    let mut child = match spawn_qemu(qemu) {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&qemu.result_socket);
            return Err(e);
        }
    };
    let (tx, rx) = mpsc::channel();
    read_console(child.stdout.take().expect("piped"), tx.clone());
    let stderr_reader = read_stderr(child.stderr.take().expect("piped"));
    read_results(listener, qemu.result_socket.clone(), limits.boot, tx);

    let mut boot = Watching::new(console_path.clone(), started);
    while boot.console_open || boot.results_open || boot.exit_status.is_none() {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(msg) => boot.take(msg, &mut console_log, stream_console),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                boot.console_open = false;
                boot.results_open = false;
            }
        }
        // An interrupt stops the boot: QEMU is killed and reaped, its socket removed.
        if crate::interrupt::is_set() {
            kill(&mut child);
            let _ = child.wait();
            let _ = std::fs::remove_file(&qemu.result_socket);
            bail!(
                "interrupted; QEMU stopped (console log so far: {})",
                console_path.display()
            );
        }
        if boot.exit_status.is_none() {
            if let Some(st) = child.try_wait()? {
                boot.exit_status = Some(st);
            }
        }
        if boot.exit_status.is_some() {
            // QEMU is gone: give the readers a moment to drain, then stop.
            if started.elapsed() > limits.whole
                || boot.last_output.elapsed() > Duration::from_secs(2)
            {
                break;
            }
            continue;
        }
        if boot.timed_out.is_none() {
            boot.timed_out = check_limits(
                limits,
                started,
                boot.last_output,
                &boot.scenario_started,
                &boot.report,
                boot.done,
            );
        }
        if let Some(what) = &boot.timed_out {
            kill(&mut child);
            boot.exit_status = Some(child.wait()?);
            boot.report.end = VmEnd::TimedOut { what: what.clone() };
        }
    }
    boot.finish(&mut child, qemu, stderr_reader)
}

/// The console: QEMU's stdout, line by line. Lossy UTF-8, since a dying kernel prints what
/// it likes.
fn read_console(stdout: std::process::ChildStdout, tx: mpsc::Sender<Msg>) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx
                        .send(Msg::Console(String::from_utf8_lossy(&buf).into_owned()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(Msg::ConsoleEof);
    });
}

/// QEMU's stderr, its first 64 KiB: what it said when it failed.
fn read_stderr(stderr: std::process::ChildStderr) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(stderr)
            .take(64 * 1024)
            .read_to_string(&mut s);
        s
    })
}

/// The result channel: QEMU connects to our listener when it starts; stop waiting when the
/// boot limit runs out (QEMU that never connects has failed to start). The socket's file is
/// removed once QEMU connected or never will.
fn read_results(
    listener: UnixListener,
    socket_path: PathBuf,
    accept_limit: Duration,
    tx: mpsc::Sender<Msg>,
) {
    std::thread::spawn(move || {
        let stream = accept_with_limit(&listener, accept_limit);
        let _ = std::fs::remove_file(&socket_path);
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Msg::ResultConnectFailed(e));
                return;
            }
        };
        let mut parser = Parser::new();
        let mut buf = [0u8; 16384];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    for ev in parser.push(&buf[..n]) {
                        if tx.send(Msg::Result(ev)).is_err() {
                            return;
                        }
                    }
                }
            }
        }
        if let Some(ev) = parser.finish() {
            let _ = tx.send(Msg::Result(ev));
        }
        let _ = tx.send(Msg::ResultEof);
    });
}

/// What the host knows of one boot while it runs: the report so far, and what the limits
/// and the loop's end depend on.
struct Watching {
    report: VmReport,
    watch: Watch,
    started: Instant,
    last_output: Instant,
    /// When each running scenario started, for its limit.
    scenario_started: Vec<(String, Instant)>,
    /// When the guest said it was done.
    done: Option<Instant>,
    console_open: bool,
    results_open: bool,
    exit_status: Option<std::process::ExitStatus>,
    /// The limit that ran out, in words; QEMU is killed once this is set.
    timed_out: Option<String>,
}

impl Watching {
    fn new(console_log: PathBuf, started: Instant) -> Watching {
        Watching {
            report: VmReport {
                kernel_release: None,
                user_events: true,
                guest_hello_ms: None,
                guest_done_ms: None,
                hello_wall_ms: None,
                records: vec![],
                unfinished: None,
                running: vec![],
                troubles: vec![],
                garbage: vec![],
                end: VmEnd::Finished,
                wall_ms: 0,
                qemu_stderr: String::new(),
                console_log,
            },
            watch: Watch::new(),
            started,
            last_output: Instant::now(),
            scenario_started: Vec::new(),
            done: None,
            console_open: true,
            results_open: true,
            exit_status: None,
            timed_out: None,
        }
    }

    /// One message from a reader: a console line (logged, watched for trouble), a result
    /// record or garbage, or the end of a channel.
    fn take(&mut self, msg: Msg, console_log: &mut File, stream_console: bool) {
        match msg {
            Msg::Console(line) => {
                self.last_output = Instant::now();
                let _ = console_log.write_all(line.as_bytes());
                if stream_console {
                    eprint!("{line}");
                }
                self.watch.feed(&line, self.report.unfinished.as_deref());
            }
            Msg::ConsoleEof => self.console_open = false,
            Msg::ResultEof => self.results_open = false,
            Msg::ResultConnectFailed(e) => {
                self.results_open = false;
                if self.exit_status.is_none() && self.timed_out.is_none() {
                    self.timed_out =
                        Some(format!("QEMU did not connect to the result channel: {e}"));
                }
            }
            Msg::Result(Event::Garbage(g)) => {
                self.last_output = Instant::now();
                self.report.garbage.push(g);
            }
            Msg::Result(Event::Record(r)) => {
                self.last_output = Instant::now();
                self.record(r);
            }
        }
    }

    /// A record: what started and ended is tracked for the limits and for who a console
    /// line belongs to.
    fn record(&mut self, r: Record) {
        let report = &mut self.report;
        match &r {
            Record::Hello {
                kernel_release,
                uptime_ms,
                user_events,
                ..
            } => {
                report.kernel_release = Some(kernel_release.clone());
                report.user_events = *user_events;
                report.guest_hello_ms = Some(*uptime_ms);
                report.hello_wall_ms = Some(self.started.elapsed().as_millis() as u64);
            }
            Record::Start { name } => {
                report.running.push(name.clone());
                self.scenario_started.push((name.clone(), Instant::now()));
                report.unfinished = report.running.first().cloned();
            }
            Record::End(end) => {
                report.running.retain(|r| *r != end.name);
                self.scenario_started.retain(|(r, _)| *r != end.name);
                report.unfinished = report.running.first().cloned();
            }
            Record::Done { uptime_ms, .. } => {
                report.guest_done_ms = Some(*uptime_ms);
                self.done = Some(Instant::now());
            }
        }
        report.records.push(r);
    }

    /// QEMU reaped, its socket gone, and the report completed: the console's trouble, the
    /// wall time, and how the VM ended (unless a limit already said).
    fn finish(
        mut self,
        child: &mut Child,
        qemu: &QemuConfig,
        stderr_reader: std::thread::JoinHandle<String>,
    ) -> anyhow::Result<VmReport> {
        kill(child);
        let status = child.wait()?;
        // Gone already if QEMU connected; if it never did, the listener's file must not stay.
        let _ = std::fs::remove_file(&qemu.result_socket);
        let report = &mut self.report;
        report.qemu_stderr = stderr_reader.join().unwrap_or_default();
        self.watch.settle();
        report.troubles = self.watch.found.clone();
        report.wall_ms = self.started.elapsed().as_millis() as u64;
        if !matches!(report.end, VmEnd::TimedOut { .. }) {
            report.end = if self.watch.kernel_died() {
                VmEnd::KernelPanicked
            } else if self.done.is_some() {
                VmEnd::Finished
            } else {
                VmEnd::ExitedEarly {
                    status: status.to_string(),
                }
            };
        }
        Ok(self.report)
    }
}

fn check_limits(
    limits: &Limits,
    started: Instant,
    last_output: Instant,
    scenario_started: &[(String, Instant)],
    report: &VmReport,
    done: Option<Instant>,
) -> Option<String> {
    let secs = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    if started.elapsed() > limits.whole {
        return Some(format!(
            "the whole VM ran longer than {}",
            secs(limits.whole)
        ));
    }
    if report.kernel_release.is_none() && started.elapsed() > limits.boot {
        return Some(format!(
            "no report from the guest within {} of starting QEMU (boot)",
            secs(limits.boot)
        ));
    }
    for (name, started) in scenario_started {
        let limit = limits.limit_for(name);
        if started.elapsed() > limit {
            return Some(format!(
                "scenario {name} gave no result within {}",
                secs(limit)
            ));
        }
    }
    // Counted from done, not from the last output: a kernel left with a stuck task keeps
    // printing (lockup and stall reports) while it fails to power off.
    if done.is_some_and(|d| d.elapsed() > limits.boot) {
        return Some(format!(
            "the guest said done but the VM did not power off within {}",
            secs(limits.boot)
        ));
    }
    if last_output.elapsed() > limits.silence {
        return Some(format!(
            "no output from the VM on either channel for {}",
            secs(limits.silence)
        ));
    }
    None
}

/// The child gets SIGKILL when the harness dies, whatever ends it (Ctrl-C, kill, a panic):
/// QEMU must never outlive the harness.
pub fn die_with_parent(cmd: &mut Command) {
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn spawn_qemu(qemu: &QemuConfig) -> anyhow::Result<Child> {
    let mut cmd = Command::new(&qemu.binary);
    cmd.args(qemu.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    match cmd.spawn() {
        Ok(c) => Ok(c),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} not found: install QEMU (Debian/Ubuntu: apt-get install qemu-system-x86), or run `cargo xtask setup`",
            qemu.binary.display()
        ),
        Err(e) => Err(e).with_context(|| format!("start {}", qemu.binary.display())),
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
}

fn accept_with_limit(
    listener: &UnixListener,
    limit: Duration,
) -> Result<std::os::unix::net::UnixStream, String> {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let r = unsafe { libc::poll(&mut pfd, 1, limit.as_millis().min(i32::MAX as u128) as i32) };
    if r <= 0 {
        return Err(format!("no connection within {} s", limit.as_secs()));
    }
    listener.accept().map(|(s, _)| s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::Accel;

    /// The words the verdicts ("not run: ...") and the restart records have always used.
    #[test]
    fn each_vm_end_has_the_words_verdicts_use() {
        let words = [
            (VmEnd::Finished, "the VM finished"),
            (VmEnd::KernelPanicked, "the kernel panicked"),
            (
                VmEnd::ExitedEarly {
                    status: "exit status: 0".into(),
                },
                "QEMU exited early (exit status: 0)",
            ),
            (
                VmEnd::TimedOut {
                    what: "no report from the guest within 40.0 s".into(),
                },
                "timed out: no report from the guest within 40.0 s",
            ),
        ];
        for (end, said) in words {
            assert_eq!(end.to_string(), said);
        }
    }

    #[test]
    fn a_missing_qemu_is_one_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let cfg = QemuConfig {
            binary: "/nonexistent/qemu-system-x86_64".into(),
            arch: crate::arch::Arch::X86_64,
            kernel: d.path().join("bzImage"),
            initrd: d.path().join("initramfs.cpio"),
            accel: Accel::Tcg,
            memory_mib: 64,
            cpus: 1,
            extra_cmdline: String::new(),
            result_socket: d.path().join("r.sock"),
            extra_args: vec![],
            gdb: None,
            guest_tsc_khz: None,
        };
        let limits = Limits {
            boot: Duration::from_secs(1),
            scenario: Duration::from_secs(1),
            programs: vec![],
            whole: Duration::from_secs(2),
            silence: Duration::from_secs(1),
        };
        let e = format!("{:#}", run(&cfg, d.path(), &limits).unwrap_err());
        assert!(
            e.contains("not found") && e.contains("apt-get install qemu-system-x86"),
            "{e}"
        );
        assert!(
            !d.path().join("r.sock").exists(),
            "the listener's socket is removed"
        );
    }
}
