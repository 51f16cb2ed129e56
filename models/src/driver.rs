//! The one driver: runs a [`Scenario`] on a `Platform` once (one execution of a model checker).
//!
//! Set-up (task 0, CPU 0) creates the maps and runs the set-up ops; each [`TaskDecl`] becomes a
//! spawned task with its own task slot (1, 2, ...) and CPU; after every task joined the
//! `finally` ops run, then the checks of semantics.md §8: freelist conservation on every live
//! hash (§8.5), then the teardown (unload what is still loaded, close every fd still open) and
//! [`World::audit_quiescent`] after the RCU barrier (§8.4, §8.3).
//!
//! A violation panics with a [`Violation`] message `"[finding] scenario/task: detail"`, where
//! the finding is one of the core's [`Finding`]s: the fault's own (`use_after_free`, `leak`,
//! `deadlock`, `lock_order`, ...) or one the driver's checks name (`lost_key`, `lost_update`,
//! `unexpected_errno`, `bad_batch`, and `setup` for a scenario that is itself wrong). Checkers
//! see the panic; [`finding_kind`] reads the finding back so a mutant test can require "failed
//! for the mutant's reason" ([`mimic_core::mutants::Mutant::expected_finding`]), not just
//! "panicked".
//!
//! What §7 allows is never a finding: a reader getting an inner map that is no longer the
//! key's current one, NULL for a slot a racing delete emptied, `-EBUSY` for a nested update.

use crate::scenario::{Allow, InnerAccess, Key, Op, Scenario};
use mimic_core::arena::Handle;
use mimic_core::bpf::exec::{NoObserver, Program, Vm};
use mimic_core::bpf::world_env::WorldEnv;
use mimic_core::errno::Errno;
use mimic_core::fault::{Error, Result};
use mimic_core::finding::Finding;
use mimic_core::history::Lacks;
use mimic_core::isa::AtomicOp;
use mimic_core::isa::{self, Insn};
use mimic_core::maps::hashtab::hash_key;
use mimic_core::mutants::Mutants;
use mimic_core::rcu::Flavor;
use mimic_core::sync::{Atomic64, Ordering, Platform};
use mimic_core::uapi::{Fd, MapAttr, MapType, BPF_ANY};
use mimic_core::world::{Location, World, WorldConfig};

/// Bound of the key search for roles: with at most a few buckets, a same-bucket key with a
/// different `hash & 7` shows up within the first few dozen integers.
const KEY_SEARCH_MAX: u32 = 10_000;
/// Bound of the lookup-and-delete batch loop: a two-entry map needs three calls at one entry a
/// call (two entries, then the end) plus one `-ENOSPC` retry per bucket.
const BATCH_CALLS_MAX: usize = 16;

/// A §7 observation the driver allowed: counted, so a test can show the allowance is exercised
/// (a scenario that never produces it would pass vacuously).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// A program lookup returned NULL for a key a racing task may remove.
    NullLookup,
    /// An errno the op's [`Allow`] permits (`-ENOENT`, `-EBUSY`, `-EBADF`).
    AllowedErrno,
}

std::thread_local! {
    // Per OS thread: loom and shuttle run every task of an execution on the caller's thread, so
    // a test reads the counts of its own runs only.
    static ALLOWED: std::cell::Cell<[u64; 2]> = const { std::cell::Cell::new([0; 2]) };
}

fn note(allowed: Allowed) {
    ALLOWED.with(|c| {
        let mut counts = c.get();
        counts[allowed as usize] += 1;
        c.set(counts);
    });
}

/// How often each allowed observation happened on this thread since the last reset.
pub fn allowed_count(allowed: Allowed) -> u64 {
    ALLOWED.with(|c| c.get()[allowed as usize])
}

pub fn reset_allowed() {
    ALLOWED.with(|c| c.set([0; 2]));
}

/// A violation found by the driver. `Display` is the panic message checkers see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub kind: String,
    pub place: String,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}: {}", self.kind, self.place, self.detail)
    }
}

/// The finding kind in a panic message produced by this driver (`"[kind] ..."`).
pub fn finding_kind(message: &str) -> Option<&str> {
    let rest = message.strip_prefix('[')?;
    Some(&rest[..rest.find(']')?])
}

fn fail(finding: Finding, place: &str, detail: impl Into<String>) -> ! {
    panic!(
        "{}",
        Violation {
            kind: finding.name().to_string(),
            place: place.to_string(),
            detail: detail.into(),
        }
    )
}

/// The concrete keys of the roles, for one bucket count.
#[derive(Debug, Clone, Copy)]
pub struct Keys {
    pub a: u32,
    pub b: u32,
    pub c: u32,
    pub d: u32,
}

