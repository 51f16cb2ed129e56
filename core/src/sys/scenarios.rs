//! Selftest scenarios of semantics.md §9 that need no verifier, and one test per core mutant
//! showing it fails for the reason it introduces while the correct core passes.

use super::*;
use crate::arena::Handle;
use crate::maps::ARRAY_VALUE_OFFSET;
use crate::mutants::{Mutant, Mutants};
use crate::sync::Std;
use crate::world::WorldConfig;

fn k(i: u32) -> Vec<u8> {
    i.to_le_bytes().to_vec()
}
fn fdv(fd: Fd) -> Vec<u8> {
    fd.to_le_bytes().to_vec()
}
fn array(w: &World<Std>, max_entries: u32, flags: u32) -> Fd {
    w.map_create(&MapAttr::new(MapType::Array, 4, 4, max_entries).flags(flags))
        .expect("array")
}
fn close_all(w: &World<Std>) {
    for fd in w.open_fds() {
        w.close(fd).expect("close");
    }
}

/// Reads a whole map with lookup batches of `steps` (ENOSPC: retry larger; done: stop).
fn drain_batches(w: &World<Std>, fd: Fd, steps: &[u32], delete: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut entries = Vec::new();
    let mut token = None;
    let mut step = 0;
    for _round in 0..100 {
        let count = steps[step.min(steps.len() - 1)];
        let result = if delete {
            w.map_lookup_and_delete_batch(fd, token, count)
        } else {
            w.map_lookup_batch(fd, token, count)
        };
        match result {
            Ok(out) => {
                entries.extend(out.keys.into_iter().zip(out.values));
                token = Some(out.next);
                step += 1;
                if out.done {
                    return entries;
                }
            }
            Err(Error::Errno(Errno::ENOSPC)) => step += 1,
            Err(e) => panic!("batch on fd {fd}: {e}"),
        }
    }
    panic!("batch lookup never reached the end")
}

#[test]
fn map_in_map_batch_ops() {
    for outer_type in [MapType::ArrayOfMaps, MapType::HashOfMaps] {
        for inner_type in [MapType::Array, MapType::Hash] {
            let w = World::<Std>::new(Mutants::NONE, WorldConfig::default());
            let inner_attr = MapAttr::new(inner_type, 4, 4, 1);
            let tpl = w.map_create(&inner_attr).unwrap();
            let outer = w
                .map_create(&MapAttr::new(outer_type, 4, 4, 10).inner(tpl))
                .unwrap();
            let inners: Vec<Fd> = (0..10)
                .map(|_| w.map_create(&inner_attr).unwrap())
                .collect();
            for &fd in &inners {
                let id = w.map_info(fd).unwrap().id;
                w.map_update_elem(fd, &k(0), &id.to_le_bytes(), BPF_ANY)
                    .unwrap();
            }
            let keys: Vec<Vec<u8>> = (0..10).map(k).collect();
            let values: Vec<Vec<u8>> = inners.iter().map(|&fd| fdv(fd)).collect();
            assert_eq!(
                w.map_update_batch(outer, &keys, &values, BPF_ANY)
                    .map_err(|(n, e)| (n, e.to_string())),
                Ok(10)
            );
            let entries = drain_batches(&w, outer, &[5, 10], false);
            assert_eq!(
                entries.len(),
                10,
                "{outer_type:?} of {inner_type:?}: all ids come back"
            );
            for (_, id) in &entries {
                let id = u32::from_le_bytes(id.clone().try_into().unwrap());
                let fd = w.map_get_fd_by_id(id).expect("the id resolves");
                assert_eq!(
                    w.map_lookup_elem(fd, &k(0)).unwrap(),
                    id.to_le_bytes().to_vec(),
                    "map {id} holds its id"
                );
                w.close(fd).unwrap();
            }
            if outer_type == MapType::HashOfMaps {
                let deleted = drain_batches(&w, outer, &[5, 10], true);
                assert_eq!(deleted.len(), 10);
                assert_eq!(
                    w.map_get_next_key(outer, None).map_err(|e| e.errno()),
                    Err(Some(Errno::ENOENT))
                );
            } else {
                assert_eq!(
                    w.map_lookup_and_delete_batch(outer, None, 10)
                        .map_err(|e| e.errno()),
                    Err(Some(Errno::ENOTSUPP))
                );
            }
            close_all(&w);
            w.audit_quiescent().unwrap();
        }
    }
}

