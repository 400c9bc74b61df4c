//! The arguments several commands share: which kernel, and how to run the suite on it.

use std::path::PathBuf;

use clap::Args;

/// Options a command takes with a shared group but has no use for: hidden from its help
/// (`#[command(mut_arg(NAME, |a| a.hide(true)))]`) and, when given, refused with one line, so
/// that no flag is silently ignored. `given` pairs each flag with whether it was given.
pub fn refuse_unused(command: &str, given: &[(&str, bool)]) -> anyhow::Result<()> {
    let named: Vec<&str> = given.iter().filter(|(_, g)| *g).map(|(f, _)| *f).collect();
    if !named.is_empty() {
        anyhow::bail!(
            "{} does nothing in `cargo xtask {command}`: leave it out",
            named.join(", ")
        );
    }
    Ok(())
}

/// `--kernel`'s help, naming the list's default kernel (read from kernels.toml when help is
/// shown, so it cannot go stale).
fn kernel_help() -> String {
    let default = crate::kernel::list::KernelList::load(
        &crate::session::project_root().join("kernel-configs"),
    )
    .map_or_else(|_| "the list's `default`".to_owned(), |l| l.default);
    format!("Kernel(s) from kernel-configs/kernels.toml: a name, a comma list, or `all` (default: {default})")
}

/// A whole number from `LO` to `HI`, as a value parser. "-1" gets this message instead of
/// clap's tip to write `-- -1` (which would make it a test filter), and 0 where it would
/// silently mean "the default" is refused.
pub fn number_in<T: TryFrom<u64>, const LO: u64, const HI: u64>(s: &str) -> Result<T, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number from {LO} to {HI}"))?;
    if !(LO..=HI).contains(&n) {
        return Err(format!(
            "{n} is out of range: a whole number from {LO} to {HI}"
        ));
    }
    T::try_from(n).map_err(|_| format!("{n} is too large"))
}
use harness::accel::AccelChoice;

#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Kernel")]
pub struct KernelArgs {
    #[arg(long, help = kernel_help())]
    pub kernel: Option<String>,
    /// Build this kernel source tree, in whatever state (configured or built in place, a git
    /// worktree): from a snapshot of its sources in the cache; the tree is never written to.
    #[arg(long, conflicts_with_all = ["kernel", "kernel_image"])]
    pub kernel_tree: Option<PathBuf>,
    /// Boot this ready bzImage, skipping the build (so nothing that changes a build goes
    /// with it: --patch, --debug, --kconfig, --ccache, --fixes).
    #[arg(long, conflicts_with_all = ["kernel", "patches", "debug", "kconfig", "ccache"])]
    pub kernel_image: Option<PathBuf>,
    /// A patch to apply on a copy of the pristine source, or on the snapshot of --kernel-tree
    /// (repeatable, in order).
    #[arg(long = "patch")]
    pub patches: Vec<PathBuf>,
    /// What the kernel must have, overriding kernels.toml or what is derived from a tree or
    /// image: a comma list of remote_write, status_page, reg_persist, reg_multi_format, madvise,
    /// failslab, secretmem, userfaultfd.
    #[arg(long, value_delimiter = ',')]
    pub features: Option<Vec<String>>,
    /// Cache directory (default $UE_CACHE_DIR or ~/.cache/ue-harness).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// How many scenarios run side by side in the guest (default: the guest's vCPUs, --cpus).
    /// `--jobs 1` runs them one at a time, for debugging.
    #[arg(help_heading = "Run", long, allow_negative_numbers = true, value_parser = number_in::<usize, 1, 1024>)]
    pub jobs: Option<usize>,
    /// Parallel make jobs for a kernel build (default: the host's CPUs). Separate from
    /// `--jobs`, so that debugging one scenario at a time never makes a build serial.
    #[arg(long, allow_negative_numbers = true, value_parser = number_in::<usize, 1, 1024>)]
    pub build_jobs: Option<usize>,
    /// Do not install missing host tools; print the command instead.
    #[arg(long)]
    pub no_install: bool,
    /// Compile kernels through ccache, its store in the cache (`<cache>/ccache`, at most 5 GB):
    /// a later cold build of the same sources (another --kconfig, a fragment edit) reuses the
    /// objects. Off by default: it pays only for such a second build (docs/performance.md).
    #[arg(long)]
    pub ccache: bool,
    /// Apply the proposed fixes of the kernel's known bugs (kernels.toml `known_bugs`, files in
    /// kernel-configs/fixes/) on top of its own patches; their scenarios must then pass.
    /// Trials are named `<kernel>+fixes::...`.
    #[arg(long, conflicts_with_all = ["kernel_tree", "kernel_image"])]
    pub fixes: bool,
    /// Run the upstream selftests of this kernel of the list (built from its tree) against the
    /// kernel under test, instead of the kernel's own tree's (implies --kselftest). `matrix`
    /// uses the newest kernel of the list with the same ABI generation unless this is given.
    #[arg(long, value_name = "KERNEL")]
    pub kselftest_from: Option<String>,
    /// The debug variant: add kernel-configs/debug.config (KASAN, KFENCE, DEBUG_VM, lockdep,
    /// atomic-sleep checks); trials are named `<kernel>-debug::...`.
    #[arg(long)]
    pub debug: bool,
    /// A Kconfig option on top of the fragments, `CONFIG_X=y` (repeatable); checked after
    /// olddefconfig like the fragments, and part of the build's cache key.
    #[arg(long = "kconfig", value_name = "CONFIG_X=VALUE")]
    pub kconfig: Vec<String>,
    /// The debug-info variant (kernel-configs/gdb.config, cached like --debug; trials are
    /// named `<kernel>-gdb::...`), and QEMU waits for a debugger (-gdb, -S): the gdb command
    /// line with the matching vmlinux is printed.
    #[arg(long)]
    pub gdb: bool,
    /// The local port QEMU's gdb stub listens on with --gdb.
    #[arg(help_heading = "VM", long, default_value_t = 1234, requires = "gdb", allow_negative_numbers = true, value_parser = number_in::<u16, 1, 65535>)]
    pub gdb_port: u16,
    /// The architectures to build and boot each kernel for: x86_64 (the default), s390x,
    /// arm64; a comma list or repeated. s390x and arm64 are cross-built (Debian's cross gcc),
    /// booted under TCG and run the C guest programs; trials `<kernel>-<arch>::...`.
    /// kernels.toml says which kernels build for which architectures.
    #[arg(long = "arch", value_name = "ARCH", value_delimiter = ',')]
    pub arch: Vec<String>,
}

