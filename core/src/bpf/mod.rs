//! BPF programs: text assembly ([`asm`]), the kernel's pseudo-C printer ([`print`]), the helper
//! table shared by executor and verifier ([`helpers`]), the JIT-free executor ([`exec`]) and
//! the map environment it runs against the world ([`world_env`]), the verifier ([`verifier`]),
//! the kernel's rewrites after it ([`dead_code`], [`fixup`], both through [`reloc`]), the
//! conformance-suite runner ([`conformance`]) and where that suite is found ([`suite_dir`]),
//! and clang-built objects read by libbpf's conventions ([`object`]).
//!
//! Instruction types live in [`crate::isa`] (a leaf); everything here builds on them.

pub mod asm;
pub mod conformance;
pub mod csum;
pub mod dead_code;
pub mod exec;
pub mod fixup;
pub mod helper_names;
pub mod helpers;
pub mod kernel_types;
pub mod object;
pub mod print;
pub mod printk;
pub mod reloc;
pub mod skb;
pub mod suite_dir;
pub mod verifier;
pub mod world_env;
pub mod xdp;
