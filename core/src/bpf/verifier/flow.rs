//! The control flow of one instruction: where execution may go after it. The graph passes
//! (`cfg`'s checks and register liveness, `live_stack`'s stack liveness) all ask this, so it
//! has one home below them.

use crate::isa::{CallTarget, Op};

/// Successors of the instruction at `pc` (calls: the callee entry and the return point).
/// At most two successors, kept inline: the graph passes ask for them per instruction and per
/// liveness round, and an allocation each time was a visible share of verification.
#[derive(Clone, Copy)]
pub struct Succ {
    edges: [i64; 2],
    len: usize,
}

impl Succ {
    pub fn one(t: i64) -> Succ {
        Succ {
            edges: [t, 0],
            len: 1,
        }
    }
    pub fn two(a: i64, b: i64) -> Succ {
        Succ {
            edges: [a, b],
            len: 2,
        }
    }
    pub fn as_slice(&self) -> &[i64] {
        &self.edges[..self.len]
    }
}

pub fn successors(pc: usize, op: &Op) -> Succ {
    let next = pc as i64 + 1;
    match *op {
        Op::Ja { off, .. } => Succ::one(next + i64::from(off)),
        Op::Jmp { off, .. } => Succ::two(next, next + i64::from(off)),
        Op::Exit => Succ {
            edges: [0, 0],
            len: 0,
        },
        Op::Ld64 { .. } => Succ::one(next + 1),
        Op::Call(CallTarget::Local(imm)) => Succ::two(next, next + i64::from(imm)),
        _ => Succ::one(next),
    }
}
