//! An op-sequence vocabulary for driving any [`BpfSys`]: [`Op`] names fds and ids symbolically,
//! [`apply`] runs one op through an [`FdMap`] (the bijection between symbolic and real fds and
//! ids of one implementation) and returns an [`Outcome`] free of implementation numbering, and
//! [`compare`] finds the first op where runs disagree.
//!
//! # Symbolic names
//! * Every fd-producing op (`Create`, `GetFdById`) opens a **slot**, numbered in sequence order
//!   whether or not it succeeds, so slot numbers are the same for every implementation.
//!   [`FdRef::Slot`] names a slot; a failed slot, a future one, or a closed one whose number the
//!   implementation has since reused resolve to [`NEVER_OPENED_FD`] (`-EBADF` everywhere).
//! * A map's id is learned right after `Create` (one `map_info` call) and becomes
//!   [`CanonId::Map`]`(slot)`: "the map created by that slot". Ids read back from outer maps,
//!   batches and `map_info` are shown that way, so two implementations agree exactly when they
//!   return the same *maps*, whatever their numbers.
//!
//! # Order
//! Array iteration order is exact (by index). Hash iteration order is unspecified, so
//! `GetNextKey` on a hash agrees whenever both sides return a key or `-ENOENT`
//! ([`Outcome::agrees`]), and the whole-map ops (`WalkKeys`, `LookupBatchAll`,
//! `LookupAndDeleteBatchAll`) report sorted sets.
//!
//! ```
//! use mimic_core::model::gen::{ops_from_seed, GenConfig};
//! use mimic_core::model::ops::{differential, listing};
//! use mimic_core::model::{FdPolicy, ModelConfig, RefModel};
//!
//! let ops = ops_from_seed(1, 100, GenConfig::default());
//! let config = ModelConfig { fd_policy: FdPolicy::Increasing { first: 50 }, ..ModelConfig::default() };
//! let result = differential(("model", &mut RefModel::new()), ("other", &mut RefModel::with_config(config)), &ops);
//! if let Err(d) = result {
//!     panic!("{d}\n{}", listing(&ops));
//! }
//! ```

use crate::errno::Errno;
use crate::fault::Error;
use crate::uapi::{BpfSys, Fd, MapAttr, MapId, MapType, BPF_ANY, BPF_EXIST, BPF_NOEXIST};
use std::collections::BTreeMap;
use std::fmt;

/// An fd no implementation ever hands out (above every fd table size, far below `i32::MAX`): a
/// use is `-EBADF`.
pub const NEVER_OPENED_FD: Fd = 1 << 30;

/// An id no map ever gets: ids start at 1.
pub const NEVER_USED_ID: MapId = 0;

/// Steps a `WalkKeys` may take before it is reported as not terminating.
pub const WALK_STEP_LIMIT: usize = 4096;

/// Calls a whole-map batch op may make before it is reported as not terminating.
pub const BATCH_CALL_LIMIT: usize = 4096;

/// The largest `count` a whole-map batch op asks for after `-ENOSPC` doublings.
pub const BATCH_COUNT_MAX: u32 = 1 << 16;

/// An fd named symbolically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FdRef {
    /// The fd opened by the n-th fd-producing op of the sequence.
    Slot(u32),
    /// A literal fd: meant for 0–2 (open, not maps) and negative numbers.
    Raw(Fd),
    /// An fd that was never opened.
    NeverOpened,
}

/// An id named symbolically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdRef {
    /// The id of the map the slot was opened on (learned when it was opened).
    OfSlot(u32),
    /// An id never used ([`NEVER_USED_ID`]).
    NeverUsed,
}

/// A value on the way in: bytes, or an fd (outer maps) written as 4 native-endian bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Val {
    Bytes(Vec<u8>),
    Fd(FdRef),
}

/// `BPF_MAP_CREATE` with the template named symbolically (`None`: `inner_map_fd` 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Create {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub inner: Option<FdRef>,
}

impl Create {
    pub fn new(map_type: MapType, key_size: u32, value_size: u32, max_entries: u32) -> Create {
        Create {
            map_type: map_type as u32,
            key_size,
            value_size,
            max_entries,
            map_flags: 0,
            inner: None,
        }
    }
    pub fn flags(mut self, map_flags: u32) -> Create {
        self.map_flags = map_flags;
        self
    }
    pub fn inner(mut self, template: FdRef) -> Create {
        self.inner = Some(template);
        self
    }
    /// The syntactic map type, if it is one the model knows.
    pub fn known_type(&self) -> Option<MapType> {
        MapType::from_u32(self.map_type)
    }
}

