//! What the pipeline needs from the host: [`proc`] (the one way to start, wait for and stop a
//! program), [`progress`] (that a long run is alive) and [`host_tools`] (the programs
//! themselves, installed without removing anything).

pub mod host_tools;
pub mod proc;
pub mod progress;
