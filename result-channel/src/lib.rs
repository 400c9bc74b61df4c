//! The result channel: what the guest tells the host, one JSON object per line, on a serial
//! port of its own (ttyS1) so that kernel messages on the console never interleave with it.
//!
//! The guest is untrusted: the kernel under test may corrupt memory, panic mid-line, or flood
//! the port. [`Parser`] therefore never panics, bounds what it buffers, and turns anything it
//! cannot read into [`Event::Garbage`] instead of failing the whole run.

use serde::{Deserialize, Serialize};

pub mod trouble;

/// Longest record the host accepts. Trace snapshots are the largest records (a few KiB).
pub const MAX_RECORD_LEN: usize = 256 * 1024;

/// How a scenario ended, as the guest saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// The kernel lacks what the scenario checks; `message` says what the probe found.
    Ignored,
}

/// Text the host compares with a reviewed snapshot (insta), after normalising it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub name: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Record {
    /// The runner is up. `uptime_ms` is the guest's CLOCK_BOOTTIME, so the host can tell
    /// how much of a run was kernel boot.
    Hello {
        kernel_release: String,
        uptime_ms: u64,
        planned: u32,
        /// Whether tracefs has `user_events_data`: a kernel without the feature is one clear
        /// message, not a failure per scenario.
        #[serde(default = "yes")]
        user_events: bool,
    },
    /// A scenario is about to run: anything the console shows from now on belongs to it.
    Start { name: String },
    /// A scenario or program ended: what came of it (see [`RecordEnd`]).
    End(RecordEnd),
    /// Every planned scenario has ended; the guest powers off next.
    Done {
        uptime_ms: u64,
        /// The plan's `stop_at_first_failure` stopped the run at this scenario's failure: the
        /// scenarios without an End were skipped, not lost.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stopped_at: Option<String>,
    },
}

/// How one planned scenario or program ended, as the guest saw it: the body of
/// [`Record::End`]. A named struct, not a struct variant, so that the host can hold and pass
/// one end (its judges take a `&RecordEnd`) instead of unpacking eight fields by position.
/// Its wire form is unchanged: the variant's tag `"kind": "end"` beside these fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordEnd {
    /// The planned record: a scenario, `kselftest::<program>` or `guest::<program>[::<test>]`.
    pub name: String,
    pub outcome: Outcome,
    /// Why it failed or was ignored, in the guest's words (empty on a pass).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The guest's own measure of how long it ran.
    pub duration_us: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<Snapshot>,
    /// What the scenario measured on the way (poll latencies, counts), for the report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// A program's own output (the upstream selftests' KTAP), parsed by the host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
    /// With `Outcome::Ignored`: the feature the guest's probe found missing. The host
    /// holds what each kernel must have; an ignore it did not expect is a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<Feature>,
    /// With `Outcome::Fail`: the known kernel bug (its kernels.toml name) whose symptom
    /// this failure is, as the scenario recognised it. The host excuses a failure only
    /// when it carries the symptom of a bug listed for that kernel and scenario, so that
    /// another breakage of the same scenario is never taken for the known bug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symptom: Option<String>,
    /// A process of the record's stayed in uninterruptible sleep in the kernel past the
    /// plan's `hang_limit_ms`: the runner killed its group and left the process behind (its
    /// verdict is a failure, whatever the record said before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hang: Option<Box<Hang>>,
    /// Never started: user_events stopped answering after another record hung in the
    /// kernel, so the runner reported this one at once instead of letting it hang too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<Box<Blocked>>,
}

/// A process stuck in the kernel, as the guest runner saw it in `/proc`: in state `D`
/// (uninterruptible sleep) at every look for `state_ms`, or, when `spinning`, runnable in
/// the kernel all that time without sleeping or returning to user space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hang {
    /// The stuck task (a thread's id when a thread other than the main one is stuck).
    pub pid: u32,
    /// Its `comm`.
    pub comm: String,
    /// How long the runner saw it stuck before it gave up on it.
    pub state_ms: u64,
    /// It never slept: state `R` at every look, its user time still and its kernel time
    /// growing, a loop in the kernel (its `wchan` is empty, its stack the kernel's backtrace
    /// of the CPU it ran on).
    #[serde(default)]
    pub spinning: bool,
    /// `/proc/PID/wchan`: the kernel function it sleeps in (empty if unreadable).
    pub wchan: String,
    /// `/proc/PID/stack` or the kernel's own dump, innermost frame first,
    /// `function+0xoff/0xlen` (empty if unreadable).
    pub stack: Vec<String>,
    /// Its stack waits on a lock (a mutex, an rwsem, a semaphore).
    pub waits_on_lock: bool,
    /// It waits on a lock while the process of this earlier hung record is still stuck:
    /// blocked behind it, whose stack is the cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_behind: Option<String>,
    /// The record had already sent its result: the hang came on its way out (exit, close, a
    /// child of its).
    #[serde(default)]
    pub after_result: bool,
    /// That result, as the record sent it (the End's own outcome and message are the hang's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<Reported>,
    /// Judged before the limit: it sleeps at the very place (the same innermost frame
    /// outside the scheduler) where this earlier record's task has been stuck all along.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_place_as: Option<String>,
}

