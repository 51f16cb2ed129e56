//! `BPF_MAP_TYPE_ARRAY`, `PERCPU_ARRAY` (and the creation rules `PROG_ARRAY` shares with them,
//! its slots being in [`super::prog_array`]): a flat run of `max_entries` values of `elem_size = round_up(value_size, 8)`
//! bytes after a [`ARRAY_VALUE_OFFSET`]-byte header, the layout inlined lookups compute with.
//!
//! Every element always exists: update with `BPF_NOEXIST` is `-EEXIST`, delete is `-EINVAL`.
//! `index_mask = 2^ceil(log2(max_entries)) - 1` is recorded for the verifier's spectre masking;
//! the model is privileged, so it allocates exactly `max_entries` values.
//!
//! A per-CPU array keeps one copy of each value per CPU, laid out `[index][cpu]`; a program
//! sees the copy of the CPU it runs on, user space all of them (`round_up(value_size, 8)` bytes
//! each).

use super::{
    array_index, Caller, Found, Map, MapDef, MapOps, ARRAY_VALUE_OFFSET, MAX_MAP_WORDS, WORD_BYTES,
};
use crate::errno::Errno;
use crate::fault::{Error, Result};
use crate::sync::Platform;
use crate::uapi::*;
use crate::world::World;

/// Flags an array may be created with. The kernel also accepts the syscall-side access modes
/// `BPF_F_RDONLY`/`BPF_F_WRONLY` (and `BPF_F_PRESERVE_ELEMS` on perf arrays); the model does not
/// carry syscall-side access modes, so it refuses them (`-EINVAL`) rather than ignore them.
pub const ARRAY_CREATE_FLAG_MASK: u32 =
    BPF_F_NUMA_NODE | BPF_F_MMAPABLE | BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG | BPF_F_INNER_MAP;

/// The largest array value: `round_up(value_size, 8)` must not overflow an `int` (the kernel's
/// arrays are one vmalloc area, so a value may be larger than one kmalloc; measured on 6.18: a
/// value of 4 MiB + 8 is created, 2^31 is `-E2BIG`).
pub const MAX_ARRAY_VALUE_SIZE: u64 = i32::MAX as u64;
/// `PCPU_MIN_UNIT_SIZE`: a per-CPU value (rounded up to 8) must fit one per-CPU unit.
pub const PCPU_MIN_UNIT_SIZE: u64 = 32 << 10;

/// Both program access restrictions at once is contradictory (`bpf_map_flags_access_ok`).
pub fn access_flags_ok(flags: u32) -> bool {
    flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG) != (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG)
}

/// Bytes per array element.
pub fn elem_size(def: &MapDef) -> u32 {
    elem_size_of(def.value_size)
}

/// Bytes per element of an array of `value_size` values: rounded up to 8, in 64 bits so that
/// any `u32` size rounds without overflow (saturating at `u32::MAX`).
pub fn elem_size_of(value_size: u32) -> u32 {
    u32::try_from(u64::from(value_size).div_ceil(8) * 8).unwrap_or(u32::MAX)
}

/// `2^ceil(log2(max_entries)) - 1`, computed in 64 bits as the kernel does (past 2^31 entries
/// the power of two does not fit in 32).
pub fn index_mask(max_entries: u32) -> u32 {
    (u64::from(max_entries).next_power_of_two() - 1) as u32
}

/// Words of memory an array of `copies` values per element takes in the model.
fn words(def: &MapDef, copies: u32) -> u64 {
    u64::from(def.max_entries) * u64::from(copies) * u64::from(elem_size(def) / WORD_BYTES)
}

/// What `array_map_alloc` refuses before allocating: past 2^31 entries an unprivileged array
/// (whose size is rounded up to the index mask) overflows (`-E2BIG`); more memory than the
/// model holds is `-ENOMEM`, where the kernel's allocation of that much would fail.
pub fn size_check(def: &MapDef, copies: u32, privileged: bool) -> Result<()> {
    if !privileged && u64::from(def.max_entries) > 1 << 31 {
        return Err(Errno::E2BIG.into());
    }
    if words(def, copies.max(1)) > MAX_MAP_WORDS {
        return Err(Errno::ENOMEM.into());
    }
    Ok(())
}

