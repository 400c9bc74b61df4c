//! The cache directory and its rules. Layout:
//!
//! ```text
//! $UE_CACHE_DIR (default ~/.cache/ue-harness)
//!   apt/                      private apt state
//!   downloads/*.deb           verified source packages
//!   sources/<pkg>_<ver>/      pristine extracted trees, never built in, never patched
//!   builds/<key>/src/         a hard-linked copy of a pristine tree with the patches applied
//!   builds/<key>/src/out/     its build directory (a child of the tree: kbuild then uses
//!                             relative paths, so a copy of it stays incremental)
//!   builds/<key>/COMPLETE.json  written last: without it the entry is not a build
//!   history.jsonl             each kernel run's trial outcomes, the last ones ([`history`])
//! ```
//!
//! Every entry becomes visible by a rename or by its marker written last, so an interrupted
//! run never leaves anything that looks complete. What the cache holds and what may go is
//! [`inventory`].

pub mod history;
pub mod inventory;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use sha2::{Digest, Sha256};

/// Lower-case hex, as sha256sum and apt's indexes write digests.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The scratch git kernel tree that `cargo xtask selftest -- devloop` makes and the bench's
/// edit-and-rerun row reuses (`UE_SELFTEST_TREE`, or under the cache).
pub fn selftest_tree(cache: &Path) -> PathBuf {
    std::env::var_os("UE_SELFTEST_TREE")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache.join("selftest/linux-tree"))
}

pub fn cache_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_owned();
    }
    if let Some(p) = std::env::var_os("UE_CACHE_DIR") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    base.join("ue-harness")
}

/// Builds a cache key from labelled parts; the label keeps "a"+"bc" apart from "ab"+"c".
#[derive(Default)]
pub struct KeyBuilder(Sha256);

impl KeyBuilder {
    pub fn new(recipe: &str) -> Self {
        let mut k = KeyBuilder(Sha256::new());
        k.part("recipe", recipe.as_bytes());
        k
    }

    pub fn part(&mut self, label: &str, bytes: &[u8]) -> &mut Self {
        self.0.update((label.len() as u64).to_le_bytes());
        self.0.update(label.as_bytes());
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    pub fn finish(&self) -> String {
        hex(&self.0.clone().finalize())[..16].to_owned()
    }
}

/// An exclusive lock on a cache entry, held until dropped (flock: released if we die).
pub struct Lock(#[allow(dead_code)] File);

pub fn lock(path: &Path) -> anyhow::Result<Lock> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let f = File::create(path).with_context(|| format!("create lock {}", path.display()))?;
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        eprintln!("waiting for another run that holds {}", path.display());
        // Polled rather than blocking, so that Ctrl-C still ends a run that waits here.
        while unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                bail!("lock {}: {e}", path.display());
            }
            crate::sys::proc::check()?;
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    Ok(Lock(f))
}

/// The lock on a cache entry if nobody holds it, without waiting (gc skips entries in use).
pub fn try_lock(path: &Path) -> anyhow::Result<Option<Lock>> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let f = File::create(path).with_context(|| format!("create lock {}", path.display()))?;
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Ok(None);
    }
    Ok(Some(Lock(f)))
}

/// Writes `bytes` to `path` atomically (temp file + rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(())
}

/// Free space on the filesystem holding `path`, in bytes.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statvfs(c.as_ptr(), &mut s) } == 0)
        .then(|| s.f_bavail as u64 * s.f_frsize as u64)
}

/// Fails early, with what to do, when a step needs more room than there is.
pub fn need_space(path: &Path, bytes: u64, what: &str) -> anyhow::Result<()> {
    if let Some(free) = free_bytes(path) {
        if free < bytes {
            bail!(
                "{what} needs about {} MiB under {}, but only {} MiB are free: free some space or point UE_CACHE_DIR elsewhere",
                bytes >> 20,
                path.display(),
                free >> 20
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_little_disk_space_is_said_before_starting() {
        let e = need_space(Path::new("/"), u64::MAX / 2, "extracting the kernel source")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("extracting the kernel source needs about") && e.contains("UE_CACHE_DIR"),
            "{e}"
        );
    }

    #[test]
    fn keys_change_with_every_part_and_only_then() {
        let key = |parts: &[(&str, &str)]| {
            let mut k = KeyBuilder::new("r1");
            for (l, v) in parts {
                k.part(l, v.as_bytes());
            }
            k.finish()
        };
        let base = key(&[("source", "6.12.117"), ("fragment", "CONFIG_A=y")]);
        assert_eq!(
            base,
            key(&[("source", "6.12.117"), ("fragment", "CONFIG_A=y")])
        );
        assert_ne!(
            base,
            key(&[("source", "6.12.118"), ("fragment", "CONFIG_A=y")])
        );
        assert_ne!(
            base,
            key(&[("source", "6.12.117"), ("fragment", "CONFIG_A=n")])
        );
        assert_ne!(key(&[("a", "bc")]), key(&[("a", "b"), ("c", "")]));
        assert_eq!(base.len(), 16);
    }

    #[test]
    fn cache_dir_prefers_flag_then_environment() {
        assert_eq!(cache_dir(Some(Path::new("/x"))), PathBuf::from("/x"));
    }
}