/// One map syscall (or a bounded loop of them, for the whole-map ops).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    Create(Create),
    Update {
        fd: FdRef,
        key: Vec<u8>,
        value: Val,
        flags: u64,
    },
    Lookup {
        fd: FdRef,
        key: Vec<u8>,
    },
    Delete {
        fd: FdRef,
        key: Vec<u8>,
    },
    LookupAndDelete {
        fd: FdRef,
        key: Vec<u8>,
    },
    GetNextKey {
        fd: FdRef,
        key: Option<Vec<u8>>,
    },
    /// `get_next_key` from the start until `-ENOENT`: the set of keys.
    WalkKeys {
        fd: FdRef,
    },
    /// Lookup batches of `count` from the start until the end, doubling `count` on `-ENOSPC`.
    LookupBatchAll {
        fd: FdRef,
        count: u32,
    },
    /// The same with lookup-and-delete batches.
    LookupAndDeleteBatchAll {
        fd: FdRef,
        count: u32,
    },
    UpdateBatch {
        fd: FdRef,
        entries: Vec<(Vec<u8>, Val)>,
        flags: u64,
    },
    DeleteBatch {
        fd: FdRef,
        keys: Vec<Vec<u8>>,
    },
    GetFdById {
        id: IdRef,
    },
    Info {
        fd: FdRef,
    },
    Freeze {
        fd: FdRef,
    },
    Close {
        fd: FdRef,
    },
}

impl Op {
    /// Whether this op opens a slot.
    pub fn opens_slot(&self) -> bool {
        matches!(self, Op::Create(_) | Op::GetFdById { .. })
    }
}

/// A map id, independent of an implementation's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CanonId {
    /// The map created by this slot.
    Map(u32),
    /// An id never learned from a create, numbered by first appearance in this run.
    Unknown(u32),
}

/// A value on the way out.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    Bytes(Vec<u8>),
    /// An outer map's value: the id of the stored map.
    Map(CanonId),
}

/// `map_info` with the id made canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Info {
    pub id: CanonId,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
}

/// The keys a `WalkKeys` visited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    /// Sorted, each once.
    pub keys: Vec<Vec<u8>>,
    /// Keys visited more than once (never, on a map nobody else changes).
    pub repeated: Vec<Vec<u8>>,
    /// Why the walk stopped if not at `-ENOENT`.
    pub stopped: Option<Error>,
}

/// The entries a whole-map batch op returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrySet {
    /// Sorted by key.
    pub entries: Vec<(Vec<u8>, Value)>,
    /// Keys returned more than once.
    pub repeated: Vec<Vec<u8>>,
    /// The error that ended the loop, if it did not end at the map's end.
    pub stopped: Option<Error>,
}

/// What an op did, with no implementation numbering left in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `Create`, `GetFdById`: a slot was opened (the real fd is hidden).
    Opened(Result<(), Error>),
    /// `Update`, `Delete`, `Close`.
    Done(Result<(), Error>),
    /// `Lookup`, `LookupAndDelete`.
    Value(Result<Value, Error>),
    /// `GetNextKey`; `ordered` is false on hash-like maps, whose order is unspecified.
    NextKey {
        ordered: bool,
        result: Result<Vec<u8>, Error>,
    },
    Keys(Result<KeySet, Error>),
    Entries(Result<EntrySet, Error>),
    /// `UpdateBatch`, `DeleteBatch`: entries applied, or applied before the error.
    Count(Result<u32, (u32, Error)>),
    Info(Result<Info, Error>),
    /// The implementation broke the syscall contract in a way `apply` saw (an fd handed out
    /// twice, a fresh fd `map_info` refuses, a loop that does not end). Never agrees.
    Broken(String),
}

fn is_fault<T>(result: &Result<T, Error>) -> bool {
    matches!(result, Err(Error::Fault(_)))
}

impl Outcome {
    /// The error, if the outcome is one.
    pub fn errno(&self) -> Option<Errno> {
        let err = match self {
            Outcome::Opened(r) | Outcome::Done(r) => r.as_ref().err(),
            Outcome::Value(r) => r.as_ref().err(),
            Outcome::NextKey { result, .. } => result.as_ref().err(),
            Outcome::Keys(r) => r.as_ref().err(),
            Outcome::Entries(r) => r.as_ref().err(),
            Outcome::Count(r) => r.as_ref().err().map(|(_, e)| e),
            Outcome::Info(r) => r.as_ref().err(),
            Outcome::Broken(_) => None,
        };
        err.and_then(Error::errno)
    }

