//! The kernel developer's loop, end to end, as `cargo xtask selftest` cases (`devloop::*`):
//! each runs this program as a developer would (`test --kernel-tree`, `rerun`, `shell`,
//! `--gdb`, `bisect`) on one scratch git tree made from the pristine 6.12 source, configured
//! in place. All of them share that tree's build in the cache: the first case pays one
//! kernel build, the others are incremental (the debug-info build of `--gdb` is a second full
//! one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};

use crate::sys::proc::{self, git, Waited};

/// The mutant the bisect's history carries, and a trial that catches it (its `Must catch:`).
const MUTANT: &str = "fork-no-dup.patch";
const CATCHES: &str = "fork::child_inherits_registration";
/// A quick scenario that passes on any kernel with user_events.
const QUICK: &str = "basic::present";
const TRACE_FILE: &str = "kernel/trace/trace_events_user.c";

/// The scratch tree's own git settings: a fixed author for the bisect's commits, and no
/// background repacking of the big first commit while kernels build.
const GIT_SETTINGS: [(&str, &str); 4] = [
    ("user.name", "ue-selftest"),
    ("user.email", "ue@localhost"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
];

fn configure_git(tree: &Path) -> anyhow::Result<()> {
    for (key, value) in GIT_SETTINGS {
        git(tree, &["config", key, value])?;
    }
    Ok(())
}

/// The shared tree: the pristine source committed as `main`, then `make tinyconfig` in
/// place (so it is configured, as every developer's tree is). Made once; later calls put it
/// back on `main` with the tracked files as committed.
pub fn ensure_tree(tree: &Path, pristine: &Path) -> anyhow::Result<()> {
    crate::sys::host_tools::ensure_tools(
        &crate::cache::cache_dir(None),
        &[&crate::sys::host_tools::GIT],
        true,
        crate::sys::host_tools::Need::Boot,
    )?;
    if tree.join(".git").exists() && tree.join(".config").exists() {
        // Not `checkout -f`: that writes every file anew, and a developer's tree is never
        // treated so. A case that failed half-way may have left the history branch out.
        configure_git(tree)?;
        if git(tree, &["rev-parse", "--abbrev-ref", "HEAD"])? != "main" {
            git(tree, &["checkout", "-q", "main"])?;
        }
        return Ok(());
    }
    let tmp = tree.with_file_name(".linux-tree-staging");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.parent().unwrap())?;
    // Hard links: git and make replace files, they never write into the pristine ones.
    let st = Command::new("cp")
        .arg("-al")
        .arg(pristine)
        .arg(&tmp)
        .status()?;
    ensure!(st.success(), "cp -al {} failed", pristine.display());
    let _ = std::fs::remove_file(tmp.join(".ue-complete"));
    git(&tmp, &["init", "-q", "-b", "main"])?;
    configure_git(&tmp)?;
    // Debian's tarball ignores its whole top level (`/*` in .gitignore): add by force.
    git(&tmp, &["add", "-f", "-A"])?;
    git(&tmp, &["commit", "-q", "-m", "pristine linux 6.12"])?;
    let out = Command::new("make")
        .arg("-C")
        .arg(&tmp)
        .arg("tinyconfig")
        .output()?;
    ensure!(
        out.status.success(),
        "make tinyconfig: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(tree);
    std::fs::rename(&tmp, tree)?;
    Ok(())
}

/// Writes `text` as a new file in place of `path` (never into it: the tree's files are hard
/// links to the pristine source).
fn replace_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("ue-edit");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// What a run of this program said, for a case to check.
pub(super) struct Output {
    pub(super) ok: bool,
    /// The exit status (None: killed by a signal): 101 is failed trials, 2 a harness error.
    pub(super) code: Option<i32>,
    pub(super) stdout: String,
    pub(super) stderr: String,
    secs: f64,
}

pub(super) fn xtask(exe: &Path, args: &[&str]) -> anyhow::Result<Output> {
    xtask_with_path(exe, args, None)
}

/// [`xtask`] with `first` before the other folders of PATH.
fn xtask_with_path(exe: &Path, args: &[&str], first: Option<&Path>) -> anyhow::Result<Output> {
    let started = Instant::now();
    let mut cmd = Command::new(exe);
    if let Some(dir) = first {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let joined = std::env::join_paths(
            std::iter::once(dir.to_owned()).chain(std::env::split_paths(&path)),
        )?;
        cmd.env("PATH", joined);
    }
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {} {}", exe.display(), args.join(" ")))?;
    Ok(Output {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        secs: started.elapsed().as_secs_f64(),
    })
}

pub(super) fn tail(s: &str) -> String {
    let l: Vec<&str> = s.lines().collect();
    l[l.len().saturating_sub(25)..].join("\n")
}

/// The run folder a `test` printed (`artifacts in DIR`).
pub(super) fn run_dir(stderr: &str) -> anyhow::Result<PathBuf> {
    stderr
        .lines()
        .filter_map(|l| l.split("artifacts in ").nth(1))
        .map(|d| PathBuf::from(d.trim()))
        .next_back()
        .context("no `artifacts in` line")
}

type Fingerprint = BTreeMap<PathBuf, (u64, i128, String)>;

fn same_tree(before: &Fingerprint, after: &Fingerprint) -> anyhow::Result<()> {
    let changed: Vec<String> = before
        .iter()
        .filter(|(p, v)| after.get(*p) != Some(v))
        .map(|(p, _)| format!("changed or removed: {}", p.display()))
        .chain(
            after
                .keys()
                .filter(|p| !before.contains_key(*p))
                .map(|p| format!("added: {}", p.display())),
        )
        .take(10)
        .collect();
    ensure!(
        changed.is_empty(),
        "the tree was written to:\n{}",
        changed.join("\n")
    );
    Ok(())
}

/// The build record of the tree's cache entry the run's provenance names.
fn build_steps(run: &Path) -> anyhow::Result<usize> {
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("results.json"))?)?;
    let prov = results["kernel"]["provenance"].as_str().unwrap_or_default();
    let src = prov
        .split("built from its snapshot ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .context("no snapshot in the provenance")?;
    let entry = Path::new(src).parent().context("snapshot path")?;
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(entry.join("COMPLETE.json"))?)?;
    record["steps"]
        .as_u64()
        .map(|s| s as usize)
        .context("steps")
}

