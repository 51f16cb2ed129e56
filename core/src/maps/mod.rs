//! The map kinds: one [`MapOps`] trait (the kernel's `bpf_map_ops` table) with one
//! implementation per kind, and [`Map`], the object the world keeps in its arena.
//!
//! | kind | file | built on |
//! |---|---|---|
//! | `ARRAY`, `PERCPU_ARRAY`, `PROG_ARRAY` | [`array`](mod@array) | a flat run of value words |
//! | `HASH`, `PERCPU_HASH` (prealloc / `BPF_F_NO_PREALLOC`) | [`hashtab`], [`freelist`] | nulls-terminated buckets |
//! | `ARRAY_OF_MAPS` | [`array_of_maps`] | [`array::ArrayMap`] + the fd get/put hooks |
//! | `HASH_OF_MAPS` | [`hash_of_maps`] | [`hashtab::HashTab`] + the fd get/put hooks |
//!
//! [`meta`] builds the inner map meta from a template and holds the `map_meta_equal` rules.
//!
//! # Memory
//! Map memory is racy BPF memory: values, keys and list links are platform atomics (one word
//! per 8 bytes), so every access is an interleaving point for the model checkers and a reader
//! can see a torn or half-rewritten value, as in the kernel. A map's **region** (what a BPF
//! pointer into the map addresses, see [`crate::ptr`]) is a read-only header followed by the
//! values; [`Map::load`]/[`Map::store`]/[`Map::atomic`] translate region offsets to words and
//! refuse anything outside value memory with [`Fault::OutOfBounds`].
//!
//! Outer maps store inner maps as encoded map pointers (`Ptr::map(handle, 0).encode()`), the
//! way the kernel stores `struct bpf_map *`, so inlined array-of-maps code can load a slot as an
//! 8-byte word.
//!
//! # Invariants
//! * A map's shape ([`MapDef`], header image, memory size) never changes after creation.
//! * Every access on behalf of a program checks the map is live before *and* after touching its
//!   memory, so an access that overlaps a free is a [`Fault::UseAfterFree`].

pub mod array;
pub mod array_of_maps;
pub mod direct_call;
pub mod freelist;
pub mod gen_lookup;
pub mod hash_of_maps;
pub mod hashtab;
pub mod kind;
pub mod meta;
pub mod prog_array;

use crate::arena::Handle;
use crate::errno::Errno;
use crate::fault::{Error, Fault, Result, Stamp};
use crate::sync::{Atomic64, Ordering, Platform};
use crate::uapi::{BatchOut, MapAttr, MapId, MapType};
use crate::world::World;
pub use meta::MapMeta;

/// Bytes of one memory word: maps are modelled as 64-bit atomic words.
pub const WORD_BYTES: u32 = 8;

/// Offsets of `struct bpf_map` fields a privileged program may read, as the recorded build lays
/// them out (`bpf::kernel_types`: Linux 6.18.44-fc-v1300 on x86-64, where a 32-byte `sha` and
/// `excl` come before `ops`, `inner_map_meta` and `security`). The verifier checks such reads
/// against that build's BTF; this is where the executor finds the same fields.
pub mod header {
    pub const MAP_TYPE: u32 = 64;
    pub const KEY_SIZE: u32 = 68;
    pub const VALUE_SIZE: u32 = 72;
    pub const MAX_ENTRIES: u32 = 76;
    pub const MAP_FLAGS: u32 = 88;
    pub const ID: u32 = 92;
    /// `struct bpf_array` fields, after its `struct bpf_map` (296 bytes).
    pub const ARRAY_ELEM_SIZE: u32 = 296;
    pub const ARRAY_INDEX_MASK: u32 = 300;
}

/// Where an array's values start in its region: `offsetof(struct bpf_array, value)` on x86-64
/// Linux 6.18 (the seed's 2020 dump shows 272; the struct grew since).
pub const ARRAY_VALUE_OFFSET: u32 = 312;

