//! One row per map kind: what the verifier, the fixups, the executor's world environment and
//! the simulator's trace need to know about a map type, read from here rather than matched
//! on in each of them. A new map kind is its own file under `maps/` and a row in [`KINDS`].
//!
//! The alternative, a `match` on the map type wherever a fact is needed, wrote the type →
//! implementation mapping twice and the element size three times, and let a wildcard arm name
//! the wrong kernel function for kinds it was not written for.
//!
//! The constructor (`maps::alloc`, the kernel's `bpf_map_types[]`) is the one other place a
//! map type is matched on.
//!
//! Main type: [`Kind`]; [`kind`] finds a type's row. Invariant: every [`MapType`] has exactly
//! one row (a test checks it).

use super::direct_call::MapImpl;
use super::meta::MetaEqual;
use super::{array, array_of_maps, hash_of_maps, hashtab, MapDef};
use crate::fault::Result;
use crate::uapi::{MapType, BPF_FUNC_MAP_LOOKUP_ELEM, BPF_FUNC_TAIL_CALL};

/// How big an element of an array kind is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    /// Not an array: no fixed element stride.
    None,
    /// The value, rounded up to 8 bytes.
    Value,
    /// A map or program pointer (the fd arrays' slots).
    Pointer,
}

/// The helpers a program may pass a map of this kind to (the kernel's
/// `check_map_func_compatibility`, map side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Helpers {
    /// Any helper that takes a map.
    Any,
    /// Only these helper ids (`enum bpf_func_id`).
    Only(&'static [u32]),
}

/// How much a map of a kind may ask for (the size limits of its allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sizing {
    /// `array_map_alloc`: elements times the value's rounded size, the unprivileged 2^31 limit.
    Array,
    /// `htab_map_alloc`: buckets and preallocated elements.
    Hash,
}

/// The facts of one map kind.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    pub map_type: MapType,
    /// The implementation a fixed-up helper call on it goes to directly (`None`: the call
    /// stays a helper call).
    pub direct: Option<MapImpl>,
    /// Indexed by a `u32` key below `max_entries`, with the spectre index mask.
    pub array: bool,
    pub elem: Elem,
    /// The kernel functions a user-space lookup, update and delete reach, as the simulator's
    /// trace names them.
    pub syscall: [&'static str; 3],
    /// A lookup with a constant key below `max_entries` cannot miss: the verifier returns a
    /// non-null value pointer (unless the map may be swapped for a smaller one).
    pub const_key_never_misses: bool,
    pub helpers: Helpers,
    /// The kernel's struct behind `struct bpf_map` (named in map-pointer access messages).
    pub btf_struct: &'static str,
    /// The kind's `map_alloc_check`: what `BPF_MAP_CREATE` refuses before allocating.
    pub alloc_check: fn(&MapDef) -> Result<()>,
    pub sizing: Sizing,
    /// How an outer map compares a new inner map with its template (`None`: the kind cannot
    /// be a template).
    pub meta_equal: Option<MetaEqual>,
}

/// Bytes of a map pointer in an fd array's slot.
pub const POINTER_BYTES: u32 = 8;

