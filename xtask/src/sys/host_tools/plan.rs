//! How missing host tools come to this machine without removing or downgrading anything.
//!
//! Every question is asked of a private apt state under the cache (`<cache>/host-apt`: its
//! own index lists and downloads; the host's sources, preferences and dpkg status as they
//! are), so planning runs as any user and never touches the host's own apt lists. It knows
//! two views of the archive:
//! - the host's suites, exactly as its sources list them;
//! - the same with their `-backports` siblings added (`bookworm-backports` beside
//!   `bookworm`), which apt ranks low, so they serve only what is asked of them by name.
//!
//! A machine image may carry a package from a backports suite (this project's image has
//! `qemu-utils` 10.0 from bookworm-backports). Installing QEMU from bookworm would then
//! remove it. The plan finds the suite that carries the installed version and takes the
//! tools that clash from there, the rest from the host's suites; each step is simulated
//! before it runs, and runs with `--no-remove`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use super::sources::HostSources;
use crate::sys::proc::RunTracked as _;

/// Where a package came from, as `cargo xtask host-tools` and `.ci/run` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "way", rename_all = "kebab-case")]
pub enum Way {
    /// On the machine before the harness looked.
    AlreadyThere,
    /// Installed from the suites the host's sources list.
    HostSuites,
    /// Installed from a suite the host's sources do not list, because from the host's own
    /// suites it would have removed or downgraded `because`.
    Sibling { suite: String, because: Vec<String> },
}

impl std::fmt::Display for Way {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Way::AlreadyThere => write!(f, "already there"),
            Way::HostSuites => write!(f, "installed from this host's own apt suites"),
            Way::Sibling { suite, because } => write!(
                f,
                "installed from {suite}, because from this host's own suites: {}",
                because.join("; ")
            ),
        }
    }
}

/// What apt would do to a package the machine already has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Harm {
    Removed {
        package: String,
        version: String,
    },
    Downgraded {
        package: String,
        from: String,
        to: String,
    },
    /// apt found no solution at all (its own words, first lines): not harm done, but no
    /// clean install either.
    Unsolvable(String),
}

impl std::fmt::Display for Harm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Harm::Removed { package, version } => write!(f, "{package} {version} would be removed"),
            Harm::Downgraded { package, from, to } => {
                write!(f, "{package} would be downgraded from {from} to {to}")
            }
            Harm::Unsolvable(said) => write!(f, "apt finds no solution: {said}"),
        }
    }
}

/// The removals and downgrades in `apt-get -s install` output: `Remv P [V]` lines, and
/// `Inst P [old] (new ...)` lines whose new version is lower (`lower(new, old)`).
pub fn harmful_changes(simulated: &str, lower: &dyn Fn(&str, &str) -> bool) -> Vec<Harm> {
    let mut out = vec![];
    for l in simulated.lines() {
        let mut words = l.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Remv"), Some(p)) => out.push(Harm::Removed {
                package: p.to_owned(),
                version: bracketed(l, '[', ']').unwrap_or("?").to_owned(),
            }),
            (Some("Inst"), Some(p)) => {
                // `Inst P [installed] (candidate ...)`: an upgrade or downgrade; a new
                // install has no `[installed]` right after the name.
                let rest = l.split_once(p).map_or("", |(_, r)| r.trim_start());
                if !rest.starts_with('[') {
                    continue;
                }
                let (Some(old), Some(new)) = (bracketed(rest, '[', ']'), bracketed(rest, '(', ')'))
                else {
                    continue;
                };
                let new = new.split_whitespace().next().unwrap_or(new);
                if lower(new, old) {
                    out.push(Harm::Downgraded {
                        package: p.to_owned(),
                        from: old.to_owned(),
                        to: new.to_owned(),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

fn bracketed(l: &str, open: char, close: char) -> Option<&str> {
    let a = l.find(open)?;
    let b = a + l[a..].find(close)?;
    Some(&l[a + 1..b])
}

/// One apt-get install: packages and where they come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub way: Way,
    pub packages: Vec<String>,
}

/// The installs, in order, that bring every missing package and remove nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    /// Everything from the host's suites: the plain install.
    pub fn from_host_suites(packages: &[String]) -> Plan {
        Plan {
            steps: vec![Step {
                way: Way::HostSuites,
                packages: packages.to_vec(),
            }],
        }
    }
}

impl Step {
    /// The sources its install is asked of.
    fn view(&self) -> View {
        match self.way {
            Way::Sibling { .. } => View::WithSiblings,
            _ => View::Host,
        }
    }

    /// The suite it is taken from by name (`-t`), if any.
    fn target(&self) -> Option<&str> {
        match &self.way {
            Way::Sibling { suite, .. } => Some(suite),
            _ => None,
        }
    }
}

/// The file name of a view's sources list (in the cache, or a pasted command's folder).
fn list_name(view: View) -> &'static str {
    match view {
        View::Host => "host.list",
        View::WithSiblings => "with-siblings.list",
    }
}

/// Which sources a question is asked of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    /// Exactly the host's sources.
    Host,
    /// The host's sources and their backports siblings.
    WithSiblings,
}

