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
mod stress;
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
    families
        .iter()
        .flat_map(|f| f.iter())
        .map(|s| Scenario {
            name: s.name,
            about: s.about,
            run: s.run,
        })
        .collect()
}

/// Scenarios that run only when asked for (`cargo xtask test --stress`).
pub fn optional() -> Vec<Scenario> {
    stress::SCENARIOS
        .iter()
        .map(|s| Scenario {
            name: s.name,
            about: s.about,
            run: s.run,
        })
        .collect()
}

/// Finds a scenario by name, including the optional ones and the deliberately broken
/// `selftest::` ones that only the harness's own tests plan (they are in no list).
pub fn find(name: &str) -> Option<Scenario> {
    let broken = selftest::SCENARIOS.iter().map(|s| Scenario {
        name: s.name,
        about: s.about,
        run: s.run,
    });
    all()
        .into_iter()
        .chain(optional())
        .chain(broken)
        .find(|s| s.name == name)
}

/// The exec'd half of a scenario (`ue-scenarios --helper WHICH ARGS...`); returns the exit code.
pub fn helper(which: &str, args: &[&str]) -> i32 {
    if which.starts_with("client-") {
        client::helper(which, args)
    } else {
        exec::helper(which, args)
    }
}
