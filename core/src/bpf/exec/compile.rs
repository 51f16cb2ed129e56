//! Pre-decoding: [`Op`]s become flat [`Inst`]s, one per instruction slot, with the common ALU
//! and jump forms specialised by operation and source so the interpreter dispatches once per
//! instruction, and jump targets resolved to absolute slot indices.

use super::super::helpers::Callee;
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
    /// Division, modulo (signed or not) and `movsx`: rarer, one generic arm.
    AluSlow {
        wide: bool,
        op: AluOp,
        d: u8,
        src: Operand,
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
    LdImm {
        d: u8,
        imm: u64,
    },
    LdMapFd {
        d: u8,
        fd: i32,
    },
    LdMapValue {
        d: u8,
        fd: i32,
        off: u32,
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
    /// `BPF_ST`: the immediate already sign-extended (the DW form stores 64 bits).
    StImm {
        size: u8,
        d: u8,
        off: i16,
        imm: i32,
    },
    Atomic {
        size: u8,
        op: AtomicOp,
        d: u8,
        s: u8,
        off: i16,
    },
    Ja {
        t: u32,
    },
    JeqI {
        d: u8,
        imm: i32,
        t: u32,
    },
    JeqR {
        d: u8,
        s: u8,
        t: u32,
    },
    JneI {
        d: u8,
        imm: i32,
        t: u32,
    },
    JneR {
        d: u8,
        s: u8,
        t: u32,
    },
    JgtI {
        d: u8,
        imm: i32,
        t: u32,
    },
    JgtR {
        d: u8,
        s: u8,
        t: u32,
    },
    JgeI {
        d: u8,
        imm: i32,
        t: u32,
    },
    JgeR {
        d: u8,
        s: u8,
        t: u32,
    },
    JltI {
        d: u8,
        imm: i32,
        t: u32,
    },
    JltR {
        d: u8,
        s: u8,
        t: u32,
    },
    JleI {
        d: u8,
        imm: i32,
        t: u32,
    },
    JleR {
        d: u8,
        s: u8,
        t: u32,
    },
    /// The other 64-bit conditions and every 32-bit one.
    JmpSlow {
        wide: bool,
        cond: Cond,
        d: u8,
        src: Operand,
        t: u32,
    },
    Call {
        callee: Callee,
    },
    /// A helper id the table does not know: an error if reached (programs may carry dead calls).
    CallUnknown {
        imm: i32,
    },
    CallLocal {
        t: u32,
    },
    Callx {
        r: u8,
    },
    Exit,
    /// Decodes but cannot run here (legacy packet loads, kfuncs, other pseudo `lddw`s).
    Unsupported {
        what: &'static str,
    },
    /// The second slot of an `lddw`: the decoder guarantees no jump lands here.
    LddwTail,
}

/// A program ready to run: decoded, checked (reserved fields, jump targets), pre-decoded.
#[derive(Debug, Clone)]
pub struct Program {
    pub(crate) code: Vec<Inst>,
    insns: Vec<Insn>,
}

impl Program {
    pub fn new(insns: &[Insn]) -> Result<Program, DecodeError> {
        let ops = decode_program(insns)?;
        let mut code = vec![Inst::LddwTail; insns.len()];
        for (pc, op) in ops {
            code[pc] = lower(pc, op);
        }
        Ok(Program {
            code,
            insns: insns.to_vec(),
        })
    }

    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }
}

fn target(pc: usize, off: i64) -> u32 {
    // In range: decode_program checked every target.
    (pc as i64 + 1 + off) as u32
}

fn lower(pc: usize, op: Op) -> Inst {
    use Inst::*;
    match op {
        Op::Alu {
            width,
            op,
            dst: d,
            src,
        } => lower_alu(width, op, d, src),
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
            Ld64::Imm(imm) => LdImm { d: dst, imm },
            Ld64::MapFd(fd) => LdMapFd { d: dst, fd },
            Ld64::MapValue { fd, off } => LdMapValue { d: dst, fd, off },
            Ld64::Pseudo { .. } => Unsupported {
                what: "lddw with a BTF, func or map-index pseudo source",
            },
        },
        Op::LdAbs { .. } | Op::LdInd { .. } => Unsupported {
            what: "legacy packet load (ld_abs/ld_ind)",
        },
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
        } => StImm {
            size: size.bytes(),
            d,
            off,
            imm,
        },
        Op::Atomic {
            size,
            op,
            dst: d,
            src: s,
            off,
        } => Atomic {
            size: size.bytes(),
            op,
            d,
            s,
            off,
        },
        Op::Ja { off, .. } => Ja {
            t: target(pc, i64::from(off)),
        },
        Op::Jmp {
            width,
            cond,
            dst: d,
            src,
            off,
        } => {
            let t = target(pc, i64::from(off));
            match (width, cond, src) {
                (Width::W64, Cond::Eq, Operand::Imm(imm)) => JeqI { d, imm, t },
                (Width::W64, Cond::Eq, Operand::Reg(s)) => JeqR { d, s, t },
                (Width::W64, Cond::Ne, Operand::Imm(imm)) => JneI { d, imm, t },
                (Width::W64, Cond::Ne, Operand::Reg(s)) => JneR { d, s, t },
                (Width::W64, Cond::Gt, Operand::Imm(imm)) => JgtI { d, imm, t },
                (Width::W64, Cond::Gt, Operand::Reg(s)) => JgtR { d, s, t },
                (Width::W64, Cond::Ge, Operand::Imm(imm)) => JgeI { d, imm, t },
                (Width::W64, Cond::Ge, Operand::Reg(s)) => JgeR { d, s, t },
                (Width::W64, Cond::Lt, Operand::Imm(imm)) => JltI { d, imm, t },
                (Width::W64, Cond::Lt, Operand::Reg(s)) => JltR { d, s, t },
                (Width::W64, Cond::Le, Operand::Imm(imm)) => JleI { d, imm, t },
                (Width::W64, Cond::Le, Operand::Reg(s)) => JleR { d, s, t },
                (width, cond, src) => JmpSlow {
                    wide: width == Width::W64,
                    cond,
                    d,
                    src,
                    t,
                },
            }
        }
        Op::Call(CallTarget::Helper(imm)) => match Callee::from_imm(imm) {
            Some(callee) => Call { callee },
            None => CallUnknown { imm },
        },
        Op::Call(CallTarget::Local(off)) => CallLocal {
            t: target(pc, i64::from(off)),
        },
        Op::Call(CallTarget::Kfunc(_)) => Unsupported { what: "kfunc call" },
        Op::Callx { reg } => Callx { r: reg },
        Op::Exit => Exit,
    }
}

fn lower_alu(width: Width, op: AluOp, d: u8, src: Operand) -> Inst {
    use Inst::*;
    let wide = width == Width::W64;
    match (wide, op, src) {
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
        (wide, op, src) => AluSlow { wide, op, d, src },
    }
}
