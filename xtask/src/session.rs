//! What every command prepares before it runs anything, in pipeline order and once: host
//! tools, the kernel list, the guest programs and their scenario list, the kernels, the suite's
//! options and the accelerator. Commands hold a [`Session`] and call what they need.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use harness::accel::{self, KvmProbe};
use harness::model::{KernelUnderTest, ScenarioInfo, SuiteOptions};
use harness::qemu::Accel;

use crate::args::{KernelArgs, RunArgs};
use crate::kernel::list::KernelList;
use crate::kernel::resolve::{self, Resolved};
use crate::sys::host_tools;
use crate::sys::progress::Progress;
use crate::{cache, guest};

pub struct Session {
    /// The checkout.
    pub root: PathBuf,
    /// `kernel-configs/`: the kernel list, fragments, patches, mutants.
    pub configs: PathBuf,
    /// Cargo's target folder (`CARGO_TARGET_DIR` or `<root>/target`): guest builds and runs.
    pub target: PathBuf,
    /// Sources and builds (`--cache-dir`, `UE_CACHE_DIR`, `~/.cache/ue-harness`).
    pub cache: PathBuf,
    pub progress: Progress,
    install: bool,
    /// `--jobs`: how many scenarios run side by side in the guest.
    jobs: Option<usize>,
    /// The host tools the chosen way of getting a kernel needs.
    tools: host_tools::Need,
    /// `--ccache`: ccache is needed too, unless the kernel is a ready image.
    ccache: bool,
    /// `--arch`'s foreign architectures: their QEMU, cross compiler and C library.
    pub foreign: Vec<harness::arch::Arch>,
}

/// The guest programs, built, and the scenarios they hold.
pub struct Guest {
    /// A content-named snapshot of the binaries (stable while cargo rewrites target/).
    pub dir: PathBuf,
    pub scenarios: Vec<ScenarioInfo>,
}

impl Guest {
    /// The scenarios a run plans by default; the optional (stress) family only when asked.
    pub fn scenarios(&self, with_optional: bool) -> Vec<ScenarioInfo> {
        self.scenarios
            .iter()
            .filter(|s| with_optional || !s.optional)
            .cloned()
            .collect()
    }
}

pub fn project_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}

/// Cargo's target folder, as cargo itself would choose it.
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if !t.is_empty() => {
            let t = PathBuf::from(t);
            if t.is_absolute() {
                t
            } else {
                root.join(t)
            }
        }
        _ => root.join("target"),
    }
}

impl Session {
    pub fn new(cache_dir: Option<&Path>, install: bool) -> Session {
        let root = project_root();
        Session {
            configs: root.join("kernel-configs"),
            target: target_dir(&root),
            cache: cache::cache_dir(cache_dir),
            progress: Progress::new(),
            install,
            tools: host_tools::Need::Package,
            root,
            jobs: None,
            ccache: false,
            foreign: vec![],
        }
    }

    pub fn for_kernels(k: &KernelArgs) -> Session {
        let mut s = Session::new(k.cache_dir.as_deref(), !k.no_install);
        s.tools = host_tools::needs(k.kernel_image.is_some(), k.kernel_tree.is_some());
        s.jobs = k.jobs.filter(|j| *j > 0);
        s.ccache = k.ccache && k.kernel_image.is_none();
        // A bad --arch is reported by check_kernels, before anything runs.
        s.foreign = k.foreign_arches().unwrap_or_default();
        s
    }

    /// Where each run gets its folder.
    pub fn runs_dir(&self) -> PathBuf {
        self.target.join("ue-runs")
    }

    pub fn host_tools(&mut self) -> anyhow::Result<()> {
        self.host_tools_with(&[])
    }

    /// The host tools and a command's own (`extra`), checked and installed at once: one
    /// plan, and one message naming all that is missing.
    pub fn host_tools_with(&mut self, extra: &[&host_tools::Tool]) -> anyhow::Result<()> {
        let mut extra = extra.to_vec();
        if self.ccache {
            extra.push(&host_tools::CCACHE);
        }
        for a in &self.foreign {
            extra.extend(host_tools::arch_tools(*a));
        }
        host_tools::ensure(&self.cache, self.tools, &extra, self.install)
    }

    pub fn kernel_list(&self) -> anyhow::Result<KernelList> {
        KernelList::load(&self.configs)
    }

