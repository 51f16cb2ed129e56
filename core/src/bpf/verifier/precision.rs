//! Precision tracking (the kernel's `mark_chain_precise`, `backtrack_insn` and
//! `propagate_precision`): which scalars of a checkpoint its verified future relied on exactly.
//!
//! A privileged verifier lets an old state cover a new one whatever their scalars hold, except
//! the scalars marked `precise` ([`super::state::regsafe`]). A scalar becomes precise when a
//! check depended on its value: a branch decided by it, the offset added to a pointer, a size
//! passed to a helper, a constant map key or tail-call index. The request names registers (or
//! stack slots) as they are before the current instruction; the walk goes backwards through the
//! instructions of the path ([`Hist`]), turning each need into the needs of the instruction's
//! inputs (`r1 = r2` hands it to `r2`, `r1 += r2` adds `r2`, a constant or a load from memory
//! ends it, a fill hands it to the stack slot, a spill back to the register), and marks what is
//! still needed in every checkpoint it reaches on the way up. A pruned path hands the old
//! state's precise scalars to its own chain in the same way, since the old state's future is
//! now its future too.
//!
//! The alternative, comparing every scalar exactly, is what an unprivileged verifier does and
//! what mimic does when the soundness oracle records states (the oracle's join must hold every
//! value a run can take, so no path may be cut by a state that only differs in a scalar).
//!
//! Where the walk cannot follow (a bpf-to-bpf call or return, a legacy packet load), every
//! scalar of every checkpoint of the chain becomes precise, as the kernel's
//! `mark_all_scalars_precise`: never less precise than needed.

use super::pruning::Pruning;
pub use super::pruning::NO_HIST;
use super::state::{RegType, VState, MAX_FRAMES};
use crate::isa::{AluOp, CallTarget, Op, Operand, FP};

/// One processed instruction of a path: its slot, the call depth it ran at, and the stack slot
/// (frame, slot) through which it spilled or filled a register (the kernel's instruction
/// history with `INSN_F_STACK_ACCESS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hist {
    pub pc: u32,
    pub frame: u8,
    pub stack: Option<(u8, u8)>,
    /// The scalars a branch refined together through a shared id, in [`HistArena`]'s side
    /// table ([`NO_HIST`]: none).
    pub linked: u32,
}

/// The instructions of every path walked, as linked entries: a segment is the chain from a
/// path's newest entry back to the first one after its checkpoint, so a branch shares its
/// prefix by keeping one index (the kernel copies a history into each state it pushes).
#[derive(Debug, Default)]
pub struct HistArena {
    entries: Vec<(Hist, u32)>,
    linked: Vec<Bt>,
}

impl HistArena {
    pub fn with_capacity(n: usize) -> HistArena {
        HistArena {
            entries: Vec::with_capacity(n),
            linked: Vec::new(),
        }
    }
    /// Appends `h` after `head` (or starts a segment with [`NO_HIST`]); returns the new head.
    pub fn push(&mut self, head: u32, h: Hist) -> u32 {
        self.entries.push((h, head));
        (self.entries.len() - 1) as u32
    }
    /// Records the slot the entry's instruction spilled to or filled from.
    pub fn set_stack(&mut self, at: u32, stack: Option<(u8, u8)>) {
        if let Some((h, _)) = self.entries.get_mut(at as usize) {
            h.stack = stack;
        }
    }
    /// Records the scalars the entry's branch refined together.
    pub fn set_linked(&mut self, at: u32, linked: Bt) {
        if let Some((h, _)) = self.entries.get_mut(at as usize) {
            self.linked.push(linked);
            h.linked = (self.linked.len() - 1) as u32;
        }
    }
    /// The entry before `at` in its segment.
    pub fn prev(&self, at: u32) -> u32 {
        self.entries
            .get(at as usize)
            .map_or(NO_HIST, |(_, prev)| *prev)
    }
    /// The segment ending at `head`, newest first.
    fn back(&self, head: u32) -> impl Iterator<Item = &Hist> + '_ {
        let mut at = head;
        std::iter::from_fn(move || {
            let (h, prev) = self.entries.get(at as usize)?;
            at = *prev;
            Some(h)
        })
    }
}

/// What still needs precision: registers and stack slots per frame (the kernel's
/// `backtrack_state`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bt {
    regs: [u16; MAX_FRAMES],
    slots: [u64; MAX_FRAMES],
}

