//! `cargo xtask mutate`: the mutation score nobody chose. Mechanical mutants of the
//! user_events source (universalmutator), pruned, each run on the cached kernel with the suite
//! (stopping at its first failure) and, counted apart, the upstream selftests; a report per
//! function, in Markdown and JSON. Shards of one seeded sample run as separate jobs and
//! `--merge` puts their reports together. `--arch` runs a report's survivors on another
//! architecture ([`elsewhere`]).

mod elsewhere;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::Args;
use harness::model::{KernelRun, KernelUnderTest, Origin, Verdict};
use harness::run::Selection;
use harness::vm::VmEnd;

use crate::args::{KernelArgs, RunArgs};
use crate::mutation::mechanical::{
    self, Build, Choice, JudgedList, MutantResult, MutantSpec, Outcome, Report, SampleKind,
    Training, Upstream,
};
use crate::mutation::upstream;
use crate::session::Session;
use crate::sys::progress::Step;

/// Each upstream program's limit in a mutation run, at KVM speed (scaled like every limit).
const MUTANT_KSELFTEST_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Args)]
// Mutants are judged by the default scenarios: the stress family is not run.
// No VM waits for a debugger here either.
#[command(mut_arg("stress", |a| a.hide(true)), mut_arg("gdb_port", |a| a.hide(true)))]
pub struct MutateArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Only mutants of lines in these functions (a comma list; `key` stands for the key
    /// functions, which the report scores apart).
    #[arg(long, value_delimiter = ',')]
    pub function: Vec<String>,
    /// Run a sample of this many mutants, drawn with --seed.
    #[arg(long, allow_negative_numbers = true, value_parser = crate::args::number_in::<usize, 1, 1_000_000>)]
    pub sample: Option<usize>,
    /// The sample's seed: the same seed draws the same mutants on every machine.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true, value_parser = crate::args::number_in::<u64, 0, { u64::MAX }>)]
    pub seed: u64,
    /// Run only shard I of N of the chosen mutants (I/N, from 1), for CI jobs side by side.
    #[arg(long, value_parser = mechanical::parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Print the chosen mutants and stop.
    #[arg(long)]
    pub list: bool,
    /// Merge these mutate.json reports (shards of one run) instead of running mutants.
    #[arg(long, num_args = 1..)]
    pub merge: Vec<PathBuf>,
    /// Where the report goes (default: <target>/ue-runs/mutate-<time>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep the results already in --out's mutate.json (same source, tool and seed, and the
    /// same or a smaller sample) and run only the mutants it lacks: an interrupted run goes on
    /// where it stopped, and a sample that came out too small grows (a seed's larger sample
    /// begins with its smaller one's draws).
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// Which mutants: universalmutator's token rules (`universal`), the kernel-regression
    /// operators (`kernel`: flag tests, masks, counters, list and reference operations,
    /// releases, copy sizes, swallowed errors), or both (`all`). A seed draws from the chosen
    /// set, so a seed's sample is the same only with the same --operators.
    #[arg(long, value_enum, default_value_t = Operators::Universal)]
    pub operators: Operators,
    /// With --resume: run the survivors again too (after new scenarios were added).
    #[arg(long, requires = "resume")]
    pub rerun_survivors: bool,
    /// Boot the unmutated kernel this many times before the mutants: a scenario that fails in
    /// any of them is left out, and an upstream test counts only if it passed in all of them
    /// (some of them fail now and then on an unmutated kernel, and would read as kills).
    #[arg(long, default_value_t = 3, allow_negative_numbers = true, value_parser = crate::args::number_in::<u32, 1, 20>)]
    pub baseline_runs: u32,
    /// Run the suite only, not the upstream selftests beside it (the report's upstream column
    /// reads "not run"). Each booted mutant is a few seconds shorter under TCG: for a run of
    /// every mutant of a set, where this suite's own figure is what is asked.
    #[arg(long, conflicts_with = "kselftest_from")]
    pub no_upstream: bool,
    /// Build the next mutant in a second mutation tree, at the lowest CPU priority, while the
    /// current one runs in QEMU. Under TCG a booted mutant leaves one of two cores mostly
    /// idle, and the build is a third or more of a killed mutant's time, so a long run (every
    /// mutant of a set) ends sooner. The guest then shares the machine with a nice-19
    /// compiler: samples whose figure is compared with earlier ones run without it.
    #[arg(long)]
    pub build_ahead: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Operators {
    Universal,
    Kernel,
    All,
}

impl Operators {
    /// As `--operators` spells it, and training.toml records it.
    fn name(self) -> &'static str {
        match self {
            Operators::Universal => "universal",
            Operators::Kernel => "kernel",
            Operators::All => "all",
        }
    }

    /// How the report names the generator (shards of one run must agree).
    fn tool(self) -> String {
        let um = format!("universalmutator {}", mechanical::TOOL_VERSION);
        match self {
            Operators::Universal => um,
            Operators::Kernel => "kernel operators".to_owned(),
            Operators::All => format!("{um} + kernel operators"),
        }
    }
}

