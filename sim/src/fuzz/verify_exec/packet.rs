//! `verify_exec`'s packet programs: XDP or tc programs with direct packet access, from an input
//! whose first byte is [`MODE`] (XDP) or [`MODE_TC`] (tc, through `__sk_buff`; the rest decoded
//! as a [`PacketCase`]). Bounds checks come right, off
//! by one, on the wrong edge or missing, in every unsigned comparison form and both operand
//! orders (sometimes 32-bit, which learns nothing); accesses of every size at offsets around
//! the checked range; unknown offsets added to a second pointer; `bpf_xdp_adjust_head` moving
//! the packet under held pointers (from tc, `bpf_skb_pull_data`), which are then read again or
//! not; `bpf_csum_diff` over bytes of the packet; from tc, `bpf_skb_load_bytes` onto the
//! stack, `bpf_skb_store_bytes` and the checksum replacements.
//!
//! An accepted program is fixed up (its context reads become `xdp_buff` or `sk_buff` loads) and
//! runs on
//! packets of the case's lengths under the state-embedding oracle ([`OracleObserver`], through
//! the fixups' pc map): every register and stack byte must lie inside the state the verifier
//! accepted at that instruction, and every packet access is checked by the executor against
//! `data_meta..data_end` exactly. An access outside, an escape or any other check failure is
//! the verifier (or a fixup) letting an unsafe program through.
//!
//! The alternative, a field in [`super::Case`], would have changed how every saved input
//! decodes; the mode byte leaves them as they were (none starts with it).
//!
//! The generator is the one `sim/tests/fuzz_verify_exec_packet.rs` drives from a seed in
//! plain `cargo test`.

use arbitrary::{Arbitrary, Unstructured};
use mimic_core::bpf::asm::assemble;
use mimic_core::bpf::exec::{Config, ExecErrorKind, Program, Vm};
use mimic_core::bpf::fixup::fixup;
use mimic_core::bpf::skb::{self, sk_buff_md};
use mimic_core::bpf::verifier::oracle::OracleObserver;
use mimic_core::bpf::verifier::{verify, MapTable, ProgType, VerifyOpts};
use mimic_core::bpf::world_env::WorldEnv;
use mimic_core::bpf::xdp::{xdp_md, RxInfo, ETH_HLEN};
use mimic_core::mutants::Mutants;
use mimic_core::rcu::Flavor;
use mimic_core::sync::Std;
use mimic_core::sys::Process;
use mimic_core::world::WorldConfig;
use std::fmt::Write as _;

/// The packets a case runs on: `ETH_HLEN + len % REACH` bytes of a fixed pattern each.
fn packets(case: &PacketCase) -> Vec<Vec<u8>> {
    case.lengths
        .iter()
        .map(|&len| {
            let len = ETH_HLEN + usize::from(len % REACH);
            (0..len).map(|b| (b as u8).wrapping_mul(29)).collect()
        })
        .collect()
}

/// The first byte of an XDP packet-program input.
pub const MODE: u8 = b'P';
/// The first byte of a tc packet-program input (the same pieces, through `__sk_buff`).
pub const MODE_TC: u8 = b'T';

/// Where a packet program is attached: its type, its context's packet fields and the helper
/// that moves its packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Xdp,
    Tc,
}