#[test]
fn hash_lookup_batch_is_enospc_when_a_bucket_does_not_fit() {
    let w = World::<Std>::new(Mutants::NONE, WorldConfig::default());
    // max_entries 4 → 4 buckets; two keys that share a bucket make a bucket of two.
    let fd = w.map_create(&MapAttr::new(MapType::Hash, 4, 4, 4)).unwrap();
    let n_buckets = 4;
    let bucket = |i: u32| crate::maps::hashtab::hash_key(&k(i)) & (n_buckets - 1);
    let first = 0;
    let second = (1..1000).find(|&i| bucket(i) == bucket(first)).unwrap();
    w.map_update_elem(fd, &k(first), &k(1), BPF_ANY).unwrap();
    w.map_update_elem(fd, &k(second), &k(2), BPF_ANY).unwrap();
    let at = Some(bucket(first));
    assert_eq!(
        w.map_lookup_batch(fd, at, 1).map_err(|e| e.errno()),
        Err(Some(Errno::ENOSPC))
    );
    let out = w.map_lookup_batch(fd, at, 2).unwrap();
    assert_eq!(out.keys.len(), 2);
}

#[test]
fn btf_map_in_map_dynamic_inner_arrays_swap_and_leave_no_leak() {
    let w = World::<Std>::new(Mutants::NONE, WorldConfig::default());
    let tpl = array(&w, 1, BPF_F_INNER_MAP);
    let outer = w
        .map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 3).inner(tpl))
        .unwrap();
    let fixed_tpl = array(&w, 1, 0);
    let outer_hash = w
        .map_create(&MapAttr::new(MapType::HashOfMaps, 4, 4, 5).inner(fixed_tpl))
        .unwrap();
    assert_eq!(
        w.map_update_elem(outer, &k(0), &fdv(array(&w, 3, 0)), BPF_ANY)
            .map_err(|e| e.errno()),
        Err(Some(Errno::EINVAL)),
        "flags must match the template's"
    );
    let mut old_ids = Vec::new();
    for round in 0..5u32 {
        for (slot, size) in [(0, 3), (1, 3), (2, 5)] {
            let inner = array(&w, size, BPF_F_INNER_MAP);
            old_ids.push(w.map_info(inner).unwrap().id);
            w.map_update_elem(outer, &k(slot), &fdv(inner), BPF_ANY)
                .unwrap();
            w.close(inner).unwrap();
        }
        let fixed = array(&w, 1, 0);
        old_ids.push(w.map_info(fixed).unwrap().id);
        w.map_update_elem(outer_hash, &k(round % 2), &fdv(fixed), BPF_ANY)
            .unwrap();
        w.close(fixed).unwrap();
    }
    // diff_size: an ARRAY of 2 into an outer map whose template has 1 entry and no flag.
    let two = array(&w, 2, 0);
    assert_eq!(
        w.map_update_elem(outer_hash, &k(0), &fdv(two), BPF_ANY)
            .map_err(|e| e.errno()),
        Err(Some(Errno::EINVAL))
    );
    close_all(&w);
    w.barrier().unwrap();
    w.barrier().unwrap();
    for id in old_ids {
        assert_eq!(
            w.map_get_fd_by_id(id).map_err(|e| e.errno()),
            Err(Some(Errno::ENOENT)),
            "id {id} leaked"
        );
    }
    w.audit_quiescent().unwrap();
}

/// `inner_array_lookup`: the program's inlined inner lookup scales by the meta's `elem_size`.
fn inner_array_lookup(mutants: Mutants) -> Vec<u8> {
    let w = World::<Std>::new(mutants, WorldConfig::default());
    let tpl = array(&w, 5, 0);
    let outer = w
        .map_create(&MapAttr::new(MapType::HashOfMaps, 4, 4, 2).inner(tpl))
        .unwrap();
    let inner = array(&w, 5, 0);
    w.map_update_elem(outer, &k(1), &fdv(inner), BPF_ANY)
        .unwrap();
    w.map_update_elem(inner, &k(3), &k(1), BPF_ANY).unwrap();
    // The "program": outer lookup, then the inlined inner lookup of index 3 with meta constants.
    let outer_handle = w.map_handle(outer).unwrap();
    let meta = w
        .map_meta(outer_handle)
        .unwrap()
        .expect("outer maps have a meta");
    w.rcu_read_lock(Flavor::Rcu).unwrap();
    let inner_handle = match w.prog_lookup_loc(outer_handle, &k(1)).unwrap() {
        Some(crate::world::Location::InnerMap(handle)) => handle,
        other => panic!("an outer lookup gives the inner map, got {other:?}"),
    };
    let offset = ARRAY_VALUE_OFFSET + 3 * meta.elem_size;
    if w.load(inner_handle, offset, 4).unwrap() == 1 {
        w.store(inner_handle, offset, 4, 2).unwrap();
    }
    w.rcu_read_unlock(Flavor::Rcu).unwrap();
    w.map_lookup_elem(inner, &k(3)).unwrap()
}

