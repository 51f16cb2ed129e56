//! The helper table: the one place that says which calls a program may make, with the
//! argument and return types the verifier checks (its prototypes) and the executor dispatches on.
//!
//! A `call` instruction's target is a [`Callee`]: a helper by its uapi id ([`HelperId`]), or a
//! kernel-internal function the verifier's fixups call directly instead of a helper
//! ([`DirectCall`], e.g. `array_map_lookup_elem` after `patch_map_ops_generic`). Direct calls are
//! encoded as `call imm` with `imm` in a reserved range above every helper id
//! ([`DIRECT_CALL_BASE`]); the kernel stores a relative function address there instead, which
//! is why `bpftool` prints `call array_map_lookup_elem#149280`.

use std::fmt;

/// Types of helper arguments (the kernel's `enum bpf_arg_type`, the subset the model uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArgType {
    /// `ARG_CONST_MAP_PTR`: a map pointer known at verification time.
    ConstMapPtr,
    /// `ARG_PTR_TO_MAP_KEY`: readable memory of the map's `key_size` bytes.
    PtrToMapKey,
    /// `ARG_PTR_TO_MAP_VALUE`: readable memory of the map's `value_size` bytes.
    PtrToMapValue,
    /// `ARG_ANYTHING`: any initialised scalar or pointer.
    Anything,
}

/// Types of helper return values (the kernel's `enum bpf_return_type`, the subset used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetType {
    /// `RET_INTEGER`.
    Integer,
    /// `RET_PTR_TO_MAP_VALUE_OR_NULL`: a pointer into the map's value (or, for a map-in-map
    /// outer map, to the inner map) that must be checked against NULL before use.
    PtrToMapValueOrNull,
}

/// Helper ids the model implements (uapi `enum bpf_func_id` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HelperId {
    MapLookupElem = 1,
    MapUpdateElem = 2,
    MapDeleteElem = 3,
    /// Id 5 as the BPF conformance suite's plugins define it: returns its first argument. In
    /// the kernel id 5 is `bpf_ktime_get_ns`; only the conformance runner may call it
    /// ([`HelperProto::conformance_only`]).
    ConformanceIdentity = 5,
}

/// A helper's prototype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelperProto {
    pub id: HelperId,
    /// The kernel's name (`bpf_map_lookup_elem`), as the verifier log prints it.
    pub name: &'static str,
    pub args: &'static [ArgType],
    pub ret: RetType,
    /// Not a kernel helper: refused by the verifier, allowed by the conformance runner.
    pub conformance_only: bool,
}

/// Every helper the model knows, sorted by id.
pub const HELPERS: &[HelperProto] = &[
    HelperProto {
        id: HelperId::MapLookupElem,
        name: "bpf_map_lookup_elem",
        args: &[ArgType::ConstMapPtr, ArgType::PtrToMapKey],
        ret: RetType::PtrToMapValueOrNull,
        conformance_only: false,
    },
    HelperProto {
        id: HelperId::MapUpdateElem,
        name: "bpf_map_update_elem",
        args: &[
            ArgType::ConstMapPtr,
            ArgType::PtrToMapKey,
            ArgType::PtrToMapValue,
            ArgType::Anything,
        ],
        ret: RetType::Integer,
        conformance_only: false,
    },
    HelperProto {
        id: HelperId::MapDeleteElem,
        name: "bpf_map_delete_elem",
        args: &[ArgType::ConstMapPtr, ArgType::PtrToMapKey],
        ret: RetType::Integer,
        conformance_only: false,
    },
    HelperProto {
        id: HelperId::ConformanceIdentity,
        name: "conformance_identity",
        args: &[ArgType::Anything],
        ret: RetType::Integer,
        conformance_only: true,
    },
];

impl HelperId {
    pub fn from_imm(imm: i32) -> Option<HelperId> {
        HELPERS
            .iter()
            .map(|proto| proto.id)
            .find(|id| *id as i32 == imm)
    }
    pub fn proto(self) -> &'static HelperProto {
        proto(self as i32).expect("every HelperId has a row in HELPERS")
    }
}

