//! An initramfs written in-process as an uncompressed newc cpio archive: no external `cpio`, no
//! shared host filesystem (9p/virtiofs) with its daemons and races, and no decompressor needed
//! in the kernel. The guest binaries are a few MiB, so compression would cost more CPU under
//! TCG than the copy it saves.

use std::io::{self, Write};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive, without a leading `/`.
    pub path: String,
    /// Full st_mode, file type included.
    pub mode: u32,
    pub data: Vec<u8>,
}

#[derive(Default)]
pub struct Initramfs {
    entries: Vec<Entry>,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const TRAILER: &str = "TRAILER!!!";

impl Initramfs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory (and any missing parents: the kernel's unpacker does not create them).
    pub fn dir(&mut self, path: &str) -> &mut Self {
        let path = path.trim_matches('/');
        let mut so_far = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !so_far.is_empty() {
                so_far.push('/');
            }
            so_far.push_str(part);
            if !self.entries.iter().any(|e| e.path == so_far) {
                self.entries.push(Entry {
                    path: so_far.clone(),
                    mode: S_IFDIR | 0o755,
                    data: vec![],
                });
            }
        }
        self
    }

    pub fn file(&mut self, path: &str, perm: u32, data: Vec<u8>) -> &mut Self {
        let path = path.trim_start_matches('/').to_owned();
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.entries.retain(|e| e.path != path);
        self.entries.push(Entry {
            path,
            mode: S_IFREG | (perm & 0o7777),
            data,
        });
        self
    }

    pub fn write_to(&self, mut w: impl Write) -> io::Result<()> {
        for (i, e) in self.entries.iter().enumerate() {
            write_entry(
                &mut w,
                i as u32 + 1,
                e.mode,
                1 + u32::from(e.mode & S_IFDIR != 0),
                &e.path,
                &e.data,
            )?;
        }
        write_entry(&mut w, 0, 0, 1, TRAILER, &[])?;
        w.flush()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v).expect("writing to a Vec cannot fail");
        v
    }
}

fn write_entry(
    w: &mut impl Write,
    ino: u32,
    mode: u32,
    nlink: u32,
    name: &str,
    data: &[u8],
) -> io::Result<()> {
    let size = u32::try_from(data.len())
        .map_err(|_| io::Error::other(format!("{name}: larger than 4 GiB")))?;
    let namesize = name.len() as u32 + 1;
    // magic, ino, mode, uid, gid, nlink, mtime (0: reproducible), filesize, dev major/minor,
    // rdev major/minor, namesize, check.
    let header = format!(
        "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{size:08x}{:08x}{:08x}{:08x}{:08x}{namesize:08x}{:08x}",
        0, 0, 0, 0, 0, 0, 0, 0
    );
    w.write_all(header.as_bytes())?;
    w.write_all(name.as_bytes())?;
    w.write_all(&[0])?;
    w.write_all(&[0; 3][..pad4(110 + namesize as usize)])?;
    w.write_all(data)?;
    w.write_all(&[0; 3][..pad4(data.len())])
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// Reads a newc archive back (for tests and for `xtask` to show what an image holds).
pub fn read_newc(mut b: &[u8]) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    let mut offset = 0usize;
    loop {
        if b.len() < 110 || &b[..6] != b"070701" {
            return Err(format!("no newc header at offset {offset}"));
        }
        let field = |i: usize| -> Result<u32, String> {
            let s = std::str::from_utf8(&b[6 + i * 8..14 + i * 8]).map_err(|e| e.to_string())?;
            u32::from_str_radix(s, 16).map_err(|e| format!("field {i} at offset {offset}: {e}"))
        };
        let (mode, size, namesize) = (field(1)?, field(6)? as usize, field(11)? as usize);
        let name_end = 110 + namesize;
        let data_start = name_end + pad4(name_end);
        let data_end = data_start + size;
        if namesize == 0 || b.len() < data_end {
            return Err(format!("truncated entry at offset {offset}"));
        }
        let name = String::from_utf8_lossy(&b[110..name_end - 1]).into_owned();
        if name == TRAILER {
            return Ok(out);
        }
        out.push(Entry {
            path: name,
            mode,
            data: b[data_start..data_end].to_vec(),
        });
        let next = data_end + pad4(data_end);
        offset += next;
        b = &b[next.min(b.len())..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Initramfs {
        let mut img = Initramfs::new();
        img.file("init", 0o755, b"#!init".to_vec())
            .file("/bin/ue-scenarios", 0o755, vec![7; 1001])
            .file("etc/ue-plan.json", 0o644, b"{}".to_vec())
            .dir("proc");
        img
    }

    #[test]
    fn reads_back_what_it_wrote_with_parents_first() {
        let got = read_newc(&sample().to_bytes()).unwrap();
        let names: Vec<&str> = got.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            names,
            [
                "init",
                "bin",
                "bin/ue-scenarios",
                "etc",
                "etc/ue-plan.json",
                "proc"
            ]
        );
        assert_eq!(got[2].data, vec![7; 1001]);
        assert_eq!(got[2].mode, 0o100755);
        assert_eq!(got[1].mode, 0o040755);
    }

    #[test]
    fn gnu_cpio_lists_the_archive() {
        // GNU cpio is the reference reader; skip quietly only where it is not installed.
        let Ok(mut child) = std::process::Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("cpio not installed; covered by read_newc only");
            return;
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&sample().to_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "init\nbin\nbin/ue-scenarios\netc\netc/ue-plan.json\nproc\n"
        );
    }

    #[test]
    fn truncated_archives_are_errors() {
        let b = sample().to_bytes();
        assert!(read_newc(&b[..b.len() - 130]).is_err());
        assert!(read_newc(b"garbage").is_err());
    }
}
