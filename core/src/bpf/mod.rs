//! BPF programs: text assembly ([`asm`]), the kernel's pseudo-C printer ([`print`]), the helper
//! table shared by executor and verifier ([`helpers`]), the JIT-free executor ([`exec`]) and the
//! conformance-suite runner ([`conformance`]).
//!
//! Instruction types live in [`crate::isa`] (a leaf); everything here builds on them.

pub mod asm;
pub mod conformance;
pub mod dead_code;
pub mod exec;
pub mod fixup;
pub mod helpers;
pub mod print;
pub mod reloc;
pub mod verifier;
pub mod world_env;
