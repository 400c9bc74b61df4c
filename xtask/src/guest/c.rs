//! C guest programs, built for any architecture the harness boots: one function,
//! [`build`], turns a C source into a static program for x86-64 (the host's gcc) or a
//! foreign architecture (Debian's cross gcc, `<triple>-gcc -static` against the cross C
//! library). The guest has no dynamic loader, so every program is static.
//!
//! The build is cached by what goes into it (the source, the compiler's version, the
//! architecture and the flags): a run that changes nothing compiles nothing.

use crate::sys::proc::RunTracked as _;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use harness::arch::Arch;

use crate::sys::progress::{Progress, Step};

/// The flags every C guest program is built with: warnings are errors, so a program that
/// compiles on one architecture and warns on another (a word size, an endianness) is caught.
const FLAGS: [&str; 6] = [
    "-static",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-std=gnu11",
];

/// The compiler and its arguments for `source` → `output` on `arch`.
pub fn compiler_command(arch: Arch, source: &Path, output: &Path) -> (String, Vec<OsString>) {
    let mut args: Vec<OsString> = FLAGS.map(OsString::from).to_vec();
    args.push("-o".into());
    args.push(output.into());
    args.push(source.into());
    (arch.gcc(), args)
}

/// The Debian packages that build static programs for `arch`: the compiler and the C
/// library it links statically against.
pub fn packages(arch: Arch) -> Vec<String> {
    match arch.cross_triple() {
        None => vec!["gcc".into(), "libc6-dev".into()],
        Some(t) => {
            let deb_arch = match arch {
                Arch::Arm64 => "arm64",
                _ => arch.name(),
            };
            vec![format!("gcc-{t}"), format!("libc6-dev-{deb_arch}-cross")]
        }
    }
}

/// The program `name`, built from `source` (its text) for `arch`, or found in the cache:
/// `<cache>/c-guest/<arch>/<key>/<name>`.
pub fn build(
    cache: &Path,
    arch: Arch,
    name: &str,
    source: &str,
    progress: &mut Progress,
) -> anyhow::Result<PathBuf> {
    let gcc = arch.gcc();
    let version = Command::new(&gcc)
        .arg("-dumpfullversion")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .with_context(|| {
            format!(
                "building the C guest program {name} for {arch} needs {gcc}: install {} \
                 (cargo xtask test --arch {arch} installs them when it may)",
                packages(arch).join(" ")
            )
        })?;
    let mut key = crate::cache::KeyBuilder::new("c-guest-v1");
    key.part("arch", arch.name().as_bytes())
        .part("gcc", version.as_bytes())
        .part("flags", FLAGS.join(" ").as_bytes())
        .part("source", source.as_bytes());
    let dir = cache.join("c-guest").join(arch.name());
    let program = dir.join(key.finish()).join(name);
    if program.is_file() {
        return Ok(program);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let _lock = crate::cache::lock(&dir.join("build.lock"))?;
    if program.is_file() {
        return Ok(program);
    }
    progress.step(
        Step::Guest,
        &format!("{name}: static C program for {arch} ({gcc} -static)"),
    );
    let out_dir = program.parent().expect("the program has a folder");
    let tmp = out_dir.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let src = tmp.join(format!("{name}.c"));
    std::fs::write(&src, source)?;
    let (cc, args) = compiler_command(arch, &src, &tmp.join(name));
    let out = Command::new(&cc)
        .args(args)
        .output_tracked()
        .with_context(|| format!("run {cc}"))?;
    crate::sys::proc::check()?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        bail!(
            "{}",
            compile_failure(arch, name, &String::from_utf8_lossy(&out.stderr))
        );
    }
    std::fs::rename(&tmp, out_dir)
        .or_else(|e| if program.is_file() { Ok(()) } else { Err(e) })
        .with_context(|| format!("move the build of {name} into {}", out_dir.display()))?;
    Ok(program)
}

/// The compiler's complaint in one message: a missing header or library is named with the
/// packages that carry it.
pub fn compile_failure(arch: Arch, name: &str, stderr: &str) -> String {
    gcc_failure(
        &format!(
            "building the C guest program {name} for {arch} with {} -static",
            arch.gcc()
        ),
        stderr,
        &format!(
            "Debian's {} carry the compiler and the static C library",
            packages(arch).join(" and ")
        ),
    )
}

/// gcc's complaint about `what` in one message. When it names something missing (a file, a
/// library, an option this gcc lacks), those lines come with `carried_by`, which says where
/// the missing things come from; otherwise its last twenty lines.
pub fn gcc_failure(what: &str, stderr: &str, carried_by: &str) -> String {
    let missing: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            l.contains("cannot find")
                || l.contains("No such file")
                || l.contains("unrecognized command-line option")
        })
        .take(6)
        .collect();
    if missing.is_empty() {
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let from = lines.len().saturating_sub(20);
        format!("{what} failed:\n{}", lines[from..].join("\n"))
    } else {
        format!(
            "{what} failed: something it needs is missing ({carried_by}):\n{}",
            missing.join("\n")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_arch_compiles_with_its_own_gcc_statically_warnings_as_errors() {
        let (cc, args) = compiler_command(Arch::S390x, Path::new("/t/p.c"), Path::new("/t/p"));
        assert_eq!(cc, "s390x-linux-gnu-gcc");
        let args: Vec<String> = args.into_iter().map(|a| a.into_string().unwrap()).collect();
        assert_eq!(args[0], "-static");
        assert!(args.contains(&"-Werror".to_owned()));
        assert_eq!(&args[args.len() - 3..], ["-o", "/t/p", "/t/p.c"]);
        assert_eq!(
            compiler_command(Arch::X86_64, Path::new("a.c"), Path::new("a")).0,
            "gcc"
        );
        assert_eq!(
            compiler_command(Arch::Arm64, Path::new("a.c"), Path::new("a")).0,
            "aarch64-linux-gnu-gcc"
        );
    }

    #[test]
    fn the_packages_match_the_host_tools_of_each_arch() {
        for a in [Arch::S390x, Arch::Arm64] {
            let want = packages(a);
            let tools: Vec<&str> = crate::sys::host_tools::arch_tools(a)
                .iter()
                .map(|t| t.package)
                .collect();
            for p in &want {
                assert!(tools.contains(&p.as_str()), "{a}: {p} not in {tools:?}");
            }
        }
        let m = compile_failure(
            Arch::Arm64,
            "abi_core",
            "/usr/bin/aarch64-linux-gnu-ld: cannot find -lc: No such file or directory\n",
        );
        assert!(
            m.contains("libc6-dev-arm64-cross") && m.contains("-lc"),
            "{m}"
        );
        let m = compile_failure(Arch::S390x, "abi_core", "x.c:3:1: error: expected ';'\n");
        assert!(m.contains("expected ';'") && !m.contains("missing"), "{m}");
    }
}
