//! The host tools the pipeline needs, checked before anything runs, and installed with
//! apt-get when we may (root, or passwordless sudo); otherwise the exact command is printed.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context as _};

pub struct Tool {
    /// A program on PATH, or an absolute path to a file (headers, keyrings).
    pub check: &'static str,
    /// The Debian/Ubuntu package that provides it.
    pub package: &'static str,
    pub why: &'static str,
    pub need: Need,
}

/// Which way of getting a kernel a tool serves: a run checks only what its way needs, so
/// `--kernel-image` runs on any Linux host with QEMU, and `--kernel-tree` with a toolchain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// Booting any kernel: QEMU.
    Boot,
    /// Building a kernel (a tree, a package's source): the kernel toolchain.
    Build,
    /// Packaged kernels from Debian's archive: the keyring, xz; fetched with apt-get.
    Package,
}

/// What the chosen way of getting a kernel needs: each way needs the ones before it.
pub fn needs(kernel_image: bool, kernel_tree: bool) -> Need {
    if kernel_image {
        Need::Boot
    } else if kernel_tree {
        Need::Build
    } else {
        Need::Package
    }
}

pub const TOOLS: &[Tool] = &[
    Tool {
        check: "qemu-system-x86_64",
        package: "qemu-system-x86",
        why: "boots the test kernel",
        need: Need::Boot,
    },
    Tool {
        check: "make",
        package: "make",
        why: "kernel build",
        need: Need::Build,
    },
    Tool {
        check: "gcc",
        package: "gcc",
        why: "kernel build",
        need: Need::Build,
    },
    Tool {
        check: "flex",
        package: "flex",
        why: "kernel build (Kconfig lexer)",
        need: Need::Build,
    },
    Tool {
        check: "bison",
        package: "bison",
        why: "kernel build (Kconfig parser)",
        need: Need::Build,
    },
    Tool {
        check: "bc",
        package: "bc",
        why: "kernel build (timeconst.h)",
        need: Need::Build,
    },
    Tool {
        check: "perl",
        package: "perl",
        why: "kernel build scripts",
        need: Need::Build,
    },
    Tool {
        check: "/usr/include/gelf.h",
        package: "libelf-dev",
        why: "kernel build (objtool)",
        need: Need::Build,
    },
    Tool {
        check: "/usr/include/openssl/opensslv.h",
        package: "libssl-dev",
        why: "kernel build (certificate tools)",
        need: Need::Build,
    },
    Tool {
        check: "lz4",
        package: "lz4",
        why: "kernel build (the bzImage is LZ4-compressed: fastest to boot)",
        need: Need::Build,
    },
    Tool {
        check: "patch",
        package: "patch",
        why: "applies --patch files and kernel mutants",
        need: Need::Build,
    },
    Tool {
        check: "xz",
        package: "xz-utils",
        why: "unpacks the kernel source tarball",
        need: Need::Package,
    },
    Tool {
        check: "cpio",
        package: "cpio",
        why: "cross-checks the initramfs writer in the project's tests (installed with the packaged kernel's tools, so CI's first run has it)",
        need: Need::Package,
    },
    Tool {
        check: "/usr/share/keyrings/debian-archive-keyring.gpg",
        package: "debian-archive-keyring",
        why: "verifies Debian's package index for the kernel sources",
        need: Need::Package,
    },
];

/// Only for builds through ccache (`--ccache`).
pub const CCACHE: Tool = Tool {
    check: crate::ccache::PROGRAM,
    package: "ccache",
    why: "compiles kernels through ccache (--ccache), its store in the harness cache",
    need: Need::Build,
};

fn present(check: &str) -> bool {
    if check.starts_with('/') {
        return Path::new(check).exists();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(check).is_file()))
        .unwrap_or(false)
}

/// Makes sure every tool the chosen way (`upto`) needs is there; installs what is missing
/// when allowed, never removing or downgrading anything.
pub fn ensure(upto: Need, allow_install: bool) -> anyhow::Result<()> {
    let tools: Vec<&Tool> = TOOLS.iter().filter(|t| t.need <= upto).collect();
    ensure_tools(&tools, allow_install, upto)
}

