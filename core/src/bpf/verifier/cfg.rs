//! Control-flow checks before any state is tracked (the kernel's `check_subprogs` and
//! `check_cfg`): every instruction decodes, jumps land on instruction starts inside their own
//! subprogram, no subprogram falls off its end, every instruction is reachable, and back-edges
//! (loops) only for privileged programs. Also marks the prune points.

use super::flow::{successors, Succ};
use super::{decode_all, Env, Refuse, EINVAL};
use crate::isa::{CallTarget, Op};

fn invalid<T>(pc: usize, message: String) -> Result<T, (usize, Refuse)> {
    Err((
        pc,
        Refuse {
            message,
            errno: EINVAL,
        },
    ))
}

pub(crate) fn check_cfg(env: &mut Env<'_>) -> Result<(), (usize, Refuse)> {
    let n = env.insns.len();
    if n == 0 {
        return invalid(0, "empty program".into());
    }
    env.ops = decode_all(env.insns)?;
    // Subprogram starts: 0 and every bpf-to-bpf call target.
    let mut starts = vec![0usize];
    for (pc, op) in env.ops.iter().enumerate() {
        if let Some(Op::Call(CallTarget::Local(imm))) = op {
            let target = pc as i64 + 1 + i64::from(*imm);
            if target < 0 || target >= n as i64 {
                return invalid(pc, format!("function call to invalid insn {target}"));
            }
            if !env.opts.privileged {
                return invalid(
                    pc,
                    "function calls to other bpf functions are allowed for CAP_BPF only".into(),
                );
            }
            starts.push(target as usize);
        }
    }
    starts.sort_unstable();
    starts.dedup();
    let subprog_of = |pc: usize| match starts.binary_search(&pc) {
        Ok(i) => i,
        Err(i) => i - 1,
    };
    let end_of = |pc: usize| starts.get(subprog_of(pc) + 1).copied().unwrap_or(n);
    // The kernel's check_subprogs, slot by slot: every jump stays inside its subprogram, and
    // each subprogram's last slot ends it (exit or an unconditional jump). All of this comes
    // before any edge is followed, so an out-of-range jump late in the program is reported
    // before a jump into the middle of an `lddw` earlier.
    for pc in 0..n {
        if let Some(op @ (Op::Ja { .. } | Op::Jmp { .. })) = env.ops[pc] {
            let t = successors(pc, &op).as_slice().last().copied().unwrap_or(-1);
            if t < 0 || t >= n as i64 || subprog_of(t as usize) != subprog_of(pc) {
                return invalid(pc, format!("jump out of range from insn {pc} to {t}"));
            }
        }
        if pc + 1 == end_of(pc) && !matches!(env.ops[pc], Some(Op::Exit | Op::Ja { .. })) {
            return invalid(pc, "last insn is not an exit or jmp".into());
        }
    }
    // `check_abnormal_return`: a program without BTF (all of mimic's) may not tail-call from a
    // subprogram, where the call would return to the caller's frame with a program of its own.
    for pc in 0..n {
        let tail_call = Op::Call(CallTarget::Helper(crate::uapi::BPF_FUNC_TAIL_CALL as i32));
        if subprog_of(pc) > 0 && env.ops[pc] == Some(tail_call) {
            return invalid(
                pc,
                "tail_call is not allowed in subprogs without BTF".into(),
            );
        }
    }
    for &start in &starts {
        env.prune.mark(start);
    }
    for pc in 0..n {
        let Some(op) = env.ops[pc] else { continue };
        match op {
            Op::Ja { off, .. } => env.prune.mark((pc as i64 + 1 + i64::from(off)) as usize),
            Op::Jmp { off, .. } => {
                env.prune.mark(pc);
                env.prune.mark((pc as i64 + 1 + i64::from(off)) as usize);
            }
            Op::Call(CallTarget::Local(imm)) => {
                env.prune.mark(pc);
                env.prune.mark(pc + 1);
                env.prune.mark((pc as i64 + 1 + i64::from(imm)) as usize);
            }
            Op::Call(_) => env.prune.mark(pc + 1),
            _ => {}
        }
    }
    // Depth-first search: reachability and back-edges.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let mut mark = vec![Mark::New; n];
    let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
    mark[0] = Mark::OnStack;
    while let Some(&mut (pc, ref mut k)) = stack.last_mut() {
        // The second slot of an `lddw` reached by a jump falls through like any slot; the walk
        // below refuses the jump that got there.
        let edges = env.ops[pc].map_or_else(|| Succ::one(pc as i64 + 1), |op| successors(pc, &op));
        if let Some(&t) = edges.as_slice().get(*k) {
            *k += 1;
            // Targets were range-checked above; stay total on any input all the same.
            let Some(t) = usize::try_from(t).ok().filter(|&t| t < n) else {
                return invalid(pc, format!("jump out of range from insn {pc} to {t}"));
            };
            match mark[t] {
                Mark::New => {
                    mark[t] = Mark::OnStack;
                    stack.push((t, 0));
                }
                Mark::OnStack if !env.opts.privileged => {
                    return invalid(pc, format!("back-edge from insn {pc} to {t}"));
                }
                _ => {}
            }
        } else {
            mark[pc] = Mark::Done;
            stack.pop();
        }
    }
    // In slot order, as the kernel's check_cfg ends: an unreachable instruction, or an `lddw`
    // whose second slot some jump reached.
    for pc in 0..n {
        let Some(op) = env.ops[pc] else { continue };
        if mark[pc] == Mark::New {
            return invalid(pc, format!("unreachable insn {pc}"));
        }
        if matches!(op, Op::Ld64 { .. }) && mark.get(pc + 1).is_some_and(|m| *m != Mark::New) {
            return invalid(pc, format!("jump into the middle of ldimm64 insn {pc}"));
        }
    }
    env.live_before = live_registers(&env.ops);
    Ok(())
}