    /// Whether the outcome carries a fault or a broken contract: a finding by itself.
    pub fn is_finding(&self) -> bool {
        match self {
            Outcome::Opened(r) | Outcome::Done(r) => is_fault(r),
            Outcome::Value(r) => is_fault(r),
            Outcome::NextKey { result, .. } => is_fault(result),
            Outcome::Keys(r) => {
                is_fault(r) || matches!(r, Ok(k) if matches!(k.stopped, Some(Error::Fault(_))))
            }
            Outcome::Entries(r) => {
                is_fault(r) || matches!(r, Ok(e) if matches!(e.stopped, Some(Error::Fault(_))))
            }
            Outcome::Count(r) => matches!(r, Err((_, Error::Fault(_)))),
            Outcome::Info(r) => is_fault(r),
            Outcome::Broken(_) => true,
        }
    }

    /// Whether two implementations' outcomes of the same op agree: equal, except that a
    /// `get_next_key` on a hash agrees whenever both return a key or `-ENOENT` (which key comes
    /// next, and which is last, depends on the hash). Findings never agree.
    pub fn agrees(&self, other: &Outcome) -> bool {
        if self.is_finding() || other.is_finding() {
            return false;
        }
        match (self, other) {
            (
                Outcome::NextKey {
                    ordered: false,
                    result: a,
                },
                Outcome::NextKey {
                    ordered: false,
                    result: b,
                },
            ) => {
                let order_dependent = |r: &Result<Vec<u8>, Error>| {
                    r.is_ok() || r.as_ref().err().and_then(Error::errno) == Some(Errno::ENOENT)
                };
                a == b || (order_dependent(a) && order_dependent(b))
            }
            _ => self == other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SlotState {
    Open(Fd),
    Closed(Fd),
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    state: SlotState,
    /// The syntactic map type (from the create op, or the slot an id came from).
    kind: Option<MapType>,
    /// The real id of the map the slot was opened on.
    id: Option<MapId>,
}

/// One implementation's view of the symbolic names: slots → real fds, real ids → [`CanonId`].
///
/// A closed slot resolves to its old fd number while no open slot holds that number, so a
/// `close` that does not really close is caught. That assumes nothing else in the process opens
/// fds meanwhile; a backend over the real kernel whose tests run in parallel threads of one
/// process should use [`FdMap::closed_never_reused`] instead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FdMap {
    slots: Vec<Slot>,
    ids: BTreeMap<MapId, CanonId>,
    unknown_ids: u32,
    /// Closed slots resolve to [`NEVER_OPENED_FD`] instead of their old number.
    closed_as_never_opened: bool,
}

impl FdMap {
    pub fn new() -> FdMap {
        FdMap::default()
    }

    /// An `FdMap` whose closed slots resolve to [`NEVER_OPENED_FD`]: safe when other code in
    /// the process may be handed the closed numbers (parallel tests against the kernel).
    pub fn closed_never_reused() -> FdMap {
        FdMap {
            closed_as_never_opened: true,
            ..FdMap::default()
        }
    }

    /// Slots opened so far (including failed ones).
    pub fn slot_count(&self) -> u32 {
        self.slots.len() as u32
    }

    /// The real fds of the slots still open.
    pub fn open_fds(&self) -> Vec<Fd> {
        self.slots
            .iter()
            .filter_map(|s| match s.state {
                SlotState::Open(fd) => Some(fd),
                _ => None,
            })
            .collect()
    }

    /// The real id learned for a slot.
    pub fn slot_id(&self, slot: u32) -> Option<MapId> {
        self.slots.get(slot as usize).and_then(|s| s.id)
    }

    fn is_open(&self, fd: Fd) -> bool {
        self.slots.iter().any(|s| s.state == SlotState::Open(fd))
    }

    /// The real fd an [`FdRef`] stands for in this implementation.
    pub fn resolve(&self, fd: FdRef) -> Fd {
        match fd {
            FdRef::Raw(fd) => fd,
            FdRef::NeverOpened => NEVER_OPENED_FD,
            FdRef::Slot(n) => match self.slots.get(n as usize).map(|s| &s.state) {
                Some(SlotState::Open(fd)) => *fd,
                // A closed fd is only meaningful while its number is not reused.
                Some(SlotState::Closed(fd))
                    if !self.closed_as_never_opened && !self.is_open(*fd) =>
                {
                    *fd
                }
                _ => NEVER_OPENED_FD,
            },
        }
    }

    /// The syntactic type of the map behind an [`FdRef`], if any.
    pub fn kind(&self, fd: FdRef) -> Option<MapType> {
        match fd {
            FdRef::Slot(n) => self.slots.get(n as usize).and_then(|s| s.kind),
            FdRef::Raw(_) | FdRef::NeverOpened => None,
        }
    }

    /// The real id an [`IdRef`] stands for.
    pub fn resolve_id(&self, id: IdRef) -> MapId {
        match id {
            IdRef::OfSlot(n) => self.slot_id(n).unwrap_or(NEVER_USED_ID),
            IdRef::NeverUsed => NEVER_USED_ID,
        }
    }

    /// The canonical name of a real id (assigning [`CanonId::Unknown`] on first sight).
    pub fn canon(&mut self, id: MapId) -> CanonId {
        if let Some(canon) = self.ids.get(&id) {
            return *canon;
        }
        let canon = CanonId::Unknown(self.unknown_ids);
        self.unknown_ids += 1;
        self.ids.insert(id, canon);
        canon
    }

    fn value_bytes(&self, value: &Val) -> Vec<u8> {
        match value {
            Val::Bytes(bytes) => bytes.clone(),
            Val::Fd(fd) => self.resolve(*fd).to_ne_bytes().to_vec(),
        }
    }

    fn decode(&mut self, fd: FdRef, bytes: Vec<u8>) -> Value {
        let outer = self.kind(fd).is_some_and(MapType::is_map_in_map);
        match <[u8; 4]>::try_from(bytes.as_slice()) {
            Ok(id) if outer => Value::Map(self.canon(MapId::from_ne_bytes(id))),
            _ => Value::Bytes(bytes),
        }
    }

    /// Records an fd-producing op's result as a new slot.
    fn open_slot(
        &mut self,
        result: Result<Fd, Error>,
        kind: Option<MapType>,
        id: Option<MapId>,
    ) -> Result<u32, Box<Outcome>> {
        let slot = self.slots.len() as u32;
        match result {
            Ok(fd) if self.is_open(fd) || fd == NEVER_OPENED_FD => {
                self.slots.push(Slot {
                    state: SlotState::Failed,
                    kind,
                    id: None,
                });
                Err(Box::new(Outcome::Broken(format!(
                    "fd {fd} handed out while still open"
                ))))
            }
            Ok(fd) => {
                self.slots.push(Slot {
                    state: SlotState::Open(fd),
                    kind,
                    id,
                });
                Ok(slot)
            }
            Err(e) => {
                self.slots.push(Slot {
                    state: SlotState::Failed,
                    kind,
                    id: None,
                });
                Err(Box::new(Outcome::Opened(Err(e))))
            }
        }
    }
}

fn hash_like(kind: Option<MapType>) -> bool {
    matches!(
        kind,
        Some(MapType::Hash | MapType::PercpuHash | MapType::HashOfMaps)
    )
}

fn collect_repeats(keys: &mut Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    keys.sort();
    let mut repeated: Vec<Vec<u8>> = keys
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0].clone())
        .collect();
    repeated.dedup();
    keys.dedup();
    repeated
}

