//! The kernel selftest scenarios of semantics.md §9 that need no programs, written against
//! [`BpfSys`] so the reference model, the core's world and the kernel backend all run them.
//! Each returns `Err` with what went wrong and where; none panics.
//!
//! * [`test_maps_map_in_map`]: a HASH (int, int, 2) template; storing into array-of-maps and
//!   hash-of-maps succeeds.
//! * [`map_in_map_batch_ops`]: 10 inner maps each holding its own id at key 0, stored by an
//!   update batch, read back by lookup batches of 5 then 10, ids resolved, and a lookup-and-delete
//!   batch on the hash variant.
//! * [`diff_size`]: a 2-entry array into a 1-entry template without `BPF_F_INNER_MAP` fails;
//!   with the flag, inner arrays of 3, 3 and 5 entries are accepted.
//! * [`outer_hash_updates`]: add (NOEXIST), overwrite (EXIST), delete on prealloc and
//!   no-prealloc outer hashes; lookup-and-delete is `-ENOTSUPP`.
//! * [`leak_after_swaps`]: outer array, outer hash and a dynamic outer array, inner maps swapped 5
//!   times; once everything is closed no inner id resolves.
//! * [`inner_array_through_outer_id`]: `HASH_OF_MAPS[2]` → `ARRAY(5)`; the inner map found through
//!   the id the outer lookup returns is the one written.

use crate::errno::Errno;
use crate::fault::Error;
use crate::uapi::{
    BpfSys, Fd, MapAttr, MapId, MapType, BPF_ANY, BPF_EXIST, BPF_F_INNER_MAP, BPF_F_NO_PREALLOC,
    BPF_NOEXIST,
};
use std::collections::BTreeSet;

/// What a scenario returns.
pub type Scenario = Result<(), String>;

/// A scenario runnable on `S`.
pub type ScenarioFn<S> = fn(&mut S) -> Scenario;

/// Key and value bytes of a batch entry.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Every scenario, by name.
pub fn all<S: BpfSys>() -> Vec<(&'static str, ScenarioFn<S>)> {
    vec![
        ("test_maps_map_in_map", test_maps_map_in_map::<S>),
        ("map_in_map_batch_ops(array, array_of_maps)", |s| {
            map_in_map_batch_ops(s, MapType::Array, MapType::ArrayOfMaps)
        }),
        ("map_in_map_batch_ops(array, hash_of_maps)", |s| {
            map_in_map_batch_ops(s, MapType::Array, MapType::HashOfMaps)
        }),
        ("map_in_map_batch_ops(hash, array_of_maps)", |s| {
            map_in_map_batch_ops(s, MapType::Hash, MapType::ArrayOfMaps)
        }),
        ("map_in_map_batch_ops(hash, hash_of_maps)", |s| {
            map_in_map_batch_ops(s, MapType::Hash, MapType::HashOfMaps)
        }),
        ("diff_size", diff_size::<S>),
        ("outer_hash_updates(prealloc)", |s| outer_hash_updates(s, 0)),
        ("outer_hash_updates(no_prealloc)", |s| {
            outer_hash_updates(s, BPF_F_NO_PREALLOC)
        }),
        ("leak_after_swaps", leak_after_swaps::<S>),
        (
            "inner_array_through_outer_id",
            inner_array_through_outer_id::<S>,
        ),
    ]
}

/// The number of inner maps `map_in_map_batch_ops` uses.
pub const BATCH_INNER_MAPS: u32 = 10;

/// How many times `leak_after_swaps` replaces each inner map (the selftest's count).
pub const SWAPS: u32 = 5;

fn ctx<T>(what: &str, result: Result<T, Error>) -> Result<T, String> {
    result.map_err(|e| format!("{what}: {e}"))
}

fn expect_errno<T: std::fmt::Debug>(what: &str, result: Result<T, Error>, want: Errno) -> Scenario {
    match result {
        Err(e) if e.errno() == Some(want) => Ok(()),
        other => Err(format!("{what}: expected {want}, got {other:?}")),
    }
}

