//! `cargo xtask mutants`: build each patch of `kernel-configs/mutants/` on the cached kernel,
//! run the suite and the upstream selftests on it, and check that a scenario it names caught it.

use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;
use harness::run::Selection;

use crate::args::{KernelArgs, RunArgs};
use crate::mutation::shipped;
use crate::mutation::upstream;
use crate::session::Session;

#[derive(Args)]
// No VM waits for a debugger here, and the upstream selftests always run.
#[command(mut_arg("gdb_port", |a| a.hide(true)), mut_arg("kselftest", |a| a.hide(true)))]
pub struct MutantsArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Only the mutants whose file name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// Run every trial on every mutant. By default a mutant's run stops at the first failure
    /// of a scenario it names (which run first): the verdict, not the full list of failures.
    #[arg(long)]
    pub no_fail_fast: bool,
    /// Boot the unpatched kernel and every mutant twice, every trial run both times: with
    /// the scenarios side by side (`--jobs`, default the vCPUs) and with `--jobs 1`. Any
    /// scenario whose verdict differs between the two is reported, and the command fails:
    /// the proof that running scenarios side by side changes no verdict.
    #[arg(long)]
    pub same_verdicts: bool,
}

pub fn run(a: MutantsArgs) -> anyhow::Result<ExitCode> {
    crate::args::refuse_unused(
        "mutants",
        &[
            ("--gdb-port", a.kernel.gdb_port != 1234),
            ("--kselftest", a.run.kselftest),
        ],
    )?;
    let judged = judge(&a)?;
    let (base_failing, rows) = (&judged.base_failing, &judged.rows);
    let table = shipped::table(base_failing, rows);
    println!("{table}");
    let differing = judged.differing_verdicts();
    if a.same_verdicts {
        if differing.is_empty() {
            println!(
                "same verdicts side by side and one at a time, every trial run: the unpatched kernel and {} mutant(s)",
                rows.len()
            );
        } else {
            println!(
                "verdicts that differ between side by side and one at a time:\n{}",
                differing.join("\n")
            );
        }
    }
    let runs_dir = Session::for_kernels(&a.kernel).runs_dir();
    let out = runs_dir.join("mutants.md");
    std::fs::create_dir_all(&runs_dir).with_context(|| format!("create {}", runs_dir.display()))?;
    std::fs::write(&out, &table).with_context(|| format!("write {}", out.display()))?;
    eprintln!("table written to {}", out.display());
    let ok = base_failing.is_empty() && rows.iter().all(shipped::row_holds) && differing.is_empty();
    Ok(crate::exit::trials(!ok))
}

/// What [`judge`] found: the scenarios failing on the unpatched kernel, and a row per mutant
/// (`cargo xtask bench` times the killed ones). With `--same-verdicts`, the unpatched
/// kernel's failing scenarios with `--jobs 1` too (each row has its own).
pub struct Judged {
    pub base_failing: Vec<String>,
    pub base_failing_one_at_a_time: Option<Vec<String>>,
    pub rows: Vec<shipped::Row>,
}

impl Judged {
    /// One line per kernel whose failing scenarios differ between the two runs.
    pub fn differing_verdicts(&self) -> Vec<String> {
        let base = (
            "unpatched",
            &self.base_failing,
            &self.base_failing_one_at_a_time,
        );
        std::iter::once(base)
            .chain(
                self.rows
                    .iter()
                    .map(|r| (r.mutant.name.as_str(), &r.failing, &r.failing_one_at_a_time)),
            )
            .filter_map(|(kernel, side_by_side, one_at_a_time)| {
                shipped::verdict_difference(side_by_side, one_at_a_time.as_ref()?)
                    .map(|d| format!("{kernel}: {d}"))
            })
            .collect()
    }
}

