//! One kernel's boot of the suite: plan → initramfs → QEMU → verdicts. Writing what came of
//! it (results.json, JUnit) is [`crate::artifacts`]'s job; this module only runs.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use result_channel::{GuestTestPlan, KselftestPlan, Plan};

use crate::image::{self, ExtraFile, Manifest};
use crate::model::{
    GuestProgram, KernelRun, KernelUnderTest, KselftestBinary, Origin, ScenarioInfo,
    ScenarioVerdict, SuiteOptions, Verdict,
};
use crate::qemu::QemuConfig;
use crate::verdict;
use crate::vm;

/// What one boot runs: scenarios in order, then the upstream programs that built.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub scenarios: Vec<ScenarioInfo>,
    /// Upstream selftest programs by name (`abi_test`, ...).
    pub kselftests: Vec<String>,
    /// Other people's test programs, a libtest program's tests narrowed to those selected.
    pub guest: Vec<GuestProgram>,
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.scenarios.is_empty() && self.kselftests.is_empty() && self.guest.is_empty()
    }
}

/// Where a guest test program lands in the initramfs.
fn guest_path(p: &GuestProgram) -> String {
    format!("bin/guest/{}", p.name)
}

/// The plan the guest reads, and the programs the initramfs must carry for it.
pub fn plan<'k>(
    kernel: &'k KernelUnderTest,
    opts: &SuiteOptions,
    sel: &Selection,
) -> (Plan, Vec<&'k KselftestBinary>) {
    let k = opts.accel.slowdown();
    let programs: Vec<&KselftestBinary> = kernel
        .kselftests
        .iter()
        .filter(|b| b.path().is_some() && sel.kselftests.contains(&b.name))
        .collect();
    let plan = Plan {
        scenarios: sel.scenarios.iter().map(|s| s.name.clone()).collect(),
        scenario_timeout_ms: opts.guest_scenario_limit().as_millis() as u64,
        poll_deadline_ms: (opts.poll_deadline * k).as_millis() as u64,
        kselftests: programs
            .iter()
            .map(|b| KselftestPlan {
                name: b.name.clone(),
                path: format!("/bin/kselftest/{}", b.name),
                timeout_ms: (b.timeout * k).as_millis() as u64,
            })
            .collect(),
        stop_at_first_failure: opts.stop_at_first_failure,
        guest_tests: sel
            .guest
            .iter()
            .map(|g| GuestTestPlan {
                program: g.name.clone(),
                path: format!("/{}", guest_path(g)),
                args: g.args.clone(),
                env: g.env.clone(),
                timeout_ms: (g.timeout * k).as_millis() as u64,
                style: g.style.clone(),
            })
            .collect(),
    };
    (plan, programs)
}

/// Boots `kernel` once with what `sel` names, in a new folder under `opts.runs_dir`.
pub fn run_kernel(
    kernel: &KernelUnderTest,
    opts: &SuiteOptions,
    sel: &Selection,
) -> anyhow::Result<KernelRun> {
    let run_dir = new_run_dir(&opts.runs_dir, &kernel.label)?;
    let (plan, programs) = plan(kernel, opts, sel);
    let extra: Vec<ExtraFile> = programs
        .iter()
        .filter_map(|b| {
            Some(ExtraFile {
                path: format!("bin/kselftest/{}", b.name),
                source: b.path()?.clone(),
            })
        })
        .chain(sel.guest.iter().map(|g| ExtraFile {
            path: guest_path(g),
            source: g.path.clone(),
        }))
        .collect();
    let initrd = run_dir.join("initramfs.cpio");
    let image = match &opts.base_initramfs {
        // A kept run's image, the new plan appended: the kernel unpacks concatenated cpio
        // archives in order, so the later plan file wins.
        Some(base) => {
            let mut bytes =
                std::fs::read(base).with_context(|| format!("read {}", base.display()))?;
            bytes.extend(image::plan_only(&plan)?);
            bytes
        }
        None => image::build(
            &Manifest::load(&opts.manifest)?,
            &opts.guest_bin_dir,
            &plan,
            &extra,
        )?,
    };
    std::fs::write(&initrd, image).with_context(|| format!("write {}", initrd.display()))?;
    let qemu = QemuConfig {
        binary: opts.qemu_binary.clone(),
        kernel: kernel.bzimage.clone(),
        initrd: initrd.clone(),
        accel: opts.accel,
        memory_mib: opts.memory_mib,
        cpus: opts.cpus,
        extra_cmdline: opts.extra_cmdline.clone(),
        result_socket: socket_path(&run_dir),
        extra_args: opts.qemu_args.clone(),
        gdb: opts.gdb,
    };
    let mut limits = opts.limits(sel.scenarios.len(), &programs);
    limits.add_programs(opts.guest_limits(&sel.guest));
    if let Some(port) = opts.gdb {
        eprintln!("{}", gdb_hint(kernel, port));
    }
    let report = vm::run_streaming(&qemu, &run_dir, &limits, opts.stream_console);
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&initrd);
            return Err(e);
        }
    };

    let known = |p: &String| kernel.kselftests.iter().any(|b| &b.name == p);
    // Programs that did not build were not planned: their verdict comes from the build.
    let planned_programs: Vec<String> = programs
        .iter()
        .map(|b| result_channel::kselftest_name(&b.name))
        .collect();
    let mut verdicts = verdict::verdicts_with_guest(
        &report,
        &sel.scenarios,
        &planned_programs,
        &sel.guest,
        &kernel.expected,
    );
    verdict::expand_kselftests(&mut verdicts, &report, &kernel.kselftests, &sel.kselftests);
    for p in sel.kselftests.iter().filter(|p| !known(p)) {
        verdicts.push(ScenarioVerdict::new(
            result_channel::kselftest_name(p),
            Origin::Upstream,
            Verdict::Ignored(
                "no kernel tree to build the upstream selftests from (a ready --kernel-image)"
                    .into(),
            ),
        ));
    }
    let run = KernelRun {
        kernel: kernel.clone(),
        accel: opts.accel,
        run_dir,
        limits,
        report,
        verdicts,
    };
    if opts.keep || run.failed() {
        keep(&run, &qemu, opts, sel)?;
    } else {
        // The image is rebuilt every run and is the largest artifact: keep logs, not the
        // image, and offer no command line that could not work without it.
        let _ = std::fs::remove_file(&initrd);
    }
    Ok(run)
}

