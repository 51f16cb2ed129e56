//! The soundness oracle (state embedding): for each instruction, the join of every state the
//! verifier accepted there. An executor in check mode reports each concrete register and stack
//! byte before it runs an instruction; a value outside the joined state is a verifier
//! unsoundness (the verifier claimed something the run contradicts).
//!
//! The join is per call depth of the innermost frame (the executor knows its own depth). A
//! register whose type differs between paths joins to "not initialised", which asserts nothing:
//! the verifier checked each use on each path separately.

use super::bounds::Scalar;
use super::state::{Frame, Reg, RegType, Slot, SlotByte, VState, NREGS, SLOTS};
use super::MapDesc;
use crate::bpf::exec::{Observer, StepView, STACK_SIZE};
use crate::ptr::{Ptr, RegionKind};
use std::fmt;

/// What a register joined to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JoinedReg {
    pub ty: RegType,
    pub map: u32,
    /// Frame of a stack pointer.
    pub frame: u8,
    /// For pointers: the whole offset (fixed plus variable); for scalars: the value.
    pub var: Scalar,
}

impl JoinedReg {
    /// Asserts nothing (a dead register, or types that differ between paths).
    pub const NOT_INIT: JoinedReg = JoinedReg {
        ty: RegType::NotInit,
        map: 0,
        frame: 0,
        var: Scalar::UNKNOWN,
    };

    fn from(reg: &Reg) -> JoinedReg {
        let off = reg.off as i64 as u64;
        let var = if !reg.ty.is_pointer() || off == 0 {
            reg.var
        } else if let Some(c) = reg.var.const_value() {
            // The common case (no variable part): what the addition below gives, without it.
            Scalar::konst(c.wrapping_add(off))
        } else {
            // Fold the fixed offset into the range.
            super::bounds::alu(
                crate::isa::Width::W64,
                crate::isa::AluOp::Add,
                &reg.var,
                &Scalar::konst(off),
            )
            .unwrap_or(Scalar::UNKNOWN)
        };
        JoinedReg {
            ty: reg.ty,
            map: reg.map,
            frame: reg.frame,
            var,
        }
    }
    fn join(&self, other: &JoinedReg) -> JoinedReg {
        if self.ty == RegType::NotInit || other.ty == RegType::NotInit {
            // Asserts nothing (dead registers are `NotInit` in every state at a pc).
            return JoinedReg {
                ty: RegType::NotInit,
                ..*self
            };
        }
        let same_map = (!self.ty.has_map() || self.map == other.map) && self.frame == other.frame;
        let ty = match (self.ty, other.ty) {
            (a, b) if a == b && same_map => a,
            (RegType::MapValue, RegType::MapValueOrNull)
            | (RegType::MapValueOrNull, RegType::MapValue)
                if same_map =>
            {
                RegType::MapValueOrNull
            }
            _ => RegType::NotInit,
        };
        JoinedReg {
            ty,
            map: self.map,
            frame: self.frame,
            var: self.var.join(&other.var),
        }
    }
}

/// One stack slot joined over paths, a byte per bit of the masks (bit `i`: the byte at
/// fp-8(slot+1)+i), packed so that joining and checking are a few word operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinedSlot {
    /// Slot index (slot 0 = fp-8).
    pub slot: u8,
    /// Bytes initialised on every path.
    pub init: u8,
    /// Bytes holding the same known value on every path (a subset of `init`).
    pub known: u8,
    /// Those bytes' values, little-endian (other bytes 0).
    pub value: u64,
}

impl JoinedSlot {
    fn of(si: usize, slot: &Slot) -> JoinedSlot {
        let (mut init, mut known, mut value) = (0u8, 0u8, 0u64);
        for (bi, b) in slot.bytes.iter().enumerate() {
            let v = match b {
                SlotByte::Invalid => continue,
                SlotByte::Misc => None,
                SlotByte::Zero => Some(0),
                SlotByte::Spill | SlotByte::Const(_) => b.known(&slot.spill, bi),
            };
            init |= 1 << bi;
            if let Some(v) = v {
                known |= 1 << bi;
                value |= u64::from(v) << (8 * bi);
            }
        }
        JoinedSlot {
            slot: si as u8,
            init,
            known,
            value,
        }
    }

    /// Keeps what both paths agree on.
    fn join(&mut self, other: &JoinedSlot) {
        let differ = byte_mask(self.value ^ other.value);
        self.init &= other.init;
        self.known &= other.known & !differ;
        self.value &= spread(self.known);
    }

