//! `map_ops`: syscall sequences from the fuzz bytes (the reference model's generator,
//! `mimic_core::model::gen::ops_from_bytes`) run on the core's concurrent `World` (through its
//! `BpfSys` adapter `sys::Process`) and on the sequential `RefModel`.
//!
//! A crash is: any difference in results or errnos (`model::ops::differential`, which also
//! compares a quiescence probe: after closing everything no map may still resolve by id), a
//! fault raised by the world (use after free, deadlock, ...), or a leak found by the world's
//! own audit at quiescence (`World::audit_quiescent`).
//!
//! The first input byte selects the generator's options (per-CPU maps, wrong sizes, bad
//! attributes, raw fds); the rest are the generator's choices.
//!
//! Switches: `MIMIC_MUTANTS=id,id` runs the world with those mutants (the model stays
//! correct); `MIMIC_FUZZ_KERNEL=1` (build with `--features kernel`) also runs each sequence on the real
//! kernel (`mimic_sim::kernel::KernelSys`) and compares it with the model; skipped with one line
//! when bpf() is refused.

use crate::fuzz::mutants_from_env;
use mimic_core::model::gen::{ops_from_bytes, GenConfig};
use mimic_core::model::ops::{differential, listing, Op};
use mimic_core::model::{ModelConfig, RefModel};
use mimic_core::mutants::Mutants;
use mimic_core::sync::Std;
use mimic_core::sys::Process;
use mimic_core::world::WorldConfig;

/// Ops per sequence at most: enough to fill small maps, swap inner maps and close templates.
const MAX_OPS: usize = 96;

/// The generator options (first byte) and the op sequence (the rest) of one input; `None` when
/// the input holds no op (the target ignores it).
pub fn decode(data: &[u8]) -> Option<(GenConfig, Vec<Op>)> {
    let (&options, choices) = data.split_first()?;
    let config = GenConfig {
        percpu: options & 1 != 0,
        wrong_sizes: options & 2 != 0,
        bad_attrs: options & 4 != 0,
        raw_fds: options & 8 != 0,
        ..GenConfig::default()
    };
    let ops = ops_from_bytes(choices, MAX_OPS, config);
    (!ops.is_empty()).then_some((config, ops))
}

/// One input: panics on a divergence, a fault or a leak.
pub fn check(data: &[u8]) {
    check_with(data, mutants_from_env());
}

/// [`check`] with the world's mutants given (the replay command passes its own).
pub fn check_with(data: &[u8], mutants: Mutants) {
    let Some((config, ops)) = decode(data) else {
        return;
    };
    world_against_model(&ops, mutants);
    #[cfg(feature = "kernel")]
    kernel::against_model(&ops, config);
    #[cfg(not(feature = "kernel"))]
    let _ = config;
}

/// The model's configuration matching the world's (per-CPU values are `round_up(value_size, 8)
/// × cpus` bytes on both sides).
pub fn model_config(world_config: &WorldConfig) -> ModelConfig {
    ModelConfig {
        possible_cpus: world_config.cpus as u32,
        ..ModelConfig::default()
    }
}

fn world_against_model(ops: &[Op], mutants: Mutants) {
    let world_config = WorldConfig::default();
    let mut model = RefModel::with_config(model_config(&world_config));
    let mut world = Process::<Std>::create(mutants, world_config);
    if let Err(divergence) = differential(("model", &mut model), ("world", &mut world), ops) {
        panic!("world and model diverge:\n{divergence}\n{}", listing(ops));
    }
    if let Err(fault) = world.world().audit_quiescent() {
        panic!("world audit at quiescence: {fault}\n{}", listing(ops));
    }
    if let Err(fault) = model.check_quiescent() {
        panic!(
            "model not quiescent after the probe: {fault}\n{}",
            listing(ops)
        );
    }
}

#[cfg(feature = "kernel")]
mod kernel {
    use super::*;
    use crate::kernel::KernelSys;

    pub fn against_model(ops: &[Op], config: GenConfig) {
        // The real syscall cannot take wrong-length buffers, per-CPU values depend on the
        // machine's CPUs, and fds 0-2 are the fuzzer's own streams: those sequences stay in-model.
        if !crate::fuzz::kernel_mode("map_ops")
            || config.wrong_sizes
            || config.percpu
            || config.raw_fds
        {
            return;
        }
        let Ok(mut sys) = KernelSys::new() else {
            return;
        };
        let mut model = RefModel::new();
        if let Err(divergence) = differential(("model", &mut model), ("kernel", &mut sys), ops) {
            panic!("kernel and model diverge:\n{divergence}\n{}", listing(ops));
        }
    }
}
