//! QEMU's command line, in one place. The console is the first serial port (QEMU's stdout,
//! read by the host as the kernel log); results go to the second serial port, connected to a
//! Unix socket the host listens on, so kernel messages never interleave with records.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::arch::{Arch, ResultDevice, RESULT_PORT_NAME};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// How much slower than KVM things run: every time limit is scaled by this.
    pub fn slowdown(self) -> u32 {
        match self {
            Accel::Kvm => 1,
            Accel::Tcg => 4,
        }
    }
}

#[derive(Debug, Clone)]
pub struct QemuConfig {
    pub binary: PathBuf,
    /// The guest's architecture: its machine, console and result device.
    pub arch: Arch,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub accel: Accel,
    pub memory_mib: u32,
    pub cpus: u32,
    /// Extra kernel command line, after the harness's own.
    pub extra_cmdline: String,
    /// Where the second serial port connects (the host's listener).
    pub result_socket: PathBuf,
    /// `--qemu-arg` values, appended as given after the harness's own arguments.
    pub extra_args: Vec<String>,
    /// `--gdb`: QEMU's gdb stub on this local port, the CPU stopped until a debugger
    /// continues it (`-S`).
    pub gdb: Option<u16>,
    /// The guest TSC's frequency, given as `tsc_early_khz=` (with `tsc=reliable`) so that
    /// the guest neither measures it at boot nor judges it against jiffies later
    /// ([`crate::host_tsc`]: under TCG it is the host's); `None`: the guest measures (KVM,
    /// whose kvmclock needs no calibration, or an unknown host TSC).
    pub guest_tsc_khz: Option<u32>,
}

/// What [`QemuConfig::guest_tsc_khz`] should be for `accel` and a guest of `arch` (only an
/// x86 guest's TSC is the host's).
pub fn guest_tsc_khz(accel: Accel, arch: Arch) -> Option<u32> {
    match accel {
        Accel::Tcg if arch.takes_host_tsc() => crate::host_tsc::khz(),
        _ => None,
    }
}

/// `--memory` as QEMU's `-m` reads it: a number of MiB, or with a `M`/`G` suffix.
pub fn parse_memory_mib(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let (num, scale) = match t.char_indices().last() {
        Some((i, 'G' | 'g')) => (&t[..i], 1024),
        Some((i, 'M' | 'm')) => (&t[..i], 1),
        _ => (t, 1),
    };
    let n: u32 = num.trim().parse().map_err(|_| {
        format!("--memory {text:?}: give MiB or a size with M or G, e.g. --memory 1G")
    })?;
    let mib = n
        .checked_mul(scale)
        .ok_or_else(|| format!("--memory {text:?} is too large"))?;
    if mib < 128 {
        return Err(format!(
            "--memory {text:?}: the guest needs at least 128 MiB"
        ));
    }
    Ok(mib)
}

/// The oldest QEMU the command line is known to work with (socket chardevs as serial ports,
/// `-accel`, qboot): Debian bookworm ships 7.2, Ubuntu 22.04 ships 6.2.
pub const MIN_VERSION: (u32, u32) = (6, 2);

/// `QEMU emulator version 7.2.22 (Debian ...)` → (7, 2).
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let v = text.split("version ").nth(1)?.split_whitespace().next()?;
    let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((it.next()??, it.next()??))
}

/// Fails with what to do when `binary` is older than [`MIN_VERSION`] or does not answer.
pub fn check_version(binary: &Path) -> anyhow::Result<(u32, u32)> {
    let package = package_of(binary);
    let out = std::process::Command::new(binary)
        .arg("--version")
        .output()
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}: install QEMU (Debian/Ubuntu: apt-get install {package})",
                binary.display()
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = parse_version(&text).ok_or_else(|| {
        anyhow::anyhow!(
            "{} --version said {text:?}: not a QEMU version",
            binary.display()
        )
    })?;
    if v < MIN_VERSION {
        anyhow::bail!(
            "QEMU {}.{} is too old: the harness needs {}.{} or newer (install a newer {package})",
            v.0,
            v.1,
            MIN_VERSION.0,
            MIN_VERSION.1
        );
    }
    Ok(v)
}

