//! One kernel's boot of the suite: plan → initramfs → QEMU → verdicts. Writing what came of
//! it (results.json, JUnit) is [`crate::artifacts`]'s job; this module only runs.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use result_channel::{GuestTestPlan, KselftestPlan, Plan, Record};

use crate::arch::Arch;
use crate::image::{self, ExtraFile, Manifest};
use crate::model::{
    GuestProgram, GuestTestStyle, KernelRun, KernelUnderTest, KselftestBinary, Origin, Restart,
    Retry, ScenarioInfo, ScenarioVerdict, SuiteOptions, Verdict, HEALTH,
};
use crate::qemu::QemuConfig;
use crate::retry;
use crate::verdict;
use crate::vm;

/// What one boot runs: scenarios in order, then the upstream programs that built.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub scenarios: Vec<ScenarioInfo>,
    /// Upstream selftest programs by name (`abi_test`, ...).
    pub kselftests: Vec<String>,
    /// Other people's test programs, a libtest program's tests narrowed to those selected.
    pub guest: Vec<GuestProgram>,
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.scenarios.is_empty() && self.kselftests.is_empty() && self.guest.is_empty()
    }
}

/// Where a guest test program lands in the initramfs.
fn guest_path(p: &GuestProgram) -> String {
    format!("bin/guest/{}", p.name)
}

/// The plan the guest reads, and the programs the initramfs must carry for it.
pub fn plan<'k>(
    kernel: &'k KernelUnderTest,
    opts: &SuiteOptions,
    sel: &Selection,
) -> (Plan, Vec<&'k KselftestBinary>) {
    let k = opts.accel.slowdown();
    let programs: Vec<&KselftestBinary> = kernel
        .kselftests
        .iter()
        .filter(|b| b.path().is_some() && sel.kselftests.contains(&b.name))
        .collect();
    let plan = Plan {
        scenarios: sel.scenarios.iter().map(|s| s.name.clone()).collect(),
        scenario_timeout_ms: opts.guest_scenario_limit().as_millis() as u64,
        poll_deadline_ms: (opts.poll_deadline * k).as_millis() as u64,
        kselftests: programs
            .iter()
            .map(|b| KselftestPlan {
                name: b.name.clone(),
                path: format!("/bin/kselftest/{}", b.name),
                timeout_ms: (b.timeout * k).as_millis() as u64,
            })
            .collect(),
        stop_at_first_failure: opts.stop_at_first_failure,
        stop_on: opts.stop_on.clone(),
        jobs: opts.jobs.max(1),
        guest_tests: sel
            .guest
            .iter()
            .map(|g| GuestTestPlan {
                program: g.name.clone(),
                path: format!("/{}", guest_path(g)),
                args: g.args.clone(),
                env: g.env.clone(),
                timeout_ms: (g.timeout * k).as_millis() as u64,
                style: g.style.clone(),
            })
            .collect(),
        hang_limit_ms: opts.guest_hang_limit().as_millis() as u64,
        defer: vec![],
    };
    (plan, programs)
}

/// Runs what `sel` names on `kernel`, in a new folder under `opts.runs_dir`. When a VM dies
/// mid-run (panic, unkillable hang, silence), the scenario it was running keeps its
/// "not finished" verdict and a fresh VM runs the ones it never started, up to
/// `opts.max_restarts` times; their verdicts are real ones, not "not run". Then, with
/// `opts.retries`, the trials that failed run again (see [`retry_failed`]).
pub fn run_kernel(
    kernel: &KernelUnderTest,
    opts: &SuiteOptions,
    sel: &Selection,
) -> anyhow::Result<KernelRun> {
    // A foreign architecture's CPU is emulated whatever the host has: TCG, and TCG's limits.
    let tcg;
    let opts = if !kernel.arch.is_native() && opts.accel != crate::qemu::Accel::Tcg {
        tcg = SuiteOptions {
            accel: crate::qemu::Accel::Tcg,
            ..opts.clone()
        };
        &tcg
    } else {
        opts
    };
    let run_dir = new_run_dir(&opts.runs_dir, &kernel.label)?;
    let (mut run, first_qemu, first_initrd) = attempt(kernel, opts, sel, 1, &run_dir)?;
    retry_failed(kernel, opts, sel, &mut run)?;
    if opts.keep || run.failed() || run.flaky() {
        keep(&run, &first_qemu, opts, sel)?;
    } else {
        // The image is rebuilt every run and is the largest artifact: keep logs, not the
        // image, and offer no command line that could not work without it.
        let _ = std::fs::remove_file(&first_initrd);
    }
    Ok(run)
}

