//! The host tools the pipeline needs, checked before anything runs, and installed with
//! apt-get when we may (root, or passwordless sudo); otherwise the exact command is printed.

use std::path::Path;
use std::process::Command;

use anyhow::bail;

pub struct Tool {
    /// A program on PATH, or an absolute path to a file (headers, keyrings).
    pub check: &'static str,
    pub package: &'static str,
    pub why: &'static str,
}

pub const TOOLS: &[Tool] = &[
    Tool {
        check: "qemu-system-x86_64",
        package: "qemu-system-x86",
        why: "boots the test kernel",
    },
    Tool {
        check: "make",
        package: "make",
        why: "kernel build",
    },
    Tool {
        check: "gcc",
        package: "gcc",
        why: "kernel build",
    },
    Tool {
        check: "flex",
        package: "flex",
        why: "kernel build (Kconfig lexer)",
    },
    Tool {
        check: "bison",
        package: "bison",
        why: "kernel build (Kconfig parser)",
    },
    Tool {
        check: "bc",
        package: "bc",
        why: "kernel build (timeconst.h)",
    },
    Tool {
        check: "perl",
        package: "perl",
        why: "kernel build scripts",
    },
    Tool {
        check: "/usr/include/gelf.h",
        package: "libelf-dev",
        why: "kernel build (objtool)",
    },
    Tool {
        check: "/usr/include/openssl/opensslv.h",
        package: "libssl-dev",
        why: "kernel build (certificate tools)",
    },
    Tool {
        check: "lz4",
        package: "lz4",
        why: "kernel build (the bzImage is LZ4-compressed: fastest to boot)",
    },
    Tool {
        check: "patch",
        package: "patch",
        why: "applies --patch files and kernel mutants",
    },
    Tool {
        check: "xz",
        package: "xz-utils",
        why: "unpacks the kernel source tarball",
    },
    Tool {
        check: "cpio",
        package: "cpio",
        why: "cross-checks the initramfs writer in the project's tests",
    },
    Tool {
        check: "/usr/share/keyrings/debian-archive-keyring.gpg",
        package: "debian-archive-keyring",
        why: "verifies Debian's package index for the kernel sources",
    },
];

fn present(check: &str) -> bool {
    if check.starts_with('/') {
        return Path::new(check).exists();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(check).is_file()))
        .unwrap_or(false)
}

/// Makes sure every tool is there; installs what is missing when allowed.
pub fn ensure(allow_install: bool) -> anyhow::Result<()> {
    ensure_tools(TOOLS, allow_install)
}

/// The same for any list of tools (a command's own extra tools).
pub fn ensure_tools(tools: &[Tool], allow_install: bool) -> anyhow::Result<()> {
    let miss: Vec<&Tool> = tools.iter().filter(|t| !present(t.check)).collect();
    if miss.is_empty() {
        return Ok(());
    }
    let mut pkgs: Vec<&str> = miss.iter().map(|t| t.package).collect();
    pkgs.dedup();
    let list = miss
        .iter()
        .map(|t| format!("  {} ({}: {})", t.package, t.check, t.why))
        .collect::<Vec<_>>()
        .join("\n");
    let cmd = format!(
        "apt-get install -y --no-install-recommends {}",
        pkgs.join(" ")
    );
    if !present("apt-get") {
        bail!("missing host tools, and no apt-get to install them with:\n{list}");
    }
    let is_root = unsafe { libc::geteuid() } == 0;
    let sudo_ok = !is_root
        && Command::new("sudo")
            .args(["-n", "true"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !allow_install || !(is_root || sudo_ok) {
        bail!(
            "missing host tools:\n{list}\ninstall them with:\n  sudo apt-get update && sudo {cmd}"
        );
    }
    eprintln!("installing missing host tools with apt-get:\n{list}");
    let prefix: &[&str] = if is_root { &[] } else { &["sudo", "-n"] };
    for args in [
        vec!["apt-get", "update", "-q"],
        cmd.split(' ').collect::<Vec<_>>(),
    ] {
        let full: Vec<&str> = prefix.iter().copied().chain(args.iter().copied()).collect();
        let st = Command::new(full[0])
            .args(&full[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()?;
        if !st.success() {
            bail!("`{}` failed ({st})", full.join(" "));
        }
    }
    let still: Vec<&Tool> = tools.iter().filter(|t| !present(t.check)).collect();
    if !still.is_empty() {
        bail!(
            "still missing after apt-get install: {}",
            still.iter().map(|t| t.check).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}
