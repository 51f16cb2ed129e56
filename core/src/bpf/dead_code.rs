//! Dead code after verification: what the kernel does to the instructions its verifier never
//! reached, before the other fixups (`do_misc_fixups`, map lookup inlining) run.
//!
//! * Privileged loads (`bpf_capable`): `opt_hard_wire_dead_code_branches` turns a conditional
//!   jump with one successor never reached into `ja` (to the reached side: `ja +off` when the
//!   fall-through is dead, `ja +0` when the target is), then `opt_remove_dead_code` removes every
//!   run of instructions never reached, then `opt_remove_nops` removes every `ja +0` (exactly
//!   `BPF_JMP|BPF_JA` with all other fields zero; `gotol +0` stays). Each pass removes its
//!   instructions in one relocation ([`crate::bpf::reloc`]), which moves the jumps around them
//!   as the kernel's removals do.
//! * Unprivileged loads: `sanitize_dead_code` replaces every instruction never reached by `ja
//!   -1` (a trap should it ever run), keeping the length.
//!
//! "Reached" is [`InsnAux::seen`]: set by the verifier for every instruction it processed on
//! some path, including the second slot of a reached `lddw`, so a pair is kept or removed
//! whole. Invariant: only unreached instructions are removed or replaced, and a jump between
//! two kept instructions still lands on the same instruction afterwards.

use crate::bpf::reloc::{self, Piece};
use crate::bpf::verifier::InsnAux;
use crate::isa::{class, op, Insn, BPF_CALL, BPF_EXIT, BPF_JA, BPF_JMP, BPF_JMP32};

/// `BPF_JMP | BPF_JA`: the `ja` a hard-wired branch becomes (and, with offset 0, the nop).
const JA: u8 = BPF_JMP | BPF_JA;
/// The trap an unreached instruction of an unprivileged program becomes.
const TRAP: Insn = Insn::new(JA, 0, 0, -1, 0);
/// The nop `opt_remove_nops` removes.
const NOP: Insn = Insn::new(JA, 0, 0, 0, 0);

/// The program after the dead-code passes.
#[derive(Debug, Clone, PartialEq)]
pub struct Pruned {
    pub insns: Vec<Insn>,
    /// The verifier's facts, following the instructions they belong to.
    pub aux: Vec<InsnAux>,
    /// For each original instruction, its index now (`None`: removed).
    pub at: Vec<Option<usize>>,
    /// For each instruction now, its original index.
    pub origin: Vec<usize>,
}

/// The kernel's `insn_is_cond_jump`: `JMP` but not `ja`/`call`/`exit`, or `JMP32` but not
/// `gotol`.
fn is_cond_jump(code: u8) -> bool {
    match class(code) {
        BPF_JMP32 => op(code) != BPF_JA,
        BPF_JMP => !matches!(op(code), BPF_JA | BPF_CALL | BPF_EXIT),
        _ => false,
    }
}

/// The program being rewritten, with each instruction's facts and original index.
struct Work {
    insns: Vec<Insn>,
    aux: Vec<InsnAux>,
    origin: Vec<usize>,
}

/// Removes the slots `drop` picks in one relocation ([`reloc::relocate`]: the kernel's
/// `verifier_remove_insns` for each of them); facts and origins follow the slots kept.
fn remove_where(w: &mut Work, drop: impl Fn(&Insn, &InsnAux) -> bool) -> Result<(), String> {
    let kept: Vec<bool> = w
        .insns
        .iter()
        .zip(&w.aux)
        .map(|(insn, aux)| !drop(insn, aux))
        .collect();
    if kept.iter().all(|&k| k) {
        return Ok(());
    }
    let pieces = kept
        .iter()
        .enumerate()
        .map(|(i, &k)| {
            if k {
                Piece::keep(&w.insns, i, 1)
            } else {
                Piece::remove(i, 1)
            }
        })
        .collect();
    w.insns = reloc::relocate(&w.insns, pieces)?.insns;
    let mut flags = kept.iter();
    w.aux.retain(|_| flags.next().copied().unwrap_or(true));
    let mut flags = kept.iter();
    w.origin.retain(|_| flags.next().copied().unwrap_or(true));
    Ok(())
}

fn seen(aux: &[InsnAux], at: i64) -> bool {
    usize::try_from(at)
        .ok()
        .and_then(|i| aux.get(i))
        .is_some_and(|a| a.seen)
}

