//! The classified view of an instruction: [`Op`], and the strict decoder from [`Insn`] slots.
//!
//! Strictness follows RFC 9669 ("unused fields must be zero") and the kernel verifier's checks
//! of reserved fields, so a decoded [`Op`] re-encodes to exactly the slots it came from.

use super::*;
use std::fmt;

/// Access size of a load, store or atomic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    pub const fn bytes(self) -> u8 {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }
    /// The opcode's size bits.
    pub const fn bits(self) -> u8 {
        match self {
            Size::B => BPF_B,
            Size::H => BPF_H,
            Size::W => BPF_W,
            Size::DW => BPF_DW,
        }
    }
    pub const fn from_bits(code: u8) -> Size {
        match code & 0x18 {
            BPF_B => Size::B,
            BPF_H => Size::H,
            BPF_W => Size::W,
            _ => Size::DW,
        }
    }
    /// The kernel's C type name (`u8` .. `u64`).
    pub const fn c_type(self) -> &'static str {
        match self {
            Size::B => "u8",
            Size::H => "u16",
            Size::W => "u32",
            Size::DW => "u64",
        }
    }
}

/// Operation width of ALU and conditional-jump instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Width {
    /// `BPF_ALU` / `BPF_JMP32`: operate on the low 32 bits (ALU results are zero-extended).
    W32,
    /// `BPF_ALU64` / `BPF_JMP`.
    W64,
}

/// The second operand of ALU, jump and store instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operand {
    Reg(u8),
    Imm(i32),
}

/// Binary ALU operations (`neg` and byte swaps are separate [`Op`]s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AluOp {
    Add,
    Sub,
    Mul,
    Div,
    /// Signed division (`off` = 1, ISA v4).
    SDiv,
    Or,
    And,
    Lsh,
    Rsh,
    Mod,
    /// Signed modulo (`off` = 1, ISA v4).
    SMod,
    Xor,
    Mov,
    /// Sign-extending move of the low 8, 16 or 32 bits (`off` = bits, register source, ISA v4).
    MovSx(u8),
    Arsh,
}

impl AluOp {
    /// The opcode's operation bits and the `off` field that selects this variant.
    pub const fn code_and_off(self) -> (u8, i16) {
        match self {
            AluOp::Add => (BPF_ADD, 0),
            AluOp::Sub => (BPF_SUB, 0),
            AluOp::Mul => (BPF_MUL, 0),
            AluOp::Div => (BPF_DIV, 0),
            AluOp::SDiv => (BPF_DIV, OFF_SIGNED),
            AluOp::Or => (BPF_OR, 0),
            AluOp::And => (BPF_AND, 0),
            AluOp::Lsh => (BPF_LSH, 0),
            AluOp::Rsh => (BPF_RSH, 0),
            AluOp::Mod => (BPF_MOD, 0),
            AluOp::SMod => (BPF_MOD, OFF_SIGNED),
            AluOp::Xor => (BPF_XOR, 0),
            AluOp::Mov => (BPF_MOV, 0),
            AluOp::MovSx(bits) => (BPF_MOV, bits as i16),
            AluOp::Arsh => (BPF_ARSH, 0),
        }
    }
}

/// Byte-order operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endian {
    /// `le16/32/64`: to little endian (truncates to the width on a little-endian host).
    Le,
    /// `be16/32/64`: to big endian.
    Be,
    /// `bswap16/32/64` (ISA v4, `BPF_ALU64 | BPF_END`): unconditional swap.
    Swap,
}

/// Conditions of conditional jumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cond {
    Eq,
    Gt,
    Ge,
    Set,
    Ne,
    Sgt,
    Sge,
    Lt,
    Le,
    Slt,
    Sle,
}

