//! The reference model's own promises (module doc of `crate::model`) that the errno table, which
//! runs on every implementation, cannot pin: numbering, the model's hash order and bucket
//! layout, the audit.

use super::ops::{CanonId, Outcome};
use super::*;
use crate::uapi::{BPF_F_INNER_MAP, BPF_NOEXIST};

fn array(max: u32) -> MapAttr {
    MapAttr::new(MapType::Array, 4, 4, max)
}

fn key(i: u32) -> [u8; 4] {
    i.to_ne_bytes()
}

#[test]
fn fds_are_the_lowest_free_from_three() {
    let mut m = RefModel::new();
    let fds: Vec<Fd> = (0..3).map(|_| m.map_create(&array(1)).unwrap()).collect();
    assert_eq!(fds, [3, 4, 5]);
    m.close(4).unwrap();
    assert_eq!(
        m.map_create(&array(1)).unwrap(),
        4,
        "the freed fd 4 is the lowest free"
    );
    assert_eq!(m.map_create(&array(1)).unwrap(), 6);
}

#[test]
fn increasing_fds_are_never_reused() {
    let mut m = RefModel::with_config(ModelConfig {
        fd_policy: FdPolicy::Increasing { first: 40 },
        ..ModelConfig::default()
    });
    let a = m.map_create(&array(1)).unwrap();
    m.close(a).unwrap();
    assert_eq!((a, m.map_create(&array(1)).unwrap()), (40, 41));
}

#[test]
fn standard_streams_are_not_maps_and_cannot_be_closed() {
    let mut m = RefModel::new();
    for fd in 0..3 {
        assert_eq!(m.close(fd), Err(Error::Errno(Errno::EINVAL)), "fd {fd}");
        assert_eq!(m.map_info(fd), Err(Error::Errno(Errno::EINVAL)), "fd {fd}");
    }
    assert_eq!(m.close(3), Err(Error::Errno(Errno::EBADF)));
}

#[test]
fn ids_wrap_cyclically_and_skip_live_ones() {
    let mut m = RefModel::with_config(ModelConfig {
        first_id: ID_MAX,
        ..ModelConfig::default()
    });
    let a = m.map_create(&array(1)).unwrap();
    let b = m.map_create(&array(1)).unwrap();
    assert_eq!(
        (m.map_info(a).unwrap().id, m.map_info(b).unwrap().id),
        (ID_MAX, 1)
    );
    // Steps that only ever reach ids 1 and ID_MAX: both live, so the id space is exhausted.
    let mut m = RefModel::with_config(ModelConfig {
        first_id: 1,
        id_step: ID_MAX - 1,
        ..ModelConfig::default()
    });
    m.map_create(&array(1)).unwrap();
    m.map_create(&array(1)).unwrap();
    assert_eq!(m.map_create(&array(1)), Err(Error::Errno(Errno::ENOSPC)));
}

#[test]
fn ids_are_not_reused_after_free_until_they_wrap() {
    let mut m = RefModel::new();
    let a = m.map_create(&array(1)).unwrap();
    let id = m.map_info(a).unwrap().id;
    m.close(a).unwrap();
    let b = m.map_create(&array(1)).unwrap();
    assert_ne!(m.map_info(b).unwrap().id, id, "cyclic allocation moves on");
    assert_eq!(m.freed_ids(), [id]);
}

/// Two keys in the same model bucket of a hash with `max_entries`.
fn colliding_keys(max_entries: u32) -> (Vec<u8>, Vec<u8>) {
    let shape = Shape {
        map_type: MapType::Hash,
        key_size: 4,
        value_size: 4,
        max_entries,
        map_flags: 0,
    };
    let first = key(0).to_vec();
    let other = (1..1000u32)
        .map(|i| key(i).to_vec())
        .find(|k| shape.bucket_of(k) == shape.bucket_of(&first))
        .unwrap();
    (first, other)
}

