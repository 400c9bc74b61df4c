//! `cargo xtask`: the project's commands. This file parses the command line and dispatches;
//! each command is a module of [`commands`] with its arguments and a `run`, and what they all
//! prepare (host tools, kernels, guest, accelerator) is a [`session::Session`].
//!
//! The folders follow the data: [`kernel`] (list → download → source → config → cached build →
//! a bootable kernel, see its stages there) with its [`cache`] → [`guest`] (static binaries;
//! [`guest::programs`]: other people's tests) → the `harness` crate (initramfs, QEMU, results,
//! verdicts, trials and reports). [`sys`] is how the host is used (processes, progress, host
//! tools); [`mutation`] and [`selftest`] prove the suite and the harness can fail.

mod args;
mod cache;
mod commands;
mod exit;
mod guest;
mod kernel;
mod mutation;
mod selftest;
mod session;
mod sys;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::sys::proc;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    // Usage lines as a person types them (`cargo xtask test`), not as the binary is named.
    bin_name = "cargo xtask",
    version = VERSION,
    about = "Build user_events kernels, boot them in QEMU, check the remote-write ABI",
    after_help = "Examples:\n  cargo xtask test                     the suite on the default kernel\n  cargo xtask test fork:: -- --list    the fork family's trials, building nothing\n  cargo xtask kernels                  the kernel list and what is cached"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the kernel(s) and guest, boot, and report every guest scenario as a test.
    /// FILTER picks trials as `cargo test FILTER` does; after `--`, the test runner's own
    /// options: --list, --exact, --skip, --format json, --nocapture, --show-output.
    #[command(
        after_help = "Examples:\n  cargo xtask test                         the suite on the default kernel\n  cargo xtask test fork:: --kernel all     one family on every kernel of the list\n  cargo xtask test --kernel-tree ~/linux -- --nocapture   your tree, each trial's notes"
    )]
    Test(commands::test::TestArgs),
    /// Build (or find in the cache) the kernel and print the bzImage path.
    BuildKernel(commands::build_kernel::BuildKernelArgs),
    /// Build the static guest programs.
    #[command(
        after_help = "Examples:\n  cargo xtask build-guest                  the static guest programs, into target/"
    )]
    BuildGuest,
    /// Install missing host tools and refresh the private package index.
    Setup(commands::setup::SetupArgs),
    /// The kernel list (`--json`: the names, for CI's job matrix).
    #[command(
        after_help = "Examples:\n  cargo xtask kernels                      the list: pinned, cached and newest versions\n  cargo xtask kernels --json               the names, for CI's job matrix"
    )]
    Kernels(commands::kernels::KernelsArgs),
    /// Every kernel of the list (or --kernel's): builds one after another while the VMs of the
    /// kernels already built run beside them; ends with one table, also as Markdown, JSON and
    /// JUnit XML.
    #[command(
        after_help = "Examples:\n  cargo xtask matrix                       every kernel of the list, one table\n  cargo xtask matrix --kernel 6.12,7.2     two of them"
    )]
    Matrix(commands::matrix::MatrixArgs),
    /// Prove every check can fail: build each kernel-configs/mutants/*.patch on the cached
    /// kernel, run the suite on it, and print which scenarios caught it.
    #[command(
        after_help = "Examples:\n  cargo xtask mutants                      every shipped mutant on the default kernel\n  cargo xtask mutants --only NAME          one mutant"
    )]
    Mutants(commands::mutants::MutantsArgs),
    /// The mutation score: mechanical mutants of the user_events source (universalmutator),
    /// pruned, each run with the suite and, apart, the upstream selftests; a report per function.
    #[command(
        after_help = "Examples:\n  cargo xtask mutate --sample 50           a sample of mechanical mutants\n  cargo xtask mutate --operators kernel    the kernel-shaped mutants\n  cargo xtask mutate --arch s390x --out DIR  DIR's x86-64 survivors, run again on s390x"
    )]
    Mutate(commands::mutate::MutateArgs),
    /// The harness's own integration tests: boot broken guests and check what is reported.
    #[command(
        after_help = "Examples:\n  cargo xtask selftest -- --list           the harness's own cases\n  cargo xtask selftest devloop::           one group of them"
    )]
    Selftest(commands::selftest::SelftestArgs),
    /// Time the harness: boot floor, warm suite, no-op build, edit-and-rerun, recorded cold
    /// builds, the last matrix, and virtme-ng on the same kernel; a Markdown table and JSON.
    #[command(
        after_help = "Examples:\n  cargo xtask bench                        the default rows\n  cargo xtask bench --only 8               one row"
    )]
    Bench(commands::bench::BenchArgs),
    /// The cache's entries with their sizes; `cache gc` removes what is neither pinned nor
    /// recently used.
    #[command(
        after_help = "Examples:\n  cargo xtask cache                        the cache's entries with sizes\n  cargo xtask cache gc                     remove what is neither pinned nor recently used"
    )]
    Cache(commands::cache::CacheArgs),
    /// Which way each host tool came; with --dpkg-log-since, fail on any removal or downgrade.
    #[command(
        after_help = "Examples:\n  cargo xtask host-tools                   which way each host tool came"
    )]
    HostTools(commands::host_tools::HostToolsArgs),
    /// Scan a saved console log for kernel trouble, and a saved result stream for records.
    #[command(
        after_help = "Examples:\n  cargo xtask parse --console target/ue-runs/latest-6.12/console.log"
    )]
    Parse(commands::parse::ParseArgs),
    /// The matrix table from kept runs' results.json (CI's summary job), booting nothing;
    /// with --baseline, only what changed against the baseline runs.
    #[command(
        after_help = "Examples:\n  cargo xtask report target/ue-runs/latest-*   the table of the last runs\n  cargo xtask report runs/ --markdown summary.md\n  cargo xtask report --baseline clean/ -- patched/   what changed: new failures by symptom"
    )]
    Report(commands::report::ReportArgs),
    /// The trials that failed in some runs and passed in others on one kernel, by flake
    /// rate, over the last runs of `test`, `matrix` and `rerun` (the cache's history), with
    /// the host's load when they failed.
    #[command(
        after_help = "Examples:\n  cargo xtask flakes                       the flaky trials of the last 50 runs\n  cargo xtask flakes --last 200 --json     over more runs, for scripts"
    )]
    Flakes(commands::flakes::FlakesArgs),
    /// Boot a kept run (a failed one, or one with --keep) again and report its trials;
    /// FILTER and the runner's options after `--` pick them as for `test`.
    #[command(
        after_help = "Examples:\n  cargo xtask rerun target/ue-runs/latest-6.12            the kept run again\n  cargo xtask rerun target/ue-runs/latest-6.12 fork::     one family of it"
    )]
    Rerun(commands::rerun::RerunArgs),
    /// Boot the kernel `test` would (same kernel options) with a shell on the console:
    /// tracefs mounted, `ue-scenarios --list` / `--run NAME` (`--json`: the record); `exit`
    /// powers the VM off.
    #[command(
        after_help = "Examples:\n  cargo xtask shell                        the default kernel, a shell on its console\n  cargo xtask shell --kernel-tree ~/linux  your tree's kernel"
    )]
    Shell(commands::shell::ShellArgs),
    /// Find the commit of a git kernel tree (--kernel-tree) that broke the selected trials:
    /// `git bisect run` with the harness (a build failure skips the commit), then a check of
    /// the answer (its parent passes, the bad commit with it reverted passes); the tree's HEAD
    /// and bisect state are restored.
    #[command(
        after_help = "Examples:\n  cargo xtask bisect --kernel-tree ~/linux --good v6.12 --bad HEAD fork::\n  cargo xtask bisect --kernel-tree ~/linux --good v6.12 --bad HEAD --runs 3 --bad-at 1 fork::\n                                 a failure that shows now and then: bad at its first failure,\n                                 good only after three passes\n\nExit status: 0 a commit was named and verified (or its revert does not apply, as said),\n101 named but not verified, 2 none named (bad input, a harness failure, only skipped\ncommits left)."
    )]
    Bisect(commands::bisect::BisectArgs),
    /// One step of `bisect` (what `git bisect run` calls); not for people.
    #[command(hide = true)]
    BisectStep(commands::bisect::BisectArgs),
}