/// `array_map_alloc_check` (shared by the fd arrays).
pub fn alloc_check(def: &MapDef) -> Result<()> {
    if !access_flags_ok(def.map_flags) {
        return Err(Errno::EINVAL.into());
    }
    if def.key_size != 4 || def.value_size == 0 || def.max_entries == 0 {
        return Err(Errno::EINVAL.into());
    }
    if def.map_flags & !ARRAY_CREATE_FLAG_MASK != 0 {
        return Err(Errno::EINVAL.into());
    }
    // A per-CPU array has no single NUMA node to allocate on.
    if def.map_type == MapType::PercpuArray && def.map_flags & BPF_F_NUMA_NODE != 0 {
        return Err(Errno::EINVAL.into());
    }
    // Only plain arrays may be mmap-able or dynamic inner maps.
    if def.map_flags & (BPF_F_MMAPABLE | BPF_F_INNER_MAP) != 0 && def.map_type != MapType::Array {
        return Err(Errno::EINVAL.into());
    }
    if def.map_type == MapType::ProgArray
        && (def.value_size != 4 || def.map_flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG) != 0)
    {
        return Err(Errno::EINVAL.into());
    }
    let value_size = u64::from(def.value_size);
    if value_size > MAX_ARRAY_VALUE_SIZE
        || (def.map_type == MapType::PercpuArray && value_size.div_ceil(8) * 8 > PCPU_MIN_UNIT_SIZE)
    {
        return Err(Errno::E2BIG.into());
    }
    Ok(())
}

/// An array: the values as words.
pub struct ArrayMap<P: Platform> {
    def: MapDef,
    elem_size: u32,
    index_mask: u32,
    /// Per-CPU arrays: copies per value; `None` for a shared array.
    percpu: Option<u32>,
    values: Vec<P::Atomic>,
}

impl<P: Platform> ArrayMap<P> {
    pub fn new(def: &MapDef) -> Result<Self> {
        Self::build(def, None)
    }

    /// A per-CPU array with `cpus` copies of every value.
    pub fn new_percpu(def: &MapDef, cpus: u32) -> Result<Self> {
        Self::build(def, Some(cpus.max(1)))
    }

    fn build(def: &MapDef, percpu: Option<u32>) -> Result<Self> {
        let elem_size = elem_size(def);
        let copies = percpu.unwrap_or(1);
        size_check(def, copies, true)?;
        let words = words(def, copies);
        Ok(ArrayMap {
            def: *def,
            elem_size,
            index_mask: index_mask(def.max_entries),
            percpu,
            values: (0..words).map(|_| P::atomic(0)).collect(),
        })
    }

    fn copies(&self) -> u32 {
        self.percpu.unwrap_or(1)
    }

    /// Region offset of the calling CPU's copy of element `index` (no bounds check).
    fn offset_here(&self, index: u32) -> u32 {
        let cpu = self.percpu.map_or(0, |cpus| P::current_cpu() as u32 % cpus);
        self.offset_on(index, cpu)
    }

    /// Region offset of CPU `cpu`'s copy of element `index` (no bounds check).
    fn offset_on(&self, index: u32, cpu: u32) -> u32 {
        ARRAY_VALUE_OFFSET + (index * self.copies() + cpu) * self.elem_size
    }

    /// Region offset of element `index` (its first copy; no bounds check).
    pub fn offset_of(&self, index: u32) -> u32 {
        ARRAY_VALUE_OFFSET + index * self.copies() * self.elem_size
    }

    /// The word of element `index`, if in range, in an array of one-word values with one copy
    /// (an array of maps' slots), whose element and word indices are the same.
    pub fn slot(&self, index: u32) -> Option<&P::Atomic> {
        debug_assert_eq!((self.copies(), self.elem_size), (1, WORD_BYTES));
        if index >= self.def.max_entries {
            return None;
        }
        self.values.get(index as usize)
    }

