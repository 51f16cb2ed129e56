//! The engine: one seed → one execution of a scenario on the core's `Shuttle` platform, under
//! one of mimic's schedulers, followed by the oracles.
//!
//! A run: (1) setup on task 0 (maps, entries, programs loaded with their `used_maps` held);
//! (2) the scenario's tasks spawned as shuttle threads, each with its own task slot and CPU
//! (an irq task shares the CPU of the task it interrupts), plus a grace-period worker that
//! polls the deferred frees; (3) teardown on task 0 once all have joined: conservation, drain
//! checks, programs unloaded, every fd closed, `audit_quiescent`; (4) the linearizability
//! check of each outer map's history.
//!
//! Every world operation is a shuttle scheduling point (the core's atomics and locks are
//! shuttle's), and so is every map-value access of a program (the executor reaches map memory
//! through `WorldEnv`). The trace records each syscall, helper call and free with its kernel
//! name; recording adds no scheduling point.
//!
//! Parts: this file holds the run (`execute`, `finish`) and the shared state (`Ctx`); `runner`
//! the seed runners (a shuttle `Runner` per batch of seeds); `setup` the set-up; `user_ops` one
//! function per user-space op; `env` the recording map environment of program runs; `tasks`
//! the task bodies and the grace-period worker; `teardown` the end-of-run checks.

use super::op::{UpdateFlags, UserOp};
use super::options::Options;
use super::oracle;
use super::scenario::{self, Scenario, Shape, TaskKind};
use super::scheduler::{Campaign, ExecState, Reseed, SchedulerKind, ShuttleRandom};
use super::trace::{Fnv, HistEvent, HistOp, MapIdent, Recorder, UNKNOWN_ID};
use mimic_core::arena::Handle;
use mimic_core::bpf::exec::{
    EnvResult, ExecErrorKind, MapEnv, NoObserver, Program, TailTarget, Vm,
};
use mimic_core::bpf::fixup::Fixed;
use mimic_core::bpf::helpers::DirectCall;
use mimic_core::bpf::object::load::{create_maps, fill_prog_arrays, LoadedMaps};
use mimic_core::bpf::object::Object;
use mimic_core::bpf::verifier::world::{prog_load, LoadError, LoadedProg};
use mimic_core::bpf::verifier::{ProgType, VerifyOpts, RAW_TP_CTX_MAX};
use mimic_core::bpf::world_env::WorldEnv;
use mimic_core::errno::Errno;
use mimic_core::fault::{Error, Fault};
use mimic_core::finding::Finding;
use mimic_core::history::Lacks;
use mimic_core::isa::{AtomicOp, Insn, BPF_CALL, BPF_JMP};
use mimic_core::maps::kind::kind;
use mimic_core::mutants::Mutants;
use mimic_core::profile::KernelProfile;
use mimic_core::ptr::Ptr;
use mimic_core::rcu::Flavor;
use mimic_core::sync::{Ordering, Platform, Shuttle};
use mimic_core::sys::Process;
use mimic_core::uapi::{Fd, MapAttr, MapId, MapType, BPF_ANY};
use mimic_core::world::{FaultPlan, TeardownStep, World, WorldConfig};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

type P = Shuttle;

/// Polls of the grace-period worker before it gives up (bounds its loop; the teardown's
/// `rcu_barrier` runs whatever is left).
const GP_POLLS_MAX: u32 = 100_000;

/// Bytes of a program's context: the key (0..4), the run number (4..8), a random flow hash
/// (8..12), and 4 spare bytes. The verifier checks context reads against this size.
const PROG_CTX_BYTES: usize = 16;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    /// An invariant failed: `kind` is the invariant (`use_after_free`, `leak`, `lost_key`, ...).
    Fail {
        kind: String,
        detail: String,
    },
    /// The step budget ran out before the run finished (not a failure; counted apart).
    Cut,
}

