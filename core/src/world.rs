//! The world: every map object of one modelled kernel, its ids, the process's fd table, the
//! reference counts, the RCU state and the log of frees, plus the API programs use.
//!
//! A [`World`] is shared by every task of a run (syscall callers, programs, a grace-period
//! task) and all its methods take `&self`. The syscalls are in [`crate::sys`]; this module holds
//! the object model (§1, §6) and the program-side API:
//!
//! * read-side sections: [`World::rcu_read_lock`] / [`World::rcu_read_unlock`] (two flavours);
//! * helpers: [`World::prog_lookup`], [`World::prog_update`], [`World::prog_delete`];
//! * memory: [`World::load`], [`World::store`], [`World::atomic`], [`World::map_load_slot`], on
//!   `(map handle, region offset)`; every access checks the map is live before and after;
//! * used maps: [`World::prog_hold_maps`] / [`World::prog_release_maps`] (refcnt, and
//!   `sleepable_refcnt` for sleepable programs).
//!
//! Checkers use [`World::audit_quiescent`] (§8.4) and [`World::check_conservation`] (§8.5).
//!
//! # Tasks and CPUs: the contract with whoever runs the world
//! * Every task that enters read-side sections or takes locks sets a distinct
//!   [`Platform::set_current_task`] below [`WorldConfig::max_tasks`]. (Threads that share a slot
//!   are safe for RCU, they just count as one reader, but lockdep then mixes their records.)
//! * Tasks that run at the same time set distinct [`Platform::set_current_cpu`] numbers, unless
//!   one of them models a nested context (an interrupt-time program) of the other: per-CPU
//!   state (re-entrancy slots → `-EBUSY`, spare elements, bucket-lock self-deadlock) is exactly
//!   what such nesting exercises, and what two unrelated tasks on one CPU would falsely trip.
//!
//! # Invariants
//! * An id is never reused while its map lives, and is released **first** when refcnt reaches
//!   0, so `get_fd_by_id` fails from that moment on.
//! * A map is freed at most once (the arena reports a second free as [`Fault::DoubleFree`]); a
//!   deferred put frees only from [`World::poll`], after the grace period(s) of §6.
//! * Fds 0–2 exist and are not maps; new fds are the lowest free number ≥ 3.
//! * Each open fd carries its access mode ([`FdAccess`], from `BPF_F_RDONLY`/`BPF_F_WRONLY` at
//!   creation; D1 of docs/kernel-disagreements.md): it belongs to the fd, not the map, so it is
//!   in neither `map_flags` nor the meta, and `get_fd_by_id` opens a read-write fd.

use crate::arena::{Arena, Handle};
use crate::errno::Errno;
use crate::fault::{Error, Fault, Result, Stamp};
use crate::isa::AtomicOp;
use crate::lock::{Lockdep, SpinLock, ID_LOCK};
use crate::maps::{self, Caller, Found, Map, MapDef, MapMeta};
use crate::mutants::{Mutant, Mutants};
use crate::ptr::{Ptr, RegionKind};
use crate::rcu::{Flavor, Object, Policy, Rcu};
use crate::sync::{Atomic64, Ordering, Platform};
use crate::uapi::{Fd, MapId, MapType};
use std::collections::BTreeMap;

/// The first fd a map can get (0, 1 and 2 are stdin, stdout and stderr).
pub const FIRST_MAP_FD: Fd = 3;
/// Ids are allocated cyclically in `1..=MAX_MAP_ID` (`idr_alloc_cyclic(.., 1, INT_MAX)`).
pub const MAX_MAP_ID: MapId = i32::MAX as MapId;
/// Bound of the `inc_not_zero` CAS loop of `get_fd_by_id`.
pub(crate) const INC_NOT_ZERO_TRIES: u32 = 1 << 16;

/// What an fd may do through the syscall (its file mode, `map_get_sys_perms`): an fd from
/// `BPF_MAP_CREATE` with `BPF_F_RDONLY` only reads, with `BPF_F_WRONLY` only writes; every
/// other fd reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FdAccess {
    pub read: bool,
    pub write: bool,
}

impl FdAccess {
    pub const READ_WRITE: FdAccess = FdAccess {
        read: true,
        write: true,
    };

    /// The access of the fd `BPF_MAP_CREATE` returns for these flags (both set is refused
    /// before this is asked).
    pub fn of_create_flags(map_flags: u32) -> FdAccess {
        FdAccess {
            read: map_flags & crate::uapi::BPF_F_WRONLY == 0,
            write: map_flags & crate::uapi::BPF_F_RDONLY == 0,
        }
    }

    /// Whether an operation that reads (`read`) and/or writes (`write`) may go through.
    pub fn allows(self, read: bool, write: bool) -> bool {
        (self.read || !read) && (self.write || !write)
    }
}

