//! `cargo xtask parse`: scan a saved console log for kernel trouble, and a saved result
//! stream for its records.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

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
        for t in harness::console::scan(&text) {
            trouble = true;
            println!("{:?}:\n    {}", t.kind, t.excerpt.join("\n    "));
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
