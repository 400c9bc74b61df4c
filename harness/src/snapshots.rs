//! Trace text the guest captured, normalised and compared with reviewed insta snapshots in
//! `harness/snapshots/` (review with `cargo insta review`). A kernel line whose output really
//! differs gets its own file under `harness/snapshots/<kernel>/`, used only where it exists.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use result_channel::Snapshot;

pub fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots")
}

/// Replaces what changes from run to run: the task name (`<...>` when the kernel's comm cache
/// missed it), pid, CPU, irq/preempt flags and timestamp of each trace line, and the event id
/// in a `format` file.
pub fn normalise(text: &str) -> String {
    static TRACE_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?m)^\s*(\S.*?)-(\d+)\s+\[(\d+)\]\s+(\S+)\s+(\d+\.\d+):").unwrap()
    });
    static FORMAT_ID: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?m)^ID: \d+$").unwrap());
    let t = TRACE_PREFIX.replace_all(text, "<task>-<pid> [<cpu>] <flags> <time>:");
    FORMAT_ID.replace_all(&t, "ID: <id>").into_owned()
}

fn snapshot_name(scenario: &str, snap: &str) -> String {
    format!("{}__{}", scenario.replace("::", "__"), snap)
}

pub fn assert_snapshot(kernel: &str, scenario: &str, s: &Snapshot) -> Result<(), String> {
    let name = snapshot_name(scenario, &s.name);
    let per_kernel = snapshot_dir().join(kernel);
    let dir = if per_kernel.join(format!("{name}.snap")).exists() {
        per_kernel
    } else {
        snapshot_dir()
    };
    let content = normalise(&s.content);
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(dir);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_description(format!("{scenario}: {}", s.name));
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| settings.bind(|| insta::assert_snapshot!(name.as_str(), content.as_str()))))
        .map_err(|_| format!("snapshot {name} differs from the reviewed one (kernel {kernel}); see the diff above and run `cargo insta review`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_comm_is_normalised_too() {
        assert_eq!(
            normalise("           <...>-57      [000] ..... 9.000001: e: x=1"),
            "<task>-<pid> [<cpu>] <flags> <time>: e: x=1"
        );
    }

    #[test]
    fn trace_lines_lose_pid_cpu_flags_and_time_but_keep_the_event() {
        let raw = "    ue-scenarios-57      [001] .....     1.234567: ue_trace_1: count=0x5 (5) msg=hello\n\
                   ID: 1234\n";
        assert_eq!(
            normalise(raw),
            "<task>-<pid> [<cpu>] <flags> <time>: ue_trace_1: count=0x5 (5) msg=hello\nID: <id>\n"
        );
    }
}
