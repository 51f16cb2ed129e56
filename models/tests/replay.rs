//! Replay: a failing shuttle schedule saved to a file, and a failing loom execution saved to a
//! checkpoint file, both replay the same failure (same finding, same message: the run is a
//! function of the schedule).

use mimic_core::mutants::{Mutant, Mutants};
use mimic_models::engine::{explore, loom_with_checkpoint, replay_shuttle, Engine};
use mimic_models::mutants::CORE_MUTANTS;
use std::path::PathBuf;

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/mimic-models-replay")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn case(mutant: Mutant) -> &'static mimic_models::mutants::MutantCase {
    CORE_MUTANTS.iter().find(|c| c.mutant == mutant).unwrap()
}

#[test]
fn shuttle_failing_schedule_file_replays_the_same_use_after_free() {
    let dir = scratch("shuttle");
    // This binary's only shuttle run: shuttle's panic hook keeps the first run's configuration,
    // so the schedule goes to this directory.
    std::env::set_var("MIMIC_SCHEDULE_DIR", &dir);
    let case = case(Mutant::FreeInnerWithoutGp);
    let mutants = Mutants::only(case.mutant);
    let found = explore(Engine::ShuttlePct, case.scenario(), mutants, 10_000);
    assert_eq!(found.kind(), Some(case.finding()), "{:?}", found.failure);
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("schedule directory")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one failing schedule written: {files:?}");
    let replayed = replay_shuttle(case.scenario(), mutants, &files[0]);
    assert_eq!(
        replayed.failure, found.failure,
        "the saved schedule replays the same failure"
    );
}

#[test]
fn loom_checkpoint_file_replays_the_same_lost_key() {
    let dir = scratch("loom");
    let file = dir.join("checkpoint.json");
    let case = case(Mutant::NoNullsRestart);
    let mutants = Mutants::only(case.mutant);
    let found = loom_with_checkpoint(case.scenario(), mutants, &file);
    assert_eq!(found.kind(), Some(case.finding()), "{:?}", found.failure);
    assert!(
        found.executions > 1,
        "the failure is not the first execution"
    );
    let replayed = loom_with_checkpoint(case.scenario(), mutants, &file);
    assert_eq!(
        replayed.executions, 1,
        "the checkpoint starts at the failing execution"
    );
    assert_eq!(replayed.failure, found.failure, "same failure on replay");
}
