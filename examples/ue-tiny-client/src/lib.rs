//! A tiny user_events client, the kind of library the harness's `--guest-crate` is for: it
//! registers an event with `DIAG_IOCSREG`, giving the kernel the address of an enable word in
//! its own memory, and writes events through `user_events_data` while the word says a tracer
//! is attached. Its tests need a kernel with user_events and tracefs at /sys/kernel/tracing:
//! they run in the harness's guest (`cargo xtask test --guest-crate examples/ue-tiny-client`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};

pub const TRACEFS: &str = "/sys/kernel/tracing";

/// `struct user_reg` of `include/uapi/linux/user_events.h` (6.4+), packed.
#[repr(C, packed)]
struct UserReg {
    size: u32,
    enable_bit: u8,
    enable_size: u8,
    flags: u16,
    enable_addr: u64,
    name_args: u64,
    write_index: u32,
}

/// `struct user_unreg`, packed.
#[repr(C, packed)]
struct UserUnreg {
    size: u32,
    disable_bit: u8,
    reserved: u8,
    reserved2: u16,
    disable_addr: u64,
}

const DIAG_IOCSREG: libc::c_ulong = 0xC008_2A00;
const DIAG_IOCSUNREG: libc::c_ulong = 0x4008_2A02;

/// One registered event. The enable word lives in a Box so its address stays put; the
/// kernel sets bit `ENABLE_BIT` in it while a tracer is attached.
pub struct Event {
    data: File,
    enable: Box<AtomicU32>,
    write_index: u32,
    name: String,
}

const ENABLE_BIT: u8 = 0;

impl Event {
    /// Registers `name_args` (`"name u32 field"`, the dynamic_events syntax).
    pub fn register(name_args: &str) -> io::Result<Event> {
        let data = OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("{TRACEFS}/user_events_data"))?;
        let enable = Box::new(AtomicU32::new(0));
        let c = std::ffi::CString::new(name_args)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut reg = UserReg {
            size: std::mem::size_of::<UserReg>() as u32,
            enable_bit: ENABLE_BIT,
            enable_size: 4,
            flags: 0,
            enable_addr: enable.as_ptr() as u64,
            name_args: c.as_ptr() as u64,
            write_index: 0,
        };
        if unsafe { libc::ioctl(data.as_raw_fd(), DIAG_IOCSREG, &mut reg as *mut UserReg) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Event {
            data,
            enable,
            write_index: reg.write_index,
            name: name_args.split_whitespace().next().unwrap_or("").to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the kernel last wrote into the enable word.
    pub fn enable_word(&self) -> u32 {
        self.enable.load(Ordering::Relaxed)
    }

    pub fn is_enabled(&self) -> bool {
        self.enable_word() & (1 << ENABLE_BIT) != 0
    }

    /// Writes one event with `payload` as its fields, if a tracer is attached; returns
    /// whether it wrote.
    pub fn write(&self, payload: &[u8]) -> io::Result<bool> {
        if !self.is_enabled() {
            return Ok(false);
        }
        let idx = self.write_index.to_ne_bytes();
        let iov = [
            libc::iovec {
                iov_base: idx.as_ptr() as *mut _,
                iov_len: idx.len(),
            },
            libc::iovec {
                iov_base: payload.as_ptr() as *mut _,
                iov_len: payload.len(),
            },
        ];
        if unsafe { libc::writev(self.data.as_raw_fd(), iov.as_ptr(), 2) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(true)
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        let unreg = UserUnreg {
            size: std::mem::size_of::<UserUnreg>() as u32,
            disable_bit: ENABLE_BIT,
            reserved: 0,
            reserved2: 0,
            disable_addr: self.enable.as_ptr() as u64,
        };
        unsafe {
            libc::ioctl(
                self.data.as_raw_fd(),
                DIAG_IOCSUNREG,
                &unreg as *const UserUnreg,
            )
        };
    }
}

/// Attaches (or detaches) ftrace to the event: the kernel then sets (clears) the enable bit.
pub fn set_tracing(event: &str, on: bool) -> io::Result<()> {
    std::fs::write(
        format!("{TRACEFS}/events/user_events/{event}/enable"),
        if on { "1" } else { "0" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// The kernel updates the enable word from a worker: poll with a deadline, and say how
    /// long it took (under TCG it can be tens of milliseconds).
    fn wait_for(what: &str, cond: impl Fn() -> bool) -> Duration {
        let start = Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{what}: not seen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        eprintln!("{what} after {:?}", start.elapsed());
        start.elapsed()
    }

    #[test]
    fn a_new_event_is_disabled() {
        let ev = Event::register("tiny_new u32 value").expect("DIAG_IOCSREG");
        assert_eq!(ev.enable_word(), 0, "no tracer is attached yet");
        assert!(
            !ev.write(&1u32.to_ne_bytes()).unwrap(),
            "nothing to write to"
        );
    }

    #[test]
    fn tracing_sets_and_clears_the_enable_word() {
        let ev = Event::register("tiny_toggle u32 value").expect("DIAG_IOCSREG");
        set_tracing(ev.name(), true).unwrap();
        wait_for("enable bit set", || ev.is_enabled());
        assert!(ev.is_enabled(), "the kernel set the enable bit"); // the inverted copy flips this line
        set_tracing(ev.name(), false).unwrap();
        wait_for("enable bit cleared", || !ev.is_enabled());
    }

    #[test]
    fn a_forked_child_has_its_own_enabled_word() {
        let ev = Event::register("tiny_fork u32 value").expect("DIAG_IOCSREG");
        set_tracing(ev.name(), true).unwrap();
        wait_for("enable bit set", || ev.is_enabled());
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            // The child: the kernel duplicated the registration with the mm, so the child's
            // copy of the word is set and its write goes through. Exit code tells the parent.
            let ok = ev.is_enabled() && ev.write(&7u32.to_ne_bytes()).is_ok();
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child saw its enable word clear or could not write (status {status:#x})"
        );
        set_tracing(ev.name(), false).unwrap();
        wait_for("enable bit cleared", || !ev.is_enabled());
    }

    #[test]
    fn a_written_event_reaches_the_trace() {
        let ev = Event::register("tiny_write u32 value").expect("DIAG_IOCSREG");
        // Empty the ring buffer first: an earlier test's event, deleted since, may have had
        // this event's id, and its old entries would be printed under this event's name.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(format!("{TRACEFS}/trace"))
            .unwrap();
        set_tracing(ev.name(), true).unwrap();
        wait_for("enable bit set", || ev.is_enabled());
        assert!(ev.write(&0x2a_u32.to_ne_bytes()).unwrap());
        let trace = std::fs::read_to_string(format!("{TRACEFS}/trace")).unwrap();
        set_tracing(ev.name(), false).unwrap();
        let line = trace
            .lines()
            .find(|l| l.contains("tiny_write:"))
            .unwrap_or_else(|| panic!("no tiny_write line in the trace:\n{trace}"));
        assert!(line.contains("value=0x2a"), "want value=0x2a in {line:?}");
    }
}
