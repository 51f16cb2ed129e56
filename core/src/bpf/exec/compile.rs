//! Pre-decoding: [`Op`]s become flat 8-byte [`Inst`]s, one per instruction slot. The common ALU,
//! memory and jump forms get one variant per operation, width and source, so the interpreter
//! dispatches once per instruction and reads at most one machine word of operands; conditional
//! jumps keep the ISA's relative offset (a backward jump is a negative one). In a program that
//! never writes `r10`, loads and stores through it become frame accesses at an offset checked
//! here, since `r10` can only be the running frame's top. Rare forms
//! (division, `movsx`, atomics, map loads, unsupported instructions) sit in a side table behind
//! [`Inst::Slow`], and `lddw` constants in another, which keeps every [`Inst`] at 8 bytes.

use super::super::helpers::{Callee, HelperId};
use crate::isa::{
    decode_program, AluOp, AtomicOp, CallTarget, Cond, DecodeError, Endian, Insn, Ld64, Op,
    Operand, Size, Width,
};

/// A pre-decoded instruction. Register fields are `0..=10` (checked by the decoder).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Inst {
    Add64I {
        d: u8,
        imm: i32,
    },
    Add64R {
        d: u8,
        s: u8,
    },
    Sub64I {
        d: u8,
        imm: i32,
    },
    Sub64R {
        d: u8,
        s: u8,
    },
    Mul64I {
        d: u8,
        imm: i32,
    },
    Mul64R {
        d: u8,
        s: u8,
    },
    Or64I {
        d: u8,
        imm: i32,
    },
    Or64R {
        d: u8,
        s: u8,
    },
    And64I {
        d: u8,
        imm: i32,
    },
    And64R {
        d: u8,
        s: u8,
    },
    Lsh64I {
        d: u8,
        imm: i32,
    },
    Lsh64R {
        d: u8,
        s: u8,
    },
    Rsh64I {
        d: u8,
        imm: i32,
    },
    Rsh64R {
        d: u8,
        s: u8,
    },
    Xor64I {
        d: u8,
        imm: i32,
    },
    Xor64R {
        d: u8,
        s: u8,
    },
    Mov64I {
        d: u8,
        imm: i32,
    },
    Mov64R {
        d: u8,
        s: u8,
    },
    Arsh64I {
        d: u8,
        imm: i32,
    },
    Arsh64R {
        d: u8,
        s: u8,
    },
    Add32I {
        d: u8,
        imm: i32,
    },
    Add32R {
        d: u8,
        s: u8,
    },
    Sub32I {
        d: u8,
        imm: i32,
    },
    Sub32R {
        d: u8,
        s: u8,
    },
    Mul32I {
        d: u8,
        imm: i32,
    },
    Mul32R {
        d: u8,
        s: u8,
    },
    Or32I {
        d: u8,
        imm: i32,
    },
    Or32R {
        d: u8,
        s: u8,
    },
    And32I {
        d: u8,
        imm: i32,
    },
    And32R {
        d: u8,
        s: u8,
    },
    Lsh32I {
        d: u8,
        imm: i32,
    },
    Lsh32R {
        d: u8,
        s: u8,
    },
    Rsh32I {
        d: u8,
        imm: i32,
    },
    Rsh32R {
        d: u8,
        s: u8,
    },
    Xor32I {
        d: u8,
        imm: i32,
    },
    Xor32R {
        d: u8,
        s: u8,
    },
    Mov32I {
        d: u8,
        imm: i32,
    },
    Mov32R {
        d: u8,
        s: u8,
    },
    Arsh32I {
        d: u8,
        imm: i32,
    },
    Arsh32R {
        d: u8,
        s: u8,
    },
    Neg64 {
        d: u8,
    },
    Neg32 {
        d: u8,
    },
    End {
        kind: Endian,
        bits: u8,
        d: u8,
    },
    /// `lddw` of a constant: `Program::consts[idx]`.
    LdImm {
        d: u8,
        idx: u32,
    },
    LdxB {
        d: u8,
        s: u8,
        off: i16,
    },
    LdxH {
        d: u8,
        s: u8,
        off: i16,
    },
    LdxW {
        d: u8,
        s: u8,
        off: i16,
    },
    LdxDW {
        d: u8,
        s: u8,
        off: i16,
    },
    LdxSB {
        d: u8,
        s: u8,
        off: i16,
    },
    LdxSH {
        d: u8,
        s: u8,
        off: i16,
    },
    LdxSW {
        d: u8,
        s: u8,
        off: i16,
    },
    StxB {
        d: u8,
        s: u8,
        off: i16,
    },
    StxH {
        d: u8,
        s: u8,
        off: i16,
    },
    StxW {
        d: u8,
        s: u8,
        off: i16,
    },
    StxDW {
        d: u8,
        s: u8,
        off: i16,
    },
    StB {
        d: u8,
        off: i16,
        imm: i32,
    },
    StH {
        d: u8,
        off: i16,
        imm: i32,
    },
    StW {
        d: u8,
        off: i16,
        imm: i32,
    },
    /// Stores the immediate sign-extended to 64 bits.
    StDW {
        d: u8,
        off: i16,
        imm: i32,
    },
    /// Loads and stores through the frame pointer (`r10 + off`) of a program that never writes
    /// `r10`: the address is the current frame's base plus `at` (`STACK_SIZE + off`, checked
    /// at compile time to fit the access), so the run skips decoding and checking a pointer
    /// that can only be this one.
    LdxFpB {
        d: u8,
        at: u16,
    },
    LdxFpH {
        d: u8,
        at: u16,
    },
    LdxFpW {
        d: u8,
        at: u16,
    },
    LdxFpDW {
        d: u8,
        at: u16,
    },
    StxFpB {
        s: u8,
        at: u16,
    },
    StxFpH {
        s: u8,
        at: u16,
    },
    StxFpW {
        s: u8,
        at: u16,
    },
    StxFpDW {
        s: u8,
        at: u16,
    },
    /// `StFp*` store the immediate (`StFpDW` sign-extended to 64 bits).
    StFpB {
        at: u16,
        imm: i32,
    },
    StFpH {
        at: u16,
        imm: i32,
    },
    StFpW {
        at: u16,
        imm: i32,
    },
    StFpDW {
        at: u16,
        imm: i32,
    },
    /// Unconditional jump to slot `t` (`ja` and `ja32`).
    Ja {
        t: u32,
    },
    Jeq64I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jeq64R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jeq32I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jeq32R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jne64I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jne64R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jne32I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jne32R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jgt64I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jgt64R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jgt32I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jgt32R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jge64I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jge64R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jge32I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jge32R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jlt64I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jlt64R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jlt32I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jlt32R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jle64I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jle64R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jle32I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jle32R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jset64I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jset64R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jset32I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jset32R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jsgt64I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jsgt64R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jsgt32I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jsgt32R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jsge64I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jsge64R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jsge32I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jsge32R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jslt64I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jslt64R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jslt32I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jslt32R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jsle64I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jsle64R {
        d: u8,
        s: u8,
        off: i16,
    },
    Jsle32I {
        d: u8,
        off: i16,
        imm: i32,
    },
    Jsle32R {
        d: u8,
        s: u8,
        off: i16,
    },
    Call {
        callee: Callee,
    },
    CallLocal {
        t: u32,
    },
    /// `bpf_tail_call(ctx, r2, r3)`: continues in the program at slot `r3` of the
    /// `PROG_ARRAY` `r2`, or falls through.
    TailCall,
    Callx {
        r: u8,
    },
    Exit,
    /// Loop control, fused (only in `Program::fused`): `add rD, A` then `if rD <op> imm goto
    /// pc+off` on the same register, two slots in one dispatch. `da` packs `D` (low 4 bits)
    /// and `A` (high 4 bits, signed: -8..=7); `off` is the second instruction's offset.
    AddJeq {
        da: u8,
        off: i16,
        imm: i32,
    },
    AddJne {
        da: u8,
        off: i16,
        imm: i32,
    },
    AddJlt {
        da: u8,
        off: i16,
        imm: i32,
    },
    AddJle {
        da: u8,
        off: i16,
        imm: i32,
    },
    AddJgt {
        da: u8,
        off: i16,
        imm: i32,
    },
    AddJge {
        da: u8,
        off: i16,
        imm: i32,
    },
    /// Fused (only in `Program::fused`): `mov rD, rS` then `add rD, imm`, the idiom that
    /// makes helper arguments point into the stack (`r2 = r10; r2 += -4`).
    MovAdd64 {
        d: u8,
        s: u8,
        imm: i32,
    },
    /// A rare instruction: `Program::slow[idx]`.
    Slow {
        idx: u32,
    },
    /// The second slot of an `lddw`: the decoder guarantees no jump lands here.
    LddwTail,
}

