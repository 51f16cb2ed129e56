//! The verifier and fixup checks of `mimic kernel-check`: the corpus of
//! `mimic_core::bpf::verifier::corpus` (the §9 cases and seeded generated programs) loaded on the
//! kernel as privileged sleepable `BPF_PROG_TYPE_SYSCALL` programs and verified by mimic with
//! the same program type (`ProgType::Syscall`: a writable context, `max_ctx_offset`).
//!
//! Verdicts: accept/reject, and for two rejections whether the kernel's log names mimic's
//! message. A disagreement is classed: mimic stricter (incomplete), mimic more lenient (UNSOUND:
//! mimic accepts what the kernel refuses), or message differs.
//! Execution: programs both accept run by `BPF_PROG_TEST_RUN` and by mimic's `prog_load` and
//! `LoadedProg::test_run` on the world, on fresh maps (each outer map holding one inner map at
//! the zero key) and the same 64-byte context: same `r0` (low 32 bits; a returned pointer is a
//! kernel address on one side and mimic's encoding on the other, so there both being pointers
//! is what agrees), the same context written back and the same contents of every non-outer map
//! afterwards.
//! Fixups: for programs both accept, mimic's fixed-up program against the kernel's xlated dump
//! slot by slot, map loads compared by a map-id bijection and calls by a bijection of their
//! immediates (kernel addresses vs mimic's helper and direct-call ids), the rest exactly; a
//! difference shows both listings side by side. These lines gate the command.
#![forbid(unsafe_code)]

use super::check::Check;
use super::xlated::tally_loaded;
use super::KernelSys;
use super::LoadFailure;
use mimic_core::bpf::verifier::corpus;
use mimic_core::bpf::verifier::{verify, MapDesc, MapTable, ProgType, Rejection, VerifyOpts};
use mimic_core::isa::{Insn, BPF_PSEUDO_MAP_FD};
use mimic_core::mutants::Mutants;
use mimic_core::profile::KernelProfile;
use mimic_core::uapi::{BpfSys, Fd, MapAttr, MapType};
use std::collections::BTreeMap;

/// Verdicts (accept/reject and the first message) agree on every program of every set on the
/// reference machine (Linux 6.18), so a disagreement fails `mimic kernel-check`.
pub const VERDICTS_GATE: bool = true;
/// Test runs (r0, the context written back, map contents) of programs both accept agree on
/// every set, so they gate too.
pub const EXEC_GATE: bool = true;
/// The fixed-up program against the kernel's xlated dump: mimic removes dead code and inlines
/// the hash lookups as the kernel does, so every set agrees slot by slot and a difference gates.
pub const FIXUPS_GATE: bool = true;

/// Generated programs per run unless told otherwise.
pub const DEFAULT_GENERATED: u64 = 300;
/// `BPF_F_TEST_STATE_FREQ` (a checkpoint at every prune point), as the §9 pruning case asks.
const BPF_F_TEST_STATE_FREQ: u32 = 1 << 3;

/// One program: name, instructions (map fds as in its [`MapTable`]), whether it needs
/// `BPF_F_TEST_STATE_FREQ`.
#[derive(Debug, Clone)]
pub struct Item {
    pub name: String,
    pub prog: Vec<Insn>,
    pub state_freq: bool,
}

/// A set of programs over one map table, compared as one pair of lines.
#[derive(Debug, Clone)]
pub struct ProgramSet {
    /// The line's suffix: `shipped`, `section-9`, `generated`.
    pub label: String,
    pub maps: MapTable,
    pub items: Vec<Item>,
    /// Programs not compared, and why (shown with the line).
    pub skipped: Vec<String>,
}

