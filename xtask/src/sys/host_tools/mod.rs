//! The host tools the pipeline needs, checked before anything runs, and installed with
//! apt-get when we may (root, or passwordless sudo); otherwise one message names every
//! missing tool and the one command that installs them on this host.
//!
//! Nothing is ever removed or downgraded: [`plan`] finds installs that keep every package
//! the machine has (from a backports suite where the host's own suites would not), and
//! [`record`] remembers which way each tool came, for `cargo xtask host-tools` and CI.

pub mod dpkg_log;
pub mod plan;
pub mod record;
pub mod sources;

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context as _};
use harness::arch::Arch;

use plan::{HostApt, Plan, Way};
use sources::HostSources;

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
    check: crate::kernel::ccache::PROGRAM,
    package: "ccache",
    why: "compiles kernels through ccache (--ccache), its store in the harness cache",
    need: Need::Build,
};

/// Debian's statically linked busybox: the shell and its tools, with no libraries to carry.
pub const BUSYBOX: Tool = Tool {
    check: "/bin/busybox",
    package: "busybox-static",
    why: "the shell of `cargo xtask shell`",
    need: Need::Boot,
};

/// git: bisect drives `git bisect run`; the developer-loop self-tests make a tree.
pub const GIT: Tool = Tool {
    check: "git",
    package: "git",
    why: "`cargo xtask bisect` and the developer-loop self-tests",
    need: Need::Boot,
};

/// gdb: the `--gdb` self-test attaches Debian's gdb to the waiting QEMU.
pub const GDB: Tool = Tool {
    check: "gdb",
    package: "gdb",
    why: "the --gdb self-test attaches gdb to the waiting kernel",
    need: Need::Boot,
};

/// python3 runs universalmutator (`cargo xtask mutate`).
pub const PYTHON3: Tool = Tool {
    check: "python3",
    package: "python3",
    why: "runs universalmutator (cargo xtask mutate)",
    need: Need::Package,
};

/// Debian splits the venv module (and ensurepip) into python3-venv.
pub const PYTHON3_VENV: Tool = Tool {
    check: "/usr/share/doc/python3-venv",
    package: "python3-venv",
    why: "a private environment for universalmutator (cargo xtask mutate)",
    need: Need::Package,
};

/// What `--arch` needs for a foreign architecture: its QEMU (at the installed QEMU's
/// version: the plan takes it from the suite that carries qemu-system-common, as it does
/// for qemu-system-x86), Debian's cross gcc for the kernel, and the cross C library that
/// the C guest programs are linked statically against (the cross gcc only recommends it,
/// and installs go without recommends).
pub fn arch_tools(arch: Arch) -> &'static [Tool] {
    match arch {
        Arch::X86_64 => &[],
        Arch::S390x => &S390X,
        Arch::Arm64 => &ARM64,
    }
}

const S390X: [Tool; 3] = [
    Tool {
        check: "qemu-system-s390x",
        package: "qemu-system-misc",
        why: "boots the s390x test kernel (--arch s390x)",
        need: Need::Boot,
    },
    Tool {
        check: "s390x-linux-gnu-gcc",
        package: "gcc-s390x-linux-gnu",
        why: "cross-builds the s390x kernel and guest programs (--arch s390x)",
        need: Need::Build,
    },
    Tool {
        check: "/usr/s390x-linux-gnu/lib/libc.a",
        package: "libc6-dev-s390x-cross",
        why: "links the s390x guest programs statically (--arch s390x)",
        need: Need::Build,
    },
];

const ARM64: [Tool; 3] = [
    Tool {
        check: "qemu-system-aarch64",
        package: "qemu-system-arm",
        why: "boots the arm64 test kernel (--arch arm64)",
        need: Need::Boot,
    },
    Tool {
        check: "aarch64-linux-gnu-gcc",
        package: "gcc-aarch64-linux-gnu",
        why: "cross-builds the arm64 kernel and guest programs (--arch arm64)",
        need: Need::Build,
    },
    Tool {
        check: "/usr/aarch64-linux-gnu/lib/libc.a",
        package: "libc6-dev-arm64-cross",
        why: "links the arm64 guest programs statically (--arch arm64)",
        need: Need::Build,
    },
];

/// Every tool any command may install: what `cargo xtask host-tools` reports on.
pub fn all_tools() -> Vec<&'static Tool> {
    TOOLS
        .iter()
        .chain([&CCACHE, &BUSYBOX, &GIT, &GDB, &PYTHON3, &PYTHON3_VENV])
        .chain(arch_tools(Arch::S390x))
        .chain(arch_tools(Arch::Arm64))
        .collect()
}