fn key(index: u32) -> Vec<u8> {
    index.to_ne_bytes().to_vec()
}

fn fd_value(fd: Fd) -> Vec<u8> {
    fd.to_ne_bytes().to_vec()
}

fn id_of_value(what: &str, value: &[u8]) -> Result<MapId, String> {
    let bytes: [u8; 4] = value
        .try_into()
        .map_err(|_| format!("{what}: id of {} bytes", value.len()))?;
    Ok(MapId::from_ne_bytes(bytes))
}

fn id_of(sys: &mut impl BpfSys, fd: Fd) -> Result<MapId, String> {
    Ok(ctx("map_info", sys.map_info(fd))?.id)
}

/// Closes `fds`, then checks that none of `ids` resolves any more.
fn close_and_check_gone(sys: &mut impl BpfSys, fds: &[Fd], ids: &[MapId]) -> Scenario {
    for fd in fds {
        ctx(&format!("close fd {fd}"), sys.close(*fd))?;
    }
    for id in ids {
        match sys.map_get_fd_by_id(*id) {
            Err(e) if e.errno() == Some(Errno::ENOENT) => {}
            Ok(fd) => {
                let _ = sys.close(fd);
                return Err(format!(
                    "map id {id} still resolves after everything was closed (leak)"
                ));
            }
            Err(e) => return Err(format!("get_fd_by_id({id}): expected ENOENT, got {e}")),
        }
    }
    Ok(())
}

/// `test_maps` map-in-map.
pub fn test_maps_map_in_map<S: BpfSys>(sys: &mut S) -> Scenario {
    let template = ctx(
        "create HASH(4,4,2)",
        sys.map_create(&MapAttr::new(MapType::Hash, 4, 4, 2)),
    )?;
    let aom = ctx(
        "create ARRAY_OF_MAPS",
        sys.map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 1).inner(template)),
    )?;
    let hom = ctx(
        "create HASH_OF_MAPS",
        sys.map_create(&MapAttr::new(MapType::HashOfMaps, 4, 4, 1).inner(template)),
    )?;
    let inner_id = id_of(sys, template)?;
    ctx(
        "store into ARRAY_OF_MAPS",
        sys.map_update_elem(aom, &key(0), &fd_value(template), BPF_ANY),
    )?;
    ctx(
        "store into HASH_OF_MAPS",
        sys.map_update_elem(hom, &key(0), &fd_value(template), BPF_NOEXIST),
    )?;
    for (name, fd) in [("ARRAY_OF_MAPS", aom), ("HASH_OF_MAPS", hom)] {
        let got = id_of_value(
            name,
            &ctx(
                &format!("lookup {name}[0]"),
                sys.map_lookup_elem(fd, &key(0)),
            )?,
        )?;
        if got != inner_id {
            return Err(format!("{name}[0] holds id {got}, stored {inner_id}"));
        }
    }
    let ids = [inner_id, id_of(sys, aom)?, id_of(sys, hom)?];
    close_and_check_gone(sys, &[template, aom, hom], &ids)
}

/// Reads the whole map with lookup batches of `step`, doubling on `-ENOSPC`.
fn lookup_all(sys: &mut impl BpfSys, fd: Fd, step: u32, delete: bool) -> Result<Entries, String> {
    let mut entries = Vec::new();
    let mut in_batch = None;
    let mut count = step;
    // Each call returns at least one entry or the end, so the map's size bounds the calls.
    for _ in 0..=4 * BATCH_INNER_MAPS {
        let result = if delete {
            sys.map_lookup_and_delete_batch(fd, in_batch, count)
        } else {
            sys.map_lookup_batch(fd, in_batch, count)
        };
        match result {
            Ok(out) => {
                entries.extend(out.keys.into_iter().zip(out.values));
                if out.done {
                    return Ok(entries);
                }
                in_batch = Some(out.next);
                count = step;
            }
            Err(e) if e.errno() == Some(Errno::ENOSPC) => count *= 2,
            Err(e) => return Err(format!("lookup batch (step {step}): {e}")),
        }
    }
    Err(format!("lookup batch (step {step}) did not reach the end"))
}