/// The prototype of helper `imm`, if the model implements it.
pub fn proto(imm: i32) -> Option<&'static HelperProto> {
    HELPERS.iter().find(|proto| proto.id as i32 == imm)
}

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

const MAP_IMPLS: [MapImpl; 7] = [
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
        DIRECT_CALL_BASE + self.map as i32 * DIRECT_CALL_STRIDE + self.func as i32
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
            _ => return None,
        };
        Some(DirectCall { map, func })
    }
    /// The helper whose prototype this call keeps.
    pub const fn helper(self) -> HelperId {
        match self.func {
            MapFn::Lookup | MapFn::LookupElem => HelperId::MapLookupElem,
            MapFn::Update => HelperId::MapUpdateElem,
            MapFn::Delete => HelperId::MapDeleteElem,
        }
    }
    /// The kernel function's name (`array_map_lookup_elem`, `htab_of_map_lookup_elem`, ...).
    pub fn name(self) -> String {
        if self.func == MapFn::LookupElem {
            return "__htab_map_lookup_elem".to_string();
        }
        let op = match self.func {
            MapFn::Lookup | MapFn::LookupElem => "lookup",
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

/// What a `call imm` (helper form, `src` = 0) targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Callee {
    Helper(HelperId),
    Direct(DirectCall),
}

impl Callee {
    pub fn from_imm(imm: i32) -> Option<Callee> {
        if let Some(id) = HelperId::from_imm(imm) {
            return Some(Callee::Helper(id));
        }
        DirectCall::from_imm(imm).map(Callee::Direct)
    }
    pub fn imm(self) -> i32 {
        match self {
            Callee::Helper(id) => id as i32,
            Callee::Direct(call) => call.imm(),
        }
    }
    /// The prototype the verifier checks the call against.
    pub fn proto(self) -> &'static HelperProto {
        match self {
            Callee::Helper(id) => id.proto(),
            Callee::Direct(call) => call.helper().proto(),
        }
    }
}

impl fmt::Display for Callee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Callee::Helper(id) => write!(f, "{}#{}", id.proto().name, *id as i32),
            Callee::Direct(call) => write!(f, "{}#{}", call.name(), call.imm()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_ids_and_direct_calls_round_trip_through_imm() {
        for proto in HELPERS {
            assert_eq!(
                Callee::from_imm(proto.id as i32),
                Some(Callee::Helper(proto.id))
            );
        }
        for map in MAP_IMPLS {
            for func in [MapFn::Lookup, MapFn::Update, MapFn::Delete] {
                let call = DirectCall { map, func };
                assert_eq!(
                    Callee::from_imm(call.imm()),
                    Some(Callee::Direct(call)),
                    "{}",
                    call.name()
                );
                assert_eq!(Callee::Direct(call).proto().id, call.helper());
            }
        }
        assert_eq!(Callee::from_imm(4), None, "unimplemented helper");
        assert_eq!(
            Callee::from_imm(DIRECT_CALL_BASE + 3),
            None,
            "no element lookup for arrays: a hole in the direct-call range"
        );
        let elem = DirectCall {
            map: MapImpl::Htab,
            func: MapFn::LookupElem,
        };
        assert_eq!(Callee::from_imm(elem.imm()), Some(Callee::Direct(elem)));
        assert_eq!(elem.name(), "__htab_map_lookup_elem");
        assert_eq!(elem.helper(), HelperId::MapLookupElem);
        assert_eq!(Callee::from_imm(i32::MAX), None);
    }

    #[test]
    fn lookup_prototype_is_the_kernels() {
        let proto = HelperId::MapLookupElem.proto();
        assert_eq!(proto.args, &[ArgType::ConstMapPtr, ArgType::PtrToMapKey]);
        assert_eq!(proto.ret, RetType::PtrToMapValueOrNull);
        assert_eq!(
            DirectCall {
                map: MapImpl::Array,
                func: MapFn::Lookup
            }
            .name(),
            "array_map_lookup_elem"
        );
    }
}
