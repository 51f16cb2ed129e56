//! The errno rows of semantics.md §1–4 and the selftest scenarios of §9 that need no programs,
//! driven through the syscall layer on the std backend.

use super::*;
use crate::errno::Errno::*;
use crate::mutants::Mutants;
use crate::sync::Std;
use crate::world::WorldConfig;

fn world() -> World<Std> {
    World::new(Mutants::NONE, WorldConfig::default())
}

fn errno<T: std::fmt::Debug>(result: Result<T>) -> Errno {
    match result {
        Err(Error::Errno(e)) => e,
        other => panic!("expected an errno, got {other:?}"),
    }
}

fn k(i: u32) -> Vec<u8> {
    i.to_le_bytes().to_vec()
}

fn array(w: &World<Std>, max_entries: u32, flags: u32) -> Fd {
    w.map_create(&MapAttr::new(MapType::Array, 4, 4, max_entries).flags(flags))
        .expect("array")
}

fn id_of(w: &World<Std>, fd: Fd) -> u32 {
    w.map_info(fd).unwrap().id
}

#[test]
fn create_refuses_bad_attributes_with_the_kernels_errnos() {
    let w = world();
    let tpl = array(&w, 1, 0);
    let cases: Vec<(MapAttr, Errno)> = vec![
        (
            MapAttr {
                map_type: 99,
                ..MapAttr::new(MapType::Array, 4, 4, 1)
            },
            EINVAL,
        ),
        (MapAttr::new(MapType::Array, 8, 4, 1), EINVAL),
        (MapAttr::new(MapType::Array, 4, 4, 0), EINVAL),
        (
            MapAttr::new(MapType::Hash, 4, 4, 1).flags(BPF_F_INNER_MAP),
            EINVAL,
        ),
        (MapAttr::new(MapType::Hash, 0, 4, 1), EINVAL),
        (MapAttr::new(MapType::Hash, 4, 0, 1), EINVAL),
        (MapAttr::new(MapType::Hash, 4, 4, 0), EINVAL),
        (MapAttr::new(MapType::Hash, 8, 4 << 20, 1), E2BIG),
        (MapAttr::new(MapType::PercpuArray, 4, 40_000, 1), E2BIG),
        (
            MapAttr::new(MapType::PercpuHash, 4, 4, 1).flags(BPF_F_NUMA_NODE),
            EINVAL,
        ),
        (
            MapAttr::new(MapType::Array, 4, 4, 1).flags(BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG),
            EINVAL,
        ),
        (
            // D1: either access flag alone is accepted; both together are not.
            MapAttr::new(MapType::Hash, 4, 4, 1).flags(BPF_F_RDONLY | BPF_F_WRONLY),
            EINVAL,
        ),
        (
            MapAttr::new(MapType::ArrayOfMaps, 4, 8, 1).inner(tpl),
            EINVAL,
        ),
        (
            MapAttr::new(MapType::ArrayOfMaps, 4, 4, 1)
                .flags(BPF_F_RDONLY_PROG)
                .inner(tpl),
            EINVAL,
        ),
        (
            MapAttr::new(MapType::ArrayOfMaps, 4, 4, 1)
                .flags(BPF_F_INNER_MAP)
                .inner(tpl),
            EINVAL,
        ),
        (
            MapAttr::new(MapType::HashOfMaps, 4, 8, 1).inner(tpl),
            EINVAL,
        ),
        (MapAttr::new(MapType::ArrayOfMaps, 4, 4, 1).inner(77), EBADF),
        (MapAttr::new(MapType::HashOfMaps, 4, 4, 1).inner(77), EBADF),
        (MapAttr::new(MapType::ArrayOfMaps, 4, 4, 1).inner(1), EINVAL),
    ];
    for (attr, expected) in cases {
        assert_eq!(errno(w.map_create(&attr)), expected, "{attr:?}");
    }
    assert_eq!(
        w.open_fds(),
        vec![tpl],
        "failed creations leave no fd behind"
    );
    assert_eq!(
        w.live_maps().len(),
        1,
        "failed creations leave no map behind"
    );
}