/// `map_in_map_batch_ops`.
pub fn map_in_map_batch_ops<S: BpfSys>(
    sys: &mut S,
    inner_type: MapType,
    outer_type: MapType,
) -> Scenario {
    let mut inner_fds = Vec::new();
    let mut inner_ids = Vec::new();
    for i in 0..BATCH_INNER_MAPS {
        let fd = ctx(
            &format!("create inner {i}"),
            sys.map_create(&MapAttr::new(inner_type, 4, 4, 1)),
        )?;
        let id = id_of(sys, fd)?;
        ctx(
            "inner[0] = own id",
            sys.map_update_elem(fd, &key(0), &id.to_ne_bytes(), BPF_ANY),
        )?;
        inner_fds.push(fd);
        inner_ids.push(id);
    }
    let outer = ctx(
        "create outer",
        sys.map_create(&MapAttr::new(outer_type, 4, 4, BATCH_INNER_MAPS).inner(inner_fds[0])),
    )?;
    let keys: Vec<Vec<u8>> = (0..BATCH_INNER_MAPS).map(key).collect();
    let values: Vec<Vec<u8>> = inner_fds.iter().map(|fd| fd_value(*fd)).collect();
    match sys.map_update_batch(outer, &keys, &values, 0) {
        Ok(n) if n == BATCH_INNER_MAPS => {}
        other => return Err(format!("update batch of {BATCH_INNER_MAPS}: {other:?}")),
    }
    let want: BTreeSet<MapId> = inner_ids.iter().copied().collect();
    for step in [5, 10] {
        let entries = lookup_all(sys, outer, step, false)?;
        let got: BTreeSet<MapId> = entries
            .iter()
            .map(|(_, v)| id_of_value("batch value", v))
            .collect::<Result<_, _>>()?;
        if entries.len() != want.len() || got != want {
            return Err(format!(
                "lookup batch step {step}: got ids {got:?} in {} entries, want {want:?}",
                entries.len()
            ));
        }
        for id in &got {
            let fd = ctx(&format!("get_fd_by_id({id})"), sys.map_get_fd_by_id(*id))?;
            let held = id_of_value(
                "inner[0]",
                &ctx("lookup inner[0]", sys.map_lookup_elem(fd, &key(0)))?,
            )?;
            ctx("close", sys.close(fd))?;
            if held != *id {
                return Err(format!("map id {id} holds {held} at key 0"));
            }
        }
    }
    if outer_type == MapType::HashOfMaps {
        let deleted = lookup_all(sys, outer, 5, true)?;
        if deleted.len() != want.len() {
            return Err(format!(
                "lookup-and-delete batch returned {} entries, want {}",
                deleted.len(),
                want.len()
            ));
        }
        expect_errno(
            "get_next_key after lookup-and-delete batch",
            sys.map_get_next_key(outer, None),
            Errno::ENOENT,
        )?;
    }
    let outer_id = id_of(sys, outer)?;
    let mut fds = inner_fds;
    fds.push(outer);
    inner_ids.push(outer_id);
    close_and_check_gone(sys, &fds, &inner_ids)
}

