//! What the cache holds and what may go: downloads, extracted sources and builds, each with
//! its size, the package version it is of, and when a run last used it. `cargo xtask cache`
//! lists them; `cache gc` removes what is neither pinned (or, unpinned, the version a run
//! would use now) nor used recently. Also the clean-up of staging folders that dead
//! processes left behind.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;

/// The file a run touches in a build or source entry it uses: its mtime is the last use.
pub const LAST_USED: &str = "LAST_USED";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Download,
    Source,
    Build,
    /// `<cache>/ccache` (`--ccache`): one entry for the whole store. gc never removes it;
    /// ccache keeps it under its size limit, and gc asks it to trim ([`crate::kernel::ccache::trim`]).
    Ccache,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: Kind,
    pub path: PathBuf,
    /// `package=version` when the entry is of a Debian package (builds say so in their
    /// record; a tree build's is None).
    pub package_version: Option<(String, String)>,
    /// Bytes on disk not shared (hard links) with an entry listed before it.
    pub bytes: u64,
    pub last_used: Option<SystemTime>,
    /// For a build: its label parts (patches) from the record, for people.
    pub about: String,
}

/// Marks `dir` as used now (a build or source entry a run is about to use).
pub fn mark_used(dir: &Path) {
    let _ = std::fs::write(dir.join(LAST_USED), b"");
}

fn last_used(dir: &Path) -> Option<SystemTime> {
    let m = |p: PathBuf| p.metadata().and_then(|m| m.modified()).ok();
    m(dir.join(LAST_USED)).or_else(|| m(dir.join("COMPLETE.json")).or_else(|| m(dir.to_owned())))
}

/// `<package>_<version>` (downloads write `:` as `%3a`).
fn split_name(stem: &str) -> Option<(String, String)> {
    let (p, v) = stem.split_once('_')?;
    Some((p.to_owned(), v.replace("%3a", ":")))
}

/// Disk usage of `path`, counting each inode once across calls (`seen`).
fn disk_bytes(path: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
    let Ok(m) = path.symlink_metadata() else {
        return 0;
    };
    let mut n = 0;
    if seen.insert((m.dev(), m.ino())) {
        n += m.blocks() * 512;
    }
    if m.is_dir() {
        for e in std::fs::read_dir(path).into_iter().flatten().flatten() {
            n += disk_bytes(&e.path(), seen);
        }
    }
    n
}

