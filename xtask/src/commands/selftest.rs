//! `cargo xtask selftest`: the harness's own integration tests. Boots broken guests and a
//! kernel that WARNs, and checks what is reported; one VM at a time.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use libtest_mimic::Trial;

use crate::args::{KernelArgs, RunArgs};
use crate::selftest::{self, Setup};
use crate::session::Session;

#[derive(Args)]
// The self-test cases are the harness's own, not the suite's: the stress family is not theirs.
// Nor do they wait for a debugger.
#[command(mut_arg("stress", |a| a.hide(true)), mut_arg("gdb_port", |a| a.hide(true)))]
pub struct SelftestArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub trials: crate::args::FilterArgs,
}

pub fn run(a: SelftestArgs) -> anyhow::Result<ExitCode> {
    crate::args::refuse_unused(
        "selftest",
        &[
            // x86-64 only: their guest is the Rust one (test and matrix take --arch).
            ("--arch", !a.kernel.arch.is_empty()),
            ("--stress", a.run.stress),
            ("--gdb-port", a.kernel.gdb_port != 1234),
        ],
    )?;
    let mut args = a.trials.libtest_args("selftest")?;
    let mut s = Session::for_kernels(&a.kernel);
    s.check_kernels(&a.kernel)?;
    a.run.check()?;
    // The cases' names are known without a kernel: `--list` (and a filter that selects
    // nothing) is answered before tools, kernels or the accelerator are touched.
    let names: Vec<Trial> = selftest::cases()
        .iter()
        .map(|c| Trial::test(c.name, || Ok(())))
        .collect();
    if args.list {
        return Ok(libtest_mimic::run(&args, names).exit_code());
    }
    if names.iter().all(|t| args.is_filtered_out(t)) {
        eprintln!(
            "0 of {} self-test cases match {:?}: `cargo xtask selftest -- --list` names them",
            names.len(),
            args.filter.as_deref().unwrap_or("")
        );
        return Ok(crate::exit::trials(true));
    }
    // The foreign C guest's case boots s390x: its tools come with the others.
    s.foreign = vec![harness::arch::Arch::S390x];
    s.host_tools()?;
    s.foreign = vec![];
    let kernel = s.one_kernel(&a.kernel, "selftest")?.kernel;
    let guest = s.guest()?;
    let mut opts = s.suite_options(&a.run, &guest);
    s.choose_accel(&mut opts, &a.run, &kernel)?;
    let setup = Arc::new(Setup::prepare(&mut s, &a.kernel, kernel, opts, &guest)?);
    let scratch = setup.scratch.clone();
    let trials = selftest::trials(setup, selftest::cases());
    // One VM at a time: the cases measure time limits, and the machine is small.
    args.test_threads = Some(1);
    let conclusion = libtest_mimic::run(&args, trials);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(conclusion.exit_code())
}
