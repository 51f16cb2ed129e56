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

use super::options::Options;
use super::oracle;
use super::scenario::{self, EntryValue, Scenario, Shape, TaskKind};
use super::scheduler::{Campaign, ExecState, Reseed, SchedulerKind};
use super::trace::{Fnv, HistEvent, HistOp, MapIdent, Recorder};
use mimic_core::arena::Handle;
use mimic_core::bpf::exec::{EnvResult, ExecErrorKind, MapEnv, NoObserver, Program, Vm};
use mimic_core::bpf::fixup::Fixed;
use mimic_core::bpf::helpers::DirectCall;
use mimic_core::bpf::object::{load::create_maps, Object};
use mimic_core::bpf::verifier::world::{prog_load, LoadError, LoadedProg};
use mimic_core::bpf::verifier::{ProgType, VerifyOpts, RAW_TP_CTX_MAX};
use mimic_core::bpf::world_env::WorldEnv;
use mimic_core::errno::Errno;
use mimic_core::fault::{Error, Fault};
use mimic_core::finding::Finding;
use mimic_core::isa::{AtomicOp, Insn, BPF_CALL, BPF_JMP};
use mimic_core::maps::kind::kind;
use mimic_core::mutants::Mutants;
use mimic_core::profile::KernelProfile;
use mimic_core::ptr::Ptr;
use mimic_core::rcu::Flavor;
use mimic_core::sync::{Ordering, Platform, Shuttle};
use mimic_core::sys::Process;
use mimic_core::uapi::{Fd, MapAttr, MapId, MapType, BPF_ANY, BPF_EXIST, BPF_NOEXIST};
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

/// Stack of each shuttle task (continuations are pooled, so this is paid once per task slot).
const TASK_STACK_BYTES: usize = 1 << 20;

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
}

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
}

/// A drained value: the fd, the key, the bytes read after the swap, and the variable's name.
type Drain = (Fd, u32, Vec<u8>, String);

/// What the closure hands back for one seed: the verdict, the trace and the options line.
type SeedResult = (u64, Verdict, Vec<String>, String);

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

impl TracingEnv<'_> {
    /// Traces a program lookup on `map` that returned `result` between the stamps `inv` and
    /// `resp`: the outer-map history, the `lost_key` oracle, the trace line, the slow-reader
    /// pause.
    fn record_lookup(
        &mut self,
        map: Ptr,
        key: &[u8],
        direct: Option<DirectCall>,
        result: &EnvResult<u64>,
        inv: u64,
        resp: u64,
    ) {
        let outer = self.ctx.outers.get(&(map.index, map.gen)).cloned();
        let key32 = key_u32(key);
        if let (Ok(0), Some((name, keys))) = (result, self.ctx.present.get(&(map.index, map.gen))) {
            if keys.contains(&key32) {
                self.ctx.fail(
                    Finding::LostKey,
                    format!("program {}: bpf_map_lookup_elem({name}, {key32}) returned NULL, but key {key32} is always present", self.program),
                );
            }
        }
        if let Ok(value) = result {
            let seen = Ptr::decode(*value).map(|p| (p.index, p.gen));
            let (task, cpu, program) = (self.task, self.cpu, self.program);
            match &outer {
                Some((name, map_type)) => {
                    let kernel = direct.map_or_else(
                        || format!("helper, {}", kernel_lookup(*map_type)),
                        DirectCall::name,
                    );
                    self.ctx.rec.line(task, cpu, || {
                        format!(
                            "prog {program}: bpf_map_lookup_elem({name}, {key32}) [{kernel}] = {}",
                            show(seen)
                        )
                    });
                    self.ctx.rec.event(HistEvent {
                        task,
                        outer: name.clone(),
                        op: HistOp::Read {
                            key: key32,
                            program: true,
                        },
                        result: Ok(seen),
                        inv,
                        resp,
                    });
                }
                None => self.ctx.rec.line(task, cpu, || {
                    format!(
                        "prog {program}: bpf_map_lookup_elem(map#{}.{}, {key32}) [{}] = {}",
                        map.index,
                        map.gen,
                        direct.map_or_else(|| "helper".into(), DirectCall::name),
                        if seen.is_some() { "value" } else { "NULL" }
                    )
                }),
            }
            let faults = self.ctx.options.faults;
            if faults.slow_reader_per_mille > 0
                && (P::choose(1000) as u32) < faults.slow_reader_per_mille
            {
                for _ in 0..faults.slow_reader_yields {
                    P::yield_now();
                }
            }
        }
    }
}