/// Runs one op against an implementation, translating names through `fds`.
pub fn apply(sys: &mut dyn BpfSys, op: &Op, fds: &mut FdMap) -> Outcome {
    match op {
        Op::Create(create) => {
            let attr = MapAttr {
                map_type: create.map_type,
                key_size: create.key_size,
                value_size: create.value_size,
                max_entries: create.max_entries,
                map_flags: create.map_flags,
                inner_map_fd: create.inner.map(|t| fds.resolve(t) as u32).unwrap_or(0),
            };
            let result = sys.map_create(&attr);
            let slot = match fds.open_slot(result, create.known_type(), None) {
                Ok(slot) => slot,
                Err(outcome) => return *outcome,
            };
            let fd = fds.resolve(FdRef::Slot(slot));
            match sys.map_info(fd) {
                Ok(info) => {
                    fds.slots[slot as usize].id = Some(info.id);
                    fds.ids.insert(info.id, CanonId::Map(slot));
                    Outcome::Opened(Ok(()))
                }
                Err(e) => Outcome::Broken(format!("map_info on a fresh map fd {fd} failed: {e}")),
            }
        }
        Op::GetFdById { id } => {
            let real = fds.resolve_id(*id);
            let kind = match id {
                IdRef::OfSlot(n) => fds.kind(FdRef::Slot(*n)),
                IdRef::NeverUsed => None,
            };
            let result = sys.map_get_fd_by_id(real);
            match fds.open_slot(result, kind, Some(real)) {
                Ok(_) => Outcome::Opened(Ok(())),
                Err(outcome) => *outcome,
            }
        }
        Op::Update {
            fd,
            key,
            value,
            flags,
        } => {
            let value = fds.value_bytes(value);
            Outcome::Done(sys.map_update_elem(fds.resolve(*fd), key, &value, *flags))
        }
        Op::Lookup { fd, key } => match sys.map_lookup_elem(fds.resolve(*fd), key) {
            Ok(bytes) => Outcome::Value(Ok(fds.decode(*fd, bytes))),
            Err(e) => Outcome::Value(Err(e)),
        },
        Op::LookupAndDelete { fd, key } => {
            match sys.map_lookup_and_delete_elem(fds.resolve(*fd), key) {
                Ok(bytes) => Outcome::Value(Ok(fds.decode(*fd, bytes))),
                Err(e) => Outcome::Value(Err(e)),
            }
        }
        Op::Delete { fd, key } => Outcome::Done(sys.map_delete_elem(fds.resolve(*fd), key)),
        Op::GetNextKey { fd, key } => Outcome::NextKey {
            ordered: !hash_like(fds.kind(*fd)),
            result: sys.map_get_next_key(fds.resolve(*fd), key.as_deref()),
        },
        Op::WalkKeys { fd } => walk_keys(sys, fds.resolve(*fd)),
        Op::LookupBatchAll { fd, count } => batch_all(sys, *fd, *count, false, fds),
        Op::LookupAndDeleteBatchAll { fd, count } => batch_all(sys, *fd, *count, true, fds),
        Op::UpdateBatch { fd, entries, flags } => {
            let keys: Vec<Vec<u8>> = entries.iter().map(|(k, _)| k.clone()).collect();
            let values: Vec<Vec<u8>> = entries.iter().map(|(_, v)| fds.value_bytes(v)).collect();
            Outcome::Count(sys.map_update_batch(fds.resolve(*fd), &keys, &values, *flags))
        }
        Op::DeleteBatch { fd, keys } => {
            Outcome::Count(sys.map_delete_batch(fds.resolve(*fd), keys))
        }
        Op::Info { fd } => match sys.map_info(fds.resolve(*fd)) {
            Ok(info) => Outcome::Info(Ok(Info {
                id: fds.canon(info.id),
                map_type: info.map_type,
                key_size: info.key_size,
                value_size: info.value_size,
                max_entries: info.max_entries,
                map_flags: info.map_flags,
            })),
            Err(e) => Outcome::Info(Err(e)),
        },
        Op::Freeze { fd } => Outcome::Done(sys.map_freeze(fds.resolve(*fd))),
        Op::Close { fd } => {
            let real = fds.resolve(*fd);
            let result = sys.close(real);
            if result.is_ok() {
                for slot in &mut fds.slots {
                    if slot.state == SlotState::Open(real) {
                        slot.state = SlotState::Closed(real);
                    }
                }
            }
            Outcome::Done(result)
        }
    }
}

