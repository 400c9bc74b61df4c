//! A perf ring buffer on one tracepoint: the other kind of probe the kernel hands written
//! payloads to, read back as the records the kernel built.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;

use crate::check;
use crate::framework::{read64, Mapping, Stop};
use crate::uapi;

/// A perf ring buffer on one tracepoint (PERF_SAMPLE_RAW, every event), for the record the
/// kernel built: its `trace_entry` header and the payload as the kernel copied it.
pub struct PerfRing {
    _fd: OwnedFd,
    map: Mapping,
}

const RING_PAGES: usize = 8;

impl PerfRing {
    pub fn open(id: u64) -> Result<Self, Stop> {
        Self::open_pages(id, RING_PAGES)
    }

    /// With a ring of `pages` pages (a power of two): room for samples of up to perf's
    /// largest tracepoint record (PERF_MAX_TRACE_SIZE, 8 KiB) without wrapping.
    pub fn open_pages(id: u64, pages: usize) -> Result<Self, Stop> {
        let fd = uapi::perf_open_tracepoint(id)
            .map_err(|e| Stop::Fail(format!("perf_event_open of tracepoint {id}: {e}")))?;
        let len = 4096 * (1 + pages);
        let map = Mapping::map(
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )?;
        Ok(PerfRing { _fd: fd, map })
    }

    /// The PERF_SAMPLE_RAW data of every sample so far: `trace_entry` (8 bytes), the payload,
    /// then padding. The ring is read once and must not have wrapped.
    pub fn raw_samples(&self) -> Result<Vec<Vec<u8>>, Stop> {
        // struct perf_event_mmap_page: data_head @1024, data_offset @1040, data_size @1048.
        let head = read64(self.map.addr(1024)) as usize;
        std::sync::atomic::fence(Ordering::Acquire);
        let (off, size) = (
            read64(self.map.addr(1040)) as usize,
            read64(self.map.addr(1048)) as usize,
        );
        check!(
            head <= size,
            "perf ring wrapped ({head} bytes written, {size} in the ring)"
        );
        let data = unsafe { std::slice::from_raw_parts(self.map.addr(off), head) };
        let (mut out, mut pos) = (vec![], 0);
        while pos + 8 <= head {
            let kind = u32::from_ne_bytes(data[pos..pos + 4].try_into().unwrap());
            let len = u16::from_ne_bytes(data[pos + 6..pos + 8].try_into().unwrap()) as usize;
            check!(
                len >= 8 && pos + len <= head,
                "perf record of size {len} at {pos} of {head}"
            );
            if kind == 9 {
                // PERF_RECORD_SAMPLE with only PERF_SAMPLE_RAW: u32 size, then the raw bytes.
                let raw = u32::from_ne_bytes(data[pos + 8..pos + 12].try_into().unwrap()) as usize;
                out.push(data[pos + 12..pos + 12 + raw].to_vec());
            }
            pos += len;
        }
        Ok(out)
    }
}
