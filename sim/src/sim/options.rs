//! Options derived from a seed (TigerBeetle's VOPR style): in swarm mode each seed draws which
//! fault kinds are on and how often they strike; the other schedulers run with faults off so
//! their failures are pure interleaving bugs. The options are part of every run's log line.

use super::scheduler::SchedulerKind;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Serialize;
use std::fmt;

/// Keeps the options' random stream apart from the scheduler's and the workload's.
const OPTIONS_STREAM: u64 = 0x4f50_5449_4f4e_5300;

/// Fault kinds and their rates for one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Faults {
    /// `-ENOMEM`: chance per thousand that a `BPF_F_NO_PREALLOC` element allocation fails.
    pub enomem_per_mille: u32,
    /// Full map: hash maps are created with half their `max_entries` (`-E2BIG` on insert).
    pub full_map: bool,
    /// `-EBUSY`: an interrupt-context copy of the first program task runs on its CPU.
    pub irq: bool,
    /// Slow readers: chance per thousand that a program pauses after a map lookup ...
    pub slow_reader_per_mille: u32,
    /// ... for this many yields, inside its read-side section.
    pub slow_reader_yields: u32,
    /// Delayed grace periods: yields of the grace-period worker between two polls.
    pub gp_delay_yields: u32,
}

/// Everything a run derives from its seed besides the schedule and the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Options {
    pub seed: u64,
    pub scheduler: SchedulerKind,
    pub faults: Faults,
}

impl Options {
    pub fn derive(seed: u64, scheduler: SchedulerKind) -> Options {
        let faults = if scheduler == SchedulerKind::Swarm {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ OPTIONS_STREAM);
            let mut coin = |per_mille: u64| rng.next_u64() % 1000 < per_mille;
            let (enomem, full, irq, slow, delay) =
                (coin(400), coin(200), coin(300), coin(500), coin(500));
            let mut draw = |lo: u64, hi: u64| (lo + rng.next_u64() % (hi - lo + 1)) as u32;
            Faults {
                enomem_per_mille: if enomem { draw(10, 300) } else { 0 },
                full_map: full,
                irq,
                slow_reader_per_mille: if slow { draw(100, 900) } else { 0 },
                slow_reader_yields: if slow { draw(1, 16) } else { 0 },
                gp_delay_yields: if delay { draw(1, 32) } else { 0 },
            }
        } else {
            Faults::default()
        };
        Options {
            seed,
            scheduler,
            faults,
        }
    }
}

impl fmt::Display for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = &self.faults;
        write!(
            f,
            "seed={} scheduler={} enomem={}‰ full_map={} irq={} slow_readers={}‰x{} gp_delay={}",
            self.seed,
            self.scheduler.name(),
            x.enomem_per_mille,
            x.full_map,
            x.irq,
            x.slow_reader_per_mille,
            x.slow_reader_yields,
            x.gp_delay_yields
        )
    }
}
