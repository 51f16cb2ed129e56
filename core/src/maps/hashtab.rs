//! `BPF_MAP_TYPE_HASH` (preallocated or `BPF_F_NO_PREALLOC`), the base of `HASH_OF_MAPS`
//! (semantics.md §7).
//!
//! # Layout
//! * `n_buckets = roundup_pow_of_two(max_entries)` buckets; each is a singly linked list whose
//!   end is a **nulls marker encoding the bucket index** (`NULLS_BIT | bucket`), plus a bucket
//!   spinlock ([`BUCKET_LOCK`]) taken by every writer.
//! * Elements live in one type-stable pool: `max_entries + cpus` elements when preallocated (the
//!   `cpus` extra ones are the per-CPU spares, `extra_elems`), `max_entries + max_tasks` slots
//!   for the no-prealloc allocator (a replace holds one extra element per running updater).
//!   Elements are never freed individually, so reuse is never a use after free (§7 allows it).
//! * Each element has a hash word, a `next` link, its **own** freelist link (mutant
//!   `freelist_aliases_next` overlays the freelist on `next`), key words and value words.
//!
//! # Concurrency
//! Readers walk a bucket without the lock and restart when they end on another bucket's nulls
//! marker (the element they stood on was reused into another bucket; mutant `no_nulls_restart`
//! returns "missing" instead). Writers take a per-CPU re-entrancy slot
//! `map_locked[cpu][hash & min(7, n_buckets - 1)]` (`-EBUSY` when taken; mutant
//! `lock_slot_unmasked` uses `hash & 7`), then the bucket lock. Insertion pops the freelist and
//! links at the head; replacing takes the per-CPU spare and leaves the old element as the new
//! spare. For map-in-map values ([`HashTab::fd_values`]) an existing key is replaced **in place**
//! and the old inner map is put after the unlock with the value read before it.
//!
//! # Invariants
//! * Conservation (§8.5): free + linked + spare == capacity at quiescence
//!   ([`MapOps::check_conservation`]).
//! * An element's key, hash and value are written before it is linked (release store of the
//!   link), so a reader never sees a half-initialised new element.

use super::freelist::{FreeList, FL_END};
use super::{
    bytes_to_words, round_up8, words_to_bytes, Caller, Found, Map, MapDef, MapOps, MAX_MAP_WORDS,
    WORD_BYTES,
};
use crate::errno::Errno;
use crate::fault::{Error, Fault, Result};
use crate::lock::{SpinLock, BUCKET_LOCK};
use crate::mutants::{Mutant, Mutants};
use crate::sync::{Atomic64, Ordering, Platform};
use crate::uapi::*;
use crate::world::{FaultSite, World};

/// Bytes before the element pool in a hash map's region (and charged for `struct bpf_htab`).
pub const HTAB_HEADER_BYTES: u32 = 320;
/// `sizeof(struct htab_elem)` before the key on x86-64 (links, hash, padding).
pub const HTAB_ELEM_HEADER_BYTES: u32 = 48;
/// `sizeof(struct bucket)`: an `hlist_nulls_head` and a raw spinlock, padded.
pub const BUCKET_BYTES: u64 = 16;
/// Re-entrancy slots per CPU (`HASHTAB_MAP_LOCK_COUNT`).
pub const MAP_LOCK_SLOTS: u32 = 8;
/// `KMALLOC_MAX_SIZE` with 4 KiB pages: an element must fit one allocation.
pub const KMALLOC_MAX_SIZE: u64 = 4 << 20;
/// A reader restarting this often without finding its bucket's nulls is starved: a fault.
pub const MAX_NULLS_RESTARTS: u32 = 1 << 16;
/// Flags a hash may be created with (`HTAB_CREATE_FLAG_MASK`, without the syscall-side access
/// modes the model does not carry: see [`super::array::ARRAY_CREATE_FLAG_MASK`]).
pub const HTAB_CREATE_FLAG_MASK: u32 = BPF_F_NO_PREALLOC
    | BPF_F_NO_COMMON_LRU
    | BPF_F_NUMA_NODE
    | BPF_F_RDONLY_PROG
    | BPF_F_WRONLY_PROG
    | BPF_F_ZERO_SEED;

const NULLS_BIT: u64 = 1 << 63;

fn nulls(bucket: u32) -> u64 {
    NULLS_BIT | u64::from(bucket)
}