fn walk_keys(sys: &mut dyn BpfSys, fd: Fd) -> Outcome {
    let mut keys = Vec::new();
    let mut stopped = None;
    let mut ended = false;
    for _ in 0..WALK_STEP_LIMIT {
        match sys.map_get_next_key(fd, keys.last().map(Vec::as_slice)) {
            Ok(key) => keys.push(key),
            Err(e) if e.errno() == Some(Errno::ENOENT) => {
                ended = true;
                break;
            }
            Err(e) if keys.is_empty() => return Outcome::Keys(Err(e)),
            Err(e) => {
                stopped = Some(e);
                ended = true;
                break;
            }
        }
    }
    if !ended {
        return Outcome::Broken(format!(
            "get_next_key walk did not end in {WALK_STEP_LIMIT} steps"
        ));
    }
    let repeated = collect_repeats(&mut keys);
    Outcome::Keys(Ok(KeySet {
        keys,
        repeated,
        stopped,
    }))
}

fn batch_all(
    sys: &mut dyn BpfSys,
    fd: FdRef,
    count: u32,
    delete: bool,
    fds: &mut FdMap,
) -> Outcome {
    let real = fds.resolve(fd);
    let mut count = count.max(1);
    let mut in_batch = None;
    let mut raw: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut stopped = None;
    let mut calls = 0;
    loop {
        if calls == BATCH_CALL_LIMIT {
            return Outcome::Broken(format!(
                "batch loop did not end in {BATCH_CALL_LIMIT} calls"
            ));
        }
        calls += 1;
        let result = if delete {
            sys.map_lookup_and_delete_batch(real, in_batch, count)
        } else {
            sys.map_lookup_batch(real, in_batch, count)
        };
        match result {
            Ok(out) => {
                if out.keys.len() != out.values.len() || out.keys.len() as u64 > count as u64 {
                    return Outcome::Broken(format!(
                        "batch returned {} keys and {} values for count {count}",
                        out.keys.len(),
                        out.values.len()
                    ));
                }
                let progress = !out.keys.is_empty();
                raw.extend(out.keys.into_iter().zip(out.values));
                if out.done {
                    break;
                }
                if !progress {
                    return Outcome::Broken(
                        "batch returned no entries and not the end".to_string(),
                    );
                }
                in_batch = Some(out.next);
            }
            Err(e) if e.errno() == Some(Errno::ENOSPC) && count < BATCH_COUNT_MAX => count *= 2,
            Err(e) if calls == 1 => return Outcome::Entries(Err(e)),
            Err(e) => {
                stopped = Some(e);
                break;
            }
        }
    }
    let mut keys: Vec<Vec<u8>> = raw.iter().map(|(k, _)| k.clone()).collect();
    let repeated = collect_repeats(&mut keys);
    let mut entries: Vec<(Vec<u8>, Value)> = raw
        .into_iter()
        .map(|(k, v)| (k, fds.decode(fd, v)))
        .collect();
    entries.sort();
    entries.dedup_by(|a, b| a.0 == b.0);
    Outcome::Entries(Ok(EntrySet {
        entries,
        repeated,
        stopped,
    }))
}

