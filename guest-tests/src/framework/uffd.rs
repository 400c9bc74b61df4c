//! userfaultfd(2) for missing pages: whoever touches a missing page of a registered range
//! waits until this process supplies it. The kernel's own accesses wait too (a remote fault
//! with retry allowed, as user_events' fault worker makes through fixup_user_fault), so a
//! scenario can hold that worker inside its fault-in for as long as it needs, and learn which
//! kernel thread it is. Requires [`Feature::Userfaultfd`](result_channel::Feature), which the
//! runner probes.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::{Mapping, Stop, R};
use crate::uapi::Errno;
use crate::{check, check_eq, fail};

// include/uapi/linux/userfaultfd.h.
const UFFD_API: u64 = 0xaa;
const UFFD_FEATURE_THREAD_ID: u64 = 1 << 8;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1 << 0;
const UFFD_EVENT_PAGEFAULT: u8 = 0x12;
const UFFD_PAGEFAULT_FLAG_WRITE: u64 = 1 << 0;
/// `_IOWR(0xAA, NR, SIZE)`.
const UFFDIO_API: libc::c_ulong = 0xc018_aa3f;
const UFFDIO_REGISTER: libc::c_ulong = 0xc020_aa00;
const UFFDIO_COPY: libc::c_ulong = 0xc028_aa03;

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioRegister {
    start: u64,
    len: u64,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioCopy {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    copy: i64,
}

/// `struct uffd_msg` for a page fault: event, three reserved fields, then flags, address and
/// the faulting thread's id.
#[repr(C)]
#[derive(Default)]
struct UffdMsg {
    event: u8,
    reserved1: u8,
    reserved2: u16,
    reserved3: u32,
    flags: u64,
    address: u64,
    ptid: u32,
    pad: u32,
}

/// A fault on a registered page, waiting for [`MissingTrap::supply_zeroed`].
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    /// The page's address.
    pub page: u64,
    /// The faulting thread (a kworker for user_events' fault worker).
    pub tid: i32,
    pub write: bool,
}

/// A mapping's pages registered for missing-page faults.
pub struct MissingTrap {
    fd: OwnedFd,
}

impl MissingTrap {
    /// Registers every page of `mapping`. A page already present is not trapped until it is
    /// dropped (MADV_DONTNEED).
    pub fn register(mapping: &Mapping) -> Result<Self, Stop> {
        let raw =
            unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) };
        if raw < 0 {
            fail!("userfaultfd(O_CLOEXEC | O_NONBLOCK): {}", Errno::last());
        }
        let fd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
        let mut api = UffdioApi {
            api: UFFD_API,
            features: UFFD_FEATURE_THREAD_ID,
            ioctls: 0,
        };
        check_eq!(
            unsafe { libc::ioctl(fd.as_raw_fd(), UFFDIO_API, &mut api) },
            0,
            "UFFDIO_API with UFFD_FEATURE_THREAD_ID: {}",
            Errno::last()
        );
        let mut reg = UffdioRegister {
            start: mapping.ptr as u64,
            len: mapping.len as u64,
            mode: UFFDIO_REGISTER_MODE_MISSING,
            ioctls: 0,
        };
        check_eq!(
            unsafe { libc::ioctl(fd.as_raw_fd(), UFFDIO_REGISTER, &mut reg) },
            0,
            "UFFDIO_REGISTER of {} bytes at {:#x} for missing pages: {}",
            mapping.len,
            mapping.ptr as u64,
            Errno::last()
        );
        Ok(MissingTrap { fd })
    }

    /// The next fault on a registered page, waiting at most `limit`.
    pub fn next_fault(&self, limit: Duration) -> Result<Fault, Stop> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = limit.as_millis().min(i32::MAX as u128) as i32;
        let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
        check!(ready >= 0, "poll of the userfaultfd: {}", Errno::last());
        check!(
            ready == 1,
            "no fault on the trapped page within {} ms",
            limit.as_millis()
        );
        let mut msg = UffdMsg::default();
        let size = std::mem::size_of::<UffdMsg>();
        let n = unsafe { libc::read(self.fd.as_raw_fd(), &mut msg as *mut _ as *mut _, size) };
        check!(
            n == size as isize,
            "read of the userfaultfd: {} ({n} bytes)",
            Errno::last()
        );
        check_eq!(
            msg.event,
            UFFD_EVENT_PAGEFAULT,
            "the userfaultfd's message type"
        );
        Ok(Fault {
            page: msg.address & !(page_size() - 1),
            tid: msg.ptid as i32,
            write: msg.flags & UFFD_PAGEFAULT_FLAG_WRITE != 0,
        })
    }

    /// Supplies the faulting page, all zeros, and wakes whoever waits for it.
    pub fn supply_zeroed(&self, fault: &Fault) -> R {
        let zeros = vec![0u8; page_size() as usize];
        let mut copy = UffdioCopy {
            dst: fault.page,
            src: zeros.as_ptr() as u64,
            len: page_size(),
            mode: 0,
            copy: 0,
        };
        check_eq!(
            unsafe { libc::ioctl(self.fd.as_raw_fd(), UFFDIO_COPY, &mut copy) },
            0,
            "UFFDIO_COPY of a zeroed page to {:#x}: {} (copied {})",
            fault.page,
            Errno::last(),
            copy.copy
        );
        Ok(())
    }
}

fn page_size() -> u64 {
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as u64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layouts the ioctl numbers encode (their size field) and the message's.
    #[test]
    fn structs_have_the_uapi_sizes() {
        let size_of_ioctl = |req: libc::c_ulong| ((req >> 16) & 0x3fff) as usize;
        assert_eq!(size_of_ioctl(UFFDIO_API), std::mem::size_of::<UffdioApi>());
        assert_eq!(
            size_of_ioctl(UFFDIO_REGISTER),
            std::mem::size_of::<UffdioRegister>()
        );
        assert_eq!(
            size_of_ioctl(UFFDIO_COPY),
            std::mem::size_of::<UffdioCopy>()
        );
        assert_eq!(std::mem::size_of::<UffdMsg>(), 32);
    }
}