impl Cond {
    pub const fn code(self) -> u8 {
        match self {
            Cond::Eq => BPF_JEQ,
            Cond::Gt => BPF_JGT,
            Cond::Ge => BPF_JGE,
            Cond::Set => BPF_JSET,
            Cond::Ne => BPF_JNE,
            Cond::Sgt => BPF_JSGT,
            Cond::Sge => BPF_JSGE,
            Cond::Lt => BPF_JLT,
            Cond::Le => BPF_JLE,
            Cond::Slt => BPF_JSLT,
            Cond::Sle => BPF_JSLE,
        }
    }
    pub const fn from_code(op: u8) -> Option<Cond> {
        Some(match op {
            BPF_JEQ => Cond::Eq,
            BPF_JGT => Cond::Gt,
            BPF_JGE => Cond::Ge,
            BPF_JSET => Cond::Set,
            BPF_JNE => Cond::Ne,
            BPF_JSGT => Cond::Sgt,
            BPF_JSGE => Cond::Sge,
            BPF_JLT => Cond::Lt,
            BPF_JLE => Cond::Le,
            BPF_JSLT => Cond::Slt,
            BPF_JSLE => Cond::Sle,
            _ => return None,
        })
    }
    /// Evaluates the condition on two 64-bit values (32-bit jumps pass truncated operands,
    /// sign-extended for the signed conditions: see [`Cond::eval32`]).
    #[inline(always)]
    pub fn eval64(self, a: u64, b: u64) -> bool {
        match self {
            Cond::Eq => a == b,
            Cond::Gt => a > b,
            Cond::Ge => a >= b,
            Cond::Set => a & b != 0,
            Cond::Ne => a != b,
            Cond::Sgt => (a as i64) > (b as i64),
            Cond::Sge => (a as i64) >= (b as i64),
            Cond::Lt => a < b,
            Cond::Le => a <= b,
            Cond::Slt => (a as i64) < (b as i64),
            Cond::Sle => (a as i64) <= (b as i64),
        }
    }
    /// Evaluates the condition on the low 32 bits of both values.
    #[inline(always)]
    pub fn eval32(self, a: u64, b: u64) -> bool {
        let (a, b) = (a as u32, b as u32);
        match self {
            Cond::Eq => a == b,
            Cond::Gt => a > b,
            Cond::Ge => a >= b,
            Cond::Set => a & b != 0,
            Cond::Ne => a != b,
            Cond::Sgt => (a as i32) > (b as i32),
            Cond::Sge => (a as i32) >= (b as i32),
            Cond::Lt => a < b,
            Cond::Le => a <= b,
            Cond::Slt => (a as i32) < (b as i32),
            Cond::Sle => (a as i32) <= (b as i32),
        }
    }
}

/// Atomic read-modify-write operations (`BPF_STX | BPF_ATOMIC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AtomicOp {
    /// `lock add`; with `fetch`, the old value goes to `src`.
    Add {
        fetch: bool,
    },
    And {
        fetch: bool,
    },
    Or {
        fetch: bool,
    },
    Xor {
        fetch: bool,
    },
    /// Exchange: old value to `src` (always fetches).
    Xchg,
    /// Compare `r0` with memory, store `src` if equal; old value to `r0` (always fetches).
    Cmpxchg,
}

impl AtomicOp {
    /// The value the op stores over `old` (`size` 4 or 8 bytes; `src` the source register,
    /// `r0` the comparand of `cmpxchg`), or `None` for a `cmpxchg` that does not store.
    pub fn result(self, size: u8, old: u64, src: u64, r0: u64) -> Option<u64> {
        let mask = if size == 4 {
            u64::from(u32::MAX)
        } else {
            u64::MAX
        };
        let value = match self {
            AtomicOp::Add { .. } => old.wrapping_add(src),
            AtomicOp::And { .. } => old & src,
            AtomicOp::Or { .. } => old | src,
            AtomicOp::Xor { .. } => old ^ src,
            AtomicOp::Xchg => src,
            AtomicOp::Cmpxchg => {
                if old & mask != r0 & mask {
                    return None;
                }
                src
            }
        };
        Some(value & mask)
    }

