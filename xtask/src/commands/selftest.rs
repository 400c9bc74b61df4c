//! `cargo xtask selftest`: the harness's own integration tests. Boots broken guests and a
//! kernel that WARNs, and checks what is reported; one VM at a time.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use crate::args::{KernelArgs, RunArgs};
use crate::selftest::{self, Setup};
use crate::session::Session;

#[derive(Args)]
pub struct SelftestArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub trials: crate::args::FilterArgs,
}

pub fn run(a: SelftestArgs) -> anyhow::Result<ExitCode> {
    let mut args = a.trials.libtest_args("selftest")?;
    let mut s = Session::for_kernels(&a.kernel);
    s.host_tools()?;
    let kernel = s.one_kernel(&a.kernel, "selftest")?.kernel;
    let guest = s.guest()?;
    let mut opts = s.suite_options(&a.run, &guest);
    s.choose_accel(&mut opts, a.run.accel, &kernel)?;
    let setup = Arc::new(Setup::prepare(&mut s, &a.kernel, kernel, opts, &guest)?);
    let scratch = setup.scratch.clone();
    let trials = selftest::trials(setup, selftest::cases());
    // One VM at a time: the cases measure time limits, and the machine is small.
    args.test_threads = Some(1);
    let conclusion = libtest_mimic::run(&args, trials);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(conclusion.exit_code())
}
