//! Other people's test programs, looked at on the host before they go into the guest: it must
//! be a static x86-64 executable (the initramfs has no dynamic loader), and a libtest program
//! is listed here (it is static, so it runs on the host too) so that each of its tests is a
//! planned record with its own limit, and a test the guest never reached still gets a verdict.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::model::{GuestProgram, GuestTestStyle};

/// What a static x86-64 ELF executable's headers say, or why it is not one.
#[derive(Debug, PartialEq, Eq)]
pub enum ElfCheck {
    Static,
    /// The program interpreter (dynamic loader) it names.
    Dynamic(String),
    NotElf,
    WrongMachine(u16),
}

/// Reads the ELF header and program headers: class, machine, and a PT_INTERP if any. A 64-bit
/// x86-64 executable runs on every guest kernel; a 32-bit i386 one (the compat32 program) runs
/// where the kernel has IA32 emulation.
pub fn elf_check(bytes: &[u8]) -> ElfCheck {
    let field = |o: usize, n: usize| bytes.get(o..o.checked_add(n)?);
    let u16_at = |o: usize| field(o, 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        field(o, 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let u64_at = |o: usize| {
        field(o, 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    const ELFCLASS32: u8 = 1;
    const ELFCLASS64: u8 = 2;
    const EM_386: u16 = 3;
    const EM_X86_64: u16 = 62;
    if bytes.get(..4) != Some(b"\x7fELF") || bytes.get(5) != Some(&1) {
        return ElfCheck::NotElf;
    }
    // Where the two classes keep what is read here: (machine wanted, e_phoff, its width,
    // e_phentsize, e_phnum, p_offset and p_filesz within a program header, their width).
    let layout = match bytes.get(4) {
        Some(&ELFCLASS64) => (EM_X86_64, 32, 8, 54, 56, 8, 32, 8),
        Some(&ELFCLASS32) => (EM_386, 28, 4, 42, 44, 4, 16, 4),
        _ => return ElfCheck::NotElf,
    };
    let (machine, phoff_at, off_width, phentsize_at, phnum_at, p_offset, p_filesz, width) = layout;
    let word = |o: usize, w: usize| {
        if w == 8 {
            u64_at(o)
        } else {
            u32_at(o).map(u64::from)
        }
    };
    match u16_at(18) {
        Some(m) if m == machine => {}
        Some(m) => return ElfCheck::WrongMachine(m),
        None => return ElfCheck::NotElf,
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (
        word(phoff_at, off_width),
        u16_at(phentsize_at),
        u16_at(phnum_at),
    ) else {
        return ElfCheck::NotElf;
    };
    for i in 0..phnum as usize {
        // Checked: the headers are the file's word, not ours.
        let Some(at) = (phoff as usize).checked_add(i.saturating_mul(phentsize as usize)) else {
            return ElfCheck::NotElf;
        };
        const PT_INTERP: u32 = 3;
        if u32_at(at) == Some(PT_INTERP) {
            let off = word(at.saturating_add(p_offset), width).unwrap_or(0) as usize;
            let size = word(at.saturating_add(p_filesz), width).unwrap_or(0) as usize;
            let interp = bytes
                .get(off..off.saturating_add(size))
                .map(|b| String::from_utf8_lossy(b).trim_end_matches('\0').to_owned())
                .unwrap_or_default();
            return ElfCheck::Dynamic(interp);
        }
    }
    ElfCheck::Static
}

/// libtest's (and libtest-mimic's) command line is in the binary: its option names.
pub fn looks_like_libtest(bytes: &[u8]) -> bool {
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    has(b"test-threads") && has(b"include-ignored") && has(b"nocapture")
}

/// `foo-0123456789abcdef` (a cargo test executable) → `foo`.
pub fn program_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rsplit_once('-') {
        Some((stem, hash))
            if hash.len() == 16
                && hash.chars().all(|c| c.is_ascii_hexdigit())
                && !stem.is_empty() =>
        {
            stem.to_owned()
        }
        _ => name,
    }
}

/// A guest test program from a path: checked, named, and (libtest) listed.
pub fn inspect(
    path: &Path,
    name: Option<String>,
    args: &[String],
    env: &[(String, String)],
    timeout: Duration,
) -> anyhow::Result<GuestProgram> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("--guest-test {}: cannot read it", path.display()))?;
    match elf_check(&bytes) {
        ElfCheck::Static => {}
        ElfCheck::Dynamic(interp) => bail!(
            "{} is dynamically linked (it needs the loader {interp}), and the guest has no \
             dynamic loader or shared libraries: link it statically (Rust: RUSTFLAGS='-C \
             target-feature=+crt-static' with --target x86_64-unknown-linux-gnu; C: gcc -static)",
            path.display()
        ),
        ElfCheck::NotElf => bail!(
            "{} is not an ELF executable: --guest-test takes a static x86-64 (or i386) \
             program (a script needs an interpreter the guest does not have)",
            path.display()
        ),
        ElfCheck::WrongMachine(m) => bail!(
            "{} is an ELF executable for machine {m}, not x86-64 or i386: the guest is x86-64",
            path.display()
        ),
    }
    let style = if looks_like_libtest(&bytes) {
        list_libtest(path, args)?
    } else {
        GuestTestStyle::Program
    };
    Ok(GuestProgram {
        name: name.unwrap_or_else(|| program_name(path)),
        path: path.to_owned(),
        args: args.to_vec(),
        env: env.to_vec(),
        timeout,
        style,
        fault_warnings: false,
    })
}

/// Lists a libtest program's tests on the host: `--format json` (libtest's unstable format,
/// which RUSTC_BOOTSTRAP=1 enables at run time) when it takes it, its terse text otherwise.
fn list_libtest(path: &Path, args: &[String]) -> anyhow::Result<GuestTestStyle> {
    let run = |extra: &[&str], bootstrap: bool| {
        let mut c = Command::new(path);
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .arg("--list")
            .args(extra)
            .args(args);
        if bootstrap {
            c.env("RUSTC_BOOTSTRAP", "1");
        }
        output_within(c, LIST_LIMIT)
    };
    let json = run(&["--format", "json", "-Z", "unstable-options"], true)
        .with_context(|| format!("run {} --list on the host", path.display()))?;
    if json.status.success() {
        if let Some(tests) = parse_json_list(&String::from_utf8_lossy(&json.stdout)) {
            return Ok(GuestTestStyle::Libtest { tests, json: true });
        }
    }
    let terse = run(&["--format", "terse"], false)
        .with_context(|| format!("run {} --list on the host", path.display()))?;
    if !terse.status.success() {
        bail!(
            "{} looks like a libtest program but `--list --format terse` failed ({}): {}",
            path.display(),
            terse.status,
            String::from_utf8_lossy(&terse.stderr).trim()
        );
    }
    Ok(GuestTestStyle::Libtest {
        tests: parse_terse_list(&String::from_utf8_lossy(&terse.stdout)),
        json: false,
    })
}

/// Listing runs no test; a program that takes longer than this is not listing.
const LIST_LIMIT: Duration = Duration::from_secs(60);

/// `Command::output` with a limit: the harness never hangs on someone else's program.
fn output_within(mut c: Command, limit: Duration) -> std::io::Result<std::process::Output> {
    use std::io::Read;
    let mut child = c
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut s);
        }
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut s);
        }
        s
    });
    let Some(status) = crate::proc::wait_with_deadline(&mut child, limit)? else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("still running after {} s; killed", limit.as_secs()),
        ));
    };
    Ok(std::process::Output {
        status,
        stdout: reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

/// `{ "type": "test", "event": "discovered", "name": ... }` lines; None if there are no
/// discovery events at all (a program that took the flags but printed something else).
pub fn parse_json_list(out: &str) -> Option<Vec<String>> {
    let mut tests = Vec::new();
    let mut discovery = false;
    for l in out.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
            continue;
        };
        if v["event"] == "discovery" || v["event"] == "completed" {
            discovery = true;
        }
        if v["type"] == "test" && v["event"] == "discovered" {
            if let Some(n) = v["name"].as_str() {
                tests.push(n.to_owned());
            }
        }
    }
    (discovery || !tests.is_empty()).then_some(tests)
}