/// The Debian package of a QEMU binary (by its file name; x86-64's when unknown).
fn package_of(binary: &Path) -> &'static str {
    let name = binary.file_name().and_then(|n| n.to_str()).unwrap_or("");
    Arch::ALL
        .into_iter()
        .find(|a| a.qemu_binary() == name)
        .unwrap_or(Arch::X86_64)
        .qemu_package()
}

/// The kernel's own hang detectors, as kernel arguments, their limits scaled like every
/// other limit: the hung-task detector (CONFIG_DETECT_HUNG_TASK) reports a task that sat in
/// uninterruptible sleep without being scheduled for [`HUNG_TASK_SECS`] (×4 under TCG),
/// checking as often, with its stack, and never panics for it: the guest runner judges the
/// hang (it sees it sooner, from /proc), the report is the kernel's own witness beside it.
/// The soft-lockup detector (CONFIG_SOFTLOCKUP_DETECTOR) reports a CPU that did not schedule
/// for twice `watchdog_thresh`: a kernel loop that never sleeps, which no signal ends.
/// Both defaults (120 s, 10 s) are far beyond a scenario's limit, where a report would come
/// after the VM was gone.
pub fn watchdog_cmdline(accel: Accel) -> String {
    let k = accel.slowdown();
    format!(
        "sysctl.kernel.hung_task_timeout_secs={} sysctl.kernel.hung_task_panic=0 watchdog_thresh={}",
        HUNG_TASK_SECS * k,
        WATCHDOG_THRESH_SECS * k
    )
}

/// The hung-task detector's limit at KVM speed, in seconds (its finest unit): above the
/// runner's own hang limit, so that the runner names the hang first and the kernel's report
/// follows while the VM still runs.
pub const HUNG_TASK_SECS: u32 = 1;

/// `watchdog_thresh` at KVM speed: a soft lockup is reported after twice this.
pub const WATCHDOG_THRESH_SECS: u32 = 2;

/// qboot starts a Linux kernel faster than SeaBIOS; use it when QEMU ships it.
pub const QBOOT: &str = "/usr/share/qemu/qboot.rom";