/// The §9 cases that run privileged (this runs as root: the kernel would verify the
/// unprivileged cases as privileged, so those are not compared), as `profile`'s build words
/// their messages.
pub fn section_9(profile: &KernelProfile) -> ProgramSet {
    let mut set = ProgramSet {
        label: "section-9".to_string(),
        maps: corpus::maps(),
        items: Vec::new(),
        skipped: Vec::new(),
    };
    for case in corpus::cases(profile) {
        if !case.privileged {
            set.skipped.push(format!("{} (unprivileged)", case.name));
            continue;
        }
        set.items.push(Item {
            name: case.name.to_string(),
            prog: case.prog,
            state_freq: case.state_freq,
        });
    }
    set
}

/// `count` seeded programs of [`corpus::generated`], seeds `0..count`.
pub fn generated(count: u64) -> ProgramSet {
    ProgramSet {
        label: "generated".to_string(),
        maps: corpus::maps(),
        items: (0..count)
            .map(|seed| Item {
                name: format!("generated seed {seed}"),
                prog: corpus::generated(seed),
                state_freq: false,
            })
            .collect(),
        skipped: Vec::new(),
    }
}

fn attr_of(desc: &MapDesc) -> Result<MapAttr, String> {
    let ty = MapType::from_u32(desc.map_type)
        .ok_or_else(|| format!("map type {} unknown", desc.map_type))?;
    Ok(MapAttr::new(ty, desc.key_size, desc.value_size, desc.max_entries).flags(desc.map_flags))
}

/// Corpus fd → (kernel fd, kernel id).
pub(crate) type KernelFds = BTreeMap<i32, (Fd, u32)>;

/// The corpus maps on the kernel, plus the templates to close.
pub(crate) fn kernel_maps(
    kernel: &mut KernelSys,
    table: &MapTable,
) -> Result<(KernelFds, Vec<Fd>), String> {
    let mut map = BTreeMap::new();
    let mut extra = Vec::new();
    for (fd, desc) in table.0.iter().cloned() {
        let mut attr = attr_of(&desc)?;
        if let Some(meta) = &desc.inner_meta {
            let template = kernel
                .map_create(&attr_of(meta)?)
                .map_err(|e| format!("template of corpus fd {fd}: {e}"))?;
            extra.push(template);
            attr = attr.inner(template);
        }
        let kfd = kernel
            .map_create(&attr)
            .map_err(|e| format!("corpus fd {fd}: {e}"))?;
        let id = kernel
            .map_info(kfd)
            .map_err(|e| format!("info of corpus fd {fd}: {e}"))?
            .id;
        map.insert(fd, (kfd, id));
    }
    Ok((map, extra))
}

/// The program with corpus fds replaced by the kernel's raw fds.
pub(crate) fn for_kernel(
    kernel: &KernelSys,
    prog: &[Insn],
    fds: &BTreeMap<i32, (Fd, u32)>,
) -> Vec<Insn> {
    let fds: BTreeMap<i32, Fd> = fds.iter().map(|(k, (fd, _))| (*k, *fd)).collect();
    with_fds(prog, &fds, &|fd| kernel.map_fd(fd).unwrap_or(fd))
}

/// The first error line of a kernel verifier log: the line before `processed N insns` (or the
/// last line).
pub fn kernel_message(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("processed "))
        .unwrap_or(lines.len());
    at.checked_sub(1)
        .and_then(|i| lines.get(i))
        .map_or_else(String::new, |l| l.to_string())
}

/// Whether the kernel's `log` names mimic's refusal `ours` once every register id (`id=N`) is
/// taken out of both: the kernel numbers ids for scalars copied between registers too (to link
/// their bounds), mimic only for pointers, so the same register can print another id.
pub fn names_but_ids(log: &str, ours: &str) -> bool {
    fn without_ids(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find("id=") {
            out.push_str(&rest[..at + 3]);
            rest = rest[at + 3..].trim_start_matches(|c: char| c.is_ascii_digit());
        }
        out.push_str(rest);
        out
    }
    without_ids(log).contains(&without_ids(ours))
}

