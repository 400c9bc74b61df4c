//! `cargo xtask host-tools`: which way each host tool came (already there, installed from
//! this host's own suites, or from a sibling suite and why), and which are missing. With
//! `--dpkg-log-since BYTES` it also fails (exit 2) when dpkg's log shows any package removed
//! or downgraded after that offset: `.ci/run` takes the offset at its start.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;

use crate::sys::host_tools::{self, dpkg_log, plan, record};

#[derive(Args)]
pub struct HostToolsArgs {
    /// The harness cache, where the record of installs is kept (default: UE_CACHE_DIR, or
    /// ~/.cache/ue-harness).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Fail if dpkg's log shows a package removed, purged or downgraded after this byte
    /// offset (its size when a run started: `stat -c %s /var/log/dpkg.log`).
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true, value_parser = crate::args::number_in::<u64, 0, { u64::MAX }>)]
    pub dpkg_log_since: Option<u64>,
    /// dpkg's log (read only with --dpkg-log-since).
    #[arg(long, default_value = dpkg_log::DEFAULT, requires = "dpkg_log_since")]
    pub dpkg_log: PathBuf,
}

pub fn run(a: HostToolsArgs) -> anyhow::Result<ExitCode> {
    let cache = crate::cache::cache_dir(a.cache_dir.as_deref());
    let rec = record::Record::read(&cache.join(record::FILE));
    let tools = host_tools::all_tools();
    let width = tools.iter().map(|t| t.package.len()).max().unwrap_or(0);
    for t in tools {
        let way = if host_tools::present(t.check) {
            rec.way(t.package).to_string()
        } else {
            format!("missing (installed when needed: {})", t.why)
        };
        println!("{:width$}  {way}", t.package);
    }
    if let Some(since) = a.dpkg_log_since {
        let (text, rotated) = dpkg_log::read_from(&a.dpkg_log, since)?;
        let harm = dpkg_log::harmful(&text, &|x, y| plan::dpkg_version_lower("dpkg", x, y));
        let from = if rotated {
            format!(
                "{} (rotated since byte {since}: read whole)",
                a.dpkg_log.display()
            )
        } else {
            format!("{} from byte {since}", a.dpkg_log.display())
        };
        if !harm.is_empty() {
            bail!(
                "packages this machine had were removed or downgraded during the run ({from}):\n{}",
                harm.iter()
                    .map(|h| format!("  {h}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        println!("dpkg's log ({from}): nothing removed or downgraded");
    }
    Ok(ExitCode::SUCCESS)
}