/// The model refuses maps whose memory would exceed this many words (`-ENOMEM`): the kernel
/// would try `kvmalloc`, the model must stay small enough to run under the checkers.
pub const MAX_MAP_WORDS: u64 = 1 << 24;

/// A map's creation attributes, validated (`attr` with a known type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MapDef {
    pub map_type: MapType,
    pub key_size: u32,
    /// As user space sees it (4 for outer maps: an fd in, an id out).
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
}

impl MapDef {
    pub fn from_attr(attr: &MapAttr) -> Option<MapDef> {
        Some(MapDef {
            map_type: MapType::from_u32(attr.map_type)?,
            key_size: attr.key_size,
            value_size: attr.value_size,
            max_entries: attr.max_entries,
            map_flags: attr.map_flags,
        })
    }
}

/// What a lookup found, as a program sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A value at this offset of the map's region.
    Value { offset: u32 },
    /// An outer map's slot: the encoded inner map pointer read from it (never 0).
    MapPtr(u64),
}

/// Who asks for an update: per-CPU maps take every CPU's copy from user space, and only the
/// running CPU's copy from a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Syscall,
    Program,
}

/// The per-kind operations (`struct bpf_map_ops`). Unsupported operations are explicit
/// defaults returning the kernel's errno, never a panic.
pub trait MapOps<P: Platform>: Send + Sync + 'static {
    /// Program and syscall lookup (lockless, inside a read-side section).
    fn lookup(&self, w: &World<P>, key: &[u8]) -> Result<Option<Found>>;
    /// `map_update_elem`; `value` is what user space or the program passes (an fd for outer maps).
    fn update(
        &self,
        w: &World<P>,
        map: &Map<P>,
        key: &[u8],
        value: &[u8],
        flags: u64,
        caller: Caller,
    ) -> Result<()>;
    fn delete(&self, w: &World<P>, map: &Map<P>, key: &[u8]) -> Result<()>;
    fn lookup_and_delete(&self, _w: &World<P>, _map: &Map<P>, _key: &[u8]) -> Result<Vec<u8>> {
        Err(Errno::ENOTSUPP.into())
    }
    /// `map_lookup_percpu_elem`: CPU `cpu`'s copy of the value under `key` (`None` for a miss
    /// or a CPU the map has no copy for, as the kernel answers `cpu >= nr_cpu_ids`). Only
    /// per-CPU maps have it; the verifier lets no other map reach it.
    fn lookup_percpu(&self, _w: &World<P>, _key: &[u8], _cpu: u32) -> Result<Option<Found>> {
        Err(Errno::EOPNOTSUPP.into())
    }
    /// `__htab_map_lookup_elem` (what an inlined hash lookup calls): the region offset of the
    /// element holding `key`, whose value starts `offsetof(htab_elem, key) + round_up(key_size,
    /// 8)` further. Only hashes whose value the inlined code reaches that way have it.
    fn lookup_elem_offset(&self, _w: &World<P>, _key: &[u8]) -> Result<Option<u32>> {
        Err(Errno::EOPNOTSUPP.into())
    }
    /// `key == None` (or a key that is not there, for hashes) asks for the first key.
    fn get_next_key(&self, w: &World<P>, key: Option<&[u8]>) -> Result<Vec<u8>>;
    /// The user-space copy of a found value (outer maps: the inner map's id).
    fn value_to_user(&self, w: &World<P>, map: &Map<P>, found: Found) -> Result<Vec<u8>> {
        match found {
            Found::Value { offset } => map.read_bytes(offset, map.def.value_size),
            Found::MapPtr(ptr) => Ok(w.map_id_of_ptr(ptr)?.to_le_bytes().to_vec()),
        }
    }
    /// `BPF_MAP_LOOKUP_BATCH` / `..._AND_DELETE_BATCH` (`-ENOTSUPP` when the kind has none).
    fn lookup_batch(
        &self,
        _w: &World<P>,
        _map: &Map<P>,
        _in_batch: Option<u32>,
        _count: u32,
        _delete: bool,
    ) -> Result<BatchOut> {
        Err(Errno::ENOTSUPP.into())
    }
    /// Does the kind have `map_update_batch` / `map_delete_batch` (the generic ones)?
    fn has_update_batch(&self) -> bool {
        false
    }
    fn has_delete_batch(&self) -> bool {
        false
    }
    /// Releases what the map holds (outer maps: their inner maps, put without defer).
    fn free(&self, _w: &World<P>, _map: &Map<P>) -> Result<()> {
        Ok(())
    }
    /// Bytes the kernel would charge for this map now (prealloc: all of it up front).
    fn footprint(&self) -> u64;
    /// The value word holding the 8-aligned region offset `offset`, if it is value memory.
    fn word(&self, offset: u32) -> Option<&P::Atomic>;
    /// Where the value holding region offset `offset` starts (per-CPU maps: the copy holding
    /// it), if `offset` is value memory; `None` by default (outer maps: programs never hold
    /// pointers into their slots). The soundness oracle measures value pointers from it.
    fn value_base(&self, _offset: u32) -> Option<u32> {
        None
    }
    /// `map_fd_sys_lookup_elem`: a user-space lookup answered by the kind itself (`PROG_ARRAY`:
    /// the stored program's id); `None` for kinds whose lookup goes through [`MapOps::lookup`].
    fn fd_sys_lookup_elem(&self, _w: &World<P>, _key: &[u8]) -> Option<Result<Vec<u8>>> {
        None
    }
    /// `map_release_uref`: the last user reference went (`PROG_ARRAY`: empty every slot).
    fn release_uref(&self, _w: &World<P>) -> Result<()> {
        Ok(())
    }
    /// `bpf_prog_map_compatible`: may a program of this type share the map with the programs
    /// already tied to it (`PROG_ARRAY`: its owner, fixed by the first one asking)? Every other
    /// kind takes any program.
    fn owner_compatible(&self, _prog_type: u32, _sleepable: bool) -> bool {
        true
    }
    /// What a tail call through this map at `index` finds (`PROG_ARRAY` only).
    fn tail_call_slot(&self, _index: u32) -> Result<prog_array::TailSlot> {
        Err(Errno::EOPNOTSUPP.into())
    }
    /// The inner map meta (outer maps only).
    fn meta(&self) -> Option<&MapMeta> {
        None
    }
    /// Freelist conservation (§8.5), for hashes; call at quiescence.
    fn check_conservation(&self) -> Result<(), Fault> {
        Ok(())
    }
    /// `map_gen_lookup` would inline lookups (array, array-of-maps without `BPF_F_INNER_MAP`).
    fn index_mask(&self) -> Option<u32> {
        None
    }
    /// Per-CPU maps: how many copies of each value (the possible CPUs).
    fn percpu_copies(&self) -> Option<u32> {
        None
    }
    /// Values stored for a program are encoded map pointers (outer maps).
    fn holds_maps(&self) -> bool {
        false
    }
}

