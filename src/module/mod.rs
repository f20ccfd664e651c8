//! The work on one module version on one kernel: kbuild, signing and compressing what it
//! built, placing files in a transaction, depmod, the module's own scripts.
//!
//! This layer is told exactly what to do (the evaluated dkms.conf, the kernel, the
//! trees) and never sees the command line or decides what else to do: that is the
//! commands layer above it ([`crate::commands`]), which this layer never names (the test
//! `layers` fails if it does). [`ModuleOnKernel`] is the one shape of "this module
//! version on this kernel" that the build, install and package jobs embed.

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

use crate::conf::ModuleConf;
use crate::framework::Settings;
use crate::report::Reporter;
use crate::state::{KernelArch, StateTree};

/// This module version on this kernel, with its evaluated dkms.conf and where to say
/// what happens: what every job of this layer works on.
#[derive(Clone, Copy)]
pub struct ModuleOnKernel<'a> {
    pub settings: &'a Settings,
    pub tree: &'a StateTree,
    pub report: &'a Reporter,
    pub module: &'a str,
    pub version: &'a str,
    pub ka: &'a KernelArch,
    pub conf: &'a ModuleConf,
}
