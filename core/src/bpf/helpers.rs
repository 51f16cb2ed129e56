//! The helper table: the one place that says which calls a program may make, with the
//! argument and return types the verifier checks (its prototypes) and the executor dispatches on.
//!
//! A `call` instruction's target is a [`Callee`]: a helper by its uapi id ([`HelperId`]), or a
//! kernel-internal function the verifier's fixups call directly instead of a helper
//! ([`DirectCall`], e.g. `array_map_lookup_elem` after `patch_map_ops_generic`). Direct calls are
//! encoded as `call imm` with `imm` in a reserved range above every helper id
//! ([`DIRECT_CALL_BASE`]); the kernel stores a relative function address there instead, which
//! is why `bpftool` prints `call array_map_lookup_elem#149280`.

use crate::uapi::MapType;
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
    /// `ARG_PTR_TO_CTX`: the context pointer, unmoved.
    PtrToCtx,
    /// `ARG_PTR_TO_MEM | PTR_MAYBE_NULL | MEM_RDONLY`: readable memory (stack, packet, map
    /// value) of as many bytes as the next argument says, or NULL with a size of 0.
    PtrToMemOrNull,
    /// `ARG_CONST_SIZE_OR_ZERO`: the byte count of the memory argument before it, a scalar
    /// whose bounds are known (0 allowed).
    ConstSizeOrZero,
    /// `ARG_PTR_TO_MEM | MEM_RDONLY`: as [`ArgType::PtrToMemOrNull`], never NULL.
    PtrToMem,
    /// `ARG_CONST_SIZE`: as [`ArgType::ConstSizeOrZero`], at least 1.
    ConstSize,
    /// `ARG_PTR_TO_UNINIT_MEM`: memory (stack, map value) of as many bytes as the next argument
    /// says, which the helper fills: it need not be initialised, and is written afterwards.
    PtrToUninitMem,
}

/// Types of helper return values (the kernel's `enum bpf_return_type`, the subset used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetType {
    /// `RET_INTEGER`.
    Integer,
    /// `RET_VOID`: `r0` is not readable afterwards.
    Void,
    /// `RET_PTR_TO_MAP_VALUE_OR_NULL`: a pointer into the map's value (or, for a map-in-map
    /// outer map, to the inner map) that must be checked against NULL before use.
    PtrToMapValueOrNull,
}

/// Helper ids the model implements (uapi `enum bpf_func_id` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HelperId {
    MapLookupElem = crate::uapi::BPF_FUNC_MAP_LOOKUP_ELEM as isize,
    MapUpdateElem = 2,
    MapDeleteElem = 3,
    /// `bpf_ktime_get_ns`: the simulated clock ([`crate::bpf::exec::Config::clock_ns`]). The
    /// conformance suite's plugins give id 5 another meaning (it returns its first argument),
    /// which the executor follows only in its conformance mode.
    KtimeGetNs = 5,
    /// `bpf_trace_printk(fmt, fmt_size, arg1, arg2, arg3)`: the formatted line goes to the
    /// map environment (the simulator's trace); returns its length or `-EINVAL`.
    TracePrintk = 6,
    /// `bpf_get_prandom_u32`: a pseudo-random word, from the run's seed.
    GetPrandomU32 = 7,
    /// `bpf_get_smp_processor_id`: the (simulated) CPU the program runs on.
    GetSmpProcessorId = 8,
    /// `bpf_skb_store_bytes(skb, offset, from, len, flags)`: copies `len` bytes into a tc
    /// program's packet at `offset` (`-EFAULT` past its end, `-EINVAL` for a flag other than
    /// `BPF_F_RECOMPUTE_CSUM` and `BPF_F_INVALIDATE_HASH`).
    SkbStoreBytes = 9,
    /// `bpf_l3_csum_replace(skb, offset, from, to, flags)`: the 16-bit checksum at `offset`
    /// updated for a field changed from `from` to `to` (2 or 4 bytes, the size in `flags`; 0:
    /// `to` is a checksum difference).
    L3CsumReplace = 10,
    /// `bpf_l4_csum_replace(skb, offset, from, to, flags)`: as the L3 form, with
    /// `BPF_F_MARK_MANGLED_0` (a zero checksum stays zero, a result of zero is written 0xffff).
    L4CsumReplace = 11,
    /// `bpf_skb_load_bytes(skb, offset, to, len)`: copies `len` bytes of a tc program's packet
    /// from `offset` into `to` (`-EFAULT`, and `to` zeroed, past the packet's end).
    SkbLoadBytes = 26,
    /// `bpf_tail_call(ctx, prog_array, index)`: continues in the program at slot `index` (its
    /// low 32 bits) of the `PROG_ARRAY`, with the same context, and never returns; falls
    /// through when the slot is empty, past the end, or 33 tail calls were made already.
    TailCall = crate::uapi::BPF_FUNC_TAIL_CALL as isize,
    /// `bpf_redirect(ifindex, flags)`: from XDP, `XDP_REDIRECT`, or `XDP_ABORTED` for any flag;
    /// from tc, `TC_ACT_REDIRECT`, or `TC_ACT_SHOT` for a flag other than `BPF_F_INGRESS`.
    Redirect = 23,
    /// `bpf_skb_pull_data(skb, len)`: makes the first `len` bytes (0: the linear part) of a
    /// tc program's packet direct and private; `-ENOMEM` past the packet's end. Every packet
    /// pointer the program held is invalid afterwards.
    SkbPullData = 39,
    /// `bpf_csum_diff(from, from_size, to, to_size, seed)`: the one's-complement checksum of
    /// `to` less `from`, from `seed`, folded to 16 bits (as 6.18 returns it on every arch).
    CsumDiff = 28,
    /// `bpf_xdp_adjust_head(ctx, delta)`: moves the packet's start; every packet pointer the
    /// program held is invalid afterwards.
    XdpAdjustHead = 44,
    /// `bpf_map_lookup_percpu_elem(map, key, cpu)`: CPU `cpu`'s copy of a per-CPU map's value,
    /// or NULL (a miss, or a CPU the machine does not have).
    MapLookupPercpuElem = 195,
}

