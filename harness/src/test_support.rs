//! What the harness's unit tests build their plans from.

use result_channel::ScenarioInfo;

/// A planned scenario with no traits, its family the part of `name` before `::` (the
/// tests' names always have one).
pub fn scenario(name: &str) -> ScenarioInfo {
    ScenarioInfo {
        name: name.into(),
        family: name.split("::").next().unwrap_or_default().into(),
        about: String::new(),
        optional: false,
        fault_warnings: false,
        fault_worker: false,
        alone: false,
        requires: vec![],
    }
}
