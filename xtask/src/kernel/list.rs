//! The kernel list, `kernel-configs/kernels.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use harness::arch::Arch;
use harness::model::{Expectation, Feature, KnownBug};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelList {
    pub default: String,
    #[serde(rename = "kernel")]
    pub kernels: BTreeMap<String, KernelSpec>,
    /// What a kernel built for another architecture takes beyond the shared fragments
    /// (`[arch.s390x]`); x86-64 needs no entry.
    #[serde(rename = "arch", default)]
    pub arches: BTreeMap<Arch, ArchSpec>,
}

/// One foreign architecture's build: its fragment (what it needs to boot under QEMU) and
/// the options of the shared fragments that are x86's own there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchSpec {
    /// Relative to kernel-configs/, merged after the kernel's own fragments.
    pub fragment: String,
    /// Options of the shared fragments this architecture does not have or cannot set
    /// (`SERIAL_8250` on s390x, `IA32_EMULATION` anywhere but x86): left out of what is asked
    /// of its builds, so that the rest is still checked in its `.config`.
    #[serde(default)]
    pub drop: Vec<String>,
}

/// What a kernel builds for when kernels.toml does not say: x86-64 alone.
pub fn x86_only() -> Vec<Arch> {
    vec![Arch::X86_64]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSpec {
    pub package: String,
    /// A pinned package version (`version = "6.12.117-1~deb12u1"`): a new upload to the
    /// archive changes nothing until `cargo xtask kernels --update` moves the pin. Without
    /// it, the newest version in the archive is used.
    #[serde(default)]
    pub version: Option<String>,
    pub suites: Vec<String>,
    pub fragments: Vec<String>,
    #[serde(default)]
    pub patches: Vec<String>,
    /// Options of the shared fragments this kernel does not have (renamed or removed).
    #[serde(default)]
    pub absent: Vec<String>,
    /// What this kernel must have (names of [`Feature`]): a scenario may be `ignored` here
    /// only for a feature not in this list.
    pub features: Vec<String>,
    /// The kernel bugs this kernel carries (`[[kernel."6.12".known_bugs]]`).
    #[serde(default)]
    pub known_bugs: Vec<KnownBugSpec>,
    /// The architectures it builds and boots for (`--arch`); default x86-64 only.
    #[serde(default = "x86_only")]
    pub arches: Vec<Arch>,
}

/// One known bug of one kernel: the scenario that shows it, its cause, and the patch that
/// fixes it in this kernel's tree (applied by `--fixes`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownBugSpec {
    /// Also the write-up's name: `docs/kernel-bugs/<name>.md`.
    pub name: String,
    /// The trial name without the kernel (`trace::format_array_fields`).
    pub scenario: String,
    /// One line.
    pub cause: String,
    /// Relative to kernel-configs/, normally `fixes/<...>.patch`.
    pub fix: String,
}