impl Keys {
    pub fn for_buckets(n_buckets: u32) -> Keys {
        let hash = |k: u32| hash_key(&k.to_le_bytes());
        let bucket = |k: u32| hash(k) & (n_buckets - 1);
        let a = 1;
        let find = |what: &str, pred: &dyn Fn(u32) -> bool| {
            (2..KEY_SEARCH_MAX)
                .find(|&k| pred(k))
                .unwrap_or_else(|| fail(Finding::Setup, "keys", format!("no key for role {what}")))
        };
        let b = find("B", &|k| {
            bucket(k) == bucket(a) && hash(k) & 7 != hash(a) & 7
        });
        let c = find("C", &|k| bucket(k) != bucket(a));
        let d = find("D", &|k| k != b && bucket(k) == bucket(a));
        Keys { a, b, c, d }
    }

    fn resolve(&self, key: Key) -> u32 {
        match key {
            Key::A => self.a,
            Key::B => self.b,
            Key::C => self.c,
            Key::D => self.d,
            Key::Index(i) => i,
        }
    }
}

/// What every task of one execution shares.
struct Ctx<P: Platform> {
    scenario: &'static Scenario,
    world: World<P>,
    fds: Vec<Fd>,
    handles: Vec<Handle>,
    /// Program `p`: its used maps and whether it is sleepable.
    progs: Vec<(Vec<Handle>, bool)>,
    keys: Keys,
    regs: Vec<P::Atomic>,
}

/// Registers for `Drain`/`ExpectDrained`: one is all the catalogue needs; two leave room.
const REGS: usize = 2;

/// Runs one execution of `scenario` with `mutants` on, in a world without the features in
/// `lacks`; panics with a [`Finding`] on a violation.
pub fn run<P: Platform>(scenario: &'static Scenario, mutants: Mutants, lacks: Lacks) {
    P::set_current_task(0);
    P::set_current_cpu(0);
    let config = WorldConfig {
        lacks,
        ..scenario.config
    };
    let world = World::<P>::new(mutants, config);
    let setup_place = format!("{}/setup", scenario.name);
    let mut fds = Vec::new();
    let mut handles = Vec::new();
    for decl in scenario.maps {
        let mut attr =
            MapAttr::new(decl.map_type, 4, decl.value_size, decl.max_entries).flags(decl.flags);
        if let Some(template) = decl.template {
            attr = attr.inner(fds[template]);
        }
        let fd = world.map_create(&attr).unwrap_or_else(|e| {
            fail(
                Finding::Setup,
                &setup_place,
                format!("create {}: {e}", decl.name),
            )
        });
        handles.push(world.map_handle(fd).unwrap_or_else(|e| {
            fail(
                Finding::Setup,
                &setup_place,
                format!("handle of {}: {e}", decl.name),
            )
        }));
        fds.push(fd);
    }
    let n_buckets = scenario
        .maps
        .iter()
        .find(|m| matches!(m.map_type, MapType::Hash | MapType::HashOfMaps))
        .map_or(2, |m| m.max_entries.next_power_of_two().max(2));
    let progs = scenario
        .setup
        .iter()
        .filter_map(|op| match op {
            Op::LoadProg { maps, sleepable } => {
                Some((maps.iter().map(|&m| handles[m]).collect(), *sleepable))
            }
            _ => None,
        })
        .collect();
    let ctx = P::arc(Ctx {
        scenario,
        world,
        fds,
        handles,
        progs,
        keys: Keys::for_buckets(n_buckets),
        regs: (0..REGS).map(|_| P::atomic(0)).collect(),
    });

    let mut loaded = 0;
    for op in scenario.setup {
        exec(&ctx, &setup_place, op, &mut loaded);
    }

    let tasks: Vec<_> = scenario
        .tasks
        .iter()
        .enumerate()
        .map(|(i, task)| {
            let ctx = ctx.clone();
            P::spawn(move || {
                P::set_current_task(i + 1);
                P::set_current_cpu(task.cpu);
                let place = format!("{}/{}", ctx.scenario.name, task.name);
                let mut no_loads = usize::MAX;
                for op in task.ops {
                    exec(&ctx, &place, op, &mut no_loads);
                }
            })
        })
        .collect();
    for task in tasks {
        P::join(task);
    }

    P::set_current_task(0);
    P::set_current_cpu(0);
    let place = format!("{}/finally", scenario.name);
    let mut no_loads = usize::MAX;
    for op in scenario.finally {
        exec(&ctx, &place, op, &mut no_loads);
    }
    teardown(&ctx, &place);
}

