//! Every program the pipeline runs (apt-get, dpkg-deb, tar, cp, patch, make, gcc, cargo) is
//! a tracked child: in its own process group, killed if the harness dies, and stopped with
//! its whole group when SIGINT or SIGTERM reaches the harness. So an interrupt at any stage
//! ends the run within a few seconds and leaves no process behind; the stage then fails
//! through its normal error path, which removes its staging folder.
//!
//! It is also the one place that waits for a child with a limit ([`wait_for`],
//! [`wait_with_deadline`]): the kill-and-reap on a deadline or an interrupt is written once,
//! so no caller can leave a child unreaped or its group running. And the one way to ask git
//! something ([`git`]).

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Process groups of the children running now.
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// How long a child's group gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// True once SIGINT or SIGTERM arrived.
pub fn interrupted() -> bool {
    harness::interrupt::is_set()
}

/// Fails with "interrupted" once SIGINT or SIGTERM arrived: called between steps, so that a
/// stage whose child was stopped never records what the child left half done.
pub fn check() -> anyhow::Result<()> {
    if interrupted() {
        anyhow::bail!("interrupted");
    }
    Ok(())
}

/// Puts the calling thread, and every child it starts from now on, at the lowest CPU
/// priority (nice 19): Linux keeps a nice value per thread and a child inherits its
/// creator's. For work done beside a VM whose timing should not feel it.
pub fn lowest_priority_for_this_thread() {
    // SAFETY: setpriority takes plain integers; `who` 0 is the calling thread on Linux.
    // Failing only leaves the priority as it was, which is still correct, only slower.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

/// A child's group stays registered while this lives.
pub struct Tracked(i32);

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Ok(mut g) = GROUPS.lock() {
            g.retain(|p| *p != self.0);
        }
    }
}

/// Starts `cmd` as a tracked child.
pub fn spawn(cmd: &mut Command) -> std::io::Result<(Child, Tracked)> {
    cmd.process_group(0);
    harness::vm::die_with_parent(cmd);
    let child = cmd.spawn()?;
    let pid = child.id() as i32;
    if let Ok(mut g) = GROUPS.lock() {
        g.push(pid);
    }
    // A signal that came while it started: the watcher may have looked already.
    if interrupted() {
        stop_all();
    }
    Ok((child, Tracked(pid)))
}

/// [`Command::output`] for a tracked child.
pub fn output(cmd: &mut Command) -> std::io::Result<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (child, _t) = spawn(cmd)?;
    child.wait_with_output()
}

/// [`Command::status`] for a tracked child.
pub fn status(cmd: &mut Command) -> std::io::Result<ExitStatus> {
    let (mut child, _t) = spawn(cmd)?;
    child.wait()
}

/// SIGTERM to every tracked group now, SIGKILL to what is left after [`GRACE`].
fn stop_all() {
    let groups = GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
    for p in &groups {
        unsafe { libc::kill(-p, libc::SIGTERM) };
    }
}

/// The watcher: once SIGINT or SIGTERM arrived, stops every tracked child's group (the
/// handler itself may only set a flag). Started once by `main`.
pub fn start_watcher() {
    std::thread::spawn(|| {
        while !interrupted() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let since = Instant::now();
        stop_all();
        loop {
            std::thread::sleep(Duration::from_millis(50));
            // Children started during the grace period get the same treatment.
            stop_all();
            if since.elapsed() > GRACE {
                let groups = GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
                for p in &groups {
                    unsafe { libc::kill(-p, libc::SIGKILL) };
                }
            }
        }
    });
}

/// `.output_tracked()` / `.status_tracked()` at the call sites of `Command`.
pub trait RunTracked {
    fn output_tracked(&mut self) -> std::io::Result<Output>;
    fn status_tracked(&mut self) -> std::io::Result<ExitStatus>;
}

impl RunTracked for Command {
    fn output_tracked(&mut self) -> std::io::Result<Output> {
        output(self)
    }
    fn status_tracked(&mut self) -> std::io::Result<ExitStatus> {
        status(self)
    }
}

/// How a wait for a child ended (named so beside the result channel's `Outcome`).
#[derive(Debug)]
pub enum Waited {
    /// The child exited by itself.
    Exited(ExitStatus),
    /// The deadline passed first: the child and its group were killed, the child reaped.
    TimedOut(ExitStatus),
    /// SIGINT or SIGTERM reached the harness first (only if the wait asked to stop then): the
    /// child and its group were killed, the child reaped.
    Interrupted(ExitStatus),
    /// What the caller watched for happened first; the child still runs.
    Ready,
}

impl Waited {
    /// The exit code of a child that exited by itself (-1 for a signal); `None` otherwise.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Waited::Exited(st) => Some(st.code().unwrap_or(-1)),
            _ => None,
        }
    }
}