/// The system's package tools (replaceable in tests by fakes on a private path) and the
/// private apt state they are run against.
pub struct HostApt {
    /// `<cache>/host-apt`.
    root: PathBuf,
    sources: HostSources,
    pub apt_get: String,
    pub apt_cache: String,
    pub dpkg: String,
}

impl HostApt {
    pub fn new(cache: &Path, sources: HostSources) -> HostApt {
        HostApt {
            root: cache.join("host-apt"),
            sources,
            apt_get: "apt-get".into(),
            apt_cache: "apt-cache".into(),
            dpkg: "dpkg".into(),
        }
    }

    /// The sources list of a view: the host's own `sources.list` (its `sources.list.d` is
    /// read where it is), and for the wider view the sibling suites after it.
    fn list_text(&self, view: View) -> String {
        let mut t =
            std::fs::read_to_string(self.sources.etc_apt.join("sources.list")).unwrap_or_default();
        if view == View::WithSiblings {
            if !t.is_empty() && !t.ends_with('\n') {
                t.push('\n');
            }
            for e in self.sources.siblings() {
                t.push_str(&e.line());
                t.push('\n');
            }
        }
        t
    }

    fn list_path(&self, view: View) -> PathBuf {
        self.root.join(list_name(view))
    }

    /// apt's options for a view; `lists` is the index folder (the cache's, or a pasted
    /// command's own temporary one). The binary caches are off: two views share one lists
    /// folder, and a cache built for one must never answer for the other.
    fn opts(&self, list: &str, lists: &str) -> Vec<String> {
        vec![
            format!("-oDir::Etc::SourceList={list}"),
            format!(
                "-oDir::Etc::SourceParts={}",
                self.sources.etc_apt.join("sources.list.d").display()
            ),
            format!("-oDir::State::Lists={lists}"),
            format!("-oDir::Cache={lists}/cache"),
            "-oDir::Cache::pkgcache=".into(),
            "-oDir::Cache::srcpkgcache=".into(),
            // Our folders, which apt's _apt sandbox user may not reach (a home folder).
            "-oAPT::Sandbox::User=root".into(),
        ]
    }

    fn apt(&self, tool: &str, view: View) -> Command {
        let mut c = Command::new(tool);
        c.args(self.opts(
            &self.list_path(view).display().to_string(),
            &self.root.join("lists").display().to_string(),
        ))
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C");
        c
    }