/// A tree configured in place is built, never written (every file, `.config` and `.git`
/// included, has the same size, mtime and content after); an edit of one line rebuilds
/// incrementally; the base config is named; --nocapture shows the scenario's notes.
pub fn tree_never_written_and_edit_is_incremental(exe: &Path, tree: &Path) -> anyhow::Result<()> {
    let t = tree.to_str().context("tree path")?;
    let before = crate::kernel::snapshot::fingerprint(tree)?;
    ensure!(
        before.contains_key(Path::new(".config")),
        "the tree is not configured in place"
    );
    // The fork family: it polls (wait_for), so its trials carry notes.
    let first = xtask(
        exe,
        &["test", "--kernel-tree", t, "--", "fork::", "--nocapture"],
    )?;
    ensure!(
        first.ok,
        "test on the tree failed:\n{}",
        tail(&first.stderr)
    );
    ensure!(
        first
            .stderr
            .contains("base config: tinyconfig + base.config + user_events.config"),
        "the base config is not named:\n{}",
        tail(&first.stderr)
    );
    ensure!(
        first.stdout.contains(" notes ----"),
        "--nocapture printed no notes:\n{}",
        tail(&first.stdout)
    );
    same_tree(&before, &crate::kernel::snapshot::fingerprint(tree)?)?;
    eprintln!("    first run on the tree: {:.1} s", first.secs);

    // One line of the user_events source, edited as a developer would.
    let path = tree.join(TRACE_FILE);
    let orig = std::fs::read_to_string(&path)?;
    let edited = orig.replacen(
        "#define USER_EVENTS_PREFIX_LEN",
        "/* edited by the selftest */\n#define USER_EVENTS_PREFIX_LEN",
        1,
    );
    ensure!(edited != orig, "{TRACE_FILE} has no USER_EVENTS_PREFIX_LEN");
    replace_file(&path, &edited)?;
    let after_edit = crate::kernel::snapshot::fingerprint(tree)?;
    // A scenario that polls once, its notes shown after the summary (--show-output).
    let noted = "fork::later_registrations_stay_per_process";
    let second = xtask(
        exe,
        &[
            "test",
            "--kernel-tree",
            t,
            "--",
            "--exact",
            &format!("{}::{noted}", tree_label(tree)),
            "--show-output",
        ],
    );
    let after_run = crate::kernel::snapshot::fingerprint(tree);
    // Put the file back whatever happened (the tree is shared by the other cases).
    git(tree, &["checkout", "-q", "--", TRACE_FILE])?;
    let second = second?;
    ensure!(
        second.ok,
        "test after the edit failed:\n{}",
        tail(&second.stderr)
    );
    same_tree(&after_edit, &after_run?)?;
    ensure!(
        second
            .stdout
            .contains(&format!("---- {}::{noted} notes ----", tree_label(tree))),
        "--show-output printed no notes:\n{}",
        tail(&second.stdout)
    );
    let steps = build_steps(&run_dir(&second.stderr)?)?;
    ensure!(
        steps < 100,
        "an edit of one line ran {steps} kbuild steps: not incremental"
    );
    eprintln!(
        "    edit one line → results: {:.1} s ({steps} kbuild steps)",
        second.secs
    );
    Ok(())
}

