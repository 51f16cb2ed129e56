//! # mimic-core
//!
//! A userspace model of Linux BPF maps with map-in-map (array-of-maps, hash-of-maps, dynamic
//! inner arrays), the BPF instruction set, a verifier with the kernel's fixups and a JIT-free
//! executor, all written once over a sync facade so the same code runs on std threads, under
//! loom and under shuttle.
//!
//! The alternative is testing against the kernel alone: it says what happened on one
//! interleaving of one build, never which interleavings exist, and a use after free there is a
//! crash (or nothing), not a finding with a replay. Here every map, reference, grace period and
//! freed element is explicit state a checker can audit, and the live kernel stays the
//! reference (`mimic kernel-check`).
//!
//! Main types: [`world::World`] (one modelled kernel: maps, ids, fds, refcounts, RCU), its
//! syscall face [`sys::Process`] (a [`uapi::BpfSys`], as the kernel backend and the reference
//! model [`model::RefModel`] are), [`bpf::verifier`] and [`bpf::exec`] for programs,
//! [`bpf::object`] for clang-built objects, [`mutants`] (historical bugs, switchable) and
//! [`finding::Finding`] (what a failing check is called).
//!
//! ```
//! use mimic_core::mutants::Mutants;
//! use mimic_core::sync::Std;
//! use mimic_core::sys::Process;
//! use mimic_core::uapi::{BpfSys, MapAttr, MapType, BPF_ANY};
//! use mimic_core::world::WorldConfig;
//!
//! // A process in a fresh modelled kernel (the same calls run under loom's and shuttle's
//! // platforms).
//! let mut sys = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
//! let inner = sys.map_create(&MapAttr::new(MapType::Array, 4, 8, 4)).unwrap();
//! let outer = sys
//!     .map_create(&MapAttr::new(MapType::HashOfMaps, 4, 4, 2).inner(inner))
//!     .unwrap();
//! sys.map_update_elem(outer, &1u32.to_ne_bytes(), &inner.to_ne_bytes(), BPF_ANY)
//!     .unwrap();
//! sys.close(inner).unwrap(); // the outer map keeps the inner one alive
//! assert!(sys.map_lookup_elem(outer, &1u32.to_ne_bytes()).is_ok());
//! sys.close(outer).unwrap();
//! // Every map freed exactly once, after its grace periods.
//! sys.world().audit_quiescent().unwrap();
//! ```
//!
//! Layers, each depending only on those above it:
//! `sync` (the facade) → `isa` (instruction types, a leaf) → `arena` (generation-checked
//! handles) → `rcu` → `maps` → `sys` (the syscall layer) → `bpf` (assembler, helpers, verifier,
//! fixups, executor). `model` is the sequential reference and shares no code with `maps`
//! (`tests/layering.rs` checks both). See ARCHITECTURE.md.
//!
//! Limits: the model is of the map-in-map paths and what they touch (array, hash, per-CPU,
//! outer maps, program arrays as templates); other map types are refused at creation, and
//! programs whose context is a packet are parsed but not verified yet.
#![forbid(unsafe_code)]

pub mod arena;
pub mod bpf;
pub mod errno;
pub mod fault;
pub mod finding;
pub mod history;
pub mod isa;
pub mod lock;
pub mod maps;
pub mod model;
pub mod mutants;
pub mod profile;
pub mod progs;
pub mod ptr;
pub mod rcu;
pub mod sync;
pub mod sys;
pub mod uapi;
pub mod world;
