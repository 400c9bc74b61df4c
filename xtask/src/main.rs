//! `cargo xtask`: the project's commands. This file parses the command line and dispatches;
//! each command is a module of [`commands`] with its arguments and a `run`, and what they all
//! prepare (host tools, kernels, guest, accelerator) is a [`session::Session`].
//!
//! The pipeline's stages, in the order data flows: [`kernels`] (the list) → [`apt`]
//! (download) → [`source`] (extract, patch) → [`kconfig`] → [`kbuild`] (cached) and
//! [`kselftests`] → [`resolve`] (a bootable kernel) → [`guest`] (static binaries; [`guest_programs`]: other people's tests) → the
//! `harness` crate (initramfs, QEMU, results, verdicts, trials and reports).

mod apt;
mod args;
mod cache;
mod ccache;
mod children;
mod commands;
mod devloop_selftest;
mod exit;
mod guest;
mod guest_programs;
mod guest_selftest;
mod host_tools;
mod inventory;
mod kbuild;
mod kconfig;
mod kernels;
mod kselftests;
mod mutants;
mod mutation;
mod progress;
mod resolve;
mod selftest;
mod selftest_cache;
mod session;
mod snapshot;
mod source;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{
    bench, cache as cache_cmd, kernels as kernels_cmd, matrix, mutants as mutants_cmd, mutate,
    parse, report, selftest as selftest_cmd, test,
};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build user_events kernels, boot them in QEMU, check the remote-write ABI"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the kernel(s) and guest, boot, and report every guest scenario as a test.
    /// Arguments after `--` go to the test runner: a filter, --exact, --skip, --list, --format json.
    Test(test::TestArgs),
    /// Build (or find in the cache) the kernel and print the bzImage path.
    BuildKernel(args::KernelArgs),
    /// Build the static guest programs.
    BuildGuest,
    /// Install missing host tools and refresh the private package index.
    Setup(args::KernelArgs),
    /// The kernel list (`--json`: the names, for CI's job matrix).
    Kernels(kernels_cmd::KernelsArgs),
    /// Every kernel of the list (or --kernel's): builds one after another while the VMs of the
    /// kernels already built run beside them; ends with one table, also as Markdown, JSON and
    /// JUnit XML.
    Matrix(matrix::MatrixArgs),
    /// Prove every check can fail: build each kernel-configs/mutants/*.patch on the cached
    /// kernel, run the suite on it, and print which scenarios caught it.
    Mutants(mutants_cmd::MutantsArgs),
    /// The mutation score: mechanical mutants of the user_events source (universalmutator),
    /// pruned, each run with the suite and, apart, the upstream selftests; a report per function.
    Mutate(mutate::MutateArgs),
    /// The harness's own integration tests: boot broken guests and check what is reported.
    Selftest(selftest_cmd::SelftestArgs),
    /// Time the harness: boot floor, warm suite, no-op build, edit-and-rerun, recorded cold
    /// builds, the last matrix, and virtme-ng on the same kernel; a Markdown table and JSON.
    Bench(bench::BenchArgs),
    /// The cache's entries with their sizes; `cache gc` removes what is neither pinned nor
    /// recently used.
    Cache(cache_cmd::CacheArgs),
    /// Which way each host tool came; with --dpkg-log-since, fail on any removal or downgrade.
    HostTools(commands::host_tools::HostToolsArgs),
    /// Scan a saved console log for kernel trouble, and a saved result stream for records.
    Parse(parse::ParseArgs),
    /// The matrix table from kept runs' results.json (CI's summary job), booting nothing.
    Report(report::ReportArgs),
    /// Boot a kept run (a failed one, or one with --keep) again and report its trials;
    /// arguments after `--` filter them as for `test`.
    Rerun(commands::rerun::RerunArgs),
    /// Boot the kernel `test` would (same kernel options) with a shell on the console:
    /// tracefs mounted, `ue-scenarios --list` / `--run NAME`; `exit` powers the VM off.
    Shell(commands::shell::ShellArgs),
    /// Find the commit of a git kernel tree (--kernel-tree) that broke the selected trials:
    /// `git bisect run` with the harness (a build failure skips the commit); the tree's HEAD
    /// and bisect state are restored.
    Bisect(commands::bisect::BisectArgs),
    /// One step of `bisect` (what `git bisect run` calls); not for people.
    #[command(hide = true)]
    BisectStep(commands::bisect::BisectArgs),
}