/// An entry of the process's fd table: the map (or, `prog` set, the program of
/// [`crate::progs`]) and what the fd may do with it. One table for both, as the kernel's:
/// a number is either, and a map path that meets a program fd refuses it (`-EINVAL`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpenFd {
    pub(crate) handle: Handle,
    pub(crate) access: FdAccess,
    pub(crate) prog: bool,
}

impl OpenFd {
    /// The map behind this fd: `-EINVAL` for a program's.
    pub(crate) fn map(self) -> Result<Handle> {
        if self.prog {
            Err(Errno::EINVAL.into())
        } else {
            Ok(self.handle)
        }
    }
}

/// Where an injected fault may strike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultSite {
    /// A `BPF_F_NO_PREALLOC` element allocation (`-ENOMEM`).
    HashElemAlloc,
}

/// Injected faults: off by default; the simulator turns them on. Each decision is a
/// [`Platform::choose`], so it comes from the seed or the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FaultPlan {
    /// Chance per thousand that a no-prealloc element allocation fails.
    pub hash_alloc_fail_per_mille: u32,
}

/// The shape of a world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WorldConfig {
    /// CPUs: per-CPU freelists, spares and re-entrancy slots.
    pub cpus: usize,
    /// Tasks `0..max_tasks` may run in the world (RCU reader slots, lockdep records).
    pub max_tasks: usize,
    pub faults: FaultPlan,
    /// Features the modelled release lacks (`history`): none for today's kernel.
    pub lacks: crate::history::Lacks,
}

impl Default for WorldConfig {
    /// Two CPUs (the smallest machine with cross-CPU freelist steals) and eight tasks (enough
    /// for the selftest scenarios' writers, readers and a grace-period task).
    fn default() -> Self {
        WorldConfig {
            cpus: 2,
            max_tasks: 8,
            faults: FaultPlan::default(),
            lacks: crate::history::Lacks::NONE,
        }
    }
}

/// Where a program lookup landed (the decoded form of [`World::prog_lookup`]'s register value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A value at `offset` of `map`'s region.
    Value { map: Handle, offset: u32 },
    /// An outer map's slot: the inner map (possibly already freed: using it is then the fault).
    InnerMap(Handle),
}

/// One map free, for audits and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeRecord {
    pub handle: Handle,
    pub id: MapId,
    pub map_type: MapType,
    pub at: Stamp,
}

/// Where [`World::teardown_audit`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeardownStep {
    Conservation,
    /// Releasing the maps of the program at this index of the list given.
    Unload(usize),
    Close(crate::uapi::Fd),
    Quiescence,
}

impl std::fmt::Display for TeardownStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TeardownStep::Conservation => f.write_str("check_conservation"),
            TeardownStep::Unload(i) => write!(f, "unload program {i}"),
            TeardownStep::Close(fd) => write!(f, "close fd {fd}"),
            TeardownStep::Quiescence => f.write_str("audit_quiescent"),
        }
    }
}

/// A live map as audits see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapState {
    pub handle: Handle,
    pub id: MapId,
    pub map_type: MapType,
    pub refcnt: u64,
    pub uref: u64,
}

pub(crate) struct IdTable {
    pub(crate) next: MapId,
    pub(crate) live: BTreeMap<MapId, Handle>,
}

impl IdTable {
    pub(crate) fn new() -> Self {
        IdTable {
            next: 1,
            live: BTreeMap::new(),
        }
    }

    /// `idr_alloc_cyclic(.., 1, INT_MAX)`: the next id from where the last one left off,
    /// wrapping to 1 and skipping live ones; `None` when every id is taken. The caller records
    /// the object under it in `live`.
    pub(crate) fn next_free(&mut self) -> Option<MapId> {
        for _ in 0..MAX_MAP_ID {
            let id = self.next;
            self.next = if self.next >= MAX_MAP_ID {
                1
            } else {
                self.next + 1
            };
            if !self.live.contains_key(&id) {
                return Some(id);
            }
        }
        None
    }
}

/// The modelled kernel. See the module documentation.
pub struct World<P: Platform> {
    mutants: Mutants,
    config: WorldConfig,
    clock: P::Atomic,
    pub(crate) maps: Arena<P, Map<P>>,
    /// The newest generation of each arena slot, to resolve 8-bit pointer generations.
    gens: P::Mutex<Vec<u32>>,
    pub(crate) ids: SpinLock<P, IdTable>,
    pub(crate) fds: P::Mutex<BTreeMap<Fd, OpenFd>>,
    /// Loaded programs ([`crate::progs`]).
    pub(crate) progs: crate::progs::ProgTable<P>,
    rcu: Rcu<P>,
    lockdep: Lockdep<P>,
    frees: P::Mutex<Vec<FreeRecord>>,
}

