//! Every scenario the guest can run, by family. This list is the single source of truth:
//! the host learns it from `ue-scenarios --list-json`.

use crate::framework::Scenario;

mod abi;
mod basic;
mod client;
mod cow;
mod exec;
mod fork;
mod legacy;
mod munmap;
mod private;
mod selftest;
mod shared;
mod threads;
mod trace;

pub fn all() -> Vec<Scenario> {
    let families: [&[Scenario]; 12] = [
        basic::SCENARIOS,
        abi::SCENARIOS,
        shared::SCENARIOS,
        private::SCENARIOS,
        fork::SCENARIOS,
        cow::SCENARIOS,
        threads::SCENARIOS,
        munmap::SCENARIOS,
        exec::SCENARIOS,
        trace::SCENARIOS,
        legacy::SCENARIOS,
        client::SCENARIOS,
    ];
    families.iter().flat_map(|f| f.iter()).map(|s| Scenario { name: s.name, about: s.about, run: s.run }).collect()
}

/// Finds a scenario by name, including the deliberately broken `selftest::` ones that only the
/// harness's own tests plan (they are not in [`all`]).
pub fn find(name: &str) -> Option<Scenario> {
    let s = all().into_iter().chain(selftest::SCENARIOS.iter().map(|s| Scenario { name: s.name, about: s.about, run: s.run }));
    s.into_iter().find(|s| s.name == name)
}

/// The exec'd half of a scenario (`ue-scenarios --helper WHICH ARGS...`); returns the exit code.
pub fn helper(which: &str, args: &[&str]) -> i32 {
    if which.starts_with("client-") {
        client::helper(which, args)
    } else {
        exec::helper(which, args)
    }
}