impl Bt {
    pub fn reg(&mut self, frame: u8, r: u8) {
        if let Some(m) = self.regs.get_mut(usize::from(frame)) {
            *m |= 1 << r;
        }
    }
    pub fn slot(&mut self, frame: u8, slot: u8) {
        if let Some(m) = self.slots.get_mut(usize::from(frame)) {
            *m |= 1 << slot;
        }
    }
    fn intersects(&self, other: &Bt) -> bool {
        self.regs.iter().zip(&other.regs).any(|(a, b)| a & b != 0)
            || self.slots.iter().zip(&other.slots).any(|(a, b)| a & b != 0)
    }
    fn add(&mut self, other: &Bt) {
        for (a, b) in self.regs.iter_mut().zip(&other.regs) {
            *a |= b;
        }
        for (a, b) in self.slots.iter_mut().zip(&other.slots) {
            *a |= b;
        }
    }
    /// If any of a linked set needs precision, all of it does (the kernel's
    /// `bt_sync_linked_regs`).
    fn sync_linked(&mut self, linked: Option<&Bt>) {
        if let Some(l) = linked {
            if self.intersects(l) {
                self.add(l);
            }
        }
    }
    pub fn is_empty(&self) -> bool {
        self.regs.iter().all(|m| *m == 0) && self.slots.iter().all(|m| *m == 0)
    }
    fn has_reg(&self, frame: usize, r: u8) -> bool {
        self.regs[frame] & (1 << r) != 0
    }
    fn clear_reg(&mut self, frame: usize, r: u8) {
        self.regs[frame] &= !(1 << r);
    }
    fn set_reg(&mut self, frame: usize, r: u8) {
        if r != FP {
            self.regs[frame] |= 1 << r;
        }
    }

    /// The scalars `state` has marked precise: the needs a path pruned by it takes over.
    /// Registers of the innermost frame that are dead (`live`) were not compared and are left.
    pub fn precise_in(state: &VState, live: u16) -> Bt {
        let mut bt = Bt::default();
        let last = state.frames.len().saturating_sub(1);
        for (fr, frame) in state.frames.iter().enumerate().take(MAX_FRAMES) {
            for (r, reg) in frame.regs.iter().enumerate() {
                let compared = fr != last || live & (1 << r) != 0;
                if reg.ty == RegType::Scalar && reg.precise && compared {
                    bt.regs[fr] |= 1 << r;
                }
            }
            for (s, slot) in frame.stack.iter().enumerate() {
                if slot.is_spill() && slot.spill.ty == RegType::Scalar && slot.spill.precise {
                    bt.slots[fr] |= 1 << s;
                }
            }
        }
        bt
    }

    /// Marks what is needed in a checkpoint's `state` and keeps needing only what was not
    /// already precise there (an already precise scalar had its own chain marked when it
    /// became so). What is not a scalar there needs nothing.
    fn mark_in(&mut self, state: &mut VState) {
        for fr in 0..MAX_FRAMES {
            let Some(frame) = state.frames.get_mut(fr) else {
                self.regs[fr] = 0;
                self.slots[fr] = 0;
                continue;
            };
            let mut regs = self.regs[fr];
            while regs != 0 {
                let r = regs.trailing_zeros() as usize;
                regs &= regs - 1;
                let reg = &mut frame.regs[r];
                if reg.ty != RegType::Scalar || reg.precise {
                    self.regs[fr] &= !(1 << r);
                } else {
                    reg.precise = true;
                }
            }
            let mut slots = self.slots[fr];
            while slots != 0 {
                let s = slots.trailing_zeros() as usize;
                slots &= slots - 1;
                match frame.stack.get_mut(s) {
                    Some(slot)
                        if slot.is_spill()
                            && slot.spill.ty == RegType::Scalar
                            && !slot.spill.precise =>
                    {
                        slot.spill.precise = true;
                    }
                    _ => self.slots[fr] &= !(1 << s),
                }
            }
        }
    }
}

/// The walk met an instruction it cannot see through.
struct Fallback;

