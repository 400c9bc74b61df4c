//! A perf ring buffer on one tracepoint: the other kind of probe the kernel hands written
//! payloads to, read back as the records the kernel built.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;

use crate::check;
use crate::framework::{read64, Mapping, Stop};
use crate::uapi;

/// A perf ring buffer on one tracepoint (PERF_SAMPLE_RAW, every event), for the record the
/// kernel built: its `trace_entry` header and the payload as the kernel copied it; and, when
/// opened with [`PerfRing::open_with_ip`], the kernel IP perf was handed with it.
pub struct PerfRing {
    _fd: OwnedFd,
    map: Mapping,
    sample_type: u64,
}

/// One PERF_RECORD_SAMPLE of a [`PerfRing`].
pub struct Sample {
    /// PERF_SAMPLE_IP, when the ring asked for it.
    pub ip: Option<u64>,
    /// PERF_SAMPLE_RAW: `trace_entry` (8 bytes), the payload, then padding.
    pub raw: Vec<u8>,
}

const RING_PAGES: usize = 8;

impl PerfRing {
    pub fn open(id: u64) -> Result<Self, Stop> {
        Self::open_pages(id, RING_PAGES)
    }

    /// With a ring of `pages` pages (a power of two): room for samples of up to perf's
    /// largest tracepoint record (PERF_MAX_TRACE_SIZE, 8 KiB) without wrapping.
    pub fn open_pages(id: u64, pages: usize) -> Result<Self, Stop> {
        Self::open_sampling(id, pages, uapi::PERF_SAMPLE_RAW)
    }

    /// Samples that also carry PERF_SAMPLE_IP: where in the kernel the probe said the event
    /// happened (the registers it handed perf).
    pub fn open_with_ip(id: u64) -> Result<Self, Stop> {
        Self::open_sampling(id, RING_PAGES, uapi::PERF_SAMPLE_IP | uapi::PERF_SAMPLE_RAW)
    }

    fn open_sampling(id: u64, pages: usize, sample_type: u64) -> Result<Self, Stop> {
        let fd = uapi::perf_open_tracepoint_sampling(id, sample_type)
            .map_err(|e| Stop::Fail(format!("perf_event_open of tracepoint {id}: {e}")))?;
        let len = 4096 * (1 + pages);
        let map = Mapping::map(
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )?;
        Ok(PerfRing {
            _fd: fd,
            map,
            sample_type,
        })
    }

    /// The PERF_SAMPLE_RAW data of every sample so far: `trace_entry` (8 bytes), the payload,
    /// then padding. The ring is read once and must not have wrapped.
    pub fn raw_samples(&self) -> Result<Vec<Vec<u8>>, Stop> {
        Ok(self.samples()?.into_iter().map(|s| s.raw).collect())
    }

    /// Every sample so far, in the order the kernel wrote them.
    pub fn samples(&self) -> Result<Vec<Sample>, Stop> {
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
                // PERF_RECORD_SAMPLE: its fields in perf's order, IP (a u64) before RAW (a
                // u32 size, then the bytes), after the 8-byte header.
                let has_ip = self.sample_type & uapi::PERF_SAMPLE_IP != 0;
                let at = pos + 8 + if has_ip { 8 } else { 0 };
                check!(
                    at + 4 <= pos + len,
                    "perf sample at {pos} of {len} bytes is too short for its fields"
                );
                let ip = has_ip.then(|| u64::from_ne_bytes(data[pos + 8..at].try_into().unwrap()));
                let raw = u32::from_ne_bytes(data[at..at + 4].try_into().unwrap()) as usize;
                check!(
                    at + 4 + raw <= pos + len,
                    "perf sample at {pos} of {len} bytes holds a raw part of {raw}"
                );
                out.push(Sample {
                    ip,
                    raw: data[at + 4..at + 4 + raw].to_vec(),
                });
            }
            pos += len;
        }
        Ok(out)
    }
}
