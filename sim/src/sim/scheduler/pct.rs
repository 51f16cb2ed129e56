//! PCT (Burckhardt et al., ASPLOS 2010): every task gets a random priority, the highest-priority
//! runnable task runs, and at `depth - 1` random steps the running task drops to the lowest
//! priority. A bug of depth `d` is found with probability at least `1 / (n * k^(d-1))` per run.
//!
//! Unlike shuttle's `PctScheduler`, which learns the step count `k` over the executions of one
//! test, each seed here is one independent execution, so `k` is the scenario's step hint: the
//! schedule of a seed must not depend on the seeds that ran before it.

use super::{candidates, Reseed};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use shuttle::scheduler::{Schedule, Scheduler, Task, TaskId};

/// Bug depth drawn per seed from `1..=DEPTH_MAX`: the races in the catalogue need at most two
/// ordering constraints plus one for the reader's section.
const DEPTH_MAX: u64 = 3;

pub struct Pct {
    seed: u64,
    steps_hint: usize,
    rng: ChaCha8Rng,
    /// Priority per task id (higher runs first), drawn when the task is first seen.
    priorities: Vec<i64>,
    change_points: Vec<u64>,
    steps: u64,
    /// Next priority handed to a demoted task (below every initial one, decreasing).
    lowest: i64,
    armed: bool,
}

impl Pct {
    pub fn new(seed: u64, steps_hint: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5043_5400);
        let depth = 1 + rng.next_u64() % DEPTH_MAX;
        let k = steps_hint.max(2) as u64;
        let mut change_points: Vec<u64> = (1..depth).map(|_| 1 + rng.next_u64() % k).collect();
        change_points.sort_unstable();
        Pct {
            seed,
            steps_hint,
            rng,
            priorities: Vec::new(),
            change_points,
            steps: 0,
            lowest: -1,
            armed: true,
        }
    }

    fn priority(&mut self, task: TaskId) -> i64 {
        let index = usize::from(task);
        while self.priorities.len() <= index {
            // Non-negative and (with overwhelming probability) distinct; ties break by id.
            self.priorities.push((self.rng.next_u64() >> 2) as i64);
        }
        self.priorities[index]
    }
}

impl Reseed for Pct {
    fn reseed(&mut self, seed: u64) {
        *self = Pct::new(seed, self.steps_hint);
    }
}

impl Scheduler for Pct {
    fn new_execution(&mut self) -> Option<Schedule> {
        std::mem::take(&mut self.armed).then(|| Schedule::new(self.seed))
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        yielding: bool,
    ) -> Option<TaskId> {
        for task in runnable {
            self.priority(task.id());
        }
        if runnable.len() > 1 {
            self.steps += 1;
            let change = self.change_points.binary_search(&self.steps).is_ok();
            if let (true, Some(current)) = (change || yielding, current) {
                self.priority(current);
                self.priorities[usize::from(current)] = self.lowest;
                self.lowest -= 1;
            }
        }
        let tasks = candidates(runnable, current, yielding);
        tasks.into_iter().max_by_key(|&t| {
            (
                self.priorities[usize::from(t)],
                std::cmp::Reverse(usize::from(t)),
            )
        })
    }

    fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }
}