/// One step backwards over `op` (the kernel's `backtrack_insn`): the needs after it become the
/// needs before it.
fn backtrack(op: &Op, h: &Hist, bt: &mut Bt) -> Result<(), Fallback> {
    let f = usize::from(h.frame);
    if f >= MAX_FRAMES {
        return Err(Fallback);
    }
    match *op {
        Op::Alu { op, dst, src, .. } => {
            if !bt.has_reg(f, dst) {
                return Ok(());
            }
            match (op, src) {
                (AluOp::Mov | AluOp::MovSx(_), Operand::Reg(s)) => {
                    bt.clear_reg(f, dst);
                    bt.set_reg(f, s);
                }
                (AluOp::Mov | AluOp::MovSx(_), Operand::Imm(_)) => bt.clear_reg(f, dst),
                (_, Operand::Reg(s)) => bt.set_reg(f, s),
                (_, Operand::Imm(_)) => {}
            }
        }
        Op::Neg { .. } | Op::End { .. } | Op::Ja { .. } => {}
        Op::Ld64 { dst, .. } => bt.clear_reg(f, dst),
        Op::LdAbs { .. } | Op::LdInd { .. } => {
            if bt.has_reg(f, 0) {
                return Err(Fallback);
            }
        }
        Op::Load { dst, .. } => {
            if bt.has_reg(f, dst) {
                bt.clear_reg(f, dst);
                // A fill hands the need to the slot; any other load's value came from memory.
                if let Some((fr, slot)) = h.stack {
                    bt.slot(fr, slot);
                }
            }
        }
        Op::Store { dst, src, .. } => {
            if bt.has_reg(f, dst) {
                // A scalar used as an address: pointer subtraction the walk does not follow.
                return Err(Fallback);
            }
            if let Some((fr, slot)) = h.stack {
                let m = &mut bt.slots[usize::from(fr).min(MAX_FRAMES - 1)];
                if *m & (1 << slot) != 0 {
                    *m &= !(1 << slot);
                    if let Operand::Reg(s) = src {
                        bt.set_reg(f, s);
                    }
                }
            }
        }
        Op::Atomic { op, src, .. } => {
            // A fetched value comes from memory.
            let fetched = if op == crate::isa::AtomicOp::Cmpxchg {
                0
            } else {
                src
            };
            if op.fetches() {
                bt.clear_reg(f, fetched);
            }
        }
        Op::Jmp { dst, src, .. } => {
            // `dst <op> src`: if either needs precision, both did (the branch compared them).
            if let Operand::Reg(s) = src {
                if bt.has_reg(f, dst) || bt.has_reg(f, s) {
                    bt.set_reg(f, dst);
                    bt.set_reg(f, s);
                }
            }
        }
        Op::Call(CallTarget::Helper(_) | CallTarget::Kfunc(_)) => {
            bt.clear_reg(f, 0);
            // r1-r5 are clobbered by the call: nothing read after it can need them as they were.
            if bt.regs[f] & 0b11_1110 != 0 {
                return Err(Fallback);
            }
        }
        Op::Call(CallTarget::Local(_)) | Op::Callx { .. } | Op::Exit => return Err(Fallback),
    }
    Ok(())
}

fn walk(ops: &[Option<Op>], arena: &HistArena, head: u32, bt: &mut Bt) -> Result<(), Fallback> {
    for h in arena.back(head) {
        if bt.is_empty() {
            return Ok(());
        }
        let op = ops.get(h.pc as usize).copied().flatten().ok_or(Fallback)?;
        let linked = arena.linked.get(h.linked as usize);
        bt.sync_linked(linked);
        backtrack(&op, h, bt)?;
        bt.sync_linked(linked);
    }
    Ok(())
}

/// Marks `bt` (needs before the instruction after the entry `head`) precise along the chain:
/// back through the current segment, into the checkpoint `parent`, back through the segment
/// that reached it, and so on up until nothing is needed.
pub fn mark_chain_precise(
    prune: &mut Pruning,
    ops: &[Option<Op>],
    arena: &HistArena,
    head: u32,
    parent: Option<usize>,
    mut bt: Bt,
) {
    if walk(ops, arena, head, &mut bt).is_err() {
        prune.mark_all_precise(parent);
        return;
    }
    let mut at = parent;
    loop {
        if bt.is_empty() {
            return;
        }
        let Some(i) = at else {
            // Needs left at the program's entry: the walk lost track (the kernel then makes
            // every scalar of the chain precise).
            prune.mark_all_precise(parent);
            return;
        };
        bt.mark_in(prune.state_mut(i));
        if bt.is_empty() {
            return;
        }
        let (segment, up) = prune.segment(i);
        if walk(ops, arena, segment, &mut bt).is_err() {
            prune.mark_all_precise(up);
            return;
        }
        at = up;
    }
}