/// Rare instructions, executed out of line.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SlowOp {
    /// Division, modulo (signed or not), `movsx`.
    Alu {
        wide: bool,
        op: AluOp,
        d: u8,
        src: Operand,
    },
    Atomic {
        size: u8,
        op: AtomicOp,
        d: u8,
        s: u8,
        off: i16,
    },
    /// `lddw` with `BPF_PSEUDO_MAP_FD` (two slots).
    LdMapFd { d: u8, fd: i32 },
    /// `lddw` with `BPF_PSEUDO_MAP_VALUE` (two slots).
    LdMapValue { d: u8, fd: i32, off: u32 },
    /// A helper id the table does not know: an error if reached (programs may carry dead calls).
    CallUnknown { imm: i32 },
    /// Decodes but cannot run here (legacy packet loads, kfuncs, other pseudo `lddw`s).
    Unsupported { what: &'static str },
}

/// A program ready to run: decoded, checked (reserved fields, jump targets), pre-decoded.
#[derive(Debug, Clone)]
pub struct Program {
    /// One instruction per slot, as decoded (what an observer steps through).
    pub(crate) code: Vec<Inst>,
    /// `code` with loop-control pairs fused into their first slot; the second slot keeps its
    /// own instruction, so a jump to it still works. Used when no observer watches.
    pub(crate) fused: Vec<Inst>,
    pub(crate) consts: Vec<u64>,
    pub(crate) slow: Vec<SlowOp>,
    insns: Vec<Insn>,
}

