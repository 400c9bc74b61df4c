//! The types every stage of the host side shares: what is tested (a kernel and what it must
//! have), how (the suite's options and limits), and what came of it (verdicts, one kernel's
//! run). They are serde types because `results.json` is their serialised form, read back by
//! the bench and by people.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

pub use result_channel::trouble::TroubleKind;
pub use result_channel::{Feature, GuestTestStyle, ScenarioInfo};

use crate::arch::Arch;
use crate::qemu::Accel;
use crate::vm::{Limits, VmEnd, VmReport};

/// A bootable kernel and what the host knows about it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct KernelUnderTest {
    /// The name trials carry: `<label>::<scenario>`.
    pub label: String,
    pub bzimage: PathBuf,
    /// The `.config` it was built from, when known (copied into the run's artifacts).
    pub config: Option<PathBuf>,
    /// Where it came from, for people: package and version, tree path, patches.
    pub provenance: String,
    /// Exactly what was built, for machines (cache keys, bisect logs):
    /// `deb:<package>=<version> sha256:<...>`, `tree:<path>`, `image:<path>`; patches follow
    /// as ` +<file name>`.
    #[serde(default)]
    pub identity: String,
    /// The upstream selftests built from the same tree (empty for a ready image).
    pub kselftests: Vec<KselftestBinary>,
    /// What the host expects this kernel to have: a scenario may report `ignored` only for a
    /// feature that is not in here.
    pub expected: Expectation,
    /// What it was built for and boots as (results.json of older runs: x86-64; written only
    /// for the others, so that an x86-64 run's results.json is as it was).
    #[serde(default, skip_serializing_if = "crate::arch::is_x86_64")]
    pub arch: Arch,
}

/// The features a kernel must have, and who said so (named in a failure, so that a wrong
/// expectation is fixed where it is written).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Expectation {
    pub features: BTreeSet<Feature>,
    /// `kernel-configs/kernels.toml [kernel."6.12"]`, `the tree's version 6.12 and its uapi
    /// header`, `--features`, ...
    pub source: String,
    /// Kernel bugs this kernel is known to carry: the scenario that shows each must fail here
    /// (reported as [`Verdict::KnownBug`]), and passing is a failure that asks to update the list.
    #[serde(default)]
    pub known_bugs: Vec<KnownBug>,
}

impl Expectation {
    pub fn has(&self, f: Feature) -> bool {
        self.features.contains(&f)
    }

    /// The known bug the named trial shows on this kernel, if any.
    pub fn known_bug(&self, trial: &str) -> Option<&KnownBug> {
        self.known_bugs.iter().find(|b| b.scenario == trial)
    }
}

/// A kernel bug the suite finds, as `kernels.toml` lists it for one kernel.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KnownBug {
    /// Its name, also the name of its write-up: `docs/kernel-bugs/<name>.md`.
    pub name: String,
    /// The trial that shows it (`trace::format_array_fields`, `kselftest::abi_test::user.flags`).
    pub scenario: String,
    /// The cause in one line.
    pub cause: String,
}

impl KnownBug {
    /// What a known bug's failing scenario becomes.
    pub fn verdict(&self, failure: String) -> Verdict {
        Verdict::KnownBug {
            bug: self.name.clone(),
            cause: self.cause.clone(),
            failure,
        }
    }

    /// What its scenario passing on a kernel said to carry it becomes: a failure, so the
    /// list stays true.
    pub fn passed(&self, source: &str) -> Verdict {
        Verdict::fail(
            FailCause::KnownBugPassed,
            format!(
                "passes: is {} fixed in this kernel? update kernels.toml ({source} lists it: {})",
                self.name, self.cause
            ),
        )
    }
}

/// The programs of `tools/testing/selftests/user_events/` (its Makefile's TEST_GEN_PROGS since
/// 6.4; 6.1 lacks abi_test). Fixed here so `--list` needs no kernel tree.
pub const KSELFTESTS: [&str; 4] = ["abi_test", "dyn_test", "ftrace_test", "perf_test"];