#[cfg(test)]
mod tests {
    use crate::bpf::asm::assemble;
    use crate::bpf::verifier::{verify, MapTable, VerifyOpts};

    fn verdict(source: &str) -> Result<u64, String> {
        let insns = assemble(source).expect("test program assembles");
        verify(&insns, &MapTable(vec![]), VerifyOpts::default())
            .map(|v| v.stats.processed)
            .map_err(|r| r.message)
    }

    /// `if r6 != 5` proves r6 is 5 on the fall-through; r7, a copy of r6, is 5 there too, so
    /// `if r7 == 5` is decided and the bad load after it is dead (the kernel accepts this).
    #[test]
    fn a_copy_learns_what_a_branch_proves_of_its_original() {
        let source = "ldxdw %r6, [%r1+0]\nmov %r7, %r6\njne %r6, 5, out\njeq %r7, 5, ok\n\
                      ldxdw %r0, [%r10+8]\nok:\nmov %r0, 0\nexit\nout:\nmov %r0, 0\nexit";
        verdict(source).expect("the copy is 5 where the original is");
        // Without the copy, the second branch is on an unrelated unknown: the bad load is live.
        let unlinked = source.replace("mov %r7, %r6", "ldxdw %r7, [%r1+8]");
        let refused = verdict(&unlinked).expect_err("r7 may be anything");
        assert!(refused.contains("invalid read from stack"), "{refused}");
    }

    /// The same through the stack: a spilled copy, filled after the branch, is 5 too.
    #[test]
    fn a_spilled_copy_learns_what_a_branch_proves_of_its_original() {
        let source = "ldxdw %r6, [%r1+0]\nstxdw [%r10-8], %r6\njne %r6, 5, out\n\
                      ldxdw %r8, [%r10-8]\njeq %r8, 5, ok\nldxdw %r0, [%r10+8]\nok:\nmov %r0, 0\n\
                      exit\nout:\nmov %r0, 0\nexit";
        verdict(source).expect("the filled copy is 5 where the original is");
    }

    /// The walk back follows links: a branch decided on the copy needs the original exact too,
    /// and their link. The second path reaches the join with an r7 in range but not a copy of
    /// r6; had the checkpoint marked r7 alone, it would cut that path (r6 compared as anything,
    /// r7's range covered) and accept a program whose bad load that path reaches.
    #[test]
    fn precision_follows_a_link_to_the_original() {
        let source = "ldxdw %r6, [%r1+0]
jgt %r6, 10, out
ldxdw %r8, [%r1+8]
jgt %r8, 7, b
                      mov %r7, %r6
ja join
b:
ldxb %r7, [%r1+16]
and %r7, 7
join:
                      jne %r6, 5, out
jeq %r7, 5, ok
ldxdw %r0, [%r10+8]
ok:
mov %r0, 0
                      exit
out:
mov %r0, 0
exit";
        let insns = assemble(source).expect("assembles");
        let opts = VerifyOpts {
            test_state_freq: true,
            ..VerifyOpts::default()
        };
        let refused = verify(&insns, &MapTable(vec![]), opts)
            .map(|v| v.stats.processed)
            .expect_err("on the second path r7 may be 3 where r6 is 5");
        assert!(
            refused.message.contains("invalid read from stack"),
            "{refused:?}"
        );
    }

    /// A write to the copy ends the link: the second branch is then on a value the first proved
    /// nothing of.
    #[test]
    fn a_link_ends_when_the_copy_is_written() {
        let source = "ldxdw %r6, [%r1+0]\nmov %r7, %r6\nlsh %r7, 0\njne %r6, 5, out\n\
                      jeq %r7, 5, ok\nldxdw %r0, [%r10+8]\nok:\nmov %r0, 0\nexit\nout:\nmov %r0, 0\n\
                      exit";
        let refused = verdict(source).expect_err("the shift wrote r7: no longer a copy");
        assert!(refused.contains("invalid read from stack"), "{refused}");
    }
}