impl MapEnv for TracingEnv<'_> {
    fn map_from_fd(&mut self, fd: i32) -> EnvResult<u64> {
        self.inner.map_from_fd(fd)
    }
    fn map_value_from_fd(&mut self, fd: i32, off: u32) -> EnvResult<u64> {
        self.inner.map_value_from_fd(fd, off)
    }
    fn map_key_size(&mut self, map: Ptr) -> EnvResult<u32> {
        self.inner.map_key_size(map)
    }
    fn map_value_size(&mut self, map: Ptr) -> EnvResult<u32> {
        self.inner.map_value_size(map)
    }
    fn map_lookup(&mut self, map: Ptr, key: &[u8]) -> EnvResult<u64> {
        let direct = self.direct.take();
        let inv = self.ctx.rec.stamp();
        let result = self.inner.map_lookup(map, key);
        let resp = self.ctx.rec.stamp();
        self.record_lookup(map, key, direct, &result, inv, resp);
        result
    }
    fn map_update(&mut self, map: Ptr, key: &[u8], value: &[u8], flags: u64) -> EnvResult<i64> {
        let direct = self.direct.take();
        let result = self.inner.map_update(map, key, value, flags);
        if let Ok(r) = &result {
            let (program, k) = (self.program, key_u32(key));
            let kernel = direct.map_or_else(|| "helper".into(), DirectCall::name);
            self.ctx.rec.line(self.task, self.cpu, || {
                format!(
                    "prog {program}: bpf_map_update_elem(map#{}, {k}) [{kernel}] = {r}",
                    map.index
                )
            });
        }
        result
    }
    fn map_delete(&mut self, map: Ptr, key: &[u8]) -> EnvResult<i64> {
        self.direct = None;
        self.inner.map_delete(map, key)
    }
    fn map_lookup_elem(&mut self, map: Ptr, key: &[u8]) -> EnvResult<u64> {
        let direct = self.direct.take();
        let inv = self.ctx.rec.stamp();
        let result = self.inner.map_lookup_elem(map, key);
        let resp = self.ctx.rec.stamp();
        match &result {
            // The inlined code loads the inner map pointer from the value next: record the
            // read when it does, with what it loads.
            Ok(elem) if *elem != 0 && self.ctx.outers.contains_key(&(map.index, map.gen)) => {
                let offset = mimic_core::maps::gen_lookup::htab_value_offset(key.len() as u32);
                self.pending = Some(PendingRead {
                    outer: map,
                    key: key.to_vec(),
                    direct,
                    value_at: elem.wrapping_add(offset as u64),
                    inv,
                });
            }
            // NULL, or a plain hash's element (the trace only says "value" or "NULL").
            _ => self.record_lookup(map, key, direct, &result, inv, resp),
        }
        result
    }
    fn load(&mut self, ptr: Ptr, size: u8) -> EnvResult<u64> {
        let pending = self
            .pending
            .take_if(|p| size == 8 && p.value_at == ptr.encode());
        let result = self.inner.load(ptr, size);
        if let Some(p) = pending {
            let resp = self.ctx.rec.stamp();
            self.record_lookup(p.outer, &p.key, p.direct, &result, p.inv, resp);
        }
        result
    }
    fn store(&mut self, ptr: Ptr, size: u8, value: u64) -> EnvResult<()> {
        self.inner.store(ptr, size, value)
    }
    fn atomic(&mut self, ptr: Ptr, size: u8, op: AtomicOp, src: u64, r0: u64) -> EnvResult<u64> {
        self.inner.atomic(ptr, size, op, src, r0)
    }
    fn check_direct_call(&mut self, call: DirectCall, map: Ptr) -> EnvResult<()> {
        self.direct = Some(call);
        self.inner.check_direct_call(call, map)
    }
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