    /// The kernel options checked (see [`resolve::check`]), before anything is installed,
    /// downloaded or probed; the labels the run will have.
    pub fn check_kernels(&self, k: &KernelArgs) -> anyhow::Result<Vec<String>> {
        resolve::check(k, &self.kernel_list()?)
    }

    pub fn guest(&mut self) -> anyhow::Result<Guest> {
        let dir = guest::build(&self.root, &self.target, &mut self.progress)?;
        let scenarios = harness::listing::list_scenarios(&dir)?;
        Ok(Guest { dir, scenarios })
    }

    /// The x86-64 guest when `arches` has x86-64; otherwise none is built (a foreign
    /// architecture's guest is C, [`crate::guest::foreign`]) and there are no scenarios.
    pub fn guest_for(&mut self, arches: &[harness::arch::Arch]) -> anyhow::Result<Guest> {
        if arches.iter().any(|a| a.is_native()) {
            return self.guest();
        }
        Ok(Guest {
            dir: self.target.join("ue-guest"),
            scenarios: vec![],
        })
    }

    fn places(&mut self) -> resolve::Places<'_> {
        resolve::Places {
            configs: &self.configs,
            cache: &self.cache,
            progress: &mut self.progress,
        }
    }

    /// Downloads and extracts list kernel `name`'s source now (see [`resolve::prefetch_source`]).
    pub fn prefetch_source(
        &mut self,
        name: &str,
    ) -> anyhow::Result<crate::kernel::source::SourceTimes> {
        resolve::prefetch_source(self.places(), name)
    }

    /// [`Session::prefetch_source`] for a thread of its own, with a progress of its own.
    pub fn prefetch_source_job(
        &self,
        name: String,
    ) -> impl FnOnce() -> anyhow::Result<crate::kernel::source::SourceTimes> + Send {
        let (configs, cache) = (self.configs.clone(), self.cache.clone());
        move || {
            let mut progress = Progress::new();
            resolve::prefetch_source(
                resolve::Places {
                    configs: &configs,
                    cache: &cache,
                    progress: &mut progress,
                },
                &name,
            )
        }
    }

    pub fn kernels(&mut self, k: &KernelArgs) -> anyhow::Result<Vec<Resolved>> {
        self.clean_dead_staging();
        resolve::resolve(self.places(), k)
    }

    /// Staging folders of runs that were killed go before this run uses the cache.
    fn clean_dead_staging(&mut self) {
        for p in crate::cache::inventory::remove_dead_staging(&self.cache) {
            self.progress.note(&format!(
                "removed {}, left by a run that was killed",
                p.display()
            ));
        }
    }

    /// The cache key a kernel of the list builds under, resolved against the index now.
    pub fn kernel_cache_key(
        &mut self,
        name: &str,
        arch: harness::arch::Arch,
    ) -> anyhow::Result<String> {
        resolve::list_kernel_key(self.places(), name, arch)
    }

    /// The pristine source of a kernel of the list (for the developer-loop self-tests).
    pub fn pristine_tree(&mut self, name: &str) -> anyhow::Result<PathBuf> {
        resolve::pristine_tree(self.places(), name)
    }

    /// Exactly one kernel, for the commands that compare against one baseline.
    pub fn one_kernel(&mut self, k: &KernelArgs, command: &str) -> anyhow::Result<Resolved> {
        let list = self.kernel_list()?;
        let labels = resolve::labels(k, &list)?;
        if labels.len() != 1 {
            bail!("`cargo xtask {command}` runs on one kernel; --kernel names {}: pick one, e.g. --kernel {}", labels.join(", "), list.default);
        }
        let mut all = self.kernels(k)?;
        Ok(all.remove(0))
    }

    pub fn suite_options(&self, r: &RunArgs, guest: &Guest) -> SuiteOptions {
        let cpus = r.guest_cpus();
        SuiteOptions {
            guest_bin_dir: guest.dir.clone(),
            manifest: self.root.join("images/initramfs.toml"),
            qemu_binary: "qemu-system-x86_64".into(),
            accel: Accel::Tcg,
            runs_dir: self.runs_dir(),
            scenario_timeout: Duration::from_secs(r.scenario_timeout),
            poll_deadline: Duration::from_millis(r.poll_deadline_ms),
            boot_timeout: Duration::from_secs(r.boot_timeout),
            hang_limit: Duration::from_millis(r.hang_limit_ms),
            memory_mib: r.memory,
            cpus,
            extra_cmdline: r.append.join(" "),
            qemu_args: r.qemu_args.clone(),
            keep: r.keep,
            gdb: None,
            base_initramfs: None,
            stream_console: r.console,
            guest_scenario_timeout: None,
            kselftests: r.kselftest,
            stop_at_first_failure: false,
            stop_on: vec![],
            jobs: self.jobs.map_or(cpus, |j| j as u32),
            max_restarts: r.max_restarts,
            // A command that retries says so (`RetryArgs::apply`).
            retries: 0,
            flaky_fails: false,
            guest_programs: vec![],
            arch_guests: vec![],
        }
    }

    /// `--gdb`: QEMU waits for the debugger, and a person stepping through the kernel must
    /// not be cut off by the host's limits: every wait becomes an hour.
    pub fn wait_for_debugger(opts: &mut SuiteOptions, port: u16) {
        opts.gdb = Some(port);
        let hour = Duration::from_secs(3600);
        opts.boot_timeout = hour;
        opts.scenario_timeout = hour;
        // A kernel held at a breakpoint leaves its tasks asleep as long as the person looks.
        opts.hang_limit = Duration::ZERO;
    }

    /// KVM when it works here, TCG otherwise, saying why once; the probe boot is cached
    /// (see [`KvmIdentity`]) and `--reprobe` asks again.
    pub fn choose_accel(
        &mut self,
        opts: &mut SuiteOptions,
        run: &RunArgs,
        kernel: &KernelUnderTest,
    ) -> anyhow::Result<()> {
        for a in &self.foreign {
            harness::qemu::check_version(Path::new(a.qemu_binary()))?;
        }
        if !kernel.arch.is_native() {
            // Only foreign kernels: their CPUs are emulated, nothing to probe.
            opts.accel = Accel::Tcg;
            return Ok(());
        }
        harness::qemu::check_version(&opts.qemu_binary)?;
        let cache = self.cache.clone();
        let mut cached = None;
        let (accel, why) = accel::decide(run.accel, accel::dev_kvm_usable(), || {
            let (probe, how) = cached_kvm_probe(&cache, kernel, opts, run.reprobe);
            cached = how;
            probe
        })
        .map_err(anyhow::Error::msg)?;
        if let Some(why) = why {
            match cached.filter(|_| accel == Accel::Tcg) {
                Some(how) => self.progress.note(&format!("{why}; {how}")),
                None => self.progress.note(&why),
            }
        }
        opts.accel = accel;
        Ok(())
    }
}

