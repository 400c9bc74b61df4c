//! One kernel's run of the suite: plan → initramfs → boot → verdicts, with every artifact kept
//! in a per-run folder (console log, QEMU command line, results JSON, the kernel's .config).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _};
use result_channel::Plan;

use crate::image::{self, Manifest};
use crate::qemu::{Accel, QemuConfig};
use crate::verdict::{self, ScenarioVerdict};
use crate::vm::{self, Limits, VmReport};

#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelUnderTest {
    /// The name trials carry: `<label>::<scenario>`.
    pub label: String,
    pub bzimage: PathBuf,
    /// The `.config` it was built from, when known (copied into the run's artifacts).
    pub config: Option<PathBuf>,
    /// Where it came from: package and version, tree path, patches.
    pub provenance: String,
}

#[derive(Debug, Clone)]
pub struct SuiteOptions {
    pub guest_bin_dir: PathBuf,
    pub manifest: PathBuf,
    pub qemu_binary: PathBuf,
    pub accel: Accel,
    /// Per-run folders are made under here (`target/ue-runs`).
    pub runs_dir: PathBuf,
    /// Base limits at KVM speed; scaled by the accelerator.
    pub scenario_timeout: Duration,
    pub poll_deadline: Duration,
    pub boot_timeout: Duration,
    pub memory_mib: u32,
    pub cpus: u32,
    /// The guest's own per-scenario limit, when it should differ from the host's (the
    /// harness's self-tests use a long one to see the host's limit act alone).
    pub guest_scenario_timeout: Option<Duration>,
}

impl SuiteOptions {
    pub fn limits(&self, scenarios: usize) -> Limits {
        let k = self.accel.slowdown();
        let scenario = self.scenario_timeout * k;
        let boot = self.boot_timeout * k;
        Limits {
            boot,
            // The guest gives up first; the host's limit only catches a guest that cannot.
            scenario: scenario + Duration::from_secs(5) * k,
            whole: boot + (scenario + Duration::from_secs(1)) * scenarios as u32 + Duration::from_secs(10) * k,
            silence: scenario + boot,
        }
    }
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct ScenarioInfo {
    pub name: String,
    pub about: String,
}

/// Asks the guest runner for its scenarios: it is a static x86-64 binary, so it runs here.
pub fn list_scenarios(guest_bin_dir: &Path) -> anyhow::Result<Vec<ScenarioInfo>> {
    let bin = guest_bin_dir.join("ue-scenarios");
    let out = Command::new(&bin)
        .arg("--list-json")
        .output()
        .with_context(|| format!("run {} --list-json (build it with `cargo xtask build-guest`)", bin.display()))?;
    if !out.status.success() {
        bail!("{} --list-json failed: {}", bin.display(), String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("parse the scenario list from {}", bin.display()))
}

#[derive(Debug, serde::Serialize)]
pub struct KernelRun {
    pub kernel: KernelUnderTest,
    pub accel: Accel,
    pub run_dir: PathBuf,
    pub limits: Limits,
    pub report: VmReport,
    pub verdicts: Vec<ScenarioVerdict>,
}

/// Boots `kernel` once with `selected` scenarios and writes `results.json` beside the logs.
pub fn run_kernel(kernel: &KernelUnderTest, opts: &SuiteOptions, selected: &[String]) -> anyhow::Result<KernelRun> {
    let run_dir = new_run_dir(&opts.runs_dir, &kernel.label)?;
    let k = opts.accel.slowdown();
    let plan = Plan {
        scenarios: selected.to_vec(),
        scenario_timeout_ms: opts.guest_scenario_timeout.unwrap_or(opts.scenario_timeout * k).as_millis() as u64,
        poll_deadline_ms: (opts.poll_deadline * k).as_millis() as u64,
    };
    let manifest = Manifest::load(&opts.manifest)?;
    let initrd = run_dir.join("initramfs.cpio");
    std::fs::write(&initrd, image::build(&manifest, &opts.guest_bin_dir, &plan, &[])?)
        .with_context(|| format!("write {}", initrd.display()))?;
    if let Some(cfg) = &kernel.config {
        let _ = std::fs::copy(cfg, run_dir.join("kernel.config"));
    }
    let qemu = QemuConfig {
        binary: opts.qemu_binary.clone(),
        kernel: kernel.bzimage.clone(),
        initrd,
        accel: opts.accel,
        memory_mib: opts.memory_mib,
        cpus: opts.cpus,
        extra_cmdline: String::new(),
        result_socket: socket_path(&run_dir),
    };
    let limits = opts.limits(selected.len());
    let report = vm::run(&qemu, &run_dir, limits)?;
    let verdicts = verdict::verdicts(&report, selected);
    let run = KernelRun { kernel: kernel.clone(), accel: opts.accel, run_dir: run_dir.clone(), limits, report, verdicts };
    std::fs::write(run_dir.join("results.json"), serde_json::to_vec_pretty(&run)?)?;
    // The image is rebuilt every run and is the largest artifact: keep logs, not the image.
    let _ = std::fs::remove_file(run_dir.join("initramfs.cpio"));
    Ok(run)
}

fn new_run_dir(runs_dir: &Path, label: &str) -> anyhow::Result<PathBuf> {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let safe: String = label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    let dir = runs_dir.join(format!("{}-{}-{}", stamp.as_secs(), std::process::id(), safe));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    // `latest` always points at the newest run of this kernel, for people and CI uploads.
    let latest = runs_dir.join(format!("latest-{safe}"));
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(dir.file_name().unwrap(), &latest);
    Ok(dir)
}

/// Unix socket paths are limited to 108 bytes; fall back to /tmp for deep checkouts.
fn socket_path(run_dir: &Path) -> PathBuf {
    let p = run_dir.join("results.sock");
    if p.as_os_str().len() < 100 {
        p
    } else {
        std::env::temp_dir().join(format!("ue-results-{}.sock", std::process::id()))
    }
}