/// One attempt at what `sel` names, in `dir`: a first VM, and the fresh VMs after it that a
/// dead one or a hang needed. Returns the attempt as a run, with the first VM's QEMU and
/// image (which the caller keeps or removes).
fn attempt(
    kernel: &KernelUnderTest,
    opts: &SuiteOptions,
    sel: &Selection,
    number: u32,
    dir: &Path,
) -> anyhow::Result<(KernelRun, QemuConfig, PathBuf)> {
    let first = boot(kernel, opts, sel, &[], number, dir)?;
    let (first_qemu, first_initrd) = (first.qemu, first.initrd);
    let mut run = KernelRun {
        kernel: kernel.clone(),
        accel: opts.accel,
        run_dir: dir.to_owned(),
        limits: first.limits,
        report: first.report,
        verdicts: first.verdicts,
        restarts: vec![],
        retries: vec![],
    };
    let mut sel = sel.clone();
    // Fresh VMs for what a hang blocked, each said why. Each starts last what resembles every
    // record that broke a VM so far. One: a second was tried on the fault-worker oops kernel
    // and gave no more verdicts (the next scenario to drive the worker broke it again), and on
    // a kernel whose DEL hangs it only hangs the next DEL.
    let mut blocked_reruns = 0;
    let mut deferred: Vec<String> = vec![];
    loop {
        let last = run.restarts.last().map_or(&run.report, |r| &r.report);
        // A dead VM's unstarted records, or else (up to MAX_BLOCKED_RERUNS) those a hang in the kernel
        // blocked: a fresh VM without the culprit gives them verdicts of their own.
        let (rest, after, defer) = match not_started(last, &sel) {
            Some(rest) => (rest, how_it_ended(last), vec![]),
            None => match blocked_behind_a_hang(last, &sel) {
                Some((rest, culprit)) if blocked_reruns < MAX_BLOCKED_RERUNS => {
                    blocked_reruns += 1;
                    deferred.extend(like_what_broke(last, &sel, &rest));
                    let defer: Vec<String> = rest
                        .scenarios
                        .iter()
                        .filter(|s| deferred.contains(&s.name))
                        .map(|s| s.name.clone())
                        .collect();
                    let after = format!(
                        "found user_events blocked behind {culprit}, which hung in the kernel \
                         (a fresh VM without it for the records blocked behind it{})",
                        if defer.is_empty() {
                            String::new()
                        } else {
                            format!("; {} like the records that broke it run last", defer.len())
                        }
                    );
                    (rest, after, defer)
                }
                _ => break,
            },
        };
        if opts.stop_at_first_failure
            || run.restarts.len() as u32 >= opts.max_restarts
            || crate::interrupt::is_set()
        {
            break;
        }
        let dead_at = Instant::now();
        let boot_dir = dir.join(format!("boot-{}", run.restarts.len() + 2));
        std::fs::create_dir_all(&boot_dir)
            .with_context(|| format!("create {}", boot_dir.display()))?;
        let next = boot(
            kernel,
            &restart_options(opts, last),
            &rest,
            &defer,
            number,
            &boot_dir,
        )?;
        // A rerun boots the first image again; the fresh VMs' images are not kept.
        let _ = std::fs::remove_file(&next.initrd);
        let hello_ms = next.report.hello_wall_ms;
        let planned = planned_names(&rest);
        // The stand-ins "not run: ..." of the dead VM give way to what the fresh one found.
        run.verdicts.retain(|v| !is_planned_in(&v.name, &planned));
        let from = format!(
            "boot {} (a fresh VM after a dead one)",
            run.restarts.len() + 2
        );
        merge_health(&mut run.verdicts, next.verdicts, &from);
        run.restarts.push(Restart {
            after,
            planned,
            // Everything since the death, less what the fresh VM spent after its hello.
            cost_ms: hello_ms.map(|h| {
                (dead_at.elapsed().as_millis() as u64).saturating_sub(next.report.wall_ms) + h
            }),
            report: next.report,
        });
        sel = rest;
    }
    if let Some(h) = run.verdicts.iter_mut().find(|v| v.name == HEALTH) {
        if let (Verdict::Fail(m), false) = (&mut h.verdict, run.restarts.is_empty()) {
            m.message.push_str(&format!(
                "\n{} fresh VM(s) ran what the dead one never started (console logs in boot-N/)",
                run.restarts.len()
            ));
        }
    }
    Ok((run, first_qemu, first_initrd))
}

