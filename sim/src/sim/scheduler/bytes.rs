//! A scheduler whose every decision comes from a byte slice: one byte picks among the runnable
//! tasks, eight bytes make a random value. Past the end, the first runnable task runs and
//! random values are 0. The `sim_schedule` fuzz target drives the simulator through it, so a
//! fuzzer's mutations of the bytes are mutations of the schedule.

use super::{candidates, Reseed};
use shuttle::scheduler::{Schedule, Scheduler, Task, TaskId};

pub struct Bytes {
    data: Vec<u8>,
    at: usize,
    armed: bool,
}

impl Bytes {
    pub fn new(data: &[u8]) -> Self {
        Bytes {
            data: data.to_vec(),
            at: 0,
            armed: true,
        }
    }

    fn byte(&mut self) -> u8 {
        let byte = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        byte
    }
}

impl Reseed for Bytes {
    /// Re-arms on the same bytes (the seed only names the run).
    fn reseed(&mut self, _seed: u64) {
        self.at = 0;
        self.armed = true;
    }
}

impl Scheduler for Bytes {
    fn new_execution(&mut self) -> Option<Schedule> {
        std::mem::take(&mut self.armed).then(|| Schedule::new(0))
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        yielding: bool,
    ) -> Option<TaskId> {
        let tasks = candidates(runnable, current, yielding);
        let byte = usize::from(self.byte());
        Some(tasks[byte % tasks.len()])
    }

    fn next_u64(&mut self) -> u64 {
        u64::from_le_bytes(std::array::from_fn(|_| self.byte()))
    }
}
