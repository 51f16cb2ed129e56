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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::MapType;
    use crate::sync::Std;
    use crate::uapi::{MapAttr, BPF_ANY, BPF_F_NO_PREALLOC};

    #[test]
    fn a_hash_of_maps_is_charged_as_a_hash_of_eight_byte_values() {
        let w = World::<Std>::default();
        let tpl = w
            .map_create(&MapAttr::new(MapType::Array, 4, 4, 1))
            .unwrap();
        for flags in [0, BPF_F_NO_PREALLOC] {
            let outer = w
                .map_create(
                    &MapAttr::new(MapType::HashOfMaps, 4, 4, 4)
                        .flags(flags)
                        .inner(tpl),
                )
                .unwrap();
            let plain = w
                .map_create(&MapAttr::new(MapType::Hash, 4, 8, 4).flags(flags))
                .unwrap();
            let charged = |fd| w.footprint(w.map_handle(fd).unwrap()).unwrap();
            let empty = charged(outer);
            assert_eq!(empty, charged(plain), "empty, flags {flags}");
            // The same entry count in both: the slot is an 8-byte inner map pointer.
            let key = 7u32.to_le_bytes();
            w.map_update_elem(outer, &key, &(tpl as u32).to_le_bytes(), BPF_ANY)
                .unwrap();
            w.map_update_elem(plain, &key, &[0; 8], BPF_ANY).unwrap();
            assert_eq!(charged(outer), charged(plain), "one entry, flags {flags}");
            if flags & BPF_F_NO_PREALLOC != 0 {
                assert!(charged(outer) > empty, "an allocated element is charged");
            }
        }
    }

    #[test]
    fn an_element_lost_from_a_hash_of_maps_table_breaks_its_conservation() {
        let w = World::<Std>::default();
        let tpl = w
            .map_create(&MapAttr::new(MapType::Array, 4, 4, 1))
            .unwrap();
        let def = MapDef::from_attr(&MapAttr::new(MapType::HashOfMaps, 4, 4, 4)).unwrap();
        let outer = HashOfMaps::new(&w, &def, w.meta_from_fd(tpl).unwrap()).unwrap();
        MapOps::<Std>::check_conservation(&outer).expect("a new table accounts for every element");
        let lost = outer.htab().lose_a_free_element().expect("a free element");
        match MapOps::<Std>::check_conservation(&outer) {
            Err(Fault::Conservation { detail }) => assert!(
                detail.contains("!= capacity"),
                "element {lost} lost, reported as: {detail}"
            ),
            other => panic!("element {lost} lost, conservation said {other:?}"),
        }
    }
}
