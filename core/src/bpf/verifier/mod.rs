//! The verifier: decides, like the kernel's, whether a program may run, by abstract
//! interpretation over all its paths, and records what the fixups ([`crate::bpf::fixup`]) need.
//!
//! * Maps are seen through [`MapDesc`] (shape, flags, the inner-map **meta** of outer maps),
//!   obtained from a [`MapResolver`] by fd: the World implements it, tests use [`MapTable`].
//! * [`verify`] checks the control-flow graph ([`cfg`]), then walks paths depth first
//!   (fall-through first, the other edge pushed), one [`state::VState`] per path, pruning at
//!   checkpoints against completed equivalent states ([`pruning`]), within the kernel's budget
//!   of 1,000,000 processed instructions.
//! * Refusals are [`Rejection`]s with the kernel's message and instruction index; acceptance is
//!   a [`Verified`] with per-instruction facts (map of each call and `lddw`), counters and, if
//!   asked, the per-instruction join of accepted states for the soundness oracle ([`oracle`]).
//!
//! Never panics on any input: malformed instructions are refused through the strict decoder.

pub mod asm_maps;
pub mod bounds;
pub mod btf_walk;
mod calls;
pub mod cfg;
mod check;
pub mod corpus;
#[cfg(test)]
mod ctx_tests;
mod flow;
mod live_stack;
pub mod log;
pub mod oracle;
mod packet;
pub mod packet_cases;
mod precision;
pub mod probes;
pub mod pruning;
pub mod state;
pub mod tail_call_cases;
pub mod tnum;
pub mod world;

pub use check::{LD_ABS_UNMODELLED, SK_UNMODELLED};

use crate::isa::{decode, Insn, Op};
use crate::mutants::{Mutant, Mutants};
use crate::profile::KernelProfile;
use crate::uapi::{MapType, BPF_F_INNER_MAP};
use log::{Log, Stats};
use oracle::StateOracle;
use precision::{Hist, HistArena, NO_HIST};
use state::{Frame, Reg, RegType, VState, NREGS};
use std::fmt;

/// What the verifier knows about a map: its shape, and for outer maps the inner-map meta.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MapDesc {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    /// Arrays: `2^ceil(log2(max_entries)) - 1`, for the unprivileged `& index_mask`.
    pub index_mask: u32,
    /// Arrays: bytes per element (`round_up(value_size, 8)`; 8 for array-of-maps slots).
    pub elem_size: u32,
    /// Outer maps: the meta built from the template (semantics.md §2).
    pub inner_meta: Option<Box<MapDesc>>,
    /// The map's global id (0 for a meta, which is no map).
    pub id: u32,
    /// The value a fixed-up `lddw` loads: the map pointer as the executor encodes it.
    pub ptr: u64,
    /// The value of a frozen `BPF_F_RDONLY_PROG` single-entry array (libbpf's `.rodata`): the
    /// kernel reads it at verification time (`bpf_map_is_rdonly`, `bpf_map_direct_read`), so
    /// a load at a constant offset is a known scalar and the branches it decides are dead.
    pub frozen_value: Option<Vec<u8>>,
}

impl MapDesc {
    /// A map with the derived array fields filled in the kernel's way.
    pub fn new(
        map_type: MapType,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
    ) -> MapDesc {
        // The kind's own facts; any u32 sizes are accepted (a spec's sizes are checked by
        // `checked`, but this constructor never panics).
        let kind = crate::maps::kind::kind(map_type);
        let elem_size = kind.elem_size(value_size);
        let index_mask = kind.index_mask(max_entries);
        MapDesc {
            map_type: map_type as u32,
            key_size,
            value_size,
            max_entries,
            map_flags,
            index_mask,
            elem_size,
            inner_meta: None,
            id: 0,
            ptr: 0,
            frozen_value: None,
        }
    }
    /// [`MapDesc::new`] for a map `BPF_MAP_CREATE` would create: the kernel's errno for one it
    /// refuses (`crate::maps::create_check`). `privileged` as the program's loader.
    pub fn checked(
        map_type: MapType,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
        privileged: bool,
    ) -> Result<MapDesc, crate::errno::Errno> {
        let def = crate::maps::MapDef {
            map_type,
            key_size,
            value_size,
            max_entries,
            map_flags,
        };
        crate::maps::create_check(&def, privileged).map_err(|e| match e {
            crate::fault::Error::Errno(errno) => errno,
            // The checks only return errnos; anything else is the model refusing it.
            crate::fault::Error::Fault(_) => crate::errno::Errno::EINVAL,
        })?;
        Ok(MapDesc::new(
            map_type,
            key_size,
            value_size,
            max_entries,
            map_flags,
        ))
    }
    pub fn with_meta(mut self, meta: MapDesc) -> MapDesc {
        self.inner_meta = Some(Box::new(meta));
        self
    }
    pub fn with_id(mut self, id: u32, ptr: u64) -> MapDesc {
        self.id = id;
        self.ptr = ptr;
        self
    }
    pub fn kind(&self) -> Option<MapType> {
        MapType::from_u32(self.map_type)
    }
    pub fn is_outer(&self) -> bool {
        self.kind().is_some_and(MapType::is_map_in_map)
    }
    pub fn is_dynamic_inner(&self) -> bool {
        self.map_flags & BPF_F_INNER_MAP != 0
    }
    /// The kernel's BTF struct name for map-pointer field access messages.
    pub fn struct_name(&self) -> &'static str {
        self.kind()
            .map_or("bpf_array", |t| crate::maps::kind::kind(t).btf_struct)
    }
}