/// How building one upstream selftest program from the kernel's own tree went.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "build", rename_all = "snake_case")]
pub enum KselftestBuild {
    Built {
        path: PathBuf,
    },
    /// The tree has no source for it (6.1 has no abi_test): reported `ignored`.
    NotInTree,
    /// The compiler refused it: reported as a failure with the compiler's message.
    Failed {
        message: String,
    },
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct KselftestBinary {
    pub name: String,
    pub build: KselftestBuild,
    /// From the selftests' `settings` file.
    pub timeout: Duration,
}

impl KselftestBinary {
    pub fn path(&self) -> Option<&PathBuf> {
        match &self.build {
            KselftestBuild::Built { path } => Some(path),
            _ => None,
        }
    }
}

/// A test program someone else wrote (`--guest-test PATH`, or a test executable of
/// `--guest-crate DIR`), with what it is run with; trials `<kernel>::guest::<name>::<test>`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GuestProgram {
    pub name: String,
    /// The static executable on the host.
    pub path: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// At KVM speed, scaled by the accelerator: each libtest test's, or the whole program's.
    pub timeout: Duration,
    pub style: GuestTestStyle,
    /// It provokes user_events' "Fault for mm" warning on purpose (an enable word whose page
    /// is gone when the event changes), as a scenario declaring `fault_warnings` does: that
    /// warning does not fail it; any other kernel trouble still does.
    #[serde(default)]
    pub fault_warnings: bool,
}

impl GuestProgram {
    /// Its record names: one per libtest test, or the program's own.
    pub fn record_names(&self) -> Vec<String> {
        match &self.style {
            GuestTestStyle::Libtest { tests, .. } => tests
                .iter()
                .map(|t| result_channel::guest_test_name(&self.name, Some(t)))
                .collect(),
            GuestTestStyle::Program => vec![result_channel::guest_test_name(&self.name, None)],
        }
    }
}

#[derive(Debug, Clone)]
pub struct SuiteOptions {
    pub guest_bin_dir: PathBuf,
    pub manifest: PathBuf,
    pub qemu_binary: PathBuf,
    pub accel: Accel,
    /// Per-run folders are made under here (`<target>/ue-runs`).
    pub runs_dir: PathBuf,
    /// Base limits at KVM speed; scaled by the accelerator.
    pub scenario_timeout: Duration,
    pub poll_deadline: Duration,
    pub boot_timeout: Duration,
    /// A process of a scenario's in uninterruptible sleep this long (at KVM speed, scaled)
    /// is stuck in the kernel: the guest runner reports the scenario hung and goes on.
    pub hang_limit: Duration,
    pub memory_mib: u32,
    pub cpus: u32,
    /// `--append`: kernel arguments after the harness's own.
    pub extra_cmdline: String,
    /// `--qemu-arg`: QEMU arguments after the harness's own.
    pub qemu_args: Vec<String>,
    /// `--keep`: keep the kernel, initramfs and command line of every run (a failed run
    /// keeps them anyway).
    pub keep: bool,
    /// `--gdb`: QEMU waits on this local port for a debugger before the first instruction.
    pub gdb: Option<u16>,
    /// A kept run's initramfs to boot instead of a new one (`rerun`); the plan is laid on top.
    pub base_initramfs: Option<PathBuf>,
    /// `--console`/`-v`: the kernel console, line by line, on stderr while the VM runs.
    pub stream_console: bool,
    /// The guest's own per-scenario limit, when it should differ from the host's (the
    /// harness's self-tests use a long one to see the host's limit act alone).
    pub guest_scenario_timeout: Option<Duration>,
    /// Run the kernel tree's own selftests in the same boot (`kselftest::*` trials).
    pub kselftests: bool,
    /// Start no scenario after the first failed one (mutation runs: the first failure
    /// decides); the upstream programs still all run.
    pub stop_at_first_failure: bool,
    /// With `stop_at_first_failure`, only these scenarios' failures stop (empty: any).
    pub stop_on: Vec<String>,
    /// How many scenarios may run side by side in the guest (1: one at a time).
    pub jobs: u32,
    /// Fresh VMs one kernel's run may boot after a VM died mid-run (panic, unkillable hang,
    /// silence), each for the scenarios and programs not yet started.
    pub max_restarts: u32,
    /// `--retries`: how many more times a failed trial runs, each time in a fresh VM with the
    /// same kernel, until it passes (then it is [`Verdict::Flaky`]).
    pub retries: u32,
    /// `--flaky-fails`: a flaky trial fails the run (by default it is reported and passes).
    pub flaky_fails: bool,
    /// Other people's test programs, run after everything else (`guest::*` trials).
    pub guest_programs: Vec<GuestProgram>,
    /// The guests of the other architectures (`--arch`): a kernel built for one of them
    /// boots its guest instead of the x86-64 one above, and runs its programs only.
    pub arch_guests: Vec<ArchGuest>,
}