/// `NAME: test` lines (benchmarks, `NAME: bench`, are not run).
pub fn parse_terse_list(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_owned)
        .collect()
}

/// Names must be unique: they are the trials' `guest::<name>` part.
pub fn check_unique(programs: &[GuestProgram]) -> anyhow::Result<()> {
    for (i, p) in programs.iter().enumerate() {
        if let Some(q) = programs[..i].iter().find(|q| q.name == p.name) {
            bail!(
                "two guest test programs are both named {:?} ({} and {}): their trials would \
                 collide; rename one",
                p.name,
                q.path.display(),
                p.path.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_hashes_are_dropped_from_names() {
        assert_eq!(
            program_name(Path::new("/t/deps/demo-4dd6a9daa7c691b4")),
            "demo"
        );
        assert_eq!(program_name(Path::new("/t/my-tap-test")), "my-tap-test");
    }

    #[test]
    fn listings_parse() {
        assert_eq!(
            parse_terse_list("a::b: test\nc: bench\nd: test\n"),
            ["a::b", "d"]
        );
        let json = r#"{ "type": "suite", "event": "discovery" }
{ "type": "test", "event": "discovered", "name": "tests::crash", "ignore": false }
{ "type": "suite", "event": "completed", "tests": 1 }"#;
        assert_eq!(parse_json_list(json), Some(vec!["tests::crash".to_owned()]));
        assert_eq!(parse_json_list("tests::crash: test\n"), None);
    }

    /// A minimal ELF32 header with one program header: i386 static, or with a PT_INTERP.
    fn elf32(machine: u16, interp: Option<&str>) -> Vec<u8> {
        let mut b = vec![0u8; 52 + 32];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 1; // ELFCLASS32
        b[5] = 1; // little-endian
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[28..32].copy_from_slice(&52u32.to_le_bytes()); // e_phoff
        b[42..44].copy_from_slice(&32u16.to_le_bytes()); // e_phentsize
        b[44..46].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        if let Some(i) = interp {
            b[52..56].copy_from_slice(&3u32.to_le_bytes()); // PT_INTERP
            b[56..60].copy_from_slice(&(84u32).to_le_bytes()); // p_offset
            b[68..72].copy_from_slice(&(i.len() as u32 + 1).to_le_bytes()); // p_filesz
            b.extend_from_slice(i.as_bytes());
            b.push(0);
        } else {
            b[52..56].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        }
        b
    }

    #[test]
    fn a_32bit_i386_program_is_read_with_the_32bit_layout() {
        assert_eq!(elf_check(&elf32(3, None)), ElfCheck::Static);
        assert_eq!(
            elf_check(&elf32(3, Some("/lib/ld-linux.so.2"))),
            ElfCheck::Dynamic("/lib/ld-linux.so.2".into())
        );
        // 32-bit ARM is no guest's.
        assert_eq!(elf_check(&elf32(40, None)), ElfCheck::WrongMachine(40));
        // A 64-bit class with the i386 machine is not a mix we run.
        let mut mixed = elf32(3, None);
        mixed[4] = 2;
        assert_eq!(elf_check(&mixed), ElfCheck::WrongMachine(3));
    }

    #[test]
    fn the_running_test_binary_is_a_dynamic_elf_and_libtest() {
        // This very test program: a libtest executable, dynamically linked on the host.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(looks_like_libtest(&me));
        assert!(matches!(elf_check(&me), ElfCheck::Dynamic(i) if i.contains("ld-linux")));
        assert_eq!(elf_check(b"#!/bin/sh\necho hi\n"), ElfCheck::NotElf);
        // Headers that point anywhere are not a panic.
        let mut bad = me[..64].to_vec();
        bad[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        bad[56..58].copy_from_slice(&3u16.to_le_bytes());
        assert_eq!(elf_check(&bad), ElfCheck::NotElf);
        assert_eq!(elf_check(&me[..20]), ElfCheck::NotElf);
    }
}