#[test]
fn inner_array_lookup_scales_by_elem_size_and_the_mutant_breaks_it() {
    assert_eq!(inner_array_lookup(Mutants::NONE), k(2));
    assert_eq!(
        inner_array_lookup(Mutants::only(Mutant::MetaElemSizeZero)),
        k(1),
        "meta_elem_size_zero: element 0 is read"
    );
}

#[test]
fn meta_ignores_max_entries_accepts_diff_size() {
    let run = |mutants| {
        let w = World::<Std>::new(mutants, WorldConfig::default());
        let tpl = array(&w, 1, 0);
        let outer = w
            .map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 1).inner(tpl))
            .unwrap();
        let two = array(&w, 2, 0);
        w.map_update_elem(outer, &k(0), &fdv(two), BPF_ANY)
            .map_err(|e| e.errno())
    };
    assert_eq!(run(Mutants::NONE), Err(Some(Errno::EINVAL)));
    assert_eq!(run(Mutants::only(Mutant::MetaIgnoresMaxEntries)), Ok(()));
}

#[test]
fn no_wait_after_update_skips_the_grace_period() {
    let run = |mutants| {
        let w = World::<Std>::new(mutants, WorldConfig::default());
        let tpl = array(&w, 1, 0);
        let outer = w
            .map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 1).inner(tpl))
            .unwrap();
        let before = w.rcu().completed();
        w.map_update_elem(outer, &k(0), &fdv(tpl), BPF_ANY).unwrap();
        w.map_delete_elem(outer, &k(0)).unwrap();
        w.rcu().completed() - before
    };
    assert_eq!(
        run(Mutants::NONE),
        2,
        "one grace period after the update, one after the delete"
    );
    assert_eq!(run(Mutants::only(Mutant::NoWaitAfterUpdate)), 0);
}

/// A reader (task 1) looks up `outer[0]` and, after an updater thread (task 0) replaced it and
/// put the old map, writes into the map it saw. Returns the write's result.
fn write_after_replace(mutants: Mutants, sleepable: bool) -> Result<()> {
    let w = Std::arc(World::<Std>::new(mutants, WorldConfig::default()));
    let tpl = array(&w, 1, 0);
    let outer = w
        .map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 1).inner(tpl))
        .unwrap();
    let (a, b) = (array(&w, 1, 0), array(&w, 1, 0));
    w.map_update_elem(outer, &k(0), &fdv(a), BPF_ANY).unwrap();
    w.close(a).unwrap();
    let outer_handle = w.map_handle(outer).unwrap();
    w.prog_hold_maps(&[outer_handle], sleepable).unwrap();
    let flavor = if sleepable {
        Flavor::TasksTrace
    } else {
        Flavor::Rcu
    };
    Std::set_current_task(1);
    w.rcu_read_lock(flavor).unwrap();
    let seen: Handle = w
        .resolve_map_ptr(w.prog_lookup(outer_handle, &k(0)).unwrap().unwrap())
        .unwrap();
    let updater = {
        let w = w.clone();
        Std::spawn(move || {
            Std::set_current_task(0);
            Std::set_current_cpu(1);
            w.map_update_elem(outer, &k(0), &fdv(b), BPF_ANY)
        })
    };
    let write = || w.store(seen, ARRAY_VALUE_OFFSET, 4, 42);
    let (result, updater_result) = if sleepable {
        // The update waits for RCU readers only: it completes while we stay inside.
        let updater_result = Std::join(updater);
        let result = write();
        w.rcu_read_unlock(flavor).unwrap();
        (result, updater_result)
    } else {
        // Wait until the old map is freed (a bug) or its free is queued behind us (correct).
        let settled = (0..crate::rcu::GP_WAIT_YIELDS_MAX).any(|_| {
            Std::yield_now();
            w.map(seen).is_err() || w.rcu().pending() > 0
        });
        assert!(settled, "the updater never put the old inner map");
        let result = write();
        w.rcu_read_unlock(flavor).unwrap();
        (result, Std::join(updater))
    };
    Std::set_current_task(0);
    updater_result.expect("the update itself succeeds");
    w.prog_release_maps(&[outer_handle], sleepable).unwrap();
    close_all(&w);
    w.audit_quiescent().expect("no leak either way");
    result
}