impl Hook {
    /// The hook an input's mode byte names.
    pub fn from_mode(byte: u8) -> Option<Hook> {
        match byte {
            MODE => Some(Hook::Xdp),
            MODE_TC => Some(Hook::Tc),
            _ => None,
        }
    }
    pub fn mode(self) -> u8 {
        match self {
            Hook::Xdp => MODE,
            Hook::Tc => MODE_TC,
        }
    }
    pub fn prog_type(self) -> ProgType {
        match self {
            Hook::Xdp => ProgType::Xdp,
            Hook::Tc => ProgType::SchedCls,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Hook::Xdp => "XDP",
            Hook::Tc => "tc",
        }
    }
    /// The context offsets of `data` and `data_end`.
    fn bounds(self) -> (i64, i64) {
        match self {
            Hook::Xdp => (xdp_md::DATA, xdp_md::DATA_END),
            Hook::Tc => (sk_buff_md::DATA, sk_buff_md::DATA_END),
        }
    }
    /// `r2` = data, `r3` = data_end, `r5` = data, read through the context in `r9`.
    fn reload(self) -> String {
        let (data, end) = self.bounds();
        format!("ldxw %r2, [%r9+{data}]\nldxw %r3, [%r9+{end}]\nmov %r5, %r2\n")
    }
}
/// Pieces per program at most.
const MAX_PIECES: usize = 8;
/// Bytes around the start of the packet an offset or a check reaches (a full TCP/IPv4 header
/// is 54).
const REACH: u8 = 64;

/// Which packet pointer a piece uses: `data` itself (`r2`), or `r5`, which unknown offsets move.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Base {
    Data,
    Moved,
}

impl Base {
    fn reg(self) -> u8 {
        match self {
            Base::Data => 2,
            Base::Moved => 5,
        }
    }
}

#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Cond {
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Width {
    B,
    H,
    W,
    Dw,
}

/// One step of a packet program.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum PacketPiece {
    /// `base + off` compared with `data_end`; the taken edge leaves (`exit_taken`) or goes on.
    Check {
        base: Base,
        off: u8,
        cond: Cond,
        swapped: bool,
        /// A 32-bit comparison (which learns nothing) when `narrow % 8 == 0`.
        narrow: u8,
        exit_taken: bool,
    },
    /// A read (summed into `r7`) or a write of `width` at `base + off`.
    Access {
        base: Base,
        off: i8,
        width: Width,
        write: bool,
    },
    /// `r5 = data + (r7 & mask)`: an unknown offset.
    MoveUnknown { mask: u8 },
    /// `bpf_xdp_adjust_head(ctx, delta)` (from tc: `bpf_skb_pull_data(ctx, |delta|)`); `data`,
    /// `data_end` (and `r5`) read again or not.
    AdjustHead { delta: i8, reload: bool },
    /// `bpf_csum_diff` over `len` bytes at `base + off` (nothing removed), summed into `r7`;
    /// `data`, `data_end` and `r5` read again after the call.
    CsumDiff { base: Base, off: u8, len: u8 },
    /// tc only (nothing from XDP): `bpf_skb_load_bytes` of `len` bytes at `off` onto the stack
    /// at `r10 - 16`, then 8 bytes there summed into `r7`; `bpf_skb_store_bytes` of `len` stack
    /// bytes to `off`; or `bpf_l3_csum_replace` / `bpf_l4_csum_replace` at `off` with flags from
    /// `len`. After a call that may move the packet, `data`, `data_end` and `r5` are read again
    /// or not (`reload`).
    SkbHelper {
        which: u8,
        off: u8,
        len: u8,
        reload: bool,
    },
}

/// A packet-program input: the pieces and the lengths of the packets it runs on.
#[derive(Debug, Clone, Arbitrary)]
pub struct PacketCase {
    pub pieces: Vec<PacketPiece>,
    /// Each run's packet is `ETH_HLEN + len % REACH` bytes.
    pub lengths: [u8; 3],
}

/// What one input came to (the seeded test counts them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Refused,
    /// Accepted and run on this many packets.
    Ran(usize),
}

