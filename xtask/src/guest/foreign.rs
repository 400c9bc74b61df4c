//! The guest of a foreign architecture (`--arch s390x`, `--arch arm64`). The Rust guest
//! cannot be built for those targets here (rustup cannot fetch their std), so the guest is
//! C, cross-compiled statically with [`super::c::build`]:
//!
//! - the init, `guest-tests/c/ue-cinit.c`: mounts what the programs need (proc, sysfs,
//!   devtmpfs, tracefs, tmpfs, debugfs), runs each program of the plan once with a limit,
//!   and reports on the result channel with the records the Rust runner sends for a guest
//!   program (hello, start, end with its output, done). The host's verdicts (KTAP → one
//!   trial per check) are then the same code as for any `--guest-test`;
//! - the C programs: the ABI's core checks (`guest-tests/c/abi_core.c`), and any
//!   `--guest-c FILE.c`.
//!
//! A small C init rather than Debian's busybox-static for that architecture: busybox would be
//! one more package fetched per architecture, and its shell cannot write the records the
//! host reads (each program's whole output as one escaped JSON string, a limit per program,
//! the start and end markers on the kernel log); the C init needs nothing but the cross
//! compiler the programs need anyway.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use harness::arch::Arch;
use harness::model::{ArchGuest, GuestProgram, GuestTestStyle};

use crate::args::GuestTestArgs;
use crate::sys::progress::Progress;

/// The init's source, carried by the xtask: the build key hashes it.
pub const INIT_SOURCE: &str = include_str!("../../../guest-tests/c/ue-cinit.c");

/// Its name in the cache and in `images/initramfs-c.toml`.
pub const INIT: &str = "ue-cinit";

/// The manifest of a foreign architecture's initramfs (the init alone; programs are added
/// per run).
pub const MANIFEST: &str = "images/initramfs-c.toml";

/// A C program every foreign architecture runs, from `guest-tests/c/<name>.c`.
pub struct Shipped {
    pub name: &'static str,
    /// It unmaps enable words on purpose: the kernel's "Fault for mm" warning is expected
    /// while it runs (see [`harness::model::GuestProgram::fault_warnings`]).
    pub fault_warnings: bool,
}

pub const PROGRAMS: [Shipped; 1] = [Shipped {
    name: "abi_core",
    // Its munmap checks leave registrations on unmapped pages, which the kernel reports
    // once each when it tries to write them.
    fault_warnings: true,
}];

/// A `--guest-c` source that unmaps enable words on purpose says so with this text (in a
/// comment): the kernel's fault warnings while it runs are then expected.
pub const FAULT_WARNINGS_MARK: &str = "ue-harness: fault_warnings";

/// The C sources a foreign architecture's guest runs: the shipped programs, then
/// `--guest-c` files, as (name, path).
pub fn sources(root: &Path, extra: &[PathBuf]) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for p in PROGRAMS {
        let path = root.join(format!("guest-tests/c/{}.c", p.name));
        if path.is_file() {
            out.push((p.name.to_owned(), path));
        }
    }
    for p in extra {
        let name = program_name(p)?;
        if out.iter().any(|(n, _)| *n == name) {
            bail!(
                "--guest-c {}: a program named {name} is already in the guest",
                p.display()
            );
        }
        out.push((name, p.clone()));
    }
    if out.is_empty() {
        bail!(
            "no C guest program for a foreign architecture: guest-tests/c/{}.c is not in this \
             checkout; give one with --guest-c FILE.c",
            PROGRAMS[0].name
        );
    }
    Ok(out)
}

/// Whether program `name` (its source `text`) provokes the kernel's fault warnings on
/// purpose: a shipped program by its entry, another by [`FAULT_WARNINGS_MARK`].
pub fn expects_fault_warnings(name: &str, text: &str) -> bool {
    PROGRAMS
        .iter()
        .find(|p| p.name == name)
        .map_or(text.contains(FAULT_WARNINGS_MARK), |p| p.fault_warnings)
}

/// A program's name in trials (`guest::<name>::<check>`): its file's stem, which must be a
/// plain word.
pub fn program_name(path: &Path) -> anyhow::Result<String> {
    let ok = path.extension().is_some_and(|e| e == "c");
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !ok
        || stem.is_empty()
        || !stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        bail!(
            "--guest-c {}: give a C source file named NAME.c (NAME of letters, digits, _ and -)",
            path.display()
        );
    }
    Ok(stem)
}