/// Boots the unpatched kernel and each selected mutant.
pub fn judge(a: &MutantsArgs) -> anyhow::Result<Judged> {
    let k = &a.kernel;
    if !k.patches.is_empty() || k.kernel_image.is_some() || k.kernel_tree.is_some() {
        bail!("mutants are applied to a packaged kernel: use --kernel, not --patch, --kernel-image or --kernel-tree");
    }
    let mut s = Session::for_kernels(k);
    s.check_kernels(k)?;
    a.run.check()?;
    s.host_tools()?;
    let all = shipped::load(&s.configs.join("mutants"))?;
    let selected: Vec<_> = all
        .into_iter()
        .filter(|m| a.only.as_deref().is_none_or(|o| m.name.contains(o)))
        .collect();
    if selected.is_empty() {
        bail!(
            "no mutant in kernel-configs/mutants matches {:?}",
            a.only.as_deref().unwrap_or("")
        );
    }
    // One architecture per run: a foreign one (--arch s390x) boots its C guest, whose
    // programs' checks are the trials a mutant's `Must catch:` may name.
    let arches = k.arches()?;
    if arches.len() != 1 {
        bail!(
            "`cargo xtask mutants` runs on one architecture; --arch names {}: pick one",
            k.arch.join(",")
        );
    }
    let base = s.one_kernel(k, "mutants")?.kernel;
    let guest = s.guest_for(&arches)?;
    let mut opts = s.suite_options(&a.run, &guest);
    let sel = if arches[0].is_native() {
        Selection {
            scenarios: guest.scenarios(a.run.stress),
            kselftests: harness::model::KSELFTESTS.map(String::from).to_vec(),
            ..Default::default()
        }
    } else {
        let programs = crate::args::GuestTestArgs {
            guest_test_timeout: 30,
            ..Default::default()
        };
        opts.arch_guests = crate::guest::foreign::prepare_all(
            &s.root,
            &s.cache,
            &arches,
            &programs,
            &mut s.progress,
        )?;
        Selection {
            guest: opts.arch_guests[0].programs.clone(),
            ..Default::default()
        }
    };
    s.choose_accel(&mut opts, &a.run, &base)?;
    s.progress.step(
        crate::sys::progress::Step::Boot,
        &format!("{} unpatched", base.label),
    );
    let fail_fast = !(a.no_fail_fast || a.same_verdicts);
    let base_run = boot(&base, &opts, &sel)?;
    let (base_failing, base_ks_failing) = shipped::failing(&base_run);
    let base_failing_one_at_a_time = if a.same_verdicts {
        s.progress.step(
            crate::sys::progress::Step::Boot,
            &format!("{} unpatched, --jobs 1", base.label),
        );
        Some(shipped::failing(&boot(&base, &one_at_a_time(&opts), &sel)?).0)
    } else {
        None
    };
    if !base_ks_failing.is_empty() {
        eprintln!(
            "note: upstream selftests failing on the unpatched kernel: {}",
            base_ks_failing.join(", ")
        );
    }
    let judge = Judge {
        kernel: k,
        base_label: &base.label,
        sel: &sel,
        opts: &opts,
        fail_fast,
        same_verdicts: a.same_verdicts,
        base_ks_failing: &base_ks_failing,
        base: &base,
        base_ks_failing_alone: std::cell::OnceCell::new(),
        // The run's one architecture (--arch), as the mutants' `Arches:` lines spell it.
        arch: shipped::Arch::parse(arches[0].name())
            .expect("shipped::Arch spells every harness::arch::Arch"),
    };
    let mut rows = Vec::new();
    for m in selected {
        rows.push(judge.mutant(&mut s, m)?);
    }
    if let Some(median) = shipped::killed_median_secs(&rows) {
        eprintln!(
            "killed mutants: median {median:.1} s from patch to verdict ({} of {}{})",
            rows.iter().filter(|r| r.caught).count(),
            rows.len(),
            if !fail_fast {
                ", every trial run"
            } else {
                ", fail-fast"
            }
        );
    }
    Ok(Judged {
        base_failing,
        base_failing_one_at_a_time,
        rows,
    })
}
/// Boots `kernel` with `sel` and writes the run's artifacts.
fn boot(
    kernel: &harness::model::KernelUnderTest,
    opts: &harness::model::SuiteOptions,
    sel: &Selection,
) -> anyhow::Result<harness::model::KernelRun> {
    let run = harness::run::run_kernel(kernel, opts, sel)?;
    harness::artifacts::write(&run)?;
    Ok(run)
}

/// The second run of --same-verdicts: every scenario one at a time.
fn one_at_a_time(opts: &harness::model::SuiteOptions) -> harness::model::SuiteOptions {
    harness::model::SuiteOptions {
        jobs: 1,
        ..opts.clone()
    }
}

/// What each mutant is judged against: the unpatched kernel's arguments and upstream
/// failures, the selection and the options.
struct Judge<'a> {
    kernel: &'a KernelArgs,
    base_label: &'a str,
    sel: &'a Selection,
    opts: &'a harness::model::SuiteOptions,
    fail_fast: bool,
    same_verdicts: bool,
    base_ks_failing: &'a [String],
    base: &'a harness::model::KernelUnderTest,
    /// What fails when the upstream selftests boot alone on the unpatched kernel (some of a
    /// tree's own tests do, by their timing, right after boot): booted on first need.
    base_ks_failing_alone: std::cell::OnceCell<Vec<String>>,
    /// The guests' architecture: a mutant whose `Arches:` leaves it out must survive.
    arch: shipped::Arch,
}

