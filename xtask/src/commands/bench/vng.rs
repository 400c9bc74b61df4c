//! Row 7: virtme-ng on the same kernel and the same scenario plan as this harness, and the
//! bench's way to run an outside command with a time limit and its output in log files.

use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use harness::channel::{Event, Outcome, Plan, Record};
use harness::model::{KernelUnderTest, Verdict};
use harness::run::Selection;

use crate::kernel::build::{BuildRequest, Source};
use crate::session::Session;
use crate::sys::proc::{self, Wait, Waited};
use crate::sys::progress::Progress;

use super::table::Row;
use super::Group;
use super::{say, Setup};

/// Limits for the commands the bench runs: generous, but every wait ends.
pub(super) const VNG_LIMIT: Duration = Duration::from_secs(6 * 60);

// Row 7: virtme-ng against this harness, same kernel, same scenarios.

const WHAT: &str = "virtme-ng (`vng --run`) vs this harness, same kernel and scenarios";

pub(super) fn rows(s: &Setup, runs: usize, session: &mut Session) -> anyhow::Result<Vec<Row>> {
    let version = match vng_version() {
        Ok(v) => v,
        Err(why) => return Ok(vec![Row::text(Group::Vng, "7", WHAT, why)]),
    };
    let (kernel, bzimage, build_note) = vng_kernel(s, session)?;
    let vng = Vng {
        plan_path: write_plan(s)?,
        runner: s.opts.guest_bin_dir.join("ue-scenarios"),
        bzimage,
        kernel,
        build_note,
    };
    let (extra, way) = match find_way(s, &vng)? {
        Way::Found { extra, name } => (extra, name),
        Way::NoneWorked(tried) => {
            return Ok(vec![Row::text(
                Group::Vng,
                "7",
                WHAT,
                format!(
                    "vng {version} could not run the scenarios on this machine: {}",
                    tried.join("; ")
                ),
            )])
        }
    };
    side_by_side(s, runs, &vng, extra, &way, &version)
}

/// `vng --version`, or why vng is not measured.
fn vng_version() -> Result<String, String> {
    let version = Command::new("vng")
        .arg("--version")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    match version {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned()),
        Ok(o) => Err(format!(
            "not measured: `vng --version` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!(
            "not measured: vng not found ({e}); `pip install virtme-ng`"
        )),
    }
}

/// The same 6.12 package, with the fragment vng needs on top of the suite's two: the kernel,
/// its bzImage, and whether it was built now.
fn vng_kernel(
    s: &Setup,
    session: &mut Session,
) -> anyhow::Result<(KernelUnderTest, std::path::PathBuf, String)> {
    let cfg = session.configs.clone();
    let list = session.kernel_list()?;
    let spec = &list.kernels[&list.default];
    let aptc = crate::kernel::apt::PrivateApt::new(&s.cache);
    aptc.update(
        &list.all_suites(),
        &list.all_packages(),
        &mut session.progress,
    )?;
    let entry = aptc.newest(&spec.package)?;
    let fetch =
        |p: &mut Progress| crate::kernel::source::fetch_pristine(&aptc, &s.cache, &entry, p);
    let mut fragments = spec.fragment_paths(&cfg);
    fragments.push(cfg.join("vng.config"));
    let req = BuildRequest {
        label: format!("{}+vng", list.default),
        source: Source::Pristine {
            identity: format!(
                "deb:{}={} sha256:{}",
                entry.package, entry.version, entry.sha256
            ),
            fetch: &fetch,
        },
        fragments,
        patches: spec.patch_paths(&cfg),
        extra_patches: 0,
        absent: spec.absent.clone(),
        kconfig: vec![],
        jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
        ccache: s.kernel_args.ccache,
        arch: harness::arch::Arch::X86_64,
        drop: vec![],
    };
    let built = crate::kernel::build::build(&s.cache, &req, &mut session.progress)?;
    let build_note = if built.ran_make {
        format!("built now in {:.0} s", built.record.build_secs)
    } else {
        "from the cache".into()
    };
    let kernel = KernelUnderTest {
        label: req.label.clone(),
        bzimage: built.bzimage.clone(),
        config: Some(built.config.clone()),
        provenance: format!("{} {} + vng.config", entry.package, entry.version),
        identity: format!(
            "deb:{}={} sha256:{} +vng.config",
            entry.package, entry.version, entry.sha256
        ),
        kselftests: vec![],
        expected: spec.expectation(&list.default),
        arch: harness::arch::Arch::X86_64,
    };
    Ok((kernel, built.bzimage, build_note))
}