/// Every entry of the cache: sources first (builds hard-link their files), then builds,
/// then downloads. `with_sizes` walks every file (seconds for a big cache).
pub fn entries(cache: &Path, with_sizes: bool) -> Vec<Entry> {
    let mut seen = HashSet::new();
    let mut out = vec![];
    let dirs = |sub: &str| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(cache.join(sub))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    };
    let mut size = |p: &Path| {
        if with_sizes {
            disk_bytes(p, &mut seen)
        } else {
            0
        }
    };
    for p in dirs("sources") {
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if !p.is_dir() || name.starts_with('.') {
            continue;
        }
        out.push(Entry {
            kind: Kind::Source,
            package_version: split_name(&name),
            bytes: size(&p),
            last_used: last_used(&p),
            about: String::new(),
            path: p,
        });
    }
    for p in dirs("builds") {
        if !p.is_dir()
            || p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        let record: Option<serde_json::Value> = std::fs::read(p.join("COMPLETE.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let identity = record
            .as_ref()
            .and_then(|r| r["identity"].as_str())
            .unwrap_or_default()
            .to_owned();
        let package_version = identity
            .strip_prefix("deb:")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|pv| pv.split_once('='))
            .map(|(p, v)| (p.to_owned(), v.to_owned()));
        let patches = record
            .as_ref()
            .and_then(|r| r["patches"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect::<Vec<_>>();
        let about = match (&record, identity.strip_prefix("tree:")) {
            (None, _) => "incomplete (no COMPLETE.json)".to_owned(),
            (_, Some(tree)) => format!("tree {tree}"),
            _ if patches.is_empty() => String::new(),
            _ => format!("+ {}", patches.join(", ")),
        };
        out.push(Entry {
            kind: Kind::Build,
            package_version,
            bytes: size(&p),
            last_used: last_used(&p),
            about,
            path: p,
        });
    }
    for p in dirs("downloads") {
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let Some(stem) = name.strip_suffix(".deb") else {
            continue;
        };
        out.push(Entry {
            kind: Kind::Download,
            package_version: split_name(stem),
            bytes: size(&p),
            last_used: p.metadata().and_then(|m| m.modified()).ok(),
            about: String::new(),
            path: p,
        });
    }
    let ccache = crate::kernel::ccache::dir(cache);
    if ccache.is_dir() {
        out.push(Entry {
            kind: Kind::Ccache,
            package_version: None,
            bytes: size(&ccache),
            last_used: ccache.metadata().and_then(|m| m.modified()).ok(),
            about: format!(
                "ccache store of --ccache builds (at most {}; gc trims it, never removes it)",
                crate::kernel::ccache::MAX_SIZE
            ),
            path: ccache,
        });
    }
    out
}

/// The package versions a run would use now (pins, or the newest the index names for
/// unpinned kernels): gc keeps every entry of them.
pub type Kept = HashSet<(String, String)>;

/// What gc removes: entries of no kept version, unused for longer than `keep`. A source or
/// download is also kept while a kept build is of its version (it is that build's origin).
pub fn collectable(entries: &[Entry], kept: &Kept, keep: Duration, now: SystemTime) -> Vec<Entry> {
    let stays = |e: &Entry| {
        let pinned = e
            .package_version
            .as_ref()
            .is_some_and(|pv| kept.contains(pv));
        let recent = e
            .last_used
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age < keep);
        pinned || recent
    };
    let kept_builds: Kept = entries
        .iter()
        .filter(|e| e.kind == Kind::Build && stays(e))
        .filter_map(|e| e.package_version.clone())
        .collect();
    entries
        .iter()
        .filter(|e| match e.kind {
            Kind::Build => !stays(e),
            Kind::Source | Kind::Download => !e
                .package_version
                .as_ref()
                .is_some_and(|pv| kept.contains(pv) || kept_builds.contains(pv)),
            Kind::Ccache => false,
        })
        .cloned()
        .collect()
}

/// Removes one entry so that it never looks complete half-way: a build loses its marker
/// first, under its lock (skipped when a run holds it); a source is renamed away first.
pub fn remove(e: &Entry) -> anyhow::Result<bool> {
    match e.kind {
        Kind::Ccache => anyhow::bail!(
            "{} is trimmed by ccache --cleanup, not removed",
            e.path.display()
        ),
        Kind::Download => std::fs::remove_file(&e.path)
            .with_context(|| format!("remove {}", e.path.display()))
            .map(|()| true),
        Kind::Build | Kind::Source => {
            let lock_path = PathBuf::from(format!("{}.lock", e.path.display()));
            let Some(_lock) = crate::cache::try_lock(&lock_path)? else {
                return Ok(false);
            };
            let _ = std::fs::remove_file(e.path.join("COMPLETE.json"));
            let _ = std::fs::remove_file(e.path.join(".complete"));
            let gone = e.path.with_file_name(format!(
                ".gc-{}-{}",
                std::process::id(),
                e.path.file_name().unwrap_or_default().to_string_lossy()
            ));
            std::fs::rename(&e.path, &gone)
                .with_context(|| format!("rename {}", e.path.display()))?;
            std::fs::remove_dir_all(&gone).with_context(|| format!("remove {}", gone.display()))?;
            let _ = std::fs::remove_file(&lock_path);
            Ok(true)
        }
    }
}

/// Staging folders and files whose process is gone (`sources/.extract-<pid>`,
/// `downloads/.partial-<pid>`, `builds/<key>/.staging-<pid>`, `builds/<key>/src/.out-<pid>`,
/// `builds/.gc-<pid>-*`, `*.tmp-<pid>`, the compat32 program's `compat32/*.tmp-<pid>`):
/// removed when the next run starts, so a killed run costs nothing but its own time. Returns
/// what was removed.
pub fn remove_dead_staging(cache: &Path) -> Vec<PathBuf> {
    let mut places: Vec<PathBuf> = ["sources", "downloads", "builds", "apt", "compat32"]
        .iter()
        .map(|s| cache.join(s))
        .collect();
    for e in std::fs::read_dir(cache.join("builds"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            places.push(e.path());
            places.push(e.path().join("src"));
        }
    }
    let mut removed = vec![];
    for dir in places {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = staging_pid(&name) else {
                continue;
            };
            if pid_alive(pid) {
                continue;
            }
            let p = e.path();
            let ok = if e.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&p).is_ok()
            } else {
                std::fs::remove_file(&p).is_ok()
            };
            if ok {
                removed.push(p);
            }
        }
    }
    removed
}