pub fn present(check: &str) -> bool {
    if check.starts_with('/') {
        return Path::new(check).exists();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(check).is_file()))
        .unwrap_or(false)
}

/// Makes sure every tool the chosen way (`upto`) needs, and `extra`, are there; installs
/// what is missing when allowed, never removing or downgrading anything.
pub fn ensure(
    cache: &Path,
    upto: Need,
    extra: &[&Tool],
    allow_install: bool,
) -> anyhow::Result<()> {
    let tools: Vec<&Tool> = TOOLS
        .iter()
        .filter(|t| t.need <= upto)
        .chain(extra.iter().copied())
        .collect();
    ensure_tools(cache, &tools, allow_install, upto)
}

/// How apt-get may be run for an install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Privilege {
    /// As root: directly.
    Root,
    /// Through passwordless `sudo -n`.
    Sudo,
    /// Not at all, and why.
    No(NoInstall),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoInstall {
    /// `--no-install`.
    Flag { root: bool },
    /// Not root, and sudo asks for a password (or is not there).
    NotRoot,
}

impl Privilege {
    pub fn of_this_process(allow_install: bool) -> Privilege {
        let root = unsafe { libc::geteuid() } == 0;
        let sudo_ok = || {
            Command::new("sudo")
                .args(["-n", "true"])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        match (allow_install, root) {
            (false, root) => Privilege::No(NoInstall::Flag { root }),
            (true, true) => Privilege::Root,
            (true, false) if sudo_ok() => Privilege::Sudo,
            (true, false) => Privilege::No(NoInstall::NotRoot),
        }
    }
}

/// The same for any list of tools, all at once: a command's whole set goes into one plan
/// and one message.
pub fn ensure_tools(
    cache: &Path,
    tools: &[&Tool],
    allow_install: bool,
    upto: Need,
) -> anyhow::Result<()> {
    let apt = HostApt::new(cache, HostSources::system());
    let privilege = Privilege::of_this_process(allow_install);
    ensure_with(&apt, &cache.join(record::FILE), tools, &privilege, upto)
}

fn ensure_with(
    apt: &HostApt,
    record_path: &Path,
    tools: &[&Tool],
    privilege: &Privilege,
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
    // Two runs at once on a new machine would both install: the second waits here, then
    // finds what the first installed.
    let _installing = match privilege {
        Privilege::Root | Privilege::Sudo => Some(apt.lock_install()?),
        Privilege::No(_) => None,
    };
    let miss: Vec<&Tool> = miss.into_iter().filter(|t| !present(t.check)).collect();
    if miss.is_empty() {
        return Ok(());
    }
    let mut pkgs: Vec<String> = Vec::new();
    for t in &miss {
        if !pkgs.iter().any(|p| p == t.package) {
            pkgs.push(t.package.to_owned());
        }
    }
    if !present(&apt.apt_get) {
        bail!("{}", no_apt_message(&miss, upto));
    }
    let list = miss
        .iter()
        .map(|t| format!("  {} ({}: {})", t.package, t.check, t.why))
        .collect::<Vec<_>>()
        .join("\n");
    // The plan is made as this user, in the cache: even a user who may not install gets the
    // command that works on this host, not a guess. Only an index that cannot be read
    // (offline) leaves the plan unchecked; a plan that finds no clean install is the answer.
    let plan = match apt.refresh() {
        Ok(()) => Ok(apt
            .plan(&pkgs)
            .with_context(|| format!("missing host tools:\n{list}"))?),
        Err(unread) => Err(unread),
    };
    let prefix: Vec<String> = match privilege {
        Privilege::Root => vec![],
        Privilege::Sudo => vec!["sudo".into(), "-n".into()],
        Privilege::No(why) => {
            let (reason, sudo) = match why {
                NoInstall::Flag { root } => ("--no-install", !root),
                NoInstall::NotRoot => ("not root, and sudo needs a password", true),
            };
            let (ways, cmd, unchecked) = match &plan {
                Ok(p) => (plan_notes(p), apt.shell_command(p, sudo), String::new()),
                Err(unread) => (
                    String::new(),
                    apt.shell_command(&Plan::from_host_suites(&pkgs), sudo),
                    format!("\n(not checked against this host's package index: {unread:#})"),
                ),
            };
            bail!(
                "missing host tools:\n{list}{ways}\nnothing was installed ({reason}); install them all with this one command:\n  {cmd}{unchecked}"
            );
        }
    };
    let plan = plan?;
    eprintln!(
        "installing missing host tools with apt-get:\n{list}{}",
        plan_notes(&plan)
    );
    apt.install(&plan, &prefix)?;
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
    let mut r = record::Record::read(record_path);
    for step in &plan.steps {
        for p in &step.packages {
            r.installed(p, step.way.clone());
        }
    }
    r.write(record_path)?;
    Ok(())
}

/// Each step of a plan in a line: which packages, from where, and why there.
fn plan_notes(plan: &Plan) -> String {
    plan.steps
        .iter()
        .map(|s| match &s.way {
            Way::Sibling { suite, because } => format!(
                "\n  from {suite}: {} (from this host's own suites: {})",
                s.packages.join(" "),
                because.join("; ")
            ),
            _ => format!("\n  from this host's own suites: {}", s.packages.join(" ")),
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// What apt said on a brand-new machine of this project's image (its README).
    fn image() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/host-apt/bookworm-image")
    }

    /// Written by a child `sh`, not by this process: a test thread that forks while this
    /// process holds the script open for writing would pass that fd to its child, and the
    /// script's exec would then fail with ETXTBSY ("Text file busy") now and then.
    fn script(path: &Path, body: &str) {
        use std::io::Write;
        let mut sh = std::process::Command::new("sh")
            .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "script"])
            .arg(path)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = sh.stdin.take().unwrap();
        stdin
            .write_all(format!("#!/bin/sh\n{body}").as_bytes())
            .unwrap();
        drop(stdin);
        assert!(sh.wait().unwrap().success(), "writing {}", path.display());
    }