impl<P: Platform> Default for World<P> {
    /// The correct core on the default configuration.
    fn default() -> Self {
        World::new(Mutants::NONE, WorldConfig::default())
    }
}

impl<P: Platform> World<P> {
    pub fn new(mutants: Mutants, config: WorldConfig) -> Self {
        World {
            mutants,
            config,
            clock: P::atomic(1),
            maps: Arena::new("map"),
            gens: P::mutex(Vec::new()),
            ids: SpinLock::new(ID_LOCK, IdTable::new()),
            fds: P::mutex(BTreeMap::new()),
            progs: crate::progs::ProgTable::new(),
            rcu: Rcu::new(config.max_tasks),
            lockdep: Lockdep::new(config.max_tasks),
            frees: P::mutex(Vec::new()),
        }
    }

    pub fn mutants(&self) -> Mutants {
        self.mutants
    }
    pub fn config(&self) -> &WorldConfig {
        &self.config
    }
    pub fn rcu(&self) -> &Rcu<P> {
        &self.rcu
    }
    pub fn lockdep(&self) -> &Lockdep<P> {
        &self.lockdep
    }

    /// The next event: a logical timestamp on the calling task and CPU.
    pub fn stamp(&self) -> Stamp {
        Stamp {
            seq: self.clock.fetch_add(1, Ordering::Relaxed),
            task: P::current_task(),
            cpu: P::current_cpu(),
        }
    }

    /// Should the fault at `site` strike now? Off unless the plan says so.
    pub fn inject(&self, site: FaultSite) -> bool {
        match site {
            FaultSite::HashElemAlloc => {
                let chance = self.config.faults.hash_alloc_fail_per_mille;
                chance > 0 && (P::choose(1000) as u32) < chance
            }
        }
    }

    // ---- objects -------------------------------------------------------------------------

    /// The map behind `handle`, or the use-after-free fault.
    pub fn map(&self, handle: Handle) -> Result<P::Arc<Map<P>>> {
        // Stamp only on the fault path: the clock is shared, and every extra shared access is
        // one more interleaving for the model checkers to explore.
        self.maps
            .get(handle, Stamp::default())
            .map_err(|fault| match fault {
                Fault::UseAfterFree {
                    object, freed_at, ..
                } => Fault::UseAfterFree {
                    object,
                    freed_at,
                    accessed_at: self.stamp(),
                }
                .into(),
                other => other.into(),
            })
    }

    pub(crate) fn insert_map(&self, map: Map<P>) -> Handle {
        let handle = self.maps.insert(map);
        P::lock(&self.gens, |gens| {
            if gens.len() <= handle.index as usize {
                gens.resize(handle.index as usize + 1, 0);
            }
            gens[handle.index as usize] = handle.gen;
        });
        handle
    }

    /// The map an encoded map pointer names (an outer map slot, a program register). A pointer
    /// to a freed map resolves to a dead handle, which every access then reports.
    pub fn resolve_map_ptr(&self, ptr: u64) -> Result<Handle> {
        let decoded = Ptr::decode(ptr)
            .filter(|p| p.kind == RegionKind::Map)
            .ok_or_else(|| {
                Error::from(Fault::OutOfBounds {
                    what: format!("{ptr:#x} is not a map pointer"),
                    at: self.stamp(),
                })
            })?;
        let newest = P::lock(&self.gens, |gens| gens.get(decoded.index as usize).copied());
        let gen = match newest {
            Some(gen) if gen as u8 == decoded.gen => gen,
            _ => u32::from(decoded.gen),
        };
        Ok(Handle {
            index: decoded.index,
            gen,
        })
    }

    /// [`World::resolve_map_ptr`] for a decoded pointer (its offset is ignored).
    pub fn resolve_ptr(&self, ptr: Ptr) -> Result<Handle> {
        self.resolve_map_ptr(Ptr { offset: 0, ..ptr }.encode())
    }

    /// The id of the map an encoded pointer names (outer map lookups from user space).
    pub fn map_id_of_ptr(&self, ptr: u64) -> Result<MapId> {
        Ok(self.map(self.resolve_map_ptr(ptr)?)?.id())
    }

    /// Resolves a user fd: `-EBADF` when not open, `-EINVAL` for 0–2 (open, not maps).
    pub fn fd_to_map(&self, fd: Fd) -> Result<(Handle, P::Arc<Map<P>>)> {
        if (0..FIRST_MAP_FD).contains(&fd) {
            return Err(Errno::EINVAL.into());
        }
        let open = P::lock(&self.fds, |fds| fds.get(&fd).copied()).ok_or(Errno::EBADF)?;
        let handle = open.map()?;
        Ok((handle, self.map(handle)?))
    }

