//! Other people's test programs, ready for the guest: `--guest-test PATH` as given, and
//! `--guest-crate DIR` built here — its tests compiled with `cargo test --no-run` for the one
//! target the guest runs, with the C runtime linked in (`crt-static`), into our target folder,
//! the executables taken from cargo's JSON messages. Nothing but the crate's Cargo.toml is
//! needed. Each program is then checked and listed by [`harness::guest_program::inspect`].

use crate::sys::proc::RunTracked as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};
use harness::guest_program;
use harness::model::{GuestProgram, GuestTestStyle};

use crate::args::GuestTestArgs;
use crate::guest::TARGET;
use crate::sys::progress::{Progress, Step};

/// The guest test options checked without building or reading a program: files that exist,
/// a crate folder with a Cargo.toml, NAME=VALUE variables. Commands call this before they
/// install or build anything.
pub fn check(a: &GuestTestArgs) -> anyhow::Result<()> {
    parse_env(&a.guest_env)?;
    for p in &a.guest_tests {
        if !p.is_file() {
            bail!("--guest-test {}: no such file", p.display());
        }
    }
    if let Some(dir) = &a.guest_crate {
        if !dir.join("Cargo.toml").is_file() {
            bail!("--guest-crate {}: no Cargo.toml there", dir.display());
        }
    }
    Ok(())
}

/// Every guest test program the arguments name, checked; empty without any.
/// `target` takes the crate builds; `cache` the compat32 program's libraries and build.
pub fn resolve(
    a: &GuestTestArgs,
    target: &Path,
    cache: &Path,
    progress: &mut Progress,
) -> anyhow::Result<Vec<GuestProgram>> {
    let env = parse_env(&a.guest_env)?;
    let timeout = Duration::from_secs(a.guest_test_timeout);
    let mut named: Vec<(PathBuf, Option<String>)> =
        a.guest_tests.iter().map(|p| (p.clone(), None)).collect();
    if a.compat32 {
        named.push((
            crate::guest::compat32::build(cache, progress)?,
            Some(crate::guest::compat32::NAME.to_owned()),
        ));
    }
    if let Some(dir) = &a.guest_crate {
        named.extend(
            build_crate(dir, target, progress)?
                .into_iter()
                .map(|e| (e.path, Some(e.name))),
        );
    }
    let mut programs = Vec::new();
    for (path, name) in named {
        let mut p = guest_program::inspect(&path, name, &a.guest_test_args, &env, timeout)?;
        p.fault_warnings = a.guest_fault_warnings && a.guest_tests.contains(&path);
        // A crate's bin or lib without tests still gets a test executable: nothing to run.
        if matches!(&p.style, GuestTestStyle::Libtest { tests, .. } if tests.is_empty()) {
            progress.note(&format!(
                "{} ({}) lists no tests: not run",
                p.name,
                path.display()
            ));
            continue;
        }
        programs.push(p);
    }
    if programs.is_empty() && a.any() {
        bail!(
            "no guest tests to run: every test program given lists no tests (with \
             --guest-test-arg {:?})",
            a.guest_test_args
        );
    }
    guest_program::check_unique(&programs)?;
    Ok(programs)
}

pub(crate) fn parse_env(vars: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    vars.iter()
        .map(|v| match v.split_once('=') {
            Some((k, val)) if !k.is_empty() => Ok((k.to_owned(), val.to_owned())),
            _ => bail!("--guest-env {v:?}: write NAME=VALUE"),
        })
        .collect()
}

/// One test executable cargo built, named for trials by its target.
#[derive(Debug, PartialEq, Eq)]
pub struct TestExecutable {
    pub name: String,
    pub path: PathBuf,
}

/// The test executables of cargo's `--message-format=json` output: `compiler-artifact`
/// messages with a test profile and an executable. A lib's and a bin's of the same name get
/// their kind appended.
pub fn executables(messages: &str) -> Vec<TestExecutable> {
    let mut found: Vec<(String, String, PathBuf)> = Vec::new();
    for line in messages.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] != "compiler-artifact" || v["profile"]["test"] != true {
            continue;
        }
        let (Some(exe), Some(name)) = (v["executable"].as_str(), v["target"]["name"].as_str())
        else {
            continue;
        };
        let kind = v["target"]["kind"][0].as_str().unwrap_or("test").to_owned();
        found.push((name.replace('-', "_"), kind, exe.into()));
    }
    let clash = |n: &str| found.iter().filter(|(m, ..)| m == n).count() > 1;
    found
        .iter()
        .map(|(n, kind, path)| TestExecutable {
            name: if clash(n) {
                format!("{n}-{kind}")
            } else {
                n.clone()
            },
            path: path.clone(),
        })
        .collect()
}