/// A verdict disagreement: mimic stricter (incomplete).
pub const STRICTER: &str = "mimic stricter (incomplete)";
/// A verdict disagreement: mimic accepts what the kernel refuses.
pub const UNSOUND: &str = "mimic more lenient (UNSOUND)";
/// Both refuse, but the kernel's log does not contain mimic's message.
pub const MESSAGE_DIFFERS: &str = "both refuse, message differs";

/// How a kernel verdict and mimic's differ: the kind (one of [`STRICTER`], [`UNSOUND`],
/// [`MESSAGE_DIFFERS`]) and what each side said.
#[derive(Debug, Clone)]
pub struct Disagreement {
    pub kind: &'static str,
    pub text: String,
}

/// mimic's options for a program the kernel loads by [`kernel_load`]: privileged, sleepable,
/// `ProgType::Syscall` (its context access rule; `ctx_size` is not used by that type), with
/// the messages of the kernel's `profile` and the running kernel's struct layouts.
pub fn syscall_opts(state_freq: bool, profile: KernelProfile) -> VerifyOpts {
    VerifyOpts {
        privileged: true,
        sleepable: true,
        test_state_freq: state_freq,
        prog_type: ProgType::Syscall,
        profile,
        kernel_types: super::profile::live_types(),
        ..VerifyOpts::default()
    }
}

/// Loads `insns` (map fds the kernel's) as a privileged sleepable `BPF_PROG_TYPE_SYSCALL`
/// program. Syscall programs must be sleepable; their context is plain memory (no field
/// rewriting as a socket filter's __sk_buff gets), as mimic models it.
pub fn kernel_load(
    kernel: &mut KernelSys,
    insns: &[Insn],
    state_freq: bool,
) -> Result<(Fd, String), LoadFailure> {
    let flags = super::BPF_F_SLEEPABLE | if state_freq { BPF_F_TEST_STATE_FREQ } else { 0 };
    kernel.prog_load(super::BPF_PROG_TYPE_SYSCALL, insns, 0, flags)
}

/// The one verdict classifier: agreement when both accept, or both refuse and the kernel's log
/// names mimic's message; otherwise the kind of disagreement.
pub fn compare_verdicts<T>(
    theirs: &Result<(Fd, String), LoadFailure>,
    ours: &Result<T, Rejection>,
) -> Result<(), Disagreement> {
    match (theirs, ours) {
        (Ok(_), Ok(_)) => Ok(()),
        (Err(failure), Err(r)) if failure.log.contains(&r.message) => Ok(()),
        (Err(failure), Err(r)) => Err(Disagreement {
            kind: MESSAGE_DIFFERS,
            text: format!(
                "kernel {:?}, mimic {:?} at {}",
                kernel_message(&failure.log),
                r.message,
                r.insn
            ),
        }),
        (Ok(_), Err(r)) => Err(Disagreement {
            kind: STRICTER,
            text: format!("kernel accepts, mimic refuses at {}: {}", r.insn, r.message),
        }),
        (Err(failure), Ok(_)) => Err(Disagreement {
            kind: UNSOUND,
            text: format!(
                "mimic accepts, kernel refuses ({}): {:?}",
                failure.error,
                kernel_message(&failure.log)
            ),
        }),
    }
}

/// The verdict and fixup lines of each set.
pub fn run(kernel: &mut KernelSys, sets: &[ProgramSet], profile: KernelProfile) -> Vec<Check> {
    sets.iter()
        .flat_map(|set| run_set(kernel, set, profile))
        .collect()
}