    /// Opens an fd on `open`'s object: the lowest free number from [`FIRST_MAP_FD`].
    pub(crate) fn install(&self, open: OpenFd) -> Fd {
        P::lock(&self.fds, |fds| {
            let mut fd = FIRST_MAP_FD;
            while fds.contains_key(&fd) {
                fd += 1;
            }
            fds.insert(fd, open);
            fd
        })
    }

    /// The handle behind a map fd (programs name their `used_maps` this way).
    pub fn map_handle(&self, fd: Fd) -> Result<Handle> {
        Ok(self.fd_to_map(fd)?.0)
    }

    /// `bpf_map_meta_alloc(inner_map_fd)`.
    pub fn meta_from_fd(&self, fd: Fd) -> Result<MapMeta> {
        let (_, template) = self.fd_to_map(fd)?;
        MapMeta::from_template(&template, self.mutants)
    }

    /// `bpf_map_fd_get_ptr`: resolve the fd, check it against the meta, take a reference.
    /// Returns the encoded pointer to store. The reference is taken under the fd table lock, so
    /// a concurrent `close` cannot drop the map to 0 in between.
    pub fn fd_get_ptr(&self, meta: &MapMeta, fd: Fd) -> Result<u64> {
        if (0..FIRST_MAP_FD).contains(&fd) {
            return Err(Errno::EINVAL.into());
        }
        let (handle, map) = P::lock(&self.fds, |fds| -> Result<_> {
            // The stored fd's access mode is not checked (`bpf_map_get` in `fd_get_ptr`).
            let handle = fds.get(&fd).ok_or(Errno::EBADF)?.map()?;
            let map = self.map(handle)?;
            if !meta.accepts(&map.def, self.mutants) {
                return Err(Errno::EINVAL.into());
            }
            map.refcnt.fetch_add(1, Ordering::AcqRel);
            Ok((handle, map))
        })?;
        drop(map);
        Ok(maps::map_ptr(handle))
    }

    /// `map_fd_put_ptr(outer, inner, need_defer)`: marks the inner map for a deferred free as
    /// §6 says (policy chosen by the outer map's `sleepable_refcnt`), then drops the reference.
    pub fn fd_put_ptr(&self, outer: &Map<P>, ptr: u64, need_defer: bool) -> Result<()> {
        let handle = self.resolve_map_ptr(ptr)?;
        let inner = self.map(handle)?;
        let need_defer = need_defer && !self.mutants.on(Mutant::PutWithoutDefer);
        if need_defer {
            if outer.sleepable_refcnt() > 0 && !self.mutants.on(Mutant::IgnoreSleepableGp) {
                inner.free_after_mult_rcu_gp.store(1, Ordering::Release);
            } else {
                inner.free_after_rcu_gp.store(1, Ordering::Release);
            }
        }
        self.map_put(handle, &inner)
    }

    /// `bpf_map_put`: drops a reference; at 0 releases the id first, then frees the map after
    /// the grace period(s) its flags ask for, or at once.
    pub fn map_put(&self, handle: Handle, map: &Map<P>) -> Result<()> {
        let before = map.refcnt.fetch_sub(1, Ordering::AcqRel);
        if before == 0 {
            map.refcnt.fetch_add(1, Ordering::AcqRel);
            return Err(Fault::DoublePut {
                object: format!("map {handle} (id {})", map.id()),
                counter: "refcnt",
                at: self.stamp(),
            }
            .into());
        }
        if before != 1 {
            return Ok(());
        }
        let id = map.id();
        self.ids
            .lock(&self.lockdep, || self.stamp(), |ids| ids.live.remove(&id))?;
        let at = self.stamp();
        if self.mutants.on(Mutant::FreeInnerWithoutGp) {
            return self.free_map(handle);
        }
        if map.free_after_mult_rcu_gp.load(Ordering::Acquire) != 0 {
            self.rcu
                .call(Policy::TasksTraceThenRcuGp, Object::Map(handle), at);
            Ok(())
        } else if map.free_after_rcu_gp.load(Ordering::Acquire) != 0 {
            self.rcu.call(Policy::RcuGp, Object::Map(handle), at);
            Ok(())
        } else {
            self.free_map(handle)
        }
    }

    /// Frees a map: poisons its arena slot, logs the free, releases what it holds.
    pub(crate) fn free_map(&self, handle: Handle) -> Result<()> {
        let at = self.stamp();
        let map = self.maps.free(handle, at)?;
        map.mark_freed(at);
        P::lock(&self.frees, |frees| {
            frees.push(FreeRecord {
                handle,
                id: map.id(),
                map_type: map.def.map_type,
                at,
            })
        });
        map.ops.free(self, &map)
    }

    /// Runs one deferred free.
    fn free_object(&self, object: Object) -> Result<()> {
        match object {
            Object::Map(handle) => self.free_map(handle),
            Object::Prog(handle) => self.free_prog(handle),
        }
    }