    pub const fn imm(self) -> i32 {
        const fn fetch_bit(fetch: bool) -> i32 {
            if fetch {
                BPF_FETCH
            } else {
                0
            }
        }
        match self {
            AtomicOp::Add { fetch } => BPF_ADD as i32 | fetch_bit(fetch),
            AtomicOp::And { fetch } => BPF_AND as i32 | fetch_bit(fetch),
            AtomicOp::Or { fetch } => BPF_OR as i32 | fetch_bit(fetch),
            AtomicOp::Xor { fetch } => BPF_XOR as i32 | fetch_bit(fetch),
            AtomicOp::Xchg => BPF_XCHG,
            AtomicOp::Cmpxchg => BPF_CMPXCHG,
        }
    }
    pub const fn from_imm(imm: i32) -> Option<AtomicOp> {
        let fetch = imm & BPF_FETCH != 0;
        Some(match imm {
            BPF_XCHG => AtomicOp::Xchg,
            BPF_CMPXCHG => AtomicOp::Cmpxchg,
            _ if imm & !(0xf0 | BPF_FETCH) != 0 => return None,
            _ => match (imm & 0xf0) as u8 {
                BPF_ADD => AtomicOp::Add { fetch },
                BPF_AND => AtomicOp::And { fetch },
                BPF_OR => AtomicOp::Or { fetch },
                BPF_XOR => AtomicOp::Xor { fetch },
                _ => return None,
            },
        })
    }
    /// Does the operation write the old value back to a register?
    pub const fn fetches(self) -> bool {
        match self {
            AtomicOp::Add { fetch }
            | AtomicOp::And { fetch }
            | AtomicOp::Or { fetch }
            | AtomicOp::Xor { fetch } => fetch,
            AtomicOp::Xchg | AtomicOp::Cmpxchg => true,
        }
    }
}

/// What a two-slot `lddw` loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ld64 {
    /// A plain 64-bit constant (`src` = 0). After the verifier's fixups this may be an encoded
    /// map pointer.
    Imm(u64),
    /// `BPF_PSEUDO_MAP_FD`: the map with this fd.
    MapFd(i32),
    /// `BPF_PSEUDO_MAP_VALUE`: address of the map's value plus `off`.
    MapValue { fd: i32, off: u32 },
    /// Other pseudo forms (BTF id, func, map index): kept raw, not executed.
    Pseudo { src: u8, imm_lo: i32, imm_hi: i32 },
}

/// Targets of `call`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallTarget {
    /// A helper by id (`src` = 0).
    Helper(i32),
    /// A bpf-to-bpf call to `pc + 1 + imm` (`src` = `BPF_PSEUDO_CALL`).
    Local(i32),
    /// A kernel function by BTF id (`src` = `BPF_PSEUDO_KFUNC_CALL`).
    Kfunc(i32),
}

/// A classified instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Alu {
        width: Width,
        op: AluOp,
        dst: u8,
        src: Operand,
    },
    Neg {
        width: Width,
        dst: u8,
    },
    /// Byte-order conversion of the low `bits` (16, 32, 64).
    End {
        kind: Endian,
        bits: u8,
        dst: u8,
    },
    /// `lddw` (two slots).
    Ld64 {
        dst: u8,
        value: Ld64,
    },
    /// Legacy packet access `r0 = *(size *)skb[imm]`.
    LdAbs {
        size: Size,
        imm: i32,
    },
    /// Legacy packet access `r0 = *(size *)skb[src + imm]`.
    LdInd {
        size: Size,
        src: u8,
        imm: i32,
    },
    /// `dst = *(size *)(src + off)`, sign-extending if `signed`.
    Load {
        size: Size,
        signed: bool,
        dst: u8,
        src: u8,
        off: i16,
    },
    /// `*(size *)(dst + off) = src` (`Operand::Imm` for `BPF_ST`).
    Store {
        size: Size,
        dst: u8,
        off: i16,
        src: Operand,
    },
    Atomic {
        size: Size,
        op: AtomicOp,
        dst: u8,
        src: u8,
        off: i16,
    },
    /// Unconditional jump to `pc + 1 + off`; `long` for `ja32` (offset in `imm`).
    Ja {
        off: i32,
        long: bool,
    },
    /// Conditional jump to `pc + 1 + off`.
    Jmp {
        width: Width,
        cond: Cond,
        dst: u8,
        src: Operand,
        off: i16,
    },
    Call(CallTarget),
    /// Indirect call through a register (the register is in `dst`).
    Callx {
        reg: u8,
    },
    Exit,
}

/// A refused instruction: which slot and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub pc: usize,
    pub message: String,
}

impl DecodeError {
    pub fn new(pc: usize, message: impl Into<String>) -> DecodeError {
        DecodeError {
            pc,
            message: message.into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "insn {}: {}", self.pc, self.message)
    }
}

