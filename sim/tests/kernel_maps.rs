//! The map syscalls of the real kernel against the one errno table
//! (`mimic_core::model::cases`, shared with the reference model and the core's world),
//! inner-map ids and their release, and the backend's own fd hygiene. Each test skips with one
//! line when bpf() is refused and closes every fd it opened.
#![cfg(feature = "kernel")]

use mimic_core::errno::Errno;
use mimic_core::model::cases::{cases, run_table_on};
use mimic_core::model::ops::FdMap;
use mimic_core::uapi::{BpfSys, MapAttr, MapType, BPF_ANY, BPF_F_RDONLY};
use mimic_sim::kernel::bijection::Bijection;
use mimic_sim::kernel::{on_kernel, probe, KernelSys};
use std::time::Duration;

/// Cases where this kernel (6.18) answers against semantics.md and the table follows the
/// kernel (docs/kernel-disagreements.md D1–D3). Pinned by name: dropping one from the table, or
/// a kernel that changes its answer, fails `the_errno_table_holds_on_the_kernel`.
const KERNEL_DISAGREEMENTS: &[&str] = &[
    // D1: BPF_F_RDONLY/WRONLY are accepted on every type and gate the fd.
    "HASH accepts BPF_F_RDONLY (D1: not in §2's flag list)",
    "update through a BPF_F_RDONLY fd is EPERM (D1)",
    // D2: NO_COMMON_LRU is for the LRU hashes only.
    "HASH refuses BPF_F_NO_COMMON_LRU (it is not an LRU hash)",
    // D3: the access flags are not kept in map_flags, so meta_equal cannot see them.
    "BPF_F_RDONLY is not kept in map_flags (D3: map_info omits it)",
    "HASH_OF_MAPS: meta_equal cannot see BPF_F_RDONLY (D3: not in the flags)",
];

#[test]
fn probe_says_whether_bpf_is_usable() {
    if let Err(unavailable) = probe() {
        assert!(!unavailable.0.is_empty(), "a refusal must say why");
    }
    if mimic_sim::kernel::require_or_skip("probe", probe()).is_some() {
        let sys = KernelSys::new().expect("probe succeeded, so a backend must open");
        assert_eq!(sys.open_fds(), 0, "probing leaves no fd behind");
    }
}