/// Resolves the fds a program names (`lddw rX, map[fd]`).
pub trait MapResolver {
    /// `Err`: the fd is not a map (the kernel refuses with `EBADF`).
    fn map_by_fd(&self, fd: i32) -> Result<MapDesc, String>;
}

/// A fixed fd → map table: the resolver tests and the `mimic verify` command use.
#[derive(Debug, Clone, Default)]
pub struct MapTable(pub Vec<(i32, MapDesc)>);

impl MapResolver for MapTable {
    fn map_by_fd(&self, fd: i32) -> Result<MapDesc, String> {
        self.0
            .iter()
            .find(|(f, _)| *f == fd)
            .map(|(_, m)| m.clone())
            .ok_or_else(|| format!("fd {fd} is not pointing to valid bpf_map"))
    }
}

/// The program type, as far as the verifier's context rules differ between types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgType {
    /// mimic's own program: `r1` points at [`VerifyOpts::ctx_size`] read-only bytes (the
    /// simulator's programs and the verifier's own tests).
    #[default]
    Generic,
    /// `BPF_PROG_TYPE_SYSCALL` (privileged, sleepable, run by `BPF_PROG_TEST_RUN`): the context
    /// is a copy of the caller's buffer, readable and writable at any `off` in
    /// `0..SYSCALL_CTX_MAX` aligned to the access size (the kernel's
    /// `syscall_prog_is_valid_access`); `ctx_size` is not used, the test run checks the buffer
    /// against [`Verified::max_ctx_offset`] instead.
    Syscall,
    /// `BPF_PROG_TYPE_RAW_TRACEPOINT`: the context is the tracepoint's arguments as u64s,
    /// read-only, at offsets below `12 * 8` that are a multiple of the access size
    /// (`bpf_tracing_ctx_access`); a test run passes at most that many bytes.
    RawTracepoint,
    /// `BPF_PROG_TYPE_TRACEPOINT`: the context is the tracepoint's record, read-only, past its
    /// first 8 bytes (`tp_prog_is_valid_access`: `8..PERF_MAX_TRACE_SIZE`, aligned to the access
    /// size); the kernel has no test run for it.
    Tracepoint,
    /// `BPF_PROG_TYPE_XDP`: the context is `struct xdp_md`, read-only, 4-byte reads of its
    /// first five fields (`xdp_is_valid_access`); `data`, `data_end` and `data_meta` give packet
    /// pointers, which may read and write the packet inside a range learned from comparisons.
    /// A test run takes a packet of at least [`crate::bpf::xdp::ETH_HLEN`] bytes.
    Xdp,
    /// `BPF_PROG_TYPE_SCHED_CLS` (tc): the context is `struct __sk_buff`, whose fields a
    /// program reads, and some of which (`mark`, `priority`, `cb`...) it writes, by the rule of
    /// [`crate::bpf::skb::tc_access`]; `data`, `data_end` and `data_meta` give packet pointers
    /// as XDP's do. A test run takes a frame of at least [`crate::bpf::xdp::ETH_HLEN`] bytes.
    SchedCls,
}

/// `BPF_PROG_TYPE_SYSCALL` context offsets must stay below `U16_MAX`, and a test run's context
/// may not be larger than it.
pub const SYSCALL_CTX_MAX: u32 = u16::MAX as u32;

