//! The core's map world as the verifier's [`MapResolver`]: a program's fds resolve to the maps
//! of [`World`], with the shape, the array constants, the encoded map pointer the fixed-up
//! `lddw` loads, and for outer maps the meta the world built (so the meta mutants of the world
//! reach the fixups unchanged).

use super::{MapDesc, MapResolver};
use crate::maps::meta::MapMeta;
use crate::maps::{map_ptr, MapDef};
use crate::sync::Platform;
use crate::uapi::MapType;
use crate::world::World;

/// Bytes of an array-of-maps slot: one map pointer.
const MAP_PTR_SLOT: u32 = 8;

fn elem_size(def: &MapDef) -> u32 {
    match def.map_type {
        MapType::ArrayOfMaps | MapType::ProgArray => MAP_PTR_SLOT,
        MapType::Array | MapType::PercpuArray => def.value_size.div_ceil(8) * 8,
        _ => 0,
    }
}

fn from_meta(meta: &MapMeta) -> MapDesc {
    MapDesc {
        map_type: meta.map_type as u32,
        key_size: meta.key_size,
        value_size: meta.value_size,
        max_entries: meta.max_entries,
        map_flags: meta.map_flags,
        index_mask: meta.index_mask,
        // As recorded: 0 under `meta_elem_size_zero`, which is the point of that mutant.
        elem_size: meta.elem_size,
        inner_meta: None,
        id: 0,
        ptr: 0,
    }
}

impl<P: Platform> MapResolver for World<P> {
    fn map_by_fd(&self, fd: i32) -> Result<MapDesc, String> {
        let (handle, map) = self
            .fd_to_map(fd)
            .map_err(|e| format!("fd {fd} is not pointing to valid bpf_map ({e})"))?;
        let def = map.def;
        let meta = self.map_meta(handle).map_err(|e| e.to_string())?;
        let index_mask = self
            .map_index_mask(handle)
            .map_err(|e| e.to_string())?
            .unwrap_or(0);
        Ok(MapDesc {
            map_type: def.map_type as u32,
            key_size: def.key_size,
            value_size: def.value_size,
            max_entries: def.max_entries,
            map_flags: def.map_flags,
            index_mask,
            elem_size: elem_size(&def),
            inner_meta: meta.as_ref().map(|m| Box::new(from_meta(m))),
            id: map.id(),
            ptr: map_ptr(handle),
        })
    }
}
