//! `cargo xtask parse`: scan a saved console log for kernel trouble, and a saved result
//! stream for its records.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use harness::console::TroubleKind;

use crate::session::Session;

#[derive(Args)]
pub struct ParseArgs {
    /// A console log (console.log of a run, or any kernel log).
    #[arg(long)]
    pub console: Option<PathBuf>,
    /// Raw bytes of a result channel.
    #[arg(long)]
    pub results: Option<PathBuf>,
}

pub fn run(a: ParseArgs) -> anyhow::Result<ExitCode> {
    if a.console.is_none() && a.results.is_none() {
        anyhow::bail!("nothing to parse: give --console LOG and/or --results FILE");
    }
    let mut trouble = false;
    if let Some(c) = a.console {
        let text = String::from_utf8_lossy(
            &std::fs::read(&c).with_context(|| format!("read {}", c.display()))?,
        )
        .into_owned();
        if !looks_like_console(&text) {
            anyhow::bail!(
                "{} is not a console log: no kernel line (`[    0.000000] ...`, `Linux version`) in it",
                c.display()
            );
        }
        let found = harness::console::scan(&text);
        // The fault warnings the scenarios provoke on purpose are not trouble, as in a run:
        // the scenario list (the guest's) says which scenarios expect them.
        let expecting: Vec<String> = if found.iter().any(|t| t.kind == TroubleKind::UserEventsFault)
        {
            Session::new(None, false)
                .guest()?
                .scenarios
                .into_iter()
                .filter(|s| s.fault_warnings)
                .map(|s| s.name)
                .collect()
        } else {
            vec![]
        };
        let (expected, real): (Vec<_>, Vec<_>) = found.into_iter().partition(|t| {
            t.kind == TroubleKind::UserEventsFault
                && t.excerpt
                    .first()
                    .and_then(|l| fault_scenario(l))
                    .is_some_and(|s| expecting.contains(&s))
        });
        for t in &real {
            trouble = true;
            println!("{:?}:\n    {}", t.kind, t.excerpt.join("\n    "));
        }
        if !expected.is_empty() {
            eprintln!(
                "{} user_events fault warning(s) skipped: provoked by scenarios that expect them",
                expected.len()
            );
        }
        if real.is_empty() {
            println!("no kernel trouble found in {}", c.display());
        }
    }
    if let Some(r) = a.results {
        let bytes = std::fs::read(&r).with_context(|| format!("read {}", r.display()))?;
        for ev in harness::channel::parse_all(&bytes) {
            println!("{ev:?}");
        }
    }
    Ok(crate::exit::trials(trouble))
}

/// Whether a file reads as a kernel console: some line with printk's timestamp, or the
/// kernel's banner.
fn looks_like_console(text: &str) -> bool {
    text.lines().any(|l| {
        l.contains("Linux version") || harness::console::strip_timestamp(l).len() != l.len()
    })
}

/// The scenario a "user_events: Fault for mm" line names by its event
/// (`event: ue_munmap__enable_after_munmap_1` → `munmap::enable_after_munmap`).
fn fault_scenario(line: &str) -> Option<String> {
    let event = line.split("event: ").nth(1)?.split_whitespace().next()?;
    let (family, rest) = event.strip_prefix("ue_")?.split_once("__")?;
    let scenario = rest.rsplit_once('_').map_or(rest, |(s, n)| {
        if n.chars().all(|c| c.is_ascii_digit()) {
            s
        } else {
            rest
        }
    });
    Some(format!("{family}::{scenario}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_line_names_its_scenario() {
        let l = "[    3.716195] user_events: Fault for mm: 0x(____ptrval____) @ 0x7f1ae5c43000 event: ue_munmap__enable_after_munmap_1";
        assert_eq!(
            fault_scenario(l).as_deref(),
            Some("munmap::enable_after_munmap")
        );
        assert_eq!(fault_scenario("[ 1.0] user_events: Fault for mm"), None);
    }

    #[test]
    fn a_console_log_is_told_from_other_files() {
        assert!(looks_like_console("[    0.000000] Linux version 6.12.1\n"));
        assert!(!looks_like_console("root:x:0:0:root:/root:/bin/bash\n"));
        assert!(!looks_like_console(""));
    }
}