#[test]
fn nesting_is_einval_and_a_template_without_meta_equal_is_enotsupp() {
    let w = world();
    let tpl = array(&w, 1, 0);
    let outer = w
        .map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 1).inner(tpl))
        .unwrap();
    assert_eq!(
        errno(w.map_create(&MapAttr::new(MapType::HashOfMaps, 4, 4, 1).inner(outer))),
        EINVAL
    );
    let prog_array = w
        .map_create(&MapAttr::new(MapType::ProgArray, 4, 4, 1))
        .unwrap();
    assert_eq!(
        errno(w.map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 1).inner(prog_array))),
        ENOTSUPP
    );
}

#[test]
fn a_program_array_answers_user_space_by_id_refuses_a_programs_lookup_and_is_charged_per_slot() {
    let w = world();
    let fd = w
        .map_create(&MapAttr::new(MapType::ProgArray, 4, 4, 2))
        .unwrap();
    let handle = w.map_handle(fd).unwrap();
    // User space reads a slot's program id: an empty slot is ENOENT, a key past the end too.
    assert_eq!(errno(w.map_lookup_elem(fd, &k(0))), ENOENT);
    assert_eq!(errno(w.map_lookup_elem(fd, &k(2))), ENOENT);
    // A program may only tail-call through it: its lookup is `fd_array_map_lookup_elem`'s
    // EOPNOTSUPP, not a NULL it could mistake for an empty slot.
    assert_eq!(errno(w.prog_lookup(handle, &k(0))), EOPNOTSUPP);
    assert_eq!(errno(w.prog_lookup(handle, &k(5))), EOPNOTSUPP);
    // It is charged as an array of its slots, one 8-byte program pointer each.
    let plain = w
        .map_create(&MapAttr::new(MapType::Array, 4, 8, 2))
        .unwrap();
    assert_eq!(
        w.footprint(handle).unwrap(),
        w.footprint(w.map_handle(plain).unwrap()).unwrap()
    );
}

#[test]
fn an_array_batch_that_copies_nothing_leaves_the_token_as_it_was() {
    let w = world();
    let fd = array(&w, 4, 0);
    // No room asked for: nothing is copied and the caller's token stays.
    let out = w.map_lookup_batch(fd, Some(2), 0).unwrap();
    assert_eq!((out.keys.len(), out.next, out.done), (0, 2, false));
    // After the last key: the end at once (-ENOENT), and the token again.
    let out = w.map_lookup_batch(fd, Some(3), 4).unwrap();
    assert_eq!((out.keys.len(), out.next, out.done), (0, 3, true));
    // From the start: every key, the token naming the last one copied.
    let out = w.map_lookup_batch(fd, None, 3).unwrap();
    assert_eq!((out.keys.len(), out.next, out.done), (3, 2, false));
}

#[test]
fn a_per_cpu_array_reads_back_every_cpus_copy_of_the_key_asked_for() {
    let w = world();
    let fd = w
        .map_create(&MapAttr::new(MapType::PercpuArray, 4, 8, 3))
        .unwrap();
    // The default world has two CPUs: a user-space value is one 8-byte copy for each.
    let mut copies = 7u64.to_le_bytes().to_vec();
    copies.extend(9u64.to_le_bytes());
    w.map_update_elem(fd, &k(2), &copies, BPF_ANY).unwrap();
    assert_eq!(w.map_lookup_elem(fd, &k(2)).unwrap(), copies);
    assert_eq!(w.map_lookup_elem(fd, &k(0)).unwrap(), vec![0; 16]);
}

#[test]
fn meta_holds_no_reference_to_the_template() {
    let w = world();
    let tpl = array(&w, 1, 0);
    let tpl_id = id_of(&w, tpl);
    let outer = w
        .map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 1).inner(tpl))
        .unwrap();
    w.close(tpl).unwrap();
    assert_eq!(
        errno(w.map_get_fd_by_id(tpl_id)),
        ENOENT,
        "the template is gone once its fd is closed"
    );
    let inner = array(&w, 1, 0);
    w.map_update_elem(outer, &k(0), &inner.to_le_bytes(), BPF_ANY)
        .expect("the meta still works");
}

