//! `cargo xtask selftest`'s cases: the harness's own integration tests, which boot the real
//! kernel and run this program as people do. [`vm`]: broken guests and what the harness
//! reports of them; [`cache`]: whole runs on scratch caches (interrupted, offline, two at
//! once); [`devloop`]: the kernel developer's loop on a scratch git tree; [`guest`]: other
//! people's tests in the guest.
//!
//! One registry ([`cases`]): every case is a name and a function of the [`Setup`] the
//! command prepared, turned into a trial by one adapter ([`trials`]). The `rexpect` crate (a
//! person at the console, for `shell`) is used by [`devloop`] alone and nowhere in the
//! product's own commands; `xtask/tests/layout.rs` keeps it so.

pub mod cache;
pub mod devloop;
pub mod guest;
pub mod vm;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use harness::model::{KernelUnderTest, ScenarioInfo, SuiteOptions};
use libtest_mimic::{Failed, Trial};

use crate::args::KernelArgs;
use crate::session::{Guest, Session};
use vm::DelStuck;

/// What the cases use, prepared once by the command: the kernels (built before the trials are
/// listed, as a filtered run needs them as much as a full one), the options, and the paths.
pub struct Setup {
    /// The kernel under test, unpatched.
    pub kernel: KernelUnderTest,
    /// With kernel-configs/selftest/warn-in-unreg.patch: a WARN on unregister.
    pub warn_kernel: KernelUnderTest,
    /// With selftest/slow-fault-worker.patch.
    pub slow_kernel: KernelUnderTest,
    /// With selftest/hang-in-del.patch.
    pub hang_kernel: KernelUnderTest,
    /// With selftest/spin-in-del.patch.
    pub spin_kernel: KernelUnderTest,
    /// With selftest/del-hangs-holding-locks.patch.
    pub del_lock_kernel: KernelUnderTest,
    /// With selftest/exit-hangs.patch.
    pub exit_hang_kernel: KernelUnderTest,
    /// With selftest/oops-in-fault-worker.patch.
    pub oops_kernel: KernelUnderTest,
    /// With selftest/fault-queue-marker.patch.
    pub fault_marker_kernel: KernelUnderTest,
    pub warn_patch: PathBuf,
    pub opts: SuiteOptions,
    pub listing: Vec<ScenarioInfo>,
    pub runs_dir: PathBuf,
    pub target: PathBuf,
    pub root: PathBuf,
    /// This program, run as people run it.
    pub exe: PathBuf,
    /// The scratch caches' seed, or why there is none (a ready --kernel-image has no cache
    /// entries: only the cases that need one fail then).
    pub seed: Result<cache::Seed, String>,
    /// Where the scratch caches go; removed after the run.
    pub scratch: PathBuf,
    pub devloop: Devloop,
}

/// The developer's loop's scratch git tree, made by the first case that needs it (a filtered
/// run that needs none pays nothing).
pub struct Devloop {
    pub tree: PathBuf,
    pub mutant: PathBuf,
    cache: PathBuf,
    default_kernel: String,
    no_install: bool,
    made: Mutex<Option<Result<(), String>>>,
}

impl Devloop {
    /// The tree, made on first use; a failure is remembered and reported by every case.
    fn ready(&self) -> anyhow::Result<()> {
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        if made.is_none() {
            let r = (|| -> anyhow::Result<()> {
                let mut s = Session::new(Some(&self.cache), !self.no_install);
                let pristine = s.pristine_tree(&self.default_kernel)?;
                devloop::ensure_tree(&self.tree, &pristine)
            })();
            *made = Some(r.map_err(|e| format!("making the scratch tree: {e:#}")));
        }
        made.clone()
            .unwrap_or(Ok(()))
            .map_err(|e| anyhow::anyhow!(e))
    }
}