/// A raw tracepoint's context: `MAX_BPF_FUNC_ARGS` u64 arguments.
pub const RAW_TP_CTX_MAX: u32 = 12 * 8;

/// A tracepoint record's size bound (`PERF_MAX_TRACE_SIZE`).
pub const TRACEPOINT_CTX_MAX: u32 = 8192;

impl ProgType {
    /// A packet program: its context gives packet pointers and the fixups rewrite its context
    /// accesses.
    pub fn is_packet(self) -> bool {
        matches!(self, ProgType::Xdp | ProgType::SchedCls)
    }

    /// `enum bpf_prog_type` (mimic's generic programs have no kernel type: 0, `UNSPEC`).
    pub fn uapi(self) -> u32 {
        match self {
            ProgType::Generic => 0,
            ProgType::SchedCls => 3,
            ProgType::Tracepoint => 5,
            ProgType::Xdp => 6,
            ProgType::RawTracepoint => 17,
            ProgType::Syscall => 31,
        }
    }

    /// The largest context a test run of this type takes.
    pub fn max_test_ctx(self) -> u32 {
        match self {
            ProgType::RawTracepoint => RAW_TP_CTX_MAX,
            _ => SYSCALL_CTX_MAX,
        }
    }
}

/// How to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOpts {
    /// Which context rules apply to `r1`.
    pub prog_type: ProgType,
    /// `CAP_BPF`/`CAP_PERFMON` (bounded loops, pointer leaks, map-pointer reads, no masking).
    pub privileged: bool,
    pub sleepable: bool,
    /// Readable bytes of the context (`r1` at entry).
    pub ctx_size: u32,
    pub mutants: Mutants,
    /// 0: summary only; 1: every processed instruction in the log.
    pub log_level: u8,
    /// `BPF_F_TEST_STATE_FREQ`: a checkpoint at every prune point.
    pub test_state_freq: bool,
    /// Keep the per-instruction join of states for the soundness oracle.
    pub collect_states: bool,
    /// The kernel build whose behaviours (messages, where builds differ) to follow.
    pub profile: KernelProfile,
    /// Verifier features the modelled release lacks (`history`).
    pub lacks: crate::history::Lacks,
    /// The struct layouts a read through a map pointer is checked against.
    pub kernel_types: crate::bpf::kernel_types::TypesRef,
}

impl Default for VerifyOpts {
    fn default() -> Self {
        VerifyOpts {
            prog_type: ProgType::Generic,
            privileged: true,
            sleepable: false,
            ctx_size: 64,
            mutants: Mutants::NONE,
            log_level: 0,
            test_state_freq: false,
            collect_states: false,
            profile: *KernelProfile::newest(),
            lacks: crate::history::Lacks::NONE,
            kernel_types: crate::bpf::kernel_types::TypesRef::Recorded,
        }
    }
}

/// Which map a call or `lddw` used on every path (`Poisoned`: different maps on different paths,
/// so the fixups must not specialise it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuxMap {
    #[default]
    None,
    One(u32),
    Poisoned,
}

/// Per-instruction facts for the fixups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InsnAux {
    /// Reached by some path (the kernel's `seen`; for `lddw` both slots): the dead-code passes
    /// ([`crate::bpf::dead_code`]) remove or trap what is not.
    pub seen: bool,
    /// The map of a helper call's `r1`, or of an `lddw` pseudo map load (index into
    /// [`Verified::maps`]).
    pub map: AuxMap,
    /// A load or store of a packet program: through the context (`Some(true)`: the fixups
    /// rewrite it, [`crate::bpf::xdp::convert_ctx_access`], [`crate::bpf::skb::convert_ctx_access`])
    /// or through another pointer (`Some(false)`). One instruction may not be both (the
    /// kernel's `save_aux_ptr_type`).
    pub ctx_access: Option<bool>,
}