fn is_uaf(result: Result<()>) -> bool {
    matches!(
        result,
        Err(Error::Fault(Fault::UseAfterFree {
            freed_at: Some(_),
            ..
        }))
    )
}

#[test]
fn reader_keeps_the_replaced_inner_map_until_it_leaves() {
    write_after_replace(Mutants::NONE, false)
        .expect("correct core: the old map outlives the reader's section");
    write_after_replace(Mutants::NONE, true)
        .expect("correct core: sleepable readers are waited for too");
}

#[test]
fn free_inner_without_gp_is_a_use_after_free() {
    assert!(is_uaf(write_after_replace(
        Mutants::only(Mutant::FreeInnerWithoutGp),
        false
    )));
}

#[test]
fn put_without_defer_is_a_use_after_free() {
    assert!(is_uaf(write_after_replace(
        Mutants::only(Mutant::PutWithoutDefer),
        false
    )));
}

#[test]
fn ignore_sleepable_gp_frees_under_a_sleepable_reader() {
    assert!(is_uaf(write_after_replace(
        Mutants::only(Mutant::IgnoreSleepableGp),
        true
    )));
    write_after_replace(Mutants::only(Mutant::IgnoreSleepableGp), false)
        .expect("no sleepable reader, no bug");
}

/// Replace `outer[0]` of a hash-of-maps twice with the old maps' fds closed, then quiesce.
fn replace_and_quiesce(mutants: Mutants, flags: u32) -> Result<()> {
    let w = World::<Std>::new(mutants, WorldConfig::default());
    let tpl = array(&w, 1, 0);
    let outer = w
        .map_create(
            &MapAttr::new(MapType::HashOfMaps, 4, 4, 2)
                .flags(flags)
                .inner(tpl),
        )
        .unwrap();
    for _ in 0..3 {
        let inner = array(&w, 1, 0);
        w.map_update_elem(outer, &k(0), &fdv(inner), BPF_ANY)?;
        w.close(inner)?;
    }
    w.map_delete_elem(outer, &k(0))?;
    close_all(&w);
    w.audit_quiescent()
}

#[test]
fn leak_on_replace_leaks_the_old_inner_map_on_prealloc_only() {
    replace_and_quiesce(Mutants::NONE, 0).expect("correct core");
    replace_and_quiesce(Mutants::NONE, BPF_F_NO_PREALLOC).expect("correct core");
    match replace_and_quiesce(Mutants::only(Mutant::LeakOnReplace), 0) {
        Err(Error::Fault(Fault::Leak { .. })) => {}
        other => panic!("leak_on_replace: expected a leak at quiescence, got {other:?}"),
    }
    replace_and_quiesce(Mutants::only(Mutant::LeakOnReplace), BPF_F_NO_PREALLOC)
        .expect("no spare swap without prealloc");
}

#[test]
fn replace_by_reinsert_keeps_refcounts_right() {
    replace_and_quiesce(Mutants::only(Mutant::ReplaceByReinsert), 0)
        .expect("the mutant's harm is a missed lookup, not a leak");
}

#[test]
fn put_under_bucket_lock_takes_the_id_lock_inside_the_bucket_lock() {
    replace_and_quiesce(Mutants::NONE, 0).expect("correct core");
    match replace_and_quiesce(Mutants::only(Mutant::PutUnderBucketLock), 0) {
        Err(Error::Fault(Fault::LockOrder {
            held, acquiring, ..
        })) => {
            assert!(
                held.contains("bucket") && acquiring.contains("map_idr_lock"),
                "{held} / {acquiring}"
            )
        }
        other => panic!("put_under_bucket_lock: expected a lock-order fault, got {other:?}"),
    }
}

#[test]
fn footprint_shows_the_dynamic_inner_array_saving() {
    let w = World::<Std>::new(Mutants::NONE, WorldConfig::default());
    let small = array(&w, 3, BPF_F_INNER_MAP);
    let large = array(&w, 5, 0);
    let fp = |fd| w.footprint(w.map_handle(fd).unwrap()).unwrap();
    assert_eq!(fp(small), u64::from(ARRAY_VALUE_OFFSET) + 3 * 8);
    assert_eq!(fp(large), u64::from(ARRAY_VALUE_OFFSET) + 5 * 8);
    let hash = w.map_create(&MapAttr::new(MapType::Hash, 4, 4, 4)).unwrap();
    let lazy = w
        .map_create(&MapAttr::new(MapType::Hash, 4, 4, 4).flags(BPF_F_NO_PREALLOC))
        .unwrap();
    assert!(
        fp(hash) > fp(lazy),
        "prealloc charges every element up front"
    );
    w.map_update_elem(lazy, &k(1), &k(1), BPF_ANY).unwrap();
    let elem = crate::maps::hashtab::HTAB_ELEM_HEADER_BYTES as u64 + 8 + 8;
    assert_eq!(
        fp(lazy),
        u64::from(crate::maps::hashtab::HTAB_HEADER_BYTES) + 4 * 16 + elem
    );
    assert_eq!(
        fp(hash),
        u64::from(crate::maps::hashtab::HTAB_HEADER_BYTES) + 4 * 16 + (4 + 2) * elem
    );
}