#[test]
fn the_errno_table_holds_on_the_kernel() {
    // `model` entries state what the real syscall cannot express (buffers of the wrong length).
    let Some((report, left_open)) = on_kernel("errno table", |sys| {
        run_table_on(sys, |source| source != "model", FdMap::closed_never_reused)
    }) else {
        return;
    };
    assert_eq!(left_open, 0, "every case closes what it opened");
    println!(
        "errno table on the kernel: {} run, {} agree, {} skipped (model)",
        report.ran,
        report.agreed(),
        report.skipped
    );
    let names: Vec<String> = cases().into_iter().map(|c| c.name).collect();
    for pinned in KERNEL_DISAGREEMENTS {
        assert!(
            names.iter().any(|n| n == pinned),
            "the pinned kernel disagreement {pinned:?} left the table"
        );
    }
    assert!(report.ran >= 190, "the table shrank to {}", report.ran);
    assert!(
        report.failures.is_empty(),
        "cases where the kernel and the table disagree:\n{}",
        report
            .failures
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn key(index: u32) -> Vec<u8> {
    index.to_ne_bytes().to_vec()
}

#[test]
fn inner_id_stops_resolving_once_outer_and_inner_are_closed() {
    /// The kernel frees maps from a worker after the last reference goes (and, for deferred
    /// puts, a grace period), so the id is released asynchronously: poll, bounded.
    const POLLS: u32 = 500;
    const POLL_INTERVAL: Duration = Duration::from_millis(10);
    let Some(mut sys) = KernelSys::or_skip("inner id release") else {
        return;
    };
    let template = sys
        .map_create(&MapAttr::new(MapType::Array, 4, 4, 1))
        .expect("template");
    let outer = sys
        .map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 3).inner(template))
        .expect("outer");
    let inner = sys
        .map_create(&MapAttr::new(MapType::Array, 4, 4, 1))
        .expect("inner");
    sys.map_update_elem(outer, &key(0), &inner.to_ne_bytes(), BPF_ANY)
        .expect("store inner");
    let value = sys
        .map_lookup_elem(outer, &key(0))
        .expect("lookup gives the id");
    let id = u32::from_ne_bytes(value.as_slice().try_into().expect("a 4-byte id"));
    assert_eq!(
        id,
        sys.map_info(inner).expect("inner info").id,
        "the outer map returns the inner's id"
    );

    // Closing the inner fd: the outer map still holds it, so the id still resolves.
    sys.close(inner).expect("close inner");
    let again = sys
        .map_get_fd_by_id(id)
        .expect("the outer map keeps the inner map alive");
    sys.close(again).expect("close the fd from get_fd_by_id");

    // Closing the outer map (and the template) drops the last reference.
    sys.close(outer).expect("close outer");
    sys.close(template).expect("close template");
    assert_eq!(sys.open_fds(), 0, "everything closed");
    let mut last = None;
    for _ in 0..POLLS {
        match sys.map_get_fd_by_id(id) {
            Err(err) => {
                assert_eq!(
                    err.errno(),
                    Some(Errno::ENOENT),
                    "a released id gives ENOENT, got {err}"
                );
                return;
            }
            Ok(fd) => {
                sys.close(fd).expect("close the probe fd");
                last = Some(fd);
            }
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    panic!("inner map id {id} still resolves after {POLLS} polls (last fd {last:?}): leaked");
}

#[test]
fn backend_never_closes_or_reaches_fds_it_did_not_open() {
    let Some(mut sys) = KernelSys::or_skip("fd hygiene") else {
        return;
    };
    assert_eq!(
        sys.close(1).map_err(|e| e.errno()),
        Err(Some(Errno::EBADF)),
        "stdout is not ours to close"
    );
    let map = sys
        .map_create(&MapAttr::new(MapType::Array, 4, 4, 1))
        .expect("array");
    sys.close(map).expect("close");
    assert_eq!(
        sys.close(map).map_err(|e| e.errno()),
        Err(Some(Errno::EBADF)),
        "a second close is EBADF"
    );
    // A closed fd number may be reused by another thread of this process: the backend must
    // not reach whatever now sits there.
    let lookup = sys.map_lookup_elem(map, &key(0)).map_err(|e| {
        println!("{e}");
        e.errno()
    });
    assert_eq!(lookup, Err(Some(Errno::EBADF)), "a closed fd is EBADF");
    assert_eq!(sys.open_fds(), 0);
}

#[test]
fn percpu_values_carry_one_slot_per_possible_cpu() {
    let Some(mut sys) = KernelSys::or_skip("per-cpu values") else {
        return;
    };
    let map = sys
        .map_create(&MapAttr::new(MapType::PercpuArray, 4, 4, 1))
        .expect("percpu array");
    let value = sys.map_lookup_elem(map, &key(0)).expect("lookup");
    assert!(
        !value.is_empty() && value.len() % 8 == 0,
        "8-byte slots, one per possible CPU: {} bytes",
        value.len()
    );
    let mut written = vec![0u8; value.len()];
    written[0] = 42;
    sys.map_update_elem(map, &key(0), &written, BPF_ANY)
        .expect("update all CPUs");
    assert_eq!(
        sys.map_lookup_elem(map, &key(0)).expect("lookup"),
        written,
        "round trip of the per-CPU value"
    );
    sys.close(map).expect("close");
}

#[test]
fn access_flags_are_not_kept_in_map_flags_and_gate_the_syscall_side() {
    // Explains D3 of docs/kernel-disagreements.md: the kernel drops BPF_F_RDONLY/WRONLY from
    // map_flags at creation (they only set the fd's access mode), so map_info does not report
    // them and an inner map with them matches a template without them.
    let Some(mut sys) = KernelSys::or_skip("access flags") else {
        return;
    };
    let rdonly = sys
        .map_create(&MapAttr::new(MapType::Hash, 4, 4, 2).flags(BPF_F_RDONLY))
        .expect("HASH with BPF_F_RDONLY is accepted");
    let info = sys.map_info(rdonly).expect("map info");
    assert_eq!(
        info.map_flags & BPF_F_RDONLY,
        0,
        "BPF_F_RDONLY is not kept: {info:?}"
    );
    let update = sys.map_update_elem(rdonly, &key(1), &key(1), BPF_ANY);
    println!("update through a BPF_F_RDONLY map fd: {update:?}");
    assert_eq!(
        update.map_err(|e| e.errno()),
        Err(Some(Errno::EPERM)),
        "the fd is read-only"
    );
    let lookup = sys.map_lookup_elem(rdonly, &key(1));
    assert_eq!(
        lookup.map_err(|e| e.errno()),
        Err(Some(Errno::ENOENT)),
        "reads are allowed"
    );
    sys.close(rdonly).expect("close");
}

/// One map-in-map sequence on two backends at once, comparing every result through
/// bijections of fds and ids (each backend numbers its own). Returns how many steps agreed.
fn same_sequence(a: &mut dyn BpfSys, b: &mut dyn BpfSys) -> Result<usize, String> {
    let mut fds = Bijection::new();
    let mut ids = Bijection::new();
    let mut steps = 0;
    let mut create = |a: &mut dyn BpfSys, b: &mut dyn BpfSys, attr: MapAttr| {
        let (fa, fb) = (a.map_create(&attr), b.map_create(&attr));
        match (fa, fb) {
            (Ok(fa), Ok(fb)) => fds.relate(fa as u32, fb as u32).map(|()| (fa, fb)),
            (ra, rb) => Err(format!("create {attr:?}: {ra:?} vs {rb:?}")),
        }
    };
    let template = create(a, b, MapAttr::new(MapType::Array, 4, 4, 1))?;
    let outer_attr_a = MapAttr::new(MapType::HashOfMaps, 4, 4, 2).inner(template.0);
    let outer_attr_b = MapAttr::new(MapType::HashOfMaps, 4, 4, 2).inner(template.1);
    let outer = match (a.map_create(&outer_attr_a), b.map_create(&outer_attr_b)) {
        (Ok(fa), Ok(fb)) => (fa, fb),
        (ra, rb) => return Err(format!("outer: {ra:?} vs {rb:?}")),
    };
    let mut inners = Vec::new();
    for _ in 0..3 {
        inners.push(create(a, b, MapAttr::new(MapType::Array, 4, 4, 1))?);
    }
    // Stores, a full map, replacements and lookups: results equal, ids in bijection.
    for (step, (k, inner, flags)) in [
        (0, 0, BPF_ANY),
        (1, 1, mimic_core::uapi::BPF_NOEXIST),
        (2, 2, BPF_ANY),
        (1, 2, mimic_core::uapi::BPF_EXIST),
        (0, 1, mimic_core::uapi::BPF_NOEXIST),
    ]
    .into_iter()
    .enumerate()
    {
        let (ia, ib) = inners[inner];
        let ra = a.map_update_elem(outer.0, &key(k), &ia.to_ne_bytes(), flags);
        let rb = b.map_update_elem(outer.1, &key(k), &ib.to_ne_bytes(), flags);
        if ra != rb {
            return Err(format!("update step {step}: {ra:?} vs {rb:?}"));
        }
        for k in 0..3 {
            match (
                a.map_lookup_elem(outer.0, &key(k)),
                b.map_lookup_elem(outer.1, &key(k)),
            ) {
                (Ok(va), Ok(vb)) => ids.relate_values(&va, &vb)?,
                (ra, rb) if ra == rb => {}
                (ra, rb) => return Err(format!("lookup {k} after step {step}: {ra:?} vs {rb:?}")),
            }
        }
        steps += 1;
    }
    Ok(steps)
}

#[test]
fn two_kernel_backends_agree_through_id_and_fd_bijections() {
    // The shape of the kernel-versus-model differential check, run kernel against kernel:
    // the numbers differ, the results must correspond one to one.
    let Some(mut a) = KernelSys::or_skip("differential sequence") else {
        return;
    };
    let Some(mut b) = KernelSys::or_skip("differential sequence") else {
        return;
    };
    let steps = same_sequence(&mut a, &mut b).unwrap_or_else(|why| panic!("{why}"));
    assert_eq!(steps, 5, "every step compared");
}
