//! `mimic kernel-check --object FILE.o`: one BPF object loaded into the live kernel by mimic's
//! own loader (`mimic_core::bpf::object::load`: maps with their templates, global data written,
//! `.rodata` frozen, initial slots filled) and into a fresh world by the same loader, then each
//! program compared: the verdict and first message, the processed-instruction count, the
//! xlated program (map ids through the two sides' ids) and, for the types that have a test run
//! (raw tracepoints, syscall programs), `r0` and every map's contents after the run; an XDP
//! program runs on every packet of `packet_cases::packets`, compared by `r0` (or the errno
//! that refuses the run) and the packet afterwards, then every map's contents.
//!
//! Every program is loaded before any runs, and each `PROG_ARRAY`'s initial slots are then
//! filled with them (libbpf's order), so a tail call reaches the same program on both sides.
//! Programs run in object order on the same maps on both sides, so a program sees what the
//! ones before it wrote, on both sides alike. Map contents are compared as sets of entries
//! (hash order is each side's own); an outer map's values are ids, so only which slots are
//! taken is compared.
#![forbid(unsafe_code)]

use super::check::Check;
use super::verdicts::compare_verdicts;
use super::xlated::tally;
use super::{KernelSys, BPF_F_SLEEPABLE};
use mimic_core::bpf::object::load::{create_maps, fill_prog_arrays, LoadedMaps};
use mimic_core::bpf::object::{Object, ProgKind};
use mimic_core::bpf::verifier::world::prog_load;
use mimic_core::bpf::verifier::{ProgType, VerifyOpts};
use mimic_core::mutants::Mutants;
use mimic_core::profile::KernelProfile;
use mimic_core::sync::Std;
use mimic_core::sys::Process;
use mimic_core::uapi::{BpfSys, Fd, MapType};
use mimic_core::world::WorldConfig;
use std::collections::BTreeMap;

/// The context a test run passes: the 12 u64 arguments of a raw tracepoint, distinct bytes.
fn test_ctx() -> Vec<u8> {
    (0..mimic_core::bpf::verifier::RAW_TP_CTX_MAX as u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(1))
        .collect()
}

/// A map's entries: (key, value) pairs.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Every entry of a map, in key order (for an outer map, its keys with an empty value).
fn entries(sys: &mut dyn BpfSys, fd: Fd) -> Entries {
    // Ids (of inner maps, of programs) are each side's own: only the taken slots compare.
    let outer = sys
        .map_info(fd)
        .ok()
        .and_then(|i| MapType::from_u32(i.map_type))
        .is_some_and(|t| t.is_map_in_map() || t == MapType::ProgArray);
    let mut out = Vec::new();
    let mut key: Option<Vec<u8>> = None;
    // Bounded: the example objects' maps are small.
    for _ in 0..4096 {
        match sys.map_get_next_key(fd, key.as_deref()) {
            Ok(next) => {
                let value = match sys.map_lookup_elem(fd, &next) {
                    Ok(_) if outer => Vec::new(),
                    Ok(v) => v,
                    // An empty slot of an array of maps.
                    Err(_) => {
                        key = Some(next);
                        continue;
                    }
                };
                out.push((next.clone(), value));
                key = Some(next);
            }
            Err(_) => break,
        }
    }
    out.sort();
    out
}

/// One program loaded on both sides: the program, its label, its options, the kernel's load
/// and mimic's.
type Attempt<'o> = (
    &'o mimic_core::bpf::object::Program,
    String,
    VerifyOpts,
    Result<(Fd, String), super::ffi::LoadFailure>,
    Result<
        mimic_core::bpf::verifier::world::LoadedProg,
        mimic_core::bpf::verifier::world::LoadError,
    >,
);

/// The known difference of processed counts (docs/kernel-disagreements.md, D19).
pub const PRUNES_LESS: &str = "mimic prunes less (D19)";

/// The kernel's `prog_flags` for a kind.
fn prog_flags(kind: ProgKind) -> u32 {
    if kind.sleepable() {
        BPF_F_SLEEPABLE
    } else {
        0
    }
}