#[test]
fn fds_are_lowest_free_from_three_and_std_fds_are_not_maps() {
    let w = world();
    let a = array(&w, 1, 0);
    let b = array(&w, 1, 0);
    assert_eq!((a, b), (3, 4));
    w.close(a).unwrap();
    assert_eq!(array(&w, 1, 0), 3, "the lowest free fd is reused");
    for fd in 0..3 {
        assert_eq!(errno(w.map_lookup_elem(fd, &k(0))), EINVAL, "fd {fd}");
        assert_eq!(errno(w.close(fd)), EINVAL, "fd {fd}");
    }
    assert_eq!(errno(w.map_lookup_elem(42, &k(0))), EBADF);
    assert_eq!(errno(w.close(42)), EBADF);
    assert_eq!(errno(w.map_lookup_elem(-1, &k(0))), EBADF);
}

#[test]
fn array_errnos() {
    let w = world();
    let fd = array(&w, 3, 0);
    assert_eq!(errno(w.map_update_elem(fd, &k(0), &k(1), 3)), EINVAL);
    assert_eq!(errno(w.map_update_elem(fd, &k(3), &k(1), BPF_ANY)), E2BIG);
    assert_eq!(
        errno(w.map_update_elem(fd, &k(0), &k(1), BPF_NOEXIST)),
        EEXIST
    );
    w.map_update_elem(fd, &k(2), &k(7), BPF_EXIST).unwrap();
    assert_eq!(w.map_lookup_elem(fd, &k(2)).unwrap(), k(7));
    assert_eq!(
        w.map_lookup_elem(fd, &k(0)).unwrap(),
        k(0),
        "array elements always exist, zeroed"
    );
    assert_eq!(errno(w.map_lookup_elem(fd, &k(3))), ENOENT);
    assert_eq!(errno(w.map_delete_elem(fd, &k(0))), EINVAL);
    assert_eq!(errno(w.map_lookup_and_delete_elem(fd, &k(0))), ENOTSUPP);
    assert_eq!(errno(w.map_lookup_elem(fd, &[0, 0])), EINVAL, "short key");
    let keys: Vec<Vec<u8>> = std::iter::successors(w.map_get_next_key(fd, None).ok(), |key| {
        w.map_get_next_key(fd, Some(key)).ok()
    })
    .collect();
    assert_eq!(keys, vec![k(0), k(1), k(2)]);
    assert_eq!(
        w.map_get_next_key(fd, Some(&k(9))).unwrap(),
        k(0),
        "an unknown key restarts"
    );
    assert_eq!(
        w.map_delete_batch(fd, &[k(0)])
            .map_err(|(n, e)| (n, e.errno())),
        Err((0, Some(ENOTSUPP)))
    );
}

