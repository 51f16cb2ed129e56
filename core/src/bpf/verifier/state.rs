//! The abstract state: registers and stack slots of every call frame on the current path.
//!
//! Invariants: `r10` is always a `Stack` pointer at offset 0 of its own frame; a slot's
//! `spill` is meaningful only when all eight bytes are [`SlotByte::Spill`]; ids of
//! `MapValueOrNull` registers are unique per lookup, so a null check on one copy refines all.

use super::bounds::Scalar;
use crate::isa::MAX_REG;

/// Bytes of a frame's stack (the kernel's `MAX_BPF_STACK`).
pub const MAX_STACK: i32 = 512;
/// 8-byte slots per frame.
pub const SLOTS: usize = (MAX_STACK / 8) as usize;
/// Registers r0..r10.
pub const NREGS: usize = MAX_REG as usize + 1;
/// Deepest bpf-to-bpf call chain (the kernel's `MAX_CALL_FRAMES`).
pub const MAX_FRAMES: usize = 8;

/// Register types (the kernel's `enum bpf_reg_type`, the subset map-in-map programs meet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RegType {
    NotInit,
    Scalar,
    /// `PTR_TO_CTX`.
    Ctx,
    /// `PTR_TO_STACK` (`fp` in the log).
    Stack,
    /// `CONST_PTR_TO_MAP`.
    ConstPtrToMap,
    /// `PTR_TO_MAP_VALUE`.
    MapValue,
    /// `PTR_TO_MAP_VALUE | PTR_MAYBE_NULL`.
    MapValueOrNull,
    /// `PTR_TO_MAP_KEY`.
    MapKey,
    /// `PTR_TO_PACKET`: into the packet, from its start (`xdp_md.data`); accesses must stay
    /// below [`Reg::range`], learned from comparisons with `pkt_end`.
    Packet,
    /// `PTR_TO_PACKET_META`: into the metadata before the packet (`xdp_md.data_meta`).
    PacketMeta,
    /// `PTR_TO_PACKET_END`: one past the packet's last byte; only compared, never moved or
    /// dereferenced.
    PacketEnd,
}

impl RegType {
    /// The kernel's name in messages (`reg_type_str`).
    pub fn name(self) -> &'static str {
        match self {
            RegType::NotInit => "?",
            RegType::Scalar => "scalar",
            RegType::Ctx => "ctx",
            RegType::Stack => "fp",
            RegType::ConstPtrToMap => "map_ptr",
            RegType::MapValue => "map_value",
            RegType::MapValueOrNull => "map_value_or_null",
            RegType::MapKey => "map_key",
            RegType::Packet => "pkt",
            RegType::PacketMeta => "pkt_meta",
            RegType::PacketEnd => "pkt_end",
        }
    }
    pub fn is_pointer(self) -> bool {
        !matches!(self, RegType::NotInit | RegType::Scalar)
    }
    /// A pointer into the packet or its metadata (the kernel's `reg_is_pkt_pointer`).
    pub fn is_packet(self) -> bool {
        matches!(self, RegType::Packet | RegType::PacketMeta)
    }
    pub fn has_map(self) -> bool {
        matches!(
            self,
            RegType::ConstPtrToMap | RegType::MapValue | RegType::MapValueOrNull | RegType::MapKey
        )
    }
}

/// One register.
#[derive(Debug, Clone, Copy)]
pub struct Reg {
    pub ty: RegType,
    /// Index into the verifier's map table, for map-typed pointers.
    pub map: u32,
    /// Fixed part of a pointer's offset.
    pub off: i32,
    /// A scalar's value, or a pointer's variable offset.
    pub var: Scalar,
    /// Null-check identity of `MapValueOrNull` (0: none).
    pub id: u32,
    /// Identity of an inner map reached through a lookup (0 unless it must be told apart).
    pub map_uid: u32,
    /// Frame a `Stack` pointer points into.
    pub frame: u8,
    /// A packet pointer's checked range: bytes `[ptr - off, ptr - off + range)` are inside the
    /// packet, shared by every register with the same `id`; or [`BEYOND_PKT_END`] /
    /// [`AT_PKT_END`] after a comparison that put it past the end. 0 for other types.
    pub range: i32,
    /// A scalar of a checkpoint whose exact value a verified path below it relied on (the
    /// kernel's `precise`, set by [`super::precision`]). Only checkpoints carry it: it is
    /// bookkeeping about what was explored, not part of the value, so equality ignores it.
    pub precise: bool,
}