    /// The known bytes that `word` (the slot's 8 bytes, little-endian) contradicts.
    fn contradicted(&self, word: u64) -> u8 {
        byte_mask((word ^ self.value) & spread(self.known))
    }
}

/// Bit `i` set when byte `i` of `x` is non-zero. Branch-free: the oracle runs this on every
/// checked instruction, under coverage instrumentation that makes each comparison a call.
fn byte_mask(x: u64) -> u8 {
    const LOW_BITS: u64 = 0x0101_0101_0101_0101;
    // Fold each byte onto its bit 0.
    let mut t = x | (x >> 4);
    t |= t >> 2;
    t |= t >> 1;
    t &= LOW_BITS;
    // Byte i's bit lands on bit 56 + i; the partial products never overlap (no carries).
    (t.wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8
}

/// Byte `i` all ones when bit `i` of `mask` is set.
fn spread(mask: u8) -> u64 {
    (0..8).fold(0u64, |w, i| {
        w | (u64::from((mask >> i) & 1) * 0xff) << (8 * i)
    })
}

/// A run of entries in one of the oracle's pools. Joins only ever drop entries, so a frame's
/// entries are compacted in place and never outgrow the run they started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JoinedFrame {
    pub depth: usize,
    pub regs: [JoinedReg; NREGS],
    /// Slots with a byte initialised on every path, sorted by slot (in
    /// [`StateOracle::stack_of`]). Sparse because programs touch a few slots and the oracle
    /// checks every executed instruction against it.
    stack: Span,
    /// Slots holding a spilled register on every path, sorted by slot, with the spills joined
    /// (in [`StateOracle::spills_of`]).
    spills: Span,
}

/// The per-instruction joins: all frames in one vector, their stack slots and spills in two
/// pools (a few allocations per program, not a few per instruction: the oracle accepts every
/// processed instruction), found through `first[pc]` and chained through `next` per call depth.
#[derive(Debug, Clone, Default)]
pub struct StateOracle {
    frames: Vec<JoinedFrame>,
    /// Per pc: index into `frames` of its first frame, or [`NO_FRAME`].
    first: Vec<u32>,
    /// Per frame: the next frame of the same pc (another call depth), or [`NO_FRAME`].
    next: Vec<u32>,
    slots: Vec<JoinedSlot>,
    /// `(slot, joined spill)`; slot 0 = fp-8.
    spills: Vec<(u8, JoinedReg)>,
}

/// End of a pc's chain of frames.
const NO_FRAME: u32 = u32::MAX;

/// What the executor saw in a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concrete {
    Scalar(u64),
    /// A NULL pointer (a lookup that found nothing).
    Null,
    Ctx {
        off: i64,
    },
    /// Offset relative to the frame pointer of frame `frame`.
    Stack {
        frame: usize,
        off: i64,
    },
    /// A map pointer; its shape `(map_type, key_size, value_size)`, when known, is compared
    /// with the verifier's map (or meta).
    MapPtr {
        shape: Option<(u32, u32, u32)>,
    },
    /// A pointer into a map's value, at `off` from the start of the value it points into
    /// (negative: before the first value) when known, and the map's shape when known.
    MapValue {
        off: Option<i64>,
        shape: Option<(u32, u32, u32)>,
    },
    /// A pointer into the packet buffer, `off` bytes from its start (headroom included).
    Packet {
        off: i64,
    },
}

/// A concrete value outside the verifier's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsoundness {
    pub pc: usize,
    /// `R3` or `fp-8`.
    pub location: String,
    pub expected: String,
    pub got: String,
}

impl fmt::Display for Unsoundness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "verifier unsoundness at insn {}: {} holds {} outside the verified state {}",
            self.pc, self.location, self.got, self.expected
        )
    }
}

impl StateOracle {
    pub fn new(len: usize) -> StateOracle {
        StateOracle {
            // Most instructions are reached at one depth: one frame each.
            frames: Vec::with_capacity(len),
            first: vec![NO_FRAME; len],
            next: Vec::with_capacity(len),
            slots: Vec::with_capacity(4 * len),
            spills: Vec::new(),
        }
    }

    fn find(&self, pc: usize, depth: usize) -> Option<usize> {
        let mut i = *self.first.get(pc)?;
        while i != NO_FRAME {
            let at = i as usize;
            if self.frames[at].depth == depth {
                return Some(at);
            }
            i = self.next[at];
        }
        None
    }