    /// `array_map_get_next_key`, shared by every array kind.
    pub fn next_key(&self, key: Option<&[u8]>) -> Result<Vec<u8>> {
        let next = match key.map(array_index).transpose()? {
            Some(index) if index < self.def.max_entries => {
                if index == self.def.max_entries - 1 {
                    return Err(Errno::ENOENT.into());
                }
                index + 1
            }
            _ => 0,
        };
        Ok(next.to_le_bytes().to_vec())
    }

    /// Header plus values (per-CPU: every CPU's copy; the kernel also keeps an 8-byte pointer
    /// per element there, which the model leaves out).
    pub fn footprint(&self) -> u64 {
        u64::from(ARRAY_VALUE_OFFSET)
            + u64::from(self.elem_size) * u64::from(self.def.max_entries) * u64::from(self.copies())
    }

    pub fn word(&self, offset: u32) -> Option<&P::Atomic> {
        let rel = offset.checked_sub(ARRAY_VALUE_OFFSET)?;
        self.values.get((rel / WORD_BYTES) as usize)
    }
}

/// `generic_map_lookup_batch`: walks keys with `get_next_key` from after `in_batch` (the last key
/// of the previous call). Missing entries (empty fd-array slots) are skipped.
pub(crate) fn generic_lookup_batch<P: Platform>(
    w: &World<P>,
    map: &Map<P>,
    in_batch: Option<u32>,
    count: u32,
) -> Result<BatchOut> {
    let mut out = BatchOut {
        next: in_batch.unwrap_or(0),
        ..BatchOut::default()
    };
    if count == 0 {
        return Ok(out);
    }
    let mut prev = in_batch.map(|k| k.to_le_bytes().to_vec());
    while (out.keys.len() as u32) < count {
        let key = match map.ops.get_next_key(w, prev.as_deref()) {
            Ok(key) => key,
            Err(Error::Errno(Errno::ENOENT)) => {
                out.done = true;
                break;
            }
            Err(e) => return Err(e),
        };
        match w.sys_lookup_value(map, &key) {
            Ok(value) => {
                out.keys.push(key.clone());
                out.values.push(value);
            }
            Err(Error::Errno(Errno::ENOENT)) => {}
            Err(e) => return Err(e),
        }
        out.next = super::array_index(&key).unwrap_or(0);
        prev = Some(key);
    }
    Ok(out)
}

impl<P: Platform> MapOps<P> for ArrayMap<P> {
    fn lookup(&self, _w: &World<P>, key: &[u8]) -> Result<Option<Found>> {
        let index = array_index(key)?;
        Ok((index < self.def.max_entries).then(|| Found::Value {
            offset: self.offset_here(index),
        }))
    }

    fn lookup_percpu(&self, _w: &World<P>, key: &[u8], cpu: u32) -> Result<Option<Found>> {
        let Some(cpus) = self.percpu else {
            return Err(Errno::EOPNOTSUPP.into());
        };
        let index = array_index(key)?;
        Ok(
            (index < self.def.max_entries && cpu < cpus).then(|| Found::Value {
                offset: self.offset_on(index, cpu),
            }),
        )
    }

    fn update(
        &self,
        _w: &World<P>,
        map: &Map<P>,
        key: &[u8],
        value: &[u8],
        flags: u64,
        caller: Caller,
    ) -> Result<()> {
        if flags > BPF_EXIST {
            return Err(Errno::EINVAL.into());
        }
        let index = array_index(key)?;
        if index >= self.def.max_entries {
            return Err(Errno::E2BIG.into());
        }
        if flags == BPF_NOEXIST {
            return Err(Errno::EEXIST.into());
        }
        match (self.percpu, caller) {
            (Some(_), Caller::Syscall) => {
                // Every CPU's copy, each `elem_size` bytes of the user buffer.
                if value.len() != (self.elem_size * self.copies()) as usize {
                    return Err(Errno::EINVAL.into());
                }
                map.write_bytes(self.offset_of(index), value)
            }
            _ => {
                if value.len() != self.def.value_size as usize {
                    return Err(Errno::EINVAL.into());
                }
                map.write_bytes(self.offset_here(index), value)
            }
        }
    }

