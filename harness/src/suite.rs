//! One kernel's run of the suite: plan → initramfs → boot → verdicts, with every artifact kept
//! in a per-run folder (console log, QEMU command line, results JSON, the kernel's .config).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _};
use result_channel::{KselftestPlan, Plan};

use crate::image::{self, ExtraFile, Manifest};
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
    /// The upstream selftests built from the same tree (empty for a ready image).
    pub kselftests: Vec<KselftestBinary>,
}

/// The programs of `tools/testing/selftests/user_events/` (its Makefile's TEST_GEN_PROGS since
/// 6.4; 6.1 lacks abi_test). Fixed here so `--list` needs no kernel tree.
pub const KSELFTESTS: [&str; 4] = ["abi_test", "dyn_test", "ftrace_test", "perf_test"];

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct KselftestBinary {
    pub name: String,
    pub path: Option<PathBuf>,
    /// Why it is not there: the compiler's message, or that the tree has no such test.
    pub build_error: Option<String>,
    /// From the selftests' `settings` file.
    pub timeout: Duration,
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
    /// Run the kernel tree's own selftests in the same boot (`kselftest::*` trials).
    pub kselftests: bool,
}

impl SuiteOptions {
    pub fn limits(&self, scenarios: usize, kselftests: &[&KselftestBinary]) -> Limits {
        let k = self.accel.slowdown();
        let scenario = self.guest_scenario_timeout.unwrap_or(self.scenario_timeout * k);
        let boot = self.boot_timeout * k;
        let margin = Duration::from_secs(5) * k;
        let kselftest = kselftests.iter().map(|b| b.timeout * k).max().unwrap_or_default();
        let kselftest_total: Duration = kselftests.iter().map(|b| b.timeout * k + margin).sum();
        Limits {
            boot,
            // The guest gives up first; the host's limit only catches a guest that cannot.
            scenario: self.scenario_timeout * k + margin,
            kselftest: kselftest + margin,
            whole: boot + (scenario + Duration::from_secs(1)) * scenarios as u32 + kselftest_total + Duration::from_secs(10) * k,
            silence: scenario.max(kselftest) + boot,
        }
    }
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct ScenarioInfo {
    pub name: String,
    pub about: String,
    /// Run only when asked for (the stress family).
    #[serde(default)]
    pub optional: bool,
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

/// Boots `kernel` once with `selected` scenarios and the `kselftests` programs that built, and
/// writes `results.json` beside the logs.
pub fn run_kernel(kernel: &KernelUnderTest, opts: &SuiteOptions, selected: &[String], kselftests: &[String]) -> anyhow::Result<KernelRun> {
    let run_dir = new_run_dir(&opts.runs_dir, &kernel.label)?;
    let k = opts.accel.slowdown();
    let programs: Vec<&KselftestBinary> =
        kernel.kselftests.iter().filter(|b| b.path.is_some() && kselftests.contains(&b.name)).collect();
    let plan = Plan {
        scenarios: selected.to_vec(),
        scenario_timeout_ms: opts.guest_scenario_timeout.unwrap_or(opts.scenario_timeout * k).as_millis() as u64,
        poll_deadline_ms: (opts.poll_deadline * k).as_millis() as u64,
        kselftests: programs
            .iter()
            .map(|b| KselftestPlan { name: b.name.clone(), path: format!("/bin/kselftest/{}", b.name), timeout_ms: (b.timeout * k).as_millis() as u64 })
            .collect(),
    };
    let extra: Vec<ExtraFile> = programs
        .iter()
        .map(|b| ExtraFile { path: format!("bin/kselftest/{}", b.name), source: b.path.clone().unwrap() })
        .collect();
    let manifest = Manifest::load(&opts.manifest)?;
    let initrd = run_dir.join("initramfs.cpio");
    std::fs::write(&initrd, image::build(&manifest, &opts.guest_bin_dir, &plan, &extra)?)
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
    let limits = opts.limits(selected.len(), &programs);
    let report = vm::run(&qemu, &run_dir, limits)?;
    let known = |p: &String| kernel.kselftests.iter().any(|b| &b.name == p);
    let mut planned = selected.to_vec();
    planned.extend(kselftests.iter().filter(|p| known(p)).map(|p| result_channel::kselftest_name(p)));
    let mut verdicts = verdict::verdicts(&report, &planned);
    verdict::expand_kselftests(&mut verdicts, &report, &kernel.kselftests, kselftests);
    for p in kselftests.iter().filter(|p| !known(p)) {
        verdicts.push(ScenarioVerdict {
            name: result_channel::kselftest_name(p),
            verdict: verdict::Verdict::Ignored("no kernel tree to build the upstream selftests from (a ready --kernel-image)".into()),
            duration_us: None,
            snapshots: vec![],
            notes: vec![],
        });
    }
    let run = KernelRun { kernel: kernel.clone(), accel: opts.accel, run_dir: run_dir.clone(), limits, report, verdicts };
    std::fs::write(run_dir.join("results.json"), serde_json::to_vec_pretty(&run)?)?;
    std::fs::write(run_dir.join("junit.xml"), crate::report::junit(&run))?;
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
