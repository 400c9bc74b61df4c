//! The tracefs files the scenarios use. The init mounts tracefs at [`TRACEFS`].
//!
//! Each scenario traces into a tracefs instance of its own (`instances/NAME`: its own ring
//! buffer and its own `enable` files), so that scenarios that empty and read the trace
//! buffer can run side by side. The user_events files (`user_events_data`,
//! `user_events_status`, `dynamic_events`) and the events' `format`/`id` exist once, at the
//! top level; [`path`] names those, [`instance_path`] the per-instance ones.

use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::sync::{Mutex, OnceLock};

pub const TRACEFS: &str = "/sys/kernel/tracing";

/// A file at the top level of tracefs.
pub fn path(rel: &str) -> String {
    format!("{TRACEFS}/{rel}")
}

/// The instance this process traces into, named by [`use_instance`]; `None`: the top level
/// (a shell, an upstream program).
static INSTANCE: OnceLock<String> = OnceLock::new();
/// Whether this process (or the parent it was forked from) has made the instance's folder.
static MADE: Mutex<bool> = Mutex::new(false);

/// Routes this process's trace buffer and `enable` files to `instances/NAME`, made on first
/// use. Called once, in a scenario's process, before the scenario runs; its forked children
/// inherit it. The runner removes the instance when the scenario has ended
/// ([`remove_instance`]).
pub fn use_instance(name: &str) {
    let _ = INSTANCE.set(name.to_owned());
}

/// The scenario's name as an identifier (`family::name` → `family__name`, `_again` on its
/// second run in a boot): the name of its tracefs instance, which then reads as the
/// scenario's in `ls instances`, and the stem of its event names ([`crate::framework::Ctx`]).
pub fn scenario_key(scenario: &str, again: bool) -> String {
    let base: String = scenario
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if again {
        format!("{base}_again")
    } else {
        base
    }
}

/// A per-instance file (`trace`, `events/user_events/NAME/enable`) of this process's instance,
/// making the instance on first use.
pub fn instance_path(rel: &str) -> io::Result<String> {
    let Some(name) = INSTANCE.get() else {
        return Ok(path(rel));
    };
    let root = path(&format!("instances/{name}"));
    let mut made = MADE.lock().unwrap_or_else(|p| p.into_inner());
    if !*made {
        match fs::create_dir(&root) {
            // A forked child may have made it first.
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(with_path(e, &root));
            }
            _ => *made = true,
        }
    }
    Ok(format!("{root}/{rel}"))
}

/// Removes a scenario's instance (rmdir disables whatever it had enabled). Absent is fine:
/// most scenarios never trace.
pub fn remove_instance(name: &str) -> io::Result<()> {
    let root = path(&format!("instances/{name}"));
    match fs::remove_dir(&root) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(with_path(e, &root)),
        _ => Ok(()),
    }
}

/// A tracefs instance a scenario makes for itself (to compare two buffers), removed on drop.
pub struct Instance {
    pub root: String,
}

impl Instance {
    pub fn new(name: &str) -> io::Result<Self> {
        let root = path(&format!("instances/{name}"));
        fs::create_dir(&root).map_err(|e| with_path(e, &root))?;
        Ok(Instance { root })
    }

    pub fn set_enabled(&self, event: &str, on: bool) -> io::Result<()> {
        write_path(&format!("{}/{}", self.root, enable_rel(event)), on_off(on))
    }

    pub fn trace_lines(&self) -> io::Result<Vec<String>> {
        Ok(event_lines(&read_path(&format!("{}/trace", self.root))?))
    }

    /// Removes it now, for a check of what removal does; drop ignores a second removal.
    pub fn remove(&self) -> io::Result<()> {
        fs::remove_dir(&self.root).map_err(|e| with_path(e, &self.root))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.root);
    }
}

/// Opens `user_events_data`, the file every registration and write goes through.
pub fn open_data() -> io::Result<OwnedFd> {
    Ok(fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path("user_events_data"))?
        .into())
}

fn write_path(p: &str, text: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(p)
        .map_err(|e| with_path(e, p))?;
    f.write_all(text.as_bytes()).map_err(|e| with_path(e, p))
}