    /// Joins the state accepted at `pc` into the record. `live` is the mask of registers live
    /// at `pc`: pruning ignores dead registers, so a pruned path may hold anything in them and
    /// the record must not claim otherwise.
    pub fn accept(&mut self, pc: usize, st: &VState, live: u16) {
        let frame = st.cur();
        let depth = st.frames.len() - 1;
        let Some(at) = self.find(pc, depth) else {
            let Some(first) = self.first.get_mut(pc) else {
                return;
            };
            self.next.push(*first);
            *first = self.frames.len() as u32;
            self.push_first_frame(depth, frame, live);
            return;
        };
        let old = &mut self.frames[at];
        // Joins only shrink what is asserted: visit what the record still holds.
        for (i, (o, r)) in old.regs.iter_mut().zip(&frame.regs).enumerate() {
            // A dead register is `NotInit` in the record already.
            if live & (1 << i) != 0 && o.ty != RegType::NotInit {
                *o = o.join(&JoinedReg::from(r));
            }
        }
        // A slot not written on this path is all `Invalid` here: it drops out of the join.
        let written = |si: usize| frame.written & (1 << si) != 0;
        let mut kept = 0;
        for k in old.stack.range() {
            let mut js = self.slots[k];
            let si = usize::from(js.slot);
            if !written(si) {
                continue;
            }
            js.join(&JoinedSlot::of(si, frame.slot(si)));
            if js.init != 0 {
                self.slots[old.stack.start as usize + kept] = js;
                kept += 1;
            }
        }
        old.stack.len = kept as u32;
        let mut kept = 0;
        for k in old.spills.range() {
            let (si, reg) = self.spills[k];
            let slot = frame.slot(usize::from(si));
            if written(usize::from(si)) && slot.is_spill() {
                self.spills[old.spills.start as usize + kept] =
                    (si, reg.join(&JoinedReg::from(&slot.spill)));
                kept += 1;
            }
        }
        old.spills.len = kept as u32;
    }

    /// Records the first state accepted at a pc (`live`: its live registers) as a new frame;
    /// its slots and spills go to the end of the pools. Built in place: a frame is most of a
    /// kilobyte and a third of all accepts land here.
    fn push_first_frame(&mut self, depth: usize, frame: &Frame, live: u16) {
        let mut stack = Span {
            start: self.slots.len() as u32,
            len: 0,
        };
        let mut spills = Span {
            start: self.spills.len() as u32,
            len: 0,
        };
        // Only slots written on this path can be initialised.
        let mut written = frame.written;
        while written != 0 {
            let si = written.trailing_zeros() as usize;
            written &= written - 1;
            let slot = frame.slot(si);
            let js = JoinedSlot::of(si, slot);
            if js.init != 0 {
                self.slots.push(js);
                stack.len += 1;
            }
            if slot.is_spill() {
                self.spills.push((si as u8, JoinedReg::from(&slot.spill)));
                spills.len += 1;
            }
        }
        self.frames.push(JoinedFrame {
            depth,
            regs: [JoinedReg::NOT_INIT; NREGS],
            stack,
            spills,
        });
        let Some(joined) = self.frames.last_mut() else {
            return;
        };
        for (i, (j, r)) in joined.regs.iter_mut().zip(&frame.regs).enumerate() {
            if live & (1 << i) != 0 {
                *j = JoinedReg::from(r);
            }
        }
    }

    /// The joined stack slots of `frame` (one of this oracle's frames).
    pub fn stack_of(&self, frame: &JoinedFrame) -> &[JoinedSlot] {
        self.slots.get(frame.stack.range()).unwrap_or(&[])
    }

    /// The joined spills of `frame` (one of this oracle's frames), as `(slot, register)`.
    pub fn spills_of(&self, frame: &JoinedFrame) -> &[(u8, JoinedReg)] {
        self.spills.get(frame.spills.range()).unwrap_or(&[])
    }

    pub fn frame(&self, pc: usize, depth: usize) -> Option<&JoinedFrame> {
        self.find(pc, depth).map(|i| &self.frames[i])
    }

    /// The joined frame at `pc`, `depth`, mutably (tests fake an unsound verifier with it).
    pub fn frame_mut(&mut self, pc: usize, depth: usize) -> Option<&mut JoinedFrame> {
        self.find(pc, depth).map(|i| &mut self.frames[i])
    }

