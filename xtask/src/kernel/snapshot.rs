//! A developer's tree, snapshotted into the cache so it can be built out of tree whatever
//! state it is in (configured or built in place, a git worktree) without writing to it.
//!
//! The snapshot holds the tree's sources and none of its build outputs (kbuild refuses an
//! out-of-tree build of a source tree that has a `.config` or objects). Each run brings it up
//! to date like rsync: a file whose size and mtime are what they were at the last sync is not
//! touched, so the build directory beside it sees only what really changed and an edit of one
//! line recompiles one file. Copies keep the tree's mtime.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The file that records, per path, the tree's size and mtime at the last sync.
const MANIFEST: &str = ".ue-snapshot.json";

/// Top-level names that are never sources: configuration, build state, VCS, our build dir.
const TOP_LEVEL_OUTPUTS: &[&str] = &[
    ".git",
    ".config",
    ".config.old",
    ".version",
    ".ue-out",
    MANIFEST,
    "Module.symvers",
    "System.map",
    "modules.order",
    "modules.builtin",
    "modules.builtin.modinfo",
    "vmlinux",
    "vmlinux.a",
    "vmlinux.o",
    "vmlinux.symvers",
    "vmlinux.unstripped",
    "vmlinux-gdb.py",
    "compile_commands.json",
];

/// Trees kbuild generates below the top (all of them are outputs).
const GENERATED_DIRS: &[&str] = &["include/config", "include/generated"];

/// How one sync went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncStats {
    pub copied: usize,
    pub removed: usize,
    pub unchanged: usize,
}

impl SyncStats {
    pub fn changed(&self) -> bool {
        self.copied + self.removed > 0
    }
}

/// What the last sync saw of a path in the tree: (size, mtime in ns).
type Seen = BTreeMap<String, (u64, i128)>;

/// Whether `rel` (a path relative to the top, `/`-separated) is a build output or other
/// non-source the snapshot leaves out. `has_cmd` says whether kbuild's `.<name>.cmd` exists
/// beside it: kbuild writes one for every file it generates.
pub fn is_output(rel: &str, has_cmd: bool) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let top = !rel.contains('/');
    if top && (TOP_LEVEL_OUTPUTS.contains(&rel) || name.starts_with(".tmp")) {
        return true;
    }
    if GENERATED_DIRS
        .iter()
        .any(|d| rel == *d || rel.starts_with(&format!("{d}/")))
    {
        return true;
    }
    // arch/<arch>/include/generated
    let parts: Vec<&str> = rel.split('/').collect();
    if parts.len() >= 4 && parts[0] == "arch" && parts[2] == "include" && parts[3] == "generated" {
        return true;
    }
    if name.starts_with('.') && (name.ends_with(".cmd") || name.ends_with(".d")) {
        return true;
    }
    let output_suffix = [
        ".o",
        ".a",
        ".ko",
        ".mod",
        ".mod.c",
        ".mod.o",
        ".lex.c",
        ".tab.c",
        ".tab.h",
        ".dwo",
        ".symtypes",
        ".su",
        ".gcno",
        ".lst",
    ];
    has_cmd || output_suffix.iter().any(|s| name.ends_with(s))
}

