//! `mimic kernel-check`: the shipped corpus against the real kernel, as an agreement table. One
//! [`Check`] per line: what was compared, how many cases, how many agreed, and the
//! disagreements counted by kind (with the first few in full).
//!
//! Maps: the one errno table (`mimic_core::model::cases`) on the kernel, the model and the
//! world; the model and the world against the kernel on seeded op sequences; the §9 selftest
//! scenarios on the kernel and the world. Every one of them gates the command: the kernel is the
//! reference, and the model and the world both follow it where it differs from semantics.md
//! (docs/kernel-disagreements.md).
#![forbid(unsafe_code)]

use super::differential::{kernel_cpus, kernel_gen_config, sweep, SweepReport};
use super::KernelSys;
use mimic_core::model::cases::{run_table_on, TableReport};
use mimic_core::model::gen::ops_from_seed;
use mimic_core::model::ops::{differential_with, FdMap};
use mimic_core::model::selftests;
use mimic_core::model::RefModel;
use mimic_core::mutants::Mutants;
use mimic_core::sync::Std;
use mimic_core::sys::Process;
use mimic_core::uapi::{BpfSys, Fd, MapAttr};
use mimic_core::world::WorldConfig;
use std::collections::BTreeMap;

/// Disagreements shown in full per check (the rest are counted).
pub const SHOWN_PER_CHECK: usize = 5;

/// One line of the agreement table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// `area/what`, e.g. `maps/errno-table/kernel`.
    pub name: String,
    /// The two sides compared.
    pub compares: String,
    pub cases: u64,
    pub agreed: u64,
    /// Disagreements by kind.
    pub disagreed: BTreeMap<String, u64>,
    /// Known, classified differences by kind (each named in docs/kernel-disagreements.md):
    /// counted apart from agreements, they do not fail the line. A classification must be
    /// narrow (a direction, a shape), so a difference of any other kind still fails.
    pub known: BTreeMap<String, u64>,
    /// The first disagreements, in full.
    pub examples: Vec<String>,
    /// Whether a disagreement fails the command.
    pub gating: bool,
}

impl Check {
    /// A line with nothing compared yet.
    pub fn new(name: impl Into<String>, compares: impl Into<String>, gating: bool) -> Check {
        Check {
            name: name.into(),
            compares: compares.into(),
            cases: 0,
            agreed: 0,
            disagreed: BTreeMap::new(),
            known: BTreeMap::new(),
            examples: Vec::new(),
            gating,
        }
    }

    /// Counts one disagreement of `kind` and keeps its text among the first few shown; one
    /// where mimic is the more lenient side (a kind starting with `mimic`) is always shown.
    pub fn note(&mut self, kind: &str, text: String) {
        *self.disagreed.entry(kind.to_string()).or_insert(0) += 1;
        if self.examples.len() < SHOWN_PER_CHECK || kind.starts_with("mimic") {
            self.examples.push(text);
        }
    }

    pub fn disagreements(&self) -> u64 {
        self.disagreed.values().sum()
    }
    pub fn passed(&self) -> bool {
        self.disagreements() == 0 && self.agreed + self.known.values().sum::<u64>() == self.cases
    }
}

/// The whole table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// Every gating check agreed.
    pub fn passed(&self) -> bool {
        self.checks.iter().filter(|c| c.gating).all(Check::passed)
    }
}

fn table_check(name: &str, compares: &str, report: TableReport, gating: bool) -> Check {
    Check {
        name: name.to_string(),
        compares: compares.to_string(),
        cases: report.ran as u64,
        agreed: report.agreed() as u64,
        disagreed: report
            .by_kind()
            .into_iter()
            .map(|(kind, n)| (kind.name().to_string(), n as u64))
            .collect(),
        known: Default::default(),
        examples: report
            .failures
            .iter()
            .take(SHOWN_PER_CHECK)
            .map(ToString::to_string)
            .collect(),
        gating,
    }
}

/// The kind of a divergence: the op (or the quiescence probe) where it happened.
fn divergence_kind(d: &mimic_core::model::ops::Divergence) -> String {
    match &d.op {
        None => "quiescence".to_string(),
        Some(op) => {
            let text = op.to_string();
            text.split_whitespace()
                .next()
                .unwrap_or("op")
                .trim_end_matches(|c: char| !c.is_alphanumeric() && c != '_')
                .to_string()
        }
    }
}

fn sweep_check(name: &str, compares: &str, report: SweepReport, gating: bool) -> Check {
    let mut disagreed = BTreeMap::new();
    for d in &report.divergences {
        *disagreed
            .entry(format!("at {}", divergence_kind(&d.divergence)))
            .or_insert(0) += 1;
    }
    Check {
        name: name.to_string(),
        compares: compares.to_string(),
        cases: report.seeds,
        agreed: report.agreed(),
        disagreed,
        known: Default::default(),
        examples: report
            .divergences
            .iter()
            .take(SHOWN_PER_CHECK)
            .map(|d| format!("seed {}: {}", d.seed, d.divergence))
            .collect(),
        gating,
    }
}

