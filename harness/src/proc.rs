//! The harness's one wait for a host child with a limit (the QEMU boot has its own event
//! loop in `vm`, which reads, judges limits and reaps as one). Killed and reaped on timeout,
//! so no caller leaves a process behind.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Waits for `child` up to `limit`: its status, or `None` after killing and reaping it.
pub fn wait_with_deadline(
    child: &mut Child,
    limit: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    let started = Instant::now();
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_past_its_limit_is_killed_and_reaped() {
        let mut c = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = c.id();
        let t = Instant::now();
        assert_eq!(
            wait_with_deadline(&mut c, Duration::from_millis(100)).unwrap(),
            None
        );
        assert!(t.elapsed() < Duration::from_secs(2));
        // Killed and reaped: no process, not even a zombie, is left under that pid.
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        let mut c = std::process::Command::new("true").spawn().unwrap();
        assert!(wait_with_deadline(&mut c, Duration::from_secs(5))
            .unwrap()
            .unwrap()
            .success());
    }
}