extern "C" fn on_interrupt(_: libc::c_int) {
    harness::interrupt::set();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // SIGINT and SIGTERM set a flag: a boot stops cleanly (QEMU killed and reaped, socket
    // removed), and the children of the other stages are stopped by `children`' watcher.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_interrupt as *const () as libc::sighandler_t,
        );
    }
    children::start_watcher();
    let result = match cli.cmd {
        Cmd::Test(a) => test::run(a),
        Cmd::BuildKernel(a) => commands::build_kernel::run(a),
        Cmd::BuildGuest => commands::build_guest::run(),
        Cmd::Setup(a) => commands::setup::run(a),
        Cmd::Kernels(a) => kernels_cmd::run(a),
        Cmd::Matrix(a) => matrix::run(a),
        Cmd::Mutants(a) => mutants_cmd::run(a),
        Cmd::Mutate(a) => mutate::run(a),
        Cmd::Selftest(a) => selftest_cmd::run(a),
        Cmd::Bench(a) => bench::run(a),
        Cmd::Parse(a) => parse::run(a),
        Cmd::Report(a) => report::run(a),
        Cmd::Rerun(a) => commands::rerun::run(a),
        Cmd::Shell(a) => commands::shell::run(a),
        Cmd::Bisect(a) => commands::bisect::run(a),
        Cmd::BisectStep(a) => commands::bisect::step(a),
        Cmd::Cache(a) => cache_cmd::run(a),
        Cmd::HostTools(a) => commands::host_tools::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let interrupted = children::interrupted();
            if interrupted {
                eprintln!("interrupted: every child stopped ({e:#})");
            } else {
                eprintln!("error: {e:#}");
            }
            exit::error(interrupted)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Odd values on the command line end in a clap error or a clear message, never a panic.
    #[test]
    fn odd_command_lines_parse_or_are_refused_by_clap() {
        for argv in [
            &["xtask", "test", "--kernel", ","][..],
            &["xtask", "test", "--kernel", ""],
            &["xtask", "mutants", "--kernel", "all"],
            &["xtask", "selftest", "--kernel", "6.12,6.12"],
            &["xtask", "matrix", "--kernel", "all,all"],
            &["xtask", "test", "--features", ""],
            &[
                "xtask",
                "test",
                "--kernel-tree",
                "/t",
                "--patch",
                "p",
                "--kconfig",
                "CONFIG_X=y",
            ],
            &[
                "xtask",
                "test",
                "--append",
                "a=1",
                "--qemu-arg",
                "-device",
                "--cpus",
                "4",
            ],
            &["xtask", "test", "--memory", "1G", "--keep", "-v", "--gdb"],
            &["xtask", "rerun", "/r", "--", "fork"],
            &["xtask", "shell", "--kernel-tree", "/t"],
            &[
                "xtask",
                "bisect",
                "--good",
                "a",
                "--bad",
                "b",
                "--kernel-tree",
                "/t",
                "--",
                "x",
            ],
        ] {
            assert!(Cli::try_parse_from(argv).is_ok(), "{argv:?}");
        }
        for argv in [
            &["xtask", "test", "--scenario-timeout", "0"][..],
            &["xtask", "test", "--poll-deadline-ms", "-1"],
            &["xtask", "test", "--kernel", "6.12", "--kernel-tree", "/x"],
            &["xtask", "bench", "--runs", "x"],
            &["xtask", "test", "--memory", "lots"],
            &["xtask", "test", "--cpus", "0"],
            &["xtask", "bisect", "--good", "a"],
        ] {
            assert!(Cli::try_parse_from(argv).is_err(), "{argv:?}");
        }
    }
}