impl std::error::Error for DecodeError {}

fn check_reg(pc: usize, what: &str, reg: u8) -> Result<(), DecodeError> {
    if reg > MAX_REG {
        return Err(DecodeError::new(
            pc,
            format!("invalid {what} register r{reg}"),
        ));
    }
    Ok(())
}

fn reserved(pc: usize, insn: &Insn, field: &str) -> DecodeError {
    DecodeError::new(
        pc,
        format!(
            "opcode {:#04x} uses reserved field {field} (must be zero)",
            insn.code
        ),
    )
}

/// Requires the named fields of `insn` to be zero.
fn zero(
    pc: usize,
    insn: &Insn,
    dst: bool,
    src: bool,
    off: bool,
    imm: bool,
) -> Result<(), DecodeError> {
    if dst && insn.dst != 0 {
        return Err(reserved(pc, insn, "dst"));
    }
    if src && insn.src != 0 {
        return Err(reserved(pc, insn, "src"));
    }
    if off && insn.off != 0 {
        return Err(reserved(pc, insn, "off"));
    }
    if imm && insn.imm != 0 {
        return Err(reserved(pc, insn, "imm"));
    }
    Ok(())
}

/// Decodes the instruction at slot `pc`; returns it and the number of slots it takes (2 for
/// `lddw`, else 1).
pub fn decode(insns: &[Insn], pc: usize) -> Result<(Op, usize), DecodeError> {
    let Some(insn) = insns.get(pc) else {
        return Err(DecodeError::new(
            pc,
            format!("no instruction at {pc} (program has {})", insns.len()),
        ));
    };
    let insn = *insn;
    check_reg(pc, "dst", insn.dst)?;
    check_reg(pc, "src", insn.src).or_else(|err| {
        // `src` carries pseudo kinds for lddw and call, never above 6: still a 4-bit field.
        if insn.is_lddw() || insn.code == BPF_JMP | BPF_CALL {
            Ok(())
        } else {
            Err(err)
        }
    })?;
    let code = insn.code;
    let op = match class(code) {
        BPF_ALU | BPF_ALU64 => decode_alu(pc, insn)?,
        BPF_JMP | BPF_JMP32 => decode_jmp(pc, insn)?,
        BPF_LD => {
            if insn.is_lddw() {
                return decode_lddw(insns, pc, insn);
            }
            let size = Size::from_bits(code);
            match mode(code) {
                BPF_ABS if size != Size::DW => {
                    zero(pc, &insn, true, true, true, false)?;
                    Op::LdAbs {
                        size,
                        imm: insn.imm,
                    }
                }
                BPF_IND if size != Size::DW => {
                    zero(pc, &insn, true, false, true, false)?;
                    Op::LdInd {
                        size,
                        src: insn.src,
                        imm: insn.imm,
                    }
                }
                _ => return Err(DecodeError::new(pc, format!("unknown opcode {code:#04x}"))),
            }
        }
        BPF_LDX => {
            zero(pc, &insn, false, false, false, true)?;
            let size = Size::from_bits(code);
            let signed = match mode(code) {
                BPF_MEM => false,
                BPF_MEMSX if size != Size::DW => true,
                _ => return Err(DecodeError::new(pc, format!("unknown opcode {code:#04x}"))),
            };
            Op::Load {
                size,
                signed,
                dst: insn.dst,
                src: insn.src,
                off: insn.off,
            }
        }
        BPF_ST => {
            if mode(code) != BPF_MEM {
                return Err(DecodeError::new(pc, format!("unknown opcode {code:#04x}")));
            }
            zero(pc, &insn, false, true, false, false)?;
            Op::Store {
                size: Size::from_bits(code),
                dst: insn.dst,
                off: insn.off,
                src: Operand::Imm(insn.imm),
            }
        }
        _ => {
            // BPF_STX
            let size = Size::from_bits(code);
            match mode(code) {
                BPF_MEM => {
                    zero(pc, &insn, false, false, false, true)?;
                    Op::Store {
                        size,
                        dst: insn.dst,
                        off: insn.off,
                        src: Operand::Reg(insn.src),
                    }
                }
                BPF_ATOMIC if matches!(size, Size::W | Size::DW) => {
                    let Some(op) = AtomicOp::from_imm(insn.imm) else {
                        return Err(DecodeError::new(
                            pc,
                            format!("unknown atomic operation {:#x}", insn.imm),
                        ));
                    };
                    Op::Atomic {
                        size,
                        op,
                        dst: insn.dst,
                        src: insn.src,
                        off: insn.off,
                    }
                }
                _ => return Err(DecodeError::new(pc, format!("unknown opcode {code:#04x}"))),
            }
        }
    };
    Ok((op, 1))
}

