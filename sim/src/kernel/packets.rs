//! kernel-check's packet-program lines: every program of
//! `mimic_core::bpf::verifier::packet_cases` loaded on the kernel as `BPF_PROG_TYPE_XDP` and
//! verified by mimic as `ProgType::Xdp`. Three gating lines, as for the other program sets:
//! verdicts (accept/refuse and the kernel's log naming mimic's message), the fixed-up program
//! against the kernel's xlated dump (the context reads rewritten to `xdp_buff` loads), and test
//! runs: each accepted program on each packet of `packet_cases::packets`, compared by the
//! return value (or both refusing the run with one errno) and the packet afterwards.
#![forbid(unsafe_code)]

use super::check::{Check, SHOWN_PER_CHECK};
use super::verdicts::{compare_fixups, compare_verdicts, side_by_side, EXEC_GATE};
use super::verdicts::{FIXUPS_GATE, VERDICTS_GATE};
use super::KernelSys;
use mimic_core::bpf::fixup::fixup;
use mimic_core::bpf::helpers::HelperId;
use mimic_core::bpf::verifier::packet_cases::{cases, packets};
use mimic_core::bpf::verifier::world::{prog_load, LoadedProg, TestRunError};
use mimic_core::bpf::verifier::{verify, MapTable, ProgType, VerifyOpts};
use mimic_core::bpf::xdp::buff;
use mimic_core::isa::{Insn, BPF_ALU64, BPF_DW, BPF_K, BPF_LDX, BPF_MEM, BPF_MOV, BPF_W, BPF_X};
use mimic_core::mutants::Mutants;
use mimic_core::profile::KernelProfile;
use mimic_core::sync::Std;
use mimic_core::sys::Process;
use mimic_core::uapi::{BpfSys, Fd};
use mimic_core::world::{World, WorldConfig};
use std::collections::BTreeMap;

/// `BPF_PROG_TYPE_XDP`.
pub const BPF_PROG_TYPE_XDP: u32 = 6;

/// mimic's options for an XDP program the kernel loads as root.
pub fn xdp_opts(profile: KernelProfile) -> VerifyOpts {
    VerifyOpts {
        prog_type: ProgType::Xdp,
        privileged: true,
        profile,
        ..VerifyOpts::default()
    }
}

fn new(name: &str, compares: &str, gating: bool) -> Check {
    Check {
        name: name.to_string(),
        compares: compares.to_string(),
        cases: 0,
        agreed: 0,
        disagreed: BTreeMap::new(),
        known: Default::default(),
        examples: Vec::new(),
        gating,
    }
}

fn note(check: &mut Check, kind: &str, text: String) {
    *check.disagreed.entry(kind.to_string()).or_insert(0) += 1;
    if check.examples.len() < SHOWN_PER_CHECK || kind.starts_with("mimic") {
        check.examples.push(text);
    }
}

