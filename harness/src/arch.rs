//! The architectures a kernel is built for and booted as, and what each one means for the
//! build (ARCH=, CROSS_COMPILE=, the image kbuild makes) and for QEMU (binary, machine, CPU,
//! console, the result channel's device). Everything here is a pure function of the
//! architecture, so the x86-64 path keeps its exact command line and the others are tested
//! without a VM.
//!
//! x86-64 is the host's own: the Rust guest runs there, natively or under KVM. s390x (the
//! big-endian 64-bit architecture Debian builds and QEMU emulates) and arm64 (another MMU and
//! copy-on-write implementation) are cross-built and run under TCG with a small C guest.

use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum Arch {
    #[default]
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "s390x")]
    S390x,
    #[serde(rename = "arm64")]
    Arm64,
}

/// How the result channel reaches the guest: a second serial port the kernel calls
/// `/dev/ttyS1` (x86-64), or a virtio-serial port named [`RESULT_PORT_NAME`] that the guest
/// finds under `/sys/class/virtio-ports` (the others, whose machines have one console UART).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultDevice {
    SecondSerial,
    VirtioSerial {
        /// The virtio-serial bus device of the machine's transport.
        bus: &'static str,
    },
}

/// The virtio-serial port's name, which the guest's init looks for.
pub const RESULT_PORT_NAME: &str = "ue.results";

impl Arch {
    pub const ALL: [Arch; 3] = [Arch::X86_64, Arch::S390x, Arch::Arm64];

    /// As the user writes it (`--arch`, kernels.toml) and as trials carry it.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::S390x => "s390x",
            Arch::Arm64 => "arm64",
        }
    }

    pub fn parse(s: &str) -> Result<Arch, String> {
        let t = s.trim();
        match t {
            "x86_64" | "x86-64" | "amd64" => Ok(Arch::X86_64),
            "s390x" => Ok(Arch::S390x),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            _ => Err(format!(
                "unknown architecture {t:?}: one of {}",
                Arch::ALL.map(Arch::name).join(", ")
            )),
        }
    }

    /// The host's own: no cross compiler, the Rust guest, today's trial names.
    pub fn is_native(self) -> bool {
        self == Arch::X86_64
    }

    /// A kernel label for this architecture: x86-64 keeps the kernel's own name, the others
    /// add theirs (`6.12-s390x`), so that trials read `<kernel>-<arch>::...`.
    pub fn label(self, kernel: &str) -> String {
        if self.is_native() {
            kernel.to_owned()
        } else {
            format!("{kernel}-{}", self.name())
        }
    }

    /// kbuild's `ARCH=`.
    pub fn kernel_arch(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86",
            Arch::S390x => "s390",
            Arch::Arm64 => "arm64",
        }
    }

    /// The GNU triple of Debian's cross toolchain (`<triple>-gcc`), None for the host's own.
    pub fn cross_triple(self) -> Option<&'static str> {
        match self {
            Arch::X86_64 => None,
            Arch::S390x => Some("s390x-linux-gnu"),
            Arch::Arm64 => Some("aarch64-linux-gnu"),
        }
    }

    /// kbuild's `CROSS_COMPILE=` (empty for the host's own gcc).
    pub fn cross_compile(self) -> String {
        self.cross_triple()
            .map_or_else(String::new, |t| format!("{t}-"))
    }

    /// The C compiler for this architecture's programs and kernel.
    pub fn gcc(self) -> String {
        format!("{}gcc", self.cross_compile())
    }

    /// The make target that builds the bootable image, and where kbuild puts it.
    pub fn image_target(self) -> &'static str {
        match self {
            Arch::X86_64 | Arch::S390x => "bzImage",
            Arch::Arm64 => "Image",
        }
    }

    pub fn image_path(self) -> String {
        format!("arch/{}/boot/{}", self.kernel_arch(), self.image_target())
    }

    /// The ELF machine number of this architecture's programs (`e_machine`).
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => 62, // EM_X86_64
            Arch::S390x => 22,  // EM_S390
            Arch::Arm64 => 183, // EM_AARCH64
        }
    }

    pub fn big_endian(self) -> bool {
        self == Arch::S390x
    }

    pub fn qemu_binary(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::S390x => "qemu-system-s390x",
            Arch::Arm64 => "qemu-system-aarch64",
        }
    }

    /// The Debian package that carries [`Arch::qemu_binary`].
    pub fn qemu_package(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86",
            Arch::S390x => "qemu-system-misc",
            Arch::Arm64 => "qemu-system-arm",
        }
    }

    /// QEMU's machine and CPU. x86-64's machine is chosen in [`crate::qemu`] (with qboot and
    /// KVM's `-cpu host`); under TCG the others take the newest CPU model QEMU emulates
    /// (`max`: every instruction the kernel may use), arm64's with QEMU's own pointer
    /// authentication algorithm, which TCG runs several times faster than the architected
    /// one and the guest cannot tell apart.
    pub fn machine(self) -> &'static [&'static str] {
        match self {
            Arch::X86_64 => &["-machine", "pc"],
            Arch::S390x => &["-machine", "s390-ccw-virtio", "-cpu", "max"],
            Arch::Arm64 => &["-machine", "virt", "-cpu", "max,pauth-impdef=on"],
        }
    }

    /// The kernel's console: the first serial port (QEMU's stdout). On s390x that is the
    /// SCLP VT220 console (QEMU's first `-serial`), on arm64 virt's PL011.
    pub fn console(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS0",
            Arch::S390x => "ttysclp0",
            Arch::Arm64 => "ttyAMA0",
        }
    }

    pub fn result_device(self) -> ResultDevice {
        match self {
            Arch::X86_64 => ResultDevice::SecondSerial,
            Arch::S390x => ResultDevice::VirtioSerial {
                bus: "virtio-serial-ccw",
            },
            Arch::Arm64 => ResultDevice::VirtioSerial {
                bus: "virtio-serial-device",
            },
        }
    }

    /// Kernel arguments only this architecture understands, before the shared ones:
    /// `no_timer_check` skips x86's IO-APIC timer check, which a descheduled TCG vCPU can
    /// fail on a loaded host.
    pub fn cmdline_extra(self) -> &'static str {
        match self {
            Arch::X86_64 => " no_timer_check",
            Arch::S390x | Arch::Arm64 => "",
        }
    }

    /// The host's TSC rate is an x86 guest's business only: its TSC under TCG is the
    /// host's, while s390x's TOD clock and arm64's generic timer are read from QEMU's
    /// virtual clock and need no calibration.
    pub fn takes_host_tsc(self) -> bool {
        self == Arch::X86_64
    }
}

