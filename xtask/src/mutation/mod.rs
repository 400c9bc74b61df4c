//! Proof that the suite can fail, two ways: [`shipped`] mutants, written by hand, one broken
//! promise of the ABI each (`cargo xtask mutants`); and [`mechanical`] mutants, made by a tool
//! from the user_events source and scored (`cargo xtask mutate`).

pub mod mechanical;
pub mod shipped;
pub mod upstream;