/// What ends a wait besides the child's exit, and how often to look.
#[derive(Clone, Copy, Debug)]
pub struct Wait {
    deadline: Option<Instant>,
    stop_on_interrupt: bool,
    poll: Duration,
}

impl Wait {
    /// Until the child exits, however long.
    pub fn forever() -> Self {
        Wait {
            deadline: None,
            stop_on_interrupt: false,
            poll: Duration::from_millis(20),
        }
    }

    /// Until `deadline` at most.
    pub fn until(deadline: Instant) -> Self {
        Wait {
            deadline: Some(deadline),
            ..Wait::forever()
        }
    }

    /// For `limit` from now at most.
    pub fn within(limit: Duration) -> Self {
        Wait::until(Instant::now() + limit)
    }

    /// Also stop (and kill the child) once SIGINT or SIGTERM reached the harness.
    pub fn or_interrupt(self) -> Self {
        Wait {
            stop_on_interrupt: true,
            ..self
        }
    }

    /// Look every `poll` (20 ms unless said): what a timing measures, or how often a watcher
    /// should report.
    pub fn polling(self, poll: Duration) -> Self {
        Wait { poll, ..self }
    }
}

/// Waits for `child` as `wait` says; between looks `ready` is asked, and once it says yes the
/// wait ends with [`Waited::Ready`] and the child left running (a watcher that only reports
/// returns false). A child killed here is killed with its group (if it leads one) and reaped.
pub fn wait_for(
    child: &mut Child,
    wait: Wait,
    mut ready: impl FnMut() -> bool,
) -> std::io::Result<Waited> {
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Waited::Exited(st));
        }
        if ready() {
            return Ok(Waited::Ready);
        }
        if wait.stop_on_interrupt && interrupted() {
            return Ok(Waited::Interrupted(kill_and_reap(child)?));
        }
        if wait.deadline.is_some_and(|d| Instant::now() > d) {
            return Ok(Waited::TimedOut(kill_and_reap(child)?));
        }
        std::thread::sleep(wait.poll);
    }
}

/// Waits for `child` until `deadline`: [`Waited::Exited`] or [`Waited::TimedOut`].
pub fn wait_with_deadline(child: &mut Child, deadline: Instant) -> std::io::Result<Waited> {
    wait_for(child, Wait::until(deadline), || false)
}

/// SIGKILL to `child`'s group (if it leads one; else there is no such group) and to the
/// child, then reaps it.
pub fn kill_and_reap(child: &mut Child) -> std::io::Result<ExitStatus> {
    kill_group(child.id());
    let _ = child.kill();
    child.wait()
}

/// SIGKILL to the process group `pgid` leads: what a command left running in it.
pub fn kill_group(pgid: u32) {
    signal_group(pgid, libc::SIGKILL);
}

/// `signal` to the process group `pgid` leads, as a terminal sends Ctrl-C to its job.
pub fn signal_group(pgid: u32, signal: i32) {
    unsafe { libc::kill(-(pgid as i32), signal) };
}

/// `signal` to the process `pid` alone.
pub fn signal(pid: u32, signal: i32) {
    unsafe { libc::kill(pid as i32, signal) };
}

/// `git -C tree ARGS` as a tracked child: its standard output, trimmed. An error names the
/// command, the tree and what git said.
pub fn git(tree: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = output(Command::new("git").arg("-C").arg(tree).args(args))
        .context("run git (install git)")?;
    if !out.status.success() {
        anyhow::bail!(
            "git {} in {}: {}",
            args.join(" "),
            tree.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Child {
        Command::new("sh")
            .args(["-c", script])
            .process_group(0)
            .spawn()
            .unwrap()
    }

    #[test]
    fn a_wait_ends_by_exit_deadline_or_watch_and_never_leaves_the_child() {
        let mut done = sh("exit 3");
        let w = wait_for(&mut done, Wait::within(Duration::from_secs(20)), || false).unwrap();
        assert_eq!(w.exit_code(), Some(3), "{w:?}");

        let mut stuck = sh("sleep 30");
        let w =
            wait_with_deadline(&mut stuck, Instant::now() + Duration::from_millis(100)).unwrap();
        assert!(matches!(w, Waited::TimedOut(_)), "{w:?}");
        assert!(stuck.try_wait().unwrap().is_some(), "killed and reaped");

        let mut running = sh("sleep 30");
        let mut looks = 0;
        let w = wait_for(&mut running, Wait::forever(), || {
            looks += 1;
            looks == 3
        })
        .unwrap();
        assert!(matches!(w, Waited::Ready), "{w:?}");
        assert!(running.try_wait().unwrap().is_none(), "still running");
        kill_and_reap(&mut running).unwrap();
    }
}
