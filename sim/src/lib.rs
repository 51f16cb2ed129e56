//! # mimic-sim
//!
//! The simulator library behind the `mimic` command: it runs scenarios of map syscalls and
//! BPF programs on simulated CPUs under seeded schedulers and checks every run against oracles
//! (use after free, leaks, lost keys, linearizability of outer maps, pinned values).
//!
//! The alternative is shuttle or loom alone: they explore interleavings of whatever a test
//! does, but know nothing of grace periods, map lifetimes or what a kernel allows a reader to
//! see; here the scenario language, the oracles and the replay lines speak the kernel's terms,
//! and the `kernel` module runs the same syscalls and programs against the machine's real BPF.
//!
//! Main types: [`sim::scenario::Scenario`] (a TOML file or a built-in), [`sim::engine::RunConfig`]
//! and [`sim::engine::run_one`] (one seed: a verdict, a trace and its hash),
//! [`sim::scheduler::SchedulerKind`], [`sim::hunt`] (mutant hunts), [`fuzz`] (the fuzz targets'
//! properties) and [`kernel`] (the live-kernel oracle behind `mimic kernel-check`).
//!
//! ```
//! use mimic_core::mutants::{Mutant, Mutants};
//! use mimic_core::profile::KernelProfile;
//! use mimic_sim::sim::engine::{run_one, RunConfig, Verdict};
//! use mimic_sim::sim::scenario::Scenario;
//! use mimic_sim::sim::scheduler::SchedulerKind;
//!
//! let config = |mutants| RunConfig {
//!     scenario: Scenario::load("maglev").unwrap(),
//!     mutants,
//!     scheduler: SchedulerKind::Swarm,
//!     keep_trace: false,
//!     profile: *KernelProfile::newest(),
//!     lacks: mimic_core::history::Lacks::NONE,
//! };
//! // The correct core passes, and a seed replays to the same trace.
//! let run = run_one(&config(Mutants::NONE), 7);
//! assert_eq!(run.verdict, Verdict::Pass);
//! assert_eq!(run_one(&config(Mutants::NONE), 7).trace_hash, run.trace_hash);
//! // Seed 0 of the same scenario with a historical bug: the fixup reads past a smaller table.
//! let bug = run_one(&config(Mutants::only(Mutant::InlineDynamicInner)), 0);
//! assert_eq!(bug.verdict.kind(), Some("out_of_bounds"));
//! ```
//!
//! Limits: one simulated process; programs run to completion between scheduling points of
//! their map calls and memory accesses (not per instruction).
#![deny(unsafe_code)]

pub mod fuzz;
pub mod kernel;
pub mod maps_spec;
pub mod sim;