    /// Runs the deferred frees whose grace periods are over.
    pub fn poll(&self) -> Result<()> {
        for object in self.rcu.poll() {
            self.free_object(object)?;
        }
        Ok(())
    }

    /// `synchronize_rcu()` (or the tasks-trace flavour), then the deferred frees it made ready.
    pub fn synchronize(&self, flavor: Flavor) -> Result<()> {
        self.rcu.synchronize(flavor, self.stamp())?;
        self.poll()
    }

    /// `rcu_barrier()`: waits for every queued deferred free and runs it.
    pub fn barrier(&self) -> Result<()> {
        self.rcu.barrier(self.stamp(), |ready| {
            for object in ready {
                self.free_object(object)?;
            }
            Ok::<(), Error>(())
        })
    }

    // ---- programs ------------------------------------------------------------------------

    pub fn rcu_read_lock(&self, flavor: Flavor) -> Result<()> {
        Ok(self
            .rcu
            .read_lock(flavor, Stamp::default())
            .map_err(|f| self.restamp(f))?)
    }

    pub fn rcu_read_unlock(&self, flavor: Flavor) -> Result<()> {
        Ok(self
            .rcu
            .read_unlock(flavor, Stamp::default())
            .map_err(|f| self.restamp(f))?)
    }

    /// Runs `f` inside a read-side section of `flavor`, leaving it on every path.
    pub fn read_section<R>(&self, flavor: Flavor, f: impl FnOnce() -> Result<R>) -> Result<R> {
        self.rcu_read_lock(flavor)?;
        let result = f();
        self.rcu_read_unlock(flavor)?;
        result
    }

    fn restamp(&self, fault: Fault) -> Fault {
        match fault {
            Fault::OutOfBounds { what, .. } => Fault::OutOfBounds {
                what,
                at: self.stamp(),
            },
            other => other,
        }
    }

    /// `bpf_map_lookup_elem` from a program: the value pointer, or for an outer map the inner
    /// map pointer, encoded for a register (`None` is NULL).
    pub fn prog_lookup(&self, handle: Handle, key: &[u8]) -> Result<Option<u64>> {
        self.prog_found(handle, key, |map| map.ops.lookup(self, key))
    }

    /// `bpf_map_lookup_percpu_elem`: CPU `cpu`'s copy of the value (an encoded map pointer), or
    /// `None` for NULL.
    pub fn prog_lookup_percpu(&self, handle: Handle, key: &[u8], cpu: u32) -> Result<Option<u64>> {
        self.prog_found(handle, key, |map| map.ops.lookup_percpu(self, key, cpu))
    }

    /// A program's lookup by `lookup` (one of the map's lookup ops): the key checked first, the
    /// map's liveness after, and what it found encoded for a register (`None` is NULL).
    fn prog_found(
        &self,
        handle: Handle,
        key: &[u8],
        lookup: impl FnOnce(&Map<P>) -> Result<Option<Found>>,
    ) -> Result<Option<u64>> {
        let map = self.map(handle)?;
        self.check_key(&map, key)?;
        let found = lookup(&map)?;
        map.check_live(handle, || self.stamp())?;
        Ok(found.map(|found| match found {
            Found::Value { offset } => Ptr::map(handle, offset).encode(),
            Found::MapPtr(ptr) => ptr,
        }))
    }

    /// `__htab_map_lookup_elem` from an inlined hash lookup: the element's address (a map
    /// pointer into the element pool), or `None` for NULL.
    pub fn prog_lookup_elem(&self, handle: Handle, key: &[u8]) -> Result<Option<u64>> {
        self.prog_found(handle, key, |map| {
            let elem = map.ops.lookup_elem_offset(self, key)?;
            Ok(elem.map(|offset| Found::Value { offset }))
        })
    }

    /// [`World::prog_lookup`], decoded: the value's map and offset, or the inner map's handle.
    pub fn prog_lookup_loc(&self, handle: Handle, key: &[u8]) -> Result<Option<Location>> {
        let map = self.map(handle)?;
        self.check_key(&map, key)?;
        let found = map.ops.lookup(self, key)?;
        map.check_live(handle, || self.stamp())?;
        found
            .map(|found| match found {
                Found::Value { offset } => Ok(Location::Value {
                    map: handle,
                    offset,
                }),
                Found::MapPtr(ptr) => Ok(Location::InnerMap(self.resolve_map_ptr(ptr)?)),
            })
            .transpose()
    }