impl Program {
    pub fn new(insns: &[Insn]) -> Result<Program, DecodeError> {
        let ops = decode_program(insns)?;
        let mut program = Program {
            code: vec![Inst::LddwTail; insns.len()],
            fused: Vec::new(),
            consts: Vec::new(),
            slow: Vec::new(),
            insns: insns.to_vec(),
        };
        let fp_fixed = !ops.iter().any(|(_, op)| writes_fp(op));
        for (pc, op) in ops {
            let inst = program.lower(pc, op);
            program.code[pc] = if fp_fixed { through_fp(inst) } else { inst };
        }
        program.fused = fuse(&program.code);
        Ok(program)
    }

    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// Resolves every pseudo map load (`map[fd]`, `map[fd][0]+off`) once, as the kernel does at
    /// load time, so runs load a constant instead of asking the map world each time. The
    /// resolved pointers carry the maps' generations: if a map is freed later, accesses through
    /// them fault as use after free.
    pub fn bind_maps<E: super::MapEnv>(&mut self, env: &mut E) -> Result<(), super::ExecError> {
        for pc in 0..self.code.len() {
            let Inst::Slow { idx } = self.code[pc] else {
                continue;
            };
            let resolved = match self.slow.get(idx as usize) {
                Some(&SlowOp::LdMapFd { d, fd }) => (d, env.map_from_fd(fd)),
                Some(&SlowOp::LdMapValue { d, fd, off }) => (d, env.map_value_from_fd(fd, off)),
                _ => continue,
            };
            let (d, value) = resolved;
            let value = value.map_err(|kind| super::ExecError { pc, kind })?;
            self.consts.push(value);
            self.code[pc] = Inst::LdImm {
                d,
                idx: (self.consts.len() - 1) as u32,
            };
            self.fused[pc] = self.code[pc];
        }
        Ok(())
    }

    fn slow(&mut self, op: SlowOp) -> Inst {
        self.slow.push(op);
        Inst::Slow {
            idx: (self.slow.len() - 1) as u32,
        }
    }