/// A record's own result, kept beside the hang that came after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reported {
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Why a record never started: the runner's probe of user_events (a canary registration in a
/// child of its own) did not come back after `culprit` hung, so every record after it would
/// have hung too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    /// The record whose process hung first and was still stuck.
    pub culprit: String,
    /// What the probe did and how long it was given, in words.
    pub probe: String,
    /// Where the probe's own process was stuck: its kernel stack, innermost frame first.
    pub probe_stack: Vec<String>,
}

fn yes() -> bool {
    true
}

impl Record {
    /// The wire form: one line, newline included.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("records always serialise");
        s.push('\n');
        s
    }
}

/// What the parser makes of the byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Record(Record),
    /// A line that is not a record: kept (shortened) for the report.
    Garbage(String),
}

/// Incremental line parser over the raw bytes of the result port.
#[derive(Default)]
pub struct Parser {
    line: Vec<u8>,
    /// Set while skipping the rest of an over-long line.
    overflowed: bool,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes as they arrive; returns the events completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                if self.overflowed {
                    out.push(Event::Garbage(format!(
                        "record longer than {MAX_RECORD_LEN} bytes"
                    )));
                    self.overflowed = false;
                } else if let Some(ev) = parse_line(&self.line) {
                    out.push(ev);
                }
                self.line.clear();
            } else if !self.overflowed {
                if self.line.len() >= MAX_RECORD_LEN {
                    self.overflowed = true;
                    self.line.clear();
                } else {
                    self.line.push(b);
                }
            }
        }
        out
    }

    /// The stream ended (the VM is gone): a partial last line is reported, not dropped.
    pub fn finish(&mut self) -> Option<Event> {
        let ev = if self.overflowed {
            Some(Event::Garbage(format!(
                "record longer than {MAX_RECORD_LEN} bytes"
            )))
        } else if self.line.is_empty() {
            None
        } else {
            Some(Event::Garbage(format!(
                "truncated record: {}",
                shorten(&self.line)
            )))
        };
        self.line.clear();
        self.overflowed = false;
        ev
    }
}

fn parse_line(line: &[u8]) -> Option<Event> {
    // Serial ports add carriage returns and the odd NUL while the UART settles.
    let trimmed: &[u8] = {
        let s = line
            .iter()
            .position(|c| !matches!(c, b'\r' | 0 | b' '))
            .unwrap_or(line.len());
        let e = line
            .iter()
            .rposition(|c| !matches!(c, b'\r' | 0 | b' '))
            .map_or(s, |e| e + 1);
        &line[s..e.max(s)]
    };
    if trimmed.is_empty() {
        return None;
    }
    Some(match serde_json::from_slice::<Record>(trimmed) {
        Ok(r) => Event::Record(r),
        Err(e) => Event::Garbage(format!("{e}: {}", shorten(trimmed))),
    })
}

fn shorten(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
    if bytes.len() > 200 {
        format!("{s}…")
    } else {
        s
    }
}

