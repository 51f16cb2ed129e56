//! Assembler and disassembler for the text syntax of the BPF conformance suite
//! (`mov %r0, 1`, `ldxw %r0, [%r1+4]`, `jne %r0, 0x10, fail`, `lock fetch add [%r10-8], %r1`).
//!
//! * Registers are `%r0`..`%r10`; `r0` without `%` is accepted too.
//! * `#` starts a comment anywhere; `name:` defines a label (alone on its line or before an
//!   instruction); jumps and `call local` take a label or a signed slot offset (`+3`, `-1`).
//! * Mnemonics without suffix are 64-bit, suffix `32` is ALU32/JMP32 (`add64`/`neg64` are
//!   accepted as the 64-bit forms).
//! * Immediates are decimal or `0x` hex: 32-bit immediates accept `i32` in decimal and any
//!   32-bit pattern in hex (`0xffffffff` is -1), `lddw` any 64-bit value.
//!
//! Errors name the `line:column` of the offending token; nothing in the input can panic the
//! assembler. [`disassemble`] prints numeric offsets, so `assemble(disassemble(p)) == p`.

use crate::isa::{
    decode_program, AluOp, AtomicOp, CallTarget, Cond, DecodeError, Endian, Insn, Ld64, Op,
    Operand, Size, Width, MAX_REG,
};
use std::collections::BTreeMap;
use std::fmt;

/// An assembly error at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsmError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for AsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for AsmError {}

/// A token with its 1-based column.
#[derive(Debug, Clone, Copy)]
struct Tok<'a> {
    text: &'a str,
    column: usize,
}

/// One instruction line after the label and comment are removed.
struct Line<'a> {
    number: usize,
    mnemonic: Tok<'a>,
    /// Words between the mnemonic and the operands (`lock fetch add`, `call local`).
    words: Vec<Tok<'a>>,
    operands: Vec<Tok<'a>>,
}

/// What a jump-like operand refers to before labels are resolved.
enum Target<'a> {
    Offset(i64),
    Label(Tok<'a>),
}

/// Assembles a program. Labels may be used before they are defined.
pub fn assemble(source: &str) -> Result<Vec<Insn>, AsmError> {
    let mut lines = Vec::new();
    let mut labels: BTreeMap<&str, usize> = BTreeMap::new();
    // Slots of `exit` instructions: an undefined label `exit` means the next one (the suite's
    // `jne %r0, 0, exit` idiom).
    let mut exits: Vec<usize> = Vec::new();
    let mut slot = 0usize;
    for (index, raw) in source.lines().enumerate() {
        let number = index + 1;
        let text = match raw.find('#') {
            Some(at) => &raw[..at],
            None => raw,
        };
        let mut rest_start = 0;
        // A label: an identifier followed by ':' at the start of the line.
        if let Some(colon) = text.find(':') {
            let name = text[..colon].trim();
            let column = text[..colon].len() - text[..colon].trim_start().len() + 1;
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(err(number, column, format!("invalid label '{name}'")));
            }
            if labels.insert(name, slot).is_some() {
                return Err(err(number, column, format!("label '{name}' defined twice")));
            }
            rest_start = colon + 1;
        }
        let Some(line) = split_line(number, text, rest_start)? else {
            continue;
        };
        if line.mnemonic.text.eq_ignore_ascii_case("exit") {
            exits.push(slot);
        }
        slot += if line.mnemonic.text.eq_ignore_ascii_case("lddw") {
            2
        } else {
            1
        };
        lines.push(line);
    }
    let mut insns = Vec::with_capacity(slot);
    for line in &lines {
        let op = parse_line(line, insns.len(), &labels, &exits)?;
        op.encode(&mut insns);
    }
    if insns.is_empty() {
        return Err(err(1, 1, "no instructions".to_string()));
    }
    Ok(insns)
}

fn err(line: usize, column: usize, message: String) -> AsmError {
    AsmError {
        line,
        column,
        message,
    }
}

