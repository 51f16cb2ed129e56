//! The sequential reference model: [`RefModel`], a [`BpfSys`] written straight from
//! semantics.md §1–4 with plain `BTreeMap`s and no concurrency. It is the oracle of the
//! differential tests, the `map_ops` fuzz target and the simulator's linearizability check, and
//! shares no code with `crate::maps` (the real, concurrent maps).
//!
//! * [`RefModel`]: maps, ids, fds, refcnt and uref; every errno of §2–4.
//! * [`ops`]: an op vocabulary ([`ops::Op`]), [`ops::apply`] through an fd/id bijection
//!   ([`ops::FdMap`]) and [`ops::compare`] with a readable first difference.
//! * [`gen`]: deterministic op-sequence generation from a seed, from fuzz bytes or from proptest.
//! * [`cases`]: the errno table of §2–4, runnable against any [`BpfSys`].
//! * [`selftests`]: the kernel selftest scenarios of §9 that need no programs.
//! * [`audit`](RefModel::audit): which maps are alive and why, for "no leak at quiescence".
//!
//! ```
//! use mimic_core::model::RefModel;
//! use mimic_core::uapi::{BpfSys, MapAttr, MapType, BPF_ANY};
//!
//! let mut sys = RefModel::new();
//! let template = sys.map_create(&MapAttr::new(MapType::Array, 4, 4, 1)).unwrap();
//! let attr = MapAttr::new(MapType::HashOfMaps, 4, 4, 8).inner(template);
//! let outer = sys.map_create(&attr).unwrap();
//! let key = 7u32.to_ne_bytes();
//! sys.map_update_elem(outer, &key, &template.to_ne_bytes(), BPF_ANY).unwrap();
//! // An outer lookup gives the inner map's id, not an fd.
//! let id = sys.map_info(template).unwrap().id;
//! assert_eq!(sys.map_lookup_elem(outer, &key).unwrap(), id.to_ne_bytes());
//! sys.close_all().unwrap();
//! sys.check_quiescent().unwrap(); // the outer map's free put the inner map
//! ```
//!
//! # What the model promises
//! * Sequential: a syscall takes effect entirely when it returns, and every grace period has
//!   elapsed by then (a deferred put frees at once once refcnt reaches 0). `-EBUSY` (re-entrancy)
//!   and `-ENOMEM` (allocation failure) never happen.
//! * Ids are allocated cyclically from [`ModelConfig::first_id`] in `[1, ID_MAX]` and never
//!   reused while their map lives; id 0 is never used. A map's id is released when its refcnt
//!   reaches 0.
//! * fds: the lowest free fd ≥ 3 ([`FdPolicy::LowestFree`], the kernel's rule), or an increasing
//!   counter ([`FdPolicy::Increasing`], to prove callers translate fds). fds 0–2 exist but are not
//!   maps: `-EINVAL` wherever a map fd is expected, including `close` (the model never gives up
//!   the standard streams). Any other fd that is not open: `-EBADF`.
//! * Hash order: keys are kept in buckets `bucket_of(key) = FNV-1a(key) & (n_buckets - 1)` with
//!   `n_buckets = roundup_pow_of_two(max_entries)`, and within a bucket in byte order.
//!   `get_next_key` and batches follow that order; batch tokens are bucket indices and a batch
//!   never splits a bucket (`-ENOSPC` when the first bucket does not fit). The kernel's order is
//!   unspecified (jhash, random seed), so differential tests compare hash iterations as sets
//!   (see [`ops::Outcome::agrees`]); array order (by index) is exact.
//!
//! # Choices where semantics.md is silent (kernel facts unless marked "model")
//! * Key or value buffers whose length differs from the map's sizes: `-EINVAL`, checked right
//!   after fd resolution (model: the syscall copies exactly `key_size` bytes and cannot see a
//!   length; an adapter over the real syscall must check lengths itself).
//! * Update flags with `BPF_F_LOCK` (4): `-EINVAL` before anything else (no map has a spin lock).
//! * `HASH_OF_MAPS` update resolves the value fd *before* checking flags (the kernel takes the
//!   inner map first); `ARRAY_OF_MAPS` checks flags, then the index, then the fd.
//! * Plain ARRAY delete: `-EINVAL`; `lookup_and_delete` on anything but HASH/PERCPU_HASH:
//!   `-ENOTSUPP`; batch ops a type lacks (delete batches on arrays, all batches on PROG_ARRAY):
//!   `-ENOTSUPP`; update batch with any elem flag: `-EINVAL`.
//! * An ARRAY_OF_MAPS or HASH_OF_MAPS template is `-EINVAL`: the nesting check runs before the
//!   `map_meta_equal` check, so §2's `-ENOTSUPP` is reachable with PROG_ARRAY only.
//! * Ids on the way out and fds on the way in are 4 native-endian bytes, as are array keys.
//! * `get_next_key` on a hash with a key that is not present restarts from the first key.
//! * Lookup batch on ARRAY_OF_MAPS skips empty slots, as measured on 6.18 (the generic batch
//!   skips keys whose value lookup says `-ENOENT` since 6.14; older kernels retried such a key
//!   three times and failed with `-EINTR`, which [`Errno`] names for the oracle's sake).
//!
//! # Where the model follows the kernel against semantics.md
//! Measured on Linux 6.18 by the kernel oracle (`mimic kernel-check`); each is written up in
//! docs/kernel-disagreements.md and pinned by a `kernel` case of [`cases`].
//! * D1: `BPF_F_RDONLY`/`BPF_F_WRONLY` are accepted on every type (§2's HASH list leaves them
//!   out); both together are `-EINVAL` before anything else. They set the access mode of the
//!   *fd* ([`FdAccess`]): writes (update, delete, update/delete batches) through a read-only fd
//!   and reads (lookup, get_next_key, lookup batch) through a write-only one are `-EPERM`,
//!   checked right after the fd resolves; lookup-and-delete needs both. Fds from
//!   get-fd-by-id read and write.
//! * D2: `BPF_F_NO_COMMON_LRU` on a (non-LRU) hash: `-EINVAL`, though it is in §2's list.
//! * `map_info` (`BPF_OBJ_GET_INFO_BY_FD`) on an fd that is not open is `-EBADFD` (77), not the
//!   `-EBADF` of the map operations (semantics.md names no errno for it).
//! * D3: the access modes are not kept in `map_flags` (not in `map_info`, not in the meta), so
//!   `meta_equal` cannot see them: an inner map created `BPF_F_RDONLY` fits a template without.
//! * PROG_ARRAY can be created (it is the template type of the `-ENOTSUPP` rule) but no program
//!   fd exists, so storing into it fails `-EBADF`/`-EINVAL` and it is always empty.
//! * Per-CPU types: values are `round_up(value_size, 8) × possible_cpus` bytes
//!   ([`ModelConfig::possible_cpus`], default 1); the padding is stored and read back as
//!   written (D8: the kernel copies `round_up(value_size, 8)` bytes per CPU).
//! * Value sizes are limited as the kernel limits them (`-E2BIG`: an array value above
//!   `INT_MAX`, a hash element above `KMALLOC_MAX_SIZE`, a per-CPU value above `PCPU_MIN_UNIT_SIZE`;
//!   see [`shape`]'s constants); `max_entries` is not (storage is sparse), so a huge map never
//!   fails with `-E2BIG`/`-ENOMEM` where the kernel's allocation might. What a batch returns is
//!   materialised, so callers (fuzz targets) bound `count`.
//! * Lookup batch with `count == 0` returns nothing and is not the end (the kernel returns 0
//!   without touching `out_batch`; the model echoes `in_batch`).