impl Setup {
    /// Builds (or finds) the kernels the cases boot, in the order the command always has.
    pub fn prepare(
        s: &mut Session,
        k: &KernelArgs,
        kernel: KernelUnderTest,
        opts: SuiteOptions,
        guest: &Guest,
    ) -> anyhow::Result<Setup> {
        let mut patched = |patch: &str| -> anyhow::Result<KernelUnderTest> {
            let args = KernelArgs {
                patches: vec![s.configs.join(patch)],
                ..k.clone()
            };
            Ok(s.one_kernel(&args, "selftest")?.kernel)
        };
        let warn_kernel = patched("selftest/warn-in-unreg.patch")?;
        let slow_kernel = patched("selftest/slow-fault-worker.patch")?;
        let hang_kernel = patched("selftest/hang-in-del.patch")?;
        let spin_kernel = patched("selftest/spin-in-del.patch")?;
        let del_lock_kernel = patched("selftest/del-hangs-holding-locks.patch")?;
        let exit_hang_kernel = patched("selftest/exit-hangs.patch")?;
        let oops_kernel = patched("selftest/oops-in-fault-worker.patch")?;
        let fault_marker_kernel = patched("selftest/fault-queue-marker.patch")?;
        let seed = cache::Seed::of(&kernel).map_err(|e| format!("{e:#}"));
        let devloop = Devloop {
            tree: crate::cache::selftest_tree(&s.cache),
            mutant: s.configs.join("mutants/fork-no-dup.patch"),
            cache: s.cache.clone(),
            default_kernel: s.kernel_list()?.default.clone(),
            no_install: k.no_install,
            made: Mutex::new(None),
        };
        Ok(Setup {
            kernel,
            warn_kernel,
            slow_kernel,
            hang_kernel,
            spin_kernel,
            del_lock_kernel,
            exit_hang_kernel,
            oops_kernel,
            fault_marker_kernel,
            warn_patch: s.configs.join("selftest/warn-in-unreg.patch"),
            runs_dir: opts.runs_dir.clone(),
            opts,
            listing: guest.scenarios.clone(),
            target: s.target.clone(),
            root: s.root.clone(),
            exe: std::env::current_exe()?,
            seed,
            scratch: std::env::temp_dir().join(format!("ue-selftest-{}", std::process::id())),
            devloop,
        })
    }

    /// The scratch caches' seed, or why there is none.
    fn seed(&self) -> anyhow::Result<&cache::Seed> {
        self.seed
            .as_ref()
            .map_err(|e| anyhow::anyhow!("no cache entries to seed a scratch cache from: {e}"))
    }
}

/// What a case runs: any check of the prepared [`Setup`].
type CaseFn = Box<dyn Fn(&Setup) -> anyhow::Result<()> + Send + Sync>;

/// A case: its trial's name and what it runs.
pub struct Case {
    pub name: &'static str,
    run: CaseFn,
}

impl Case {
    fn new(
        name: &'static str,
        run: impl Fn(&Setup) -> anyhow::Result<()> + Send + Sync + 'static,
    ) -> Case {
        Case {
            name,
            run: Box::new(run),
        }
    }

    /// A case of the developer's loop: the scratch tree first.
    fn devloop(
        name: &'static str,
        run: impl Fn(&Setup) -> anyhow::Result<()> + Send + Sync + 'static,
    ) -> Case {
        Case::new(name, move |s| {
            s.devloop.ready()?;
            run(s)
        })
    }
}

