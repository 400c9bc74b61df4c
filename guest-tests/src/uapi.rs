//! `include/uapi/linux/user_events.h`, spelled out for Rust, plus thin syscall wrappers that
//! return the kernel's errno untouched: the scenarios assert exact errnos.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

pub const USER_EVENT_REG_PERSIST: u16 = 1 << 0;
pub const USER_EVENT_REG_MULTI_FORMAT: u16 = 1 << 1;
pub const USER_EVENT_REG_MAX: u16 = 1 << 2;

/// `struct user_reg` (6.4+), packed, 28 bytes.
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct UserReg {
    pub size: u32,
    pub enable_bit: u8,
    pub enable_size: u8,
    pub flags: u16,
    pub enable_addr: u64,
    pub name_args: u64,
    pub write_index: u32,
}

/// `struct user_unreg` (6.4+), packed, 16 bytes.
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct UserUnreg {
    pub size: u32,
    pub disable_bit: u8,
    pub reserved: u8,
    pub reserved2: u16,
    pub disable_addr: u64,
}

const _: () = assert!(std::mem::size_of::<UserReg>() == 28);
const _: () = assert!(std::mem::size_of::<UserUnreg>() == 16);

/// `_IOWR('*', 0, struct user_reg *)` etc.; the size field is that of a pointer.
pub const DIAG_IOCSREG: libc::c_ulong = 0xC008_2A00;
pub const DIAG_IOCSDEL: libc::c_ulong = 0x4008_2A01;
pub const DIAG_IOCSUNREG: libc::c_ulong = 0x4008_2A02;

pub fn errno_name(e: i32) -> &'static str {
    match e {
        libc::EINVAL => "EINVAL",
        libc::E2BIG => "E2BIG",
        libc::EFAULT => "EFAULT",
        libc::ENOMEM => "ENOMEM",
        libc::ENOENT => "ENOENT",
        libc::EBUSY => "EBUSY",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EPERM => "EPERM",
        libc::EBADF => "EBADF",
        libc::ENOTTY => "ENOTTY",
        libc::EMFILE => "EMFILE",
        libc::EACCES => "EACCES",
        _ => "E?",
    }
}

/// An ioctl result in a form that prints the errno by name.
pub type SysResult<T> = Result<T, Errno>;

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    pub fn last() -> Self {
        Errno(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

impl std::fmt::Debug for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", errno_name(self.0), self.0)
    }
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// DIAG_IOCSREG with a fully caller-built struct (for the ABI checks that send bad ones).
pub fn reg_raw(fd: BorrowedFd<'_>, reg: &mut UserReg) -> SysResult<()> {
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), DIAG_IOCSREG, reg as *mut UserReg) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Registers `name_args` with its enable word at `addr`; returns the write index.
pub fn reg(
    fd: BorrowedFd<'_>,
    name_args: &str,
    addr: u64,
    size: u8,
    bit: u8,
    flags: u16,
) -> SysResult<u32> {
    let c = CString::new(name_args).expect("no NUL in event names");
    let mut r = UserReg {
        size: 28,
        enable_bit: bit,
        enable_size: size,
        flags,
        enable_addr: addr,
        name_args: c.as_ptr() as u64,
        write_index: u32::MAX,
    };
    reg_raw(fd, &mut r)?;
    Ok(r.write_index)
}

pub fn unreg_raw(fd: BorrowedFd<'_>, u: &UserUnreg) -> SysResult<()> {
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), DIAG_IOCSUNREG, u as *const UserUnreg) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// DIAG_IOCSREG or DIAG_IOCSUNREG (`req`) with any argument pointer, for the checks of
/// what the kernel does with a struct it cannot read, or one with a long tail. `addr` is
/// only handed to the kernel (it may be NULL or unmapped), so it is an address, not a pointer.
pub fn ioctl_addr(fd: BorrowedFd<'_>, req: libc::c_ulong, addr: usize) -> SysResult<()> {
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req, addr) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

pub fn unreg(fd: BorrowedFd<'_>, addr: u64, bit: u8) -> SysResult<()> {
    unreg_raw(
        fd,
        &UserUnreg {
            size: 16,
            disable_bit: bit,
            disable_addr: addr,
            ..Default::default()
        },
    )
}

pub fn del(fd: BorrowedFd<'_>, name: &str) -> SysResult<()> {
    let c = CString::new(name).expect("no NUL in event names");
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), DIAG_IOCSDEL, c.as_ptr()) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `write()` of `[u32 index][payload]`; returns the byte count the kernel accepted.
pub fn write_event(fd: BorrowedFd<'_>, index: u32, payload: &[u8]) -> SysResult<usize> {
    let idx = index.to_ne_bytes();
    let iov = [
        libc::iovec {
            iov_base: idx.as_ptr() as *mut _,
            iov_len: 4,
        },
        libc::iovec {
            iov_base: payload.as_ptr() as *mut _,
            iov_len: payload.len(),
        },
    ];
    writev(fd, &iov)
}

/// One `write()` of `bytes` as given (index included), for the checks of write() itself.
pub fn write(fd: BorrowedFd<'_>, bytes: &[u8]) -> SysResult<usize> {
    let r = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr() as *const _, bytes.len()) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

pub fn writev(fd: BorrowedFd<'_>, iov: &[libc::iovec]) -> SysResult<usize> {
    let r = unsafe { libc::writev(fd.as_raw_fd(), iov.as_ptr(), iov.len() as i32) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

/// `perf_event_open` on a tracepoint id: attaching perf is the second way a tracer enables
/// an event, and goes through the same `user_event_reg` path as tracefs.
pub fn perf_open_tracepoint(id: u64) -> SysResult<std::os::fd::OwnedFd> {
    perf_open_tracepoint_sampling(id, PERF_SAMPLE_RAW)
}

/// PERF_SAMPLE_IP: the sample begins with the instruction pointer of the registers the
/// probe handed perf (a u64).
pub const PERF_SAMPLE_IP: u64 = 1 << 0;
/// PERF_SAMPLE_RAW: the tracepoint's record, after a u32 size.
pub const PERF_SAMPLE_RAW: u64 = 1 << 10;

/// perf_event_open of a tracepoint for this task on any CPU, a sample for every event, with
/// these PERF_SAMPLE_* fields. Kernel samples are not excluded (exclude_kernel is 0), so the
/// sample's IP is the kernel's.
pub fn perf_open_tracepoint_sampling(id: u64, sample_type: u64) -> SysResult<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // struct perf_event_attr, PERF_ATTR_SIZE_VER0 layout (64 bytes) zero-extended to VER5.
    let mut attr = [0u8; 112];
    attr[0..4].copy_from_slice(&2u32.to_ne_bytes()); // type = PERF_TYPE_TRACEPOINT
    attr[4..8].copy_from_slice(&112u32.to_ne_bytes()); // size
    attr[8..16].copy_from_slice(&id.to_ne_bytes()); // config = tracepoint id
    attr[16..24].copy_from_slice(&1u64.to_ne_bytes()); // sample_period
    attr[24..32].copy_from_slice(&sample_type.to_ne_bytes());
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            0 as libc::pid_t,
            -1i32,
            -1i32,
            0u64,
        )
    };
    if fd < 0 {
        Err(Errno::last())
    } else {
        Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
    }
}
