//! The kernel's xlated dump against mimic's fixed-up program: slot by slot, after undoing what
//! differs from build to build and is not mimic's to model (the offset of `ifindex` in the
//! kernel's own `struct net_device`; `bpf_get_smp_processor_id` inlined through a per-CPU
//! instruction outside the ISA, D20). Every kernel-check line that compares fixups (the
//! program sets, the packet cases, the objects) goes through [`compare_xlated`], so each
//! normalisation is written once and applies everywhere.
//!
//! The alternative, each caller undoing what it happened to meet, let an XDP object that reads
//! the CPU fail its line while the same program passed as a packet case.

use super::bijection::Bijection;
use super::check::Check;
use super::KernelSys;
use mimic_core::bpf::fixup::{fixup, Fixed};
use mimic_core::bpf::helpers::HelperId;
use mimic_core::bpf::verifier::Verified;
use mimic_core::bpf::xdp::buff;
use mimic_core::isa::{
    Insn, BPF_ALU, BPF_ALU64, BPF_CALL, BPF_DW, BPF_JMP, BPF_K, BPF_LDX, BPF_MEM, BPF_MOV,
    BPF_PSEUDO_CALL, BPF_W, BPF_X,
};
use mimic_core::mutants::Mutants;
use mimic_core::uapi::Fd;
use std::collections::BTreeMap;

const CALL: u8 = BPF_JMP | BPF_CALL;

/// What [`compare_xlated`] undid in the kernel's dump before comparing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Normalised {
    /// Inlined `bpf_get_smp_processor_id` reads turned back into calls (D20).
    pub cpu_inlined: usize,
    /// The kernel's offset of `net_device.ifindex`, where an `ingress_ifindex` read was seen.
    pub ifindex_offset: Option<i16>,
    /// Slots that address the build's `struct sk_buff`, compared without their offset (or a
    /// bit field's mask): mimic's `sk_buff` is its own.
    pub layout_slots: usize,
}

/// Compares mimic's fixed-up program with the kernel's xlated dump after undoing the build's
/// own differences; `Ok` says which were undone, `Err` names the first slot that differs.
pub fn compare_xlated(
    fixed: &Fixed,
    theirs: &[Insn],
    ids: &BTreeMap<u32, u32>,
) -> Result<Normalised, String> {
    let mut theirs = theirs.to_vec();
    let ifindex_offset = own_ifindex_offset(&fixed.insns, &mut theirs);
    let cpu_inlined = calls_for_inlined_cpu_reads(&mut theirs);
    let layout_slots = own_skb_layout(fixed, &mut theirs);
    compare_fixups(fixed, &theirs, ids)?;
    Ok(Normalised {
        cpu_inlined,
        ifindex_offset,
        layout_slots,
    })
}

/// Takes mimic's offset (for an ALU slot, its mask; for a jump, the constant it compares with)
/// into each of the kernel's slots that
/// [`Fixed::layout_slots`] names, where the two slots are the same instruction otherwise;
/// returns how many. Run after the CPU reads are folded back, so the slots line up.
fn own_skb_layout(fixed: &Fixed, theirs: &mut [Insn]) -> usize {
    let mut taken = 0;
    for &slot in &fixed.layout_slots {
        let (Some(ours), Some(kernel)) = (fixed.insns.get(slot), theirs.get_mut(slot)) else {
            continue;
        };
        if (ours.code, ours.dst, ours.src) != (kernel.code, kernel.dst, kernel.src) {
            continue;
        }
        if matches!(ours.code & 7, BPF_ALU | BPF_ALU64 | BPF_JMP) {
            kernel.imm = ours.imm;
        } else {
            kernel.off = ours.off;
        }
        taken += 1;
    }
    taken
}