fn world() -> Process<Std> {
    Process::create(Mutants::NONE, WorldConfig::default())
}

/// The errno table on a backend that lives across entries.
fn table_on(sys: &mut dyn BpfSys, skip_model: bool, fd_map: fn() -> FdMap) -> TableReport {
    run_table_on(sys, |source| !(skip_model && source == "model"), fd_map)
}

/// The world against the kernel on `seeds` generated sequences of `len` ops (access flags
/// included, as for the model).
fn world_sweep(kernel: &mut KernelSys, seeds: u64, len: usize) -> SweepReport {
    let mut report = SweepReport {
        seeds,
        ops: seeds * len as u64,
        ..SweepReport::default()
    };
    for seed in 0..seeds {
        let cpus = kernel_cpus(kernel);
        let ops = ops_from_seed(seed, len, kernel_gen_config(cpus));
        // The world's CPUs are the kernel's possible CPUs, so per-CPU values have one size.
        let config = WorldConfig {
            cpus: cpus as usize,
            ..WorldConfig::default()
        };
        let mut w = Process::<Std>::create(Mutants::NONE, config);
        if let Err(divergence) = differential_with(
            ("world", &mut w),
            ("kernel", kernel),
            &ops,
            FdMap::closed_never_reused,
        ) {
            let upto = divergence.index.min(ops.len().saturating_sub(1));
            report
                .divergences
                .push(super::differential::SeedDivergence {
                    seed,
                    listing: mimic_core::model::ops::listing(&ops[..=upto]),
                    divergence,
                });
        }
    }
    report
}

fn selftest_check<S: BpfSys>(name: &str, compares: &str, sys: &mut S, gating: bool) -> Check {
    let scenarios = selftests::all::<S>();
    let mut examples = Vec::new();
    let mut failed = 0;
    for (scenario, run) in &scenarios {
        if let Err(e) = run(sys) {
            failed += 1;
            if examples.len() < SHOWN_PER_CHECK {
                examples.push(format!("{scenario}: {e}"));
            }
        }
    }
    let mut disagreed = BTreeMap::new();
    if failed > 0 {
        disagreed.insert("scenario failed".to_string(), failed);
    }
    Check {
        name: name.to_string(),
        compares: compares.to_string(),
        cases: scenarios.len() as u64,
        agreed: scenarios.len() as u64 - failed,
        disagreed,
        known: Default::default(),
        examples,
        gating,
    }
}

/// Runs every map check with `seeds` differential seeds of `len` ops.
pub fn run_maps(kernel: &mut KernelSys, seeds: u64, len: usize) -> Vec<Check> {
    let mut checks = Vec::new();
    let kernel_table = table_on(kernel, true, FdMap::closed_never_reused);
    checks.push(table_check(
        "maps/errno-table/kernel",
        "kernel vs table",
        kernel_table,
        true,
    ));
    let mut model = RefModel::new();
    checks.push(table_check(
        "maps/errno-table/model",
        "model vs table",
        table_on(&mut model, false, FdMap::new),
        true,
    ));
    let mut w = world();
    checks.push(table_check(
        "maps/errno-table/world",
        "world vs table",
        table_on(&mut w, false, FdMap::new),
        true,
    ));
    checks.push(sweep_check(
        "maps/differential/model",
        "model vs kernel (seeds)",
        sweep(kernel, seeds, len),
        true,
    ));
    checks.push(sweep_check(
        "maps/differential/world",
        "world vs kernel (seeds)",
        world_sweep(kernel, seeds, len),
        true,
    ));
    checks.push(selftest_check(
        "maps/selftests/kernel",
        "§9 scenarios on the kernel",
        kernel,
        true,
    ));
    checks.push(selftest_check(
        "maps/selftests/world",
        "§9 scenarios on the world",
        &mut world(),
        true,
    ));
    checks
}

/// The bytes of the test-run packet for programs that take no memory: a socket filter needs
/// at least an Ethernet header.
const PACKET_LEN: usize = 64;

