//! The deterministic simulator: whole-system scenarios (user threads making map syscalls,
//! programs on simulated CPUs, a grace-period worker, injected faults) run on shuttle's runtime
//! with the core on its `Shuttle` platform, every decision taken by one of mimic's schedulers
//! from one seed.
//!
//! * [`scenario`]: scenarios as data (TOML), the built-ins, and their instantiation per seed;
//!   [`op`]: the user-op language their tasks speak.
//! * [`options`]: what a seed derives besides the schedule (swarm fault kinds and rates).
//! * [`scheduler`]: random walk, PCT, swarm, bytes; the campaign wrapper.
//! * [`engine`]: one seed → one execution → a [`engine::Verdict`] and a trace.
//! * [`oracle`]: linearizability of outer-map histories against the sequential model.
//! * [`trace`]: the trace recorder and its stable hash.
//! * [`campaign`]: seed ranges, shards, summaries; [`shrink`]: scenario reduction.
//! * [`matrix`]: one scenario under each kernel release's semantics.
//!
//! # Invariants
//! * Same scenario, seed, scheduler and mutants → same schedule, trace and trace hash: every
//!   random draw comes from the seed (rand_chacha), nothing reads a clock or iterates a
//!   `HashMap`, and recording never adds a scheduling point.
//! * Oracles read what a run recorded and the world's audits; they never change the world.
//! * Every loop of a run is bounded (ops per task, polls, search nodes, the step budget).

pub mod campaign;
pub mod engine;
pub mod footprint;
pub mod hunt;
pub mod matrix;
pub mod op;
pub mod options;
pub mod oracle;
pub mod scenario;
pub mod scheduler;
pub mod shrink;
pub mod trace;

/// Maps a uniformly random `u64` to `0..n` (`n >= 1`) by multiply-shift.
pub(crate) fn reduce(random: u64, n: usize) -> usize {
    ((random as u128 * n.max(1) as u128) >> 64) as usize
}