/// What a KVM probe's answer holds for: the QEMU binary (its path and version), the host
/// kernel, and /dev/kvm itself (its device number and inode: a reloaded module or a new
/// device node). While all are the same, the answer is kept; any change asks again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct KvmIdentity {
    qemu: String,
    qemu_version: String,
    host_kernel: String,
    dev_kvm: String,
}

impl KvmIdentity {
    fn now(qemu_binary: &Path) -> KvmIdentity {
        // The binary QEMU runs as: the first on PATH, as Command finds it.
        let qemu = if qemu_binary.components().count() > 1 {
            qemu_binary.to_owned()
        } else {
            std::env::var_os("PATH")
                .and_then(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join(qemu_binary))
                        .find(|c| c.is_file())
                })
                .unwrap_or_else(|| qemu_binary.to_owned())
        };
        let qemu_version = std::process::Command::new(&qemu)
            .arg("--version")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .unwrap_or_default();
        let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned();
        let dev_kvm = {
            use std::os::unix::fs::MetadataExt as _;
            std::fs::metadata("/dev/kvm").map_or_else(
                |e| format!("absent ({e})"),
                |m| {
                    format!(
                        "device {}:{}, inode {}",
                        libc::major(m.rdev()),
                        libc::minor(m.rdev()),
                        m.ino()
                    )
                },
            )
        };
        KvmIdentity {
            qemu: qemu.display().to_string(),
            qemu_version,
            host_kernel,
            dev_kvm,
        }
    }
}

/// The cached probe: its answer, what it holds for, and when it was asked (seconds since the
/// epoch).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct CachedProbe {
    identity: KvmIdentity,
    probe: KvmProbe,
    probed_at: u64,
}