    /// Writes both views' lists and refreshes the index of the wider one (which holds the
    /// other's). Runs as any user: the state is ours, so apt's locks are not needed, and two
    /// harness runs at once take turns by our own lock.
    pub fn refresh(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.root.join("lists/partial"))
            .with_context(|| format!("create {}", self.root.display()))?;
        std::fs::create_dir_all(self.root.join("lists/cache/archives/partial"))?;
        let _lock = crate::cache::lock(&self.root.join("refresh.lock"))?;
        for view in [View::Host, View::WithSiblings] {
            let path = self.list_path(view);
            std::fs::write(&path, self.list_text(view))
                .with_context(|| format!("write {}", path.display()))?;
        }
        let out = self
            .apt(&self.apt_get, View::WithSiblings)
            .args(["-q", "-oDebug::NoLocking=1", "update"])
            .output_tracked()
            .with_context(|| format!("run {} update (private index)", self.apt_get))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || stderr.lines().any(|l| l.starts_with("E: ")) {
            // Offline: an index from an earlier refresh still plans (every step is simulated
            // against this machine's real state before it runs); say so once.
            if self.has_index() {
                eprintln!(
                    "warning: could not refresh this host's package index ({}); planning with the one from the last refresh",
                    stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("apt-get update failed").trim()
                );
                return Ok(());
            }
            bail!(
                "could not read this host's package index (apt-get update into {} failed): {}",
                self.root.join("lists").display(),
                stderr.trim()
            );
        }
        Ok(())
    }

    /// Held while one harness run plans and installs, so that two at once do not both
    /// install (apt would refuse the second on dpkg's lock).
    pub fn lock_install(&self) -> anyhow::Result<crate::cache::Lock> {
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("create {}", self.root.display()))?;
        crate::cache::lock(&self.root.join("install.lock"))
    }

    /// Whether an earlier refresh left package indexes behind.
    fn has_index(&self) -> bool {
        std::fs::read_dir(self.root.join("lists")).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
        })
    }

    /// `apt-get -s install` of `packages` in a view, with `-t target`: what it would harm.
    fn simulate(
        &self,
        view: View,
        target: Option<&str>,
        packages: &[String],
    ) -> anyhow::Result<Vec<Harm>> {
        let mut c = self.apt(&self.apt_get, view);
        c.args(["-s", "install", "--no-install-recommends"]);
        if let Some(t) = target {
            c.args(["-t", t]);
        }
        let out = c
            .args(packages)
            .output_tracked()
            .with_context(|| format!("run {} -s install", self.apt_get))?;
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            let why: Vec<&str> = said
                .lines()
                .map(str::trim)
                .filter(|l| l.contains("Breaks:") || l.contains("Depends:") || l.starts_with("E:"))
                .take(3)
                .collect();
            return Ok(vec![Harm::Unsolvable(if why.is_empty() {
                said.trim().lines().last().unwrap_or("").to_owned()
            } else {
                why.join(" / ")
            })]);
        }
        Ok(harmful_changes(&said, &|a, b| self.version_lower(a, b)))
    }

    fn version_lower(&self, a: &str, b: &str) -> bool {
        dpkg_version_lower(&self.dpkg, a, b)
    }

    /// The suites (with siblings) that carry `package` at exactly `version`.
    fn suites_carrying(&self, package: &str, version: &str) -> anyhow::Result<Vec<String>> {
        let out = self
            .apt(&self.apt_cache, View::WithSiblings)
            .args(["madison", package])
            .output_tracked()
            .with_context(|| format!("run {} madison {package}", self.apt_cache))?;
        Ok(madison_suites(
            &String::from_utf8_lossy(&out.stdout),
            version,
        ))
    }

    /// The plan for `packages` (all missing): from the host's suites where that is clean;
    /// the rest from the suite that carries what the host's suites would harm.
    pub fn plan(&self, packages: &[String]) -> anyhow::Result<Plan> {
        let harm = self.simulate(View::Host, None, packages)?;
        if harm.is_empty() {
            return Ok(Plan::from_host_suites(packages));
        }
        // The suites to try: first those carrying the installed version of what would be
        // removed or downgraded (the image's own case), then every backports suite, listed
        // or not (where the host lists one, apt refuses instead of naming a removal).
        let mut targets: Vec<String> = Vec::new();
        for h in &harm {
            if let Harm::Removed { package, version }
            | Harm::Downgraded {
                package,
                from: version,
                ..
            } = h
            {
                for s in self.suites_carrying(package, version)? {
                    if !targets.contains(&s) {
                        targets.push(s);
                    }
                }
            }
        }
        for s in self.sources.backports() {
            if !targets.contains(&s) {
                targets.push(s);
            }
        }
        let mut host = Vec::new();
        let mut rest: Vec<(String, Vec<Harm>)> = Vec::new();
        for p in packages {
            let h = self.simulate(View::Host, None, std::slice::from_ref(p))?;
            if h.is_empty() {
                host.push(p.clone());
            } else {
                rest.push((p.clone(), h));
            }
        }
        if rest.is_empty() {
            // Each is clean alone, but not all together: no order of ours fixes that.
            bail!(no_clean_install(packages, &harm, &[]));
        }
        let clashing: Vec<String> = rest.iter().map(|(p, _)| p.clone()).collect();
        let because: Vec<String> = harm.iter().map(ToString::to_string).collect();
        let mut tried = Vec::new();
        for t in &targets {
            let h = self.simulate(View::WithSiblings, Some(t), &clashing)?;
            if h.is_empty() {
                let mut steps = Vec::new();
                if !host.is_empty() {
                    steps.push(Step {
                        way: Way::HostSuites,
                        packages: host,
                    });
                }
                steps.push(Step {
                    way: Way::Sibling {
                        suite: t.clone(),
                        because,
                    },
                    packages: clashing,
                });
                return Ok(Plan { steps });
            }
            tried.push((t.clone(), h));
        }
        bail!(no_clean_install(&clashing, &harm, &tried))
    }

    /// The argv of each step's install, as root; `lists` is the index folder to use.
    fn step_commands(&self, step: &Step, list_dir: &str, lists: &str) -> Vec<String> {
        let name = list_name(step.view());
        let mut argv = vec!["apt-get".to_owned()];
        argv.extend(self.opts(&format!("{list_dir}/{name}"), lists));
        // The downloaded .debs are not kept: they would sit in the cache, owned by root.
        argv.push("-oAPT::Keep-Downloaded-Packages=false".to_owned());
        // Another apt at work (unattended upgrades, a person): wait for dpkg's lock, not fail.
        argv.push("-oDPkg::Lock::Timeout=300".to_owned());
        argv.extend(["install", "-y", "--no-install-recommends", "--no-remove"].map(str::to_owned));
        if let Some(suite) = step.target() {
            argv.extend(["-t".to_owned(), suite.to_owned()]);
        }
        argv.extend(step.packages.iter().cloned());
        argv
    }

    /// Carries the plan out as root (`prefix` is empty, or `sudo -n`): each step simulated
    /// again first (the machine may have changed since the plan), then installed with
    /// `--no-remove`, so apt stops rather than remove anything. apt's output goes to the user.
    pub fn install(&self, plan: &Plan, prefix: &[String]) -> anyhow::Result<()> {
        for step in &plan.steps {
            let harm = self.simulate(step.view(), step.target(), &step.packages)?;
            if !harm.is_empty() {
                bail!(
                    "installing {} would now change packages this machine already has, so it was not installed:\n{}",
                    step.packages.join(" "),
                    lines(&harm)
                );
            }
            let mut argv: Vec<String> = prefix.to_vec();
            let mut own = self.step_commands(
                step,
                &self.root.display().to_string(),
                &self.root.join("lists").display().to_string(),
            );
            own[0] = self.apt_get.clone();
            argv.extend(own);
            let status = Command::new(&argv[0])
                .args(&argv[1..])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .with_context(|| format!("run {}", argv[0]))?;
            if !status.success() {
                bail!("`{}` failed ({status})", shell_words(&argv));
            }
        }
        Ok(())
    }

    /// The whole plan as one command line that works when pasted on this host (with
    /// `sudo` when not root). A plan from the host's suites alone is the usual apt-get pair;
    /// one with a sibling suite writes the same two lists the harness uses into a temporary
    /// folder, so the paste needs nothing from the harness's cache.
    pub fn shell_command(&self, plan: &Plan, sudo: bool) -> String {
        let su = if sudo { "sudo " } else { "" };
        if plan.steps.iter().all(|s| s.way == Way::HostSuites) {
            let pkgs: Vec<&str> = plan
                .steps
                .iter()
                .flat_map(|s| s.packages.iter().map(String::as_str))
                .collect();
            return format!(
                "{su}apt-get update && {su}apt-get install -y --no-install-recommends --no-remove {}",
                pkgs.join(" ")
            );
        }
        let mut script = vec![
            "set -e".to_owned(),
            "d=$(mktemp -d)".to_owned(),
            "mkdir -p \"$d/partial\" \"$d/cache/archives/partial\"".to_owned(),
        ];
        for view in [View::Host, View::WithSiblings] {
            let name = list_name(view);
            let host_list = self.sources.etc_apt.join("sources.list");
            let mut s = format!("{{ cat {} 2>/dev/null || true; ", host_list.display());
            if view == View::WithSiblings {
                for e in self.sources.siblings() {
                    s.push_str(&format!("echo \"{}\"; ", e.line()));
                }
            }
            s.push_str(&format!("}} > \"$d/{name}\""));
            script.push(s);
        }
        let mut update = vec!["apt-get".to_owned()];
        update.extend(self.opts("$d/with-siblings.list", "$d"));
        update.extend(["-q".to_owned(), "update".to_owned()]);
        script.push(update.join(" ").replace("$d", "\"$d\""));
        for step in &plan.steps {
            script.push(
                self.step_commands(step, "$d", "$d")
                    .join(" ")
                    .replace("$d", "\"$d\""),
            );
        }
        script.push("rm -rf \"$d\"".to_owned());
        format!("{su}sh -c '{}'", script.join("; "))
    }
}