    fn value_to_user(&self, w: &World<P>, map: &Map<P>, found: Found) -> Result<Vec<u8>> {
        match (self.percpu, found) {
            (Some(copies), Found::Value { offset }) => {
                let index = (offset - ARRAY_VALUE_OFFSET) / self.elem_size / copies;
                map.read_bytes(self.offset_of(index), self.elem_size * copies)
            }
            (None, Found::Value { offset }) => map.read_bytes(offset, self.def.value_size),
            (_, Found::MapPtr(ptr)) => Ok(w.map_id_of_ptr(ptr)?.to_le_bytes().to_vec()),
        }
    }

    fn percpu_copies(&self) -> Option<u32> {
        self.percpu
    }

    fn delete(&self, _w: &World<P>, _map: &Map<P>, _key: &[u8]) -> Result<()> {
        Err(Errno::EINVAL.into())
    }

    fn get_next_key(&self, _w: &World<P>, key: Option<&[u8]>) -> Result<Vec<u8>> {
        self.next_key(key)
    }

    fn lookup_batch(
        &self,
        w: &World<P>,
        map: &Map<P>,
        in_batch: Option<u32>,
        count: u32,
        delete: bool,
    ) -> Result<BatchOut> {
        if delete {
            return Err(Errno::ENOTSUPP.into());
        }
        generic_lookup_batch(w, map, in_batch, count)
    }

    fn has_update_batch(&self) -> bool {
        true
    }

    fn footprint(&self) -> u64 {
        ArrayMap::footprint(self)
    }

    fn word(&self, offset: u32) -> Option<&P::Atomic> {
        ArrayMap::word(self, offset)
    }

    fn value_base(&self, offset: u32) -> Option<u32> {
        let rel = offset.checked_sub(ARRAY_VALUE_OFFSET)?;
        let copy = rel / self.elem_size;
        (u64::from(copy) < u64::from(self.def.max_entries) * u64::from(self.copies()))
            .then(|| offset - rel % self.elem_size)
    }

