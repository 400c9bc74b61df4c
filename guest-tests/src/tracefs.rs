//! The tracefs files the scenarios use. The init mounts tracefs at [`TRACEFS`].

use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;

pub const TRACEFS: &str = "/sys/kernel/tracing";

pub fn path(rel: &str) -> String {
    format!("{TRACEFS}/{rel}")
}

/// Opens `user_events_data`, the file every registration and write goes through.
pub fn open_data() -> io::Result<OwnedFd> {
    Ok(fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path("user_events_data"))?
        .into())
}

fn write_file(rel: &str, text: &str) -> io::Result<()> {
    let p = path(rel);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .map_err(|e| with_path(e, &p))?;
    f.write_all(text.as_bytes()).map_err(|e| with_path(e, &p))
}

/// The file's text. Lossy: the global files (`user_events_status`, `dynamic_events`) list
/// every event, and another scenario may have registered a name with bytes that are not
/// UTF-8 (the kernel prints them raw); a check must not fail on someone else's event.
fn read_file(rel: &str) -> io::Result<String> {
    let p = path(rel);
    fs::read(&p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| with_path(e, &p))
}

fn with_path(e: io::Error, p: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{p}: {e}"))
}

/// Attaches or detaches ftrace from `user_events/NAME` (the `enable` file).
pub fn set_enabled(event: &str, on: bool) -> io::Result<()> {
    write_file(
        &format!("events/user_events/{event}/enable"),
        if on { "1" } else { "0" },
    )
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

pub fn status() -> io::Result<String> {
    read_file("user_events_status")
}

/// Empties the global trace buffer (opening `trace` with O_TRUNC does that).
pub fn clear_trace() -> io::Result<()> {
    let p = path("trace");
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&p)
        .map(drop)
        .map_err(|e| with_path(e, &p))
}

pub fn read_trace() -> io::Result<String> {
    read_file("trace")
}

/// The event lines of `trace`, without its `#` header.
pub fn trace_lines() -> io::Result<Vec<String>> {
    Ok(read_trace()?
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

pub fn exists(rel: &str) -> bool {
    fs::metadata(path(rel)).is_ok()
}

/// The `dynamic_events` file: one line per dynamic event, user events as `u:NAME fields`.
pub fn dynamic_events() -> io::Result<String> {
    read_file("dynamic_events")
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
