//! Packets per second of the clang-built Maglev balancer (`examples/objects/maglev.bpf.c`, its
//! XDP programs and its tc one) on mimic's executor against the kernel's `BPF_PROG_TEST_RUN` with `repeat`, side
//! by side in one process: the same object loaded into both (mimic's loader and the kernel), the
//! same backends written into both, the same frames.
//!
//! Two measures per frame, each the fastest of `ROUNDS` alternating rounds (the machine is
//! shared):
//! - `repeat`: the kernel's `repeat` runs the program again and again on the one buffer, so a
//!   frame the balancer rewrites (`XDP_TX`) takes the path of a rewritten frame (not a service,
//!   `XDP_PASS`) from the second run on. mimic's loop does the same (one packet buffer, run
//!   after run), and the last run's `r0` of both is checked equal.
//! - `fresh`: every run on the frame as sent, the path a load balancer takes per packet: the
//!   kernel's `duration_ns` of single runs (`repeat` 1, one syscall each: its two clock reads
//!   included) and mimic's runs on a new packet buffer each (its set-up included).
//!
//! The first rows measure an empty XDP program (`return XDP_PASS`) the same two ways: what a
//! run costs each side with nothing in it.
//!
//! rbpf (0.3 or 0.4.1) cannot run the program: it has no maps (the balancer's first call is a
//! hash-of-maps lookup whose result is another map), and its packet buffers hand programs 64-bit
//! pointers at fixed offsets, where `struct xdp_md` has 32-bit `data`/`data_end` that the kernel
//! rewrites into pointer loads.
//!
//! Run with `ci/build-objects && cargo bench -p mimic-sim --bench maglev_packets`; skips with one
//! line when the object is missing or bpf() is refused.
use mimic_core::bpf::exec::{Config, NoObserver, Program, Vm};
use mimic_core::bpf::object::{load::create_maps, Object};
use mimic_core::bpf::skb;
use mimic_core::bpf::verifier::packet_cases::frame_named;
use mimic_core::bpf::verifier::world::prog_load;
use mimic_core::bpf::verifier::{ProgType, VerifyOpts};
use mimic_core::bpf::world_env::WorldEnv;
use mimic_core::bpf::xdp::{self, RxInfo};
use mimic_core::isa::Insn;
use mimic_core::mutants::Mutants;
use mimic_core::rcu::Flavor;
use mimic_core::sync::Std;
use mimic_core::sys::Process;
use mimic_core::uapi::{BpfSys, BPF_ANY};
use mimic_core::world::WorldConfig;
use mimic_sim::kernel::KernelSys;
use std::path::Path;
use std::time::Instant;

/// Runs per round, on each side.
const RUNS: u32 = 10_000;
/// Alternating rounds; each side keeps its fastest.
const ROUNDS: u32 = 9;

/// The backends written into both worlds: each table's slots.
const BACKENDS: [(&str, &[u32]); 3] = [
    ("backends_web", &[11, 12, 13, 14, 15]),
    ("backends_dns", &[21, 22, 23]),
    ("fixed_web", &[31, 32, 33, 34, 35, 36, 37, 38]),
];