/// Compares mimic's fixed-up program with the kernel's xlated dump; `Err` names the first slot
/// that differs. Map and value loads are compared as the dump shows them (the map's id, through
/// `ids`, and the offset); helper and kernel-function calls by a bijection of their immediates
/// (kernel addresses against mimic's ids); a bpf-to-bpf call as the dump of a JIT-compiled
/// program has it (`off`: the relative target, `imm`: the callee's subprogram number).
fn compare_fixups(fixed: &Fixed, theirs: &[Insn], ids: &BTreeMap<u32, u32>) -> Result<(), String> {
    let ours = fixed.as_dumped();
    if ours.len() != theirs.len() {
        return Err(format!(
            "length: mimic {} slots, kernel {}",
            ours.len(),
            theirs.len()
        ));
    }
    let map_loads: BTreeMap<usize, u32> = fixed.map_loads.iter().map(|l| (l.pc, l.id)).collect();
    // Subprogram starts (the main program is number 0), from mimic's bpf-to-bpf calls.
    // Where a bpf-to-bpf call at `pc` goes (its `imm` is relative to the next slot).
    let target = |pc: usize, call: &Insn| (pc as i64 + i64::from(call.imm) + 1) as usize;
    let mut starts = vec![0usize];
    for (pc, insn) in ours.iter().enumerate() {
        if insn.code == CALL && insn.src == BPF_PSEUDO_CALL {
            starts.push(target(pc, insn));
        }
    }
    starts.sort_unstable();
    starts.dedup();
    let mut calls = Bijection::new();
    let mut skip_next = false;
    for (pc, (a, b)) in ours.iter().zip(theirs).enumerate() {
        if skip_next {
            skip_next = false;
            continue;
        }
        let differs = || format!("slot {pc}: mimic {a:?}, kernel {b:?}");
        if let Some(id) = map_loads.get(&pc) {
            skip_next = true;
            // In an xlated dump the kernel puts the map's id where the loader put the fd.
            let same = b.is_lddw()
                && (b.dst, b.src) == (a.dst, a.src)
                && ids.get(id).is_some_and(|k| *k as i32 == b.imm)
                && theirs.get(pc + 1).map(|n| n.imm) == ours.get(pc + 1).map(|n| n.imm);
            if !same {
                return Err(format!("{} (map id {id})", differs()));
            }
            continue;
        }
        if a.code == CALL && a.src == BPF_PSEUDO_CALL {
            let subprog = starts
                .iter()
                .position(|&s| s == target(pc, a))
                .unwrap_or(usize::MAX);
            let same = (b.code, b.src, b.dst) == (a.code, a.src, a.dst)
                && i32::from(b.off) == a.imm
                && b.imm as usize == subprog;
            if !same {
                return Err(format!("{} (a call of subprogram {subprog})", differs()));
            }
            continue;
        }
        if a.code == CALL && b.code == CALL {
            if a.src != b.src || a.dst != b.dst || a.off != b.off {
                return Err(differs());
            }
            calls
                .relate(a.imm as u32, b.imm as u32)
                .map_err(|e| format!("{}: call targets: {e}", differs()))?;
            continue;
        }
        if a.is_lddw() {
            skip_next = true;
        }
        if (a.code, a.dst, a.src, a.off, a.imm) != (b.code, b.dst, b.src, b.off, b.imm) {
            return Err(differs());
        }
    }
    Ok(())
}