/// What a kernel of a foreign architecture boots: a small C init for that architecture
/// and its C guest programs (the Rust guest is built for x86-64 only), reporting on the same
/// result channel as the Rust runner does.
#[derive(Debug, Clone)]
pub struct ArchGuest {
    pub arch: Arch,
    /// Holds the init under the name the manifest gives it.
    pub bin_dir: PathBuf,
    pub manifest: PathBuf,
    pub programs: Vec<GuestProgram>,
}

/// What one kernel's boot carries: the x86-64 guest with its scenarios and programs, or a
/// foreign architecture's guest with only its programs.
pub struct GuestFor<'a> {
    pub bin_dir: &'a std::path::Path,
    pub manifest: &'a std::path::Path,
    pub scenarios: &'a [ScenarioInfo],
    pub programs: &'a [GuestProgram],
}

impl SuiteOptions {
    /// The guest a kernel of `arch` boots, with `scenarios` (the x86-64 runner's) for
    /// x86-64; a foreign architecture without a guest gets nothing to run (its boot then
    /// fails `vm::health` with a word on what is missing, never a silent pass).
    pub fn guest_for<'a>(&'a self, arch: Arch, scenarios: &'a [ScenarioInfo]) -> GuestFor<'a> {
        if arch.is_native() {
            return GuestFor {
                bin_dir: &self.guest_bin_dir,
                manifest: &self.manifest,
                scenarios,
                programs: &self.guest_programs,
            };
        }
        match self.arch_guests.iter().find(|g| g.arch == arch) {
            Some(g) => GuestFor {
                bin_dir: &g.bin_dir,
                manifest: &g.manifest,
                scenarios: &[],
                programs: &g.programs,
            },
            None => GuestFor {
                bin_dir: &self.guest_bin_dir,
                manifest: &self.manifest,
                scenarios: &[],
                programs: &[],
            },
        }
    }
}

impl SuiteOptions {
    /// Each guest test record's limit on the host (the guest's own, scaled, with a margin).
    pub fn guest_limits(&self, programs: &[GuestProgram]) -> Vec<(String, Duration)> {
        let k = self.accel.slowdown();
        let margin = Duration::from_secs(5) * k;
        programs
            .iter()
            .flat_map(|p| {
                p.record_names()
                    .into_iter()
                    .map(move |n| (n, p.timeout * k + margin))
            })
            .collect()
    }

    /// The guest runner's hang limit, scaled for the accelerator.
    pub fn guest_hang_limit(&self) -> Duration {
        self.hang_limit * self.accel.slowdown()
    }

    /// The guest's per-scenario limit, scaled for the accelerator.
    pub fn guest_scenario_limit(&self) -> Duration {
        self.guest_scenario_timeout
            .unwrap_or(self.scenario_timeout * self.accel.slowdown())
    }

