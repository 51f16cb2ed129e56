//! # mimic-models
//!
//! The concurrent scenarios of the map-in-map core, each written **once** as data
//! ([`scenario::SCENARIOS`]) and run by one driver ([`driver::run`]) under three engines
//! ([`engine::Engine`]): loom's bounded-exhaustive exploration with the `Loom` platform, and
//! shuttle's random and PCT schedulers with the `Shuttle` platform.
//!
//! The alternative, a loom or shuttle test per race written by hand, repeats the set-up and the
//! checks in every test and lets them drift apart; here a scenario is a few lines of data, and
//! the checks are the same for every scenario and engine.
//!
//! Every execution checks semantics.md §8: a fault from the world (use after free, double put,
//! deadlock, lock order, ...) fails it at once; keys that are always present must be found; a
//! drained inner map must not change afterwards; at the end freelist conservation holds and,
//! after an RCU barrier, every map is freed exactly once. The §7 allowed observations (a stale
//! inner map, NULL after a racing delete, `-EBUSY` for a nested update) never fail a run.
//!
//! [`mutants::CORE_MUTANTS`] maps each core mutant to the scenario that exposes it; the finding
//! its failure must have is the catalogue's (`Mutant::expected_finding`); `tests/` asserts it
//! per engine and `src/bin/mutant-report.rs` prints the detection table of BENCHMARKS.md.
//!
//! ```
//! use mimic_core::mutants::{Mutant, Mutants};
//! use mimic_models::engine::{explore, Engine};
//! use mimic_models::scenario::Scenario;
//!
//! let scenario = Scenario::named("aom_reader_vs_replace").unwrap();
//! // The inner map freed without a grace period: PCT finds the reader's use after free.
//! let mutant = Mutant::FreeInnerWithoutGp;
//! let found = explore(Engine::ShuttlePct, scenario, Mutants::only(mutant), 1000);
//! assert_eq!(found.kind(), mutant.expected_finding().map(|f| f.name()));
//! ```
//!
//! Limits: loom explores up to `LOOM_MAX_PREEMPTIONS` preemptions (2 in CI); the shuttle
//! engines sample schedules (their budgets are in `tests/`).

pub mod checks;
pub mod driver;
pub mod engine;
pub mod mutants;
pub mod scenario;