/// Registers read and written by one instruction, as bit masks (bit i = r_i).
fn uses_defs(op: &Op) -> (u16, u16) {
    use crate::bpf::helpers::Callee;
    use crate::isa::{AluOp, AtomicOp, Operand};
    let bit = |r: u8| 1u16 << r;
    let src_bit = |src: Operand| match src {
        Operand::Reg(r) => bit(r),
        Operand::Imm(_) => 0,
    };
    const CALLER_SAVED: u16 = 0b11_1111;
    const ARGS: u16 = 0b11_1110;
    match *op {
        Op::Alu {
            op: AluOp::Mov | AluOp::MovSx(_),
            dst,
            src,
            ..
        } => (src_bit(src), bit(dst)),
        Op::Alu { dst, src, .. } => (bit(dst) | src_bit(src), bit(dst)),
        Op::Neg { dst, .. } | Op::End { dst, .. } => (bit(dst), bit(dst)),
        Op::Ld64 { dst, .. } => (0, bit(dst)),
        Op::LdAbs { .. } => (bit(6), CALLER_SAVED),
        Op::LdInd { src, .. } => (bit(6) | bit(src), CALLER_SAVED),
        Op::Load { dst, src, .. } => (bit(src), bit(dst)),
        Op::Store { dst, src, .. } => (bit(dst) | src_bit(src), 0),
        Op::Atomic {
            op: AtomicOp::Cmpxchg,
            dst,
            src,
            ..
        } => (bit(dst) | bit(src) | bit(0), bit(0)),
        Op::Atomic { op, dst, src, .. } => {
            (bit(dst) | bit(src), if op.fetches() { bit(src) } else { 0 })
        }
        Op::Ja { .. } => (0, 0),
        Op::Jmp { dst, src, .. } => (bit(dst) | src_bit(src), 0),
        Op::Call(CallTarget::Helper(imm)) => {
            let uses = match Callee::from_imm(imm) {
                Some(callee) => (1u16 << (callee.proto().args.len() + 1)) - 2,
                None => ARGS,
            };
            (uses, CALLER_SAVED)
        }
        Op::Call(_) | Op::Callx { .. } => (ARGS, CALLER_SAVED),
        Op::Exit => (bit(0), 0),
    }
}

/// Registers live before each instruction (a backward data-flow fixpoint within subprograms;
/// a bpf-to-bpf call is an instruction reading r1-r5 and writing r0-r5). Pruning compares only
/// live registers, as the kernel does, so a dead register's value cannot block it.
fn live_registers(ops: &[Option<Op>]) -> Vec<u16> {
    const FP_BIT: u16 = 1 << 10;
    let n = ops.len();
    let mut live = vec![FP_BIT; n];
    // Each round needs the same per-instruction facts: compute them once.
    let facts: Vec<Option<(Succ, u16, u16)>> = ops
        .iter()
        .enumerate()
        .map(|(pc, op)| {
            op.map(|op| {
                let succs = match op {
                    Op::Call(CallTarget::Local(_)) => Succ::one(pc as i64 + 1),
                    _ => successors(pc, &op),
                };
                let (uses, defs) = uses_defs(&op);
                (succs, uses, defs)
            })
        })
        .collect();
    let mut changed = true;
    while changed {
        changed = false;
        for pc in (0..n).rev() {
            let Some((succs, uses, defs)) = facts[pc] else {
                continue;
            };
            let mut after = 0u16;
            for &t in succs.as_slice() {
                if let Some(l) = usize::try_from(t).ok().and_then(|t| live.get(t)) {
                    after |= l;
                }
            }
            let before = uses | (after & !defs) | FP_BIT;
            if before != live[pc] {
                live[pc] = before;
                changed = true;
            }
        }
    }
    live
}