/// A map object: its shape, reference counts, reclamation flags and per-kind state.
pub struct Map<P: Platform> {
    pub def: MapDef,
    /// The id, set right after creation and kept after release (for reports).
    id: P::Atomic,
    pub(crate) refcnt: P::Atomic,
    pub(crate) uref: P::Atomic,
    /// Sleepable programs using this (outer) map.
    pub(crate) sleepable_refcnt: P::Atomic,
    /// Set by a deferred put of an inner map (§6); read when refcnt reaches 0.
    pub(crate) free_after_rcu_gp: P::Atomic,
    pub(crate) free_after_mult_rcu_gp: P::Atomic,
    /// Non-zero once freed: the free's event number + 1, the fast path of every access check.
    freed: P::Atomic,
    freed_at: P::Mutex<Option<Stamp>>,
    /// Non-zero once `BPF_MAP_FREEZE` made it read-only to user space.
    frozen: P::Atomic,
    /// The read-only header image (`struct bpf_map` / `bpf_array` fields).
    header: Vec<u8>,
    header_len: u32,
    /// Bytes of a value as the syscalls copy it (`bpf_map_value_size`).
    sys_value_len: u32,
    pub ops: Box<dyn MapOps<P>>,
}

impl<P: Platform> Map<P> {
    pub(crate) fn new(def: MapDef, header_len: u32, ops: Box<dyn MapOps<P>>) -> Self {
        let mut header = vec![0u8; header_len as usize];
        let mut put = |at: u32, v: u32| {
            if let Some(bytes) = header.get_mut(at as usize..at as usize + 4) {
                bytes.copy_from_slice(&v.to_le_bytes());
            }
        };
        put(header::MAP_TYPE, def.map_type as u32);
        put(header::KEY_SIZE, def.key_size);
        put(header::VALUE_SIZE, def.value_size);
        put(header::MAX_ENTRIES, def.max_entries);
        put(header::MAP_FLAGS, def.map_flags);
        if let Some(mask) = ops.index_mask() {
            put(header::ARRAY_ELEM_SIZE, array::elem_size(&def));
            put(header::ARRAY_INDEX_MASK, mask);
        }
        Map {
            def,
            id: P::atomic(0),
            refcnt: P::atomic(1),
            uref: P::atomic(1),
            sleepable_refcnt: P::atomic(0),
            free_after_rcu_gp: P::atomic(0),
            free_after_mult_rcu_gp: P::atomic(0),
            freed: P::atomic(0),
            freed_at: P::mutex(None),
            frozen: P::atomic(0),
            header,
            header_len,
            sys_value_len: match ops.percpu_copies() {
                Some(copies) => round_up8(def.value_size) * copies,
                None => def.value_size,
            },
            ops,
        }
    }