impl QemuConfig {
    /// The kernel command line: console on ttyS0; `panic=-1` turns a panic into a reboot,
    /// which `-no-reboot` turns into QEMU exiting, so a dead kernel never hangs the host.
    /// `loglevel=5` keeps boot chatter off the slow serial console but keeps warnings
    /// (WARNING:, "user_events: Fault for mm") that the console watch looks for.
    /// `rcupdate.rcu_expedited=1`: a process with user_events registrations waits out an RCU
    /// grace period when it exits (user_event_mm_remove), and so do unregistering probes and
    /// deleting events. A normal grace period takes tens of ms under TCG, an expedited one a
    /// fraction of that; RCU's guarantees are the same, only reached sooner. Measured on the
    /// warm suite: the scenarios' phase took 2.8–3.7 s against 5.1–5.9 s without it.
    /// `no_timer_check`: at boot the kernel checks that the IO-APIC timer ticks within a few
    /// loops and panics ("IO-APIC + timer doesn't work!") when it does not. Under TCG on a
    /// loaded host the vCPU thread can be descheduled through that window (seen in a self-test
    /// while four other builds ran), which kills a healthy kernel before any scenario; the
    /// check proves nothing about user_events, so it is skipped, as VM images commonly do.
    /// `tsc_early_khz=` and `tsc=reliable`: see [`QemuConfig::guest_tsc_khz`].
    /// The console and `no_timer_check` are x86's; other architectures get their own console
    /// ([`Arch::console`]) and no x86 arguments.
    pub fn cmdline(&self) -> String {
        let mut s = format!(
            "console={} panic=-1 rdinit=/init loglevel=5 nokaslr rcupdate.rcu_expedited=1{}",
            self.arch.console(),
            self.arch.cmdline_extra()
        );
        s.push(' ');
        s.push_str(SLUB_DEBUG);
        s.push(' ');
        s.push_str(SECRETMEM_ENABLE);
        s.push(' ');
        s.push_str(&watchdog_cmdline(self.accel));
        if let Some(khz) = self.guest_tsc_khz {
            // `tsc=reliable` too: the guest's clocksource watchdog compares the TSC with
            // jiffies, which lose ticks while the vCPU waits on a loaded host; it then marked
            // the (host's, constant) TSC unstable and the guest kept time in jiffies, about
            // half the wall's pace (bench row 12, eight loaded runs of ten).
            s.push_str(&format!(" tsc_early_khz={khz} tsc=reliable"));
        }
        if !self.extra_cmdline.is_empty() {
            s.push(' ');
            s.push_str(&self.extra_cmdline);
        }
        s
    }

    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(s.into());
        for s in [
            "-nodefaults",
            "-no-reboot",
            "-no-user-config",
            "-display",
            "none",
            "-monitor",
            "none",
        ] {
            push(s);
        }
        for m in self.arch.machine() {
            push(m);
        }
        if self.arch == Arch::X86_64 && Path::new(QBOOT).exists() {
            push("-bios");
            push(QBOOT);
        }
        push("-accel");
        push(match self.accel {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        });
        if self.accel == Accel::Kvm {
            push("-cpu");
            push("host");
        }
        push("-m");
        push(&self.memory_mib.to_string());
        push("-smp");
        push(&self.cpus.to_string());
        push("-serial");
        push("stdio");
        push("-chardev");
        push(&format!(
            "socket,id=results,path={}",
            self.result_socket.display()
        ));
        for r in result_device_args(self.arch.result_device()) {
            push(&r);
        }
        push("-append");
        push(&self.cmdline());
        a.push("-kernel".into());
        a.push(self.kernel.clone().into());
        a.push("-initrd".into());
        a.push(self.initrd.clone().into());
        if let Some(port) = self.gdb {
            a.push("-gdb".into());
            a.push(format!("tcp:127.0.0.1:{port}").into());
            a.push("-S".into());
        }
        a.extend(self.extra_args.iter().map(OsString::from));
        a
    }

    /// The command as a person would paste it into a shell, for the run's artifacts.
    pub fn shell_line(&self) -> String {
        std::iter::once(self.binary.as_os_str().to_owned())
            .chain(self.args())
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl QemuConfig {
    /// The command as it works when pasted later: the result port writes to `results_file`
    /// instead of the harness's socket, which is gone once the run ends.
    pub fn pasteable_line(&self, results_file: &Path) -> String {
        std::iter::once(self.binary.as_os_str().to_owned())
            .chain(self.args_with_results_file(results_file))
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// [`QemuConfig::args`] with the result port writing to a file: for a VM no harness
    /// listens to (a pasted command line, the shell).
    pub fn args_with_results_file(&self, results_file: &Path) -> Vec<OsString> {
        let socket = format!("socket,id=results,path={}", self.result_socket.display());
        let file = format!("file,id=results,path={}", results_file.display());
        self.args()
            .into_iter()
            .map(|a| {
                if a == socket.as_str() {
                    file.clone().into()
                } else {
                    a
                }
            })
            .collect()
    }

    /// The arguments for a person at the console (`cargo xtask shell`): the console is
    /// multiplexed with QEMU's monitor, so Ctrl-C reaches the guest and Ctrl-A x quits.
    pub fn interactive_args(&self, results_file: &Path) -> Vec<OsString> {
        let mut out: Vec<OsString> = Vec::new();
        let mut it = self.args_with_results_file(results_file).into_iter();
        while let Some(a) = it.next() {
            if a == "-monitor" {
                // mon:stdio below is the monitor; `-monitor none` would take its place.
                it.next();
                continue;
            }
            let serial = a == "-serial";
            out.push(a);
            if serial {
                let v = it.next().unwrap_or_default();
                out.push(if v == "stdio" { "mon:stdio".into() } else { v });
            }
        }
        out
    }
}

/// The result channel's device, connected to the chardev `results`: x86-64's second serial
/// port, or a virtio-serial port named [`RESULT_PORT_NAME`] on its machine's transport.
pub fn result_device_args(device: ResultDevice) -> Vec<String> {
    match device {
        ResultDevice::SecondSerial => vec!["-serial".into(), "chardev:results".into()],
        ResultDevice::VirtioSerial { bus } => vec![
            "-device".into(),
            bus.into(),
            "-device".into(),
            format!("virtserialport,chardev=results,name={RESULT_PORT_NAME}"),
        ],
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// SLUB debugging for every cache (kernel-configs/base.config says why): `F` checks each
/// object at alloc and free, `Z` red zones after it, `P` poisons freed objects, and `U`
/// records each object's owner, which is also what makes SLUB remember the size a kmalloc
/// asked for and red-zone the rest of its slot: a copy one byte past a 33-byte kmalloc lands
/// in the 64-byte slot's slack, which only that check sees. A kernel built without
/// CONFIG_SLUB_DEBUG ignores it.
const SLUB_DEBUG: &str = "slub_debug=FZPU";

/// What `--append` gives to switch [`SLUB_DEBUG`] off again: mm/slub.c's `setup_slub_debug`
/// runs for each `slub_debug=` in turn and the last one's flags stand (`-`: none). `bench`
/// measures the witnesses' cost with it.
pub const SLUB_DEBUG_OFF: &str = "slub_debug=-";

/// memfd_secret(2) on every kernel built with CONFIG_SECRETMEM: before 6.5 it was off unless
/// asked for. Its memory is what the fault-retry scenario needs (a page the kernel can
/// fault in and never pin). A kernel without the option drops the dotted parameter, never
/// passing it to init.
const SECRETMEM_ENABLE: &str = "secretmem.enable=1";

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> QemuConfig {
        QemuConfig {
            binary: "qemu-system-x86_64".into(),
            arch: Arch::X86_64,
            kernel: "/k/bzImage".into(),
            initrd: "/r/initramfs.cpio".into(),
            accel: Accel::Tcg,
            memory_mib: 512,
            cpus: 2,
            extra_cmdline: "ue.debug=1".into(),
            result_socket: "/run/x/results.sock".into(),
            extra_args: vec![],
            gdb: None,
            guest_tsc_khz: None,
        }
    }

    #[test]
    fn qemu_versions_are_read_and_old_ones_refused() {
        assert_eq!(
            parse_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n"),
            Some((7, 2))
        );
        assert_eq!(
            parse_version("QEMU emulator version 10.0.2\n"),
            Some((10, 0))
        );
        assert_eq!(parse_version("garbage"), None);
        assert!((5, 2) < MIN_VERSION && (10, 0) > MIN_VERSION);
        let e = check_version(Path::new("/nonexistent/qemu"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("apt-get install qemu-system-x86"), "{e}");
        let e = check_version(Path::new("/nonexistent/qemu-system-s390x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("apt-get install qemu-system-misc"), "{e}");
    }

    #[test]
    fn a_pasted_or_interactive_vm_writes_results_to_a_file_and_takes_the_keyboard() {
        let c = cfg();
        let line = c.pasteable_line(Path::new("/k/results.bin"));
        assert!(
            line.contains("file,id=results,path=/k/results.bin"),
            "{line}"
        );
        assert!(!line.contains("socket,"), "{line}");
        let a: Vec<String> = c
            .interactive_args(Path::new("/k/r.bin"))
            .iter()
            .map(|x| x.to_string_lossy().into_owned())
            .collect();
        let joined = a.join(" ");
        assert!(joined.contains("-serial mon:stdio"), "{joined}");
        assert!(!joined.contains("-monitor none"), "{joined}");
        assert!(joined.contains("-serial chardev:results"), "{joined}");
    }

    #[test]
    fn memory_sizes_are_read_as_qemu_does_and_nonsense_refused() {
        assert_eq!(parse_memory_mib("512"), Ok(512));
        assert_eq!(parse_memory_mib("1G"), Ok(1024));
        assert_eq!(parse_memory_mib("768M"), Ok(768));
        assert!(parse_memory_mib("lots")
            .unwrap_err()
            .contains("--memory 1G"));
        assert!(parse_memory_mib("64").is_err());
    }

    #[test]
    fn pass_through_arguments_come_last_and_gdb_stops_the_cpu() {
        let mut c = cfg();
        c.extra_args = vec!["-device".into(), "virtio-rng-pci".into()];
        c.gdb = Some(1234);
        let line = c.shell_line();
        assert!(
            line.ends_with("-gdb tcp:127.0.0.1:1234 -S -device virtio-rng-pci"),
            "{line}"
        );
        c.memory_mib = 2048;
        c.cpus = 4;
        let line = c.shell_line();
        assert!(line.contains("-m 2048 -smp 4"), "{line}");
    }

    #[test]
    fn console_first_results_second_and_no_reboot() {
        let line = cfg().shell_line();
        let stdio = line.find("-serial stdio").unwrap();
        let res = line.find("-serial chardev:results").unwrap();
        assert!(stdio < res, "ttyS0 must be the console: {line}");
        assert!(line.contains("-no-reboot") && line.contains("-nodefaults"));
        assert!(
            line.contains("'console=ttyS0 panic=-1 rdinit=/init loglevel=5 nokaslr rcupdate.rcu_expedited=1 no_timer_check slub_debug=FZPU secretmem.enable=1 sysctl.kernel.hung_task_timeout_secs=4 sysctl.kernel.hung_task_panic=0 watchdog_thresh=8 ue.debug=1'"),
            "{line}"
        );
        assert!(!line.contains("-cpu host"), "TCG cannot use -cpu host");
    }

    #[test]
    fn a_known_tsc_rate_is_given_to_the_guest_before_the_extra_line() {
        let c = QemuConfig {
            guest_tsc_khz: Some(2_600_000),
            ..cfg()
        };
        assert!(
            c.cmdline()
                .ends_with("watchdog_thresh=8 tsc_early_khz=2600000 tsc=reliable ue.debug=1"),
            "{}",
            c.cmdline()
        );
        assert_eq!(
            guest_tsc_khz(Accel::Kvm, Arch::X86_64),
            None,
            "kvmclock needs none"
        );
        assert_eq!(guest_tsc_khz(Accel::Tcg, Arch::S390x), None);
        assert_eq!(guest_tsc_khz(Accel::Tcg, Arch::Arm64), None);
    }

    fn foreign(arch: Arch) -> QemuConfig {
        QemuConfig {
            binary: arch.qemu_binary().into(),
            arch,
            ..cfg()
        }
    }

    #[test]
    fn s390x_boots_the_ccw_machine_with_the_sclp_console_and_a_virtio_result_port() {
        let line = foreign(Arch::S390x).shell_line();
        assert!(line.starts_with("qemu-system-s390x "), "{line}");
        assert!(
            line.contains("-machine s390-ccw-virtio -cpu max -accel tcg"),
            "{line}"
        );
        assert!(line.contains("-serial stdio -chardev socket,id=results,path=/run/x/results.sock -device virtio-serial-ccw -device virtserialport,chardev=results,name=ue.results"), "{line}");
        assert!(
            line.contains("'console=ttysclp0 panic=-1 rdinit=/init loglevel=5 nokaslr rcupdate.rcu_expedited=1 slub_debug=FZPU secretmem.enable=1 sysctl."),
            "{line}"
        );
        for x86 in ["no_timer_check", "tsc", "qboot", "chardev:results", "ttyS0"] {
            assert!(!line.contains(x86), "{x86} in {line}");
        }
    }

    #[test]
    fn arm64_boots_virt_with_the_pl011_console_and_a_virtio_mmio_result_port() {
        let c = QemuConfig {
            guest_tsc_khz: None,
            ..foreign(Arch::Arm64)
        };
        let line = c.shell_line();
        assert!(
            line.contains("-machine virt -cpu max,pauth-impdef=on -accel tcg"),
            "{line}"
        );
        assert!(
            line.contains("-device virtio-serial-device -device virtserialport,chardev=results,name=ue.results"),
            "{line}"
        );
        assert!(
            c.cmdline().starts_with("console=ttyAMA0 "),
            "{}",
            c.cmdline()
        );
        // A kept run's pasted line writes the results to a file on every architecture.
        let pasted = c.pasteable_line(Path::new("/k/r.bin"));
        assert!(pasted.contains("file,id=results,path=/k/r.bin"), "{pasted}");
    }
}
