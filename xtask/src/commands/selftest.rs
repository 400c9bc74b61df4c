//! `cargo xtask selftest`: the harness's own integration tests. Boots broken guests and a
//! kernel that WARNs, and checks what is reported; one VM at a time.

use std::process::ExitCode;

use clap::Args;
use libtest_mimic::{Failed, Trial};

use crate::args::{KernelArgs, RunArgs};
use crate::selftest::cache;
use crate::selftest::vm;
use crate::session::Session;

#[derive(Args)]
pub struct SelftestArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Arguments for the test runner (filter, --exact, --list).
    #[arg(last = true)]
    pub libtest: Vec<String>,
}

pub fn run(a: SelftestArgs) -> anyhow::Result<ExitCode> {
    let mut args = libtest_mimic::Arguments::from_iter(
        std::iter::once("cargo xtask selftest".to_owned()).chain(a.libtest),
    );
    let mut s = Session::for_kernels(&a.kernel);
    s.host_tools()?;
    let kernel = s.one_kernel(&a.kernel, "selftest")?.kernel;
    let guest = s.guest()?;
    let mut opts = s.suite_options(&a.run, &guest);
    s.choose_accel(&mut opts, a.run.accel, &kernel)?;
    let runs_dir = opts.runs_dir.clone();
    let mut trials: Vec<Trial> = vm::CASES
        .iter()
        .map(|c| {
            let (kernel, opts, runs_dir, run) =
                (kernel.clone(), opts.clone(), runs_dir.clone(), c.run);
            Trial::test(c.name, move || {
                run(&kernel, &opts).map_err(|e| Failed::from(format!("{e:#}")))?;
                let left = vm::leftover_qemus(&runs_dir);
                if !left.is_empty() {
                    return Err(format!("QEMU left running: {left:?}").into());
                }
                Ok(())
            })
        })
        .collect();
    let wk = KernelArgs {
        patches: vec![s.configs.join("selftest/warn-in-unreg.patch")],
        ..a.kernel.clone()
    };
    let warn_kernel = s.one_kernel(&wk, "selftest")?.kernel;
    let warn_kernel_for_guest = warn_kernel.clone();
    let warn_opts = opts.clone();
    trials.push(Trial::test(
        "selftest::kernel_warning_fails_the_running_scenario",
        move || {
            vm::warning_fails_the_running_scenario(&warn_kernel, &warn_opts)
                .map_err(|e| Failed::from(format!("{e:#}")))
        },
    ));
    let sk = KernelArgs {
        patches: vec![s.configs.join("selftest/slow-fault-worker.patch")],
        ..a.kernel.clone()
    };
    let slow_kernel = s.one_kernel(&sk, "selftest")?.kernel;
    let (slow_opts, listing) = (opts.clone(), guest.scenarios.clone());
    trials.push(Trial::test(
        "selftest::slow_fault_worker_keeps_munmap_deterministic",
        move || {
            vm::slow_fault_worker_keeps_munmap_deterministic(&slow_kernel, &slow_opts, &listing)
                .map_err(|e| Failed::from(format!("{e:#}")))
        },
    ));
    let hk = KernelArgs {
        patches: vec![s.configs.join("selftest/hang-in-del.patch")],
        ..a.kernel.clone()
    };
    let hang_kernel = s.one_kernel(&hk, "selftest")?.kernel;
    let (hang_opts, listing) = (opts.clone(), guest.scenarios.clone());
    trials.push(Trial::test(
        "selftest::a_dead_vm_costs_one_scenario",
        move || {
            vm::a_dead_vm_costs_one_scenario(&hang_kernel, &hang_opts, &listing)
                .map_err(|e| Failed::from(format!("{e:#}")))
        },
    ));
    // Whole runs on scratch caches seeded from this kernel's entries.
    // A ready --kernel-image has no cache entries to seed from: only these cases fail then.
    let seed = std::sync::Arc::new(cache::Seed::of(&kernel).map_err(|e| format!("{e:#}")));
    let scratch = std::env::temp_dir().join(format!("ue-selftest-{}", std::process::id()));
    let exe = std::env::current_exe()?;
    {
        let (seed, scratch, exe, runs_dir) =
            (seed.clone(), scratch.clone(), exe.clone(), runs_dir.clone());
        trials.push(Trial::test(
            "selftest::interrupt_at_every_stage",
            move || {
                let times =
                    cache::interrupt_every_stage(&exe, seed_of(&seed)?, &scratch, &runs_dir)
                        .map_err(|e| Failed::from(format!("{e:#}")))?;
                for t in &times {
                    eprintln!(
                        "  {:?} {}: exited {} ms after the signal",
                        t.stage, t.signal, t.exit_ms
                    );
                }
                Ok(())
            },
        ));
    }
    {
        let (seed, scratch, exe) = (seed.clone(), scratch.clone(), exe.clone());
        trials.push(Trial::test("selftest::offline_after_one_run", move || {
            cache::offline_after_one_run(&exe, seed_of(&seed)?, &scratch)
                .map_err(|e| Failed::from(format!("{e:#}")))
        }));
    }
    {
        let (seed, scratch, exe) = (seed.clone(), scratch.clone(), exe.clone());
        let patch = s.configs.join("selftest/warn-in-unreg.patch");
        trials.push(Trial::test("selftest::two_runs_at_once", move || {
            cache::two_runs_at_once(&exe, seed_of(&seed)?, &scratch, &patch)
                .map_err(|e| Failed::from(format!("{e:#}")))
        }));
    }
    // Other people's tests in the guest: each style and ending, a WARN, the broken example,
    // a crate that cannot link statically.
    let (gk, go, target, root) = (
        kernel.clone(),
        opts.clone(),
        s.target.clone(),
        s.root.clone(),
    );
    trials.push(Trial::test(
        "selftest::guest_tests_each_style_and_ending",
        move || {
            crate::selftest::guest::each_style_and_ending(&gk, &go, &target)
                .map_err(|e| Failed::from(format!("{e:#}")))
        },
    ));
    let (wk2, wo, target) = (warn_kernel_for_guest, opts.clone(), s.target.clone());
    trials.push(Trial::test(
        "selftest::guest_test_kernel_warning_is_the_tests",
        move || {
            crate::selftest::guest::kernel_warning_is_the_tests(&wk2, &wo, &target)
                .map_err(|e| Failed::from(format!("{e:#}")))
        },
    ));
    let (bk, bo, target, root2) = (kernel.clone(), opts.clone(), s.target.clone(), root);
    trials.push(Trial::test(
        "selftest::guest_crate_broken_example_fails_by_name",
        move || {
            crate::selftest::guest::broken_example_fails_by_name(&bk, &bo, &target, &root2)
                .map_err(|e| Failed::from(format!("{e:#}")))
        },
    ));
    let target = s.target.clone();
    trials.push(Trial::test(
        "selftest::guest_crate_that_cannot_link_statically",
        move || {
            crate::selftest::guest::crate_that_cannot_link_statically(&target)
                .map_err(|e| Failed::from(format!("{e:#}")))
        },
    ));
    let xtask = std::env::current_exe()?;
    trials.push(Trial::test(
        "selftest::ctrl_c_leaves_nothing_running",
        move || {
            vm::ctrl_c_leaves_nothing(&xtask, &runs_dir).map_err(|e| Failed::from(format!("{e:#}")))
        },
    ));
    trials.extend(devloop_trials(&mut s, &a.kernel)?);
    // One VM at a time: the cases measure time limits, and the machine is small.
    args.test_threads = Some(1);
    let conclusion = libtest_mimic::run(&args, trials);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(conclusion.exit_code())
}

