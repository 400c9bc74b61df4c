//! The static guest programs (`guest-tests`): built for the one target this toolchain has,
//! with the C runtime linked in, so they run as PID 1 in an initramfs with no libc. Other
//! people's test programs for the guest are [`programs`].

pub mod c;
pub mod compat32;
pub mod foreign;
pub mod programs;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::sys::progress::{Progress, Step};

pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// The guest programs the initramfs takes (see images/initramfs.toml).
const PROGRAMS: [&str; 2] = ["ue-init", "ue-scenarios"];

/// Builds the guest binaries; returns a folder that holds a snapshot of them, named by their
/// content: a run that boots many times (mutants, matrix) keeps using the same binaries even
/// if cargo rewrites target/ meanwhile, and identical builds share one folder.
pub fn build(root: &Path, target: &Path, progress: &mut Progress) -> anyhow::Result<PathBuf> {
    let built = cargo_build(root, target, progress)?;
    let mut key = crate::cache::KeyBuilder::new("guest");
    let mut bytes = Vec::new();
    for p in PROGRAMS {
        let b = std::fs::read(built.join(p))
            .with_context(|| format!("read {}", built.join(p).display()))?;
        key.part(p, &b);
        bytes.push(b);
    }
    let dir = target.join("ue-guest").join(key.finish());
    if !dir.join(PROGRAMS[PROGRAMS.len() - 1]).exists() {
        let tmp = dir.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::create_dir_all(&tmp)?;
        for (p, b) in PROGRAMS.iter().zip(&bytes) {
            std::fs::write(tmp.join(p), b)?;
            std::fs::set_permissions(
                tmp.join(p),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )?;
        }
        let _ = std::fs::rename(&tmp, &dir);
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(dir)
}

fn cargo_build(root: &Path, target: &Path, progress: &mut Progress) -> anyhow::Result<PathBuf> {
    progress.step(Step::Guest, "static guest-tests binaries");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // An explicit --target keeps RUSTFLAGS off build scripts and proc-macros (serde_derive),
    // which must stay dynamically linked host programs.
    let st = crate::sys::proc::status(
        std::process::Command::new(cargo)
            .current_dir(root)
            .args(["build", "--quiet", "--release", "--package", "guest-tests"])
            .args(["--target", TARGET])
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .env("CARGO_TARGET_DIR", target),
    )
    .context("run cargo build for the static guest programs")?;
    crate::sys::proc::check()?;
    if !st.success() {
        anyhow::bail!("building the static guest programs failed ({st})");
    }
    Ok(target.join(TARGET).join("release"))
}