impl PartialEq for Reg {
    fn eq(&self, other: &Reg) -> bool {
        self.ty == other.ty
            && self.map == other.map
            && self.off == other.off
            && self.var == other.var
            && self.id == other.id
            && self.map_uid == other.map_uid
            && self.frame == other.frame
            && self.range == other.range
    }
}

impl Eq for Reg {}

impl std::hash::Hash for Reg {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.ty.hash(state);
        self.map.hash(state);
        self.off.hash(state);
        self.var.hash(state);
        self.id.hash(state);
        self.map_uid.hash(state);
        self.frame.hash(state);
        self.range.hash(state);
    }
}

/// A packet pointer known to point past `pkt_end` (the kernel's `BEYOND_PKT_END`).
pub const BEYOND_PKT_END: i32 = -1;
/// A packet pointer known to equal `pkt_end` or lie past it (`AT_PKT_END`).
pub const AT_PKT_END: i32 = -2;
/// The largest packet offset a range may be learned for (`MAX_PACKET_OFF`).
pub const MAX_PACKET_OFF: u64 = 0xffff;

impl Reg {
    pub const NOT_INIT: Reg = Reg {
        ty: RegType::NotInit,
        map: 0,
        off: 0,
        var: Scalar::UNKNOWN,
        id: 0,
        map_uid: 0,
        frame: 0,
        range: 0,
        precise: false,
    };

    pub fn scalar(var: Scalar) -> Reg {
        Reg {
            ty: RegType::Scalar,
            var,
            ..Reg::NOT_INIT
        }
    }
    pub fn unknown() -> Reg {
        Reg::scalar(Scalar::UNKNOWN)
    }
    pub fn konst(v: u64) -> Reg {
        Reg::scalar(Scalar::konst(v))
    }
    pub fn pointer(ty: RegType, map: u32) -> Reg {
        Reg {
            ty,
            map,
            var: Scalar::konst(0),
            ..Reg::NOT_INIT
        }
    }
    pub fn stack(frame: u8, off: i32) -> Reg {
        Reg {
            ty: RegType::Stack,
            off,
            var: Scalar::konst(0),
            frame,
            ..Reg::NOT_INIT
        }
    }
    pub fn is_init(&self) -> bool {
        self.ty != RegType::NotInit
    }
    /// The constant value of a scalar register.
    pub fn const_scalar(&self) -> Option<u64> {
        (self.ty == RegType::Scalar)
            .then(|| self.var.const_value())
            .flatten()
    }
}

/// What a stack byte holds (the kernel's `STACK_INVALID/MISC/ZERO/SPILL`, plus `Const`: a
/// known non-zero byte of a narrow constant store, which the kernel keeps as a partial spill).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotByte {
    Invalid,
    Misc,
    Zero,
    Const(u8),
    Spill,
}

