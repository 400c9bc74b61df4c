//! `cargo xtask build-kernel`: build (or find in the cache) the kernel(s) and print where the
//! bzImage is.

use std::process::ExitCode;

use clap::Args;

use crate::args::{refuse_unused, KernelArgs};
use crate::session::Session;

#[derive(Args)]
// Of the kernel options, those that only matter to a run (scenarios side by side, a gdb
// stub's port, what the kernel must have) do nothing here: hidden, and refused if given.
#[command(
    mut_arg("jobs", |a| a.hide(true)),
    mut_arg("gdb_port", |a| a.hide(true)),
    mut_arg("features", |a| a.hide(true)),
    after_help = "Examples:\n  cargo xtask build-kernel                       the default kernel, its bzImage path\n  cargo xtask build-kernel --kernel all          every kernel of the list\n  cargo xtask build-kernel --kernel-tree ~/linux --kconfig CONFIG_KASAN=y"
)]
pub struct BuildKernelArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
}

pub fn run(a: BuildKernelArgs) -> anyhow::Result<ExitCode> {
    let a = a.kernel;
    refuse_unused(
        "build-kernel",
        &[
            ("--jobs", a.jobs.is_some()),
            ("--gdb-port", a.gdb_port != 1234),
            ("--features", a.features.is_some()),
        ],
    )?;
    if a.kernel_image.is_some() && a.gdb {
        anyhow::bail!("--kernel-image with --gdb: build-kernel builds nothing for a ready image, so there is no debug-info variant to build");
    }
    let mut s = Session::for_kernels(&a);
    s.check_kernels(&a)?;
    s.host_tools()?;
    for r in s.kernels(&a)? {
        println!("{}\t{}", r.kernel.label, r.kernel.bzimage.display());
    }
    Ok(ExitCode::SUCCESS)
}