/// The guest of `arch`: its init and programs built (or found in the cache).
pub fn prepare(
    root: &Path,
    cache: &Path,
    arch: Arch,
    a: &GuestTestArgs,
    progress: &mut Progress,
) -> anyhow::Result<ArchGuest> {
    let init = super::c::build(cache, arch, INIT, INIT_SOURCE, progress)?;
    let env = super::programs::parse_env(&a.guest_env)?;
    let mut programs = Vec::new();
    for (name, path) in sources(root, &a.guest_c)? {
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let built = super::c::build(cache, arch, &name, &text, progress)?;
        programs.push(GuestProgram {
            fault_warnings: expects_fault_warnings(&name, &text),
            name,
            path: built,
            args: a.guest_test_args.clone(),
            env: env.clone(),
            timeout: Duration::from_secs(a.guest_test_timeout),
            style: GuestTestStyle::Program,
        });
    }
    Ok(ArchGuest {
        arch,
        bin_dir: init
            .parent()
            .expect("a built program has a folder")
            .to_owned(),
        manifest: root.join(MANIFEST),
        programs,
    })
}

/// `--guest-c` only means something in a foreign architecture's guest.
pub fn check(a: &GuestTestArgs, arches: &[Arch]) -> anyhow::Result<()> {
    for p in &a.guest_c {
        program_name(p)?;
        if !p.is_file() {
            bail!("--guest-c {}: no such file", p.display());
        }
    }
    // x86-64 programs would silently run nowhere.
    if a.any() && !arches.iter().any(|a| a.is_native()) {
        bail!("--guest-test, --guest-crate and --compat32 are x86-64 programs, and --arch {} boots no x86-64 kernel: add x86_64 to --arch, or give a C source with --guest-c", arches.iter().map(|a| a.name()).collect::<Vec<_>>().join(","));
    }
    Ok(())
}

/// The foreign guests with their programs named but not built (`--list`).
pub fn listed(root: &Path, arches: &[Arch], a: &GuestTestArgs) -> anyhow::Result<Vec<ArchGuest>> {
    arches
        .iter()
        .filter(|a| !a.is_native())
        .map(|&arch| {
            Ok(ArchGuest {
                arch,
                bin_dir: PathBuf::new(),
                manifest: root.join(MANIFEST),
                programs: sources(root, &a.guest_c)?
                    .into_iter()
                    .map(|(name, path)| GuestProgram {
                        name,
                        path,
                        args: vec![],
                        env: vec![],
                        timeout: Duration::from_secs(a.guest_test_timeout),
                        style: GuestTestStyle::Program,
                        fault_warnings: false,
                    })
                    .collect(),
            })
        })
        .collect()
}

/// The `--guest-c` programs built for x86-64 (the host's gcc, the same flags), for the
/// x86-64 kernels of a run that names x86_64 in `--arch` (or none): the same checks beside
/// the foreign architectures' (`6.12::guest::NAME::...` beside `6.12-s390x::guest::NAME::...`).
/// Only what --guest-c names: the x86-64 guest's own checks are its scenarios.
pub fn native_programs(
    cache: &Path,
    arches: &[Arch],
    a: &GuestTestArgs,
    build: bool,
    progress: &mut Progress,
) -> anyhow::Result<Vec<GuestProgram>> {
    if !arches.iter().any(|a| a.is_native()) {
        return Ok(vec![]);
    }
    let env = super::programs::parse_env(&a.guest_env)?;
    let mut out = Vec::new();
    for p in &a.guest_c {
        let name = program_name(p)?;
        let text = std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
        let path = if build {
            super::c::build(cache, Arch::X86_64, &name, &text, progress)?
        } else {
            p.clone()
        };
        out.push(GuestProgram {
            fault_warnings: expects_fault_warnings(&name, &text),
            name,
            path,
            args: a.guest_test_args.clone(),
            env: env.clone(),
            timeout: Duration::from_secs(a.guest_test_timeout),
            style: GuestTestStyle::Program,
        });
    }
    Ok(out)
}