pub mod cases;
pub mod gen;
pub mod ops;
pub mod selftests;
pub mod shape;

pub use shape::{
    check_attr, has_meta_equal, index_mask, FdAccess, Layout, Meta, Shape, HTAB_ELEM_SIZE,
    KMALLOC_MAX_SIZE, PCPU_MIN_UNIT_SIZE,
};

use crate::errno::Errno;
use crate::fault::{Error, Fault, Stamp};
use crate::uapi::{
    BatchOut, BpfSys, Fd, MapAttr, MapId, MapInfo, MapType, BPF_ANY, BPF_EXIST, BPF_NOEXIST,
};
use std::collections::BTreeMap;

/// `BPF_F_LOCK`: update/lookup under the value's spin lock. No modelled map has one.
pub const BPF_F_LOCK: u64 = 4;

/// The first fd a process gets for a map: 0, 1 and 2 are its standard streams.
pub const FIRST_MAP_FD: Fd = 3;

/// The model's fd table size (an `RLIMIT_NOFILE`): fds at or above it are never handed out, so
/// callers may use larger numbers as "never opened" (see [`ops::NEVER_OPENED_FD`]).
pub const FD_LIMIT: Fd = 1 << 20;

/// Ids live in `[1, i32::MAX - 1]`, as the kernel's `idr_alloc_cyclic(&map_idr, map, 1,
/// INT_MAX)` (whose end is exclusive).
pub const ID_MAX: MapId = i32::MAX as MapId - 1;

/// How the model numbers fds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdPolicy {
    /// The kernel's rule: the lowest free fd ≥ [`FIRST_MAP_FD`].
    LowestFree,
    /// Never reuse: `first`, `first + 1`, ... (a deliberately different numbering).
    Increasing { first: Fd },
}

/// Knobs that change numbering, never behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelConfig {
    pub fd_policy: FdPolicy,
    /// The first id handed out (≥ 1).
    pub first_id: MapId,
    /// The distance between consecutive ids (≥ 1; the kernel's is 1).
    pub id_step: MapId,
    /// Possible CPUs, for the size of per-CPU values.
    pub possible_cpus: u32,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            fd_policy: FdPolicy::LowestFree,
            first_id: 1,
            id_step: 1,
            possible_cpus: 1,
        }
    }
}

/// The model's own name for a map object: never reused, unlike ids and fds.
pub type ObjNo = u64;