/// What cargo said when the build failed: its rendered errors, and for a link failure the
/// reason the crate is not static-friendly.
pub fn build_failure(dir: &Path, messages: &str, stderr: &str) -> String {
    let mut errors = Vec::new();
    for line in messages.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-message" && v["message"]["level"] == "error" {
            if let Some(r) = v["message"]["rendered"].as_str() {
                errors.push(r.trim().to_owned());
            }
        }
    }
    let text = format!("{}\n{stderr}", errors.join("\n"));
    let link = text.contains("linking with")
        || text.contains("could not find native static library")
        || text.contains("undefined reference");
    let why = if link {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.contains("cannot find -l")
                    || l.contains("unable to find library")
                    || l.contains("undefined reference")
                    || l.contains("could not find native static library")
                    || l.contains("attempted static link")
            })
            .take(6)
            .collect();
        format!(
            "its tests do not link statically: the guest has no dynamic loader, so they are \
             built with `-C target-feature=+crt-static`, and something they depend on is only \
             available as a shared library (a -sys crate linking a system .so, e.g. openssl). \
             Use that crate's static or vendored feature, or drop it from the tests.\n  \
             linker: {}",
            if lines.is_empty() {
                "(see the errors below)".to_owned()
            } else {
                lines.join("\n  linker: ")
            }
        )
    } else {
        "its tests do not compile".to_owned()
    };
    // The linker's command line is one enormous line: shorten every line.
    let tail: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.chars().take(300).collect())
        .collect();
    let from = tail.len().saturating_sub(25);
    format!(
        "--guest-crate {}: {why}\n{}",
        dir.display(),
        tail[from..].join("\n")
    )
}

/// `cargo test --no-run` for the guest, in `<target>/ue-guest-crates/<crate folder>`.
fn build_crate(
    dir: &Path,
    target: &Path,
    progress: &mut Progress,
) -> anyhow::Result<Vec<TestExecutable>> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "--guest-crate {}: no Cargo.toml there; name the folder of the crate whose tests \
             should run in the guest",
            dir.display()
        );
    }
    let dir = dir
        .canonicalize()
        .with_context(|| format!("--guest-crate {}", dir.display()))?;
    let folder = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "crate".into());
    let crate_target = target.join("ue-guest-crates").join(folder);
    progress.step(
        Step::Guest,
        &format!("tests of {} (static, {TARGET})", dir.display()),
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let started = std::time::Instant::now();
    // An explicit --target keeps RUSTFLAGS off build scripts and proc-macros, which must stay
    // dynamically linked host programs. The caller's own flags must not leak in.
    let out = Command::new(&cargo)
        .args([
            "test",
            "--no-run",
            "--message-format=json",
            "--target",
            TARGET,
        ])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .current_dir(&dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env("CARGO_TARGET_DIR", &crate_target)
        .env("CARGO_TERM_COLOR", "never")
        .stdin(Stdio::null())
        .output_tracked()
        .with_context(|| format!("run {cargo} test --no-run for {}", dir.display()))?;
    crate::sys::proc::check()?;
    let messages = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{}",
            build_failure(&dir, &messages, &String::from_utf8_lossy(&out.stderr))
        );
    }
    let exes = executables(&messages);
    if exes.is_empty() {
        bail!(
            "--guest-crate {}: cargo built no test executable (does the crate have a lib, bin \
             or tests/ target with tests enabled?)",
            dir.display()
        );
    }
    progress.note(&format!(
        "built {} test executable(s) of {} in {:.1} s",
        exes.len(),
        dir.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(exes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_executables_come_from_cargos_messages() {
        let msgs = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"ue-example"},"profile":{"test":false},"executable":null}
{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"ue-example"},"profile":{"test":true},"executable":"/t/deps/ue_example-0123456789abcdef"}
{"reason":"compiler-artifact","target":{"kind":["test"],"name":"fork"},"profile":{"test":true},"executable":"/t/deps/fork-0123456789abcdef"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executables(msgs),
            [
                TestExecutable {
                    name: "ue_example".into(),
                    path: "/t/deps/ue_example-0123456789abcdef".into()
                },
                TestExecutable {
                    name: "fork".into(),
                    path: "/t/deps/fork-0123456789abcdef".into()
                }
            ]
        );
    }

    #[test]
    fn a_link_failure_says_the_crate_is_not_static_friendly() {
        let msgs = r#"{"reason":"compiler-message","message":{"level":"error","rendered":"error: linking with `cc` failed: exit status: 1\n  = note: /usr/bin/ld: cannot find -lssl: No such file or directory\n"}}"#;
        let m = build_failure(Path::new("x"), msgs, "");
        assert!(
            m.contains("do not link statically") && m.contains("cannot find -lssl"),
            "{m}"
        );
        assert!(build_failure(Path::new("x"), "", "error[E0425]").contains("do not compile"));
    }

    #[test]
    fn env_needs_a_name() {
        assert_eq!(
            parse_env(&["A=b=c".into()]).unwrap(),
            [("A".to_owned(), "b=c".to_owned())]
        );
        assert!(parse_env(&["=x".into()]).is_err());
        assert!(parse_env(&["x".into()]).is_err());
    }
}