fn write(report: &Report, dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    crate::cache::write_atomic(
        &dir.join("mutate.json"),
        &serde_json::to_vec_pretty(report)?,
    )?;
    std::fs::write(dir.join("mutate.md"), report.markdown())
        .with_context(|| format!("write {}", dir.join("mutate.md").display()))?;
    Ok(())
}

pub fn run(a: MutateArgs) -> anyhow::Result<ExitCode> {
    crate::args::refuse_unused(
        "mutate",
        &[
            ("--stress", a.run.stress),
            ("--gdb-port", a.kernel.gdb_port != 1234),
        ],
    )?;
    let arches = a.kernel.arches()?;
    match arches.as_slice() {
        [one] if one.is_native() => {}
        [other] => return elsewhere::run(&a, *other),
        _ => bail!(
            "`cargo xtask mutate` runs on one architecture; --arch names {}: pick one",
            a.kernel.arch.join(",")
        ),
    }
    let mut s = Session::for_kernels(&a.kernel);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let dir = a
        .out
        .clone()
        .unwrap_or_else(|| s.runs_dir().join(format!("mutate-{stamp}")));
    if !a.merge.is_empty() {
        return merge(&a.merge, &dir);
    }
    if !a.kernel.patches.is_empty()
        || a.kernel.kernel_image.is_some()
        || a.kernel.kernel_tree.is_some()
    {
        bail!("mutate mutates a packaged kernel's source: use --kernel, not --patch, --kernel-image or --kernel-tree");
    }
    // The tree's own selftests are those of its release, and on 6.12 nine of them fail on the
    // unmutated kernel: as `matrix` does, the upstream side runs the selftests of the newest
    // kernel of the list with the same ABI generation, so that it is compared at its best.
    let k = &KernelArgs {
        kselftest_from: a.kernel.kselftest_from.clone().or_else(|| {
            if a.no_upstream {
                return None;
            }
            let list = s.kernel_list().ok()?;
            let name = a
                .kernel
                .kernel
                .clone()
                .unwrap_or_else(|| list.default.clone());
            list.newest_of_same_abi(&name)
        }),
        ..a.kernel.clone()
    };
    s.check_kernels(k)?;
    a.run.check()?;
    // universalmutator's Python is asked for with the rest, so that a user without root gets
    // one message naming everything missing.
    let python: Vec<&crate::sys::host_tools::Tool> =
        if a.operators != Operators::Kernel && !mechanical::tool_installed(&s.cache) {
            vec![
                &crate::sys::host_tools::PYTHON3,
                &crate::sys::host_tools::PYTHON3_VENV,
            ]
        } else {
            vec![]
        };
    s.host_tools_with(&python)?;
    let (base, base_src) = unmutated_kernel(&mut s, k)?;
    let all = generate_all(&mut s, k, &base_src, a.operators)?;
    let choice = Choice {
        functions: a.function.clone(),
        sample: a.sample,
        seed: a.seed,
        shard: a.shard,
    };
    let chosen = mechanical::choose(&all, &choice)?;
    s.progress.note(&format!(
        "{} mutants generated, {} chosen",
        all.len(),
        chosen.len()
    ));
    // Checked before --list too, so that a newly judged entry is checked without a run.
    let judged = JudgedList::load(&s.configs.join("mutate/judged.toml"))?;
    // The judged list holds mutants of both generators: only a run that has every one of
    // them (`--operators all`) can tell that an entry matches none.
    let stale = if a.operators == Operators::All {
        judged.stale(&all)
    } else {
        vec![]
    };
    for j in stale {
        eprintln!("note: kernel-configs/mutate/judged.toml: {}:{} `{}` matches no mutant of this source (written for another version?)", j.file, j.line, j.mutated.trim());
    }
    if a.list {
        print_list(&chosen);
        return Ok(ExitCode::SUCCESS);
    }
    let training_file = s.configs.join(mechanical::training::FILE);
    let kind = Training::load(&training_file)?.kind(a.operators.name(), a.seed, a.sample.is_some());
    if kind == SampleKind::Training && !a.rerun_survivors {
        eprintln!(
            "warning: this is a training sample (kernel-configs/mutate/training.toml lists seed {} of the {} operators, or the run takes every mutant of a set that trained the suite): its score is a training figure, not a detection rate; draw a validation sample with a new --seed",
            a.seed,
            a.operators.name()
        );
    }
    let guest = s.guest()?;
    let mut opts = s.suite_options(&a.run, &guest);
    opts.kselftests = !a.no_upstream;
    s.choose_accel(&mut opts, &a.run, &base)?;
    let started = Instant::now();
    let every_check = Selection {
        scenarios: guest.scenarios(false),
        kselftests: upstream_programs(a.no_upstream),
        ..Default::default()
    };
    let baseline = Baseline::of(&mut s, &base, &opts, every_check, a.baseline_runs)?;
    opts.stop_at_first_failure = true;
    let trees = if a.build_ahead { 2 } else { 1 };
    let benches = (0..trees)
        .map(|tree| workbench(&mut s, k, &base_src, harness::arch::Arch::X86_64, tree))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut report = Report {
        source: base.provenance.clone(),
        tool: a.operators.tool(),
        seed: a.seed,
        sample: a.sample,
        kind: Some(kind),
        shards: a
            .shard
            .map(|(i, n)| format!("{i}/{n}"))
            .into_iter()
            .collect(),
        functions: a.function.clone(),
        wall_secs: 0.0,
        unreliable: baseline.unreliable.clone(),
        upstream_failing_unmutated: baseline.upstream_failing.clone(),
        upstream_failing_unmutated_alone: baseline.upstream_failing_alone.clone(),
        baseline_runs: a.baseline_runs,
        kselftests_from: k.kselftest_from.clone(),
        suite: suite_commit(&s.root),
        results: vec![],
    };
    let mut earlier_secs = 0.0;
    if a.rerun_survivors
        && Training::record(
            &training_file,
            a.operators.name(),
            a.seed,
            "survivors rerun with --rerun-survivors after scenarios were written for them",
        )?
    {
        eprintln!(
            "seed {} is now a training sample (added to {}): commit it",
            a.seed,
            training_file.display()
        );
    }
    if a.resume {
        earlier_secs = resume(
            &mut s,
            &mut report,
            &dir,
            &chosen,
            &judged,
            a.rerun_survivors,
        )?;
    }
    report.note_gaps(&judged);
    let done: Vec<String> = report.results.iter().map(|r| r.mutant.id.clone()).collect();
    s.progress.step(
        Step::Build,
        &format!("{} mutants, report in {}", chosen.len(), dir.display()),
    );
    let trial = Trial {
        base: &base,
        opts: &opts,
        baseline: &baseline,
        judged: &judged,
    };
    let todo: Vec<(usize, &MutantSpec)> = chosen
        .iter()
        .enumerate()
        .filter(|(_, m)| !done.contains(&m.id))
        .collect();
    let total = chosen.len();
    let stopped = in_lanes(
        &todo,
        trees,
        |lane, &(_, m)| trial.prepare(&benches[lane], m),
        |lane, &(i, m), prepared| {
            let result = trial.finish(&benches[lane], m, prepared)?;
            eprintln!(
                "[{}/{}] {} {}:{} in {}: {} (upstream: {}) {:.0} s",
                i + 1,
                total,
                m.id,
                m.file,
                m.line,
                m.function,
                outcome_text(&result.outcome),
                upstream_text(&result.upstream),
                result.secs
            );
            report.results.push(result);
            report.wall_secs = earlier_secs + started.elapsed().as_secs_f64();
            write(&report, &dir)
        },
        // A mutant built ahead when the run stopped is not run: its tree gets the unmutated
        // file back (a later run would put it back too, on opening the tree).
        |lane, &(_, m)| benches[lane].restore(&m.file),
        harness::interrupt::is_set,
    )?;
    if stopped {
        eprintln!(
            "interrupted: the report holds the {} mutants run so far",
            report.results.len()
        );
    }
    println!("{}", report.markdown());
    eprintln!("report in {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// The checkout's commit, `-dirty` when it has uncommitted changes; None outside git.
fn suite_commit(root: &std::path::Path) -> Option<String> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}

/// A `mutate.json` report.
fn load(path: &std::path::Path) -> anyhow::Result<Report> {
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parse {}", path.display()))
}

/// `--merge`: the shards' reports as one.
fn merge(parts: &[PathBuf], dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let parts = parts
        .iter()
        .map(|p| -> anyhow::Result<Report> {
            let path = if p.is_dir() {
                p.join("mutate.json")
            } else {
                p.clone()
            };
            load(&path)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let merged = Report::merge(parts)?;
    write(&merged, dir)?;
    println!("{}", merged.markdown());
    eprintln!("merged report in {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// The upstream selftest programs each boot runs: none with `--no-upstream`. The guest runs
/// whatever the selection names, whether or not the verdicts are counted, and on 6.12 the
/// tree's own programs take about 17 s of every mutant's boot (abi_test alone 13 s).
fn upstream_programs(no_upstream: bool) -> Vec<String> {
    if no_upstream {
        return vec![];
    }
    harness::model::KSELFTESTS.map(String::from).to_vec()
}

/// The unmutated kernel (its upstream programs' limits shortened) and its build tree.
fn unmutated_kernel(s: &mut Session, k: &KernelArgs) -> anyhow::Result<(KernelUnderTest, PathBuf)> {
    let mut base = s.one_kernel(k, "mutate")?.kernel;
    // A mutant that breaks the kernel (an Oops holding a lock) can leave an upstream program
    // hanging until its `settings` limit (90 s, ×4 under TCG): on the unmutated kernel each
    // takes a few seconds, so a shorter limit decides as well and keeps a run's length bounded.
    for b in &mut base.kselftests {
        b.timeout = b.timeout.min(MUTANT_KSELFTEST_LIMIT);
    }
    let base_src = base
        .bzimage
        .ancestors()
        .nth(5)
        .context("the kernel's bzImage is not inside a build tree")?
        .to_owned();
    Ok((base, base_src))
}

/// Every mechanical mutant of every target file (generated once per source and tool).
fn generate_all(
    s: &mut Session,
    k: &KernelArgs,
    base_src: &std::path::Path,
    operators: Operators,
) -> anyhow::Result<Vec<MutantSpec>> {
    let mut all = Vec::new();
    if operators != Operators::Kernel {
        let tool = mechanical::tool(&s.cache, !k.no_install, &mut s.progress)?;
        let gen_dir = s.cache.join("mutate/mutants");
        std::fs::create_dir_all(&gen_dir)
            .with_context(|| format!("create {}", gen_dir.display()))?;
        for file in mechanical::TARGETS {
            all.extend(mechanical::generate(
                &tool,
                base_src,
                file,
                &gen_dir,
                &mut s.progress,
            )?);
        }
    }
    if operators != Operators::Universal {
        for file in mechanical::TARGETS {
            let path = base_src.join(file);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("read {}", path.display()))?;
            all.extend(mechanical::kernel_ops::mutants(file, &text));
        }
    }
    Ok(all)
}

/// `--list`: the chosen mutants, one a line.
fn print_list(chosen: &[MutantSpec]) {
    for m in chosen {
        println!(
            "{}\t{}:{}\t{}\t{}  =>  {}",
            m.id,
            m.file,
            m.line,
            m.function,
            m.original.trim(),
            m.mutated.trim()
        );
    }
}

/// What the unmutated kernel says over several boots: which scenarios (or, on another
/// architecture, guest program checks) decide nothing (they fail there, even once), which
/// upstream tests are not reliable enough to count (they fail there, even once), and the
/// selection a mutant runs.
struct Baseline {
    unreliable: Vec<String>,
    upstream_failing: Vec<String>,
    /// What fails in the upstream programs' boots of their own on the unmutated kernel, with
    /// `upstream_failing`: what a mutant's boot of its own is compared with.
    upstream_failing_alone: Vec<String>,
    selection: Selection,
}

impl Baseline {
    fn of(
        s: &mut Session,
        base: &KernelUnderTest,
        opts: &harness::model::SuiteOptions,
        all_selection: Selection,
        runs: u32,
    ) -> anyhow::Result<Baseline> {
        let mut unreliable: Vec<String> = vec![];
        let mut upstream_base: Vec<String> = vec![];
        // The upstream tests that passed in every boot so far: the comparison counts only
        // these, so with none it would read 0% (every program failing to build did).
        let mut upstream_stable: Option<Vec<String>> = None;
        let mut upstream_why: Option<String> = None;
        let mut last_dir = std::path::PathBuf::new();
        for i in 1..=runs {
            s.progress.step(
                Step::Boot,
                &format!("{} unmutated ({i} of {runs})", base.label),
            );
            let base_run = harness::run::run_kernel(base, opts, &all_selection)?;
            harness::artifacts::write(&base_run)?;
            last_dir = base_run.run_dir.clone();
            let failing = |origin: Origin| -> Vec<String> {
                base_run
                    .verdicts
                    .iter()
                    .filter(|v| v.origin == origin && v.verdict.is_fail())
                    .map(|v| v.name.clone())
                    .collect()
            };
            // A guest program's checks (another architecture's C guest) decide like scenarios.
            let mut scenarios = failing(Origin::Scenario);
            scenarios.extend(failing(Origin::Guest));
            let checks = base_run
                .verdicts
                .iter()
                .filter(|v| matches!(v.origin, Origin::Scenario | Origin::Guest))
                .count();
            if failing(Origin::Vm).len() + scenarios.len() > checks / 2 {
                bail!(
                    "the unmutated kernel fails most of the suite (see {}): fix that first",
                    base_run.run_dir.display()
                );
            }
            let upstream = failing(Origin::Upstream);
            let passed: Vec<String> = base_run
                .verdicts
                .iter()
                .filter(|v| v.origin == Origin::Upstream && matches!(v.verdict, Verdict::Pass))
                .map(|v| v.name.clone())
                .collect();
            upstream_stable = Some(match upstream_stable {
                None => passed,
                Some(before) => before.into_iter().filter(|n| passed.contains(n)).collect(),
            });
            if upstream_why.is_none() {
                upstream_why = base_run.verdicts.iter().find_map(|v| match &v.verdict {
                    Verdict::Fail(f) if v.origin == Origin::Upstream => Some(format!(
                        "{}: {}",
                        v.name,
                        f.message.lines().take(3).collect::<Vec<_>>().join(" / ")
                    )),
                    _ => None,
                });
            }
            if i > 1 {
                let new: Vec<&String> = upstream
                    .iter()
                    .chain(&scenarios)
                    .filter(|n| !upstream_base.contains(n) && !unreliable.contains(n))
                    .collect();
                if !new.is_empty() {
                    eprintln!(
                        "note: unmutated boot {i} of {runs} failed what earlier ones passed (flaky, not counted): {}",
                        new.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
                    );
                }
            }
            unreliable.extend(scenarios);
            upstream_base.extend(upstream);
            unreliable.sort();
            unreliable.dedup();
            upstream_base.sort();
            upstream_base.dedup();
        }
        // Only when some failed: a tree without the selftests reports them not run instead.
        if upstream_stable.is_some_and(|v| v.is_empty()) && upstream_why.is_some() {
            bail!(
                "no upstream selftest passed on every boot of the unmutated kernel, so the comparison with upstream would read 0% (first failure: {}); see {}",
                upstream_why.as_deref().unwrap_or("none reported"),
                last_dir.display()
            );
        }
        if !unreliable.is_empty() {
            eprintln!(
                "note: left out, failing on the unmutated kernel: {}",
                unreliable.join(", ")
            );
        }
        // A mutant the suite caught may get a boot of the upstream programs alone (see
        // upstream::needs_its_own_boot): the unmutated kernel boots them so as often.
        let mut upstream_failing_alone = upstream_base.clone();
        if !all_selection.kselftests.is_empty() {
            let alone_kernel = upstream::alone_kernel(base);
            for i in 1..=runs {
                s.progress.step(
                    Step::Boot,
                    &format!(
                        "{} unmutated, upstream selftests alone ({i} of {runs})",
                        base.label
                    ),
                );
                let run = harness::run::run_kernel(
                    &alone_kernel,
                    opts,
                    &upstream::alone(&all_selection),
                )?;
                harness::artifacts::write(&run)?;
                upstream_failing_alone
                    .extend(upstream::newly_failing(&run, &upstream_base).map(|v| v.name.clone()));
            }
            upstream_failing_alone.sort();
            upstream_failing_alone.dedup();
            let only_alone: Vec<&str> = upstream_failing_alone
                .iter()
                .filter(|n| !upstream_base.contains(n))
                .map(String::as_str)
                .collect();
            if !only_alone.is_empty() {
                eprintln!(
                    "note: failing on the unmutated kernel only when the upstream selftests boot alone (not counted in such a boot of a mutant): {}",
                    only_alone.join(", ")
                );
            }
        }
        let selection = Selection {
            scenarios: all_selection
                .scenarios
                .iter()
                .filter(|sc| !unreliable.contains(&sc.name))
                .cloned()
                .collect(),
            kselftests: all_selection.kselftests,
            guest: all_selection.guest,
        };
        Ok(Baseline {
            unreliable,
            upstream_failing: upstream_base,
            upstream_failing_alone,
            selection,
        })
    }
}

/// The reusable mutation tree of this unpatched build.
fn workbench(
    s: &mut Session,
    k: &KernelArgs,
    base_src: &std::path::Path,
    arch: harness::arch::Arch,
    tree: usize,
) -> anyhow::Result<mechanical::Workbench> {
    // One mutation tree per unpatched build: its key is the build folder's name (and a
    // number for the second tree of --build-ahead).
    let mut base_key = base_src
        .parent()
        .and_then(|p| p.file_name())
        .context("the build tree has no cache entry")?
        .to_owned();
    if tree > 0 {
        base_key.push(format!("-{}", tree + 1));
    }
    let jobs = k
        .build_jobs
        .filter(|j| *j > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    mechanical::Workbench::new(
        base_src,
        &s.cache.join("mutate/trees").join(base_key),
        jobs,
        arch,
        &mut s.progress,
    )
}

/// `--resume`: the results already in `dir` that this run chose (survivors dropped with
/// `--rerun-survivors`, judged ones counted as judged now); returns the wall time so far.
fn resume(
    s: &mut Session,
    report: &mut Report,
    dir: &std::path::Path,
    chosen: &[MutantSpec],
    judged: &JudgedList,
    rerun_survivors: bool,
) -> anyhow::Result<f64> {
    let mut earlier_secs = 0.0;
    if let Ok(bytes) = std::fs::read(dir.join("mutate.json")) {
        let old: Report = serde_json::from_slice(&bytes)
            .with_context(|| format!("parse {}", dir.join("mutate.json").display()))?;
        if (old.source.as_str(), old.tool.as_str(), old.seed)
            != (report.source.as_str(), report.tool.as_str(), report.seed)
            || !draw_goes_on(old.sample, report.sample)
        {
            bail!(
                "--resume: {} holds another run (seed {}, sample {:?}, {})",
                dir.display(),
                old.seed,
                old.sample,
                old.source
            );
        }
        if old.sample != report.sample {
            eprintln!(
                "note: --resume: the sample grows from {} to {} mutants of seed {}: the first {} draws are the ones already run",
                old.sample.unwrap_or(0),
                report.sample.unwrap_or(0),
                report.seed,
                old.sample.unwrap_or(0)
            );
        }
        match (&old.kselftests_from, &report.kselftests_from) {
            (Some(was), Some(now)) if was != now => bail!(
                "--resume: the results in {} count the upstream selftests of {was}, this run would count {now}'s: give --kselftest-from {was} to go on with it",
                dir.display()
            ),
            (None, Some(now)) => eprintln!(
                "note: --resume: the earlier results in {} counted the mutated tree's own selftests (or did not record whose); the new ones count {now}'s",
                dir.display()
            ),
            _ => {}
        }
        if old.suite != report.suite {
            eprintln!(
                "note: --resume: the earlier results in {} came from the suite of {}, the new ones from {}'s (a kill stays a kill while its scenario stays; --rerun-survivors gives the survivors to the new suite)",
                dir.display(),
                old.suite.as_deref().unwrap_or("an unrecorded commit"),
                report.suite.as_deref().unwrap_or("an unrecorded commit")
            );
        }
        let chosen_ids: Vec<&str> = chosen.iter().map(|m| m.id.as_str()).collect();
        // The wall time so far is kept: the report's time is the whole run's.
        earlier_secs = old.wall_secs;
        report.results = old
            .results
            .into_iter()
            .filter(|r| chosen_ids.contains(&r.mutant.id.as_str()))
            .collect();
        if rerun_survivors {
            report.results.retain(|r| r.outcome != Outcome::Survived);
        }
        // A survivor judged equivalent since is counted as judged now.
        for r in &mut report.results {
            if let (Outcome::Survived, Some(j)) = (&r.outcome, judged.find(&r.mutant)) {
                r.outcome = Outcome::JudgedEquivalent {
                    reason: j.reason.clone(),
                };
                r.upstream = Upstream::NotRun;
            }
        }
        s.progress.note(&format!(
            "resuming: {} of {} mutants already done",
            report.results.len(),
            chosen.len()
        ));
    }
    Ok(earlier_secs)
}

/// Whether a run with sample size `now` continues one with `was` (same source, tool and
/// seed): the same size, or a larger one. A seed's sample is a prefix of one shuffle of all
/// the chosen mutants (`choose`), so a larger sample begins with the smaller one's draws, and
/// a sample that ran out of time can grow to the size it needs.
fn draw_goes_on(was: Option<usize>, now: Option<usize>) -> bool {
    match (was, now) {
        (Some(a), Some(b)) => a <= b,
        (a, b) => a == b,
    }
}

/// What one mutant is run against.
struct Trial<'a> {
    base: &'a KernelUnderTest,
    opts: &'a harness::model::SuiteOptions,
    baseline: &'a Baseline,
    judged: &'a JudgedList,
}

/// A mutant ready to run: judged, or built in a mutation tree that keeps it until
/// [`Trial::finish`].
enum Prepared {
    Judged { reason: String },
    Built { build: Build, build_secs: f64 },
}

impl Trial<'_> {
    /// One mutant, judged or built and run in `bench`.
    fn run(&self, bench: &mechanical::Workbench, m: &MutantSpec) -> anyhow::Result<MutantResult> {
        let prepared = self.prepare(bench, m)?;
        self.finish(bench, m, prepared)
    }

    /// Judges or builds `m` in `bench` (not compiled, identical object code, or a kernel).
    fn prepare(&self, bench: &mechanical::Workbench, m: &MutantSpec) -> anyhow::Result<Prepared> {
        if let Some(j) = self.judged.find(m) {
            return Ok(Prepared::Judged {
                reason: j.reason.clone(),
            });
        }
        let t = Instant::now();
        let build = bench.build(m).inspect_err(|_| {
            let _ = bench.restore(&m.file);
        })?;
        Ok(Prepared::Built {
            build,
            build_secs: t.elapsed().as_secs_f64(),
        })
    }

    /// Runs a built kernel with the suite and puts the unmutated file back in `bench`.
    fn finish(
        &self,
        bench: &mechanical::Workbench,
        m: &MutantSpec,
        prepared: Prepared,
    ) -> anyhow::Result<MutantResult> {
        let (base, opts) = (self.base, self.opts);
        let (selection, upstream_base) =
            (&self.baseline.selection, &self.baseline.upstream_failing);
        let t = Instant::now();
        let diff = m.diff(bench.original(&m.file).unwrap_or(""), 2);
        let (outcome, upstream, build_secs) = match prepared {
            Prepared::Judged { reason } => {
                (Outcome::JudgedEquivalent { reason }, Upstream::NotRun, None)
            }
            Prepared::Built { build, build_secs } => {
                let ran = match build {
                    Build::NotCompiled(error) => {
                        Ok((Outcome::NotCompiled { error }, Upstream::NotRun))
                    }
                    Build::Equivalent => Ok((Outcome::Equivalent, Upstream::NotRun)),
                    Build::Kernel(bzimage) => {
                        let kernel = KernelUnderTest {
                            label: format!("{}+{}", base.label, m.id),
                            bzimage,
                            ..base.clone()
                        };
                        harness::run::run_kernel(&kernel, opts, selection).and_then(|run| {
                            harness::artifacts::write(&run)?;
                            let (outcome, upstream) = classify(
                                &run,
                                upstream_base,
                                opts.kselftests,
                                &self.baseline.unreliable,
                            );
                            let suite_caught = matches!(
                                outcome,
                                Outcome::Killed { .. } | Outcome::TimedOut { .. }
                            );
                            if !upstream::needs_its_own_boot(&run, suite_caught, upstream_base) {
                                return Ok((outcome, upstream));
                            }
                            let kernel = upstream::alone_kernel(&kernel);
                            let alone = upstream::alone(selection);
                            let run = harness::run::run_kernel(&kernel, opts, &alone)?;
                            harness::artifacts::write(&run)?;
                            Ok((
                                outcome,
                                upstream_of(&run, &self.baseline.upstream_failing_alone),
                            ))
                        })
                    }
                };
                bench.restore(&m.file)?;
                let (outcome, upstream) = ran?;
                (outcome, upstream, Some(build_secs))
            }
        };
        let gap = match outcome {
            Outcome::Survived => self.judged.find_gap(m).map(|j| j.reason.clone()),
            _ => None,
        };
        Ok(MutantResult {
            mutant: m.clone(),
            outcome,
            upstream,
            secs: build_secs.unwrap_or(0.0) + t.elapsed().as_secs_f64(),
            build_secs,
            diff,
            elsewhere: vec![],
            gap,
        })
    }
}

/// Takes `items` in order through `prepare` and then `finish`, item n in lane n % lanes.
/// With two lanes (two mutation trees), item n + 1 is prepared on a thread of its own while
/// item n finishes, so a build overlaps the previous mutant's run. Before each item, `stop`
/// may end the run: an item prepared ahead is then handed to `discard`. Returns whether
/// `stop` ended it.
fn in_lanes<T: Sync, P: Send>(
    items: &[T],
    lanes: usize,
    prepare: impl Fn(usize, &T) -> anyhow::Result<P> + Sync,
    mut finish: impl FnMut(usize, &T, P) -> anyhow::Result<()>,
    discard: impl Fn(usize, &T) -> anyhow::Result<()>,
    stop: impl Fn() -> bool,
) -> anyhow::Result<bool> {
    let lanes = lanes.max(1);
    std::thread::scope(|scope| {
        let prepare = &prepare;
        let mut ahead = None;
        for (n, item) in items.iter().enumerate() {
            if stop() {
                if let Some(built) = ahead {
                    let _ = joined(built);
                    discard(n % lanes, item)?;
                }
                return Ok(true);
            }
            let prepared = match ahead.take() {
                Some(built) => joined(built)?,
                None => prepare(n % lanes, item)?,
            };
            if let (true, Some(next)) = (lanes > 1, items.get(n + 1)) {
                let lane = (n + 1) % lanes;
                ahead = Some(scope.spawn(move || {
                    crate::sys::proc::lowest_priority_for_this_thread();
                    prepare(lane, next)
                }));
            }
            // On an error here the scope still waits for the build ahead; its tree keeps the
            // mutant until the next run opens it.
            finish(n % lanes, item, prepared)?;
        }
        Ok(false)
    })
}

/// What a thread that prepared the next item gave.
fn joined<P>(built: std::thread::ScopedJoinHandle<'_, anyhow::Result<P>>) -> anyhow::Result<P> {
    built
        .join()
        .map_err(|_| anyhow::anyhow!("the thread that built the next mutant panicked"))?
}

/// The first failure decides: a scenario or a guest program's check (or the boot itself)
/// failing is a kill, a limit running out a timeout; upstream tests count only where they pass
/// on the unmutated kernel. `unreliable` failed there too (a guest program's checks cannot be
/// left out of its run, so they are left out here).
fn classify(
    run: &KernelRun,
    upstream_base: &[String],
    upstream_ran: bool,
    unreliable: &[String],
) -> (Outcome, Upstream) {
    // A VM that ended while an upstream program ran says nothing about the scenarios, which
    // had all finished by then.
    let upstream_ran_last = run.report.unfinished.as_deref().is_some_and(|u| {
        run.verdicts
            .iter()
            .any(|v| v.name == u && v.origin == Origin::Upstream)
    });
    let ours = |o: Origin| {
        matches!(o, Origin::Scenario | Origin::Guest) || (o == Origin::Vm && !upstream_ran_last)
    };
    let outcome = match &run.report.end {
        VmEnd::TimedOut { what } if !upstream_ran_last => Outcome::TimedOut { what: what.clone() },
        _ => {
            let failed: Vec<&str> = run
                .verdicts
                .iter()
                .filter(|v| ours(v.origin) && v.verdict.is_fail() && !unreliable.contains(&v.name))
                .map(|v| v.name.as_str())
                .collect();
            // A guest program fails as a whole (`guest::abi_core`, often only by running out
            // of time after its checks failed) and check by check: the first failing check
            // says what broke.
            let is_program_of_another =
                |n: &str| failed.iter().any(|o| o.starts_with(&format!("{n}::")));
            match failed
                .iter()
                .find(|n| !is_program_of_another(n))
                .or(failed.first())
            {
                Some(n) => Outcome::Killed {
                    by: (*n).to_owned(),
                },
                None => Outcome::Survived,
            }
        }
    };
    if !upstream_ran {
        return (outcome, Upstream::NotRun);
    }
    (outcome, upstream_of(run, upstream_base))
}

/// What the upstream selftests of `run` made of the mutant: the first one failing that passed
/// on every boot of the unmutated kernel. A program that hangs or crashes on the mutant fails
/// its own verdict: a detection too.
fn upstream_of(run: &KernelRun, upstream_base: &[String]) -> Upstream {
    match upstream::newly_failing(run, upstream_base).next() {
        Some(v) => Upstream::Killed { by: v.name.clone() },
        None => Upstream::Survived,
    }
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Killed { by } => format!("killed by {by}"),
        Outcome::Survived => "SURVIVED".into(),
        Outcome::TimedOut { what } => format!("timed out ({what})"),
        Outcome::Equivalent => "equivalent (same object code)".into(),
        Outcome::JudgedEquivalent { .. } => "judged equivalent".into(),
        Outcome::NotCompiled { error } => format!(
            "not compiled ({})",
            error.chars().take(80).collect::<String>()
        ),
    }
}

fn upstream_text(u: &Upstream) -> String {
    match u {
        Upstream::Killed { by } => format!("killed by {by}"),
        Upstream::Survived => "survived".into(),
        Upstream::NotRun => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::sync::Mutex;
    use std::time::Duration;

    #[test]
    fn one_lane_prepares_and_finishes_each_item_in_turn() {
        let log = Mutex::new(vec![]);
        let note = |line: String| {
            log.lock().unwrap().push(line);
            Ok(())
        };
        let stopped = in_lanes(
            &["a", "b"],
            1,
            |lane, x| note(format!("prepare {x} in {lane}")),
            |lane, x, ()| note(format!("finish {x} in {lane}")),
            |_, _| unreachable!("nothing is prepared ahead with one lane"),
            || false,
        )
        .unwrap();
        assert!(!stopped);
        assert_eq!(
            log.into_inner().unwrap(),
            [
                "prepare a in 0",
                "finish a in 0",
                "prepare b in 0",
                "finish b in 0"
            ]
        );
    }

    #[test]
    fn two_lanes_prepare_the_next_item_in_the_other_lane_while_one_finishes() {
        // finish(0) waits for prepare(1) to have begun: one at a time, this would time out.
        let (began, seen) = mpsc::channel();
        let seen = Mutex::new(seen);
        let lanes = Mutex::new(vec![]);
        in_lanes(
            &[0, 1, 2],
            2,
            |lane, &x| {
                lanes.lock().unwrap().push((x, lane));
                let _ = began.send(x);
                Ok(x * 10)
            },
            |_, &x, prepared| {
                assert_eq!(
                    prepared,
                    x * 10,
                    "each item finishes with what was prepared for it"
                );
                if x == 0 {
                    let seen = seen.lock().unwrap();
                    assert_eq!(seen.recv_timeout(Duration::from_secs(5)), Ok(0));
                    assert_eq!(seen.recv_timeout(Duration::from_secs(5)), Ok(1));
                }
                Ok(())
            },
            |_, _| unreachable!("the run was not stopped"),
            || false,
        )
        .unwrap();
        let mut lanes = lanes.into_inner().unwrap();
        lanes.sort();
        assert_eq!(lanes, [(0, 0), (1, 1), (2, 0)]);
    }

    #[test]
    fn a_stop_discards_the_item_prepared_ahead_and_finishes_nothing_more() {
        let finished = Mutex::new(vec![]);
        let discarded = Mutex::new(vec![]);
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let stopped = in_lanes(
            &["a", "b", "c"],
            2,
            |_, _| Ok(()),
            |_, x, ()| {
                finished.lock().unwrap().push(*x);
                Ok(())
            },
            |lane, x| {
                discarded.lock().unwrap().push((*x, lane));
                Ok(())
            },
            // Asked before each item: go on for "a", stop before "b".
            || calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1,
        )
        .unwrap();
        assert!(stopped);
        assert_eq!(finished.into_inner().unwrap(), ["a"]);
        assert_eq!(discarded.into_inner().unwrap(), [("b", 1)]);
    }

    #[test]
    fn a_failed_build_ahead_ends_the_run_with_its_error() {
        let err = in_lanes(
            &[0, 1, 2],
            2,
            |_, &x| {
                if x == 1 {
                    anyhow::bail!("make failed for 1")
                } else {
                    Ok(())
                }
            },
            |_, &x, ()| {
                assert_ne!(x, 2, "nothing after the failed build runs");
                Ok(())
            },
            |_, _| Ok(()),
            || false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("make failed for 1"), "{err:#}");
    }

    #[test]
    fn no_upstream_boots_no_upstream_program() {
        assert!(upstream_programs(true).is_empty());
        let all = upstream_programs(false);
        assert!(all.contains(&"abi_test".to_owned()), "{all:?}");
    }

    #[test]
    fn a_sample_may_grow_on_resume_but_not_shrink_or_change_kind() {
        assert!(draw_goes_on(Some(660), Some(660)));
        assert!(draw_goes_on(Some(660), Some(800)));
        assert!(!draw_goes_on(Some(800), Some(660)));
        assert!(draw_goes_on(None, None));
        assert!(!draw_goes_on(None, Some(5)));
        assert!(!draw_goes_on(Some(5), None));
    }
}