/// For serde's `skip_serializing_if`.
pub fn is_x86_64(a: &Arch) -> bool {
    a.is_native()
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Arch, String> {
        Arch::parse(s)
    }
}

/// `--arch` values, each a name or a comma list, repeatable: the architectures in the order
/// first named, without repeats; none named is x86-64 alone.
pub fn parse_list(values: &[String]) -> Result<Vec<Arch>, String> {
    let mut out = Vec::new();
    for v in values {
        for part in v.split(',').filter(|p| !p.trim().is_empty()) {
            let a = Arch::parse(part)?;
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    if out.is_empty() {
        out.push(Arch::X86_64);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_debian_spellings_are_accepted() {
        for a in Arch::ALL {
            assert_eq!(Arch::parse(a.name()), Ok(a));
            assert_eq!(
                serde_json::to_string(&a).unwrap(),
                format!("\"{}\"", a.name())
            );
        }
        assert_eq!(Arch::parse("aarch64"), Ok(Arch::Arm64));
        assert_eq!(Arch::parse("amd64"), Ok(Arch::X86_64));
        let e = Arch::parse("riscv64").unwrap_err();
        assert!(e.contains("x86_64, s390x, arm64"), "{e}");
    }

    #[test]
    fn arch_lists_are_comma_separated_or_repeated_and_default_to_x86_64() {
        assert_eq!(parse_list(&[]), Ok(vec![Arch::X86_64]));
        assert_eq!(
            parse_list(&["s390x,arm64".into(), "s390x".into()]),
            Ok(vec![Arch::S390x, Arch::Arm64])
        );
        assert!(parse_list(&["x86_64,mips".into()]).is_err());
    }

    #[test]
    fn only_foreign_labels_carry_their_arch() {
        assert_eq!(Arch::X86_64.label("6.12"), "6.12");
        assert_eq!(Arch::S390x.label("6.12"), "6.12-s390x");
        assert_eq!(Arch::Arm64.label("7.2+fixes"), "7.2+fixes-arm64");
    }

    #[test]
    fn kbuild_is_told_the_arch_the_cross_compiler_and_the_image() {
        assert_eq!(Arch::X86_64.cross_compile(), "");
        assert_eq!(Arch::X86_64.gcc(), "gcc");
        assert_eq!(Arch::X86_64.image_path(), "arch/x86/boot/bzImage");
        assert_eq!(Arch::S390x.kernel_arch(), "s390");
        assert_eq!(Arch::S390x.cross_compile(), "s390x-linux-gnu-");
        assert_eq!(Arch::S390x.image_path(), "arch/s390/boot/bzImage");
        assert_eq!(Arch::Arm64.gcc(), "aarch64-linux-gnu-gcc");
        assert_eq!(Arch::Arm64.image_path(), "arch/arm64/boot/Image");
    }

    #[test]
    fn each_arch_has_its_own_qemu_console_and_result_device() {
        assert_eq!(Arch::S390x.qemu_package(), "qemu-system-misc");
        assert_eq!(Arch::Arm64.qemu_package(), "qemu-system-arm");
        assert_eq!(Arch::S390x.console(), "ttysclp0");
        assert_eq!(Arch::Arm64.console(), "ttyAMA0");
        assert_eq!(Arch::X86_64.result_device(), ResultDevice::SecondSerial);
        assert!(matches!(
            Arch::S390x.result_device(),
            ResultDevice::VirtioSerial {
                bus: "virtio-serial-ccw"
            }
        ));
        assert!(Arch::S390x.big_endian() && !Arch::Arm64.big_endian());
        assert!(!Arch::S390x.takes_host_tsc() && Arch::X86_64.takes_host_tsc());
    }
}