/// Every source path of `tree` (files and symlinks), relative, sorted.
fn sources(tree: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(dir) = stack.pop() {
        let abs = if dir.is_empty() {
            tree.to_owned()
        } else {
            tree.join(&dir)
        };
        let entries: Vec<_> = std::fs::read_dir(&abs)
            .with_context(|| format!("read {}", abs.display()))?
            .flatten()
            .collect();
        let names: std::collections::HashSet<String> = entries
            .iter()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            let has_cmd = names.contains(&format!(".{name}.cmd"));
            if is_output(&rel, has_cmd) {
                continue;
            }
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(rel);
            } else if ft.is_file() || ft.is_symlink() {
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn stat(p: &Path) -> std::io::Result<(u64, i128)> {
    let m = std::fs::symlink_metadata(p)?;
    Ok((
        m.size(),
        m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
    ))
}

/// Brings `snap` up to date with `tree`: copies what is new or changed (keeping its mtime),
/// removes what the tree no longer has. `tree` is only read.
pub fn sync(tree: &Path, snap: &Path) -> anyhow::Result<SyncStats> {
    std::fs::create_dir_all(snap).with_context(|| format!("create {}", snap.display()))?;
    let manifest = snap.join(MANIFEST);
    let before: Seen = std::fs::read(&manifest)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut now = Seen::new();
    let mut stats = SyncStats::default();
    for rel in sources(tree)? {
        let from = tree.join(&rel);
        let Ok(st) = stat(&from) else { continue };
        now.insert(rel.clone(), st);
        let to = snap.join(&rel);
        if before.get(&rel) == Some(&st) && std::fs::symlink_metadata(&to).is_ok() {
            stats.unchanged += 1;
            continue;
        }
        // Rewritten with the same bytes (a forced checkout, `touch`): the snapshot keeps its
        // file and its mtime, so nothing is recompiled for it.
        if same_content(&from, &to) {
            stats.unchanged += 1;
            continue;
        }
        copy_one(&from, &to).with_context(|| format!("copy {rel} into the snapshot"))?;
        stats.copied += 1;
    }
    for rel in before.keys().filter(|k| !now.contains_key(*k)) {
        if std::fs::remove_file(snap.join(rel)).is_ok() {
            stats.removed += 1;
        }
    }
    // Written last: a sync cut short copies again what it had not recorded.
    crate::cache::write_atomic(&manifest, &serde_json::to_vec(&now)?)?;
    Ok(stats)
}

/// Forgets what the last sync saw of `paths`, so the next one copies them afresh (after a
/// patch changed them in the snapshot).
pub fn forget(snap: &Path, paths: &[String]) -> anyhow::Result<()> {
    let manifest = snap.join(MANIFEST);
    let mut seen: Seen = std::fs::read(&manifest)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    for p in paths {
        seen.remove(p);
    }
    crate::cache::write_atomic(&manifest, &serde_json::to_vec(&seen)?)
}

fn same_content(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::symlink_metadata(a), std::fs::symlink_metadata(b)) else {
        return false;
    };
    if ma.file_type().is_symlink() || mb.file_type().is_symlink() {
        return ma.file_type().is_symlink()
            && mb.file_type().is_symlink()
            && std::fs::read_link(a).ok() == std::fs::read_link(b).ok();
    }
    ma.len() == mb.len()
        && ma.mode() == mb.mode()
        && matches!((std::fs::read(a), std::fs::read(b)), (Ok(x), Ok(y)) if x == y)
}

fn copy_one(from: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d)?;
    }
    let meta = std::fs::symlink_metadata(from)?;
    // A new file, never a write into the old one: a snapshot file may be hard-linked.
    let tmp = to.with_file_name(format!(
        ".ue-sync-{}",
        to.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::remove_file(&tmp);
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, &tmp)?;
    } else {
        std::fs::copy(from, &tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        set_mtime(&tmp, meta.mtime(), meta.mtime_nsec())?;
    }
    std::fs::rename(&tmp, to)?;
    Ok(())
}

fn set_mtime(p: &Path, secs: i64, nsec: i64) -> anyhow::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes())?;
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: secs,
            tv_nsec: nsec,
        },
    ];
    if unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("set mtime of {}", p.display()));
    }
    Ok(())
}

/// The files a unified diff changes (`+++ b/<path>`), for [`forget`].
pub fn patched_files(patch: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(patch)
        .with_context(|| format!("read patch {}", patch.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("+++ "))
        .map(|p| p.split('\t').next().unwrap_or(p).trim())
        .filter(|p| *p != "/dev/null")
        .map(|p| p.split_once('/').map_or(p, |(_, rest)| rest).to_owned())
        .collect())
}

