//! The host side of the harness, in the order data flows through it:
//! [`image`] (initramfs from [`initramfs`]) → [`qemu`] (command line) → [`vm`] (one boot: console
//! and result channel, limits) → [`console`] (kernel trouble) → [`verdict`] (one per scenario)
//! → [`trials`] (libtest-mimic) with [`snapshots`]; [`suite`] ties one kernel's run together.

pub mod accel;
pub mod console;
pub mod image;
pub mod initramfs;
pub mod ktap;
pub mod qemu;
pub mod report;
pub mod snapshots;
pub mod suite;
pub mod trials;
pub mod verdict;
pub mod vm;
pub use result_channel as channel;