#[test]
fn close_racing_a_lookup_on_the_same_fd_never_frees_under_the_syscall() {
    for _ in 0..100 {
        let w = Std::arc(World::<Std>::new(Mutants::NONE, WorldConfig::default()));
        let tpl = array(&w, 1, 0);
        let outer = w
            .map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 1).inner(tpl))
            .unwrap();
        let inner = array(&w, 1, 0);
        w.map_update_elem(outer, &k(0), &fdv(inner), BPF_ANY)
            .unwrap();
        w.close(inner).unwrap();
        w.close(tpl).unwrap();
        let looker = {
            let w = w.clone();
            Std::spawn(move || {
                Std::set_current_task(1);
                Std::set_current_cpu(1);
                for _ in 0..50 {
                    match w.map_lookup_elem(outer, &k(0)) {
                        Ok(_) | Err(Error::Errno(Errno::EBADF)) => {}
                        Err(e) => panic!("lookup racing close: {e}"),
                    }
                }
            })
        };
        Std::set_current_task(0);
        w.close(outer).unwrap();
        Std::join(looker);
        w.audit_quiescent().unwrap();
    }
}

#[test]
fn threads_sharing_a_task_slot_are_one_reader_for_grace_periods() {
    let w = World::<Std>::new(Mutants::NONE, WorldConfig::default());
    Std::set_current_task(2);
    w.rcu_read_lock(Flavor::Rcu).unwrap();
    w.rcu_read_lock(Flavor::Rcu).unwrap(); // a second thread in the same slot, or nesting
    w.rcu_read_unlock(Flavor::Rcu).unwrap();
    assert!(
        w.rcu().in_section(Flavor::Rcu),
        "still inside while one holder remains"
    );
    w.rcu_read_unlock(Flavor::Rcu).unwrap();
    assert!(!w.rcu().in_section(Flavor::Rcu));
    Std::set_current_task(0);
}

#[test]
fn per_cpu_maps_give_programs_their_cpus_copy_and_user_space_all_copies() {
    for map_type in [MapType::PercpuArray, MapType::PercpuHash] {
        let w = World::<Std>::new(Mutants::NONE, WorldConfig::default()); // 2 CPUs
        let fd = w.map_create(&MapAttr::new(map_type, 4, 4, 2)).unwrap();
        let all = |a: u32, b: u32| [a.to_le_bytes(), [0; 4], b.to_le_bytes(), [0; 4]].concat();
        assert_eq!(
            w.map_update_elem(fd, &k(1), &k(7), BPF_ANY)
                .map_err(|e| e.errno()),
            Err(Some(Errno::EINVAL))
        );
        w.map_update_elem(fd, &k(1), &all(10, 20), BPF_ANY).unwrap();
        let h = w.map_handle(fd).unwrap();
        for (cpu, expected) in [(0, 10), (1, 20)] {
            Std::set_current_cpu(cpu);
            let ptr = w.prog_lookup(h, &k(1)).unwrap().expect("present");
            let offset = crate::ptr::Ptr::decode(ptr).unwrap().offset;
            assert_eq!(
                w.load(h, offset, 4).unwrap(),
                expected,
                "{map_type:?} cpu {cpu}"
            );
        }
        Std::set_current_cpu(1);
        w.prog_update(h, &k(1), &k(21), BPF_EXIST).unwrap();
        assert_eq!(
            w.map_lookup_elem(fd, &k(1)).unwrap(),
            all(10, 21),
            "{map_type:?}: only cpu 1's copy"
        );
        if map_type == MapType::PercpuHash {
            w.prog_update(h, &k(0), &k(5), BPF_NOEXIST).unwrap();
            assert_eq!(
                w.map_lookup_elem(fd, &k(0)).unwrap(),
                all(0, 5),
                "a new element zeroes the other CPUs"
            );
            assert_eq!(w.map_lookup_and_delete_elem(fd, &k(0)).unwrap(), all(0, 5));
            w.check_conservation().unwrap();
        }
        Std::set_current_cpu(0);
    }
}