/// Runs a whole sequence against one implementation with a fresh [`FdMap`].
pub fn run(sys: &mut dyn BpfSys, ops: &[Op]) -> (Vec<Outcome>, FdMap) {
    run_with(sys, ops, FdMap::new())
}

/// [`run`] with a chosen [`FdMap`] (e.g. [`FdMap::closed_never_reused`]).
pub fn run_with(sys: &mut dyn BpfSys, ops: &[Op], mut fds: FdMap) -> (Vec<Outcome>, FdMap) {
    let outcomes = ops.iter().map(|op| apply(sys, op, &mut fds)).collect();
    (outcomes, fds)
}

/// Closes every slot still open (best effort: a kernel backend must not leak maps between runs).
pub fn close_open(sys: &mut dyn BpfSys, fds: &FdMap) {
    for fd in fds.open_fds() {
        let _ = sys.close(fd);
    }
}

/// The first op where two runs disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    pub index: usize,
    pub op: Option<Op>,
    pub left: (String, Option<Outcome>),
    pub right: (String, Option<Outcome>),
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |o: &Option<Outcome>| match o {
            Some(o) => o.to_string(),
            None => "(no outcome)".to_string(),
        };
        match &self.op {
            Some(op) => writeln!(f, "runs diverge at op #{}: {op}", self.index)?,
            None => writeln!(f, "runs diverge at quiescence probe #{}", self.index)?,
        }
        writeln!(f, "  {}: {}", self.left.0, show(&self.left.1))?;
        write!(f, "  {}: {}", self.right.0, show(&self.right.1))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Display for FdRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FdRef::Slot(n) => write!(f, "s{n}"),
            FdRef::Raw(fd) => write!(f, "fd{fd}"),
            FdRef::NeverOpened => write!(f, "fd(never opened)"),
        }
    }
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Bytes(bytes) => write!(f, "{}", hex(bytes)),
            Val::Fd(fd) => write!(f, "fd of {fd}"),
        }
    }
}