impl KernelArgs {
    /// `--arch`, read: each architecture once, x86-64 when none is named.
    pub fn arches(&self) -> anyhow::Result<Vec<harness::arch::Arch>> {
        harness::arch::parse_list(&self.arch).map_err(|e| anyhow::anyhow!("--arch: {e}"))
    }

    /// Whether any kernel is for a foreign architecture (a C guest, cross tools).
    pub fn foreign_arches(&self) -> anyhow::Result<Vec<harness::arch::Arch>> {
        Ok(self
            .arches()?
            .into_iter()
            .filter(|a| !a.is_native())
            .collect())
    }
}

#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Run")]
pub struct RunArgs {
    /// kvm, tcg or auto (auto probes KVM once and falls back to TCG, saying why).
    #[arg(help_heading = "VM", long, default_value = "auto")]
    pub accel: AccelChoice,
    /// Ask KVM again instead of trusting the cached probe (kept while QEMU, the host kernel
    /// and /dev/kvm stay the same), with --accel auto or kvm.
    #[arg(help_heading = "VM", long)]
    pub reprobe: bool,
    /// Per-scenario limit in seconds at KVM speed (scaled for TCG).
    #[arg(help_heading = "Run", long, default_value_t = 5, allow_negative_numbers = true, value_parser = number_in::<u64, 1, 3600>)]
    pub scenario_timeout: u64,
    /// How long a scenario polls for an asynchronous update, in ms at KVM speed.
    #[arg(help_heading = "Run", long, default_value_t = 500, allow_negative_numbers = true, value_parser = number_in::<u64, 1, 600_000>)]
    pub poll_deadline_ms: u64,
    /// Boot limit in seconds at KVM speed (scaled for TCG).
    #[arg(help_heading = "VM", long, default_value_t = 10, allow_negative_numbers = true, value_parser = number_in::<u64, 1, 3600>)]
    pub boot_timeout: u64,
    /// A scenario's process in uninterruptible sleep (state D) this long, in ms at KVM speed
    /// (scaled for TCG), is hung in the kernel: it fails with its kernel stack and the run
    /// goes on without it. 0 turns the watch off.
    #[arg(help_heading = "Run", long, default_value_t = 750, allow_negative_numbers = true, value_parser = number_in::<u64, 0, 3_600_000>)]
    pub hang_limit_ms: u64,
    /// Also run the stress family (bounded-time hammering of the asynchronous paths).
    #[arg(help_heading = "Run", long)]
    pub stress: bool,
    /// Also run the kernel tree's own user_events selftests in the same boot, as
    /// `kselftest::<program>::<test>` trials (always on in `matrix` and `mutants`).
    #[arg(help_heading = "Run", long)]
    pub kselftest: bool,
    /// A kernel argument after the harness's own (repeatable), e.g. --append trace_buf_size=1M.
    #[arg(
        help_heading = "VM",
        long = "append",
        value_name = "ARG",
        allow_hyphen_values = true
    )]
    pub append: Vec<String>,
    /// A QEMU argument after the harness's own (repeatable; give an option and its value as
    /// two: --qemu-arg -device --qemu-arg virtio-rng-pci).
    #[arg(
        help_heading = "VM",
        long = "qemu-arg",
        value_name = "ARG",
        allow_hyphen_values = true
    )]
    pub qemu_args: Vec<String>,
    /// Virtual CPUs (default: as many as the host has cores, at most 8: under TCG each one
    /// is a host thread, and more than the cores only makes them take turns).
    #[arg(help_heading = "VM", long, allow_negative_numbers = true, value_parser = number_in::<u32, 1, 64>)]
    pub cpus: Option<u32>,
    /// Guest memory: MiB, or with an M or G suffix.
    #[arg(help_heading = "VM", long, default_value = "512", allow_negative_numbers = true, value_parser = harness::qemu::parse_memory_mib)]
    pub memory: u32,
    /// Keep the kernel, initramfs and a pasteable QEMU command line in the run folder (a run
    /// with a failure keeps them anyway); `cargo xtask rerun RUN_DIR` boots it again.
    #[arg(help_heading = "Output", long)]
    pub keep: bool,
    /// Stream the kernel console to stderr while the VM runs.
    #[arg(help_heading = "Output", short = 'v', long = "console")]
    pub console: bool,
    /// Fresh VMs to boot per kernel after a VM dies mid-run (panic, unkillable hang,
    /// silence), each running the scenarios the dead one never started.
    #[arg(help_heading = "VM", long, default_value_t = 3, allow_negative_numbers = true, value_parser = number_in::<u32, 0, 100>)]
    pub max_restarts: u32,
}

