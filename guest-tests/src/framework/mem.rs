//! Memory that holds enable words: mappings unmapped on drop, and volatile reads and writes,
//! since the kernel changes these words behind the compiler's back.

use std::io;

use super::Stop;
use crate::{check, fail};

/// An mmap'd region, unmapped on drop.
pub struct Mapping {
    pub ptr: *mut u8,
    pub len: usize,
}

impl Mapping {
    pub fn anon(flags: i32) -> Result<Self, Stop> {
        Self::map(
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            flags | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    }

    pub fn map(len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> Result<Self, Stop> {
        Self::map_at(std::ptr::null(), len, prot, flags, fd, off)
    }

    /// mmap with an address; with MAP_FIXED or MAP_FIXED_NOREPLACE, anything else is a failure.
    pub fn map_at(
        addr: *const u8,
        len: usize,
        prot: i32,
        flags: i32,
        fd: i32,
        off: i64,
    ) -> Result<Self, Stop> {
        let p = unsafe { libc::mmap(addr as *mut _, len, prot, flags, fd, off) };
        if p == libc::MAP_FAILED {
            fail!("mmap at {addr:p}: {}", io::Error::last_os_error());
        }
        let m = Mapping {
            ptr: p as *mut u8,
            len,
        };
        if flags & (libc::MAP_FIXED | libc::MAP_FIXED_NOREPLACE) != 0 {
            check!(
                std::ptr::eq(m.ptr, addr),
                "mmap gave {:p}, not the fixed {addr:p}",
                m.ptr
            );
        }
        Ok(m)
    }

    pub fn addr(&self, off: usize) -> *const u8 {
        unsafe { self.ptr.add(off) }
    }

    pub fn u32_at(&self, off: usize) -> u32 {
        read32(self.addr(off))
    }

    pub fn u64_at(&self, off: usize) -> u64 {
        read64(self.addr(off))
    }

    /// Leaks the mapping, for scenarios that unmap it themselves.
    pub fn forget(self) -> (*mut u8, usize) {
        let r = (self.ptr, self.len);
        std::mem::forget(self);
        r
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.ptr as *mut _, self.len) };
    }
}

/// Reads an enable word as the kernel left it (it changes behind the compiler's back).
pub fn read32(p: *const u8) -> u32 {
    unsafe { std::ptr::read_volatile(p as *const u32) }
}

pub fn read64(p: *const u8) -> u64 {
    unsafe { std::ptr::read_volatile(p as *const u64) }
}

pub fn write32(p: *const u8, v: u32) {
    unsafe { std::ptr::write_volatile(p as *mut u32, v) }
}