/// Splits `text[start..]` into mnemonic, leading words and comma-separated operands.
fn split_line(number: usize, text: &str, start: usize) -> Result<Option<Line<'_>>, AsmError> {
    let body = &text[start..];
    let mut words = Vec::new();
    let mut operands = Vec::new();
    let mut pos = 0;
    // Words up to the first operand-looking token: the mnemonic and qualifiers such as `fetch`.
    loop {
        let rest = &body[pos..];
        let trimmed = rest.trim_start();
        if trimmed.is_empty() {
            break;
        }
        let skip = rest.len() - trimmed.len();
        let word_len = trimmed
            .find(|c: char| c.is_whitespace() || c == ',')
            .unwrap_or(trimmed.len());
        let word = &trimmed[..word_len];
        let is_word = !words.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric());
        let qualifies = is_word
            && !trimmed[word_len..].trim_start().starts_with(',')
            && is_qualifier(words.first().map_or("", |first: &Tok<'_>| first.text), word);
        if words.is_empty() || qualifies {
            words.push(Tok {
                text: word,
                column: start + pos + skip + 1,
            });
            pos += skip + word_len;
            continue;
        }
        // The rest is the operand list.
        let mut column = start + pos + skip;
        for piece in trimmed.split(',') {
            let lead = piece.len() - piece.trim_start().len();
            operands.push(Tok {
                text: piece.trim(),
                column: column + lead + 1,
            });
            column += piece.len() + 1;
        }
        break;
    }
    if words.is_empty() {
        return Ok(None);
    }
    for operand in &operands {
        if operand.text.is_empty() {
            return Err(err(number, operand.column, "empty operand".to_string()));
        }
    }
    let mnemonic = words.remove(0);
    Ok(Some(Line {
        number,
        mnemonic,
        words,
        operands,
    }))
}

/// Words that may follow `lock` or `call` before the operands.
fn is_qualifier(mnemonic: &str, word: &str) -> bool {
    let word = word.to_ascii_lowercase();
    if mnemonic.eq_ignore_ascii_case("call") {
        return word == "local";
    }
    mnemonic.eq_ignore_ascii_case("lock")
        && (word == "fetch"
            || matches!(
                word.strip_suffix("32").unwrap_or(&word),
                "add" | "and" | "or" | "xor" | "xchg" | "cmpxchg"
            ))
}

