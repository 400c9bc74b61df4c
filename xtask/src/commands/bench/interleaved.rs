//! Rows 1–3 measured run by run, interleaved, so that they see the same background load: the
//! boot floors, the warm suite (side by side and with `--jobs 1`), a no-op `build-kernel`.

use std::time::Instant;

use crate::args::{KernelArgs, RunArgs};
use crate::session::Session;

use super::floor::{floor_harness, floor_trivial, trivial_init};
use super::suite::{warm_suite, warm_suite_with, SuiteSample};
use super::table::{secs, Row};
use super::Group;
use super::{say, Setup};

/// Which of rows 1–3 to measure.
pub(super) struct Wanted {
    pub(super) floor: bool,
    pub(super) suite: bool,
    pub(super) noop_build: bool,
}

/// Rows 1–3, and the boot floor the later rows compare with (1b's median, else 1a's).
pub(super) struct Interleaved {
    pub(super) rows: Vec<Row>,
    pub(super) floor: Option<f64>,
}

/// Every run's samples of rows 1–3.
#[derive(Default)]
struct Measured {
    /// The static C init for row 1b, or why it could not be built (`None`: row 1 not wanted).
    trivial_init: Option<Result<Vec<u8>, String>>,
    floor_harness: Vec<f64>,
    floor_harness_hello: Vec<f64>,
    floor_harness_reboot: Vec<f64>,
    floor_trivial: Vec<f64>,
    floor_trivial_reboot: Vec<f64>,
    floor_trivial_pre: Vec<f64>,
    suite: Vec<SuiteSample>,
    suite_seq: Vec<SuiteSample>,
    suite_no_witnesses: Vec<SuiteSample>,
    noop: Vec<f64>,
    noop_made: usize,
}

pub(super) fn rows(s: &Setup, runs: usize, want: &Wanted) -> anyhow::Result<Interleaved> {
    let m = measure(s, runs, want)?;
    let (mut rows, floor) = floor_rows(&m, want.floor);
    if want.suite {
        rows.extend(suite_rows(s, &m, floor));
    }
    if want.noop_build {
        rows.push(noop_row(&m));
    }
    Ok(Interleaved { rows, floor })
}

/// Runs the wanted rows' measurements one run of each after the other, `runs` times.
fn measure(s: &Setup, runs: usize, want: &Wanted) -> anyhow::Result<Measured> {
    let mut m = Measured {
        trivial_init: want.floor.then(|| trivial_init(&s.dir)),
        ..Measured::default()
    };
    for i in 0..runs {
        let n = format!("{}/{runs}", i + 1);
        if want.floor {
            let (wall, hello, reboot) = floor_harness(s, i)?;
            say(&format!("1a floor, harness init, empty plan, run {n}: {wall:.2} s (guest hello at {hello:.2} s, reboot at {} s)", secs(reboot)));
            m.floor_harness.push(wall);
            m.floor_harness_hello.push(hello);
            m.floor_harness_reboot.extend(reboot);
            if let Some(Ok(init)) = &m.trivial_init {
                let (wall, reboot, pre) = floor_trivial(s, i, init)?;
                say(&format!("1b floor, static C init that reboots, run {n}: {wall:.2} s (reboot at {} s, kernel clock started after {} s)", secs(reboot), secs(pre)));
                m.floor_trivial.push(wall);
                m.floor_trivial_reboot.extend(reboot);
                m.floor_trivial_pre.extend(pre);
            }
        }
        if want.suite {
            let sample = warm_suite(s, &s.kernel_args)?;
            say_suite(&format!("2 warm suite run {n}"), &sample);
            m.suite.push(sample);
            let one_at_a_time = KernelArgs {
                jobs: Some(1),
                ..s.kernel_args.clone()
            };
            let sample = warm_suite(s, &one_at_a_time)?;
            say_suite(&format!("2.seq warm suite, --jobs 1, run {n}"), &sample);
            m.suite_seq.push(sample);
            let no_witnesses = RunArgs {
                append: [
                    s.run_args.append.clone(),
                    vec![harness::qemu::SLUB_DEBUG_OFF.to_owned()],
                ]
                .concat(),
                ..s.run_args.clone()
            };
            let sample = warm_suite_with(s, &s.kernel_args, &no_witnesses)?;
            say_suite(
                &format!("2.nowit warm suite without the SLUB witnesses, run {n}"),
                &sample,
            );
            m.suite_no_witnesses.push(sample);
        }
        if want.noop_build {
            // What `cargo xtask build-kernel --no-install` does: host tools, then the kernel.
            let started = Instant::now();
            let mut session = Session::for_kernels(&s.kernel_args);
            session.host_tools()?;
            let resolved = session.kernels(&s.kernel_args)?.remove(0);
            let secs = started.elapsed().as_secs_f64();
            if resolved.build_secs.is_some() {
                m.noop_made += 1;
            }
            say(&format!("3 no-op build-kernel run {n}: {secs:.2} s"));
            m.noop.push(secs);
        }
    }
    Ok(m)
}

