//! Rows 1–3 measured run by run, interleaved, so that they see the same background load: the
//! boot floors, the warm suite (side by side and with `--jobs 1`), a no-op `build-kernel`.

use std::time::Instant;

use crate::args::KernelArgs;
use crate::session::Session;

use super::floor::{floor_harness, floor_trivial, trivial_init};
use super::suite::{warm_suite, SuiteSample};
use super::table::{secs, Row};
use super::{say, Setup};

// Rows 1–3, interleaved.

pub(super) fn rows(
    s: &Setup,
    runs: usize,
    r1: bool,
    r2: bool,
    r3: bool,
) -> anyhow::Result<Vec<Row>> {
    let trivial_init = if r1 { Some(trivial_init(&s.dir)) } else { None };
    let (mut floor_h, mut floor_h_hello, mut floor_t) = (vec![], vec![], vec![]);
    let (mut floor_h_reboot, mut floor_t_reboot, mut floor_t_pre) = (vec![], vec![], vec![]);
    let mut suite: Vec<SuiteSample> = vec![];
    let mut suite_seq: Vec<SuiteSample> = vec![];
    let mut noop = vec![];
    let mut noop_made = 0;
    for i in 0..runs {
        let n = format!("{}/{runs}", i + 1);
        if r1 {
            let (wall, hello, reboot) = floor_harness(s, i)?;
            say(&format!("1a floor, harness init, empty plan, run {n}: {wall:.2} s (guest hello at {hello:.2} s, reboot at {} s)", secs(reboot)));
            floor_h.push(wall);
            floor_h_hello.push(hello);
            floor_h_reboot.extend(reboot);
            if let Some(Ok(init)) = &trivial_init {
                let (wall, reboot, pre) = floor_trivial(s, i, init)?;
                say(&format!("1b floor, static C init that reboots, run {n}: {wall:.2} s (reboot at {} s, kernel clock started after {} s)", secs(reboot), secs(pre)));
                floor_t.push(wall);
                floor_t_reboot.extend(reboot);
                floor_t_pre.extend(pre);
            }
        }
        if r2 {
            let sample = warm_suite(s, &s.kernel_args)?;
            say(&format!(
                "2 warm suite run {n}: {:.1} s{}",
                sample.total,
                if sample.ok {
                    ""
                } else {
                    " (the suite reported failures)"
                }
            ));
            suite.push(sample);
            let one_at_a_time = KernelArgs {
                jobs: Some(1),
                ..s.kernel_args.clone()
            };
            let sample = warm_suite(s, &one_at_a_time)?;
            say(&format!(
                "2.seq warm suite, --jobs 1, run {n}: {:.1} s{}",
                sample.total,
                if sample.ok {
                    ""
                } else {
                    " (the suite reported failures)"
                }
            ));
            suite_seq.push(sample);
        }
        if r3 {
            // What `cargo xtask build-kernel --no-install` does: host tools, then the kernel.
            let started = Instant::now();
            let mut session = Session::for_kernels(&s.kernel_args);
            session.host_tools()?;
            let resolved = session.kernels(&s.kernel_args)?.remove(0);
            let secs = started.elapsed().as_secs_f64();
            if resolved.build_secs.is_some() {
                noop_made += 1;
            }
            say(&format!("3 no-op build-kernel run {n}: {secs:.2} s"));
            noop.push(secs);
        }
    }
    let mut rows = vec![];
    let floor_1b = Row::new(
        1,
        "1b",
        "boot floor: static C init, reboot(RB_AUTOBOOT) at once",
        floor_t,
        "same QEMU command line (QemuConfig::args), initramfs holds only /init; QEMU start → exit",
    );
    let floor_1b = match &trivial_init {
        Some(Err(e)) => Row::text(
            1,
            "1b",
            "boot floor: static C init",
            format!("not measured: {e}"),
        ),
        _ => floor_1b,
    };
    let floor = floor_1b.median;
    if r1 {
        let floor_h_row = Row::new(
            1,
            "1a",
            "boot floor of this harness: ue-init, plan with no scenarios",
            floor_h,
            "QEMU start → QEMU exit (vm::run wall); runner says hello/done, VM reboots",
        )
        .ratio_to(floor, "1b");
        rows.push(floor_h_row);
        rows.push(Row::new(
            1,
            "1a.boot",
            "  guest uptime at the runner's hello",
            floor_h_hello,
            "kernel boot + init until the runner starts (guest clock)",
        ));
        rows.push(Row::new(1, "1a.reboot", "  guest uptime at `reboot: Restarting system`", floor_h_reboot, "printk time; the rest of the wall is QEMU start, firmware, decompression before the clock, exit"));
        rows.push(floor_1b);
        if !floor_t_reboot.is_empty() {
            rows.push(Row::new(
                1,
                "1b.reboot",
                "  guest uptime at `reboot: Restarting system`",
                floor_t_reboot,
                "printk time",
            ));
        }
        if !floor_t_pre.is_empty() {
            rows.push(Row::new(
                1,
                "1b.pre",
                "  before the kernel's clock starts (QEMU start, qboot, bzImage decompression)",
                floor_t_pre,
                "host time of the first console line − its printk time",
            ));
        }
    }
    let floor = floor.or_else(|| rows.iter().find(|r| r.id == "1a").and_then(|r| r.median));
    if r2 {
        let failed = suite.iter().filter(|x| !x.ok).count();
        let scen_n = suite.first().map_or(0, |x| x.verdicts);
        let note = format!(
            "what `cargo xtask test --no-install` runs, called in-process; kernel and guest built; {scen_n} verdicts per run{}",
            if failed > 0 { format!("; {failed} run(s) reported failing scenarios (logs in the bench folder)") } else { String::new() }
        );
        let col = |f: fn(&SuiteSample) -> f64| suite.iter().map(f).collect::<Vec<_>>();
        rows.push(
            Row::new(2, "2", "warm suite, end to end", col(|x| x.total), note)
                .ratio_to(floor, "floor"),
        );
        let jobs = s.kernel_args.jobs.map_or(s.opts.jobs, |j| j as u32);
        rows.push(
            Row::new(
                2,
                "2.seq",
                "  the same with `--jobs 1` (scenarios one at a time)",
                suite_seq.iter().map(|x| x.total).collect(),
                format!(
                    "row 2 runs up to {jobs} scenarios side by side on {} vCPUs; interleaved with it run by run",
                    s.opts.cpus
                ),
            )
            .ratio_to(floor, "floor"),
        );
        rows.push(Row::new(
            2,
            "2.seq.scen",
            "    scenarios with `--jobs 1`, guest clock hello → done",
            suite_seq.iter().map(|x| x.done - x.hello).collect(),
            "guest_done_ms − guest_hello_ms",
        ));
        rows.push(Row::new(
            2,
            "2.out",
            "  outside the VM (cargo guest check, cache lookup, initramfs, reports)",
            col(|x| x.total - x.vm),
            "total − VM wall",
        ));
        rows.push(Row::new(
            2,
            "2.prep",
            "    of which before the boot step (kernel cache lookup + guest `cargo build` check)",
            col(|x| x.prep),
            "from the session's start to the boot",
        ));
        rows.push(
            Row::new(
                2,
                "2.vm",
                "  VM wall (QEMU start → exit)",
                col(|x| x.vm),
                "from results.json report.wall_ms",
            )
            .ratio_to(floor, "floor"),
        );
        rows.push(Row::new(
            2,
            "2.boot",
            "    guest boot until the runner's hello",
            col(|x| x.hello),
            "report.guest_hello_ms",
        ));
        rows.push(Row::new(
            2,
            "2.scen",
            "    scenarios, guest clock hello → done",
            col(|x| x.done - x.hello),
            "guest_done_ms − guest_hello_ms (side by side: less than their sum)",
        ));
        rows.push(Row::new(
            2,
            "2.sum",
            "    Σ scenario durations (guest-reported)",
            col(|x| x.scenarios),
            "Σ verdicts' duration_us; over 2.scen = how much ran side by side",
        ));
        rows.push(Row::new(
            2,
            "2.exit",
            "    before the guest clock starts + after done (QEMU start, firmware, power-off)",
            col(|x| x.vm - x.done),
            "VM wall − guest_done_ms",
        ));
    }
    if r3 {
        let note = if noop_made == 0 {
            "no make ran in any run".to_owned()
        } else {
            format!("make RAN in {noop_made} run(s): the cache missed")
        };
        rows.push(Row::new(
            3,
            "3",
            "no-op `cargo xtask build-kernel --no-install` (in-process)",
            noop,
            note,
        ));
    }
    Ok(rows)
}
