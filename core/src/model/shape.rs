//! What a map *is* in the reference model, apart from its contents: its [`Shape`] (the creation
//! attributes that survive validation), the creation rules of semantics.md §2 that depend on the
//! attributes alone ([`check_attr`]), the inner map [`Meta`] an outer map keeps (§2) and its
//! `meta_equal` rule (§3), and the model's bucket layout for hashes.
//!
//! Everything here is a pure function of attributes: no fds, no ids, no references.

use crate::errno::Errno;
use crate::uapi::{
    MapAttr, MapType, BPF_F_INNER_MAP, BPF_F_MMAPABLE, BPF_F_NO_COMMON_LRU, BPF_F_NO_PREALLOC,
    BPF_F_NUMA_NODE, BPF_F_RDONLY, BPF_F_RDONLY_PROG, BPF_F_WRONLY, BPF_F_WRONLY_PROG,
    BPF_F_ZERO_SEED,
};

/// The kernel's `BPF_F_ACCESS_MASK`: the syscall-side access modes (`RDONLY`/`WRONLY`, which
/// set the access mode of the new fd) and the program-side ones (`*_PROG`). Every map type
/// accepts the mask; fd arrays then refuse the program-side half.
pub const ACCESS_FLAGS: u32 = BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG;

/// The syscall-side access modes. The kernel does not keep them in the map's `map_flags`
/// (`bpf_map_flags_retain_permanent`): they belong to the fd, not the map, so `map_info` does
/// not report them and `meta_equal` cannot see them (docs/kernel-disagreements.md D1, D3).
pub const FD_ACCESS_FLAGS: u32 = BPF_F_RDONLY | BPF_F_WRONLY;

/// Flags an array-like map (ARRAY, PERCPU_ARRAY, PROG_ARRAY, ARRAY_OF_MAPS) accepts at all;
/// the per-type checks then narrow them.
pub const ARRAY_CREATE_FLAGS: u32 =
    BPF_F_NUMA_NODE | BPF_F_MMAPABLE | ACCESS_FLAGS | BPF_F_INNER_MAP;

/// Flags a hash-like map accepts at all: semantics.md §2's list plus the syscall-side access
/// modes, which its list leaves out and the kernel accepts (D1).
pub const HASH_CREATE_FLAGS: u32 =
    BPF_F_NO_PREALLOC | BPF_F_NO_COMMON_LRU | BPF_F_NUMA_NODE | ACCESS_FLAGS | BPF_F_ZERO_SEED;

/// What an fd may do through the syscall (its file mode): `BPF_F_RDONLY` at creation makes a
/// read-only fd, `BPF_F_WRONLY` a write-only one; other fds read and write.
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

    /// The access of the fd `BPF_MAP_CREATE` returns for these (already validated) flags.
    pub fn of_create_flags(map_flags: u32) -> FdAccess {
        FdAccess {
            read: map_flags & BPF_F_WRONLY == 0,
            write: map_flags & BPF_F_RDONLY == 0,
        }
    }
}

/// An fd is four bytes: the value size of every fd-holding map, and of an id on the way out.
pub const FD_VALUE_SIZE: u32 = 4;

/// Array keys are `u32` indices.
pub const ARRAY_KEY_SIZE: u32 = 4;

/// Per-CPU values are copied in 8-byte units (the kernel's `round_up(value_size, 8)`).
pub const PERCPU_VALUE_ALIGN: usize = 8;

/// The largest kmalloc (x86-64, 4 KiB pages: `1 << (MAX_PAGE_ORDER + PAGE_SHIFT)`): a hash
/// element's key + value + header must fit one.
pub const KMALLOC_MAX_SIZE: u64 = 1 << 22;

/// The largest array value: `INT_MAX` (an array is one vmalloc area; the kernel only keeps
/// `round_up(value_size, 8)` from overflowing an `int`).
pub const ARRAY_VALUE_SIZE_MAX: u64 = i32::MAX as u64;

/// The kernel's `struct htab_elem` header on x86-64 (hash node, freelist link, hash, key
/// padding), subtracted from [`KMALLOC_MAX_SIZE`] for a hash element's key and value.
pub const HTAB_ELEM_SIZE: u64 = 48;

/// The smallest per-CPU allocation unit: a per-CPU value (rounded up to 8) must fit it.
pub const PCPU_MIN_UNIT_SIZE: u64 = 32 << 10;

/// The model caps its hash bucket count at 2^31 so that a bucket index and the end-of-map batch
/// token (`n_buckets`) both fit the `u32` batch token of [`crate::uapi::BpfSys`].
pub const MAX_BUCKETS: u64 = 1 << 31;