impl fmt::Display for CanonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CanonId::Map(n) => write!(f, "id of s{n}"),
            CanonId::Unknown(n) => write!(f, "unknown id #{n}"),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bytes(bytes) => write!(f, "{}", hex(bytes)),
            Value::Map(id) => write!(f, "{id}"),
        }
    }
}

fn type_name(map_type: u32) -> String {
    MapType::from_u32(map_type).map_or_else(|| format!("type {map_type}"), |t| t.name().to_string())
}

fn flag_name(flags: u64) -> String {
    match flags {
        BPF_ANY => "ANY".to_string(),
        BPF_NOEXIST => "NOEXIST".to_string(),
        BPF_EXIST => "EXIST".to_string(),
        other => format!("flags {other:#x}"),
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Create(c) => {
                write!(
                    f,
                    "create {}(key {}, value {}, max {}, flags {:#x})",
                    type_name(c.map_type),
                    c.key_size,
                    c.value_size,
                    c.max_entries,
                    c.map_flags
                )?;
                match c.inner {
                    Some(t) => write!(f, " template {t}"),
                    None => Ok(()),
                }
            }
            Op::Update {
                fd,
                key,
                value,
                flags,
            } => {
                write!(
                    f,
                    "update {fd}[{}] = {value} {}",
                    hex(key),
                    flag_name(*flags)
                )
            }
            Op::Lookup { fd, key } => write!(f, "lookup {fd}[{}]", hex(key)),
            Op::Delete { fd, key } => write!(f, "delete {fd}[{}]", hex(key)),
            Op::LookupAndDelete { fd, key } => write!(f, "lookup_and_delete {fd}[{}]", hex(key)),
            Op::GetNextKey { fd, key: Some(key) } => {
                write!(f, "get_next_key {fd} after {}", hex(key))
            }
            Op::GetNextKey { fd, key: None } => write!(f, "get_next_key {fd} first"),
            Op::WalkKeys { fd } => write!(f, "walk keys of {fd}"),
            Op::LookupBatchAll { fd, count } => write!(f, "lookup batches of {count} over {fd}"),
            Op::LookupAndDeleteBatchAll { fd, count } => {
                write!(f, "lookup-and-delete batches of {count} over {fd}")
            }
            Op::UpdateBatch { fd, entries, flags } => {
                write!(f, "update batch {fd} {}:", flag_name(*flags))?;
                entries
                    .iter()
                    .try_for_each(|(k, v)| write!(f, " [{}] = {v}", hex(k)))
            }
            Op::DeleteBatch { fd, keys } => {
                write!(f, "delete batch {fd}:")?;
                keys.iter().try_for_each(|k| write!(f, " [{}]", hex(k)))
            }
            Op::GetFdById {
                id: IdRef::OfSlot(n),
            } => write!(f, "get_fd_by_id(id of s{n})"),
            Op::GetFdById {
                id: IdRef::NeverUsed,
            } => write!(f, "get_fd_by_id(never used id)"),
            Op::Info { fd } => write!(f, "map_info {fd}"),
            Op::Freeze { fd } => write!(f, "freeze {fd}"),
            Op::Close { fd } => write!(f, "close {fd}"),
        }
    }
}

fn show_result<T>(
    f: &mut fmt::Formatter<'_>,
    r: &Result<T, Error>,
    ok: impl Fn(&T) -> String,
) -> fmt::Result {
    match r {
        Ok(v) => write!(f, "ok {}", ok(v)),
        Err(e) => write!(f, "error {e}"),
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Opened(r) => show_result(f, r, |_| "(slot opened)".to_string()),
            Outcome::Done(r) => show_result(f, r, |_| String::new()),
            Outcome::Value(r) => show_result(f, r, |v| v.to_string()),
            Outcome::NextKey { result, .. } => show_result(f, result, |k| hex(k)),
            Outcome::Keys(r) => show_result(f, r, |k| {
                let keys: Vec<String> = k.keys.iter().map(|k| hex(k)).collect();
                let stopped = k
                    .stopped
                    .as_ref()
                    .map(|e| format!(", stopped by {e}"))
                    .unwrap_or_default();
                format!(
                    "keys [{}]{stopped}, repeated {}",
                    keys.join(" "),
                    k.repeated.len()
                )
            }),
            Outcome::Entries(r) => show_result(f, r, |e| {
                let entries: Vec<String> = e
                    .entries
                    .iter()
                    .map(|(k, v)| format!("{}={v}", hex(k)))
                    .collect();
                let stopped = e
                    .stopped
                    .as_ref()
                    .map(|e| format!(", stopped by {e}"))
                    .unwrap_or_default();
                format!(
                    "entries [{}]{stopped}, repeated {}",
                    entries.join(" "),
                    e.repeated.len()
                )
            }),
            Outcome::Count(Ok(n)) => write!(f, "ok {n} applied"),
            Outcome::Count(Err((n, e))) => write!(f, "error {e} after {n} applied"),
            Outcome::Info(r) => show_result(f, r, |i| {
                format!(
                    "{} {}(key {}, value {}, max {}, flags {:#x})",
                    i.id,
                    type_name(i.map_type),
                    i.key_size,
                    i.value_size,
                    i.max_entries,
                    i.map_flags
                )
            }),
            Outcome::Broken(why) => write!(f, "BROKEN: {why}"),
        }
    }
}