fn parse_line(
    line: &Line<'_>,
    pc: usize,
    labels: &BTreeMap<&str, usize>,
    exits: &[usize],
) -> Result<Op, AsmError> {
    let n = line.number;
    let mnemonic = line.mnemonic.text.to_ascii_lowercase();
    let m = mnemonic.as_str();
    let ops = &line.operands;
    let expect = |count: usize| -> Result<(), AsmError> {
        if ops.len() != count {
            let column = ops.get(count).map_or(line.mnemonic.column, |t| t.column);
            return Err(err(
                n,
                column,
                format!(
                    "invalid number of operands for {m}: expected {count}, got {}",
                    ops.len()
                ),
            ));
        }
        Ok(())
    };
    if m == "lock" {
        return parse_lock(line);
    }
    if let Some(word) = line.words.first() {
        if m != "call" {
            return Err(err(
                n,
                word.column,
                format!("unexpected '{}' after {m}", word.text),
            ));
        }
    }
    let resolve = |target: Target<'_>| -> Result<i64, AsmError> {
        match target {
            Target::Offset(off) => Ok(off),
            Target::Label(tok) => match labels.get(tok.text) {
                Some(&slot) => Ok(slot as i64 - pc as i64 - 1),
                None if tok.text == "exit" => match exits.iter().find(|&&slot| slot > pc) {
                    Some(&slot) => Ok(slot as i64 - pc as i64 - 1),
                    None => Err(err(
                        n,
                        tok.column,
                        "no exit after this jump for target 'exit'".to_string(),
                    )),
                },
                None => Err(err(
                    n,
                    tok.column,
                    format!("undefined label '{}'", tok.text),
                )),
            },
        }
    };

    // ALU: add, add32, add64, sdiv, movsx832, neg, ...
    if let Some((op, width)) = alu_mnemonic(m) {
        expect(2)?;
        let dst = reg(n, ops[0])?;
        let src = operand(n, ops[1])?;
        if let AluOp::MovSx(_) = op {
            if let Operand::Imm(_) = src {
                return Err(err(
                    n,
                    ops[1].column,
                    format!("{m} takes a register source"),
                ));
            }
        }
        return Ok(Op::Alu {
            width,
            op,
            dst,
            src,
        });
    }
    match m {
        "neg" | "neg64" | "neg32" => {
            expect(1)?;
            let width = if m == "neg32" { Width::W32 } else { Width::W64 };
            return Ok(Op::Neg {
                width,
                dst: reg(n, ops[0])?,
            });
        }
        "exit" => {
            expect(0)?;
            return Ok(Op::Exit);
        }
        "lddw" => {
            expect(2)?;
            let dst = reg(n, ops[0])?;
            let value = imm64(n, ops[1])?;
            return Ok(Op::Ld64 {
                dst,
                value: Ld64::Imm(value),
            });
        }
        "ja" | "ja32" => {
            expect(1)?;
            let off = resolve(target(n, ops[0])?)?;
            return if m == "ja" {
                Ok(Op::Ja {
                    off: fit_off(n, ops[0], off)? as i32,
                    long: false,
                })
            } else {
                let off = i32::try_from(off)
                    .map_err(|_| err(n, ops[0].column, "jump offset out of range".into()))?;
                Ok(Op::Ja { off, long: true })
            };
        }
        "call" | "callx" => {
            if let Some(word) = line.words.first() {
                if !word.text.eq_ignore_ascii_case("local") || line.words.len() > 1 {
                    return Err(err(
                        n,
                        word.column,
                        format!("unexpected '{}' after call", word.text),
                    ));
                }
                expect(1)?;
                let off = resolve(target(n, ops[0])?)?;
                let imm = i32::try_from(off)
                    .map_err(|_| err(n, ops[0].column, "call offset out of range".into()))?;
                return Ok(Op::Call(CallTarget::Local(imm)));
            }
            expect(1)?;
            if is_register(ops[0].text) || m == "callx" {
                return Ok(Op::Callx {
                    reg: reg(n, ops[0])?,
                });
            }
            return Ok(Op::Call(CallTarget::Helper(imm32(n, ops[0])?)));
        }
        _ => {}
    }
    if let Some((kind, bits)) = endian_mnemonic(m) {
        expect(1)?;
        return Ok(Op::End {
            kind,
            bits,
            dst: reg(n, ops[0])?,
        });
    }
    if let Some((width, cond)) = jump_mnemonic(m) {
        expect(3)?;
        let dst = reg(n, ops[0])?;
        let src = operand(n, ops[1])?;
        let off = fit_off(n, ops[2], resolve(target(n, ops[2])?)?)?;
        return Ok(Op::Jmp {
            width,
            cond,
            dst,
            src,
            off,
        });
    }
    if let Some(rest) = m.strip_prefix("ldx") {
        let (signed, rest) = match rest.strip_prefix('s') {
            Some(rest) if !rest.is_empty() => (true, rest),
            _ => (false, rest),
        };
        if let Some(size) = size_suffix(rest).filter(|size| !(signed && *size == Size::DW)) {
            expect(2)?;
            let dst = reg(n, ops[0])?;
            let (src, off) = memory(n, ops[1])?;
            return Ok(Op::Load {
                size,
                signed,
                dst,
                src,
                off,
            });
        }
    }
    if let Some(rest) = m.strip_prefix("stx") {
        if let Some(size) = size_suffix(rest) {
            expect(2)?;
            let (dst, off) = memory(n, ops[0])?;
            return Ok(Op::Store {
                size,
                dst,
                off,
                src: Operand::Reg(reg(n, ops[1])?),
            });
        }
    }
    if let Some(rest) = m.strip_prefix("st") {
        if let Some(size) = size_suffix(rest) {
            expect(2)?;
            let (dst, off) = memory(n, ops[0])?;
            return Ok(Op::Store {
                size,
                dst,
                off,
                src: Operand::Imm(imm32(n, ops[1])?),
            });
        }
    }
    if let Some(size) = m.strip_prefix("ldabs").and_then(size_suffix) {
        expect(1)?;
        return Ok(Op::LdAbs {
            size,
            imm: imm32(n, ops[0])?,
        });
    }
    if let Some(size) = m.strip_prefix("ldind").and_then(size_suffix) {
        expect(2)?;
        return Ok(Op::LdInd {
            size,
            src: reg(n, ops[0])?,
            imm: imm32(n, ops[1])?,
        });
    }
    Err(err(
        n,
        line.mnemonic.column,
        format!("invalid mnemonic '{}'", line.mnemonic.text),
    ))
}

