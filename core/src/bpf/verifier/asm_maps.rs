//! Assembly with named maps: `lddw %r1, map:NAME` loads the map `NAME` as a pseudo map load
//! (`BPF_PSEUDO_MAP_FD` with the map's fd), on top of the conformance-suite syntax of
//! [`crate::bpf::asm`]. This is the syntax `mimic verify` reads.
//!
//! The names are replaced by a marker constant before assembling and the marked `lddw`s are
//! turned into pseudo map loads after; a marker count that does not match the number of names
//! replaced is an error, so a program that happens to contain the marker value cannot be
//! silently rewritten.

use crate::bpf::asm::{assemble, AsmError};
use crate::isa::{Insn, BPF_PSEUDO_MAP_FD};

/// High 32 bits of the placeholder constant ("MAP\0").
const MARKER: u32 = 0x4d41_5000;

/// Assembles `source`, resolving `map:NAME` operands with `fd_of`.
pub fn assemble_with_maps(
    source: &str,
    fd_of: &dyn Fn(&str) -> Option<i32>,
) -> Result<Vec<Insn>, AsmError> {
    let mut fds: Vec<i32> = Vec::new();
    let mut text = String::with_capacity(source.len());
    for (index, line) in source.lines().enumerate() {
        let code_end = line.find('#').unwrap_or(line.len());
        let (code, comment) = line.split_at(code_end);
        let mut out = String::new();
        let mut rest = code;
        // Skip a leading `label:` (an identifier before the first colon).
        let insn_text = code
            .split_once(':')
            .filter(|(label, _)| {
                let l = label.trim();
                !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
            .map_or(code, |(_, r)| r);
        if code.contains("map:")
            && !insn_text
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("lddw")
        {
            return Err(AsmError {
                line: index + 1,
                column: 1,
                message: "map:NAME is only valid as an lddw operand".to_string(),
            });
        }
        while let Some(at) = rest.find("map:") {
            let name_start = at + 4;
            let name_len = rest[name_start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len() - name_start);
            let name = &rest[name_start..name_start + name_len];
            let fd = fd_of(name).ok_or_else(|| AsmError {
                line: index + 1,
                column: code.len() - rest.len() + at + 1,
                message: format!("unknown map '{name}'"),
            })?;
            out.push_str(&rest[..at]);
            out.push_str(&format!(
                "{:#x}",
                (u64::from(MARKER) << 32) | fds.len() as u64
            ));
            fds.push(fd);
            rest = &rest[name_start + name_len..];
        }
        out.push_str(rest);
        text.push_str(&out);
        text.push_str(comment);
        text.push('\n');
    }
    let mut insns = assemble(&text)?;
    if fds.is_empty() {
        // No reference: every constant is the program's own.
        return Ok(insns);
    }
    let mut replaced = 0;
    let mut pc = 0;
    while pc + 1 < insns.len() {
        let (lo, hi) = (insns[pc], insns[pc + 1]);
        if lo.is_lddw() && lo.src == 0 && hi.imm as u32 == MARKER {
            // The k-th marked load must be the k-th reference: anything else is a constant of
            // the program that looks like a marker, which must not become a map load.
            let fd = match fds.get(replaced) {
                Some(&fd) if lo.imm as u32 as usize == replaced => fd,
                _ => {
                    return Err(AsmError {
                        line: 1,
                        column: 1,
                        message: format!(
                            "the 64-bit constant {:#x} is reserved for map references",
                            (u64::from(hi.imm as u32) << 32) | u64::from(lo.imm as u32)
                        ),
                    })
                }
            };
            insns[pc].src = BPF_PSEUDO_MAP_FD;
            insns[pc].imm = fd;
            insns[pc + 1].imm = 0;
            replaced += 1;
            pc += 2;
        } else {
            pc += if lo.is_lddw() { 2 } else { 1 };
        }
    }
    if replaced != fds.len() {
        return Err(AsmError {
            line: 1,
            column: 1,
            message: format!("{} map references, {replaced} placed in lddw (map:NAME is only valid as an lddw operand)", fds.len()),
        });
    }
    Ok(insns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_names_become_pseudo_map_loads() {
        let src = "mov %r1, 0\nlddw %r1, map:outer # the outer map\ncall 1\nexit\n";
        let insns = assemble_with_maps(src, &|n| (n == "outer").then_some(7)).expect("assembles");
        assert_eq!(&insns[1..3], &Insn::ld_map_fd(1, 7));
        let labelled =
            assemble_with_maps("top: lddw %r2, map:outer\nexit", &|_| Some(4)).expect("label");
        assert_eq!(&labelled[0..2], &Insn::ld_map_fd(2, 4));
        let err = assemble_with_maps("lddw %r1, map:nope\nexit", &|_| None).expect_err("unknown");
        assert_eq!((err.line, err.message.as_str()), (1, "unknown map 'nope'"));
        let marker = format!(
            "lddw %r1, map:x\nlddw %r2, {:#x}\nexit",
            u64::from(MARKER) << 32
        );
        let err = assemble_with_maps(&marker, &|_| Some(3)).expect_err("a marker-shaped constant");
        assert!(err.message.contains("reserved for map references"), "{err}");
        let err = assemble_with_maps("mov %r1, map:x\nexit", &|_| Some(3)).expect_err("not lddw");
        assert!(
            err.message.contains("only valid as an lddw operand"),
            "{err}"
        );
    }
}