/// The project's version and the commit it was built from (build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("UE_GIT_REV"), ")");

/// The test runner's own flags: given before `--`, clap would suggest a look-alike of ours
/// (`--nocapture` → `--features`); they belong after `--`, as with `cargo test`.
const LIBTEST_FLAGS: &[&str] = &[
    "--nocapture",
    "--show-output",
    "--list",
    "--exact",
    "--skip",
    "--format",
    "--ignored",
    "--include-ignored",
    "--test-threads",
    "--quiet",
];

/// clap's usage error, except that a test runner's flag given before `--` is told where it
/// goes instead of being matched to one of ours.
fn exit_on_usage_error(e: clap::Error) -> ! {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() == ErrorKind::UnknownArgument {
        if let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) {
            let flag = arg.split('=').next().unwrap_or(arg);
            if LIBTEST_FLAGS.contains(&flag) {
                let cmd = std::env::args()
                    .skip(1)
                    .find(|a| !a.starts_with('-'))
                    .unwrap_or_else(|| "test".into());
                eprintln!(
                    "error: {flag} is the test runner's: put it after `--`, as with cargo test (cargo xtask {cmd} -- {arg})"
                );
                std::process::exit(exit::HARNESS_ERROR.into());
            }
        }
    }
    e.exit()
}

extern "C" fn on_interrupt(_: libc::c_int) {
    harness::interrupt::set();
}

