//! The linearizability oracle on hand-written histories: it must flag a present key read as
//! missing and an impossible errno, and must accept §7's allowed observations (a read that
//! overlaps the write, a hash-of-maps reader seeing another inner map), and must flag an id that
//! names no map on either kind.

use mimic_core::uapi::{MapAttr, MapType, BPF_ANY, BPF_EXIST};
use mimic_sim::sim::oracle::{check_outer, AttrKey};
use mimic_sim::sim::trace::{HistEvent, HistOp};

fn attrs(outer: MapType) -> (MapAttr, MapAttr) {
    (
        MapAttr::new(outer, 4, 4, 4),
        MapAttr::new(MapType::Array, 4, 4, 1),
    )
}

fn update(
    key: u32,
    inner: u32,
    flags: u64,
    result: Result<(), &str>,
    inv: u64,
    resp: u64,
) -> HistEvent {
    HistEvent {
        task: 1,
        outer: "outer".into(),
        op: HistOp::Update {
            key,
            inner: (inner, 0),
            flags,
            attr: AttrKey::of(&MapAttr::new(MapType::Array, 4, 4, 1)),
        },
        result: result.map(|_| None).map_err(str::to_string),
        inv,
        resp,
    }
}

fn read(key: u32, seen: Option<u32>, inv: u64, resp: u64) -> HistEvent {
    HistEvent {
        task: 2,
        outer: "outer".into(),
        op: HistOp::Read { key, program: true },
        result: Ok(seen.map(|i| (i, 0))),
        inv,
        resp,
    }
}

fn check(outer: MapType, events: &[HistEvent]) -> Result<(), String> {
    let (a, t) = attrs(outer);
    let refs: Vec<&HistEvent> = events.iter().collect();
    check_outer("outer", a, t, &refs).map_err(|v| v.finding.name().to_string())
}

#[test]
fn a_present_key_read_as_missing_after_its_insert_is_a_lost_key() {
    let h = [update(1, 10, BPF_ANY, Ok(()), 1, 2), read(1, None, 3, 4)];
    assert_eq!(check(MapType::HashOfMaps, &h), Err("lost_key".into()));
}

#[test]
fn a_read_overlapping_the_insert_may_see_the_key_missing() {
    let h = [update(1, 10, BPF_ANY, Ok(()), 1, 4), read(1, None, 2, 3)];
    assert_eq!(check(MapType::HashOfMaps, &h), Ok(()));
}

#[test]
fn an_exist_update_of_a_missing_key_must_fail_enoent() {
    let h = [update(1, 10, BPF_EXIST, Ok(()), 1, 2)];
    assert_eq!(
        check(MapType::HashOfMaps, &h),
        Err("linearizability".into())
    );
    let h = [update(1, 10, BPF_EXIST, Err("ENOENT"), 1, 2)];
    assert_eq!(check(MapType::HashOfMaps, &h), Ok(()));
}

#[test]
fn a_hash_reader_may_see_another_inner_map_but_an_array_reader_may_not() {
    // Element reuse (§7): the hash-of-maps reader saw map 99, never stored under key 1.
    let h = [
        update(1, 10, BPF_ANY, Ok(()), 1, 2),
        read(1, Some(99), 3, 4),
    ];
    assert_eq!(check(MapType::HashOfMaps, &h), Ok(()));
    assert_eq!(
        check(MapType::ArrayOfMaps, &h),
        Err("linearizability".into())
    );
    // A replaced inner map may still be seen by a read that overlaps the replace.
    let h = [
        update(1, 10, BPF_ANY, Ok(()), 1, 2),
        update(1, 11, BPF_ANY, Ok(()), 3, 6),
        read(1, Some(10), 4, 5),
    ];
    assert_eq!(check(MapType::ArrayOfMaps, &h), Ok(()));
}

#[test]
fn a_read_of_an_id_that_names_no_map_is_wrong_on_either_outer_kind() {
    use mimic_sim::sim::trace::UNKNOWN_ID;
    // User space read key 1 and got an id the run never created (a wrong id from the syscall).
    let mut h = [
        update(1, 10, BPF_ANY, Ok(()), 1, 2),
        read(1, Some(10), 3, 4),
    ];
    h[1].result = Ok(Some(UNKNOWN_ID));
    h[1].op = HistOp::Read {
        key: 1,
        program: false,
    };
    for outer in [MapType::HashOfMaps, MapType::ArrayOfMaps] {
        assert_eq!(check(outer, &h), Err("linearizability".into()), "{outer:?}");
    }
}
