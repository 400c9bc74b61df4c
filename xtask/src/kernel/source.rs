//! Kernel source trees: the pristine tree extracted from a source package, and the per-build
//! copy (hard links, so seconds and no space) that patches are applied to.

use crate::sys::proc::RunTracked as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::kernel::apt::{Fetched, IndexEntry, PrivateApt};
use crate::sys::progress::{Progress, Step};

const COMPLETE: &str = ".ue-complete";

fn tree_dir(cache: &Path, entry: &IndexEntry) -> PathBuf {
    cache
        .join("sources")
        .join(format!("{}_{}", entry.package, entry.version))
}

/// The pristine tree of `entry`, if it has been extracted completely already.
pub fn extracted(cache: &Path, entry: &IndexEntry) -> Option<PathBuf> {
    let dir = tree_dir(cache, entry);
    dir.join(COMPLETE).exists().then_some(dir)
}

/// The pristine tree of `entry`: as extracted already (it was verified then, so the download
/// is not checked again), or downloaded, verified and extracted now.
pub fn fetch_pristine(
    apt: &PrivateApt,
    cache: &Path,
    entry: &IndexEntry,
    progress: &mut Progress,
) -> anyhow::Result<PathBuf> {
    fetch_pristine_timed(apt, cache, entry, progress).map(|(tree, _)| tree)
}

/// How long getting a pristine tree took, step by step (zero for a step the cache spared).
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct SourceTimes {
    /// Download and verification of the `.deb` (a verified copy: its check only).
    pub download_secs: f64,
    pub extract_secs: f64,
}

/// [`fetch_pristine`], timed.
pub fn fetch_pristine_timed(
    apt: &PrivateApt,
    cache: &Path,
    entry: &IndexEntry,
    progress: &mut Progress,
) -> anyhow::Result<(PathBuf, SourceTimes)> {
    if let Some(tree) = extracted(cache, entry) {
        return Ok((tree, SourceTimes::default()));
    }
    let started = std::time::Instant::now();
    let fetched = apt.fetch(cache, entry, progress)?;
    let download_secs = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let tree = pristine(cache, &fetched, progress)?;
    Ok((
        tree,
        SourceTimes {
            download_secs,
            extract_secs: started.elapsed().as_secs_f64(),
        },
    ))
}

