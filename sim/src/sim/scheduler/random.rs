//! A ChaCha-seeded random walk: at every step, a uniformly random runnable task (a yielding
//! task steps aside when another can run).

use super::{candidates, Reseed};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use shuttle::scheduler::{Schedule, Scheduler, Task, TaskId};

pub struct RandomWalk {
    seed: u64,
    rng: ChaCha8Rng,
    armed: bool,
}

impl RandomWalk {
    pub fn new(seed: u64) -> Self {
        RandomWalk {
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            armed: true,
        }
    }
}

impl Reseed for RandomWalk {
    fn reseed(&mut self, seed: u64) {
        *self = RandomWalk::new(seed);
    }
}

impl Scheduler for RandomWalk {
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
        Some(tasks[super::super::reduce(self.rng.next_u64(), tasks.len())])
    }

    fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }
}