/// vng runs ue-scenarios from the host's root filesystem, with the suite's own plan; the
/// records come back on vng's stdout (the runner writes them to stdout). Returns the plan's path.
fn write_plan(s: &Setup) -> anyhow::Result<std::path::PathBuf> {
    let k = s.opts.accel.slowdown();
    let plan = Plan {
        scenarios: s.scenarios.iter().map(|x| x.name.clone()).collect(),
        scenario_timeout_ms: (s.opts.scenario_timeout * k).as_millis() as u64,
        poll_deadline_ms: (s.opts.poll_deadline * k).as_millis() as u64,
        kselftests: vec![],
        stop_at_first_failure: false,
        stop_on: vec![],
        jobs: 1,
        guest_tests: vec![],
        hang_limit_ms: s.opts.guest_hang_limit().as_millis() as u64,
        defer: vec![],
    };
    let plan_path = s.dir.join("vng-plan.json");
    std::fs::write(&plan_path, serde_json::to_vec_pretty(&plan)?)
        .with_context(|| format!("write {}", plan_path.display()))?;
    // ue-init mounts tracefs for the harness; under vng the command does it itself. The records
    // go to a file in the bench folder, shared read-write (--rwdir): without udev, vng's init
    // finds no virtio-serial ports for the command's output and falls back to the serial
    // console, which vng sends to /dev/null unless -v. Without ACPI (tinyconfig) vng's power-off
    // only halts and QEMU would wait forever: the command ends the VM with a SysRq reboot, which
    // vng's -no-reboot turns into QEMU exiting (vng then exits 255: it got no return code).
    Ok(plan_path)
}

/// What every vng run shares.
struct Vng {
    plan_path: std::path::PathBuf,
    runner: std::path::PathBuf,
    bzimage: std::path::PathBuf,
    kernel: KernelUnderTest,
    build_note: String,
}

impl Vng {
    /// vng's command line for one run whose records go to `records`.
    fn command(&self, s: &Setup, extra: &[&str], records: &Path) -> Command {
        let _ = std::fs::remove_file(records);
        let exec = format!(
            "mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null; {} --plan {} > {}; echo b > /proc/sysrq-trigger",
            self.runner.display(),
            self.plan_path.display(),
            records.display()
        );
        let mut c = Command::new("vng");
        c.arg("--run").arg(&self.bzimage);
        if s.opts.accel == harness::qemu::Accel::Tcg {
            c.arg("--disable-kvm");
        }
        c.args([
            "--memory",
            &format!("{}M", s.opts.memory_mib),
            "--cpus",
            &s.opts.cpus.to_string(),
        ]);
        c.arg(format!("--rwdir={}", s.dir.display()));
        c.args(extra);
        // Without CONFIG_BLOCK the kernel mounts a 9p root only when root= names its tag; vng
        // leaves root= out for 9p (its configs have CONFIG_BLOCK, where /dev/root is implied).
        c.args(["--append", "root=/dev/root"]);
        c.args(["--exec", &exec]);
        c
    }
}

fn read_records(p: &Path) -> (bool, usize, usize) {
    records(&String::from_utf8_lossy(
        &std::fs::read(p).unwrap_or_default(),
    ))
}

/// How vng boots on this machine.
enum Way {
    /// The first way that ran the scenarios: vng's extra arguments, and what it is.
    Found {
        extra: &'static [&'static str],
        name: String,
    },
    /// None did: what each way said.
    NoneWorked(Vec<String>),
}

/// Tries vng's default (virtiofs), then 9p.
fn find_way(s: &Setup, vng: &Vng) -> anyhow::Result<Way> {
    let mut tried = vec![];
    let ways: [(&[&str], &str); 2] = [(&[], "vng's default"), (&["--force-9p"], "9p (--force-9p)")];
    for (extra, name) in ways {
        let rec = s.dir.join(format!(
            "vng-probe-{}.jsonl",
            if extra.is_empty() { "default" } else { "9p" }
        ));
        let out = run_limited(
            vng.command(s, extra, &rec),
            VNG_LIMIT,
            &rec.with_extension(""),
            "vng",
        )?;
        let (hello, ends, passes) = read_records(&rec);
        if hello && ends > 0 {
            say(&format!(
                "7 vng works with {name}: {passes}/{ends} scenarios passed, {:.1} s",
                out.secs
            ));
            // vng picks 9p by itself when it cannot use virtiofsd (here: QEMU 7.2's C daemon,
            // which vng refuses, or no KVM): its --dry-run command line says which it used.
            let mut dry = vng.command(s, extra, &rec);
            dry.arg("--dry-run");
            let dry = run_limited(
                dry,
                Duration::from_secs(60),
                &s.dir.join("vng-dry-run"),
                "vng --dry-run",
            )?;
            let way =
                if dry.stdout.contains("rootfstype=9p") || dry.stderr.contains("rootfstype=9p") {
                    "9p (vng's choice: no usable virtiofsd)".to_owned()
                } else if dry.stdout.contains("rootfstype=virtiofs")
                    || dry.stderr.contains("rootfstype=virtiofs")
                {
                    "virtiofs".to_owned()
                } else {
                    name.to_owned()
                };
            return Ok(Way::Found { extra, name: way });
        }
        let tail: String = out
            .stderr
            .lines()
            .chain(out.stdout.lines())
            .filter(|l| !l.trim().is_empty())
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" / ");
        say(&format!(
            "7 vng with {name} did not run the scenarios ({}): {tail}",
            out.status
        ));
        tried.push(format!(
            "{name}: {} — {}",
            out.status,
            tail.chars().take(300).collect::<String>()
        ));
    }
    Ok(Way::NoneWorked(tried))
}