impl Verdict {
    pub fn kind(&self) -> Option<&str> {
        match self {
            Verdict::Fail { kind, .. } => Some(kind),
            _ => None,
        }
    }
}

/// The result of one seed.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub seed: u64,
    pub options: String,
    pub verdict: Verdict,
    pub steps: u64,
    pub draws: u64,
    pub trace_hash: u64,
    pub schedule_hash: u64,
    #[serde(skip)]
    pub trace: Vec<String>,
    /// Each outer map's tables at their largest (`--footprint`).
    #[serde(skip)]
    pub tables: Vec<super::footprint::TablesPeak>,
}

/// What a campaign or a replay runs.
#[derive(Clone)]
pub struct RunConfig {
    pub scenario: Scenario,
    pub mutants: Mutants,
    pub scheduler: SchedulerKind,
    /// Keep the trace text in each outcome (replay, determinism checks).
    pub keep_trace: bool,
    /// The kernel build whose verifier the scenario's programs are loaded under.
    pub profile: KernelProfile,
    /// Features the modelled release lacks (`mimic_core::history`); its old behaviours are
    /// in `mutants`.
    pub lacks: Lacks,
}

mod env;
mod results;
mod runner;
mod setup;
mod tables;
mod tasks;
mod teardown;
mod user_ops;

pub use runner::{run_bytes, run_one, run_seeds, run_seeds_shuttle_random};

use setup::*;
use tasks::*;
use teardown::*;
use user_ops::*;

/// A failure inside a run, with the stamp it happened at (the earliest wins).
#[derive(Debug, Clone)]
struct Failure {
    at: u64,
    kind: String,
    detail: String,
}

/// State shared by the tasks of one run.
struct Ctx {
    world: <P as Platform>::Arc<World<P>>,
    rec: Recorder,
    scenario: Scenario,
    options: Options,
    /// Setup maps by name: fd, type, and shape.
    maps: BTreeMap<String, (Fd, MapType)>,
    /// Outer maps by identity (programs see them as pointers).
    outers: BTreeMap<MapIdent, (String, MapType)>,
    ids: Mutex<BTreeMap<MapId, MapIdent>>,
    /// Setup maps by identity, and the keys of each that must never be reported missing.
    present: BTreeMap<MapIdent, (String, Vec<u32>)>,
    failure: Mutex<Option<Failure>>,
    drains: Mutex<Vec<Drain>>,
    /// What the results oracle compares packets with.
    stored: Mutex<results::Stored>,
    /// The tables each outer map holds (the footprint report).
    tables: Mutex<tables::Tables>,
}

/// A drained value: the fd, the key, the bytes read after the swap, and the variable's name.
type Drain = (Fd, u32, Vec<u8>, String);

/// What the closure hands back for one seed: the verdict, the trace, the options line and the
/// footprint report.
type SeedResult = (
    u64,
    Verdict,
    Vec<String>,
    String,
    Vec<super::footprint::TablesPeak>,
);

impl Ctx {
    fn fail(&self, finding: Finding, detail: String) {
        let at = self.rec.stamp();
        let mut slot = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(Failure {
                at,
                kind: finding.name().to_string(),
                detail,
            });
        }
    }

    fn failed(&self) -> bool {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// A world error in a task: faults are failures, errnos are results.
    fn check<T>(&self, what: &str, result: Result<T, Error>) -> Result<Result<T, Errno>, ()> {
        match result {
            Ok(v) => Ok(Ok(v)),
            Err(Error::Errno(e)) => Ok(Err(e)),
            Err(Error::Fault(f)) => {
                self.fail(f.finding(), format!("{what}: {f}"));
                Err(())
            }
        }
    }

    fn ident_of_fd(&self, fd: Fd) -> Option<MapIdent> {
        let handle = self.world.map_handle(fd).ok()?;
        Some(ident(handle))
    }

    fn learn_id(&self, fd: Fd) {
        if let (Ok(info), Some(ident)) = (self.world.map_info(fd), self.ident_of_fd(fd)) {
            self.ids
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(info.id, ident);
        }
    }
}

