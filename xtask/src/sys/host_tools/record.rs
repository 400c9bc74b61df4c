//! Which way each host tool's package came, kept in the cache (`host-tools.json`): what the
//! harness installed, from which suite and why. A tool found on the machine with no entry
//! here was already there.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::plan::Way;

/// The file under the cache.
pub const FILE: &str = "host-tools.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Package name → how the harness installed it.
    pub installed: BTreeMap<String, Installed>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    #[serde(flatten)]
    pub way: Way,
    /// Seconds since the epoch.
    pub at: u64,
}

impl Record {
    /// The record, or an empty one when there is none (or it cannot be read: it only
    /// informs, and a fresh one is written at the next install).
    pub fn read(path: &Path) -> Record {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn installed(&mut self, package: &str, way: Way) {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.installed
            .insert(package.to_owned(), Installed { way, at });
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::cache::write_atomic(path, &serde_json::to_vec_pretty(self)?)
    }

    /// How a present tool's package came: as recorded, else it was already there.
    pub fn way(&self, package: &str) -> Way {
        self.installed
            .get(package)
            .map_or(Way::AlreadyThere, |i| i.way.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_unknown_packages_were_already_there() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(FILE);
        let mut r = Record::read(&path);
        r.installed(
            "qemu-system-x86",
            Way::Sibling {
                suite: "bookworm-backports".into(),
                because: vec!["qemu-utils 1:10 would be removed".into()],
            },
        );
        r.installed("flex", Way::HostSuites);
        r.write(&path).unwrap();
        let back = Record::read(&path);
        assert_eq!(back, r);
        assert!(
            matches!(back.way("qemu-system-x86"), Way::Sibling { suite, .. } if suite == "bookworm-backports")
        );
        assert_eq!(back.way("make"), Way::AlreadyThere);
        std::fs::write(&path, "not json").unwrap();
        assert_eq!(Record::read(&path), Record::default());
    }
}
