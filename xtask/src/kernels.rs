//! The kernel list, `kernel-configs/kernels.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelList {
    pub default: String,
    #[serde(rename = "kernel")]
    pub kernels: BTreeMap<String, KernelSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSpec {
    pub package: String,
    pub suites: Vec<String>,
    pub fragments: Vec<String>,
    #[serde(default)]
    pub patches: Vec<String>,
    /// Options of the shared fragments this kernel does not have (renamed or removed).
    #[serde(default)]
    pub absent: Vec<String>,
}

impl KernelList {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("kernels.toml");
        let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let list: KernelList = toml::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
        if !list.kernels.contains_key(&list.default) {
            bail!("{}: default kernel {:?} is not in the list", path.display(), list.default);
        }
        for (name, k) in &list.kernels {
            for f in k.fragments.iter().chain(&k.patches) {
                if !dir.join(f).is_file() {
                    bail!("{}: kernel {name:?} names {f:?}, which is not a file in {}", path.display(), dir.display());
                }
            }
        }
        Ok(list)
    }

    /// Every suite any kernel needs, in a stable order.
    pub fn all_suites(&self) -> Vec<String> {
        let mut v: Vec<String> = self.kernels.values().flat_map(|k| k.suites.iter().cloned()).collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn all_packages(&self) -> Vec<String> {
        let mut v: Vec<String> = self.kernels.values().map(|k| k.package.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// `6.12`, `6.12,7.2` or `all`.
    pub fn select(&self, arg: Option<&str>) -> anyhow::Result<Vec<(String, KernelSpec)>> {
        let names: Vec<String> = match arg {
            None => vec![self.default.clone()],
            Some("all") => self.kernels.keys().cloned().collect(),
            Some(list) => list.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
        };
        names
            .into_iter()
            .map(|n| match self.kernels.get(&n) {
                Some(k) => Ok((n, k.clone())),
                None => bail!(
                    "unknown kernel {n:?}: kernel-configs/kernels.toml has {} (or use --kernel-tree / --kernel-image)",
                    self.kernels.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            })
            .collect()
    }
}

impl KernelSpec {
    pub fn fragment_paths(&self, dir: &Path) -> Vec<PathBuf> {
        self.fragments.iter().map(|f| dir.join(f)).collect()
    }
    pub fn patch_paths(&self, dir: &Path) -> Vec<PathBuf> {
        self.patches.iter().map(|f| dir.join(f)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_list_loads_and_unknown_names_are_explained() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-configs");
        let list = KernelList::load(&dir).unwrap();
        assert_eq!(list.select(None).unwrap()[0].0, list.default);
        let e = list.select(Some("6.66")).unwrap_err().to_string();
        assert!(e.contains("unknown kernel \"6.66\"") && e.contains("6.12"), "{e}");
    }
}