/// A numbered listing of a sequence, for failure reports and replays.
pub fn listing(ops: &[Op]) -> String {
    ops.iter()
        .enumerate()
        .map(|(i, op)| format!("#{i:<3} {op}\n"))
        .collect()
}

/// Compares every run with the first, op by op, and returns the earliest disagreement (or a
/// finding in any run: a fault or a broken contract fails even where both sides are alike).
pub fn compare(ops: &[Op], runs: &[(&str, &[Outcome])]) -> Result<(), Box<Divergence>> {
    let Some((base_name, base)) = runs.first() else {
        return Ok(());
    };
    let mut first: Option<Divergence> = None;
    for (name, outcomes) in runs.iter().skip(1) {
        let len = base.len().max(outcomes.len());
        for index in 0..len {
            let (a, b) = (base.get(index), outcomes.get(index));
            let agree = matches!((a, b), (Some(a), Some(b)) if a.agrees(b));
            if !agree {
                if index < first.as_ref().map(|d| d.index).unwrap_or(usize::MAX) {
                    first = Some(Divergence {
                        index,
                        op: ops.get(index).cloned(),
                        left: (base_name.to_string(), a.cloned()),
                        right: (name.to_string(), b.cloned()),
                    });
                }
                break;
            }
        }
    }
    match first {
        Some(d) => Err(Box::new(d)),
        None => Ok(()),
    }
}

/// §8.4 through the syscall surface: closes every slot still open, then asks for an fd on every
/// map the run created. Each must be gone (`-ENOENT`); the outcome per created slot is
/// `Opened(Err(..))` when freed, and a map still alive is a [`Outcome::Broken`] naming it (its
/// new fd is closed again).
pub fn quiesce(sys: &mut dyn BpfSys, fds: &FdMap) -> Vec<Outcome> {
    close_open(sys, fds);
    let mut outcomes = Vec::new();
    for (slot, state) in fds.slots.iter().enumerate() {
        let Some(id) = state.id else { continue };
        outcomes.push(match sys.map_get_fd_by_id(id) {
            Ok(fd) => {
                let _ = sys.close(fd);
                Outcome::Broken(format!(
                    "leak: the map of slot {slot} still resolves by id after every fd was closed"
                ))
            }
            Err(e) => Outcome::Opened(Err(e)),
        });
    }
    outcomes
}

/// Runs `ops` on both implementations and compares outcome by outcome, then brings both to
/// quiescence ([`quiesce`]) and compares that too (reported at index `ops.len()` onwards).
pub fn differential(
    a: (&str, &mut dyn BpfSys),
    b: (&str, &mut dyn BpfSys),
    ops: &[Op],
) -> Result<(), Box<Divergence>> {
    differential_with(a, b, ops, FdMap::new)
}

/// [`differential`] with a chosen [`FdMap`] per side (e.g. [`FdMap::closed_never_reused`] for a
/// kernel backend whose process opens fds in other threads).
pub fn differential_with(
    a: (&str, &mut dyn BpfSys),
    b: (&str, &mut dyn BpfSys),
    ops: &[Op],
    fd_map: impl Fn() -> FdMap,
) -> Result<(), Box<Divergence>> {
    let (mut out_a, fds_a) = run_with(a.1, ops, fd_map());
    let (mut out_b, fds_b) = run_with(b.1, ops, fd_map());
    out_a.extend(quiesce(a.1, &fds_a));
    out_b.extend(quiesce(b.1, &fds_b));
    compare(ops, &[(a.0, &out_a), (b.0, &out_b)])
}