/// The three lines.
pub fn run(kernel: &mut KernelSys, profile: KernelProfile) -> Vec<Check> {
    let mut verdicts = new(
        "verifier/verdicts/packet",
        "kernel verifier vs mimic verify (XDP)",
        VERDICTS_GATE,
    );
    let mut fixups = new(
        "fixups/xlated/packet",
        "kernel xlated vs mimic fixup (XDP)",
        FIXUPS_GATE,
    );
    let mut exec = new(
        "exec/test-run/packet",
        "kernel XDP test-run vs prog_load+executor, per packet",
        EXEC_GATE,
    );
    // `net_device.ifindex` offsets seen in the kernel's dumps.
    let mut device_layout = std::collections::BTreeSet::new();
    let sys = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
    let world = sys.world();
    let none = MapTable(Vec::new());
    for case in cases() {
        let name = case.name;
        let insns = match case.insns() {
            Ok(insns) => insns,
            Err(e) => {
                note(&mut verdicts, "does not assemble", format!("{name}: {e}"));
                continue;
            }
        };
        verdicts.cases += 1;
        let theirs = kernel.prog_load(BPF_PROG_TYPE_XDP, &insns, 0, 0);
        let ours = verify(&insns, &none, xdp_opts(profile));
        match compare_verdicts(&theirs, &ours) {
            Ok(()) => verdicts.agreed += 1,
            Err(d) => note(&mut verdicts, d.kind, format!("{name}: {}", d.text)),
        }
        let (Ok((prog, _)), Ok(verified)) = (theirs, ours) else {
            continue;
        };
        fixups.cases += 1;
        match (kernel.xlated(prog), fixup(&verified, Mutants::NONE)) {
            (Ok(mut x), Ok(f)) => match {
                if let Some(off) = own_ifindex_offset(&f.insns, &mut x) {
                    device_layout.insert(off);
                }
                let inlined = calls_for_inlined_cpu_reads(&mut x);
                compare_fixups(&f, &x, &BTreeMap::new()).map(|()| inlined)
            } {
                Ok(0) => fixups.agreed += 1,
                Ok(_) => {
                    *fixups.known.entry(CPU_INLINED.to_string()).or_insert(0) += 1;
                }
                Err(why) => note(
                    &mut fixups,
                    "slot differs",
                    format!("{name}: {why}\n{}", side_by_side(&f, &x)),
                ),
            },
            (Err(e), _) => note(&mut fixups, "no xlated", format!("{name}: {e}")),
            (_, Err(e)) => note(&mut fixups, "mimic fixup fails", format!("{name}: {e}")),
        }
        let loaded = match prog_load(world, &insns, xdp_opts(profile)) {
            Ok(loaded) => loaded,
            Err(e) => {
                note(&mut exec, "mimic prog_load fails", format!("{name}: {e}"));
                let _ = kernel.close(prog);
                continue;
            }
        };
        for packet in packets() {
            exec.cases += 1;
            match compare_test_run(kernel, prog, &loaded, world, &packet) {
                Ok(()) => exec.agreed += 1,
                Err((kind, text)) => note(
                    &mut exec,
                    kind,
                    format!("{name}, {}-byte packet: {text}", packet.len()),
                ),
            }
        }
        let _ = loaded.unload(world);
        let _ = kernel.close(prog);
    }
    if !device_layout.is_empty() {
        fixups.examples.insert(
            0,
            format!(
                "(the kernel reads net_device.ifindex at {:?} on this build, mimic's own device \
                 at +{}: compared as equal)",
                device_layout,
                buff::DEV_IFINDEX
            ),
        );
    }
    vec![verdicts, fixups, exec]
}

/// One packet through the kernel's test run of `prog` and mimic's of `loaded`: `Err((kind,
/// text))` says how they differ (r0, the packet afterwards, or one side's error).
pub fn compare_test_run(
    kernel: &mut KernelSys,
    prog: Fd,
    loaded: &LoadedProg,
    world: &World<Std>,
    packet: &[u8],
) -> Result<(), (&'static str, String)> {
    let krun = kernel
        .test_run(prog, packet, &[], 1)
        .map(|r| (r.retval, r.data_out))
        .map_err(|e| e.errno().map(|e| e as i32));
    let wrun = loaded
        .test_run_packet(world, packet)
        .map(|(r0, out)| (r0 as u32, out));
    match (krun, wrun) {
        (Ok(k), Ok(w)) if k == w => Ok(()),
        (Err(Some(k)), Err(TestRunError::Errno(w))) if k == w as i32 => Ok(()),
        (Ok(k), Ok(w)) if k.0 != w.0 => {
            Err(("r0 differs", format!("kernel {:#x}, mimic {:#x}", k.0, w.0)))
        }
        (Ok(k), Ok(w)) => Err((
            "packet differs",
            format!("kernel {:02x?}, mimic {:02x?}", k.1, w.1),
        )),
        (k, w) => Err((
            "run differs",
            format!(
                "kernel {:?}, mimic {:?}",
                k.map(|r| r.0),
                w.map(|r| r.0).map_err(|e| e.to_string())
            ),
        )),
    }
}

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