    fn lower(&mut self, pc: usize, op: Op) -> Inst {
        use Inst::*;
        match op {
            Op::Alu {
                width,
                op,
                dst: d,
                src,
            } => match lower_alu(width, op, d, src) {
                Some(inst) => inst,
                None => self.slow(SlowOp::Alu {
                    wide: width == Width::W64,
                    op,
                    d,
                    src,
                }),
            },
            Op::Neg {
                width: Width::W64,
                dst,
            } => Neg64 { d: dst },
            Op::Neg {
                width: Width::W32,
                dst,
            } => Neg32 { d: dst },
            Op::End { kind, bits, dst } => End { kind, bits, d: dst },
            Op::Ld64 { dst, value } => match value {
                Ld64::Imm(imm) => {
                    self.consts.push(imm);
                    LdImm {
                        d: dst,
                        idx: (self.consts.len() - 1) as u32,
                    }
                }
                Ld64::MapFd(fd) => self.slow(SlowOp::LdMapFd { d: dst, fd }),
                Ld64::MapValue { fd, off } => self.slow(SlowOp::LdMapValue { d: dst, fd, off }),
                Ld64::Pseudo { .. } => self.slow(SlowOp::Unsupported {
                    what: "lddw with a BTF, func or map-index pseudo source",
                }),
            },
            Op::LdAbs { .. } | Op::LdInd { .. } => self.slow(SlowOp::Unsupported {
                what: "legacy packet load (ld_abs/ld_ind)",
            }),
            Op::Load {
                size,
                signed,
                dst: d,
                src: s,
                off,
            } => match (size, signed) {
                (Size::B, false) => LdxB { d, s, off },
                (Size::H, false) => LdxH { d, s, off },
                (Size::W, false) => LdxW { d, s, off },
                (Size::DW, _) => LdxDW { d, s, off },
                (Size::B, true) => LdxSB { d, s, off },
                (Size::H, true) => LdxSH { d, s, off },
                (Size::W, true) => LdxSW { d, s, off },
            },
            Op::Store {
                size,
                dst: d,
                off,
                src: Operand::Reg(s),
            } => match size {
                Size::B => StxB { d, s, off },
                Size::H => StxH { d, s, off },
                Size::W => StxW { d, s, off },
                Size::DW => StxDW { d, s, off },
            },
            Op::Store {
                size,
                dst: d,
                off,
                src: Operand::Imm(imm),
            } => match size {
                Size::B => StB { d, off, imm },
                Size::H => StH { d, off, imm },
                Size::W => StW { d, off, imm },
                Size::DW => StDW { d, off, imm },
            },
            Op::Atomic {
                size,
                op,
                dst: d,
                src: s,
                off,
            } => self.slow(SlowOp::Atomic {
                size: size.bytes(),
                op,
                d,
                s,
                off,
            }),
            // In range: decode_program checked every target.
            Op::Ja { off, .. } => Ja {
                t: (pc as i64 + 1 + i64::from(off)) as u32,
            },
            Op::Jmp {
                width,
                cond,
                dst: d,
                src,
                off,
            } => lower_jmp(width, cond, d, src, off),
            Op::Call(CallTarget::Helper(imm)) if imm == HelperId::TailCall as i32 => TailCall,
            Op::Call(CallTarget::Helper(imm)) => match Callee::from_imm(imm) {
                Some(callee) => Call { callee },
                None => self.slow(SlowOp::CallUnknown { imm }),
            },
            Op::Call(CallTarget::Local(off)) => CallLocal {
                t: (pc as i64 + 1 + i64::from(off)) as u32,
            },
            Op::Call(CallTarget::Kfunc(_)) => self.slow(SlowOp::Unsupported { what: "kfunc call" }),
            Op::Callx { reg } => Callx { r: reg },
            Op::Exit => Exit,
        }
    }
}

/// Whether `op` may write `r10` (the decoder lets an unverified program do it; the verifier
/// refuses it). A program where none does keeps `r10` at its frame's top throughout.
fn writes_fp(op: &Op) -> bool {
    use crate::isa::FP;
    match *op {
        Op::Alu { dst, .. }
        | Op::Neg { dst, .. }
        | Op::End { dst, .. }
        | Op::Ld64 { dst, .. }
        | Op::Load { dst, .. } => dst == FP,
        Op::Atomic { op, src, .. } => op.fetches() && src == FP,
        Op::LdAbs { .. }
        | Op::LdInd { .. }
        | Op::Store { .. }
        | Op::Ja { .. }
        | Op::Jmp { .. }
        | Op::Call(_)
        | Op::Callx { .. }
        | Op::Exit => false,
    }
}