/// Every case, in the order they are listed and run.
pub fn cases() -> Vec<Case> {
    // The broken guests: each also checks that no QEMU is left running.
    let mut cases: Vec<Case> = vm::CASES
        .iter()
        .map(|c| {
            let run = c.run;
            Case::new(c.name, move |s| {
                run(&s.kernel, &s.opts)?;
                let left = vm::leftover_qemus(&s.runs_dir);
                anyhow::ensure!(left.is_empty(), "QEMU left running: {left:?}");
                Ok(())
            })
        })
        .collect();
    cases.extend([
        Case::new("selftest::kernel_warning_fails_the_running_scenario", |s| {
            vm::warning_fails_the_running_scenario(&s.warn_kernel, &s.opts)
        }),
        Case::new(
            "selftest::slow_fault_worker_keeps_munmap_deterministic",
            |s| {
                vm::slow_fault_worker_keeps_munmap_deterministic(
                    &s.slow_kernel,
                    &s.opts,
                    &s.listing,
                )
            },
        ),
        Case::new("selftest::a_hang_costs_one_scenario", |s| {
            vm::a_hang_costs_one_scenario(&s.hang_kernel, &s.opts, &s.listing, DelStuck::Sleeps)
        }),
        Case::new("selftest::a_loop_in_the_kernel_costs_one_scenario", |s| {
            vm::a_hang_costs_one_scenario(&s.spin_kernel, &s.opts, &s.listing, DelStuck::Spins)
        }),
        Case::new(
            "selftest::a_hang_holding_the_locks_blocks_in_bounded_time",
            |s| {
                vm::a_hang_holding_the_locks_blocks_in_bounded_time(
                    &s.del_lock_kernel,
                    &s.opts,
                    &s.listing,
                )
            },
        ),
        Case::new("selftest::exit_hangs_are_each_their_own", |s| {
            vm::exit_hangs_are_each_their_own(&s.exit_hang_kernel, &s.opts, &s.listing)
        }),
        Case::new(
            "selftest::an_oops_in_the_fault_worker_costs_bounded_time",
            |s| {
                vm::an_oops_in_the_fault_worker_costs_bounded_time(
                    &s.oops_kernel,
                    &s.opts,
                    &s.listing,
                )
            },
        ),
        Case::new("selftest::fault_worker_users_are_declared", |s| {
            vm::fault_worker_users_are_declared(&s.fault_marker_kernel, &s.opts, &s.listing)
        }),
        // Whole runs on scratch caches seeded from this kernel's entries.
        Case::new("selftest::interrupt_at_every_stage", |s| {
            let times = cache::interrupt_every_stage(&s.exe, s.seed()?, &s.scratch, &s.runs_dir)?;
            for t in &times {
                eprintln!(
                    "  {:?} {}: exited {} ms after the signal",
                    t.stage, t.signal, t.exit_ms
                );
            }
            Ok(())
        }),
        Case::new("selftest::offline_after_one_run", |s| {
            cache::offline_after_one_run(&s.exe, s.seed()?, &s.scratch)
        }),
        Case::new("selftest::two_runs_at_once", |s| {
            cache::two_runs_at_once(&s.exe, s.seed()?, &s.scratch, &s.warn_patch)
        }),
        // Other people's tests in the guest: each style and ending, a WARN, the broken
        // example, a crate that cannot link statically.
        Case::new("selftest::guest_tests_each_style_and_ending", |s| {
            guest::each_style_and_ending(&s.kernel, &s.opts, &s.target)
        }),
        Case::new("selftest::guest_test_kernel_warning_is_the_tests", |s| {
            guest::kernel_warning_is_the_tests(&s.warn_kernel, &s.opts, &s.target)
        }),
        Case::new("selftest::guest_crate_broken_example_fails_by_name", |s| {
            guest::broken_example_fails_by_name(&s.kernel, &s.opts, &s.target, &s.root)
        }),
        Case::new("selftest::guest_crate_that_cannot_link_statically", |s| {
            guest::crate_that_cannot_link_statically(&s.target)
        }),
        // A foreign architecture's C guest: s390x's kernel, cross-built once.
        Case::new("selftest::foreign_c_guest_reports_each_ending", |s| {
            guest::foreign_c_guest_reports_each_ending(&s.exe, &s.scratch)
        }),
        // Retries: a guest test that fails every other boot, run as people run it.
        Case::new(
            "selftest::every_other_boot_is_flaky_with_retries_and_failed_without",
            |s| {
                guest::every_other_boot_is_flaky_with_retries_and_failed_without(
                    &s.exe, &s.kernel, &s.target, &s.scratch,
                )
            },
        ),
        Case::new("selftest::ctrl_c_leaves_nothing_running", |s| {
            vm::ctrl_c_leaves_nothing(&s.exe, &s.runs_dir)
        }),
        // The developer's loop, on one scratch git tree made from the pristine source of the
        // default kernel and configured in place.
        Case::devloop("devloop::tree_never_written_and_edit_is_incremental", |s| {
            devloop::tree_never_written_and_edit_is_incremental(&s.exe, &s.devloop.tree)
        }),
        Case::devloop("devloop::keep_rerun_and_paste", |s| {
            devloop::keep_rerun_and_paste(&s.exe, &s.devloop.tree)
        }),
        Case::devloop("devloop::kconfig_is_applied_and_checked", |s| {
            devloop::kconfig_is_applied_and_checked(&s.exe, &s.devloop.tree)
        }),
        Case::devloop("devloop::patch_applies_to_the_snapshot", |s| {
            devloop::patch_applies_to_the_snapshot(&s.exe, &s.devloop.tree, &s.devloop.mutant)
        }),
        Case::devloop("devloop::shell_runs_a_scenario", |s| {
            devloop::shell_runs_a_scenario(&s.exe, &s.devloop.tree, None)
        }),
        Case::devloop("devloop::shell_on_a_mutant_kernel", |s| {
            devloop::shell_runs_a_scenario(&s.exe, &s.devloop.tree, Some(&s.devloop.mutant))
        }),
        Case::devloop("devloop::bisect_names_the_mutant_commit", |s| {
            devloop::bisect_names_the_mutant_commit(
                &s.exe,
                &s.devloop.tree,
                &s.devloop.mutant,
                &s.target,
                s.opts.accel,
            )
        }),
        Case::devloop("devloop::gdb_breaks_in_user_events_ioctl_reg", |s| {
            devloop::gdb_breaks_in_ioctl_reg(&s.exe, &s.devloop.tree)
        }),
    ]);
    cases
}

/// The cases as trials: the one adapter from a case's error (with its whole chain) to a
/// failed trial.
pub fn trials(setup: Arc<Setup>, cases: Vec<Case>) -> Vec<Trial> {
    cases
        .into_iter()
        .map(|case| {
            let setup = setup.clone();
            Trial::test(case.name, move || {
                (case.run)(&setup).map_err(|e| Failed::from(format!("{e:#}")))
            })
        })
        .collect()
}