/// The KVM probe boots a kernel, so its answer is kept while [`KvmIdentity`] holds. Returns
/// the answer and, for one from the cache, a sentence saying since when, until what, and how
/// to ask again.
fn cached_kvm_probe(
    cache: &Path,
    kernel: &KernelUnderTest,
    opts: &SuiteOptions,
    reprobe: bool,
) -> (KvmProbe, Option<String>) {
    let identity = KvmIdentity::now(&opts.qemu_binary);
    let path = cache.join("kvm-probe.json");
    if let Some(kept) = cached_answer(&path, &identity, reprobe) {
        return kept;
    }
    eprintln!("probing KVM with one boot (cached in {})", path.display());
    let probe = accel::probe_kvm(kernel, opts);
    let record = CachedProbe {
        identity,
        probe: probe.clone(),
        probed_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let _ = std::fs::create_dir_all(cache);
    let _ = cache::write_atomic(&path, &serde_json::to_vec(&record).unwrap_or_default());
    (probe, None)
}

/// The cached answer at `path` when it was asked of this `identity` and no new probe is
/// wanted, with the sentence that says since when, until what, and how to ask again.
fn cached_answer(
    path: &Path,
    identity: &KvmIdentity,
    reprobe: bool,
) -> Option<(KvmProbe, Option<String>)> {
    let k = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<CachedProbe>(&b).ok())
        .filter(|k| k.identity == *identity && !reprobe)?;
    let how = format!(
        "the answer of a probe on {} UTC, cached in {} and kept until QEMU ({} {}), the host kernel ({}) or /dev/kvm ({}) changes; `--accel auto --reprobe` asks again",
        harness::run::utc_stamp(std::time::UNIX_EPOCH + Duration::from_secs(k.probed_at)),
        path.display(),
        identity.qemu,
        identity.qemu_version,
        identity.host_kernel,
        identity.dev_kvm
    );
    Some((k.probe, Some(how)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cached KVM answer is used while QEMU, the host kernel and /dev/kvm are the same, and
    /// says so with how to ask again; any change, or --reprobe, asks again.
    #[test]
    fn a_cached_kvm_answer_holds_for_its_identity_and_says_how_to_ask_again() {
        let d = std::env::temp_dir().join(format!("ue-kvm-cache-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("kvm-probe.json");
        let id = KvmIdentity {
            qemu: "/usr/bin/qemu-system-x86_64".into(),
            qemu_version: "QEMU emulator version 10.0.2".into(),
            host_kernel: "6.18.44".into(),
            dev_kvm: "device 10:232, inode 130".into(),
        };
        let record = CachedProbe {
            identity: id.clone(),
            probe: KvmProbe::Fails("no report within 8.0 s".into()),
            probed_at: 0,
        };
        std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
        let (probe, how) = cached_answer(&path, &id, false).expect("the same identity");
        assert_eq!(probe, record.probe);
        let how = how.unwrap();
        for part in [
            "19700101-000000",
            "/usr/bin/qemu-system-x86_64",
            "6.18.44",
            "inode 130",
            "--reprobe",
        ] {
            assert!(how.contains(part), "{part}: {how}");
        }
        assert!(
            cached_answer(&path, &id, true).is_none(),
            "--reprobe asks again"
        );
        for other in [
            KvmIdentity {
                qemu_version: "QEMU emulator version 10.1".into(),
                ..id.clone()
            },
            KvmIdentity {
                host_kernel: "6.19".into(),
                ..id.clone()
            },
            KvmIdentity {
                dev_kvm: "device 10:232, inode 131".into(),
                ..id.clone()
            },
            KvmIdentity {
                qemu: "/opt/qemu/bin/qemu-system-x86_64".into(),
                ..id.clone()
            },
        ] {
            assert!(cached_answer(&path, &other, false).is_none(), "{other:?}");
        }
        // The old form (a key string and the answer) is not trusted: it is probed again.
        std::fs::write(&path, r#"["QEMU | 6.18",{"Fails":"x"}]"#).unwrap();
        assert!(cached_answer(&path, &id, false).is_none());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn cargo_target_dir_is_respected() {
        let root = Path::new("/repo");
        // Only this test touches the variable in this process's test binary.
        std::env::set_var("CARGO_TARGET_DIR", "/elsewhere/t");
        assert_eq!(target_dir(root), PathBuf::from("/elsewhere/t"));
        std::env::set_var("CARGO_TARGET_DIR", "rel");
        assert_eq!(target_dir(root), PathBuf::from("/repo/rel"));
        std::env::remove_var("CARGO_TARGET_DIR");
        assert_eq!(target_dir(root), PathBuf::from("/repo/target"));
    }
}