#[test]
fn hash_errnos_and_full_maps() {
    for flags in [0, BPF_F_NO_PREALLOC] {
        let w = world();
        let fd = w
            .map_create(&MapAttr::new(MapType::Hash, 4, 8, 2).flags(flags))
            .unwrap();
        let v = |x: u64| x.to_le_bytes().to_vec();
        assert_eq!(errno(w.map_update_elem(fd, &k(1), &v(1), 3)), EINVAL);
        assert_eq!(
            errno(w.map_update_elem(fd, &k(1), &v(1), BPF_EXIST)),
            ENOENT
        );
        w.map_update_elem(fd, &k(1), &v(10), BPF_NOEXIST).unwrap();
        assert_eq!(
            errno(w.map_update_elem(fd, &k(1), &v(1), BPF_NOEXIST)),
            EEXIST
        );
        w.map_update_elem(fd, &k(1), &v(11), BPF_EXIST).unwrap();
        w.map_update_elem(fd, &k(2), &v(20), BPF_ANY).unwrap();
        assert_eq!(
            errno(w.map_update_elem(fd, &k(3), &v(30), BPF_ANY)),
            E2BIG,
            "flags {flags}"
        );
        w.map_update_elem(fd, &k(2), &v(21), BPF_ANY)
            .expect("replacing in a full map is fine");
        assert_eq!(w.map_lookup_elem(fd, &k(1)).unwrap(), v(11));
        assert_eq!(w.map_lookup_and_delete_elem(fd, &k(2)).unwrap(), v(21));
        assert_eq!(errno(w.map_lookup_elem(fd, &k(2))), ENOENT);
        assert_eq!(errno(w.map_delete_elem(fd, &k(2))), ENOENT);
        w.map_update_elem(fd, &k(3), &v(30), BPF_ANY)
            .expect("room again after a delete");
        let mut keys = vec![];
        let mut key = None;
        while let Ok(next) = w.map_get_next_key(fd, key.as_deref()) {
            keys.push(u32::from_le_bytes(next.clone().try_into().unwrap()));
            key = Some(next);
        }
        keys.sort();
        assert_eq!(keys, vec![1, 3]);
        w.check_conservation().unwrap();
        w.close(fd).unwrap();
        w.audit_quiescent().unwrap();
    }
}

#[test]
fn array_of_maps_update_lookup_delete_errnos() {
    let w = world();
    let tpl = array(&w, 1, 0);
    let outer = w
        .map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 2).inner(tpl))
        .unwrap();
    let inner = array(&w, 1, 0);
    let wrong_size = array(&w, 2, 0);
    let hash = w.map_create(&MapAttr::new(MapType::Hash, 4, 4, 1)).unwrap();
    let fdv = |fd: Fd| fd.to_le_bytes().to_vec();
    assert_eq!(
        errno(w.map_update_elem(outer, &k(0), &fdv(inner), BPF_EXIST)),
        EINVAL
    );
    assert_eq!(
        errno(w.map_update_elem(outer, &k(2), &fdv(inner), BPF_ANY)),
        E2BIG
    );
    assert_eq!(
        errno(w.map_update_elem(outer, &k(0), &fdv(99), BPF_ANY)),
        EBADF
    );
    assert_eq!(
        errno(w.map_update_elem(outer, &k(0), &fdv(2), BPF_ANY)),
        EINVAL
    );
    assert_eq!(
        errno(w.map_update_elem(outer, &k(0), &fdv(wrong_size), BPF_ANY)),
        EINVAL,
        "diff_size"
    );
    assert_eq!(
        errno(w.map_update_elem(outer, &k(0), &fdv(hash), BPF_ANY)),
        EINVAL
    );
    assert_eq!(errno(w.map_lookup_elem(outer, &k(0))), ENOENT, "empty slot");
    assert_eq!(
        errno(w.map_lookup_elem(outer, &k(5))),
        ENOENT,
        "out of range"
    );
    w.map_update_elem(outer, &k(0), &fdv(inner), BPF_ANY)
        .unwrap();
    assert_eq!(
        w.map_lookup_elem(outer, &k(0)).unwrap(),
        id_of(&w, inner).to_le_bytes().to_vec(),
        "lookup gives the id"
    );
    assert_eq!(errno(w.map_delete_elem(outer, &k(2))), E2BIG);
    assert_eq!(errno(w.map_delete_elem(outer, &k(1))), ENOENT);
    w.map_delete_elem(outer, &k(0)).unwrap();
    assert_eq!(errno(w.map_lookup_elem(outer, &k(0))), ENOENT);
    assert_eq!(errno(w.map_lookup_and_delete_elem(outer, &k(0))), ENOTSUPP);
    for fd in w.open_fds() {
        w.close(fd).unwrap();
    }
    w.audit_quiescent().unwrap();
}