#[test]
fn a_bucket_that_does_not_fit_the_batch_is_enospc() {
    let mut m = RefModel::new();
    let h = m.map_create(&MapAttr::new(MapType::Hash, 4, 4, 4)).unwrap();
    let (a, b) = colliding_keys(4);
    m.map_update_elem(h, &a, &[1; 4], BPF_ANY).unwrap();
    m.map_update_elem(h, &b, &[2; 4], BPF_ANY).unwrap();
    assert_eq!(
        m.map_lookup_batch(h, None, 1),
        Err(Error::Errno(Errno::ENOSPC))
    );
    let out = m.map_lookup_batch(h, None, 2).unwrap();
    assert_eq!(out.keys.len(), 2, "the whole bucket comes in one batch");
    assert!(out.done, "nothing follows the only bucket");
    assert_eq!(out.next, 4, "the end token is n_buckets");
}

#[test]
fn batch_tokens_are_bucket_indices_and_a_full_batch_stops_before_the_next_bucket() {
    let mut m = RefModel::new();
    let h = m.map_create(&MapAttr::new(MapType::Hash, 4, 4, 8)).unwrap();
    let shape = Shape {
        map_type: MapType::Hash,
        key_size: 4,
        value_size: 4,
        max_entries: 8,
        map_flags: 0,
    };
    for i in 0..6 {
        m.map_update_elem(h, &key(i), &[i as u8; 4], BPF_ANY)
            .unwrap();
    }
    let mut buckets: Vec<u32> = (0..6).map(|i| shape.bucket_of(&key(i))).collect();
    buckets.sort();
    let lowest = buckets[0];
    let in_lowest = buckets.iter().filter(|b| **b == lowest).count() as u32;
    let second = *buckets
        .iter()
        .find(|b| **b > lowest)
        .expect("six keys in one bucket");
    let first = m.map_lookup_batch(h, None, in_lowest).unwrap();
    assert_eq!(
        first.keys.len() as u32,
        in_lowest,
        "exactly the lowest bucket fits"
    );
    assert!(first.keys.iter().all(|k| shape.bucket_of(k) == lowest));
    assert_eq!(
        (first.next, first.done),
        (second, false),
        "the token is the next non-empty bucket"
    );
    let rest = m.map_lookup_batch(h, Some(first.next), 6).unwrap();
    assert_eq!(rest.keys.len() as u32, 6 - in_lowest);
    assert_eq!(
        (rest.next, rest.done),
        (8, true),
        "the end token is n_buckets"
    );
}

#[test]
fn hash_get_next_key_of_a_missing_key_restarts_from_the_first() {
    let mut m = RefModel::new();
    let h = m.map_create(&MapAttr::new(MapType::Hash, 4, 4, 4)).unwrap();
    for i in 0..3 {
        m.map_update_elem(h, &key(i), &[0; 4], BPF_ANY).unwrap();
    }
    let first = m.map_get_next_key(h, None).unwrap();
    assert_eq!(m.map_get_next_key(h, Some(&key(99))).unwrap(), first);
}

#[test]
fn array_of_maps_lookup_batch_skips_empty_slots() {
    let mut m = RefModel::new();
    let inner = m.map_create(&array(1)).unwrap();
    let outer = m
        .map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 4).inner(inner))
        .unwrap();
    m.map_update_elem(outer, &key(2), &inner.to_ne_bytes(), BPF_ANY)
        .unwrap();
    let out = m.map_lookup_batch(outer, None, 4).unwrap();
    assert_eq!(out.keys, vec![key(2).to_vec()]);
    assert!(out.done);
}

#[test]
fn a_zero_count_batch_returns_nothing_and_is_not_the_end() {
    let mut m = RefModel::new();
    let h = m.map_create(&MapAttr::new(MapType::Hash, 4, 4, 4)).unwrap();
    m.map_update_elem(h, &key(0), &[0; 4], BPF_ANY).unwrap();
    let out = m.map_lookup_batch(h, None, 0).unwrap();
    assert!(out.keys.is_empty() && !out.done);
}