/// An accepted program.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The program as given (pseudo map loads still name fds).
    pub insns: Vec<Insn>,
    /// Maps and metas the program touches; `AuxMap::One(i)` indexes this.
    pub maps: Vec<MapDesc>,
    /// Indices into `maps` of the maps the program names itself (its `used_maps`: outer maps,
    /// never inner maps).
    pub used_maps: Vec<u32>,
    pub aux: Vec<InsnAux>,
    pub stats: Stats,
    pub log: String,
    pub privileged: bool,
    /// One past the highest context byte any access reaches (the kernel's `max_ctx_offset`):
    /// a test run refuses a context shorter than this.
    pub max_ctx_offset: u32,
    /// The program writes the packet directly (the kernel's `seen_direct_write`): a tc
    /// program's fixups put [`crate::bpf::skb::unclone_prologue`] before it.
    pub direct_write: bool,
    /// The program reads a kernel struct through a map pointer (`struct bpf_map` and the
    /// kind's own): the bytes are the kernel's (ids, counts, hashes), so a test run's result
    /// may depend on values no model has.
    pub reads_kernel_struct: bool,
    /// The type it was verified as (the fixups rewrite context accesses by it).
    pub prog_type: ProgType,
    /// Present when [`VerifyOpts::collect_states`] was set.
    pub oracle: Option<StateOracle>,
}

/// A refused program: the kernel's message, at which instruction, and the whole log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub insn: usize,
    pub message: String,
    pub log: String,
    /// The errno the kernel returns (`EACCES` for unsafe programs, `EINVAL` for malformed ones,
    /// `E2BIG` for the complexity limit, `EBADF` for bad map fds).
    pub errno: i32,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "insn {}: {}", self.insn, self.message)
    }
}

impl std::error::Error for Rejection {}

pub(crate) const EACCES: i32 = 13;
pub(crate) const EINVAL: i32 = 22;
pub(crate) const E2BIG: i32 = 7;
pub(crate) const EBADF: i32 = 9;

/// A refusal while checking one instruction.
#[derive(Debug)]
pub(crate) struct Refuse {
    pub message: String,
    pub errno: i32,
}

pub(crate) fn refuse<T>(message: impl Into<String>) -> Result<T, Refuse> {
    Err(Refuse {
        message: message.into(),
        errno: EACCES,
    })
}

/// Where a checked instruction leads.
pub(crate) enum Next {
    Goto(usize),
    /// A conditional jump: the states of the taken and fall-through edges (`None`: dead edge).
    Branch {
        target: usize,
        taken: Option<VState>,
        fall: Option<VState>,
    },
    /// The path ended at `exit` of the main program.
    Done,
}

/// The verifier's working state.
pub(crate) struct Env<'a> {
    pub insns: &'a [Insn],
    pub ops: Vec<Option<Op>>,
    pub opts: VerifyOpts,
    pub resolver: &'a dyn MapResolver,
    pub maps: Vec<MapDesc>,
    /// For each entry of `maps`, the index of its meta entry (outer maps only).
    pub meta_of: Vec<Option<u32>>,
    pub used_maps: Vec<u32>,
    pub aux: Vec<InsnAux>,
    pub id_gen: u32,
    pub log: Log,
    pub stats: Stats,
    pub prune: pruning::Pruning,
    pub oracle: Option<StateOracle>,
    pub jmps_processed: u64,
    /// Scalars the instruction being checked relied on exactly (see [`precision`]).
    pub precise_req: precision::Bt,
    /// The stack slot (frame, slot) the instruction being checked spilled or filled a register
    /// through.
    pub stack_moved: Option<(u8, u8)>,
    /// The instruction being checked wrote known bytes (zero or constant) to the stack.
    pub stack_exact_write: bool,
    /// The scalars a branch being checked refined together through their shared id.
    pub linked: Option<precision::Bt>,
    /// Registers live before each instruction (bit i = r_i), from [`cfg`].
    pub live_before: Vec<u16>,
    /// Stack slots of the running frame live before each instruction, from [`live_stack`];
    /// computed at the first comparison with a checkpoint (many programs never prune).
    pub live_slots: Vec<u64>,
    /// See [`Verified::max_ctx_offset`].
    pub max_ctx_offset: u32,
    /// See [`Verified::direct_write`].
    pub direct_write: bool,
    /// See [`Verified::reads_kernel_struct`].
    pub reads_kernel_struct: bool,
    /// The recorded build's struct types, parsed at the first read through a map pointer
    /// ([`crate::bpf::kernel_types::TypesRef::get`]).
    pub recorded_types: Option<crate::bpf::kernel_types::KernelTypes>,
}