/// Runs one seed's scenario inside the current shuttle execution. Returns the verdict and the
/// trace text.
fn execute(config: &RunConfig, options: Options) -> (Verdict, Vec<String>) {
    let scenario = config.scenario.instantiate(options.seed);
    let rec = Recorder::new();
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
    };
    let setup = setup(&mut ctx, &scenario, config.profile);
    let loaded = match setup {
        Ok(loaded) => loaded,
        Err(SetupError::Fault) => return finish(&ctx, Vec::new()),
        Err(SetupError::Bad(message)) => {
            return (
                Verdict::Fail {
                    kind: "setup".into(),
                    detail: message,
                },
                rec.lines(),
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
    teardown(&ctx, &loaded);
    let history = rec.history();
    finish(&ctx, history)
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
    out
}

enum SetupError {
    Fault,
    Bad(String),
}

fn setup(
    ctx: &mut Ctx,
    scenario: &Scenario,
    profile: KernelProfile,
) -> Result<Vec<Loaded>, SetupError> {
    let mut fds: BTreeMap<String, Fd> = BTreeMap::new();
    if let Some(loaded) = &scenario.loaded {
        setup_object_maps(ctx, scenario, &loaded.object, &mut fds)?;
    }
    // Templates named by shape get their own map, created before the maps that use them.
    for decl in &scenario.maps {
        if let Some(inner) = &decl.shape.inner {
            if !fds.contains_key(inner) {
                let shape = scenario
                    .shape(inner)
                    .ok_or(SetupError::Bad(format!("no shape `{inner}`")))?;
                let attr = attr_of(scenario, shape, &fds, false).map_err(SetupError::Bad)?;
                let fd = create(ctx, &attr, inner)?;
                fds.insert(inner.clone(), fd);
                ctx.maps.insert(
                    inner.clone(),
                    (
                        fd,
                        MapType::from_u32(attr.map_type).unwrap_or(MapType::Array),
                    ),
                );
            }
        }
        let attr = attr_of(scenario, &decl.shape, &fds, ctx.options.faults.full_map)
            .map_err(SetupError::Bad)?;
        let fd = create(ctx, &attr, &decl.name)?;
        fds.insert(decl.name.clone(), fd);
        let map_type = MapType::from_u32(attr.map_type).unwrap_or(MapType::Array);
        register(ctx, scenario, &decl.name, fd, map_type);
    }
    for entry in &scenario.entries {
        let value = match &entry.value {
            EntryValue::Number(v) => Value::Number(*v),
            EntryValue::Text(t) => parse_value(t),
        };
        let mut vars = BTreeMap::new();
        let op = UserOp::Update {
            map: entry.map.clone(),
            key: entry.key,
            value,
            flags: BPF_ANY,
        };
        if user_op(ctx, &op, &mut vars, 0, 0).is_err() {
            return Err(SetupError::Fault);
        }
    }
    let mut loaded = Vec::new();
    for decl in &scenario.programs {
        let fd_of = |name: &str| fds.get(name).copied();
        let insns = scenario::assemble(&decl.source, &fd_of)
            .map_err(|e| bad_program(scenario, &decl.name, e))?;
        let opts = VerifyOpts {
            privileged: !decl.unprivileged,
            sleepable: decl.sleepable,
            ctx_size: PROG_CTX_BYTES as u32,
            profile,
            ..VerifyOpts::default()
        };
        loaded.push(load_program(ctx, scenario, &decl.name, &insns, opts)?);
    }
    if let Some(object) = &scenario.loaded {
        // The programs tasks run, each as its section's type, over the object's maps.
        let object_fds: Vec<Fd> = object
            .object
            .maps
            .iter()
            .map(|m| fds.get(&m.name).copied().unwrap_or(-1))
            .collect();
        for program in &object.object.programs {
            let runs = scenario
                .tasks
                .iter()
                .any(|t| t.program.as_deref() == Some(program.name.as_str()));
            if !runs {
                continue;
            }
            let bad = |e: String| bad_program(scenario, &program.name, e);
            let base = VerifyOpts {
                ctx_size: PROG_CTX_BYTES as u32,
                profile,
                ..VerifyOpts::default()
            };
            let opts = program.kind.verify_opts(base).map_err(bad)?;
            let insns = program
                .with_fds(&object_fds)
                .ok_or_else(|| bad("names a map the object has no fd for".into()))?;
            let mut prog = load_program(ctx, scenario, &program.name, &insns, opts)?;
            (prog.ctx_len, prog.ctx_at) = match opts.prog_type {
                ProgType::RawTracepoint => (RAW_TP_CTX_MAX as usize, 0),
                ProgType::Tracepoint => (TRACEPOINT_CTX_BYTES, 8),
                _ => (PROG_CTX_BYTES, 0),
            };
            loaded.push(prog);
        }
    }
    Ok(loaded)
}

/// A tracepoint program's context in a run: the 8 bytes it may not read, then the key, run and
/// random word (the record can be 8192 bytes; a run passes what a scenario can fill).
const TRACEPOINT_CTX_BYTES: usize = 8 + PROG_CTX_BYTES;

fn bad_program(scenario: &Scenario, program: &str, what: String) -> SetupError {
    SetupError::Bad(format!(
        "scenario `{}`: program `{program}`: {what}",
        scenario.name
    ))
}

/// Notes a setup map by name (and, for checks, by identity).
fn register(ctx: &mut Ctx, scenario: &Scenario, name: &str, fd: Fd, map_type: MapType) {
    ctx.maps.insert(name.to_string(), (fd, map_type));
    let keys: Vec<u32> = scenario
        .checks
        .always_present()
        .unwrap_or_default()
        .into_iter()
        .filter(|(m, _)| m == name)
        .map(|(_, k)| k)
        .collect();
    if !keys.is_empty() {
        if let Some(ident) = ctx.ident_of_fd(fd) {
            ctx.present.insert(ident, (name.to_string(), keys));
        }
    }
    if map_type.is_map_in_map() {
        if let Some(ident) = ctx.ident_of_fd(fd) {
            ctx.outers.insert(ident, (name.to_string(), map_type));
        }
    }
}

/// The object's maps created by its loader (`bpf::object::load`, the one that also puts the
/// object into the kernel): templates, global data, initial slots.
fn setup_object_maps(
    ctx: &mut Ctx,
    scenario: &Scenario,
    object: &Object,
    fds: &mut BTreeMap<String, Fd>,
) -> Result<(), SetupError> {
    let mut sys = Process::<P>::new(ctx.world.clone());
    let maps = create_maps(&mut sys, object).map_err(|e| {
        SetupError::Bad(format!(
            "scenario `{}`: loading its object: {e}",
            scenario.name
        ))
    })?;
    for (spec, &fd) in object.maps.iter().zip(&maps.fds) {
        ctx.learn_id(fd);
        ctx.rec.line(0, 0, || {
            format!(
                "map_create({}: type {} max_entries {} flags {:#x}, from the object) = fd {fd}",
                spec.name, spec.map_type, spec.max_entries, spec.map_flags
            )
        });
        fds.insert(spec.name.clone(), fd);
        let map_type = MapType::from_u32(spec.map_type).unwrap_or(MapType::Array);
        register(ctx, scenario, &spec.name, fd, map_type);
    }
    Ok(())
}

/// Verifies and fixes up one program on the world.
fn load_program(
    ctx: &Ctx,
    scenario: &Scenario,
    name: &str,
    insns: &[Insn],
    opts: VerifyOpts,
) -> Result<Loaded, SetupError> {
    let bad = |what: String| bad_program(scenario, name, what);
    let load = match prog_load(&ctx.world, insns, opts) {
        Ok(load) => load,
        Err(LoadError::Rejected(r)) => {
            return Err(bad(format!(
                "refused by the verifier: {r}\nverifier log:\n{}",
                r.log
            )))
        }
        Err(LoadError::Fixup(e)) => return Err(bad(format!("fixup failed: {e}"))),
        Err(LoadError::World(e)) => {
            return match ctx.check::<()>("prog_load", Err(e)) {
                Ok(Err(errno)) => Err(bad(format!("bpf_prog_load: {errno:?}"))),
                _ => Err(SetupError::Fault),
            }
        }
    };
    let program = Program::new(&load.fixed.insns)
        .map_err(|e| bad(format!("fixed-up program does not decode: {e}")))?;
    let fixups = fixup_summary(insns, &load.fixed);
    ctx.rec.line(0, 0, || {
        format!(
            "bpf_prog_load({name}) used_maps={} sleepable={} privileged={} fixups: {fixups}",
            load.maps.len(),
            opts.sleepable,
            opts.privileged
        )
    });
    Ok(Loaded {
        name: name.to_string(),
        program,
        load,
        ctx_len: PROG_CTX_BYTES,
        ctx_at: 0,
    })
}

fn create(ctx: &Ctx, attr: &MapAttr, name: &str) -> Result<Fd, SetupError> {
    match ctx.check("map_create", ctx.world.map_create(attr)) {
        Ok(Ok(fd)) => {
            ctx.learn_id(fd);
            ctx.rec.line(0, 0, || {
                format!(
                    "map_create({name}: type {} max_entries {} flags {:#x}) = fd {fd}",
                    attr.map_type, attr.max_entries, attr.map_flags
                )
            });
            Ok(fd)
        }
        Ok(Err(e)) => Err(SetupError::Bad(format!("creating map `{name}`: {e}"))),
        Err(()) => Err(SetupError::Fault),
    }
}

#[derive(Debug, Clone)]
enum Value {
    Number(u64),
    New(String),
    Var(String),
    Map(String),
}

fn parse_value(text: &str) -> Value {
    if let Some(shape) = text.strip_prefix("new:") {
        Value::New(shape.to_string())
    } else if let Some(var) = text.strip_prefix('$') {
        Value::Var(var.to_string())
    } else if let Ok(n) = text.parse() {
        Value::Number(n)
    } else {
        Value::Map(text.to_string())
    }
}

#[derive(Debug, Clone)]
enum UserOp {
    Update {
        map: String,
        key: u32,
        value: Value,
        flags: u64,
    },
    Delete {
        map: String,
        key: u32,
    },
    Lookup {
        map: String,
        key: u32,
    },
    Create {
        var: String,
        shape: String,
    },
    Close {
        var: String,
    },
    Drain {
        var: String,
        key: u32,
    },
    BatchUpdate {
        map: String,
        keys: Vec<u32>,
        value: Value,
    },
    BatchDelete {
        map: String,
        keys: Vec<u32>,
    },
    BatchLookup {
        map: String,
    },
    Yield(u32),
}

/// Parses a validated op (validation already named any error with its position).
fn parse_op(op: &str) -> Option<UserOp> {
    let w: Vec<&str> = op.split_whitespace().collect();
    let var = |s: &str| s.trim_start_matches('$').to_string();
    let keys = |s: &str| s.split(',').filter_map(|k| k.parse().ok()).collect();
    Some(match *w.first()? {
        "update" => UserOp::Update {
            map: w.get(1)?.to_string(),
            key: w.get(2)?.parse().ok()?,
            value: parse_value(w.get(3)?),
            flags: match w.get(4).copied() {
                Some("noexist") => BPF_NOEXIST,
                Some("exist") => BPF_EXIST,
                _ => BPF_ANY,
            },
        },
        "delete" => UserOp::Delete {
            map: w.get(1)?.to_string(),
            key: w.get(2)?.parse().ok()?,
        },
        "lookup" => UserOp::Lookup {
            map: w.get(1)?.to_string(),
            key: w.get(2)?.parse().ok()?,
        },
        "create" => UserOp::Create {
            var: var(w.get(1)?),
            shape: w.get(2)?.to_string(),
        },
        "close" => UserOp::Close {
            var: var(w.get(1)?),
        },
        "drain" => UserOp::Drain {
            var: var(w.get(1)?),
            key: w.get(2)?.parse().ok()?,
        },
        "batch_update" => UserOp::BatchUpdate {
            map: w.get(1)?.to_string(),
            keys: keys(w.get(2)?),
            value: parse_value(w.get(3)?),
        },
        "batch_delete" => UserOp::BatchDelete {
            map: w.get(1)?.to_string(),
            keys: keys(w.get(2)?),
        },
        "batch_lookup" => UserOp::BatchLookup {
            map: w.get(1)?.to_string(),
        },
        "yield" => UserOp::Yield(w.get(1)?.parse().ok()?),
        _ => return None,
    })
}

/// An op's map operand: a setup map or a task variable.
fn resolve(ctx: &Ctx, vars: &BTreeMap<String, Fd>, name: &str) -> Option<(Fd, MapType)> {
    if let Some(var) = name.strip_prefix('$') {
        let fd = *vars.get(var)?;
        let t = ctx
            .world
            .map_def(ctx.world.map_handle(fd).ok()?)
            .ok()?
            .map_type;
        return Some((fd, t));
    }
    ctx.maps.get(name).copied()
}

/// An inner value made ready for an update: the bytes, its identity and shape, and whether the
/// fd is ours to close afterwards.
struct Prepared {
    bytes: Vec<u8>,
    inner: Option<(MapIdent, Fd, bool)>,
}

fn prepare(
    ctx: &Ctx,
    vars: &BTreeMap<String, Fd>,
    value: &Value,
    value_size: usize,
    task: usize,
    cpu: usize,
) -> Result<Option<Prepared>, ()> {
    let number = |n: u64| {
        let mut bytes = n.to_le_bytes().to_vec();
        bytes.resize(value_size, 0);
        Prepared { bytes, inner: None }
    };
    Ok(Some(match value {
        Value::Number(n) => number(*n),
        Value::Var(var) => match vars.get(var) {
            Some(&fd) => Prepared {
                bytes: fd.to_le_bytes().to_vec(),
                inner: ctx.ident_of_fd(fd).map(|i| (i, fd, false)),
            },
            None => return Ok(None),
        },
        Value::Map(name) => match ctx.maps.get(name) {
            Some(&(fd, _)) => Prepared {
                bytes: fd.to_le_bytes().to_vec(),
                inner: ctx.ident_of_fd(fd).map(|i| (i, fd, false)),
            },
            None => return Ok(None),
        },
        Value::New(shape) => {
            let Some(shape) = ctx.scenario.shape(shape).cloned() else {
                return Ok(None);
            };
            let fds: BTreeMap<String, Fd> = ctx
                .maps
                .iter()
                .map(|(k, (fd, _))| (k.clone(), *fd))
                .collect();
            let Ok(attr) = attr_of(&ctx.scenario, &shape, &fds, false) else {
                return Ok(None);
            };
            match ctx.check("map_create", ctx.world.map_create(&attr))? {
                Ok(fd) => {
                    ctx.learn_id(fd);
                    let ident = ctx.ident_of_fd(fd);
                    ctx.rec.line(task, cpu, || {
                        format!(
                            "map_create(type {} max_entries {}) = fd {fd} ({})",
                            attr.map_type,
                            attr.max_entries,
                            show(ident)
                        )
                    });
                    Prepared {
                        bytes: fd.to_le_bytes().to_vec(),
                        inner: ident.map(|i| (i, fd, true)),
                    }
                }
                Err(_) => return Ok(None),
            }
        }
    }))
}

fn inner_attr_of(ctx: &Ctx, fd: Fd) -> Option<MapAttr> {
    let def = ctx.world.map_def(ctx.world.map_handle(fd).ok()?).ok()?;
    Some(
        MapAttr::new(def.map_type, def.key_size, def.value_size, def.max_entries)
            .flags(def.map_flags),
    )
}

/// Runs one user op. `Err(())`: a fault was recorded and the task stops.
fn user_op(
    ctx: &Ctx,
    op: &UserOp,
    vars: &mut BTreeMap<String, Fd>,
    task: usize,
    cpu: usize,
) -> Result<(), ()> {
    let world = &ctx.world;
    let rec = &ctx.rec;
    match op {
        UserOp::Update {
            map,
            key,
            value,
            flags,
        } => {
            let Some((fd, map_type)) = resolve(ctx, vars, map) else {
                return Ok(());
            };
            let value_size = world
                .map_def(world.map_handle(fd).map_err(|_| ())?)
                .map(|d| d.value_size)
                .unwrap_or(4) as usize;
            let Some(prepared) = prepare(ctx, vars, value, value_size, task, cpu)? else {
                return Ok(());
            };
            let inner_attr = prepared.inner.and_then(|(_, fd, _)| inner_attr_of(ctx, fd));
            let inv = rec.stamp();
            let result = ctx.check(
                "map_update_elem",
                world.map_update_elem(fd, &key.to_le_bytes(), &prepared.bytes, *flags),
            )?;
            let resp = rec.stamp();
            let mim = map_type.is_map_in_map();
            rec.line(task, cpu, || {
                format!(
                    "map_update_elem({map}, {key}, {}, flags {flags}) [{}{}] = {}",
                    prepared
                        .inner
                        .map_or(format!("{value:?}"), |(i, _, _)| show(Some(i))),
                    kernel_update(map_type),
                    if mim && result.is_ok() {
                        "; synchronize_rcu"
                    } else {
                        ""
                    },
                    result.map_or_else(errno_name, |_| "0".into())
                )
            });
            if let (true, Some((inner, _, _)), Some(attr)) = (mim, prepared.inner, inner_attr) {
                rec.event(HistEvent {
                    task,
                    outer: map.clone(),
                    op: HistOp::Update {
                        key: *key,
                        inner,
                        flags: *flags,
                        attr: oracle::AttrKey::of(&attr),
                    },
                    result: result.map(|_| None).map_err(errno_name),
                    inv,
                    resp,
                });
            }
            if let Some((_, fd, true)) = prepared.inner {
                let _ = ctx.check("close", world.close(fd))?;
                rec.line(task, cpu, || format!("close(fd {fd}) [bpf_map_put]"));
            }
        }
        UserOp::Delete { map, key } => {
            let Some((fd, map_type)) = resolve(ctx, vars, map) else {
                return Ok(());
            };
            let inv = rec.stamp();
            let result = ctx.check(
                "map_delete_elem",
                world.map_delete_elem(fd, &key.to_le_bytes()),
            )?;
            let resp = rec.stamp();
            let mim = map_type.is_map_in_map();
            rec.line(task, cpu, || {
                format!(
                    "map_delete_elem({map}, {key}) [{}{}] = {}",
                    kernel_delete(map_type),
                    if mim && result.is_ok() {
                        "; synchronize_rcu"
                    } else {
                        ""
                    },
                    result.map_or_else(errno_name, |_| "0".into())
                )
            });
            if mim {
                rec.event(HistEvent {
                    task,
                    outer: map.clone(),
                    op: HistOp::Delete { key: *key },
                    result: result.map(|_| None).map_err(errno_name),
                    inv,
                    resp,
                });
            }
        }
        UserOp::Lookup { map, key } => {
            let Some((fd, map_type)) = resolve(ctx, vars, map) else {
                return Ok(());
            };
            let inv = rec.stamp();
            let result = ctx.check(
                "map_lookup_elem",
                world.map_lookup_elem(fd, &key.to_le_bytes()),
            )?;
            let resp = rec.stamp();
            let mim = map_type.is_map_in_map();
            let seen = match &result {
                Ok(bytes) if mim => {
                    let id = key_u32(bytes);
                    Ok(Some(
                        ctx.ids
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get(&id)
                            .copied()
                            .unwrap_or((u32::MAX, 0)),
                    ))
                }
                Ok(_) => Ok(None),
                Err(e) => Err(*e),
            };
            rec.line(task, cpu, || {
                format!(
                    "map_lookup_elem({map}, {key}) [{}] = {}",
                    kernel_lookup(map_type),
                    match &seen {
                        Ok(Some(i)) => show(Some(*i)),
                        Ok(None) => "value".into(),
                        Err(e) => errno_name(*e),
                    }
                )
            });
            if mim {
                let result = match seen {
                    Ok(s) => Ok(s),
                    Err(Errno::ENOENT) => Ok(None),
                    Err(e) => Err(errno_name(e)),
                };
                rec.event(HistEvent {
                    task,
                    outer: map.clone(),
                    op: HistOp::Read {
                        key: *key,
                        program: false,
                    },
                    result,
                    inv,
                    resp,
                });
            }
        }
        UserOp::Create { var, shape } => {
            if let Some(prepared) = prepare(ctx, vars, &Value::New(shape.clone()), 4, task, cpu)? {
                if let Some((_, fd, _)) = prepared.inner {
                    vars.insert(var.clone(), fd);
                }
            }
        }
        UserOp::Close { var } => {
            if let Some(fd) = vars.remove(var) {
                let _ = ctx.check("close", world.close(fd))?;
                rec.line(task, cpu, || {
                    format!("close(${var} = fd {fd}) [bpf_map_put]")
                });
            }
        }
        UserOp::Drain { var, key } => {
            if let Some(&fd) = vars.get(var) {
                if let Ok(bytes) = ctx.check(
                    "map_lookup_elem",
                    world.map_lookup_elem(fd, &key.to_le_bytes()),
                )? {
                    rec.line(task, cpu, || format!("drain ${var}[{key}] = {:?}", bytes));
                    ctx.drains.lock().unwrap_or_else(|p| p.into_inner()).push((
                        fd,
                        *key,
                        bytes,
                        var.clone(),
                    ));
                }
            }
        }
        UserOp::BatchUpdate { map, keys, value } => {
            let Some((fd, map_type)) = resolve(ctx, vars, map) else {
                return Ok(());
            };
            let mut prepared = Vec::new();
            for _ in keys {
                match prepare(ctx, vars, value, 4, task, cpu)? {
                    Some(p) => prepared.push(p),
                    None => return Ok(()),
                }
            }
            let key_bytes: Vec<Vec<u8>> = keys.iter().map(|k| k.to_le_bytes().to_vec()).collect();
            let values: Vec<Vec<u8>> = prepared.iter().map(|p| p.bytes.clone()).collect();
            let inv = rec.stamp();
            let result = world.map_update_batch(fd, &key_bytes, &values, 0);
            let resp = rec.stamp();
            let (applied, error) = match result {
                Ok(n) => (n, None),
                Err((n, e)) => (n, Some(e)),
            };
            if let Some(Error::Fault(f)) = &error {
                ctx.fail(f.finding(), format!("map_update_batch: {f}"));
                return Err(());
            }
            rec.line(task, cpu, || format!("map_update_batch({map}, {keys:?}) [generic_map_update_batch] applied {applied}{}", error.as_ref().map_or(String::new(), |e| format!(", then {e}"))));
            if map_type.is_map_in_map() {
                for (i, (key, p)) in keys.iter().zip(&prepared).enumerate() {
                    let (Some((inner, fd, _)), true) = (p.inner, i < applied as usize) else {
                        continue;
                    };
                    if let Some(attr) = inner_attr_of(ctx, fd) {
                        rec.event(HistEvent {
                            task,
                            outer: map.clone(),
                            op: HistOp::Update {
                                key: *key,
                                inner,
                                flags: BPF_ANY,
                                attr: oracle::AttrKey::of(&attr),
                            },
                            result: Ok(None),
                            inv,
                            resp,
                        });
                    }
                }
            }
            for p in prepared {
                if let Some((_, fd, true)) = p.inner {
                    let _ = ctx.check("close", world.close(fd))?;
                }
            }
        }
        UserOp::BatchDelete { map, keys } => {
            let Some((fd, _)) = resolve(ctx, vars, map) else {
                return Ok(());
            };
            let key_bytes: Vec<Vec<u8>> = keys.iter().map(|k| k.to_le_bytes().to_vec()).collect();
            let result = world.map_delete_batch(fd, &key_bytes);
            if let Err((_, Error::Fault(f))) = &result {
                ctx.fail(f.finding(), format!("map_delete_batch: {f}"));
                return Err(());
            }
            // Which keys a partial batch deleted depends on the order it met them: the
            // history records none of them, so the per-key check skips keys a batch touched.
            rec.line(task, cpu, || {
                format!(
                    "map_delete_batch({map}, {keys:?}) [generic_map_delete_batch] = {:?}",
                    result.as_ref().map_err(|(n, e)| (n, e.to_string()))
                )
            });
            for key in keys {
                rec.event(HistEvent {
                    task,
                    outer: map.clone(),
                    op: HistOp::Opaque { key: *key },
                    result: Ok(None),
                    inv: 0,
                    resp: 0,
                });
            }
        }
        UserOp::BatchLookup { map } => {
            let Some((fd, _)) = resolve(ctx, vars, map) else {
                return Ok(());
            };
            let mut token = None;
            let mut count = 2;
            let mut total = 0;
            for _ in 0..mimic_core::model::ops::BATCH_CALL_LIMIT {
                match ctx.check("map_lookup_batch", world.map_lookup_batch(fd, token, count))? {
                    Ok(out) => {
                        total += out.keys.len();
                        token = Some(out.next);
                        if out.done {
                            break;
                        }
                    }
                    Err(Errno::ENOSPC) => count *= 2,
                    Err(_) => break,
                }
            }
            rec.line(task, cpu, || {
                format!("map_lookup_batch({map}) [generic_map_lookup_batch] = {total} entries")
            });
        }
        UserOp::Yield(n) => {
            for _ in 0..*n {
                P::yield_now();
            }
        }
    }
    Ok(())
}

fn run_task(ctx: &Ctx, loaded: &[Loaded], index: usize, slot: usize, cpu: usize) {
    P::set_current_task(slot);
    P::set_current_cpu(cpu);
    let task = &ctx.scenario.tasks[index];
    match task.kind {
        TaskKind::User => {
            let mut vars = BTreeMap::new();
            for op in &task.ops {
                if ctx.failed() {
                    break;
                }
                let Some(parsed) = parse_op(op) else { continue };
                if user_op(ctx, &parsed, &mut vars, slot, cpu).is_err() {
                    break;
                }
            }
            // Drained maps stay open: the teardown reads them again.
            let drained: Vec<Fd> = ctx
                .drains
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|d| d.0)
                .collect();
            for (var, fd) in vars {
                if drained.contains(&fd) {
                    continue;
                }
                if ctx.check("close", ctx.world.close(fd)).is_err() {
                    break;
                }
                ctx.rec.line(slot, cpu, || {
                    format!("close(${var} = fd {fd}) [bpf_map_put]")
                });
            }
        }
        TaskKind::Program | TaskKind::Irq => {
            let Some(prog) = loaded
                .iter()
                .find(|p| Some(&p.name) == task.program.as_ref())
            else {
                return;
            };
            let flavor = if prog.load.sleepable {
                Flavor::TasksTrace
            } else {
                Flavor::Rcu
            };
            let mut vm = Vm::default();
            for run in 0..task.runs {
                if ctx.failed() {
                    break;
                }
                let key = if task.keys.is_empty() {
                    0
                } else {
                    task.keys[P::choose(task.keys.len())]
                };
                let mut mem = vec![0u8; prog.ctx_len];
                let at = prog.ctx_at;
                mem[at..at + 4].copy_from_slice(&key.to_le_bytes());
                mem[at + 4..at + 8].copy_from_slice(&run.to_le_bytes());
                mem[at + 8..at + 12].copy_from_slice(&(P::choose(1 << 16) as u32).to_le_bytes());
                if ctx
                    .check("rcu_read_lock", ctx.world.rcu_read_lock(flavor))
                    .is_err()
                {
                    break;
                }
                let mut env = TracingEnv {
                    inner: WorldEnv::new(&ctx.world),
                    ctx,
                    task: slot,
                    cpu,
                    program: &prog.name,
                    direct: None,
                    pending: None,
                };
                let result = vm.run(&prog.program, &mut mem, &mut env, &mut NoObserver);
                let unlocked = ctx.check("rcu_read_unlock", ctx.world.rcu_read_unlock(flavor));
                match result {
                    Ok(r0) => ctx.rec.line(slot, cpu, || {
                        format!("prog {} run {run} (key {key}) = {}", prog.name, r0 as i64)
                    }),
                    Err(e) => {
                        match e.kind {
                            ExecErrorKind::Fault(f) => ctx.fail(
                                f.finding(),
                                format!("program {} run {run}: insn {}: {f}", prog.name, e.pc),
                            ),
                            // The executor's own memory check: an access past the end of a
                            // map value (an inlined lookup sized for another array).
                            kind @ ExecErrorKind::OutOfBounds { .. } => ctx.fail(
                                Finding::OutOfBounds,
                                format!("program {} run {run}: insn {}: {kind}", prog.name, e.pc),
                            ),
                            other => ctx.fail(
                                Finding::Exec,
                                format!("program {} run {run}: insn {}: {other}", prog.name, e.pc),
                            ),
                        }
                        break;
                    }
                }
                if unlocked.is_err() {
                    break;
                }
            }
        }
    }
}

fn gp_worker(ctx: &Ctx, done: &<P as Platform>::Atomic, slot: usize) {
    P::set_current_task(slot);
    P::set_current_cpu(0);
    let mut freed = 0;
    for _ in 0..GP_POLLS_MAX {
        if done.load(Ordering::Acquire) != 0 || ctx.failed() {
            break;
        }
        if ctx.check("rcu poll", ctx.world.poll()).is_err() {
            break;
        }
        let frees = ctx.world.frees();
        for free in frees.iter().skip(freed) {
            ctx.rec.line(slot, 0, || {
                format!(
                    "rcu callback: bpf_map_free({} id {})",
                    free.map_type.name(),
                    free.id
                )
            });
        }
        freed = frees.len();
        for _ in 0..=ctx.options.faults.gp_delay_yields {
            P::yield_now();
        }
    }
}

/// The scenario's `checks.values`, read from user space (`BPF_MAP_LOOKUP_ELEM`, and for an
/// inner map `BPF_MAP_GET_FD_BY_ID` on the id the outer map returns).
fn check_values(ctx: &Ctx) -> Result<(), ()> {
    let world = &ctx.world;
    for check in &ctx.scenario.checks.values {
        let Some(&(fd, _)) = ctx.maps.get(&check.map) else {
            ctx.fail(
                Finding::Setup,
                format!("checks.values: no map `{}`", check.map),
            );
            return Err(());
        };
        let (fd, key, path, opened) = match check.inner_key {
            None => (fd, check.key, format!("{}[{}]", check.map, check.key), None),
            Some(inner_key) => {
                let Ok(id) = ctx.check(
                    "map_lookup_elem",
                    world.map_lookup_elem(fd, &check.key.to_le_bytes()),
                )?
                else {
                    continue;
                };
                let id = u32::from_le_bytes(
                    id.get(..4)
                        .and_then(|b| b.try_into().ok())
                        .unwrap_or([0; 4]),
                );
                let Ok(inner) = ctx.check("map_get_fd_by_id", world.map_get_fd_by_id(id))? else {
                    continue;
                };
                let path = format!("{}[{}][{inner_key}]", check.map, check.key);
                (inner, inner_key, path, Some(inner))
            }
        };
        let read = ctx.check(
            "map_lookup_elem",
            world.map_lookup_elem(fd, &key.to_le_bytes()),
        )?;
        if let Some(inner) = opened {
            let _ = ctx.check("close", world.close(inner))?;
        }
        let Ok(bytes) = read else { continue };
        let mut le = [0u8; 8];
        for (b, v) in le.iter_mut().zip(&bytes) {
            *b = *v;
        }
        let value = u64::from_le_bytes(le);
        ctx.rec.line(0, 0, || format!("check: {path} = {value}"));
        if value != check.equals {
            ctx.fail(
                Finding::WrongValue,
                format!("{path} reads {value} from user space, expected {} (a program wrote to the wrong element)", check.equals),
            );
            return Err(());
        }
    }
    Ok(())
}

fn teardown(ctx: &Ctx, loaded: &[Loaded]) {
    let world = &ctx.world;
    if ctx.failed() {
        return;
    }
    for (fd, key, drained, var) in ctx.drains.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        if let Ok(Ok(now)) = ctx.check(
            "map_lookup_elem",
            world.map_lookup_elem(fd, &key.to_le_bytes()),
        ) {
            if now != drained {
                ctx.fail(
                    Finding::LostUpdate,
                    format!("${var}[{key}] was drained as {drained:?} after the swap, but a program wrote {now:?} into it later (the update returned while a program still used the old inner map)"),
                );
                return;
            }
        }
    }
    if check_values(ctx).is_err() {
        return;
    }
    let programs = loaded
        .iter()
        .map(|p| (p.load.maps.as_slice(), p.load.sleepable));
    let closed = || {
        ctx.rec.line(0, 0, || {
            "teardown: programs unloaded, all fds closed; rcu_barrier".into()
        })
    };
    if let Err((step, e)) = world.teardown_audit(programs, closed) {
        let otherwise = match step {
            TeardownStep::Conservation => Finding::Conservation,
            TeardownStep::Quiescence => Finding::Leak,
            TeardownStep::Unload(_) | TeardownStep::Close(_) => Finding::UnexpectedErrno,
        };
        ctx.fail(
            e.fault().map_or(otherwise, Fault::finding),
            format!("{step}: {e}"),
        );
    }
}