    pub fn limits(&self, scenarios: usize, kselftests: &[&KselftestBinary]) -> Limits {
        let k = self.accel.slowdown();
        let scenario = self.guest_scenario_limit();
        let boot = self.boot_timeout * k;
        let margin = Duration::from_secs(5) * k;
        let programs: Vec<(String, Duration)> = kselftests
            .iter()
            .map(|b| {
                (
                    result_channel::kselftest_name(&b.name),
                    b.timeout * k + margin,
                )
            })
            .collect();
        let kselftest_longest = programs.iter().map(|(_, d)| *d).max().unwrap_or_default();
        let reruns = if self.jobs > 1 { 2 } else { 1 };
        let kselftest_total: Duration = programs.iter().map(|(_, d)| *d).sum();
        Limits {
            boot,
            // The guest gives up first; the host's limit only catches a guest that cannot.
            scenario: self.scenario_timeout * k + margin,
            programs,
            // Side by side, the scenarios a splat left unattributable run a second time.
            whole: boot
                + (scenario + Duration::from_secs(1)) * scenarios as u32 * reruns
                + kselftest_total
                + Duration::from_secs(10) * k,
            silence: scenario.max(kselftest_longest) + boot,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "verdict", content = "message", rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail(Failure),
    Ignored(String),
    /// The scenario failed where the kernel list says this kernel carries `bug`: reported,
    /// not counted as a failure of the run.
    KnownBug {
        bug: String,
        cause: String,
        /// What the scenario said.
        failure: String,
    },
    /// It failed, then passed when `--retries` ran it again in a fresh VM: reported, and not
    /// counted as a failure of the run unless `--flaky-fails` asks. A flake is a defect of
    /// the scenario (a wait that is not a poll) or of the kernel, to be found and fixed,
    /// which is why it is an outcome of its own and not a pass.
    Flaky {
        /// The attempts that failed, in order, before the one that passed.
        failed_attempts: Vec<FailedAttempt>,
        /// The attempt that passed (2 for the first retry).
        passed_on: u32,
    },
}

/// One failed attempt of a trial that later passed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FailedAttempt {
    /// 1 for the run's own first attempt, 2 for the first retry ...
    pub attempt: u32,
    pub failure: Failure,
    /// The console log of the VM that ran it (the run folder's, or `attempt-N/`'s).
    pub console_log: PathBuf,
}

impl Verdict {
    /// A failure for `cause`, saying `message`.
    pub fn fail(cause: FailCause, message: impl Into<String>) -> Verdict {
        Verdict::Fail(Failure {
            cause,
            message: message.into(),
        })
    }

    pub fn is_fail(&self) -> bool {
        matches!(self, Verdict::Fail(_))
    }

    /// Why it failed, for a [`Verdict::Fail`].
    pub fn fail_cause(&self) -> Option<&FailCause> {
        match self {
            Verdict::Fail(f) => Some(&f.cause),
            _ => None,
        }
    }

    pub fn is_flaky(&self) -> bool {
        matches!(self, Verdict::Flaky { .. })
    }

    /// `flaky: failed on attempt 1, passed on attempt 2`, for a [`Verdict::Flaky`].
    pub fn flaky_line(&self) -> Option<String> {
        match self {
            Verdict::Flaky {
                failed_attempts,
                passed_on,
            } => {
                let failed: Vec<String> = failed_attempts
                    .iter()
                    .map(|a| a.attempt.to_string())
                    .collect();
                Some(format!(
                    "flaky: failed on attempt {}, passed on attempt {passed_on}",
                    failed.join(", ")
                ))
            }
            _ => None,
        }
    }

    /// `known kernel bug: NAME (cause)`, for a [`Verdict::KnownBug`].
    pub fn known_bug_line(&self) -> Option<String> {
        match self {
            Verdict::KnownBug { bug, cause, .. } => {
                Some(format!("known kernel bug: {bug} ({cause})"))
            }
            _ => None,
        }
    }
}

/// A failed trial: why, for the code that decides on it, and what it says, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub cause: FailCause,
    /// The words shown to people (libtest's failure, JUnit, the matrix, results.json).
    pub message: String,
}

impl Failure {
    /// The same failure, its message followed by `more` (a note, a stream problem): what is
    /// added explains it, the cause stays.
    pub fn followed_by(self, more: &str) -> Failure {
        Failure {
            message: format!("{}{more}", self.message),
            ..self
        }
    }
}

impl Failure {
    /// The line of the message that tells most about the failure, for one-line views (the
    /// matrix cell, a retry's line): an upstream selftest's first line is its RUN banner and
    /// its assertion (`Expected ...`) says more; a Rust test's is `thread '…' panicked at
    /// file:line:` and its message follows; otherwise the first line.
    pub fn telling_line(&self) -> &str {
        let m = &self.message;
        let panic_message = m
            .lines()
            .skip_while(|l| !(l.starts_with("thread '") && l.contains("panicked at")))
            .nth(1);
        m.lines()
            .find(|l| l.contains("Expected"))
            .or(panic_message)
            .or_else(|| m.lines().next())
            .unwrap_or("")
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// `results.json` keeps a failure as its message alone, as it did before failures had a
/// cause: files written before and after read alike, and the readers (reports, the bench,
/// `rerun`) show words and decide nothing on the cause.
impl serde::Serialize for Failure {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.message)
    }
}