/// The file's text. Lossy: the global files (`user_events_status`, `dynamic_events`) list
/// every event, and another scenario may have registered a name with bytes that are not
/// UTF-8 (the kernel prints them raw); a check must not fail on someone else's event.
fn read_file(rel: &str) -> io::Result<String> {
    read_path(&path(rel))
}

fn read_path(p: &str) -> io::Result<String> {
    fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| with_path(e, p))
}

fn with_path(e: io::Error, p: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{p}: {e}"))
}

/// Attaches or detaches ftrace from `user_events/NAME` (the `enable` file of this process's
/// instance).
pub fn set_enabled(event: &str, on: bool) -> io::Result<()> {
    write_path(&instance_path(&enable_rel(event))?, on_off(on))
}

fn enable_rel(event: &str) -> String {
    format!("events/user_events/{event}/enable")
}

fn on_off(on: bool) -> &'static str {
    if on {
        "1"
    } else {
        "0"
    }
}

pub fn event_id(event: &str) -> io::Result<u64> {
    let s = read_file(&format!("events/user_events/{event}/id"))?;
    s.trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("id {s:?}: {e}")))
}

pub fn format(event: &str) -> io::Result<String> {
    read_file(&format!("events/user_events/{event}/format"))
}

/// `user_events_status`, as one consistent snapshot ([`read_list`]).
pub fn status() -> io::Result<String> {
    read_list("user_events_status")
}

/// A global list file (`dynamic_events`, `user_events_status`) as a snapshot the list really
/// had. seq_file hands these out a page per read() and finds its place again by position, so
/// an event added or removed between two pages (another scenario's, or one the kernel deletes
/// in the background once its last reference went) shifts the lines: one is skipped or shown
/// twice. Seen even with the reader alone: a just-registered event missing from
/// `dynamic_events`, on a boot where earlier scenarios' events were being deleted. The whole
/// file is read until two reads in a row agree.
fn read_list(rel: &str) -> io::Result<String> {
    const READS: usize = 100;
    let mut last = read_file(rel)?;
    for _ in 0..READS {
        let next = read_file(rel)?;
        if next == last {
            return Ok(next);
        }
        last = next;
    }
    Err(io::Error::other(format!(
        "{}: no two reads in a row agreed in {READS} reads (the list kept changing)",
        path(rel)
    )))
}

/// Empties this process's trace buffer (opening `trace` with O_TRUNC does that).
pub fn clear_trace() -> io::Result<()> {
    let p = instance_path("trace")?;
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&p)
        .map(drop)
        .map_err(|e| with_path(e, &p))
}

/// This process's trace buffer (`trace` of its instance).
pub fn read_trace() -> io::Result<String> {
    read_path(&instance_path("trace")?)
}

/// The event lines of `trace`, without its `#` header.
pub fn trace_lines() -> io::Result<Vec<String>> {
    Ok(event_lines(&read_trace()?))
}

/// The event lines of the text of a `trace` file.
fn event_lines(trace: &str) -> Vec<String> {
    trace
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The top-level trace buffer, which no scenario traces into: for checking that an
/// instance's events stay in it.
pub fn top_level_trace_lines() -> io::Result<Vec<String>> {
    Ok(event_lines(&read_file("trace")?))
}

pub fn exists(rel: &str) -> bool {
    fs::metadata(path(rel)).is_ok()
}

/// The `dynamic_events` file: one line per dynamic event, user events as `u:NAME fields`.
pub fn dynamic_events() -> io::Result<String> {
    read_list("dynamic_events")
}

/// Writes one command to `dynamic_events` without truncating it (opening it with O_TRUNC
/// would delete every dynamic event).
pub fn dynamic_events_command(cmd: &str) -> io::Result<()> {
    let p = path("dynamic_events");
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(&p)
        .map_err(|e| with_path(e, &p))?;
    f.write_all(cmd.as_bytes()).map_err(|e| with_path(e, &p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_key_is_its_name_as_an_identifier_and_differs_on_a_second_run() {
        assert_eq!(
            scenario_key("abi::size8_bits_0_and_63", false),
            "abi__size8_bits_0_and_63"
        );
        assert_eq!(
            scenario_key("trace::write_errors", true),
            "trace__write_errors_again"
        );
    }
}