/// The object's lines of the agreement table (the object read from `path`, which names the
/// lines), the last one the comparison of mimic's loader with bpftool's
/// ([`super::bpftool`]); `mutants` are switched on in mimic's world and verifier (the kernel
/// is what it is), so a test can show a line fail.
pub fn check_object(
    kernel: &mut KernelSys,
    object: &Object,
    path: &std::path::Path,
    profile: KernelProfile,
    mutants: Mutants,
) -> Vec<Check> {
    let label = &path.display().to_string();
    let mut verdicts = Check::new(
        format!("object/verdicts/{label}"),
        "kernel verifier vs mimic verify",
        true,
    );
    let mut processed = Check::new(
        format!("object/processed/{label}"),
        "kernel verified_insns vs mimic",
        true,
    );
    let mut xlated = Check::new(
        format!("object/xlated/{label}"),
        "kernel xlated vs mimic fixup",
        true,
    );
    let mut runs = Check::new(
        format!("object/test-run/{label}"),
        "kernel test-run vs mimic, maps after",
        true,
    );
    // The world has the machine's possible CPUs: per-CPU values have one size on both sides,
    // and `bpf_map_lookup_percpu_elem` answers NULL from the same CPU on.
    let config = WorldConfig {
        cpus: super::differential::kernel_cpus(kernel) as usize,
        ..WorldConfig::default()
    };
    let mut world = Process::<Std>::create(mutants, config);
    let (kmaps, wmaps) = match (create_maps(kernel, object), create_maps(&mut world, object)) {
        (Ok(k), Ok(w)) => (k, w),
        (k, w) => {
            let why = |r: &Result<LoadedMaps, _>| match r {
                Ok(_) => "created".to_string(),
                Err(e) => format!("{e}"),
            };
            verdicts.note(
                "maps",
                format!("{label}: kernel maps: {}; world maps: {}", why(&k), why(&w)),
            );
            if let Ok(k) = k {
                k.close(kernel);
            }
            return vec![verdicts, processed, xlated, runs];
        }
    };
    // The global data as the loader wrote it, before programs run (for the libbpf line).
    let initial: Vec<Option<Vec<u8>>> = object
        .maps
        .iter()
        .zip(&kmaps.fds)
        .map(|(spec, fd)| {
            spec.data
                .as_ref()
                .and_then(|_| kernel.map_lookup_elem(*fd, &0u32.to_ne_bytes()).ok())
        })
        .collect();
    // mimic's map id -> the kernel's, for the xlated comparison.
    let mut ids = BTreeMap::new();
    for (k, w) in kmaps.fds.iter().zip(&wmaps.fds) {
        if let (Ok(ki), Ok(wi)) = (kernel.map_info(*k), world.map_info(*w)) {
            ids.insert(wi.id, ki.id);
        }
    }
    let raw: Vec<i32> = kmaps
        .fds
        .iter()
        .map(|fd| kernel.map_fd(*fd).unwrap_or(*fd))
        .collect();
    let mut kernel_xlated = BTreeMap::new();
    // Every program is loaded first on both sides, so that the PROG_ARRAYs' initial slots
    // can be filled (as libbpf fills them after loading) before any program runs.
    let mut attempts = Vec::new();
    for program in &object.programs {
        let name = format!("{label}: {}", program.name);
        let base = VerifyOpts {
            profile,
            mutants,
            ..VerifyOpts::default()
        };
        let Ok(opts) = program.kind.verify_opts(base) else {
            // Not modelled: reported by `mimic verify`, not compared here.
            continue;
        };
        let (Some(kinsns), Some(winsns)) = (program.with_fds(&raw), program.with_fds(&wmaps.fds))
        else {
            verdicts.note("maps", format!("{name}: a map without an fd"));
            continue;
        };
        let theirs = kernel.prog_load(
            program.kind.prog_type(),
            &kinsns,
            0,
            prog_flags(program.kind),
        );
        let ours = prog_load(world.world(), &winsns, opts);
        attempts.push((program, name, opts, theirs, ours));
    }
    let loaded_fd = |attempts: &[Attempt<'_>], kernel_side: bool, wanted: &str| {
        attempts
            .iter()
            .find(|(program, ..)| program.name == wanted)
            .and_then(|(_, _, _, theirs, ours)| match kernel_side {
                true => theirs.as_ref().ok().map(|(fd, _)| *fd),
                false => ours.as_ref().ok().map(|l| l.installed.fd),
            })
    };
    let filled = (
        fill_prog_arrays(kernel, object, &kmaps, |n| loaded_fd(&attempts, true, n)),
        fill_prog_arrays(&mut world, object, &wmaps, |n| {
            loaded_fd(&attempts, false, n)
        }),
    );
    if let (Err(e), _) | (_, Err(e)) = &filled {
        runs.note(
            "prog arrays",
            format!("{label}: {e} (kernel {:?})", filled.0),
        );
    }
    for (program, name, opts, theirs, ours) in attempts {
        verdicts.cases += 1;
        let ours_verdict = ours.as_ref().map(|_| ()).map_err(|e| match e {
            mimic_core::bpf::verifier::world::LoadError::Rejected(r) => r.clone(),
            other => mimic_core::bpf::verifier::Rejection {
                insn: 0,
                message: other.to_string(),
                log: String::new(),
                errno: 22,
            },
        });
        if let Err(d) = compare_verdicts(&theirs, &ours_verdict) {
            verdicts.note(d.kind, format!("{name}: {}", d.text));
        } else {
            verdicts.agreed += 1;
        }
        let (Ok((kprog, _)), Ok(loaded)) = (theirs, ours) else {
            continue;
        };
        processed.cases += 1;
        match kernel.verified_insns(kprog) {
            Ok(n) if u64::from(n) == loaded.verified.stats.processed => processed.agreed += 1,
            // mimic walks more where its pruning is simpler than the kernel's (D19: no forced
            // checkpoint after 40 history entries, precision not followed across frames,
            // static stack liveness). Walking more can only make mimic stricter, never let a
            // program through; fewer is a finding.
            Ok(n) if u64::from(n) < loaded.verified.stats.processed => {
                *processed.known.entry(PRUNES_LESS.to_string()).or_insert(0) += 1;
                processed.examples.push(format!(
                    "{name}: kernel {n}, mimic {} ({PRUNES_LESS})",
                    loaded.verified.stats.processed
                ));
            }
            Ok(n) => processed.note(
                "count differs",
                format!(
                    "{name}: kernel {n}, mimic {}",
                    loaded.verified.stats.processed
                ),
            ),
            Err(e) => processed.note("no count", format!("{name}: {e}")),
        }
        xlated.cases += 1;
        let x = kernel.xlated(kprog);
        if let Ok(x) = &x {
            kernel_xlated.insert(program.name.clone(), x.clone());
        }
        let x = x.as_deref().map_err(|e| e.to_string());
        tally(&mut xlated, &name, x, Ok(&loaded.fixed), &ids);
        if matches!(opts.prog_type, ProgType::RawTracepoint | ProgType::Syscall) {
            runs.cases += 1;
            let mut ctx = test_ctx();
            let k = kernel.test_run(kprog, &[], &ctx, 0).map(|r| r.retval);
            let w = loaded.test_run(world.world(), &mut ctx).map(|r0| r0 as u32);
            let mut same = match (&k, &w) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            };
            let mut detail = format!("r0: kernel {k:?}, mimic {w:?}");
            for (i, (kfd, wfd)) in kmaps.fds.iter().zip(&wmaps.fds).enumerate() {
                let (a, b) = (entries(kernel, *kfd), entries(&mut world, *wfd));
                if a != b {
                    same = false;
                    detail.push_str(&format!(
                        "\n  map {}: kernel {a:?}, mimic {b:?}",
                        object.maps[i].name
                    ));
                }
            }
            if same {
                runs.agreed += 1;
            } else {
                runs.note("run differs", format!("{name}: {detail}"));
            }
        }
        if opts.prog_type.is_packet() {
            runs.cases += 1;
            let mut differs = Vec::new();
            for packet in mimic_core::bpf::verifier::packet_cases::packets() {
                let ran = super::packets::compare_test_run(
                    kernel,
                    kprog,
                    &loaded,
                    world.world(),
                    &packet,
                );
                if let Err((kind, detail)) = ran {
                    differs.push(format!("{}-byte packet: {kind}: {detail}", packet.len()));
                }
            }
            for (i, (kfd, wfd)) in kmaps.fds.iter().zip(&wmaps.fds).enumerate() {
                let (a, b) = (entries(kernel, *kfd), entries(&mut world, *wfd));
                if a != b {
                    differs.push(format!(
                        "map {}: kernel {a:?}, mimic {b:?}",
                        object.maps[i].name
                    ));
                }
            }
            if differs.is_empty() {
                runs.agreed += 1;
            } else {
                runs.note("run differs", format!("{name}: {}", differs.join("\n  ")));
            }
        }
        let _ = kernel.close(kprog);
        let _ = loaded.unload(world.world());
    }
    let libbpf = super::bpftool::compare(
        kernel,
        path,
        object,
        &kmaps,
        &initial,
        &kernel_xlated,
        label,
    );
    kmaps.close(kernel);
    wmaps.close(&mut world);
    vec![verdicts, processed, xlated, runs, libbpf]
}