/// mimic's fixed-up program and the kernel's xlated one, one instruction a line, side by side
/// (map ids are each side's own; a `*` marks lines whose text differs).
pub fn side_by_side(ours: &Fixed, theirs: &[Insn]) -> String {
    /// Width of mimic's column.
    const COLUMN: usize = 44;
    let ours = ours
        .dump_xlated()
        .unwrap_or_else(|e| format!("(mimic's program does not print: {e})"));
    let theirs = super::dump(theirs);
    let (a, b): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
    let mut out = format!("{:<COLUMN$}   {}", "mimic", "kernel");
    for k in 0..a.len().max(b.len()) {
        let (l, r) = (
            a.get(k).copied().unwrap_or(""),
            b.get(k).copied().unwrap_or(""),
        );
        // Compare without the numbers the sides may differ in legitimately (map ids, call
        // addresses), roughly: only the opcode and the first word after it.
        let key = |line: &str| {
            line.split_whitespace()
                .skip(1)
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mark = if key(l) == key(r) { ' ' } else { '*' };
        out.push_str(&format!("\n{l:<COLUMN$} {mark} {r}"));
    }
    out
}

/// [`tally`] for a program both sides accepted: the kernel's dump of `prog` against mimic's
/// fixups of `verified` (the correct core's).
pub fn tally_loaded(
    check: &mut Check,
    kernel: &KernelSys,
    prog: Fd,
    verified: &Verified,
    name: &str,
    ids: &BTreeMap<u32, u32>,
) -> Option<Normalised> {
    let (theirs, ours) = (kernel.xlated(prog), fixup(verified, Mutants::NONE));
    tally(
        check,
        name,
        theirs.as_deref().map_err(|e| e.to_string()),
        ours.as_ref().map_err(|e| e.to_string()),
        ids,
    )
}

/// One program's case of a fixups line: the kernel's xlated dump (`theirs`) against mimic's
/// fixed-up program (`ours`), counted as agreeing, as a known difference (the CPU id the kernel
/// inlines, D20; an `sk_buff` field mimic keeps plain, D22) or noted with both listings. The
/// caller counts the case. Returns what [`compare_xlated`] undid when the slots compared.
pub fn tally(
    check: &mut Check,
    name: &str,
    theirs: Result<&[Insn], String>,
    ours: Result<&Fixed, String>,
    ids: &BTreeMap<u32, u32>,
) -> Option<Normalised> {
    let known =
        |check: &mut Check, what: &str| *check.known.entry(what.to_string()).or_insert(0) += 1;
    match (theirs, ours) {
        (Ok(x), Ok(f)) => match compare_xlated(f, x, ids) {
            Ok(n) => {
                if n.cpu_inlined == 0 {
                    check.agreed += 1;
                } else {
                    known(check, CPU_INLINED);
                }
                Some(n)
            }
            Err(_) if f.plain_fields => {
                known(check, PLAIN_FIELDS);
                None
            }
            Err(why) => {
                check.note(
                    "slot differs",
                    format!("{name}: {why}\n{}", side_by_side(f, x)),
                );
                None
            }
        },
        (Err(e), _) => {
            check.note("no xlated", format!("{name}: {e}"));
            None
        }
        (_, Err(e)) => {
            check.note("mimic fixup fails", format!("{name}: {e}"));
            None
        }
    }
}

/// A known difference: the program touches an `sk_buff` field mimic keeps plain (D22).
pub const PLAIN_FIELDS: &str = "sk_buff field mimic keeps plain (D22)";

/// The known difference of an xlated program that reads the CPU (docs/kernel-disagreements.md).
pub const CPU_INLINED: &str = "bpf_get_smp_processor_id inlined by the kernel (D20)";

/// `BPF_MOV64_PERCPU_REG`'s `off`: the kernel-internal move that turns a per-CPU offset into
/// this CPU's address.
const BPF_ADDR_PERCPU: i16 = -1;

/// The kernel (x86-64) inlines `bpf_get_smp_processor_id` as `r0 = &cpu_number` (a per-CPU
/// offset), `r0 = this CPU's address of it` (an instruction only the kernel emits) and a
/// 32-bit load; mimic keeps the call. Each such triple in `theirs` becomes the call again so
/// the rest is compared slot by slot; returns how many there were.
fn calls_for_inlined_cpu_reads(theirs: &mut Vec<Insn>) -> usize {
    let mut found = 0;
    let mut at = 0;
    while at + 3 <= theirs.len() {
        let [offset, percpu, load] = [theirs[at], theirs[at + 1], theirs[at + 2]];
        let r = offset.dst;
        if offset.code == BPF_ALU64 | BPF_MOV | BPF_K
            && percpu.code == BPF_ALU64 | BPF_MOV | BPF_X
            && (percpu.dst, percpu.src, percpu.off) == (r, r, BPF_ADDR_PERCPU)
            && load.code == BPF_LDX | BPF_MEM | BPF_W
            && (load.dst, load.src, load.off) == (r, r, 0)
            && r == 0
        {
            let call = Insn::call_helper(HelperId::GetSmpProcessorId as i32);
            theirs.splice(at..at + 3, [call]);
            found += 1;
        }
        at += 1;
    }
    found
}

/// The last load of an `ingress_ifindex` read (`rX = rxq; rX = rX->dev; rX = rX->ifindex`)
/// reads `struct net_device` at an offset that differs from build to build, and mimic's device
/// is its own: where the kernel's dump has the chain and mimic's fixed-up program has its own
/// at the same slot, the kernel's offset is replaced by mimic's and returned.
fn own_ifindex_offset(ours: &[Insn], theirs: &mut [Insn]) -> Option<i16> {
    let chain = |insns: &[Insn], at: usize| {
        let [rxq, dev, ifindex] = insns.get(at..at + 3)? else {
            return None;
        };
        let dst = rxq.dst;
        let load = |i: &Insn, size: u8| i.code == (BPF_LDX | BPF_MEM | size);
        (load(rxq, BPF_DW)
            && rxq.off == buff::RXQ
            && load(dev, BPF_DW)
            && (dev.dst, dev.src, dev.off) == (dst, dst, buff::RXQ_DEV)
            && load(ifindex, BPF_W)
            && (ifindex.dst, ifindex.src) == (dst, dst))
            .then_some(at + 2)
    };
    let mut seen = None;
    for at in 0..theirs.len() {
        if let (Some(k), Some(m)) = (chain(theirs, at), chain(ours, at)) {
            seen = Some(theirs[k].off);
            theirs[k].off = ours[m].off;
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use mimic_core::bpf::fixup::fixup;
    use mimic_core::bpf::verifier::{corpus, verify, VerifyOpts};
    use mimic_core::mutants::Mutants;

    #[test]
    fn side_by_side_marks_only_the_lines_that_differ() {
        let maps = corpus::maps();
        let v = verify(&corpus::map_in_map_access(), &maps, VerifyOpts::default())
            .unwrap_or_else(|r| panic!("refused: {r}"));
        let fixed = fixup(&v, Mutants::NONE).expect("fixups");
        let mut theirs: Vec<Insn> = fixed.insns.clone();
        let marked = |text: &str| {
            text.lines()
                .skip(1)
                .filter(|l| l.len() > 44 && l[44..].starts_with(" * "))
                .count()
        };
        let same = side_by_side(&fixed, &theirs);
        assert_eq!(marked(&same), 0, "one program against itself:\n{same}");
        // `r0 = 0` before the exit becomes `w0 = 0`: another opcode on that line only.
        let at = theirs.len() - 2;
        theirs[at] = Insn::mov32_imm(0, 0);
        let differs = side_by_side(&fixed, &theirs);
        assert_eq!(marked(&differs), 1, "{differs}");
        assert!(differs.lines().count() > fixed.insns.len() / 2, "{differs}");
    }

    #[test]
    fn an_inlined_cpu_read_is_undone_and_counted_and_anything_else_still_differs() {
        let v = verify(
            &mimic_core::bpf::asm::assemble("call 8\nexit\n").expect("assembles"),
            &corpus::maps(),
            VerifyOpts::default(),
        )
        .unwrap_or_else(|r| panic!("refused: {r}"));
        let fixed = fixup(&v, Mutants::NONE).expect("fixups");
        // The kernel's x86-64 form: r0 = per-CPU offset; r0 = this CPU's address; r0 = *(u32 *)r0.
        let inlined = [
            Insn::mov64_imm(0, 0x1234),
            Insn {
                code: BPF_ALU64 | BPF_MOV | BPF_X,
                dst: 0,
                src: 0,
                off: BPF_ADDR_PERCPU,
                imm: 0,
            },
            Insn::ldx_mem(BPF_W, 0, 0, 0),
            Insn::exit(),
        ];
        let n = compare_xlated(&fixed, &inlined, &BTreeMap::new()).expect("same once undone");
        assert_eq!(n.cpu_inlined, 1);
        let mut other = inlined;
        other[2] = Insn::ldx_mem(BPF_W, 0, 0, 4);
        assert!(compare_xlated(&fixed, &other, &BTreeMap::new()).is_err());
    }
}
