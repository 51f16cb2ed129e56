//! The soundness oracle (state embedding): for each instruction, the join of every state the
//! verifier accepted there. An executor in check mode reports each concrete register and stack
//! byte before it runs an instruction; a value outside the joined state is a verifier
//! unsoundness (the verifier claimed something the run contradicts).
//!
//! The join is per call depth of the innermost frame (the executor knows its own depth). A
//! register whose type differs between paths joins to "not initialised", which asserts nothing:
//! the verifier checked each use on each path separately.

use super::bounds::Scalar;
use super::state::{Reg, RegType, SlotByte, VState, NREGS, SLOTS};
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
    fn from(reg: &Reg) -> JoinedReg {
        let var = if reg.ty.is_pointer() {
            // Fold the fixed offset into the range.
            super::bounds::alu(
                crate::isa::Width::W64,
                crate::isa::AluOp::Add,
                &reg.var,
                &Scalar::konst(reg.off as i64 as u64),
            )
            .unwrap_or(Scalar::UNKNOWN)
        } else {
            reg.var
        };
        JoinedReg {
            ty: reg.ty,
            map: reg.map,
            frame: reg.frame,
            var,
        }
    }
    fn join(&self, other: &JoinedReg) -> JoinedReg {
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

#[derive(Debug, Clone, PartialEq)]
pub struct JoinedFrame {
    pub depth: usize,
    pub regs: [JoinedReg; NREGS],
    /// Per stack byte (index 0 = fp-512): `None` uninitialised on some path; `Some(None)`
    /// initialised, any value; `Some(Some(v))` known byte value on every path.
    pub stack: Vec<Option<Option<u8>>>,
    /// Spilled scalars per slot (slot 0 = fp-8), joined; `None` if not a spill on every path.
    pub spills: Vec<Option<JoinedReg>>,
}

/// The per-instruction joins.
#[derive(Debug, Clone, Default)]
pub struct StateOracle {
    pub at: Vec<Vec<JoinedFrame>>,
}

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
    /// A pointer into a map's value, at `off` within the value when known.
    MapValue {
        off: Option<i64>,
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
            at: vec![Vec::new(); len],
        }
    }

    /// Joins the state accepted at `pc` into the record. `live` is the mask of registers live
    /// at `pc`: pruning ignores dead registers, so a pruned path may hold anything in them and
    /// the record must not claim otherwise.
    pub fn accept(&mut self, pc: usize, st: &VState, live: u16) {
        let frame = st.cur();
        let depth = st.frames.len() - 1;
        let regs = std::array::from_fn(|i| {
            if live & (1 << i) == 0 {
                JoinedReg::from(&Reg::NOT_INIT)
            } else {
                JoinedReg::from(&frame.regs[i])
            }
        });
        let mut stack = vec![None; SLOTS * 8];
        let mut spills = vec![None; SLOTS];
        for (si, slot) in frame.stack.iter().enumerate() {
            for (bi, b) in slot.bytes.iter().enumerate() {
                // Byte fp-8(si+1)+bi sits at index 512-8(si+1)+bi.
                let idx = SLOTS * 8 - 8 * (si + 1) + bi;
                stack[idx] = match b {
                    SlotByte::Invalid => None,
                    SlotByte::Zero => Some(Some(0)),
                    SlotByte::Misc => Some(None),
                    SlotByte::Spill | SlotByte::Const(_) => Some(b.known(&slot.spill, bi)),
                };
            }
            if slot.is_spill() {
                spills[si] = Some(JoinedReg::from(&slot.spill));
            }
        }
        let new = JoinedFrame {
            depth,
            regs,
            stack,
            spills,
        };
        let list = &mut self.at[pc];
        match list.iter_mut().find(|f| f.depth == depth) {
            None => list.push(new),
            Some(old) => {
                for (o, n) in old.regs.iter_mut().zip(&new.regs) {
                    *o = o.join(n);
                }
                for (o, n) in old.stack.iter_mut().zip(&new.stack) {
                    *o = match (*o, *n) {
                        (Some(a), Some(b)) if a == b => Some(a),
                        (Some(_), Some(_)) => Some(None),
                        _ => None,
                    };
                }
                for (o, n) in old.spills.iter_mut().zip(&new.spills) {
                    *o = match (*o, *n) {
                        (Some(a), Some(b)) => Some(a.join(&b)),
                        _ => None,
                    };
                }
            }
        }
    }

    pub fn frame(&self, pc: usize, depth: usize) -> Option<&JoinedFrame> {
        self.at.get(pc)?.iter().find(|f| f.depth == depth)
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
        let Some(j) = frame.regs.get(reg as usize) else {
            return Ok(());
        };
        let ok = match (j.ty, value) {
            (RegType::NotInit, _) => true,
            (RegType::Scalar, Concrete::Scalar(v)) => j.var.contains(v),
            (RegType::Scalar, Concrete::Null) => j.var.contains(0),
            (RegType::Ctx, Concrete::Ctx { off }) => j.var.contains(off as u64),
            (RegType::Stack, Concrete::Stack { off, frame }) => {
                frame == usize::from(j.frame) && j.var.contains(off as u64)
            }
            (RegType::MapValueOrNull, Concrete::Null | Concrete::Scalar(0)) => true,
            (RegType::MapValueOrNull | RegType::MapValue, Concrete::MapValue { off }) => off
                .is_none_or(|off| {
                    j.var.contains(off as u64)
                        && maps
                            .get(j.map as usize)
                            .is_none_or(|m| off >= 0 && off < i64::from(m.value_size))
                }),
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
            _ => false,
        };
        if ok {
            return Ok(());
        }
        Err(Unsoundness {
            pc,
            location: format!("R{reg}"),
            expected: describe(j),
            got: format!("{value:?}"),
        })
    }

    /// Checks the stack of the frame at `depth`: `bytes[i]` is the byte at fp-512+i.
    pub fn check_stack(&self, pc: usize, depth: usize, bytes: &[u8]) -> Result<(), Unsoundness> {
        self.reached(pc, depth)?;
        let Some(frame) = self.frame(pc, depth) else {
            return Ok(());
        };
        for (i, (j, b)) in frame.stack.iter().zip(bytes).enumerate() {
            if let Some(Some(v)) = j {
                if v != b {
                    return Err(Unsoundness {
                        pc,
                        location: format!("fp{}", i as i64 - (SLOTS * 8) as i64),
                        expected: format!("byte {v:#x}"),
                        got: format!("byte {b:#x}"),
                    });
                }
            }
        }
        for (si, spill) in frame.spills.iter().enumerate() {
            let Some(j) = spill else { continue };
            if j.ty != RegType::Scalar {
                continue;
            }
            let start = SLOTS * 8 - 8 * (si + 1);
            let Some(raw) = bytes.get(start..start + 8) else {
                continue;
            };
            let mut word = [0u8; 8];
            word.copy_from_slice(raw);
            let v = u64::from_le_bytes(word);
            if !j.var.contains(v) {
                return Err(Unsoundness {
                    pc,
                    location: format!("fp-{}", 8 * (si + 1)),
                    expected: describe(j),
                    got: format!("{v:#x}"),
                });
            }
        }
        Ok(())
    }
}