/// Which program types may call a helper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Programs {
    Any,
    /// XDP and tc.
    Packet,
    Xdp,
    /// tc (`sched_cls`).
    Tc,
}

/// A helper's prototype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelperProto {
    pub id: HelperId,
    /// The kernel's name (`bpf_map_lookup_elem`), as the verifier log prints it.
    pub name: &'static str,
    pub args: &'static [ArgType],
    pub ret: RetType,
    /// The program types that may call it: others are refused.
    pub programs: Programs,
    /// It may move or resize the packet (the kernel's `bpf_helper_changes_pkt_data`): the
    /// verifier forgets every packet pointer after the call.
    pub changes_pkt_data: bool,
    /// Its memory arguments may point into the packet (the kernel's `pkt_access`); for other
    /// helpers a packet pointer is refused.
    pub pkt_access: bool,
    /// The map kinds its map argument may be (empty: any the kind itself allows). The
    /// helper's side of `check_map_func_compatibility`; the kind's side is
    /// `maps::kind::Kind::helpers`.
    pub map_types: &'static [MapType],
}

/// Every helper the model knows, sorted by id.
pub const HELPERS: &[HelperProto] = &[
    HelperProto {
        id: HelperId::MapLookupElem,
        name: "bpf_map_lookup_elem",
        args: &[ArgType::ConstMapPtr, ArgType::PtrToMapKey],
        ret: RetType::PtrToMapValueOrNull,
        pkt_access: true,
        ..PLAIN
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
        pkt_access: true,
        ..PLAIN
    },
    HelperProto {
        id: HelperId::MapDeleteElem,
        name: "bpf_map_delete_elem",
        args: &[ArgType::ConstMapPtr, ArgType::PtrToMapKey],
        ret: RetType::Integer,
        pkt_access: true,
        ..PLAIN
    },
    HelperProto {
        id: HelperId::KtimeGetNs,
        name: "bpf_ktime_get_ns",
        args: &[],
        ..PLAIN
    },
    HelperProto {
        id: HelperId::TracePrintk,
        name: "bpf_trace_printk",
        args: &[
            ArgType::PtrToMem,
            ArgType::ConstSize,
            ArgType::Anything,
            ArgType::Anything,
            ArgType::Anything,
        ],
        ..PLAIN
    },
    HelperProto {
        id: HelperId::GetPrandomU32,
        name: "bpf_get_prandom_u32",
        args: &[],
        ..PLAIN
    },
    HelperProto {
        id: HelperId::GetSmpProcessorId,
        name: "bpf_get_smp_processor_id",
        args: &[],
        ..PLAIN
    },
    HelperProto {
        id: HelperId::SkbStoreBytes,
        name: "bpf_skb_store_bytes",
        args: &[
            ArgType::PtrToCtx,
            ArgType::Anything,
            ArgType::PtrToMem,
            ArgType::ConstSize,
            ArgType::Anything,
        ],
        programs: Programs::Tc,
        changes_pkt_data: true,
        ..PLAIN
    },
    HelperProto {
        id: HelperId::L3CsumReplace,
        name: "bpf_l3_csum_replace",
        args: CSUM_REPLACE,
        programs: Programs::Tc,
        changes_pkt_data: true,
        ..PLAIN
    },
    HelperProto {
        id: HelperId::L4CsumReplace,
        name: "bpf_l4_csum_replace",
        args: CSUM_REPLACE,
        programs: Programs::Tc,
        changes_pkt_data: true,
        ..PLAIN
    },
    HelperProto {
        id: HelperId::TailCall,
        name: "bpf_tail_call",
        args: &[ArgType::PtrToCtx, ArgType::ConstMapPtr, ArgType::Anything],
        ret: RetType::Void,
        ..PLAIN
    },
    HelperProto {
        id: HelperId::Redirect,
        name: "bpf_redirect",
        args: &[ArgType::Anything, ArgType::Anything],
        programs: Programs::Packet,
        ..PLAIN
    },
    HelperProto {
        id: HelperId::SkbLoadBytes,
        name: "bpf_skb_load_bytes",
        args: &[
            ArgType::PtrToCtx,
            ArgType::Anything,
            ArgType::PtrToUninitMem,
            ArgType::ConstSize,
        ],
        programs: Programs::Tc,
        ..PLAIN
    },
    HelperProto {
        id: HelperId::CsumDiff,
        name: "bpf_csum_diff",
        args: &[
            ArgType::PtrToMemOrNull,
            ArgType::ConstSizeOrZero,
            ArgType::PtrToMemOrNull,
            ArgType::ConstSizeOrZero,
            ArgType::Anything,
        ],
        programs: Programs::Packet,
        pkt_access: true,
        ..PLAIN
    },
    HelperProto {
        id: HelperId::SkbPullData,
        name: "bpf_skb_pull_data",
        args: &[ArgType::PtrToCtx, ArgType::Anything],
        programs: Programs::Tc,
        changes_pkt_data: true,
        ..PLAIN
    },
    HelperProto {
        id: HelperId::XdpAdjustHead,
        name: "bpf_xdp_adjust_head",
        args: &[ArgType::PtrToCtx, ArgType::Anything],
        programs: Programs::Xdp,
        changes_pkt_data: true,
        ..PLAIN
    },
    HelperProto {
        id: HelperId::MapLookupPercpuElem,
        name: "bpf_map_lookup_percpu_elem",
        args: &[
            ArgType::ConstMapPtr,
            ArgType::PtrToMapKey,
            ArgType::Anything,
        ],
        ret: RetType::PtrToMapValueOrNull,
        map_types: &[MapType::PercpuArray, MapType::PercpuHash],
        pkt_access: true,
        ..PLAIN
    },
];

