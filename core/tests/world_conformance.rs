//! The core's world against the sequential reference model: the errno table of semantics.md
//! §2–4 and op-sequence differential tests, all through `BpfSys` (`mimic_core::sys::Process`).

use mimic_core::model::cases::{cases, run_case};
use mimic_core::model::gen::{ops_from_chunks, ops_from_seed, GenConfig};
use mimic_core::model::ops;
use mimic_core::model::{ModelConfig, RefModel};
use mimic_core::mutants::Mutants;
use mimic_core::sync::Std;
use mimic_core::sys::Process;
use mimic_core::world::WorldConfig;
use proptest::prelude::*;

fn world() -> Process<Std> {
    Process::create(Mutants::NONE, WorldConfig::default())
}

/// The model with as many possible CPUs as the world has CPUs (per-CPU value sizes).
fn model() -> RefModel {
    RefModel::with_config(ModelConfig {
        possible_cpus: WorldConfig::default().cpus as u32,
        ..ModelConfig::default()
    })
}

#[test]
fn every_errno_row_holds_on_the_world() {
    let mut ran = 0;
    for case in cases() {
        ran += 1;
        if let Err(failure) = run_case(&mut world(), &case) {
            panic!("{failure}");
        }
    }
    assert!(ran >= 150, "the table shrank to {ran} cases");
}

/// Seeds the deterministic sweep runs; sequences as long as the model's own sweep.
const SEEDS: u64 = 300;
const SEQUENCE_LEN: usize = 120;

#[test]
fn world_matches_model_over_seeds() {
    for seed in 0..SEEDS {
        let ops = ops_from_seed(seed, SEQUENCE_LEN, GenConfig::default());
        let (mut model, mut world) = (model(), world());
        if let Err(d) = ops::differential(("model", &mut model), ("world", &mut world), &ops) {
            panic!("seed {seed}: {d}\n{}", ops::listing(&ops));
        }
    }
}

#[test]
fn world_matches_model_over_seeds_with_percpu_maps() {
    for seed in 0..SEEDS {
        let ops = ops_from_seed(
            seed,
            SEQUENCE_LEN,
            GenConfig {
                percpu: true,
                ..GenConfig::default()
            },
        );
        let (mut model, mut world) = (model(), world());
        if let Err(d) = ops::differential(("model", &mut model), ("world", &mut world), &ops) {
            panic!("seed {seed}: {d}\n{}", ops::listing(&ops));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Random op sequences from proptest (shrinkable): same outcomes, then both quiesce.
    #[test]
    fn world_matches_model(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 24), 1..SEQUENCE_LEN)) {
        let ops = ops_from_chunks(&chunks, GenConfig::default());
        let (mut model, mut world) = (model(), world());
        if let Err(d) = ops::differential(("model", &mut model), ("world", &mut world), &ops) {
            return Err(TestCaseError::fail(format!("{d}\n{}", ops::listing(&ops))));
        }
        world.world().check_conservation().map_err(|e| TestCaseError::fail(e.to_string()))?;
        for fd in world.world().open_fds() {
            world.world().close(fd).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        world.world().audit_quiescent().map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
}