/// Parses a whole saved result log (for `xtask parse` and the tests).
pub fn parse_all(bytes: &[u8]) -> Vec<Event> {
    let mut p = Parser::new();
    let mut out = p.push(bytes);
    out.extend(p.finish());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(name: &str) -> Record {
        Record::End(RecordEnd {
            name: name.into(),
            outcome: Outcome::Fail,
            message: "bit 3 still set after 2000 ms".into(),
            duration_us: 17,
            snapshots: vec![Snapshot {
                name: "s".into(),
                content: "a\nb\n".into(),
            }],
            notes: vec![],
            output: "TAP version 13\n1..1\nok 1 x\n".into(),
            missing: None,
            symptom: Some("format-array-len".into()),
            hang: None,
            blocked: None,
        })
    }

    #[test]
    fn records_round_trip_through_split_writes() {
        let recs = [
            Record::Hello {
                kernel_release: "6.12.117".into(),
                uptime_ms: 812,
                planned: 2,
                user_events: true,
            },
            Record::Start {
                name: "fork::x".into(),
            },
            end("fork::x"),
            Record::Done {
                uptime_ms: 900,
                stopped_at: None,
            },
        ];
        let wire: String = recs.iter().map(Record::to_line).collect();
        for chunk in [1usize, 3, 7, 4096] {
            let mut p = Parser::new();
            let mut got = Vec::new();
            for c in wire.as_bytes().chunks(chunk) {
                got.extend(p.push(c));
            }
            assert_eq!(p.finish(), None);
            let want: Vec<Event> = recs.iter().cloned().map(Event::Record).collect();
            assert_eq!(got, want, "chunk size {chunk}");
        }
    }

    #[test]
    fn carriage_returns_and_nuls_from_the_uart_are_ignored() {
        let line = format!(
            "\0\r{}\r\n",
            Record::Start { name: "a".into() }.to_line().trim_end()
        );
        assert_eq!(
            parse_all(line.as_bytes()),
            vec![Event::Record(Record::Start { name: "a".into() })]
        );
    }

    #[test]
    fn garbage_truncation_and_floods_become_events_not_panics() {
        let mut input = b"\xff\xfe not json\n{\"kind\":\"start\"}\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_RECORD_LEN + 10));
        input.extend(b"\n{\"kind\":\"done\",\"upti");
        let evs = parse_all(&input);
        assert_eq!(evs.len(), 4, "{evs:?}");
        assert!(matches!(&evs[0], Event::Garbage(g) if g.contains("not json")));
        assert!(matches!(&evs[1], Event::Garbage(g) if g.contains("missing field `name`")));
        assert!(matches!(&evs[2], Event::Garbage(g) if g.contains("longer than")));
        assert!(matches!(&evs[3], Event::Garbage(g) if g.starts_with("truncated record")));
    }

    /// The kernel's hang detectors, as the console shows them: the task a hung-task report
    /// names (its comm may hold a colon), and a soft lockup's first line.
    #[test]
    fn hang_reports_are_trouble_that_names_its_task() {
        use trouble::{classify, TroubleKind};
        let hung = "[   12.5] INFO: task kworker/0:1:12 blocked for more than 4 seconds.";
        assert_eq!(classify(hung), Some(TroubleKind::HungTask));
        assert_eq!(hung_task_pid(hung), Some(12));
        assert_eq!(splat_pid(hung), Some(12));
        assert_eq!(
            splat_pid("INFO: task ue-scenarios:43 blocked for more than 8 seconds."),
            Some(43)
        );
        assert_eq!(hung_task_pid("INFO: task x blocked"), None);
        assert_eq!(
            classify("[ 30.1] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [ue-scenarios:93]"),
            Some(TroubleKind::Lockup)
        );
        assert_eq!(classify("[ 30.1] INFO: lockdep is turned off."), None);
    }

    /// The slab's complaint about an allocation's flags (mm/slub.c, kmalloc_fix_flags) is a
    /// kernel warning with a stack, as a WARN() is.
    #[test]
    fn bad_gfp_flags_are_a_warning() {
        use trouble::{classify, TroubleKind};
        let line = "[    5.1] Unexpected gfp: 0x6 (__GFP_HIGHMEM|__GFP_DMA32). Fixing up to gfp: 0x0 (). Fix your code!";
        assert_eq!(classify(line), Some(TroubleKind::Warning));
        assert_eq!(classify("[    5.1] Unexpected gfp seen elsewhere"), None);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: xorshift bytes biased towards JSON punctuation.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let alphabet = b"{}[]\":,\n\\kindstartendpassfailoutcome0123456789 \xff\x00";
        for _ in 0..2000 {
            let mut buf = Vec::new();
            for _ in 0..(x % 300) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let _ = parse_all(&buf);
        }
    }
}