    /// Was `pc` at call depth `depth` ever accepted? A run reaching an instruction the verifier
    /// never accepted there is itself an unsoundness.
    pub fn reached(&self, pc: usize, depth: usize) -> Result<(), Unsoundness> {
        match self.frame(pc, depth) {
            Some(_) => Ok(()),
            None => Err(Unsoundness {
                pc,
                location: format!("frame {depth}"),
                expected: "unreachable".into(),
                got: "reached".into(),
            }),
        }
    }

    /// Checks one register. `maps` is [`super::Verified::maps`].
    pub fn check_reg(
        &self,
        pc: usize,
        depth: usize,
        reg: u8,
        value: Concrete,
        maps: &[MapDesc],
    ) -> Result<(), Unsoundness> {
        self.reached(pc, depth)?;
        let Some(frame) = self.frame(pc, depth) else {
            return Ok(());
        };
        frame.check_reg(pc, reg, value, maps)
    }

    /// Checks the stack of the frame at `depth`: `bytes[i]` is the byte at fp-512+i.
    pub fn check_stack(&self, pc: usize, depth: usize, bytes: &[u8]) -> Result<(), Unsoundness> {
        self.reached(pc, depth)?;
        let Some(frame) = self.frame(pc, depth) else {
            return Ok(());
        };
        self.check_frame_stack(frame, pc, bytes)
    }

    /// `bytes[i]` is the byte at fp-512+i: every byte of `frame` (one of this oracle's frames)
    /// known on all paths must hold its value, every spilled scalar must lie in its joined
    /// range.
    pub fn check_frame_stack(
        &self,
        frame: &JoinedFrame,
        pc: usize,
        bytes: &[u8],
    ) -> Result<(), Unsoundness> {
        for js in self.stack_of(frame) {
            if js.known == 0 {
                continue;
            }
            let Some(word) = slot_word(bytes, usize::from(js.slot)) else {
                continue;
            };
            let bad = js.contradicted(word);
            if bad != 0 {
                let bi = bad.trailing_zeros();
                let at = -8 * (i64::from(js.slot) + 1) + i64::from(bi);
                return Err(Unsoundness {
                    pc,
                    location: format!("fp{at}"),
                    expected: format!("byte {:#x}", (js.value >> (8 * bi)) as u8),
                    got: format!("byte {:#x}", (word >> (8 * bi)) as u8),
                });
            }
        }
        for (si, j) in self.spills_of(frame) {
            if j.ty != RegType::Scalar {
                continue;
            }
            let Some(v) = slot_word(bytes, usize::from(*si)) else {
                continue;
            };
            if !j.var.contains(v) {
                return Err(Unsoundness {
                    pc,
                    location: format!("fp-{}", 8 * (usize::from(*si) + 1)),
                    expected: describe(j),
                    got: format!("{v:#x}"),
                });
            }
        }
        Ok(())
    }
}

impl JoinedFrame {
    /// Is `value` inside the joined state of register `reg`? (`pc` only names the report.)
    pub fn check_reg(
        &self,
        pc: usize,
        reg: u8,
        value: Concrete,
        maps: &[MapDesc],
    ) -> Result<(), Unsoundness> {
        let Some(j) = self.regs.get(reg as usize) else {
            return Ok(());
        };
        if j.admits(value, maps) {
            return Ok(());
        }
        Err(Unsoundness {
            pc,
            location: format!("R{reg}"),
            expected: describe(j),
            got: format!("{value:?}"),
        })
    }
}

