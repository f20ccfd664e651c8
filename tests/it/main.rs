//! The integration tests: the real binary in scratch roots, one module per area, the
//! helpers in `common`. One test binary, so the helpers are compiled once.

mod common;

mod add_remove;
mod autoinstall;
mod build;
mod conf_corpus;
mod crash;
mod docs;
mod failures;
mod fuzz;
mod hooks;
mod install;
mod kernel_proof;
mod kernels;
mod kill;
mod modinfo;
mod overrides;
mod ownership;
mod packages;
mod preflight;
mod real_packages;
mod rpm_family;
mod scaffold;
mod secureboot;
mod sign;
mod signing;
mod status;
mod tarball;
