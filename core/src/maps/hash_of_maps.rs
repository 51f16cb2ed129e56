//! `BPF_MAP_TYPE_HASH_OF_MAPS` (semantics.md §3, §4): a [`HashTab`] whose 8-byte values are
//! encoded inner map pointers, plus the fd get/put hooks.
//!
//! Update resolves the fd first (taking a reference), then runs the hash update, which replaces
//! an existing key **in place** under the bucket lock and puts the old map deferred after the
//! unlock (mutants `replace_by_reinsert`, `leak_on_replace`, `put_under_bucket_lock` live in
//! [`HashTab::update_words`]). A failed update drops the new reference at once, without defer:
//! the map was never published. `lookup_and_delete` is `-ENOTSUPP`; the batch ops all exist.

use super::hashtab::{self, HashTab};
use super::{value_fd, Caller, Found, Map, MapDef, MapMeta, MapOps};
use crate::errno::Errno;
use crate::fault::{Fault, Result};
use crate::sync::Platform;
use crate::uapi::BatchOut;
use crate::world::World;

/// `fd_htab_map_alloc_check` then `htab_map_alloc_check`.
pub fn alloc_check(def: &MapDef) -> Result<()> {
    if def.value_size != 4 {
        return Err(Errno::EINVAL.into());
    }
    hashtab::alloc_check(def)
}

pub struct HashOfMaps<P: Platform> {
    htab: HashTab<P>,
    meta: MapMeta,
}

impl<P: Platform> HashOfMaps<P> {
    pub fn new(w: &World<P>, def: &MapDef, meta: MapMeta) -> Result<Self> {
        Ok(HashOfMaps {
            htab: HashTab::build(w, def, super::array_of_maps::SLOT_BYTES, true)?,
            meta,
        })
    }

    pub fn htab(&self) -> &HashTab<P> {
        &self.htab
    }
}

impl<P: Platform> MapOps<P> for HashOfMaps<P> {
    fn lookup(&self, w: &World<P>, key: &[u8]) -> Result<Option<Found>> {
        Ok(self
            .htab
            .lookup_elem(w, key)?
            .map(|elem| Found::MapPtr(self.htab.value_word0(elem))))
    }

    /// The inlined lookup then loads the value's first word: the inner map pointer.
    fn lookup_elem_offset(&self, w: &World<P>, key: &[u8]) -> Result<Option<u32>> {
        MapOps::<P>::lookup_elem_offset(&self.htab, w, key)
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
        let new = w.fd_get_ptr(&self.meta, value_fd(value)?)?;
        let result = self.htab.update_words(w, map, key, &[new], flags);
        if result.is_err() {
            w.fd_put_ptr(map, new, false)?;
        }
        result
    }

    fn delete(&self, w: &World<P>, map: &Map<P>, key: &[u8]) -> Result<()> {
        self.htab.delete_key(w, map, key).map(|_| ())
    }

    fn get_next_key(&self, w: &World<P>, key: Option<&[u8]>) -> Result<Vec<u8>> {
        self.htab.next_key(w, key)
    }

    fn lookup_batch(
        &self,
        w: &World<P>,
        map: &Map<P>,
        in_batch: Option<u32>,
        count: u32,
        delete: bool,
    ) -> Result<BatchOut> {
        self.htab.batch(w, map, in_batch, count, delete)
    }

    fn has_update_batch(&self) -> bool {
        true
    }
    fn has_delete_batch(&self) -> bool {
        true
    }

    fn free(&self, w: &World<P>, map: &Map<P>) -> Result<()> {
        for elem in self.htab.linked_elems()? {
            w.fd_put_ptr(map, self.htab.value_word0(elem), false)?;
        }
        Ok(())
    }

    fn footprint(&self) -> u64 {
        MapOps::<P>::footprint(&self.htab)
    }

    fn word(&self, offset: u32) -> Option<&P::Atomic> {
        MapOps::<P>::word(&self.htab, offset)
    }

    fn meta(&self) -> Option<&MapMeta> {
        Some(&self.meta)
    }

    fn check_conservation(&self) -> Result<(), Fault> {
        MapOps::<P>::check_conservation(&self.htab)
    }

    fn holds_maps(&self) -> bool {
        true
    }
}