/// The attributes of a created map, as `map_info` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    pub map_type: MapType,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
}

/// How the model stores a map's elements, derived from the type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// ARRAY, PERCPU_ARRAY: every index in range holds a value (zeroes until written).
    Array,
    /// HASH, PERCPU_HASH.
    Hash,
    /// ARRAY_OF_MAPS, PROG_ARRAY: slots holding an object or empty.
    FdArray,
    /// HASH_OF_MAPS.
    FdHash,
}

impl Shape {
    pub fn layout(&self) -> Layout {
        match self.map_type {
            MapType::Array | MapType::PercpuArray => Layout::Array,
            MapType::Hash | MapType::PercpuHash => Layout::Hash,
            MapType::ArrayOfMaps | MapType::ProgArray => Layout::FdArray,
            MapType::HashOfMaps => Layout::FdHash,
        }
    }

    pub fn is_percpu(&self) -> bool {
        matches!(self.map_type, MapType::PercpuArray | MapType::PercpuHash)
    }

    /// `NO_PREALLOC` only changes where hash elements come from, never what user space sees in
    /// a sequential run (the model never fails an allocation), so the model records it only for
    /// `map_info` and `meta_equal`.
    pub fn is_prealloc(&self) -> bool {
        self.map_flags & BPF_F_NO_PREALLOC == 0
    }

    /// The value buffer a syscall reads or writes: fds/ids for fd maps, one rounded-up value per
    /// possible CPU for per-CPU maps (the kernel's `bpf_map_value_size`).
    pub fn sys_value_len(&self, possible_cpus: u32) -> usize {
        match self.map_type {
            MapType::ArrayOfMaps | MapType::HashOfMaps | MapType::ProgArray => {
                FD_VALUE_SIZE as usize
            }
            MapType::PercpuArray | MapType::PercpuHash => {
                round_up(self.value_size as usize, PERCPU_VALUE_ALIGN) * possible_cpus as usize
            }
            MapType::Array | MapType::Hash => self.value_size as usize,
        }
    }

    /// A value as the map stores it from a syscall buffer of [`Shape::sys_value_len`] bytes.
    /// Per-CPU values are stored whole, padding included: the kernel copies
    /// `round_up(value_size, 8)` bytes per CPU both ways (`copy_map_value_long`), so the padding
    /// a user wrote is read back (measured on 6.18: docs/kernel-disagreements.md D8).
    pub fn normalise_value(&self, value: &[u8]) -> Vec<u8> {
        value.to_vec()
    }

    /// The kernel's `htab->n_buckets = roundup_pow_of_two(max_entries)`, capped at
    /// [`MAX_BUCKETS`].
    pub fn n_buckets(&self) -> u64 {
        (self.max_entries as u64)
            .max(1)
            .next_power_of_two()
            .min(MAX_BUCKETS)
    }

    /// The model's bucket of a key: FNV-1a over the key bytes, masked to the bucket count. The
    /// kernel uses jhash with a random seed; only the bucket *structure* (batch tokens are bucket
    /// indices, a batch never splits a bucket) is part of the contract, not which key lands where.
    pub fn bucket_of(&self, key: &[u8]) -> u32 {
        /// FNV-1a's published 32-bit offset basis and prime.
        const FNV_OFFSET: u32 = 0x811c_9dc5;
        const FNV_PRIME: u32 = 0x0100_0193;
        let hash = key
            .iter()
            .fold(FNV_OFFSET, |h, b| (h ^ *b as u32).wrapping_mul(FNV_PRIME));
        (hash as u64 & (self.n_buckets() - 1)) as u32
    }
}

/// The inner map meta of an outer map (`bpf_map_meta_alloc`): the template's shape and, for array
/// templates, the constants an inlined lookup uses. It holds no reference to the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Meta {
    pub shape: Shape,
    /// `2^ceil(log2(max_entries)) - 1`, array templates only.
    pub index_mask: Option<u32>,
    /// `round_up(value_size, 8)`, array templates only.
    pub elem_size: Option<u32>,
}

impl Meta {
    /// The meta of a template that passed the template checks of semantics.md §2.
    pub fn of_template(shape: Shape) -> Meta {
        let is_array = matches!(shape.map_type, MapType::Array | MapType::PercpuArray);
        Meta {
            shape,
            index_mask: is_array.then(|| index_mask(shape.max_entries)),
            elem_size: is_array
                .then(|| round_up(shape.value_size as usize, PERCPU_VALUE_ALIGN) as u32),
        }
    }