impl Env<'_> {
    pub fn mutant(&self, m: Mutant) -> bool {
        self.opts.mutants.on(m)
    }
    /// The kernel's `reg_type_str`: a register's type as messages name it. A nullable lookup
    /// result of an outer map is named as the profile's build names it.
    pub fn type_str(&self, reg: &Reg) -> &'static str {
        let outer = || {
            self.maps
                .get(reg.map as usize)
                .is_some_and(MapDesc::is_outer)
        };
        if reg.ty == RegType::MapValueOrNull && outer() {
            self.opts.profile.outer_lookup_or_null()
        } else {
            reg.ty.name()
        }
    }
    /// The check of the current instruction relied on register `r`'s exact value, a scalar.
    pub fn need_precise(&mut self, st: &VState, r: u8) {
        let reg = &st.cur().regs[usize::from(r & 15).min(NREGS - 1)];
        if reg.ty == RegType::Scalar {
            self.precise_req.reg(st.depth(), r);
        }
    }
    /// ... or on the scalar spilled in stack slot `slot` of frame `frame`.
    pub fn need_precise_slot(&mut self, frame: u8, slot: u8) {
        self.precise_req.slot(frame, slot);
    }
    pub fn new_id(&mut self) -> u32 {
        self.id_gen += 1;
        self.id_gen
    }
    /// Index of the map with fd `fd`, resolving and recording it on first use.
    pub fn map_for_fd(&mut self, fd: i32) -> Result<u32, Refuse> {
        let desc = self.resolver.map_by_fd(fd).map_err(|_| Refuse {
            message: format!("fd {fd} is not pointing to valid bpf_map"),
            errno: EBADF,
        })?;
        if let Some(&i) = self
            .used_maps
            .iter()
            .find(|&&i| self.maps[i as usize] == desc)
        {
            return Ok(i);
        }
        let index = self.maps.len() as u32;
        let meta = desc.inner_meta.clone();
        self.maps.push(desc);
        self.meta_of.push(None);
        self.used_maps.push(index);
        if let Some(meta) = meta {
            let mi = self.maps.len() as u32;
            self.maps.push(*meta);
            self.meta_of.push(None);
            self.meta_of[index as usize] = Some(mi);
        }
        Ok(index)
    }
    pub fn record_map(&mut self, pc: usize, map: u32) {
        let aux = &mut self.aux[pc];
        aux.map = match aux.map {
            AuxMap::None => AuxMap::One(map),
            AuxMap::One(m) if m == map => AuxMap::One(m),
            _ => AuxMap::Poisoned,
        };
    }
}

/// Resolves every pseudo map load before the walk, as the kernel's `resolve_pseudo_ldimm64`
/// does: a bad fd is refused even in dead code, every named map is a used map, and the fixups
/// can rewrite a load the walk never reached (pruned or dead) to its map.
fn resolve_pseudo_ldimm64(env: &mut Env<'_>) -> Result<(), (usize, Refuse)> {
    for pc in 0..env.ops.len() {
        let fd = match env.ops[pc] {
            Some(Op::Ld64 {
                value: crate::isa::Ld64::MapFd(fd) | crate::isa::Ld64::MapValue { fd, .. },
                ..
            }) => fd,
            _ => continue,
        };
        let map = env.map_for_fd(fd).map_err(|refuse| (pc, refuse))?;
        env.record_map(pc, map);
    }
    Ok(())
}

/// Verifies `insns`. See the module documentation.
pub fn verify(
    insns: &[Insn],
    resolver: &dyn MapResolver,
    opts: VerifyOpts,
) -> Result<Verified, Rejection> {
    let mut env = Env {
        insns,
        ops: Vec::new(),
        opts,
        resolver,
        maps: Vec::new(),
        meta_of: Vec::new(),
        used_maps: Vec::new(),
        aux: vec![InsnAux::default(); insns.len()],
        id_gen: 0,
        log: Log {
            level: opts.log_level,
            text: String::new(),
        },
        stats: Stats::default(),
        prune: pruning::Pruning::new(insns.len()),
        oracle: opts.collect_states.then(|| StateOracle::new(insns.len())),
        jmps_processed: 0,
        precise_req: precision::Bt::default(),
        stack_moved: None,
        stack_exact_write: false,
        linked: None,
        live_before: Vec::new(),
        live_slots: Vec::new(),
        max_ctx_offset: 0,
        direct_write: false,
        reads_kernel_struct: false,
        recorded_types: None,
    };
    let result = cfg::check_cfg(&mut env)
        .and_then(|()| resolve_pseudo_ldimm64(&mut env))
        .and_then(|()| do_check(&mut env));
    env.stats.total_states = env.prune.total();
    env.stats.peak_states = env.prune.total();
    env.stats.max_states_per_insn = env.prune.max_per_insn();
    match result {
        Ok(()) => {
            env.log.line(&env.stats.summary());
            Ok(Verified {
                insns: insns.to_vec(),
                maps: env.maps,
                used_maps: env.used_maps,
                aux: env.aux,
                stats: env.stats,
                log: env.log.text,
                privileged: opts.privileged,
                max_ctx_offset: env.max_ctx_offset,
                direct_write: env.direct_write,
                reads_kernel_struct: env.reads_kernel_struct,
                prog_type: opts.prog_type,
                oracle: env.oracle,
            })
        }
        Err((insn, refuse)) => {
            env.log.line(&refuse.message);
            env.log.line(&env.stats.summary());
            Err(Rejection {
                insn,
                message: refuse.message,
                log: env.log.text,
                errno: refuse.errno,
            })
        }
    }
}

