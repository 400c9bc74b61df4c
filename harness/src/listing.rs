//! The scenario list, from the guest runner itself: it is a static x86-64 binary, so it runs
//! on the host too. What each scenario needs (family, fault warnings, features) comes with it.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::model::ScenarioInfo;

pub fn list_scenarios(guest_bin_dir: &Path) -> anyhow::Result<Vec<ScenarioInfo>> {
    let bin = guest_bin_dir.join("ue-scenarios");
    let out = Command::new(&bin)
        .arg("--list-json")
        .output()
        .with_context(|| {
            format!(
                "run {} --list-json (build it with `cargo xtask build-guest`)",
                bin.display()
            )
        })?;
    if !out.status.success() {
        bail!(
            "{} --list-json failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse(&out.stdout).with_context(|| format!("parse the scenario list from {}", bin.display()))
}

/// Reads the list the guest printed; every scenario must declare its family.
pub fn parse(json: &[u8]) -> anyhow::Result<Vec<ScenarioInfo>> {
    let mut list: Vec<ScenarioInfo> = serde_json::from_slice(json)?;
    for s in &mut list {
        if s.family.is_empty() {
            bail!("scenario {} declares no family", s.name);
        }
    }
    Ok(list)
}
