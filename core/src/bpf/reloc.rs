//! Rewriting a program and moving its jumps, one pass at a time: the kernel's
//! `bpf_patch_insn_data` and `verifier_remove_insns` with their `bpf_adj_branches`, done for
//! every patch of a pass at once instead of one patch after another.
//!
//! A program is cut into [`Piece`]s, each an original instruction (two slots for `lddw`) and
//! the code that replaces it: the same instruction, a longer sequence, or nothing (removed).
//! Invariants: a jump between two instructions that stay lands on the same instruction
//! afterwards; a jump to a removed instruction lands on the first one after it that stays (as
//! the kernel's removal does for a jump to the first of a removed run, the only kind a verified
//! program has: to a `ja +0` being removed; no reached jump targets unreached code); a
//! replacement whose original is a jump starts with that jump,
//! whose offset is the one rewritten. The jumps moved are conditional jumps and `ja` (in
//! `off`), `gotol`, bpf-to-bpf calls and `BPF_PSEUDO_FUNC` loads (in `imm`).
//!
//! One pass gives what the kernel's removal-by-removal adjustment gives: offsets between kept
//! instructions only ever count the instructions between them, whatever order they were
//! removed or grown in (a test checks it against a step-by-step removal on random programs).

use crate::isa::{
    class, op, Insn, BPF_CALL, BPF_EXIT, BPF_JA, BPF_JMP, BPF_JMP32, BPF_PSEUDO_CALL,
    BPF_PSEUDO_FUNC,
};

/// `BPF_JMP32 | BPF_JA`: `gotol`, whose offset is in `imm`.
const GOTOL: u8 = BPF_JMP32 | BPF_JA;
/// `lddw` (`BPF_LD | BPF_IMM | BPF_DW`); with `src` = `BPF_PSEUDO_FUNC` its `imm` is an offset.
const LDDW: u8 = 0x18;

/// One original instruction and its replacement.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// Its first slot in the original program.
    pub pc: usize,
    /// Its slots in the original program (2 for `lddw`).
    pub len: usize,
    /// What stands in its place (empty: removed).
    pub code: Vec<Insn>,
}

impl Piece {
    /// The original slots `pc..pc + len` of `insns`, unchanged.
    pub fn keep(insns: &[Insn], pc: usize, len: usize) -> Piece {
        Piece {
            pc,
            len,
            code: insns[pc..pc + len].to_vec(),
        }
    }
    pub fn remove(pc: usize, len: usize) -> Piece {
        Piece::replace(pc, len, Vec::new())
    }
    pub fn replace(pc: usize, len: usize, code: Vec<Insn>) -> Piece {
        Piece { pc, len, code }
    }
}

/// The program after a pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Relocated {
    pub insns: Vec<Insn>,
    /// For each original slot, where its piece's code starts (the second slot of a kept
    /// `lddw`: one further; a removed instruction: where the next code starts); one more entry
    /// for the end.
    pub new_pc: Vec<usize>,
}

/// Where a jump-like instruction keeps its offset.
#[derive(Clone, Copy)]
enum OffsetIn {
    Off,
    Imm,
}

/// The field holding `insn`'s relative offset, if it has one.
fn offset_field(insn: &Insn) -> Option<OffsetIn> {
    let code = insn.code;
    if code == LDDW && insn.src == BPF_PSEUDO_FUNC {
        return Some(OffsetIn::Imm);
    }
    match (class(code), op(code)) {
        (BPF_JMP | BPF_JMP32, BPF_EXIT) => None,
        (BPF_JMP | BPF_JMP32, BPF_CALL) => (insn.src == BPF_PSEUDO_CALL).then_some(OffsetIn::Imm),
        (BPF_JMP | BPF_JMP32, _) if code == GOTOL => Some(OffsetIn::Imm),
        (BPF_JMP | BPF_JMP32, _) => Some(OffsetIn::Off),
        _ => None,
    }
}