/// --keep, --console and the pass-through options: the console is streamed; the kept run holds the kernel, initramfs and a
/// command line with the options; `rerun` boots it again and reports the trial; the saved
/// command line, pasted into a shell, boots the same VM and its results land in the file
/// it names.
pub fn keep_rerun_and_paste(exe: &Path, tree: &Path) -> anyhow::Result<()> {
    let t = tree.to_str().context("tree path")?;
    let run = xtask(
        exe,
        &[
            "test",
            "--kernel-tree",
            t,
            "--keep",
            "--console",
            "--cpus",
            "1",
            "--memory",
            "384M",
            "--append",
            "ue.selftest=1",
            "--qemu-arg",
            "-device",
            "--qemu-arg",
            "virtio-rng-pci",
            "--",
            QUICK,
        ],
    )?;
    ensure!(run.ok, "test --keep failed:\n{}", tail(&run.stderr));
    ensure!(
        run.stderr.contains(&format!("ue-runner: start {QUICK}")),
        "--console streamed no console lines:\n{}",
        tail(&run.stderr)
    );
    let dir = run_dir(&run.stderr)?;
    for f in [
        "bzImage",
        "initramfs.cpio",
        "qemu-cmdline.txt",
        "rerun.json",
    ] {
        ensure!(
            dir.join(f).is_file(),
            "--keep did not keep {f} in {}",
            dir.display()
        );
    }
    let line = std::fs::read_to_string(dir.join("qemu-cmdline.txt"))?;
    for want in [
        "-smp 1",
        "-m 384",
        "ue.selftest=1",
        "-device virtio-rng-pci",
    ] {
        ensure!(line.contains(want), "the command line lacks {want}: {line}");
    }
    let rerun = xtask(exe, &["rerun", dir.to_str().unwrap(), "--", QUICK])?;
    ensure!(
        rerun.ok,
        "rerun failed:\n{}\n{}",
        tail(&rerun.stdout),
        tail(&rerun.stderr)
    );
    ensure!(
        rerun.stdout.contains("1 passed"),
        "rerun did not report the trial:\n{}",
        tail(&rerun.stdout)
    );
    // The pasted command: the last line of the file, as a person would paste it.
    let cmd = line.lines().last().unwrap_or_default();
    let results = dir.join("results-pasted.bin");
    let _ = std::fs::remove_file(&results);
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let outcome = proc::wait_with_deadline(&mut child, Instant::now() + Duration::from_secs(300))?;
    ensure!(
        matches!(outcome, Waited::Exited(_)),
        "the pasted command line did not end within 300 s"
    );
    let got = String::from_utf8_lossy(&std::fs::read(&results).unwrap_or_default()).into_owned();
    ensure!(
        got.contains(QUICK) && got.contains("done"),
        "the pasted VM wrote no result for {QUICK} to {}: {got:?}",
        results.display()
    );
    Ok(())
}

