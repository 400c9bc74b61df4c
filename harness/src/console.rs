//! Watches the kernel console for trouble: panics, oopses, BUG/WARNING splats, sanitizer and
//! lockdep reports, lockups, and user_events' own fault warning. Works line by line, so it
//! serves a live run and a saved console log alike (`xtask parse`).

pub use result_channel::trouble::{classify, strip_timestamp, TroubleKind};
use result_channel::ScenarioInfo;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Trouble {
    pub kind: TroubleKind,
    /// The scenario that was running when the first line arrived: by the runner's markers in
    /// the console, or else by the result channel. None when several ran ([`Trouble::beside`]).
    pub during: Option<String>,
    /// The scenarios running side by side when it came (empty when one or none ran): the
    /// console cannot tell whose it is, so each is a candidate until it runs again alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub beside: Vec<String>,
    /// Those of `beside` that ran again later, one at a time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rerun: Vec<String>,
    /// A rerun alone splatted too: that rerun's own trouble judges it, and the reruns that
    /// stayed clean are cleared. Unreproduced (a WARN_ONCE, say), it counts against every
    /// candidate: the console cannot say whose it was, and it must not be lost.
    #[serde(default)]
    pub reproduced: bool,
    /// The process the splat names (`PID: N`), when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The work function a kworker was running, from the splat's `Workqueue: WQ FUNC` line:
    /// the trouble is the work's, queued by whoever queued it, not the running scenario's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work: Option<String>,
    /// The scenarios started last before it came, the latest last (at most
    /// [`RECENT_STARTS`]): where the queuer of a work item is looked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<String>,
    /// The first line and what followed it (the call trace), bounded.
    pub excerpt: Vec<String>,
}

const EXCERPT_LINES: usize = 40;

/// How many of the scenarios started before a splat it remembers ([`Trouble::recent`]).
pub const RECENT_STARTS: usize = 8;

/// The work function of user_events' fault worker (6.4 on): a splat in it belongs to the
/// scenario whose enable write queued the fault.
pub const FAULT_WORK: &str = "user_event_enabler_fault_fixup";

/// Feeds console lines in order, collecting [`Trouble`]s with their excerpts.
#[derive(Default)]
pub struct Watch {
    pub found: Vec<Trouble>,
    open: Option<usize>,
    /// The scenarios between the runner's start and end markers in the console stream.
    marked: Vec<String>,
    /// Each scenario's process, from the runner's `pid` markers.
    pids: Vec<(u32, String)>,
    /// Every scenario start, in console order.
    started: Vec<String>,
    seen_markers: bool,
}

impl Watch {
    pub fn new() -> Self {
        Self::default()
    }

