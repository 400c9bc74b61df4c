//! `cargo xtask kernels`: the kernel list, for people and for CI's job matrix (`--json`).

use std::process::ExitCode;

use clap::Args;

use crate::session::Session;

#[derive(Args)]
pub struct KernelsArgs {
    /// Print the names as a JSON array (the CI workflow's matrix reads this).
    #[arg(long)]
    pub json: bool,
    /// Print the cache key this kernel builds under, resolved against the package index now
    /// (package version, compiler, fragments, patches): CI's cache key.
    #[arg(long, value_name = "KERNEL")]
    pub cache_key: Option<String>,
}

pub fn run(a: KernelsArgs) -> anyhow::Result<ExitCode> {
    let mut s = Session::new(None, false);
    if let Some(name) = &a.cache_key {
        println!("{}", s.kernel_cache_key(name)?);
        return Ok(ExitCode::SUCCESS);
    }
    let list = s.kernel_list()?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&list.kernels.keys().collect::<Vec<_>>())?
        );
        return Ok(ExitCode::SUCCESS);
    }
    for (name, k) in &list.kernels {
        let default = if *name == list.default {
            " (default)"
        } else {
            ""
        };
        println!(
            "{name}{default}\t{} ({})\tfeatures: {}",
            k.package,
            k.suites.join(", "),
            k.features.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