    /// `meta_equal(meta, inner)` (semantics.md §3): type, key size, value size and flags equal
    /// exactly; an ARRAY template also compares `max_entries` unless it carries
    /// `BPF_F_INNER_MAP`. The comparison is the template type's own (`meta->ops`): the kernel
    /// (6.18, measured) gives PERCPU_ARRAY the array override too, where semantics.md has the
    /// generic rule (kernel-disagreements.md D17).
    pub fn accepts(&self, inner: &Shape) -> bool {
        let meta = &self.shape;
        let generic = meta.map_type == inner.map_type
            && meta.key_size == inner.key_size
            && meta.value_size == inner.value_size
            && meta.map_flags == inner.map_flags;
        match meta.map_type {
            MapType::Array | MapType::PercpuArray => {
                generic
                    && (meta.map_flags & BPF_F_INNER_MAP != 0
                        || meta.max_entries == inner.max_entries)
            }
            _ => generic,
        }
    }
}

/// `2^ceil(log2(max_entries)) - 1`, computed in 64 bits as the kernel does to survive
/// `max_entries > 2^31`.
pub fn index_mask(max_entries: u32) -> u32 {
    let slots = (max_entries as u64).max(1).next_power_of_two();
    (slots - 1) as u32
}

fn round_up(value: usize, align: usize) -> usize {
    value.div_ceil(align) * align
}

/// Whether a template of this type can describe inner maps at all (`map_meta_equal` exists).
pub fn has_meta_equal(map_type: MapType) -> bool {
    !matches!(
        map_type,
        MapType::ProgArray | MapType::ArrayOfMaps | MapType::HashOfMaps
    )
}

/// The creation checks of semantics.md §2 that need nothing but the attributes: unknown types,
/// sizes, `max_entries`, and flags (`-EINVAL`), then the kernel's value size limits (`-E2BIG`). The template (`inner_map_fd`) is
/// checked afterwards by the caller, as the kernel checks attributes before building the meta.
pub fn check_attr(attr: &MapAttr) -> Result<Shape, Errno> {
    let flags = attr.map_flags;
    // The fd's access mode comes first (`bpf_get_file_flag`), before the type is looked at.
    if flags & BPF_F_RDONLY != 0 && flags & BPF_F_WRONLY != 0 {
        return Err(Errno::EINVAL);
    }
    let map_type = MapType::from_u32(attr.map_type).ok_or(Errno::EINVAL)?;
    // Asking for a map that programs may only read *and* only write is contradictory.
    if flags & BPF_F_RDONLY_PROG != 0 && flags & BPF_F_WRONLY_PROG != 0 {
        return Err(Errno::EINVAL);
    }
    match map_type {
        MapType::Array | MapType::PercpuArray | MapType::ProgArray | MapType::ArrayOfMaps => {
            check_array_attr(map_type, attr)?
        }
        MapType::Hash | MapType::PercpuHash | MapType::HashOfMaps => {
            check_hash_attr(map_type, attr)?
        }
    }
    Ok(Shape {
        map_type,
        key_size: attr.key_size,
        value_size: attr.value_size,
        max_entries: attr.max_entries,
        map_flags: flags & !FD_ACCESS_FLAGS,
    })
}

fn check_array_attr(map_type: MapType, attr: &MapAttr) -> Result<(), Errno> {
    let flags = attr.map_flags;
    let holds_fds = matches!(map_type, MapType::ProgArray | MapType::ArrayOfMaps);
    if holds_fds {
        // Only fds can be stored; program access flags are not supported on fd arrays.
        if attr.value_size != FD_VALUE_SIZE || flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG) != 0
        {
            return Err(Errno::EINVAL);
        }
    }
    if attr.max_entries == 0
        || attr.key_size != ARRAY_KEY_SIZE
        || attr.value_size == 0
        || flags & !ARRAY_CREATE_FLAGS != 0
    {
        return Err(Errno::EINVAL);
    }
    // A per-CPU array has no single NUMA node to allocate on.
    if map_type == MapType::PercpuArray && flags & BPF_F_NUMA_NODE != 0 {
        return Err(Errno::EINVAL);
    }
    // Dynamic inner arrays and mmap are plain-ARRAY features.
    if map_type != MapType::Array && flags & (BPF_F_INNER_MAP | BPF_F_MMAPABLE) != 0 {
        return Err(Errno::EINVAL);
    }
    let value_size = attr.value_size as u64;
    if value_size > ARRAY_VALUE_SIZE_MAX
        || (map_type == MapType::PercpuArray && value_size.div_ceil(8) * 8 > PCPU_MIN_UNIT_SIZE)
    {
        return Err(Errno::E2BIG);
    }
    Ok(())
}

