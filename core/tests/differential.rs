//! Differential tests: random op sequences (`mimic_core::model::gen`) run on two `BpfSys`
//! implementations must give the same outcomes op by op (`mimic_core::model::ops::compare`),
//! with fds and ids translated through each side's bijection and hash order compared as sets.
//!
//! The model runs against itself with deliberately different fd and id numbering, which proves
//! the translation, and the injected-bug tests prove the harness fails when a side is wrong. The
//! core's world runs the same harness against the model in world_conformance.rs, the real kernel
//! in mimic-sim's kernel_differential.rs.

use mimic_core::errno::Errno;
use mimic_core::fault::Error;
use mimic_core::model::gen::{ops_from_bytes, ops_from_chunks, ops_from_seed, GenConfig};
use mimic_core::model::ops::{self, run, Divergence, Op, Outcome};
use mimic_core::model::{FdPolicy, ModelConfig, RefModel};
use mimic_core::uapi::{BatchOut, BpfSys, Fd, MapAttr, MapId, MapInfo};
use proptest::prelude::*;

use std::collections::BTreeMap;

/// Ops per generated sequence: long enough to fill small maps, swap inner maps and close
/// templates, short enough to shrink.
const SEQUENCE_LEN: usize = 120;
/// Seeds the deterministic sweep runs.
const SEEDS: u64 = 300;

/// The harness: run `ops` on both, compare outcome by outcome.
fn differential<A: BpfSys, B: BpfSys>(
    ops: &[Op],
    a: &mut A,
    b: &mut B,
) -> Result<(), Box<Divergence>> {
    ops::differential(("a", a), ("b", b), ops)
}

/// A model numbering fds from 1000 upwards and ids from 4242 in steps of 97.
fn renumbered() -> RefModel {
    RefModel::with_config(ModelConfig {
        fd_policy: FdPolicy::Increasing { first: 1000 },
        first_id: 4242,
        id_step: 97,
        ..ModelConfig::default()
    })
}

// The core's world against the model: core/tests/world_conformance.rs (the same harness).

fn op_chunks() -> impl Strategy<Value = Vec<Vec<u8>>> {
    /// Bytes one op consumes at most (a few choices, a batch of three entries).
    const CHUNK: usize = 24;
    prop::collection::vec(prop::collection::vec(any::<u8>(), CHUNK), 1..SEQUENCE_LEN)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn model_matches_renumbered_model(chunks in op_chunks()) {
        let ops = ops_from_chunks(&chunks, GenConfig::default());
        let mut a = RefModel::new();
        let mut b = renumbered();
        if let Err(d) = differential(&ops, &mut a, &mut b) {
            return Err(TestCaseError::fail(format!("{d}\n{}", ops::listing(&ops))));
        }
        prop_assert!(a.check_quiescent().is_ok(), "{:?}", a.check_quiescent());
        prop_assert!(b.check_quiescent().is_ok(), "{:?}", b.check_quiescent());
    }

    #[test]
    fn model_refcounts_stay_explained_after_every_op(chunks in op_chunks()) {
        let ops = ops_from_chunks(&chunks, GenConfig { percpu: true, access_flags: true, ..GenConfig::default() });
        let mut model = RefModel::new();
        let mut fds = ops::FdMap::new();
        for (i, op) in ops.iter().enumerate() {
            let outcome = ops::apply(&mut model, op, &mut fds);
            prop_assert!(!outcome.is_finding(), "op #{i} {op:?}: {outcome:?}");
            prop_assert!(model.check_refcounts().is_ok(), "after op #{i} {op:?}: {:?}", model.check_refcounts());
        }
    }
}

#[test]
fn model_matches_model_over_seeds() {
    for seed in 0..SEEDS {
        let ops = ops_from_seed(seed, SEQUENCE_LEN, GenConfig::default());
        if let Err(d) = differential(&ops, &mut RefModel::new(), &mut renumbered()) {
            panic!("seed {seed}: {d}\n{}", ops::listing(&ops));
        }
    }
}

#[test]
fn renumbering_changes_no_outcome_at_all() {
    // Stronger than `agrees`: the outcomes are identical, so no fd or id number leaks into them.
    for seed in 0..50 {
        let ops = ops_from_seed(seed, SEQUENCE_LEN, GenConfig::default());
        let (a, _) = run(&mut RefModel::new(), &ops);
        let (b, _) = run(&mut renumbered(), &ops);
        assert_eq!(a, b, "seed {seed}");
    }
}

