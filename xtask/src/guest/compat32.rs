//! The compat32 guest program (`guest-tests/c/compat32.c`, `--compat32`): a static 32-bit C
//! program that uses user_events from a 32-bit process on the 64-bit guest kernel (IA32
//! emulation), reporting KTAP.
//!
//! Debian's `gcc-multilib` conflicts with the cross compilers (installing one removes the
//! other), and the harness never removes a package. So the 32-bit C library and gcc's 32-bit
//! runtime are fetched as `.deb` files through a private apt state of their own, unpacked into
//! the cache, and the host's gcc-12 (which generates i386 code with `-m32` by itself) is
//! pointed at them. Nothing is installed on the host.

use crate::sys::proc::RunTracked as _;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::kernel::apt::{Fetched, PrivateApt};
use crate::sys::progress::{Progress, Step};

/// The program's source, carried by the xtask: the build key hashes it.
const SOURCE: &str = include_str!("../../../guest-tests/c/compat32.c");

/// The name the program's trials carry: `guest::compat32::<check>`.
pub const NAME: &str = "compat32";

/// The gcc whose 32-bit runtime is fetched: the host compiler and `lib32gcc-<N>-dev` must be
/// the same major version (crtbeginT.o and libgcc.a live under its versioned folder).
const GCC_MAJOR: &str = "12";

/// The Debian release whose packages match the host's gcc-12 and glibc headers (Debian 12).
const SUITE: &str = "bookworm";

/// What `gcc -m32 -static` needs beyond the host's own gcc: libc.a and the crt files
/// (libc6-dev-i386, with the i386 libc it depends on), and gcc's 32-bit crtbegin/crtend and
/// libgcc (lib32gcc-12-dev, with lib32gcc-s1).
pub const PACKAGES: [&str; 4] = [
    "libc6-dev-i386",
    "libc6-i386",
    "lib32gcc-12-dev",
    "lib32gcc-s1",
];

/// The compiler command line: the host's headers (bi-arch on Debian), the unpacked i386
/// ones first (gnu/stubs-32.h), and the unpacked crt files and libraries before the host's
/// 64-bit ones.
pub fn gcc_args(sysroot: &Path, source: &Path, output: &Path) -> Vec<OsString> {
    let gcc_lib = sysroot.join(format!("usr/lib/gcc/x86_64-linux-gnu/{GCC_MAJOR}/32"));
    let lib32 = sysroot.join("usr/lib32");
    let mut args: Vec<OsString> = ["-m32", "-static", "-O2", "-Wall", "-Wextra", "-Werror"]
        .map(OsString::from)
        .to_vec();
    let with = |flag: &str, p: &Path| {
        let mut s = OsString::from(flag);
        s.push(p.as_os_str());
        s
    };
    args.push("-isystem".into());
    args.push(sysroot.join("usr/include/x86_64-linux-gnu").into());
    // With -m32 gcc searches /usr/include/i386-linux-gnu, which only the i386 libc6-dev
    // has; the x86-64 one's headers serve both word sizes.
    args.push("-isystem".into());
    args.push("/usr/include/x86_64-linux-gnu".into());
    // -B finds crt1.o, crti.o, crtn.o and crtbeginT.o, crtend.o; -L libc.a and libgcc.a.
    let mut lib32_dir = lib32.clone().into_os_string();
    lib32_dir.push("/");
    let mut gcc_lib_dir = gcc_lib.clone().into_os_string();
    gcc_lib_dir.push("/");
    args.push(with("-B", Path::new(&lib32_dir)));
    args.push(with("-B", Path::new(&gcc_lib_dir)));
    args.push(with("-L", &lib32));
    args.push(with("-L", &gcc_lib));
    args.push("-o".into());
    args.push(output.into());
    args.push(source.into());
    args
}

