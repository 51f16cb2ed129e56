//! The §7 reader races on hash maps (hash-of-maps, and a plain hash for element reuse) under
//! shuttle's PCT scheduler: a program looks up a key that is present the whole time while a
//! writer changes the same bucket. The correct core
//! never reports the key missing; each hash mutant makes shuttle find a schedule where it does.

#![cfg(feature = "shuttle")]

use mimic_core::maps::hashtab::hash_key;
use mimic_core::mutants::{Mutant, Mutants};
use mimic_core::rcu::Flavor;
use mimic_core::sync::{Platform, Shuttle};
use mimic_core::uapi::*;
use mimic_core::world::{FaultPlan, World, WorldConfig};

/// Two CPUs (the writer's and the reader's), two tasks.
const TINY: WorldConfig = WorldConfig {
    cpus: 2,
    max_tasks: 2,
    faults: FaultPlan {
        hash_alloc_fail_per_mille: 0,
    },
    lacks: mimic_core::history::Lacks::NONE,
};
/// Schedules per test, and PCT's bug depth: the races need the writer to run a whole syscall
/// between two steps of the reader's walk.
const ITERATIONS: usize = 3000;
const DEPTH: usize = 3;
/// Two buckets: small enough for collisions, and a second bucket to reuse elements into.
const MAX_ENTRIES: u32 = 2;

fn key(i: u32) -> [u8; 4] {
    i.to_le_bytes()
}

fn bucket(i: u32) -> u32 {
    hash_key(&key(i)) & (MAX_ENTRIES - 1)
}

/// `present` (always in the map), `front` (same bucket, linked in front of it) and `other`
/// (the other bucket).
fn keys() -> (u32, u32, u32) {
    let present = 0;
    let front = (1..1000)
        .find(|&i| bucket(i) == bucket(present))
        .expect("a colliding key");
    let other = (1..1000)
        .find(|&i| bucket(i) != bucket(present))
        .expect("a key of the other bucket");
    (present, front, other)
}

#[derive(Clone, Copy)]
enum Writer {
    /// Replace `present`'s inner map (`BPF_EXIST`).
    Replace,
    /// Delete `front` (its element goes to the freelist).
    DeleteFront,
    /// Delete `front`, then insert `other`: `front`'s element is reused into the other bucket.
    DeleteFrontReuse,
}

fn race(mutants: Mutants, writer: Writer) {
    let world = Shuttle::arc(World::<Shuttle>::new(mutants, TINY));
    let (present, front, other) = keys();
    // A map-in-map delete waits for a grace period, so an element can be reused while a reader
    // stands on it only in a plain hash: the reuse race runs there.
    let (outer, fd) = match writer {
        Writer::DeleteFrontReuse => (
            world
                .map_create(&MapAttr::new(MapType::Hash, 4, 4, MAX_ENTRIES))
                .unwrap(),
            7,
        ),
        Writer::Replace | Writer::DeleteFront => {
            let inner = MapAttr::new(MapType::Array, 4, 4, 1);
            let template = world.map_create(&inner).unwrap();
            let outer = world
                .map_create(&MapAttr::new(MapType::HashOfMaps, 4, 4, MAX_ENTRIES).inner(template))
                .unwrap();
            (outer, world.map_create(&inner).unwrap())
        }
    };
    let fd = fd.to_le_bytes();
    world
        .map_update_elem(outer, &key(present), &fd, BPF_NOEXIST)
        .unwrap();
    world
        .map_update_elem(outer, &key(front), &fd, BPF_NOEXIST)
        .unwrap(); // head: front → present
    let outer_handle = world.map_handle(outer).unwrap();
    let reader = {
        let world = world.clone();
        Shuttle::spawn(move || {
            Shuttle::set_current_task(1);
            Shuttle::set_current_cpu(1);
            world.rcu_read_lock(Flavor::Rcu).unwrap();
            let found = world.prog_lookup(outer_handle, &key(present));
            world.rcu_read_unlock(Flavor::Rcu).unwrap();
            found
        })
    };
    Shuttle::set_current_task(0);
    Shuttle::set_current_cpu(0);
    match writer {
        Writer::Replace => world
            .map_update_elem(outer, &key(present), &fd, BPF_EXIST)
            .unwrap(),
        Writer::DeleteFront => world.map_delete_elem(outer, &key(front)).unwrap(),
        Writer::DeleteFrontReuse => {
            world.map_delete_elem(outer, &key(front)).unwrap();
            world
                .map_update_elem(outer, &key(other), &fd, BPF_NOEXIST)
                .unwrap();
        }
    }
    let found = Shuttle::join(reader).expect("the lookup itself never faults");
    assert!(found.is_some(), "a present key reported missing");
}