/// `--retries`: the trials that failed for a cause that can come and go (see
/// [`retry::may_retry`]) run again, each attempt in a fresh VM with the same kernel in
/// `attempt-N/` (dead VMs restarted within it as in the first), until they pass or the
/// retries run out; each trial's attempts then come to one verdict ([`retry::outcome`]).
/// A kernel that never booted is not retried: it would fail the same way again.
fn retry_failed(
    kernel: &KernelUnderTest,
    opts: &SuiteOptions,
    sel: &Selection,
    run: &mut KernelRun,
) -> anyhow::Result<()> {
    if opts.retries == 0 || opts.stop_at_first_failure || run.report.kernel_release.is_none() {
        return Ok(());
    }
    // Each retried trial's place in the run's verdicts, and its attempts so far.
    let mut tries: Vec<(usize, Vec<retry::Attempt>)> = run
        .verdicts
        .iter()
        .enumerate()
        .filter(|(_, v)| retry::may_retry(v, &kernel.expected))
        .map(|(i, v)| {
            let first = retry::Attempt {
                number: 1,
                verdict: v.clone(),
                console_log: run.console_log_of(&v.name).to_owned(),
            };
            (i, vec![first])
        })
        .collect();
    for number in 2..=opts.retries.saturating_add(1) {
        let failing: Vec<String> = tries
            .iter()
            .filter(|t| retry::still_failing(&t.1))
            .map(|t| run.verdicts[t.0].name.clone())
            .collect();
        let again = only(sel, &failing);
        if again.is_empty() || crate::interrupt::is_set() {
            break;
        }
        let dir = run.run_dir.join(format!("attempt-{number}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let (next, _, initrd) = attempt(kernel, opts, &again, number, &dir)?;
        // As a restart's: `rerun` boots the first attempt's image again.
        let _ = std::fs::remove_file(&initrd);
        for (i, attempts) in tries.iter_mut().filter(|t| retry::still_failing(&t.1)) {
            let name = &run.verdicts[*i].name;
            let verdict = next
                .verdicts
                .iter()
                .find(|v| v.name == *name)
                .cloned()
                .unwrap_or_else(|| {
                    ScenarioVerdict::new(
                        name.clone(),
                        run.verdicts[*i].origin,
                        Verdict::fail(
                            crate::model::FailCause::NotReported,
                            format!("attempt {number} reported nothing of it"),
                        ),
                    )
                });
            attempts.push(retry::Attempt {
                number,
                verdict,
                console_log: next.console_log_of(name).to_owned(),
            });
        }
        // A retry's VM is judged as every VM is: trouble outside its trials, or a boot that
        // went wrong, joins the run's one health trial.
        let health: Vec<ScenarioVerdict> = next
            .verdicts
            .iter()
            .filter(|v| v.name == HEALTH)
            .cloned()
            .collect();
        merge_health(
            &mut run.verdicts,
            health,
            &format!("attempt {number} (a retry's fresh VM)"),
        );
        run.retries.push(Retry {
            attempt: number,
            planned: failing,
            run_dir: dir,
            run: Some(Box::new(next)),
        });
    }
    for (i, attempts) in tries {
        if let Some(v) = retry::outcome(attempts) {
            run.verdicts[i] = v;
        }
    }
    Ok(())
}

/// What `cargo xtask rerun` reads from a kept run folder.
pub const RERUN_FILE: &str = "rerun.json";

/// A kept run: enough to boot exactly the same VM again.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Kept {
    /// The kernel, its `bzimage` the copy in the run folder.
    pub kernel: KernelUnderTest,
    /// Every scenario the run planned (a rerun's filter picks among them).
    pub scenarios: Vec<ScenarioInfo>,
    pub kselftests: Vec<String>,
    /// Other people's test programs the run planned (already in the kept image).
    #[serde(default)]
    pub guest: Vec<crate::model::GuestProgram>,
    pub accel: crate::qemu::Accel,
    pub scenario_timeout_ms: u64,
    pub poll_deadline_ms: u64,
    pub boot_timeout_ms: u64,
    /// At KVM speed; absent from runs kept before the runner watched for hangs.
    #[serde(default = "default_hang_limit_ms")]
    pub hang_limit_ms: u64,
    pub memory_mib: u32,
    pub cpus: u32,
    pub extra_cmdline: String,
    pub qemu_args: Vec<String>,
}

fn default_hang_limit_ms() -> u64 {
    DEFAULT_HANG_LIMIT.as_millis() as u64
}

/// The guest runner's hang limit at KVM speed (`--hang-limit-ms`): a process in
/// uninterruptible sleep this long is stuck. A healthy kernel sleeps that way for
/// milliseconds (an RCU grace period on exit, a page fault); ×4 under TCG it is 3 s, short
/// beside the scenario limit that a hang used to cost.
pub const DEFAULT_HANG_LIMIT: std::time::Duration = std::time::Duration::from_millis(750);

/// Keeps the kernel (copied: a tree's build is rebuilt in place by the next run), the
/// initramfs and a command line that works when pasted.
fn keep(
    run: &KernelRun,
    qemu: &QemuConfig,
    opts: &SuiteOptions,
    sel: &Selection,
) -> anyhow::Result<()> {
    let dir = &run.run_dir;
    let bzimage = dir.join("bzImage");
    if run.kernel.bzimage != bzimage {
        std::fs::copy(&run.kernel.bzimage, &bzimage).with_context(|| {
            format!("keep {} in {}", run.kernel.bzimage.display(), dir.display())
        })?;
    }
    let mut kernel = run.kernel.clone();
    kernel.bzimage = bzimage.clone();
    let mut pasted = qemu.clone();
    pasted.kernel = bzimage;
    pasted.gdb = None;
    std::fs::write(
        dir.join("qemu-cmdline.txt"),
        format!(
            "# Boots this run's VM again; the guest's result records go to {}.\n# `cargo xtask rerun {}` does the same and reports the trials.\n{}\n",
            dir.join("results-pasted.bin").display(),
            dir.display(),
            pasted.pasteable_line(&dir.join("results-pasted.bin"))
        ),
    )?;
    let kept = Kept {
        kernel,
        scenarios: sel.scenarios.clone(),
        kselftests: sel.kselftests.clone(),
        guest: sel.guest.clone(),
        accel: opts.accel,
        scenario_timeout_ms: opts.scenario_timeout.as_millis() as u64,
        poll_deadline_ms: opts.poll_deadline.as_millis() as u64,
        boot_timeout_ms: opts.boot_timeout.as_millis() as u64,
        hang_limit_ms: opts.hang_limit.as_millis() as u64,
        memory_mib: opts.memory_mib,
        cpus: opts.cpus,
        extra_cmdline: opts.extra_cmdline.clone(),
        qemu_args: opts.qemu_args.clone(),
    };
    std::fs::write(dir.join(RERUN_FILE), serde_json::to_vec_pretty(&kept)?)
        .with_context(|| format!("write {}", dir.join(RERUN_FILE).display()))?;
    Ok(())
}

/// The gdb command for a kernel QEMU holds at its first instruction (`--gdb`).
pub fn gdb_hint(kernel: &KernelUnderTest, port: u16) -> String {
    let vmlinux = kernel
        .bzimage
        .ancestors()
        .nth(4)
        .map(|d| d.join("vmlinux"))
        .filter(|v| v.is_file());
    match vmlinux {
        Some(v) => format!(
            "QEMU waits for a debugger on localhost:{port}; attach with:\n  gdb {} -ex 'target remote :{port}'\n(then `continue`; the VM boots when gdb lets it)",
            v.display()
        ),
        None => format!("QEMU waits for a debugger on localhost:{port} (no vmlinux beside the bzImage: build with --gdb for one with debug info)"),
    }
}

/// One VM's outcome: its report, limits and verdicts, and how it was booted (the image is
/// left for the caller: kept or removed).
struct Boot {
    report: vm::VmReport,
    limits: vm::Limits,
    verdicts: Vec<ScenarioVerdict>,
    qemu: QemuConfig,
    initrd: PathBuf,
}

/// Boots `kernel` once with what `sel` names, for attempt `attempt` (1, or a retry's);
/// artifacts go to `dir`.
fn boot(
    kernel: &KernelUnderTest,
    opts: &SuiteOptions,
    sel: &Selection,
    defer: &[String],
    attempt: u32,
    dir: &Path,
) -> anyhow::Result<Boot> {
    let (mut plan, programs) = plan(kernel, opts, sel);
    plan.defer = defer.to_vec();
    // Which attempt this is, for guest test programs; the harness's word is the one they see.
    for g in &mut plan.guest_tests {
        g.env.retain(|(k, _)| k != retry::ATTEMPT_ENV);
        g.env
            .push((retry::ATTEMPT_ENV.to_owned(), attempt.to_string()));
    }
    let extra: Vec<ExtraFile> = programs
        .iter()
        .filter_map(|b| {
            Some(ExtraFile {
                path: format!("bin/kselftest/{}", b.name),
                source: b.path()?.clone(),
            })
        })
        .chain(sel.guest.iter().map(|g| ExtraFile {
            path: guest_path(g),
            source: g.path.clone(),
        }))
        .collect();
    let initrd = dir.join("initramfs.cpio");
    let image = match &opts.base_initramfs {
        // A kept run's image, the new plan appended: the kernel unpacks concatenated cpio
        // archives in order, so the later plan file wins.
        Some(base) => {
            let mut bytes =
                std::fs::read(base).with_context(|| format!("read {}", base.display()))?;
            bytes.extend(image::plan_only(&plan)?);
            bytes
        }
        None => {
            let guest = opts.guest_for(kernel.arch, &[]);
            image::build(
                &Manifest::load(guest.manifest)?,
                guest.bin_dir,
                &plan,
                &extra,
            )?
        }
    };
    std::fs::write(&initrd, image).with_context(|| format!("write {}", initrd.display()))?;
    let qemu = qemu_config(opts, kernel.arch, &kernel.bzimage, initrd.clone(), dir);
    let mut limits = opts.limits(sel.scenarios.len(), &programs);
    if !kernel.arch.is_native() {
        // The limits come from x86-64 guests; a foreign guest gets a margin on the boot.
        let more = limits.boot * (FOREIGN_BOOT_FACTOR - 1);
        limits.boot += more;
        limits.silence += more;
        limits.whole += more;
    }
    limits.add_programs(opts.guest_limits(&sel.guest));
    if let Some(port) = opts.gdb {
        eprintln!("{}", gdb_hint(kernel, port));
    }
    let mut report = match vm::run_streaming(&qemu, dir, &limits, opts.stream_console) {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&initrd);
            return Err(e);
        }
    };
    crate::console::to_the_fault_queuer(&mut report.troubles, &sel.scenarios);

    let known = |p: &String| kernel.kselftests.iter().any(|b| &b.name == p);
    // Programs that did not build were not planned: their verdict comes from the build.
    let planned_programs: Vec<String> = programs
        .iter()
        .map(|b| result_channel::kselftest_name(&b.name))
        .collect();
    let mut verdicts = verdict::verdicts_with_guest(
        &report,
        &sel.scenarios,
        &planned_programs,
        &sel.guest,
        &kernel.expected,
    );
    verdict::expand_kselftests(
        &mut verdicts,
        &report,
        &kernel.kselftests,
        &sel.kselftests,
        &kernel.expected,
    );
    for p in sel.kselftests.iter().filter(|p| !known(p)) {
        verdicts.push(ScenarioVerdict::new(
            result_channel::kselftest_name(p),
            Origin::Upstream,
            Verdict::Ignored(
                "no kernel tree to build the upstream selftests from (a ready --kernel-image)"
                    .into(),
            ),
        ));
    }
    Ok(Boot {
        report,
        limits,
        verdicts,
        qemu,
        initrd,
    })
}

