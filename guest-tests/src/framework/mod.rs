//! What a scenario is made of, one module per concern: how it ends ([`stop`]), how a family
//! file declares it ([`decl`]), the context it runs in ([`ctx`]), the probes of what the
//! kernel has ([`probe`]), and its tools for polling ([`poll`]), memory ([`mem`]), other
//! processes ([`process`]) and files ([`files`]). Everything is re-exported here, so a
//! scenario family names it as `crate::framework::X` wherever it lives.

pub mod ctx;
pub mod decl;
pub mod files;
pub mod mem;
pub mod poll;
pub mod probe;
pub mod process;
pub mod stop;
pub mod uffd;

pub use ctx::Ctx;
pub use decl::{Entry, Family, Scenario, REMOTE_WRITE};
pub use files::{kmsg_count, pread, tmpfs_file};
pub use mem::{read32, read64, write32, KernelMemory, Mapping};
pub use poll::{
    negative_window, negative_window_after, pause, poll_until, wait_until, CONTROL_MULTIPLE,
    NEGATIVE_FLOOR,
};
pub use process::{
    clone_thread, clone_vm, exec_helper, fork, helper_verdict, keep_across_exec, Child, JobThread,
    Pipe,
};
pub use stop::{Context, Stop, R};
