//! `cargo xtask build-guest`: the static guest programs; prints their folder.

use std::process::ExitCode;

use crate::session::Session;

pub fn run() -> anyhow::Result<ExitCode> {
    let mut s = Session::new(None, false);
    let guest = s.guest()?;
    println!("{}", guest.dir.display());
    Ok(ExitCode::SUCCESS)
}