fn parse_lock(line: &Line<'_>) -> Result<Op, AsmError> {
    let n = line.number;
    let usage = |column: usize| err(n, column, "invalid number of operands for lock".to_string());
    let mut words = line.words.iter();
    let mut op_word = words.next().ok_or_else(|| usage(line.mnemonic.column))?;
    let fetch = op_word.text.eq_ignore_ascii_case("fetch");
    if fetch {
        op_word = words.next().ok_or_else(|| usage(op_word.column))?;
    }
    if let Some(extra) = words.next() {
        return Err(err(
            n,
            extra.column,
            format!("unexpected '{}' in lock", extra.text),
        ));
    }
    let name = op_word.text.to_ascii_lowercase();
    let (base, size) = match name.strip_suffix("32") {
        Some(base) => (base, Size::W),
        None => (name.as_str(), Size::DW),
    };
    let op = match (base, fetch) {
        ("add", fetch) => AtomicOp::Add { fetch },
        ("and", fetch) => AtomicOp::And { fetch },
        ("or", fetch) => AtomicOp::Or { fetch },
        ("xor", fetch) => AtomicOp::Xor { fetch },
        ("xchg", false) => AtomicOp::Xchg,
        ("cmpxchg", false) => AtomicOp::Cmpxchg,
        _ => {
            return Err(err(
                n,
                op_word.column,
                format!("invalid atomic operation '{}'", op_word.text),
            ))
        }
    };
    if line.operands.len() != 2 {
        return Err(usage(
            line.operands.get(2).map_or(op_word.column, |t| t.column),
        ));
    }
    let (dst, off) = memory(n, line.operands[0])?;
    let src = reg(n, line.operands[1])?;
    Ok(Op::Atomic {
        size,
        op,
        dst,
        src,
        off,
    })
}

fn alu_mnemonic(m: &str) -> Option<(AluOp, Width)> {
    let (base, width) = if let Some(base) = m.strip_suffix("32").filter(|b| !b.starts_with("movsx"))
    {
        (base, Width::W32)
    } else if let Some(base) = m.strip_suffix("64").filter(|b| !b.starts_with("movsx")) {
        (base, Width::W64)
    } else {
        (m, Width::W64)
    };
    let op = match base {
        "add" => AluOp::Add,
        "sub" => AluOp::Sub,
        "mul" => AluOp::Mul,
        "div" => AluOp::Div,
        "sdiv" => AluOp::SDiv,
        "or" => AluOp::Or,
        "and" => AluOp::And,
        "lsh" => AluOp::Lsh,
        "rsh" => AluOp::Rsh,
        "mod" => AluOp::Mod,
        "smod" => AluOp::SMod,
        "xor" => AluOp::Xor,
        "mov" => AluOp::Mov,
        "arsh" => AluOp::Arsh,
        "movsx832" => return Some((AluOp::MovSx(8), Width::W32)),
        "movsx1632" => return Some((AluOp::MovSx(16), Width::W32)),
        "movsx864" => return Some((AluOp::MovSx(8), Width::W64)),
        "movsx1664" => return Some((AluOp::MovSx(16), Width::W64)),
        "movsx3264" => return Some((AluOp::MovSx(32), Width::W64)),
        _ => return None,
    };
    Some((op, width))
}

