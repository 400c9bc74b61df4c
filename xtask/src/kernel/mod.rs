//! From a kernel's name to a bootable kernel, in the order the data flows: [`list`] (which
//! kernels, what each must have) → [`apt`] (the source package) → [`source`] (extracted,
//! patched) or [`snapshot`] (a developer's tree) → [`kconfig`] → [`build`] (cached, with
//! [`ccache`] on request) and [`kselftests`] → [`resolve`] (label, identity, expectation).

pub mod apt;
pub mod build;
pub mod ccache;
pub mod kconfig;
pub mod kselftests;
pub mod list;
pub mod resolve;
pub mod snapshot;
pub mod source;
