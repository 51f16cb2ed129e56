//! shuttle's own `RandomScheduler` (what `shuttle::check_random` runs) behind mimic's
//! [`Reseed`], so that the benchmarks, `mimic run --baseline` and `mimic mutants` compare
//! mimic's schedulers with plain shuttle on the same scenarios and seeds.

use super::Reseed;
use shuttle::scheduler::{RandomScheduler, Scheduler};

/// shuttle's `RandomScheduler`, re-seeded per execution.
pub struct ShuttleRandom(RandomScheduler);

impl ShuttleRandom {
    pub fn new() -> Self {
        ShuttleRandom(RandomScheduler::new_from_seed(0, 1))
    }
}

impl Default for ShuttleRandom {
    fn default() -> Self {
        Self::new()
    }
}

super::delegate_scheduler!(ShuttleRandom, self => self.0);

impl Reseed for ShuttleRandom {
    fn reseed(&mut self, seed: u64) {
        // Let the old scheduler see its run end first: it prints its seed as "failing" when
        // dropped in the middle of an iteration.
        for _ in 0..2 {
            if self.0.new_execution().is_none() {
                break;
            }
        }
        self.0 = RandomScheduler::new_from_seed(seed, 1);
    }
}
