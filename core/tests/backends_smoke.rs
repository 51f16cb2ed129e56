//! One map-in-map scenario under every backend of the sync facade: a reader program looks up
//! `outer[0]` and writes into the inner map while an updater replaces `outer[0]`. On the correct
//! core the write never reaches freed memory, the update succeeds, and at quiescence every map
//! is freed exactly once. The models issue adds the real interleaving tests; this one proves
//! the core runs under std threads, loom and shuttle alike.

use mimic_core::maps::ARRAY_VALUE_OFFSET;
use mimic_core::mutants::Mutants;
use mimic_core::rcu::Flavor;
use mimic_core::sync::{Platform, Std};
use mimic_core::uapi::*;
use mimic_core::world::{FaultPlan, World, WorldConfig};

/// The smallest world the scenario needs: two CPUs, a reader task and an updater task.
const TINY: WorldConfig = WorldConfig {
    cpus: 2,
    max_tasks: 2,
    faults: FaultPlan {
        hash_alloc_fail_per_mille: 0,
    },
    lacks: mimic_core::history::Lacks::NONE,
};

const READER_TASK: usize = 1;
const UPDATER_TASK: usize = 0;

fn key(i: u32) -> [u8; 4] {
    i.to_le_bytes()
}

fn reader_writes_while_updater_replaces<P: Platform>(outer_type: MapType) {
    scenario::<P>(outer_type, Mutants::NONE)
}

fn scenario<P: Platform>(outer_type: MapType, mutants: Mutants) {
    let world = P::arc(World::<P>::new(mutants, TINY));
    let inner_attr = MapAttr::new(MapType::Array, 4, 4, 1);
    let template = world.map_create(&inner_attr).expect("template");
    let outer = world
        .map_create(&MapAttr::new(outer_type, 4, 4, 1).inner(template))
        .expect("outer");
    let (first, second) = (
        world.map_create(&inner_attr).unwrap(),
        world.map_create(&inner_attr).unwrap(),
    );
    world
        .map_update_elem(outer, &key(0), &first.to_le_bytes(), BPF_ANY)
        .expect("publish the first inner map");
    world.close(first).unwrap();
    world.close(template).unwrap();
    let outer_handle = world.map_handle(outer).unwrap();
    world.prog_hold_maps(&[outer_handle], false).unwrap();

    let reader = {
        let world = world.clone();
        P::spawn(move || {
            P::set_current_task(READER_TASK);
            P::set_current_cpu(1);
            world.rcu_read_lock(Flavor::Rcu).unwrap();
            let result = world.prog_lookup(outer_handle, &key(0)).and_then(|inner| {
                let inner = inner.expect("outer[0] is always present");
                let handle = world.resolve_map_ptr(inner)?;
                world.store(handle, ARRAY_VALUE_OFFSET, 4, 7)
            });
            world.rcu_read_unlock(Flavor::Rcu).unwrap();
            result
        })
    };
    let updater = {
        let world = world.clone();
        P::spawn(move || {
            P::set_current_task(UPDATER_TASK);
            P::set_current_cpu(0);
            world.map_update_elem(outer, &key(0), &second.to_le_bytes(), BPF_ANY)
        })
    };
    P::join(reader).expect("the reader never touches freed memory");
    P::join(updater).expect("the replace succeeds");
    world.prog_release_maps(&[outer_handle], false).unwrap();
    world.close(second).unwrap();
    world.close(outer).unwrap();
    world
        .audit_quiescent()
        .expect("every map freed exactly once");
}

#[test]
fn std_threads_reader_writes_while_updater_replaces() {
    for _ in 0..50 {
        reader_writes_while_updater_replaces::<Std>(MapType::ArrayOfMaps);
        reader_writes_while_updater_replaces::<Std>(MapType::HashOfMaps);
    }
}

#[cfg(feature = "loom")]
#[test]
fn loom_reader_writes_while_updater_replaces() {
    use mimic_core::sync::Loom;
    let mut builder = loom::model::Builder::new();
    // Three preemptions cover "replace between the reader's lookup and its write" and "free
    // between the write and the section's end", the races that matter here.
    builder.preemption_bound = Some(3);
    builder.check(|| reader_writes_while_updater_replaces::<Loom>(MapType::ArrayOfMaps));
    builder.check(|| reader_writes_while_updater_replaces::<Loom>(MapType::HashOfMaps));
}

#[cfg(feature = "shuttle")]
#[test]
fn shuttle_reader_writes_while_updater_replaces() {
    use mimic_core::sync::Shuttle;
    shuttle::check_random(
        || reader_writes_while_updater_replaces::<Shuttle>(MapType::ArrayOfMaps),
        500,
    );
    shuttle::check_random(
        || reader_writes_while_updater_replaces::<Shuttle>(MapType::HashOfMaps),
        500,
    );
}

/// The checkers must be able to fail: the same scenario with the 2023 bug switched back on.
#[cfg(feature = "loom")]
#[test]
#[should_panic(expected = "UseAfterFree")]
fn loom_finds_free_inner_without_gp() {
    use mimic_core::sync::Loom;
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| {
        scenario::<Loom>(
            MapType::ArrayOfMaps,
            Mutants::only(mimic_core::mutants::Mutant::FreeInnerWithoutGp),
        )
    });
}

#[cfg(feature = "shuttle")]
#[test]
#[should_panic(expected = "UseAfterFree")]
fn shuttle_finds_free_inner_without_gp() {
    use mimic_core::sync::Shuttle;
    // PCT, not a uniform random walk: the bug needs the whole replace-and-free path to run
    // between two steps of the reader, which PCT's priority changes make likely.
    shuttle::check_pct(
        || {
            scenario::<Shuttle>(
                MapType::HashOfMaps,
                Mutants::only(mimic_core::mutants::Mutant::FreeInnerWithoutGp),
            )
        },
        2000,
        3,
    );
}