#[test]
fn hash_of_maps_update_tests_on_prealloc_and_no_prealloc() {
    for flags in [0, BPF_F_NO_PREALLOC] {
        let w = world();
        let tpl = array(&w, 1, 0);
        let outer = w
            .map_create(
                &MapAttr::new(MapType::HashOfMaps, 4, 4, 2)
                    .flags(flags)
                    .inner(tpl),
            )
            .unwrap();
        let (a, b, c) = (array(&w, 1, 0), array(&w, 1, 0), array(&w, 1, 0));
        let fdv = |fd: Fd| fd.to_le_bytes().to_vec();
        assert_eq!(errno(w.map_update_elem(outer, &k(0), &fdv(a), 3)), EINVAL);
        assert_eq!(
            errno(w.map_update_elem(outer, &k(0), &fdv(a), BPF_EXIST)),
            ENOENT
        );
        w.map_update_elem(outer, &k(0), &fdv(a), BPF_NOEXIST)
            .unwrap();
        assert_eq!(
            errno(w.map_update_elem(outer, &k(0), &fdv(b), BPF_NOEXIST)),
            EEXIST
        );
        w.map_update_elem(outer, &k(0), &fdv(b), BPF_EXIST).unwrap();
        assert_eq!(
            w.map_lookup_elem(outer, &k(0)).unwrap(),
            id_of(&w, b).to_le_bytes().to_vec()
        );
        w.map_update_elem(outer, &k(1), &fdv(a), BPF_ANY).unwrap();
        assert_eq!(
            errno(w.map_update_elem(outer, &k(2), &fdv(c), BPF_ANY)),
            E2BIG,
            "flags {flags}"
        );
        let c_ref = w
            .live_maps()
            .into_iter()
            .find(|m| m.id == id_of(&w, c))
            .unwrap()
            .refcnt;
        assert_eq!(
            c_ref, 1,
            "a failed update drops the new map's reference at once"
        );
        assert_eq!(errno(w.map_lookup_and_delete_elem(outer, &k(0))), ENOTSUPP);
        w.map_delete_elem(outer, &k(0)).unwrap();
        assert_eq!(errno(w.map_delete_elem(outer, &k(0))), ENOENT);
        w.check_conservation().unwrap();
        for fd in w.open_fds() {
            w.close(fd).unwrap();
        }
        w.audit_quiescent().unwrap();
    }
}

#[test]
fn id_is_released_first_and_get_fd_by_id_fails_at_once() {
    let w = world();
    let tpl = array(&w, 1, 0);
    let outer = w
        .map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 1).inner(tpl))
        .unwrap();
    let inner = array(&w, 1, 0);
    let inner_id = id_of(&w, inner);
    w.map_update_elem(outer, &k(0), &inner.to_le_bytes(), BPF_ANY)
        .unwrap();
    w.close(inner).unwrap();
    let again = w
        .map_get_fd_by_id(inner_id)
        .expect("still held by the outer map");
    w.close(again).unwrap();
    // A reader (task 1) holds the inner map; the outer map's delete (the syscall without its
    // trailing grace-period wait) releases the id at once and defers the free.
    let outer_handle = w.map_handle(outer).unwrap();
    let outer_map = w.map(outer_handle).unwrap();
    Std::set_current_task(1);
    w.rcu_read_lock(Flavor::Rcu).unwrap();
    let seen = w
        .prog_lookup(outer_handle, &k(0))
        .unwrap()
        .expect("slot filled");
    Std::set_current_task(0);
    outer_map.ops.delete(&w, &outer_map, &k(0)).unwrap();
    assert_eq!(
        errno(w.map_get_fd_by_id(inner_id)),
        ENOENT,
        "the id goes first"
    );
    let inner_handle = w.resolve_map_ptr(seen).unwrap();
    w.poll().unwrap();
    assert!(w.frees().is_empty(), "not freed while the reader is inside");
    w.store(inner_handle, maps::ARRAY_VALUE_OFFSET, 4, 1)
        .expect("the reader may still write");
    Std::set_current_task(1);
    w.rcu_read_unlock(Flavor::Rcu).unwrap();
    Std::set_current_task(0);
    w.poll().unwrap();
    assert_eq!(
        w.frees().iter().map(|f| f.handle).collect::<Vec<_>>(),
        vec![inner_handle]
    );
    assert!(matches!(
        w.store(inner_handle, maps::ARRAY_VALUE_OFFSET, 4, 1),
        Err(Error::Fault(Fault::UseAfterFree {
            freed_at: Some(_),
            ..
        }))
    ));
}

