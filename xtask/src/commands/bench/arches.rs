//! Row 13, the foreign architectures (`--arch s390x`, `--arch arm64`), under TCG: for each,
//! the boot floor (the C init with an empty plan: hello, done, reboot) and the warm C guest
//! (its programs, guest-tests/c/abi_core.c and the like), interleaved run by run, each
//! against row 1's x86-64 floor when it ran. Named only (`--only 13`): a cold cache
//! cross-builds a kernel per architecture (about 7 min each on 2 cores).

use std::time::Instant;

use anyhow::bail;
use harness::arch::Arch;
use harness::run::Selection;

use super::table::Row;
use super::{say, Group, Setup};
use crate::args::{GuestTestArgs, KernelArgs};
use crate::session::Session;

pub(super) fn rows(
    s: &Setup,
    runs: usize,
    floor: Option<f64>,
    session: &mut Session,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for arch in [Arch::S390x, Arch::Arm64] {
        let args = KernelArgs {
            arch: vec![arch.name().to_owned()],
            ..s.kernel_args.clone()
        };
        session.foreign = vec![arch];
        session.host_tools()?;
        let built = Instant::now();
        let r = session.kernels(&args)?.remove(0);
        let build_note = match r.build_secs {
            Some(b) => format!("kernel cross-built now in {b:.0} s"),
            None => format!(
                "kernel from the cache ({:.1} s)",
                built.elapsed().as_secs_f64()
            ),
        };
        let guest_args = GuestTestArgs {
            guest_test_timeout: 30,
            ..GuestTestArgs::default()
        };
        let guest = crate::guest::foreign::prepare(
            &session.root,
            &s.cache,
            arch,
            &guest_args,
            &mut session.progress,
        );
        // Without a C program in this checkout, the floor alone.
        let (guest, programs) = match guest {
            Ok(g) => {
                let p = g.programs.clone();
                (g, p)
            }
            Err(e) => {
                say(&format!("{arch}: no warm suite ({e:#}); the floor only"));
                let init = crate::guest::c::build(
                    &s.cache,
                    arch,
                    crate::guest::foreign::INIT,
                    crate::guest::foreign::INIT_SOURCE,
                    &mut session.progress,
                )?;
                (
                    harness::model::ArchGuest {
                        arch,
                        bin_dir: init.parent().expect("a folder").to_owned(),
                        manifest: session.root.join(crate::guest::foreign::MANIFEST),
                        programs: vec![],
                    },
                    vec![],
                )
            }
        };
        let opts = harness::model::SuiteOptions {
            arch_guests: vec![guest],
            runs_dir: s.dir.join(format!("arch-{arch}")),
            retries: 0,
            ..s.opts.clone()
        };
        let (mut floors, mut hellos, mut suites) = (vec![], vec![], vec![]);
        for i in 0..runs {
            say(&format!("{arch}: run {} of {runs}", i + 1));
            let run = harness::run::run_kernel(&r.kernel, &opts, &Selection::default())?;
            if run.failed() {
                bail!(
                    "{arch}: the empty-plan boot failed; see {}",
                    run.run_dir.display()
                );
            }
            floors.push(run.report.wall_ms as f64 / 1000.0);
            hellos.push(run.report.hello_wall_ms.unwrap_or(run.report.wall_ms) as f64 / 1000.0);
            if !programs.is_empty() {
                let sel = Selection {
                    guest: programs.clone(),
                    ..Default::default()
                };
                let run = harness::run::run_kernel(&r.kernel, &opts, &sel)?;
                if run.failed() {
                    bail!("{arch}: the C guest failed; see {}", run.run_dir.display());
                }
                suites.push(run.report.wall_ms as f64 / 1000.0);
            }
        }
        rows.push(
            Row::new(
                Group::Arches,
                &format!("13.{arch}.floor"),
                &format!("{arch} boot floor: the C init with an empty plan, QEMU start to exit"),
                floors,
                build_note,
            )
            .ratio_to(floor, "the x86-64 floor (row 1)"),
        );
        rows.push(Row::new(
            Group::Arches,
            &format!("13.{arch}.hello"),
            &format!("{arch}: QEMU start to the init's hello (the first record)"),
            hellos,
            "",
        ));
        if !suites.is_empty() {
            let names: Vec<&str> = programs.iter().map(|p| p.name.as_str()).collect();
            rows.push(
                Row::new(
                    Group::Arches,
                    &format!("13.{arch}.suite"),
                    &format!(
                        "{arch} warm C guest ({}), QEMU start to exit",
                        names.join(", ")
                    ),
                    suites,
                    "",
                )
                .ratio_to(floor, "the x86-64 floor (row 1)"),
            );
        }
    }
    session.foreign = vec![];
    Ok(rows)
}