    /// `during` is what the result channel says is running; the runner's markers in the console
    /// itself take precedence once seen, since they are ordered with the splats exactly.
    pub fn feed(&mut self, line: &str, during: Option<&str>) {
        let line = line.trim_end_matches(['\r', '\n']);
        if let Some(rest) = strip_timestamp(line).strip_prefix(result_channel::KMSG_MARKER) {
            self.seen_markers = true;
            if let Some(name) = rest.strip_prefix("start ") {
                // A second start is a rerun alone: it judges what came beside its first run.
                for t in &mut self.found {
                    if t.beside.iter().any(|b| b == name) && !t.rerun.iter().any(|r| r == name) {
                        t.rerun.push(name.to_owned());
                    }
                }
                self.marked.push(name.to_owned());
                self.started.push(name.to_owned());
            } else if let Some((pid, name)) = result_channel::parse_pid_marker(rest) {
                self.pids.push((pid, name.to_owned()));
            } else if let Some(name) = rest.strip_prefix("end ") {
                self.marked.retain(|m| m != name);
            }
            return;
        }
        let beside = if self.marked.len() > 1 {
            self.marked.clone()
        } else {
            vec![]
        };
        let during = if self.seen_markers {
            self.marked
                .first()
                .filter(|_| beside.is_empty())
                .map(String::as_str)
        } else {
            during
        };
        // The hung-task report is a few known lines (its stack only at the console's INFO
        // level): anything else after it is not its.
        if let Some(i) = self.open {
            if self.found[i].kind == TroubleKind::HungTask && !continues_hung_task(line) {
                self.open = None;
            }
        }
        if let Some(kind) = classify(line) {
            // A panic that follows an oops belongs to it, and so does the `Oops:` line of a
            // `BUG:` splat (a NULL dereference prints both, the task and `Workqueue:` lines
            // after the second): extend, don't split.
            let open_kind = self.open.map(|i| self.found[i].kind);
            let continues = kind == TroubleKind::Panic && open_kind.is_some()
                || kind == TroubleKind::Oops && open_kind == Some(TroubleKind::Bug);
            if !continues {
                if let Some(alone) = during {
                    for t in &mut self.found {
                        if t.rerun.iter().any(|r| r == alone) {
                            t.reproduced = true;
                        }
                    }
                }
                self.found.push(Trouble {
                    kind,
                    during: during.map(str::to_owned),
                    beside,
                    rerun: vec![],
                    reproduced: false,
                    pid: None,
                    work: None,
                    recent: self.started[self.started.len().saturating_sub(RECENT_STARTS)..]
                        .to_vec(),
                    excerpt: vec![],
                });
                self.open = Some(self.found.len() - 1);
            }
        }
        if let Some(i) = self.open {
            let t = &mut self.found[i];
            if t.pid.is_none() {
                t.pid = result_channel::splat_pid(strip_timestamp(line));
            }
            if t.work.is_none() {
                t.work = work_function(strip_timestamp(line));
            }
            if t.excerpt.len() < EXCERPT_LINES {
                t.excerpt.push(line.to_owned());
            }
            if strip_timestamp(line).starts_with("---[ end ")
                || t.kind == TroubleKind::HungTask && strip_timestamp(line).trim() == "</TASK>"
                || t.excerpt.len() >= EXCERPT_LINES
            {
                self.open = None;
            }
            // user_events' own warnings are one line.
            if t.kind.is_one_line() {
                self.open = None;
            }
        }
    }

    /// Gives each splat that came beside other scenarios but names one of their processes to
    /// that scenario; call once the log is complete (the markers may follow the splat). A
    /// report of a task stuck or spinning (hung task, soft lockup) names the task that is
    /// the trouble, whenever it comes: it goes to that task's scenario even after it ended
    /// (the runner marks the pid of each task it leaves stuck), the latest marker of the pid
    /// winning.
    pub fn settle(&mut self) {
        for t in &mut self.found {
            let names_its_task = matches!(t.kind, TroubleKind::HungTask | TroubleKind::Lockup);
            let owner = t.pid.and_then(|p| {
                self.pids
                    .iter()
                    .rev()
                    .find(|(pid, n)| *pid == p && (names_its_task || t.beside.contains(n)))
                    .map(|(_, n)| n.clone())
            });
            if let Some(owner) = owner {
                t.during = Some(owner);
                t.beside.clear();
                t.rerun.clear();
            }
        }
    }

    /// True once the kernel has certainly died (nothing after this will run).
    pub fn kernel_died(&self) -> bool {
        self.found.iter().any(|t| {
            t.kind == TroubleKind::Panic
                || t.excerpt
                    .iter()
                    .any(|l| l.contains("Kernel panic - not syncing"))
        })
    }
}

impl Trouble {
    /// Whether it counts against scenario `name`: it came while `name` ran alone, or beside
    /// others, unless a rerun alone reproduced it (that rerun's own trouble then judges).
    pub fn counts_against(&self, name: &str) -> bool {
        self.during.as_deref() == Some(name)
            || self.beside.iter().any(|b| b == name)
                && !(self.reproduced && self.rerun.iter().any(|r| r == name))
    }
}

/// The work function of a splat's `Workqueue: WQ FUNC` line (what a kworker was running).
fn work_function(line: &str) -> Option<String> {
    let mut words = line
        .trim_start()
        .strip_prefix("Workqueue: ")?
        .split_whitespace();
    let _queue = words.next()?;
    words.next().map(str::to_owned)
}

