//! dpkg's own log (`/var/log/dpkg.log`) read from a byte offset: what was removed or
//! downgraded on this machine since then. CI takes the offset when it starts and fails the
//! run on any such change, whoever made it.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;

use anyhow::Context as _;

pub const DEFAULT: &str = "/var/log/dpkg.log";

/// A change to a package the machine had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `2026-12-03 11:40:00`
    pub when: String,
    pub package: String,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    Removed { version: String },
    Purged { version: String },
    Downgraded { from: String, to: String },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            ChangeKind::Removed { version } => {
                write!(f, "{} {} {version} removed", self.when, self.package)
            }
            ChangeKind::Purged { version } => {
                write!(f, "{} {} {version} purged", self.when, self.package)
            }
            ChangeKind::Downgraded { from, to } => write!(
                f,
                "{} {} downgraded from {from} to {to}",
                self.when, self.package
            ),
        }
    }
}

/// The log's text from `offset` on. A log shorter than the offset was rotated since: then
/// all of it, and the flag says so.
pub fn read_from(path: &Path, offset: u64) -> anyhow::Result<(String, bool)> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        // No dpkg ever ran here: nothing changed.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((String::new(), false)),
        Err(e) => return Err(e).with_context(|| format!("open {}", path.display())),
    };
    let len = f.metadata()?.len();
    let rotated = len < offset;
    f.seek(SeekFrom::Start(if rotated { 0 } else { offset }))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .with_context(|| format!("read {}", path.display()))?;
    Ok((String::from_utf8_lossy(&bytes).into_owned(), rotated))
}

/// Removals, purges and downgrades in dpkg.log lines (`DATE TIME ACTION PKG OLD NEW`);
/// `lower(a, b)` is dpkg's version order.
pub fn harmful(text: &str, lower: &dyn Fn(&str, &str) -> bool) -> Vec<Change> {
    let mut out = Vec::new();
    for l in text.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        let [date, time, action, package, old, new, ..] = w.as_slice() else {
            continue;
        };
        let when = format!("{date} {time}");
        let package = (*package).to_owned();
        let kind = match *action {
            "remove" => ChangeKind::Removed {
                version: (*old).to_owned(),
            },
            "purge" => ChangeKind::Purged {
                version: (*old).to_owned(),
            },
            "upgrade" if *old != "<none>" && lower(new, old) => ChangeKind::Downgraded {
                from: (*old).to_owned(),
                to: (*new).to_owned(),
            },
            _ => continue,
        };
        out.push(Change {
            when,
            package,
            kind,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2026-12-03 11:40:00 startup packages install
2026-12-03 11:40:00 install qemu-system-x86:amd64 <none> 1:10.0.2+ds-2+deb13u1~bpo12+1
2026-12-03 11:40:00 status half-installed qemu-system-x86:amd64 1:10.0.2+ds-2+deb13u1~bpo12+1
2026-12-03 11:40:01 upgrade libzstd1:amd64 1.5.4+dfsg2-5 1.5.4+dfsg2-5+deb12u1
2026-12-03 11:40:02 configure qemu-system-x86:amd64 1:10.0.2+ds-2+deb13u1~bpo12+1 <none>
";

    #[test]
    fn installs_and_upgrades_are_harmless() {
        let lower = |a: &str, b: &str| a < b;
        assert!(harmful(LOG, &lower).is_empty());
    }

    #[test]
    fn removals_purges_and_downgrades_are_found() {
        let log = format!(
            "{LOG}2026-12-03 11:41:00 remove qemu-utils:amd64 1:10.0.2+ds-2+deb13u1~bpo12+1 <none>\n\
             2026-12-03 11:41:00 purge qemu-utils:amd64 1:10.0.2+ds-2+deb13u1~bpo12+1 <none>\n\
             2026-12-03 11:41:01 upgrade libfoo:amd64 2.0 1.0\n"
        );
        let lower = |a: &str, b: &str| a < b;
        let got: Vec<String> = harmful(&log, &lower)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "2026-12-03 11:41:00 qemu-utils:amd64 1:10.0.2+ds-2+deb13u1~bpo12+1 removed",
                "2026-12-03 11:41:00 qemu-utils:amd64 1:10.0.2+ds-2+deb13u1~bpo12+1 purged",
                "2026-12-03 11:41:01 libfoo:amd64 downgraded from 2.0 to 1.0",
            ]
        );
    }

    #[test]
    fn the_log_is_read_from_the_offset_or_whole_after_a_rotation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("dpkg.log");
        std::fs::write(&p, "old line\nnew line\n").unwrap();
        assert_eq!(read_from(&p, 9).unwrap(), ("new line\n".into(), false));
        assert!(read_from(&p, 999).unwrap().1);
        assert_eq!(
            read_from(&d.path().join("none"), 5).unwrap(),
            (String::new(), false)
        );
    }
}
