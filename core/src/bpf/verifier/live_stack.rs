//! Stack liveness: which 8-byte slots of the running frame a later instruction may still read,
//! before each instruction. Pruning compares only those (the kernel's stack liveness since
//! 6.18, `bpf_stack_slot_alive`), so a slot no path reads again cannot keep two states apart,
//! as a dead register cannot.
//!
//! The kernel records the slots each instruction accessed while it verifies, then propagates
//! them backwards over the control-flow graph. mimic computes a static over-approximation
//! before verifying, which needs no bookkeeping in the walk and can only keep more slots:
//! - a load or atomic through `r10` at a fixed offset reads the slots it covers; an aligned
//!   8-byte store through `r10` writes (kills) its slot, a narrower one keeps the rest of it;
//! - any other register that may hold a stack pointer (a forward pass: copies and arithmetic of
//!   `r10`, and loads once a stack pointer was ever stored) makes a load, an atomic or a helper
//!   call taking it read every slot;
//! - a program with bpf-to-bpf calls gets every slot live everywhere (a callee reads its
//!   caller's frame through pointers this pass does not follow across frames).
//!
//! Invariant: a slot an instruction on some path from `pc` may read before a store through
//! `r10` overwrites it whole is live at `pc`.

use super::flow::{successors, Succ};
use crate::bpf::helpers::Callee;
use crate::isa::{AluOp, CallTarget, Op, Operand, FP};

/// Every slot of a frame.
pub const ALL: u64 = u64::MAX;

/// The slots live before each instruction of `ops` (bit `i`: the slot `[-8(i+1), -8i)`).
pub fn live_stack_slots(ops: &[Option<Op>]) -> Vec<u64> {
    let n = ops.len();
    if ops
        .iter()
        .flatten()
        .any(|op| matches!(op, Op::Call(CallTarget::Local(_)) | Op::Callx { .. }))
    {
        return vec![ALL; n];
    }
    let stacky = stack_pointers(ops);
    let facts: Vec<Option<(Succ, u64, u64)>> = ops
        .iter()
        .enumerate()
        .map(|(pc, op)| {
            op.map(|op| {
                let (uses, defs) = slot_uses_defs(&op, stacky[pc]);
                (successors(pc, &op), uses, defs)
            })
        })
        .collect();
    let mut live = vec![0u64; n];
    let mut changed = true;
    while changed {
        changed = false;
        for pc in (0..n).rev() {
            let Some((succs, uses, defs)) = &facts[pc] else {
                continue;
            };
            let mut after = 0u64;
            for &t in succs.as_slice() {
                if let Some(l) = usize::try_from(t).ok().and_then(|t| live.get(t)) {
                    after |= l;
                }
            }
            let before = uses | (after & !defs);
            if before != live[pc] {
                live[pc] = before;
                changed = true;
            }
        }
    }
    live
}

/// The slots covered by `size` bytes at `r10 + off` (none if outside the frame: the verifier
/// refuses that access).
fn slots(off: i16, size: u8) -> u64 {
    let (lo, hi) = (i32::from(off), i32::from(off) + i32::from(size));
    if lo < -512 || hi > 0 || size == 0 {
        return 0;
    }
    let first = (-lo - 1) / 8;
    let last = (-(hi - 1) - 1) / 8;
    (last..=first).fold(0, |m, s| m | 1 << s)
}

/// The slots `op` may read and the slots it surely overwrites whole; `stacky` is the set of
/// registers that may hold a stack pointer before it.
fn slot_uses_defs(op: &Op, stacky: u16) -> (u64, u64) {
    let may_point = |r: u8| stacky & (1 << r) != 0;
    match *op {
        Op::Load { src, off, size, .. } if src == FP => (slots(off, size.bytes()), 0),
        Op::Load { src, .. } if may_point(src) => (ALL, 0),
        Op::Store { dst, off, size, .. } if dst == FP => {
            let whole = size.bytes() == 8 && off % 8 == 0;
            (0, if whole { slots(off, 8) } else { 0 })
        }
        Op::Atomic { dst, off, size, .. } if dst == FP => (slots(off, size.bytes()), 0),
        Op::Atomic { dst, .. } if may_point(dst) => (ALL, 0),
        Op::Call(CallTarget::Helper(imm)) => {
            let args = Callee::from_imm(imm).map_or(5, |c| c.proto().args.len());
            let passed = (1..=args as u8).any(may_point);
            (if passed { ALL } else { 0 }, 0)
        }
        _ => (0, 0),
    }
}

/// Registers that may hold a stack pointer before each instruction (a forward pass; the
/// join is the union).
fn stack_pointers(ops: &[Option<Op>]) -> Vec<u16> {
    const FP_BIT: u16 = 1 << FP;
    let n = ops.len();
    // A stack pointer stored anywhere may come back from any load.
    let spills_pointers = |stacky: &[u16]| {
        ops.iter().enumerate().any(|(pc, op)| match op {
            Some(Op::Store {
                src: Operand::Reg(s),
                ..
            })
            | Some(Op::Atomic { src: s, .. }) => stacky[pc] & (1 << s) != 0,
            _ => false,
        })
    };
    let mut stacky = vec![0u16; n];
    if let Some(first) = stacky.first_mut() {
        *first = FP_BIT;
    }
    let mut loads_point = false;
    loop {
        let mut changed = false;
        for pc in 0..n {
            let Some(op) = ops[pc] else { continue };
            let before = stacky[pc] | FP_BIT;
            let bit = |r: u8| 1u16 << r;
            let after = match op {
                Op::Alu {
                    op: AluOp::Mov,
                    dst,
                    src: Operand::Reg(s),
                    ..
                } => (before & !bit(dst)) | if before & bit(s) != 0 { bit(dst) } else { 0 },
                Op::Alu {
                    dst,
                    src: Operand::Reg(s),
                    ..
                } if before & bit(s) != 0 => before | bit(dst),
                Op::Alu { .. } | Op::Neg { .. } | Op::End { .. } => before,
                Op::Ld64 { dst, .. } => before & !bit(dst),
                Op::Load { dst, .. } if loads_point => before | bit(dst),
                Op::Load { dst, .. } => before & !bit(dst),
                Op::Atomic { .. } if loads_point => before | 0b111_1111_1111,
                Op::Call(_) | Op::LdAbs { .. } | Op::LdInd { .. } => before & !0b11_1111,
                _ => before,
            };
            for t in successors(pc, &op).as_slice() {
                if let Some(s) = usize::try_from(*t).ok().and_then(|t| stacky.get_mut(t)) {
                    if *s | after != *s {
                        *s |= after;
                        changed = true;
                    }
                }
            }
        }
        if !loads_point && spills_pointers(&stacky) {
            loads_point = true;
            changed = true;
        }
        if !changed {
            return stacky;
        }
    }
}