    /// `bpf_map_update_elem` from a program (helper 2). Outer maps refuse (the verifier does).
    pub fn prog_update(&self, handle: Handle, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        let map = self.map(handle)?;
        if map.ops.holds_maps() {
            return Err(Errno::EINVAL.into());
        }
        self.check_key(&map, key)?;
        if value.len() != map.def.value_size as usize {
            return Err(Fault::OutOfBounds {
                what: format!(
                    "value of {} bytes for a map with value_size {}",
                    value.len(),
                    map.def.value_size
                ),
                at: self.stamp(),
            }
            .into());
        }
        map.ops
            .update(self, &map, key, value, flags, Caller::Program)?;
        Ok(map.check_live(handle, || self.stamp())?)
    }

    /// `bpf_map_delete_elem` from a program (helper 3).
    pub fn prog_delete(&self, handle: Handle, key: &[u8]) -> Result<()> {
        let map = self.map(handle)?;
        if map.ops.holds_maps() {
            return Err(Errno::EINVAL.into());
        }
        self.check_key(&map, key)?;
        map.ops.delete(self, &map, key)?;
        Ok(map.check_live(handle, || self.stamp())?)
    }

    fn check_key(&self, map: &Map<P>, key: &[u8]) -> Result<()> {
        if key.len() != map.def.key_size as usize {
            return Err(Fault::OutOfBounds {
                what: format!(
                    "key of {} bytes for a map with key_size {}",
                    key.len(),
                    map.def.key_size
                ),
                at: self.stamp(),
            }
            .into());
        }
        Ok(())
    }

    /// A program load of `size` bytes at `offset` of the map's region (header fields or values).
    pub fn load(&self, handle: Handle, offset: u32, size: u32) -> Result<u64> {
        let map = self.map(handle)?;
        let value = map.load(offset, size, || self.stamp())?;
        map.check_live(handle, || self.stamp())?;
        Ok(value)
    }

    /// A program store into value memory.
    pub fn store(&self, handle: Handle, offset: u32, size: u32, value: u64) -> Result<()> {
        let map = self.map(handle)?;
        map.store(offset, size, value, || self.stamp())?;
        Ok(map.check_live(handle, || self.stamp())?)
    }

    /// A program atomic on value memory (`r0` is the `cmpxchg` comparand); returns the old
    /// value.
    pub fn atomic(
        &self,
        handle: Handle,
        offset: u32,
        size: u32,
        op: AtomicOp,
        operand: u64,
        r0: u64,
    ) -> Result<u64> {
        let map = self.map(handle)?;
        let old = map.atomic(offset, size, op, operand, r0, || self.stamp())?;
        map.check_live(handle, || self.stamp())?;
        Ok(old)
    }

    /// Inlined array-of-maps code: the 8-byte slot at `offset` as an encoded map pointer (0 =
    /// empty).
    pub fn map_load_slot(&self, handle: Handle, offset: u32) -> Result<u64> {
        self.load(handle, offset, 8)
    }

    /// A map's shape.
    pub fn map_def(&self, handle: Handle) -> Result<MapDef> {
        Ok(self.map(handle)?.def)
    }

    /// An outer map's inner map meta.
    pub fn map_meta(&self, handle: Handle) -> Result<Option<MapMeta>> {
        Ok(self.map(handle)?.ops.meta().copied())
    }

    /// The array `index_mask` (arrays and array-of-maps).
    pub fn map_index_mask(&self, handle: Handle) -> Result<Option<u32>> {
        Ok(self.map(handle)?.ops.index_mask())
    }

    /// A loaded program's `used_maps`: one refcnt on each, plus `sleepable_refcnt` when the
    /// program is sleepable.
    pub fn prog_hold_maps(&self, maps: &[Handle], sleepable: bool) -> Result<()> {
        for &handle in maps {
            let map = self.map(handle)?;
            if map.refcnt.fetch_add(1, Ordering::AcqRel) == 0 {
                map.refcnt.fetch_sub(1, Ordering::AcqRel);
                return Err(Fault::UseAfterFree {
                    object: format!("map {handle} (refcnt already 0)"),
                    freed_at: None,
                    accessed_at: self.stamp(),
                }
                .into());
            }
            if sleepable {
                map.sleepable_refcnt.fetch_add(1, Ordering::AcqRel);
            }
        }
        Ok(())
    }

    /// Releases what [`World::prog_hold_maps`] took (program unload, after its last run).
    pub fn prog_release_maps(&self, maps: &[Handle], sleepable: bool) -> Result<()> {
        for &handle in maps {
            let map = self.map(handle)?;
            if sleepable {
                map.sleepable_refcnt.fetch_sub(1, Ordering::AcqRel);
            }
            self.map_put(handle, &map)?;
        }
        Ok(())
    }

    // ---- audits --------------------------------------------------------------------------

    /// Every map still allocated.
    pub fn live_maps(&self) -> Vec<MapState> {
        self.maps
            .live()
            .into_iter()
            .filter_map(|handle| {
                let map = self.maps.get(handle, Stamp::default()).ok()?;
                Some(MapState {
                    handle,
                    id: map.id(),
                    map_type: map.def.map_type,
                    refcnt: map.refcnt(),
                    uref: map.uref(),
                })
            })
            .collect()
    }

