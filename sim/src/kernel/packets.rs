//! kernel-check's packet-program lines: every program of
//! `mimic_core::bpf::verifier::packet_cases` loaded on the kernel as `BPF_PROG_TYPE_XDP` and
//! verified by mimic as `ProgType::Xdp`. Three gating lines, as for the other program sets:
//! verdicts (accept/refuse and the kernel's log naming mimic's message), the fixed-up program
//! against the kernel's xlated dump (the context reads rewritten to `xdp_buff` loads), and test
//! runs: each accepted program on each packet of `packet_cases::packets`, compared by the
//! return value (or both refusing the run with one errno) and the packet afterwards.
#![forbid(unsafe_code)]

use super::check::Check;
use super::verdicts::{compare_verdicts, EXEC_GATE};
use super::verdicts::{FIXUPS_GATE, VERDICTS_GATE};
use super::xlated::{compare_xlated, side_by_side, CPU_INLINED};
use super::KernelSys;
use mimic_core::bpf::fixup::fixup;
use mimic_core::bpf::verifier::packet_cases::{cases, packets};
use mimic_core::bpf::verifier::world::{prog_load, LoadedProg, TestRunError};
use mimic_core::bpf::verifier::{verify, MapTable, ProgType, VerifyOpts};
use mimic_core::bpf::xdp::buff;
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

/// The three lines.
pub fn run(kernel: &mut KernelSys, profile: KernelProfile) -> Vec<Check> {
    let mut verdicts = Check::new(
        "verifier/verdicts/packet",
        "kernel verifier vs mimic verify (XDP)",
        VERDICTS_GATE,
    );
    let mut fixups = Check::new(
        "fixups/xlated/packet",
        "kernel xlated vs mimic fixup (XDP)",
        FIXUPS_GATE,
    );
    let mut exec = Check::new(
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
                verdicts.note("does not assemble", format!("{name}: {e}"));
                continue;
            }
        };
        verdicts.cases += 1;
        let theirs = kernel.prog_load(BPF_PROG_TYPE_XDP, &insns, 0, 0);
        let ours = verify(&insns, &none, xdp_opts(profile));
        match compare_verdicts(&theirs, &ours) {
            Ok(()) => verdicts.agreed += 1,
            Err(d) => verdicts.note(d.kind, format!("{name}: {}", d.text)),
        }
        let (Ok((prog, _)), Ok(verified)) = (theirs, ours) else {
            continue;
        };
        fixups.cases += 1;
        match (kernel.xlated(prog), fixup(&verified, Mutants::NONE)) {
            (Ok(x), Ok(f)) => match compare_xlated(&f, &x, &BTreeMap::new()) {
                Ok(normalised) => {
                    device_layout.extend(normalised.ifindex_offset);
                    if normalised.cpu_inlined == 0 {
                        fixups.agreed += 1;
                    } else {
                        *fixups.known.entry(CPU_INLINED.to_string()).or_insert(0) += 1;
                    }
                }
                Err(why) => fixups.note(
                    "slot differs",
                    format!("{name}: {why}\n{}", side_by_side(&f, &x)),
                ),
            },
            (Err(e), _) => fixups.note("no xlated", format!("{name}: {e}")),
            (_, Err(e)) => fixups.note("mimic fixup fails", format!("{name}: {e}")),
        }
        let loaded = match prog_load(world, &insns, xdp_opts(profile)) {
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