/// The program in mimic's assembly: `r9` keeps the context, `r2`/`r3` are data/data_end, `r5`
/// a second packet pointer, `r7` the sum of the bytes read; every early exit goes to `out`.
pub fn source(case: &PacketCase, hook: Hook) -> String {
    let mut s = format!("mov %r9, %r1\n{}mov %r7, 0\n", hook.reload());
    // The tc helpers' stack buffer starts zeroed: a privileged program may read stack bytes no
    // helper wrote, and the kernel's are whatever an earlier call left there.
    if hook == Hook::Tc {
        s += "stdw [%r10-16], 0\nstdw [%r10-8], 0\n";
    }
    // The exit block `out` is written only when a check jumps there (unreachable code is
    // refused).
    let mut out = false;
    for piece in case.pieces.iter().take(MAX_PIECES) {
        match *piece {
            PacketPiece::Check {
                base,
                off,
                cond,
                swapped,
                narrow,
                exit_taken,
            } => {
                let cond = match cond {
                    Cond::Gt => "jgt",
                    Cond::Ge => "jge",
                    Cond::Lt => "jlt",
                    Cond::Le => "jle",
                };
                let (a, b) = if swapped {
                    ("%r3", "%r4")
                } else {
                    ("%r4", "%r3")
                };
                let width = if narrow % 8 == 0 { "32" } else { "" };
                let _ = writeln!(s, "mov %r4, %r{}\nadd %r4, {}", base.reg(), off % REACH);
                if exit_taken {
                    out = true;
                    let _ = writeln!(s, "{cond}{width} {a}, {b}, out");
                } else {
                    // The jump skips the exit, so the taken edge goes on.
                    let _ = writeln!(s, "{cond}{width} {a}, {b}, +2\nmov %r0, 1\nexit");
                }
            }
            PacketPiece::Access {
                base,
                off,
                width,
                write,
            } => {
                let off = i64::from(off).rem_euclid(i64::from(REACH) + 3) - 2;
                let size = match width {
                    Width::B => "b",
                    Width::H => "h",
                    Width::W => "w",
                    Width::Dw => "dw",
                };
                let r = base.reg();
                if write {
                    let _ = writeln!(s, "st{size} [%r{r}{off:+}], 7");
                } else {
                    let _ = writeln!(s, "ldx{size} %r6, [%r{r}{off:+}]\nadd %r7, %r6");
                }
            }
            PacketPiece::MoveUnknown { mask } => {
                let mask = [3, 7, 15, 63, 255][usize::from(mask) % 5];
                let _ = writeln!(
                    s,
                    "mov %r6, %r7\nand %r6, {mask}\nmov %r5, %r2\nadd %r5, %r6"
                );
            }
            PacketPiece::CsumDiff { base, off, len } => {
                let _ = writeln!(
                    s,
                    "mov %r1, %r{}\nadd %r1, {}\nmov %r2, {}\nmov %r3, 0\nmov %r4, 0\n\
                     mov %r5, 0\ncall 28\nadd %r7, %r0\n{}",
                    base.reg(),
                    off % REACH,
                    len % 40,
                    hook.reload()
                );
            }
            PacketPiece::SkbHelper {
                which,
                off,
                len,
                reload,
            } => {
                if hook == Hook::Xdp {
                    continue;
                }
                let off = off % (REACH + 8);
                let moves = match which % 4 {
                    0 => {
                        let _ = writeln!(
                            s,
                            "mov %r1, %r9\nmov %r2, {off}\nmov %r3, %r10\nadd %r3, -16\n\
                             mov %r4, {}\ncall 26\nldxdw %r6, [%r10-16]\nadd %r7, %r6",
                            1 + len % 16
                        );
                        false
                    }
                    1 => {
                        let _ = writeln!(
                            s,
                            "mov %r1, %r9\nmov %r2, {off}\nmov %r3, %r10\nadd %r3, -16\n\
                             mov %r4, {}\nmov %r5, 0\ncall 9\nadd %r7, %r0",
                            1 + len % 16
                        );
                        true
                    }
                    w => {
                        // L3 (w == 2) or L4 (w == 3); the size in the low bits, L4's flags above.
                        let size = [0, 2, 4, 3][usize::from(len % 4)];
                        let flags = if w == 3 { size | (len & 0x70) } else { size };
                        let _ = writeln!(
                            s,
                            "mov %r1, %r9\nmov %r2, {off}\nmov %r3, %r7\nmov %r4, %r7\n\
                             add %r4, 1\nmov %r5, {flags}\ncall {}\nadd %r7, %r0",
                            8 + w
                        );
                        true
                    }
                };
                if moves && reload {
                    s += &hook.reload();
                }
            }
            PacketPiece::AdjustHead { delta, reload } => {
                let delta = i32::from(delta) % 25;
                let call = match hook {
                    Hook::Xdp => format!("mov %r2, {delta}\ncall 44"),
                    Hook::Tc => format!("mov %r2, {}\ncall 39", delta.abs() * 3),
                };
                let _ = writeln!(s, "mov %r1, %r9\n{call}");
                if reload {
                    s += &hook.reload();
                }
            }
        }
    }
    s += "mov %r0, %r7\nexit\n";
    if out {
        s += "out:\nmov %r0, 2\nexit\n";
    }
    s
}