    /// A machine in the image's state, replayed: fake apt-get and apt-cache that log every
    /// call and answer as the image's apt did; a real install "installs" by making the
    /// package's file under `tools/`, which is what the test's tools check for.
    struct Replay {
        dir: tempfile::TempDir,
        apt: HostApt,
    }

    impl Replay {
        /// `qemu_answer`: what the host's suites say to an install with qemu-system-x86 in
        /// it; `backports_answer`: what `-t bookworm-backports qemu-system-x86` says. An
        /// answer with an `E:` line exits 100, as apt-get does.
        fn new(etc_apt: &Path, qemu_answer: &Path, backports_answer: &Path) -> Replay {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            let bin = d.join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::create_dir_all(d.join("tools")).unwrap();
            let data = image();
            let (data, log, tools) = (
                data.display().to_string(),
                d.join("calls").display().to_string(),
                d.join("tools").display().to_string(),
            );
            script(
                &bin.join("apt-get"),
                &r#"echo "$*" >> LOG
ALL=" $* "
case "$ALL" in *" update "*) exit 0;; esac
pkgs=$(echo "$*" | sed 's/.*--no-install-recommends//; s/--no-remove//; s/-t [^ ]*//')
set -- $pkgs
answer() { cat "$1"; ! grep -q '^E:' "$1" || exit 100; }
case "$ALL" in
  *with-siblings.list*" -s "*" -t "*) answer BACKPORTS;;
  *" -s "*) for p in "$@"; do
      if [ "$p" = qemu-system-x86 ]; then answer QEMU; else answer DATA/host-sim-$p.txt; fi
    done;;
  *" install "*) for p in "$@"; do touch TOOLS/$p; done;;