#[test]
fn access_flags_belong_to_the_fd_not_the_map() {
    let w = world();
    let ro = array(&w, 2, BPF_F_RDONLY);
    assert_eq!(
        w.map_info(ro).unwrap().map_flags,
        0,
        "BPF_F_RDONLY is not kept in map_flags"
    );
    assert_eq!(w.map_lookup_elem(ro, &k(0)).unwrap(), vec![0; 4]);
    assert_eq!(errno(w.map_update_elem(ro, &k(0), &[1; 4], 0)), EPERM);
    assert_eq!(
        errno(w.map_update_elem(ro, &k(0), &[1; 4], BPF_F_LOCK)),
        EPERM,
        "the fd's mode is checked before BPF_F_LOCK"
    );
    // An fd opened by id reads and writes whatever the creating fd's mode.
    let rw = w.map_get_fd_by_id(id_of(&w, ro)).unwrap();
    w.map_update_elem(rw, &k(0), &[1; 4], 0).unwrap();
    assert_eq!(w.map_lookup_elem(ro, &k(0)).unwrap(), vec![1; 4]);

    let wo = array(&w, 2, BPF_F_WRONLY);
    w.map_update_elem(wo, &k(1), &[2; 4], 0).unwrap();
    assert_eq!(errno(w.map_lookup_elem(wo, &k(1))), EPERM);
    assert_eq!(errno(w.map_get_next_key(wo, None)), EPERM);
    assert!(w.map_info(wo).is_ok(), "map_info needs neither mode");
}

#[test]
fn map_info_of_a_closed_fd_is_ebadfd() {
    let w = world();
    let fd = array(&w, 1, 0);
    w.close(fd).unwrap();
    assert_eq!(errno(w.map_info(fd)), EBADFD);
    assert_eq!(errno(w.map_lookup_elem(fd, &k(0))), EBADF);
}

/// Batch ops on outer maps arrived in 5.19 (9263dddc7b6f): a world modelling an earlier
/// release refuses them with `-ENOTSUPP`, and still batches plain maps.
#[test]
fn before_5_19_batch_ops_on_outer_maps_are_not_supported() {
    let lacks = crate::history::Lacks::NONE.with(Feature::BatchOnMapInMap);
    let w = World::<Std>::new(
        Mutants::NONE,
        WorldConfig {
            lacks,
            ..WorldConfig::default()
        },
    );
    let template = array(&w, 2, 0);
    let outer = w
        .map_create(&MapAttr::new(MapType::HashOfMaps, 4, 4, 4).inner(template))
        .unwrap();
    let inner = array(&w, 2, 0);
    assert_eq!(errno(w.map_lookup_batch(outer, None, 4)), ENOTSUPP);
    assert_eq!(
        errno(w.map_lookup_and_delete_batch(outer, None, 4)),
        ENOTSUPP
    );
    let value = inner.to_le_bytes().to_vec();
    let (applied, e) = w.map_update_batch(outer, &[k(1)], &[value], 0).unwrap_err();
    assert_eq!((applied, e), (0, Error::from(ENOTSUPP)));
    let (applied, e) = w.map_delete_batch(outer, &[k(1)]).unwrap_err();
    assert_eq!((applied, e), (0, Error::from(ENOTSUPP)));
    let hash = w.map_create(&MapAttr::new(MapType::Hash, 4, 4, 4)).unwrap();
    assert!(
        w.map_lookup_batch(hash, None, 4).is_ok(),
        "plain maps still batch"
    );
    // Today's world batches the outer map.
    let today = world();
    let template = array(&today, 2, 0);
    let outer = today
        .map_create(&MapAttr::new(MapType::HashOfMaps, 4, 4, 4).inner(template))
        .unwrap();
    assert!(today.map_lookup_batch(outer, None, 4).is_ok());
}