/// Runs `seeds` of `config` in one shuttle `Runner` per batch, calling `report` with each
/// seed's outcome in seed order. A panic inside an execution (a bug in the core or here) is
/// reported as that seed's failure and the remaining seeds run in a fresh runner.
pub fn run_seeds(config: &RunConfig, seeds: &[u64], report: &mut dyn FnMut(Outcome)) {
    let mut rest: Vec<u64> = seeds.to_vec();
    while !rest.is_empty() {
        let scheduler = config.scheduler.build(config.scenario.pct_steps);
        let done = run_batch(config, scheduler, &rest, report);
        rest = rest[done..].to_vec();
    }
}

/// Plain shuttle: the same runs under shuttle's own `RandomScheduler` (what
/// `shuttle::check_random` uses), one execution per seed, for the benchmarks.
pub fn run_seeds_shuttle_random(
    config: &RunConfig,
    seeds: &[u64],
    report: &mut dyn FnMut(Outcome),
) {
    let mut rest: Vec<u64> = seeds.to_vec();
    while !rest.is_empty() {
        let done = run_batch(config, ShuttleRandom::new(), &rest, report);
        rest = rest[done..].to_vec();
    }
}

/// shuttle's `RandomScheduler`, re-seeded per execution.
pub struct ShuttleRandom(shuttle::scheduler::RandomScheduler);