/// One warm suite run's line: its time, and whether the suite reported failures.
fn say_suite(what: &str, sample: &SuiteSample) {
    let failed = if sample.ok {
        ""
    } else {
        " (the suite reported failures)"
    };
    say(&format!("{what}: {:.1} s{failed}", sample.total));
}

/// Row 1's rows (when wanted) and the floor: 1b's median, else 1a's.
fn floor_rows(m: &Measured, want_floor: bool) -> (Vec<Row>, Option<f64>) {
    let mut rows = vec![];
    let floor_1b = Row::new(
        Group::BootFloor,
        "1b",
        "boot floor: static C init, reboot(RB_AUTOBOOT) at once",
        m.floor_trivial.clone(),
        "same QEMU command line (QemuConfig::args), initramfs holds only /init; QEMU start → exit",
    );
    let floor_1b = match &m.trivial_init {
        Some(Err(e)) => Row::text(
            Group::BootFloor,
            "1b",
            "boot floor: static C init",
            format!("not measured: {e}"),
        ),
        _ => floor_1b,
    };
    let floor = floor_1b.median;
    if want_floor {
        let floor_h_row = Row::new(
            Group::BootFloor,
            "1a",
            "boot floor of this harness: ue-init, plan with no scenarios",
            m.floor_harness.clone(),
            "QEMU start → QEMU exit (vm::run wall); runner says hello/done, VM reboots",
        )
        .ratio_to(floor, "1b");
        rows.push(floor_h_row);
        rows.push(Row::new(
            Group::BootFloor,
            "1a.boot",
            "  guest uptime at the runner's hello",
            m.floor_harness_hello.clone(),
            "kernel boot + init until the runner starts (guest clock)",
        ));
        rows.push(Row::new(Group::BootFloor, "1a.reboot", "  guest uptime at `reboot: Restarting system`", m.floor_harness_reboot.clone(), "printk time; the rest of the wall is QEMU start, firmware, decompression before the clock, exit"));
        rows.push(floor_1b);
        if !m.floor_trivial_reboot.is_empty() {
            rows.push(Row::new(
                Group::BootFloor,
                "1b.reboot",
                "  guest uptime at `reboot: Restarting system`",
                m.floor_trivial_reboot.clone(),
                "printk time",
            ));
        }
        if !m.floor_trivial_pre.is_empty() {
            rows.push(Row::new(
                Group::BootFloor,
                "1b.pre",
                "  before the kernel's clock starts (QEMU start, qboot, bzImage decompression)",
                m.floor_trivial_pre.clone(),
                "host time of the first console line − its printk time",
            ));
        }
    }
    let floor = floor.or_else(|| rows.iter().find(|r| r.id == "1a").and_then(|r| r.median));
    (rows, floor)
}