/// The execution check: every conformance program run by `BPF_PROG_TEST_RUN` and by mimic's
/// executor, `r0` compared (the low 32 bits: the test-run ABI reports a 32-bit return value).
/// Programs without input memory load as socket filters (run on a zeroed packet); programs with
/// memory as sleepable `BPF_PROG_TYPE_SYSCALL` programs whose context is the memory (`r1`
/// points at it, as in the suite). A program the kernel's verifier refuses, or one the suite
/// expects to fail, is not compared: counted in `skipped` of the examples line.
pub fn run_programs(kernel: &mut KernelSys, dir: &std::path::Path) -> Vec<Check> {
    use mimic_core::bpf::conformance::{data_files, execute, parse, program, Parsed};
    let mut check = Check::new("exec/conformance", "kernel test-run vs executor", true);
    let files = match data_files(dir) {
        Ok(files) => files,
        Err(e) => {
            check
                .examples
                .push(format!("cannot read {}: {e}", dir.display()));
            check.disagreed.insert("corpus missing".to_string(), 1);
            return vec![check];
        }
    };
    let mut refused = 0u64;
    let mut refused_names = Vec::new();
    let mut not_runnable = 0u64;
    for path in files {
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(Parsed::Case(case)) = parse(&text) else {
            not_runnable += 1;
            continue;
        };
        if case.error.is_some() {
            not_runnable += 1;
            continue;
        }
        let Ok(insns) = program(&case) else {
            not_runnable += 1;
            continue;
        };
        let (prog_type, flags) = if case.mem.is_empty() {
            (super::BPF_PROG_TYPE_SOCKET_FILTER, 0)
        } else {
            (super::BPF_PROG_TYPE_SYSCALL, super::BPF_F_SLEEPABLE)
        };
        let prog = match kernel.prog_load(prog_type, &insns, 0, flags) {
            Ok((prog, _)) => prog,
            Err(failure) => {
                refused += 1;
                refused_names.push(format!("{name} ({})", failure.error));
                continue;
            }
        };
        check.cases += 1;
        let packet = [0u8; PACKET_LEN];
        let run = if case.mem.is_empty() {
            kernel.test_run(prog, &packet, &[], 1)
        } else {
            kernel.test_run(prog, &[], &case.mem, 0)
        };
        let _ = kernel.close(prog);
        let ours = execute(&case);
        match (run, ours) {
            (Ok(run), Ok(r0)) if run.retval == r0 as u32 => check.agreed += 1,
            (Ok(run), Ok(r0)) => check.note(
                "r0 differs",
                format!("{name}: kernel r0 {:#x}, mimic {r0:#x}", run.retval),
            ),
            (Ok(run), Err(e)) => check.note(
                "mimic fails",
                format!("{name}: kernel r0 {:#x}, mimic error {e}", run.retval),
            ),
            (Err(e), _) => check.note("test-run error", format!("{name}: BPF_PROG_TEST_RUN: {e}")),
        }
    }
    check.examples.insert(
        0,
        format!(
            "(not compared: {refused} programs the kernel refuses to load as built here: {}; \
             {not_runnable} error or unparsable cases)",
            refused_names.join(", ")
        ),
    );
    vec![check]
}

/// One side of the map-program check: a backend, its outer map and the inner maps it created.
struct Side<'a, S: BpfSys> {
    sys: &'a mut S,
    outer: Fd,
    template: Fd,
    inners: Vec<(Fd, u32)>,
}

impl<S: BpfSys> Side<'_, S> {
    fn attr(max: u32) -> MapAttr {
        MapAttr::new(mimic_core::uapi::MapType::Array, 4, 4, max)
            .flags(mimic_core::uapi::BPF_F_INNER_MAP)
    }
    fn store(&mut self, max: u32, first: u32) -> Result<(), String> {
        let inner = self
            .sys
            .map_create(&Self::attr(max))
            .map_err(|e| format!("inner array of {max}: {e}"))?;
        self.inners.push((inner, max));
        self.sys
            .map_update_elem(inner, &0u32.to_ne_bytes(), &first.to_ne_bytes(), 0)
            .map_err(|e| format!("inner[0] = {first}: {e}"))?;
        self.sys
            .map_update_elem(self.outer, &0u32.to_ne_bytes(), &inner.to_ne_bytes(), 0)
            .map_err(|e| format!("outer[0] = inner of {max}: {e}"))
    }
    fn empty(&mut self) -> Result<(), String> {
        self.sys
            .map_delete_elem(self.outer, &0u32.to_ne_bytes())
            .map_err(|e| format!("delete outer[0]: {e}"))
    }
    /// Every inner map's values, in creation order.
    fn contents(&mut self) -> Vec<Vec<Result<Vec<u8>, String>>> {
        let inners = self.inners.clone();
        inners
            .iter()
            .map(|(fd, max)| {
                (0..*max)
                    .map(|i| {
                        self.sys
                            .map_lookup_elem(*fd, &i.to_ne_bytes())
                            .map_err(|e| e.to_string())
                    })
                    .collect()
            })
            .collect()
    }
    fn close_all(&mut self) {
        for (fd, _) in self.inners.drain(..) {
            let _ = self.sys.close(fd);
        }
        let _ = self.sys.close(self.outer);
        let _ = self.sys.close(self.template);
    }
}