fn check_hash_attr(map_type: MapType, attr: &MapAttr) -> Result<(), Errno> {
    let flags = attr.map_flags;
    if map_type == MapType::HashOfMaps && attr.value_size != FD_VALUE_SIZE {
        return Err(Errno::EINVAL);
    }
    if flags & !HASH_CREATE_FLAGS != 0 {
        return Err(Errno::EINVAL);
    }
    // NO_COMMON_LRU is in the hash flag mask but means something only for LRU hashes, which the
    // model does not have: the kernel refuses it on every non-LRU hash.
    if flags & BPF_F_NO_COMMON_LRU != 0 {
        return Err(Errno::EINVAL);
    }
    if map_type == MapType::PercpuHash && flags & BPF_F_NUMA_NODE != 0 {
        return Err(Errno::EINVAL);
    }
    if attr.max_entries == 0 || attr.key_size == 0 || attr.value_size == 0 {
        return Err(Errno::EINVAL);
    }
    let value_size = attr.value_size as u64;
    if attr.key_size as u64 + value_size >= KMALLOC_MAX_SIZE - HTAB_ELEM_SIZE
        || (map_type == MapType::PercpuHash && value_size.div_ceil(8) * 8 > PCPU_MIN_UNIT_SIZE)
    {
        return Err(Errno::E2BIG);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(map_type: MapType, max_entries: u32, map_flags: u32) -> Shape {
        Shape {
            map_type,
            key_size: 4,
            value_size: 4,
            max_entries,
            map_flags,
        }
    }

    #[test]
    fn index_mask_is_next_power_of_two_minus_one() {
        let cases = [(1, 0), (2, 1), (3, 3), (4, 3), (5, 7), (u32::MAX, u32::MAX)];
        for (max_entries, mask) in cases {
            assert_eq!(index_mask(max_entries), mask, "max_entries {max_entries}");
        }
    }

    #[test]
    fn array_meta_records_index_mask_and_elem_size() {
        let meta = Meta::of_template(Shape {
            value_size: 5,
            ..shape(MapType::Array, 3, 0)
        });
        assert_eq!(meta.index_mask, Some(3));
        assert_eq!(
            meta.elem_size,
            Some(8),
            "elem_size is value_size rounded up to 8"
        );
        assert_eq!(
            Meta::of_template(shape(MapType::Hash, 3, 0)).index_mask,
            None
        );
    }

    #[test]
    fn array_meta_equal_compares_max_entries_unless_inner_map() {
        let fixed = Meta::of_template(shape(MapType::Array, 1, 0));
        assert!(fixed.accepts(&shape(MapType::Array, 1, 0)));
        assert!(
            !fixed.accepts(&shape(MapType::Array, 2, 0)),
            "diff_size must be refused"
        );
        let dynamic = Meta::of_template(shape(MapType::Array, 1, BPF_F_INNER_MAP));
        assert!(dynamic.accepts(&shape(MapType::Array, 5, BPF_F_INNER_MAP)));
        assert!(
            !dynamic.accepts(&shape(MapType::Array, 1, 0)),
            "flags must match exactly"
        );
    }

    #[test]
    fn hash_meta_equal_ignores_max_entries() {
        let meta = Meta::of_template(shape(MapType::Hash, 2, 0));
        assert!(meta.accepts(&shape(MapType::Hash, 100, 0)));
        assert!(!meta.accepts(&shape(MapType::Hash, 2, BPF_F_NO_PREALLOC)));
        assert!(!meta.accepts(&shape(MapType::Array, 2, 0)));
    }

    #[test]
    fn percpu_values_keep_their_padding_per_cpu() {
        let s = Shape {
            value_size: 3,
            ..shape(MapType::PercpuArray, 1, 0)
        };
        assert_eq!(s.sys_value_len(2), 16);
        let written = [1, 2, 3, 9, 9, 9, 9, 9, 4, 5, 6, 9, 9, 9, 9, 9];
        assert_eq!(
            s.normalise_value(&written),
            written,
            "the kernel stores the padding"
        );
    }

    #[test]
    fn buckets_are_a_power_of_two_covering_max_entries() {
        assert_eq!(shape(MapType::Hash, 3, 0).n_buckets(), 4);
        assert_eq!(shape(MapType::Hash, 1, 0).n_buckets(), 1);
        assert_eq!(shape(MapType::Hash, u32::MAX, 0).n_buckets(), MAX_BUCKETS);
        let s = shape(MapType::Hash, 5, 0);
        assert!((0..100u32).all(|k| (s.bucket_of(&k.to_ne_bytes()) as u64) < s.n_buckets()));
    }
}