    pub fn id(&self) -> MapId {
        self.id.load(Ordering::Acquire) as MapId
    }
    /// `map->frozen`.
    pub fn is_frozen(&self) -> bool {
        self.frozen.load(Ordering::Acquire) != 0
    }
    pub(crate) fn freeze(&self) {
        self.frozen.store(1, Ordering::Release);
    }
    pub(crate) fn set_id(&self, id: MapId) {
        self.id.store(u64::from(id), Ordering::Release);
    }
    pub fn refcnt(&self) -> u64 {
        self.refcnt.load(Ordering::Acquire)
    }
    pub fn uref(&self) -> u64 {
        self.uref.load(Ordering::Acquire)
    }
    pub fn sleepable_refcnt(&self) -> u64 {
        self.sleepable_refcnt.load(Ordering::Acquire)
    }
    /// Bytes of a value as user space passes and receives it: `value_size`, or for per-CPU
    /// maps `round_up(value_size, 8)` per possible CPU.
    pub fn sys_value_len(&self) -> u32 {
        self.sys_value_len
    }
    pub fn header_len(&self) -> u32 {
        self.header_len
    }

    pub(crate) fn mark_freed(&self, at: Stamp) {
        P::lock(&self.freed_at, |slot| *slot = Some(at));
        self.freed.store(at.seq + 1, Ordering::Release);
    }

    /// Fails with [`Fault::UseAfterFree`] once the map is freed.
    pub fn check_live(&self, handle: Handle, at: impl FnOnce() -> Stamp) -> Result<(), Fault> {
        if self.freed.load(Ordering::Acquire) == 0 {
            return Ok(());
        }
        let freed_at = P::lock(&self.freed_at, |slot| *slot);
        Err(Fault::UseAfterFree {
            object: format!(
                "map {handle} (id {}, {})",
                self.id(),
                self.def.map_type.name()
            ),
            freed_at,
            accessed_at: at(),
        })
    }

    fn oob(&self, what: &str, offset: u32, size: u32, at: Stamp) -> Error {
        Fault::OutOfBounds {
            what: format!(
                "{what} of {size} bytes at offset {offset} of {} map id {} (header {} bytes)",
                self.def.map_type.name(),
                self.id(),
                self.header_len
            ),
            at,
        }
        .into()
    }