/// The guests of every foreign architecture of `arches`.
pub fn prepare_all(
    root: &Path,
    cache: &Path,
    arches: &[Arch],
    a: &GuestTestArgs,
    progress: &mut Progress,
) -> anyhow::Result<Vec<ArchGuest>> {
    arches
        .iter()
        .filter(|a| !a.is_native())
        .map(|&arch| prepare(root, cache, arch, a, progress))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The C init, built for the host and run off a VM (`--plan FILE`, records on stdout),
    /// speaks the result channel as the host reads it: a hello, each program's start and end
    /// with its whole output and the runner's words for how it ended, and done.
    #[test]
    fn the_c_init_reports_programs_as_the_host_parser_reads_them() {
        use harness::channel::{Event, GuestTestPlan, Outcome, Plan, Record};
        if !crate::sys::host_tools::present("gcc") {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let init = crate::guest::c::build(
            d.path(),
            Arch::X86_64,
            INIT,
            INIT_SOURCE,
            &mut Progress::new(),
        )
        .unwrap();
        let prog = |program: &str, path: &str, args: &[&str], timeout_ms: u64| GuestTestPlan {
            program: program.into(),
            path: path.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: vec![("UE_X".into(), "\"quoted\" é".into())],
            timeout_ms,
            style: harness::channel::GuestTestStyle::Program,
        };
        let plan = Plan {
            scenarios: vec![],
            scenario_timeout_ms: 1,
            poll_deadline_ms: 1,
            kselftests: vec![],
            stop_at_first_failure: false,
            stop_on: vec![],
            jobs: 1,
            guest_tests: vec![
                prog(
                    "ktap",
                    "/bin/sh",
                    &[
                        "-c",
                        "printf 'TAP version 13\\n1..1\\nok 1 - x\\n'; echo \"$UE_X\" >&2; exit 3",
                    ],
                    10_000,
                ),
                prog("slow", "/bin/sleep", &["30"], 200),
                prog("gone", "/nonexistent/prog", &[], 5_000),
            ],
            hang_limit_ms: 0,
            defer: vec![],
        };
        let plan_path = d.path().join("plan.json");
        std::fs::write(&plan_path, serde_json::to_vec_pretty(&plan).unwrap()).unwrap();
        let out = std::process::Command::new(&init)
            .arg("--plan")
            .arg(&plan_path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let mut parser = harness::channel::Parser::new();
        let mut records: Vec<Record> = Vec::new();
        for e in parser.push(&out.stdout).into_iter().chain(parser.finish()) {
            match e {
                Event::Record(r) => records.push(r),
                other => panic!("not a record: {other:?}"),
            }
        }
        assert!(
            matches!(&records[0], Record::Hello { planned: 3, .. }),
            "{records:?}"
        );
        assert!(matches!(records.last(), Some(Record::Done { .. })));
        let ends: Vec<&harness::channel::RecordEnd> = records
            .iter()
            .filter_map(|r| match r {
                Record::End(e) => Some(e),
                _ => None,
            })
            .collect();
        assert_eq!(ends.len(), 3);
        assert_eq!(ends[0].name, "guest::ktap");
        assert_eq!(ends[0].outcome, Outcome::Fail);
        assert_eq!(ends[0].message, "exited with status 3");
        assert_eq!(
            ends[0].output,
            "TAP version 13\n1..1\nok 1 - x\n\"quoted\" é\n"
        );
        assert!(
            ends[1].message.starts_with("timed out after 200 ms"),
            "{:?}",
            ends[1]
        );
        assert_eq!(ends[2].message, "exited with status 127");
        assert!(
            ends[2].output.contains("exec /nonexistent/prog"),
            "{:?}",
            ends[2]
        );
        let starts = records
            .iter()
            .filter(|r| matches!(r, Record::Start { .. }))
            .count();
        assert_eq!(starts, 3);
    }

    #[test]
    fn abi_core_and_marked_programs_expect_the_kernels_fault_warnings() {
        assert!(expects_fault_warnings("abi_core", ""));
        assert!(!expects_fault_warnings(
            "probe",
            "int main(void) { return 0; }"
        ));
        assert!(expects_fault_warnings(
            "probe",
            "/* ue-harness: fault_warnings (munmap) */"
        ));
    }

    #[test]
    fn c_programs_are_named_by_their_file() {
        assert_eq!(
            program_name(Path::new("/x/abi_core.c")).unwrap(),
            "abi_core"
        );
        assert!(program_name(Path::new("/x/abi core.c")).is_err());
        assert!(program_name(Path::new("/x/prog")).is_err());
    }

    #[test]
    fn the_manifest_carries_the_init_only() {
        let root = crate::session::project_root();
        let m = harness::image::Manifest::load(&root.join(MANIFEST)).unwrap();
        assert_eq!(m.files.len(), 1);
        assert_eq!(
            (m.files[0].path.as_str(), m.files[0].guest_bin.as_str()),
            ("init", INIT)
        );
        assert!(m.dirs.iter().any(|d| d == "tmp"));
    }

    #[test]
    fn extra_sources_come_after_the_shipped_ones_and_never_twice() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("probe.c");
        std::fs::write(&p, "int main(void){return 0;}\n").unwrap();
        let root = crate::session::project_root();
        let got = sources(&root, std::slice::from_ref(&p)).unwrap();
        assert_eq!(got.last().unwrap(), &("probe".to_owned(), p.clone()));
        assert!(sources(&root, &[p.clone(), p]).is_err());
    }
}