impl RunArgs {
    /// What clap cannot say of these options: a probe asked for where none is made.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.reprobe && self.accel == AccelChoice::Tcg {
            anyhow::bail!("--reprobe with --accel tcg: TCG needs no probe; --reprobe goes with --accel auto or kvm");
        }
        Ok(())
    }

    /// `--cpus`, or the host's cores up to [`DEFAULT_CPUS_MAX`].
    pub fn guest_cpus(&self) -> u32 {
        self.cpus.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(2, |n| n.get() as u32)
                .min(DEFAULT_CPUS_MAX)
        })
    }
}

/// The most vCPUs a guest gets without `--cpus`.
pub const DEFAULT_CPUS_MAX: u32 = 8;

impl Default for RunArgs {
    fn default() -> Self {
        RunArgs {
            accel: AccelChoice::Auto,
            reprobe: false,
            scenario_timeout: 5,
            poll_deadline_ms: 500,
            boot_timeout: 10,
            hang_limit_ms: 750,
            stress: false,
            kselftest: false,
            append: vec![],
            qemu_args: vec![],
            cpus: None,
            memory: 512,
            keep: false,
            console: false,
            max_restarts: 3,
        }
    }
}

/// `--retries` and `--flaky-fails`, for the commands that report trials of the suite (`test`,
/// `matrix`), each with its own default number of retries.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Retries")]
pub struct RetryArgs {
    /// Run a failed trial again, up to N times, each time in a fresh VM with the same kernel:
    /// one that then passes is FLAKY, one that fails every time is FAILED. A known kernel bug
    /// is never run again. Default: 0 in `test`, 1 in `matrix`.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = number_in::<u32, 0, 20>)]
    pub retries: Option<u32>,
    /// A FLAKY trial fails the run (by default it is reported, and the run passes).
    #[arg(long)]
    pub flaky_fails: bool,
}

impl RetryArgs {
    /// Sets the suite's retries (`default` when `--retries` is not given) and whether a
    /// flaky trial fails the run. Returns a note for the person when `--flaky-fails` can do
    /// nothing: with no retries no trial runs twice, so none can be flaky.
    pub fn apply(&self, opts: &mut harness::model::SuiteOptions, default: u32) -> Option<String> {
        opts.retries = self.retries.unwrap_or(default);
        opts.flaky_fails = self.flaky_fails;
        (self.flaky_fails && opts.retries == 0).then(|| {
            "--flaky-fails without retries does nothing: no trial runs twice, so none can be flaky (add --retries N)".to_owned()
        })
    }
}

