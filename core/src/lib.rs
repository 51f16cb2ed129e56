//! # mimic-core
//!
//! A userspace model of Linux BPF maps with map-in-map (array-of-maps, hash-of-maps, dynamic
//! inner arrays), the BPF instruction set, a verifier with the kernel's fixups and a JIT-free
//! executor, all written once over a sync facade so the same code runs on std threads, under
//! loom and under shuttle.
//!
//! Layers, each depending only on those above it:
//! `sync` (the facade) → `isa` (instruction types, a leaf) → `arena` (generation-checked
//! handles) → `rcu` → `maps` → `sys` (the syscall layer) → `bpf` (assembler, helpers, verifier,
//! fixups, executor). `model` is the sequential reference and shares no code with `maps`.
//! See ARCHITECTURE.md.
#![forbid(unsafe_code)]

pub mod arena;
pub mod bpf;
pub mod errno;
pub mod fault;
pub mod finding;
pub mod isa;
pub mod lock;
pub mod maps;
pub mod model;
pub mod mutants;
pub mod profile;
pub mod ptr;
pub mod rcu;
pub mod sync;
pub mod sys;
pub mod uapi;
pub mod world;