/// `btf_map_in_map` `diff_size`, and the dynamic inner arrays it contrasts with.
pub fn diff_size<S: BpfSys>(sys: &mut S) -> Scenario {
    let template = ctx(
        "create ARRAY(1)",
        sys.map_create(&MapAttr::new(MapType::Array, 4, 4, 1)),
    )?;
    let outer = ctx(
        "create outer",
        sys.map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 1).inner(template)),
    )?;
    let inner = ctx(
        "create ARRAY(2)",
        sys.map_create(&MapAttr::new(MapType::Array, 4, 4, 2)),
    )?;
    expect_errno(
        "ARRAY(2) into a 1-entry template",
        sys.map_update_elem(outer, &key(0), &fd_value(inner), BPF_ANY),
        Errno::EINVAL,
    )?;

    let dyn_template = ctx(
        "create ARRAY(1, INNER_MAP)",
        sys.map_create(&MapAttr::new(MapType::Array, 4, 4, 1).flags(BPF_F_INNER_MAP)),
    )?;
    let dyn_outer = ctx(
        "create outer_arr_dyn",
        sys.map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 3).inner(dyn_template)),
    )?;
    let mut fds = vec![template, outer, inner, dyn_template, dyn_outer];
    let mut ids = Vec::new();
    for fd in &fds {
        ids.push(id_of(sys, *fd)?);
    }
    for (slot, size) in [3u32, 3, 5].into_iter().enumerate() {
        let fd = ctx(
            &format!("create ARRAY({size}, INNER_MAP)"),
            sys.map_create(&MapAttr::new(MapType::Array, 4, 4, size).flags(BPF_F_INNER_MAP)),
        )?;
        ctx(
            &format!("store ARRAY({size}) at {slot}"),
            sys.map_update_elem(dyn_outer, &key(slot as u32), &fd_value(fd), BPF_ANY),
        )?;
        ids.push(id_of(sys, fd)?);
        fds.push(fd);
    }
    close_and_check_gone(sys, &fds, &ids)
}

/// The outer-hash update tests of the `map_in_map` selftests.
pub fn outer_hash_updates<S: BpfSys>(sys: &mut S, map_flags: u32) -> Scenario {
    let first = ctx(
        "create inner 1",
        sys.map_create(&MapAttr::new(MapType::Array, 4, 4, 1)),
    )?;
    let second = ctx(
        "create inner 2",
        sys.map_create(&MapAttr::new(MapType::Array, 4, 4, 1)),
    )?;
    let outer = ctx(
        "create outer hash",
        sys.map_create(
            &MapAttr::new(MapType::HashOfMaps, 4, 4, 1)
                .flags(map_flags)
                .inner(first),
        ),
    )?;
    let (first_id, second_id) = (id_of(sys, first)?, id_of(sys, second)?);
    ctx(
        "add (NOEXIST)",
        sys.map_update_elem(outer, &key(0), &fd_value(first), BPF_NOEXIST),
    )?;
    let got = id_of_value(
        "lookup",
        &ctx("lookup after add", sys.map_lookup_elem(outer, &key(0)))?,
    )?;
    if got != first_id {
        return Err(format!("after add the key holds {got}, want {first_id}"));
    }
    ctx(
        "overwrite (EXIST)",
        sys.map_update_elem(outer, &key(0), &fd_value(second), BPF_EXIST),
    )?;
    let got = id_of_value(
        "lookup",
        &ctx(
            "lookup after overwrite",
            sys.map_lookup_elem(outer, &key(0)),
        )?,
    )?;
    if got != second_id {
        return Err(format!(
            "after overwrite the key holds {got}, want {second_id}"
        ));
    }
    expect_errno(
        "lookup_and_delete",
        sys.map_lookup_and_delete_elem(outer, &key(0)),
        Errno::ENOTSUPP,
    )?;
    ctx("delete", sys.map_delete_elem(outer, &key(0)))?;
    expect_errno(
        "lookup after delete",
        sys.map_lookup_elem(outer, &key(0)),
        Errno::ENOENT,
    )?;
    let outer_id = id_of(sys, outer)?;
    close_and_check_gone(
        sys,
        &[first, second, outer],
        &[first_id, second_id, outer_id],
    )
}

