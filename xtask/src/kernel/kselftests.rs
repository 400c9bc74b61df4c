//! The kernel tree's own user_events selftests (`tools/testing/selftests/user_events/`), built
//! statically from the same tree as the kernel, against that tree's uapi headers, so they run
//! in the same boot as the scenarios. A program that does not build is reported with the
//! compiler's message.

use crate::sys::proc::RunTracked as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use harness::model::{KselftestBinary, KselftestBuild, KSELFTESTS};
use serde::{Deserialize, Serialize};

use crate::sys::progress::{Progress, Step};

/// Named anew when what a stamp may hold changes: `BUILT.json` could hold a failed
/// `make headers`, which no stamp keeps now; a tree built before is built again once.
const STAMP: &str = "BUILT-2.json";

#[derive(Serialize, Deserialize)]
struct Stamp {
    /// What the programs were built from (see [`inputs_key`]).
    inputs: String,
    programs: Vec<KselftestBinary>,
}

/// The selftests depend on their own sources and on the uapi header, not on the kernel's C
/// files: a patch to kernel/trace/ (an edit, a mutant) does not rebuild them.
fn inputs_key(src: &Path) -> String {
    let mut k = crate::cache::KeyBuilder::new("kselftests");
    let tests = src.join("tools/testing/selftests/user_events");
    let mut files: Vec<_> = std::fs::read_dir(&tests)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files.push(src.join("include/uapi/linux/user_events.h"));
    files.push(src.join("tools/testing/selftests/kselftest_harness.h"));
    for f in files {
        k.part(&f.to_string_lossy(), &std::fs::read(&f).unwrap_or_default());
    }
    k.finish()
}

/// Builds every program of [`KSELFTESTS`] (into `out/kselftest/`), or takes
/// them from an earlier build whose inputs were the same.
pub fn build(
    src: &Path,
    out: &Path,
    progress: &mut Progress,
) -> anyhow::Result<Vec<KselftestBinary>> {
    let dir = out.join("kselftest");
    let stamp = dir.join(STAMP);
    let inputs = inputs_key(src);
    if let Some(s) = std::fs::read(&stamp)
        .ok()
        .and_then(|b| serde_json::from_slice::<Stamp>(&b).ok())
    {
        // A cache restored without its source tree (CI) keeps what was built with it.
        if s.inputs == inputs || !src.join("tools/testing/selftests").exists() {
            return Ok(s.programs);
        }
    }
    progress.step(
        Step::Kselftest,
        &format!("upstream user_events selftests from {}", src.display()),
    );
    std::fs::create_dir_all(&dir)?;
    let tests = src.join("tools/testing/selftests/user_events");
    let timeout = settings_timeout(&tests.join("settings"));
    // `make headers` installs this tree's uapi headers under out/usr/include (KHDR_INCLUDES).
    let headers = crate::kernel::build::make_cmd(src, out)
        .arg("headers")
        .output_tracked()
        .context("make headers")?;
    let headers_err =
        (!headers.status.success()).then(|| String::from_utf8_lossy(&headers.stderr).into_owned());
    let mut programs = Vec::new();
    for name in KSELFTESTS {
        let c_file = tests.join(format!("{name}.c"));
        let binary = dir.join(name);
        let build = if !c_file.exists() {
            KselftestBuild::NotInTree
        } else if let Some(e) = &headers_err {
            KselftestBuild::Failed {
                message: format!("make headers failed:\n{e}"),
            }
        } else {
            let o = Command::new("gcc")
                .args(["-static", "-O2", "-Wall", "-Wl,-no-as-needed"])
                .arg(format!("-I{}", out.join("usr/include").display()))
                // lib.mk's own include path: newer selftests include "kselftest_harness.h" bare.
                .arg(format!(
                    "-I{}",
                    src.join("tools/testing/selftests").display()
                ))
                .arg("-o")
                .arg(&binary)
                .arg(&c_file)
                .args(["-lrt", "-lpthread", "-lm"])
                .output_tracked()
                .context("run gcc")?;
            if o.status.success() {
                KselftestBuild::Built { path: binary }
            } else {
                let msg = String::from_utf8_lossy(&o.stderr);
                let errors: Vec<&str> = msg
                    .lines()
                    .filter(|l| l.contains("error"))
                    .take(8)
                    .collect();
                let message = format!(
                    "gcc failed:\n{}",
                    if errors.is_empty() {
                        msg.trim().to_owned()
                    } else {
                        errors.join("\n")
                    }
                );
                KselftestBuild::Failed { message }
            }
        };
        programs.push(KselftestBinary {
            name: name.to_string(),
            build,
            timeout,
        });
    }
    // A gcc stopped by Ctrl-C is no compiler verdict: record nothing.
    crate::sys::proc::check()?;
    // Nor is a failed `make headers`, which says nothing about the selftests' sources: seen
    // once on a fresh 7.3-rc build (`scripts/unifdef: not found`, fine when run again),
    // and a stamp would have kept that failure for every later run of the same tree.
    if headers_err.is_some() {
        return Ok(programs);
    }
    crate::cache::write_atomic(
        &stamp,
        &serde_json::to_vec_pretty(&Stamp {
            inputs,
            programs: programs.clone(),
        })?,
    )?;
    Ok(programs)
}

/// `timeout=90` from the selftests' `settings` file (kselftest's runner default: 45 s).
fn settings_timeout(path: &Path) -> Duration {
    let secs = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("timeout=")
                    .and_then(|v| v.parse().ok())
            })
        })
        .unwrap_or(45);
    Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_timeout_is_read_or_defaults() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("settings");
        std::fs::write(&p, "timeout=90\n").unwrap();
        assert_eq!(settings_timeout(&p), Duration::from_secs(90));
        assert_eq!(
            settings_timeout(&d.path().join("none")),
            Duration::from_secs(45)
        );
    }
}