fn endian_mnemonic(m: &str) -> Option<(Endian, u8)> {
    let (kind, bits) = if let Some(bits) = m.strip_prefix("bswap") {
        (Endian::Swap, bits)
    } else if let Some(bits) = m.strip_prefix("swap") {
        (Endian::Swap, bits)
    } else if let Some(bits) = m.strip_prefix("be") {
        (Endian::Be, bits)
    } else if let Some(bits) = m.strip_prefix("le") {
        (Endian::Le, bits)
    } else {
        return None;
    };
    match bits {
        "16" => Some((kind, 16)),
        "32" => Some((kind, 32)),
        "64" => Some((kind, 64)),
        _ => None,
    }
}

fn jump_mnemonic(m: &str) -> Option<(Width, Cond)> {
    let (base, width) = match m.strip_suffix("32") {
        Some(base) => (base, Width::W32),
        None => (m, Width::W64),
    };
    let cond = match base {
        "jeq" => Cond::Eq,
        "jgt" => Cond::Gt,
        "jge" => Cond::Ge,
        "jset" => Cond::Set,
        "jne" => Cond::Ne,
        "jsgt" => Cond::Sgt,
        "jsge" => Cond::Sge,
        "jlt" => Cond::Lt,
        "jle" => Cond::Le,
        "jslt" => Cond::Slt,
        "jsle" => Cond::Sle,
        _ => return None,
    };
    Some((width, cond))
}

fn size_suffix(s: &str) -> Option<Size> {
    match s {
        "b" => Some(Size::B),
        "h" => Some(Size::H),
        "w" => Some(Size::W),
        "dw" => Some(Size::DW),
        _ => None,
    }
}

fn is_register(text: &str) -> bool {
    let text = text.strip_prefix('%').unwrap_or(text);
    text.len() > 1 && text.starts_with('r') && text[1..].chars().all(|c| c.is_ascii_digit())
}

fn reg(n: usize, tok: Tok<'_>) -> Result<u8, AsmError> {
    let text = tok.text.strip_prefix('%').unwrap_or(tok.text);
    let digits = text
        .strip_prefix('r')
        .filter(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
    match digits.and_then(|d| d.parse::<u8>().ok()) {
        Some(reg) if reg <= MAX_REG => Ok(reg),
        _ => Err(err(
            n,
            tok.column,
            format!("invalid register '{}'", tok.text),
        )),
    }
}

/// A register or a 32-bit immediate.
fn operand(n: usize, tok: Tok<'_>) -> Result<Operand, AsmError> {
    if tok.text.starts_with('%') || is_register(tok.text) {
        return Ok(Operand::Reg(reg(n, tok)?));
    }
    Ok(Operand::Imm(imm32(n, tok)?))
}

/// Parses a signed decimal or `0x` hex integer as i128 (so range checks see the written value);
/// `hex` tells whether it was written in hex.
fn integer(text: &str) -> Option<(i128, bool)> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (hex, value) =
        if let Some(digits) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            if digits.is_empty() || digits.len() > 32 {
                return None;
            }
            (true, i128::from_str_radix(digits, 16).ok()?)
        } else {
            if body.is_empty() || body.len() > 38 || !body.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            (false, body.parse::<i128>().ok()?)
        };
    Some((if negative { -value } else { value }, hex))
}

fn imm32(n: usize, tok: Tok<'_>) -> Result<i32, AsmError> {
    let Some((value, hex)) = integer(tok.text) else {
        return Err(err(
            n,
            tok.column,
            format!("invalid immediate '{}'", tok.text),
        ));
    };
    // Hex spells a bit pattern (0xffffffff is -1); decimal must be a signed 32-bit value.
    let max = if hex {
        i128::from(u32::MAX)
    } else {
        i128::from(i32::MAX)
    };
    if value < i128::from(i32::MIN) || value > max {
        return Err(err(
            n,
            tok.column,
            format!("immediate '{}' out of 32-bit range", tok.text),
        ));
    }
    Ok(value as i64 as i32)
}