/// The core's teardown audit (conservation, programs unloaded, every fd closed, quiescence),
/// with the programs no op unloaded.
fn teardown<P: Platform>(ctx: &Ctx<P>, place: &str) {
    let s = ctx.scenario;
    let all_ops = || {
        s.setup
            .iter()
            .chain(s.tasks.iter().flat_map(|t| t.ops.iter()))
            .chain(s.finally.iter())
    };
    let loaded = ctx
        .progs
        .iter()
        .enumerate()
        .filter(|(p, _)| !all_ops().any(|op| matches!(op, Op::UnloadProg { prog } if prog == p)))
        .map(|(_, (maps, sleepable))| (maps.as_slice(), *sleepable));
    let result = ctx.world.teardown_audit(loaded, || {});
    if let Err((step, e)) = result {
        check::<()>(Err(e), Allow::Ok, place, &step.to_string());
    }
}

/// A result against what the scenario allows: faults are findings of their own kind, errnos
/// outside `allow` are unexpected. `None` for an allowed errno.
fn check<T>(result: Result<T>, allow: Allow, place: &str, what: &str) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(Error::Fault(fault)) => fail(fault.finding(), place, format!("{what}: {fault}")),
        Err(Error::Errno(errno)) => {
            let allowed = match allow {
                Allow::Ok => false,
                Allow::OkOrEnoent => errno == Errno::ENOENT,
                Allow::OkOrEbusy => errno == Errno::EBUSY,
                Allow::OkOrEbadf => errno == Errno::EBADF,
            };
            if !allowed {
                fail(Finding::UnexpectedErrno, place, format!("{what}: {errno}"));
            }
            note(Allowed::AllowedErrno);
            None
        }
    }
}

fn key_bytes<P: Platform>(ctx: &Ctx<P>, key: Key) -> [u8; 4] {
    ctx.keys.resolve(key).to_le_bytes()
}

fn read_u32<P: Platform>(ctx: &Ctx<P>, place: &str, map: usize, key: Key) -> u32 {
    let bytes = check(
        ctx.world
            .map_lookup_elem(ctx.fds[map], &key_bytes(ctx, key)),
        Allow::Ok,
        place,
        "drain lookup",
    )
    .unwrap_or_default();
    let word: [u8; 4] = bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .unwrap_or_else(|| {
            fail(
                Finding::Setup,
                place,
                format!("value of {} bytes", bytes.len()),
            )
        });
    u32::from_le_bytes(word)
}

/// One operation. `loaded` counts the `LoadProg` ops of set-up (tasks may not load).
fn exec<P: Platform>(ctx: &Ctx<P>, place: &str, op: &Op, loaded: &mut usize) {
    let w = &ctx.world;
    match *op {
        Op::LoadProg { sleepable, .. } => {
            let Some((maps, _)) = ctx.progs.get(*loaded) else {
                fail(Finding::Setup, place, "programs are loaded in set-up only")
            };
            check(w.prog_hold_maps(maps, sleepable), Allow::Ok, place, "load");
            *loaded += 1;
        }
        Op::UnloadProg { prog } => {
            let (maps, sleepable) = &ctx.progs[prog];
            check(
                w.prog_release_maps(maps, *sleepable),
                Allow::Ok,
                place,
                "unload",
            );
        }
        Op::Update {
            map,
            key,
            value,
            flags,
            allow,
        } => {
            let value = match value {
                crate::scenario::Value::Map(slot) => ctx.fds[slot].to_le_bytes(),
                crate::scenario::Value::Num(n) => n.to_le_bytes(),
            };
            let result = w.map_update_elem(ctx.fds[map], &key_bytes(ctx, key), &value, flags);
            check(result, allow, place, "update");
        }
        Op::Delete { map, key, allow } => {
            let result = w.map_delete_elem(ctx.fds[map], &key_bytes(ctx, key));
            check(result, allow, place, "delete");
        }
        Op::Lookup { map, key, allow } => {
            let result = w.map_lookup_elem(ctx.fds[map], &key_bytes(ctx, key));
            check(result, allow, place, "lookup");
        }
        Op::Close { map } => {
            check(w.close(ctx.fds[map]), Allow::Ok, place, "close");
        }
        Op::OpenInnerById { outer, key } => open_inner_by_id(ctx, place, outer, key),
        Op::LookupAndDeleteBatch { map, count } => batch_drain(ctx, place, map, count),
        Op::Drain { map, key, reg } => {
            let value = read_u32(ctx, place, map, key);
            ctx.regs[reg].store(u64::from(value), Ordering::Release);
        }
        Op::ExpectDrained { map, key, reg } => {
            let drained = ctx.regs[reg].load(Ordering::Acquire);
            let now = u64::from(read_u32(ctx, place, map, key));
            if now != drained {
                fail(
                    Finding::LostUpdate,
                    place,
                    format!(
                        "{} held {drained} when user space drained it after the swap, {now} later: a program wrote into it after the syscall returned",
                        ctx.scenario.maps[map].name
                    ),
                );
            }
        }
        Op::ProgOuter {
            flavor,
            outer,
            key,
            must_find,
            access,
        } => prog_outer(ctx, place, flavor, outer, key, must_find, access),
        Op::ProgLookup {
            map,
            key,
            must_find,
        } => {
            check(
                w.rcu_read_lock(Flavor::Rcu),
                Allow::Ok,
                place,
                "rcu_read_lock",
            );
            let found = check(
                w.prog_lookup_loc(ctx.handles[map], &key_bytes(ctx, key)),
                Allow::Ok,
                place,
                "program lookup",
            )
            .flatten();
            if found.is_none() && must_find {
                fail(
                    Finding::LostKey,
                    place,
                    format!(
                        "key {:?} ({}) is always present but the bucket walk did not find it",
                        key,
                        ctx.keys.resolve(key)
                    ),
                );
            }
            check(
                w.rcu_read_unlock(Flavor::Rcu),
                Allow::Ok,
                place,
                "rcu_read_unlock",
            );
        }
        Op::ProgUpdate {
            map,
            key,
            value,
            allow,
        } => {
            check(
                w.rcu_read_lock(Flavor::Rcu),
                Allow::Ok,
                place,
                "rcu_read_lock",
            );
            let result = w.prog_update(
                ctx.handles[map],
                &key_bytes(ctx, key),
                &value.to_le_bytes(),
                BPF_ANY,
            );
            check(result, allow, place, "program update");
            check(
                w.rcu_read_unlock(Flavor::Rcu),
                Allow::Ok,
                place,
                "rcu_read_unlock",
            );
        }
        Op::BpfOuterAdd { outer, index } => bpf_outer_add(ctx, place, outer, index),
    }
}

