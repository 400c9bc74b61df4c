//! Kernel source packages from Debian's archive, through a private apt state under the cache
//! (own sources list, lists, archives and status). The system's apt configuration is read
//! only to learn which mirror this machine uses, never changed.

use crate::sys::proc::RunTracked as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use sha2::{Digest, Sha256};

use crate::sys::progress::{Progress, Step};

const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

pub struct PrivateApt {
    root: PathBuf,
}

/// One package as the index describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub package: String,
    pub version: String,
    pub filename: String,
    pub sha256: String,
    pub size: u64,
}

/// Index entries as `resolved.json` and `known.json` keep them: one row of five strings each.
fn write_entries(path: &Path, entries: &[IndexEntry]) -> anyhow::Result<()> {
    let rows: Vec<[String; 5]> = entries
        .iter()
        .map(|e| {
            [
                e.package.clone(),
                e.version.clone(),
                e.filename.clone(),
                e.sha256.clone(),
                e.size.to_string(),
            ]
        })
        .collect();
    crate::cache::write_atomic(path, &serde_json::to_vec_pretty(&rows)?)
}

/// What [`write_entries`] wrote; None when the file is missing or not such rows.
fn read_entries(path: &Path) -> Option<Vec<IndexEntry>> {
    let rows: Vec<[String; 5]> = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    rows.into_iter()
        .map(|[package, version, filename, sha256, size]| {
            Some(IndexEntry {
                package,
                version,
                filename,
                sha256,
                size: size.parse().ok()?,
            })
        })
        .collect()
}

/// A downloaded, verified `.deb`.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub entry: IndexEntry,
    pub deb: PathBuf,
}

impl PrivateApt {
    pub fn new(cache: &Path) -> Self {
        Self::at(cache.join("apt"))
    }

    /// A private apt state of its own at `root`: its sources list names other suites than
    /// the kernels' (the compat32 program's libraries), so sharing the kernels' state would
    /// make each refresh the other's index.
    pub fn at(root: PathBuf) -> Self {
        PrivateApt { root }
    }

    fn opts(&self) -> Vec<String> {
        let r = self.root.display();
        vec![
            format!("-oDir::Etc::SourceList={r}/sources.list"),
            format!("-oDir::Etc::SourceParts={r}/sources.list.d"),
            format!("-oDir::Etc::Preferences={r}/preferences"),
            format!("-oDir::Etc::PreferencesParts={r}/preferences.d"),
            format!("-oDir::State={r}/state"),
            format!("-oDir::State::Lists={r}/lists"),
            format!("-oDir::State::status={r}/status"),
            format!("-oDir::Cache={r}/cache"),
            // Downloads land in our cache as root; apt's _apt sandbox user cannot write there.
            "-oAPT::Sandbox::User=root".into(),
            "-oDebug::NoLocking=1".into(),
            "-qq".into(),
        ]
    }

    fn apt(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        c.args(self.opts());
        c
    }