impl KernelList {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("kernels.toml");
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let list: KernelList =
            toml::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
        if !list.kernels.contains_key(&list.default) {
            bail!(
                "{}: default kernel {:?} is not in the list",
                path.display(),
                list.default
            );
        }
        for (name, k) in &list.kernels {
            if name.is_empty()
                || name == "all"
                || name.contains(',')
                || name.contains(char::is_whitespace)
            {
                bail!(
                    "{}: {name:?} cannot be a kernel's name (it must be usable in `--kernel`)",
                    path.display()
                );
            }
            parse_features(&k.features)
                .with_context(|| format!("{}: kernel {name:?}", path.display()))?;
            for b in &k.known_bugs {
                if b.name.is_empty() || b.scenario.is_empty() || b.cause.trim().is_empty() {
                    bail!(
                        "{}: kernel {name:?} has a known bug without a name, scenario or cause",
                        path.display()
                    );
                }
            }
            for a in &k.arches {
                if !a.is_native() && !list.arches.contains_key(a) {
                    bail!(
                        "{}: kernel {name:?} builds for {a}, which has no [arch.{a}] entry",
                        path.display()
                    );
                }
            }
            for f in k
                .fragments
                .iter()
                .chain(&k.patches)
                .chain(k.known_bugs.iter().map(|b| &b.fix))
            {
                if !dir.join(f).is_file() {
                    bail!(
                        "{}: kernel {name:?} names {f:?}, which is not a file in {}",
                        path.display(),
                        dir.display()
                    );
                }
            }
        }
        for (a, spec) in &list.arches {
            if !dir.join(&spec.fragment).is_file() {
                bail!(
                    "{}: [arch.{a}] names {:?}, which is not a file in {}",
                    path.display(),
                    spec.fragment,
                    dir.display()
                );
            }
        }
        Ok(list)
    }

    /// The `--kernel` choice for each of `arches`, as (name, spec, arch). A kernel named
    /// outright that does not build for an architecture asked for is an error naming those
    /// that do; `all` takes, per architecture, the kernels that build for it.
    pub fn select_for(
        &self,
        arg: Option<&str>,
        arches: &[Arch],
    ) -> anyhow::Result<Vec<(String, KernelSpec, Arch)>> {
        let selected = self.select(arg)?;
        let all = arg.map(str::trim) == Some("all");
        let mut out = Vec::new();
        for &arch in arches {
            let mut any = false;
            for (name, spec) in &selected {
                if spec.arches.contains(&arch) {
                    out.push((name.clone(), spec.clone(), arch));
                    any = true;
                } else if !all {
                    bail!(
                        "kernel {name:?} is not built for {arch}: kernels.toml gives `arches` with {arch} to {} (or add it to [kernel.\"{name}\"] arches)",
                        self.built_for(arch)
                    );
                }
            }
            if !any {
                bail!(
                    "no kernel of the list is built for {arch}: kernels.toml gives it to {}",
                    self.built_for(arch)
                );
            }
        }
        Ok(out)
    }

    /// The kernels built for `arch`, for a message.
    fn built_for(&self, arch: Arch) -> String {
        let v: Vec<&str> = self
            .kernels
            .iter()
            .filter(|(_, k)| k.arches.contains(&arch))
            .map(|(n, _)| n.as_str())
            .collect();
        if v.is_empty() {
            "none".into()
        } else {
            v.join(", ")
        }
    }

    /// The extra fragment and the dropped options of `arch` (none for x86-64).
    pub fn arch_build(&self, arch: Arch, dir: &Path) -> (Vec<PathBuf>, Vec<String>) {
        match self.arches.get(&arch) {
            Some(a) if !arch.is_native() => (vec![dir.join(&a.fragment)], a.drop.clone()),
            _ => (vec![], vec![]),
        }
    }

    /// The newest kernel of the list (by the version its name starts with: `7.3-rc` > `7.2` >
    /// `6.12`) whose ABI generation (remote_write or status_page) is `name`'s; None for a name
    /// not in the list.
    pub fn newest_of_same_abi(&self, name: &str) -> Option<String> {
        let abi = |k: &KernelSpec| k.features.iter().any(|f| f == Feature::RemoteWrite.name());
        let mine = abi(self.kernels.get(name)?);
        self.kernels
            .iter()
            .filter(|(_, k)| abi(k) == mine)
            .max_by_key(|(n, _)| version_of(n))
            .map(|(n, _)| n.clone())
    }

    /// Every suite any kernel needs, in a stable order.
    pub fn all_suites(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .kernels
            .values()
            .flat_map(|k| k.suites.iter().cloned())
            .collect();
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

    /// `6.12`, `6.12,7.2` or `all`; each kernel once, in the order given. An empty list
    /// (`--kernel ""`, `--kernel ,`) is an error, not the default.
    pub fn select(&self, arg: Option<&str>) -> anyhow::Result<Vec<(String, KernelSpec)>> {
        let mut names: Vec<String> = match arg.map(str::trim) {
            None => vec![self.default.clone()],
            Some("all") => self.kernels.keys().cloned().collect(),
            Some(list) => list
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        };
        if names.is_empty() {
            bail!(
                "--kernel {:?} names no kernel: give one of {}, a comma list, or `all`",
                arg.unwrap_or_default(),
                self.kernels.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        names.retain(|n| seen.insert(n.clone()));
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

/// The numbers a kernel's name starts with: `7.3-rc` → [7, 3].
fn version_of(name: &str) -> Vec<u32> {
    name.split(|c: char| !c.is_ascii_digit())
        .map_while(|p| p.parse().ok())
        .collect()
}

/// `kernels.toml`'s text with kernel `name`'s pin set to `version` (comments and order kept):
/// the `version` line of its section replaced, or added after its `package` line.
pub fn with_pin(text: &str, name: &str, version: &str) -> anyhow::Result<String> {
    let header = format!("[kernel.\"{name}\"]");
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == header)
        .with_context(|| format!("no {header} section"))?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .map_or(lines.len(), |i| start + 1 + i);
    let pin = format!("version = \"{version}\"");
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let key_is = |l: &str, k: &str| l.split('=').next().is_some_and(|x| x.trim() == k);
    if let Some(i) = (start + 1..end).find(|&i| key_is(lines[i], "version")) {
        out[i] = pin;
    } else {
        let after = (start + 1..end)
            .find(|&i| key_is(lines[i], "package"))
            .with_context(|| format!("{header} has no package line"))?;
        out.insert(after + 1, pin);
    }
    Ok(out.join("\n") + if text.ends_with('\n') { "\n" } else { "" })
}

/// Feature names as `kernels.toml` and `--features` write them.
pub fn parse_features(names: &[String]) -> anyhow::Result<std::collections::BTreeSet<Feature>> {
    names
        .iter()
        .map(|n| {
            Feature::from_name(n.trim()).with_context(|| {
                format!(
                    "unknown feature {n:?}: the features are {}",
                    Feature::ALL
                        .iter()
                        .map(|f| f.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        })
        .collect()
}

impl KernelSpec {
    /// What the list says this kernel must have.
    pub fn expectation(&self, name: &str) -> Expectation {
        Expectation {
            features: parse_features(&self.features).unwrap_or_default(),
            source: format!("kernel-configs/kernels.toml [kernel.\"{name}\"]"),
            known_bugs: self
                .known_bugs
                .iter()
                .map(|b| KnownBug {
                    name: b.name.clone(),
                    scenario: b.scenario.clone(),
                    cause: b.cause.clone(),
                })
                .collect(),
        }
    }

    /// The fixes of this kernel's known bugs (`--fixes`), each once, in the list's order.
    pub fn fix_paths(&self, dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = Vec::new();
        for b in &self.known_bugs {
            let p = dir.join(&b.fix);
            if !v.contains(&p) {
                v.push(p);
            }
        }
        v
    }

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
    fn a_pin_is_moved_or_added_in_its_own_section_only() {
        let text = "default = \"a\"\n# about a\n[kernel.\"a\"]\npackage = \"p\"\nversion = \"1\"\nsuites = []\n\n[kernel.\"b\"]\npackage = \"q\"\nsuites = []\n";
        let moved = with_pin(text, "a", "2").unwrap();
        assert!(
            moved.contains("[kernel.\"a\"]\npackage = \"p\"\nversion = \"2\"\n"),
            "{moved}"
        );
        assert!(moved.contains("# about a"));
        let added = with_pin(&moved, "b", "7~rc1").unwrap();
        assert!(
            added.ends_with("[kernel.\"b\"]\npackage = \"q\"\nversion = \"7~rc1\"\nsuites = []\n"),
            "{added}"
        );
        assert!(
            added.contains("version = \"2\""),
            "a's pin untouched: {added}"
        );
        assert!(with_pin(text, "c", "1").is_err());
    }

    #[test]
    fn the_shipped_list_loads_and_unknown_names_are_explained() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-configs");
        let list = KernelList::load(&dir).unwrap();
        assert_eq!(list.select(None).unwrap()[0].0, list.default);
        let e = list.select(Some("6.66")).unwrap_err().to_string();
        assert!(
            e.contains("unknown kernel \"6.66\"") && e.contains("6.12"),
            "{e}"
        );
    }

    #[test]
    fn odd_kernel_lists_are_errors_or_deduplicated_never_panics() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-configs");
        let list = KernelList::load(&dir).unwrap();
        for odd in ["", ",", " , ,", "  "] {
            let e = list.select(Some(odd)).unwrap_err().to_string();
            assert!(e.contains("names no kernel"), "{odd:?}: {e}");
        }
        let twice = list.select(Some("6.12,6.12, 6.12")).unwrap();
        assert_eq!(twice.len(), 1);
        assert_eq!(list.select(Some("all")).unwrap().len(), list.kernels.len());
    }

    /// Every known bug has its write-up, and every fix in kernel-configs/fixes/ is some
    /// kernel's: `--fixes` applies exactly the files the list names.
    #[test]
    fn known_bugs_have_write_ups_and_every_fix_is_used() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-configs");
        let list = KernelList::load(&dir).unwrap();
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/kernel-bugs");
        let mut used = std::collections::BTreeSet::new();
        for (name, k) in &list.kernels {
            for b in &k.known_bugs {
                assert!(
                    docs.join(format!("{}.md", b.name)).is_file(),
                    "{name}: {} has no docs/kernel-bugs/{}.md",
                    b.name,
                    b.name
                );
                used.insert(dir.join(&b.fix));
            }
        }
        for e in std::fs::read_dir(dir.join("fixes")).unwrap().flatten() {
            assert!(
                used.contains(&e.path()),
                "{} is no kernel's fix in kernels.toml",
                e.path().display()
            );
        }
    }

    #[test]
    fn kernels_say_which_architectures_they_build_for() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-configs");
        let list = KernelList::load(&dir).unwrap();
        // 6.12 is the foreign architectures' kernel; a kernel that says nothing is x86-64's.
        for a in [Arch::S390x, Arch::Arm64] {
            assert!(list.kernels["6.12"].arches.contains(&a), "{a}");
            let (frags, drop) = list.arch_build(a, &dir);
            assert!(frags[0].is_file() && drop.iter().any(|d| d == "IA32_EMULATION"));
        }
        assert_eq!(list.kernels["6.1"].arches, x86_only());
        assert_eq!(list.arch_build(Arch::X86_64, &dir), (vec![], vec![]));
        let sel = list
            .select_for(Some("6.12"), &[Arch::X86_64, Arch::S390x])
            .unwrap();
        let got: Vec<(String, Arch)> = sel.into_iter().map(|(n, _, a)| (n, a)).collect();
        assert_eq!(
            got,
            [("6.12".into(), Arch::X86_64), ("6.12".into(), Arch::S390x)]
        );
        let e = list
            .select_for(Some("6.1"), &[Arch::Arm64])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"6.1\" is not built for arm64") && e.contains("6.12"),
            "{e}"
        );
        // `all` takes the kernels built for the architecture.
        let all = list.select_for(Some("all"), &[Arch::S390x]).unwrap();
        assert!(all
            .iter()
            .all(|(n, _, _)| list.kernels[n].arches.contains(&Arch::S390x)));
    }

    #[test]
    fn an_arch_without_its_entry_or_an_unknown_arch_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f.config"), "CONFIG_X=y\n").unwrap();
        let head = "default = \"a\"\n[kernel.\"a\"]\npackage = \"p\"\nsuites = []\nfragments = [\"f.config\"]\nfeatures = [\"remote_write\"]\n";
        std::fs::write(
            d.path().join("kernels.toml"),
            format!("{head}arches = [\"x86_64\", \"s390x\"]\n"),
        )
        .unwrap();
        let e = format!("{:#}", KernelList::load(d.path()).unwrap_err());
        assert!(e.contains("no [arch.s390x] entry"), "{e}");
        std::fs::write(
            d.path().join("kernels.toml"),
            format!("{head}arches = [\"mips\"]\n"),
        )
        .unwrap();
        assert!(KernelList::load(d.path()).is_err());
        std::fs::write(
            d.path().join("kernels.toml"),
            format!("{head}arches = [\"arm64\"]\n[arch.arm64]\nfragment = \"f.config\"\ndrop = [\"X\"]\n"),
        )
        .unwrap();
        let l = KernelList::load(d.path()).unwrap();
        assert_eq!(l.arches[&Arch::Arm64].drop, ["X"]);
    }

    #[test]
    fn the_newest_kernel_of_the_same_abi_gives_the_selftests() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-configs");
        let list = KernelList::load(&dir).unwrap();
        assert_eq!(version_of("7.3-rc"), vec![7, 3]);
        assert!(version_of("6.12") > version_of("6.9"));
        assert_eq!(list.newest_of_same_abi("6.12").as_deref(), Some("7.3-rc"));
        assert_eq!(list.newest_of_same_abi("6.1").as_deref(), Some("6.1"));
        assert_eq!(list.newest_of_same_abi("5.0"), None);
    }

    #[test]
    fn every_kernel_states_its_features() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-configs");
        let list = KernelList::load(&dir).unwrap();
        for (name, k) in &list.kernels {
            let e = k.expectation(name);
            assert!(
                e.has(Feature::RemoteWrite) != e.has(Feature::StatusPage),
                "{name}: exactly one ABI generation"
            );
            // The failslab scenarios run on every kernel of the list: each takes the fragment
            // that builds fault injection in, and so must have it.
            assert!(
                e.has(Feature::Failslab)
                    && k.fragments.iter().any(|f| f == "fault-injection.config"),
                "{name}: fault-injection.config and the failslab feature"
            );
        }
        assert!(parse_features(&["remote_writ".into()])
            .unwrap_err()
            .to_string()
            .contains("remote_write"));
    }
}
