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
    let manifest = Manifest::load(&opts.manifest)?;
    let initrd = run_dir.join("initramfs.cpio");
    std::fs::write(
        &initrd,
        image::build(&manifest, &opts.guest_bin_dir, &plan, &extra)?,
    )
    .with_context(|| format!("write {}", initrd.display()))?;
    let qemu = QemuConfig {
        binary: opts.qemu_binary.clone(),
        kernel: kernel.bzimage.clone(),
        initrd: initrd.clone(),
        accel: opts.accel,
        memory_mib: opts.memory_mib,
        cpus: opts.cpus,
        extra_cmdline: String::new(),
        result_socket: socket_path(&run_dir),
    };
    let mut limits = opts.limits(sel.scenarios.len(), &programs);
    limits.add_programs(opts.guest_limits(&sel.guest));
    let report = vm::run(&qemu, &run_dir, &limits);
    // The image is rebuilt every run and is the largest artifact: keep logs, not the image.
    let _ = std::fs::remove_file(&initrd);
    let report = report?;

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
    verdict::expand_kselftests(
        &mut verdicts,
        &report,
        &kernel.kselftests,
        &sel.kselftests,
        &kernel.expected,
    );
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
    Ok(KernelRun {
        kernel: kernel.clone(),
        accel: opts.accel,
        run_dir,
        limits,
        report,
        verdicts,
    })
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
