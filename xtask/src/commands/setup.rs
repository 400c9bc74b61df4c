//! `cargo xtask setup`: install missing host tools and refresh the private package index.

use std::process::ExitCode;

use clap::Args;

use crate::args::KernelArgs;
use crate::kernel::apt;
use crate::session::Session;

/// Setup installs what building and booting the list's kernels needs: which kernel, and how a
/// run goes, change nothing of that, so they are not options here.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  cargo xtask setup                  install what is missing (root), refresh the index\n  cargo xtask setup --no-install     print the install command instead\n  cargo xtask setup --arch s390x     also s390x's QEMU and cross tools"
)]
pub struct SetupArgs {
    /// Cache directory (default $UE_CACHE_DIR or ~/.cache/ue-harness).
    #[arg(long)]
    pub cache_dir: Option<std::path::PathBuf>,
    /// Do not install missing host tools; print the command instead.
    #[arg(long)]
    pub no_install: bool,
    /// Also what these architectures need (a comma list): s390x, arm64 (their QEMU, cross
    /// gcc and cross C library).
    #[arg(long = "arch", value_name = "ARCH", value_delimiter = ',')]
    pub arch: Vec<String>,
}

pub fn run(a: SetupArgs) -> anyhow::Result<ExitCode> {
    let a = KernelArgs {
        cache_dir: a.cache_dir,
        no_install: a.no_install,
        arch: a.arch,
        ..KernelArgs::default()
    };
    a.arches()?;
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
