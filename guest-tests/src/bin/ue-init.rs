//! PID 1 of the test VM: mount what the scenarios need, point the runner's stdout at the
//! result port, reap every orphan, and end the VM when the runner is done.
//!
//! Ending the VM is a reboot: QEMU runs with `-no-reboot`, so a reboot request makes it exit
//! at once, without ACPI in the kernel. Should this program die, the kernel panics ("Attempted
//! to kill init") and `panic=-1` ends the VM the same way: the host never waits forever.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const RESULT_PORT: &str = "/dev/ttyS1";
const RUNNER: &str = "/bin/ue-scenarios";

fn main() {
    if std::process::id() != 1 {
        eprintln!(
            "ue-init: this is the test VM's init; run `ue-scenarios --list` on a host instead"
        );
        std::process::exit(2);
    }
    for (src, target, fstype) in [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
        ("tracefs", "/sys/kernel/tracing", "tracefs"),
        ("tmpfs", "/tmp", "tmpfs"),
        // The failslab knobs (fault-injection.config). A kernel without debugfs has no
        // /sys/kernel/debug to mount it on; the failslab scenarios' probe reports that, so
        // its absence is no news here.
        ("debugfs", "/sys/kernel/debug", "debugfs"),
    ] {
        if fstype == "debugfs" && !std::path::Path::new(target).is_dir() {
            continue;
        }
        if let Err(e) = mount(src, target, fstype) {
            // Not fatal here: a kernel without tracefs is reported by the scenarios.
            eprintln!("ue-init: mount {fstype} on {target}: {e}");
        }
    }
    let result = if shell_requested() {
        run_shell()
    } else {
        run_scenarios(whole_run_budget())
    };
    if let Err(e) = result {
        eprintln!("ue-init: {e}");
    }
    unsafe {
        libc::sync();
        // reboot(2) moves itself to the boot CPU before it restarts, and a task left spinning
        // in the kernel there (a hung scenario the runner wrote off) never lets it: then the
        // kernel's emergency restart (sysrq b), which runs on any CPU, ends the VM instead.
        if libc::fork() == 0 {
            std::thread::sleep(std::time::Duration::from_secs(2));
            let _ = std::fs::write("/proc/sysrq-trigger", b"b");
            libc::_exit(0);
        }
        libc::reboot(libc::LINUX_REBOOT_CMD_RESTART);
    }
    // Only reached if reboot failed; exiting PID 1 panics the kernel, which ends the VM too.
    std::process::exit(1);
}

/// `cargo xtask shell` boots with `ue.shell` on the kernel command line.
fn shell_requested() -> bool {
    std::fs::read_to_string("/proc/cmdline")
        .is_ok_and(|c| c.split_whitespace().any(|w| w == SHELL_FLAG))
}

const SHELL_FLAG: &str = "ue.shell";
const BUSYBOX: &str = "/bin/busybox";

/// A shell on the console (busybox's, with its applets linked into /bin), the scenarios
/// runnable from it; when it exits, the VM powers off.
fn run_shell() -> Result<(), String> {
    let st = std::process::Command::new(BUSYBOX)
        .args(["--install", "-s", "/bin"])
        .status()
        .map_err(|e| format!("{BUSYBOX} --install: {e} (the image has no busybox)"))?;
    if !st.success() {
        return Err(format!("{BUSYBOX} --install failed ({st})"));
    }
    println!(
        "ue-init: tracefs is at /sys/kernel/tracing; try `ue-scenarios --list` and `ue-scenarios --run NAME` (`--json` for the record); exit powers the VM off"
    );
    // setsid + cttyhack: the shell gets the console as its controlling tty, so Ctrl-C
    // reaches what it runs instead of nothing.
    // The init's own directory, not Command::current_dir: that makes the spawn fail with
    // ENOSYS on the test kernels.
    let _ = std::env::set_current_dir("/tmp");
    let mut child = std::process::Command::new(BUSYBOX)
        .args(["setsid", "cttyhack", "sh"])
        .env("PATH", "/bin:/sbin")
        .env("HOME", "/tmp")
        .env("PS1", "ue-shell# ")
        .spawn()
        .map_err(|e| format!("start the shell: {e}"))?;
    let shell = child.id() as libc::pid_t;
    loop {
        let mut status = 0;
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == shell || pid < 0 {
            let _ = child.try_wait();
            return Ok(());
        }
    }
}

fn mount(src: &str, target: &str, fstype: &str) -> std::io::Result<()> {
    let _ = std::fs::create_dir_all(target);
    let (s, t, f) = (
        CString::new(src)?,
        CString::new(target)?,
        CString::new(fstype)?,
    );
    if unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), 0, std::ptr::null()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The plan's scenario limit times the number of scenarios, plus slack: the guest ends itself
/// even if the runner wedges, before the host's own limit would have to.
fn whole_run_budget() -> Duration {
    let plan: Option<result_channel::Plan> = std::fs::read(result_channel::PLAN_PATH)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let per = plan.as_ref().map_or(10_000, |p| p.scenario_timeout_ms);
    let n = plan.as_ref().map_or(1, |p| p.scenarios.len() as u64);
    // Side by side, the scenarios a splat left unattributable run a second time.
    let n = if plan.as_ref().is_some_and(|p| p.jobs > 1) {
        2 * n
    } else {
        n
    };
    let programs = plan.as_ref().map_or(0, |p| p.programs_ms());
    Duration::from_millis(per * (n + 1) + programs + 5_000)
}

fn run_scenarios(budget: Duration) -> Result<(), String> {
    let port = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(RESULT_PORT)
        .map_err(|e| format!("open result port {RESULT_PORT}: {e}"))?;
    make_raw(port.as_raw_fd());
    let child = std::process::Command::new(RUNNER)
        .args(["--plan", result_channel::PLAN_PATH])
        .stdout(port)
        .spawn()
        .map_err(|e| format!("start {RUNNER}: {e}"))?;
    let runner = child.id() as libc::pid_t;
    let start = Instant::now();
    // Reap everything (orphans of scenarios land here) until the runner itself has exited.
    loop {
        let mut status = 0;
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid == runner {
            if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
                return Err(format!(
                    "{RUNNER} ended abnormally (wait status {status:#x})"
                ));
            }
            return Ok(());
        }
        if pid <= 0 {
            if start.elapsed() > budget {
                unsafe { libc::kill(runner, libc::SIGKILL) };
                return Err(format!(
                    "{RUNNER} still running after {} s; ending the VM",
                    budget.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// No echo, no newline translation: the port carries records byte for byte.
fn make_raw(fd: i32) {
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) == 0 {
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
        }
    }
}