impl JoinedReg {
    /// Does the joined state allow the concrete `value`?
    fn admits(&self, value: Concrete, maps: &[MapDesc]) -> bool {
        let j = self;
        match (j.ty, value) {
            (RegType::NotInit, _) => true,
            (RegType::Scalar, Concrete::Scalar(v)) => j.var.contains(v),
            (RegType::Scalar, Concrete::Null) => j.var.contains(0),
            (RegType::Ctx, Concrete::Ctx { off }) => j.var.contains(off as u64),
            (RegType::Stack, Concrete::Stack { off, frame }) => {
                frame == usize::from(j.frame) && j.var.contains(off as u64)
            }
            (RegType::MapValueOrNull, Concrete::Null | Concrete::Scalar(0)) => true,
            (RegType::MapValueOrNull | RegType::MapValue, Concrete::MapValue { off, shape }) => {
                let map = maps.get(j.map as usize);
                same_shape(map, shape) && off.is_none_or(|off| j.admits_value_offset(off, map))
            }
            (RegType::MapValueOrNull, Concrete::MapPtr { shape }) => {
                // An outer lookup's result before its null check: the meta's shape.
                let meta = maps
                    .get(j.map as usize)
                    .and_then(|m| m.inner_meta.as_deref());
                meta.is_some() && same_shape(meta, shape)
            }
            (RegType::ConstPtrToMap, Concrete::MapPtr { shape }) => {
                same_shape(maps.get(j.map as usize), shape)
            }
            // Where in the packet is checked by the executor at every access (against
            // `data_end` exactly), so a range the verifier got wrong faults the run there.
            (
                RegType::Packet | RegType::PacketMeta | RegType::PacketEnd,
                Concrete::Packet { .. },
            ) => true,
            _ => false,
        }
    }

    /// A value pointer `off` bytes from the start of the value it points into. The world can
    /// only tell the offset within the element the pointer lands in: when the verifier lets the
    /// pointer leave its value (privileged arithmetic checks bounds only at the access), the
    /// element is ambiguous and only "some value of this map" is asserted; otherwise the offset
    /// must lie inside the value and inside the joined range.
    fn admits_value_offset(&self, off: i64, map: Option<&MapDesc>) -> bool {
        let Some(map) = map else {
            return self.var.contains(off as u64);
        };
        let size = i64::from(map.value_size);
        let inside_value = 0 <= self.var.smin && self.var.smax < size;
        if !inside_value {
            return true;
        }
        (0..size).contains(&off) && self.var.contains(off as u64)
    }
}

/// The 8 bytes of slot `si` (fp-8(si+1)..) of a frame's stack image, little-endian.
fn slot_word(bytes: &[u8], si: usize) -> Option<u64> {
    let start = (SLOTS * 8).checked_sub(8 * (si + 1))?;
    let raw: [u8; 8] = bytes.get(start..start + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(raw))
}

fn same_shape(map: Option<&MapDesc>, shape: Option<(u32, u32, u32)>) -> bool {
    match (map, shape) {
        (Some(m), Some((t, k, v))) => m.map_type == t && m.key_size == k && m.value_size == v,
        _ => true,
    }
}

/// The executor's value of a register as the oracle compares it. Map-region pointers are
/// classified by `classify_map` when the caller can (the core's world:
/// [`super::world::classify_map_ptr`], which knows shapes and value layouts); otherwise offset
/// 0 is a map pointer and any other offset a value pointer of unknown offset.
pub fn concrete_of(value: u64, classify_map: &dyn Fn(Ptr) -> Option<Concrete>) -> Concrete {
    match Ptr::decode(value) {
        None if value == 0 => Concrete::Null,
        None => Concrete::Scalar(value),
        Some(p) => match p.kind {
            RegionKind::Stack => Concrete::Stack {
                frame: p.index as usize,
                off: i64::from(p.offset) - STACK_SIZE as i64,
            },
            RegionKind::Ctx => Concrete::Ctx {
                off: i64::from(p.offset),
            },
            RegionKind::Packet => Concrete::Packet {
                off: i64::from(p.offset),
            },
            RegionKind::Map => classify_map(p).unwrap_or(if p.offset == 0 {
                Concrete::MapPtr { shape: None }
            } else {
                Concrete::MapValue {
                    off: None,
                    shape: None,
                }
            }),
        },
    }
}

/// The executor's check mode: before each instruction, every register of the current frame
/// and its stack bytes are checked against the verifier's join at that instruction. Escapes
/// are collected (the run itself continues).
pub struct OracleObserver<'a> {
    pub oracle: &'a StateOracle,
    pub maps: &'a [MapDesc],
    /// For a fixed-up program: the original instruction of each executed one (`None` inside
    /// patched code, which the verifier never saw). `None`: the program ran unmodified.
    pub pc_map: Option<Vec<Option<usize>>>,
    pub classify_map: &'a dyn Fn(Ptr) -> Option<Concrete>,
    pub escapes: Vec<Unsoundness>,
}

impl<'a> OracleObserver<'a> {
    pub fn new(oracle: &'a StateOracle, maps: &'a [MapDesc]) -> OracleObserver<'a> {
        OracleObserver {
            oracle,
            maps,
            pc_map: None,
            classify_map: &|_| None,
            escapes: Vec::new(),
        }
    }
}

