//! Direct calls: the kernel functions a verified program's map helper calls are rewritten to
//! (`ops->map_lookup_elem` and friends, `__htab_map_lookup_elem`), as the fixups emit them and
//! the executor serves them. A map kind's fact (which implementation, which function name), so
//! it lives with the maps: the lookup emitters of `gen_lookup` produce these calls, and `bpf/`
//! (the fixups, the executor, the helper table, which adds each call's helper prototype)
//! stands on it.
//!
//! Main types: [`MapImpl`] (an implementation whose ops may be called directly), [`MapFn`]
//! (which op), [`DirectCall`] (the pair, encoded in a call's `imm` above every helper id).

/// Map implementations whose ops a fixup may call directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MapImpl {
    Array = 0,
    PercpuArray = 1,
    Htab = 2,
    HtabLru = 3,
    PercpuHtab = 4,
    ArrayOfMaps = 5,
    HtabOfMaps = 6,
}

/// Which map op a direct call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MapFn {
    Lookup = 0,
    Update = 1,
    Delete = 2,
    /// `__htab_map_lookup_elem`: the hash lookup that returns the **element** (`struct
    /// htab_elem *`), not the value; `htab_map_gen_lookup` and `htab_of_map_gen_lookup` call it
    /// and add the key's offset themselves. Only [`MapImpl::Htab`] has it (hash-of-maps calls
    /// the same function), so the executor accepts it on a hash and on a hash-of-maps.
    LookupElem = 3,
    /// `map_lookup_percpu_elem` (`bpf_map_lookup_percpu_elem`): another CPU's copy. Only the
    /// per-CPU implementations have it, so it shares the fourth slot with
    /// [`MapFn::LookupElem`], which only [`MapImpl::Htab`] has.
    LookupPercpu = 4,
}

/// A kernel-internal function called directly (`ops->map_lookup_elem` etc.): the same
/// arguments and result as the helper it replaces ([`DirectCall::helper`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DirectCall {
    pub map: MapImpl,
    pub func: MapFn,
}

/// Start of the `imm` range of direct calls: far above every helper id (the kernel has ~200),
/// below `i32::MAX`, and one slot per `(MapImpl, MapFn)` pair.
pub const DIRECT_CALL_BASE: i32 = 0x4000_0000;
/// Slots per map implementation in the direct-call range (one per [`MapFn`], rounded up).
const DIRECT_CALL_STRIDE: i32 = 4;

/// Every implementation, in `imm` order.
pub const MAP_IMPLS: [MapImpl; 7] = [
    MapImpl::Array,
    MapImpl::PercpuArray,
    MapImpl::Htab,
    MapImpl::HtabLru,
    MapImpl::PercpuHtab,
    MapImpl::ArrayOfMaps,
    MapImpl::HtabOfMaps,
];

impl DirectCall {
    pub const fn imm(self) -> i32 {
        let slot = match self.func {
            MapFn::LookupPercpu => MapFn::LookupElem as i32,
            func => func as i32,
        };
        DIRECT_CALL_BASE + self.map as i32 * DIRECT_CALL_STRIDE + slot
    }
    pub fn from_imm(imm: i32) -> Option<DirectCall> {
        let rel = imm.checked_sub(DIRECT_CALL_BASE)?;
        if rel < 0 {
            return None;
        }
        let map = *MAP_IMPLS.get((rel / DIRECT_CALL_STRIDE) as usize)?;
        let func = match rel % DIRECT_CALL_STRIDE {
            0 => MapFn::Lookup,
            1 => MapFn::Update,
            2 => MapFn::Delete,
            3 if map == MapImpl::Htab => MapFn::LookupElem,
            3 if matches!(map, MapImpl::PercpuArray | MapImpl::PercpuHtab) => MapFn::LookupPercpu,
            _ => return None,
        };
        Some(DirectCall { map, func })
    }
    /// The kernel function's name (`array_map_lookup_elem`, `htab_of_map_lookup_elem`, ...).
    pub fn name(self) -> String {
        if self.func == MapFn::LookupElem {
            return "__htab_map_lookup_elem".to_string();
        }
        let op = match self.func {
            MapFn::Lookup | MapFn::LookupElem => "lookup",
            MapFn::LookupPercpu => "lookup_percpu",
            MapFn::Update => "update",
            MapFn::Delete => "delete",
        };
        let prefix = match (self.map, self.func) {
            (MapImpl::Array, _) => "array_map",
            (MapImpl::PercpuArray, _) => "percpu_array_map",
            (MapImpl::Htab, _) => "htab_map",
            (MapImpl::HtabLru, _) => "htab_lru_map",
            (MapImpl::PercpuHtab, _) => "htab_percpu_map",
            // Map-in-map update/delete from programs reuse the fd-array / htab ops.
            (MapImpl::ArrayOfMaps, MapFn::Lookup) => "array_of_map",
            (MapImpl::ArrayOfMaps, _) => "fd_array_map",
            (MapImpl::HtabOfMaps, MapFn::Lookup) => "htab_of_map",
            (MapImpl::HtabOfMaps, _) => "htab_map",
        };
        format!("{prefix}_{op}_elem")
    }
}
