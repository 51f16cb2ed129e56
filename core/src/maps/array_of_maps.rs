//! `BPF_MAP_TYPE_ARRAY_OF_MAPS` (semantics.md §3, §4): an [`ArrayMap`] of 8-byte slots, each an
//! encoded inner map pointer or 0, plus the fd get/put hooks.
//!
//! Update: `flags != BPF_ANY` → `-EINVAL`, index out of range → `-E2BIG`, then the fd is
//! resolved and checked against the meta (taking a reference), `old = xchg(slot, new)` and the
//! old map is put **deferred**. Delete: `xchg(slot, NULL)`, deferred put. Freeing the outer map
//! puts every inner map without defer (no program can hold the outer map any more).
//!
//! Because slots hold encoded pointers, inlined `map_gen_lookup` code can load a slot with an
//! 8-byte load ([`crate::world::World::map_load_slot`]) and test it for NULL.

use super::array::{self, generic_lookup_batch, ArrayMap};
use super::{array_index, value_fd, Caller, Found, Map, MapDef, MapMeta, MapOps};
use crate::errno::Errno;
use crate::fault::Result;
use crate::sync::{Atomic64, Ordering, Platform};
use crate::uapi::*;
use crate::world::World;

/// Bytes a slot holds internally: a pointer.
pub const SLOT_BYTES: u32 = 8;

/// `fd_array_map_alloc_check` then `array_map_alloc_check`.
pub fn alloc_check(def: &MapDef) -> Result<()> {
    if def.value_size != 4 || def.map_flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG) != 0 {
        return Err(Errno::EINVAL.into());
    }
    array::alloc_check(def)
}

pub struct ArrayOfMaps<P: Platform> {
    slots: ArrayMap<P>,
    max_entries: u32,
    meta: MapMeta,
}

impl<P: Platform> ArrayOfMaps<P> {
    pub fn new(def: &MapDef, meta: MapMeta) -> Result<Self> {
        let storage = MapDef {
            value_size: SLOT_BYTES,
            ..*def
        };
        Ok(ArrayOfMaps {
            slots: ArrayMap::new(&storage)?,
            max_entries: def.max_entries,
            meta,
        })
    }

    fn slot(&self, index: u32) -> Option<&P::Atomic> {
        self.slots.slot(index)
    }
}

impl<P: Platform> MapOps<P> for ArrayOfMaps<P> {
    fn lookup(&self, _w: &World<P>, key: &[u8]) -> Result<Option<Found>> {
        let index = array_index(key)?;
        Ok(self
            .slot(index)
            .map(|slot| slot.load(Ordering::Acquire))
            .filter(|&ptr| ptr != 0)
            .map(Found::MapPtr))
    }

    fn update(
        &self,
        w: &World<P>,
        map: &Map<P>,
        key: &[u8],
        value: &[u8],
        flags: u64,
        _caller: Caller,
    ) -> Result<()> {
        if flags != BPF_ANY {
            return Err(Errno::EINVAL.into());
        }
        let index = array_index(key)?;
        let slot = self.slot(index).ok_or(Errno::E2BIG)?;
        let new = w.fd_get_ptr(&self.meta, value_fd(value)?)?;
        let old = slot.swap(new, Ordering::AcqRel);
        if old != 0 {
            w.fd_put_ptr(map, old, true)?;
        }
        Ok(())
    }

    fn delete(&self, w: &World<P>, map: &Map<P>, key: &[u8]) -> Result<()> {
        let index = array_index(key)?;
        let slot = self.slot(index).ok_or(Errno::E2BIG)?;
        match slot.swap(0, Ordering::AcqRel) {
            0 => Err(Errno::ENOENT.into()),
            old => w.fd_put_ptr(map, old, true),
        }
    }

    fn get_next_key(&self, _w: &World<P>, key: Option<&[u8]>) -> Result<Vec<u8>> {
        self.slots.next_key(key)
    }

    fn lookup_batch(
        &self,
        w: &World<P>,
        map: &Map<P>,
        in_batch: Option<u32>,
        count: u32,
        delete: bool,
    ) -> Result<crate::uapi::BatchOut> {
        if delete {
            return Err(Errno::ENOTSUPP.into());
        }
        generic_lookup_batch(w, map, in_batch, count)
    }

    fn has_update_batch(&self) -> bool {
        true
    }

    fn free(&self, w: &World<P>, map: &Map<P>) -> Result<()> {
        for index in 0..self.max_entries {
            if let Some(slot) = self.slot(index) {
                let old = slot.swap(0, Ordering::AcqRel);
                if old != 0 {
                    w.fd_put_ptr(map, old, false)?;
                }
            }
        }
        Ok(())
    }

    fn footprint(&self) -> u64 {
        self.slots.footprint()
    }

    fn word(&self, offset: u32) -> Option<&P::Atomic> {
        self.slots.word(offset)
    }

    fn meta(&self) -> Option<&MapMeta> {
        Some(&self.meta)
    }

    fn index_mask(&self) -> Option<u32> {
        MapOps::<P>::index_mask(&self.slots)
    }

    fn holds_maps(&self) -> bool {
        true
    }
}