fn check(mutants: Mutants, writer: Writer) {
    shuttle::check_pct(move || race(mutants, writer), ITERATIONS, DEPTH);
}

#[test]
fn present_key_is_always_found_on_the_correct_core() {
    for writer in [
        Writer::Replace,
        Writer::DeleteFront,
        Writer::DeleteFrontReuse,
    ] {
        check(Mutants::NONE, writer);
    }
}

#[test]
#[should_panic(expected = "a present key reported missing")]
fn replace_by_reinsert_hides_a_present_key() {
    check(Mutants::only(Mutant::ReplaceByReinsert), Writer::Replace);
}

#[test]
#[should_panic(expected = "a present key reported missing")]
fn freelist_aliases_next_hides_a_present_key() {
    check(
        Mutants::only(Mutant::FreelistAliasesNext),
        Writer::DeleteFront,
    );
}

#[test]
#[should_panic(expected = "a present key reported missing")]
fn no_nulls_restart_hides_a_present_key() {
    check(
        Mutants::only(Mutant::NoNullsRestart),
        Writer::DeleteFrontReuse,
    );
}

/// A task on CPU 0 updates key `a` while a nested (interrupt-time) program on the same CPU
/// updates `b`, another key of the same bucket.
fn nested_update(mutants: Mutants) {
    let world = Shuttle::arc(World::<Shuttle>::new(mutants, TINY));
    let a = 0;
    let b = (1..1000)
        .find(|&i| bucket(i) == bucket(a) && hash_key(&key(i)) & 7 != hash_key(&key(a)) & 7)
        .expect("same bucket, another re-entrancy slot under hash & 7");
    let fd = world
        .map_create(&MapAttr::new(MapType::Hash, 4, 4, MAX_ENTRIES))
        .unwrap();
    let handle = world.map_handle(fd).unwrap();
    let nested = {
        let world = world.clone();
        Shuttle::spawn(move || {
            Shuttle::set_current_task(1);
            Shuttle::set_current_cpu(0);
            world.prog_update(handle, &key(b), &key(2), BPF_ANY)
        })
    };
    Shuttle::set_current_task(0);
    Shuttle::set_current_cpu(0);
    // Either side may find the other inside the bucket: the model cannot tell which one is the
    // interrupted one, so both may see -EBUSY.
    let outer = world.map_update_elem(fd, &key(a), &key(1), BPF_ANY);
    for (who, result) in [("task", outer), ("nested program", Shuttle::join(nested))] {
        match result {
            Ok(()) => {}
            Err(e) if e.errno() == Some(mimic_core::errno::Errno::EBUSY) => {}
            Err(e) => panic!("{who} update: {e}"),
        }
    }
}

#[test]
fn nested_update_on_the_same_cpu_is_ebusy_or_succeeds() {
    shuttle::check_pct(|| nested_update(Mutants::NONE), ITERATIONS, DEPTH);
}

#[test]
#[should_panic(expected = "deadlock")]
fn lock_slot_unmasked_deadlocks_a_nested_update() {
    shuttle::check_pct(
        || nested_update(Mutants::only(Mutant::LockSlotUnmasked)),
        ITERATIONS,
        DEPTH,
    );
}