/// Every kind, one row each.
pub const KINDS: [Kind; 7] = [
    Kind {
        map_type: MapType::Hash,
        direct: Some(MapImpl::Htab),
        array: false,
        elem: Elem::None,
        syscall: [
            "htab_map_lookup_elem",
            "htab_map_update_elem",
            "htab_map_delete_elem",
        ],
        const_key_never_misses: false,
        helpers: Helpers::Any,
        btf_struct: "bpf_htab",
        alloc_check: hashtab::alloc_check,
        sizing: Sizing::Hash,
        meta_equal: Some(MetaEqual::Generic),
    },
    Kind {
        map_type: MapType::Array,
        direct: Some(MapImpl::Array),
        array: true,
        elem: Elem::Value,
        syscall: [
            "array_map_lookup_elem",
            "array_map_update_elem",
            "array_map_delete_elem",
        ],
        const_key_never_misses: true,
        helpers: Helpers::Any,
        btf_struct: "bpf_array",
        alloc_check: array::alloc_check,
        sizing: Sizing::Array,
        meta_equal: Some(MetaEqual::Array),
    },
    Kind {
        map_type: MapType::ProgArray,
        direct: None,
        array: true,
        elem: Elem::Pointer,
        syscall: [
            "fd_array_map_lookup_elem",
            "bpf_fd_array_map_update_elem",
            "fd_array_map_delete_elem",
        ],
        const_key_never_misses: false,
        helpers: Helpers::Only(&[BPF_FUNC_TAIL_CALL]),
        btf_struct: "bpf_array",
        alloc_check: array::alloc_check,
        sizing: Sizing::Array,
        meta_equal: None,
    },
    Kind {
        map_type: MapType::PercpuHash,
        direct: Some(MapImpl::PercpuHtab),
        array: false,
        elem: Elem::None,
        syscall: [
            "htab_percpu_map_lookup_elem",
            "htab_percpu_map_update_elem",
            "htab_map_delete_elem",
        ],
        const_key_never_misses: false,
        helpers: Helpers::Any,
        btf_struct: "bpf_htab",
        alloc_check: hashtab::alloc_check,
        sizing: Sizing::Hash,
        meta_equal: Some(MetaEqual::Generic),
    },
    Kind {
        map_type: MapType::PercpuArray,
        direct: Some(MapImpl::PercpuArray),
        array: true,
        elem: Elem::Value,
        syscall: [
            "array_map_lookup_elem",
            "array_map_update_elem",
            "array_map_delete_elem",
        ],
        const_key_never_misses: true,
        helpers: Helpers::Any,
        btf_struct: "bpf_array",
        alloc_check: array::alloc_check,
        sizing: Sizing::Array,
        meta_equal: Some(MetaEqual::Array),
    },
    Kind {
        map_type: MapType::ArrayOfMaps,
        direct: Some(MapImpl::ArrayOfMaps),
        array: true,
        elem: Elem::Pointer,
        syscall: [
            "array_of_map_lookup_elem",
            "bpf_fd_array_map_update_elem",
            "fd_array_map_delete_elem",
        ],
        const_key_never_misses: false,
        helpers: Helpers::Only(&[BPF_FUNC_MAP_LOOKUP_ELEM]),
        btf_struct: "bpf_array",
        alloc_check: array_of_maps::alloc_check,
        sizing: Sizing::Array,
        meta_equal: Some(MetaEqual::Generic),
    },
    Kind {
        map_type: MapType::HashOfMaps,
        direct: Some(MapImpl::HtabOfMaps),
        array: false,
        elem: Elem::None,
        syscall: [
            "htab_of_map_lookup_elem",
            "bpf_fd_htab_map_update_elem",
            "htab_map_delete_elem",
        ],
        const_key_never_misses: false,
        helpers: Helpers::Only(&[BPF_FUNC_MAP_LOOKUP_ELEM]),
        btf_struct: "bpf_htab",
        alloc_check: hash_of_maps::alloc_check,
        sizing: Sizing::Hash,
        meta_equal: Some(MetaEqual::Generic),
    },
];

/// The row of `map_type`.
pub fn kind(map_type: MapType) -> &'static Kind {
    KINDS
        .iter()
        .find(|k| k.map_type == map_type)
        .expect("every map type has a row in KINDS")
}

impl Kind {
    /// Bytes per element (0 for a kind that is not an array). Computed without overflow for
    /// any `u32` value size (saturating past `u32::MAX`).
    pub fn elem_size(&self, value_size: u32) -> u32 {
        match self.elem {
            Elem::None => 0,
            Elem::Value => array::elem_size_of(value_size),
            Elem::Pointer => POINTER_BYTES,
        }
    }

    /// The size limits a map of `def` meets (`privileged`: `bpf_bypass_spec_v1`, under which an
    /// array is not rounded up to its index mask).
    pub fn size_check(&self, def: &MapDef, privileged: bool) -> Result<()> {
        match self.sizing {
            Sizing::Array => array::size_check(def, 1, privileged),
            Sizing::Hash => hashtab::size_check(def, def.value_size),
        }
    }

    /// Whether a program may pass a map of this kind to helper `func_id`.
    pub fn allows_helper(&self, func_id: u32) -> bool {
        match self.helpers {
            Helpers::Any => true,
            Helpers::Only(ids) => ids.contains(&func_id),
        }
    }

    /// The spectre index mask (0 for a kind that is not an array).
    pub fn index_mask(&self, max_entries: u32) -> u32 {
        if self.array {
            array::index_mask(max_entries)
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_map_type_has_one_row() {
        for t in MapType::ALL {
            assert_eq!(KINDS.iter().filter(|k| k.map_type == t).count(), 1, "{t:?}");
        }
        assert_eq!(KINDS.len(), MapType::ALL.len());
    }

    #[test]
    fn element_sizes_and_masks_follow_the_kind() {
        assert_eq!(kind(MapType::Array).elem_size(12), 16);
        assert_eq!(kind(MapType::Array).elem_size(u32::MAX), u32::MAX);
        assert_eq!(kind(MapType::ArrayOfMaps).elem_size(4), 8);
        assert_eq!(kind(MapType::Hash).elem_size(12), 0);
        assert_eq!(kind(MapType::Array).index_mask(5), 7);
        assert_eq!(kind(MapType::Array).index_mask(3_000_000_000), u32::MAX);
        assert_eq!(kind(MapType::HashOfMaps).index_mask(5), 0);
    }

    #[test]
    fn outer_maps_reach_only_the_lookup_helper_and_prog_arrays_only_tail_calls() {
        for t in MapType::ALL {
            let k = kind(t);
            let lookup = k.allows_helper(BPF_FUNC_MAP_LOOKUP_ELEM);
            assert_eq!(lookup, t != MapType::ProgArray, "{t:?}");
            let update = k.allows_helper(2);
            assert_eq!(
                update,
                !t.is_map_in_map() && t != MapType::ProgArray,
                "{t:?}"
            );
        }
        assert!(kind(MapType::ProgArray).allows_helper(BPF_FUNC_TAIL_CALL));
    }
}
