//! `cargo xtask build-kernel`: build (or find in the cache) the kernel(s) and print where the
//! bzImage is.

use std::process::ExitCode;

use crate::args::KernelArgs;
use crate::session::Session;

pub fn run(a: KernelArgs) -> anyhow::Result<ExitCode> {
    let mut s = Session::for_kernels(&a);
    s.host_tools()?;
    for r in s.kernels(&a)? {
        println!("{}\t{}", r.kernel.label, r.kernel.bzimage.display());
    }
    Ok(ExitCode::SUCCESS)
}