/// The pid in a staging name this project makes, if it is one.
pub fn staging_pid(name: &str) -> Option<u32> {
    let digits = |s: &str| -> Option<u32> {
        let d: String = s.chars().take_while(char::is_ascii_digit).collect();
        d.parse().ok()
    };
    for prefix in [".extract-", ".gc-", ".partial-", ".staging-", ".out-"] {
        if let Some(r) = name.strip_prefix(prefix) {
            return digits(r);
        }
    }
    let (_, r) = name.rsplit_once(".tmp-")?;
    digits(r).filter(|_| r.chars().all(|c| c.is_ascii_digit()))
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Bytes in words.
pub fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.0} MiB", b as f64 / (1u64 << 20) as f64),
        b => format!("{} KiB", b >> 10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names_carry_their_pid_and_nothing_else_does() {
        assert_eq!(staging_pid(".extract-1234"), Some(1234));
        assert_eq!(staging_pid(".gc-77-6ebd78c253805498"), Some(77));
        assert_eq!(staging_pid("resolved.tmp-99"), Some(99));
        assert_eq!(staging_pid("linux-source-6.12_6.12.117-1~deb12u1"), None);
        assert_eq!(staging_pid("6ebd78c253805498"), None);
        assert_eq!(staging_pid("x.tmp-12a"), None);
    }

    /// A dead process's staging folder goes; a live one's and real entries stay.
    #[test]
    fn only_dead_processes_staging_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let sources = d.path().join("sources");
        std::fs::create_dir_all(sources.join("linux-source-6.12_1")).unwrap();
        // A pid that cannot be running: above the kernel's pid_max limit.
        std::fs::create_dir_all(sources.join(".extract-4999999/linux")).unwrap();
        std::fs::create_dir_all(sources.join(format!(".extract-{}", std::process::id()))).unwrap();
        // The compat32 program's half-built folder of a killed run, and a finished one.
        let compat32 = d.path().join("compat32");
        std::fs::create_dir_all(compat32.join("0123456789abcdef.tmp-4999999")).unwrap();
        std::fs::create_dir_all(compat32.join("0123456789abcdef")).unwrap();
        let mut removed = remove_dead_staging(d.path());
        removed.sort();
        assert_eq!(
            removed,
            [
                compat32.join("0123456789abcdef.tmp-4999999"),
                sources.join(".extract-4999999")
            ]
        );
        assert!(compat32.join("0123456789abcdef").is_dir());
        assert!(sources.join("linux-source-6.12_1").is_dir());
        assert!(sources
            .join(format!(".extract-{}", std::process::id()))
            .is_dir());
    }

    #[test]
    fn gc_keeps_pinned_and_recent_entries() {
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let e = |pv: &str, age_days: u64| Entry {
            kind: Kind::Build,
            path: PathBuf::from(pv),
            package_version: pv.split_once('=').map(|(p, v)| (p.into(), v.into())),
            bytes: 1,
            last_used: Some(now - day * age_days as u32),
            about: String::new(),
        };
        let mut all = vec![e("k=1", 30), e("k=2", 30), e("k=3", 1), e("tree", 30)];
        // Sources of versions 1 and 3: 3's recent build keeps it, 1 has none.
        for v in ["k=1", "k=3"] {
            all.push(Entry {
                kind: Kind::Source,
                path: PathBuf::from(format!("src-{v}")),
                ..e(v, 30)
            });
        }
        let kept: Kept = [("k".to_owned(), "2".to_owned())].into();
        let gone: Vec<PathBuf> = collectable(&all, &kept, day * 14, now)
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(
            gone,
            [
                PathBuf::from("k=1"),
                PathBuf::from("tree"),
                PathBuf::from("src-k=1")
            ]
        );
    }

    /// gc on a real folder: an old build of another version goes, marker first; one a run
    /// holds the lock of stays; sizes count hard-linked files once.
    #[test]
    fn gc_removes_old_entries_but_not_one_in_use() {
        let d = tempfile::tempdir().unwrap();
        let build = |key: &str, version: &str| {
            let e = d.path().join("builds").join(key);
            std::fs::create_dir_all(e.join("src/out")).unwrap();
            std::fs::write(e.join("src/out/bzImage"), vec![0u8; 8192]).unwrap();
            std::fs::write(
                e.join("COMPLETE.json"),
                format!(r#"{{"identity": "deb:k={version} sha256:00", "patches": []}}"#),
            )
            .unwrap();
            e
        };
        let (old, held) = (build("aaaa", "1"), build("bbbb", "1"));
        std::fs::hard_link(old.join("src/out/bzImage"), held.join("src/out/linked")).unwrap();
        let all = entries(d.path(), true);
        assert_eq!(all.len(), 2);
        assert!(all
            .iter()
            .all(|e| e.package_version == Some(("k".into(), "1".into()))));
        assert!(
            all[0].bytes >= 8192 && all[1].bytes < all[0].bytes + 8192,
            "{all:?}"
        );
        let _lock = crate::cache::try_lock(&d.path().join("builds/bbbb.lock")).unwrap();
        let far = SystemTime::now() + Duration::from_secs(365 * 86_400);
        let gone = collectable(&all, &Kept::new(), Duration::from_secs(86_400), far);
        assert_eq!(gone.len(), 2);
        assert!(remove(&gone[0]).unwrap());
        assert!(!remove(&gone[1]).unwrap(), "a held entry stays");
        assert!(!old.exists() && held.join("COMPLETE.json").exists());
        // Kept by version: nothing goes.
        let kept: Kept = [("k".to_owned(), "1".to_owned())].into();
        assert!(collectable(&entries(d.path(), false), &kept, Duration::ZERO, far).is_empty());
    }

    /// The ccache store is listed with its size, and no age or version makes gc remove it.
    #[test]
    fn the_ccache_store_is_listed_and_never_collected() {
        let d = tempfile::tempdir().unwrap();
        let store = crate::kernel::ccache::dir(d.path()).join("store/a");
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(store.join("object"), vec![0u8; 8192]).unwrap();
        let all = entries(d.path(), true);
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].kind, Kind::Ccache);
        assert!(all[0].bytes >= 8192, "{all:?}");
        let far = SystemTime::now() + Duration::from_secs(365 * 86_400);
        assert!(collectable(&all, &Kept::new(), Duration::ZERO, far).is_empty());
        assert!(remove(&all[0]).is_err());
        assert!(store.join("object").exists());
    }
}