/// Lays out `pieces` (in order, covering the `len` slots of `insns` exactly) and moves every
/// jump. Errors name the original instruction whose jump no longer fits or leaves the program.
pub fn relocate(insns: &[Insn], pieces: Vec<Piece>) -> Result<Relocated, String> {
    let mut new_pc = vec![0usize; insns.len() + 1];
    let mut at = 0usize;
    let mut next = 0usize;
    for piece in &pieces {
        if piece.pc != next || piece.pc + piece.len > insns.len() {
            return Err(format!(
                "pieces do not cover the program: slot {} where {next} was due",
                piece.pc
            ));
        }
        for k in 0..piece.len {
            new_pc[piece.pc + k] = at + k.min(piece.code.len());
        }
        at += piece.code.len();
        next = piece.pc + piece.len;
    }
    if next != insns.len() {
        return Err(format!("pieces end at slot {next} of {}", insns.len()));
    }
    new_pc[insns.len()] = at;
    let mut out = Vec::with_capacity(at);
    for Piece { pc, mut code, .. } in pieces {
        let here = new_pc[pc];
        if let (Some(field), Some(first)) = (offset_field(&insns[pc]), code.first_mut()) {
            let old = match field {
                OffsetIn::Off => i64::from(insns[pc].off),
                OffsetIn::Imm => i64::from(insns[pc].imm),
            };
            let target = pc as i64 + 1 + old;
            let moved = usize::try_from(target)
                .ok()
                .and_then(|t| new_pc.get(t))
                .ok_or_else(|| format!("insn {pc}: jump target {target} out of range"))?;
            let new = *moved as i64 - here as i64 - 1;
            match field {
                OffsetIn::Off => {
                    first.off = i16::try_from(new)
                        .map_err(|_| format!("insn {pc}: jump offset {new} out of range"))?;
                }
                OffsetIn::Imm => {
                    first.imm = i32::try_from(new)
                        .map_err(|_| format!("insn {pc}: offset {new} out of range"))?;
                }
            }
        }
        out.extend(code);
    }
    Ok(Relocated { insns: out, new_pc })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::BPF_JEQ;
    use crate::model::gen::{Choices, SeedChoices};

    #[test]
    fn a_grown_piece_pushes_later_targets_and_a_removed_one_pulls_them() {
        // 0: if r1 == 0 goto +3 (to 4); 1: r0 = 1 (grown to three); 2: r0 = 2 (removed);
        // 3: ja -3 (to 1); 4: exit
        let insns = vec![
            Insn::jmp_imm(BPF_JEQ, 1, 0, 3),
            Insn::mov64_imm(0, 1),
            Insn::mov64_imm(0, 2),
            Insn::ja(-3),
            Insn::exit(),
        ];
        let grown = vec![Insn::mov64_imm(0, 1); 3];
        let pieces = vec![
            Piece::keep(&insns, 0, 1),
            Piece::replace(1, 1, grown),
            Piece::remove(2, 1),
            Piece::keep(&insns, 3, 1),
            Piece::keep(&insns, 4, 1),
        ];
        let out = relocate(&insns, pieces).expect("fits");
        assert_eq!(out.new_pc, vec![0, 1, 4, 4, 5, 6]);
        assert_eq!(
            out.insns[0],
            Insn::jmp_imm(BPF_JEQ, 1, 0, 4),
            "still to the exit"
        );
        assert_eq!(
            out.insns[4],
            Insn::ja(-4),
            "still to the grown piece's start"
        );
    }

    #[test]
    fn a_jump_to_a_removed_instruction_lands_on_the_next_kept_one() {
        let insns = vec![Insn::ja(0), Insn::mov64_imm(0, 1), Insn::exit()];
        let pieces = vec![
            Piece::keep(&insns, 0, 1),
            Piece::remove(1, 1),
            Piece::keep(&insns, 2, 1),
        ];
        let out = relocate(&insns, pieces).expect("fits");
        assert_eq!(out.insns, vec![Insn::ja(0), Insn::exit()]);
    }

    #[test]
    fn pieces_must_cover_the_program() {
        let insns = vec![Insn::mov64_imm(0, 1), Insn::exit()];
        let gap = relocate(&insns, vec![Piece::keep(&insns, 1, 1)]);
        assert!(gap.is_err_and(|e| e.contains("slot 1 where 0")));
        let short = relocate(&insns, vec![Piece::keep(&insns, 0, 1)]);
        assert!(short.is_err_and(|e| e.contains("end at slot 1 of 2")));
    }

    /// The kernel's way, one removal at a time: `cnt` slots at `pos` go, and a jump at `curr`
    /// (its index after the removal) crossing them shrinks, one from after them to before them
    /// grows back (`bpf_adj_delta_to_off` for a removal).
    fn remove_one_by_one(insns: &[Insn], runs: &[(usize, usize)]) -> Vec<Insn> {
        let mut insns = insns.to_vec();
        // Back to front, so the runs' positions stay valid.
        for &(pos, cnt) in runs.iter().rev() {
            insns.drain(pos..pos + cnt);
            let (p, c) = (pos as i64, cnt as i64);
            for (curr, insn) in insns.iter_mut().enumerate() {
                if offset_field(insn).is_none() {
                    continue;
                }
                let curr = curr as i64;
                let off = i64::from(insn.off);
                let target = curr + off + 1;
                if curr < p && target >= p + c {
                    insn.off = (off - c) as i16;
                } else if curr >= p && target < p {
                    insn.off = (off + c) as i16;
                }
            }
        }
        insns
    }

    #[test]
    fn one_pass_matches_removing_run_by_run() {
        let mut choices = SeedChoices::new(0x2545_f491_4f6c_dd1d);
        let mut next = |n: usize| choices.below(n as u32) as usize;
        for case in 0..500 {
            let len = 4 + next(40);
            let removed: Vec<bool> = (0..len).map(|i| i > 0 && next(3) == 0).collect();
            // Jumps from kept slots go to kept slots or to the first of a removed run, as in a
            // verified program; removed slots jump anywhere.
            let targets: Vec<usize> = (0..len)
                .filter(|&t| !removed[t] || (t > 0 && !removed[t - 1]))
                .collect();
            let insns: Vec<Insn> = (0..len)
                .map(|i| {
                    if next(2) == 0 {
                        return Insn::mov64_imm(0, i as i32);
                    }
                    let t = if removed[i] {
                        next(len)
                    } else {
                        targets[next(targets.len())]
                    };
                    Insn::jmp_imm(BPF_JEQ, 1, 0, (t as i64 - i as i64 - 1) as i16)
                })
                .collect();
            let mut runs = Vec::new();
            let mut i = 0;
            while i < len {
                let run = removed[i..].iter().take_while(|&&r| r).count();
                if run > 0 {
                    runs.push((i, run));
                }
                i += run.max(1);
            }
            let pieces = (0..len)
                .map(|i| {
                    if removed[i] {
                        Piece::remove(i, 1)
                    } else {
                        Piece::keep(&insns, i, 1)
                    }
                })
                .collect();
            let one_pass = relocate(&insns, pieces).expect("fits").insns;
            assert_eq!(
                one_pass,
                remove_one_by_one(&insns, &runs),
                "case {case}: {insns:?} without {runs:?}"
            );
        }
    }

    #[test]
    fn an_offset_that_no_longer_fits_is_an_error() {
        let mut insns = vec![Insn::jmp_imm(BPF_JEQ, 1, 0, 1), Insn::mov64_imm(0, 1)];
        insns.push(Insn::exit());
        let huge = vec![Insn::mov64_imm(0, 1); 40_000];
        let pieces = vec![
            Piece::keep(&insns, 0, 1),
            Piece::replace(1, 1, huge),
            Piece::keep(&insns, 2, 1),
        ];
        let err = relocate(&insns, pieces).expect_err("40,000 does not fit in off");
        assert!(
            err.contains("insn 0: jump offset 40000 out of range"),
            "{err}"
        );
    }
}