/// A hash element's position: its bucket, then its key.
type HashPos = (u32, Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Store {
    /// Written array values by index; an index in range that is absent reads as zeroes.
    Array(BTreeMap<u32, Vec<u8>>),
    Hash(BTreeMap<HashPos, Vec<u8>>),
    /// Stored maps by index (ARRAY_OF_MAPS; PROG_ARRAY stays empty).
    FdArray(BTreeMap<u32, ObjNo>),
    FdHash(BTreeMap<HashPos, ObjNo>),
}

impl Store {
    fn new(layout: Layout) -> Store {
        match layout {
            Layout::Array => Store::Array(BTreeMap::new()),
            Layout::Hash => Store::Hash(BTreeMap::new()),
            Layout::FdArray => Store::FdArray(BTreeMap::new()),
            Layout::FdHash => Store::FdHash(BTreeMap::new()),
        }
    }

    /// The maps this map holds a refcnt on, one entry per slot holding it.
    fn held(&self) -> Vec<ObjNo> {
        match self {
            Store::FdArray(slots) => slots.values().copied().collect(),
            Store::FdHash(elems) => elems.values().copied().collect(),
            Store::Array(_) | Store::Hash(_) => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MapObj {
    id: MapId,
    shape: Shape,
    meta: Option<Meta>,
    /// fds + outer-map slots holding it (no programs exist in the syscall model).
    refcnt: u32,
    /// fds holding it.
    uref: u32,
    store: Store,
    /// Read-only to user space after `BPF_MAP_FREEZE`.
    frozen: bool,
}

/// One live map as [`RefModel::audit`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapAudit {
    pub id: MapId,
    pub shape: Shape,
    pub meta: Option<Meta>,
    pub refcnt: u32,
    pub uref: u32,
    /// The fds open on it, ascending.
    pub fds: Vec<Fd>,
    /// The ids of the outer maps holding it, one entry per slot.
    pub held_by: Vec<MapId>,
    /// Elements stored (written array slots count; unwritten ones do not).
    pub elements: usize,
}

/// The sequential reference model of one process's map syscalls. See the module doc for what
/// it promises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefModel {
    config: ModelConfig,
    objs: BTreeMap<ObjNo, MapObj>,
    ids: BTreeMap<MapId, ObjNo>,
    fds: BTreeMap<Fd, ObjNo>,
    /// The access mode of fds that may not both read and write (created with `BPF_F_RDONLY` or
    /// `BPF_F_WRONLY`); absent means read-write.
    access: BTreeMap<Fd, FdAccess>,
    next_obj: ObjNo,
    next_id: MapId,
    next_fd: Fd,
    /// Ids of freed maps, in the order they were freed.
    freed: Vec<MapId>,
}

impl Default for RefModel {
    fn default() -> Self {
        RefModel::new()
    }
}

fn errno(e: Errno) -> Error {
    Error::Errno(e)
}

/// The model reached an object it no longer has: a bug in the model itself, reported as the
/// fault it would be in an implementation instead of a panic.
fn dangling(what: String) -> Error {
    Error::Fault(Fault::UseAfterFree {
        object: what,
        freed_at: None,
        accessed_at: Stamp::default(),
    })
}

fn array_index(key: &[u8]) -> Result<u32, Error> {
    let bytes: [u8; 4] = key.try_into().map_err(|_| errno(Errno::EINVAL))?;
    Ok(u32::from_ne_bytes(bytes))
}

/// The kernel's array `get_next_key`: no key or an index out of range starts at 0, the last
/// index ends.
fn array_next(max_entries: u32, index: Option<u32>) -> Option<u32> {
    match index {
        Some(i) if i < max_entries => (i + 1 < max_entries).then_some(i + 1),
        _ => Some(0),
    }
}

impl RefModel {
    pub fn new() -> RefModel {
        RefModel::with_config(ModelConfig::default())
    }

    pub fn with_config(config: ModelConfig) -> RefModel {
        let first = match config.fd_policy {
            FdPolicy::LowestFree => FIRST_MAP_FD,
            FdPolicy::Increasing { first } => first.max(FIRST_MAP_FD),
        };
        RefModel {
            config: ModelConfig {
                first_id: config.first_id.clamp(1, ID_MAX),
                id_step: config.id_step.max(1),
                possible_cpus: config.possible_cpus.max(1),
                ..config
            },
            objs: BTreeMap::new(),
            ids: BTreeMap::new(),
            fds: BTreeMap::new(),
            access: BTreeMap::new(),
            next_obj: 0,
            next_id: config.first_id.clamp(1, ID_MAX),
            next_fd: first,
            freed: Vec::new(),
        }
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Every live map, by id.
    pub fn audit(&self) -> Vec<MapAudit> {
        let mut held_by: BTreeMap<ObjNo, Vec<MapId>> = BTreeMap::new();
        for obj in self.objs.values() {
            for inner in obj.store.held() {
                held_by.entry(inner).or_default().push(obj.id);
            }
        }
        let mut out: Vec<MapAudit> = self
            .objs
            .iter()
            .map(|(no, obj)| MapAudit {
                id: obj.id,
                shape: obj.shape,
                meta: obj.meta,
                refcnt: obj.refcnt,
                uref: obj.uref,
                fds: self
                    .fds
                    .iter()
                    .filter(|(_, o)| *o == no)
                    .map(|(fd, _)| *fd)
                    .collect(),
                held_by: held_by.remove(no).unwrap_or_default(),
                elements: match &obj.store {
                    Store::Array(v) => v.len(),
                    Store::Hash(v) => v.len(),
                    Store::FdArray(v) => v.len(),
                    Store::FdHash(v) => v.len(),
                },
            })
            .collect();
        out.sort_by_key(|m| m.id);
        out
    }

    /// The ids of live maps, ascending.
    pub fn live_ids(&self) -> Vec<MapId> {
        self.ids.keys().copied().collect()
    }

    /// The open map fds, ascending.
    pub fn open_fds(&self) -> Vec<Fd> {
        self.fds.keys().copied().collect()
    }

    /// Ids of freed maps, in the order they were freed (each map appears once).
    pub fn freed_ids(&self) -> &[MapId] {
        &self.freed
    }

    /// Recounts every refcnt and uref from the fds and outer slots and compares with the stored
    /// counters, and checks that ids and objects correspond (§8.3/§8.4, paired with the counters
    /// the model keeps).
    pub fn check_refcounts(&self) -> Result<(), Fault> {
        for audit in self.audit() {
            let want_uref = audit.fds.len() as u32;
            let want_refcnt = want_uref + audit.held_by.len() as u32;
            if audit.uref != want_uref || audit.refcnt != want_refcnt {
                return Err(Fault::Leak {
                    object: format!("map id {}", audit.id),
                    detail: format!(
                        "refcnt {} uref {} but {} fds and {} outer slots hold it",
                        audit.refcnt,
                        audit.uref,
                        audit.fds.len(),
                        audit.held_by.len()
                    ),
                });
            }
            if audit.refcnt == 0 {
                return Err(Fault::Leak {
                    object: format!("map id {}", audit.id),
                    detail: "is alive with refcnt 0".to_string(),
                });
            }
        }
        if self.ids.len() != self.objs.len() {
            return Err(Fault::Leak {
                object: "id table".to_string(),
                detail: format!("{} ids for {} live maps", self.ids.len(), self.objs.len()),
            });
        }
        Ok(())
    }

    /// §8.4 at quiescence: with no fd open, no map may be alive.
    pub fn check_quiescent(&self) -> Result<(), Fault> {
        self.check_refcounts()?;
        if !self.fds.is_empty() {
            return Err(Fault::Leak {
                object: "process".to_string(),
                detail: format!("not quiescent: fds {:?} are open", self.open_fds()),
            });
        }
        match self.audit().first() {
            Some(map) => Err(Fault::Leak {
                object: format!("map id {}", map.id),
                detail: format!("alive at quiescence with refcnt {}", map.refcnt),
            }),
            None => Ok(()),
        }
    }

    /// Closes every open fd (ascending), as a process exit does.
    pub fn close_all(&mut self) -> Result<(), Error> {
        for fd in self.open_fds() {
            self.close(fd)?;
        }
        Ok(())
    }

    // ---- descriptors, ids, references -------------------------------------------------------

    fn obj(&self, no: ObjNo) -> Result<&MapObj, Error> {
        self.objs
            .get(&no)
            .ok_or_else(|| dangling(format!("model object {no}")))
    }

    fn obj_mut(&mut self, no: ObjNo) -> Result<&mut MapObj, Error> {
        self.objs
            .get_mut(&no)
            .ok_or_else(|| dangling(format!("model object {no}")))
    }

    /// `__bpf_map_get`: an fd that is not open is `-EBADF`; an open fd that is not a map (the
    /// standard streams) is `-EINVAL`.
    fn map_of_fd(&self, fd: Fd) -> Result<ObjNo, Error> {
        match self.fds.get(&fd) {
            Some(no) => Ok(*no),
            None if (0..FIRST_MAP_FD).contains(&fd) => Err(errno(Errno::EINVAL)),
            None => Err(errno(Errno::EBADF)),
        }
    }

    /// [`Self::map_of_fd`], then the fd's access mode (`map_get_sys_perms`): reading through a
    /// write-only fd or writing through a read-only one is `-EPERM`, checked right after the fd
    /// resolves and before anything about the key, flags or map type.
    fn map_for(&self, fd: Fd, read: bool, write: bool) -> Result<ObjNo, Error> {
        let no = self.map_of_fd(fd)?;
        let access = self
            .access
            .get(&fd)
            .copied()
            .unwrap_or(FdAccess::READ_WRITE);
        if (read && !access.read) || (write && !access.write) {
            return Err(errno(Errno::EPERM));
        }
        // A frozen map is read-only to user space, whatever the fd allows.
        if write && self.objs.get(&no).is_some_and(|m| m.frozen) {
            return Err(errno(Errno::EPERM));
        }
        Ok(no)
    }

    fn alloc_fd(&mut self) -> Result<Fd, Error> {
        let fd = match self.config.fd_policy {
            FdPolicy::LowestFree => {
                let mut fd = FIRST_MAP_FD;
                for open in self.fds.range(FIRST_MAP_FD..).map(|(fd, _)| *fd) {
                    if open != fd {
                        break;
                    }
                    fd += 1;
                }
                fd
            }
            FdPolicy::Increasing { .. } => {
                let fd = self.next_fd;
                self.next_fd = fd.saturating_add(1);
                fd
            }
        };
        // The fd table is full (the kernel's -EMFILE, which `Errno` lacks).
        if fd >= FD_LIMIT {
            return Err(errno(Errno::ENOMEM));
        }
        Ok(fd)
    }

    /// Cyclic id allocation skipping live ids, as `idr_alloc_cyclic`. `live + 1` attempts
    /// suffice: either they visit `live + 1` distinct ids (one is free) or the sequence cycled,
    /// and then every id it can reach is live.
    fn alloc_id(&mut self) -> Result<MapId, Error> {
        for _ in 0..=self.ids.len() {
            let id = self.next_id;
            self.next_id = match id.checked_add(self.config.id_step) {
                Some(next) if next <= ID_MAX => next,
                _ => 1,
            };
            if !self.ids.contains_key(&id) {
                return Ok(id);
            }
        }
        // The id space reachable with this step is exhausted (the kernel's idr says -ENOSPC).
        Err(errno(Errno::ENOSPC))
    }

    /// Opens a new fd on a map: refcnt and uref both go up.
    fn open_fd(&mut self, no: ObjNo) -> Result<Fd, Error> {
        let fd = self.alloc_fd()?;
        let obj = self.obj_mut(no)?;
        obj.refcnt += 1;
        obj.uref += 1;
        self.fds.insert(fd, no);
        Ok(fd)
    }

    /// Takes a refcnt for an outer-map slot.
    fn get(&mut self, no: ObjNo) -> Result<(), Error> {
        self.obj_mut(no)?.refcnt += 1;
        Ok(())
    }

    /// `bpf_map_put`: drops one refcnt; at 0 the id goes first, then the map is freed. In the
    /// sequential model every grace period has elapsed, so deferred and immediate puts coincide.
    /// Freeing an outer map puts every map it holds (non-deferred: nobody can reach them through
    /// it any more).
    fn put(&mut self, no: ObjNo) -> Result<(), Error> {
        let mut pending = vec![no];
        while let Some(no) = pending.pop() {
            let obj = self.obj_mut(no)?;
            obj.refcnt = obj.refcnt.checked_sub(1).ok_or_else(|| {
                Error::Fault(Fault::DoublePut {
                    object: format!("map id {}", obj.id),
                    counter: "refcnt",
                    at: Stamp::default(),
                })
            })?;
            if obj.refcnt == 0 {
                let obj = self
                    .objs
                    .remove(&no)
                    .ok_or_else(|| dangling(format!("object {no}")))?;
                self.ids.remove(&obj.id);
                self.freed.push(obj.id);
                pending.extend(obj.store.held());
            }
        }
        Ok(())
    }

    /// `bpf_map_fd_get_ptr` for an outer map: resolve the value fd, check it against the meta,
    /// take a refcnt.
    fn fd_get_ptr(&mut self, outer: ObjNo, value: &[u8]) -> Result<ObjNo, Error> {
        let fd = Fd::from_ne_bytes(value.try_into().map_err(|_| errno(Errno::EINVAL))?);
        let outer = self.obj(outer)?;
        if outer.shape.map_type == MapType::ProgArray {
            // Only program fds fit a PROG_ARRAY, and no program exists here.
            return Err(errno(
                if self.fds.contains_key(&fd) || (0..FIRST_MAP_FD).contains(&fd) {
                    Errno::EINVAL
                } else {
                    Errno::EBADF
                },
            ));
        }
        let meta = outer
            .meta
            .ok_or_else(|| dangling("meta of an outer map".to_string()))?;
        let inner = self.map_of_fd(fd)?;
        if !meta.accepts(&self.obj(inner)?.shape) {
            return Err(errno(Errno::EINVAL));
        }
        self.get(inner)?;
        Ok(inner)
    }

    // ---- element operations (after fd resolution) -------------------------------------------

    fn check_key(&self, no: ObjNo, key: &[u8]) -> Result<Shape, Error> {
        let shape = self.obj(no)?.shape;
        if key.len() != shape.key_size as usize {
            return Err(errno(Errno::EINVAL));
        }
        Ok(shape)
    }

    fn pos(shape: &Shape, key: &[u8]) -> HashPos {
        (shape.bucket_of(key), key.to_vec())
    }

    /// `map_update_elem` once the map is known: the syscall's flag and buffer checks, then the
    /// type's rules (semantics.md §3 for outer maps).
    fn update_on(&mut self, no: ObjNo, key: &[u8], value: &[u8], flags: u64) -> Result<(), Error> {
        if flags & BPF_F_LOCK != 0 {
            return Err(errno(Errno::EINVAL));
        }
        let shape = self.check_key(no, key)?;
        if value.len() != shape.sys_value_len(self.config.possible_cpus) {
            return Err(errno(Errno::EINVAL));
        }
        match shape.layout() {
            Layout::Array => {
                if flags > BPF_EXIST {
                    return Err(errno(Errno::EINVAL));
                }
                let index = array_index(key)?;
                if index >= shape.max_entries {
                    return Err(errno(Errno::E2BIG));
                }
                // Every array element always exists.
                if flags == BPF_NOEXIST {
                    return Err(errno(Errno::EEXIST));
                }
                let value = shape.normalise_value(value);
                match &mut self.obj_mut(no)?.store {
                    Store::Array(values) => values.insert(index, value),
                    _ => return Err(dangling("array storage".to_string())),
                };
                Ok(())
            }
            Layout::Hash => {
                if flags > BPF_EXIST {
                    return Err(errno(Errno::EINVAL));
                }
                let pos = Self::pos(&shape, key);
                let value = shape.normalise_value(value);
                let Store::Hash(elems) = &mut self.obj_mut(no)?.store else {
                    return Err(dangling("hash storage".to_string()));
                };
                Self::check_hash_flags(&shape, elems.contains_key(&pos), elems.len(), flags)?;
                elems.insert(pos, value);
                Ok(())
            }
            Layout::FdArray => {
                if flags != BPF_ANY {
                    return Err(errno(Errno::EINVAL));
                }
                let index = array_index(key)?;
                if index >= shape.max_entries {
                    return Err(errno(Errno::E2BIG));
                }
                let inner = self.fd_get_ptr(no, value)?;
                let Store::FdArray(slots) = &mut self.obj_mut(no)?.store else {
                    return Err(dangling("fd array storage".to_string()));
                };
                // xchg, then the deferred put of the old map.
                match slots.insert(index, inner) {
                    Some(old) => self.put(old),
                    None => Ok(()),
                }
            }
            Layout::FdHash => {
                // The kernel takes the inner map before looking at the flags.
                let inner = self.fd_get_ptr(no, value)?;
                let pos = Self::pos(&shape, key);
                let Store::FdHash(elems) = &mut self.obj_mut(no)?.store else {
                    return Err(dangling("fd hash storage".to_string()));
                };
                let checked = if flags > BPF_EXIST {
                    Err(errno(Errno::EINVAL))
                } else {
                    Self::check_hash_flags(&shape, elems.contains_key(&pos), elems.len(), flags)
                };
                match checked {
                    // Replaced in place; the old map is put after the (modelled) unlock.
                    Ok(()) => match elems.insert(pos, inner) {
                        Some(old) => self.put(old),
                        None => Ok(()),
                    },
                    // Never published: the new map's refcnt is dropped at once.
                    Err(e) => {
                        self.put(inner)?;
                        Err(e)
                    }
                }
            }
        }
    }

    /// The hash rules: `NOEXIST` on a present key, `EXIST` on a missing one, and a full map for
    /// a new key (prealloc: the freelist is empty; no prealloc: the count reached
    /// `max_entries`; a replace never needs a fresh element).
    fn check_hash_flags(
        shape: &Shape,
        present: bool,
        count: usize,
        flags: u64,
    ) -> Result<(), Error> {
        match (present, flags) {
            (true, BPF_NOEXIST) => Err(errno(Errno::EEXIST)),
            (false, BPF_EXIST) => Err(errno(Errno::ENOENT)),
            (false, _) if count >= shape.max_entries as usize => Err(errno(Errno::E2BIG)),
            _ => Ok(()),
        }
    }

    fn id_bytes(&self, inner: ObjNo) -> Result<Vec<u8>, Error> {
        Ok(self.obj(inner)?.id.to_ne_bytes().to_vec())
    }

    fn lookup_on(&self, no: ObjNo, key: &[u8]) -> Result<Vec<u8>, Error> {
        let shape = self.check_key(no, key)?;
        let obj = self.obj(no)?;
        match &obj.store {
            Store::Array(values) => {
                let index = array_index(key)?;
                if index >= shape.max_entries {
                    return Err(errno(Errno::ENOENT));
                }
                Ok(values
                    .get(&index)
                    .cloned()
                    .unwrap_or_else(|| vec![0; shape.sys_value_len(self.config.possible_cpus)]))
            }
            Store::Hash(elems) => elems
                .get(&Self::pos(&shape, key))
                .cloned()
                .ok_or(errno(Errno::ENOENT)),
            Store::FdArray(slots) => match slots.get(&array_index(key)?) {
                Some(inner) => self.id_bytes(*inner),
                None => Err(errno(Errno::ENOENT)),
            },
            Store::FdHash(elems) => match elems.get(&Self::pos(&shape, key)) {
                Some(inner) => self.id_bytes(*inner),
                None => Err(errno(Errno::ENOENT)),
            },
        }
    }

    fn delete_on(&mut self, no: ObjNo, key: &[u8]) -> Result<(), Error> {
        let shape = self.check_key(no, key)?;
        let pos = Self::pos(&shape, key);
        let removed = match &mut self.obj_mut(no)?.store {
            // Array elements cannot be deleted.
            Store::Array(_) => return Err(errno(Errno::EINVAL)),
            Store::Hash(elems) => {
                return elems.remove(&pos).map(|_| ()).ok_or(errno(Errno::ENOENT));
            }
            Store::FdArray(slots) => {
                let index = array_index(key)?;
                if index >= shape.max_entries {
                    return Err(errno(Errno::E2BIG));
                }
                slots.remove(&index)
            }
            Store::FdHash(elems) => elems.remove(&pos),
        };
        match removed {
            // xchg(NULL) / unlink, then the deferred put.
            Some(old) => self.put(old),
            None => Err(errno(Errno::ENOENT)),
        }
    }

    fn next_key_on(&self, no: ObjNo, key: Option<&[u8]>) -> Result<Vec<u8>, Error> {
        if let Some(key) = key {
            self.check_key(no, key)?;
        }
        let obj = self.obj(no)?;
        let shape = obj.shape;
        let hash_next = |keys: &mut dyn Iterator<Item = &HashPos>| -> Result<Vec<u8>, Error> {
            let keys: Vec<&HashPos> = keys.collect();
            let after = key.and_then(|k| {
                let pos = Self::pos(&shape, k);
                keys.iter().position(|p| **p == pos)
            });
            let next = match after {
                Some(i) => keys.get(i + 1),
                // No key, or a key that is not there: the first key.
                None => keys.first(),
            };
            next.map(|p| p.1.clone()).ok_or(errno(Errno::ENOENT))
        };
        match &obj.store {
            Store::Array(_) | Store::FdArray(_) => {
                let index = key.map(array_index).transpose()?;
                array_next(shape.max_entries, index)
                    .map(|i| i.to_ne_bytes().to_vec())
                    .ok_or(errno(Errno::ENOENT))
            }
            Store::Hash(elems) => hash_next(&mut elems.keys()),
            Store::FdHash(elems) => hash_next(&mut elems.keys()),
        }
    }

    /// The generic (array) lookup batch: `get_next_key` from the `in_batch` key, one entry per
    /// key. The token is the last key copied.
    fn generic_lookup_batch(
        &self,
        no: ObjNo,
        in_batch: Option<u32>,
        count: u32,
    ) -> Result<BatchOut, Error> {
        let obj = self.obj(no)?;
        let max_entries = obj.shape.max_entries;
        let mut out = BatchOut {
            next: in_batch.unwrap_or(0),
            ..BatchOut::default()
        };
        let mut prev = in_batch;
        while (out.keys.len() as u64) < count as u64 {
            let Some(mut index) = array_next(max_entries, prev) else {
                out.done = true;
                break;
            };
            if let Store::FdArray(slots) = &obj.store {
                // Empty slots are skipped, as the kernel's generic batch does since 6.14 (before,
                // it retried an empty slot three times and failed with -EINTR).
                match slots.range(index..).next() {
                    Some((stored, _)) => index = *stored,
                    None => {
                        out.done = true;
                        break;
                    }
                }
            }
            let key = index.to_ne_bytes().to_vec();
            out.values.push(self.lookup_on(no, &key)?);
            out.keys.push(key);
            out.next = index;
            prev = Some(index);
        }
        Ok(out)
    }

    /// The htab batch: whole buckets from bucket `in_batch`; `-ENOSPC` when the first bucket
    /// does not fit; the end (`done`) with the token `n_buckets`.
    fn htab_batch(
        &mut self,
        no: ObjNo,
        in_batch: Option<u32>,
        count: u32,
        delete: bool,
    ) -> Result<BatchOut, Error> {
        let shape = self.obj(no)?.shape;
        let n_buckets = shape.n_buckets();
        let mut bucket = in_batch.unwrap_or(0) as u64;
        let mut out = BatchOut {
            next: bucket as u32,
            ..BatchOut::default()
        };
        if bucket >= n_buckets {
            out.done = true;
            return Ok(out);
        }
        loop {
            // The next non-empty bucket and its entries, in the model's order.
            let obj = self.obj(no)?;
            let entries: Vec<(HashPos, Option<Vec<u8>>, Option<ObjNo>)> = match &obj.store {
                Store::Hash(elems) => first_bucket(elems, bucket)
                    .into_iter()
                    .map(|(p, v)| (p, Some(v), None))
                    .collect(),
                Store::FdHash(elems) => first_bucket(elems, bucket)
                    .into_iter()
                    .map(|(p, o)| (p, None, Some(o)))
                    .collect(),
                _ => return Err(dangling("hash storage".to_string())),
            };
            let Some(found) = entries.first().map(|e| e.0 .0 as u64) else {
                out.done = true;
                out.next = n_buckets as u32;
                return Ok(out);
            };
            if entries.len() as u64 > count as u64 - out.keys.len() as u64 {
                if out.keys.is_empty() {
                    return Err(errno(Errno::ENOSPC));
                }
                out.next = found as u32;
                return Ok(out);
            }
            for (pos, value, inner) in entries {
                let value = match (value, inner) {
                    (Some(value), _) => value,
                    (None, Some(inner)) => self.id_bytes(inner)?,
                    (None, None) => return Err(dangling("hash element".to_string())),
                };
                out.keys.push(pos.1.clone());
                out.values.push(value);
                if delete {
                    self.delete_on(no, &pos.1)?;
                }
            }
            bucket = found + 1;
            out.next = bucket.min(n_buckets) as u32;
            if bucket >= n_buckets {
                out.done = true;
                return Ok(out);
            }
        }
    }
}

/// The entries of the first non-empty bucket at or after `bucket`.
fn first_bucket<V: Clone>(elems: &BTreeMap<HashPos, V>, bucket: u64) -> Vec<(HashPos, V)> {
    let Ok(bucket) = u32::try_from(bucket) else {
        return Vec::new();
    };
    let mut range = elems.range((bucket, Vec::new())..);
    let Some((first, _)) = range.next() else {
        return Vec::new();
    };
    let found = first.0;
    elems
        .range((found, Vec::new())..)
        .take_while(|(p, _)| p.0 == found)
        .map(|(p, v)| (p.clone(), v.clone()))
        .collect()
}

impl BpfSys for RefModel {
    fn map_create(&mut self, attr: &MapAttr) -> Result<Fd, Error> {
        let shape = check_attr(attr)?;
        let meta = if shape.map_type.is_map_in_map() {
            // bpf_map_meta_alloc: the template fd, then one level of nesting, then meta_equal.
            let template = self.map_of_fd(attr.inner_map_fd as Fd)?;
            let template = self.obj(template)?;
            if template.meta.is_some() {
                return Err(errno(Errno::EINVAL));
            }
            if !has_meta_equal(template.shape.map_type) {
                return Err(errno(Errno::ENOTSUPP));
            }
            Some(Meta::of_template(template.shape))
        } else {
            None
        };
        let id = self.alloc_id()?;
        let fd = self.alloc_fd()?;
        let no = self.next_obj;
        self.next_obj += 1;
        let store = Store::new(shape.layout());
        self.objs.insert(
            no,
            MapObj {
                id,
                shape,
                meta,
                refcnt: 1,
                uref: 1,
                store,
                frozen: false,
            },
        );
        self.ids.insert(id, no);
        self.fds.insert(fd, no);
        let access = FdAccess::of_create_flags(attr.map_flags);
        if access != FdAccess::READ_WRITE {
            self.access.insert(fd, access);
        }
        Ok(fd)
    }

    fn map_lookup_elem(&mut self, fd: Fd, key: &[u8]) -> Result<Vec<u8>, Error> {
        let no = self.map_for(fd, true, false)?;
        self.lookup_on(no, key)
    }

    fn map_freeze(&mut self, fd: Fd) -> Result<(), Error> {
        let no = self.map_for(fd, false, true)?;
        if let Some(map) = self.objs.get_mut(&no) {
            map.frozen = true;
        }
        Ok(())
    }

    fn map_update_elem(
        &mut self,
        fd: Fd,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), Error> {
        let no = self.map_for(fd, false, true)?;
        self.update_on(no, key, value, flags)
    }

    fn map_delete_elem(&mut self, fd: Fd, key: &[u8]) -> Result<(), Error> {
        let no = self.map_for(fd, false, true)?;
        self.delete_on(no, key)
    }

    fn map_lookup_and_delete_elem(&mut self, fd: Fd, key: &[u8]) -> Result<Vec<u8>, Error> {
        let no = self.map_for(fd, true, true)?;
        let shape = self.check_key(no, key)?;
        if shape.layout() != Layout::Hash {
            return Err(errno(Errno::ENOTSUPP));
        }
        let value = self.lookup_on(no, key)?;
        self.delete_on(no, key)?;
        Ok(value)
    }

    fn map_get_next_key(&mut self, fd: Fd, key: Option<&[u8]>) -> Result<Vec<u8>, Error> {
        let no = self.map_for(fd, true, false)?;
        self.next_key_on(no, key)
    }

    fn map_lookup_batch(
        &mut self,
        fd: Fd,
        in_batch: Option<u32>,
        count: u32,
    ) -> Result<BatchOut, Error> {
        let no = self.map_for(fd, true, false)?;
        let shape = self.obj(no)?.shape;
        if shape.map_type == MapType::ProgArray {
            return Err(errno(Errno::ENOTSUPP));
        }
        if count == 0 {
            return Ok(BatchOut {
                next: in_batch.unwrap_or(0),
                ..BatchOut::default()
            });
        }
        match shape.layout() {
            Layout::Array | Layout::FdArray => self.generic_lookup_batch(no, in_batch, count),
            Layout::Hash | Layout::FdHash => self.htab_batch(no, in_batch, count, false),
        }
    }

    fn map_lookup_and_delete_batch(
        &mut self,
        fd: Fd,
        in_batch: Option<u32>,
        count: u32,
    ) -> Result<BatchOut, Error> {
        let no = self.map_for(fd, true, true)?;
        let shape = self.obj(no)?.shape;
        match shape.layout() {
            Layout::Array | Layout::FdArray => Err(errno(Errno::ENOTSUPP)),
            Layout::Hash | Layout::FdHash if count == 0 => Ok(BatchOut {
                next: in_batch.unwrap_or(0),
                ..BatchOut::default()
            }),
            Layout::Hash | Layout::FdHash => self.htab_batch(no, in_batch, count, true),
        }
    }

    fn map_update_batch(
        &mut self,
        fd: Fd,
        keys: &[Vec<u8>],
        values: &[Vec<u8>],
        flags: u64,
    ) -> Result<u32, (u32, Error)> {
        let no = self.map_for(fd, false, true).map_err(|e| (0, e))?;
        let shape = self.obj(no).map_err(|e| (0, e))?.shape;
        if shape.map_type == MapType::ProgArray {
            return Err((0, errno(Errno::ENOTSUPP)));
        }
        // Batch elem flags may only be BPF_F_LOCK, and no map has a spin lock.
        if flags != 0 || keys.len() != values.len() {
            return Err((0, errno(Errno::EINVAL)));
        }
        for (done, (key, value)) in keys.iter().zip(values).enumerate() {
            self.update_on(no, key, value, BPF_ANY)
                .map_err(|e| (done as u32, e))?;
        }
        Ok(keys.len() as u32)
    }

    fn map_delete_batch(&mut self, fd: Fd, keys: &[Vec<u8>]) -> Result<u32, (u32, Error)> {
        let no = self.map_for(fd, false, true).map_err(|e| (0, e))?;
        let shape = self.obj(no).map_err(|e| (0, e))?.shape;
        if !matches!(shape.layout(), Layout::Hash | Layout::FdHash) {
            return Err((0, errno(Errno::ENOTSUPP)));
        }
        for (done, key) in keys.iter().enumerate() {
            self.delete_on(no, key).map_err(|e| (done as u32, e))?;
        }
        Ok(keys.len() as u32)
    }

    fn map_get_fd_by_id(&mut self, id: MapId) -> Result<Fd, Error> {
        let no = *self.ids.get(&id).ok_or(errno(Errno::ENOENT))?;
        self.open_fd(no)
    }

    fn map_info(&mut self, fd: Fd) -> Result<MapInfo, Error> {
        // BPF_OBJ_GET_INFO_BY_FD says EBADFD, not EBADF, for an fd that is not open.
        let no = self.map_of_fd(fd).map_err(|e| match e.errno() {
            Some(Errno::EBADF) => errno(Errno::EBADFD),
            _ => e,
        })?;
        let obj = self.obj(no)?;
        Ok(MapInfo {
            id: obj.id,
            map_type: obj.shape.map_type as u32,
            key_size: obj.shape.key_size,
            value_size: obj.shape.value_size,
            max_entries: obj.shape.max_entries,
            map_flags: obj.shape.map_flags,
        })
    }

    fn close(&mut self, fd: Fd) -> Result<(), Error> {
        let no = self.map_of_fd(fd)?;
        self.fds.remove(&fd);
        self.access.remove(&fd);
        let obj = self.obj_mut(no)?;
        obj.uref = obj.uref.checked_sub(1).ok_or_else(|| {
            Error::Fault(Fault::DoublePut {
                object: format!("map id {}", obj.id),
                counter: "uref",
                at: Stamp::default(),
            })
        })?;
        self.put(no)
    }
}

#[cfg(test)]
mod tests;