/// `inst` as a frame-pointer access (`Inst::LdxFp*` and friends) if it is an `r10`-based load
/// or store whose bytes lie inside the frame; anything else (other bases, signed loads,
/// accesses the general path must refuse) as it is.
fn through_fp(inst: Inst) -> Inst {
    use crate::isa::FP;
    use Inst::*;
    let at = |off: i16, size: i32| -> Option<u16> {
        let at = super::STACK_SIZE as i32 + i32::from(off);
        (at >= 0 && at + size <= super::STACK_SIZE as i32).then_some(at as u16)
    };
    let fp = match inst {
        LdxB { d, s: FP, off } => at(off, 1).map(|at| LdxFpB { d, at }),
        LdxH { d, s: FP, off } => at(off, 2).map(|at| LdxFpH { d, at }),
        LdxW { d, s: FP, off } => at(off, 4).map(|at| LdxFpW { d, at }),
        LdxDW { d, s: FP, off } => at(off, 8).map(|at| LdxFpDW { d, at }),
        StxB { d: FP, s, off } => at(off, 1).map(|at| StxFpB { s, at }),
        StxH { d: FP, s, off } => at(off, 2).map(|at| StxFpH { s, at }),
        StxW { d: FP, s, off } => at(off, 4).map(|at| StxFpW { s, at }),
        StxDW { d: FP, s, off } => at(off, 8).map(|at| StxFpDW { s, at }),
        StB { d: FP, off, imm } => at(off, 1).map(|at| StFpB { at, imm }),
        StH { d: FP, off, imm } => at(off, 2).map(|at| StFpH { at, imm }),
        StW { d: FP, off, imm } => at(off, 4).map(|at| StFpW { at, imm }),
        StDW { d: FP, off, imm } => at(off, 8).map(|at| StFpDW { at, imm }),
        _ => None,
    };
    fp.unwrap_or(inst)
}

/// Fuses `add/sub rD, small` followed by an unsigned or equality compare of `rD` with an
/// immediate (the shape of every counted loop's back edge), and `mov rD, rS; add rD, imm`.
fn fuse(code: &[Inst]) -> Vec<Inst> {
    use Inst::*;
    let mut fused = code.to_vec();
    for pc in 0..code.len().saturating_sub(1) {
        if let (Mov64R { d, s }, Add64I { d: d2, imm }) = (code[pc], code[pc + 1]) {
            if d == d2 {
                fused[pc] = MovAdd64 { d, s, imm };
            }
            continue;
        }
        let (d, add) = match code[pc] {
            Add64I { d, imm } => (d, imm),
            Sub64I { d, imm } if imm != i32::MIN => (d, -imm),
            _ => continue,
        };
        if !(-8..=7).contains(&add) {
            continue;
        }
        let da = (d & 15) | ((add as i8 as u8) << 4);
        fused[pc] = match code[pc + 1] {
            Jeq64I { d: j, off, imm } if j == d => AddJeq { da, off, imm },
            Jne64I { d: j, off, imm } if j == d => AddJne { da, off, imm },
            Jlt64I { d: j, off, imm } if j == d => AddJlt { da, off, imm },
            Jle64I { d: j, off, imm } if j == d => AddJle { da, off, imm },
            Jgt64I { d: j, off, imm } if j == d => AddJgt { da, off, imm },
            Jge64I { d: j, off, imm } if j == d => AddJge { da, off, imm },
            _ => continue,
        };
    }
    fused
}

