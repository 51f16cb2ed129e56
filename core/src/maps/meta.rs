//! The inner map meta (`bpf_map_meta_alloc`, semantics.md §2) and the `map_meta_equal` rules
//! (§3): what an outer map remembers of its template, and which maps it accepts.
//!
//! The meta is a plain value: it holds **no** reference to the template, so the template's fd
//! can be closed right after the outer map is created. For array templates it also records
//! `index_mask` and `elem_size`, which inlined inner lookups use as constants (mutant
//! `meta_elem_size_zero` forgets `elem_size`).
//!
//! `meta_equal` is chosen by the meta's type: the generic rule compares type, key size, value
//! size and flags; the array rule also compares `max_entries` unless the meta carries
//! `BPF_F_INNER_MAP` (mutant `meta_ignores_max_entries` never compares it).

use super::{array, Map, MapDef};
use crate::errno::Errno;
use crate::fault::Result;
use crate::mutants::{Mutant, Mutants};
use crate::sync::Platform;
use crate::uapi::{MapType, BPF_F_INNER_MAP};

/// What an outer map knows about the inner maps it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MapMeta {
    pub map_type: MapType,
    pub key_size: u32,
    pub value_size: u32,
    pub map_flags: u32,
    pub max_entries: u32,
    /// Array templates only (0 otherwise).
    pub index_mask: u32,
    /// Array templates only: `round_up(value_size, 8)` (0 otherwise, or under the mutant).
    pub elem_size: u32,
}

/// The `map_meta_equal` rule a template type has, if any.
/// How an inner map is compared with its template (a column of the map-kind table): the
/// arrays override the generic rule (`array_map_meta_equal`; measured on 6.18, a per-CPU
/// array template compares `max_entries` too, as it cannot carry BPF_F_INNER_MAP). A prog
/// array's owner program type is a run-time binding: it has no static comparison and cannot
/// be a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaEqual {
    Generic,
    Array,
}

fn rule_for(map_type: MapType) -> Option<MetaEqual> {
    super::kind::kind(map_type).meta_equal
}

impl MapMeta {
    /// Builds the meta from a template map (`bpf_map_meta_alloc` after the fd was resolved).
    pub fn from_template<P: Platform>(template: &Map<P>, mutants: Mutants) -> Result<MapMeta> {
        // One level of nesting only: a map-in-map template is refused before anything else.
        if template.ops.meta().is_some() {
            return Err(Errno::EINVAL.into());
        }
        if rule_for(template.def.map_type).is_none() {
            return Err(Errno::ENOTSUPP.into());
        }
        let def = template.def;
        let (index_mask, elem_size) = match template.ops.index_mask() {
            Some(mask) => {
                let elem_size = if mutants.on(Mutant::MetaElemSizeZero) {
                    0
                } else {
                    array::elem_size(&def)
                };
                (mask, elem_size)
            }
            None => (0, 0),
        };
        Ok(MapMeta {
            map_type: def.map_type,
            key_size: def.key_size,
            value_size: def.value_size,
            map_flags: def.map_flags,
            max_entries: def.max_entries,
            index_mask,
            elem_size,
        })
    }

    /// `meta0->ops->map_meta_equal(meta0, inner)`: may `inner` be stored in the outer map?
    pub fn accepts(&self, inner: &MapDef, mutants: Mutants) -> bool {
        let generic = self.map_type == inner.map_type
            && self.key_size == inner.key_size
            && self.value_size == inner.value_size
            && self.map_flags == inner.map_flags;
        match rule_for(self.map_type) {
            Some(MetaEqual::Generic) => generic,
            Some(MetaEqual::Array) => {
                let sizes_free = self.map_flags & BPF_F_INNER_MAP != 0
                    || mutants.on(Mutant::MetaIgnoresMaxEntries);
                generic && (sizes_free || self.max_entries == inner.max_entries)
            }
            None => false,
        }
    }

    /// Does the fixup inline lookups into inner maps of this meta (`map_gen_lookup` exists and
    /// does not refuse)? Arrays without `BPF_F_INNER_MAP` only.
    pub fn inlinable(&self) -> bool {
        self.map_type == MapType::Array && self.map_flags & BPF_F_INNER_MAP == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array_meta(max_entries: u32, flags: u32) -> MapMeta {
        MapMeta {
            map_type: MapType::Array,
            key_size: 4,
            value_size: 4,
            map_flags: flags,
            max_entries,
            index_mask: max_entries.next_power_of_two() - 1,
            elem_size: 8,
        }
    }
    fn def(map_type: MapType, max_entries: u32, flags: u32) -> MapDef {
        MapDef {
            map_type,
            key_size: 4,
            value_size: 4,
            max_entries,
            map_flags: flags,
        }
    }

    #[test]
    fn array_meta_compares_max_entries_unless_inner_map_flag() {
        let fixed = array_meta(1, 0);
        assert!(fixed.accepts(&def(MapType::Array, 1, 0), Mutants::NONE));
        assert!(
            !fixed.accepts(&def(MapType::Array, 2, 0), Mutants::NONE),
            "diff_size must be refused"
        );
        assert!(
            fixed.accepts(
                &def(MapType::Array, 2, 0),
                Mutants::only(Mutant::MetaIgnoresMaxEntries)
            ),
            "the mutant accepts any size"
        );
        let dynamic = array_meta(1, BPF_F_INNER_MAP);
        assert!(dynamic.accepts(&def(MapType::Array, 5, BPF_F_INNER_MAP), Mutants::NONE));
        assert!(
            !dynamic.accepts(&def(MapType::Array, 5, 0), Mutants::NONE),
            "flags must match exactly"
        );
        assert!(!dynamic.inlinable() && fixed.inlinable());
    }

    #[test]
    fn generic_meta_ignores_max_entries_but_not_type_or_sizes() {
        let hash = MapMeta {
            map_type: MapType::Hash,
            ..array_meta(2, 0)
        };
        assert!(hash.accepts(&def(MapType::Hash, 100, 0), Mutants::NONE));
        assert!(!hash.accepts(&def(MapType::Array, 2, 0), Mutants::NONE));
        assert!(!hash.accepts(
            &MapDef {
                value_size: 8,
                ..def(MapType::Hash, 2, 0)
            },
            Mutants::NONE
        ));
    }
}
