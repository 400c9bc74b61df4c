//! What a family file declares and what the runner sees: a [`Scenario`] says its name, its
//! promise and whatever it does differently from its [`Family`]'s defaults (fault warnings,
//! running alone, the features it requires); [`Entry`] is the same scenario with every
//! property resolved, as the runner plans it and the host learns it (`--list-json`).

use result_channel::{Feature, ScenarioInfo};

use super::{Ctx, R};

/// One scenario as its family file declares it: a name within the family, its promise and
/// its function, plus whatever it says differently from the family's defaults.
/// `Scenario::new("name", "about", run).fault_warnings(true)` in a `const`.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// The name within the family; the full name is `family::name`.
    pub name: &'static str,
    /// One line: the promise of the ABI this scenario checks.
    pub about: &'static str,
    pub run: fn(&mut Ctx) -> R,
    fault_warnings: Option<bool>,
    fault_worker: Option<bool>,
    alone: Option<bool>,
    requires: Option<&'static [Feature]>,
}

impl Scenario {
    pub const fn new(name: &'static str, about: &'static str, run: fn(&mut Ctx) -> R) -> Self {
        Scenario {
            name,
            about,
            run,
            fault_warnings: None,
            fault_worker: None,
            alone: None,
            requires: None,
        }
    }

    /// The kernel's warnings about a bit it could not write ("user_events: Fault for mm",
    /// "user_events: Unable to queue fault handler") are an expected outcome here (the
    /// scenario unmaps or protects its word, or fails the fault record's allocation, on
    /// purpose), or, with `false`, trouble.
    pub const fn fault_warnings(mut self, yes: bool) -> Self {
        self.fault_warnings = Some(yes);
        self
    }

    /// The kernel writes its enable bits through the fault worker (the page is not present
    /// or is copy-on-write when the bit changes), or, with `false`, never does. The runner
    /// uses it to keep what does not need the worker away from a kernel whose worker broke
    /// (`ScenarioInfo::fault_worker`); `selftest::fault_worker_users_are_declared` checks it.
    pub const fn fault_worker(mut self, yes: bool) -> Self {
        self.fault_worker = Some(yes);
        self
    }

    /// Must run with no other scenario beside it (load-making, timing-sensitive, or using
    /// global state such as a sysctl). The trace buffer is not such state: each scenario
    /// traces into a tracefs instance of its own. The global lists are (`dynamic_events`,
    /// `user_events_status`): seq_file hands them out a page per read() and finds its place
    /// again by position, so an event another scenario adds or removes between two pages
    /// shifts the lines, and a line can be skipped (seen: an event just registered missing
    /// from `dynamic_events`), which could also make an absence check pass. Their readers run
    /// alone so that the list mostly holds still, and read it until two reads agree
    /// (`tracefs::status`, `tracefs::dynamic_events`): the kernel also deletes events in the
    /// background once their last reference goes.
    pub const fn alone(mut self, yes: bool) -> Self {
        self.alone = Some(yes);
        self
    }

    /// The features it requires, replacing the family's list: the runner probes them before
    /// the scenario runs ([`Entry::run_if_present`]), so a scenario that needs more than its
    /// family (a REG flag, madvise) says so here rather than in its code.
    pub const fn requires(mut self, features: &'static [Feature]) -> Self {
        self.requires = Some(features);
        self
    }
}

/// What nearly every scenario requires: the 6.4+ ABI ([`Ctx::require_remote_write`]).
pub const REMOTE_WRITE: &[Feature] = &[Feature::RemoteWrite];

/// A family of scenarios (one file under `scenarios/`): its name, whether it runs only on
/// request, and the defaults its scenarios inherit unless they say otherwise.
pub struct Family {
    pub name: &'static str,
    pub optional: bool,
    pub fault_warnings: bool,
    pub fault_worker: bool,
    pub alone: bool,
    pub requires: &'static [Feature],
    pub scenarios: &'static [Scenario],
}

impl Family {
    /// A family of scenarios that run by default, expect no fault warning, may share the
    /// machine, and require nothing; the builders below change that.
    pub const fn new(name: &'static str, scenarios: &'static [Scenario]) -> Self {
        Family {
            name,
            optional: false,
            fault_warnings: false,
            fault_worker: false,
            alone: false,
            requires: &[],
            scenarios,
        }
    }

    /// Runs only when asked for (`cargo xtask test --stress`).
    pub const fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    pub const fn fault_warnings(mut self) -> Self {
        self.fault_warnings = true;
        self
    }

    pub const fn alone(mut self) -> Self {
        self.alone = true;
        self
    }

    /// Its scenarios drive the fault worker unless they say otherwise.
    pub const fn fault_worker(mut self) -> Self {
        self.fault_worker = true;
        self
    }

    /// The features its scenarios require unless they say otherwise (probed by the runner).
    pub const fn requires(mut self, features: &'static [Feature]) -> Self {
        self.requires = features;
        self
    }

    /// Its scenarios, with the family's defaults filled in.
    pub fn entries(&'static self) -> impl Iterator<Item = Entry> {
        self.scenarios.iter().map(move |s| Entry {
            name: format!("{}::{}", self.name, s.name),
            family: self.name,
            about: s.about,
            run: s.run,
            optional: self.optional,
            fault_warnings: s.fault_warnings.unwrap_or(self.fault_warnings),
            fault_worker: s.fault_worker.unwrap_or(self.fault_worker),
            alone: s.alone.unwrap_or(self.alone),
            requires: s.requires.unwrap_or(self.requires),
        })
    }
}

/// A scenario as the runner sees it: full name, and every property resolved.
#[derive(Clone)]
pub struct Entry {
    /// `family::name`; the family groups it for `cargo xtask test -- family`.
    pub name: String,
    pub family: &'static str,
    pub about: &'static str,
    pub run: fn(&mut Ctx) -> R,
    pub optional: bool,
    pub fault_warnings: bool,
    pub fault_worker: bool,
    pub alone: bool,
    pub requires: &'static [Feature],
}

impl Entry {
    /// What the host learns about it (`ue-scenarios --list-json`).
    pub fn info(&self) -> ScenarioInfo {
        ScenarioInfo {
            name: self.name.clone(),
            family: self.family.to_owned(),
            about: self.about.to_owned(),
            optional: self.optional,
            fault_warnings: self.fault_warnings,
            fault_worker: self.fault_worker,
            alone: self.alone,
            requires: self.requires.to_vec(),
        }
    }

    /// Runs the scenario if the kernel has every feature it requires, probed first in the
    /// order declared; the first one missing ignores it, with what the probe found, before
    /// any of its own code runs. A scenario never checks its requirements itself.
    pub fn run_if_present(&self, cx: &mut Ctx) -> R {
        cx.require_all(self.requires)?;
        (self.run)(cx)
    }
}