/// `opt_hard_wire_dead_code_branches`.
fn hard_wire_dead_code_branches(w: &mut Work) {
    for i in 0..w.insns.len() {
        let insn = w.insns[i];
        if !is_cond_jump(insn.code) {
            continue;
        }
        let off = if !seen(&w.aux, i as i64 + 1) {
            insn.off
        } else if !seen(&w.aux, i as i64 + 1 + i64::from(insn.off)) {
            0
        } else {
            continue;
        };
        w.insns[i] = Insn::new(JA, 0, 0, off, 0);
    }
}

/// `opt_remove_dead_code`: every run of unreached instructions.
fn remove_dead_code(w: &mut Work) -> Result<(), String> {
    remove_where(w, |_, aux| !aux.seen)
}

/// `opt_remove_nops`: each `ja +0` there is now. The kernel removes them front to back and does
/// not look back, so a forward jump that only becomes `ja +0` by a later removal stays (only
/// forward jumps can shrink to 0, and only by removals after them): one pass over the nops
/// present gives the same program.
fn remove_nops(w: &mut Work) -> Result<(), String> {
    remove_where(w, |insn, _| *insn == NOP)
}

/// `sanitize_dead_code`: unreached instructions become `ja -1`.
fn sanitize_dead_code(w: &mut Work) {
    for (insn, aux) in w.insns.iter_mut().zip(&w.aux) {
        if !aux.seen {
            *insn = TRAP;
        }
    }
}

