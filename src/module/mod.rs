//! The work on one module version on one kernel: kbuild, signing and compressing what it
//! built, placing files in a transaction, depmod, the module's own scripts.
//!
//! This layer is told exactly what to do (the evaluated dkms.conf, the kernel, the
//! trees) and never sees the command line or decides what else to do: that is the
//! commands layer above it ([`crate::commands`]), which this layer never names (the test
//! `layers` in `lib.rs` fails if it does).

pub mod compress;
pub mod diagnose;
pub mod initramfs;
pub mod install;
pub mod kbuild;
pub mod modinfo;
pub mod owned;
pub mod package;
pub mod script;
pub mod sign;
pub mod trust;