fn decode_alu(pc: usize, insn: Insn) -> Result<Op, DecodeError> {
    let code = insn.code;
    let width = if class(code) == BPF_ALU64 {
        Width::W64
    } else {
        Width::W32
    };
    let unknown = || DecodeError::new(pc, format!("unknown opcode {code:#04x}"));
    match op(code) {
        BPF_NEG => {
            if source(code) != BPF_K {
                return Err(unknown());
            }
            zero(pc, &insn, false, true, true, true)?;
            return Ok(Op::Neg {
                width,
                dst: insn.dst,
            });
        }
        BPF_END => {
            let kind = match (width, source(code)) {
                (Width::W32, BPF_TO_LE) => Endian::Le,
                (Width::W32, _) => Endian::Be,
                (Width::W64, BPF_K) => Endian::Swap,
                (Width::W64, _) => return Err(unknown()),
            };
            zero(pc, &insn, false, true, true, false)?;
            if !matches!(insn.imm, 16 | 32 | 64) {
                return Err(DecodeError::new(
                    pc,
                    format!("invalid byte swap width {}", insn.imm),
                ));
            }
            return Ok(Op::End {
                kind,
                bits: insn.imm as u8,
                dst: insn.dst,
            });
        }
        _ => {}
    }
    let alu_op = match (op(code), insn.off) {
        (BPF_ADD, 0) => AluOp::Add,
        (BPF_SUB, 0) => AluOp::Sub,
        (BPF_MUL, 0) => AluOp::Mul,
        (BPF_DIV, 0) => AluOp::Div,
        (BPF_DIV, OFF_SIGNED) => AluOp::SDiv,
        (BPF_OR, 0) => AluOp::Or,
        (BPF_AND, 0) => AluOp::And,
        (BPF_LSH, 0) => AluOp::Lsh,
        (BPF_RSH, 0) => AluOp::Rsh,
        (BPF_MOD, 0) => AluOp::Mod,
        (BPF_MOD, OFF_SIGNED) => AluOp::SMod,
        (BPF_XOR, 0) => AluOp::Xor,
        (BPF_MOV, 0) => AluOp::Mov,
        (BPF_MOV, 8 | 16) if source(code) == BPF_X => AluOp::MovSx(insn.off as u8),
        (BPF_MOV, 32) if source(code) == BPF_X && width == Width::W64 => AluOp::MovSx(32),
        (BPF_ARSH, 0) => AluOp::Arsh,
        (BPF_ADD..=BPF_ARSH, _) => return Err(reserved(pc, &insn, "off")),
        _ => return Err(unknown()),
    };
    let src = if source(code) == BPF_X {
        zero(pc, &insn, false, false, false, true)?;
        Operand::Reg(insn.src)
    } else {
        zero(pc, &insn, false, true, false, false)?;
        Operand::Imm(insn.imm)
    };
    Ok(Op::Alu {
        width,
        op: alu_op,
        dst: insn.dst,
        src,
    })
}