    fn header_load(&self, offset: u32, size: u32) -> Option<u64> {
        if offset == header::ID && size == 4 {
            // The id is assigned after the header image is built.
            return Some(u64::from(self.id()));
        }
        let end = offset.checked_add(size)?;
        let bytes = self.header.get(offset as usize..end as usize)?;
        let mut word = [0u8; 8];
        word[..bytes.len()].copy_from_slice(bytes);
        Some(u64::from_le_bytes(word))
    }

    /// The words an access of `size` bytes at `offset` touches: one or two, with the byte shift
    /// into the first. `None` when any byte is outside value memory.
    fn span(&self, offset: u32, size: u32) -> Option<Span<'_, P>> {
        if !matches!(size, 1 | 2 | 4 | 8) {
            return None;
        }
        let base = offset - offset % WORD_BYTES;
        let shift = offset % WORD_BYTES;
        let first = self.ops.word(base)?;
        let second = if shift + size > WORD_BYTES {
            Some(self.ops.word(base.checked_add(WORD_BYTES)?)?)
        } else {
            None
        };
        Some((first, second, shift))
    }

    /// A program's load of `size` bytes (1, 2, 4, 8) at region `offset`: header or value memory.
    pub fn load(&self, offset: u32, size: u32, at: impl Fn() -> Stamp) -> Result<u64> {
        if offset < self.header_len {
            return match self.header_load(offset, size) {
                Some(v) if offset + size <= self.header_len && matches!(size, 1 | 2 | 4 | 8) => {
                    Ok(v)
                }
                _ => Err(self.oob("header load", offset, size, at())),
            };
        }
        let (first, second, shift) = self
            .span(offset, size)
            .ok_or_else(|| self.oob("load", offset, size, at()))?;
        let lo = first.load(Ordering::Acquire) >> (shift * 8);
        let value = match second {
            // Two separate loads: a concurrent writer can tear the value, as on hardware.
            Some(second) => lo | second.load(Ordering::Acquire) << ((WORD_BYTES - shift) * 8),
            None => lo,
        };
        Ok(truncate(value, size))
    }

    /// A program's store; bytes next to the stored ones are preserved (a CAS per word).
    pub fn store(&self, offset: u32, size: u32, value: u64, at: impl Fn() -> Stamp) -> Result<()> {
        if offset < self.header_len {
            return Err(self.oob("store into the read-only header", offset, size, at()));
        }
        let (first, second, shift) = self
            .span(offset, size)
            .ok_or_else(|| self.oob("store", offset, size, at()))?;
        let value = truncate(value, size);
        let lo_bytes = size.min(WORD_BYTES - shift);
        merge_bytes::<P>(first, shift, lo_bytes, value)?;
        if let Some(second) = second {
            merge_bytes::<P>(second, 0, size - lo_bytes, value >> (lo_bytes * 8))?;
        }
        Ok(())
    }

    /// A program's atomic read-modify-write (size 4 or 8, naturally aligned), as the BPF
    /// instruction `op` does it with source `operand` (and `r0`, the `cmpxchg` comparand);
    /// returns the old value.
    pub fn atomic(
        &self,
        offset: u32,
        size: u32,
        op: crate::isa::AtomicOp,
        operand: u64,
        r0: u64,
        at: impl Fn() -> Stamp,
    ) -> Result<u64> {
        if offset < self.header_len || !matches!(size, 4 | 8) || !offset.is_multiple_of(size) {
            return Err(self.oob("atomic access", offset, size, at()));
        }
        let (word, _, shift) = self
            .span(offset, size)
            .ok_or_else(|| self.oob("atomic access", offset, size, at()))?;
        let mask = if size == 8 {
            u64::MAX
        } else {
            0xffff_ffff_u64 << (shift * 8)
        };
        let mut bounded = 0u32;
        loop {
            let current = word.load(Ordering::Acquire);
            let old = truncate(current >> (shift * 8), size);
            // The executor's own arithmetic, so both memories compute the same value; `None` is
            // a `cmpxchg` whose comparand differs (nothing is stored). `size` is 4 or 8 here.
            let Some(new) = op.result(size as u8, old, operand, r0) else {
                return Ok(old);
            };
            let updated = (current & !mask) | (truncate(new, size) << (shift * 8));
            if word
                .compare_exchange(current, updated, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Ok(old);
            }
            bounded += 1;
            if u64::from(bounded) > crate::rcu::GP_WAIT_YIELDS_MAX {
                return Err(Fault::Liveness {
                    detail: format!("atomic at offset {offset} never wins its CAS"),
                }
                .into());
            }
            P::yield_now();
        }
    }

    /// Copies `len` bytes of value memory from `offset` (user-space copies, racy like the kernel's).
    pub fn read_bytes(&self, offset: u32, len: u32) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(len as usize);
        let mut at = offset;
        while at < offset + len {
            let word = self
                .ops
                .word(at - at % WORD_BYTES)
                .ok_or_else(|| self.oob("copy", offset, len, Stamp::default()))?;
            let bytes = word.load(Ordering::Acquire).to_le_bytes();
            let start = (at % WORD_BYTES) as usize;
            let take = ((offset + len - at) as usize).min(8 - start);
            out.extend_from_slice(&bytes[start..start + take]);
            at += take as u32;
        }
        Ok(out)
    }

    /// Writes `bytes` into value memory at `offset`, whole words where possible.
    pub fn write_bytes(&self, offset: u32, bytes: &[u8]) -> Result<()> {
        let mut at = offset;
        let end = offset + bytes.len() as u32;
        while at < end {
            let word = self
                .ops
                .word(at - at % WORD_BYTES)
                .ok_or_else(|| self.oob("copy", offset, bytes.len() as u32, Stamp::default()))?;
            let start = at % WORD_BYTES;
            let take = (end - at).min(WORD_BYTES - start);
            let chunk = &bytes[(at - offset) as usize..(at - offset + take) as usize];
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            if take == WORD_BYTES {
                word.store(u64::from_le_bytes(buf), Ordering::Release);
            } else {
                merge_bytes::<P>(word, start, take, u64::from_le_bytes(buf))?;
            }
            at += take;
        }
        Ok(())
    }
}