/// --kconfig: an option on top of the fragments lands in the kernel's .config (and the
/// build starts from the tree's plain build); one that no Kconfig defines is refused after
/// olddefconfig, with the option named.
pub fn kconfig_is_applied_and_checked(exe: &Path, tree: &Path) -> anyhow::Result<()> {
    let t = tree.to_str().context("tree path")?;
    let run = xtask(
        exe,
        &[
            "test",
            "--kernel-tree",
            t,
            "--kconfig",
            "CONFIG_LOG_BUF_SHIFT=16",
            "--",
            QUICK,
        ],
    )?;
    ensure!(run.ok, "test --kconfig failed:\n{}", tail(&run.stderr));
    let config = std::fs::read_to_string(run_dir(&run.stderr)?.join("kernel.config"))?;
    ensure!(
        config.lines().any(|l| l == "CONFIG_LOG_BUF_SHIFT=16"),
        "the kernel's .config lacks CONFIG_LOG_BUF_SHIFT=16"
    );
    let bad = xtask(
        exe,
        &[
            "test",
            "--kernel-tree",
            t,
            "--kconfig",
            "CONFIG_UE_NO_SUCH_OPTION=y",
            "--",
            QUICK,
        ],
    )?;
    ensure!(!bad.ok, "an option no Kconfig defines was accepted");
    ensure!(
        bad.stderr
            .contains("CONFIG_UE_NO_SUCH_OPTION=y (--kconfig:1) ended up not set")
            && bad
                .stderr
                .contains("no Kconfig file in this kernel defines it"),
        "the refusal does not name the option:\n{}",
        tail(&bad.stderr)
    );
    Ok(())
}

/// --patch on a tree goes to the snapshot (the tree is unchanged) and the mutant is caught.
pub fn patch_applies_to_the_snapshot(exe: &Path, tree: &Path, mutant: &Path) -> anyhow::Result<()> {
    let t = tree.to_str().context("tree path")?;
    let before = crate::kernel::snapshot::fingerprint(tree)?;
    let run = xtask(
        exe,
        &[
            "test",
            "--kernel-tree",
            t,
            "--patch",
            mutant.to_str().unwrap(),
            "--",
            CATCHES,
        ],
    )?;
    ensure!(
        !run.ok,
        "the mutant {} was not caught by {CATCHES}",
        mutant.display()
    );
    ensure!(
        run.stdout.contains(&format!("{CATCHES} ... FAILED")),
        "want {CATCHES} to fail:\n{}",
        tail(&run.stdout)
    );
    // A run with a failure keeps what it takes to boot it again.
    let dir = run_dir(&run.stderr)?;
    for f in [
        "bzImage",
        "initramfs.cpio",
        "qemu-cmdline.txt",
        "rerun.json",
    ] {
        ensure!(
            dir.join(f).is_file(),
            "the failed run did not keep {f} in {}",
            dir.display()
        );
    }
    same_tree(&before, &crate::kernel::snapshot::fingerprint(tree)?)?;
    Ok(())
}