impl ShuttleRandom {
    pub fn new() -> Self {
        ShuttleRandom(shuttle::scheduler::RandomScheduler::new_from_seed(0, 1))
    }
}
impl Default for ShuttleRandom {
    fn default() -> Self {
        Self::new()
    }
}

impl shuttle::scheduler::Scheduler for ShuttleRandom {
    fn new_execution(&mut self) -> Option<shuttle::scheduler::Schedule> {
        self.0.new_execution()
    }
    fn next_task(
        &mut self,
        r: &[&shuttle::scheduler::Task],
        c: Option<shuttle::scheduler::TaskId>,
        y: bool,
    ) -> Option<shuttle::scheduler::TaskId> {
        self.0.next_task(r, c, y)
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}
impl Reseed for ShuttleRandom {
    fn reseed(&mut self, seed: u64) {
        // Let the old scheduler see its run end first: it prints its seed as "failing" when
        // dropped in the middle of an iteration.
        for _ in 0..2 {
            if shuttle::scheduler::Scheduler::new_execution(&mut self.0).is_none() {
                break;
            }
        }
        self.0 = shuttle::scheduler::RandomScheduler::new_from_seed(seed, 1);
    }
}

/// Runs seeds until the first panic; returns how many seeds were consumed.
fn run_batch<S: Reseed + 'static>(
    config: &RunConfig,
    scheduler: S,
    seeds: &[u64],
    report: &mut dyn FnMut(Outcome),
) -> usize {
    let state = Arc::new(Mutex::new(ExecState::default()));
    let results: Arc<Mutex<Vec<SeedResult>>> = Arc::new(Mutex::new(Vec::new()));
    let finished: Arc<Mutex<Vec<ExecState>>> = Arc::new(Mutex::new(Vec::new()));
    let campaign = Finishing {
        inner: Campaign::new(
            scheduler,
            seeds.to_vec(),
            config.scenario.step_budget,
            state.clone(),
        ),
        state: state.clone(),
        finished: finished.clone(),
        started: false,
    };
    let mut shuttle_config = shuttle::Config::new();
    shuttle_config.failure_persistence = shuttle::FailurePersistence::None;
    shuttle_config.max_steps = shuttle::MaxSteps::None;
    shuttle_config.silence_warnings = true;
    // The executor and the syscall paths nest deeply in debug builds: shuttle's default 60 KiB
    // task stacks overflow there.
    shuttle_config.stack_size = TASK_STACK_BYTES;
    let runner = shuttle::Runner::new(campaign, shuttle_config);
    let body = {
        let (config, state, results) = (config.clone(), state.clone(), results.clone());
        move || {
            let seed = state.lock().unwrap_or_else(|p| p.into_inner()).seed;
            let options = Options::derive(seed, config.scheduler);
            let (verdict, trace) = execute(&config, options);
            results.lock().unwrap_or_else(|p| p.into_inner()).push((
                seed,
                verdict,
                trace,
                options.to_string(),
            ));
        }
    };
    let panicked =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner.run(body))).err();
    let mut finished = std::mem::take(&mut *finished.lock().unwrap_or_else(|p| p.into_inner()));
    let mut results = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
    let mut consumed = finished.len();
    if let Some(payload) = panicked {
        // The seed that panicked is the one running now; its state is still current.
        let current = std::mem::take(&mut *state.lock().unwrap_or_else(|p| p.into_inner()));
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "non-string panic".into());
        let kind = if message.contains("deadlock") {
            "deadlock"
        } else {
            "panic"
        };
        results.retain(|r| r.0 != current.seed);
        results.push((
            current.seed,
            Verdict::Fail {
                kind: kind.into(),
                detail: message,
            },
            Vec::new(),
            Options::derive(current.seed, config.scheduler).to_string(),
        ));
        finished.push(current);
        consumed += 1;
    }
    for state in finished {
        let found = results.iter().position(|r| r.0 == state.seed);
        let (verdict, trace, options) = match found {
            Some(i) => {
                let r = results.swap_remove(i);
                (if state.cut { Verdict::Cut } else { r.1 }, r.2, r.3)
            }
            None => (
                Verdict::Cut,
                Vec::new(),
                Options::derive(state.seed, config.scheduler).to_string(),
            ),
        };
        let mut hash = Fnv::default();
        for line in &trace {
            hash.write(line.as_bytes());
            hash.write(b"\n");
        }
        report(Outcome {
            seed: state.seed,
            options,
            verdict,
            steps: state.steps,
            draws: state.draws,
            trace_hash: hash.0,
            schedule_hash: state.schedule_hash.0,
            trace: if config.keep_trace { trace } else { Vec::new() },
        });
    }
    consumed.max(1)
}