/// Other people's tests in the guest: trials `<kernel>::guest::<program>::<test>`.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Guest tests")]
pub struct GuestTestArgs {
    /// A static x86-64 test program to run in the guest after the scenarios (repeatable): a
    /// `cargo test --no-run` executable built with crt-static, a C or kselftest-style program.
    /// Its libtest results, KTAP/TAP output, or else exit status become the trials.
    #[arg(long = "guest-test", value_name = "PATH")]
    pub guest_tests: Vec<PathBuf>,
    /// Build this crate's tests statically for the guest (`cargo test --no-run`, target
    /// x86_64-unknown-linux-gnu, crt-static) and run each test executable as --guest-test.
    #[arg(long, value_name = "DIR")]
    pub guest_crate: Option<PathBuf>,
    /// Build the compat32 program (guest-tests/c/compat32.c: user_events from a static
    /// 32-bit process, which needs IA32 emulation in the kernel) and run it as a guest test:
    /// trials `guest::compat32::<check>`. Its 32-bit libraries are fetched into the cache.
    #[arg(long)]
    pub compat32: bool,
    /// The --guest-test programs provoke user_events' "Fault for mm" warning on purpose (an
    /// enable word unmapped when the event changes, as guest-tests/c/abi_core.c does): that
    /// warning does not fail them, any other kernel trouble still does.
    #[arg(long)]
    pub guest_fault_warnings: bool,
    /// An argument for every guest test program (repeatable, in order); a libtest program
    /// gets it after `--exact NAME`.
    #[arg(
        long = "guest-test-arg",
        value_name = "ARG",
        allow_hyphen_values = true
    )]
    pub guest_test_args: Vec<String>,
    /// An environment variable for the guest test programs, NAME=VALUE (repeatable).
    #[arg(long = "guest-env", value_name = "NAME=VALUE")]
    pub guest_env: Vec<String>,
    /// The limit, in seconds at KVM speed (scaled for TCG), of each libtest test's process,
    /// or of a whole program of another kind: past it, it is killed and fails as a hang.
    #[arg(long, default_value_t = 30, allow_negative_numbers = true, value_parser = number_in::<u64, 1, 3600>)]
    pub guest_test_timeout: u64,
    /// A C source to build statically for each architecture of `--arch` (the host's gcc for
    /// x86_64, the cross gcc for the others) and run in its guest (repeatable): its KTAP
    /// output becomes the trials `<kernel>[-<arch>]::guest::<NAME>::...`, beside
    /// guest-tests/c/abi_core.c's on the foreign architectures.
    #[arg(long = "guest-c", value_name = "FILE.c")]
    pub guest_c: Vec<PathBuf>,
}

impl GuestTestArgs {
    pub fn any(&self) -> bool {
        !self.guest_tests.is_empty() || self.guest_crate.is_some() || self.compat32
    }
}

/// Which trials run, as `cargo test` has it: a filter before `--`, and the test runner's own
/// options after it.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Trials")]
pub struct FilterArgs {
    /// Run only the trials whose name contains FILTER, as `cargo test FILTER` does:
    /// `fork::` is the fork family, `6.12::` one kernel; `fork` alone also matches names
    /// with "fork" elsewhere (shared::fork_both_see_changes).
    #[arg(value_name = "FILTER")]
    pub filter: Option<String>,
    /// The test runner's own options (libtest's): --exact, --skip PATTERN, --list,
    /// --format json, --nocapture (a trial's notes as it ends), --show-output (after the
    /// summary), --ignored.
    #[arg(last = true, value_name = "TEST_RUNNER_ARGS")]
    pub libtest: Vec<String>,
}

impl FilterArgs {
    /// libtest's arguments, the filter before `--` among them; a filter given both before and
    /// after `--` is refused rather than one of them dropped.
    pub fn libtest_args(&self, command: &str) -> anyhow::Result<libtest_mimic::Arguments> {
        use clap::Parser as _;
        let argv = std::iter::once(format!("cargo xtask {command} --")).chain(self.libtest.clone());
        let mut args = match libtest_mimic::Arguments::try_parse_from(argv) {
            Ok(a) => a,
            Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => e.exit(),
            Err(e) => {
                let first = e.to_string();
                let first = first
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ");
                anyhow::bail!(
                    "the test runner's arguments after `--`: {first} (see `cargo xtask {command} -- --help`)"
                );
            }
        };
        if let Some(f) = &self.filter {
            if let Some(after) = &args.filter {
                anyhow::bail!(
                    "two filters: {f:?} before `--` and {after:?} after it; give one (cargo xtask {command} {f})"
                );
            }
            args.filter = Some(f.clone());
        }
        Ok(args)
    }
}