/// How much longer than an x86-64 TCG guest a foreign architecture's may take to boot. Here
/// they boot faster (docs/performance.md, row 13), but how well TCG translates another
/// instruction set depends on the host's QEMU and CPU, and a boot limit that fires on a
/// healthy kernel would be a false failure.
pub const FOREIGN_BOOT_FACTOR: u32 = 3;

/// How many fresh VMs may run what a hang in the kernel blocked (within `--max-restarts`).
pub const MAX_BLOCKED_RERUNS: u32 = 1;

/// How a fresh VM runs after `dead`: one scenario at a time when several were in flight at
/// the death, so that a culprit among them dies alone and is named; as before otherwise.
pub fn restart_options(opts: &SuiteOptions, dead: &vm::VmReport) -> SuiteOptions {
    let mut o = opts.clone();
    if dead.running.len() > 1 {
        o.jobs = 1;
    }
    o
}

/// What a VM that died left unstarted, when a fresh VM can run it: the runner had started
/// (a kernel that cannot boot fails the same way again) and the VM did not finish. None when
/// there is nothing to restart for.
pub fn not_started(report: &vm::VmReport, sel: &Selection) -> Option<Selection> {
    if report.end == vm::VmEnd::Finished || report.kernel_release.is_none() {
        return None;
    }
    // Several scenarios in flight when the VM died (side by side): any of them may be the
    // culprit, so none is blamed yet. They run again, one at a time (see [`restart_options`]),
    // where the culprit kills its VM alone and the others get real verdicts. One in flight
    // is the culprit and keeps its "not finished".
    let suspects: HashSet<&str> = if report.running.len() > 1 {
        report.running.iter().map(String::as_str).collect()
    } else {
        HashSet::new()
    };
    let started: HashSet<&str> = report
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Start { name } => Some(name.as_str()),
            _ => None,
        })
        .chain(report.unfinished.as_deref())
        .filter(|n| !suspects.contains(n))
        .collect();
    let rest = Selection {
        scenarios: sel
            .scenarios
            .iter()
            .filter(|s| !started.contains(s.name.as_str()))
            .cloned()
            .collect(),
        kselftests: sel
            .kselftests
            .iter()
            .filter(|p| !started.contains(result_channel::kselftest_name(p).as_str()))
            .cloned()
            .collect(),
        guest: sel
            .guest
            .iter()
            .filter_map(|g| not_started_part(g, &started))
            .collect(),
    };
    (!rest.is_empty()).then_some(rest)
}