fn lower_jmp(width: Width, cond: Cond, d: u8, src: Operand, off: i16) -> Inst {
    use Inst::*;
    match (width, cond, src) {
        (Width::W64, Cond::Eq, Operand::Imm(imm)) => Jeq64I { d, off, imm },
        (Width::W64, Cond::Eq, Operand::Reg(s)) => Jeq64R { d, s, off },
        (Width::W32, Cond::Eq, Operand::Imm(imm)) => Jeq32I { d, off, imm },
        (Width::W32, Cond::Eq, Operand::Reg(s)) => Jeq32R { d, s, off },
        (Width::W64, Cond::Ne, Operand::Imm(imm)) => Jne64I { d, off, imm },
        (Width::W64, Cond::Ne, Operand::Reg(s)) => Jne64R { d, s, off },
        (Width::W32, Cond::Ne, Operand::Imm(imm)) => Jne32I { d, off, imm },
        (Width::W32, Cond::Ne, Operand::Reg(s)) => Jne32R { d, s, off },
        (Width::W64, Cond::Gt, Operand::Imm(imm)) => Jgt64I { d, off, imm },
        (Width::W64, Cond::Gt, Operand::Reg(s)) => Jgt64R { d, s, off },
        (Width::W32, Cond::Gt, Operand::Imm(imm)) => Jgt32I { d, off, imm },
        (Width::W32, Cond::Gt, Operand::Reg(s)) => Jgt32R { d, s, off },
        (Width::W64, Cond::Ge, Operand::Imm(imm)) => Jge64I { d, off, imm },
        (Width::W64, Cond::Ge, Operand::Reg(s)) => Jge64R { d, s, off },
        (Width::W32, Cond::Ge, Operand::Imm(imm)) => Jge32I { d, off, imm },
        (Width::W32, Cond::Ge, Operand::Reg(s)) => Jge32R { d, s, off },
        (Width::W64, Cond::Lt, Operand::Imm(imm)) => Jlt64I { d, off, imm },
        (Width::W64, Cond::Lt, Operand::Reg(s)) => Jlt64R { d, s, off },
        (Width::W32, Cond::Lt, Operand::Imm(imm)) => Jlt32I { d, off, imm },
        (Width::W32, Cond::Lt, Operand::Reg(s)) => Jlt32R { d, s, off },
        (Width::W64, Cond::Le, Operand::Imm(imm)) => Jle64I { d, off, imm },
        (Width::W64, Cond::Le, Operand::Reg(s)) => Jle64R { d, s, off },
        (Width::W32, Cond::Le, Operand::Imm(imm)) => Jle32I { d, off, imm },
        (Width::W32, Cond::Le, Operand::Reg(s)) => Jle32R { d, s, off },
        (Width::W64, Cond::Set, Operand::Imm(imm)) => Jset64I { d, off, imm },
        (Width::W64, Cond::Set, Operand::Reg(s)) => Jset64R { d, s, off },
        (Width::W32, Cond::Set, Operand::Imm(imm)) => Jset32I { d, off, imm },
        (Width::W32, Cond::Set, Operand::Reg(s)) => Jset32R { d, s, off },
        (Width::W64, Cond::Sgt, Operand::Imm(imm)) => Jsgt64I { d, off, imm },
        (Width::W64, Cond::Sgt, Operand::Reg(s)) => Jsgt64R { d, s, off },
        (Width::W32, Cond::Sgt, Operand::Imm(imm)) => Jsgt32I { d, off, imm },
        (Width::W32, Cond::Sgt, Operand::Reg(s)) => Jsgt32R { d, s, off },
        (Width::W64, Cond::Sge, Operand::Imm(imm)) => Jsge64I { d, off, imm },
        (Width::W64, Cond::Sge, Operand::Reg(s)) => Jsge64R { d, s, off },
        (Width::W32, Cond::Sge, Operand::Imm(imm)) => Jsge32I { d, off, imm },
        (Width::W32, Cond::Sge, Operand::Reg(s)) => Jsge32R { d, s, off },
        (Width::W64, Cond::Slt, Operand::Imm(imm)) => Jslt64I { d, off, imm },
        (Width::W64, Cond::Slt, Operand::Reg(s)) => Jslt64R { d, s, off },
        (Width::W32, Cond::Slt, Operand::Imm(imm)) => Jslt32I { d, off, imm },
        (Width::W32, Cond::Slt, Operand::Reg(s)) => Jslt32R { d, s, off },
        (Width::W64, Cond::Sle, Operand::Imm(imm)) => Jsle64I { d, off, imm },
        (Width::W64, Cond::Sle, Operand::Reg(s)) => Jsle64R { d, s, off },
        (Width::W32, Cond::Sle, Operand::Imm(imm)) => Jsle32I { d, off, imm },
        (Width::W32, Cond::Sle, Operand::Reg(s)) => Jsle32R { d, s, off },
    }
}