fn decode_jmp(pc: usize, insn: Insn) -> Result<Op, DecodeError> {
    let code = insn.code;
    let jmp32 = class(code) == BPF_JMP32;
    let unknown = || DecodeError::new(pc, format!("unknown opcode {code:#04x}"));
    match op(code) {
        BPF_JA => {
            if source(code) != BPF_K {
                return Err(unknown());
            }
            if jmp32 {
                zero(pc, &insn, true, true, true, false)?;
                Ok(Op::Ja {
                    off: insn.imm,
                    long: true,
                })
            } else {
                zero(pc, &insn, true, true, false, true)?;
                Ok(Op::Ja {
                    off: i32::from(insn.off),
                    long: false,
                })
            }
        }
        BPF_CALL if !jmp32 => {
            if source(code) == BPF_X {
                zero(pc, &insn, false, true, true, true)?;
                return Ok(Op::Callx { reg: insn.dst });
            }
            zero(pc, &insn, true, false, true, false)?;
            let target = match insn.src {
                0 => CallTarget::Helper(insn.imm),
                BPF_PSEUDO_CALL => CallTarget::Local(insn.imm),
                BPF_PSEUDO_KFUNC_CALL => CallTarget::Kfunc(insn.imm),
                other => {
                    return Err(DecodeError::new(
                        pc,
                        format!("invalid call kind src={other}"),
                    ))
                }
            };
            Ok(Op::Call(target))
        }
        BPF_EXIT if !jmp32 && source(code) == BPF_K => {
            zero(pc, &insn, true, true, true, true)?;
            Ok(Op::Exit)
        }
        other => {
            let cond = Cond::from_code(other).ok_or_else(unknown)?;
            let src = if source(code) == BPF_X {
                zero(pc, &insn, false, false, false, true)?;
                Operand::Reg(insn.src)
            } else {
                zero(pc, &insn, false, true, false, false)?;
                Operand::Imm(insn.imm)
            };
            let width = if jmp32 { Width::W32 } else { Width::W64 };
            Ok(Op::Jmp {
                width,
                cond,
                dst: insn.dst,
                src,
                off: insn.off,
            })
        }
    }
}

fn decode_lddw(insns: &[Insn], pc: usize, insn: Insn) -> Result<(Op, usize), DecodeError> {
    zero(pc, &insn, false, false, true, false)?;
    let Some(next) = insns.get(pc + 1) else {
        return Err(DecodeError::new(pc, "lddw is missing its second slot"));
    };
    if next.code != 0 || next.dst != 0 || next.src != 0 || next.off != 0 {
        return Err(DecodeError::new(
            pc + 1,
            "second slot of lddw must have only imm set",
        ));
    }
    let value = match insn.src {
        0 => Ld64::Imm(u64::from(insn.imm as u32) | u64::from(next.imm as u32) << 32),
        BPF_PSEUDO_MAP_FD => {
            if next.imm != 0 {
                return Err(DecodeError::new(
                    pc + 1,
                    "map fd load must have a zero second imm",
                ));
            }
            Ld64::MapFd(insn.imm)
        }
        BPF_PSEUDO_MAP_VALUE => Ld64::MapValue {
            fd: insn.imm,
            off: next.imm as u32,
        },
        BPF_PSEUDO_BTF_ID..=BPF_PSEUDO_MAP_IDX_VALUE => Ld64::Pseudo {
            src: insn.src,
            imm_lo: insn.imm,
            imm_hi: next.imm,
        },
        other => {
            return Err(DecodeError::new(
                pc,
                format!("invalid lddw pseudo src={other}"),
            ))
        }
    };
    Ok((
        Op::Ld64 {
            dst: insn.dst,
            value,
        },
        2,
    ))
}

/// Decodes a whole program: every instruction, then every jump and local-call target (inside the
/// program and never into the second slot of an `lddw`). Returns `(pc, op)` pairs in order.
pub fn decode_program(insns: &[Insn]) -> Result<Vec<(usize, Op)>, DecodeError> {
    if insns.is_empty() {
        return Err(DecodeError::new(0, "empty program"));
    }
    let mut ops = Vec::with_capacity(insns.len());
    let mut is_start = vec![false; insns.len()];
    let mut pc = 0;
    while pc < insns.len() {
        let (op, len) = decode(insns, pc)?;
        is_start[pc] = true;
        ops.push((pc, op));
        pc += len;
    }
    for &(pc, op) in &ops {
        let off = match op {
            Op::Ja { off, .. } => off,
            Op::Jmp { off, .. } => i32::from(off),
            Op::Call(CallTarget::Local(imm)) => imm,
            _ => continue,
        };
        let target = pc as i64 + 1 + i64::from(off);
        if target < 0 || target >= insns.len() as i64 || !is_start[target as usize] {
            return Err(DecodeError::new(
                pc,
                format!("jump out of range or into lddw: target {target}"),
            ));
        }
    }
    Ok(ops)
}