/// Wraps a [`Campaign`] to hand each finished execution's counters back.
struct Finishing<S: Reseed> {
    inner: Campaign<S>,
    state: Arc<Mutex<ExecState>>,
    finished: Arc<Mutex<Vec<ExecState>>>,
    started: bool,
}

impl<S: Reseed> shuttle::scheduler::Scheduler for Finishing<S> {
    fn new_execution(&mut self) -> Option<shuttle::scheduler::Schedule> {
        if self.started {
            let previous =
                std::mem::take(&mut *self.state.lock().unwrap_or_else(|p| p.into_inner()));
            self.finished
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(previous);
        }
        let next = self.inner.new_execution();
        self.started = next.is_some();
        next
    }
    fn next_task(
        &mut self,
        r: &[&shuttle::scheduler::Task],
        c: Option<shuttle::scheduler::TaskId>,
        y: bool,
    ) -> Option<shuttle::scheduler::TaskId> {
        self.inner.next_task(r, c, y)
    }
    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }
}

/// One seed, with its trace (replay).
pub fn run_one(config: &RunConfig, seed: u64) -> Outcome {
    let mut out = None;
    run_seeds(config, &[seed], &mut |o| out = Some(o));
    out.expect("run_seeds reports every seed")
}

/// One execution driven by bytes (the `sim_schedule` fuzz target's entry point).
pub fn run_bytes(config: &RunConfig, bytes: &[u8]) -> Outcome {
    let mut out = None;
    run_batch(
        config,
        super::scheduler::Bytes::new(bytes),
        &[0],
        &mut |o| out = Some(o),
    );
    out.expect("run_batch reports its seed")
}