/// This harness and vng, run by run on the vng kernel: rows 7a and 7b.
fn side_by_side(
    s: &Setup,
    runs: usize,
    vng: &Vng,
    extra: &[&str],
    way: &str,
    version: &str,
) -> anyhow::Result<Vec<Row>> {
    let (mut ours, mut theirs) = (vec![], vec![]);
    let (mut our_pass, mut their_pass, mut their_ends) = (0, 0, 0);
    for i in 0..runs {
        let started = Instant::now();
        let sel = Selection {
            scenarios: s.scenarios.clone(),
            kselftests: vec![],
            ..Default::default()
        };
        let run = harness::run::run_kernel(&vng.kernel, &s.opts, &sel)?;
        let w = started.elapsed().as_secs_f64();
        our_pass = run
            .verdicts
            .iter()
            .filter(|v| v.verdict == Verdict::Pass)
            .count();
        ours.push(w);
        let rec = s.dir.join(format!("vng-{i}.jsonl"));
        let out = run_limited(
            vng.command(s, extra, &rec),
            VNG_LIMIT,
            &rec.with_extension(""),
            "vng",
        )?;
        let (_, ends, passes) = read_records(&rec);
        (their_pass, their_ends) = (passes, ends);
        theirs.push(out.secs);
        say(&format!("7 run {}/{runs}: harness {w:.1} s ({our_pass} pass), vng {:.1} s ({passes}/{ends} pass)", i + 1, out.secs));
    }
    let ours_row = Row::new(
        Group::Vng,
        "7a",
        "this harness on the vng kernel (initramfs, one boot)",
        ours,
        format!(
            "harness::run::run_kernel, {our_pass}/{} pass; kernel 6.12 + vng.config, {}",
            s.scenarios.len(),
            vng.build_note
        ),
    );
    let ours_median = ours_row.median;
    Ok(vec![
        ours_row,
        Row::new(Group::Vng, "7b", &format!("vng {version}, same kernel, same ue-scenarios plan"), theirs, format!("`vng --run bzImage{} --rwdir BENCH --append root=/dev/root --exec 'ue-scenarios --plan … > BENCH/…; SysRq reboot'`, root over {way}; {their_pass}/{their_ends} pass", if s.opts.accel == harness::qemu::Accel::Tcg { " --disable-kvm" } else { "" }))
            .ratio_to(ours_median, "7a"),
    ])
}

/// From a runner's stdout: whether it said hello, how many scenarios ended, how many passed.
pub(super) fn records(stdout: &str) -> (bool, usize, usize) {
    let (mut hello, mut ends, mut passes) = (false, 0, 0);
    for ev in harness::channel::parse_all(stdout.as_bytes()) {
        match ev {
            Event::Record(Record::Hello { .. }) => hello = true,
            Event::Record(Record::End(end)) => {
                ends += 1;
                if end.outcome == Outcome::Pass {
                    passes += 1;
                }
            }
            _ => {}
        }
    }
    (hello, ends, passes)
}

// Running commands with a limit.

pub(super) struct Limited {
    pub(super) secs: f64,
    pub(super) status: ExitStatus,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

/// Runs `cmd` in its own process group with stdout and stderr in `<log>.stdout/.stderr`; kills
/// the group when `limit` runs out or the bench is interrupted. QEMU under it dies with its
/// parent (PR_SET_PDEATHSIG), and so does the command if the bench itself dies.
pub(super) fn run_limited(
    mut cmd: Command,
    limit: Duration,
    log: &Path,
    what: &str,
) -> anyhow::Result<Limited> {
    let out_path = log.with_extension("stdout");
    let err_path = log.with_extension("stderr");
    let out_f = std::fs::File::create(&out_path)
        .with_context(|| format!("create {}", out_path.display()))?;
    let err_f = std::fs::File::create(&err_path)
        .with_context(|| format!("create {}", err_path.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(out_f)
        .stderr(err_f)
        .process_group(0);
    harness::vm::die_with_parent(&mut cmd);
    let started = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("start {what}"))?;
    let status = match proc::wait_for(
        &mut child,
        Wait::until(started + limit).or_interrupt(),
        || false,
    )? {
        Waited::Exited(st) => st,
        Waited::Interrupted(_) => bail!(
            "interrupted while running {what}; stopped it (log: {})",
            err_path.display()
        ),
        Waited::TimedOut(_) | Waited::Ready => bail!(
            "{what} ran longer than {} s and was killed; its output is in {}",
            limit.as_secs(),
            err_path.display()
        ),
    };
    let secs = started.elapsed().as_secs_f64();
    // Anything the command left in its group (a stray QEMU) must not run into the next step.
    proc::kill_group(child.id());
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    let _ = std::io::stderr().flush();
    Ok(Limited {
        secs,
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
    })
}
