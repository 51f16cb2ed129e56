//! mimic's schedulers: implementations of shuttle's `Scheduler` trait, one file each.
//!
//! * [`RandomWalk`]: a ChaCha-seeded uniform random walk over the runnable tasks.
//! * [`Pct`]: probabilistic concurrency testing (random priorities, `depth - 1` change points).
//! * [`Swarm`]: a random walk with per-task weights drawn from the seed (some tasks starved,
//!   some favoured); the engine also draws the seed's fault kinds in swarm mode.
//! * [`Bytes`]: every decision taken from a byte slice (the `sim_schedule` fuzz target).
//! * [`ShuttleRandom`]: shuttle's own `RandomScheduler`, the peer the benchmarks compare with.
//!
//! Each scheduler runs **one execution per seed**: `new_execution` returns a schedule once after
//! [`Reseed::reseed`], then `None`. [`Campaign`] wraps any of them to run a list of seeds in
//! one shuttle `Runner`, counts steps, enforces the step budget and fingerprints the schedule.
//!
//! # Invariants
//! * A scheduler's decisions are a function of its seed (or bytes) and of what shuttle shows it
//!   (runnable task ids): no clock, no OS randomness, no `HashMap` order.
//! * `next_u64` (which answers the core's `P::choose`) draws from the same seeded stream.

/// `Scheduler` for a wrapper that hands every decision to the scheduler `$inner` names.
macro_rules! delegate_scheduler {
    ($t:ty, $self:ident => $inner:expr) => {
        impl shuttle::scheduler::Scheduler for $t {
            fn new_execution(&mut $self) -> Option<shuttle::scheduler::Schedule> {
                $inner.new_execution()
            }
            fn next_task(
                &mut $self,
                runnable: &[&shuttle::scheduler::Task],
                current: Option<shuttle::scheduler::TaskId>,
                yielding: bool,
            ) -> Option<shuttle::scheduler::TaskId> {
                $inner.next_task(runnable, current, yielding)
            }
            fn next_u64(&mut $self) -> u64 {
                $inner.next_u64()
            }
        }
    };
}
use delegate_scheduler;

mod bytes;
mod pct;
mod random;
mod shuttle_random;
mod swarm;

pub use bytes::Bytes;
pub use pct::Pct;
pub use random::RandomWalk;
pub use shuttle_random::ShuttleRandom;
pub use swarm::Swarm;

use super::trace::Fnv;
use serde::{Deserialize, Serialize};
use shuttle::scheduler::{Schedule, Scheduler, Task, TaskId};
use std::sync::{Arc, Mutex};

/// A scheduler that can be re-armed for another seed (one execution per seed).
pub trait Reseed: Scheduler + Send {
    fn reseed(&mut self, seed: u64);
}

/// Which scheduler a campaign uses.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerKind {
    Random,
    Pct,
    Swarm,
}

impl SchedulerKind {
    pub const ALL: [SchedulerKind; 3] = [
        SchedulerKind::Random,
        SchedulerKind::Pct,
        SchedulerKind::Swarm,
    ];
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Random => "random",
            SchedulerKind::Pct => "pct",
            SchedulerKind::Swarm => "swarm",
        }
    }
    /// A fresh scheduler of this kind (`pct_steps`: the scenario's step hint for change points).
    pub fn build(self, pct_steps: usize) -> Box<dyn Reseed> {
        match self {
            SchedulerKind::Random => Box::new(RandomWalk::new(0)),
            SchedulerKind::Pct => Box::new(Pct::new(0, pct_steps)),
            SchedulerKind::Swarm => Box::new(Swarm::new(0)),
        }
    }
}

delegate_scheduler!(Box<dyn Reseed>, self => self.as_mut());

impl Reseed for Box<dyn Reseed> {
    fn reseed(&mut self, seed: u64) {
        self.as_mut().reseed(seed)
    }
}

/// What the campaign scheduler shares with the code under test: which seed runs, how many
/// steps it took, and the schedule's fingerprint.
#[derive(Debug, Default)]
pub struct ExecState {
    pub seed: u64,
    pub steps: u64,
    /// Random values drawn (answers to `P::choose` and shuttle's own draws).
    pub draws: u64,
    pub schedule_hash: Fnv,
    /// The step budget was hit: the execution was cut short.
    pub cut: bool,
}

/// Runs `seeds` one after another in one shuttle `Runner`, each on the inner scheduler re-armed
/// with that seed. Cuts an execution that exceeds `step_budget` (a liveness bound).
pub struct Campaign<S: Reseed> {
    inner: S,
    seeds: std::vec::IntoIter<u64>,
    step_budget: u64,
    state: Arc<Mutex<ExecState>>,
}

impl<S: Reseed> Campaign<S> {
    pub fn new(inner: S, seeds: Vec<u64>, step_budget: u64, state: Arc<Mutex<ExecState>>) -> Self {
        Campaign {
            inner,
            seeds: seeds.into_iter(),
            step_budget,
            state,
        }
    }
}

fn lock(state: &Mutex<ExecState>) -> std::sync::MutexGuard<'_, ExecState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl<S: Reseed> Scheduler for Campaign<S> {
    fn new_execution(&mut self) -> Option<Schedule> {
        let Some(seed) = self.seeds.next() else {
            // Let the inner scheduler see the end (shuttle's own print a seed when dropped
            // inside an iteration).
            let _ = self.inner.new_execution();
            return None;
        };
        self.inner.reseed(seed);
        *lock(&self.state) = ExecState {
            seed,
            ..ExecState::default()
        };
        self.inner.new_execution()
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        yielding: bool,
    ) -> Option<TaskId> {
        let mut state = lock(&self.state);
        state.steps += 1;
        if state.steps > self.step_budget {
            state.cut = true;
            return None;
        }
        let chosen = self.inner.next_task(runnable, current, yielding)?;
        state.schedule_hash.write_u64(usize::from(chosen) as u64);
        Some(chosen)
    }

    fn next_u64(&mut self) -> u64 {
        let value = self.inner.next_u64();
        let mut state = lock(&self.state);
        state.draws += 1;
        state.schedule_hash.write_u64(value);
        value
    }
}

/// Runnable task ids, in shuttle's order (ascending ids).
pub(crate) fn ids(runnable: &[&Task]) -> Vec<TaskId> {
    runnable.iter().map(|t| t.id()).collect()
}

/// The candidates a yielding task leaves to the others: everyone else when there is someone
/// else (a spinning task must not starve the one it waits for).
pub(crate) fn candidates(
    runnable: &[&Task],
    current: Option<TaskId>,
    yielding: bool,
) -> Vec<TaskId> {
    let all = ids(runnable);
    if yielding && all.len() > 1 {
        if let Some(current) = current {
            let others: Vec<TaskId> = all.iter().copied().filter(|&t| t != current).collect();
            if !others.is_empty() {
                return others;
            }
        }
    }
    all
}
