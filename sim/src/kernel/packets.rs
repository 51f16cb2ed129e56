//! kernel-check's packet-program lines: every program of
//! `mimic_core::bpf::verifier::packet_cases` loaded on the kernel as `BPF_PROG_TYPE_XDP` or
//! `BPF_PROG_TYPE_SCHED_CLS` and verified by mimic as the same type, plus a sweep of every
//! access of `__sk_buff`. Three gating lines per type, as for the other program sets: verdicts
//! (accept/refuse and the kernel's log naming mimic's message; what mimic refuses as not
//! modelled is a known difference), the fixed-up program against the kernel's xlated dump (the
//! context accesses rewritten to `xdp_buff` or `sk_buff` ones, the latter compared without
//! their offsets, which are the build's), and test runs: each accepted program on each packet
//! of `packet_cases::packets`, compared by the return value (or both refusing the run with one
//! errno) and the packet afterwards.
#![forbid(unsafe_code)]

use super::check::Check;
use super::verdicts::{compare_verdicts, EXEC_GATE};
use super::verdicts::{FIXUPS_GATE, VERDICTS_GATE};
use super::xlated::tally_loaded;
use super::KernelSys;
use mimic_core::bpf::verifier::packet_cases::{
    cases, packets, tc_cases, tc_context_sweep, PacketCase,
};
use mimic_core::bpf::verifier::world::{prog_load, LoadedProg, TestRunError};
use mimic_core::bpf::verifier::{
    verify, MapTable, ProgType, VerifyOpts, LD_ABS_UNMODELLED, SK_UNMODELLED,
};
use mimic_core::bpf::xdp::buff;
use mimic_core::isa::Insn;
use mimic_core::mutants::Mutants;
use mimic_core::profile::KernelProfile;
use mimic_core::sync::Std;
use mimic_core::sys::Process;
use mimic_core::uapi::{BpfSys, Fd};
use mimic_core::world::{World, WorldConfig};
use std::collections::BTreeMap;

/// mimic's options for an XDP program the kernel loads as root.
pub fn xdp_opts(profile: KernelProfile) -> VerifyOpts {
    VerifyOpts {
        prog_type: ProgType::Xdp,
        privileged: true,
        profile,
        ..VerifyOpts::default()
    }
}

/// A known difference: the kernel takes something mimic refuses as not modelled (D22).
pub const NOT_MODELLED: &str = "kernel accepts what mimic does not model (D22)";

/// The six lines: XDP's cases, then tc's (its cases and the context sweep).
pub fn run(kernel: &mut KernelSys, profile: KernelProfile) -> Vec<Check> {
    let xdp: Vec<Case> = cases().into_iter().map(Case::from).collect();
    let mut tc: Vec<Case> = tc_cases().into_iter().map(Case::from).collect();
    tc.extend(tc_context_sweep().into_iter().map(|(name, insns)| Case {
        name,
        insns: Ok(insns),
        xdp: false,
    }));
    let mut lines = run_set(kernel, profile, "packet", "XDP", &xdp);
    lines.extend(run_set(kernel, profile, "tc", "tc", &tc));
    lines
}

/// One program of a set: tc's set has a few XDP programs (a tc helper refused from XDP).
struct Case {
    name: String,
    insns: Result<Vec<Insn>, String>,
    xdp: bool,
}

impl From<PacketCase> for Case {
    fn from(case: PacketCase) -> Case {
        Case {
            name: case.name.to_string(),
            insns: case.insns().map_err(|e| e.to_string()),
            xdp: case.prog_type() == ProgType::Xdp,
        }
    }
}

/// The three lines of one set.
fn run_set(
    kernel: &mut KernelSys,
    profile: KernelProfile,
    set: &str,
    title: &str,
    cases: &[Case],
) -> Vec<Check> {
    let mut verdicts = Check::new(
        format!("verifier/verdicts/{set}"),
        format!("kernel verifier vs mimic verify ({title})"),
        VERDICTS_GATE,
    );
    let mut fixups = Check::new(
        format!("fixups/xlated/{set}"),
        format!("kernel xlated vs mimic fixup ({title})"),
        FIXUPS_GATE,
    );
    let mut exec = Check::new(
        format!("exec/test-run/{set}"),
        format!("kernel {title} test-run vs prog_load+executor, per packet"),
        EXEC_GATE,
    );
    // `net_device.ifindex` offsets seen in the kernel's dumps, and slots of mimic's sk_buff.
    let mut device_layout = std::collections::BTreeSet::new();
    let mut skb_layout = 0;
    let sys = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
    let world = sys.world();
    let none = MapTable(Vec::new());
    for case in cases {
        let name = &case.name;
        let insns = match &case.insns {
            Ok(insns) => insns,
            Err(e) => {
                verdicts.note("does not assemble", format!("{name}: {e}"));
                continue;
            }
        };
        let (kind, opts) = if case.xdp {
            (ProgType::Xdp.uapi(), xdp_opts(profile))
        } else {
            (ProgType::SchedCls.uapi(), tc_opts(profile))
        };
        verdicts.cases += 1;
        let theirs = kernel.prog_load(kind, insns, 0, 0);
        let ours = verify(insns, &none, opts);
        match compare_verdicts(&theirs, &ours) {
            Ok(()) => verdicts.agreed += 1,
            Err(_) if theirs.is_ok() && ours.as_ref().is_err_and(|r| unmodelled(&r.message)) => {
                *verdicts.known.entry(NOT_MODELLED.to_string()).or_insert(0) += 1;
            }
            Err(d) => verdicts.note(d.kind, format!("{name}: {}", d.text)),
        }
        let (Ok((prog, _)), Ok(verified)) = (theirs, ours) else {
            continue;
        };
        fixups.cases += 1;
        if let Some(normalised) =
            tally_loaded(&mut fixups, kernel, prog, &verified, name, &BTreeMap::new())
        {
            device_layout.extend(normalised.ifindex_offset);
            skb_layout += normalised.layout_slots;
        }
        let loaded = match prog_load(world, insns, opts) {
            Ok(loaded) => loaded,
            Err(e) => {
                exec.note("mimic prog_load fails", format!("{name}: {e}"));
                let _ = kernel.close(prog);
                continue;
            }
        };
        for packet in packets() {
            exec.cases += 1;
            match compare_test_run(kernel, prog, &loaded, world, &packet) {
                Ok(()) => exec.agreed += 1,
                Err((kind, text)) => exec.note(
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
    if skb_layout > 0 {
        fixups.examples.insert(
            0,
            format!(
                "({skb_layout} slots address the build's struct sk_buff, mimic's own at other \
                 offsets: compared by their code and registers)"
            ),
        );
    }
    vec![verdicts, fixups, exec]
}

/// mimic's refusals of what the kernel takes and mimic does not model.
fn unmodelled(message: &str) -> bool {
    [SK_UNMODELLED, LD_ABS_UNMODELLED].contains(&message)
}

/// mimic's options for a tc program the kernel loads as root.
pub fn tc_opts(profile: KernelProfile) -> VerifyOpts {
    VerifyOpts {
        prog_type: ProgType::SchedCls,
        ..xdp_opts(profile)
    }
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
        .map_err(|e| e.errno());
    let wrun = loaded
        .test_run_packet(world, packet)
        .map(|(r0, out)| (r0 as u32, out));
    match (krun, wrun) {
        (Ok(k), Ok(w)) if k == w => Ok(()),
        (Err(Some(k)), Err(TestRunError::Errno(w))) if k == w => Ok(()),
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