    /// Every free so far, in order.
    pub fn frees(&self) -> Vec<FreeRecord> {
        P::lock(&self.frees, |frees| frees.clone())
    }

    /// Ids that still resolve.
    pub fn live_ids(&self) -> Vec<MapId> {
        self.ids
            .lock(&self.lockdep, Stamp::default, |ids| {
                ids.live.keys().copied().collect()
            })
            .unwrap_or_default()
    }

    /// §8.4 at quiescence (all fds closed, programs released): waits for the deferred frees,
    /// then requires every map freed exactly once and no id live.
    pub fn audit_quiescent(&self) -> Result<()> {
        self.barrier()?;
        if let Some(state) = self.live_maps().first() {
            return Err(Fault::Leak {
                object: format!(
                    "map {} (id {}, {})",
                    state.handle,
                    state.id,
                    state.map_type.name()
                ),
                detail: format!(
                    "still allocated at quiescence: refcnt {}, uref {}",
                    state.refcnt, state.uref
                ),
            }
            .into());
        }
        let ids = self.live_ids();
        if !ids.is_empty() {
            return Err(Fault::Leak {
                object: format!("ids {ids:?}"),
                detail: "still resolve at quiescence".into(),
            }
            .into());
        }
        let frees = self.frees();
        let mut seen = BTreeMap::new();
        for free in &frees {
            if let Some(first) = seen.insert(free.handle, free.at) {
                return Err(Fault::DoubleFree {
                    object: format!("map {}", free.handle),
                    first,
                    second: free.at,
                }
                .into());
            }
        }
        Ok(())
    }

    /// §8.5 on every live hash map (call at quiescence).
    pub fn check_conservation(&self) -> Result<()> {
        for handle in self.maps.live() {
            if let Ok(map) = self.maps.get(handle, Stamp::default()) {
                map.ops.check_conservation()?;
            }
        }
        Ok(())
    }

    /// The end of a run, the same in every harness (semantics.md §8.5, §8.4): freelist
    /// conservation on every live hash, then the map references of programs held outside the
    /// world released (`programs`: a harness's hand-held `prog_hold_maps`; a program loaded
    /// with `prog_load` is the world's and goes with its fd), every fd still open closed (map
    /// and program fds alike), and the
    /// quiescence audit after the RCU barrier. The first failure is returned with the step it
    /// happened at; a harness checks its own invariants (drained values, pinned values) before,
    /// and `closed` runs once everything is closed, before the audit (a harness's trace line).
    pub fn teardown_audit<'a>(
        &self,
        programs: impl IntoIterator<Item = (&'a [Handle], bool)>,
        closed: impl FnOnce(),
    ) -> std::result::Result<(), (TeardownStep, Error)> {
        self.check_conservation()
            .map_err(|e| (TeardownStep::Conservation, e))?;
        for (index, (maps, sleepable)) in programs.into_iter().enumerate() {
            self.prog_release_maps(maps, sleepable)
                .map_err(|e| (TeardownStep::Unload(index), e))?;
        }
        for fd in self.open_fds() {
            self.close(fd).map_err(|e| (TeardownStep::Close(fd), e))?;
        }
        closed();
        self.audit_quiescent()
            .map_err(|e| (TeardownStep::Quiescence, e))
    }

    /// Bytes the kernel would charge for the map behind `handle`.
    pub fn footprint(&self, handle: Handle) -> Result<u64> {
        Ok(self.map(handle)?.ops.footprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::{header, ARRAY_VALUE_OFFSET};
    use crate::sync::Std;
    use crate::uapi::{MapAttr, BPF_ANY};

    fn oob<T: std::fmt::Debug>(result: Result<T>) -> bool {
        matches!(result, Err(Error::Fault(Fault::OutOfBounds { .. })))
    }

    #[test]
    fn an_array_of_maps_is_an_array_of_slots_to_programs_and_refuses_their_updates() {
        let w = World::<Std>::default();
        let tpl = w
            .map_create(&MapAttr::new(MapType::Array, 4, 4, 1))
            .unwrap();
        let fd = w
            .map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 5).inner(tpl))
            .unwrap();
        let h = w.map_handle(fd).unwrap();
        // `struct bpf_array`'s fields for its 8-byte slots, as for any array of 5 entries.
        assert_eq!(w.load(h, header::ARRAY_ELEM_SIZE, 4).unwrap(), 8);
        assert_eq!(w.load(h, header::ARRAY_INDEX_MASK, 4).unwrap(), 7);
        assert_eq!(w.map_index_mask(h).unwrap(), Some(7));
        // Its memory is the slots': as much as an array of five 8-byte values.
        let plain = w
            .map_create(&MapAttr::new(MapType::Array, 4, 8, 5))
            .unwrap();
        let plain = w.map_handle(plain).unwrap();
        assert_eq!(w.footprint(h).unwrap(), w.footprint(plain).unwrap());
        // A program may not store into or delete from it (the verifier refuses first; the
        // world refuses too, and the slot is untouched).
        let key = 0u32.to_le_bytes();
        w.map_update_elem(fd, &key, &(tpl as u32).to_le_bytes(), BPF_ANY)
            .unwrap();
        let id = w.map_lookup_elem(fd, &key).unwrap();
        assert!(matches!(
            w.prog_update(h, &key, &(tpl as u32).to_le_bytes(), BPF_ANY),
            Err(Error::Errno(Errno::EINVAL))
        ));
        assert!(matches!(
            w.prog_delete(h, &key),
            Err(Error::Errno(Errno::EINVAL))
        ));
        assert_eq!(w.map_lookup_elem(fd, &key).unwrap(), id);
    }