    /// Writes the sources list for `suites` and refreshes the index when the list changed or
    /// the index is older than a day; then records the newest version of each of `packages`
    /// in `resolved.json`, so that a run with nothing to do never waits for apt-cache (which
    /// reads the whole sid index each time: seconds).
    pub fn update(
        &self,
        suites: &[String],
        packages: &[String],
        progress: &mut Progress,
    ) -> anyhow::Result<()> {
        for d in [
            "sources.list.d",
            "preferences.d",
            "state",
            "lists/partial",
            "cache/archives/partial",
        ] {
            std::fs::create_dir_all(self.root.join(d))?;
        }
        let status = self.root.join("status");
        if !status.exists() {
            std::fs::write(&status, "")?;
        }
        if !Path::new(KEYRING).exists() {
            bail!("{KEYRING} is missing: install it with `apt-get install debian-archive-keyring`");
        }
        // Two runs at once share this state: one refreshes, the other waits and finds it fresh.
        let _lock = crate::cache::lock(&self.root.join("update.lock"))?;
        let mirrors = Mirrors::from_system();
        let list = suites
            .iter()
            .map(|s| {
                format!(
                    "deb [signed-by={KEYRING}] {} {s} main\n",
                    mirrors.for_suite(s)
                )
            })
            .collect::<String>();
        let list_path = self.root.join("sources.list");
        let stamp = self.root.join("lists/.updated");
        let fresh = std::fs::read_to_string(&list_path).ok().as_deref() == Some(list.as_str())
            && stamp
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().unwrap_or_default().as_secs() < 86_400);
        if fresh
            && self
                .resolved()
                .is_some_and(|r| packages.iter().all(|p| r.iter().any(|e| &e.package == p)))
        {
            return Ok(());
        }
        if !fresh {
            if mirrors.origin == MirrorOrigin::DebianArchive {
                progress.note(&format!(
                    "this host's apt sources name no Debian mirror: packages (the kernel sources, the compat32 program's libraries) come from Debian's own archive ({}), verified with {KEYRING} (UE_DEBIAN_MIRROR chooses another)",
                    mirrors.debian
                ));
            }
            std::fs::write(&list_path, &list)?;
            let _ = std::fs::remove_file(&stamp);
            progress.step(
                Step::Download,
                &format!("package index for {}", suites.join(", ")),
            );
            let cached_index = self
                .resolved()
                .is_some_and(|r| packages.iter().all(|p| r.iter().any(|e| &e.package == p)));
            let mut apt_get = self.apt("apt-get");
            if cached_index {
                // Offline, each retry only delays the fallback to the cached index (8.7 s
                // against 2.6 s measured with three suites); with nothing to fall back on,
                // apt's own retries stay.
                apt_get.arg("-oAcquire::Retries=0");
            }
            let out = apt_get
                .arg("update")
                .output_tracked()
                .context("run apt-get update (is apt installed?)")?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() || stderr.contains("E: ") || stderr.contains("W: Failed") {
                // Offline (or the mirror is down): a cached kernel must still run. The index
                // from the last good refresh names every package, so use it, say so once, and
                // leave the stamp old so the next run tries again.
                if cached_index {
                    progress.note(&format!(
                        "warning: could not refresh the package index ({}); using the cached index{}",
                        stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("apt-get update failed").trim(),
                        self.age().map_or(String::new(), |a| format!(" from {a} ago")),
                    ));
                    return Ok(());
                }
                bail!(
                    "apt-get update with the private sources list {} failed, and there is no cached index to fall back on:\n{stderr}",
                    list_path.display()
                );
            }
            std::fs::write(&stamp, "")?;
        }
        let out = self
            .apt("apt-cache")
            .args(["show", "--no-all-versions"])
            .args(packages)
            .output_tracked()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let entries: Vec<IndexEntry> = text
            .split("\n\n")
            .filter(|r| !r.trim().is_empty())
            .map(parse_index_entry)
            .collect::<anyhow::Result<_>>()?;
        write_entries(&self.root.join("resolved.json"), &entries)?;
        self.remember(&entries)?;
        Ok(())
    }

    /// How long ago the last good refresh was, in words.
    fn age(&self) -> Option<String> {
        let t = self
            .root
            .join("resolved.json")
            .metadata()
            .ok()?
            .modified()
            .ok()?;
        let h = t.elapsed().ok()?.as_secs() / 3600;
        Some(if h < 48 {
            format!("{h} h")
        } else {
            format!("{} days", h / 24)
        })
    }

    /// Every index entry ever seen (`known.json`): a pinned version stays verifiable after
    /// the archive drops it, as long as its download is cached.
    fn known(&self) -> Vec<IndexEntry> {
        read_entries(&self.root.join("known.json")).unwrap_or_default()
    }

    fn remember(&self, entries: &[IndexEntry]) -> anyhow::Result<()> {
        let mut all = self.known();
        let before = all.len();
        for e in entries {
            if !all.contains(e) {
                all.push(e.clone());
            }
        }
        if all.len() == before && self.root.join("known.json").exists() {
            return Ok(());
        }
        write_entries(&self.root.join("known.json"), &all)
    }

    /// `package` at exactly `version` (a pin in kernels.toml): from the entries seen before,
    /// else from the index (which may no longer carry it).
    pub fn pinned(&self, package: &str, version: &str) -> anyhow::Result<IndexEntry> {
        if let Some(e) = self
            .known()
            .into_iter()
            .find(|e| e.package == package && e.version == version)
        {
            return Ok(e);
        }
        let out = self
            .apt("apt-cache")
            .args(["show", &format!("{package}={version}")])
            .output_tracked()
            .context("run apt-cache show")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let entry = text
            .split("\n\n")
            .find(|r| !r.trim().is_empty())
            .map(parse_index_entry)
            .transpose()?
            .filter(|e| e.version == version);
        let Some(entry) = entry else {
            let newest = self.newest(package).map(|e| e.version).unwrap_or_default();
            bail!(
                "kernels.toml pins {package} {version}, but the archive's index no longer has it and this cache never saw it \
                 (the newest is {newest}): run `cargo xtask kernels --update` to move the pin"
            );
        };
        self.remember(std::slice::from_ref(&entry))?;
        Ok(entry)
    }

    /// The version kernels.toml pins, or the newest in the index.
    pub fn entry(&self, package: &str, pin: Option<&str>) -> anyhow::Result<IndexEntry> {
        match pin {
            Some(v) => self.pinned(package, v),
            None => self.newest(package),
        }
    }

    fn resolved(&self) -> Option<Vec<IndexEntry>> {
        read_entries(&self.root.join("resolved.json"))
    }

    /// The newest version of `package` in the private index, as [`Self::update`] recorded it.
    pub fn newest(&self, package: &str) -> anyhow::Result<IndexEntry> {
        self.resolved().and_then(|r| r.into_iter().find(|e| e.package == package)).with_context(|| {
            format!(
                "package {package} is not in the private index ({}): check `suites` in kernel-configs/kernels.toml",
                self.root.join("sources.list").display()
            )
        })
    }

    /// Downloads `entry` into `downloads/` unless a verified copy is there; a corrupt or
    /// partial file is deleted and fetched again, never used.
    pub fn fetch(
        &self,
        cache: &Path,
        entry: &IndexEntry,
        progress: &mut Progress,
    ) -> anyhow::Result<Fetched> {
        let dir = cache.join("downloads");
        std::fs::create_dir_all(&dir)?;
        let deb = dir.join(format!(
            "{}_{}.deb",
            entry.package,
            entry.version.replace(':', "%3a")
        ));
        // Two runs at once download a package once: the second waits, then verifies it.
        let _lock = crate::cache::lock(&deb.with_extension("deb.lock"))?;
        if deb.exists() {
            match verify(&deb, entry) {
                Ok(()) => {
                    return Ok(Fetched {
                        entry: entry.clone(),
                        deb,
                    })
                }
                Err(e) => {
                    progress.note(&format!("{e}; downloading it again"));
                    std::fs::remove_file(&deb)?;
                }
            }
        }
        progress.step(
            Step::Download,
            &format!(
                "{} {} ({} MiB)",
                entry.package,
                entry.version,
                entry.size >> 20
            ),
        );
        let tmp = tempdir_in(&dir)?;
        let mut cmd = self.apt("apt-get");
        cmd.current_dir(&tmp)
            .args(["download", &format!("{}={}", entry.package, entry.version)])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let (mut child, _tracked) =
            crate::sys::proc::spawn(&mut cmd).context("run apt-get download")?;
        // The bytes on disk against the index's size: a percentage and an ETA.
        let label = format!("{} {}", entry.package, entry.version);
        let watch_download = || {
            let got: u64 = std::fs::read_dir(&tmp)
                .map(|d| {
                    d.flatten()
                        .filter_map(|e| e.metadata().ok())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0);
            progress.advance(
                Step::Download,
                &label,
                (got >> 20) as usize,
                Some((entry.size >> 20) as usize),
                "MiB",
            );
            false
        };
        crate::sys::proc::wait_for(
            &mut child,
            crate::sys::proc::Wait::forever().polling(std::time::Duration::from_millis(500)),
            watch_download,
        )?;
        progress.end_long_step();
        let out = child.wait_with_output();
        // Stopped by SIGINT or SIGTERM: the staging folder goes, then the stage fails.
        if let Err(e) = crate::sys::proc::check() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let out = out.context("run apt-get download")?;
        let got = std::fs::read_dir(&tmp)?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"));
        let result = match (out.status.success(), got) {
            (true, Some(p)) => verify(&p, entry).and_then(|()| Ok(std::fs::rename(&p, &deb)?)),
            _ => Err(anyhow::anyhow!(
                "apt-get download {} failed:\n{}",
                entry.package,
                String::from_utf8_lossy(&out.stderr)
            )),
        };
        let _ = std::fs::remove_dir_all(&tmp);
        result?;
        Ok(Fetched {
            entry: entry.clone(),
            deb,
        })
    }
}

