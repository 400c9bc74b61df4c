//! `cargo xtask selftest`'s cases: the harness's own integration tests, which boot the real
//! kernel and run this program as people do. [`vm`]: broken guests and what the harness
//! reports of them; [`cache`]: whole runs on scratch caches (interrupted, offline, two at
//! once); [`devloop`]: the kernel developer's loop on a scratch git tree; [`guest`]: other
//! people's tests in the guest.

pub mod cache;
pub mod devloop;
pub mod guest;
pub mod vm;