/// Row 2: the warm suite, side by side and one at a time, and where its time went.
fn suite_rows(s: &Setup, m: &Measured, floor: Option<f64>) -> Vec<Row> {
    let mut rows = vec![];
    let failed = m.suite.iter().filter(|x| !x.ok).count();
    let scen_n = m.suite.first().map_or(0, |x| x.verdicts);
    let note = format!(
        "what `cargo xtask test --no-install` runs, called in-process; kernel and guest built; {scen_n} verdicts per run{}",
        if failed > 0 { format!("; {failed} run(s) reported failing scenarios (logs in the bench folder)") } else { String::new() }
    );
    let col = |f: fn(&SuiteSample) -> f64| m.suite.iter().map(f).collect::<Vec<_>>();
    rows.push(
        Row::new(
            Group::WarmSuite,
            "2",
            "warm suite, end to end",
            col(|x| x.total),
            note,
        )
        .ratio_to(floor, "floor"),
    );
    let jobs = s.kernel_args.jobs.map_or(s.opts.jobs, |j| j as u32);
    rows.push(
        Row::new(
            Group::WarmSuite,
            "2.seq",
            "  the same with `--jobs 1` (scenarios one at a time)",
            m.suite_seq.iter().map(|x| x.total).collect(),
            format!(
                "row 2 runs up to {jobs} scenarios side by side on {} vCPUs; interleaved with it run by run",
                s.opts.cpus
            ),
        )
        .ratio_to(floor, "floor"),
    );
    let with = rows.first().and_then(|r| r.median);
    let without = Row::new(
        Group::WarmSuite,
        "2.nowit",
        "  the same without the SLUB witnesses (`--append slub_debug=-`)",
        m.suite_no_witnesses.iter().map(|x| x.total).collect(),
        String::new(),
    )
    .ratio_to(floor, "floor");
    let note = match (with, without.median) {
        (Some(a), Some(b)) if b > 0.0 => format!(
            "row 2 takes {:.2}× this: the cost of slub_debug=FZPU, which turns a use after free or an overrun into a kernel report; interleaved with row 2 run by run",
            a / b
        ),
        _ => "interleaved with row 2 run by run".to_owned(),
    };
    rows.push(Row { note, ..without });
    rows.push(Row::new(
        Group::WarmSuite,
        "2.seq.scen",
        "    scenarios with `--jobs 1`, guest clock hello → done",
        m.suite_seq.iter().map(|x| x.done - x.hello).collect(),
        "guest_done_ms − guest_hello_ms",
    ));
    rows.push(Row::new(
        Group::WarmSuite,
        "2.out",
        "  outside the VM (cargo guest check, cache lookup, initramfs, reports)",
        col(|x| x.total - x.vm),
        "total − VM wall",
    ));
    rows.push(Row::new(
        Group::WarmSuite,
        "2.prep",
        "    of which before the boot step (kernel cache lookup + guest `cargo build` check)",
        col(|x| x.prep),
        "from the session's start to the boot",
    ));
    rows.push(
        Row::new(
            Group::WarmSuite,
            "2.vm",
            "  VM wall (QEMU start → exit)",
            col(|x| x.vm),
            "from results.json report.wall_ms",
        )
        .ratio_to(floor, "floor"),
    );
    rows.push(Row::new(
        Group::WarmSuite,
        "2.boot",
        "    guest boot until the runner's hello",
        col(|x| x.hello),
        "report.guest_hello_ms",
    ));
    rows.push(Row::new(
        Group::WarmSuite,
        "2.scen",
        "    scenarios, guest clock hello → done",
        col(|x| x.done - x.hello),
        "guest_done_ms − guest_hello_ms (side by side: less than their sum)",
    ));
    rows.push(Row::new(
        Group::WarmSuite,
        "2.sum",
        "    Σ scenario durations (guest-reported)",
        col(|x| x.scenarios),
        "Σ verdicts' duration_us; over 2.scen = how much ran side by side",
    ));
    rows.push(Row::new(
        Group::WarmSuite,
        "2.exit",
        "    before the guest clock starts + after done (QEMU start, firmware, power-off)",
        col(|x| x.vm - x.done),
        "VM wall − guest_done_ms",
    ));
    rows
}

/// Row 3: a no-op `build-kernel`.
fn noop_row(m: &Measured) -> Row {
    let note = if m.noop_made == 0 {
        "no make ran in any run".to_owned()
    } else {
        format!("make RAN in {} run(s): the cache missed", m.noop_made)
    };
    Row::new(
        Group::NoopBuild,
        "3",
        "no-op `cargo xtask build-kernel --no-install` (in-process)",
        m.noop.clone(),
        note,
    )
}