fn tempdir_in(dir: &Path) -> anyhow::Result<PathBuf> {
    let p = dir.join(format!(".partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p)?;
    Ok(p)
}

/// Checks size and SHA-256 against the package index.
pub fn verify(deb: &Path, entry: &IndexEntry) -> anyhow::Result<()> {
    let size = deb.metadata()?.len();
    if size != entry.size {
        bail!(
            "{} is {size} bytes, the index says {}: partial download",
            deb.display(),
            entry.size
        );
    }
    let got = sha256_file(deb)?;
    if got != entry.sha256 {
        bail!(
            "{} has SHA-256 {got}, the index says {}: corrupt download",
            deb.display(),
            entry.sha256
        );
    }
    Ok(())
}

pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::cache::hex(&h.finalize()))
}

pub fn parse_index_entry(text: &str) -> anyhow::Result<IndexEntry> {
    let field = |name: &str| -> anyhow::Result<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
            .map(|v| v.trim().to_owned())
            .with_context(|| format!("no {name} field in the package record"))
    };
    Ok(IndexEntry {
        package: field("Package")?,
        version: field("Version")?,
        filename: field("Filename")?,
        sha256: field("SHA256")?,
        size: field("Size")?.parse().context("Size field")?,
    })
}

/// The archive URIs the kernel sources come from: the Debian mirror this machine's apt
/// uses, so a Debian host is served as it always is; on a host whose sources name none (an
/// Ubuntu host, GitHub's ubuntu-latest) Debian's own archive. Either way the index is
/// verified with Debian's archive keyring. `UE_DEBIAN_MIRROR` and
/// `UE_DEBIAN_SECURITY_MIRROR` override them (empty counts as unset).
#[derive(Debug, PartialEq, Eq)]
pub struct Mirrors {
    pub debian: String,
    pub security: String,
    /// Where `debian` came from, for the one line that says so.
    pub origin: MirrorOrigin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorOrigin {
    /// `UE_DEBIAN_MIRROR`.
    Override,
    /// This host's apt sources.
    HostSources,
    /// Debian's own archive, the host naming no Debian mirror.
    DebianArchive,
}

/// Debian's own archive and its security archive.
pub const DEBIAN_ARCHIVE: &str = "http://deb.debian.org/debian";
pub const DEBIAN_SECURITY_ARCHIVE: &str = "http://deb.debian.org/debian-security";

impl Mirrors {
    pub fn from_system() -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Self::choose(
            &crate::sys::host_tools::sources::HostSources::system(),
            env("UE_DEBIAN_MIRROR"),
            env("UE_DEBIAN_SECURITY_MIRROR"),
        )
    }