fn imm64(n: usize, tok: Tok<'_>) -> Result<u64, AsmError> {
    match integer(tok.text) {
        Some((value, _)) if value >= i128::from(i64::MIN) && value <= i128::from(u64::MAX) => {
            Ok(value as u64)
        }
        Some(_) => Err(err(
            n,
            tok.column,
            format!("immediate '{}' out of 64-bit range", tok.text),
        )),
        None => Err(err(
            n,
            tok.column,
            format!("invalid immediate '{}'", tok.text),
        )),
    }
}

fn fit_off(n: usize, tok: Tok<'_>, value: i64) -> Result<i16, AsmError> {
    i16::try_from(value)
        .map_err(|_| err(n, tok.column, format!("offset {value} out of 16-bit range")))
}

fn target<'a>(n: usize, tok: Tok<'a>) -> Result<Target<'a>, AsmError> {
    let first = tok.text.as_bytes()[0];
    if first == b'+' || first == b'-' || first.is_ascii_digit() {
        return match integer(tok.text) {
            Some((value, _)) if value.abs() < 1 << 40 => Ok(Target::Offset(value as i64)),
            _ => Err(err(
                n,
                tok.column,
                format!("invalid jump offset '{}'", tok.text),
            )),
        };
    }
    if tok
        .text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Ok(Target::Label(tok));
    }
    Err(err(
        n,
        tok.column,
        format!("invalid jump target '{}'", tok.text),
    ))
}

/// `[%rN]`, `[%rN+off]` or `[%rN-off]`.
fn memory(n: usize, tok: Tok<'_>) -> Result<(u8, i16), AsmError> {
    let inner = tok.text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    let Some(inner) = inner else {
        return Err(err(
            n,
            tok.column,
            format!("invalid memory operand '{}': expected [%rN+off]", tok.text),
        ));
    };
    let split = inner.find(['+', '-']);
    let (reg_text, off_text) = match split {
        Some(at) => (&inner[..at], &inner[at..]),
        None => (inner, ""),
    };
    let reg_tok = Tok {
        text: reg_text.trim(),
        column: tok.column + 1 + (reg_text.len() - reg_text.trim_start().len()),
    };
    let base = reg(n, reg_tok)?;
    if off_text.is_empty() {
        return Ok((base, 0));
    }
    let off_column = tok.column + 1 + reg_text.len();
    let compact: String = off_text.chars().filter(|c| !c.is_whitespace()).collect();
    match integer(&compact) {
        Some((value, _)) => {
            let value = i64::try_from(value).unwrap_or(i64::MAX);
            Ok((
                base,
                fit_off(
                    n,
                    Tok {
                        text: off_text,
                        column: off_column,
                    },
                    value,
                )?,
            ))
        }
        None => Err(err(n, off_column, format!("invalid offset '{off_text}'"))),
    }
}

/// Disassembles a program into the suite's syntax, one instruction per line, with numeric
/// jump offsets.
pub fn disassemble(insns: &[Insn]) -> Result<String, DecodeError> {
    let mut out = String::new();
    for (_, op) in decode_program(insns)? {
        out.push_str(&op_text(&op));
        out.push('\n');
    }
    Ok(out)
}

fn signed(off: i64) -> String {
    if off < 0 {
        format!("{off}")
    } else {
        format!("+{off}")
    }
}

fn mem_text(reg: u8, off: i16) -> String {
    format!("[%r{reg}{}]", signed(i64::from(off)))
}

fn operand_text(src: Operand) -> String {
    match src {
        Operand::Reg(reg) => format!("%r{reg}"),
        Operand::Imm(imm) => format!("{imm}"),
    }
}

fn size_text(size: Size) -> &'static str {
    match size {
        Size::B => "b",
        Size::H => "h",
        Size::W => "w",
        Size::DW => "dw",
    }
}

