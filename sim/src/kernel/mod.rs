//! The kernel oracle: the real Linux BPF of this machine as a reference for mimic.
//!
//! - [`KernelSys`] implements [`mimic_core::uapi::BpfSys`] over the bpf() syscall (issued by
//!   `ffi` with the layouts of `abi`), plus programs: load with the verifier log, the translated (xlated)
//!   program, `BPF_PROG_TEST_RUN` and the kernel's own ns/run for benches.
//! - [`probe`] says at run time whether bpf() is usable; callers print the one line of
//!   [`Unavailable`] and skip when it is not.
//! - The errno table every backend runs is the model's (`mimic_core::model::cases`, one table
//!   tagged by source: §N of semantics.md, `kernel`, `model`); [`seed004`] is the seed's
//!   program (the shipped example's assembly) and xlated shape, [`bijection`] the id/fd correspondence for comparing two
//!   backends, [`differential`] the model-versus-kernel op-sequence comparison, [`check`] the
//!   agreement table of `mimic kernel-check` (maps, conformance programs, seed 004 with maps).
//!
//! Instructions are the core's (`mimic_core::isa::Insn`, its assembler and printer): the kernel
//! takes and returns them as 8-byte `struct bpf_insn` slots, which is `Insn`'s wire form.
//!
//! The syscall parts need the `kernel` feature (on by default; it needs no C library). All
//! unsafe code is in `ffi`.

pub mod bijection;
#[cfg(feature = "kernel")]
pub mod bpftool;
#[cfg(feature = "kernel")]
pub mod check;
#[cfg(feature = "kernel")]
pub mod differential;
pub mod error;
#[cfg(feature = "kernel")]
pub mod object;
#[cfg(feature = "kernel")]
pub mod packets;
#[cfg(feature = "kernel")]
pub mod profile;
pub mod seed004;
#[cfg(feature = "kernel")]
pub mod tail_calls;
#[cfg(feature = "kernel")]
pub mod verdicts;
#[cfg(feature = "kernel")]
pub mod xlated;

#[cfg(feature = "kernel")]
mod abi;
#[cfg(feature = "kernel")]
mod ffi;
#[cfg(feature = "kernel")]
mod sys;

pub use error::KernelError;

use mimic_core::bpf::print::{dump_xlated, Symbols};
use mimic_core::isa::{Insn, BPF_PSEUDO_MAP_FD};

/// Names in a kernel dump: an `lddw` with `BPF_PSEUDO_MAP_FD` prints `map[id:N]` (in an xlated
/// dump the kernel puts the map's id where the loader put the fd).
struct KernelSymbols;

impl Symbols for KernelSymbols {
    fn ld_imm64(&self, src: u8, imm_lo: i32, _imm_hi: i32) -> Option<String> {
        (src == BPF_PSEUDO_MAP_FD).then(|| format!("map[id:{}]", imm_lo as u32))
    }
}

/// A program as `bpftool prog dump xlated` prints it (the core's printer). A program that does
/// not decode is listed slot by slot with the reason, so a failure message always shows it.
pub fn dump(insns: &[Insn]) -> String {
    dump_xlated(insns, &KernelSymbols).unwrap_or_else(|e| {
        let mut out = format!("(does not decode: {e})\n");
        for (pc, insn) in insns.iter().enumerate() {
            out.push_str(&format!("{pc:4}: {insn:?}\n"));
        }
        out
    })
}
#[cfg(feature = "kernel")]
pub use ffi::{LoadFailure, TestRun};
#[cfg(feature = "kernel")]
pub use sys::{
    kernel_required, on_kernel, probe, require_or_skip, KernelSys, Unavailable, BPF_F_SLEEPABLE,
    BPF_PROG_TYPE_SOCKET_FILTER, BPF_PROG_TYPE_SYSCALL, ETH_HLEN, REQUIRE_KERNEL,
};