impl SlotByte {
    /// The byte's value when known.
    pub fn known(self, spill: &Reg, index: usize) -> Option<u8> {
        match self {
            SlotByte::Zero => Some(0),
            SlotByte::Const(b) => Some(b),
            SlotByte::Spill => spill.const_scalar().map(|v| (v >> (8 * index)) as u8),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    pub bytes: [SlotByte; 8],
    pub spill: Reg,
}

impl Slot {
    pub const EMPTY: Slot = Slot {
        bytes: [SlotByte::Invalid; 8],
        spill: Reg::NOT_INIT,
    };
    pub fn is_spill(&self) -> bool {
        self.bytes.iter().all(|b| *b == SlotByte::Spill)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    pub regs: [Reg; NREGS],
    /// Slot `i` covers bytes `[-8(i+1), -8i)` below the frame pointer. Only the slots up to
    /// the deepest one written are stored (a state is cloned at every branch and checkpoint,
    /// and programs touch a few slots of 64): read through [`Frame::slot`], write through
    /// [`Frame::slot_mut`], which keep the length at the highest bit of `written` plus one, so
    /// equal states have equal vectors.
    pub stack: Vec<Slot>,
    /// Where `exit` returns to (the instruction after the call); 0 for the main frame.
    pub ret_pc: usize,
    /// First instruction of the subprogram this frame runs.
    pub subprog: usize,
    /// Bit `i`: slot `i` was written on this path (a superset of the slots that are not
    /// [`Slot::EMPTY`]), so the soundness oracle visits only those. Not part of the state's
    /// meaning: pruning ([`states_equal`]) never reads it.
    pub written: u64,
}

impl Frame {
    pub fn new(depth: u8, ret_pc: usize, subprog: usize) -> Frame {
        let mut regs = [Reg::NOT_INIT; NREGS];
        regs[NREGS - 1] = Reg::stack(depth, 0);
        Frame {
            regs,
            stack: Vec::new(),
            ret_pc,
            subprog,
            written: 0,
        }
    }
    /// Slot `si` ([`Slot::EMPTY`] when never written).
    pub fn slot(&self, si: usize) -> &Slot {
        self.stack.get(si).unwrap_or(&Slot::EMPTY)
    }
    /// Slot `si` (below [`SLOTS`]) for writing: marks it written, storing it if it was not.
    pub fn slot_mut(&mut self, si: usize) -> &mut Slot {
        self.written |= 1 << si;
        if self.stack.len() <= si {
            self.stack.resize(si + 1, Slot::EMPTY);
        }
        &mut self.stack[si]
    }
}

/// The state on one path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VState {
    pub frames: Vec<Frame>,
}

impl VState {
    pub fn cur(&self) -> &Frame {
        &self.frames[self.frames.len() - 1]
    }
    pub fn cur_mut(&mut self) -> &mut Frame {
        let last = self.frames.len() - 1;
        &mut self.frames[last]
    }
    pub fn depth(&self) -> u8 {
        (self.frames.len() - 1) as u8
    }
    /// Every register and spilled register of every frame, mutably.
    pub fn for_each_reg(&mut self, mut f: impl FnMut(&mut Reg)) {
        for frame in &mut self.frames {
            frame.regs.iter_mut().for_each(&mut f);
            for slot in &mut frame.stack {
                if slot.is_spill() {
                    f(&mut slot.spill);
                }
            }
        }
    }
}

/// Maps ids of an old state to those of the current one consistently (`check_ids`).
#[derive(Default)]
pub struct IdMap(Vec<(u32, u32)>, u32);

impl IdMap {
    /// [`IdMap::check`] for scalars, where no id (unlinked) is an id of its own that nothing
    /// else may share (the kernel's `check_scalar_ids`): fresh ids from the top of the range.
    pub fn check_scalar(&mut self, old: u32, cur: u32) -> bool {
        let mut fresh = |id: u32| {
            if id != 0 {
                return id;
            }
            self.1 += 1;
            u32::MAX - self.1
        };
        let (old, cur) = (fresh(old), fresh(cur));
        self.check(old, cur)
    }
    pub fn check(&mut self, old: u32, cur: u32) -> bool {
        if old == 0 || cur == 0 {
            return old == cur;
        }
        for &(o, c) in &self.0 {
            if o == old {
                return c == cur;
            }
            if c == cur {
                return false;
            }
        }
        self.0.push((old, cur));
        true
    }
}

/// Is everything `cur` may hold also allowed by `old` (so `old`'s verified future covers it)?
///
/// With `imprecise` (the kernel's privileged mode), a scalar the checkpoint's explored future
/// never needed exactly (not `precise`) covers any scalar.
pub fn regsafe(old: &Reg, cur: &Reg, ids: &mut IdMap, imprecise: bool) -> bool {
    match old.ty {
        RegType::NotInit => true,
        _ if old.ty != cur.ty => false,
        // Exact scalars must also be linked alike: a branch on one refines its copies, and a
        // copy linked in `old` but not in `cur` would stay wider there.
        RegType::Scalar => {
            (imprecise && !old.precise)
                || (old.var.includes(&cur.var) && ids.check_scalar(old.id, cur.id))
        }
        _ => {
            old.map == cur.map
                && old.off == cur.off
                && old.frame == cur.frame
                && old.map_uid == cur.map_uid
                // Every access that was safe with the old range is safe with the new.
                && old.range <= cur.range
                && old.var.includes(&cur.var)
                && ids.check(old.id, cur.id)
        }
    }
}

fn stacksafe(old: &Frame, cur: &Frame, ids: &mut IdMap, live: u64, imprecise: bool) -> bool {
    // A slot `old` never wrote is all `Invalid`, which covers anything, and a dead one is never
    // read again: skip both.
    let mut written = old.written & live;
    while written != 0 {
        let si = written.trailing_zeros() as usize;
        written &= written - 1;
        let (o, c) = (old.slot(si), cur.slot(si));
        if o.is_spill() {
            if !c.is_spill() {
                // A spilled scalar in old covers plain initialised bytes only if it is unknown,
                // or (privileged) imprecise and the bytes are of no known value, as the kernel
                // compares a spill with a slot of STACK_MISC.
                let scalar = o.spill.ty == RegType::Scalar;
                let unknown = scalar && o.spill.var == Scalar::UNKNOWN;
                let loose = scalar && imprecise && !o.spill.precise;
                let covered = (unknown && c.bytes.iter().all(|b| *b != SlotByte::Invalid))
                    || (loose
                        && c.bytes
                            .iter()
                            .all(|b| matches!(b, SlotByte::Misc | SlotByte::Const(_))));
                if !covered {
                    return false;
                }
                continue;
            }
            if !regsafe(&o.spill, &c.spill, ids, imprecise) {
                return false;
            }
            continue;
        }
        for (i, (ob, cb)) in o.bytes.iter().zip(&c.bytes).enumerate() {
            let ok = match ob {
                SlotByte::Const(x) => cb.known(&c.spill, i) == Some(*x),
                SlotByte::Invalid => true,
                SlotByte::Misc => match cb {
                    SlotByte::Invalid => false,
                    SlotByte::Spill => c.spill.ty == RegType::Scalar,
                    _ => true,
                },
                SlotByte::Zero => {
                    *cb == SlotByte::Zero
                        || (*cb == SlotByte::Spill && c.spill.const_scalar() == Some(0))
                }
                SlotByte::Spill => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

/// Caller frames: r0-r5 are overwritten when the callee returns, never read again as they are.
const CALLER_LIVE: u16 = !0b11_1111;

/// The kernel's `states_equal`: same call chain, and every live register and every slot of
/// `cur` covered by `old`. `live` and `live_slots` are the current frame's live registers and
/// stack slots (`live_slots` only applies with `imprecise`, which says the comparison may be
/// as loose as a privileged kernel's; see [`regsafe`]).
pub fn states_equal(
    old: &VState,
    cur: &VState,
    live: u16,
    live_slots: u64,
    imprecise: bool,
) -> bool {
    if old.frames.len() != cur.frames.len() {
        return false;
    }
    let last = old.frames.len() - 1;
    let mut ids = IdMap::default();
    old.frames
        .iter()
        .zip(&cur.frames)
        .enumerate()
        .all(|(depth, (o, c))| {
            let mask = if depth == last { live } else { CALLER_LIVE };
            let slots = if depth == last && imprecise {
                live_slots
            } else {
                u64::MAX
            };
            o.ret_pc == c.ret_pc
                && o.regs.iter().zip(&c.regs).enumerate().all(|(i, (or, cr))| {
                    mask & (1 << i) == 0 || regsafe(or, cr, &mut ids, imprecise)
                })
                && stacksafe(o, c, &mut ids, slots, imprecise)
        })
}