/// `bpf_l3_csum_replace` and `bpf_l4_csum_replace`: the context, then four numbers.
const CSUM_REPLACE: &[ArgType] = &[
    ArgType::PtrToCtx,
    ArgType::Anything,
    ArgType::Anything,
    ArgType::Anything,
    ArgType::Anything,
];

/// The defaults of a row: returns an integer, any program type, leaves the packet alone.
const PLAIN: HelperProto = HelperProto {
    id: HelperId::MapDeleteElem,
    name: "",
    args: &[],
    ret: RetType::Integer,
    programs: Programs::Any,
    changes_pkt_data: false,
    pkt_access: false,
    map_types: &[],
};

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

pub use crate::maps::direct_call::{DirectCall, MapFn, MapImpl, DIRECT_CALL_BASE};

/// A direct call keeps the prototype of the helper it replaces (defined here, over the map
/// kinds' call table of `maps::direct_call`, so that `maps/` needs nothing from `bpf/`).
impl DirectCall {
    /// The helper whose prototype this call keeps.
    pub const fn helper(self) -> HelperId {
        match self.func {
            MapFn::Lookup | MapFn::LookupElem => HelperId::MapLookupElem,
            MapFn::LookupPercpu => HelperId::MapLookupPercpuElem,
            MapFn::Update => HelperId::MapUpdateElem,
            MapFn::Delete => HelperId::MapDeleteElem,
        }
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
        for map in crate::maps::direct_call::MAP_IMPLS {
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
        assert_eq!(Callee::from_imm(13), None, "unimplemented helper");
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