/// The words an access touches: the first, the second when it crosses a word boundary, and
/// the byte offset into the first.
type Span<'a, P> = (
    &'a <P as Platform>::Atomic,
    Option<&'a <P as Platform>::Atomic>,
    u32,
);

/// The low `size` bytes of `value`.
pub(crate) fn truncate(value: u64, size: u32) -> u64 {
    if size >= 8 {
        value
    } else {
        value & ((1u64 << (size * 8)) - 1)
    }
}

/// Stores `len` low bytes of `value` at byte `shift` of `word`, keeping the other bytes.
fn merge_bytes<P: Platform>(word: &P::Atomic, shift: u32, len: u32, value: u64) -> Result<()> {
    if shift == 0 && len == WORD_BYTES {
        word.store(value, Ordering::Release);
        return Ok(());
    }
    let mask = ((1u64 << (len * 8)) - 1) << (shift * 8);
    let bits = (truncate(value, len) << (shift * 8)) & mask;
    let mut current = word.load(Ordering::Acquire);
    // A CAS loop, not fetch_and + fetch_or: the latter would expose a zeroed value in between.
    // Lock-free (a retry means another store won), and still bounded like every loop here.
    for _ in 0..crate::rcu::GP_WAIT_YIELDS_MAX {
        match word.compare_exchange(
            current,
            (current & !mask) | bits,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => return Ok(()),
            Err(seen) => current = seen,
        }
    }
    Err(Fault::Liveness {
        detail: format!("a {len}-byte store never wins its CAS"),
    }
    .into())
}

/// Bytes → little-endian words (zero padded).
pub(crate) fn bytes_to_words(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks(8)
        .map(|chunk| {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            u64::from_le_bytes(buf)
        })
        .collect()
}