/// The dead-code passes for a program the verifier accepted (`aux` one entry per slot).
pub fn after_verify(insns: &[Insn], aux: &[InsnAux], privileged: bool) -> Result<Pruned, String> {
    if aux.len() != insns.len() {
        return Err(format!(
            "{} instructions but {} verifier facts",
            insns.len(),
            aux.len()
        ));
    }
    let mut w = Work {
        insns: insns.to_vec(),
        aux: aux.to_vec(),
        origin: (0..insns.len()).collect(),
    };
    if privileged {
        hard_wire_dead_code_branches(&mut w);
        remove_dead_code(&mut w)?;
        remove_nops(&mut w)?;
    } else {
        sanitize_dead_code(&mut w);
    }
    let mut at = vec![None; insns.len()];
    for (now, &orig) in w.origin.iter().enumerate() {
        at[orig] = Some(now);
    }
    Ok(Pruned {
        insns: w.insns,
        aux: w.aux,
        at,
        origin: w.origin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::{BPF_JEQ, BPF_JGT};

    fn aux_of(seen: &[bool]) -> Vec<InsnAux> {
        seen.iter()
            .map(|&s| InsnAux {
                seen: s,
                ..InsnAux::default()
            })
            .collect()
    }

    #[test]
    fn a_fully_live_program_loses_nothing() {
        let insns = vec![
            Insn::mov64_imm(0, 1),
            Insn::jmp_imm(BPF_JEQ, 1, 0, 1),
            Insn::mov64_imm(0, 2),
            Insn::exit(),
        ];
        let out = after_verify(&insns, &aux_of(&[true; 4]), true).expect("valid");
        assert_eq!(out.insns, insns, "every instruction was reached");
        assert_eq!(out.at, vec![Some(0), Some(1), Some(2), Some(3)]);
    }

    #[test]
    fn a_branch_with_a_dead_target_is_hard_wired_then_removed_as_a_nop() {
        // if r1 == 0 goto +2 (never taken); r0 = 1; exit; r0 = 2 (dead); exit (dead)
        let insns = vec![
            Insn::jmp_imm(BPF_JEQ, 1, 0, 2),
            Insn::mov64_imm(0, 1),
            Insn::exit(),
            Insn::mov64_imm(0, 2),
            Insn::exit(),
        ];
        let aux = aux_of(&[true, true, true, false, false]);
        let out = after_verify(&insns, &aux, true).expect("valid");
        assert_eq!(
            out.insns,
            vec![Insn::mov64_imm(0, 1), Insn::exit()],
            "the jump became ja +0 and went with the dead tail"
        );
        assert_eq!(out.at, vec![None, Some(0), Some(1), None, None]);
    }

    #[test]
    fn a_branch_with_a_dead_fall_through_becomes_ja_to_its_target() {
        // r0 = 0; if r1 > 5 goto +4 (to the last exit); if r0 == 0 goto +2 (always);
        // r0 = 7 (dead); exit (dead); r0 += 1; exit. The first jump crosses both removals (the
        // dead pair, then the nop the second jump became) and shrinks by 3.
        let insns = vec![
            Insn::mov64_imm(0, 0),
            Insn::jmp_imm(BPF_JGT, 1, 5, 4),
            Insn::jmp_imm(BPF_JEQ, 0, 0, 2),
            Insn::mov64_imm(0, 7),
            Insn::exit(),
            Insn::alu64_imm(crate::isa::BPF_ADD, 0, 1),
            Insn::exit(),
        ];
        let aux = aux_of(&[true, true, true, false, false, true, true]);
        let out = after_verify(&insns, &aux, true).expect("valid");
        assert_eq!(
            out.insns,
            vec![
                Insn::mov64_imm(0, 0),
                Insn::jmp_imm(BPF_JGT, 1, 5, 1),
                Insn::alu64_imm(crate::isa::BPF_ADD, 0, 1),
                Insn::exit(),
            ],
            "ja +2 lost its two dead instructions and then was a nop; the jump over them \
             still lands on the last exit"
        );
    }

    #[test]
    fn backward_jumps_across_a_removed_range_grow_back() {
        // 0: r0 = 0; 1: ja +2; 2: r0 = 1 (dead); 3: exit (dead); 4: r0 += 1;
        // 5: if r0 < 3 goto -2 (to 4); 6: exit
        let insns = vec![
            Insn::mov64_imm(0, 0),
            Insn::ja(2),
            Insn::mov64_imm(0, 1),
            Insn::exit(),
            Insn::alu64_imm(crate::isa::BPF_ADD, 0, 1),
            Insn::jmp_imm(crate::isa::BPF_JLT, 0, 3, -2),
            Insn::exit(),
        ];
        let aux = aux_of(&[true, true, false, false, true, true, true]);
        let out = after_verify(&insns, &aux, true).expect("valid");
        assert_eq!(out.insns.len(), 4, "{:?}", out.insns);
        assert_eq!(
            out.insns[2],
            Insn::jmp_imm(crate::isa::BPF_JLT, 0, 3, -2),
            "a loop inside the kept code keeps its offset"
        );
        assert_eq!(out.at[4], Some(1));
    }

    #[test]
    fn a_reached_lddw_stays_whole_and_a_dead_one_goes_whole() {
        let lddw = Insn::ld_imm64(1, 0x1122_3344_5566_7788);
        let mut insns = vec![Insn::jmp_imm(BPF_JEQ, 1, 1, 2)];
        insns.extend(Insn::ld_imm64(2, 5));
        insns.extend(lddw);
        insns.push(Insn::mov64_imm(0, 0));
        insns.push(Insn::exit());
        // The jump is always taken: the first lddw (slots 1, 2) is dead, the second reached.
        let aux = aux_of(&[true, false, false, true, true, true, true]);
        let out = after_verify(&insns, &aux, true).expect("valid");
        assert_eq!(
            out.insns,
            vec![lddw[0], lddw[1], Insn::mov64_imm(0, 0), Insn::exit()],
            "the live pair kept whole, the dead pair removed whole"
        );
    }

    #[test]
    fn bpf_to_bpf_calls_and_gotol_are_adjusted_in_imm() {
        // 0: call +3 (to 4); 1: ja +1; 2: r0 = 9 (dead); 3: exit; 4: r0 = 0; 5: exit
        let gotol = Insn::new(BPF_JMP32 | BPF_JA, 0, 0, 0, 2);
        let insns = vec![
            Insn::call_local(3),
            gotol,
            Insn::mov64_imm(0, 9),
            Insn::exit(),
            Insn::mov64_imm(0, 0),
            Insn::exit(),
        ];
        let aux = aux_of(&[true, true, false, true, true, true]);
        let out = after_verify(&insns, &aux, true).expect("valid");
        assert_eq!(
            out.insns[0],
            Insn::call_local(2),
            "the call target moved by one"
        );
        assert_eq!(
            out.insns[1],
            Insn::new(BPF_JMP32 | BPF_JA, 0, 0, 0, 1),
            "gotol shrank and, not being `ja +0`, stays"
        );
    }

    #[test]
    fn unprivileged_dead_code_becomes_a_trap_in_place() {
        let insns = vec![
            Insn::jmp_imm(BPF_JEQ, 1, 0, 1),
            Insn::mov64_imm(0, 1),
            Insn::exit(),
        ];
        let out = after_verify(&insns, &aux_of(&[true, false, true]), false).expect("valid");
        assert_eq!(
            out.insns,
            vec![insns[0], TRAP, insns[2]],
            "the branch is not hard-wired and nothing moves"
        );
    }
}