/// The verdict and fixup lines of one set, mimic verifying under `profile` (the kernel's).
pub fn run_set(kernel: &mut KernelSys, set: &ProgramSet, profile: KernelProfile) -> Vec<Check> {
    let mut verdicts = Check::new(
        format!("verifier/verdicts/{}", set.label),
        "kernel verifier vs mimic verify",
        VERDICTS_GATE,
    );
    let mut fixups = Check::new(
        format!("fixups/xlated/{}", set.label),
        "kernel xlated vs mimic fixup",
        FIXUPS_GATE,
    );
    let mut exec = Check::new(
        format!("exec/test-run/{}", set.label),
        "kernel test-run vs prog_load+executor",
        EXEC_GATE,
    );
    let mut accepted = Vec::new();
    let (fds, extra) = match kernel_maps(kernel, &set.maps) {
        Ok(made) => made,
        Err(why) => {
            verdicts.note("setup failed", why);
            return vec![verdicts, fixups, exec];
        }
    };
    let maps = &set.maps;
    // mimic's map id → the kernel's, for the fixup comparison.
    let ids: BTreeMap<u32, u32> = maps
        .0
        .iter()
        .filter_map(|(fd, d)| fds.get(fd).map(|(_, kid)| (d.id, *kid)))
        .collect();
    for item in &set.items {
        let kinsns = for_kernel(kernel, &item.prog, &fds);
        let theirs = kernel_load(kernel, &kinsns, item.state_freq);
        let ours = verify(&item.prog, maps, syscall_opts(item.state_freq, profile));
        verdicts.cases += 1;
        let name = &item.name;
        let verdict = compare_verdicts(&theirs, &ours);
        match (theirs, ours, verdict) {
            (Ok((prog, _)), Ok(v), Ok(())) => {
                verdicts.agreed += 1;
                fixups.cases += 1;
                accepted.push(item);
                tally_loaded(&mut fixups, kernel, prog, &v, name, &ids);
                let _ = kernel.close(prog);
            }
            (theirs, _, verdict) => {
                if let Ok((prog, _)) = theirs {
                    let _ = kernel.close(prog);
                }
                match verdict {
                    Ok(()) => verdicts.agreed += 1,
                    Err(d) if d.kind == UNSOUND => verdicts.note(
                        d.kind,
                        format!("{name}: {}\n{}", d.text, super::dump(&kinsns)),
                    ),
                    Err(d) => verdicts.note(d.kind, format!("{name}: {}", d.text)),
                }
            }
        }
    }
    if !set.skipped.is_empty() {
        verdicts.examples.insert(
            0,
            format!("(not compared, run as root: {})", set.skipped.join(", ")),
        );
    }
    for (_, (fd, _)) in fds {
        let _ = kernel.close(fd);
    }
    for fd in extra {
        let _ = kernel.close(fd);
    }
    for item in accepted {
        exec.cases += 1;
        match exec_one(kernel, &set.maps, item, profile) {
            Ok(()) => exec.agreed += 1,
            Err((kind, text)) => exec.note(&kind, text),
        }
    }
    vec![verdicts, fixups, exec]
}

/// Bytes of the context both sides run with (the size mimic verifies `r1` against).
const EXEC_CTX: usize = 64;

/// Maps of a table created on one backend for one run, each outer map holding one inner map
/// (made from its meta) at the all-zero key so lookups reach an inner map.
struct RunMaps {
    /// Table fd → backend fd.
    fds: BTreeMap<i32, Fd>,
    /// Maps whose contents are compared (not outer maps: their values are backend ids), with
    /// the keys to read.
    compared: Vec<(Fd, Vec<Vec<u8>>)>,
    all: Vec<Fd>,
}

/// The keys a run reads back: every index of an array, the zero key of anything else.
fn keys_of(desc: &MapDesc) -> Vec<Vec<u8>> {
    if desc.map_type == MapType::Array as u32 {
        (0..desc.max_entries)
            .map(|i| i.to_ne_bytes().to_vec())
            .collect()
    } else {
        vec![vec![0; desc.key_size as usize]]
    }
}

