//! Every program the pipeline runs (apt-get, dpkg-deb, tar, cp, patch, make, gcc, cargo) is
//! a tracked child: in its own process group, killed if the harness dies, and stopped with
//! its whole group when SIGINT or SIGTERM reaches the harness. So an interrupt at any stage
//! ends the run within a few seconds and leaves no process behind; the stage then fails
//! through its normal error path, which removes its staging folder.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use harness::vm::INTERRUPTED;

/// Process groups of the children running now.
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// How long a child's group gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// True once SIGINT or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Fails with "interrupted" once SIGINT or SIGTERM arrived: called between steps, so that a
/// stage whose child was stopped never records what the child left half done.
pub fn check() -> anyhow::Result<()> {
    if interrupted() {
        anyhow::bail!("interrupted");
    }
    Ok(())
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