fn side<S: BpfSys>(sys: &mut S) -> Result<Side<'_, S>, String> {
    let template = sys
        .map_create(&Side::<S>::attr(1))
        .map_err(|e| format!("template: {e}"))?;
    let outer = sys
        .map_create(&MapAttr::new(mimic_core::uapi::MapType::ArrayOfMaps, 4, 4, 3).inner(template))
        .map_err(|e| format!("outer: {e}"))?;
    Ok(Side {
        sys,
        outer,
        template,
        inners: Vec::new(),
    })
}

/// The execution check with maps: seed 004's program (plus a store) run by the kernel
/// (`BPF_PROG_TEST_RUN`, socket filter) and by mimic's executor on the world, through a
/// sequence of outer-map states (empty, dynamic inner arrays of 1, 3 and 5 entries swapped in,
/// emptied again). Each run is a case: same `r0` and the same contents of every inner array.
pub fn run_map_programs(kernel: &mut KernelSys) -> Check {
    use mimic_core::bpf::exec::{NoObserver, Program, Vm};
    use mimic_core::bpf::world_env::WorldEnv;
    use mimic_core::rcu::Flavor;
    let mut check = Check::new(
        "exec/seed004-maps",
        "kernel test-run vs executor+world",
        true,
    );
    let mut w = world();
    let result = (|| -> Result<(), String> {
        let mut k = side(kernel)?;
        let kernel_insns = mimic_core::bpf::verifier::corpus::seed_004_with_store(k.outer);
        let prog = match k
            .sys
            .prog_load(super::BPF_PROG_TYPE_SOCKET_FILTER, &kernel_insns, 0, 0)
        {
            Ok((prog, _)) => prog,
            Err(failure) => {
                k.close_all();
                return Err(format!("the kernel refused the program: {}", failure.error));
            }
        };
        let mut ws = side(&mut w)?;
        let program = Program::new(&mimic_core::bpf::verifier::corpus::seed_004_with_store(
            ws.outer,
        ))
        .map_err(|e| format!("the executor cannot decode the program: {e}"))?;
        let steps: [(&str, Option<(u32, u32)>); 6] = [
            ("empty outer[0]", None),
            ("inner array of 1 holding 41", Some((1, 41))),
            ("again", Some((0, 0))),
            ("inner array of 3 holding 7", Some((3, 7))),
            ("inner array of 5 holding 0", Some((5, 0))),
            ("outer[0] deleted", None),
        ];
        let mut outcome = Ok(());
        for (index, (what, state)) in steps.into_iter().enumerate() {
            let setup = match state {
                None if index == 0 => Ok(()),
                None => k.empty().and_then(|()| ws.empty()),
                Some((0, _)) => Ok(()),
                Some((max, first)) => k.store(max, first).and_then(|()| ws.store(max, first)),
            };
            if let Err(e) = setup {
                outcome = Err(format!("{what}: {e}"));
                break;
            }
            check.cases += 1;
            let packet = [0u8; PACKET_LEN];
            let theirs = k.sys.test_run(prog, &packet, &[], 1).map(|r| r.retval);
            let world_ref = ws.sys.world();
            let ours = world_ref
                .rcu_read_lock(Flavor::Rcu)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    let r = Vm::default()
                        .run(
                            &program,
                            &mut [],
                            &mut WorldEnv::new(world_ref),
                            &mut NoObserver,
                        )
                        .map_err(|e| e.to_string());
                    world_ref
                        .rcu_read_unlock(Flavor::Rcu)
                        .map_err(|e| e.to_string())?;
                    r
                });
            let (kc, wc) = (k.contents(), ws.contents());
            match (theirs, ours) {
                (Ok(a), Ok(b)) if a == b as u32 && kc == wc => check.agreed += 1,
                (Ok(a), Ok(b)) if a == b as u32 => check.note(
                    "map contents differ",
                    format!("{what}: kernel maps {kc:?}, world maps {wc:?}"),
                ),
                (Ok(a), Ok(b)) => check.note(
                    "r0 differs",
                    format!("{what}: kernel r0 {a:#x}, mimic {b:#x}"),
                ),
                (Ok(a), Err(e)) => check.note(
                    "mimic fails",
                    format!("{what}: kernel r0 {a:#x}, mimic error {e}"),
                ),
                (Err(e), _) => check.note("test-run error", format!("{what}: {e}")),
            }
        }
        let _ = k.sys.close(prog);
        k.close_all();
        ws.close_all();
        outcome
    })();
    if let Err(why) = result {
        check.note("setup failed", why);
    }
    check
}