/// A record of a tree (every path with its size, mtime and content hash), to check that it
/// was left as found.
pub fn fingerprint(tree: &Path) -> anyhow::Result<BTreeMap<PathBuf, (u64, i128, String)>> {
    use sha2::Digest;
    let mut out = BTreeMap::new();
    let mut stack = vec![tree.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            let p = e.path();
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(p.clone());
            }
            let (size, mtime) = stat(&p)?;
            let hash = if ft.is_file() {
                crate::cache::hex(&sha2::Sha256::digest(std::fs::read(&p)?))
            } else if ft.is_symlink() {
                std::fs::read_link(&p)?.display().to_string()
            } else {
                String::new()
            };
            out.insert(p.strip_prefix(tree)?.to_owned(), (size, mtime, hash));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_outputs_are_left_out_and_sources_kept() {
        for out in [
            ".config",
            "include/config/auto.conf",
            "include/generated/autoconf.h",
            "arch/x86/include/generated/asm/x.h",
            "kernel/.fork.o.cmd",
            "kernel/fork.o",
            "scripts/kconfig/parser.tab.c",
            ".git",
        ] {
            assert!(is_output(out, false), "{out}");
        }
        assert!(is_output("scripts/basic/fixdep", true));
        for src in [
            "Makefile",
            "kernel/fork.c",
            "kernel/trace/trace_events_user.c",
            "scripts/basic/fixdep.c",
            "arch/x86/include/asm/x.h",
            ".gitignore",
            "include/linux/config.h",
        ] {
            assert!(!is_output(src, false), "{src}");
        }
    }

    #[test]
    fn a_sync_copies_only_what_changed_and_never_writes_the_tree() {
        let d = tempfile::tempdir().unwrap();
        let (tree, snap) = (d.path().join("tree"), d.path().join("snap"));
        std::fs::create_dir_all(tree.join("kernel")).unwrap();
        std::fs::write(tree.join("Makefile"), "all:\n").unwrap();
        std::fs::write(tree.join("kernel/a.c"), "int a;\n").unwrap();
        std::fs::write(tree.join("kernel/a.o"), "obj").unwrap();
        std::fs::write(tree.join(".config"), "CONFIG_X=y\n").unwrap();
        let before = fingerprint(&tree).unwrap();
        let s = sync(&tree, &snap).unwrap();
        assert_eq!((s.copied, s.removed), (2, 0));
        assert!(!snap.join(".config").exists() && !snap.join("kernel/a.o").exists());
        assert_eq!(
            stat(&snap.join("kernel/a.c")).unwrap().1,
            stat(&tree.join("kernel/a.c")).unwrap().1,
            "mtime kept"
        );
        let s = sync(&tree, &snap).unwrap();
        assert_eq!((s.copied, s.unchanged), (0, 2));
        assert_eq!(fingerprint(&tree).unwrap(), before, "the tree is only read");
        // The same bytes written anew (a forced checkout): nothing to copy, mtime kept.
        let kept = stat(&snap.join("kernel/a.c")).unwrap();
        std::fs::remove_file(tree.join("kernel/a.c")).unwrap();
        std::fs::write(tree.join("kernel/a.c"), "int a;\n").unwrap();
        let s = sync(&tree, &snap).unwrap();
        assert_eq!((s.copied, s.unchanged), (0, 2));
        assert_eq!(stat(&snap.join("kernel/a.c")).unwrap(), kept);
        std::fs::write(tree.join("kernel/a.c"), "int a = 1;\n").unwrap();
        std::fs::remove_file(tree.join("Makefile")).unwrap();
        let s = sync(&tree, &snap).unwrap();
        assert_eq!((s.copied, s.removed), (1, 1));
        assert_eq!(
            std::fs::read_to_string(snap.join("kernel/a.c")).unwrap(),
            "int a = 1;\n"
        );
        assert!(!snap.join("Makefile").exists());
    }

    #[test]
    fn the_files_a_patch_changes_are_read_from_its_headers() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.patch");
        std::fs::write(
            &p,
            "--- a/kernel/trace/x.c\t2020\n+++ b/kernel/trace/x.c\t2020\n@@ -1 +1 @@\n",
        )
        .unwrap();
        assert_eq!(patched_files(&p).unwrap(), vec!["kernel/trace/x.c"]);
    }
}