impl Op {
    /// Encodes this instruction (one slot, or two for `lddw`) onto `out`.
    pub fn encode(&self, out: &mut Vec<Insn>) {
        let width_class =
            |width: Width, c32: u8, c64: u8| if width == Width::W64 { c64 } else { c32 };
        match *self {
            Op::Alu {
                width,
                op,
                dst,
                src,
            } => {
                let class = width_class(width, BPF_ALU, BPF_ALU64);
                let (code, off) = op.code_and_off();
                out.push(match src {
                    Operand::Reg(src) => Insn::new(class | code | BPF_X, dst, src, off, 0),
                    Operand::Imm(imm) => Insn::new(class | code | BPF_K, dst, 0, off, imm),
                });
            }
            Op::Neg { width, dst } => out.push(Insn::new(
                width_class(width, BPF_ALU, BPF_ALU64) | BPF_NEG,
                dst,
                0,
                0,
                0,
            )),
            Op::End { kind, bits, dst } => {
                let code = match kind {
                    Endian::Le => BPF_ALU | BPF_END | BPF_TO_LE,
                    Endian::Be => BPF_ALU | BPF_END | BPF_TO_BE,
                    Endian::Swap => BPF_ALU64 | BPF_END | BPF_K,
                };
                out.push(Insn::new(code, dst, 0, 0, i32::from(bits)));
            }
            Op::Ld64 { dst, value } => {
                let pair = match value {
                    Ld64::Imm(imm) => Insn::ld_imm64(dst, imm),
                    Ld64::MapFd(fd) => Insn::ld_map_fd(dst, fd),
                    Ld64::MapValue { fd, off } => Insn::ld_map_value(dst, fd, off as i32),
                    Ld64::Pseudo {
                        src,
                        imm_lo,
                        imm_hi,
                    } => Insn::ld_imm64_raw(dst, src, imm_lo, imm_hi),
                };
                out.extend_from_slice(&pair);
            }
            Op::LdAbs { size, imm } => {
                out.push(Insn::new(BPF_LD | BPF_ABS | size.bits(), 0, 0, 0, imm))
            }
            Op::LdInd { size, src, imm } => {
                out.push(Insn::new(BPF_LD | BPF_IND | size.bits(), 0, src, 0, imm))
            }
            Op::Load {
                size,
                signed,
                dst,
                src,
                off,
            } => {
                let mode = if signed { BPF_MEMSX } else { BPF_MEM };
                out.push(Insn::new(BPF_LDX | mode | size.bits(), dst, src, off, 0));
            }
            Op::Store {
                size,
                dst,
                off,
                src,
            } => out.push(match src {
                Operand::Reg(src) => Insn::stx_mem(size.bits(), dst, src, off),
                Operand::Imm(imm) => Insn::st_mem(size.bits(), dst, off, imm),
            }),
            Op::Atomic {
                size,
                op,
                dst,
                src,
                off,
            } => out.push(Insn::atomic(size.bits(), dst, src, off, op.imm())),
            Op::Ja { off, long: false } => out.push(Insn::ja(off as i16)),
            Op::Ja { off, long: true } => out.push(Insn::ja32(off)),
            Op::Jmp {
                width,
                cond,
                dst,
                src,
                off,
            } => {
                let class = width_class(width, BPF_JMP32, BPF_JMP);
                out.push(match src {
                    Operand::Reg(src) => Insn::new(class | cond.code() | BPF_X, dst, src, off, 0),
                    Operand::Imm(imm) => Insn::new(class | cond.code() | BPF_K, dst, 0, off, imm),
                });
            }
            Op::Call(CallTarget::Helper(id)) => out.push(Insn::call_helper(id)),
            Op::Call(CallTarget::Local(imm)) => out.push(Insn::call_local(imm)),
            Op::Call(CallTarget::Kfunc(id)) => out.push(Insn::new(
                BPF_JMP | BPF_CALL,
                0,
                BPF_PSEUDO_KFUNC_CALL,
                0,
                id,
            )),
            Op::Callx { reg } => out.push(Insn::callx(reg)),
            Op::Exit => out.push(Insn::exit()),
        }
    }

    /// Number of slots this instruction takes.
    pub fn slots(&self) -> usize {
        if matches!(self, Op::Ld64 { .. }) {
            2
        } else {
            1
        }
    }
}