esac
"#
                .replace("LOG", &log)
                .replace("DATA", &data)
                .replace("TOOLS", &tools)
                .replace("QEMU", &qemu_answer.display().to_string())
                .replace("BACKPORTS", &backports_answer.display().to_string()),
            );
            script(
                &bin.join("apt-cache"),
                &format!("echo \"$*\" >> {log}\ncat {data}/madison-qemu-utils.txt\n"),
            );
            let mut apt = HostApt::new(d, HostSources::read(etc_apt));
            apt.apt_get = bin.join("apt-get").display().to_string();
            apt.apt_cache = bin.join("apt-cache").display().to_string();
            Replay { dir, apt }
        }

        /// The image as delivered.
        fn image() -> Replay {
            Replay::new(
                &image().join("etc-apt"),
                &image().join("host-sim-qemu-system-x86.txt"),
                &image().join("backports-sim-qemu-system-x86.txt"),
            )
        }

        fn calls(&self) -> Vec<String> {
            std::fs::read_to_string(self.dir.path().join("calls"))
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect()
        }

        /// The real installs (not simulations, not updates).
        fn installs(&self) -> Vec<String> {
            self.calls()
                .into_iter()
                .filter(|c| c.contains(" install ") && !c.contains(" -s "))
                .collect()
        }

        /// The tools the image lacks (issue 21's message), checked under `tools/`.
        fn tools(&self) -> Vec<&'static Tool> {
            ["qemu-system-x86", "flex", "bison", "libelf-dev", "cpio"]
                .iter()
                .map(|p| {
                    let check = self.dir.path().join("tools").join(p).display().to_string();
                    &*Box::leak(Box::new(Tool {
                        check: Box::leak(check.into_boxed_str()),
                        package: p,
                        why: "a test",
                        need: Need::Package,
                    }))
                })
                .collect()
        }

        fn ensure(&self, privilege: Privilege) -> anyhow::Result<()> {
            ensure_with(
                &self.apt,
                &self.dir.path().join(record::FILE),
                &self.tools(),
                &privilege,
                Need::Package,
            )
        }
    }

    /// Issue 21: on the image as delivered, QEMU from bookworm would remove the image's
    /// qemu-utils from bookworm-backports. The plan takes QEMU from bookworm-backports (the
    /// suite that carries the installed qemu-utils), the rest from bookworm, removes nothing,
    /// and records which way each came.
    #[test]
    fn the_images_qemu_comes_from_the_suite_of_its_qemu_utils() {
        let r = Replay::image();
        r.ensure(Privilege::Root).unwrap();
        let installs = r.installs();
        assert_eq!(installs.len(), 2, "{installs:#?}");
        assert!(
            installs[0].contains("/host.list ")
                && installs[0].ends_with("--no-remove flex bison libelf-dev cpio"),
            "{installs:#?}"
        );
        assert!(
            installs[1].contains("/with-siblings.list ")
                && installs[1].ends_with("--no-remove -t bookworm-backports qemu-system-x86"),
            "{installs:#?}"
        );
        // The sibling list is the host's and the backports line; the host list is the host's.
        let sib =
            std::fs::read_to_string(r.dir.path().join("host-apt/with-siblings.list")).unwrap();
        assert_eq!(
            sib,
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main\n"
        );
        let rec = record::Record::read(&r.dir.path().join(record::FILE));
        assert_eq!(rec.way("flex"), Way::HostSuites);
        let Way::Sibling { suite, because } = rec.way("qemu-system-x86") else {
            panic!("{rec:?}")
        };
        assert_eq!(suite, "bookworm-backports");
        assert_eq!(
            because,
            ["qemu-utils 1:10.0.2+ds-2+deb13u1~bpo12+1 would be removed"]
        );
    }

    /// Not root (and no passwordless sudo): nothing is installed, one message names every
    /// missing tool and one command; pasted into a shell (with a sudo that just runs its
    /// arguments), that command installs all of them, QEMU from bookworm-backports.
    #[test]
    fn without_root_one_command_installs_everything_when_pasted() {
        let r = Replay::image();
        let e = format!(
            "{:#}",
            r.ensure(Privilege::No(NoInstall::NotRoot)).unwrap_err()
        );
        assert!(r.installs().is_empty(), "{:#?}", r.installs());
        for p in ["qemu-system-x86", "flex", "bison", "libelf-dev", "cpio"] {
            assert!(e.contains(&format!("  {p} (")), "{p}: {e}");
        }
        assert!(e.contains("not root"), "{e}");
        assert!(
            e.contains("from bookworm-backports: qemu-system-x86 (from this host's own suites: qemu-utils 1:10.0.2+ds-2+deb13u1~bpo12+1 would be removed)"),
            "{e}"
        );
        let cmd = e
            .lines()
            .skip_while(|l| !l.contains("this one command"))
            .nth(1)
            .unwrap()
            .trim()
            .to_owned();
        assert!(cmd.starts_with("sudo sh -c '"), "{cmd}");
        // The paste, with the fakes first on PATH under the real names.
        let bin = r.dir.path().join("paste-bin");
        std::fs::create_dir_all(&bin).unwrap();
        script(&bin.join("sudo"), "exec \"$@\"\n");
        for t in ["apt-get", "apt-cache"] {
            std::os::unix::fs::symlink(r.dir.path().join("bin").join(t), bin.join(t)).unwrap();
        }
        let out = std::process::Command::new("sh")
            .args(["-c", &cmd])
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd}\n{out:?}");
        for t in r.tools() {
            assert!(present(t.check), "{} not installed by: {cmd}", t.package);
        }
        let installs = r.installs();
        assert_eq!(installs.len(), 2, "{installs:#?}");
        assert!(
            installs[1].ends_with("-t bookworm-backports qemu-system-x86"),
            "{installs:#?}"
        );
    }

    /// The same image on a host that lists bookworm-backports itself: apt refuses (no
    /// removal named, exit 100) instead of planning a removal. The listed backports suite is
    /// tried all the same, and QEMU comes from it.
    #[test]
    fn a_host_that_lists_backports_gets_qemu_from_there_too() {
        let listed = image().join("../listed-backports");
        let r = Replay::new(
            &listed.join("etc-apt"),
            &listed.join("sim-all.txt"),
            &image().join("backports-sim-qemu-system-x86.txt"),
        );
        r.ensure(Privilege::Root).unwrap();
        let installs = r.installs();
        assert_eq!(installs.len(), 2, "{installs:#?}");
        assert!(
            installs[1].ends_with("--no-remove -t bookworm-backports qemu-system-x86"),
            "{installs:#?}"
        );
        let rec = record::Record::read(&r.dir.path().join(record::FILE));
        let Way::Sibling { because, .. } = rec.way("qemu-system-x86") else {
            panic!("{rec:?}")
        };
        assert!(
            because[0]
                .starts_with("apt finds no solution: qemu-utils : Breaks: qemu-system-common"),
            "{because:?}"
        );
    }

    /// `--no-install` as root: the same message, and the command has no sudo.
    #[test]
    fn no_install_as_root_prints_the_command_without_sudo() {
        let r = Replay::image();
        let e = format!(
            "{:#}",
            r.ensure(Privilege::No(NoInstall::Flag { root: true }))
                .unwrap_err()
        );
        assert!(e.contains("(--no-install)"), "{e}");
        assert!(e.contains("\n  sh -c '"), "{e}");
        assert!(r.installs().is_empty());
    }

    /// When even the sibling suite would harm (here: it answers as the host's suites do),
    /// nothing is installed and the message says what each way would have done.
    #[test]
    fn no_clean_install_anywhere_installs_nothing() {
        let r = Replay::new(
            &image().join("etc-apt"),
            &image().join("host-sim-qemu-system-x86.txt"),
            &image().join("host-sim-qemu-system-x86.txt"),
        );
        let e = format!("{:#}", r.ensure(Privilege::Root).unwrap_err());
        assert!(r.installs().is_empty(), "{:#?}", r.installs());
        assert!(e.contains("nothing was installed"), "{e}");
        assert!(e.contains("from bookworm-backports instead:"), "{e}");
        assert!(
            e.contains("qemu-utils 1:10.0.2+ds-2+deb13u1~bpo12+1 would be removed"),
            "{e}"
        );
    }

    /// A host whose suites install everything cleanly gets the plain install and the plain
    /// command; no sibling suite is asked.
    #[test]
    fn a_clean_host_installs_from_its_own_suites() {
        let r = Replay::image();
        let tools: Vec<&Tool> = r.tools().into_iter().skip(1).collect();
        ensure_with(
            &r.apt,
            &r.dir.path().join(record::FILE),
            &tools,
            &Privilege::Root,
            Need::Package,
        )
        .unwrap();
        let installs = r.installs();
        assert_eq!(installs.len(), 1, "{installs:#?}");
        assert!(installs[0].ends_with("--no-remove flex bison libelf-dev cpio"));
        assert!(!r.calls().iter().any(|c| c.contains(" -t ")));
        let plan = Plan::from_host_suites(&["flex".into()]);
        assert_eq!(
            r.apt.shell_command(&plan, true),
            "sudo apt-get update && sudo apt-get install -y --no-install-recommends --no-remove flex"
        );
    }

    #[test]
    fn without_apt_the_tools_are_named_and_no_apt_command() {
        let r = Replay::image();
        let mut apt = HostApt::new(r.dir.path(), HostSources::default());
        apt.apt_get = "/nonexistent/apt-get".into();
        let e = format!(
            "{:#}",
            ensure_with(
                &apt,
                &r.dir.path().join(record::FILE),
                &r.tools(),
                &Privilege::Root,
                Need::Package
            )
            .unwrap_err()
        );
        assert!(e.contains("(a test)"), "{e}");
        assert!(!e.contains("apt-get install"), "{e}");
        assert!(e.contains("--kernel-image"), "{e}");
    }

    #[test]
    fn each_foreign_arch_brings_its_qemu_cross_gcc_and_cross_libc() {
        assert!(arch_tools(Arch::X86_64).is_empty());
        for a in [Arch::S390x, Arch::Arm64] {
            let t = arch_tools(a);
            assert_eq!(t[0].check, a.qemu_binary());
            assert_eq!(t[0].package, a.qemu_package());
            assert_eq!(t[1].check, a.gcc());
            assert!(t[2].check.ends_with("/lib/libc.a") && t[2].package.ends_with("-cross"));
            assert!(all_tools().iter().any(|x| x.package == t[1].package));
        }
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
}
