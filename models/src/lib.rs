//! # mimic-models
//!
//! The concurrent scenarios of the map-in-map core, each written **once** as data
//! ([`scenario::SCENARIOS`]) and run by one driver ([`driver::run`]) under three engines
//! ([`engine::Engine`]): loom's bounded-exhaustive exploration with the `Loom` platform, and
//! shuttle's random and PCT schedulers with the `Shuttle` platform.
//!
//! Every execution checks semantics.md §8: a fault from the world (use after free, double put,
//! deadlock, lock order, ...) fails it at once; keys that are always present must be found; a
//! drained inner map must not change afterwards; at the end freelist conservation holds and,
//! after an RCU barrier, every map is freed exactly once. The §7 allowed observations (a stale
//! inner map, NULL after a racing delete, `-EBUSY` for a nested update) never fail a run.
//!
//! [`mutants::CORE_MUTANTS`] maps each core mutant to the scenario that exposes it and the
//! finding kind its failure must have; `tests/` asserts it per engine and
//! `src/bin/mutant-report.rs` prints the detection table of BENCHMARKS.md.

pub mod checks;
pub mod driver;
pub mod engine;
pub mod mutants;
pub mod scenario;