/// `exact`, a walk with `collect_states` (every state compared exactly), set against the walk
/// users get with the same options, which prunes as a privileged kernel does (scalars only where
/// a verified path relied on them, live stack slots only). Both must reach one verdict: an
/// acceptance the exact walk refuses is a dependency precision tracking or stack liveness
/// missed. A program the exact walk finds too large is skipped (the looser walk may finish it
/// or stop at another instruction). Returns both processed counts (loose, exact) when both
/// accept; `Err` says how the verdicts differ.
pub fn check_loose_pruning(
    insns: &[Insn],
    maps: &dyn MapResolver,
    exact_opts: VerifyOpts,
    exact: &Result<Verified, Rejection>,
) -> Result<Option<(u64, u64)>, String> {
    if exact
        .as_ref()
        .is_err_and(|e| e.message.starts_with("BPF program is too large"))
    {
        return Ok(None);
    }
    let loose = verify(
        insns,
        maps,
        VerifyOpts {
            collect_states: false,
            ..exact_opts
        },
    );
    let verdict = |r: &Result<Verified, Rejection>| match r {
        Ok(_) => Ok(()),
        Err(e) => Err((e.insn, e.message.clone())),
    };
    if verdict(&loose) != verdict(exact) {
        return Err(format!(
            "pruning on precise scalars and live slots changed the verdict (the verifier is \
             unsound if it now accepts): exact {:?}, loose {:?}",
            verdict(exact),
            verdict(&loose)
        ));
    }
    Ok(match (&loose, exact) {
        (Ok(l), Ok(e)) => Some((l.stats.processed, e.stats.processed)),
        _ => None,
    })
}

/// The entry state: `r1` the context, `r10` the frame pointer.
fn entry_state() -> VState {
    let mut frame = Frame::new(0, 0, 0);
    frame.regs[1] = Reg::pointer(RegType::Ctx, 0);
    VState {
        frames: vec![frame],
    }
}