/// The model's `htab_map_hash`: a fixed, well-mixed function of the key bytes (FNV-1a then the
/// murmur3 finaliser), so tests can craft bucket collisions.
pub fn hash_key(key: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for byte in key {
        h ^= u32::from(*byte);
        h = h.wrapping_mul(0x0100_0193);
    }
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// `htab_map_alloc_check`.
pub fn alloc_check(def: &MapDef) -> Result<()> {
    let percpu = def.map_type == MapType::PercpuHash;
    if def.map_flags & !HTAB_CREATE_FLAG_MASK != 0 || !super::array::access_flags_ok(def.map_flags)
    {
        return Err(Errno::EINVAL.into());
    }
    // BPF_F_NO_COMMON_LRU only means something for LRU hashes.
    if def.map_flags & BPF_F_NO_COMMON_LRU != 0 {
        return Err(Errno::EINVAL.into());
    }
    // Per-CPU values have no single NUMA node.
    if percpu && def.map_flags & BPF_F_NUMA_NODE != 0 {
        return Err(Errno::EINVAL.into());
    }
    if def.max_entries == 0 || def.key_size == 0 || def.value_size == 0 {
        return Err(Errno::EINVAL.into());
    }
    let elem = u64::from(def.key_size) + u64::from(def.value_size);
    if elem >= KMALLOC_MAX_SIZE - u64::from(HTAB_ELEM_HEADER_BYTES)
        || (percpu && u64::from(round_up8(def.value_size)) > super::array::PCPU_MIN_UNIT_SIZE)
    {
        return Err(Errno::E2BIG.into());
    }
    Ok(())
}

/// A hash map's buckets and element slots, once they are known to fit.
struct Footprint {
    n_buckets: u32,
    capacity: u32,
}

/// What `htab_map_alloc` refuses before allocating: a bucket count (the next power of two of
/// `max_entries`) whose table would pass `U32_MAX` bytes is `-E2BIG`; more element memory than
/// the model holds is `-ENOMEM`. `extra_slots` are the elements beyond `max_entries` (per-CPU
/// spares or in-flight allocations), `copies` the values per element.
fn footprint(def: &MapDef, value_size: u32, copies: u32, extra_slots: u64) -> Result<Footprint> {
    let n_buckets = u64::from(def.max_entries).next_power_of_two();
    if n_buckets > u64::from(u32::MAX) / BUCKET_BYTES {
        return Err(Errno::E2BIG.into());
    }
    let capacity = u64::from(def.max_entries) + extra_slots;
    let words_of = |bytes: u32| u64::from(bytes).div_ceil(u64::from(WORD_BYTES));
    let key_words = words_of(def.key_size);
    let value_words = words_of(value_size) * u64::from(copies.max(1));
    let words = capacity * (3 + key_words + value_words) + n_buckets * 2;
    if words > MAX_MAP_WORDS || capacity > u64::from(u32::MAX) {
        return Err(Errno::ENOMEM.into());
    }
    Ok(Footprint {
        n_buckets: n_buckets as u32,
        capacity: capacity as u32,
    })
}

/// [`footprint`]'s refusals for a map of `def` (one value per element, no spare slots), without
/// allocating anything.
pub fn size_check(def: &MapDef, value_size: u32) -> Result<()> {
    footprint(def, value_size, 1, 0).map(drop)
}

struct Bucket<P: Platform> {
    head: P::Atomic,
    lock: SpinLock<P, ()>,
}

/// What a locked update leaves to do after the unlock.
#[derive(Default)]
struct AfterUnlock {
    /// An inner map pointer to put (deferred).
    put: Option<u64>,
    /// An element to give back (freelist or allocator).
    release: Option<u32>,
}

/// A hash table.
pub struct HashTab<P: Platform> {
    def: MapDef,
    prealloc: bool,
    /// Values are encoded inner map pointers (`HASH_OF_MAPS`).
    fd_values: bool,
    /// Value bytes as stored (8 for map-in-map: a pointer).
    value_size: u32,
    key_words: u32,
    value_words: u32,
    /// Per-CPU hashes: copies of each value (`value_words` covers all of them).
    percpu: Option<u32>,
    /// Words of one copy.
    unit_words: u32,
    stride: u32,
    n_buckets: u32,
    buckets: Vec<Bucket<P>>,
    capacity: u32,
    hash: Vec<P::Atomic>,
    next: Vec<P::Atomic>,
    fl_next: Vec<P::Atomic>,
    keys: Vec<P::Atomic>,
    values: Vec<P::Atomic>,
    freelist: FreeList<P>,
    /// Per-CPU spare element (`extra_elems`), `i + 1`; prealloc only.
    extra: Vec<P::Atomic>,
    /// Elements holding keys (no-prealloc `max_entries` accounting).
    count: P::Atomic,
    /// `map_locked[cpu * MAP_LOCK_SLOTS + slot]`.
    map_locked: Vec<P::Atomic>,
    lock_mask: u32,
    mutants: Mutants,
}

impl<P: Platform> HashTab<P> {
    /// A hash for `def`; `value_size` is the stored size (8 for map-in-map).
    pub fn new(w: &World<P>, def: &MapDef, value_size: u32) -> Result<Self> {
        Self::build(w, def, value_size, false)
    }

    pub(crate) fn build(
        w: &World<P>,
        def: &MapDef,
        value_size: u32,
        fd_values: bool,
    ) -> Result<Self> {
        let cpus = w.config().cpus.max(1);
        let prealloc = def.map_flags & BPF_F_NO_PREALLOC == 0;
        let percpu = (def.map_type == MapType::PercpuHash).then_some(cpus as u32);
        // Per-CPU hashes update in place, so they have no spare elements (`extra_elems`).
        let spares = prealloc && percpu.is_none();
        let extra_slots = if spares {
            cpus
        } else if prealloc {
            0
        } else {
            w.config().max_tasks.max(1)
        };
        let Footprint {
            n_buckets,
            capacity,
        } = footprint(def, value_size, percpu.unwrap_or(1), extra_slots as u64)?;
        let key_words = round_up8(def.key_size) / WORD_BYTES;
        let unit_words = round_up8(value_size) / WORD_BYTES;
        let value_words = unit_words * percpu.unwrap_or(1);
        let atomics = |n: u64| (0..n).map(|_| P::atomic(0)).collect::<Vec<_>>();
        let lock_mask = if w.mutants().on(Mutant::LockSlotUnmasked) {
            MAP_LOCK_SLOTS - 1
        } else {
            (MAP_LOCK_SLOTS - 1).min(n_buckets - 1)
        };
        let table: HashTab<P> = HashTab {
            def: *def,
            prealloc,
            fd_values,
            value_size,
            key_words,
            value_words,
            percpu,
            unit_words,
            stride: HTAB_ELEM_HEADER_BYTES + round_up8(def.key_size) + value_words * WORD_BYTES,
            n_buckets,
            buckets: (0..n_buckets)
                .map(|b| Bucket {
                    head: P::atomic(nulls(b)),
                    lock: SpinLock::new(BUCKET_LOCK, ()),
                })
                .collect(),
            capacity,
            hash: atomics(u64::from(capacity)),
            next: atomics(u64::from(capacity)),
            fl_next: atomics(u64::from(capacity)),
            keys: atomics(u64::from(capacity) * u64::from(key_words)),
            values: atomics(u64::from(capacity) * u64::from(value_words)),
            freelist: FreeList::new(cpus),
            extra: atomics(if spares { cpus as u64 } else { 0 }),
            count: P::atomic(0),
            map_locked: atomics(cpus as u64 * u64::from(MAP_LOCK_SLOTS)),
            lock_mask,
            mutants: w.mutants(),
        };
        // Prealloc: the first `cpus` elements are the spares, the rest go on the freelist.
        // No-prealloc: every slot starts in the allocator's cache.
        for (cpu, spare) in table.extra.iter().enumerate() {
            spare.store(cpu as u64 + 1, Ordering::Relaxed);
        }
        let first_free = table.extra.len() as u32;
        table
            .freelist
            .populate(table.fl_links(), (first_free..capacity).rev());
        Ok(table)
    }

    pub fn n_buckets(&self) -> u32 {
        self.n_buckets
    }
    pub fn is_prealloc(&self) -> bool {
        self.prealloc
    }
    pub fn fd_values(&self) -> bool {
        self.fd_values
    }

    /// The words the freelist links through: the element's own link, or `next` under the mutant.
    fn fl_links(&self) -> &[P::Atomic] {
        if self.mutants.on(Mutant::FreelistAliasesNext) {
            &self.next
        } else {
            &self.fl_next
        }
    }

    /// Takes one element off the freelist and forgets it: the accounting bug conservation
    /// exists to report, for the tests of the maps built on this table.
    #[cfg(test)]
    pub(crate) fn lose_a_free_element(&self) -> Option<u32> {
        self.freelist.pop(self.fl_links())
    }

    fn bucket_of(&self, hash: u32) -> u32 {
        hash & (self.n_buckets - 1)
    }

    fn key_words_of(&self, key: &[u8]) -> Result<Vec<u64>> {
        if key.len() != self.def.key_size as usize {
            return Err(Errno::EINVAL.into());
        }
        let mut words = bytes_to_words(key);
        words.resize(self.key_words as usize, 0);
        Ok(words)
    }

    fn key_matches(&self, elem: u32, hash: u32, key: &[u64]) -> bool {
        if self.hash[elem as usize].load(Ordering::Acquire) != u64::from(hash) {
            return false;
        }
        let base = (elem * self.key_words) as usize;
        key.iter()
            .enumerate()
            .all(|(i, word)| self.keys[base + i].load(Ordering::Acquire) == *word)
    }

    fn elem_key(&self, elem: u32) -> Vec<u8> {
        let base = (elem * self.key_words) as usize;
        words_to_bytes(
            (0..self.key_words as usize).map(|i| self.keys[base + i].load(Ordering::Acquire)),
            self.def.key_size as usize,
        )
    }

    fn value_word(&self, elem: u32, i: u32) -> &P::Atomic {
        &self.values[(elem * self.value_words + i) as usize]
    }

    /// Region offset of element `elem` (its `struct htab_elem`).
    pub fn elem_offset(&self, elem: u32) -> u32 {
        HTAB_HEADER_BYTES + elem * self.stride
    }

    /// Region offset of element `elem`'s value.
    pub fn value_offset(&self, elem: u32) -> u32 {
        self.elem_offset(elem) + HTAB_ELEM_HEADER_BYTES + round_up8(self.def.key_size)
    }

    /// The lockless bucket walk (`lookup_nulls_elem_raw`): restarts when the walk ends on
    /// another bucket's nulls marker. Also used under the lock, where no restart can happen.
    fn find(&self, w: &World<P>, hash: u32, key: &[u64]) -> Result<Option<u32>> {
        self.find_from(w, hash, key, None)
    }

    /// [`HashTab::find`] for a reader whose first pass starts at link `start` (a reader that
    /// was standing there when the table changed under it); restarts begin at the bucket head.
    fn find_from(
        &self,
        w: &World<P>,
        hash: u32,
        key: &[u64],
        mut start: Option<u64>,
    ) -> Result<Option<u32>> {
        let bucket = self.bucket_of(hash);
        let max_steps = self.capacity as usize + 1;
        for _restart in 0..MAX_NULLS_RESTARTS {
            let mut link = start
                .take()
                .unwrap_or_else(|| self.buckets[bucket as usize].head.load(Ordering::Acquire));
            let mut steps = 0usize;
            loop {
                if link == FL_END {
                    // A NULL link is not a list end the walk can verify (only a freelist link
                    // overlaid on `next` produces it): the walk just stops.
                    return Ok(None);
                }
                if link & NULLS_BIT != 0 {
                    let ended_on = (link & !NULLS_BIT) as u32;
                    if ended_on != bucket && !self.mutants.on(Mutant::NoNullsRestart) {
                        break; // restart
                    }
                    return Ok(None);
                }
                let elem = (link - 1) as u32;
                if elem >= self.capacity {
                    return Err(Fault::OutOfBounds {
                        what: format!(
                            "htab walk followed link {link:#x} past the {} elements",
                            self.capacity
                        ),
                        at: w.stamp(),
                    }
                    .into());
                }
                if self.key_matches(elem, hash, key) {
                    return Ok(Some(elem));
                }
                link = self.next[elem as usize].load(Ordering::Acquire);
                steps += 1;
                if steps > max_steps {
                    return Err(Fault::Liveness {
                        detail: format!("htab walk of bucket {bucket} did not end after {max_steps} elements (a cycle)"),
                    }
                    .into());
                }
            }
        }
        Err(Fault::Liveness {
            detail: format!("htab reader of bucket {bucket} restarted {MAX_NULLS_RESTARTS} times"),
        }
        .into())
    }

    /// Runs `f` with the bucket of `hash` locked, behind the per-CPU re-entrancy slot.
    fn with_bucket<R>(&self, w: &World<P>, hash: u32, f: impl FnOnce() -> Result<R>) -> Result<R> {
        let cpu = P::current_cpu() % (self.map_locked.len() / MAP_LOCK_SLOTS as usize);
        let slot =
            &self.map_locked[cpu * MAP_LOCK_SLOTS as usize + (hash & self.lock_mask) as usize];
        if slot.fetch_add(1, Ordering::AcqRel) != 0 {
            slot.fetch_sub(1, Ordering::AcqRel);
            return Err(Errno::EBUSY.into());
        }
        let bucket = &self.buckets[self.bucket_of(hash) as usize];
        let result = bucket.lock.lock(w.lockdep(), || w.stamp(), |_| f());
        slot.fetch_sub(1, Ordering::AcqRel);
        result?
    }

    fn link_head(&self, bucket: u32, elem: u32) {
        let head = &self.buckets[bucket as usize].head;
        self.next[elem as usize].store(head.load(Ordering::Acquire), Ordering::Release);
        head.store(u64::from(elem) + 1, Ordering::Release);
    }

    /// `hlist_nulls_del_rcu` under the lock: the unlinked element keeps its `next`, so a reader
    /// standing on it walks on.
    fn unlink(&self, w: &World<P>, bucket: u32, elem: u32) -> Result<()> {
        let target = u64::from(elem) + 1;
        let after = self.next[elem as usize].load(Ordering::Acquire);
        let mut prev = &self.buckets[bucket as usize].head;
        for _ in 0..=self.capacity {
            let link = prev.load(Ordering::Acquire);
            if link == target {
                prev.store(after, Ordering::Release);
                return Ok(());
            }
            if link & NULLS_BIT != 0 || link == FL_END {
                break;
            }
            prev = &self.next[(link - 1) as usize];
        }
        Err(Fault::Conservation {
            detail: format!(
                "elem {elem} to unlink is not in bucket {bucket} ({})",
                w.stamp()
            ),
        }
        .into())
    }

    /// `alloc_htab_elem`'s element source: the per-CPU spare when replacing (prealloc), the
    /// freelist for a new key, or the allocator without prealloc.
    fn alloc_elem(&self, w: &World<P>, old: Option<u32>) -> Result<u32> {
        if self.prealloc {
            if let Some(old) = old {
                let spare = &self.extra[P::current_cpu() % self.extra.len()];
                let new = spare.swap(u64::from(old) + 1, Ordering::AcqRel);
                return match new {
                    0 => Err(Fault::Conservation {
                        detail: "per-CPU spare element missing".into(),
                    }
                    .into()),
                    n => Ok((n - 1) as u32),
                };
            }
            return self
                .freelist
                .pop(self.fl_links())
                .ok_or_else(|| Errno::E2BIG.into());
        }
        if old.is_none() && self.count.load(Ordering::Acquire) >= u64::from(self.def.max_entries) {
            return Err(Errno::E2BIG.into());
        }
        if w.inject(FaultSite::HashElemAlloc) {
            return Err(Errno::ENOMEM.into());
        }
        let elem = self
            .freelist
            .pop(self.fl_links())
            .ok_or(Error::from(Errno::ENOMEM))?;
        if old.is_none() {
            self.count.fetch_add(1, Ordering::AcqRel);
        }
        Ok(elem)
    }

    /// Gives an unlinked element back. `counted`: it held a key for the `max_entries` count.
    fn release_elem(&self, elem: u32, counted: bool) {
        if !self.prealloc && counted {
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
        self.freelist.push(self.fl_links(), elem);
    }

    fn write_elem(&self, elem: u32, hash: u32, key: &[u64], value: &[u64]) {
        let kbase = (elem * self.key_words) as usize;
        for (i, word) in key.iter().enumerate() {
            self.keys[kbase + i].store(*word, Ordering::Release);
        }
        for i in 0..self.value_words {
            self.value_word(elem, i).store(
                value.get(i as usize).copied().unwrap_or(0),
                Ordering::Release,
            );
        }
        self.hash[elem as usize].store(u64::from(hash), Ordering::Release);
    }

    fn put_fd(&self, w: &World<P>, map: &Map<P>, value: u64) -> Result<()> {
        w.fd_put_ptr(map, value, true)
    }

    /// [`HashTab::update_from`] on behalf of user space.
    pub fn update_words(
        &self,
        w: &World<P>,
        map: &Map<P>,
        key: &[u8],
        value: &[u64],
        flags: u64,
    ) -> Result<()> {
        self.update_from(w, map, key, value, flags, Caller::Syscall)
    }

    /// The calling CPU's copy of a per-CPU value (word index of its first word).
    fn this_cpu_unit(&self) -> u32 {
        self.cpu_unit(self.percpu.map_or(0, |cpus| P::current_cpu() as u32 % cpus))
    }

    /// Word offset of CPU `cpu`'s copy within a value.
    fn cpu_unit(&self, cpu: u32) -> u32 {
        cpu * self.unit_words
    }

    /// `htab_map_update_elem`, its per-CPU variant (in place, one CPU's copy from a program,
    /// all copies from user space) and the map-in-map in-place variant. `value` is the stored
    /// value as words (an encoded inner map pointer for map-in-map, already referenced).
    pub fn update_from(
        &self,
        w: &World<P>,
        map: &Map<P>,
        key: &[u8],
        value: &[u64],
        flags: u64,
        caller: Caller,
    ) -> Result<()> {
        if flags > BPF_EXIST {
            return Err(Errno::EINVAL.into());
        }
        let key_words = self.key_words_of(key)?;
        let hash = hash_key(key);
        let bucket = self.bucket_of(hash);
        let fd = self.fd_values;
        let leak = fd && self.prealloc && self.mutants.on(Mutant::LeakOnReplace);
        let in_place =
            (fd && !leak && !self.mutants.on(Mutant::ReplaceByReinsert)) || self.percpu.is_some();
        // What a new element starts with: a program's per-CPU update sets its own CPU's copy
        // and zeroes the others (`pcpu_init_value`).
        let one_cpu = self.percpu.is_some() && caller == Caller::Program;
        let full: Vec<u64> = if one_cpu {
            let mut words = vec![0; self.value_words as usize];
            let at = self.this_cpu_unit() as usize;
            words[at..at + value.len()].copy_from_slice(value);
            words
        } else {
            value.to_vec()
        };
        let put_locked = fd && self.mutants.on(Mutant::PutUnderBucketLock);
        let after = self.with_bucket(w, hash, || {
            let old = self.find(w, hash, &key_words)?;
            match (old, flags) {
                (Some(_), BPF_NOEXIST) => return Err(Errno::EEXIST.into()),
                (None, BPF_EXIST) => return Err(Errno::ENOENT.into()),
                _ => {}
            }
            let mut after = AfterUnlock::default();
            if let (Some(old), true) = (old, in_place) {
                // In place: a reader of this key always finds it, old or new value.
                if fd {
                    after.put = Some(self.value_word(old, 0).swap(value[0], Ordering::AcqRel));
                } else {
                    let first = if one_cpu { self.this_cpu_unit() } else { 0 };
                    for (i, word) in value.iter().enumerate() {
                        self.value_word(old, first + i as u32)
                            .store(*word, Ordering::Release);
                    }
                }
            } else {
                let new = self.alloc_elem(w, old)?;
                self.write_elem(new, hash, &key_words, &full);
                self.link_head(bucket, new);
                if let Some(old) = old {
                    self.unlink(w, bucket, old)?;
                    if fd && !leak {
                        after.put = Some(self.value_word(old, 0).load(Ordering::Acquire));
                    }
                    // Prealloc: the old element already is this CPU's spare.
                    if !self.prealloc {
                        after.release = Some(old);
                    }
                }
            }
            if put_locked {
                if let Some(ptr) = after.put.take() {
                    self.put_fd(w, map, ptr)?;
                }
            }
            Ok(after)
        })?;
        if let Some(ptr) = after.put {
            self.put_fd(w, map, ptr)?;
        }
        if let Some(elem) = after.release {
            self.release_elem(elem, false);
        }
        Ok(())
    }

    /// `htab_map_delete_elem`: unlink under the lock; put and release after the unlock.
    pub fn delete_key(&self, w: &World<P>, map: &Map<P>, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let key_words = self.key_words_of(key)?;
        let hash = hash_key(key);
        let bucket = self.bucket_of(hash);
        let put_locked = self.fd_values && self.mutants.on(Mutant::PutUnderBucketLock);
        let (elem, value, after) = self.with_bucket(w, hash, || {
            let elem = self
                .find(w, hash, &key_words)?
                .ok_or(Error::from(Errno::ENOENT))?;
            self.unlink(w, bucket, elem)?;
            let value = self.user_value(w, elem)?;
            let mut after = AfterUnlock {
                release: Some(elem),
                ..Default::default()
            };
            if self.fd_values {
                after.put = Some(self.value_word(elem, 0).load(Ordering::Acquire));
            }
            if put_locked {
                if let Some(ptr) = after.put.take() {
                    self.put_fd(w, map, ptr)?;
                }
            }
            Ok((elem, value, after))
        })?;
        if let Some(ptr) = after.put {
            self.put_fd(w, map, ptr)?;
        }
        self.release_elem(elem, true);
        Ok(Some(value))
    }

    /// The user-space copy of an element's value: bytes, or the inner map's id.
    fn user_value(&self, w: &World<P>, elem: u32) -> Result<Vec<u8>> {
        if self.fd_values {
            let ptr = self.value_word(elem, 0).load(Ordering::Acquire);
            return Ok(w.map_id_of_ptr(ptr)?.to_le_bytes().to_vec());
        }
        Ok(words_to_bytes(
            (0..self.value_words).map(|i| self.value_word(elem, i).load(Ordering::Acquire)),
            match self.percpu {
                Some(_) => (self.value_words * WORD_BYTES) as usize,
                None => self.value_size as usize,
            },
        ))
    }

    /// Lockless lookup: the element holding `key`.
    pub fn lookup_elem(&self, w: &World<P>, key: &[u8]) -> Result<Option<u32>> {
        let key_words = self.key_words_of(key)?;
        self.find(w, hash_key(key), &key_words)
    }

    /// The first word of an element's value (map-in-map: the inner map pointer).
    pub fn value_word0(&self, elem: u32) -> u64 {
        self.value_word(elem, 0).load(Ordering::Acquire)
    }

    /// Elements of a bucket, walking its chain (lockless; used under the lock by batch ops).
    fn bucket_elems(&self, bucket: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut link = self.buckets[bucket as usize].head.load(Ordering::Acquire);
        while link & NULLS_BIT == 0 && link != FL_END && out.len() <= self.capacity as usize {
            let elem = (link - 1) as u32;
            out.push(elem);
            link = self.next[elem as usize].load(Ordering::Acquire);
        }
        out
    }

    /// `htab_map_get_next_key`: the key after `key` in bucket order; the first key when `key`
    /// is absent or not found.
    pub fn next_key(&self, w: &World<P>, key: Option<&[u8]>) -> Result<Vec<u8>> {
        let mut start = 0;
        if let Some(key) = key {
            let key_words = self.key_words_of(key)?;
            let hash = hash_key(key);
            if let Some(elem) = self.find(w, hash, &key_words)? {
                let next = self.next[elem as usize].load(Ordering::Acquire);
                if next & NULLS_BIT == 0 && next != FL_END {
                    return Ok(self.elem_key((next - 1) as u32));
                }
                start = self.bucket_of(hash) + 1;
            }
        }
        for bucket in start..self.n_buckets {
            if let Some(&first) = self.bucket_elems(bucket).first() {
                return Ok(self.elem_key(first));
            }
        }
        Err(Errno::ENOENT.into())
    }

    /// `htab_map_lookup_batch` / `..._and_delete_batch`: whole buckets at a time from bucket
    /// `in_batch`; `-ENOSPC` when the first bucket does not fit in `count`.
    pub fn batch(
        &self,
        w: &World<P>,
        map: &Map<P>,
        in_batch: Option<u32>,
        count: u32,
        delete: bool,
    ) -> Result<BatchOut> {
        let mut out = BatchOut {
            next: in_batch.unwrap_or(0),
            ..BatchOut::default()
        };
        if count == 0 {
            return Ok(out);
        }
        let mut bucket = in_batch.unwrap_or(0);
        let mut to_release = Vec::new();
        let mut to_put = Vec::new();
        while bucket < self.n_buckets {
            // Lock via the bucket's own hash so the re-entrancy slot is the bucket's.
            let fits = self.with_bucket(w, bucket, || {
                let elems = self.bucket_elems(bucket);
                if elems.len() as u32 > count - out.keys.len() as u32 {
                    return Ok(false);
                }
                for &elem in &elems {
                    out.keys.push(self.elem_key(elem));
                    out.values.push(self.user_value(w, elem)?);
                    if delete {
                        self.unlink(w, bucket, elem)?;
                        if self.fd_values {
                            to_put.push(self.value_word(elem, 0).load(Ordering::Acquire));
                        }
                        to_release.push(elem);
                    }
                }
                Ok(true)
            })?;
            if !fits {
                if out.keys.is_empty() {
                    return Err(Errno::ENOSPC.into());
                }
                break;
            }
            bucket += 1;
        }
        for ptr in to_put {
            self.put_fd(w, map, ptr)?;
        }
        for elem in to_release {
            self.release_elem(elem, true);
        }
        out.next = bucket;
        out.done = bucket >= self.n_buckets;
        Ok(out)
    }

    /// Elements linked in some bucket (walks every bucket; quiescence only).
    pub(crate) fn linked_elems(&self) -> Result<Vec<u32>, Fault> {
        self.linked()
    }

    fn linked(&self) -> Result<Vec<u32>, Fault> {
        let mut out = Vec::new();
        for bucket in 0..self.n_buckets {
            let mut link = self.buckets[bucket as usize].head.load(Ordering::Acquire);
            let mut steps = 0;
            while link & NULLS_BIT == 0 {
                if link == FL_END || steps > self.capacity {
                    return Err(Fault::Conservation {
                        detail: format!("bucket {bucket} does not end in a nulls marker"),
                    });
                }
                out.push((link - 1) as u32);
                link = self.next[(link - 1) as usize].load(Ordering::Acquire);
                steps += 1;
            }
            if link != nulls(bucket) {
                return Err(Fault::Conservation {
                    detail: format!(
                        "bucket {bucket} ends on the nulls marker of bucket {}",
                        link & !NULLS_BIT
                    ),
                });
            }
        }
        Ok(out)
    }

    /// Live keys (quiescence only), for audits and tests.
    pub fn len(&self) -> Result<usize, Fault> {
        Ok(self.linked()?.len())
    }

    pub fn is_empty(&self) -> Result<bool, Fault> {
        Ok(self.len()? == 0)
    }
}

impl<P: Platform> MapOps<P> for HashTab<P> {
    fn lookup(&self, w: &World<P>, key: &[u8]) -> Result<Option<Found>> {
        Ok(self.lookup_elem(w, key)?.map(|elem| Found::Value {
            offset: self.value_offset(elem) + self.this_cpu_unit() * WORD_BYTES,
        }))
    }

    fn lookup_percpu(&self, w: &World<P>, key: &[u8], cpu: u32) -> Result<Option<Found>> {
        let Some(cpus) = self.percpu else {
            return Err(Errno::EOPNOTSUPP.into());
        };
        // The kernel answers NULL for a CPU it does not have before it looks the key up.
        if cpu >= cpus {
            return Ok(None);
        }
        Ok(self.lookup_elem(w, key)?.map(|elem| Found::Value {
            offset: self.value_offset(elem) + self.cpu_unit(cpu) * WORD_BYTES,
        }))
    }

    fn lookup_elem_offset(&self, w: &World<P>, key: &[u8]) -> Result<Option<u32>> {
        if self.percpu.is_some() {
            // The per-CPU value is one unit per CPU: no single value follows the key.
            return Err(Errno::EOPNOTSUPP.into());
        }
        Ok(self.lookup_elem(w, key)?.map(|elem| self.elem_offset(elem)))
    }

    fn update(
        &self,
        w: &World<P>,
        map: &Map<P>,
        key: &[u8],
        value: &[u8],
        flags: u64,
        caller: Caller,
    ) -> Result<()> {
        let expected = match (self.percpu, caller) {
            (Some(_), Caller::Syscall) => self.value_words * WORD_BYTES,
            _ => self.def.value_size,
        };
        if value.len() != expected as usize {
            return Err(Errno::EINVAL.into());
        }
        let mut words = bytes_to_words(value);
        if self.percpu.is_some() && caller == Caller::Program {
            words.resize(self.unit_words as usize, 0);
        }
        self.update_from(w, map, key, &words, flags, caller)
    }

    fn value_to_user(&self, w: &World<P>, _map: &Map<P>, found: Found) -> Result<Vec<u8>> {
        match found {
            Found::Value { offset } => {
                let elem = (offset - HTAB_HEADER_BYTES) / self.stride;
                self.user_value(w, elem)
            }
            Found::MapPtr(ptr) => Ok(w.map_id_of_ptr(ptr)?.to_le_bytes().to_vec()),
        }
    }

    fn percpu_copies(&self) -> Option<u32> {
        self.percpu
    }

    fn delete(&self, w: &World<P>, map: &Map<P>, key: &[u8]) -> Result<()> {
        self.delete_key(w, map, key).map(|_| ())
    }

    fn lookup_and_delete(&self, w: &World<P>, map: &Map<P>, key: &[u8]) -> Result<Vec<u8>> {
        Ok(self.delete_key(w, map, key)?.unwrap_or_default())
    }

    fn get_next_key(&self, w: &World<P>, key: Option<&[u8]>) -> Result<Vec<u8>> {
        self.next_key(w, key)
    }

    fn lookup_batch(
        &self,
        w: &World<P>,
        map: &Map<P>,
        in_batch: Option<u32>,
        count: u32,
        delete: bool,
    ) -> Result<BatchOut> {
        self.batch(w, map, in_batch, count, delete)
    }

    fn has_update_batch(&self) -> bool {
        true
    }
    fn has_delete_batch(&self) -> bool {
        true
    }

    fn footprint(&self) -> u64 {
        let elems = if self.prealloc {
            u64::from(self.def.max_entries) + self.extra.len() as u64
        } else {
            self.count.load(Ordering::Acquire)
        };
        u64::from(HTAB_HEADER_BYTES)
            + u64::from(self.n_buckets) * BUCKET_BYTES
            + elems * u64::from(self.stride)
    }

    fn value_base(&self, offset: u32) -> Option<u32> {
        let rel = offset.checked_sub(HTAB_HEADER_BYTES)?;
        if rel / self.stride >= self.capacity {
            return None;
        }
        let within = (rel % self.stride)
            .checked_sub(HTAB_ELEM_HEADER_BYTES + round_up8(self.def.key_size))?;
        Some(offset - within % (self.unit_words * WORD_BYTES))
    }

    fn word(&self, offset: u32) -> Option<&P::Atomic> {
        let rel = offset.checked_sub(HTAB_HEADER_BYTES)?;
        let elem = rel / self.stride;
        let within = (rel % self.stride)
            .checked_sub(HTAB_ELEM_HEADER_BYTES + round_up8(self.def.key_size))?;
        if elem >= self.capacity {
            return None;
        }
        Some(self.value_word(elem, within / WORD_BYTES))
    }

    fn check_conservation(&self) -> Result<(), Fault> {
        let linked = self.linked()?;
        let free = self
            .freelist
            .members(self.fl_links(), self.capacity as usize);
        let spare: Vec<u32> = self
            .extra
            .iter()
            .filter_map(|s| s.load(Ordering::Acquire).checked_sub(1).map(|e| e as u32))
            .collect();
        let mut seen = vec![0u8; self.capacity as usize];
        for &elem in linked.iter().chain(&free).chain(&spare) {
            match seen.get_mut(elem as usize) {
                Some(n) => *n += 1,
                None => {
                    return Err(Fault::Conservation {
                        detail: format!("element {elem} out of range"),
                    })
                }
            }
        }
        let total = linked.len() + free.len() + spare.len();
        if total != self.capacity as usize || seen.iter().any(|&n| n != 1) {
            let twice: Vec<usize> = seen
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 1)
                .map(|(i, _)| i)
                .collect();
            return Err(Fault::Conservation {
                detail: format!(
                    "free {} + linked {} + spare {} != capacity {} (elements counted twice: {twice:?})",
                    free.len(),
                    linked.len(),
                    spare.len(),
                    self.capacity
                ),
            });
        }
        if !self.prealloc && self.count.load(Ordering::Acquire) != linked.len() as u64 {
            return Err(Fault::Conservation {
                detail: format!(
                    "element count {} but {} linked",
                    self.count.load(Ordering::Acquire),
                    linked.len()
                ),
            });
        }
        Ok(())
    }

    fn holds_maps(&self) -> bool {
        self.fd_values
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::Map;
    use crate::sync::Std;
    use crate::world::{FaultPlan, WorldConfig};

    fn k(i: u32) -> Vec<u8> {
        i.to_le_bytes().to_vec()
    }

    fn setup(
        mutants: Mutants,
        max_entries: u32,
        flags: u32,
    ) -> (World<Std>, HashTab<Std>, Map<Std>) {
        let w = World::new(mutants, WorldConfig::default());
        let def = MapDef {
            map_type: MapType::Hash,
            key_size: 4,
            value_size: 4,
            max_entries,
            map_flags: flags,
        };
        let table = HashTab::new(&w, &def, 4).unwrap();
        // The map object is only needed for map-in-map puts, which a plain hash never does.
        let owner = Map::new(
            def,
            HTAB_HEADER_BYTES,
            Box::new(HashTab::<Std>::new(&w, &def, 4).unwrap()),
        );
        (w, table, owner)
    }

    fn bucket(i: u32, n_buckets: u32) -> u32 {
        hash_key(&k(i)) & (n_buckets - 1)
    }

    /// Two keys sharing a bucket and one key of another bucket.
    fn keys(n_buckets: u32) -> (u32, u32, u32) {
        let a = 1;
        let b = (2..10_000)
            .find(|&i| bucket(i, n_buckets) == bucket(a, n_buckets))
            .unwrap();
        let c = (2..10_000)
            .find(|&i| bucket(i, n_buckets) != bucket(a, n_buckets))
            .unwrap();
        (a, b, c)
    }

    /// A reader stands on `a`'s element looking for `b` (same bucket, behind `a`) when `a` is
    /// deleted (its element goes to the freelist) and, with `reuse`, its element is reused for
    /// `c` in another bucket. What does the reader find from there?
    fn reader_on_recycled_element(mutants: Mutants, reuse: bool) -> Option<u32> {
        let (w, table, owner) = setup(mutants, 4, 0);
        let (a, b, c) = keys(4);
        let put = |key: u32, value: u64| {
            table
                .update_words(&w, &owner, &k(key), &[value], BPF_ANY)
                .unwrap()
        };
        put(b, 20);
        put(a, 10); // head: a → b
        let stood_on = table.lookup_elem(&w, &k(a)).unwrap().unwrap();
        table.delete_key(&w, &owner, &k(a)).unwrap();
        if reuse {
            put(c, 30);
            let reused = table.lookup_elem(&w, &k(c)).unwrap();
            assert_eq!(
                reused,
                Some(stood_on),
                "LIFO: the deleted element is reused at once"
            );
        }
        let key_b = table.key_words_of(&k(b)).unwrap();
        let found = table
            .find_from(&w, hash_key(&k(b)), &key_b, Some(u64::from(stood_on) + 1))
            .unwrap();
        table.check_conservation().unwrap();
        found.map(|elem| table.value_word0(elem) as u32)
    }

    #[test]
    fn reader_ending_on_a_foreign_nulls_marker_restarts_and_finds_its_key() {
        assert_eq!(reader_on_recycled_element(Mutants::NONE, true), Some(20));
        assert_eq!(
            reader_on_recycled_element(Mutants::only(Mutant::NoNullsRestart), true),
            None,
            "no_nulls_restart: a present key is reported missing"
        );
    }

    #[test]
    fn a_freed_element_keeps_its_next_link_for_readers_standing_on_it() {
        assert_eq!(reader_on_recycled_element(Mutants::NONE, false), Some(20));
        assert_eq!(
            reader_on_recycled_element(Mutants::only(Mutant::FreelistAliasesNext), false),
            None,
            "freelist_aliases_next: the reader follows the freelist and misses the key"
        );
    }

    /// A nested context on the same CPU updates key `inner` while the bucket of `outer` is
    /// locked (2 buckets, so the correct slot index is the bucket itself).
    fn nested_update(mutants: Mutants) -> Result<()> {
        let (w, table, owner) = setup(mutants, 2, 0);
        let outer = 1;
        let inner = (2..10_000)
            .find(|&i| {
                bucket(i, 2) == bucket(outer, 2) && hash_key(&k(i)) & 7 != hash_key(&k(outer)) & 7
            })
            .unwrap();
        table.with_bucket(&w, hash_key(&k(outer)), || {
            table.update_words(&w, &owner, &k(inner), &[1], BPF_ANY)
        })
    }

    /// A hash-of-maps reader stands on `y`, the neighbour in front of always-present key `key`,
    /// when `key`'s inner map is replaced. Does the reader still find `key`?
    fn reader_behind_neighbour_during_replace(mutants: Mutants) -> bool {
        let w = World::<Std>::new(mutants, WorldConfig::default());
        let def = MapDef::from_attr(&MapAttr::new(MapType::HashOfMaps, 4, 4, 4)).unwrap();
        let table = HashTab::build(&w, &def, 8, true).unwrap();
        let owner = Map::new(
            def,
            HTAB_HEADER_BYTES,
            Box::new(HashTab::<Std>::build(&w, &def, 8, true).unwrap()),
        );
        let array = MapAttr::new(MapType::Array, 4, 4, 1);
        let meta = w.meta_from_fd(w.map_create(&array).unwrap()).unwrap();
        let inner = || {
            let fd = w.map_create(&array).unwrap();
            let ptr = w.fd_get_ptr(&meta, fd).unwrap();
            w.close(fd).unwrap();
            ptr
        };
        let (key, y, _) = keys(4);
        table
            .update_words(&w, &owner, &k(key), &[inner()], BPF_ANY)
            .unwrap();
        table
            .update_words(&w, &owner, &k(y), &[inner()], BPF_ANY)
            .unwrap(); // head: y → key
        let stood_on = table.lookup_elem(&w, &k(y)).unwrap().unwrap();
        table
            .update_words(&w, &owner, &k(key), &[inner()], BPF_EXIST)
            .unwrap();
        let key_words = table.key_words_of(&k(key)).unwrap();
        let found = table
            .find_from(
                &w,
                hash_key(&k(key)),
                &key_words,
                Some(u64::from(stood_on) + 1),
            )
            .unwrap();
        table.check_conservation().unwrap();
        found.is_some()
    }

    #[test]
    fn in_place_replace_never_hides_a_present_key_but_reinsert_does() {
        assert!(
            reader_behind_neighbour_during_replace(Mutants::NONE),
            "correct core: replaced in place"
        );
        assert!(
            !reader_behind_neighbour_during_replace(Mutants::only(Mutant::ReplaceByReinsert)),
            "replace_by_reinsert: the reader walks past where the new element was linked"
        );
    }

    #[test]
    fn nested_update_in_a_locked_bucket_is_ebusy_and_unmasked_slots_deadlock() {
        assert_eq!(nested_update(Mutants::NONE), Err(Errno::EBUSY.into()));
        match nested_update(Mutants::only(Mutant::LockSlotUnmasked)) {
            Err(Error::Fault(Fault::Deadlock { cpu: 0, .. })) => {}
            other => panic!("lock_slot_unmasked: expected a deadlock, got {other:?}"),
        }
    }

    #[test]
    fn conservation_holds_through_inserts_replaces_and_deletes_on_two_cpus() {
        for flags in [0, BPF_F_NO_PREALLOC] {
            let (w, table, owner) = setup(Mutants::NONE, 8, flags);
            let mut state = 0x2545_f491_u32;
            let mut model = std::collections::BTreeMap::new();
            for step in 0..400u32 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                Std::set_current_cpu((state % 2) as usize);
                let key = (state >> 8) % 12;
                let value = u64::from(step);
                if state.is_multiple_of(3) {
                    let got = table.delete_key(&w, &owner, &k(key)).map(|_| ());
                    assert_eq!(
                        got.is_ok(),
                        model.remove(&key).is_some(),
                        "delete {key} at step {step}"
                    );
                } else {
                    let got = table.update_words(&w, &owner, &k(key), &[value], BPF_ANY);
                    match got {
                        Ok(()) => {
                            model.insert(key, value);
                        }
                        Err(e) => assert_eq!(
                            (e, model.len()),
                            (Errno::E2BIG.into(), 8),
                            "only a full map refuses"
                        ),
                    }
                }
                table
                    .check_conservation()
                    .unwrap_or_else(|f| panic!("step {step}, flags {flags}: {f}"));
            }
            for (key, value) in &model {
                let elem = table.lookup_elem(&w, &k(*key)).unwrap().expect("present");
                assert_eq!(table.value_word0(elem), *value);
            }
            assert_eq!(table.len().unwrap(), model.len());
            Std::set_current_cpu(0);
        }
    }

    #[test]
    fn no_prealloc_allocation_failure_is_enomem() {
        let config = WorldConfig {
            faults: FaultPlan {
                hash_alloc_fail_per_mille: 1000,
            },
            ..WorldConfig::default()
        };
        let w = World::<Std>::new(Mutants::NONE, config);
        let def = MapDef {
            map_type: MapType::Hash,
            key_size: 4,
            value_size: 4,
            max_entries: 4,
            map_flags: BPF_F_NO_PREALLOC,
        };
        let table = HashTab::new(&w, &def, 4).unwrap();
        let owner = Map::new(
            def,
            HTAB_HEADER_BYTES,
            Box::new(HashTab::<Std>::new(&w, &def, 4).unwrap()),
        );
        assert_eq!(
            table.update_words(&w, &owner, &k(1), &[1], BPF_ANY),
            Err(Errno::ENOMEM.into())
        );
        table.check_conservation().unwrap();
    }
}