fn main() -> ExitCode {
    let cli = Cli::try_parse().unwrap_or_else(|e| exit_on_usage_error(e));
    // SIGINT and SIGTERM set a flag: a boot stops cleanly (QEMU killed and reaped, socket
    // removed), and the children of the other stages are stopped by `sys::proc`' watcher.
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
    proc::start_watcher();
    let result = match cli.cmd {
        Cmd::Test(a) => commands::test::run(a),
        Cmd::BuildKernel(a) => commands::build_kernel::run(a),
        Cmd::BuildGuest => commands::build_guest::run(),
        Cmd::Setup(a) => commands::setup::run(a),
        Cmd::Kernels(a) => commands::kernels::run(a),
        Cmd::Matrix(a) => commands::matrix::run(a),
        Cmd::Mutants(a) => commands::mutants::run(a),
        Cmd::Mutate(a) => commands::mutate::run(a),
        Cmd::Selftest(a) => commands::selftest::run(a),
        Cmd::Bench(a) => commands::bench::run(a),
        Cmd::Parse(a) => commands::parse::run(a),
        Cmd::Report(a) => commands::report::run(a),
        Cmd::Flakes(a) => commands::flakes::run(a),
        Cmd::Rerun(a) => commands::rerun::run(a),
        Cmd::Shell(a) => commands::shell::run(a),
        Cmd::Bisect(a) => commands::bisect::run(a),
        Cmd::BisectStep(a) => commands::bisect::step(a),
        Cmd::Cache(a) => commands::cache::run(a),
        Cmd::HostTools(a) => commands::host_tools::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let interrupted = proc::interrupted();
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

    /// The README's command lines: those of its `sh` blocks, and the `cargo xtask ...` in its
    /// text, placeholders (RUN_DIR, REV, `[FILTER]`) filled in.
    fn readme_examples() -> Vec<String> {
        let readme = std::fs::read_to_string(session::project_root().join("README.md")).unwrap();
        let mut out = Vec::new();
        let mut in_sh = false;
        for line in readme.lines() {
            if line.starts_with("```") {
                in_sh = line == "```sh";
                continue;
            }
            if in_sh {
                let code = line.split(" #").next().unwrap_or(line);
                if let Some(at) = code.find("cargo xtask ") {
                    out.push(code[at..].trim().to_owned());
                }
                continue;
            }
            for span in line.split('`').skip(1).step_by(2) {
                // A span wrapped over two lines leaves a bare `cargo xtask`: not an example.
                if span.starts_with("cargo xtask ") {
                    out.push(span.to_owned());
                }
            }
        }
        out
    }

    /// Turns an example into argv: placeholders (REV, RUN_DIR, `[FILTER]`) filled in.
    fn example_argv(ex: &str) -> Vec<String> {
        ex.split_whitespace()
            .skip(2)
            .filter(|w| *w != "[" && *w != "]")
            .map(|w| w.trim_matches(|c| c == '[' || c == ']'))
            .map(|w| {
                if w.chars().any(|c| c.is_ascii_uppercase())
                    && w.chars()
                        .all(|c| c.is_ascii_uppercase() || c == '_' || c == '.')
                {
                    "x".to_owned()
                } else {
                    w.to_owned()
                }
            })
            .collect()
    }

    /// Every example of every command's help parses: a help that teaches a command line
    /// that is refused would teach the wrong thing.
    #[test]
    fn every_help_example_parses() {
        use clap::CommandFactory as _;
        let cli = Cli::command();
        let mut seen = 0;
        for cmd in std::iter::once(&cli).chain(cli.get_subcommands()) {
            let Some(after) = cmd.get_after_help() else {
                assert!(cmd.is_hide_set(), "{} has no examples", cmd.get_name());
                continue;
            };
            for line in after.to_string().lines() {
                let Some(ex) = line.trim_start().strip_prefix("cargo xtask ") else {
                    continue;
                };
                // The comment follows two spaces.
                let ex = format!("cargo xtask {}", ex.split("  ").next().unwrap());
                let argv = example_argv(&ex);
                let r = Cli::try_parse_from(std::iter::once("xtask".to_owned()).chain(argv));
                assert!(
                    r.is_ok(),
                    "help of {}: `{ex}`: {}",
                    cmd.get_name(),
                    r.err().unwrap()
                );
                seen += 1;
            }
        }
        assert!(seen > 25, "{seen} examples");
    }

    /// Every command line the README shows parses, each option it names accepted by its
    /// command (a renamed flag or a filter before a flag that takes none would fail here).
    #[test]
    fn every_readme_example_parses() {
        let examples = readme_examples();
        assert!(examples.len() > 20, "{examples:?}");
        for ex in &examples {
            let argv = example_argv(ex);
            let r = Cli::try_parse_from(std::iter::once("xtask".to_owned()).chain(argv));
            assert!(
                r.is_ok(),
                "README: `{ex}` does not parse: {}",
                r.err().unwrap()
            );
        }
        // The README's filter examples are cargo's: a family given before `--`.
        assert!(
            examples.iter().any(|e| e == "cargo xtask test fork::"),
            "{examples:?}"
        );
        assert!(
            !examples.iter().any(|e| e.ends_with("-- fork")),
            "{examples:?}"
        );
    }

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