#[test]
fn percpu_values_span_every_possible_cpu_with_zero_padding() {
    let mut m = RefModel::with_config(ModelConfig {
        possible_cpus: 2,
        ..ModelConfig::default()
    });
    let a = m
        .map_create(&MapAttr::new(MapType::PercpuArray, 4, 4, 1))
        .unwrap();
    assert_eq!(m.map_lookup_elem(a, &key(0)).unwrap(), vec![0; 16]);
    assert_eq!(
        m.map_update_elem(a, &key(0), &[1; 8], BPF_ANY),
        Err(Error::Errno(Errno::EINVAL))
    );
    m.map_update_elem(a, &key(0), &[7; 16], BPF_ANY).unwrap();
    assert_eq!(
        m.map_lookup_elem(a, &key(0)).unwrap(),
        [7, 7, 7, 7, 0, 0, 0, 0, 7, 7, 7, 7, 0, 0, 0, 0]
    );
}

#[test]
fn audit_counts_fds_and_outer_slots() {
    let mut m = RefModel::new();
    let inner = m.map_create(&array(1).flags(BPF_F_INNER_MAP)).unwrap();
    let aom = m
        .map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 2).inner(inner))
        .unwrap();
    let hom = m
        .map_create(&MapAttr::new(MapType::HashOfMaps, 4, 4, 2).inner(inner))
        .unwrap();
    for outer in [aom, hom] {
        m.map_update_elem(outer, &key(0), &inner.to_ne_bytes(), BPF_ANY)
            .unwrap();
        m.map_update_elem(outer, &key(1), &inner.to_ne_bytes(), BPF_ANY)
            .unwrap();
    }
    m.close(inner).unwrap();
    let audit = m.audit();
    let held = audit
        .iter()
        .find(|a| a.fds.is_empty())
        .expect("the inner map lives on");
    assert_eq!((held.refcnt, held.uref, held.held_by.len()), (4, 0, 4));
    m.check_refcounts().unwrap();
    m.map_delete_elem(hom, &key(1)).unwrap();
    m.close(aom).unwrap();
    assert_eq!(
        m.audit()
            .iter()
            .find(|a| a.fds.is_empty())
            .map(|a| a.refcnt),
        Some(1)
    );
    m.close(hom).unwrap();
    m.check_quiescent().unwrap();
    assert_eq!(m.freed_ids().len(), 3);
}

#[test]
fn check_quiescent_names_open_fds() {
    let mut m = RefModel::new();
    m.map_create(&array(1)).unwrap();
    let err = m.check_quiescent().unwrap_err();
    assert!(err.to_string().contains("not quiescent"), "{err}");
    m.close_all().unwrap();
    m.check_quiescent().unwrap();
}

#[test]
fn a_clone_is_an_independent_state() {
    let mut m = RefModel::new();
    let h = m.map_create(&MapAttr::new(MapType::Hash, 4, 4, 2)).unwrap();
    let snapshot = m.clone();
    m.map_update_elem(h, &key(1), &[1; 4], BPF_NOEXIST).unwrap();
    assert_ne!(m, snapshot);
    assert_eq!(
        snapshot.clone().map_lookup_elem(h, &key(1)),
        Err(Error::Errno(Errno::ENOENT))
    );
}

#[test]
fn hash_next_key_outcomes_agree_whatever_the_order() {
    let some = |k: u8| Outcome::NextKey {
        ordered: false,
        result: Ok(vec![k]),
    };
    let end = Outcome::NextKey {
        ordered: false,
        result: Err(Error::Errno(Errno::ENOENT)),
    };
    let bad = Outcome::NextKey {
        ordered: false,
        result: Err(Error::Errno(Errno::EBADF)),
    };
    assert!(
        some(1).agrees(&some(2)) && some(1).agrees(&end),
        "hash order is unspecified"
    );
    assert!(
        !some(1).agrees(&bad) && !bad.agrees(&end),
        "other errors still count"
    );
    let ordered = |r| Outcome::NextKey {
        ordered: true,
        result: r,
    };
    assert!(
        !ordered(Ok(vec![1])).agrees(&ordered(Ok(vec![2]))),
        "array order is exact"
    );
    let broken = Outcome::Broken("x".into());
    assert!(!broken.agrees(&broken), "findings never agree");
    assert!(Outcome::Value(Ok(ops::Value::Map(CanonId::Map(1))))
        .agrees(&Outcome::Value(Ok(ops::Value::Map(CanonId::Map(1))))));
}
