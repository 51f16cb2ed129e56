//! The kernel oracle: the real Linux BPF of this machine as a reference for mimic.
//!
//! - [`KernelSys`] implements [`mimic_core::uapi::BpfSys`] over the bpf() syscall (libbpf's
//!   low-level calls), plus programs: load with the verifier log, the translated (xlated)
//!   program, `BPF_PROG_TEST_RUN` and the kernel's own ns/run for benches.
//! - [`probe`] says at run time whether bpf() is usable; callers print the one line of
//!   [`Unavailable`] and skip when it is not.
//! - [`rows`] is the semantics.md errno table as scenarios over any `BpfSys` (the kernel, the
//!   core's world, the reference model), [`seed004`] the seed's program and xlated shape,
//!   [`bijection`] the id/fd correspondence for comparing two backends.
//!
//! The syscall parts need the `kernel` feature (on by default; libbpf builds against
//! libelf-dev, see `ci/install-deps`). All unsafe code is in `ffi`.

pub mod bijection;
pub mod error;
pub mod insn;
pub mod rows;
pub mod seed004;

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