    /// The override, else the host's Debian mirror, else Debian's own archive. A security
    /// mirror is not always named (a sid host has no `-security` suite): it defaults to the
    /// Debian mirror's `debian-security` sibling, or Debian's for Debian's archive.
    pub fn choose(
        host: &crate::sys::host_tools::sources::HostSources,
        debian_override: Option<String>,
        security_override: Option<String>,
    ) -> Self {
        let (found, found_security) = host.debian_mirrors();
        let (debian, origin) = match (debian_override, found) {
            (Some(d), _) => (d, MirrorOrigin::Override),
            (None, Some(d)) => (d, MirrorOrigin::HostSources),
            (None, None) => (DEBIAN_ARCHIVE.to_owned(), MirrorOrigin::DebianArchive),
        };
        let debian = debian.trim_end_matches('/').to_owned();
        let security = security_override
            .or(found_security)
            .unwrap_or_else(|| match origin {
                MirrorOrigin::DebianArchive => DEBIAN_SECURITY_ARCHIVE.to_owned(),
                _ => format!("{debian}-security"),
            });
        Mirrors {
            debian,
            security,
            origin,
        }
    }

    pub fn for_suite(&self, suite: &str) -> &str {
        if suite.ends_with("-security") {
            &self.security
        } else {
            &self.debian
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::host_tools::sources::HostSources;

    #[test]
    fn index_records_parse() {
        let rec = "Package: linux-source-6.12\nVersion: 6.12.117-1~deb12u1\nSize: 153476148\n\
                   Filename: pool/updates/main/l/linux-6.12/linux-source-6.12_6.12.117-1~deb12u1_all.deb\n\
                   SHA256: 00ff\nDescription: x\n";
        let e = parse_index_entry(rec).unwrap();
        assert_eq!(
            (e.version.as_str(), e.size, e.sha256.as_str()),
            ("6.12.117-1~deb12u1", 153476148, "00ff")
        );
        assert!(parse_index_entry("Package: x\n")
            .unwrap_err()
            .to_string()
            .contains("Version"));
    }

    /// A pinned version the cache has seen is found without the index (offline, or after the
    /// archive dropped it); one it never saw, with no index, is one message naming the fix.
    #[test]
    fn a_pin_is_served_from_what_the_cache_saw() {
        let d = tempfile::tempdir().unwrap();
        let apt = PrivateApt::new(d.path());
        std::fs::create_dir_all(d.path().join("apt")).unwrap();
        let e = IndexEntry {
            package: "linux-source-6.12".into(),
            version: "6.12.117-1~deb12u1".into(),
            filename: "pool/x.deb".into(),
            sha256: "ab".into(),
            size: 1,
        };
        apt.remember(std::slice::from_ref(&e)).unwrap();
        assert_eq!(apt.entry(&e.package, Some(&e.version)).unwrap(), e);
        let err = format!(
            "{:#}",
            apt.entry(&e.package, Some("6.12.999-1")).unwrap_err()
        );
        assert!(
            err.contains("kernels --update") || err.contains("apt-cache"),
            "{err}"
        );
    }

    fn host(etc_apt: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, HostSources) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join(etc_apt);
        std::fs::create_dir_all(root.join("sources.list.d")).unwrap();
        for (name, text) in files {
            std::fs::write(root.join(name), text).unwrap();
        }
        let s = HostSources::read(&root);
        (d, s)
    }

    /// A sid host names no -security suite: the security mirror is the Debian mirror's
    /// sibling.
    #[test]
    fn a_host_without_a_security_suite_still_has_mirrors() {
        let (_d, h) = host(
            "etc/apt",
            &[("sources.list", "deb http://m.example/debian sid main\n")],
        );
        let m = Mirrors::choose(&h, None, None);
        assert_eq!(m.origin, MirrorOrigin::HostSources);
        assert_eq!(
            m.for_suite("bookworm-security"),
            "http://m.example/debian-security"
        );
        assert_eq!(m.for_suite("sid"), "http://m.example/debian");
    }

    #[test]
    fn mirrors_come_from_deb822_and_one_line_sources() {
        let deb822 = "Types: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\n\n\
                      Types: deb\nURIs: http://m.example/debian-security\nSuites: bookworm-security\n";
        let (_d, h) = host("etc/apt", &[("sources.list.d/debian.sources", deb822)]);
        let m = Mirrors::choose(&h, None, None);
        assert_eq!(
            (m.debian.as_str(), m.security.as_str()),
            (
                "http://m.example/debian",
                "http://m.example/debian-security"
            )
        );
        let one = "deb [arch=amd64] http://x.example/debian/ bookworm main\ndeb http://x.example/debian-security bookworm-security main\n";
        let (_d, h) = host("etc/apt", &[("sources.list", one)]);
        let m = Mirrors::choose(&h, None, None);
        assert_eq!(
            (m.debian.as_str(), m.security.as_str()),
            (
                "http://x.example/debian",
                "http://x.example/debian-security"
            )
        );
    }

    /// Issue 21: a host whose sources are Ubuntu's (GitHub's ubuntu-latest, as a fake sources
    /// folder) needs no variable: Debian's own archive, for the main and the security suites;
    /// the variables still override, and an empty one counts as unset.
    #[test]
    fn an_ubuntu_host_gets_debians_own_archive_without_a_variable() {
        let ubuntu = "Types: deb\nURIs: http://azure.archive.ubuntu.com/ubuntu/\n\
                      Suites: noble noble-updates noble-backports\nComponents: main universe\n\
                      Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n\n\
                      Types: deb\nURIs: http://azure.archive.ubuntu.com/ubuntu/\nSuites: noble-security\n\
                      Components: main universe\nSigned-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n";
        let (_d, h) = host("etc/apt", &[("sources.list.d/ubuntu.sources", ubuntu)]);
        let m = Mirrors::choose(&h, None, None);
        assert_eq!(m.origin, MirrorOrigin::DebianArchive);
        assert_eq!(m.for_suite("sid"), DEBIAN_ARCHIVE);
        assert_eq!(m.for_suite("bookworm-security"), DEBIAN_SECURITY_ARCHIVE);
        let m = Mirrors::choose(&h, Some("http://mirror.example/debian/".into()), None);
        assert_eq!(m.origin, MirrorOrigin::Override);
        assert_eq!(m.for_suite("trixie"), "http://mirror.example/debian");
        assert_eq!(
            m.for_suite("trixie-security"),
            "http://mirror.example/debian-security"
        );
    }

    #[test]
    fn a_corrupt_or_partial_download_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let deb = dir.path().join("x.deb");
        std::fs::write(&deb, b"hello").unwrap();
        let mut e = IndexEntry {
            package: "x".into(),
            version: "1".into(),
            filename: "x.deb".into(),
            sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824".into(),
            size: 5,
        };
        verify(&deb, &e).unwrap();
        e.size = 6;
        assert!(verify(&deb, &e)
            .unwrap_err()
            .to_string()
            .contains("partial download"));
        e.size = 5;
        e.sha256 = "00".into();
        assert!(verify(&deb, &e)
            .unwrap_err()
            .to_string()
            .contains("corrupt download"));
    }
}