/// Words → `len` little-endian bytes.
pub(crate) fn words_to_bytes(words: impl Iterator<Item = u64>, len: usize) -> Vec<u8> {
    let mut out: Vec<u8> = words.flat_map(u64::to_le_bytes).collect();
    out.truncate(len);
    out
}

/// `round_up(n, 8)`.
pub(crate) fn round_up8(n: u32) -> u32 {
    n.div_ceil(WORD_BYTES) * WORD_BYTES
}

/// An array-style key: a 4-byte little-endian index.
pub(crate) fn array_index(key: &[u8]) -> Result<u32> {
    let bytes: [u8; 4] = key.try_into().map_err(|_| Error::from(Errno::EINVAL))?;
    Ok(u32::from_le_bytes(bytes))
}

/// An fd passed as an outer map value (4 bytes).
pub(crate) fn value_fd(value: &[u8]) -> Result<i32> {
    let bytes: [u8; 4] = value.try_into().map_err(|_| Error::from(Errno::EINVAL))?;
    Ok(i32::from_le_bytes(bytes))
}

/// Every refusal `BPF_MAP_CREATE` gives a map of `def` before it exists (the type's
/// `map_alloc_check`, then the size limits its allocation checks), without allocating:
/// for callers that describe maps without creating them (the verifier's map specs), so a spec
/// the kernel would refuse is refused with the kernel's errno before anything is sized from it.
/// `privileged` is `bpf_bypass_spec_v1` (an unprivileged array is rounded up to its index mask).
/// The inner-map template of an outer map is not checked here: it is a map of its own.
pub fn create_check(def: &MapDef, privileged: bool) -> Result<()> {
    let kind = kind::kind(def.map_type);
    (kind.alloc_check)(def)?;
    kind.size_check(def, privileged)
}

/// The per-type creation check (`map_alloc_check`, from the kind table) and allocation. This is
/// the one place that turns a map type into its ops, like the kernel's `bpf_map_types[]`.
pub(crate) fn alloc<P: Platform>(
    w: &World<P>,
    attr: &MapAttr,
) -> Result<(MapDef, Box<dyn MapOps<P>>, u32)> {
    let def = MapDef::from_attr(attr).ok_or(Errno::EINVAL)?;
    (kind::kind(def.map_type).alloc_check)(&def)?;
    match def.map_type {
        MapType::Array => {
            let map = array::ArrayMap::<P>::new(&def)?;
            Ok((def, Box::new(map), ARRAY_VALUE_OFFSET))
        }
        MapType::PercpuArray => {
            let map = array::ArrayMap::<P>::new_percpu(&def, w.config().cpus.max(1) as u32)?;
            Ok((def, Box::new(map), ARRAY_VALUE_OFFSET))
        }
        MapType::ProgArray => {
            let map = prog_array::ProgArray::<P>::new(&def)?;
            Ok((def, Box::new(map), ARRAY_VALUE_OFFSET))
        }
        MapType::Hash | MapType::PercpuHash => {
            let map = hashtab::HashTab::<P>::new(w, &def, def.value_size)?;
            Ok((def, Box::new(map), hashtab::HTAB_HEADER_BYTES))
        }
        MapType::ArrayOfMaps => {
            let meta = w.meta_from_fd(attr.inner_map_fd as i32)?;
            let map = array_of_maps::ArrayOfMaps::<P>::new(&def, meta)?;
            Ok((def, Box::new(map), ARRAY_VALUE_OFFSET))
        }
        MapType::HashOfMaps => {
            let meta = w.meta_from_fd(attr.inner_map_fd as i32)?;
            let map = hash_of_maps::HashOfMaps::<P>::new(w, &def, meta)?;
            Ok((def, Box::new(map), hashtab::HTAB_HEADER_BYTES))
        }
    }
}

/// A handle as an encoded map pointer (what outer maps store, what lookups return).
pub fn map_ptr(handle: Handle) -> u64 {
    crate::ptr::Ptr::map(handle, 0).encode()
}
