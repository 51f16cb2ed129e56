//! Swarm scheduling: each seed draws a weight per task (some starved, some favoured) and the
//! walk picks tasks in proportion to their weights. Different seeds thus explore very different
//! relative speeds, which is what long reader sections and slow updaters need. The seed's fault
//! kinds are drawn by the engine (`Options::derive`), not here.

use super::{candidates, Reseed};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use shuttle::scheduler::{Schedule, Scheduler, Task, TaskId};

/// Weights are drawn from `1..=WEIGHT_MAX`: a ratio of up to 64 between two tasks makes one
/// run dozens of steps while the other stands still, without starving anyone forever.
const WEIGHT_MAX: u64 = 64;

pub struct Swarm {
    seed: u64,
    rng: ChaCha8Rng,
    /// Weight per task id, drawn when the task is first seen.
    weights: Vec<u64>,
    armed: bool,
}

impl Swarm {
    pub fn new(seed: u64) -> Self {
        Swarm {
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5741_524d),
            weights: Vec::new(),
            armed: true,
        }
    }

    fn weight(&mut self, task: TaskId) -> u64 {
        let index = usize::from(task);
        while self.weights.len() <= index {
            // Squared draws favour small weights: most tasks slow, a few fast.
            let r = 1 + self.rng.next_u64() % 8;
            self.weights.push((r * r).min(WEIGHT_MAX));
        }
        self.weights[index]
    }
}

impl Reseed for Swarm {
    fn reseed(&mut self, seed: u64) {
        *self = Swarm::new(seed);
    }
}

impl Scheduler for Swarm {
    fn new_execution(&mut self) -> Option<Schedule> {
        std::mem::take(&mut self.armed).then(|| Schedule::new(self.seed))
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        yielding: bool,
    ) -> Option<TaskId> {
        let tasks = candidates(runnable, current, yielding);
        let weights: Vec<u64> = tasks.iter().map(|&t| self.weight(t)).collect();
        let total: u64 = weights.iter().sum();
        let mut pick = self.rng.next_u64() % total;
        for (task, weight) in tasks.iter().zip(&weights) {
            if pick < *weight {
                return Some(*task);
            }
            pick -= weight;
        }
        tasks.last().copied()
    }

    fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }
}