/// The property on a decoded case: panics when an accepted program fails a check (or, in the
/// kernel mode, when the kernel and mimic disagree on it).
pub fn check_packet(case: &PacketCase, hook: Hook, mutants: Mutants) -> Verdict {
    #[cfg(feature = "kernel")]
    if super::kernel::enabled() {
        if let Err(finding) = kernel::compare_packet(case, hook, mutants) {
            panic!("{finding}");
        }
    }
    let text = source(case, hook);
    let insns = assemble(&text)
        .unwrap_or_else(|e| panic!("the packet generator wrote a bad program: {e}\n{text}"));
    let opts = VerifyOpts {
        prog_type: hook.prog_type(),
        privileged: true,
        mutants,
        collect_states: true,
        ..VerifyOpts::default()
    };
    let exact = verify(&insns, &MapTable(vec![]), opts);
    super::loose_pruning_agrees(&insns, &MapTable(vec![]), opts, &exact, String::new);
    let Ok(verified) = exact else {
        return Verdict::Refused;
    };
    let fixed = fixup(&verified, mutants)
        .unwrap_or_else(|e| panic!("fixup of a verified packet program failed: {e}\n{text}"));
    let Some(oracle) = verified.oracle.as_ref() else {
        panic!("the verifier kept no states although asked to\n{text}");
    };
    let program = Program::new(&fixed.insns)
        .unwrap_or_else(|e| panic!("the fixed-up program does not decode: {e}\n{text}"));
    let sys = Process::<Std>::create(mutants, WorldConfig::default());
    let world = sys.world();
    let mut ran = 0;
    for bytes in packets(case) {
        let len = bytes.len();
        let (mut packet, mut ctx) = skb::on_frame(hook == Hook::Tc, &bytes, RxInfo::default());
        let mut observer = OracleObserver::new(oracle, &verified.maps);
        observer.pc_map = Some(fixed.origin.clone());
        let mut vm = Vm::new(Config {
            tc: hook == Hook::Tc,
            ..Config::default()
        });
        world
            .rcu_read_lock(Flavor::Rcu)
            .unwrap_or_else(|e| panic!("rcu_read_lock: {e}"));
        let run = vm.run_packet(
            &program,
            &mut ctx,
            &mut packet,
            &mut WorldEnv::new(world),
            &mut observer,
        );
        world
            .rcu_read_unlock(Flavor::Rcu)
            .unwrap_or_else(|e| panic!("rcu_read_unlock: {e}"));
        if let Some(escape) = observer.escapes.first() {
            panic!(
                "state-embedding escape on a {len}-byte packet (the verifier is unsound): \
                 {escape}\nprogram:\n{text}"
            );
        }
        match run {
            Ok(_) => ran += 1,
            Err(e) if matches!(e.kind, ExecErrorKind::Budget(_)) => {}
            Err(e) => {
                let outside = matches!(
                    e.kind,
                    ExecErrorKind::OutsidePacket { .. } | ExecErrorKind::OutOfBounds { .. }
                );
                panic!(
                    "verified packet program failed a check on a {len}-byte packet: {e}{}\n\
                     program:\n{text}",
                    if outside {
                        " (an access the verifier allowed)"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    Verdict::Ran(ran)
}

#[cfg(feature = "kernel")]
pub use kernel::compare_packet as compare_packet_on_kernel;

/// Decodes a packet-program input (the bytes after [`MODE`]).
pub fn decode(rest: &[u8]) -> Option<PacketCase> {
    PacketCase::arbitrary_take_rest(Unstructured::new(rest)).ok()
}

/// The kernel mode (`MIMIC_FUZZ_KERNEL=1`, built with `--features kernel`): the program loaded
/// into the kernel as XDP or tc, as root, and verified by mimic for the running kernel's profile; the
/// verdicts compared by kernel-check's classifier (any difference is a finding: kernel-check's
/// packet cases agree on every one); a program both accept test-run on both with the case's
/// packets, r0 and the packet afterwards compared. The one difference allowed is G4 (a refusal
/// whose message differs only in a register's id).
#[cfg(feature = "kernel")]
pub mod kernel {
    use super::*;
    use crate::kernel::packets::{compare_test_run, tc_opts, xdp_opts};
    use crate::kernel::verdicts::{compare_verdicts, kernel_message, names_but_ids};
    use crate::kernel::KernelSys;
    use mimic_core::bpf::verifier::world::prog_load;
    use mimic_core::uapi::BpfSys;

    /// One case on the kernel and on mimic: `Ok(true)` when both accepted it and its runs
    /// agree, `Ok(false)` when both refused it; `Err` is the finding, with the program.
    pub fn compare_packet(case: &PacketCase, hook: Hook, mutants: Mutants) -> Result<bool, String> {
        let text = source(case, hook);
        let insns = assemble(&text).map_err(|e| format!("{e}\n{text}"))?;
        let profile = match crate::kernel::profile::live() {
            Ok(Ok(profile)) => **profile,
            Ok(Err(unavailable)) => {
                return Err(format!("no kernel to compare with: {}", unavailable.0))
            }
            Err(report) => return Err(report.clone()),
        };
        let (kind, base) = match hook {
            Hook::Xdp => (ProgType::Xdp.uapi(), xdp_opts(profile)),
            Hook::Tc => (ProgType::SchedCls.uapi(), tc_opts(profile)),
        };
        let opts = VerifyOpts { mutants, ..base };
        let mut kernel = KernelSys::default();
        let theirs = kernel.prog_load(kind, &insns, 0, 0);
        let ours = verify(&insns, &MapTable(vec![]), opts);
        if let Err(d) = compare_verdicts(&theirs, &ours) {
            // G4 (docs/kernel-disagreements.md): the same refusal with another register id.
            if let (Err(failure), Err(r)) = (&theirs, &ours) {
                if names_but_ids(&failure.log, &r.message) {
                    return Ok(false);
                }
            }
            let log = theirs.as_ref().err().map(|f| kernel_message(&f.log));
            return Err(format!(
                "{}: {} (kernel: {:?})\nprogram:\n{text}",
                d.kind, d.text, log
            ));
        }
        let Ok((prog, _)) = theirs else {
            return Ok(false);
        };
        let sys = Process::<Std>::create(mutants, WorldConfig::default());
        let world = sys.world();
        let loaded = prog_load(world, &insns, opts).map_err(|e| format!("{e}\n{text}"))?;
        let mut result = Ok(true);
        for packet in packets(case) {
            if let Err((kind, why)) = compare_test_run(&mut kernel, prog, &loaded, world, &packet) {
                result = Err(format!(
                    "{kind} on a {}-byte packet: {why}\nprogram:\n{text}",
                    packet.len()
                ));
                break;
            }
        }
        let _ = loaded.unload(world);
        let _ = kernel.close(prog);
        result
    }
}