/// The main loop (the kernel's `do_check`).
fn do_check(env: &mut Env<'_>) -> Result<(), (usize, Refuse)> {
    type Pending = (usize, usize, VState, Option<usize>, u32);
    let mut pending: Vec<Pending> = Vec::new();
    let mut pc = 0usize;
    let mut st = entry_state();
    let mut parent: Option<usize> = None;
    // The instructions of every path, and the newest one of the current path's segment (the
    // instructions processed since its last checkpoint); kept only where precision is tracked.
    let precise = pruning::precision(env.opts);
    let mut arena = HistArena::with_capacity(if precise { env.insns.len() * 2 } else { 0 });
    let mut hist = NO_HIST;
    loop {
        env.stats.processed += 1;
        if env.stats.processed > log::COMPLEXITY_LIMIT_INSNS {
            return Err((
                pc,
                Refuse {
                    message: format!(
                        "BPF program is too large. Processed {} insn",
                        env.stats.processed
                    ),
                    errno: E2BIG,
                },
            ));
        }
        let mut path_done = false;
        if env.prune.is_point(pc) {
            if env.live_slots.is_empty() && env.prune.has_checkpoints(pc) {
                // Only a privileged walk outside the oracle skips dead slots.
                env.live_slots = if precise {
                    live_stack::live_stack_slots(&env.ops)
                } else {
                    vec![live_stack::ALL; env.ops.len()]
                };
            }
            let live_slots = env.live_slots.get(pc).copied().unwrap_or(live_stack::ALL);
            match env.prune.visit(
                pc,
                &st,
                &mut parent,
                &mut hist,
                env.opts,
                env.stats.processed,
                env.jmps_processed,
                env.live_before[pc],
                live_slots,
            ) {
                pruning::Visit::Prune(old) => {
                    path_done = true;
                    if precise {
                        let bt =
                            precision::Bt::precise_in(env.prune.state(old), env.live_before[pc]);
                        precision::mark_chain_precise(
                            &mut env.prune,
                            &env.ops,
                            &arena,
                            hist,
                            parent,
                            bt,
                        );
                    }
                }
                pruning::Visit::Loop => {
                    return Err((
                        pc,
                        Refuse {
                            message: format!("infinite loop detected at insn {pc}"),
                            errno: EINVAL,
                        },
                    ))
                }
                pruning::Visit::Continue => {}
            }
        }
        if !path_done {
            env.aux[pc].seen = true;
            if let Some(oracle) = env.oracle.as_mut() {
                oracle.accept(pc, &st, env.live_before[pc]);
            }
            env.log.insn(env.insns, pc);
            let op = env.ops[pc].ok_or_else(|| {
                (
                    pc,
                    Refuse {
                        message: format!("jump into the middle of ldimm64 insn {pc}"),
                        errno: EINVAL,
                    },
                )
            })?;
            if matches!(op, Op::Ld64 { .. }) {
                // As the kernel, the second slot of a processed `lddw` is seen too: the
                // dead-code passes keep or remove the pair whole.
                if let Some(aux) = env.aux.get_mut(pc + 1) {
                    aux.seen = true;
                }
            }
            if matches!(op, Op::Jmp { .. } | Op::Ja { .. } | Op::Call(_) | Op::Exit) {
                env.jmps_processed += 1;
            }
            if precise {
                hist = arena.push(
                    hist,
                    Hist {
                        pc: pc as u32,
                        frame: st.depth(),
                        stack: None,
                        linked: NO_HIST,
                    },
                );
                env.linked = None;
                env.stack_moved = None;
                env.stack_exact_write = false;
                env.precise_req = precision::Bt::default();
            }
            let next = check::step(env, pc, &op, &mut st).map_err(|r| (pc, r))?;
            if precise {
                arena.set_stack(hist, env.stack_moved.take());
                if let Some(linked) = env.linked.take() {
                    arena.set_linked(hist, linked);
                }
                if !env.precise_req.is_empty() {
                    // The needs are of the state before this instruction: the walk starts below
                    // it.
                    precision::mark_chain_precise(
                        &mut env.prune,
                        &env.ops,
                        &arena,
                        arena.prev(hist),
                        parent,
                        env.precise_req,
                    );
                }
            }
            match next {
                Next::Goto(next) => {
                    pc = next;
                    continue;
                }
                Next::Branch {
                    target,
                    taken,
                    fall,
                } => match (taken, fall) {
                    (Some(t), Some(f)) => {
                        env.prune.branch_pushed(parent);
                        pending.push((pc, target, t, parent, hist));
                        st = f;
                        pc += 1;
                        continue;
                    }
                    (Some(t), None) => {
                        st = t;
                        pc = target;
                        continue;
                    }
                    (None, Some(f)) => {
                        st = f;
                        pc += 1;
                        continue;
                    }
                    (None, None) => {}
                },
                Next::Done => {}
            }
        }
        // The path ended (exit, pruned, or both edges dead).
        env.prune.path_done(parent);
        match pending.pop() {
            Some((from, to, state, par, h)) => {
                env.log.branch(from, to);
                pc = to;
                st = state;
                parent = par;
                hist = h;
            }
            None => return Ok(()),
        }
    }
}

/// Decodes `insns` into one entry per slot (`None` for the second slot of `lddw`).
pub(crate) fn decode_all(insns: &[Insn]) -> Result<Vec<Option<Op>>, (usize, Refuse)> {
    let mut ops = vec![None; insns.len()];
    let mut pc = 0;
    while pc < insns.len() {
        let (op, len) = decode(insns, pc).map_err(|e| {
            (
                e.pc,
                Refuse {
                    message: e.message,
                    errno: EINVAL,
                },
            )
        })?;
        ops[pc] = Some(op);
        pc += len;
    }
    Ok(ops)
}
