//! The kernel's own symbol table, `/proc/kallsyms`: which function a kernel address the
//! kernel reported (a perf sample's IP) lies in.

use std::io;

/// The text symbols of the running kernel, by address.
pub struct KernelText {
    /// (address, name) of every text symbol (`t`/`T`), sorted by address.
    symbols: Vec<(u64, String)>,
}

impl KernelText {
    /// Reads `/proc/kallsyms`. Addresses read as 0 where the reader may not see them
    /// (kptr_restrict, no CAP_SYSLOG): that is refused here, since every lookup would fail.
    pub fn load() -> io::Result<Self> {
        let text = std::fs::read_to_string("/proc/kallsyms")?;
        let mut symbols: Vec<(u64, String)> = text
            .lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                let addr = u64::from_str_radix(parts.next()?, 16).ok()?;
                let kind = parts.next()?;
                let name = parts.next()?;
                // Module symbols carry a fourth column; the harness's kernels build
                // user_events in, so only the kernel's own text is of interest.
                (matches!(kind, "t" | "T") && parts.next().is_none())
                    .then(|| (addr, name.to_string()))
            })
            .collect();
        if symbols.iter().all(|(addr, _)| *addr == 0) {
            return Err(io::Error::other(format!(
                "/proc/kallsyms lists {} text symbols, all at address 0: addresses are hidden \
                 from this process (kptr_restrict or no CAP_SYSLOG)",
                symbols.len()
            )));
        }
        symbols.sort_unstable();
        Ok(KernelText { symbols })
    }

    /// The function `addr` lies in: the last text symbol at or below it, as gcc named it
    /// (a clone keeps its suffix, `.constprop.0`, `.isra.0`, `.cold`). None below the first
    /// symbol.
    pub fn function_at(&self, addr: u64) -> Option<&str> {
        let after = self.symbols.partition_point(|(a, _)| *a <= addr);
        after.checked_sub(1).map(|i| self.symbols[i].1.as_str())
    }
}

/// A symbol's name without the suffix gcc gives a clone or a split part of a function
/// (`.constprop.0`, `.isra.0`, `.part.0`, `.cold`).
pub fn base_name(symbol: &str) -> &str {
    symbol.split('.').next().unwrap_or(symbol)
}