fn main() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bpf/maglev.bpf.o");
    let Ok(bytes) = std::fs::read(&path) else {
        println!(
            "maglev packets bench: skipped: {} is missing (run ci/build-objects)",
            path.display()
        );
        return;
    };
    let object = match Object::parse(&bytes) {
        Ok(o) => o,
        Err(e) => {
            println!("maglev packets bench: {}: {e}", path.display());
            return;
        }
    };
    let Some(mut kernel) = KernelSys::or_skip("maglev packets bench") else {
        return;
    };
    let mut world = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
    let (kmaps, wmaps) = match (
        create_maps(&mut kernel, &object),
        create_maps(&mut world, &object),
    ) {
        (Ok(k), Ok(w)) => (k, w),
        (k, w) => {
            println!(
                "maglev packets bench: maps: kernel {:?}, mimic {:?}",
                k.err(),
                w.err()
            );
            return;
        }
    };
    for (name, slots) in BACKENDS {
        let Some(i) = object.map_index(name) else {
            println!("maglev packets bench: the object has no map {name}");
            return;
        };
        for (slot, backend) in slots.iter().enumerate() {
            let (key, value) = ((slot as u32).to_ne_bytes(), backend.to_ne_bytes());
            let k = kernel.map_update_elem(kmaps.fds[i], &key, &value, BPF_ANY);
            let w = world.map_update_elem(wmaps.fds[i], &key, &value, BPF_ANY);
            if k.is_err() || w.is_err() {
                println!("maglev packets bench: {name}[{slot}]: kernel {k:?}, mimic {w:?}");
                return;
            }
        }
    }
    let raw: Vec<i32> = kmaps
        .fds
        .iter()
        .map(|fd| kernel.map_fd(*fd).unwrap_or(*fd))
        .collect();
    // `return XDP_PASS`: the cost of a run with nothing in it, on each side.
    let pass = [Insn::mov64_imm(0, 2), Insn::exit()];
    let empty = match (
        kernel.prog_load(ProgType::Xdp.uapi(), &pass, 0, 0),
        Program::new(&pass),
    ) {
        (Ok((fd, _)), Ok(p)) => (fd, p),
        (k, p) => {
            println!(
                "maglev packets bench: the empty program: kernel {:?}, mimic {:?}",
                k.err().map(|f| f.error.to_string()),
                p.err()
            );
            return;
        }
    };
    println!(
        "{:<13} {:<12} {:<7} {:<9} {:>10} {:>10} {:>7} {:>11} {:>11}",
        "program",
        "frame",
        "runs",
        "r0",
        "kernel ns",
        "mimic ns",
        "ratio",
        "kernel pps",
        "mimic pps"
    );
    let mut loaded_progs = Vec::new();
    for program in &object.programs {
        let Ok(opts) = program.kind.verify_opts(VerifyOpts::default()) else {
            continue;
        };
        let (Some(kinsns), Some(winsns)) = (program.with_fds(&raw), program.with_fds(&wmaps.fds))
        else {
            println!("{}: a map without an fd", program.name);
            continue;
        };
        let kprog = match kernel.prog_load(program.kind.prog_type(), &kinsns, 0, 0) {
            Ok((fd, _)) => fd,
            Err(failure) => {
                println!("{}: the kernel refused it: {}", program.name, failure.error);
                continue;
            }
        };
        let loaded = match prog_load(world.world(), &winsns, opts) {
            Ok(l) => l,
            Err(e) => {
                println!("{}: mimic refused it: {e}", program.name);
                continue;
            }
        };
        let Ok(decoded) = Program::new(&loaded.fixed.insns) else {
            println!("{}: the fixed-up program does not decode", program.name);
            continue;
        };
        let tc = opts.prog_type == ProgType::SchedCls;
        loaded_progs.push((program.name.clone(), kprog, decoded, tc, Some(loaded)));
    }
    loaded_progs.insert(0, ("empty".to_string(), empty.0, empty.1, false, None));
    for (name, kprog, decoded, tc, loaded) in loaded_progs {
        for frame in ["web", "dns", "no_table", "other"] {
            let Some(data) = frame_named(frame, 40000) else {
                continue;
            };
            for mode in [Mode::Repeat, Mode::Fresh] {
                let (mut kernel_ns, mut mimic_ns) = (f64::MAX, f64::MAX);
                let mut r0 = (None, None);
                for _ in 0..ROUNDS {
                    match kernel_side(&mut kernel, kprog, &data, mode) {
                        Ok((ns, r)) => {
                            kernel_ns = kernel_ns.min(ns);
                            r0.0 = Some(r);
                        }
                        Err(e) => {
                            println!("{} {frame}: kernel test run: {e}", name);
                            break;
                        }
                    }
                    let (ns, r) = mimic_side(&world, &decoded, &data, mode, tc);
                    mimic_ns = mimic_ns.min(ns);
                    r0.1 = Some(r);
                }
                let (Some(k), Some(Ok(m))) = r0.clone() else {
                    println!("{} {frame}: kernel {:?}, mimic {:?}", name, r0.0, r0.1);
                    continue;
                };
                if k != m {
                    println!("{} {frame}: r0 differs: kernel {k}, mimic {m}", name);
                    continue;
                }
                let pps = |ns: f64| 1e9 / ns.max(1.0);
                println!(
                    "{:<13} {:<12} {:<7} {:<9} {:>10.1} {:>10.1} {:>7.1} {:>11.0} {:>11.0}",
                    name,
                    frame,
                    mode.name(),
                    if tc {
                        skb::action_name(u64::from(k))
                    } else {
                        xdp::action_name(u64::from(k))
                    },
                    kernel_ns,
                    mimic_ns,
                    mimic_ns / kernel_ns.max(0.1),
                    pps(kernel_ns),
                    pps(mimic_ns)
                );
            }
        }
        let _ = kernel.close(kprog);
        if let Some(loaded) = loaded {
            let _ = loaded.unload(world.world());
        }
    }
    kmaps.close(&mut kernel);
    wmaps.close(&mut world);
}

#[derive(Clone, Copy)]
enum Mode {
    Repeat,
    Fresh,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Repeat => "repeat",
            Mode::Fresh => "fresh",
        }
    }
}

/// The kernel's ns per run of `prog` on `data`, and the last run's `r0`.
fn kernel_side(
    kernel: &mut KernelSys,
    prog: i32,
    data: &[u8],
    mode: Mode,
) -> Result<(f64, u32), String> {
    match mode {
        Mode::Repeat => {
            let r = kernel
                .test_run(prog, data, &[], RUNS)
                .map_err(|e| e.to_string())?;
            Ok((f64::from(r.duration_ns), r.retval))
        }
        Mode::Fresh => {
            let (mut total, mut r0) = (0u64, 0);
            for _ in 0..RUNS {
                let r = kernel
                    .test_run(prog, data, &[], 1)
                    .map_err(|e| e.to_string())?;
                total += u64::from(r.duration_ns);
                r0 = r.retval;
            }
            Ok((total as f64 / f64::from(RUNS), r0))
        }
    }
}

/// mimic's ns per run of `program` on `data` (a tc program's `sk_buff` when `tc`, else an XDP
/// context), and the last run's `r0`.
fn mimic_side(
    world: &Process<Std>,
    program: &Program,
    data: &[u8],
    mode: Mode,
    tc: bool,
) -> (f64, Result<u32, String>) {
    let world = world.world();
    let mut env = WorldEnv::new(world);
    let mut vm = Vm::new(Config {
        tc,
        ..Config::default()
    });
    let fresh = || skb::on_frame(tc, data, RxInfo::default());
    let (mut packet, mut ctx) = fresh();
    let _ = world.rcu_read_lock(Flavor::Rcu);
    let start = Instant::now();
    let mut r0 = Ok(0);
    for _ in 0..RUNS {
        if let Mode::Fresh = mode {
            (packet, ctx) = fresh();
        }
        r0 = vm.run_packet(program, &mut ctx, &mut packet, &mut env, &mut NoObserver);
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(RUNS);
    let _ = world.rcu_read_unlock(Flavor::Rcu);
    (ns, r0.map(|r| r as u32).map_err(|e| e.to_string()))
}
