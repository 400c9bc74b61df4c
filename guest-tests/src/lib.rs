//! The guest side: everything here runs inside the VM, as static binaries in the initramfs.
//! `ue-init` is PID 1; `ue-scenarios` runs the planned scenarios, each in a child process of
//! its own, and reports them on the result channel (ttyS1).

pub mod framework;
pub mod kallsyms;
pub mod perf;
pub mod scenarios;
pub mod schedule;
pub mod tracefs;
pub mod uapi;