/// The executor's map environment for one program run: the world, plus the trace, the
/// outer-map history and the slow-reader pauses.
struct TracingEnv<'a> {
    inner: WorldEnv<'a, P>,
    ctx: &'a Ctx,
    task: usize,
    cpu: usize,
    program: &'a str,
    /// The direct call (fixup) the executor announced for the helper call in progress.
    direct: Option<DirectCall>,
    /// An inlined outer-map (hash-of-maps) lookup waiting for its load of the inner map
    /// pointer.
    pending: Option<PendingRead>,
}

/// An inlined hash-of-maps lookup between its `__htab_map_lookup_elem` call and the load of the
/// inner map pointer from the element's value: the read the history records is that load's.
struct PendingRead {
    outer: Ptr,
    key: Vec<u8>,
    direct: Option<DirectCall>,
    /// The encoded address of the element's value.
    value_at: u64,
    inv: u64,
}

/// An inner value made ready for an update: the bytes, its identity and shape, and whether the
/// fd is ours to close afterwards.
struct Prepared {
    bytes: Vec<u8>,
    inner: Option<(MapIdent, Fd, bool)>,
}

fn ident(handle: Handle) -> MapIdent {
    (handle.index, handle.gen as u8)
}

fn attr_of(
    _scenario: &Scenario,
    shape: &Shape,
    fds: &BTreeMap<String, Fd>,
    full_map: bool,
) -> Result<MapAttr, String> {
    let map_type = scenario::map_type(&shape.map_type)?;
    let mut flags = 0;
    for flag in &shape.flags {
        flags |= scenario::map_flag(flag)?;
    }
    let mut max_entries = shape.max_entries;
    if full_map && matches!(map_type, MapType::Hash | MapType::HashOfMaps) {
        max_entries = (max_entries / 2).max(1);
    }
    let mut attr =
        MapAttr::new(map_type, shape.key_size, shape.value_size, max_entries).flags(flags);
    if let Some(inner) = &shape.inner {
        let fd = *fds
            .get(inner)
            .ok_or(format!("template `{inner}` has no fd"))?;
        attr = attr.inner(fd);
    }
    Ok(attr)
}

/// Kernel function names, for the trace (the map kind's row, `maps::kind`).
fn kernel_lookup(t: MapType) -> &'static str {
    kind(t).syscall[0]
}
fn kernel_update(t: MapType) -> &'static str {
    kind(t).syscall[1]
}
fn kernel_delete(t: MapType) -> &'static str {
    kind(t).syscall[2]
}

fn errno_name(e: Errno) -> String {
    format!("{e:?}")
}

