//! Files a scenario reads or maps beside the kernel's view: an unlinked tmpfs file to map,
//! pread() that bypasses any mapping, and the kernel log's records.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use super::Stop;
use crate::{check, fail};

/// A file on the guest's tmpfs holding `content`, already unlinked.
pub fn tmpfs_file(content: &[u8]) -> Result<OwnedFd, Stop> {
    use std::os::fd::FromRawFd;
    let dir = std::ffi::CString::new("/tmp").unwrap();
    let fd = unsafe {
        libc::open(
            dir.as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            0o600,
        )
    };
    check!(fd >= 0, "O_TMPFILE in /tmp: {}", io::Error::last_os_error());
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let n = unsafe {
        libc::pwrite(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            content.as_ptr() as *const _,
            content.len(),
            0,
        )
    };
    check!(
        n == content.len() as isize,
        "pwrite: {}",
        io::Error::last_os_error()
    );
    Ok(fd)
}

/// Reads `len` bytes at `off` with pread(), bypassing any mapping.
pub fn pread(fd: BorrowedFd<'_>, len: usize, off: i64) -> Result<Vec<u8>, Stop> {
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; len];
    let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr() as *mut _, len, off) };
    check!(n == len as isize, "pread: {}", io::Error::last_os_error());
    Ok(buf)
}

/// How many kernel log records (read from /dev/kmsg, from the start) contain `needle`: for
/// waiting on a pr_warn that marks the end of asynchronous kernel work.
pub fn kmsg_count(needle: &str) -> Result<usize, Stop> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")?;
    let mut buf = vec![0u8; 8192];
    let mut count = 0;
    loop {
        // One record per read; EAGAIN at the end, EPIPE when a record was overwritten.
        match f.read(&mut buf) {
            Ok(0) => return Ok(count),
            Ok(n) => count += usize::from(String::from_utf8_lossy(&buf[..n]).contains(needle)),
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(count),
            Err(e) => fail!("/dev/kmsg: {e}"),
        }
    }
}