/// The system's package tools, replaceable in tests (a fake apt-get on a private PATH).
pub struct System {
    pub apt_get: String,
    pub dpkg: String,
}

impl Default for System {
    fn default() -> Self {
        System {
            apt_get: "apt-get".into(),
            dpkg: "dpkg".into(),
        }
    }
}

/// The same for any list of tools (a command's own extra tools).
pub fn ensure_tools(tools: &[&Tool], allow_install: bool, upto: Need) -> anyhow::Result<()> {
    let is_root = unsafe { libc::geteuid() } == 0;
    let sudo_ok = || {
        Command::new("sudo")
            .args(["-n", "true"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    // How we may run apt-get: directly as root, through passwordless sudo, or not at all.
    let prefix = match (allow_install, is_root) {
        (false, _) => None,
        (true, true) => Some(vec![]),
        (true, false) if sudo_ok() => Some(vec!["sudo".to_owned(), "-n".to_owned()]),
        (true, false) => None,
    };
    ensure_with(&System::default(), tools, prefix, upto)
}

fn ensure_with(
    sys: &System,
    tools: &[&Tool],
    prefix: Option<Vec<String>>,
    upto: Need,
) -> anyhow::Result<()> {
    let miss: Vec<&Tool> = tools
        .iter()
        .copied()
        .filter(|t| !present(t.check))
        .collect();
    if miss.is_empty() {
        return Ok(());
    }
    let mut pkgs: Vec<&str> = miss.iter().map(|t| t.package).collect();
    pkgs.dedup();
    if !present(&sys.apt_get) {
        bail!("{}", no_apt_message(&miss, upto));
    }
    let list = miss
        .iter()
        .map(|t| format!("  {} ({}: {})", t.package, t.check, t.why))
        .collect::<Vec<_>>()
        .join("\n");
    let install_args = |extra: &[&str]| -> Vec<String> {
        ["install", "-y", "--no-install-recommends"]
            .iter()
            .chain(extra)
            .chain(&pkgs)
            .map(|s| s.to_string())
            .collect()
    };
    let cmd = format!("apt-get {}", install_args(&[]).join(" "));
    let Some(prefix) = prefix else {
        bail!(
            "missing host tools:\n{list}\ninstall them with:\n  sudo apt-get update && sudo {cmd}"
        );
    };
    // `[sudo -n] apt-get ARGS`; apt's own output goes to the user unless `quiet`.
    let run = |args: Vec<String>, quiet: bool| -> anyhow::Result<std::process::Output> {
        let full: Vec<String> = prefix
            .iter()
            .cloned()
            .chain([sys.apt_get.clone()])
            .chain(args)
            .collect();
        let mut c = Command::new(&full[0]);
        c.args(&full[1..]).env("DEBIAN_FRONTEND", "noninteractive");
        if !quiet {
            c.stdout(std::process::Stdio::inherit())
                .stderr(std::process::Stdio::inherit());
        }
        let out = c
            .output()
            .with_context(|| format!("run `{}`", full.join(" ")))?;
        if !out.status.success() {
            bail!(
                "`{}` failed ({}){}",
                full.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out)
    };
    eprintln!("installing missing host tools with apt-get:\n{list}");
    run(vec!["update".into(), "-q".into()], false)?;
    // What apt would do, before it does anything: an install that removes or downgrades a
    // package the user has is the user's decision, never ours.
    let sim = run(install_args(&["-s"]), true)?;
    let harm = harmful_changes(&String::from_utf8_lossy(&sim.stdout), &|a, b| {
        version_lower(&sys.dpkg, a, b)
    });
    if !harm.is_empty() {
        bail!(
            "installing {} would change packages this machine already has, so nothing was installed:\n{}\n\
             decide yourself with:\n  sudo {cmd}\n\
             or install the missing tools another way (any QEMU {}.{} or newer will do)",
            pkgs.join(" "),
            harm.iter().map(|h| format!("  {h}")).collect::<Vec<_>>().join("\n"),
            harness::qemu::MIN_VERSION.0,
            harness::qemu::MIN_VERSION.1,
        );
    }
    // --no-remove: should the state change between the simulation and now, apt stops
    // rather than removing anything.
    run(install_args(&["--no-remove"]), false)?;
    let still: Vec<&Tool> = tools
        .iter()
        .copied()
        .filter(|t| !present(t.check))
        .collect();
    if !still.is_empty() {
        bail!(
            "still missing after apt-get install: {}",
            still.iter().map(|t| t.check).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

/// On a host without apt: the tools themselves, no apt command, and what to do instead of
/// Debian's packages.
fn no_apt_message(miss: &[&Tool], upto: Need) -> String {
    let list = miss
        .iter()
        .map(|t| format!("  {} ({})", t.check, t.why))
        .collect::<Vec<_>>()
        .join("\n");
    let mut m =
        format!("missing host tools; install them with this system's package manager:\n{list}");
    if upto == Need::Package {
        m.push_str(
            "\npackaged kernels (--kernel) are Debian source packages, fetched with apt; without it, \
             build your own tree (--kernel-tree PATH: QEMU and a kernel toolchain) or boot a \
             ready image (--kernel-image BZIMAGE: QEMU only)",
        );
    }
    m
}

/// A removal or downgrade in `apt-get -s install` output, in words: `Remv P [V]` lines, and
/// `Inst P [old] (new ...)` lines whose new version is lower (`lower(new, old)`).
pub fn harmful_changes(simulated: &str, lower: &dyn Fn(&str, &str) -> bool) -> Vec<String> {
    let mut out = vec![];
    for l in simulated.lines() {
        let mut words = l.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Remv"), Some(p)) => {
                let v = bracketed(l, '[', ']').unwrap_or("?");
                out.push(format!("{p} {v} would be removed"));
            }
            (Some("Inst"), Some(p)) => {
                // `Inst P [installed] (candidate ...)`: an upgrade or downgrade; a new
                // install has no `[installed]` right after the name.
                let rest = l.split_once(p).map_or("", |(_, r)| r.trim_start());
                if !rest.starts_with('[') {
                    continue;
                }
                let (Some(old), Some(new)) = (bracketed(rest, '[', ']'), bracketed(rest, '(', ')'))
                else {
                    continue;
                };
                let new = new.split_whitespace().next().unwrap_or(new);
                if lower(new, old) {
                    out.push(format!("{p} would be downgraded from {old} to {new}"));
                }
            }
            _ => {}
        }
    }
    out
}

fn bracketed(l: &str, open: char, close: char) -> Option<&str> {
    let a = l.find(open)?;
    let b = a + l[a..].find(close)?;
    Some(&l[a + 1..b])
}

/// `a` is a lower Debian version than `b` (dpkg's own comparison).
fn version_lower(dpkg: &str, a: &str, b: &str) -> bool {
    Command::new(dpkg)
        .args(["--compare-versions", a, "lt", b])
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    const MISSING: Tool = Tool {
        check: "/nonexistent/ue-harness-tool",
        package: "qemu-system-x86",
        why: "a test",
        need: Need::Boot,
    };

    /// A fake apt-get that logs every call and answers `-s install` with `simulated`.
    fn fake_apt(dir: &Path, simulated: &str) -> System {
        let script = dir.join("apt-get");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$*\" >> {log}\ncase \"$*\" in *' -s '*) printf '%s\\n' '{simulated}';; esac\nexit 0\n",
                log = dir.join("calls").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        System {
            apt_get: script.display().to_string(),
            dpkg: "dpkg".into(),
        }
    }

    fn calls(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The case: installing qemu-system-x86 would remove a newer qemu-utils from
    /// another suite. Nothing is installed; the error names the package and the command.
    #[test]
    fn an_install_that_would_remove_a_package_stops_before_installing() {
        let d = tempfile::tempdir().unwrap();
        let sys = fake_apt(
            d.path(),
            "Remv qemu-utils [1:8.2.2+ds-0ubuntu1]\nInst qemu-system-x86 (1:7.2+dfsg-7 Debian:12/stable [amd64])",
        );
        let e = ensure_with(&sys, &[&MISSING], Some(vec![]), Need::Boot).unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("qemu-utils 1:8.2.2+ds-0ubuntu1 would be removed"),
            "{e}"
        );
        assert!(e.contains("nothing was installed"), "{e}");
        assert!(
            e.contains("apt-get install -y --no-install-recommends qemu-system-x86"),
            "{e}"
        );
        let c = calls(d.path());
        assert!(
            c.iter().any(|l| l.contains(" -s ")),
            "simulated first: {c:?}"
        );
        assert!(
            c.iter()
                .all(|l| !l.starts_with("install") || l.contains(" -s ")),
            "a real install ran: {c:?}"
        );
    }

    #[test]
    fn a_harmless_install_runs_in_no_remove_mode() {
        let d = tempfile::tempdir().unwrap();
        let sys = fake_apt(
            d.path(),
            "Inst qemu-system-x86 (1:7.2+dfsg-7 Debian:12/stable [amd64])",
        );
        // The fake installs nothing, so the tool is still missing afterwards: that is said.
        let e = format!(
            "{:#}",
            ensure_with(&sys, &[&MISSING], Some(vec![]), Need::Boot).unwrap_err()
        );
        assert!(e.contains("still missing after apt-get install"), "{e}");
        let c = calls(d.path());
        assert!(
            c.iter().any(|l| l.starts_with("install")
                && l.contains("--no-remove")
                && !l.contains(" -s ")),
            "{c:?}"
        );
    }

    #[test]
    fn without_apt_the_tools_are_named_and_no_apt_command() {
        let sys = System {
            apt_get: "/nonexistent/apt-get".into(),
            dpkg: "dpkg".into(),
        };
        let e = format!(
            "{:#}",
            ensure_with(&sys, &[&MISSING], Some(vec![]), Need::Package).unwrap_err()
        );
        assert!(e.contains("/nonexistent/ue-harness-tool (a test)"), "{e}");
        assert!(
            !e.contains("apt-get install") && !e.contains("qemu-system-x86"),
            "{e}"
        );
        assert!(e.contains("--kernel-image"), "{e}");
    }

    #[test]
    fn a_ready_image_needs_only_qemu_and_a_tree_no_debian_tools() {
        let names = |n: Need| -> Vec<&str> {
            TOOLS
                .iter()
                .filter(|t| t.need <= n)
                .map(|t| t.check)
                .collect()
        };
        assert_eq!(names(needs(true, false)), ["qemu-system-x86_64"]);
        let tree = names(needs(false, true));
        assert!(tree.contains(&"make") && tree.contains(&"gcc"), "{tree:?}");
        assert!(
            !tree.iter().any(|t| t.contains("keyring") || *t == "cpio"),
            "{tree:?}"
        );
        assert!(names(needs(false, false))
            .iter()
            .any(|t| t.contains("keyring")));
    }

    #[test]
    fn removals_and_downgrades_are_found_in_apt_simulation() {
        let sim = "NOTE: This is only a simulation!\n\
                   Remv qemu-utils [1:8.2.2] [qemu-system-x86:amd64 ]\n\
                   Inst libfoo [2.0] (1.0 Debian:12/stable [amd64])\n\
                   Inst libbar [1.0] (2.0 Debian:12/stable [amd64])\n\
                   Inst qemu-system-x86 (1:7.2 Debian:12/stable [amd64])\n\
                   Conf qemu-system-x86 (1:7.2 Debian:12/stable [amd64])\n";
        let lower = |a: &str, b: &str| a < b;
        assert_eq!(
            harmful_changes(sim, &lower),
            [
                "qemu-utils 1:8.2.2 would be removed",
                "libfoo would be downgraded from 2.0 to 1.0"
            ]
        );
    }
}