/// The records a VM reported blocked behind a record that hung in the kernel (waiting on a
/// lock it held, or never started once user_events stopped answering), when there are any,
/// with the culprit: run in a fresh VM without the culprit, they get verdicts of their own.
pub fn blocked_behind_a_hang(
    report: &vm::VmReport,
    sel: &Selection,
) -> Option<(Selection, String)> {
    let mut culprit = None;
    let blocked: HashSet<&str> = report
        .records
        .iter()
        .filter_map(|r| match r {
            Record::End(e) => {
                let behind = e
                    .blocked
                    .as_ref()
                    .map(|b| &b.culprit)
                    .or_else(|| e.hang.as_ref()?.blocked_behind.as_ref())?;
                culprit.get_or_insert_with(|| behind.clone());
                Some(e.name.as_str())
            }
            _ => None,
        })
        .collect();
    let culprit = culprit?;
    let blocked: Vec<String> = blocked.into_iter().map(str::to_owned).collect();
    let rest = only(sel, &blocked);
    (!rest.is_empty()).then_some((rest, culprit))
}

/// The part of `sel` that runs the records `names` (scenarios, upstream programs or their
/// tests, guest programs or their tests): a program runs whole for any of its tests, a
/// libtest program only the tests named.
pub fn only(sel: &Selection, names: &[String]) -> Selection {
    let named = |record: &str| names.iter().any(|n| is_record_or_its_test(n, record));
    Selection {
        scenarios: sel
            .scenarios
            .iter()
            .filter(|s| named(&s.name))
            .cloned()
            .collect(),
        kselftests: sel
            .kselftests
            .iter()
            .filter(|p| named(&result_channel::kselftest_name(p)))
            .cloned()
            .collect(),
        guest: sel
            .guest
            .iter()
            .filter_map(|g| {
                // What is not named counts as started: only the named part is left.
                let records = g.record_names();
                let not_named: HashSet<&str> = records
                    .iter()
                    .map(String::as_str)
                    .filter(|n| !named(n))
                    .collect();
                not_started_part(g, &not_named)
            })
            .collect(),
    }
}

/// Of the scenarios `rest` runs again after a hang, those like the records that broke the
/// VM (`sel` planned it): the records that hung themselves (not blocked behind another) and
/// those the kernel's trouble (an oops, a BUG) came during. "Like" is the same family, or,
/// when a breaker drives the fault worker, any scenario that does (an oops in the worker
/// kills it for good, and every later event enable then waits forever on an SRCU grace
/// period under event_mutex). The fresh VM starts these last.
pub fn like_what_broke(report: &vm::VmReport, sel: &Selection, rest: &Selection) -> Vec<String> {
    let breakers: HashSet<&str> = report
        .records
        .iter()
        .filter_map(|r| match r {
            Record::End(e) if e.hang.as_ref().is_some_and(|h| h.blocked_behind.is_none()) => {
                Some(e.name.as_str())
            }
            Record::End(e) => e.blocked.as_ref().map(|b| b.culprit.as_str()),
            _ => None,
        })
        .chain(report.troubles.iter().filter_map(|t| t.during.as_deref()))
        .collect();
    let families: HashSet<&str> = sel
        .scenarios
        .iter()
        .filter(|s| breakers.contains(s.name.as_str()))
        .map(|s| s.family.as_str())
        .collect();
    let fault_worker = sel
        .scenarios
        .iter()
        .any(|s| breakers.contains(s.name.as_str()) && s.fault_worker);
    rest.scenarios
        .iter()
        .filter(|s| families.contains(s.family.as_str()) || (fault_worker && s.fault_worker))
        .map(|s| s.name.clone())
        .collect()
}

/// The part of a guest program the dead VM never started: a libtest program's unstarted
/// tests, or the whole program if it never started.
fn not_started_part(g: &GuestProgram, started: &HashSet<&str>) -> Option<GuestProgram> {
    match &g.style {
        GuestTestStyle::Program => {
            let name = result_channel::guest_test_name(&g.name, None);
            (!started.contains(name.as_str())).then(|| g.clone())
        }
        GuestTestStyle::Libtest { tests, .. } => {
            let left: Vec<String> = tests
                .iter()
                .filter(|t| {
                    !started.contains(result_channel::guest_test_name(&g.name, Some(t)).as_str())
                })
                .cloned()
                .collect();
            if left.is_empty() {
                return None;
            }
            let mut part = g.clone();
            if let GuestTestStyle::Libtest { tests, .. } = &mut part.style {
                *tests = left;
            }
            Some(part)
        }
    }
}

/// The record names a selection plans: scenarios, and upstream programs by record name.
fn planned_names(sel: &Selection) -> Vec<String> {
    sel.scenarios
        .iter()
        .map(|s| s.name.clone())
        .chain(
            sel.kselftests
                .iter()
                .map(|p| result_channel::kselftest_name(p)),
        )
        .chain(sel.guest.iter().flat_map(GuestProgram::record_names))
        .collect()
}

/// `name` is one of `planned` or an upstream test of a planned program.
fn is_planned_in(name: &str, planned: &[String]) -> bool {
    planned.iter().any(|p| is_record_or_its_test(name, p))
}

/// `name` is the planned record `record` (a scenario, a program), or a test of that program
/// (`kselftest::dyn_test::user.matching` of `kselftest::dyn_test`).
fn is_record_or_its_test(name: &str, record: &str) -> bool {
    name == record
        || name
            .strip_prefix(record)
            .is_some_and(|test| test.starts_with("::"))
}

/// The fresh VM's verdicts join the run's; its health joins the first boot's, one trial that
/// names the boot each problem came from (`from`: which VM it was, and why it was booted).
fn merge_health(verdicts: &mut Vec<ScenarioVerdict>, next: Vec<ScenarioVerdict>, from: &str) {
    for v in next {
        if v.name != HEALTH {
            verdicts.push(v);
            continue;
        }
        let Some(h) = verdicts.iter_mut().find(|h| h.name == HEALTH) else {
            verdicts.push(v);
            continue;
        };
        if let Verdict::Fail(fresh) = v.verdict {
            let m = format!("{from}: {}", fresh.message);
            h.verdict = match &h.verdict {
                Verdict::Fail(first) => Verdict::Fail(first.clone().followed_by(&format!("\n{m}"))),
                _ => Verdict::fail(fresh.cause, m),
            };
        }
    }
}

