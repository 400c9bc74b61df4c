//! Memory that holds enable words: mappings unmapped on drop, and volatile reads and writes,
//! since the kernel changes these words behind the compiler's back. And the memory the
//! kernel holds for itself ([`KernelMemory`]), which a leak makes grow.

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

    /// `pages` anonymous pages, MAP_PRIVATE or MAP_SHARED (`flags`), with protection `prot`:
    /// a read-only or PROT_NONE word, or a run of pages for words on several of them.
    pub fn anon_pages(pages: usize, prot: i32, flags: i32) -> Result<Self, Stop> {
        Self::map(pages * 4096, prot, flags | libc::MAP_ANONYMOUS, -1, 0)
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

    /// One page of memfd_secret(2) memory, shared and writable, at `at` (MAP_FIXED, over
    /// whatever is mapped there) or anywhere. The process reads and writes it as any page,
    /// but the kernel's page pinning refuses it, while a fault-in succeeds. Its scenarios
    /// require [`Feature::Secretmem`](result_channel::Feature::Secretmem), which the runner
    /// has probed, so any error is a failure.
    pub fn secret(at: Option<*const u8>) -> Result<Self, Stop> {
        let fd = unsafe { libc::syscall(libc::SYS_memfd_secret, 0) };
        if fd < 0 {
            fail!("memfd_secret(0): {}", io::Error::last_os_error());
        }
        let fd = fd as i32;
        let sized = unsafe { libc::ftruncate(fd, 4096) };
        let e = io::Error::last_os_error();
        let mapped = if sized != 0 {
            Err(Stop::Fail(format!("ftruncate of a memfd_secret fd: {e}")))
        } else {
            let (addr, fixed) = at.map_or((std::ptr::null(), 0), |a| (a, libc::MAP_FIXED));
            Self::map_at(
                addr,
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | fixed,
                fd,
                0,
            )
        };
        // The mapping holds the file.
        unsafe { libc::close(fd) };
        mapped
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

/// The memory the kernel holds for itself, from `/proc/meminfo`, in kB: what a release the
/// kernel forgets keeps. Unreclaimable slab holds every kmalloc and kmem_cache object of
/// user_events (and a process's mm_struct); page tables and kernel stacks are what a process
/// the kernel never lets go of keeps besides. The guest kernel (SLUB_TINY) has no
/// `/proc/slabinfo`, so these totals are all there is; reclaimable slab (dentries, inodes)
/// is left out, since the kernel keeps those as a cache and frees them under pressure only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KernelMemory {
    pub slab_unreclaimable: i64,
    pub page_tables: i64,
    pub kernel_stack: i64,
}

impl KernelMemory {
    pub fn read() -> Result<Self, Stop> {
        Self::parse(&std::fs::read_to_string("/proc/meminfo")?)
    }

    /// The three counters of a `/proc/meminfo` text; a counter missing is a failure.
    pub fn parse(meminfo: &str) -> Result<Self, Stop> {
        let kb = |key: &str| -> Result<i64, Stop> {
            match meminfo.lines().find_map(|l| {
                l.strip_prefix(key)?
                    .strip_prefix(':')?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            }) {
                Some(n) => Ok(n),
                None => fail!("/proc/meminfo has no {key} line in kB"),
            }
        };
        Ok(KernelMemory {
            slab_unreclaimable: kb("SUnreclaim")?,
            page_tables: kb("PageTables")?,
            kernel_stack: kb("KernelStack")?,
        })
    }

    /// What each counter grew by since `before` (negative: it shrank).
    pub fn since(&self, before: &KernelMemory) -> KernelMemory {
        KernelMemory {
            slab_unreclaimable: self.slab_unreclaimable - before.slab_unreclaimable,
            page_tables: self.page_tables - before.page_tables,
            kernel_stack: self.kernel_stack - before.kernel_stack,
        }
    }
}

/// A growth, as `SUnreclaim +X kB, PageTables +Y kB, KernelStack +Z kB`.
impl std::fmt::Display for KernelMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SUnreclaim {:+} kB, PageTables {:+} kB, KernelStack {:+} kB",
            self.slab_unreclaimable, self.page_tables, self.kernel_stack
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_own_memory_is_read_from_meminfo() {
        let meminfo = "MemTotal:         500000 kB\nSReclaimable:       1234 kB\n\
                       SUnreclaim:         5678 kB\nKernelStack:         960 kB\n\
                       PageTables:          312 kB\nSecPageTables:         0 kB\n";
        let m = KernelMemory::parse(meminfo).unwrap();
        assert_eq!(
            m,
            KernelMemory {
                slab_unreclaimable: 5678,
                page_tables: 312,
                kernel_stack: 960,
            }
        );
        let grown = KernelMemory {
            slab_unreclaimable: 5700,
            ..m
        }
        .since(&m);
        assert_eq!(grown.slab_unreclaimable, 22);
        assert_eq!(
            grown.to_string(),
            "SUnreclaim +22 kB, PageTables +0 kB, KernelStack +0 kB"
        );
        assert!(KernelMemory::parse("SUnreclaim: 1 kB\n").is_err());
    }
}