fn run_maps<S: BpfSys + ?Sized>(sys: &mut S, table: &MapTable) -> Result<RunMaps, String> {
    let mut out = RunMaps {
        fds: BTreeMap::new(),
        compared: Vec::new(),
        all: Vec::new(),
    };
    for (fd, desc) in &table.0 {
        let mut attr = attr_of(desc)?;
        let mut inner = None;
        if let Some(meta) = &desc.inner_meta {
            let template = sys
                .map_create(&attr_of(meta)?)
                .map_err(|e| format!("template of fd {fd}: {e}"))?;
            out.all.push(template);
            attr = attr.inner(template);
            let made = sys
                .map_create(&attr_of(meta)?)
                .map_err(|e| format!("inner of fd {fd}: {e}"))?;
            out.all.push(made);
            out.compared.push((made, keys_of(meta)));
            inner = Some(made);
        }
        let made = sys.map_create(&attr).map_err(|e| format!("fd {fd}: {e}"))?;
        out.all.push(made);
        if let Some(inner) = inner {
            sys.map_update_elem(
                made,
                &vec![0; desc.key_size as usize],
                &inner.to_ne_bytes(),
                0,
            )
            .map_err(|e| format!("fd {fd}[0] = inner: {e}"))?;
        } else {
            out.compared.push((made, keys_of(desc)));
        }
        out.fds.insert(*fd, made);
    }
    Ok(out)
}

fn contents<S: BpfSys + ?Sized>(sys: &mut S, maps: &RunMaps) -> Contents {
    maps.compared
        .iter()
        .map(|(fd, keys)| {
            keys.iter()
                .map(|k| sys.map_lookup_elem(*fd, k).map_err(|e| e.to_string()))
                .collect()
        })
        .collect()
}

fn with_fds(prog: &[Insn], fds: &BTreeMap<i32, Fd>, raw_of: &dyn Fn(Fd) -> i32) -> Vec<Insn> {
    prog.iter()
        .map(|insn| {
            let mut i = *insn;
            if i.is_lddw() && i.src == BPF_PSEUDO_MAP_FD {
                if let Some(fd) = fds.get(&i.imm) {
                    i.imm = raw_of(*fd);
                }
            }
            i
        })
        .collect()
}

/// One accepted program run by `BPF_PROG_TEST_RUN` and by mimic's `prog_load` and test run on
/// the world, each on fresh maps and the same context: `Err((kind, text))` when r0, the context
/// written back or the map contents differ.
fn exec_one(
    kernel: &mut KernelSys,
    table: &MapTable,
    item: &Item,
    profile: KernelProfile,
) -> Result<(), (String, String)> {
    use mimic_core::sync::Std;
    use mimic_core::sys::Process;
    use mimic_core::world::WorldConfig;
    let setup = |e: String| ("setup failed".to_string(), e);
    // A context with distinct bytes, so reads of it are not all zero. (Syscall programs run
    // once: the kernel refuses a repeat count for them.)
    let ctx: Vec<u8> = (0..EXEC_CTX as u8).collect();
    let km = run_maps(kernel, table).map_err(setup)?;
    let kinsns = with_fds(&item.prog, &km.fds, &|fd| kernel.map_fd(fd).unwrap_or(fd));
    let theirs = kernel
        .prog_load(
            super::BPF_PROG_TYPE_SYSCALL,
            &kinsns,
            0,
            super::BPF_F_SLEEPABLE,
        )
        .map_err(|f| format!("kernel load: {}", f.error))
        .and_then(|(prog, _)| {
            let r = kernel
                .test_run(prog, &[], &ctx, 0)
                .map_err(|e| e.to_string());
            let _ = kernel.close(prog);
            r
        });
    let kc = contents(kernel, &km);
    for fd in km.all.iter().rev() {
        let _ = kernel.close(*fd);
    }
    let mut sys = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
    let wm = run_maps(&mut sys, table).map_err(setup)?;
    let winsns = with_fds(&item.prog, &wm.fds, &|fd| fd);
    let mut our_ctx = ctx.clone();
    let ours = mimic_test_run(
        sys.world(),
        &winsns,
        syscall_opts(item.state_freq, profile),
        &mut our_ctx,
    );
    let wc = contents(&mut sys, &wm);
    compare_runs(&item.name, theirs, ours, &our_ctx, &kc, &wc)
}