/// The program, built (or found in the cache): `<cache>/compat32/<key>/compat32`, the key
/// covering the source, the packages' versions and the host compiler's version.
pub fn build(cache: &Path, progress: &mut Progress) -> anyhow::Result<PathBuf> {
    let gcc = format!("gcc-{GCC_MAJOR}");
    let gcc_version = Command::new(&gcc)
        .arg("-dumpfullversion")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .with_context(|| {
            format!(
                "--compat32 needs {gcc} on the host (the 32-bit runtime fetched for it is \
                 lib32gcc-{GCC_MAJOR}-dev): install it with `apt-get install {gcc}`"
            )
        })?;
    let apt = PrivateApt::at(cache.join("apt-compat32"));
    let packages = PACKAGES.map(String::from);
    apt.update(&[SUITE.to_owned()], &packages, progress)
        .context("the package index for the compat32 program's 32-bit libraries")?;
    let mut debs: Vec<Fetched> = Vec::new();
    for p in PACKAGES {
        let entry = apt.newest(p)?;
        debs.push(apt.fetch(cache, &entry, progress)?);
    }
    let mut libs = crate::cache::KeyBuilder::new("compat32-sysroot");
    for d in &debs {
        libs.part(&d.entry.package, d.entry.sha256.as_bytes());
    }
    let libs = libs.finish();
    let mut key = crate::cache::KeyBuilder::new("compat32");
    key.part("source", SOURCE.as_bytes())
        .part("sysroot", libs.as_bytes())
        .part("gcc", gcc_version.as_bytes());
    let dir = cache.join("compat32");
    let program = dir.join(key.finish()).join(NAME);
    if program.is_file() {
        return Ok(program);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let _lock = crate::cache::lock(&dir.join("build.lock"))?;
    if program.is_file() {
        return Ok(program);
    }
    let sysroot = unpack(&dir.join(format!("sysroot-{libs}")), &debs)?;
    progress.step(
        Step::Guest,
        &format!("{NAME}: static 32-bit program ({gcc} -m32 -static, libraries of {SUITE})"),
    );
    let out_dir = program.parent().expect("the program has a folder");
    let tmp = out_dir.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let source = tmp.join(format!("{NAME}.c"));
    std::fs::write(&source, SOURCE)?;
    let out = Command::new(&gcc)
        .args(gcc_args(&sysroot, &source, &tmp.join(NAME)))
        .output_tracked()
        .with_context(|| format!("run {gcc}"))?;
    crate::sys::proc::check()?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        bail!(
            "{}",
            compile_failure(&gcc, &String::from_utf8_lossy(&out.stderr))
        );
    }
    std::fs::rename(&tmp, out_dir)
        .or_else(|e| if program.is_file() { Ok(()) } else { Err(e) })
        .with_context(|| format!("move the compat32 build into {}", out_dir.display()))?;
    Ok(program)
}

/// Unpacks each `.deb` into `dest` (once: a folder that exists is complete, since it is
/// renamed into place).
fn unpack(dest: &Path, debs: &[Fetched]) -> anyhow::Result<PathBuf> {
    if dest.is_dir() {
        return Ok(dest.to_owned());
    }
    let tmp = dest.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    for d in debs {
        let out = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&d.deb)
            .arg(&tmp)
            .output_tracked()
            .context("run dpkg-deb -x (is dpkg installed?)")?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&tmp);
            bail!(
                "dpkg-deb -x {} failed: {}",
                d.deb.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    std::fs::rename(&tmp, dest).with_context(|| format!("move {} into place", dest.display()))?;
    Ok(dest.to_owned())
}

/// gcc's complaint in one message: a missing file or library is named with what carries it.
pub fn compile_failure(gcc: &str, stderr: &str) -> String {
    super::c::gcc_failure(
        &format!("building the compat32 program with {gcc} -m32 -static"),
        stderr,
        &format!(
            "the 32-bit files come from {}, unpacked in the cache; the rest from the host's \
             gcc-{GCC_MAJOR} and libc6-dev",
            PACKAGES.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcc_is_pointed_at_the_unpacked_libraries_before_the_hosts() {
        let args: Vec<String> = gcc_args(
            Path::new("/c/sysroot"),
            Path::new("/t/compat32.c"),
            Path::new("/t/compat32"),
        )
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
        let at = |a: &str| args.iter().position(|x| x == a).unwrap();
        assert!(args.starts_with(&["-m32".into(), "-static".into()]));
        // The i386 stubs header is found before the host's bi-arch headers.
        assert!(
            at("/c/sysroot/usr/include/x86_64-linux-gnu") < at("/usr/include/x86_64-linux-gnu")
        );
        assert!(args.contains(&"-B/c/sysroot/usr/lib32/".to_owned()));
        assert!(args.contains(&"-B/c/sysroot/usr/lib/gcc/x86_64-linux-gnu/12/32/".to_owned()));
        assert!(args.contains(&"-L/c/sysroot/usr/lib32".to_owned()));
        assert_eq!(
            &args[args.len() - 3..],
            ["-o", "/t/compat32", "/t/compat32.c"]
        );
    }

    #[test]
    fn a_missing_file_is_named_with_the_packages_that_carry_it() {
        let m = compile_failure(
            "gcc-12",
            "/usr/bin/ld: cannot find crt1.o: No such file or directory\ncollect2: error\n",
        );
        assert!(
            m.contains("cannot find crt1.o") && m.contains("libc6-dev-i386"),
            "{m}"
        );
        let m = compile_failure("gcc-12", "x.c:3:1: error: expected ';'\n");
        assert!(m.contains("expected ';'") && !m.contains("missing"), "{m}");
    }

    #[test]
    fn the_packages_match_the_gcc_major() {
        assert!(PACKAGES.contains(&format!("lib32gcc-{GCC_MAJOR}-dev").as_str()));
        assert!(SOURCE.contains("TAP version 13"));
    }
}