/// The seed of the scratch-cache cases, or why there is none.
fn seed_of(seed: &Result<cache::Seed, String>) -> Result<&cache::Seed, Failed> {
    seed.as_ref().map_err(|e| {
        Failed::from(format!(
            "no cache entries to seed a scratch cache from: {e}"
        ))
    })
}

/// The developer's loop (`devloop::*`), on one scratch git tree made from the pristine
/// source of the default kernel and configured in place; the tree is made on first use.
fn devloop_trials(s: &mut Session, k: &KernelArgs) -> anyhow::Result<Vec<Trial>> {
    use crate::selftest::devloop as d;
    let exe = std::env::current_exe()?;
    let tree = d::tree_path(&s.cache);
    let mutant = s.configs.join("mutants/fork-no-dup.patch");
    let default = s.kernel_list()?.default;
    // The tree is made lazily, by the first case that runs (a filtered-out run pays nothing).
    let cache = s.cache.clone();
    let no_install = k.no_install;
    let prepare = std::sync::Arc::new(std::sync::Mutex::new(None::<Result<(), String>>));
    let ready = move || -> Result<(), Failed> {
        let mut done = prepare.lock().unwrap_or_else(|e| e.into_inner());
        if done.is_none() {
            let tree = d::tree_path(&cache);
            let r = (|| -> anyhow::Result<()> {
                let mut s = Session::new(Some(&cache), !no_install);
                let pristine = s.pristine_tree(&default)?;
                d::ensure_tree(&tree, &pristine)
            })();
            *done = Some(r.map_err(|e| format!("making the scratch tree: {e:#}")));
        }
        done.clone().unwrap().map_err(Failed::from)
    };
    let ready = std::sync::Arc::new(ready);
    let case = |name: &'static str, f: Box<dyn Fn() -> anyhow::Result<()> + Send>| {
        let ready = ready.clone();
        Trial::test(name, move || {
            ready()?;
            f().map_err(|e| Failed::from(format!("{e:#}")))
        })
    };
    let (e, t, m) = (exe.clone(), tree.clone(), mutant.clone());
    let mut out = vec![case(
        "devloop::tree_never_written_and_edit_is_incremental",
        Box::new(move || d::tree_never_written_and_edit_is_incremental(&e, &t)),
    )];
    let (e, t) = (exe.clone(), tree.clone());
    out.push(case(
        "devloop::keep_rerun_and_paste",
        Box::new(move || d::keep_rerun_and_paste(&e, &t)),
    ));
    let (e, t) = (exe.clone(), tree.clone());
    out.push(case(
        "devloop::kconfig_is_applied_and_checked",
        Box::new(move || d::kconfig_is_applied_and_checked(&e, &t)),
    ));
    let (e2, t2, m2) = (exe.clone(), tree.clone(), m.clone());
    out.push(case(
        "devloop::patch_applies_to_the_snapshot",
        Box::new(move || d::patch_applies_to_the_snapshot(&e2, &t2, &m2)),
    ));
    let (e, t) = (exe.clone(), tree.clone());
    out.push(case(
        "devloop::shell_runs_a_scenario",
        Box::new(move || d::shell_runs_a_scenario(&e, &t, None)),
    ));
    let (e, t, m3) = (exe.clone(), tree.clone(), m.clone());
    out.push(case(
        "devloop::shell_on_a_mutant_kernel",
        Box::new(move || d::shell_runs_a_scenario(&e, &t, Some(&m3))),
    ));
    let (e, t, m4) = (exe.clone(), tree.clone(), m.clone());
    out.push(case(
        "devloop::bisect_names_the_mutant_commit",
        Box::new(move || d::bisect_names_the_mutant_commit(&e, &t, &m4)),
    ));
    let (e, t) = (exe, tree);
    out.push(case(
        "devloop::gdb_breaks_in_user_events_ioctl_reg",
        Box::new(move || d::gdb_breaks_in_ioctl_reg(&e, &t)),
    ));
    Ok(out)
}
