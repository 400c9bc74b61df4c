//! `cargo xtask mutate --arch s390x --out DIR`: the survivors of the x86-64 report in DIR,
//! each built for another architecture and run with that architecture's C guest programs.
//!
//! Why: the sample is drawn from one source file, but part of that file is compiled only
//! elsewhere (the big-endian branch of align_addr_bit), or reads the same on x86-64 whatever
//! it says (the 32-on-64 flag of a size-4 word, which only matters where the u32 is not the
//! long's low half). Such a mutant survives every x86-64 run; s390x is where a user would
//! meet it. Running only the survivors keeps the pass short: a TCG boot of s390x is slow, and
//! a kill on x86-64 needs no second opinion.
//!
//! Each outcome is recorded beside the x86-64 one (`MutantResult::elsewhere`), and the report's
//! score counts a survivor caught there as detected, saying how many were.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context as _};
use harness::arch::Arch;
use harness::run::Selection;

use super::{unmutated_kernel, workbench, write, Baseline, MutateArgs, Trial};
use crate::mutation::mechanical::{ArchResult, JudgedList, Outcome};
use crate::session::Session;
use crate::sys::progress::Step;

pub(super) fn run(a: &MutateArgs, arch: Arch) -> anyhow::Result<ExitCode> {
    // The report chooses the mutants: what would choose them here has nothing to do.
    crate::args::refuse_unused(
        "mutate --arch",
        &[
            ("--sample", a.sample.is_some()),
            ("--seed", a.seed != 1),
            ("--shard", a.shard.is_some()),
            ("--function", !a.function.is_empty()),
            ("--list", a.list),
            ("--merge", !a.merge.is_empty()),
            ("--rerun-survivors", a.rerun_survivors),
            ("--kselftest-from", a.kernel.kselftest_from.is_some()),
            ("--patch", !a.kernel.patches.is_empty()),
            ("--kernel-image", a.kernel.kernel_image.is_some()),
            ("--kernel-tree", a.kernel.kernel_tree.is_some()),
        ],
    )?;
    let Some(dir) = a.out.clone() else {
        bail!(
            "--arch {} runs the survivors of an x86-64 report on {}: give --out DIR, the folder of that `cargo xtask mutate` report",
            arch.name(),
            arch.name()
        );
    };
    let path = dir.join("mutate.json");
    let mut report = super::load(&path).with_context(|| {
        format!(
            "run `cargo xtask mutate --out {}` (x86-64) first; --arch {} runs its survivors",
            dir.display(),
            arch.name()
        )
    })?;
    let mut s = Session::for_kernels(&a.kernel);
    s.check_kernels(&a.kernel)?;
    a.run.check()?;
    s.host_tools()?;
    let (base, base_src) = unmutated_kernel(&mut s, &a.kernel)?;
    let judged = JudgedList::load(&s.configs.join("mutate/judged.toml"))?;
    report.note_gaps(&judged);
    // Survivors not run on this architecture yet (an interrupted pass goes on), and not
    // judged equivalent since the x86-64 run.
    let todo: Vec<usize> = report
        .results
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.outcome == Outcome::Survived
                && judged.find(&r.mutant).is_none()
                && !r.elsewhere.iter().any(|e| e.arch == arch)
        })
        .map(|(i, _)| i)
        .collect();
    let survivors = report
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::Survived)
        .count();
    s.progress.note(&format!(
        "{survivors} survivors in {}, {} still to run on {}",
        path.display(),
        todo.len(),
        arch.name()
    ));
    if todo.is_empty() {
        println!("{}", report.markdown());
        return Ok(ExitCode::SUCCESS);
    }
    let guest = s.guest_for(&[arch])?;
    let mut opts = s.suite_options(&a.run, &guest);
    opts.kselftests = false;
    let programs = crate::args::GuestTestArgs {
        guest_test_timeout: 30,
        ..Default::default()
    };
    opts.arch_guests =
        crate::guest::foreign::prepare_all(&s.root, &s.cache, &[arch], &programs, &mut s.progress)?;
    let every_check = Selection {
        guest: opts.arch_guests[0].programs.clone(),
        ..Default::default()
    };
    s.choose_accel(&mut opts, &a.run, &base)?;
    let baseline = Baseline::of(&mut s, &base, &opts, every_check, a.baseline_runs)?;
    opts.stop_at_first_failure = true;
    let bench = workbench(&mut s, &a.kernel, &base_src, arch, 0)?;
    // The mutants were drawn from the x86-64 build's copy of the source: this one must be the
    // same text, or a mutant would land on another line (or not apply).
    for &i in &todo {
        let m = &report.results[i].mutant;
        let here = bench
            .original(&m.file)
            .and_then(|t| t.lines().nth(m.line.saturating_sub(1)));
        if here != Some(m.original.as_str()) {
            bail!(
                "{}:{} of the {} kernel's source is {:?}, the report's mutant {} was drawn where it is {:?}: the report comes from another source ({})",
                m.file,
                m.line,
                arch.name(),
                here.unwrap_or("(no such line)"),
                m.id,
                m.original,
                report.source
            );
        }
    }
    let suite = super::suite_commit(&s.root);
    let trial = Trial {
        base: &base,
        opts: &opts,
        baseline: &baseline,
        judged: &judged,
    };
    s.progress.step(
        Step::Build,
        &format!(
            "{} survivors on {}, results into {}",
            todo.len(),
            arch.name(),
            path.display()
        ),
    );
    let started = Instant::now();
    for (n, &i) in todo.iter().enumerate() {
        if harness::interrupt::is_set() {
            eprintln!(
                "interrupted: the report holds the survivors run on {} so far",
                arch.name()
            );
            break;
        }
        let m = report.results[i].mutant.clone();
        let r = trial.run(&bench, &m)?;
        eprintln!(
            "[{}/{}] {} {}:{} in {} on {}: {} {:.0} s",
            n + 1,
            todo.len(),
            m.id,
            m.file,
            m.line,
            m.function,
            arch.name(),
            super::outcome_text(&r.outcome),
            r.secs
        );
        report.results[i].elsewhere.push(ArchResult {
            arch,
            outcome: r.outcome,
            secs: r.secs,
            suite: suite.clone(),
        });
        write(&report, &dir)?;
    }
    eprintln!(
        "{} survivors run on {} in {:.0} s",
        todo.len(),
        arch.name(),
        started.elapsed().as_secs_f64()
    );
    println!("{}", report.markdown());
    eprintln!("report in {}", dir.display());
    Ok(ExitCode::SUCCESS)
}
