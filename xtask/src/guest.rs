//! The static guest programs (`guest-tests`): built for the one target this toolchain has,
//! with the C runtime linked in, so they run as PID 1 in an initramfs with no libc.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use xshell::{cmd, Shell};

use crate::progress::Progress;

pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds the guest binaries; returns the folder that holds them.
pub fn build(root: &Path, progress: &mut Progress) -> anyhow::Result<PathBuf> {
    progress.step("guest", "static guest-tests binaries");
    let sh = Shell::new()?;
    sh.change_dir(root);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // An explicit --target keeps RUSTFLAGS off build scripts and proc-macros (serde_derive),
    // which must stay dynamically linked host programs.
    cmd!(sh, "{cargo} build --quiet --release --package guest-tests --target {TARGET}")
        .quiet()
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .run()
        .context("building the static guest programs failed")?;
    Ok(root.join("target").join(TARGET).join("release"))
}
