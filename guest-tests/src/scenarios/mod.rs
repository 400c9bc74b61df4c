//! Every scenario the guest can run, by family. This list is the single source of truth:
//! the host learns it, with each scenario's properties, from `ue-scenarios --list-json`.
//!
//! A new scenario is one `Scenario::new(..)` entry in its family's `FAMILY`; a new family
//! is one file declaring `pub const FAMILY: Family` and one line in [`FAMILIES`].

use crate::framework::{Entry, Family};

mod abi;
mod basic;
mod client;
mod cow;
mod exec;
mod failslab;
mod faults;
mod fork;
mod kit;
mod leaks;
mod legacy;
mod limits;
mod multi;
mod munmap;
mod private;
mod privilege;
mod selftest;
mod shared;
mod stress;
mod threads;
mod trace;
mod types;
mod validate;

/// Every family the host may plan, in the order they run (the optional ones included).
pub const FAMILIES: &[&Family] = &[
    &basic::FAMILY,
    &abi::FAMILY,
    &shared::FAMILY,
    &private::FAMILY,
    &fork::FAMILY,
    &cow::FAMILY,
    &threads::FAMILY,
    &munmap::FAMILY,
    &exec::FAMILY,
    &trace::FAMILY,
    &legacy::FAMILY,
    &client::FAMILY,
    &stress::FAMILY,
    &types::FAMILY,
    &validate::FAMILY,
    &limits::FAMILY,
    &privilege::FAMILY,
    &multi::FAMILY,
    &faults::FAMILY,
    &failslab::FAMILY,
    &leaks::FAMILY,
];

/// Every scenario of [`FAMILIES`], the optional ones included.
pub fn all() -> Vec<Entry> {
    FAMILIES.iter().flat_map(|f| f.entries()).collect()
}

/// Finds a scenario by name, including the deliberately broken `selftest::` ones that only
/// the harness's own tests plan (they are in no list).
pub fn find(name: &str) -> Option<Entry> {
    FAMILIES
        .iter()
        .copied()
        .chain([&selftest::FAMILY])
        .flat_map(|f| f.entries())
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

#[cfg(test)]
mod tests {
    use super::*;
    use result_channel::{Feature, ScenarioInfo};

    #[test]
    fn names_are_unique_and_carry_their_family() {
        let all = all();
        let mut names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len(), "duplicate scenario names");
        for s in &all {
            assert_eq!(
                s.name.split_once("::").map(|(f, _)| f),
                Some(s.family),
                "{}",
                s.name
            );
            assert!(!s.name.starts_with("selftest::"), "{} is listed", s.name);
        }
        assert!(
            find("selftest::hangs").is_some(),
            "the broken scenarios are found by name"
        );
    }

    #[test]
    fn list_json_round_trips_as_scenario_infos() {
        let infos: Vec<ScenarioInfo> = all().iter().map(Entry::info).collect();
        let json = serde_json::to_string(&infos).unwrap();
        let back: Vec<ScenarioInfo> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, infos);
        let get = |n: &str| {
            infos
                .iter()
                .find(|i| i.name == n)
                .unwrap_or_else(|| panic!("{n} not listed"))
        };
        assert!(
            get("stress::many_events_one_page").optional
                && get("stress::many_events_one_page").alone
        );
        assert!(!get("basic::present").optional && get("basic::present").requires.is_empty());
        assert!(get("munmap::remap_fixed_gets_next_change").fault_warnings);
        assert!(!get("munmap::unreg_unmapped").fault_warnings);
        assert!(!get("shared::anon_follows_ftrace").fault_warnings);
        assert_eq!(
            get("munmap::madv_dontneed_before_enable").requires,
            [Feature::RemoteWrite, Feature::Madvise]
        );
        assert_eq!(
            get("legacy::status_bit_follows_enable").requires,
            [Feature::StatusPage]
        );
        assert_eq!(
            get("abi::persist_outlives_users").requires,
            [Feature::RemoteWrite, Feature::RegPersist]
        );
        // Its family says remote_write; it needs PERSIST too, so it says so itself.
        assert_eq!(
            get("abi::del_right_after_unreg").requires,
            [Feature::RemoteWrite, Feature::RegPersist]
        );
    }

    /// The runner probes a REG flag by registering with it, which needs the remote-write ABI:
    /// on a kernel without it that probe reports remote_write missing, so the scenario must
    /// declare it too (and first, so that it is the one probed first).
    #[test]
    fn a_reg_flag_comes_after_the_abi_it_is_a_flag_of() {
        for s in all() {
            for flag in [Feature::RegPersist, Feature::RegMultiFormat] {
                if let Some(i) = s.requires.iter().position(|&f| f == flag) {
                    assert!(
                        s.requires[..i].contains(&Feature::RemoteWrite),
                        "{} requires {flag} but not remote_write before it",
                        s.name
                    );
                }
            }
        }
    }

    #[test]
    fn every_scenario_but_the_presence_check_requires_an_abi() {
        for s in all() {
            if s.name != "basic::present" {
                assert!(
                    s.requires.contains(&Feature::RemoteWrite)
                        || s.requires.contains(&Feature::StatusPage),
                    "{} requires neither ABI",
                    s.name
                );
            }
        }
    }
}