/// A capability of the kernel under test that some scenarios need and probe for. The kernel
/// list (`kernel-configs/kernels.toml`) says which of these each kernel must have, so that a
/// scenario is `ignored` only where the host expected the kernel to lack what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// The 6.4+ ABI: DIAG_IOCSREG with an enable address, DIAG_IOCSUNREG.
    RemoteWrite,
    /// The pre-6.4 ABI: a status page mmap'd from `user_events_status`.
    StatusPage,
    /// The USER_EVENT_REG_PERSIST flag of DIAG_IOCSREG (6.7+).
    RegPersist,
    /// The USER_EVENT_REG_MULTI_FORMAT flag of DIAG_IOCSREG (6.9+).
    RegMultiFormat,
    /// madvise(2) (CONFIG_ADVISE_SYSCALLS).
    Madvise,
    /// Failing the N-th slab allocation of a task: `/proc/thread-self/fail-nth`
    /// (CONFIG_FAULT_INJECTION) and debugfs's `failslab` knobs (CONFIG_FAILSLAB,
    /// CONFIG_FAULT_INJECTION_DEBUG_FS), which a kernel for anything but testing leaves out.
    Failslab,
    /// memfd_secret(2) (CONFIG_SECRETMEM, on by default from 6.5): memory a task can fault in
    /// but the kernel can never pin, so user_events' fault-in retries run to their cap.
    Secretmem,
    /// userfaultfd(2) for missing pages, with kernel faults handled (CONFIG_USERFAULTFD):
    /// a page whose first touch waits for this process, so a scenario can hold the fault
    /// worker inside its fault-in.
    Userfaultfd,
}

impl Feature {
    pub const ALL: [Feature; 8] = [
        Feature::RemoteWrite,
        Feature::StatusPage,
        Feature::RegPersist,
        Feature::RegMultiFormat,
        Feature::Madvise,
        Feature::Failslab,
        Feature::Secretmem,
        Feature::Userfaultfd,
    ];

    /// The name used in `kernels.toml` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Feature::RemoteWrite => "remote_write",
            Feature::StatusPage => "status_page",
            Feature::RegPersist => "reg_persist",
            Feature::RegMultiFormat => "reg_multi_format",
            Feature::Madvise => "madvise",
            Feature::Failslab => "failslab",
            Feature::Secretmem => "secretmem",
            Feature::Userfaultfd => "userfaultfd",
        }
    }

    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl std::fmt::Display for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the guest runner says about each scenario it can run (`ue-scenarios --list-json`):
/// the host plans, filters and judges from this, never from the shape of a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// `family::name`, the trial's name after the kernel's.
    pub name: String,
    /// The family it belongs to (the part of `name` before `::`, declared by the family).
    pub family: String,
    /// One line: the promise of the ABI it checks.
    pub about: String,
    /// Run only when asked for (the stress family).
    #[serde(default)]
    pub optional: bool,
    /// The kernel's "user_events: Fault for mm" warning is an expected outcome of this
    /// scenario (it unmaps or protects the enable word on purpose), not trouble.
    #[serde(default)]
    pub fault_warnings: bool,
    /// The kernel's writes of its enable bits go through the fault worker (a page not
    /// present, or copy-on-write after a fork, when the bit changes). A kernel whose worker
    /// breaks breaks on it; a fresh VM after such a break runs it last. Kept true by
    /// `selftest::fault_worker_users_are_declared`, which watches the worker being queued.
    #[serde(default)]
    pub fault_worker: bool,
    /// Must not share the machine with other scenarios (timing-sensitive or load-making).
    #[serde(default)]
    pub alone: bool,
    /// The features its probes require: without one of them it reports `ignored`.
    #[serde(default)]
    pub requires: Vec<Feature>,
}

/// What the host asks the guest to run; written into the initramfs as `/etc/ue-plan.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Scenario names, in the order to run them.
    pub scenarios: Vec<String>,
    /// Each scenario's limit, enforced by the guest runner (the host enforces it again).
    pub scenario_timeout_ms: u64,
    /// How long a scenario polls for an asynchronous kernel update before it gives up.
    pub poll_deadline_ms: u64,
    /// Upstream selftest programs to run after the scenarios, in the same boot.
    #[serde(default)]
    pub kselftests: Vec<KselftestPlan>,
    /// Start no scenario after the first failed one (mutation runs, where the first failure
    /// decides); the upstream programs still all run.
    #[serde(default)]
    pub stop_at_first_failure: bool,
    /// With `stop_at_first_failure`, only a failure of one of these stops the run (empty: any
    /// failure does): `mutants` names the scenarios that must catch each mutant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_on: Vec<String>,
    /// How many scenarios may run side by side (`--jobs`); 1 runs them one at a time.
    /// Scenarios that declare `alone` always run with nothing beside them.
    #[serde(default = "one_job")]
    pub jobs: u32,
    /// Other people's test programs (`--guest-test`, `--guest-crate`), run last.
    #[serde(default)]
    pub guest_tests: Vec<GuestTestPlan>,
    /// A process of a record's in uninterruptible sleep (`D`) for this long is stuck in the
    /// kernel: the runner reports the record as hung and leaves the process behind. 0: the
    /// runner does not watch.
    #[serde(default)]
    pub hang_limit_ms: u64,
    /// Scenarios to start only after every other one. A fresh VM after a hang sets this to
    /// those like the records that broke the last VM (their family, or the fault worker
    /// they share), so that what does not touch the broken path gets its verdict before the
    /// kernel can break the same way again and block the rest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub defer: Vec<String>,
}

