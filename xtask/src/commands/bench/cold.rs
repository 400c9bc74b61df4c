//! Cold builds: the recorded ones (row 5), `cargo xtask matrix` from an empty cache (row 10)
//! and builds with and without ccache (row 11), the last two on scratch caches.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context as _};

use crate::args::KernelArgs;
use crate::session::Session;

use super::table::Row;
use super::Group;
use super::{load_average, say, Setup};

/// A scratch cache under the system's temp folder, removed when dropped (rows 10 and 11: a
/// cold run must not find, nor leave, anything in the real cache).
pub(super) struct ScratchCache(PathBuf);

impl ScratchCache {
    pub(super) fn new(what: &str) -> anyhow::Result<ScratchCache> {
        let dir = std::env::temp_dir().join(format!("ue-bench-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(ScratchCache(dir))
    }
}

impl Drop for ScratchCache {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// Row 10: `cargo xtask matrix` (every kernel of the list) from an empty cache, once.
pub(super) fn cold_matrix(s: &Setup) -> anyhow::Result<Vec<Row>> {
    let scratch = ScratchCache::new("cold-matrix")?;
    let load_before = load_average();
    say(&format!(
        "10 cold matrix: `cargo xtask matrix` in-process against the empty cache {} (downloads, extraction, builds, VMs; load {load_before})",
        scratch.0.display()
    ));
    let args = crate::commands::matrix::MatrixArgs {
        kernel: KernelArgs {
            cache_dir: Some(scratch.0.clone()),
            ..s.kernel_args.clone()
        },
        run: s.run_args.clone(),
        guest: crate::args::GuestTestArgs::default(),
        // The matrix as people run it: its own default retries.
        retry: crate::args::RetryArgs::default(),
    };
    let o = crate::commands::matrix::matrix(args)?;
    let t = &o.timings;
    let sum = t.sum_of_parts();
    let load = format!("load {load_before} before, {} after", load_average());
    let mut rows = vec![Row::new(
        Group::ColdMatrix,
        "10",
        &format!(
            "cold matrix, {} kernels, empty cache, end to end",
            t.kernels.len()
        ),
        vec![t.wall_secs],
        format!(
            "one run; {}; {load}; timings in {}",
            if o.failed {
                "some trials failed"
            } else {
                "every kernel as expected"
            },
            o.dir.join("timings.json").display()
        ),
    )];
    rows.push(Row::new(
        Group::ColdMatrix,
        "10.sum",
        "  Σ of its parts, one after another",
        vec![sum],
        format!(
            "prepare {:.0} s + per kernel download, extraction, build, VM (rows below)",
            t.prepare_secs
        ),
    ));
    rows.push(Row::new(
        Group::ColdMatrix,
        "10.saving",
        "  saved by the overlap (Σ − wall)",
        vec![sum - t.wall_secs],
        format!("{:.0}% of Σ", 100.0 * (sum - t.wall_secs) / sum.max(1e-9)),
    ));
    for k in &t.kernels {
        rows.push(Row::new(
            Group::ColdMatrix,
            &format!("10.{}", k.kernel),
            &format!("  {}: download + extraction + build + VM", k.kernel),
            vec![k.sum()],
            format!(
                "download {:.0} s, extraction {:.0} s, build {:.0} s (make {}{}), VM {:.1} s",
                k.download_secs,
                k.extract_secs,
                k.build_secs,
                k.make_secs.map_or("cached".into(), |m| format!("{m:.0} s")),
                k.steps
                    .map_or(String::new(), |n| format!(", {n} kbuild steps")),
                k.vm_secs
            ),
        ));
    }
    Ok(rows)
}

/// One cold build of the default kernel in `scratch`, seeded with the real cache's package
/// index and extracted source (hard links): the make is what is measured, not the download.
pub(super) fn scratch_build(
    scratch: &Path,
    pristine: &Path,
    real_cache: &Path,
    ccache: bool,
    kconfig: &[&str],
) -> anyhow::Result<(f64, crate::kernel::build::BuildRecord)> {
    let sources = scratch.join("sources");
    std::fs::create_dir_all(&sources).with_context(|| format!("create {}", sources.display()))?;
    let seeded = scratch.join("apt").exists();
    for (from, to, flags) in [
        (real_cache.join("apt"), scratch.join("apt"), "-a"),
        (
            pristine.to_owned(),
            sources.join(pristine.file_name().unwrap_or_default()),
            "-al",
        ),
    ] {
        if seeded {
            break;
        }
        let st = Command::new("cp").arg(flags).arg(&from).arg(&to).status()?;
        if !st.success() {
            bail!("cp {flags} {} {} failed", from.display(), to.display());
        }
    }
    let args = KernelArgs {
        cache_dir: Some(scratch.to_owned()),
        no_install: true,
        ccache,
        kconfig: kconfig.iter().map(|k| k.to_string()).collect(),
        ..KernelArgs::default()
    };
    let mut session = Session::for_kernels(&args);
    session.host_tools()?;
    let started = Instant::now();
    let r = session.kernels(&args)?.remove(0);
    let wall = started.elapsed().as_secs_f64();
    let record = r
        .built
        .with_context(|| format!("no build ran in the empty cache {}", scratch.display()))?;
    Ok((wall, record))
}

/// Row 11d's change: an option few objects depend on, so a new cache key whose every object
/// sees another autoconf.h.
pub(super) const KCONFIG_CHANGE: &str = "CONFIG_IKCONFIG=y";

// Row 11: does ccache pay? One cold build of the default kernel (a) without ccache, (b) with an
// empty ccache, (c) with (b)'s ccache, warm, in another empty cache (other absolute paths),
// (d) with that ccache and one more `--kconfig` option (a new cache key).
pub(super) fn ccache_builds(s: &Setup, session: &mut Session) -> anyhow::Result<Vec<Row>> {
    let list = session.kernel_list()?;
    let pristine = session.pristine_tree(&list.default)?;
    let mut rows = vec![];
    let mut results = vec![];
    let a = ScratchCache::new("ccache-a")?;
    let b = ScratchCache::new("ccache-b")?;
    let c = ScratchCache::new("ccache-c")?;
    for (id, dir, ccache, kconfig) in [
        ("11a", &a, false, &[][..]),
        ("11b", &b, true, &[]),
        ("11c", &c, true, &[]),
        ("11d", &c, true, &[KCONFIG_CHANGE]),
    ] {
        if id == "11c" {
            std::fs::rename(
                crate::kernel::ccache::dir(&b.0),
                crate::kernel::ccache::dir(&c.0),
            )
            .context("move the warm ccache store to the third scratch cache")?;
        }
        let load = load_average();
        say(&format!(
            "{id}: cold build of {} in {}{} (load {load})",
            list.default,
            dir.0.display(),
            if ccache { ", through ccache" } else { "" }
        ));
        let (wall, rec) = scratch_build(&dir.0, &pristine, &s.cache, ccache, kconfig)?;
        results.push((id, wall, rec, load, load_average()));
    }
    let base = results.first().map(|r| r.2.build_secs);
    for (id, wall, rec, before, after) in results {
        let what = match id {
            "11a" => "cold build, no ccache (make)",
            "11b" => "cold build, empty ccache (make)",
            "11c" => "second cold build, warm ccache, other cache folder (make)",
            _ => "cold build with --kconfig CONFIG_IKCONFIG=y, warm ccache (make)",
        };
        let mut row = Row::new(
            Group::Ccache,
            id,
            what,
            vec![rec.build_secs],
            format!(
                "{} kbuild steps; whole build {wall:.0} s{}; load {before} before, {after} after",
                rec.steps,
                rec.ccache.map_or(String::new(), |c| format!("; {c}"))
            ),
        );
        if id != "11a" {
            row = row.ratio_to(base, "11a");
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The cache entry whose record names this patch: (folder, build_secs).
pub(super) fn find_build(cache: &Path, patch_name: &str) -> Option<(PathBuf, f64)> {
    for e in std::fs::read_dir(cache.join("builds")).ok()?.flatten() {
        let Ok(bytes) = std::fs::read(e.path().join("COMPLETE.json")) else {
            continue;
        };
        let Ok(rec) = serde_json::from_slice::<crate::kernel::build::BuildRecord>(&bytes) else {
            continue;
        };
        if rec.patches.iter().any(|p| p == patch_name) {
            return Some((e.path(), rec.build_secs));
        }
    }
    None
}

// Rows 5 and 6: recorded figures.

pub(super) fn cold_builds(cache: &Path) -> anyhow::Result<Vec<Row>> {
    let mut rows = vec![];
    let mut entries: Vec<_> = std::fs::read_dir(cache.join("builds"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_else(|_| vec![]);
    entries.sort();
    for e in entries {
        let Ok(bytes) = std::fs::read(e.join("COMPLETE.json")) else {
            continue;
        };
        let Ok(rec) = serde_json::from_slice::<crate::kernel::build::BuildRecord>(&bytes) else {
            continue;
        };
        if rec.steps <= 500 {
            continue;
        }
        let ident = rec
            .identity
            .split(" sha256:")
            .next()
            .unwrap_or(&rec.identity)
            .trim_start_matches("deb:")
            .to_owned();
        let mut inputs = rec.fragments.join(" + ");
        if !rec.patches.is_empty() {
            inputs.push_str(&format!(", patches {}", rec.patches.join(", ")));
        }
        let mut row = Row::new(
            Group::ColdBuilds,
            "5",
            &format!("cold build {ident} ({inputs})"),
            vec![rec.build_secs],
            "",
        );
        row.note = format!(
            "RECORDED by an earlier build (cache entry {}, {} kbuild steps, -j{}), not measured now; {}",
            rec.key,
            rec.steps,
            std::thread::available_parallelism().map_or(2, |n| n.get()),
            rec.ccache
                .map_or("no ccache".to_owned(), |c| c.to_string())
        );
        rows.push(row);
    }
    if rows.is_empty() {
        rows.push(Row::text(
            Group::ColdBuilds,
            "5",
            "cold build",
            format!(
                "no full build recorded under {}/builds; row 11 measures one now (with and without ccache)",
                cache.display()
            ),
        ));
    }
    Ok(rows)
}