    fn index_mask(&self) -> Option<u32> {
        Some(self.index_mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_mask_rounds_up_to_a_power_of_two() {
        assert_eq!(index_mask(1), 0);
        assert_eq!(index_mask(3), 3);
        assert_eq!(index_mask(4), 3);
        assert_eq!(index_mask(5), 7);
        assert_eq!(index_mask(u32::MAX), u32::MAX);
    }

    #[test]
    fn size_check_refuses_an_unprivileged_overflow_and_what_the_model_cannot_hold() {
        let def = |max_entries| MapDef {
            map_type: MapType::Array,
            key_size: 4,
            value_size: 8,
            max_entries,
            map_flags: 0,
        };
        let (e2big, enomem) = (Err(Errno::E2BIG.into()), Err(Errno::ENOMEM.into()));
        // Past 2^31 entries an unprivileged array's rounded-up size overflows; 2^31 itself, or
        // a privileged caller, meets only the memory limit.
        assert_eq!(size_check(&def((1 << 31) + 1), 1, false), e2big);
        assert_eq!(size_check(&def((1 << 31) + 1), 1, true), enomem);
        assert_eq!(size_check(&def(1 << 31), 1, false), enomem);
        // The model holds MAX_MAP_WORDS words (one per 8-byte element here), copies included.
        let most = MAX_MAP_WORDS as u32;
        assert_eq!(size_check(&def(most), 1, false), Ok(()));
        assert_eq!(size_check(&def(most + 1), 1, false), enomem);
        assert_eq!(size_check(&def(most / 2), 2, true), Ok(()));
        assert_eq!(size_check(&def(most / 2), 3, true), enomem);
        // No copy count is one copy.
        assert_eq!(size_check(&def(most), 0, false), Ok(()));
        assert_eq!(size_check(&def(most + 1), 0, false), enomem);
    }

    #[test]
    fn a_per_cpu_array_is_charged_for_every_cpus_copy() {
        use crate::sync::Std;
        let def = MapDef {
            map_type: MapType::PercpuArray,
            key_size: 4,
            value_size: 12,
            max_entries: 3,
            map_flags: 0,
        };
        let values = 16 * 3;
        let header = u64::from(ARRAY_VALUE_OFFSET);
        for cpus in [1, 2, 5] {
            let array = ArrayMap::<Std>::new_percpu(&def, cpus).unwrap();
            assert_eq!(
                array.footprint(),
                header + values * u64::from(cpus),
                "{cpus} CPUs"
            );
        }
    }

    #[test]
    fn value_base_finds_the_copy_holding_an_offset_and_nothing_past_the_last() {
        use crate::sync::Std;
        let def = MapDef {
            map_type: MapType::Array,
            key_size: 4,
            value_size: 12,
            max_entries: 3,
            map_flags: 0,
        };
        let start = ARRAY_VALUE_OFFSET;
        let plain = ArrayMap::<Std>::new(&def).unwrap();
        let percpu = ArrayMap::<Std>::new_percpu(
            &MapDef {
                map_type: MapType::PercpuArray,
                ..def
            },
            2,
        )
        .unwrap();
        // 16-byte elements: three of them, or three times two copies.
        for (array, copies) in [(&plain, 1), (&percpu, 2)] {
            let end = start + 16 * 3 * copies;
            let base = |offset| MapOps::<Std>::value_base(array, offset);
            assert_eq!(base(start - 1), None, "{copies} copies: the header");
            assert_eq!(base(start), Some(start), "{copies} copies");
            assert_eq!(base(start + 20), Some(start + 16), "{copies} copies");
            assert_eq!(
                base(end - 1),
                Some(end - 16),
                "{copies} copies: the last copy"
            );
            assert_eq!(base(end), None, "{copies} copies: past the last copy");
        }
    }

    #[test]
    fn alloc_check_follows_the_array_rules() {
        let ok = MapDef {
            map_type: MapType::Array,
            key_size: 4,
            value_size: 4,
            max_entries: 1,
            map_flags: 0,
        };
        assert!(alloc_check(&ok).is_ok());
        assert!(alloc_check(&MapDef {
            map_type: MapType::ProgArray,
            ..ok
        })
        .is_ok());
        // Each flag of the mask on its own, on a plain array.
        for flag in [
            BPF_F_NUMA_NODE,
            BPF_F_MMAPABLE,
            BPF_F_RDONLY_PROG,
            BPF_F_WRONLY_PROG,
            BPF_F_INNER_MAP,
        ] {
            let def = MapDef {
                map_flags: flag,
                ..ok
            };
            assert_eq!(alloc_check(&def), Ok(()), "flags {flag:#x}");
        }
        // The largest value whose rounded-up size still fits an `int`, and one byte more.
        let largest = MAX_ARRAY_VALUE_SIZE as u32;
        assert!(alloc_check(&MapDef {
            value_size: largest,
            ..ok
        })
        .is_ok());
        assert_eq!(
            alloc_check(&MapDef {
                value_size: largest + 1,
                ..ok
            }),
            Err(Errno::E2BIG.into())
        );
        for bad in [
            MapDef {
                map_flags: BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG,
                ..ok
            },
            MapDef { key_size: 8, ..ok },
            MapDef {
                value_size: 0,
                ..ok
            },
            MapDef {
                max_entries: 0,
                ..ok
            },
            MapDef {
                map_flags: BPF_F_NO_PREALLOC,
                ..ok
            },
            MapDef {
                map_type: MapType::ProgArray,
                map_flags: BPF_F_INNER_MAP,
                ..ok
            },
            MapDef {
                map_type: MapType::PercpuArray,
                map_flags: BPF_F_NUMA_NODE,
                ..ok
            },
            MapDef {
                map_type: MapType::PercpuArray,
                map_flags: BPF_F_MMAPABLE,
                ..ok
            },
            // A program array holds 4-byte program fds and no program access modes.
            MapDef {
                map_type: MapType::ProgArray,
                value_size: 8,
                ..ok
            },
            MapDef {
                map_type: MapType::ProgArray,
                map_flags: BPF_F_RDONLY_PROG,
                ..ok
            },
            MapDef {
                map_type: MapType::ProgArray,
                map_flags: BPF_F_WRONLY_PROG,
                ..ok
            },
        ] {
            assert_eq!(alloc_check(&bad), Err(Errno::EINVAL.into()), "{bad:?}");
        }
    }
}