impl<'de> serde::Deserialize<'de> for Failure {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Failure, D::Error> {
        Ok(Failure {
            cause: FailCause::Unrecorded,
            message: String::deserialize(d)?,
        })
    }
}

/// Why a trial failed. Decisions (the not-run count, the self-tests' expectations) match on
/// this, never on the message's words, which are for people and may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailCause {
    /// The check itself failed: the scenario, the upstream program or the guest test said so
    /// (an assertion, an exit status, a crash, its own time limit in the guest).
    Guest,
    /// The kernel console showed trouble (a WARN, BUG, Oops ...) while it ran, whatever the
    /// check itself said. The kind is the first trouble's.
    KernelTrouble(TroubleKind),
    /// It started and the VM ended before it did: the kernel panicked, QEMU exited, or a
    /// host limit ran out (a hang). How the VM ended is here.
    NotFinished(VmEnd),
    /// It never started: the VM died before it, or the guest never started the runner.
    NotRun,
    /// The kernel has no user_events (no `user_events_data` in tracefs): nothing could run.
    NoUserEvents,
    /// A process of it stayed in uninterruptible sleep in the kernel past the hang limit,
    /// waiting on no other record: the guest runner killed it, left it behind and went on.
    /// The message carries its kernel stack.
    Hung,
    /// It was blocked behind record `behind`, which hung first and stayed stuck: its own
    /// process waited on a lock while `behind`'s was stuck, or it never started because
    /// user_events no longer answered. The message carries `behind`'s stack, the cause.
    Blocked { behind: String },
    /// An upstream test a filter named was never reported by its program.
    NotReported,
    /// It skipped itself, or was ignored for a reason the host does not accept (a feature
    /// the kernel list says the kernel has, or none named).
    UnexpectedSkip,
    /// It passed on a kernel the known-bug list says carries the bug it shows: the list is
    /// out of date.
    KnownBugPassed,
    /// The upstream selftest program does not build against this kernel's tree.
    BuildFailed,
    /// A program's TAP/KTAP output is incomplete (no plan, fewer results, a bail-out) though
    /// its process did not fail.
    IncompleteTap,
    /// The boot itself (the health trial): no hello, unreadable records, kernel trouble
    /// outside every scenario, or a VM that did not end as it should.
    Boot,
    /// Read back from `results.json`, which keeps the message alone.
    Unrecorded,
}

impl FailCause {
    /// Whether a failure for this cause may not happen again in a fresh VM with the same
    /// kernel and programs, so that `--retries` runs it again. Those decided by the kernel,
    /// its build or the boot alone would fail the same way (and the boot's own trial is not
    /// one a retry could run apart); one only read back from a file says too little.
    pub fn can_flake(&self) -> bool {
        match self {
            FailCause::Guest
            | FailCause::KernelTrouble(_)
            | FailCause::NotFinished(_)
            | FailCause::NotRun
            | FailCause::Hung
            | FailCause::Blocked { .. }
            | FailCause::UnexpectedSkip
            | FailCause::IncompleteTap => true,
            FailCause::NoUserEvents
            | FailCause::NotReported
            | FailCause::KnownBugPassed
            | FailCause::BuildFailed
            | FailCause::Boot
            | FailCause::Unrecorded => false,
        }
    }

    /// Whether the failure may be what an earlier trial of the same boot left behind rather
    /// than the trial's own finding: the VM or the runner ended or stalled around it (a panic,
    /// a held lock, a dead kworker), or the console showed trouble while it ran. Only a
    /// verdict the trial's own check or program gave (an assertion, an exit status, its TAP)
    /// is certainly its own. A comparison between two sets of trials booted together (the
    /// suite and the upstream selftests after it) must not credit one with the other's wreck.
    pub fn may_be_inherited(&self) -> bool {
        match self {
            FailCause::KernelTrouble(_)
            | FailCause::NotFinished(_)
            | FailCause::NotRun
            | FailCause::Hung
            | FailCause::Blocked { .. }
            | FailCause::Boot
            | FailCause::Unrecorded => true,
            FailCause::Guest
            | FailCause::NoUserEvents
            | FailCause::NotReported
            | FailCause::UnexpectedSkip
            | FailCause::KnownBugPassed
            | FailCause::BuildFailed
            | FailCause::IncompleteTap => false,
        }
    }
}