#[test]
fn fuzz_bytes_give_a_deterministic_sequence() {
    let bytes: Vec<u8> = (0..2000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let ops = ops_from_bytes(&bytes, 500, GenConfig::default());
    assert!(ops.len() > 50, "only {} ops from 2000 bytes", ops.len());
    assert_eq!(ops, ops_from_bytes(&bytes, 500, GenConfig::default()));
    differential(&ops, &mut RefModel::new(), &mut renumbered()).unwrap();
}

#[test]
fn generated_sequences_reach_every_outcome_class() {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for seed in 0..100 {
        let ops = ops_from_seed(seed, SEQUENCE_LEN, GenConfig::default());
        for outcome in run(&mut RefModel::new(), &ops).0 {
            let class = match outcome.errno() {
                Some(errno) => errno.name().to_string(),
                None => "ok".to_string(),
            };
            *seen.entry(class).or_default() += 1;
        }
    }
    for class in [
        "ok", "EINVAL", "EBADF", "ENOENT", "EEXIST", "E2BIG", "ENOTSUPP",
    ] {
        assert!(
            seen.get(class).copied().unwrap_or(0) > 10,
            "{class} is (almost) never reached: {seen:?}"
        );
    }
    let total: usize = seen.values().sum();
    assert!(
        seen["ok"] * 3 > total,
        "too few successes to exercise state: {seen:?}"
    );
}

/// One deliberate bug, for proving the harness catches it.
#[derive(Clone, Copy, Debug)]
enum Bug {
    /// `BPF_NOEXIST` on a present hash key says EINVAL instead of EEXIST.
    EexistAsEinval,
    /// Replacing an inner map forgets to drop the old one's reference (a leak).
    LeakOnReplace,
}

struct Buggy {
    model: RefModel,
    bug: Bug,
    /// For `LeakOnReplace`: fds the wrapper keeps open behind the caller's back.
    hidden: Vec<Fd>,
}

impl Buggy {
    fn new(bug: Bug) -> Buggy {
        Buggy {
            model: RefModel::new(),
            bug,
            hidden: Vec::new(),
        }
    }
}

impl BpfSys for Buggy {
    fn map_create(&mut self, attr: &MapAttr) -> Result<Fd, Error> {
        self.model.map_create(attr)
    }
    fn map_lookup_elem(&mut self, fd: Fd, key: &[u8]) -> Result<Vec<u8>, Error> {
        self.model.map_lookup_elem(fd, key)
    }
    fn map_update_elem(
        &mut self,
        fd: Fd,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), Error> {
        let outer = self
            .model
            .map_info(fd)
            .is_ok_and(|i| i.map_type == 12 || i.map_type == 13);
        // LeakOnReplace: pin the old inner map before the replace so its put never frees it.
        let pinned = match self.bug {
            Bug::LeakOnReplace if outer => self
                .model
                .map_lookup_elem(fd, key)
                .ok()
                .and_then(|old| <[u8; 4]>::try_from(old).ok())
                .and_then(|old| self.model.map_get_fd_by_id(MapId::from_ne_bytes(old)).ok()),
            _ => None,
        };
        let result = self.model.map_update_elem(fd, key, value, flags);
        if let Some(pin) = pinned {
            if result.is_ok() {
                self.hidden.push(pin);
            } else {
                let _ = self.model.close(pin);
            }
        }
        match (self.bug, result) {
            (Bug::EexistAsEinval, Err(e)) if e.errno() == Some(Errno::EEXIST) => {
                Err(Error::Errno(Errno::EINVAL))
            }
            (_, result) => result,
        }
    }
    fn map_delete_elem(&mut self, fd: Fd, key: &[u8]) -> Result<(), Error> {
        self.model.map_delete_elem(fd, key)
    }
    fn map_lookup_and_delete_elem(&mut self, fd: Fd, key: &[u8]) -> Result<Vec<u8>, Error> {
        self.model.map_lookup_and_delete_elem(fd, key)
    }
    fn map_get_next_key(&mut self, fd: Fd, key: Option<&[u8]>) -> Result<Vec<u8>, Error> {
        self.model.map_get_next_key(fd, key)
    }
    fn map_lookup_batch(
        &mut self,
        fd: Fd,
        in_batch: Option<u32>,
        count: u32,
    ) -> Result<BatchOut, Error> {
        self.model.map_lookup_batch(fd, in_batch, count)
    }
    fn map_lookup_and_delete_batch(
        &mut self,
        fd: Fd,
        in_batch: Option<u32>,
        count: u32,
    ) -> Result<BatchOut, Error> {
        self.model.map_lookup_and_delete_batch(fd, in_batch, count)
    }
    fn map_update_batch(
        &mut self,
        fd: Fd,
        keys: &[Vec<u8>],
        values: &[Vec<u8>],
        flags: u64,
    ) -> Result<u32, (u32, Error)> {
        self.model.map_update_batch(fd, keys, values, flags)
    }
    fn map_delete_batch(&mut self, fd: Fd, keys: &[Vec<u8>]) -> Result<u32, (u32, Error)> {
        self.model.map_delete_batch(fd, keys)
    }
    fn map_get_fd_by_id(&mut self, id: MapId) -> Result<Fd, Error> {
        self.model.map_get_fd_by_id(id)
    }
    fn map_info(&mut self, fd: Fd) -> Result<MapInfo, Error> {
        self.model.map_info(fd)
    }
    fn map_freeze(&mut self, fd: Fd) -> Result<(), Error> {
        self.model.map_freeze(fd)
    }
    fn close(&mut self, fd: Fd) -> Result<(), Error> {
        self.model.close(fd)
    }
}

/// The first seed whose sequence the harness flags, if any within `SEEDS`.
fn first_caught(bug: Bug) -> Option<(u64, Box<Divergence>)> {
    (0..SEEDS).find_map(|seed| {
        let ops = ops_from_seed(seed, SEQUENCE_LEN, GenConfig::default());
        differential(&ops, &mut renumbered(), &mut Buggy::new(bug))
            .err()
            .map(|d| (seed, d))
    })
}

#[test]
fn an_injected_wrong_errno_is_caught() {
    let (seed, d) =
        first_caught(Bug::EexistAsEinval).expect("the harness missed EEXIST reported as EINVAL");
    let shown = d.to_string();
    assert!(
        shown.contains("EEXIST") && shown.contains("EINVAL"),
        "seed {seed}: unhelpful report:\n{shown}"
    );
    assert!(
        matches!(
            d.right.1,
            Some(Outcome::Done(Err(_))) | Some(Outcome::Count(Err(_)))
        ),
        "{shown}"
    );
}

#[test]
fn an_injected_leak_on_replace_is_caught() {
    // The leak shows as an id that still resolves (mid-run or at quiescence) or as an fd number
    // the hidden reference occupies; any of them must be reported.
    let (seed, d) =
        first_caught(Bug::LeakOnReplace).expect("the harness missed a leaked inner map");
    assert!(
        d.left.1 != d.right.1,
        "seed {seed}: a divergence with equal outcomes:\n{d}"
    );
}

#[test]
fn the_quiescence_probe_alone_catches_a_leak() {
    use mimic_core::model::ops::{Create, FdRef, Val};
    use mimic_core::uapi::MapType;
    // template A, outer O(A), inner B; O[0] = A; close A; O[0] = B: A must be freed.
    let ops = vec![
        Op::Create(Create::new(MapType::Array, 4, 4, 1)),
        Op::Create(Create::new(MapType::ArrayOfMaps, 4, 4, 1).inner(FdRef::Slot(0))),
        Op::Create(Create::new(MapType::Array, 4, 4, 1)),
        Op::Update {
            fd: FdRef::Slot(1),
            key: vec![0; 4],
            value: Val::Fd(FdRef::Slot(0)),
            flags: 0,
        },
        Op::Close { fd: FdRef::Slot(0) },
        Op::Update {
            fd: FdRef::Slot(1),
            key: vec![0; 4],
            value: Val::Fd(FdRef::Slot(2)),
            flags: 0,
        },
    ];
    differential(&ops, &mut RefModel::new(), &mut renumbered()).expect("the model must not leak");
    let d = differential(
        &ops,
        &mut RefModel::new(),
        &mut Buggy::new(Bug::LeakOnReplace),
    )
    .expect_err("a leaked inner map must be reported at quiescence");
    assert_eq!(
        d.index,
        ops.len(),
        "the first quiescence probe (slot 0) must fail: {d}"
    );
    assert!(
        matches!(&d.right.1, Some(Outcome::Broken(m)) if m.contains("leak")),
        "{d}"
    );
}

#[test]
#[ignore = "prints a sample divergence report; run with --ignored --nocapture to see it"]
fn show_a_divergence_report() {
    let (seed, d) = first_caught(Bug::EexistAsEinval).unwrap();
    let ops = ops_from_seed(seed, SEQUENCE_LEN, GenConfig::default());
    println!(
        "seed {seed}\n{d}\n{}",
        ops::listing(&ops[..=d.index.min(ops.len() - 1)])
    );
}

/// Raw syscalls with arbitrary attributes, fds, keys and flags (no op vocabulary in between):
/// the model must never panic and its counters must stay explained.
#[derive(Debug, Clone)]
enum Raw {
    Create(u32, u32, u32, u32, u32, i32),
    Update(i32, Vec<u8>, Vec<u8>, u64),
    Lookup(i32, Vec<u8>),
    Delete(i32, Vec<u8>),
    LookupAndDelete(i32, Vec<u8>),
    NextKey(i32, Option<Vec<u8>>),
    Batch(i32, Option<u32>, u32, bool),
    UpdateBatch(i32, Vec<Vec<u8>>, Vec<Vec<u8>>, u64),
    DeleteBatch(i32, Vec<Vec<u8>>),
    ById(u32),
    Close(i32),
}

fn raw_op() -> impl Strategy<Value = Raw> {
    let fd = -1..10i32;
    let bytes = || prop::collection::vec(any::<u8>(), 0..9);
    prop_oneof![
        (
            0..16u32,
            0..10u32,
            0..10u32,
            0..6u32,
            any::<u32>(),
            -1..8i32
        )
            .prop_map(|(t, k, v, m, f, i)| Raw::Create(t, k, v, m, f & 0x1fff, i)),
        (fd.clone(), bytes(), bytes(), 0..6u64).prop_map(|(a, b, c, d)| Raw::Update(a, b, c, d)),
        (fd.clone(), bytes()).prop_map(|(a, b)| Raw::Lookup(a, b)),
        (fd.clone(), bytes()).prop_map(|(a, b)| Raw::Delete(a, b)),
        (fd.clone(), bytes()).prop_map(|(a, b)| Raw::LookupAndDelete(a, b)),
        (fd.clone(), prop::option::of(bytes())).prop_map(|(a, b)| Raw::NextKey(a, b)),
        (
            fd.clone(),
            prop::option::of(0..10u32),
            0..6u32,
            any::<bool>()
        )
            .prop_map(|(a, b, c, d)| Raw::Batch(a, b, c, d)),
        (
            fd.clone(),
            prop::collection::vec(bytes(), 0..3),
            prop::collection::vec(bytes(), 0..3),
            0..3u64
        )
            .prop_map(|(a, b, c, d)| Raw::UpdateBatch(a, b, c, d)),
        (fd.clone(), prop::collection::vec(bytes(), 0..3))
            .prop_map(|(a, b)| Raw::DeleteBatch(a, b)),
        (0..12u32).prop_map(Raw::ById),
        fd.prop_map(Raw::Close),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn model_survives_raw_syscalls_and_keeps_its_counters(raw in prop::collection::vec(raw_op(), 1..80)) {
        let mut m = RefModel::with_config(ModelConfig { possible_cpus: 2, ..ModelConfig::default() });
        for op in &raw {
            let faulted = match op.clone() {
                Raw::Create(t, k, v, max, f, inner) => {
                    let attr = MapAttr { map_type: t, key_size: k, value_size: v, max_entries: max, map_flags: f, inner_map_fd: inner as u32 };
                    m.map_create(&attr).err()
                }
                Raw::Update(fd, k, v, f) => m.map_update_elem(fd, &k, &v, f).err(),
                Raw::Lookup(fd, k) => m.map_lookup_elem(fd, &k).err(),
                Raw::Delete(fd, k) => m.map_delete_elem(fd, &k).err(),
                Raw::LookupAndDelete(fd, k) => m.map_lookup_and_delete_elem(fd, &k).err(),
                Raw::NextKey(fd, k) => m.map_get_next_key(fd, k.as_deref()).err(),
                Raw::Batch(fd, b, c, del) => if del { m.map_lookup_and_delete_batch(fd, b, c).err() } else { m.map_lookup_batch(fd, b, c).err() },
                Raw::UpdateBatch(fd, k, v, f) => m.map_update_batch(fd, &k, &v, f).err().map(|e| e.1),
                Raw::DeleteBatch(fd, k) => m.map_delete_batch(fd, &k).err().map(|e| e.1),
                Raw::ById(id) => m.map_get_fd_by_id(id).err(),
                Raw::Close(fd) => m.close(fd).err(),
            };
            let is_fault = matches!(&faulted, Some(e) if e.errno().is_none());
            prop_assert!(!is_fault, "{op:?} raised a fault: {faulted:?}");
            prop_assert!(m.check_refcounts().is_ok(), "after {op:?}: {:?}", m.check_refcounts());
        }
        m.close_all().unwrap();
        prop_assert!(m.check_quiescent().is_ok(), "{:?}", m.check_quiescent());
    }
}
