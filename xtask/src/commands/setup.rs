//! `cargo xtask setup`: install missing host tools and refresh the private package index.

use std::process::ExitCode;

use crate::args::KernelArgs;
use crate::kernel::apt;
use crate::session::Session;

pub fn run(a: KernelArgs) -> anyhow::Result<ExitCode> {
    let mut s = Session::for_kernels(&a);
    s.host_tools()?;
    let list = s.kernel_list()?;
    apt::PrivateApt::new(&s.cache).update(
        &list.all_suites(),
        &list.all_packages(),
        &mut s.progress,
    )?;
    eprintln!("host tools present; cache at {}", s.cache.display());
    Ok(ExitCode::SUCCESS)
}