    #[test]
    fn program_memory_access_is_bounds_checked_and_torn_words_compose() {
        let w = World::<Std>::default();
        let fd = w
            .map_create(&MapAttr::new(MapType::Array, 4, 12, 3))
            .unwrap();
        let h = w.map_handle(fd).unwrap();
        let value = |i: u32| ARRAY_VALUE_OFFSET + i * 16; // elem_size = round_up(12, 8)
        assert_eq!(
            w.load(h, header::MAX_ENTRIES, 4).unwrap(),
            3,
            "header: max_entries"
        );
        assert_eq!(
            w.load(h, header::ID, 4).unwrap(),
            u64::from(w.map_info(fd).unwrap().id)
        );
        assert_eq!(w.load(h, header::ARRAY_ELEM_SIZE, 4).unwrap(), 16);
        assert_eq!(w.load(h, header::ARRAY_INDEX_MASK, 4).unwrap(), 3);
        assert!(
            oob(w.store(h, header::MAX_ENTRIES, 4, 9)),
            "the header is read-only"
        );
        // An unaligned 8-byte store across two words, read back whole and in pieces.
        w.store(h, value(1) + 4, 8, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(w.load(h, value(1) + 4, 8).unwrap(), 0x1122_3344_5566_7788);
        assert_eq!(w.load(h, value(1) + 8, 4).unwrap(), 0x1122_3344);
        assert_eq!(
            w.load(h, value(1), 4).unwrap(),
            0,
            "neighbouring bytes are kept"
        );
        assert_eq!(
            w.map_lookup_elem(fd, &1u32.to_le_bytes()).unwrap(),
            [0, 0, 0, 0, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]
        );
        assert!(oob(w.load(h, value(3), 1)), "past the last element");
        assert!(oob(w.load(h, value(0), 3)), "odd sizes are refused");
        assert_eq!(
            w.atomic(h, value(2), 8, AtomicOp::Add { fetch: true }, 5, 0)
                .unwrap(),
            0
        );
        assert_eq!(
            w.atomic(h, value(2), 8, AtomicOp::Cmpxchg, 7, 5).unwrap(),
            5
        );
        assert_eq!(w.atomic(h, value(2), 4, AtomicOp::Xchg, 1, 0).unwrap(), 7);
        assert!(
            oob(w.atomic(h, value(2) + 2, 4, AtomicOp::Add { fetch: true }, 1, 0)),
            "misaligned atomics are refused"
        );
        w.map_update_elem(fd, &0u32.to_le_bytes(), &[1; 12], BPF_ANY)
            .unwrap();
        assert_eq!(w.load(h, value(0) + 8, 4).unwrap(), 0x0101_0101);
    }

    #[test]
    fn a_freed_map_is_a_use_after_free_for_every_access() {
        let w = World::<Std>::default();
        let fd = w
            .map_create(&MapAttr::new(MapType::Array, 4, 4, 1))
            .unwrap();
        let h = w.map_handle(fd).unwrap();
        w.close(fd).unwrap();
        let uaf = |r: Result<()>| {
            matches!(
                r,
                Err(Error::Fault(Fault::UseAfterFree {
                    freed_at: Some(_),
                    ..
                }))
            )
        };
        assert!(uaf(w.load(h, ARRAY_VALUE_OFFSET, 4).map(|_| ())));
        assert!(uaf(w.store(h, ARRAY_VALUE_OFFSET, 4, 1)));
        assert!(uaf(w.prog_lookup(h, &0u32.to_le_bytes()).map(|_| ())));
        assert!(uaf(w.prog_hold_maps(&[h], false)));
        w.audit_quiescent().unwrap();
        assert_eq!(w.frees().len(), 1);
    }
}