/// Gives each splat in user_events' fault worker to the scenario that queued the fault: the
/// latest one started before it that drives the worker (`fault_worker`), when the scenario
/// it came during (or beside) does not. The worker runs after the write that queued it, and
/// retries later still, so the splat often lands in whatever runs next.
pub fn to_the_fault_queuer(troubles: &mut [Trouble], scenarios: &[ScenarioInfo]) {
    let drives = |n: &str| scenarios.iter().any(|s| s.name == n && s.fault_worker);
    for t in troubles {
        if t.work.as_deref() != Some(FAULT_WORK) {
            continue;
        }
        let candidates = t.during.iter().chain(&t.beside);
        if candidates.clone().any(|n| drives(n)) {
            // Beside others, only those that drive the worker stay suspects.
            t.beside.retain(|n| drives(n));
            if t.beside.len() == 1 {
                t.during = t.beside.pop();
                t.rerun.clear();
            }
            continue;
        }
        if let Some(queuer) = t.recent.iter().rev().find(|n| drives(n)) {
            t.during = Some(queuer.clone());
            t.beside.clear();
            t.rerun.clear();
        }
    }
}

/// A line that belongs to the hung-task report before it: the taint and "echo 0" lines, the
/// task line, and its call trace (indented frames, `<TASK>`).
fn continues_hung_task(line: &str) -> bool {
    let l = strip_timestamp(line);
    let t = l.trim_start();
    l.starts_with(' ')
        || [
            "Not tainted",
            "Tainted:",
            "\"echo 0",
            "task:",
            "Call Trace:",
        ]
        .iter()
        .any(|p| t.starts_with(p))
}

/// Scans a whole saved log (no scenario attribution: that needs the result channel's timing).
pub fn scan(log: &str) -> Vec<Trouble> {
    let mut w = Watch::new();
    for l in log.lines() {
        w.feed(l, None);
    }
    w.settle();
    w.found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, fault_worker: bool) -> ScenarioInfo {
        ScenarioInfo {
            fault_worker,
            ..crate::test_support::scenario(name)
        }
    }

    /// Issue 23: the fault worker oopses after its queuer ended, while a scenario that never
    /// faults runs. The splat goes to the queuer, not to the bystander.
    #[test]
    fn a_splat_in_the_fault_worker_goes_to_the_scenario_that_queued_it() {
        let console = "\
[    1.0] ue-runner: start f::faults
[    1.1] ue-runner: end f::faults
[    1.2] ue-runner: start b::plain
[    1.3] ue-runner: start b::other
[    2.3] BUG: kernel NULL pointer dereference, address: 0000000000000000
[    2.3] #PF: supervisor read access in kernel mode
[    2.3] Oops: Oops: 0000 [#1] SMP
[    2.3] CPU: 1 UID: 0 PID: 7 Comm: kworker/1:0 Not tainted 6.12.118 #2
[    2.3] Workqueue: events user_event_enabler_fault_fixup
[    2.3] RIP: 0010:user_event_enabler_fault_fixup+0x10/0x120
[    2.3] ---[ end trace 0000000000000000 ]---
[    2.4] ue-runner: end b::plain
";
        let mut w = Watch::new();
        for l in console.lines() {
            w.feed(l, None);
        }
        w.settle();
        let mut found = w.found;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].work.as_deref(), Some(FAULT_WORK));
        assert_eq!(found[0].beside, ["b::plain", "b::other"]);
        let infos = [
            info("f::faults", true),
            info("b::plain", false),
            info("b::other", false),
        ];
        to_the_fault_queuer(&mut found, &infos);
        assert_eq!(found[0].during.as_deref(), Some("f::faults"));
        assert!(found[0].beside.is_empty());
        assert!(found[0].counts_against("f::faults") && !found[0].counts_against("b::plain"));
        // Beside a scenario that drives the worker, that one is the suspect.
        let mut beside = w_found_beside(&["b::plain", "f::faults"]);
        to_the_fault_queuer(&mut beside, &infos);
        assert_eq!(beside[0].during.as_deref(), Some("f::faults"));
    }

    fn w_found_beside(names: &[&str]) -> Vec<Trouble> {
        vec![Trouble {
            kind: TroubleKind::Bug,
            during: None,
            beside: names.iter().map(|n| n.to_string()).collect(),
            rerun: vec![],
            reproduced: false,
            pid: None,
            work: Some(FAULT_WORK.into()),
            recent: vec![],
            excerpt: vec![],
        }]
    }
}
