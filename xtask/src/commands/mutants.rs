//! `cargo xtask mutants`: build each patch of `kernel-configs/mutants/` on the cached kernel,
//! run the suite and the upstream selftests on it, and check that a scenario it names caught it.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use harness::run::Selection;

use crate::args::{KernelArgs, RunArgs};
use crate::mutants;
use crate::session::Session;

#[derive(Args)]
pub struct MutantsArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Only the mutants whose file name contains this.
    #[arg(long)]
    pub only: Option<String>,
}

pub fn run(a: MutantsArgs) -> anyhow::Result<ExitCode> {
    let k = &a.kernel;
    if !k.patches.is_empty() || k.kernel_image.is_some() || k.kernel_tree.is_some() {
        bail!("mutants are applied to a packaged kernel: use --kernel, not --patch, --kernel-image or --kernel-tree");
    }
    let mut s = Session::for_kernels(k);
    s.host_tools()?;
    let all = mutants::load(&s.configs.join("mutants"))?;
    let selected: Vec<_> = all
        .into_iter()
        .filter(|m| a.only.as_deref().is_none_or(|o| m.name.contains(o)))
        .collect();
    if selected.is_empty() {
        bail!(
            "no mutant in kernel-configs/mutants matches {:?}",
            a.only.as_deref().unwrap_or("")
        );
    }
    let base = s.one_kernel(k, "mutants")?.kernel;
    let guest = s.guest()?;
    let sel = Selection {
        scenarios: guest.scenarios(a.run.stress),
        kselftests: harness::model::KSELFTESTS.map(String::from).to_vec(),
        ..Default::default()
    };
    let mut opts = s.suite_options(&a.run, &guest);
    s.choose_accel(&mut opts, a.run.accel, &base)?;
    s.progress.step(
        crate::progress::Step::Boot,
        &format!("{} unpatched", base.label),
    );
    let boot =
        |kernel: &harness::model::KernelUnderTest| -> anyhow::Result<harness::model::KernelRun> {
            let run = harness::run::run_kernel(kernel, &opts, &sel)?;
            harness::artifacts::write(&run)?;
            Ok(run)
        };
    let base_run = boot(&base)?;
    let (base_failing, base_ks_failing) = mutants::failing(&base_run);
    if !base_ks_failing.is_empty() {
        eprintln!(
            "note: upstream selftests failing on the unpatched kernel: {}",
            base_ks_failing.join(", ")
        );
    }
    let mut rows = Vec::new();
    for m in selected {
        let mk = KernelArgs {
            patches: vec![m.path.clone()],
            ..k.clone()
        };
        let resolved = s.kernels(&mk)?.remove(0);
        let mut kernel = resolved.kernel;
        kernel.label = format!("{}+{}", base.label, m.name);
        s.progress.step(crate::progress::Step::Boot, &kernel.label);
        let run = boot(&kernel)?;
        let (failing, ks_failing) = mutants::failing(&run);
        // Upstream selftests that fail on the unpatched kernel too say nothing about the mutant.
        let kselftests_failing: Vec<String> = ks_failing
            .into_iter()
            .filter(|k| !base_ks_failing.contains(k))
            .collect();
        let caught = sel
            .scenarios
            .iter()
            .filter(|sc| failing.contains(&sc.name))
            .any(|sc| m.names(sc));
        eprintln!(
            "{}: {} (failing: {})",
            m.name,
            if caught { "caught" } else { "NOT CAUGHT" },
            failing.join(", ")
        );
        rows.push(mutants::Row {
            mutant: m,
            failing,
            kselftests_failing,
            caught,
            build_secs: resolved.build_secs,
        });
    }
    let table = mutants::table(&base_failing, &rows);
    println!("{table}");
    let out = s.runs_dir().join("mutants.md");
    std::fs::create_dir_all(s.runs_dir())?;
    std::fs::write(&out, &table)?;
    eprintln!("table written to {}", out.display());
    let ok = base_failing.is_empty() && rows.iter().all(|r| r.caught);
    Ok(crate::exit::trials(!ok))
}