/// What a verdict is about: the project's own scenario, the kernel tree's upstream selftests,
/// or the boot itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Scenario,
    Upstream,
    Vm,
    /// Someone else's test program (`--guest-test`, `--guest-crate`).
    Guest,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ScenarioVerdict {
    pub name: String,
    pub origin: Origin,
    pub verdict: Verdict,
    pub duration_us: Option<u64>,
    pub snapshots: Vec<result_channel::Snapshot>,
    pub notes: Vec<String>,
}

impl ScenarioVerdict {
    pub fn new(name: impl Into<String>, origin: Origin, verdict: Verdict) -> Self {
        ScenarioVerdict {
            name: name.into(),
            origin,
            verdict,
            duration_us: None,
            snapshots: vec![],
            notes: vec![],
        }
    }
}

/// The host's own check of the boot itself, reported as a trial beside the scenarios.
pub const HEALTH: &str = "vm::health";

/// One kernel's boot of the suite: the form of `results.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct KernelRun {
    pub kernel: KernelUnderTest,
    pub accel: Accel,
    pub run_dir: PathBuf,
    pub limits: Limits,
    /// The first boot's report.
    pub report: VmReport,
    pub verdicts: Vec<ScenarioVerdict>,
    /// The fresh VMs booted after a VM died, in order (empty when the first one finished).
    #[serde(default)]
    pub restarts: Vec<Restart>,
    /// The attempts `--retries` made after this one, in order: each a fresh VM (and its own
    /// restarts) for the trials that had failed every attempt so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retries: Vec<Retry>,
}

/// A later attempt at a kernel's failed trials (`--retries`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Retry {
    /// 2 for the first retry: the run itself is attempt 1.
    pub attempt: u32,
    /// The trials it ran again.
    pub planned: Vec<String>,
    /// Its folder, `attempt-N/` in the run's: its console log, results.json and JUnit.
    pub run_dir: PathBuf,
    /// The attempt as its own folder's results.json has it; not repeated in the run's file,
    /// so it is absent from a run read back.
    #[serde(skip)]
    pub run: Option<Box<KernelRun>>,
}

/// A fresh VM booted because the previous one died with scenarios not yet started.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Restart {
    /// How the previous VM ended, and what it was running (`timed out: scenario X ...`).
    pub after: String,
    /// The scenarios and programs the previous VM never started: this VM's plan.
    pub planned: Vec<String>,
    /// From the previous VM's end to this one's runner hello: initramfs, QEMU start, boot.
    /// The cost of one dead VM beyond the limit that detected it.
    pub cost_ms: Option<u64>,
    pub report: VmReport,
}

impl KernelRun {
    /// A finished 6.12 run of `label` with these verdicts and nothing else, for the tests of
    /// what reads runs (reports, trials).
    #[cfg(test)]
    pub fn for_test(label: &str, verdicts: Vec<ScenarioVerdict>) -> KernelRun {
        let report: VmReport = serde_json::from_value(serde_json::json!({
            "kernel_release": "6.12.117", "user_events": true, "guest_hello_ms": 1, "guest_done_ms": 2,
            "records": [], "unfinished": null, "troubles": [], "garbage": [], "end": {"how": "finished"},
            "wall_ms": 3, "qemu_stderr": "", "console_log": "console.log"
        }))
        .unwrap();
        KernelRun {
            kernel: KernelUnderTest {
                label: label.into(),
                bzimage: "bzImage".into(),
                config: None,
                provenance: String::new(),
                identity: String::new(),
                kselftests: vec![],
                expected: Default::default(),
                arch: Arch::X86_64,
            },
            accel: crate::qemu::Accel::Tcg,
            run_dir: "run".into(),
            limits: crate::vm::Limits {
                boot: Default::default(),
                scenario: Default::default(),
                programs: vec![],
                whole: Default::default(),
                silence: Default::default(),
            },
            report,
            verdicts,
            restarts: vec![],
            retries: vec![],
        }
    }

    pub fn failed(&self) -> bool {
        self.verdicts.iter().any(|v| v.verdict.is_fail())
    }