/// `a` is a lower Debian version than `b` (dpkg's own comparison).
pub fn dpkg_version_lower(dpkg: &str, a: &str, b: &str) -> bool {
    Command::new(dpkg)
        .args(["--compare-versions", a, "lt", b])
        .status()
        .is_ok_and(|s| s.success())
}

/// The suites of `apt-cache madison` lines (`P | V | URI SUITE/COMPONENT ARCH Packages`)
/// whose version is `version`.
fn madison_suites(text: &str, version: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let mut cols = l.split('|').map(str::trim);
            let (_, v, from) = (cols.next()?, cols.next()?, cols.next()?);
            if v != version {
                return None;
            }
            let suite = from.split_whitespace().nth(1)?;
            Some(suite.split('/').next().unwrap_or(suite).to_owned())
        })
        .collect()
}

fn lines(harm: &[Harm]) -> String {
    harm.iter()
        .map(|h| format!("  {h}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn no_clean_install(packages: &[String], harm: &[Harm], tried: &[(String, Vec<Harm>)]) -> String {
    let mut m = format!(
        "installing {} would change packages this machine already has, so nothing was installed:\n{}",
        packages.join(" "),
        lines(harm)
    );
    for (suite, h) in tried {
        m.push_str(&format!("\nfrom {suite} instead:\n{}", lines(h)));
    }
    m.push_str(&format!(
        "\nno suite of this host's archive installs them cleanly: install them another way (any QEMU {}.{} or newer will do), or decide yourself to let apt make those changes",
        harness::qemu::MIN_VERSION.0,
        harness::qemu::MIN_VERSION.1
    ));
    m
}

/// An argv as words a shell reads back the same (for messages).
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removals_and_downgrades_are_found_in_apt_simulation() {
        let sim = "NOTE: This is only a simulation!\n\
                   Remv qemu-utils [1:8.2.2] [qemu-system-x86:amd64 ]\n\
                   Inst libfoo [2.0] (1.0 Debian:12/stable [amd64])\n\
                   Inst libbar [1.0] (2.0 Debian:12/stable [amd64])\n\
                   Inst qemu-system-x86 (1:7.2 Debian:12/stable [amd64])\n\
                   Conf qemu-system-x86 (1:7.2 Debian:12/stable [amd64])\n";
        let lower = |a: &str, b: &str| a < b;
        let got: Vec<String> = harmful_changes(sim, &lower)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "qemu-utils 1:8.2.2 would be removed",
                "libfoo would be downgraded from 2.0 to 1.0"
            ]
        );
    }

    #[test]
    fn madison_names_the_suite_of_the_installed_version() {
        let text =
            include_str!("../../../test_data/host-apt/bookworm-image/madison-qemu-utils.txt");
        assert_eq!(
            madison_suites(text, "1:10.0.2+ds-2+deb13u1~bpo12+1"),
            ["bookworm-backports"]
        );
        assert!(madison_suites(text, "1:9").is_empty());
    }
}
