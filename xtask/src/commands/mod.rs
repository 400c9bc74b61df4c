//! One module per command, each with its arguments and a `run`.

pub mod bench;
pub mod bisect;
pub mod build_guest;
pub mod build_kernel;
pub mod cache;
pub mod flakes;
pub mod host_tools;
pub mod kernels;
pub mod matrix;
pub mod mutants;
pub mod mutate;
pub mod parse;
pub mod report;
pub mod rerun;
pub mod selftest;
pub mod setup;
pub mod shell;
pub mod test;