impl Observer for OracleObserver<'_> {
    /// The states are the verified program's: after a tail call no step maps to one.
    fn left_program(&mut self) {
        self.pc_map = Some(Vec::new());
    }

    fn before(&mut self, step: &StepView<'_>) {
        let pc = match &self.pc_map {
            None => Some(step.pc),
            Some(map) => map.get(step.pc).copied().flatten(),
        };
        let Some(pc) = pc else { return };
        // One lookup per step; the checks below only read this frame.
        let frame = match self.oracle.reached(pc, step.depth) {
            Ok(()) => self.oracle.frame(pc, step.depth),
            Err(e) => {
                self.escapes.push(e);
                return;
            }
        };
        let Some(frame) = frame else { return };
        for (r, (&v, j)) in step.regs.iter().zip(&frame.regs).enumerate() {
            // Scalars are compared as raw values (a constant may look like a pointer); context
            // and stack pointers as distances from their region's base, which stays right even
            // when an offset the encoding cannot hold (below the base) wrapped the value.
            let c = match j.ty {
                RegType::NotInit => continue,
                RegType::Scalar => Concrete::Scalar(v),
                RegType::Ctx => Concrete::Ctx {
                    off: v.wrapping_sub(Ptr::ctx(0).encode()) as i64,
                },
                RegType::Stack => Concrete::Stack {
                    frame: usize::from(j.frame),
                    off: v.wrapping_sub(Ptr::stack(u32::from(j.frame), STACK_SIZE as u32).encode())
                        as i64,
                },
                _ => concrete_of(v, self.classify_map),
            };
            if let Err(e) = frame.check_reg(pc, r as u8, c, self.maps) {
                self.escapes.push(e);
                return;
            }
        }
        if let Some(bytes) = step.frame(step.depth) {
            if let Err(e) = self.oracle.check_frame_stack(frame, pc, bytes) {
                self.escapes.push(e);
            }
        }
    }
}

fn describe(j: &JoinedReg) -> String {
    let v = &j.var;
    format!(
        "{}(var_off={}, umin={}, umax={:#x}, smin={}, smax={})",
        j.ty.name(),
        v.var,
        v.umin,
        v.umax,
        v.smin,
        v.smax
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::verifier::state::Slot;

    #[test]
    fn byte_masks_match_the_bytes() {
        for x in [
            0u64,
            1,
            0xff00,
            0x8000_0000_0000_0000,
            0x0001_0000_0100_0080,
            u64::MAX,
        ] {
            let want = (0..8).fold(0u8, |m, i| m | u8::from((x >> (8 * i)) & 0xff != 0) << i);
            assert_eq!(byte_mask(x), want, "{x:#x}");
        }
        assert_eq!(spread(0b1000_0101), 0xff00_0000_00ff_00ff);
    }

    fn slot(bytes: [SlotByte; 8]) -> Slot {
        Slot {
            bytes,
            ..Slot::EMPTY
        }
    }

    #[test]
    fn a_stack_byte_stays_known_only_when_every_path_agrees() {
        use SlotByte::*;
        let mut a = JoinedSlot::of(
            0,
            &slot([Const(7), Zero, Misc, Invalid, Const(1), Zero, Zero, Zero]),
        );
        let b = JoinedSlot::of(
            0,
            &slot([Const(7), Const(3), Zero, Zero, Invalid, Zero, Misc, Zero]),
        );
        assert_eq!((a.init, a.known), (0b1111_0111, 0b1111_0011));
        a.join(&b);
        // Byte 0 agrees (7), byte 1 differs, byte 2 Misc, 3 and 4 uninitialised on one path,
        // 5 and 7 agree (0), 6 Misc on one path.
        assert_eq!(a.init, 0b1110_0111, "initialised on both");
        assert_eq!(a.known, 0b1010_0001, "known and equal on both");
        assert_eq!(a.value, 7, "only known bytes keep their value");
        // A run holding 7 at byte 0 and anything at the unknown bytes is inside; 8 is not.
        assert_eq!(a.contradicted(0x00ab_00cd_ef12_3407), 0);
        assert_eq!(a.contradicted(0x0000_0000_0000_0008), 0b1);
        assert_eq!(a.contradicted(0x0100_0000_0000_0007), 0b1000_0000);
    }
}