/// A program: one read-side section around "inner = outer[key]; inner[index] += 1".
fn prog_outer<P: Platform>(
    ctx: &Ctx<P>,
    place: &str,
    flavor: Flavor,
    outer: usize,
    key: Key,
    must_find: bool,
    access: InnerAccess,
) {
    let w = &ctx.world;
    check(w.rcu_read_lock(flavor), Allow::Ok, place, "read lock");
    let found = check(
        w.prog_lookup_loc(ctx.handles[outer], &key_bytes(ctx, key)),
        Allow::Ok,
        place,
        "outer lookup",
    )
    .flatten();
    match found {
        None if must_find => fail(
            Finding::LostKey,
            place,
            format!(
                "outer key {key:?} ({}) is always present but the lookup returned NULL",
                ctx.keys.resolve(key)
            ),
        ),
        None => note(Allowed::NullLookup),
        Some(Location::InnerMap(inner)) => {
            let InnerAccess::Add { index } = access;
            let value = check(
                w.prog_lookup_loc(inner, &index.to_le_bytes()),
                Allow::Ok,
                place,
                "inner lookup",
            )
            .flatten();
            if let Some(Location::Value { map, offset }) = value {
                check(
                    w.atomic(map, offset, 4, AtomicOp::Add { fetch: false }, 1, 0),
                    Allow::Ok,
                    place,
                    "inner add",
                );
            }
        }
        Some(other) => fail(
            Finding::Setup,
            place,
            format!("outer lookup gave {other:?}, not an inner map"),
        ),
    }
    check(w.rcu_read_unlock(flavor), Allow::Ok, place, "read unlock");
}

/// "inner = outer[0]; if (inner) { v = inner[index]; if (v) *v += 1; }" as BPF, run by the
/// executor on the world (helper calls, not inlined lookups: the fixups are the verifier's).
fn outer_add_program(outer: Fd, index: u32) -> Vec<Insn> {
    let mut insns = vec![
        Insn::mov32_imm(1, 0),
        Insn::stx_mem(isa::BPF_W, 10, 1, -4),
        Insn::mov32_imm(1, index as i32),
        Insn::stx_mem(isa::BPF_W, 10, 1, -8),
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(isa::BPF_ADD, 2, -4),
    ];
    insns.extend(Insn::ld_map_fd(1, outer));
    insns.extend([
        Insn::call_helper(1),
        Insn::jmp_imm(isa::BPF_JEQ, 0, 0, 8),
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(isa::BPF_ADD, 2, -8),
        Insn::mov64_reg(1, 0),
        Insn::call_helper(1),
        Insn::jmp_imm(isa::BPF_JEQ, 0, 0, 3),
        Insn::ldx_mem(isa::BPF_W, 6, 0, 0),
        Insn::alu64_imm(isa::BPF_ADD, 6, 1),
        Insn::stx_mem(isa::BPF_W, 0, 6, 0),
        Insn::mov32_imm(0, 0),
        Insn::exit(),
    ]);
    insns
}

