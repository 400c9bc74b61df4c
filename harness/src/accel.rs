//! KVM or TCG. `/dev/kvm` existing is not enough: on some hosts (nested virtualisation, as on
//! the machines this project was built on) QEMU opens it and then stops the guest with "KVM
//! internal error". So `auto` boots the kernel once under KVM with an empty plan, and falls back
//! to TCG, saying why in one line, when that boot does not finish. The caller caches the answer.

use std::time::Duration;

use crate::model::{KernelUnderTest, SuiteOptions};
use crate::qemu::Accel;
use crate::vm::VmEnd;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    Auto,
    Kvm,
    Tcg,
}

impl std::str::FromStr for AccelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "kvm" => Ok(Self::Kvm),
            "tcg" => Ok(Self::Tcg),
            _ => Err(format!("unknown accelerator {s:?}: use kvm, tcg or auto")),
        }
    }
}

/// What the probe boot found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KvmProbe {
    Works,
    Fails(String),
}

/// Can this process open /dev/kvm read-write?
pub fn dev_kvm_usable() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| format!("/dev/kvm: {e}"))
}

/// The decision, separate from the probing so it can be tested. Returns the accelerator and,
/// for a fallback, the line that tells the user why.
pub fn decide(
    choice: AccelChoice,
    dev: Result<(), String>,
    probe: impl FnOnce() -> KvmProbe,
) -> Result<(Accel, Option<String>), String> {
    match choice {
        AccelChoice::Tcg => Ok((Accel::Tcg, None)),
        AccelChoice::Kvm => {
            dev.map_err(|e| format!("--accel kvm: {e}"))?;
            match probe() {
                KvmProbe::Works => Ok((Accel::Kvm, None)),
                KvmProbe::Fails(why) => Err(format!(
                    "--accel kvm: KVM cannot run this kernel here: {why}"
                )),
            }
        }
        AccelChoice::Auto => match dev {
            Err(e) => Ok((Accel::Tcg, Some(format!("using TCG (slow emulation): {e}")))),
            Ok(()) => match probe() {
                KvmProbe::Works => Ok((Accel::Kvm, None)),
                KvmProbe::Fails(why) => Ok((
                    Accel::Tcg,
                    Some(format!(
                        "using TCG (slow emulation): KVM probe failed: {why}"
                    )),
                )),
            },
        },
    }
}

/// Boots `kernel` under KVM with no scenarios; a KVM that works finishes that in seconds.
pub fn probe_kvm(kernel: &KernelUnderTest, opts: &SuiteOptions) -> KvmProbe {
    let mut o = opts.clone();
    o.accel = Accel::Kvm;
    o.boot_timeout = Duration::from_secs(8);
    match crate::run::run_kernel(kernel, &o, &crate::run::Selection::default()) {
        Err(e) => KvmProbe::Fails(format!("{e:#}")),
        Ok(run) if run.report.end == VmEnd::Finished => KvmProbe::Works,
        Ok(run) => {
            // QEMU's own words say most: "KVM internal error", "failed to set MSR ...".
            let stderr = run
                .report
                .qemu_stderr
                .lines()
                .find(|l| l.contains("KVM") || l.contains("error"))
                .unwrap_or("")
                .trim()
                .to_owned();
            let end = match &run.report.end {
                // Silence says little by itself: where the kernel got to says more.
                VmEnd::TimedOut { what } => {
                    let console =
                        std::fs::read_to_string(run.run_dir.join(&run.report.console_log))
                            .unwrap_or_default();
                    match console.lines().rev().map(str::trim).find(|l| !l.is_empty()) {
                        Some(last) => format!("{what}; the console's last line: {last}"),
                        None => format!(
                            "{what}; the console stayed empty: the kernel printed nothing under KVM (a nested or restricted KVM?)"
                        ),
                    }
                }
                VmEnd::ExitedEarly { status } => format!("QEMU ended: {status}"),
                other => format!("{other:?}"),
            };
            KvmProbe::Fails(if stderr.is_empty() {
                end
            } else {
                format!("{stderr} ({end})")
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_falls_back_to_tcg_and_says_why() {
        let (a, why) = decide(AccelChoice::Auto, Ok(()), || {
            KvmProbe::Fails("KVM internal error".into())
        })
        .unwrap();
        assert_eq!(a, Accel::Tcg);
        assert!(why.unwrap().contains("KVM internal error"));
        let (a, why) = decide(
            AccelChoice::Auto,
            Err("/dev/kvm: No such file".into()),
            || unreachable!(),
        )
        .unwrap();
        assert_eq!(
            (a, why.unwrap().contains("No such file")),
            (Accel::Tcg, true)
        );
        assert_eq!(
            decide(AccelChoice::Auto, Ok(()), || KvmProbe::Works).unwrap(),
            (Accel::Kvm, None)
        );
    }

    #[test]
    fn explicit_choices_are_obeyed_or_refused() {
        assert_eq!(
            decide(AccelChoice::Tcg, Ok(()), || unreachable!()).unwrap(),
            (Accel::Tcg, None)
        );
        let e = decide(AccelChoice::Kvm, Ok(()), || {
            KvmProbe::Fails("internal error".into())
        })
        .unwrap_err();
        assert!(e.contains("--accel kvm") && e.contains("internal error"));
        assert!(decide(
            AccelChoice::Kvm,
            Err("/dev/kvm: denied".into()),
            || unreachable!()
        )
        .is_err());
    }
}