fn one_job() -> u32 {
    1
}

impl Plan {
    /// The longest the upstream and guest test programs may take together, by their own
    /// limits: the guest's init ends the VM only after this on top of the scenarios' share.
    pub fn programs_ms(&self) -> u64 {
        let upstream: u64 = self.kselftests.iter().map(|k| k.timeout_ms).sum();
        let guest: u64 = self
            .guest_tests
            .iter()
            .map(|g| g.timeout_ms * g.style.processes() as u64)
            .sum();
        upstream + guest
    }
}

/// One program of `tools/testing/selftests/user_events/`, reported as `kselftest::<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KselftestPlan {
    pub name: String,
    /// Where it is in the initramfs.
    pub path: String,
    /// From the selftests' `settings` file, scaled like every other limit.
    pub timeout_ms: u64,
}

/// A test program someone else wrote, run in the guest after the upstream selftests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestTestPlan {
    /// The program's name in trials: `guest::<program>::<test>`.
    pub program: String,
    /// Where it is in the initramfs.
    pub path: String,
    /// Passed after whatever the runner adds (`--exact NAME` for a libtest program).
    #[serde(default)]
    pub args: Vec<String>,
    /// Added to the runner's small environment (PATH, HOME).
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// The limit of each process the runner starts for it: one libtest test, or the whole
    /// program otherwise.
    pub timeout_ms: u64,
    pub style: GuestTestStyle,
}

/// How the runner runs a guest test program and what its records are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case")]
pub enum GuestTestStyle {
    /// A libtest program (`cargo test --no-run`): the host listed its tests; each runs in a
    /// process of its own (`--exact NAME`), so a crash, a hang or a kernel splat belongs to
    /// that one test. `json`: the program takes `--format json` (libtest's unstable format,
    /// enabled with RUSTC_BOOTSTRAP=1 at run time), which the host reads instead of the text.
    Libtest { tests: Vec<String>, json: bool },
    /// Anything else: run once; its KTAP/TAP output, if any, names its tests, and otherwise
    /// its exit status is the verdict.
    Program,
}

impl GuestTestStyle {
    /// How many processes the runner starts for the program.
    pub fn processes(&self) -> usize {
        match self {
            GuestTestStyle::Libtest { tests, .. } => tests.len(),
            GuestTestStyle::Program => 1,
        }
    }
}

/// The record name of a guest test program (`test` None) or of one of its tests.
pub fn guest_test_name(program: &str, test: Option<&str>) -> String {
    match test {
        Some(t) => format!("guest::{program}::{t}"),
        None => format!("guest::{program}"),
    }
}

/// The record name of a selftest program.
pub fn kselftest_name(program: &str) -> String {
    format!("kselftest::{program}")
}

/// The prefix of the runner's own kernel log lines (`<prefix>start NAME`, `<prefix>end NAME`)
/// that bracket each scenario in the console stream.
pub const KMSG_MARKER: &str = "ue-runner: ";

/// After [`KMSG_MARKER`]: `pid P NAME`, logged once scenario NAME's process P exists, so that
/// a splat naming P is NAME's even when other scenarios ran beside it.
pub fn parse_pid_marker(rest: &str) -> Option<(u32, &str)> {
    let (pid, name) = rest.strip_prefix("pid ")?.split_once(' ')?;
    Some((pid.parse().ok()?, name))
}

/// The process a kernel splat line names: `WARNING: CPU: 0 PID: 36 at ...`, the
/// `CPU: 0 UID: 0 PID: 36 Comm: ...` line of a BUG or an Oops, or the hung-task detector's
/// `INFO: task COMM:36 blocked for more than 4 seconds.`
pub fn splat_pid(line: &str) -> Option<u32> {
    if let Some(pid) = hung_task_pid(line) {
        return Some(pid);
    }
    let rest = &line[line.find("PID: ")? + 5..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The task the hung-task detector names: `INFO: task COMM:PID blocked for more than N
/// seconds.` (COMM may itself hold a colon: the pid follows the last one).
pub fn hung_task_pid(line: &str) -> Option<u32> {
    let l = trouble::strip_timestamp(line);
    let task = l
        .strip_prefix("INFO: task ")?
        .split_once(" blocked for more than ")?
        .0;
    task.rsplit_once(':')?.1.parse().ok()
}

pub const PLAN_PATH: &str = "/etc/ue-plan.json";
