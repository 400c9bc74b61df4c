//! `cargo xtask shell`: the kernel `test` would boot (same kernel options), with busybox's
//! shell on the console instead of the suite. tracefs is mounted, `ue-scenarios --list` and
//! `ue-scenarios --run NAME` work there, and leaving the shell powers the VM off.

use std::process::{Command, ExitCode, Stdio};

use anyhow::Context as _;
use clap::Args;
use harness::image::{self, ExtraFile, Manifest};

use crate::args::{KernelArgs, RunArgs};
use crate::session::Session;
use crate::sys::host_tools::BUSYBOX;
use crate::sys::proc::{self, Wait, Waited};

/// What the guest's init looks for on the kernel command line (guest-tests' ue-init).
pub const SHELL_FLAG: &str = "ue.shell";

#[derive(Args)]
// A shell runs no scenarios: their limits, how many run side by side, the stress family and
// fresh VMs after a dead one mean nothing here.
#[command(
    mut_arg("stress", |a| a.hide(true)),
    mut_arg("jobs", |a| a.hide(true)),
    mut_arg("max_restarts", |a| a.hide(true)),
    mut_arg("scenario_timeout", |a| a.hide(true)),
    mut_arg("poll_deadline_ms", |a| a.hide(true)),
    mut_arg("hang_limit_ms", |a| a.hide(true))
)]
pub struct ShellArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Whether an ELF64 executable names a program interpreter (PT_INTERP): a dynamically
/// linked one, which cannot run in the guest.
fn has_interpreter(elf: &[u8]) -> bool {
    let u16_at = |o: usize| {
        elf.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        elf.get(at..at + 4) == Some(&3u32.to_le_bytes()[..])
    })
}

pub fn run(a: ShellArgs) -> anyhow::Result<ExitCode> {
    let d = crate::args::RunArgs::default();
    crate::args::refuse_unused(
        "shell",
        &[
            // x86-64 only: their guest is the Rust one (test and matrix take --arch).
            ("--arch", !a.kernel.arch.is_empty()),
            ("--stress", a.run.stress),
            ("--jobs", a.kernel.jobs.is_some()),
            ("--max-restarts", a.run.max_restarts != d.max_restarts),
            (
                "--scenario-timeout",
                a.run.scenario_timeout != d.scenario_timeout,
            ),
            (
                "--poll-deadline-ms",
                a.run.poll_deadline_ms != d.poll_deadline_ms,
            ),
            ("--hang-limit-ms", a.run.hang_limit_ms != d.hang_limit_ms),
        ],
    )?;
    let mut s = Session::for_kernels(&a.kernel);
    // The kernel options first: a bad --kernel is told before busybox is looked for or
    // installed.
    let labels = s.check_kernels(&a.kernel)?;
    a.run.check()?;
    if labels.len() != 1 {
        anyhow::bail!(
            "`cargo xtask shell` boots one kernel; --kernel names {}: pick one",
            labels.join(", ")
        );
    }
    s.host_tools_with(&[&BUSYBOX])?;
    let bytes = std::fs::read(BUSYBOX.check).with_context(|| format!("read {}", BUSYBOX.check))?;
    if has_interpreter(&bytes) {
        // Debian's `busybox` package: installing busybox-static would remove it, and the
        // harness never removes anything.
        anyhow::bail!(
            "{} is dynamically linked (Debian's busybox package), and the guest has no libraries: install busybox-static, which replaces it: apt-get install busybox-static",
            BUSYBOX.check
        );
    }
    let kernel = s.one_kernel(&a.kernel, "shell")?.kernel;
    let guest = s.guest()?;
    let mut opts = s.suite_options(&a.run, &guest);
    s.choose_accel(&mut opts, &a.run, &kernel)?;
    // Named as a test run's folder is (UTC time, then what ran), the pid keeping two
    // shells of one second apart.
    let run_dir = s.runs_dir().join(format!(
        "{}-shell-{}-{}",
        harness::run::utc_stamp(std::time::SystemTime::now()),
        harness::run::safe_label(&kernel.label),
        std::process::id(),
    ));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("create {}", run_dir.display()))?;
    let sel = harness::run::Selection {
        scenarios: vec![],
        kselftests: kernel.kselftests.iter().map(|k| k.name.clone()).collect(),
        guest: vec![],
    };
    let (plan, programs) = harness::run::plan(&kernel, &opts, &sel);
    let mut extra: Vec<ExtraFile> = programs
        .iter()
        .filter_map(|b| {
            Some(ExtraFile {
                path: format!("bin/kselftest/{}", b.name),
                source: b.path()?.clone(),
            })
        })
        .collect();
    extra.push(ExtraFile {
        path: "bin/busybox".into(),
        source: BUSYBOX.check.into(),
    });
    let initrd = run_dir.join("initramfs.cpio");
    std::fs::write(
        &initrd,
        image::build(
            &Manifest::load(&opts.manifest)?,
            &opts.guest_bin_dir,
            &plan,
            &extra,
        )?,
    )
    .with_context(|| format!("write {}", initrd.display()))?;
    let mut qemu = harness::run::qemu_config(
        &opts,
        kernel.arch,
        &kernel.bzimage,
        initrd.clone(),
        &run_dir,
    );
    qemu.extra_cmdline = format!("{SHELL_FLAG} {}", opts.extra_cmdline)
        .trim()
        .to_owned();
    qemu.gdb = a.kernel.gdb.then_some(a.kernel.gdb_port);
    if a.kernel.gdb {
        eprintln!("{}", harness::run::gdb_hint(&kernel, a.kernel.gdb_port));
    }
    eprintln!(
        "{}: booting {} with a shell on the console ({:?}); `exit` powers it off, Ctrl-A x quits QEMU",
        kernel.label, kernel.provenance, opts.accel
    );
    let mut cmd = Command::new(&qemu.binary);
    cmd.args(qemu.interactive_args(&run_dir.join("results.bin")))
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    harness::vm::die_with_parent(&mut cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("start {}", qemu.binary.display()))?;
    // SIGTERM (or SIGINT from outside the VM's terminal) ends QEMU too.
    let status = match proc::wait_for(
        &mut child,
        Wait::forever()
            .or_interrupt()
            .polling(std::time::Duration::from_millis(50)),
        || false,
    )? {
        Waited::Exited(st) | Waited::Interrupted(st) | Waited::TimedOut(st) => st,
        Waited::Ready => unreachable!("nothing is watched"),
    };
    let _ = std::fs::remove_file(&initrd);
    eprintln!("the VM is off ({status})");
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamically_linked_busybox_is_told_apart_from_a_static_one() {
        // Two program headers at 0x40, 56 bytes each; the second is PT_INTERP (3).
        let mut elf = vec![0u8; 0x40 + 2 * 56];
        elf[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        elf[0x40..0x44].copy_from_slice(&1u32.to_le_bytes());
        assert!(!has_interpreter(&elf));
        elf[0x40 + 56..0x40 + 60].copy_from_slice(&3u32.to_le_bytes());
        assert!(has_interpreter(&elf));
        if let Ok(b) = std::fs::read("/bin/ls") {
            assert!(has_interpreter(&b), "Debian's ls is dynamically linked");
        }
    }
}