/// `btf_map_in_map` lookup/update: swaps, then no leak once everything is closed.
pub fn leak_after_swaps<S: BpfSys>(sys: &mut S) -> Scenario {
    let fixed = MapAttr::new(MapType::Array, 4, 4, 1);
    let dynamic = |n| MapAttr::new(MapType::Array, 4, 4, n).flags(BPF_F_INNER_MAP);
    let fixed_template = ctx("create fixed template", sys.map_create(&fixed))?;
    let dyn_template = ctx("create dynamic template", sys.map_create(&dynamic(1)))?;
    let outers = [
        ctx(
            "create outer_arr",
            sys.map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 3).inner(fixed_template)),
        )?,
        ctx(
            "create outer_hash",
            sys.map_create(&MapAttr::new(MapType::HashOfMaps, 4, 4, 3).inner(fixed_template)),
        )?,
        ctx(
            "create outer_arr_dyn",
            sys.map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 3).inner(dyn_template)),
        )?,
    ];
    let mut ids = vec![id_of(sys, fixed_template)?, id_of(sys, dyn_template)?];
    for outer in outers {
        ids.push(id_of(sys, outer)?);
    }
    ctx("close fixed template", sys.close(fixed_template))?;
    ctx("close dynamic template", sys.close(dyn_template))?;
    for swap in 0..=SWAPS {
        for (n, outer) in outers.into_iter().enumerate() {
            for slot in 0..3u32 {
                let attr = if n == 2 {
                    dynamic([3, 3, 5][slot as usize])
                } else {
                    fixed
                };
                let inner = ctx(&format!("swap {swap}: create inner"), sys.map_create(&attr))?;
                ctx(
                    "write inner[0]",
                    sys.map_update_elem(inner, &key(0), &(swap * 10 + slot).to_ne_bytes(), BPF_ANY),
                )?;
                ctx(
                    &format!("swap {swap}: store"),
                    sys.map_update_elem(outer, &key(slot), &fd_value(inner), BPF_ANY),
                )?;
                let id = id_of(sys, inner)?;
                ctx("close inner", sys.close(inner))?;
                let stored = id_of_value(
                    "lookup",
                    &ctx("lookup after store", sys.map_lookup_elem(outer, &key(slot)))?,
                )?;
                if stored != id {
                    return Err(format!(
                        "swap {swap}: slot {slot} holds {stored}, stored {id}"
                    ));
                }
                ids.push(id);
            }
        }
    }
    close_and_check_gone(sys, &outers, &ids)
}

/// `inner_array_lookup`, user-space side: the inner map reached through the id the outer lookup
/// returns is the map written.
pub fn inner_array_through_outer_id<S: BpfSys>(sys: &mut S) -> Scenario {
    let inner = ctx(
        "create ARRAY(5)",
        sys.map_create(&MapAttr::new(MapType::Array, 4, 4, 5)),
    )?;
    let outer = ctx(
        "create HASH_OF_MAPS(2)",
        sys.map_create(&MapAttr::new(MapType::HashOfMaps, 4, 4, 2).inner(inner)),
    )?;
    ctx(
        "store",
        sys.map_update_elem(outer, &key(1), &fd_value(inner), BPF_ANY),
    )?;
    ctx(
        "inner[3] = 1",
        sys.map_update_elem(inner, &key(3), &1u32.to_ne_bytes(), BPF_ANY),
    )?;
    let id = id_of_value(
        "lookup",
        &ctx("outer lookup", sys.map_lookup_elem(outer, &key(1)))?,
    )?;
    let via_id = ctx("get_fd_by_id", sys.map_get_fd_by_id(id))?;
    let value = ctx(
        "inner[3] through the id",
        sys.map_lookup_elem(via_id, &key(3)),
    )?;
    if value != 1u32.to_ne_bytes() {
        return Err(format!("inner[3] through the id reads {value:?}, want 1"));
    }
    let ids = [id, id_of(sys, outer)?];
    close_and_check_gone(sys, &[via_id, inner, outer], &ids)
}