/// What `cargo xtask rerun` reads from a kept run folder.
pub const RERUN_FILE: &str = "rerun.json";

/// A kept run: enough to boot exactly the same VM again.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Kept {
    /// The kernel, its `bzimage` the copy in the run folder.
    pub kernel: KernelUnderTest,
    /// Every scenario the run planned (a rerun's filter picks among them).
    pub scenarios: Vec<ScenarioInfo>,
    pub kselftests: Vec<String>,
    /// Other people's test programs the run planned (already in the kept image).
    #[serde(default)]
    pub guest: Vec<crate::model::GuestProgram>,
    pub accel: crate::qemu::Accel,
    pub scenario_timeout_ms: u64,
    pub poll_deadline_ms: u64,
    pub boot_timeout_ms: u64,
    pub memory_mib: u32,
    pub cpus: u32,
    pub extra_cmdline: String,
    pub qemu_args: Vec<String>,
}

/// Keeps the kernel (copied: a tree's build is rebuilt in place by the next run), the
/// initramfs and a command line that works when pasted.
fn keep(
    run: &KernelRun,
    qemu: &QemuConfig,
    opts: &SuiteOptions,
    sel: &Selection,
) -> anyhow::Result<()> {
    let dir = &run.run_dir;
    let bzimage = dir.join("bzImage");
    if run.kernel.bzimage != bzimage {
        std::fs::copy(&run.kernel.bzimage, &bzimage).with_context(|| {
            format!("keep {} in {}", run.kernel.bzimage.display(), dir.display())
        })?;
    }
    let mut kernel = run.kernel.clone();
    kernel.bzimage = bzimage.clone();
    let mut pasted = qemu.clone();
    pasted.kernel = bzimage;
    pasted.gdb = None;
    std::fs::write(
        dir.join("qemu-cmdline.txt"),
        format!(
            "# Boots this run's VM again; the guest's result records go to {}.\n# `cargo xtask rerun {}` does the same and reports the trials.\n{}\n",
            dir.join("results-pasted.bin").display(),
            dir.display(),
            pasted.pasteable_line(&dir.join("results-pasted.bin"))
        ),
    )?;
    let kept = Kept {
        kernel,
        scenarios: sel.scenarios.clone(),
        kselftests: sel.kselftests.clone(),
        guest: sel.guest.clone(),
        accel: opts.accel,
        scenario_timeout_ms: opts.scenario_timeout.as_millis() as u64,
        poll_deadline_ms: opts.poll_deadline.as_millis() as u64,
        boot_timeout_ms: opts.boot_timeout.as_millis() as u64,
        memory_mib: opts.memory_mib,
        cpus: opts.cpus,
        extra_cmdline: opts.extra_cmdline.clone(),
        qemu_args: opts.qemu_args.clone(),
    };
    std::fs::write(dir.join(RERUN_FILE), serde_json::to_vec_pretty(&kept)?)?;
    Ok(())
}

/// The gdb command for a kernel QEMU holds at its first instruction (`--gdb`).
pub fn gdb_hint(kernel: &KernelUnderTest, port: u16) -> String {
    let vmlinux = kernel
        .bzimage
        .ancestors()
        .nth(4)
        .map(|d| d.join("vmlinux"))
        .filter(|v| v.is_file());
    match vmlinux {
        Some(v) => format!(
            "QEMU waits for a debugger on localhost:{port}; attach with:\n  gdb {} -ex 'target remote :{port}'\n(then `continue`; the VM boots when gdb lets it)",
            v.display()
        ),
        None => format!("QEMU waits for a debugger on localhost:{port} (no vmlinux beside the bzImage: build with --gdb for one with debug info)"),
    }
}

fn new_run_dir(runs_dir: &Path, label: &str) -> anyhow::Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let safe = safe_label(label);
    let dir = runs_dir.join(format!(
        "{}-{}-{}",
        stamp.as_secs(),
        std::process::id(),
        safe
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    // `latest-<label>` always points at the newest run of this kernel, for people and CI uploads.
    let latest = runs_dir.join(format!("latest-{safe}"));
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(dir.file_name().unwrap_or_default(), &latest);
    Ok(dir)
}

/// A label as it may appear in a file name.
pub fn safe_label(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Unix socket paths are limited to 108 bytes; fall back to /tmp for deep checkouts (a
/// number per boot, since the matrix boots several kernels at once from one process).
pub fn socket_path(run_dir: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let p = run_dir.join("results.sock");
    if p.as_os_str().len() < 100 {
        p
    } else {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::env::temp_dir().join(format!("ue-results-{}-{n}.sock", std::process::id()))
    }
}