impl Judge<'_> {
    /// The upstream selftests that fail when they boot alone on the unpatched kernel.
    fn base_ks_failing_alone(&self, s: &mut Session) -> anyhow::Result<&[String]> {
        if let Some(known) = self.base_ks_failing_alone.get() {
            return Ok(known);
        }
        s.progress.step(
            crate::sys::progress::Step::Boot,
            &format!("{} unpatched, upstream selftests alone", self.base.label),
        );
        let alone = upstream::alone_kernel(self.base);
        let failing = shipped::failing(&boot(&alone, self.opts, &upstream::alone(self.sel))?).1;
        if !failing.is_empty() {
            eprintln!(
                "note: upstream selftests failing on the unpatched kernel when they boot alone (not counted in such a boot of a mutant): {}",
                failing.join(", ")
            );
        }
        Ok(self.base_ks_failing_alone.get_or_init(|| failing))
    }

    /// One mutant, from patch to verdict: rebuilt, booted with the scenarios it names first.
    fn mutant(&self, s: &mut Session, m: shipped::Mutant) -> anyhow::Result<shipped::Row> {
        let mk = KernelArgs {
            patches: vec![m.path.clone()],
            ..self.kernel.clone()
        };
        // Patch to verdict: the rebuild, the boot and the suite.
        let started = std::time::Instant::now();
        let resolved = s.kernels(&mk)?.remove(0);
        let mut kernel = resolved.kernel;
        kernel.label = format!("{}+{}", self.base_label, m.name);
        s.progress
            .step(crate::sys::progress::Step::Boot, &kernel.label);
        // Off its architectures the patched code is not compiled: every trial must pass, so
        // all of them run.
        let off_arch = !m.applies_to(self.arch);
        // Fail fast: the scenarios the mutant names run first, and the first of them to fail
        // ends the run (a mutant that breaks fork would otherwise wait out a deadline in
        // every scenario that forks). The upstream programs still all run.
        let (named, others): (Vec<_>, Vec<_>) = self
            .sel
            .scenarios
            .iter()
            .cloned()
            .partition(|sc| m.names(sc));
        let mutant_sel = Selection {
            scenarios: named.iter().chain(&others).cloned().collect(),
            kselftests: self.sel.kselftests.clone(),
            guest: self.sel.guest.clone(),
        };
        let mutant_opts = harness::model::SuiteOptions {
            stop_at_first_failure: self.fail_fast && !off_arch,
            stop_on: named.iter().map(|sc| sc.name.clone()).collect(),
            ..self.opts.clone()
        };
        let run = boot(&kernel, &mutant_opts, &mutant_sel)?;
        let verdict_secs = started.elapsed().as_secs_f64();
        let (failing, ks_failing) = shipped::failing(&run);
        let failing_one_at_a_time = if self.same_verdicts {
            s.progress.step(
                crate::sys::progress::Step::Boot,
                &format!("{}, --jobs 1", kernel.label),
            );
            let run = boot(&kernel, &one_at_a_time(&mutant_opts), &mutant_sel)?;
            Some(shipped::failing(&run).0)
        } else {
            None
        };
        // The upstream selftests booted after the suite: where the suite's failure may have
        // wrecked the kernel for them, they get a boot of their own, compared with such a
        // boot of the unpatched kernel.
        let ks_failing =
            if upstream::needs_its_own_boot(&run, !failing.is_empty(), self.base_ks_failing) {
                let base_alone = self.base_ks_failing_alone(s)?;
                s.progress.step(
                    crate::sys::progress::Step::Boot,
                    &format!("{}, upstream selftests alone", kernel.label),
                );
                let alone = upstream::alone_kernel(&kernel);
                shipped::failing(&boot(&alone, &mutant_opts, &upstream::alone(&mutant_sel))?)
                    .1
                    .into_iter()
                    .filter(|k| !base_alone.contains(k))
                    .collect()
            } else {
                ks_failing
            };
        // Upstream selftests that fail on the unpatched kernel too say nothing about the mutant.
        let kselftests_failing: Vec<String> = ks_failing
            .into_iter()
            .filter(|k| !self.base_ks_failing.contains(k))
            .collect();
        let caught = self
            .sel
            .scenarios
            .iter()
            .filter(|sc| failing.contains(&sc.name))
            .any(|sc| m.names(sc))
            || failing
                .iter()
                .any(|t| m.catches.iter().any(|c| c.matches_guest_trial(t)));
        eprintln!(
            "{}: {} in {verdict_secs:.1} s (failing: {})",
            m.name,
            match (caught, off_arch, failing.is_empty()) {
                (_, true, true) => "survives, as it must off its architectures",
                (_, true, false) => "CAUGHT where its code is not compiled",
                (true, false, _) => "caught",
                (false, false, _) => "NOT CAUGHT",
            },
            failing.join(", ")
        );
        Ok(shipped::Row {
            mutant: m,
            failing,
            kselftests_failing,
            caught,
            off_arch,
            failing_one_at_a_time,
            build_secs: resolved.build_secs,
            verdict_secs,
        })
    }
}
