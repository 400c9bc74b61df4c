//! This machine's apt sources, read (never written) from its `etc/apt` folder: one-line
//! `.list` files and deb822 `.sources` files alike. Two stages use them: the host-tool
//! installer (which suites this host's archive has beside the ones it lists, such as
//! `bookworm-backports`), and the kernel-source download (which Debian mirror to use).

use std::path::{Path, PathBuf};

/// One `deb` source: an archive URI, one suite, its components and the keyring that signs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub uri: String,
    pub suite: String,
    pub components: Vec<String>,
    pub signed_by: Option<String>,
}

/// Every enabled binary (`deb`) source of a host, in the order apt reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSources {
    /// The folder they were read from (`/etc/apt`, or a test's fake one).
    pub etc_apt: PathBuf,
    pub entries: Vec<Entry>,
}

/// The suites apt's `-backports` convention does not apply to: rolling ones.
const ROLLING: &[&str] = &["sid", "unstable", "experimental", "testing", "rc-buggy"];

impl HostSources {
    /// `/etc/apt` as this machine has it.
    pub fn system() -> HostSources {
        HostSources::read(Path::new("/etc/apt"))
    }

    /// `etc_apt/sources.list` and the `.list` and `.sources` files of
    /// `etc_apt/sources.list.d` (apt ignores other names there, such as `*.disabled`).
    pub fn read(etc_apt: &Path) -> HostSources {
        let mut entries = Vec::new();
        if let Ok(t) = std::fs::read_to_string(etc_apt.join("sources.list")) {
            entries.extend(parse_one_line(&t));
        }
        let mut parts: Vec<PathBuf> = std::fs::read_dir(etc_apt.join("sources.list.d"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        parts.sort();
        for p in parts {
            let Ok(t) = std::fs::read_to_string(&p) else {
                continue;
            };
            match p.extension().and_then(|x| x.to_str()) {
                Some("list") => entries.extend(parse_one_line(&t)),
                Some("sources") => entries.extend(parse_deb822(&t)),
                _ => {}
            }
        }
        HostSources {
            etc_apt: etc_apt.to_owned(),
            entries,
        }
    }

    /// The `<codename>-backports` suites this host's archives have but its sources do not
    /// list, as sources with the same URI, components and keyring as their codename's entry.
    /// apt gives backports a low priority (NotAutomatic), so listing them changes no plain
    /// install; they are there to be asked for by name (`-t SUITE`).
    pub fn siblings(&self) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        for e in &self.entries {
            if e.suite.contains('-') || e.suite.contains('/') || ROLLING.contains(&e.suite.as_str())
            {
                continue;
            }
            let suite = format!("{}-backports", e.suite);
            let listed = |x: &Entry| x.uri == e.uri && x.suite == suite;
            if self.entries.iter().any(listed) || out.iter().any(listed) {
                continue;
            }
            out.push(Entry {
                uri: e.uri.clone(),
                suite,
                components: e.components.clone(),
                signed_by: e.signed_by.clone(),
            });
        }
        out
    }

    /// Every backports suite: those the host lists and the siblings it does not. apt ranks
    /// them low (NotAutomatic) either way, so a clash is solved from them only by name.
    pub fn backports(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let listed = self.entries.iter().map(|e| e.suite.clone());
        for s in listed.chain(self.siblings().into_iter().map(|e| e.suite)) {
            if s.ends_with("-backports") && !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }

    /// The first (debian, debian-security) archive URIs, if the host names Debian's.
    pub fn debian_mirrors(&self) -> (Option<String>, Option<String>) {
        let (mut debian, mut security) = (None, None);
        for e in &self.entries {
            let uri = e.uri.trim_end_matches('/').to_owned();
            // Ubuntu's archive has `-security` suites too: only a Debian URI counts.
            if uri.ends_with("debian-security")
                || (e.suite.ends_with("-security") && uri.contains("debian"))
            {
                security.get_or_insert(uri);
            } else if uri.ends_with("/debian") {
                debian.get_or_insert(uri);
            }
        }
        (debian, security)
    }
}

impl Entry {
    /// The entry as one line of a `sources.list`.
    pub fn line(&self) -> String {
        let opts = self
            .signed_by
            .as_ref()
            .map_or(String::new(), |k| format!("[signed-by={k}] "));
        format!(
            "deb {opts}{} {} {}",
            self.uri,
            self.suite,
            self.components.join(" ")
        )
    }
}

/// `deb [opts] URI SUITE COMPONENT...` lines; `deb-src` and comments are skipped.
fn parse_one_line(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for l in text.lines() {
        let l = l.split('#').next().unwrap_or("").trim();
        let Some(rest) = l.strip_prefix("deb ").or_else(|| l.strip_prefix("deb\t")) else {
            continue;
        };
        let rest = rest.trim_start();
        let (opts, rest) = match rest.strip_prefix('[') {
            Some(r) => match r.split_once(']') {
                Some((o, r)) => (o, r),
                None => continue,
            },
            None => ("", rest),
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let [uri, suite, components @ ..] = words.as_slice() else {
            continue;
        };
        let signed_by = opts
            .split_whitespace()
            .find_map(|o| o.strip_prefix("signed-by="))
            .map(str::to_owned);
        out.push(Entry {
            uri: uri.trim_end_matches('/').to_owned(),
            suite: (*suite).to_owned(),
            components: components.iter().map(|c| (*c).to_owned()).collect(),
            signed_by,
        });
    }
    out
}

/// deb822 stanzas (`Types: deb`, `URIs`, `Suites`, `Components`, `Signed-By`, `Enabled`).
/// An inline (multi-line) Signed-By key cannot be written as a path: such entries keep none.
fn parse_deb822(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for l in stanza.lines() {
            if l.trim_start().starts_with('#') {
                continue;
            }
            if l.starts_with(' ') || l.starts_with('\t') {
                // A continuation line (an inline key): belongs to the field before it.
                if let Some(last) = fields.last_mut() {
                    last.1.push('\n');
                    last.1.push_str(l.trim());
                }
                continue;
            }
            if let Some((k, v)) = l.split_once(':') {
                fields.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
        let words = |k: &str| -> Vec<String> {
            get(k)
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        };
        if !words("types").iter().any(|t| t == "deb") {
            continue;
        }
        if get("enabled").is_some_and(|v| v.eq_ignore_ascii_case("no")) {
            continue;
        }
        let signed_by = get("signed-by")
            .filter(|v| !v.contains('\n') && v.starts_with('/'))
            .map(str::to_owned);
        for uri in words("uris") {
            for suite in words("suites") {
                out.push(Entry {
                    uri: uri.trim_end_matches('/').to_owned(),
                    suite,
                    components: words("components"),
                    signed_by: signed_by.clone(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The image this project's machines start from: deb822 Debian sources for bookworm,
    /// -updates and -security, and two disabled third-party files apt ignores.
    fn bookworm_image(dir: &Path) {
        std::fs::create_dir_all(dir.join("sources.list.d")).unwrap();
        std::fs::write(
            dir.join("sources.list.d/debian.sources"),
            "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
             URIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n\
             Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
             Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\
             Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("sources.list.d/google-cloud-sdk.list.disabled-by-farm"),
            "deb https://packages.example/apt cloud-sdk-bookworm main\n",
        )
        .unwrap();
    }

    #[test]
    fn the_images_sources_and_their_backports_sibling() {
        let d = tempfile::tempdir().unwrap();
        bookworm_image(d.path());
        let s = HostSources::read(d.path());
        let suites: Vec<&str> = s.entries.iter().map(|e| e.suite.as_str()).collect();
        assert_eq!(
            suites,
            ["bookworm", "bookworm-updates", "bookworm-security"]
        );
        let sib = s.siblings();
        assert_eq!(sib.len(), 1, "{sib:?}");
        assert_eq!(
            sib[0].line(),
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main"
        );
        assert_eq!(
            s.debian_mirrors(),
            (
                Some("http://deb.debian.org/debian".into()),
                Some("http://deb.debian.org/debian-security".into())
            )
        );
    }

    #[test]
    fn listed_backports_rolling_suites_and_disabled_stanzas_add_no_sibling() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("sources.list.d")).unwrap();
        std::fs::write(
            d.path().join("sources.list"),
            "deb http://m.example/debian trixie main contrib # a comment\n\
             deb http://m.example/debian trixie-backports main\n\
             deb-src http://m.example/debian trixie main\n\
             deb [arch=amd64] http://m.example/debian/ sid main\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("sources.list.d/x.sources"),
            "Types: deb\nURIs: http://o.example/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n",
        )
        .unwrap();
        let s = HostSources::read(d.path());
        assert_eq!(s.entries.len(), 3, "{:?}", s.entries);
        assert_eq!(s.entries[0].components, ["main", "contrib"]);
        assert_eq!(s.entries[2].uri, "http://m.example/debian");
        assert!(s.siblings().is_empty(), "{:?}", s.siblings());
    }

    /// GitHub's ubuntu-latest: deb822 `ubuntu.sources` naming Ubuntu's archive only.
    #[test]
    fn an_ubuntu_host_names_no_debian_mirror() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("sources.list.d")).unwrap();
        std::fs::write(
            d.path().join("sources.list.d/ubuntu.sources"),
            "Types: deb\nURIs: http://azure.archive.ubuntu.com/ubuntu/\n\
             Suites: noble noble-updates noble-backports\nComponents: main universe restricted multiverse\n\
             Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n\n\
             Types: deb\nURIs: http://azure.archive.ubuntu.com/ubuntu/\nSuites: noble-security\n\
             Components: main universe restricted multiverse\n\
             Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n",
        )
        .unwrap();
        let s = HostSources::read(d.path());
        assert_eq!(s.entries.len(), 4);
        assert_eq!(s.debian_mirrors(), (None, None));
        assert!(s.siblings().is_empty(), "noble-backports is listed");
    }
}