/// Extracts the package's source tarball once into `sources/<pkg>_<ver>/`.
pub fn pristine(
    cache: &Path,
    fetched: &Fetched,
    progress: &mut Progress,
) -> anyhow::Result<PathBuf> {
    let dir = tree_dir(cache, &fetched.entry);
    if dir.join(COMPLETE).exists() {
        return Ok(dir);
    }
    let _lock = crate::cache::lock(&PathBuf::from(format!("{}.lock", dir.display())))?;
    if dir.join(COMPLETE).exists() {
        return Ok(dir);
    }
    crate::cache::need_space(
        &cache.join("sources"),
        2 << 30,
        "extracting the kernel source",
    )?;
    progress.step(
        Step::Extract,
        &format!("{} {}", fetched.entry.package, fetched.entry.version),
    );
    let tmp = cache
        .join("sources")
        .join(format!(".extract-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let label = format!("{} {}", fetched.entry.package, fetched.entry.version);
    let result = extract_into(&fetched.deb, &tmp, &label, progress).and_then(|tree| {
        let _ = std::fs::remove_dir_all(&dir); // a half-extracted tree from a killed run
        std::fs::rename(&tree, &dir)
            .with_context(|| format!("move {} to {}", tree.display(), dir.display()))?;
        std::fs::write(dir.join(COMPLETE), "")?;
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&tmp);
    result.map(|()| dir)
}

fn extract_into(
    deb: &Path,
    tmp: &Path,
    label: &str,
    progress: &mut Progress,
) -> anyhow::Result<PathBuf> {
    let data = tmp.join("data");
    let o = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(&data)
        .output_tracked()
        .with_context(|| format!("unpack {}", deb.display()))?;
    crate::sys::proc::check()?;
    if !o.status.success() {
        bail!(
            "unpack {}: {}",
            deb.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    let src = data.join("usr/src");
    let tarball = std::fs::read_dir(&src)
        .with_context(|| {
            format!(
                "{} has no usr/src: not a linux-source package?",
                deb.display()
            )
        })?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.xz"))
        .with_context(|| format!("no .tar.xz under usr/src in {}", deb.display()))?;
    let out = tmp.join("tree");
    std::fs::create_dir_all(&out)?;
    // tar says where it is every CHECKPOINT records; xz's index says how many there are.
    let total = xz_uncompressed_size(&tarball).map(|b| (b / (CHECKPOINT * 10240)) as usize);
    let mut tar = Command::new("tar");
    tar.arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(&out)
        .arg(format!("--checkpoint={CHECKPOINT}"))
        .arg("--checkpoint-action=echo=ue-checkpoint")
        .stderr(std::process::Stdio::piped());
    let (mut child, _tracked) = crate::sys::proc::spawn(&mut tar).context("run tar")?;
    let mut errors = Vec::new();
    let mut done = 0;
    for line in std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()))
        .map_while(Result::ok)
    {
        if line.contains("ue-checkpoint") {
            done += 1;
            progress.advance(
                Step::Extract,
                label,
                done * 10,
                total.map(|t| t * 10),
                "MiB",
            );
        } else {
            errors.push(line);
        }
    }
    progress.end_long_step();
    let status = child.wait().context("run tar")?;
    crate::sys::proc::check()?;
    if !status.success() {
        bail!(
            "extracting {} failed: {}",
            tarball.display(),
            errors.join("\n").trim()
        );
    }
    std::fs::remove_dir_all(&data)?;
    let top: Vec<PathBuf> = std::fs::read_dir(&out)?
        .flatten()
        .map(|e| e.path())
        .collect();
    match top.as_slice() {
        [one] if one.join("Makefile").exists() => Ok(one.clone()),
        _ => bail!("{} does not hold one kernel tree", tarball.display()),
    }
}

/// Records (10 KiB each) between two of tar's checkpoints: about 10 MiB.
const CHECKPOINT: u64 = 1024;

/// The uncompressed size of an .xz file, from its index (`xz --robot --list`: no decompression).
fn xz_uncompressed_size(file: &Path) -> Option<u64> {
    let out = Command::new("xz")
        .args(["--robot", "--list"])
        .arg(file)
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `totals  streams  blocks  compressed  uncompressed  ...`
    text.lines()
        .find(|l| l.starts_with("totals"))?
        .split('\t')
        .nth(4)?
        .parse()
        .ok()
}

/// Is `dir` a kernel source tree? (For `--kernel-tree`, checked before anything runs.)
pub fn check_kernel_tree(dir: &Path) -> anyhow::Result<()> {
    let ok = dir.join("Makefile").is_file()
        && dir.join("Kconfig").is_file()
        && dir.join("kernel/trace").is_dir();
    if !ok {
        bail!("{} is not a kernel source tree (no Makefile, Kconfig and kernel/trace/): pass the top of a Linux checkout", dir.display());
    }
    // A tree configured or built in place is fine: it is built from a snapshot of its
    // sources (crate::kernel::snapshot), never in place.
    Ok(())
}

/// Makes `dest` a hard-linked copy of `pristine` with `patches` applied, or fails with the
/// patch and hunk named and leaves nothing behind.
pub fn patched_copy(
    pristine: &Path,
    dest: &Path,
    patches: &[PathBuf],
    progress: &mut Progress,
) -> anyhow::Result<()> {
    if dest.join(COMPLETE).exists() {
        return Ok(());
    }
    let staging = dest.with_file_name(format!(".staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let result = (|| -> anyhow::Result<()> {
        progress.step(
            Step::Copy,
            &format!(
                "copy of {} with {} patch(es)",
                pristine.display(),
                patches.len()
            ),
        );
        std::fs::create_dir_all(&staging)?;
        for e in std::fs::read_dir(pristine)?.flatten() {
            let name = e.file_name();
            if name == COMPLETE {
                continue;
            }
            let o = Command::new("cp")
                .arg("-al")
                .arg(e.path())
                .arg(&staging)
                .output_tracked()?;
            crate::sys::proc::check()?;
            if !o.status.success() {
                bail!(
                    "cp -al {}: {}",
                    e.path().display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
        }
        for p in patches {
            apply_patch(&staging, pristine, p)?;
        }
        let _ = std::fs::remove_dir_all(dest);
        std::fs::rename(&staging, dest)?;
        std::fs::write(dest.join(COMPLETE), "")?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

pub fn apply_patch(tree: &Path, pristine: &Path, patch: &Path) -> anyhow::Result<()> {
    if !patch.is_file() {
        bail!("patch {} does not exist", patch.display());
    }
    // Dry run first: a patch that does not apply must not leave half its files changed.
    for dry in [true, false] {
        let mut c = Command::new("patch");
        // --fuzz=0: a patch whose context does not match exactly must fail, not land elsewhere.
        c.current_dir(tree)
            .args([
                "-p1",
                "--batch",
                "--forward",
                "--fuzz=0",
                "--no-backup-if-mismatch",
                "-r",
                "-",
                "-i",
            ])
            .arg(patch);
        if dry {
            c.arg("--dry-run");
        }
        let out = c
            .output_tracked()
            .context("run patch (install it: apt-get install patch)")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            let mut file = "";
            let mut failures = Vec::new();
            for l in stdout.lines() {
                if let Some(f) = l
                    .strip_prefix("checking file ")
                    .or_else(|| l.strip_prefix("patching file "))
                {
                    file = f;
                }
                if l.contains("FAILED")
                    || l.contains("can't find file")
                    || l.contains("Reversed")
                    || l.contains("malformed")
                {
                    failures.push(format!("{file}: {l}"));
                }
            }
            // A malformed patch is reported on stderr (`patch: **** malformed patch at line N`).
            let stderr = String::from_utf8_lossy(&out.stderr);
            failures.extend(
                stderr
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| format!("{file}: {}", l.trim())),
            );
            if failures.is_empty() {
                failures.push(stdout.trim().to_owned());
            }
            bail!(
                "patch {} does not apply:\n  {}",
                patch.display(),
                failures.join("\n  ")
            );
        }
        if !dry {
            // GNU patch writes each file anew; a file still sharing the pristine inode would
            // mean the pristine tree was changed through the hard link.
            for f in stdout
                .lines()
                .filter_map(|l| l.strip_prefix("patching file "))
            {
                let f = f.trim_matches('\'');
                if let (Ok(a), Ok(b)) = (
                    std::fs::metadata(tree.join(f)),
                    std::fs::metadata(pristine.join(f)),
                ) {
                    if a.ino() == b.ino() {
                        bail!("patching {f} modified the pristine tree through a hard link; delete {} and retry", pristine.display());
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_package_extracts_with_progress() {
        let d = tempfile::tempdir().unwrap();
        let pkg = d.path().join("pkg");
        let tree = d.path().join("linux-source-9.9");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("Makefile"), "VERSION = 9\n").unwrap();
        std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(pkg.join("usr/src")).unwrap();
        std::fs::write(
            pkg.join("DEBIAN/control"),
            "Package: linux-source-9.9\nVersion: 9.9\nArchitecture: all\nMaintainer: t <t@t>\nDescription: t\n",
        )
        .unwrap();
        let tarball = pkg.join("usr/src/linux-source-9.9.tar.xz");
        let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
        ok(Command::new("tar")
            .arg("-cJf")
            .arg(&tarball)
            .arg("-C")
            .arg(d.path())
            .arg("linux-source-9.9"));
        let deb = d.path().join("p.deb");
        ok(Command::new("dpkg-deb")
            .arg("-b")
            .arg(&pkg)
            .arg(&deb)
            .stdout(std::process::Stdio::null()));
        let tmp = d.path().join("x");
        std::fs::create_dir_all(&tmp).unwrap();
        let got = extract_into(&deb, &tmp, "t", &mut Progress::new()).unwrap();
        assert!(got.join("Makefile").exists(), "{}", got.display());
    }

    #[test]
    fn the_extract_total_comes_from_the_xz_index() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x");
        std::fs::write(&f, vec![7u8; 300_000]).unwrap();
        assert!(Command::new("xz").arg(&f).status().unwrap().success());
        assert_eq!(xz_uncompressed_size(&d.path().join("x.xz")), Some(300_000));
        assert_eq!(xz_uncompressed_size(&d.path().join("absent.xz")), None);
    }

    #[test]
    fn a_folder_that_is_not_a_kernel_tree_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let e = check_kernel_tree(d.path()).unwrap_err().to_string();
        assert!(e.contains("is not a kernel source tree"), "{e}");
        for f in ["Makefile", "Kconfig"] {
            std::fs::write(d.path().join(f), "").unwrap();
        }
        std::fs::create_dir_all(d.path().join("kernel/trace")).unwrap();
        check_kernel_tree(d.path()).unwrap();
        std::fs::write(d.path().join(".config"), "").unwrap();
        check_kernel_tree(d.path()).expect("a tree configured in place is taken");
    }
}
