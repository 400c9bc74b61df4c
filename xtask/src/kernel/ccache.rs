//! ccache for kernel builds (`--ccache`), kept inside the harness cache (`<cache>/ccache`,
//! never the user's own ccache): a second cold build of the same sources (another `--kconfig`,
//! a fragment edit, a fresh cache entry) then compiles only what the change touched. Off by
//! default: with an empty store a build takes 1.5–2.3× as long (bench row 11, docs/performance.md),
//! and CI and every first build start empty.
//!
//! The compiler is wrapped by PATH, not by `make CC="ccache gcc"`: `<cache>/ccache/bin/gcc`
//! is a link to ccache, which then runs the real gcc further along PATH. kbuild records each
//! object's command line and recompiles an object whose command changed; with `CC=` on the
//! command line, switching ccache on or off would change every command, and a patched build
//! seeded from a build made the other way (every `--patch`, every mutant) would recompile the
//! whole kernel. Through PATH, the commands kbuild sees are the same either way, so the objects
//! and the build's cache key are too.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// The size ccache trims its store to (`CCACHE_MAXSIZE`), least recently used first: a
/// tinyconfig kernel is under 900 objects, so this holds every kernel of the list in many
/// configurations.
pub const MAX_SIZE: &str = "5G";

/// The program ccache is, and what the PATH wrapper calls it.
pub const PROGRAM: &str = "ccache";
const WRAPPED: &[&str] = &["gcc", "cc"];

/// `<cache>/ccache`: the store and the wrapper links, the only place ccache writes.
pub fn dir(cache_root: &Path) -> PathBuf {
    cache_root.join("ccache")
}

fn store(cache_root: &Path) -> PathBuf {
    dir(cache_root).join("store")
}

/// ccache's hit and miss counters for one build (the store's counters after minus before: a
/// `--ccache` build running at the same time in the same cache adds its own to them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
}

impl Stats {
    /// Hits as a share of the compilations ccache could cache.
    pub fn hit_rate(&self) -> Option<f64> {
        let all = self.hits + self.misses;
        (all > 0).then(|| self.hits as f64 / all as f64)
    }

    fn since(self, before: Stats) -> Stats {
        Stats {
            hits: self.hits.saturating_sub(before.hits),
            misses: self.misses.saturating_sub(before.misses),
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ccache {} hits, {} misses", self.hits, self.misses)?;
        if let Some(r) = self.hit_rate() {
            write!(f, " ({:.0}% hits)", r * 100.0)?;
        }
        Ok(())
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The environment that points ccache at the harness's store.
fn env(c: &mut Command, cache_root: &Path) {
    c.env("CCACHE_DIR", store(cache_root))
        // Absolute paths under the cache become relative, so the same source in two cache
        // entries (builds/<key>/src) hashes the same.
        .env("CCACHE_BASEDIR", cache_root)
        .env("CCACHE_MAXSIZE", MAX_SIZE);
}

/// Makes `make` compile through ccache: the wrapper links first on PATH, the store in the
/// cache. The wrapper is made on first use.
pub fn wrap(make: &mut Command, cache_root: &Path) -> anyhow::Result<()> {
    let ccache = on_path(PROGRAM)
        .context("ccache is not on PATH (the host-tools step installs the `ccache` package)")?;
    let bin = dir(cache_root).join("bin");
    std::fs::create_dir_all(&bin).with_context(|| format!("create {}", bin.display()))?;
    std::fs::create_dir_all(store(cache_root))?;
    for name in WRAPPED {
        let link = bin.join(name);
        if std::fs::read_link(&link).ok().as_deref() != Some(ccache.as_path()) {
            let tmp = bin.join(format!(".{name}-{}", std::process::id()));
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(&ccache, &tmp)
                .and_then(|()| std::fs::rename(&tmp, &link))
                .with_context(|| format!("link {} to {}", link.display(), ccache.display()))?;
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path)))?;
    make.env("PATH", path);
    env(make, cache_root);
    Ok(())
}

/// The store's counters now (zero when it has none yet).
pub fn counters(cache_root: &Path) -> Stats {
    let mut c = Command::new(PROGRAM);
    env(&mut c, cache_root);
    match c.arg("--print-stats").output() {
        Ok(o) if o.status.success() => parse_print_stats(&String::from_utf8_lossy(&o.stdout)),
        _ => Stats::default(),
    }
}

/// What one build added to the counters.
pub fn since(cache_root: &Path, before: Stats) -> Stats {
    counters(cache_root).since(before)
}

/// `ccache --print-stats`: one `name<TAB>value` line per counter.
fn parse_print_stats(text: &str) -> Stats {
    let mut s = Stats::default();
    for l in text.lines() {
        let mut w = l.split_whitespace();
        let (Some(name), Some(Ok(n))) = (w.next(), w.next().map(str::parse::<u64>)) else {
            continue;
        };
        match name {
            "direct_cache_hit" | "preprocessed_cache_hit" => s.hits += n,
            "cache_miss" => s.misses += n,
            _ => {}
        }
    }
    s
}

/// Trims the store to [`MAX_SIZE`] (`ccache --cleanup`); `cache gc` calls this and removes
/// nothing else of it. Says nothing and does nothing when there is no store or no ccache.
pub fn trim(cache_root: &Path) -> anyhow::Result<bool> {
    if !store(cache_root).exists() || on_path(PROGRAM).is_none() {
        return Ok(false);
    }
    let mut c = Command::new(PROGRAM);
    env(&mut c, cache_root);
    let o = c
        .arg("--cleanup")
        .output()
        .context("run ccache --cleanup")?;
    if !o.status.success() {
        anyhow::bail!(
            "ccache --cleanup failed in {}: {}",
            store(cache_root).display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_and_misses_are_read_from_print_stats() {
        let text = "cache_miss\t1200\ndirect_cache_hit\t30\npreprocessed_cache_hit\t4\n\
                    files_in_cache\t2400\nstats_updated_timestamp\t1700000000\n";
        let s = parse_print_stats(text);
        assert_eq!(
            s,
            Stats {
                hits: 34,
                misses: 1200
            }
        );
        let one_build = Stats {
            hits: 1234,
            misses: 1210,
        }
        .since(s);
        assert_eq!(
            one_build,
            Stats {
                hits: 1200,
                misses: 10
            }
        );
        assert!((one_build.hit_rate().unwrap() - 1200.0 / 1210.0).abs() < 1e-9);
        assert_eq!(Stats::default().hit_rate(), None);
    }

    #[test]
    fn the_wrapper_puts_ccache_first_on_path_and_its_store_in_the_cache() {
        let d = tempfile::tempdir().unwrap();
        if on_path(PROGRAM).is_none() {
            let e = wrap(&mut Command::new("make"), d.path()).unwrap_err();
            assert!(format!("{e:#}").contains("ccache"), "{e:#}");
            return;
        }
        let mut c = Command::new("make");
        wrap(&mut c, d.path()).unwrap();
        let envs: std::collections::HashMap<_, _> = c
            .get_envs()
            .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
            .collect();
        let path = envs[std::ffi::OsStr::new("PATH")].clone().unwrap();
        let first = std::env::split_paths(&path).next().unwrap();
        assert_eq!(first, d.path().join("ccache/bin"));
        let gcc = std::fs::read_link(first.join("gcc")).unwrap();
        assert_eq!(gcc.file_name().unwrap(), PROGRAM);
        assert_eq!(
            envs[std::ffi::OsStr::new("CCACHE_DIR")].as_deref(),
            Some(d.path().join("ccache/store").as_os_str())
        );
    }
}