fn bpf_outer_add<P: Platform>(ctx: &Ctx<P>, place: &str, outer: usize, index: u32) {
    let w = &ctx.world;
    let program = Program::new(&outer_add_program(ctx.fds[outer], index)).unwrap_or_else(|e| {
        fail(
            Finding::Setup,
            place,
            format!("program does not decode: {e}"),
        )
    });
    check(w.rcu_read_lock(Flavor::Rcu), Allow::Ok, place, "read lock");
    let result = Vm::default().run(&program, &mut [], &mut WorldEnv::new(w), &mut NoObserver);
    check(
        w.rcu_read_unlock(Flavor::Rcu),
        Allow::Ok,
        place,
        "read unlock",
    );
    if let Err(error) = result {
        match error.fault() {
            Some(fault) => fail(fault.finding(), place, format!("bpf program: {error}")),
            None => fail(Finding::Setup, place, format!("bpf program: {error}")),
        }
    }
}

/// Reads the inner map id at `outer[key]`, opens it by id, checks the fd names that map, closes
/// it. §1: once the map's refcnt reached 0 the id no longer resolves (`-ENOENT`); an fd to a map
/// that is being freed would be a use after free.
fn open_inner_by_id<P: Platform>(ctx: &Ctx<P>, place: &str, outer: usize, key: Key) {
    let w = &ctx.world;
    let Some(id) = check(
        w.map_lookup_elem(ctx.fds[outer], &key_bytes(ctx, key)),
        Allow::OkOrEnoent,
        place,
        "outer lookup",
    ) else {
        return;
    };
    let id = match <[u8; 4]>::try_from(&id[..]) {
        Ok(bytes) => u32::from_le_bytes(bytes),
        Err(_) => fail(
            Finding::Setup,
            place,
            format!("inner id of {} bytes", id.len()),
        ),
    };
    let Some(fd) = check(
        w.map_get_fd_by_id(id),
        Allow::OkOrEnoent,
        place,
        "get_fd_by_id",
    ) else {
        return;
    };
    let info = check(w.map_info(fd), Allow::Ok, place, "info of the opened map");
    if info.is_some_and(|info| info.id != id) {
        fail(
            Finding::Setup,
            place,
            format!("fd {fd} opened by id {id} names another map"),
        );
    }
    check(w.close(fd), Allow::Ok, place, "close the opened fd");
}

/// `BPF_MAP_LOOKUP_AND_DELETE_BATCH` until the end; every key returned must be one the scenario
/// stores in `map`, and no inner map id may come back twice.
fn batch_drain<P: Platform>(ctx: &Ctx<P>, place: &str, map: usize, count: u32) {
    let s = ctx.scenario;
    let known: Vec<[u8; 4]> = s
        .setup
        .iter()
        .chain(s.tasks.iter().flat_map(|t| t.ops.iter()))
        .filter_map(|op| match op {
            Op::Update { map: m, key, .. } if *m == map => Some(key_bytes(ctx, *key)),
            _ => None,
        })
        .collect();
    let mut ids = Vec::new();
    let mut in_batch = None;
    let mut count = count;
    for _ in 0..BATCH_CALLS_MAX {
        match ctx
            .world
            .map_lookup_and_delete_batch(ctx.fds[map], in_batch, count)
        {
            Err(Error::Errno(Errno::ENOSPC)) => count *= 2,
            result => {
                let Some(out) = check(result, Allow::Ok, place, "lookup_and_delete batch") else {
                    return;
                };
                for (key, value) in out.keys.iter().zip(&out.values) {
                    if !known.iter().any(|k| k[..] == key[..]) {
                        fail(
                            Finding::BadBatch,
                            place,
                            format!("key {key:?} was never stored"),
                        );
                    }
                    if ids.contains(value) {
                        fail(
                            Finding::BadBatch,
                            place,
                            format!("inner map id {value:?} came back twice"),
                        );
                    }
                    ids.push(value.clone());
                }
                if out.done {
                    return;
                }
                in_batch = Some(out.next);
            }
        }
    }
    fail(
        Finding::BadBatch,
        place,
        format!("no end after {BATCH_CALLS_MAX} calls"),
    );
}