/// A VM's end in words, for the restart's record and the user. Only a VM that did not
/// finish is restarted after, so its end is never [`vm::VmEnd::Finished`].
fn how_it_ended(report: &vm::VmReport) -> String {
    let how = report.end.to_string();
    match &report.unfinished {
        Some(u) => format!("{how} (running {u})"),
        None => how,
    }
}

/// A new run's folder, `YYYYMMDD-HHMMSS-<label>` (UTC): sorted by name, runs are in time
/// order, and a person reads when each ran. Two runs of one kernel in the same second (the
/// matrix, parallel CI jobs on one runner) get `-2`, `-3`...: the folder is created, not
/// merely looked for, so that the race between them has one winner per name.
fn new_run_dir(runs_dir: &Path, label: &str) -> anyhow::Result<PathBuf> {
    let safe = safe_label(label);
    std::fs::create_dir_all(runs_dir).with_context(|| format!("create {}", runs_dir.display()))?;
    let base = format!("{}-{safe}", utc_stamp(std::time::SystemTime::now()));
    let mut dir = runs_dir.join(&base);
    for n in 2.. {
        match std::fs::create_dir(&dir) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => {
                dir = runs_dir.join(format!("{base}-{n}"));
            }
            Err(e) => return Err(e).with_context(|| format!("create {}", dir.display())),
        }
    }
    // `latest-<label>` always points at the newest run of this kernel, for people and CI uploads.
    let latest = runs_dir.join(format!("latest-{safe}"));
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(dir.file_name().unwrap_or_default(), &latest);
    Ok(dir)
}

