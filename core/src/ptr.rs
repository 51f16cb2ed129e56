//! How pointers look to a BPF program: 64-bit values that encode a region and an offset, so the
//! executor can check every access and a program can still do arithmetic on them.
//!
//! Layout (bit 63 first): `kind:4 | index:20 | gen:8 | offset:32`.
//! * `kind` 0 is never a pointer, so NULL and small scalars never decode as one.
//! * `index`/`gen` name the region: a stack frame, the context, or a map object through its
//!   arena [`Handle`] (the generation is kept modulo 256; a wrap would need 256 reuses of one
//!   slot inside one access race, which the arena's quarantine makes impossible in practice).
//! * `offset` is where in the region. Arithmetic that leaves the region changes `offset` past
//!   the region's size or borrows into `gen`: either way the access is refused, never silent.
//!
//! A map object's region is the map as the kernel lays it out for inlined code: a header whose
//! fields a privileged program may read, then the values (array: `index * elem_size`), or for a
//! hash map its element pool. Array-of-maps slots hold map pointers in this same encoding, which
//! is why the encoding lives here, below both `maps` and `bpf`.

use crate::arena::Handle;
use std::fmt;

const OFFSET_BITS: u32 = 32;
const GEN_BITS: u32 = 8;
const INDEX_BITS: u32 = 20;
const KIND_SHIFT: u32 = OFFSET_BITS + GEN_BITS + INDEX_BITS;
const INDEX_SHIFT: u32 = OFFSET_BITS + GEN_BITS;

/// The kind of region a pointer points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegionKind {
    /// A program's stack frame (`index` = frame depth).
    Stack = 1,
    /// The context / input memory (`index` 0).
    Ctx = 2,
    /// A map object: header, then values or elements (`index`/`gen` = its arena handle).
    Map = 3,
    /// A packet program's packet buffer (`index` 0; `offset` from the buffer's start, the
    /// headroom included): only the bytes between `data_meta` and `data_end` may be touched.
    Packet = 4,
}

/// A decoded pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ptr {
    pub kind: RegionKind,
    pub index: u32,
    /// Generation modulo 256.
    pub gen: u8,
    pub offset: u32,
}

impl Ptr {
    pub fn stack(frame: u32, offset: u32) -> Ptr {
        Ptr {
            kind: RegionKind::Stack,
            index: frame,
            gen: 0,
            offset,
        }
    }
    pub fn ctx(offset: u32) -> Ptr {
        Ptr {
            kind: RegionKind::Ctx,
            index: 0,
            gen: 0,
            offset,
        }
    }
    pub fn packet(offset: u32) -> Ptr {
        Ptr {
            kind: RegionKind::Packet,
            index: 0,
            gen: 0,
            offset,
        }
    }
    pub fn map(handle: Handle, offset: u32) -> Ptr {
        Ptr {
            kind: RegionKind::Map,
            index: handle.index,
            gen: handle.gen as u8,
            offset,
        }
    }

    /// Does this pointer name the map `handle` (generation compared modulo 256)?
    pub fn is_map(&self, handle: Handle) -> bool {
        self.kind == RegionKind::Map && self.index == handle.index && self.gen == handle.gen as u8
    }

    pub fn encode(self) -> u64 {
        debug_assert!(
            self.index < 1 << INDEX_BITS,
            "region index {} too large",
            self.index
        );
        (self.kind as u64) << KIND_SHIFT
            | u64::from(self.index) << INDEX_SHIFT
            | u64::from(self.gen) << OFFSET_BITS
            | u64::from(self.offset)
    }

    /// Decodes a register value; `None` for anything that is not a pointer (NULL, scalars).
    pub fn decode(value: u64) -> Option<Ptr> {
        let kind = match value >> KIND_SHIFT {
            1 => RegionKind::Stack,
            2 => RegionKind::Ctx,
            3 => RegionKind::Map,
            4 => RegionKind::Packet,
            _ => return None,
        };
        Some(Ptr {
            kind,
            index: ((value >> INDEX_SHIFT) & ((1 << INDEX_BITS) - 1)) as u32,
            gen: ((value >> OFFSET_BITS) & ((1 << GEN_BITS) - 1)) as u8,
            offset: value as u32,
        })
    }
}

impl fmt::Display for Ptr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            RegionKind::Stack => "stack",
            RegionKind::Ctx => "ctx",
            RegionKind::Map => "map",
            RegionKind::Packet => "pkt",
        };
        write!(f, "{kind}[{}.{}]+{}", self.index, self.gen, self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_round_trip_and_scalars_are_not_pointers() {
        let handle = Handle {
            index: 77,
            gen: 300,
        };
        for ptr in [
            Ptr::stack(3, 512),
            Ptr::ctx(0),
            Ptr::map(handle, 272),
            Ptr::packet(256),
        ] {
            assert_eq!(Ptr::decode(ptr.encode()), Some(ptr));
        }
        assert!(Ptr::map(handle, 0).is_map(handle));
        assert!(!Ptr::map(handle, 0).is_map(Handle {
            index: 77,
            gen: 301
        }));
        for scalar in [0u64, 1, 0xffff_ffff, u64::MAX >> 4] {
            assert_eq!(Ptr::decode(scalar), None, "{scalar:#x}");
        }
    }

    #[test]
    fn stepping_below_a_region_changes_its_generation() {
        let handle = Handle { index: 5, gen: 9 };
        let below = Ptr::map(handle, 0).encode().wrapping_sub(8);
        let decoded = Ptr::decode(below).expect("still a map pointer");
        assert!(
            !decoded.is_map(handle),
            "an underflow must not alias the same map"
        );
    }
}