/// What the fixups made of each map helper call of `original` (in program order): a direct
/// call of the map type's function (`array_map_lookup_elem`, ...), the generic helper (a call
/// site that saw several map types), a lookup inlined by `map_gen_lookup`, or a call in dead
/// code the fixups removed.
fn fixup_summary(original: &[Insn], fixed: &Fixed) -> String {
    let is_call = |i: &Insn| i.code == BPF_JMP | BPF_CALL && i.src == 0;
    // A removed instruction starts where the next kept one does.
    let kept = |pc: usize| fixed.new_pc.get(pc) < fixed.new_pc.get(pc + 1);
    let (mut helper_calls, mut dead_calls) = (0usize, 0usize);
    for (pc, insn) in original.iter().enumerate() {
        if is_call(insn) && (1..=3).contains(&insn.imm) {
            if kept(pc) {
                helper_calls += 1;
            } else {
                dead_calls += 1;
            }
        }
    }
    let mut parts: Vec<String> = Vec::new();
    for insn in fixed.insns.iter().filter(|i| is_call(i)) {
        if let Some(call) = DirectCall::from_imm(insn.imm) {
            parts.push(call.name());
        } else if (1..=3).contains(&insn.imm) {
            parts.push(format!("helper#{}", insn.imm));
        }
    }
    let inlined = helper_calls.saturating_sub(parts.len());
    if inlined > 0 {
        parts.push(format!("{inlined} lookup(s) inlined"));
    }
    if dead_calls > 0 {
        parts.push(format!("{dead_calls} call(s) removed as dead code"));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn show(seen: Option<MapIdent>) -> String {
    match seen {
        Some((i, g)) => format!("map#{i}.{g}"),
        None => "NULL".into(),
    }
}

fn key_u32(key: &[u8]) -> u32 {
    let mut bytes = [0u8; 4];
    for (b, k) in bytes.iter_mut().zip(key) {
        *b = *k;
    }
    u32::from_le_bytes(bytes)
}

/// A program loaded at setup: the fixed-up instructions the executor runs (what the kernel
/// would run: map pointers in place, inlined array lookups, direct calls), and the verifier's
/// load with the references it holds on the `used_maps` (released at teardown).
struct Loaded {
    name: String,
    program: Program,
    load: LoadedProg,
    /// The context a run passes: its size, and where the key, run and random word start
    /// (a tracepoint's record keeps its first 8 bytes from programs).
    ctx_len: usize,
    ctx_at: usize,
}

/// What one seed's execution hands back: the verdict, the trace text and the footprint report.
type Executed = (Verdict, Vec<String>, Vec<super::footprint::TablesPeak>);

/// Runs one seed's scenario inside the current shuttle execution.
fn execute(config: &RunConfig, options: Options) -> Executed {
    let rec = Recorder::new();
    let scenario = match config.scenario.instantiate(options.seed) {
        Ok(scenario) => scenario,
        Err(e) => {
            let detail = e.to_string();
            return (
                Verdict::Fail {
                    kind: "setup".into(),
                    detail,
                },
                rec.lines(),
                Vec::new(),
            );
        }
    };
    // Task slots: 0 = setup/teardown, 1..=n = scenario tasks, n+1 = swarm irq, n+2 = gp worker.
    let n = scenario.tasks.len();
    let irq_extra =
        options.faults.irq && scenario.tasks.iter().any(|t| t.kind == TaskKind::Program);
    let max_tasks = n + 3;
    let world_config = WorldConfig {
        cpus: n + 1,
        max_tasks,
        faults: FaultPlan {
            hash_alloc_fail_per_mille: options.faults.enomem_per_mille,
        },
        lacks: config.lacks,
    };
    let world = P::arc(World::new(config.mutants, world_config));
    P::set_current_task(0);
    P::set_current_cpu(0);
    rec.line(0, 0, || {
        format!("options: {options} mutants={}", config.mutants)
    });

    let mut ctx = Ctx {
        world: world.clone(),
        rec: rec.clone(),
        scenario: scenario.clone(),
        options,
        maps: BTreeMap::new(),
        outers: BTreeMap::new(),
        ids: Mutex::new(BTreeMap::new()),
        present: BTreeMap::new(),
        failure: Mutex::new(None),
        drains: Mutex::new(Vec::new()),
        stored: Mutex::default(),
        tables: Mutex::default(),
    };
    let setup = setup(&mut ctx, &scenario, config.profile);
    let loaded = match setup {
        Ok(loaded) => loaded,
        Err(SetupError::Fault) => {
            let (verdict, trace) = finish(&ctx, Vec::new());
            return (verdict, trace, Vec::new());
        }
        Err(SetupError::Bad(message)) => {
            return (
                Verdict::Fail {
                    kind: "setup".into(),
                    detail: message,
                },
                rec.lines(),
                Vec::new(),
            )
        }
    };
    let ctx = Arc::new(ctx);
    let loaded = Arc::new(loaded);
    let done = P::arc(P::atomic(0));

    let mut cpu_of = Vec::new();
    let mut handles = Vec::new();
    for (i, task) in scenario.tasks.iter().enumerate() {
        let cpu = match task.kind {
            TaskKind::Irq => task.on_cpu_of.map_or(i + 1, |j| j + 1),
            _ => i + 1,
        };
        cpu_of.push(cpu);
        let (ctx, loaded) = (ctx.clone(), loaded.clone());
        handles.push(P::spawn(move || run_task(&ctx, &loaded, i, i + 1, cpu)));
    }
    if irq_extra {
        if let Some(j) = scenario
            .tasks
            .iter()
            .position(|t| t.kind == TaskKind::Program)
        {
            let (ctx, loaded, cpu) = (ctx.clone(), loaded.clone(), cpu_of[j]);
            handles.push(P::spawn(move || run_task(&ctx, &loaded, j, n + 1, cpu)));
        }
    }
    let gp = {
        let (ctx, done) = (ctx.clone(), done.clone());
        P::spawn(move || gp_worker(&ctx, &done, n + 2))
    };
    for handle in handles {
        P::join(handle);
    }
    done.store(1, Ordering::Release);
    P::join(gp);
    P::set_current_task(0);
    P::set_current_cpu(0);
    teardown(&ctx);
    let history = rec.history();
    let (verdict, trace) = finish(&ctx, history);
    let tables = ctx
        .tables
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .report(&outer_shapes(&ctx));
    (verdict, trace, tables)
}

fn finish(ctx: &Ctx, history: Vec<HistEvent>) -> (Verdict, Vec<String>) {
    if let Some(f) = ctx
        .failure
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
    {
        return (
            Verdict::Fail {
                kind: f.kind,
                detail: format!("{} (at stamp {})", f.detail, f.at),
            },
            ctx.rec.lines(),
        );
    }
    let checked: Vec<String> = match &ctx.scenario.checks.linearizable {
        Some(names) => names.clone(),
        None => ctx.outers.values().map(|(name, _)| name.clone()).collect(),
    };
    let shapes = outer_shapes(ctx);
    for name in checked {
        let Some((attr, template)) = shapes.get(&name) else {
            continue;
        };
        let events: Vec<&HistEvent> = history.iter().filter(|e| e.outer == name).collect();
        if let Err(violation) = oracle::check_outer(&name, *attr, *template, &events) {
            return (
                Verdict::Fail {
                    kind: violation.finding.name().to_string(),
                    detail: violation.detail,
                },
                ctx.rec.lines(),
            );
        }
    }
    (Verdict::Pass, ctx.rec.lines())
}

/// Each outer map's attributes and its template's, for the sequential model.
fn outer_shapes(ctx: &Ctx) -> BTreeMap<String, (MapAttr, MapAttr)> {
    let mut out = BTreeMap::new();
    let fds: BTreeMap<String, Fd> = ctx
        .maps
        .iter()
        .map(|(k, (fd, _))| (k.clone(), *fd))
        .collect();
    for decl in &ctx.scenario.maps {
        let Some(inner) = &decl.shape.inner else {
            continue;
        };
        let Some(template) = ctx.scenario.shape(inner) else {
            continue;
        };
        let (Ok(attr), Ok(tattr)) = (
            attr_of(
                &ctx.scenario,
                &decl.shape,
                &fds,
                ctx.options.faults.full_map,
            ),
            attr_of(&ctx.scenario, template, &fds, false),
        ) else {
            continue;
        };
        out.insert(decl.name.clone(), (attr, tattr));
    }
    // The object's map-in-map definitions, with the template their `values` declare.
    let object = ctx.scenario.loaded.as_ref().map(|l| &l.object);
    for spec in object.map_or(&[][..], |o| &o.maps[..]) {
        if let Some(template) = &spec.inner {
            out.insert(spec.name.clone(), (spec.attr(), template.attr()));
        }
    }
    out
}
