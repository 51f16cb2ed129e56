//! The kernel oracle: the real Linux BPF of this machine as a reference for mimic.
//!
//! - [`KernelSys`] implements [`mimic_core::uapi::BpfSys`] over the bpf() syscall (libbpf's
//!   low-level calls), plus programs: load with the verifier log, the translated (xlated)
//!   program, `BPF_PROG_TEST_RUN` and the kernel's own ns/run for benches.
//! - [`probe`] says at run time whether bpf() is usable; callers print the one line of
//!   [`Unavailable`] and skip when it is not.
//! - The errno table every backend runs is the model's (`mimic_core::model::cases`, one table
//!   tagged by source: §N of semantics.md, `kernel`, `model`); [`seed004`] is the seed's
//!   program and xlated shape, [`bijection`] the id/fd correspondence for comparing two
//!   backends, [`differential`] the model-versus-kernel op-sequence comparison, [`check`] the
//!   agreement table of `mimic kernel-check` (maps, conformance programs, seed 004 with maps).
//!
//! The syscall parts need the `kernel` feature (on by default; libbpf builds against
//! libelf-dev, see `ci/install-deps`). All unsafe code is in `ffi`.

pub mod bijection;
#[cfg(feature = "kernel")]
pub mod check;
#[cfg(feature = "kernel")]
pub mod differential;
pub mod error;
pub mod insn;
pub mod seed004;
#[cfg(feature = "kernel")]
pub mod verdicts;

#[cfg(feature = "kernel")]
mod ffi;
#[cfg(feature = "kernel")]
mod sys;

pub use error::KernelError;
#[cfg(feature = "kernel")]
pub use ffi::{LoadFailure, TestRun};
#[cfg(feature = "kernel")]
pub use sys::{
    on_kernel, probe, KernelSys, Unavailable, BPF_F_SLEEPABLE, BPF_PROG_TYPE_SOCKET_FILTER,
    BPF_PROG_TYPE_SYSCALL, ETH_HLEN,
};