/// The shell: boots to a prompt, runs a scenario there and reads its result, `exit` powers
/// the VM off (the command ends). With `patch`, on the mutant kernel.
pub fn shell_runs_a_scenario(exe: &Path, tree: &Path, patch: Option<&Path>) -> anyhow::Result<()> {
    let mut cmd = Command::new(exe);
    cmd.args(["shell", "--kernel-tree"]).arg(tree);
    if let Some(p) = patch {
        cmd.arg("--patch").arg(p);
    }
    let started = Instant::now();
    let mut p = rexpect::session::spawn_command(cmd, Some(600_000))
        .map_err(|e| anyhow::anyhow!("spawn the shell: {e}"))?;
    let e = |what: &str| {
        let what = what.to_owned();
        move |err: rexpect::error::Error| anyhow::anyhow!("{what}: {err}")
    };
    p.exp_string("ue-shell# ").map_err(e("no shell prompt"))?;
    eprintln!(
        "    shell: boot to prompt {:.1} s",
        started.elapsed().as_secs_f64()
    );
    p.send_line("ue-scenarios --list | grep -c ::")
        .map_err(e("send"))?;
    p.exp_regex(r"\n[0-9]+\r*\n")
        .map_err(e("no scenario count"))?;
    p.exp_string("ue-shell# ")
        .map_err(e("no prompt after --list"))?;
    // The sum, not the words: the terminal echoes the command line itself.
    p.send_line("ls /sys/kernel/tracing/user_events_data && echo TRACEFS-$((40+2))")
        .map_err(e("send"))?;
    p.exp_string("TRACEFS-42")
        .map_err(e("tracefs is not mounted"))?;
    // --json: the record as the host reads it (a person gets a line without it).
    p.send_line(&format!("ue-scenarios --run {QUICK} --json"))
        .map_err(e("send"))?;
    let (_, record) = p
        .exp_regex(r#"\{[^\n]*"outcome":"[a-z]+"[^\n]*\}"#)
        .map_err(e("no record from ue-scenarios --run"))?;
    ensure!(
        record.contains(r#""outcome":"pass""#),
        "{QUICK} in the shell: {record}"
    );
    p.send_line("exit").map_err(e("send exit"))?;
    p.exp_eof()
        .map_err(e("the VM did not power off after exit"))?;
    Ok(())
}

/// --gdb: QEMU waits, the printed gdb command's vmlinux matches, and Debian's gdb in batch
/// mode stops in user_events_ioctl_reg while one scenario runs.
pub fn gdb_breaks_in_ioctl_reg(exe: &Path, tree: &Path) -> anyhow::Result<()> {
    crate::sys::host_tools::ensure_tools(
        &crate::cache::cache_dir(None),
        &[&crate::sys::host_tools::GDB],
        true,
        crate::sys::host_tools::Need::Boot,
    )?;
    let port = free_port()?;
    let mut child = Command::new(exe)
        .args([
            "test",
            "--gdb",
            "--gdb-port",
            &port.to_string(),
            "--kernel-tree",
        ])
        .arg(tree)
        // A scenario that registers an event, so the breakpoint must be hit.
        .args([
            "--",
            "--exact",
            &format!("{}-gdb::{CATCHES}", tree_label(tree)),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(l);
        }
    });
    let result = (|| -> anyhow::Result<()> {
        // The debug-info build comes first: up to an hour on a cold cache.
        let deadline = Instant::now() + Duration::from_secs(3600);
        let vmlinux = loop {
            let l = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .context("the gdb command line was never printed")?;
            if let Some(rest) = l.trim().strip_prefix("gdb ") {
                break rest.split(" -ex").next().unwrap_or_default().to_owned();
            }
        };
        ensure!(Path::new(&vmlinux).is_file(), "no vmlinux at {vmlinux}");
        let out = Command::new("gdb")
            .args(["-nx", "-batch", &vmlinux])
            .args(["-ex", &format!("target remote :{port}")])
            .args(["-ex", "break user_events_ioctl_reg"])
            .args(["-ex", "continue"])
            .args(["-ex", "bt 1"])
            .args(["-ex", "delete"])
            .args(["-ex", "detach"])
            .stdin(Stdio::null())
            .output()
            .context("run gdb (apt-get install gdb)")?;
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(
            text.contains("Breakpoint 1, user_events_ioctl_reg"),
            "gdb did not stop in user_events_ioctl_reg:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    })();
    if result.is_err() {
        proc::kill_and_reap(&mut child)?;
    }
    result?;
    let outcome = proc::wait_with_deadline(&mut child, Instant::now() + Duration::from_secs(600))?;
    ensure!(
        matches!(outcome, Waited::Exited(st) if st.success()),
        "the run under gdb did not pass ({outcome:?})"
    );
    Ok(())
}

/// The trials' kernel label of a tree: its folder's name (crate::kernel::resolve's rule).
fn tree_label(tree: &Path) -> String {
    tree.file_name()
        .map_or("tree".into(), |n| n.to_string_lossy().into_owned())
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A QEMU that numbers the boots: a script named like QEMU in `dir`, first on the bisect's
/// PATH, that adds `ue.selftest_boot=N` to the kernel command line (N counted in a file in
/// `dir`, from 0) and runs the real QEMU. This is how the flaky fixture knows which boot it
/// is in, with no option of the harness's own for it: the command line is what the host
/// gives each boot, and only the self-test needs it to change.
fn boot_numbering_qemu(dir: &Path) -> anyhow::Result<PathBuf> {
    const QEMU: &str = "qemu-system-x86_64";
    let real = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(QEMU))
        .find(|p| p.is_file())
        .with_context(|| format!("no {QEMU} on PATH"))?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let counter = dir.join("boots");
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    let script = format!(
        "#!/bin/sh\n\
         # The devloop bisect's QEMU: numbers each boot on the kernel command line.\n\
         counter={counter}\n\
         next=\n\
         for arg do\n\
         \x20   shift\n\
         \x20   if [ \"$next\" = append ]; then\n\
         \x20       n=$(cat \"$counter\" 2>/dev/null || echo 0)\n\
         \x20       echo $((n + 1)) > \"$counter\"\n\
         \x20       arg=\"$arg ue.selftest_boot=$n\"\n\
         \x20   fi\n\
         \x20   next=\n\
         \x20   [ \"$arg\" = -append ] && next=append\n\
         \x20   set -- \"$@\" \"$arg\"\n\
         done\n\
         exec {real} \"$@\"\n",
        counter = quote(&counter),
        real = quote(&real),
    );
    let wrapper = dir.join(QEMU);
    std::fs::write(&wrapper, script)?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
    Ok(counter)
}

/// A synthetic history on a branch of the tree: eight commits after the pristine one,
/// the fifth a shipped mutant. The trial that decides is a flaky one: a guest program that
/// reports the mutant's failure every other boot only ([`super::guest::flaky_fork`]), so a
/// one-run step on a bad commit may pass. With `--runs 3 --bad-at 1` bisect must still name
/// the mutant's commit and verify it (its parent passes three times, and so does the last
/// commit with it reverted), and leave HEAD and the bisect state as it found them.
pub fn bisect_names_the_mutant_commit(
    exe: &Path,
    tree: &Path,
    mutant: &Path,
    target: &Path,
    accel: harness::qemu::Accel,
) -> anyhow::Result<()> {
    let t = tree.to_str().context("tree path")?;
    // The accelerator the self-test chose, named: with `auto`, the wrapper (another QEMU
    // binary to the probe's cache) would cost a KVM probe and replace the cached answer.
    let accel = match accel {
        harness::qemu::Accel::Kvm => "kvm",
        harness::qemu::Accel::Tcg => "tcg",
    };
    let flaky = super::guest::flaky_fork(target)?;
    let qemu_dir = target.join("ue-selftest").join("bisect-qemu");
    let boots = boot_numbering_qemu(&qemu_dir)?;
    let base = git(tree, &["rev-parse", "main"])?;
    git(tree, &["checkout", "-q", "-B", "ue-bisect-history", &base])?;
    let mut mutant_commit = String::new();
    for i in 1..=8 {
        if i == 5 {
            let out = Command::new("patch")
                .current_dir(tree)
                .args(["-p1", "--batch", "--fuzz=0", "-i"])
                .arg(mutant)
                .output()?;
            ensure!(
                out.status.success(),
                "patch: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            git(
                tree,
                &[
                    "commit",
                    "-q",
                    "-a",
                    "-m",
                    &format!("step {i}: the mutant {MUTANT}"),
                ],
            )?;
            mutant_commit = git(tree, &["rev-parse", "HEAD"])?;
            continue;
        }
        let path = tree.join(TRACE_FILE);
        let text = std::fs::read_to_string(&path)?;
        replace_file(&path, &format!("{text}/* history step {i} */\n"))?;
        git(
            tree,
            &["commit", "-q", "-a", "-m", &format!("step {i}: a comment")],
        )?;
    }
    let bad = git(tree, &["rev-parse", "HEAD"])?;
    git(tree, &["checkout", "-q", "main"])?;
    let head_before = git(tree, &["rev-parse", "--abbrev-ref", "HEAD"])?;
    let label = tree_label(tree);
    let trial = format!(
        "{label}::{}",
        harness::channel::guest_test_name(&flaky.name, None)
    );
    let flaky_path = flaky.path.to_str().context("the flaky program's path")?;
    let run = xtask_with_path(
        exe,
        &[
            "bisect",
            "--good",
            &base,
            "--bad",
            &bad,
            "--kernel-tree",
            t,
            "--accel",
            accel,
            "--runs",
            "3",
            "--bad-at",
            "1",
            "--guest-test",
            flaky_path,
            "--",
            "--exact",
            &trial,
        ],
        Some(&qemu_dir),
    );
    let head_after = git(tree, &["rev-parse", "--abbrev-ref", "HEAD"])?;
    let bisect_log = git(tree, &["rev-parse", "--git-path", "BISECT_LOG"])?;
    let dirty = git(tree, &["status", "--porcelain", "--untracked-files=no"])?;
    let run = run?;
    ensure!(
        run.ok,
        "bisect failed:\n{}\n{}",
        tail(&run.stdout),
        tail(&run.stderr)
    );
    let booted: u64 = std::fs::read_to_string(&boots)
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(0);
    ensure!(
        booted > 0,
        "the boots were not numbered ({} has no count): was the wrapper QEMU used?",
        boots.display()
    );
    ensure!(
        run.stdout
            .contains(&format!("first bad commit: {mutant_commit}")),
        "bisect did not name {mutant_commit}:\n{}",
        run.stdout
    );
    ensure!(
        run.stdout.contains(&format!("fails there: {trial} (")),
        "bisect did not name the failing trial:\n{}",
        run.stdout
    );
    ensure!(
        run.stdout.lines().any(|l| l.starts_with("verified: ")),
        "bisect did not say verified:\n{}",
        run.stdout
    );
    ensure!(
        head_after == head_before,
        "HEAD was {head_before}, is {head_after}"
    );
    ensure!(dirty.is_empty(), "the tree was left changed:\n{dirty}");
    ensure!(!tree.join(&bisect_log).exists(), "a bisect is left running");
    if !run.stderr.contains("step ") {
        bail!("no time per step reported:\n{}", tail(&run.stderr));
    }
    for l in run
        .stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("step "))
    {
        eprintln!("    {}", l.trim());
    }
    for l in run
        .stdout
        .lines()
        .filter(|l| l.starts_with("verified") || l.contains(" s in all"))
    {
        eprintln!("    {l}");
    }
    eprintln!("    {booted} boot(s) numbered");
    Ok(())
}
