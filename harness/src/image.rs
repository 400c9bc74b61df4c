//! Assembles the run's initramfs from `images/initramfs.toml`, the static guest binaries and
//! the run's plan.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use result_channel::Plan;
use serde::Deserialize;

use crate::initramfs::Initramfs;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub dirs: Vec<String>,
    #[serde(rename = "file")]
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    pub path: String,
    pub guest_bin: String,
}

impl Manifest {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parse {}", path.display()))
    }
}

/// Extra files (such as kselftest binaries) a run adds beside the manifest's.
pub struct ExtraFile {
    pub path: String,
    pub source: PathBuf,
}

pub fn build(
    manifest: &Manifest,
    guest_bin_dir: &Path,
    plan: &Plan,
    extra: &[ExtraFile],
) -> anyhow::Result<Vec<u8>> {
    let mut img = Initramfs::new();
    for d in &manifest.dirs {
        img.dir(d);
    }
    for f in &manifest.files {
        let src = guest_bin_dir.join(&f.guest_bin);
        let data = std::fs::read(&src).with_context(|| {
            format!(
                "guest binary {} (build it with `cargo xtask build-guest`)",
                src.display()
            )
        })?;
        img.file(&f.path, 0o755, data);
    }
    for f in extra {
        let data =
            std::fs::read(&f.source).with_context(|| format!("read {}", f.source.display()))?;
        img.file(&f.path, 0o755, data);
    }
    img.file(
        result_channel::PLAN_PATH,
        0o644,
        serde_json::to_vec_pretty(plan)?,
    );
    Ok(img.to_bytes())
}

/// An archive holding only the plan, to append to a kept image (`rerun` with a filter).
pub fn plan_only(plan: &Plan) -> anyhow::Result<Vec<u8>> {
    let mut img = Initramfs::new();
    img.dir("etc");
    img.file(
        result_channel::PLAN_PATH,
        0o644,
        serde_json::to_vec_pretty(plan)?,
    );
    Ok(img.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_manifest_parses_and_names_an_init() {
        let m =
            Manifest::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/initramfs.toml"))
                .unwrap();
        assert!(m.files.iter().any(|f| f.path == "init"));
    }

    #[test]
    fn image_holds_binaries_and_plan() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ue-init"), b"I").unwrap();
        std::fs::write(dir.path().join("ue-scenarios"), b"S").unwrap();
        let m: Manifest = toml::from_str(
            "dirs=['proc']\n[[file]]\npath='init'\nguest_bin='ue-init'\n[[file]]\npath='bin/ue-scenarios'\nguest_bin='ue-scenarios'\n",
        )
        .unwrap();
        let plan = Plan {
            scenarios: vec!["a::b".into()],
            scenario_timeout_ms: 1,
            poll_deadline_ms: 2,
            kselftests: vec![],
            stop_at_first_failure: false,
            stop_on: vec![],
            jobs: 1,
            guest_tests: vec![],
            hang_limit_ms: 3,
            defer: vec![],
        };
        let bytes = build(&m, dir.path(), &plan, &[]).unwrap();
        let entries = crate::initramfs::read_newc(&bytes).unwrap();
        let plan_entry = entries
            .iter()
            .find(|e| e.path == "etc/ue-plan.json")
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Plan>(&plan_entry.data).unwrap(),
            plan
        );
        assert_eq!(
            entries.iter().find(|e| e.path == "init").unwrap().data,
            b"I"
        );
    }

    #[test]
    fn a_missing_guest_binary_says_how_to_build_it() {
        let dir = tempfile::tempdir().unwrap();
        let m: Manifest =
            toml::from_str("dirs=[]\n[[file]]\npath='init'\nguest_bin='ue-init'\n").unwrap();
        let plan = Plan {
            scenarios: vec![],
            scenario_timeout_ms: 1,
            poll_deadline_ms: 1,
            kselftests: vec![],
            stop_at_first_failure: false,
            stop_on: vec![],
            jobs: 1,
            guest_tests: vec![],
            hang_limit_ms: 3,
            defer: vec![],
        };
        let err = format!("{:#}", build(&m, dir.path(), &plan, &[]).unwrap_err());
        assert!(
            err.contains("ue-init") && err.contains("build-guest"),
            "{err}"
        );
    }
}