    /// Some trial failed and then passed on a retry.
    pub fn flaky(&self) -> bool {
        self.verdicts.iter().any(|v| v.verdict.is_flaky())
    }

    /// Whether this run fails its command: a failed trial, or a flaky one when `--flaky-fails`.
    pub fn fails_the_run(&self, flaky_fails: bool) -> bool {
        self.failed() || (flaky_fails && self.flaky())
    }

    /// The console log of the boot that ran `name` (a restart's, when a fresh VM ran it).
    pub fn console_log_of(&self, name: &str) -> &std::path::Path {
        let base = name.split("::").take(2).collect::<Vec<_>>().join("::");
        self.restarts
            .iter()
            .rev()
            .find(|r| r.planned.iter().any(|p| *p == name || *p == base))
            .map_or(&self.report.console_log, |r| &r.report.console_log)
    }

    /// Σ of the scenarios' own durations as the guest measured them (the health trial's
    /// duration is the whole VM's wall time, not a scenario).
    pub fn scenario_secs(&self) -> f64 {
        self.verdicts
            .iter()
            .filter(|v| v.origin == Origin::Scenario)
            .filter_map(|v| v.duration_us)
            .sum::<u64>() as f64
            / 1e6
    }
}

#[cfg(test)]
mod results_json {
    use super::*;

    /// A failure is written as its message alone, whatever its cause: the shape of
    /// `{"verdict": "fail", "message": "..."}` is what readers of results.json know.
    #[test]
    fn a_failure_is_written_as_its_words() {
        let v = Verdict::fail(FailCause::NotRun, "not run: the kernel panicked");
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            serde_json::json!({"verdict": "fail", "message": "not run: the kernel panicked"})
        );
    }

    /// A flaky trial says so in results.json, with each failed attempt's words and console
    /// log, and reads back the same; a run without retries writes no `retries` field.
    #[test]
    fn a_flaky_trial_is_written_with_its_failed_attempts() {
        let v = Verdict::Flaky {
            failed_attempts: vec![FailedAttempt {
                attempt: 1,
                failure: Failure {
                    cause: FailCause::Guest,
                    message: "no event".into(),
                },
                console_log: "run/console.log".into(),
            }],
            passed_on: 2,
        };
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"verdict": "flaky", "message": {
                "failed_attempts": [{"attempt": 1, "failure": "no event", "console_log": "run/console.log"}],
                "passed_on": 2
            }})
        );
        let back: Verdict = serde_json::from_value(json).unwrap();
        assert!(back.is_flaky() && !back.is_fail());
        let run = KernelRun::for_test(
            "6.12",
            vec![ScenarioVerdict::new("a::b", Origin::Scenario, v)],
        );
        assert!(run.flaky() && !run.failed());
        assert!(!run.fails_the_run(false) && run.fails_the_run(true));
        let written = serde_json::to_value(&run).unwrap();
        assert!(written.get("retries").is_none(), "{written}");
    }

    /// `results.json` as the serialiser wrote it before the end record became a named struct
    /// and failures carried a cause: runs kept on disk (`rerun`, `report`, the bench) are read
    /// back, so they must still read, and what is written must keep the same shape.
    const BEFORE: &str = include_str!("../test_data/results_before_named_end.json");

    #[test]
    fn an_old_results_json_reads_and_writes_back_the_same() {
        let run: KernelRun = serde_json::from_str(BEFORE).expect("the old form reads");
        let ended: Vec<&str> = run
            .report
            .records
            .iter()
            .filter_map(|r| match r {
                result_channel::Record::End(end) => Some(end.name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            ended,
            [
                "basic::present",
                "abi::multi_format",
                "trace::format_array_fields",
                "kselftest::abi_test"
            ]
        );
        assert_eq!(run.verdicts.len(), 7);
        assert!(run.failed());
        // The file keeps a failure's words alone: read back, its cause is unrecorded.
        assert_eq!(
            run.verdicts[1].verdict.fail_cause(),
            Some(&FailCause::Unrecorded)
        );
        let again = serde_json::to_value(&run).unwrap();
        let before: serde_json::Value = serde_json::from_str(BEFORE).unwrap();
        assert_eq!(again, before, "the same JSON shape, field for field");
    }
}
