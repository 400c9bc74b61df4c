//! `cargo xtask cache`: what the cache holds, with sizes; `cache gc` removes what is neither
//! pinned (for an unpinned kernel: the version a run would use now) nor used recently, and
//! trims the ccache store (`--ccache` builds) to its size limit instead of removing it.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};

use crate::cache::inventory::{self, Kept};
use crate::kernel::apt::PrivateApt;
use crate::session::Session;

#[derive(Args)]
pub struct CacheArgs {
    /// Cache directory (default $UE_CACHE_DIR or ~/.cache/ue-harness).
    #[arg(long, global = true)]
    pub cache_dir: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub cmd: Option<CacheCmd>,
}

#[derive(Subcommand)]
pub enum CacheCmd {
    /// Remove entries that are neither pinned nor used within --keep-days.
    Gc {
        /// Entries used within this many days stay.
        #[arg(long, default_value_t = 14, allow_negative_numbers = true, value_parser = crate::args::number_in::<u64, 0, 36_500>)]
        keep_days: u64,
        /// Say what would go, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(a: CacheArgs) -> anyhow::Result<ExitCode> {
    let s = Session::new(a.cache_dir.as_deref(), false);
    let kept = kept_versions(&s)?;
    let entries = inventory::entries(&s.cache, true);
    let now = SystemTime::now();
    match a.cmd {
        None => {
            let mut total = 0;
            for e in &entries {
                total += e.bytes;
                let pv = e
                    .package_version
                    .as_ref()
                    .map_or("-".to_owned(), |(p, v)| format!("{p} {v}"));
                let age = e
                    .last_used
                    .and_then(|t| now.duration_since(t).ok())
                    .map_or("-".to_owned(), |d| format!("{} d", d.as_secs() / 86_400));
                // A pin, or the newest version an unpinned kernel would use now: gc keeps it.
                let pin = if e
                    .package_version
                    .as_ref()
                    .is_some_and(|pv| kept.contains(pv))
                {
                    "current"
                } else {
                    ""
                };
                println!(
                    "{:>9}  {:<8}  used {age:>5} ago  {pin:<7}  {pv} {}  {}",
                    inventory::human(e.bytes),
                    format!("{:?}", e.kind).to_lowercase(),
                    e.about,
                    e.path.display()
                );
            }
            println!(
                "{:>9}  total in {}",
                inventory::human(total),
                s.cache.display()
            );
        }
        Some(CacheCmd::Gc { keep_days, dry_run }) => {
            if !dry_run {
                for p in inventory::remove_dead_staging(&s.cache) {
                    println!("removed {}, left by a run that was killed", p.display());
                }
            }
            let keep = Duration::from_secs(keep_days * 86_400);
            let gone = inventory::collectable(&entries, &kept, keep, now);
            let mut freed = 0;
            for e in &gone {
                let removed = if dry_run { true } else { inventory::remove(e)? };
                if removed {
                    freed += e.bytes;
                    println!(
                        "{} {} ({})",
                        if dry_run { "would remove" } else { "removed" },
                        e.path.display(),
                        inventory::human(e.bytes)
                    );
                } else {
                    println!("kept {} (a run is using it)", e.path.display());
                }
            }
            if !dry_run && crate::kernel::ccache::trim(&s.cache)? {
                println!(
                    "trimmed {} to at most {} (ccache --cleanup)",
                    crate::kernel::ccache::dir(&s.cache).display(),
                    crate::kernel::ccache::MAX_SIZE
                );
            }
            println!(
                "{} {} in {} entries; kept what is pinned or used within {keep_days} days",
                if dry_run { "would free" } else { "freed" },
                inventory::human(freed),
                gone.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The package versions a run would use now: each kernel's pin, else the newest version the
/// cached index names (no network: gc works offline).
fn kept_versions(s: &Session) -> anyhow::Result<Kept> {
    let list = s.kernel_list()?;
    let apt = PrivateApt::new(&s.cache);
    Ok(list
        .kernels
        .values()
        .filter_map(|k| {
            let v = match &k.version {
                Some(v) => v.clone(),
                None => apt.newest(&k.package).ok()?.version,
            };
            Some((k.package.clone(), v))
        })
        .collect())
}