/// mimic's side of a test run: `prog_load` on `world` (map fds the world's), the test run on
/// `ctx` (written back), the unload. `Err` says which step failed.
pub fn mimic_test_run(
    world: &mimic_core::world::World<mimic_core::sync::Std>,
    insns: &[Insn],
    opts: VerifyOpts,
    ctx: &mut [u8],
) -> Result<u64, String> {
    use mimic_core::bpf::verifier::world::prog_load;
    prog_load(world, insns, opts)
        .map_err(|e| format!("mimic prog_load: {e}"))
        .and_then(|loaded| {
            let r = loaded.test_run(world, ctx).map_err(|e| e.to_string());
            let _ = loaded.unload(world);
            r
        })
}

/// Map contents as each side read them back (per map, per key: the value or the error).
pub type Contents = Vec<Vec<Result<Vec<u8>, String>>>;

/// The one comparison of two test runs of a program both accepted: same `r0` (low 32 bits),
/// the same context written back (`our_ctx` is mimic's after the run) and the same map
/// contents. `Err((kind, text))` names the first difference.
pub fn compare_runs(
    name: &str,
    theirs: Result<super::TestRun, String>,
    ours: Result<u64, String>,
    our_ctx: &[u8],
    kc: &Contents,
    wc: &Contents,
) -> Result<(), (String, String)> {
    // A privileged program may return a pointer: the kernel's r0 is then (the low half of) a
    // kernel address and mimic's a pointer in its own encoding, so only "both a pointer" can be
    // compared, which mimic's r0 decoding as one says (the kernel accepted the same program).
    let same_r0 = |kernel_r0: u32, ours: u64| {
        kernel_r0 == ours as u32 || mimic_core::ptr::Ptr::decode(ours).is_some()
    };
    match (theirs, ours) {
        (Ok(a), Ok(b)) if same_r0(a.retval, b) && a.ctx_after == our_ctx && kc == wc => Ok(()),
        (Ok(a), Ok(b)) if same_r0(a.retval, b) && a.ctx_after != our_ctx => Err((
            "context differs".to_string(),
            format!(
                "{name}: kernel ctx after {:?}, mimic {our_ctx:?}",
                a.ctx_after
            ),
        )),
        (Ok(a), Ok(b)) if same_r0(a.retval, b) => Err((
            "map contents differ".to_string(),
            format!("{name}: kernel maps {kc:?}, world maps {wc:?}"),
        )),
        (Ok(a), Ok(b)) => Err((
            "r0 differs".to_string(),
            format!("{name}: kernel r0 {:#x}, mimic {b:#x}", a.retval),
        )),
        (Ok(a), Err(e)) => Err((
            "mimic fails".to_string(),
            format!("{name}: kernel r0 {:#x}, mimic {e}", a.retval),
        )),
        (Err(e), _) => Err(("kernel fails".to_string(), format!("{name}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_that_differs_only_in_ids_is_named_and_one_that_differs_elsewhere_is_not() {
        let log = "14: (72) *(u8 *)(r5 +28) = 7\n\
                   invalid access to packet, off=28 size=1, R5(id=2,off=28,r=0)\n\
                   R5 offset is outside of the packet\n";
        let ours = "invalid access to packet, off=28 size=1, R5(id=1,off=28,r=0)";
        assert!(!log.contains(ours));
        assert!(names_but_ids(log, ours));
        assert!(!names_but_ids(
            log,
            "invalid access to packet, off=27 size=1, R5(id=1,off=27,r=0)"
        ));
        assert!(!names_but_ids(
            log,
            "invalid access to packet, off=28 size=1, R5(id=1,off=28,r=1)"
        ));
    }
}
