//! The host side of the harness, in the order data flows through it:
//! [`model`] (the shared types: kernel, options, verdicts, a run) → [`listing`] (what the
//! guest can run; [`guest_program`]: other people's test programs) → [`image`] (initramfs from [`initramfs`]) → [`qemu`] (command line) →
//! [`vm`] (one boot: console and result channel, limits) → [`console`] and [`ktap`] and [`libtest`]
//! (what the kernel and the test programs said) → [`verdict`] (one per scenario) → [`run`] (one kernel's
//! boot, tying those together; [`retry`]: `--retries`) → [`artifacts`] (results.json, JUnit) → [`trials`]
//! (libtest-mimic, with [`snapshots`]) and [`report`] (the matrix). [`interrupt`] is the
//! SIGINT/SIGTERM flag every long wait polls.

pub mod accel;
pub mod arch;
pub mod artifacts;
pub mod console;
pub mod guest_program;
pub mod host_tsc;
pub mod image;
pub mod initramfs;
pub mod interrupt;
pub mod ktap;
pub mod libtest;
pub mod listing;
pub mod model;
pub mod proc;
pub mod qemu;
pub mod report;
pub mod retry;
pub mod run;
pub mod snapshots;
#[cfg(test)]
mod test_support;
pub mod trials;
pub mod verdict;
pub mod vm;
pub use result_channel as channel;