/// One instruction in the suite's syntax.
pub fn op_text(op: &Op) -> String {
    let suffix = |width: Width| if width == Width::W32 { "32" } else { "" };
    match *op {
        Op::Alu {
            width,
            op,
            dst,
            src,
        } => {
            let name = match op {
                AluOp::Add => "add",
                AluOp::Sub => "sub",
                AluOp::Mul => "mul",
                AluOp::Div => "div",
                AluOp::SDiv => "sdiv",
                AluOp::Or => "or",
                AluOp::And => "and",
                AluOp::Lsh => "lsh",
                AluOp::Rsh => "rsh",
                AluOp::Mod => "mod",
                AluOp::SMod => "smod",
                AluOp::Xor => "xor",
                AluOp::Mov => "mov",
                AluOp::Arsh => "arsh",
                AluOp::MovSx(bits) => {
                    let to = if width == Width::W32 { 32 } else { 64 };
                    return format!("movsx{bits}{to} %r{dst}, {}", operand_text(src));
                }
            };
            format!("{name}{} %r{dst}, {}", suffix(width), operand_text(src))
        }
        Op::Neg { width, dst } => format!("neg{} %r{dst}", suffix(width)),
        Op::End { kind, bits, dst } => {
            let name = match kind {
                Endian::Le => "le",
                Endian::Be => "be",
                Endian::Swap => "bswap",
            };
            format!("{name}{bits} %r{dst}")
        }
        Op::Ld64 {
            dst,
            value: Ld64::Imm(imm),
        } => format!("lddw %r{dst}, {imm:#x}"),
        Op::Ld64 { dst, value } => format!("# lddw %r{dst}, {value:?} (pseudo load: no text form)"),
        Op::LdAbs { size, imm } => format!("ldabs{} {imm}", size_text(size)),
        Op::LdInd { size, src, imm } => format!("ldind{} %r{src}, {imm}", size_text(size)),
        Op::Load {
            size,
            signed,
            dst,
            src,
            off,
        } => {
            format!(
                "ldx{}{} %r{dst}, {}",
                if signed { "s" } else { "" },
                size_text(size),
                mem_text(src, off)
            )
        }
        Op::Store {
            size,
            dst,
            off,
            src: Operand::Reg(src),
        } => {
            format!("stx{} {}, %r{src}", size_text(size), mem_text(dst, off))
        }
        Op::Store {
            size,
            dst,
            off,
            src: Operand::Imm(imm),
        } => {
            format!("st{} {}, {imm}", size_text(size), mem_text(dst, off))
        }
        Op::Atomic {
            size,
            op,
            dst,
            src,
            off,
        } => {
            let (fetch, name) = match op {
                AtomicOp::Add { fetch } => (fetch, "add"),
                AtomicOp::And { fetch } => (fetch, "and"),
                AtomicOp::Or { fetch } => (fetch, "or"),
                AtomicOp::Xor { fetch } => (fetch, "xor"),
                AtomicOp::Xchg => (false, "xchg"),
                AtomicOp::Cmpxchg => (false, "cmpxchg"),
            };
            let fetch = if fetch { "fetch " } else { "" };
            let bits = if size == Size::W { "32" } else { "" };
            format!("lock {fetch}{name}{bits} {}, %r{src}", mem_text(dst, off))
        }
        Op::Ja { off, long } => format!(
            "ja{} {}",
            if long { "32" } else { "" },
            signed(i64::from(off))
        ),
        Op::Jmp {
            width,
            cond,
            dst,
            src,
            off,
        } => {
            let name = match cond {
                Cond::Eq => "jeq",
                Cond::Gt => "jgt",
                Cond::Ge => "jge",
                Cond::Set => "jset",
                Cond::Ne => "jne",
                Cond::Sgt => "jsgt",
                Cond::Sge => "jsge",
                Cond::Lt => "jlt",
                Cond::Le => "jle",
                Cond::Slt => "jslt",
                Cond::Sle => "jsle",
            };
            format!(
                "{name}{} %r{dst}, {}, {}",
                suffix(width),
                operand_text(src),
                signed(i64::from(off))
            )
        }
        Op::Call(CallTarget::Helper(id)) => format!("call {id}"),
        Op::Call(CallTarget::Local(imm)) => format!("call local {}", signed(i64::from(imm))),
        Op::Call(CallTarget::Kfunc(id)) => format!("# call kfunc {id} (no text form)"),
        Op::Callx { reg } => format!("call %r{reg}"),
        Op::Exit => "exit".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::*;

    #[test]
    fn assembles_the_suite_syntax_with_labels_and_comments() {
        let source = "\
            # comment line\n\
            mov %r0, 1   # trailing comment\n\
            lddw r1, 0x1122334455667788\n\
            jne %r0, 0x10, done\n\
            ldxw %r2, [%r1+4]\n\
            stxdw [%r10-8], %r2\n\
            lock fetch add32 [%r10-8], %r3\n\
            call local func\n\
            done:\n\
            exit\n\
            func: mov32 %r0, -1\n\
            exit\n";
        let insns = assemble(source).expect("valid program");
        assert_eq!(insns[0], Insn::mov64_imm(0, 1));
        assert_eq!(&insns[1..3], &Insn::ld_imm64(1, 0x1122_3344_5566_7788));
        assert_eq!(
            insns[3],
            Insn::jmp_imm(BPF_JNE, 0, 0x10, 4),
            "jump to `done` at slot 8"
        );
        assert_eq!(insns[4], Insn::ldx_mem(BPF_W, 2, 1, 4));
        assert_eq!(insns[5], Insn::stx_mem(BPF_DW, 10, 2, -8));
        assert_eq!(
            insns[6],
            Insn::atomic(BPF_W, 10, 3, -8, BPF_ADD as i32 | BPF_FETCH)
        );
        assert_eq!(insns[7], Insn::call_local(1), "call to `func` at slot 9");
        assert_eq!(insns[9], Insn::mov32_imm(0, -1));
    }

    #[test]
    fn disassembly_reassembles_to_the_same_program() {
        let source =
            "mov %r0, 0xffffffff\nsdiv32 %r0, 3\nmovsx1664 %r1, %r0\nbswap16 %r0\nle32 %r1\n\
                      ldxsh %r2, [%r1-2]\nstb [%r10-1], 7\nlock cmpxchg [%r10-8], %r1\nja32 +1\n\
                      jsle32 %r0, %r1, -2\ncall 5\ncall %r3\nexit\n";
        let insns = assemble(source).expect("valid");
        let text = disassemble(&insns).expect("decodes");
        assert_eq!(
            assemble(&text).expect("own output assembles"),
            insns,
            "{text}"
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        let cases = [
            ("or %r0, %r50\nexit", "1:9: invalid register '%r50'"),
            ("mov %r0, 1\nldxq %r0, %r1", "2:1: invalid mnemonic 'ldxq'"),
            ("ldxb %r0, %r1\nexit", "1:11: invalid memory operand"),
            (
                "ldxb %r0, [%r1+0x10000]\nexit",
                "1:15: offset 65536 out of 16-bit range",
            ),
            (
                "mov32 %r0, 2147483648\nexit",
                "1:12: immediate '2147483648' out of 32-bit range",
            ),
            ("mov32 %r0, 0x100000000\nexit", "1:12: immediate"),
            ("ja NOT_A_LABEL\nexit", "1:4: undefined label 'NOT_A_LABEL'"),
            (
                "lock or [%r10-8]\nexit",
                "1:6: invalid number of operands for lock",
            ),
            ("lock\nexit", "1:1: invalid number of operands for lock"),
            ("lddw %r0\nexit", "1:1: invalid number of operands for lddw"),
            ("", "1:1: no instructions"),
        ];
        for (source, expected) in cases {
            let error = assemble(source).expect_err(source).to_string();
            assert!(
                error.starts_with(expected),
                "{source:?}: got {error:?}, want {expected:?}"
            );
        }
    }

    #[test]
    fn never_panics_on_odd_text() {
        for source in [
            "[",
            "]",
            ":",
            "a:",
            "mov",
            "mov ,",
            "mov %r0,",
            "ldxw %r0, [",
            "ldxw %r0, []",
            "ldxw %r0, [%r1+]",
            "jne %r0, 1, +",
            "lock fetch",
            "call local",
            "st [%r1-x], 1",
            "ja -",
            "lddw %r0, 0x",
            "mov %r0, --1",
            "é: exit",
            "mov %é, 1",
            "call local a b",
            "\u{0}",
        ] {
            let _ = assemble(source);
        }
    }
}