fn same_shape(map: Option<&MapDesc>, shape: Option<(u32, u32, u32)>) -> bool {
    match (map, shape) {
        (Some(m), Some((t, k, v))) => m.map_type == t && m.key_size == k && m.value_size == v,
        _ => true,
    }
}

/// The executor's value of a register as the oracle compares it. Map-region pointers are
/// classified by `classify_map` when the caller can (the world knows shapes and value
/// offsets); otherwise offset 0 is a map pointer and any other offset a value pointer.
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
            RegionKind::Map => classify_map(p).unwrap_or(if p.offset == 0 {
                Concrete::MapPtr { shape: None }
            } else {
                Concrete::MapValue { off: None }
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
    fn before(&mut self, step: &StepView<'_>) {
        let pc = match &self.pc_map {
            None => Some(step.pc),
            Some(map) => map.get(step.pc).copied().flatten(),
        };
        let Some(pc) = pc else { return };
        for (r, &v) in step.regs.iter().enumerate().take(NREGS) {
            let frame = self.oracle.frame(pc, step.depth);
            // Scalars are compared as raw values (a constant may look like a pointer); context
            // and stack pointers as distances from their region's base, which stays right even
            // when an offset the encoding cannot hold (below the base) wrapped the value.
            let c = match frame.map(|f| f.regs[r]) {
                Some(j) if j.ty == RegType::Scalar => Concrete::Scalar(v),
                Some(j) if j.ty == RegType::Ctx => Concrete::Ctx {
                    off: v.wrapping_sub(Ptr::ctx(0).encode()) as i64,
                },
                Some(j) if j.ty == RegType::Stack => Concrete::Stack {
                    frame: usize::from(j.frame),
                    off: v.wrapping_sub(Ptr::stack(u32::from(j.frame), STACK_SIZE as u32).encode())
                        as i64,
                },
                _ => concrete_of(v, self.classify_map),
            };
            if let Err(e) = self.oracle.check_reg(pc, step.depth, r as u8, c, self.maps) {
                self.escapes.push(e);
                return;
            }
        }
        if let Some(bytes) = step.frame(step.depth) {
            if let Err(e) = self.oracle.check_stack(pc, step.depth, bytes) {
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
