//! Row 1, the boot floor: this harness's init with an empty plan, and a static C init that
//! reboots at once on the same QEMU command line, read from the console directly.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use harness::channel::Plan;
use harness::initramfs::Initramfs;
use harness::qemu::QemuConfig;
use harness::vm::{self, VmEnd};

use crate::sys::proc::{self, Wait, Waited};

use super::Setup;

/// The harness's own init with a plan of no scenarios: the floor of this harness.
pub(super) fn floor_harness(s: &Setup, i: usize) -> anyhow::Result<(f64, f64, Option<f64>)> {
    let run_dir = s.dir.join(format!("floor-harness-{i}"));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("create {}", run_dir.display()))?;
    let k = s.opts.accel.slowdown();
    let plan = Plan {
        scenarios: vec![],
        scenario_timeout_ms: (s.opts.scenario_timeout * k).as_millis() as u64,
        poll_deadline_ms: (s.opts.poll_deadline * k).as_millis() as u64,
        kselftests: vec![],
        stop_at_first_failure: false,
        stop_on: vec![],
        jobs: 1,
        guest_tests: vec![],
        hang_limit_ms: s.opts.guest_hang_limit().as_millis() as u64,
        defer: vec![],
    };
    let manifest = harness::image::Manifest::load(&s.opts.manifest)?;
    let initrd = run_dir.join("initramfs.cpio");
    std::fs::write(
        &initrd,
        harness::image::build(&manifest, &s.opts.guest_bin_dir, &plan, &[])?,
    )?;
    let started = Instant::now();
    let report = vm::run(
        &qemu_config(s, &s.kernel.bzimage, &run_dir, initrd.clone()),
        &run_dir,
        &s.opts.limits(0, &[]),
    )?;
    let wall = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&initrd);
    if report.end != VmEnd::Finished {
        bail!(
            "the empty-plan boot did not finish cleanly ({:?}); console log: {}",
            report.end,
            report.console_log.display()
        );
    }
    Ok((
        wall,
        report.guest_hello_ms.unwrap_or(0) as f64 / 1000.0,
        reboot_uptime(&report.console_log),
    ))
}

/// The suite's QEMU without the user's additions: the floor is the harness's own boot.
pub(super) fn qemu_config(
    s: &Setup,
    bzimage: &Path,
    run_dir: &Path,
    initrd: PathBuf,
) -> QemuConfig {
    QemuConfig {
        extra_cmdline: String::new(),
        extra_args: vec![],
        gdb: None,
        ..harness::run::qemu_config(&s.opts, s.kernel.arch, bzimage, initrd, run_dir)
    }
}

/// A static C program that reboots at once: with `-no-reboot`, QEMU exits. Returns the binary.
pub(super) fn trivial_init(dir: &Path) -> Result<Vec<u8>, String> {
    let c = dir.join("trivial-init.c");
    let bin = dir.join("trivial-init");
    std::fs::write(&c, "#include <sys/reboot.h>\n#include <unistd.h>\nint main(void) { reboot(RB_AUTOBOOT); return 1; }\n")
        .map_err(|e| format!("write {}: {e}", c.display()))?;
    let out = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&c)
        .output()
        .map_err(|e| format!("run gcc: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "gcc -static failed (is libc6-dev installed?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    std::fs::read(&bin).map_err(|e| format!("read {}: {e}", bin.display()))
}

/// Boots the trivial init with the harness's QEMU command line, but reads the console itself
/// so each line gets a host timestamp: the first line's host time minus its printk time is what
/// passes before the kernel's clock starts (QEMU start, qboot, bzImage decompression).
/// Returns (wall, guest uptime at reboot, time before the kernel's clock).
pub(super) fn floor_trivial(
    s: &Setup,
    i: usize,
    init: &[u8],
) -> anyhow::Result<(f64, Option<f64>, Option<f64>)> {
    use std::io::BufRead as _;
    let run_dir = s.dir.join(format!("floor-trivial-{i}"));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("create {}", run_dir.display()))?;
    let mut img = Initramfs::new();
    img.dir("dev");
    img.file("init", 0o755, init.to_vec());
    let initrd = run_dir.join("initramfs.cpio");
    std::fs::write(&initrd, img.to_bytes())
        .with_context(|| format!("write {}", initrd.display()))?;
    let qemu = qemu_config(s, &s.kernel.bzimage, &run_dir, initrd.clone());
    std::fs::write(run_dir.join("qemu-cmdline.txt"), qemu.shell_line() + "\n")
        .with_context(|| format!("write {}", run_dir.join("qemu-cmdline.txt").display()))?;
    let _ = std::fs::remove_file(&qemu.result_socket);
    // QEMU connects its second serial port here at start; nothing is ever sent on it.
    let listener = std::os::unix::net::UnixListener::bind(&qemu.result_socket)
        .with_context(|| format!("listen on {}", qemu.result_socket.display()))?;
    let mut cmd = Command::new(&qemu.binary);
    cmd.args(qemu.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    harness::vm::die_with_parent(&mut cmd);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("start {}", qemu.binary.display()))?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .split(b'\n')
            .map_while(Result::ok)
        {
            let _ = tx.send((
                started.elapsed().as_secs_f64(),
                String::from_utf8_lossy(&line).into_owned(),
            ));
        }
    });
    let limit = s.opts.limits(0, &[]).boot;
    let mut lines: Vec<(f64, String)> = vec![];
    // A 5 ms look: the wall time is what this row measures.
    let wait = Wait::until(started + limit)
        .or_interrupt()
        .polling(Duration::from_millis(5));
    let outcome = proc::wait_for(&mut child, wait, || {
        lines.extend(rx.try_iter());
        false
    })?;
    let Waited::Exited(status) = outcome else {
        let _ = std::fs::remove_file(&qemu.result_socket);
        bail!(
            "the trivial-init boot did not end within {} s (or was interrupted); see {}",
            limit.as_secs(),
            run_dir.display()
        );
    };
    let wall = started.elapsed().as_secs_f64();
    drop(listener);
    let _ = std::fs::remove_file(&qemu.result_socket);
    // The reader ends with QEMU's stdout; take what is left.
    let drain_until = Instant::now() + Duration::from_secs(2);
    while let Ok(l) = rx.recv_timeout(drain_until.saturating_duration_since(Instant::now())) {
        lines.push(l);
    }
    let console: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    let console_log = run_dir.join("console.log");
    std::fs::write(&console_log, &console)
        .with_context(|| format!("write {}", console_log.display()))?;
    let _ = std::fs::remove_file(&initrd);
    // A failed init panics, which also ends the VM, just as fast: it must have rebooted on purpose.
    if console.contains("Kernel panic")
        || !harness::console::scan(&console).is_empty()
        || !console.contains("reboot: Restarting system")
    {
        bail!(
            "the trivial-init boot did not end with a clean reboot ({status}); console log: {}",
            console_log.display()
        );
    }
    let printk = |l: &str| -> Option<f64> {
        l.trim_start()
            .strip_prefix('[')?
            .split(']')
            .next()?
            .trim()
            .parse()
            .ok()
    };
    let before_clock = lines.iter().find_map(|(t, l)| Some(t - printk(l)?));
    Ok((wall, reboot_uptime(&console_log), before_clock))
}

/// The guest's uptime when the kernel printed `reboot: Restarting system` (printk time).
pub(super) fn reboot_uptime(console_log: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(console_log).ok()?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("reboot: Restarting system"))?;
    line.trim_start()
        .strip_prefix('[')?
        .split(']')
        .next()?
        .trim()
        .parse()
        .ok()
}
