//! The reference model against the real kernel on generated op sequences: the same ops
//! (`mimic_core::model::gen`, seeded) run on [`RefModel`] and on [`KernelSys`], compared outcome
//! by outcome with fds and ids made canonical on each side (`mimic_core::model::ops::FdMap`:
//! the id/fd bijection between the two numberings), hash iteration compared as sets, then both
//! brought to quiescence and every map checked gone.
//!
//! The generator is restricted to what the kernel backend can express ([`kernel_gen_config`]):
//! no buffers of the wrong length (the syscall carries no lengths), no raw fds (the backend
//! never touches descriptors it does not own, so fds 0–2 cannot be closed through it). Per-CPU
//! maps are generated with values sized for the machine's possible CPUs, and the model is
//! configured with the same count. Some maps are created `BPF_F_RDONLY`/`BPF_F_WRONLY` (D1).
#![forbid(unsafe_code)]

use super::KernelSys;
use mimic_core::model::gen::{ops_from_seed, GenConfig};
use mimic_core::model::ops::{differential_with, listing, Divergence, FdMap};
use mimic_core::model::{ModelConfig, RefModel};

/// Seeds the kernel differential runs by default (tests and `mimic kernel-check`).
pub const DEFAULT_SEEDS: u64 = 200;
/// Ops per sequence: enough to fill small maps, store, replace and close templates.
pub const DEFAULT_LEN: usize = 40;
/// The environment variable that sets how many seeds to run (long runs).
pub const SEEDS_ENV: &str = "MIMIC_KERNEL_SEEDS";

/// What the generator may produce for a kernel with `possible_cpus` CPUs (see the module doc).
pub fn kernel_gen_config(possible_cpus: u32) -> GenConfig {
    GenConfig {
        wrong_sizes: false,
        percpu: true,
        possible_cpus,
        raw_fds: false,
        access_flags: true,
        ..GenConfig::default()
    }
}

/// The machine's possible CPUs, or 1 when it cannot be read (per-CPU ops then disagree and say
/// so, rather than the sweep failing to start).
pub fn kernel_cpus(kernel: &KernelSys) -> u32 {
    kernel.possible_cpus().unwrap_or(1)
}

/// A model with the kernel's possible CPUs.
pub fn model_for(kernel: &KernelSys) -> RefModel {
    RefModel::with_config(ModelConfig {
        possible_cpus: kernel_cpus(kernel),
        ..ModelConfig::default()
    })
}

/// `MIMIC_KERNEL_SEEDS` if set to a number, else `default`; an unparsable value is an error
/// naming it.
pub fn seeds_from_env(default: u64) -> Result<u64, String> {
    match std::env::var(SEEDS_ENV) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("{SEEDS_ENV}={text:?} is not a number of seeds")),
        Err(_) => Ok(default),
    }
}

/// One seed whose runs diverged.
#[derive(Debug, Clone)]
pub struct SeedDivergence {
    pub seed: u64,
    pub divergence: Box<Divergence>,
    /// The sequence up to and including the diverging op.
    pub listing: String,
}

impl std::fmt::Display for SeedDivergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {}: {}\n{}",
            self.seed, self.divergence, self.listing
        )
    }
}

/// The result of a sweep of seeds.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    pub seeds: u64,
    pub ops: u64,
    pub divergences: Vec<SeedDivergence>,
}

impl SweepReport {
    pub fn agreed(&self) -> u64 {
        self.seeds - self.divergences.len() as u64
    }
}

/// Runs seed `seed` (`len` ops) on a fresh model and on `kernel`.
pub fn run_seed(kernel: &mut KernelSys, seed: u64, len: usize) -> Result<(), SeedDivergence> {
    let ops = ops_from_seed(seed, len, kernel_gen_config(kernel_cpus(kernel)));
    let mut model = model_for(kernel);
    differential_with(
        ("model", &mut model),
        ("kernel", kernel),
        &ops,
        FdMap::closed_never_reused,
    )
    .map_err(|divergence| {
        let upto = divergence.index.min(ops.len().saturating_sub(1));
        SeedDivergence {
            seed,
            listing: listing(&ops[..=upto.min(ops.len().saturating_sub(1))]),
            divergence,
        }
    })
}

/// Runs seeds `0..seeds` of `len` ops each.
pub fn sweep(kernel: &mut KernelSys, seeds: u64, len: usize) -> SweepReport {
    let mut report = SweepReport {
        seeds,
        ops: seeds * len as u64,
        ..SweepReport::default()
    };
    for seed in 0..seeds {
        if let Err(d) = run_seed(kernel, seed, len) {
            report.divergences.push(d);
        }
    }
    report
}
