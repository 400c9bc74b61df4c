//! `cargo xtask`: the project's commands. Each subcommand is a function below; the pipeline
//! steps live in their own modules, in the order data flows:
//! kernels (list) → apt (download) → source (extract, patch) → kconfig → kbuild (cached) →
//! guest (static binaries) → harness (initramfs, QEMU, results, trials).

mod apt;
mod bench;
mod cache;
mod guest;
mod host_tools;
mod kbuild;
mod kconfig;
mod kernels;
mod kselftests;
mod mutants;
mod progress;
mod selftest;
mod source;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use harness::accel::{self, AccelChoice, KvmProbe};
use harness::qemu::Accel;
use harness::suite::{KernelUnderTest, SuiteOptions};

use crate::kbuild::{BuildRequest, Source};
use crate::kernels::KernelList;
use crate::progress::Progress;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build user_events kernels, boot them in QEMU, check the remote-write ABI")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the kernel(s) and guest, boot, and report every guest scenario as a test.
    /// Arguments after `--` go to the test runner: a filter, --exact, --skip, --list, --format json.
    Test(TestArgs),
    /// Build (or find in the cache) the kernel and print the bzImage path.
    BuildKernel(KernelArgs),
    /// Build the static guest programs.
    BuildGuest,
    /// Install missing host tools and refresh the private package index.
    Setup(KernelArgs),
    /// Every kernel of the list (or --kernel's): builds one after another while the VMs of the
    /// kernels already built run beside them; ends with one table, also as Markdown, JSON and
    /// JUnit XML.
    Matrix {
        #[command(flatten)]
        kernel: KernelArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Prove every check can fail: build each kernel-configs/mutants/*.patch on the cached
    /// kernel, run the suite on it, and print which scenarios caught it.
    Mutants {
        #[command(flatten)]
        kernel: KernelArgs,
        #[command(flatten)]
        run: RunArgs,
        /// Only the mutants whose file name contains this.
        #[arg(long)]
        only: Option<String>,
    },
    /// The harness's own integration tests: boot broken guests and check what is reported.
    Selftest {
        #[command(flatten)]
        kernel: KernelArgs,
        #[command(flatten)]
        run: RunArgs,
        /// Arguments for the test runner (filter, --exact, --list).
        #[arg(last = true)]
        libtest: Vec<String>,
    },
    /// Time the harness: boot floor, warm suite, no-op build, edit-and-rerun, recorded cold
    /// builds, the last matrix, and virtme-ng on the same kernel; a Markdown table and JSON.
    Bench(bench::BenchArgs),
    /// Scan a saved console log for kernel trouble, and a saved result stream for records.
    Parse {
        /// A console log (console.log of a run, or any kernel log).
        #[arg(long)]
        console: Option<PathBuf>,
        /// Raw bytes of a result channel.
        #[arg(long)]
        results: Option<PathBuf>,
    },
}

#[derive(Args, Clone)]
struct KernelArgs {
    /// Kernel(s) from kernel-configs/kernels.toml: a name, a comma list, or `all`.
    #[arg(long)]
    kernel: Option<String>,
    /// Build this kernel source tree (out of tree; the tree is never modified).
    #[arg(long, conflicts_with_all = ["kernel", "kernel_image"])]
    kernel_tree: Option<PathBuf>,
    /// Boot this ready bzImage, skipping the build.
    #[arg(long, conflicts_with = "kernel")]
    kernel_image: Option<PathBuf>,
    /// A patch to apply on a copy of the pristine source (repeatable, in order).
    #[arg(long = "patch")]
    patches: Vec<PathBuf>,
    /// Cache directory (default $UE_CACHE_DIR or ~/.cache/ue-harness).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Parallel make jobs (default: the number of CPUs).
    #[arg(long)]
    jobs: Option<usize>,
    /// Do not install missing host tools; print the command instead.
    #[arg(long)]
    no_install: bool,
    /// The debug variant: add kernel-configs/debug.config (KASAN, KFENCE, DEBUG_VM, lockdep,
    /// atomic-sleep checks); trials are named `<kernel>-debug::...`.
    #[arg(long)]
    debug: bool,
}

#[derive(Args)]
struct TestArgs {
    #[command(flatten)]
    kernel: KernelArgs,
    #[command(flatten)]
    run: RunArgs,
    /// Arguments for the test runner (libtest's: filter, --exact, --skip, --list, --format).
    #[arg(last = true)]
    libtest: Vec<String>,
}

#[derive(Args)]
struct RunArgs {
    /// kvm, tcg or auto (auto probes KVM once and falls back to TCG, saying why).
    #[arg(long, default_value = "auto")]
    accel: AccelChoice,
    /// Per-scenario limit in seconds at KVM speed (scaled for TCG).
    #[arg(long, default_value_t = 5)]
    scenario_timeout: u64,
    /// How long a scenario polls for an asynchronous update, in ms at KVM speed.
    #[arg(long, default_value_t = 500)]
    poll_deadline_ms: u64,
    /// Boot limit in seconds at KVM speed (scaled for TCG).
    #[arg(long, default_value_t = 10)]
    boot_timeout: u64,
    /// Also run the stress family (bounded-time hammering of the asynchronous paths).
    #[arg(long)]
    stress: bool,
    /// Also run the kernel tree's own user_events selftests in the same boot, as
    /// `kselftest::<program>::<test>` trials (always on in `matrix` and `mutants`).
    #[arg(long)]
    kselftest: bool,
}

extern "C" fn on_interrupt(_: libc::c_int) {
    harness::vm::INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Ctrl-C stops a boot cleanly (QEMU killed and reaped, socket removed); make and cargo
    // get the signal from the terminal themselves.
    unsafe {
        libc::signal(libc::SIGINT, on_interrupt as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_interrupt as *const () as libc::sighandler_t);
    }
    let r = match cli.cmd {
        Cmd::Test(a) => test(a),
        Cmd::BuildKernel(a) => build_kernel_cmd(a),
        Cmd::BuildGuest => guest::build(&project_root(), &mut Progress::new()).map(|d| {
            println!("{}", d.display());
            ExitCode::SUCCESS
        }),
        Cmd::Setup(a) => setup(a),
        Cmd::Parse { console, results } => parse(console, results),
        Cmd::Mutants { kernel, run, only } => mutants_cmd(kernel, run, only),
        Cmd::Selftest { kernel, run, libtest } => selftest_cmd(kernel, run, libtest),
        Cmd::Matrix { kernel, run } => matrix_cmd(kernel, run),
        Cmd::Bench(a) => bench::run(a),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn configs_dir() -> PathBuf {
    project_root().join("kernel-configs")
}

fn jobs(a: &KernelArgs) -> usize {
    a.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

fn setup(a: KernelArgs) -> anyhow::Result<ExitCode> {
    host_tools::ensure(!a.no_install)?;
    let list = KernelList::load(&configs_dir())?;
    let cache = cache::cache_dir(a.cache_dir.as_deref());
    let mut progress = Progress::new();
    apt::PrivateApt::new(&cache).update(&list.all_suites(), &list.all_packages(), &mut progress)?;
    eprintln!("host tools present; cache at {}", cache.display());
    Ok(ExitCode::SUCCESS)
}

/// Every kernel the arguments name, built (or found in the cache).
fn resolve_kernels(a: &KernelArgs, progress: &mut Progress) -> anyhow::Result<Vec<KernelUnderTest>> {
    Ok(resolve_kernels_timed(a, progress)?.into_iter().map(|(k, _)| k).collect())
}

/// Like [`resolve_kernels`], with the seconds make took for each (None: from the cache).
fn resolve_kernels_timed(a: &KernelArgs, progress: &mut Progress) -> anyhow::Result<Vec<(KernelUnderTest, Option<f64>)>> {
    let cache = cache::cache_dir(a.cache_dir.as_deref());
    if let Some(img) = &a.kernel_image {
        if !a.patches.is_empty() {
            bail!("--patch needs a kernel to build; it cannot change a ready --kernel-image");
        }
        return Ok(vec![(ready_image(img)?, None)]);
    }
    let default_fragments = || -> anyhow::Result<Vec<PathBuf>> {
        let list = KernelList::load(&configs_dir())?;
        let mut f = list.kernels[&list.default].fragment_paths(&configs_dir());
        if a.debug {
            f.push(configs_dir().join("debug.config"));
        }
        Ok(f)
    };
    let patches: Vec<PathBuf> = a
        .patches
        .iter()
        .map(|p| p.canonicalize().with_context(|| format!("patch {}", p.display())))
        .collect::<anyhow::Result<_>>()?;
    if let Some(tree) = &a.kernel_tree {
        source::check_kernel_tree(tree)?;
        let label = tree.canonicalize()?.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let req = BuildRequest {
            label: label.clone(),
            source: Source::Tree { tree: tree.clone() },
            fragments: default_fragments()?,
            extra_patches: patches.len(),
            patches,
            absent: vec![],
            jobs: jobs(a),
        };
        let built = kbuild::build(&cache, &req, progress)?;
        let secs = built.ran_make.then_some(built.record.build_secs);
        let kselftests = kselftests::build(&built.src, &built.out, progress)?;
        let provenance = format!("tree {}", tree.display());
        let k = KernelUnderTest { label, bzimage: built.bzimage, config: Some(built.config), provenance, kselftests };
        return Ok(vec![(k, secs)]);
    }
    let list = KernelList::load(&configs_dir())?;
    let mut out = Vec::new();
    // One index over every suite the list names, so switching kernels never refreshes it.
    let aptc = apt::PrivateApt::new(&cache);
    aptc.update(&list.all_suites(), &list.all_packages(), progress)?;
    for (name, spec) in list.select(a.kernel.as_deref())? {
        let entry = aptc.newest(&spec.package)?;
        let fetch = |p: &mut Progress| source::fetch_pristine(&aptc, &cache, &entry, p);
        let mut all_patches = spec.patch_paths(&configs_dir());
        all_patches.extend(patches.iter().cloned());
        let variant = if a.debug { "-debug" } else { "" };
        let label = if patches.is_empty() { format!("{name}{variant}") } else { format!("{name}{variant}+patched") };
        let mut fragments = spec.fragment_paths(&configs_dir());
        if a.debug {
            fragments.push(configs_dir().join("debug.config"));
        }
        let identity = format!("deb:{}={} sha256:{}", entry.package, entry.version, entry.sha256);
        let req = BuildRequest {
            label: label.clone(),
            source: Source::Pristine { identity, fetch: &fetch },
            fragments,
            patches: all_patches,
            extra_patches: patches.len(),
            absent: spec.absent.clone(),
            jobs: jobs(a),
        };
        let built = kbuild::build(&cache, &req, progress)?;
        if !built.ran_make {
            progress.note(&format!("{label}: cached build {} (nothing changed, no make)", built.record.key));
        }
        let patch_note = if built.record.patches.is_empty() { String::new() } else { format!(" + {}", built.record.patches.join(", ")) };
        let secs = built.ran_make.then_some(built.record.build_secs);
        let provenance = format!("{} {}{patch_note}", entry.package, entry.version);
        let kselftests = kselftests::build(&built.src, &built.out, progress)?;
        out.push((KernelUnderTest { label, bzimage: built.bzimage, config: Some(built.config), provenance, kselftests }, secs));
    }
    Ok(out)
}

/// A ready bzImage: check it is one, and where its .config sits beside it (a build tree's
/// arch/x86/boot/bzImage), that it has user_events.
fn ready_image(img: &Path) -> anyhow::Result<KernelUnderTest> {
    let bytes = std::fs::read(img).with_context(|| format!("read --kernel-image {}", img.display()))?;
    if bytes.len() < 0x210 || &bytes[0x202..0x206] != b"HdrS" {
        bail!("{} is not an x86 bzImage (no HdrS boot header at 0x202)", img.display());
    }
    let config = img.ancestors().nth(4).map(|d| d.join(".config")).filter(|c| c.is_file());
    if let Some(c) = &config {
        let have = kconfig::parse_dot_config(&std::fs::read_to_string(c)?);
        if have.get("USER_EVENTS").map(String::as_str) != Some("y") {
            bail!("{} was built without CONFIG_USER_EVENTS (see {}): rebuild with it, or let `cargo xtask test` build a kernel", img.display(), c.display());
        }
    }
    Ok(KernelUnderTest {
        label: "image".into(),
        bzimage: img.to_owned(),
        config,
        provenance: format!("image {}", img.display()),
        kselftests: vec![],
    })
}

fn build_kernel_cmd(a: KernelArgs) -> anyhow::Result<ExitCode> {
    host_tools::ensure(!a.no_install)?;
    let mut progress = Progress::new();
    for k in resolve_kernels(&a, &mut progress)? {
        println!("{}\t{}", k.label, k.bzimage.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn test(a: TestArgs) -> anyhow::Result<ExitCode> {
    let args = libtest_mimic::Arguments::from_iter(std::iter::once("cargo xtask test".to_owned()).chain(a.libtest.clone()));
    let mut progress = Progress::new();
    let root = project_root();
    let listing = args.list;
    if !listing {
        host_tools::ensure(!a.kernel.no_install)?;
    }
    let guest_dir = guest::build(&root, &mut progress)?;
    let scenarios: Vec<_> =
        harness::suite::list_scenarios(&guest_dir)?.into_iter().filter(|s| a.run.stress || !s.optional).collect();
    let kernels = if listing { labels_only(&a.kernel)? } else { resolve_kernels(&a.kernel, &mut progress)? };
    let mut opts = suite_options(&a.run, guest_dir);
    if !listing {
        choose_accel(&mut opts, &a.run, &a.kernel, &kernels[0], &mut progress)?;
        progress.step("boot", &format!("{} kernel(s) under {:?}", kernels.len(), opts.accel));
    }
    let mut failed_runs = Vec::new();
    let conclusion = harness::trials::run(&args, &kernels, &scenarios, &opts, |run| {
        let bad = run.verdicts.iter().any(|v| matches!(v.verdict, harness::verdict::Verdict::Fail(_)));
        if !run.report.user_events {
            eprintln!("error: {} has no user_events (no user_events_data in tracefs): build it with CONFIG_USER_EVENTS=y", run.kernel.label);
        }
        eprintln!(
            "{}: booted {} in {:.1} s wall ({} ms to the runner's hello), artifacts in {}",
            run.kernel.label,
            run.kernel.provenance,
            run.report.wall_ms as f64 / 1000.0,
            run.report.guest_hello_ms.map_or("-".into(), |m| m.to_string()),
            run.run_dir.display()
        );
        if bad {
            failed_runs.push(run.run_dir.clone());
        }
    })?;
    for d in &failed_runs {
        eprintln!("failures: console log, QEMU command line and results.json are in {}", d.display());
    }
    Ok(if conclusion.has_failed() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn suite_options(r: &RunArgs, guest_bin_dir: PathBuf) -> SuiteOptions {
    let root = project_root();
    SuiteOptions {
        guest_bin_dir,
        manifest: root.join("images/initramfs.toml"),
        qemu_binary: "qemu-system-x86_64".into(),
        accel: Accel::Tcg,
        runs_dir: root.join("target/ue-runs"),
        scenario_timeout: Duration::from_secs(r.scenario_timeout),
        poll_deadline: Duration::from_millis(r.poll_deadline_ms),
        boot_timeout: Duration::from_secs(r.boot_timeout),
        memory_mib: 512,
        cpus: 2,
        guest_scenario_timeout: None,
        kselftests: r.kselftest,
    }
}

fn choose_accel(opts: &mut SuiteOptions, r: &RunArgs, k: &KernelArgs, kernel: &KernelUnderTest, progress: &mut Progress) -> anyhow::Result<()> {
    harness::qemu::check_version(&opts.qemu_binary)?;
    let cache = cache::cache_dir(k.cache_dir.as_deref());
    let (accel, why) =
        accel::decide(r.accel, accel::dev_kvm_usable(), || cached_kvm_probe(&cache, kernel, opts)).map_err(anyhow::Error::msg)?;
    if let Some(why) = why {
        progress.note(&why);
    }
    opts.accel = accel;
    Ok(())
}

fn mutants_cmd(k: KernelArgs, r: RunArgs, only: Option<String>) -> anyhow::Result<ExitCode> {
    if !k.patches.is_empty() || k.kernel_image.is_some() || k.kernel_tree.is_some() {
        bail!("mutants are applied to a packaged kernel: use --kernel, not --patch, --kernel-image or --kernel-tree");
    }
    host_tools::ensure(!k.no_install)?;
    let mut progress = Progress::new();
    let all = mutants::load(&configs_dir().join("mutants"))?;
    let selected: Vec<_> = all.into_iter().filter(|m| only.as_deref().is_none_or(|o| m.name.contains(o))).collect();
    if selected.is_empty() {
        bail!("no mutant in kernel-configs/mutants matches");
    }
    let guest_dir = guest::build(&project_root(), &mut progress)?;
    let names: Vec<String> =
        harness::suite::list_scenarios(&guest_dir)?.into_iter().filter(|s| r.stress || !s.optional).map(|s| s.name).collect();
    let mut opts = suite_options(&r, guest_dir);
    let (base, _) = resolve_kernels_timed(&k, &mut progress)?.remove(0);
    choose_accel(&mut opts, &r, &k, &base, &mut progress)?;
    progress.step("boot", &format!("{} unpatched", base.label));
    let kselftests: Vec<String> = harness::suite::KSELFTESTS.iter().map(|s| s.to_string()).collect();
    let base_run = harness::suite::run_kernel(&base, &opts, &names, &kselftests)?;
    let (base_failing, base_ks_failing) = mutants::failing(&base_run);
    if !base_ks_failing.is_empty() {
        eprintln!("note: upstream selftests failing on the unpatched kernel: {}", base_ks_failing.join(", "));
    }
    let mut rows = Vec::new();
    for m in selected {
        let mut mk = k.clone();
        mk.patches = vec![m.path.clone()];
        let (mut kernel, build_secs) = resolve_kernels_timed(&mk, &mut progress)?.remove(0);
        kernel.label = format!("{}+{}", base.label, m.name);
        progress.step("boot", &kernel.label);
        let run = harness::suite::run_kernel(&kernel, &opts, &names, &kselftests)?;
        let (failing, ks_failing) = mutants::failing(&run);
        // Upstream selftests that fail on the unpatched kernel too say nothing about the mutant.
        let kselftests_failing: Vec<String> = ks_failing.into_iter().filter(|k| !base_ks_failing.contains(k)).collect();
        let caught = failing.iter().any(|f| m.names(f));
        eprintln!("{}: {} (failing: {})", m.name, if caught { "caught" } else { "NOT CAUGHT" }, failing.join(", "));
        rows.push(mutants::Row { mutant: m, failing, kselftests_failing, caught, build_secs });
    }
    let table = mutants::table(&base_failing, &rows);
    println!("{table}");
    let out = project_root().join("target/ue-runs/mutants.md");
    std::fs::write(&out, &table)?;
    eprintln!("table written to {}", out.display());
    let ok = base_failing.is_empty() && rows.iter().all(|r| r.caught);
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn matrix_cmd(mut k: KernelArgs, mut r: RunArgs) -> anyhow::Result<ExitCode> {
    r.kselftest = true;
    if k.kernel_image.is_some() || k.kernel_tree.is_some() {
        bail!("matrix runs kernels of kernel-configs/kernels.toml; use `test` for a tree or an image");
    }
    host_tools::ensure(!k.no_install)?;
    let started = std::time::Instant::now();
    let mut progress = Progress::new();
    let guest_dir = guest::build(&project_root(), &mut progress)?;
    let names: Vec<String> =
        harness::suite::list_scenarios(&guest_dir)?.into_iter().filter(|s| r.stress || !s.optional).map(|s| s.name).collect();
    let kselftests: Vec<String> = harness::suite::KSELFTESTS.iter().map(|s| s.to_string()).collect();
    let mut opts = suite_options(&r, guest_dir);
    let list = KernelList::load(&configs_dir())?;
    let wanted: Vec<String> = list.select(Some(k.kernel.as_deref().unwrap_or("all")))?.into_iter().map(|(n, _)| n).collect();
    let mut runs = Vec::new();
    let mut accel_chosen = false;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let mut vms = std::collections::VecDeque::new();
        let mut finish = |vm: std::thread::ScopedJoinHandle<'_, anyhow::Result<harness::suite::KernelRun>>| -> anyhow::Result<()> {
            let run = vm.join().map_err(|_| anyhow::anyhow!("a VM thread panicked"))??;
            eprintln!("{}: done in {:.1} s, artifacts in {}", run.kernel.label, run.report.wall_ms as f64 / 1000.0, run.run_dir.display());
            runs.push(run);
            Ok(())
        };
        // Builds take both cores in turn; each finished kernel boots at once beside the next
        // build, with at most one VM per core.
        for name in &wanted {
            k.kernel = Some(name.clone());
            let (kernel, _) = resolve_kernels_timed(&k, &mut progress)?.remove(0);
            if !accel_chosen {
                choose_accel(&mut opts, &r, &k, &kernel, &mut progress)?;
                accel_chosen = true;
            }
            progress.step("boot", &format!("{} (beside the next build)", kernel.label));
            if vms.len() >= cores {
                finish(vms.pop_front().unwrap())?;
            }
            let (opts, names, kselftests) = (opts.clone(), names.clone(), kselftests.clone());
            vms.push_back(scope.spawn(move || harness::suite::run_kernel(&kernel, &opts, &names, &kselftests)));
        }
        while let Some(vm) = vms.pop_front() {
            finish(vm)?;
        }
        Ok(())
    })?;
    let md = harness::report::matrix_markdown(&runs);
    println!("{md}");
    let dir = project_root().join("target/ue-runs").join(format!("matrix-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("matrix.md"), format!("{md}\nwall time: {:.0} s\n", started.elapsed().as_secs_f64()))?;
    std::fs::write(dir.join("matrix.json"), serde_json::to_vec_pretty(&harness::report::matrix_json(&runs))?)?;
    for run in &runs {
        std::fs::write(dir.join(format!("junit-{}.xml", run.kernel.label)), harness::report::junit(run))?;
    }
    eprintln!("matrix wall time {:.0} s; table, JSON and JUnit XML in {}", started.elapsed().as_secs_f64(), dir.display());
    let failed = runs.iter().any(|r| r.verdicts.iter().any(|v| matches!(v.verdict, harness::verdict::Verdict::Fail(_))));
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn selftest_cmd(k: KernelArgs, r: RunArgs, libtest: Vec<String>) -> anyhow::Result<ExitCode> {
    use libtest_mimic::{Failed, Trial};
    let args = libtest_mimic::Arguments::from_iter(std::iter::once("cargo xtask selftest".to_owned()).chain(libtest));
    host_tools::ensure(!k.no_install)?;
    let mut progress = Progress::new();
    let guest_dir = guest::build(&project_root(), &mut progress)?;
    let mut opts = suite_options(&r, guest_dir);
    let (kernel, _) = resolve_kernels_timed(&k, &mut progress)?.remove(0);
    choose_accel(&mut opts, &r, &k, &kernel, &mut progress)?;
    let runs_dir = opts.runs_dir.clone();
    let mut trials: Vec<Trial> = selftest::CASES
        .iter()
        .map(|c| {
            let (kernel, opts, runs_dir, run) = (kernel.clone(), opts.clone(), runs_dir.clone(), c.run);
            Trial::test(c.name, move || {
                run(&kernel, &opts).map_err(|e| Failed::from(format!("{e:#}")))?;
                let left = selftest::leftover_qemus(&runs_dir);
                if !left.is_empty() {
                    return Err(format!("QEMU left running: {left:?}").into());
                }
                Ok(())
            })
        })
        .collect();
    let mut wk = k.clone();
    wk.patches = vec![configs_dir().join("selftest/warn-in-unreg.patch")];
    let (warn_kernel, _) = resolve_kernels_timed(&wk, &mut progress)?.remove(0);
    let warn_opts = opts.clone();
    trials.push(Trial::test("selftest::kernel_warning_fails_the_running_scenario", move || {
        selftest::warning_fails_the_running_scenario(&warn_kernel, &warn_opts).map_err(|e| Failed::from(format!("{e:#}")))
    }));
    let xtask = std::env::current_exe()?;
    trials.push(Trial::test("selftest::ctrl_c_leaves_nothing_running", move || {
        selftest::ctrl_c_leaves_nothing(&xtask, &runs_dir).map_err(|e| Failed::from(format!("{e:#}")))
    }));
    // One VM at a time: the cases measure time limits, and the machine is small.
    let mut args = args;
    args.test_threads = Some(1);
    Ok(libtest_mimic::run(&args, trials).exit_code())
}

/// For `--list`: the kernels' names only, nothing downloaded or built.
fn labels_only(a: &KernelArgs) -> anyhow::Result<Vec<KernelUnderTest>> {
    let stub = |label: String| KernelUnderTest {
        label,
        bzimage: PathBuf::new(),
        config: None,
        provenance: String::new(),
        kselftests: vec![],
    };
    if a.kernel_image.is_some() {
        return Ok(vec![stub("image".into())]);
    }
    if let Some(t) = &a.kernel_tree {
        return Ok(vec![stub(t.canonicalize()?.file_name().unwrap_or_default().to_string_lossy().into_owned())]);
    }
    let list = KernelList::load(&configs_dir())?;
    let variant = if a.debug { "-debug" } else { "" };
    let suffix = if a.patches.is_empty() { "" } else { "+patched" };
    Ok(list.select(a.kernel.as_deref())?.into_iter().map(|(n, _)| stub(format!("{n}{variant}{suffix}"))).collect())
}

/// The KVM probe boots a kernel, so its answer is kept per QEMU and host kernel.
fn cached_kvm_probe(cache: &Path, kernel: &KernelUnderTest, opts: &SuiteOptions) -> KvmProbe {
    let qemu = std::process::Command::new(&opts.qemu_binary)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_owned())
        .unwrap_or_default();
    let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let key = format!("{qemu} | {}", host.trim());
    let path = cache.join("kvm-probe.json");
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok((k, probe)) = serde_json::from_slice::<(String, KvmProbe)>(&bytes) {
            if k == key {
                return probe;
            }
        }
    }
    eprintln!("probing KVM with one boot (cached in {})", path.display());
    let probe = accel::probe_kvm(kernel, opts);
    let _ = std::fs::create_dir_all(cache);
    let _ = cache::write_atomic(&path, &serde_json::to_vec(&(key, &probe)).unwrap_or_default());
    probe
}

fn parse(console: Option<PathBuf>, results: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut trouble = false;
    if let Some(c) = console {
        let text = String::from_utf8_lossy(&std::fs::read(&c).with_context(|| format!("read {}", c.display()))?).into_owned();
        for t in harness::console::scan(&text) {
            trouble = true;
            println!("{:?}:\n    {}", t.kind, t.excerpt.join("\n    "));
        }
    }
    if let Some(r) = results {
        let bytes = std::fs::read(&r).with_context(|| format!("read {}", r.display()))?;
        for ev in result_channel_events(&bytes) {
            println!("{ev}");
        }
    }
    Ok(if trouble { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn result_channel_events(bytes: &[u8]) -> Vec<String> {
    harness::channel::parse_all(bytes).into_iter().map(|e| format!("{e:?}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_bzimage_is_refused_before_booting() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("vmlinux");
        std::fs::write(&img, vec![0u8; 4096]).unwrap();
        let e = format!("{:#}", ready_image(&img).unwrap_err());
        assert!(e.contains("is not an x86 bzImage"), "{e}");
    }

    #[test]
    fn a_bzimage_whose_config_lacks_user_events_is_refused() {
        // The layout of a build tree: <out>/arch/x86/boot/bzImage beside <out>/.config.
        let d = tempfile::tempdir().unwrap();
        let boot = d.path().join("arch/x86/boot");
        std::fs::create_dir_all(&boot).unwrap();
        let mut image = vec![0u8; 0x400];
        image[0x202..0x206].copy_from_slice(b"HdrS");
        std::fs::write(boot.join("bzImage"), &image).unwrap();
        std::fs::write(d.path().join(".config"), "CONFIG_FTRACE=y\n# CONFIG_USER_EVENTS is not set\n").unwrap();
        let e = format!("{:#}", ready_image(&boot.join("bzImage")).unwrap_err());
        assert!(e.contains("without CONFIG_USER_EVENTS"), "{e}");
        std::fs::write(d.path().join(".config"), "CONFIG_USER_EVENTS=y\n").unwrap();
        assert!(ready_image(&boot.join("bzImage")).is_ok());
    }

    #[test]
    fn a_folder_that_is_not_a_kernel_tree_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let e = source::check_kernel_tree(d.path()).unwrap_err().to_string();
        assert!(e.contains("is not a kernel source tree"), "{e}");
        for f in ["Makefile", "Kconfig"] {
            std::fs::write(d.path().join(f), "").unwrap();
        }
        std::fs::create_dir_all(d.path().join("kernel/trace")).unwrap();
        source::check_kernel_tree(d.path()).unwrap();
        std::fs::write(d.path().join(".config"), "").unwrap();
        let e = source::check_kernel_tree(d.path()).unwrap_err().to_string();
        assert!(e.contains("make mrproper"), "{e}");
    }

    #[test]
    fn too_little_disk_space_is_said_before_starting() {
        let e = cache::need_space(Path::new("/"), u64::MAX / 2, "extracting the kernel source").unwrap_err().to_string();
        assert!(e.contains("extracting the kernel source needs about") && e.contains("UE_CACHE_DIR"), "{e}");
    }

    /// The README's scenario table is kept by hand: every scenario must have its row.
    #[test]
    fn readme_lists_every_scenario() {
        let root = super::project_root();
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        let dir = root.join("guest-tests/src/scenarios");
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap();
            for name in text.split("name: \"").skip(1).map(|s| s.split('"').next().unwrap()) {
                if name.starts_with("selftest::") {
                    continue;
                }
                let short = name.split_once("::").map_or(name, |(_, s)| s);
                assert!(readme.contains(&format!("`{short}`")), "README.md has no row for {name}");
            }
        }
    }
}