fn lower_alu(width: Width, op: AluOp, d: u8, src: Operand) -> Option<Inst> {
    use Inst::*;
    let wide = width == Width::W64;
    Some(match (wide, op, src) {
        (true, AluOp::Add, Operand::Imm(imm)) => Add64I { d, imm },
        (true, AluOp::Add, Operand::Reg(s)) => Add64R { d, s },
        (true, AluOp::Sub, Operand::Imm(imm)) => Sub64I { d, imm },
        (true, AluOp::Sub, Operand::Reg(s)) => Sub64R { d, s },
        (true, AluOp::Mul, Operand::Imm(imm)) => Mul64I { d, imm },
        (true, AluOp::Mul, Operand::Reg(s)) => Mul64R { d, s },
        (true, AluOp::Or, Operand::Imm(imm)) => Or64I { d, imm },
        (true, AluOp::Or, Operand::Reg(s)) => Or64R { d, s },
        (true, AluOp::And, Operand::Imm(imm)) => And64I { d, imm },
        (true, AluOp::And, Operand::Reg(s)) => And64R { d, s },
        (true, AluOp::Lsh, Operand::Imm(imm)) => Lsh64I { d, imm },
        (true, AluOp::Lsh, Operand::Reg(s)) => Lsh64R { d, s },
        (true, AluOp::Rsh, Operand::Imm(imm)) => Rsh64I { d, imm },
        (true, AluOp::Rsh, Operand::Reg(s)) => Rsh64R { d, s },
        (true, AluOp::Xor, Operand::Imm(imm)) => Xor64I { d, imm },
        (true, AluOp::Xor, Operand::Reg(s)) => Xor64R { d, s },
        (true, AluOp::Mov, Operand::Imm(imm)) => Mov64I { d, imm },
        (true, AluOp::Mov, Operand::Reg(s)) => Mov64R { d, s },
        (true, AluOp::Arsh, Operand::Imm(imm)) => Arsh64I { d, imm },
        (true, AluOp::Arsh, Operand::Reg(s)) => Arsh64R { d, s },
        (false, AluOp::Add, Operand::Imm(imm)) => Add32I { d, imm },
        (false, AluOp::Add, Operand::Reg(s)) => Add32R { d, s },
        (false, AluOp::Sub, Operand::Imm(imm)) => Sub32I { d, imm },
        (false, AluOp::Sub, Operand::Reg(s)) => Sub32R { d, s },
        (false, AluOp::Mul, Operand::Imm(imm)) => Mul32I { d, imm },
        (false, AluOp::Mul, Operand::Reg(s)) => Mul32R { d, s },
        (false, AluOp::Or, Operand::Imm(imm)) => Or32I { d, imm },
        (false, AluOp::Or, Operand::Reg(s)) => Or32R { d, s },
        (false, AluOp::And, Operand::Imm(imm)) => And32I { d, imm },
        (false, AluOp::And, Operand::Reg(s)) => And32R { d, s },
        (false, AluOp::Lsh, Operand::Imm(imm)) => Lsh32I { d, imm },
        (false, AluOp::Lsh, Operand::Reg(s)) => Lsh32R { d, s },
        (false, AluOp::Rsh, Operand::Imm(imm)) => Rsh32I { d, imm },
        (false, AluOp::Rsh, Operand::Reg(s)) => Rsh32R { d, s },
        (false, AluOp::Xor, Operand::Imm(imm)) => Xor32I { d, imm },
        (false, AluOp::Xor, Operand::Reg(s)) => Xor32R { d, s },
        (false, AluOp::Mov, Operand::Imm(imm)) => Mov32I { d, imm },
        (false, AluOp::Mov, Operand::Reg(s)) => Mov32R { d, s },
        (false, AluOp::Arsh, Operand::Imm(imm)) => Arsh32I { d, imm },
        (false, AluOp::Arsh, Operand::Reg(s)) => Arsh32R { d, s },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pre_decoded_instruction_fits_in_one_machine_word() {
        assert_eq!(
            std::mem::size_of::<Inst>(),
            8,
            "the interpreter reads one word per dispatch"
        );
    }
}