/// `YYYYMMDD-HHMMSS` in UTC, for run folders' names.
pub fn utc_stamp(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm, proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A label as it may appear in a file name.
pub fn safe_label(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Unix socket paths are limited to 108 bytes; fall back to /tmp for deep checkouts (a
/// number per boot, since the matrix boots several kernels at once from one process).
/// QEMU as `opts` asks for it, booting `bzimage` with `initrd`; its result socket is under
/// `run_dir` (or in the temporary folder when that path is too long for a socket).
pub fn qemu_config(
    opts: &SuiteOptions,
    arch: Arch,
    bzimage: &Path,
    initrd: PathBuf,
    run_dir: &Path,
) -> QemuConfig {
    QemuConfig {
        binary: if arch.is_native() {
            opts.qemu_binary.clone()
        } else {
            arch.qemu_binary().into()
        },
        arch,
        kernel: bzimage.to_owned(),
        initrd,
        accel: opts.accel,
        memory_mib: opts.memory_mib,
        cpus: opts.cpus,
        extra_cmdline: opts.extra_cmdline.clone(),
        result_socket: socket_path(run_dir),
        extra_args: opts.qemu_args.clone(),
        gdb: opts.gdb,
        guest_tsc_khz: crate::qemu::guest_tsc_khz(opts.accel, arch),
    }
}

pub fn socket_path(run_dir: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let p = run_dir.join("results.sock");
    if p.as_os_str().len() < 100 {
        p
    } else {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::env::temp_dir().join(format!("ue-results-{}-{n}.sock", std::process::id()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_folders_are_named_by_utc_time_and_never_shared() {
        let at = |secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        assert_eq!(utc_stamp(at(0)), "19700101-000000");
        assert_eq!(utc_stamp(at(1_795_913_901)), "20261129-005821");
        assert_eq!(utc_stamp(at(951_782_400)), "20000229-000000");
        let d = std::env::temp_dir().join(format!("ue-run-dirs-{}", std::process::id()));
        let a = new_run_dir(&d, "6.12+fixes").unwrap();
        let b = new_run_dir(&d, "6.12+fixes").unwrap();
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            name.ends_with("-6.12_fixes") && name.len() == "YYYYMMDD-HHMMSS-6.12_fixes".len(),
            "{name}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
    use crate::model::{FailCause, Failure};

    fn info(name: &str) -> ScenarioInfo {
        crate::test_support::scenario(name)
    }

    fn report(end: vm::VmEnd, started: &[&str], unfinished: Option<&str>) -> vm::VmReport {
        let mut records = vec![Record::Hello {
            kernel_release: "6.12.117".into(),
            uptime_ms: 1,
            user_events: true,
            planned: 3,
        }];
        records.extend(started.iter().map(|n| Record::Start {
            name: n.to_string(),
        }));
        vm::VmReport {
            kernel_release: Some("6.12.117".into()),
            user_events: true,
            guest_hello_ms: Some(1),
            guest_done_ms: None,
            hello_wall_ms: Some(1),
            records,
            unfinished: unfinished.map(Into::into),
            running: vec![],
            troubles: vec![],
            garbage: vec![],
            end,
            wall_ms: 1,
            qemu_stderr: String::new(),
            console_log: "console.log".into(),
        }
    }

    fn sel() -> Selection {
        Selection {
            scenarios: ["a::one", "a::two", "a::three"].map(info).to_vec(),
            kselftests: vec!["abi_test".into(), "dyn_test".into()],
            guest: vec![],
        }
    }

    /// A VM that hung in a::two leaves a::three and both programs to a fresh VM; the culprit
    /// and what ran before it stay with the dead one.
    #[test]
    fn a_dead_vm_leaves_only_what_it_never_started() {
        let timed_out = vm::VmEnd::TimedOut {
            what: "scenario a::two gave no result".into(),
        };
        let r = report(timed_out, &["a::one", "a::two"], Some("a::two"));
        let rest = not_started(&r, &sel()).expect("something to restart for");
        let names: Vec<&str> = rest.scenarios.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a::three"]);
        assert_eq!(rest.kselftests, ["abi_test", "dyn_test"]);
        // Dead inside an upstream program: only the programs after it are left.
        let r = report(
            vm::VmEnd::KernelPanicked,
            &["a::one", "a::two", "a::three", "kselftest::abi_test"],
            Some("kselftest::abi_test"),
        );
        let rest = not_started(&r, &sel()).expect("dyn_test is left");
        assert!(rest.scenarios.is_empty());
        assert_eq!(rest.kselftests, ["dyn_test"]);
    }

    /// Other people's programs: a libtest program that died in one test reruns only the
    /// tests it never started; a plain program that started is not rerun.
    #[test]
    fn a_guest_program_reruns_only_its_unstarted_tests() {
        let prog = |name: &str, style: GuestTestStyle| GuestProgram {
            name: name.into(),
            path: "p".into(),
            args: vec![],
            env: vec![],
            timeout: std::time::Duration::from_secs(1),
            style,
            fault_warnings: false,
        };
        let mut s = sel();
        s.guest = vec![
            prog(
                "lib",
                GuestTestStyle::Libtest {
                    tests: vec!["t1".into(), "t2".into(), "t3".into()],
                    json: false,
                },
            ),
            prog("plain", GuestTestStyle::Program),
        ];
        let r = report(
            vm::VmEnd::KernelPanicked,
            &[
                "a::one",
                "a::two",
                "a::three",
                "kselftest::abi_test",
                "kselftest::dyn_test",
                "guest::lib::t1",
                "guest::lib::t2",
            ],
            Some("guest::lib::t2"),
        );
        let rest = not_started(&r, &s).expect("t3 and plain are left");
        assert_eq!(rest.guest.len(), 2);
        assert!(
            matches!(&rest.guest[0].style, GuestTestStyle::Libtest { tests, .. } if tests == &["t3".to_owned()])
        );
        assert_eq!(planned_names(&rest), ["guest::lib::t3", "guest::plain"]);
    }

    /// A retry plans the failed records alone: a scenario by name, an upstream program for
    /// any of its tests, a libtest program's failed tests, a plain program whole for one of
    /// its TAP tests.
    #[test]
    fn a_retry_runs_only_the_failed_records() {
        let prog = |name: &str, style: GuestTestStyle| GuestProgram {
            name: name.into(),
            path: "p".into(),
            args: vec![],
            env: vec![],
            timeout: std::time::Duration::from_secs(1),
            style,
            fault_warnings: false,
        };
        let mut s = sel();
        s.guest = vec![
            prog(
                "lib",
                GuestTestStyle::Libtest {
                    tests: vec!["t1".into(), "t2".into(), "t22".into()],
                    json: false,
                },
            ),
            prog("plain", GuestTestStyle::Program),
            prog("other", GuestTestStyle::Program),
        ];
        let failed = [
            "a::two",
            "kselftest::dyn_test::user.matching",
            "guest::lib::t2",
            "guest::plain::second",
        ]
        .map(String::from);
        let again = only(&s, &failed);
        assert_eq!(
            planned_names(&again),
            [
                "a::two",
                "kselftest::dyn_test",
                "guest::lib::t2",
                "guest::plain"
            ]
        );
        assert!(only(&s, &[]).is_empty());
    }

    /// Side by side, a panic while a::one and a::two both ran names neither: both run again,
    /// one at a time, beside what never started.
    #[test]
    fn scenarios_in_flight_together_at_a_death_run_again_one_at_a_time() {
        let mut r = report(
            vm::VmEnd::KernelPanicked,
            &["a::one", "a::two"],
            Some("a::one"),
        );
        r.running = vec!["a::one".into(), "a::two".into()];
        let rest = not_started(&r, &sel()).expect("the suspects and a::three are left");
        let names: Vec<&str> = rest.scenarios.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a::one", "a::two", "a::three"]);
        let opts = SuiteOptions {
            guest_bin_dir: "bin".into(),
            manifest: "manifest.json".into(),
            qemu_binary: "qemu-system-x86_64".into(),
            accel: crate::qemu::Accel::Tcg,
            runs_dir: "runs".into(),
            scenario_timeout: std::time::Duration::from_secs(5),
            poll_deadline: std::time::Duration::from_millis(500),
            boot_timeout: std::time::Duration::from_secs(10),
            hang_limit: DEFAULT_HANG_LIMIT,
            memory_mib: 512,
            cpus: 2,
            extra_cmdline: String::new(),
            qemu_args: vec![],
            keep: false,
            gdb: None,
            base_initramfs: None,
            stream_console: false,
            guest_scenario_timeout: None,
            kselftests: false,
            stop_at_first_failure: false,
            stop_on: vec![],
            jobs: 2,
            max_restarts: 3,
            retries: 0,
            flaky_fails: false,
            guest_programs: vec![],
            arch_guests: vec![],
        };
        assert_eq!(restart_options(&opts, &r).jobs, 1);
        // Alone in flight, the scenario is the culprit: not run again, jobs unchanged.
        r.running = vec!["a::one".into()];
        let rest = not_started(&r, &sel()).unwrap();
        assert!(!rest.scenarios.iter().any(|s| s.name == "a::one"));
        assert_eq!(restart_options(&opts, &r).jobs, 2);
    }

    fn end(name: &str) -> result_channel::RecordEnd {
        result_channel::RecordEnd {
            name: name.into(),
            outcome: result_channel::Outcome::Fail,
            message: String::new(),
            duration_us: 1,
            snapshots: vec![],
            notes: vec![],
            output: String::new(),
            missing: None,
            symptom: None,
            hang: None,
            blocked: None,
        }
    }

    fn hang(blocked_behind: Option<&str>) -> result_channel::Hang {
        result_channel::Hang {
            pid: 40,
            comm: "ue-scenarios".into(),
            state_ms: 3000,
            spinning: false,
            wchan: "user_events_ioctl".into(),
            stack: vec!["user_events_ioctl+0x444/0x6b0".into()],
            waits_on_lock: blocked_behind.is_some(),
            blocked_behind: blocked_behind.map(Into::into),
            after_result: false,
            reported: None,
            same_place_as: None,
        }
    }

    /// a::two hung holding a lock; a::one waited behind it, a::three and an upstream program
    /// never started: those three run again in a fresh VM, a::two (the culprit) does not.
    #[test]
    fn what_a_hang_blocked_runs_again_without_the_culprit() {
        let mut r = report(vm::VmEnd::Finished, &["a::one", "a::two"], None);
        let mut waited = end("a::one");
        waited.hang = Some(Box::new(hang(Some("a::two"))));
        let mut culprit = end("a::two");
        culprit.hang = Some(Box::new(hang(None)));
        let blocked = |name: &str| {
            let mut e = end(name);
            e.blocked = Some(Box::new(result_channel::Blocked {
                culprit: "a::two".into(),
                probe: "a canary".into(),
                probe_stack: vec![],
            }));
            Record::End(e)
        };
        r.records.extend([
            Record::End(waited),
            Record::End(culprit),
            blocked("a::three"),
            blocked("kselftest::abi_test"),
        ]);
        let (rest, who) = blocked_behind_a_hang(&r, &sel()).expect("three are blocked");
        assert_eq!(who, "a::two");
        assert_eq!(
            planned_names(&rest),
            ["a::one", "a::three", "kselftest::abi_test"]
        );
        // One hang alone, nothing behind it: nothing to run again.
        let mut alone = report(vm::VmEnd::Finished, &["a::two"], None);
        let mut culprit = end("a::two");
        culprit.hang = Some(Box::new(hang(None)));
        alone.records.push(Record::End(culprit));
        assert!(blocked_behind_a_hang(&alone, &sel()).is_none());
    }

    /// Issue 23's oops kernel: f::oops hung after the fault worker died, and the next VM must
    /// not start with another scenario that drives the fault worker. What is like the breaker
    /// (its family; any scenario driving the worker, as it does) goes last; b::plain, which
    /// touches neither, is not deferred.
    #[test]
    fn a_fresh_vm_after_a_hang_runs_what_resembles_the_culprit_last() {
        let warns = |n: &str| ScenarioInfo {
            fault_worker: true,
            ..info(n)
        };
        let sel = Selection {
            scenarios: vec![
                warns("f::oops"),
                info("f::quiet"),
                warns("m::faulting"),
                info("b::plain"),
            ],
            kselftests: vec![],
            guest: vec![],
        };
        let mut r = report(vm::VmEnd::Finished, &["f::oops"], None);
        let mut culprit = end("f::oops");
        culprit.hang = Some(Box::new(hang(None)));
        r.records.push(Record::End(culprit));
        let rest = Selection {
            scenarios: sel.scenarios[1..].to_vec(),
            ..sel.clone()
        };
        assert_eq!(
            like_what_broke(&r, &sel, &rest),
            ["f::quiet", "m::faulting"]
        );
        // A breaker that never drives the worker defers its family only.
        let plain = Selection {
            scenarios: vec![info("f::oops"), info("f::quiet"), warns("m::faulting")],
            ..sel.clone()
        };
        assert_eq!(like_what_broke(&r, &plain, &rest), ["f::quiet"]);
    }

    #[test]
    fn no_restart_for_a_finished_vm_a_failed_boot_or_nothing_left() {
        let finished = report(vm::VmEnd::Finished, &["a::one"], None);
        assert!(not_started(&finished, &sel()).is_none());
        let mut no_boot = report(vm::VmEnd::KernelPanicked, &[], None);
        no_boot.kernel_release = None;
        assert!(
            not_started(&no_boot, &sel()).is_none(),
            "the same kernel would fail to boot again"
        );
        let all = report(
            vm::VmEnd::KernelPanicked,
            &[
                "a::one",
                "a::two",
                "a::three",
                "kselftest::abi_test",
                "kselftest::dyn_test",
            ],
            Some("kselftest::dyn_test"),
        );
        assert!(not_started(&all, &sel()).is_none());
    }

    #[test]
    fn a_restart_replaces_the_stand_ins_and_keeps_one_health_trial() {
        let planned = vec!["a::three".to_owned(), "kselftest::dyn_test".to_owned()];
        assert!(is_planned_in("a::three", &planned));
        assert!(is_planned_in("kselftest::dyn_test::case.one", &planned));
        assert!(!is_planned_in("kselftest::dyn_test_other", &planned));
        assert!(!is_planned_in("a::two", &planned));
        let mut verdicts = vec![
            ScenarioVerdict::new(
                "a::two",
                Origin::Scenario,
                Verdict::fail(
                    FailCause::NotFinished(vm::VmEnd::TimedOut {
                        what: "scenario a::two".into(),
                    }),
                    "not finished",
                ),
            ),
            ScenarioVerdict::new(
                HEALTH,
                Origin::Vm,
                Verdict::fail(FailCause::Boot, "timed out"),
            ),
        ];
        let next = vec![
            ScenarioVerdict::new("a::three", Origin::Scenario, Verdict::Pass),
            ScenarioVerdict::new(
                HEALTH,
                Origin::Vm,
                Verdict::fail(FailCause::Boot, "the kernel panicked"),
            ),
        ];
        merge_health(&mut verdicts, next, "boot 2 (a fresh VM after a dead one)");
        assert_eq!(verdicts.iter().filter(|v| v.name == HEALTH).count(), 1);
        let health = &verdicts.iter().find(|v| v.name == HEALTH).unwrap().verdict;
        assert!(
            matches!(health, Verdict::Fail(Failure { cause: FailCause::Boot, message: m }) if m.contains("timed out") && m.contains("boot 2") && m.contains("panicked")),
            "{health:?}"
        );
        assert!(verdicts
            .iter()
            .any(|v| v.name == "a::three" && v.verdict == Verdict::Pass));
    }
}
