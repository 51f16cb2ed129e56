//! The JIT-free executor: an interpreter over pre-decoded instructions that checks every memory
//! access.
//!
//! * Registers: `r1` = the context / input memory (a [`Ptr::ctx`] pointer), `r2` = its length (the
//!   conformance suite's convention), `r10` = the top of the current 512-byte stack frame.
//! * Pointers are values in the [`crate::ptr`] encoding, so programs may do arithmetic on them
//!   and every load, store and atomic is checked against the region the value names: the stack
//!   frames (a frame deeper than the current one is stale), the input memory, or a map object
//!   through [`MapEnv`] (whose generation-checked handles turn a use after free into
//!   [`ExecErrorKind::Fault`]). Nothing is silent and nothing panics: a bad access is an
//!   [`ExecError`] naming the instruction.
//! * bpf-to-bpf calls save `r6`–`r9` and nest at most [`MAX_CALL_FRAMES`] deep; a run executes at
//!   most [`Config::budget`] instructions ([`DEFAULT_INSN_BUDGET`]), checked at backward jumps,
//!   calls and exits (so straight-line code pays nothing and the overshoot is below one
//!   program length).
//! * `bpf_tail_call` continues in the program [`MapEnv::tail_call`] finds in the `PROG_ARRAY`
//!   slot, on the same context, stack and `r1`, at most [`MAX_TAIL_CALL_CNT`] times per run;
//!   an [`Observer`] hears of it ([`Observer::left_program`]), since later steps are another
//!   program's.
//! * Helpers are dispatched through the one table of [`super::helpers`]; map helpers and direct
//!   map calls go to [`MapEnv`]. [`NoMaps`] refuses them, [`fake::FakeArrays`] is a small
//!   in-memory array-map world for tests and benches; the core's map world implements the
//!   trait for real runs.
//! * [`Observer`] is called before every instruction (the verifier's soundness oracle);
//!   [`NoObserver`] compiles to nothing because the interpreter is generic over it.
//!
//! Division follows the ISA: division by zero gives 0, modulo by zero leaves `dst` unchanged
//! (truncated to 32 bits in the 32-bit forms), `INT_MIN / -1` is `INT_MIN`, `INT_MIN % -1` is 0,
//! shift counts are masked to the operand width.

mod compile;
pub mod fake;
mod interp;

pub use compile::Program;

use super::helpers::DirectCall;
pub use crate::bpf::xdp::Packet;
use crate::fault::Fault;
use crate::isa::{AtomicOp, DecodeError};
use crate::ptr::Ptr;
use std::fmt;

/// Bytes of one stack frame (the kernel's `MAX_BPF_STACK`).
pub const STACK_SIZE: usize = 512;
/// Deepest nesting of bpf-to-bpf calls, the main program included (the kernel's
/// `MAX_CALL_FRAMES`).
pub const MAX_CALL_FRAMES: usize = 8;
/// Instructions one run may execute by default: the verifier's complexity limit
/// (`BPF_COMPLEXITY_LIMIT_INSNS`, one million), which bounds what a verified program can do.
pub const DEFAULT_INSN_BUDGET: u64 = 1_000_000;

/// Why a run stopped with an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecErrorKind {
    #[error("invalid program: {0}")]
    Decode(DecodeError),
    #[error("null pointer dereference ({size}-byte access at {addr:#x})")]
    NullDeref { addr: u64, size: u8 },
    #[error("scalar {addr:#x} used as a pointer ({size}-byte access)")]
    NotAPointer { addr: u64, size: u8 },
    #[error("out of bounds: {size}-byte access at {ptr} (region is {region_len} bytes)")]
    OutOfBounds { ptr: Ptr, size: u8, region_len: u64 },
    #[error("outside the packet: {size}-byte access at {ptr} (data_meta..data_end is {}..{})", data.0, data.1)]
    OutsidePacket {
        ptr: Ptr,
        size: u8,
        data: (usize, usize),
    },
    #[error("access to stale stack frame: {ptr}, current frame {depth}")]
    StaleFrame { ptr: Ptr, depth: usize },
    /// A model fault reported by the map world (use after free, ...), kept intact for checkers
    /// (boxed: faults carry names and stamps, and every `Result` of the hot loop would pay
    /// for their size).
    #[error("{0}")]
    Fault(Box<Fault>),
    /// The map world refused an access or a map operation.
    #[error("map access refused: {0}")]
    MapAccess(String),
    #[error("helper argument r{arg}: {what}")]
    BadArgument { arg: u8, what: String },
    #[error("unknown helper {0}")]
    UnknownHelper(i32),
    #[error("callx target {0:#x} is not a helper id")]
    BadCallx(u64),
    #[error("call depth exceeds {MAX_CALL_FRAMES} frames")]
    CallDepth,
    #[error("instruction budget of {0} exhausted")]
    Budget(u64),
    #[error("unsupported instruction: {0}")]
    Unsupported(String),
    #[error("fell off the end of the program")]
    FellOffEnd,
}

/// An error with the index of the instruction that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecError {
    pub pc: usize,
    pub kind: ExecErrorKind,
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "insn {}: {}", self.pc, self.kind)
    }
}

impl std::error::Error for ExecError {}

impl ExecError {
    /// The model fault behind this error, if the map world reported one.
    pub fn fault(&self) -> Option<&Fault> {
        match &self.kind {
            ExecErrorKind::Fault(fault) => Some(&**fault),
            _ => None,
        }
    }
}

impl From<Fault> for ExecErrorKind {
    fn from(fault: Fault) -> Self {
        ExecErrorKind::Fault(Box::new(fault))
    }
}

pub type EnvResult<T> = Result<T, ExecErrorKind>;

/// The map world as a program sees it. `map` arguments are map-object pointers
/// ([`crate::ptr::RegionKind::Map`], offset 0 for a map, into the values for a value pointer);
/// access methods get any map-region pointer and must check it (generation, bounds).
pub trait MapEnv {
    /// `lddw rX, map[fd]` (`BPF_PSEUDO_MAP_FD`): the encoded map pointer.
    fn map_from_fd(&mut self, fd: i32) -> EnvResult<u64>;
    /// `lddw rX, map[fd][0]+off` (`BPF_PSEUDO_MAP_VALUE`): the encoded value pointer.
    fn map_value_from_fd(&mut self, fd: i32, off: u32) -> EnvResult<u64>;
    fn map_key_size(&mut self, map: Ptr) -> EnvResult<u32>;
    fn map_value_size(&mut self, map: Ptr) -> EnvResult<u32>;
    /// `bpf_map_lookup_elem`: an encoded value pointer, or 0.
    fn map_lookup(&mut self, map: Ptr, key: &[u8]) -> EnvResult<u64>;
    /// `__htab_map_lookup_elem` (the call an inlined hash lookup makes): an encoded pointer to
    /// the element holding `key` (its value starts at the key's rounded-up end), or 0. Only a
    /// world with hash maps has it.
    fn map_lookup_elem(&mut self, _map: Ptr, _key: &[u8]) -> EnvResult<u64> {
        Err(ExecErrorKind::MapAccess(
            "__htab_map_lookup_elem: no hash maps in this environment".to_string(),
        ))
    }
    /// `bpf_map_lookup_elem` (with `elem`: `__htab_map_lookup_elem`) whose key is still in the
    /// program's own memory: one call instead of key size, key read and lookup. An override
    /// must refuse what the default refuses, in the same order and with the same errors: `map`
    /// first (as [`MapEnv::map_key_size`] does), then the key through [`KeyArg::read`] with the
    /// map's key size, then the lookup itself.
    fn map_lookup_at(&mut self, map: Ptr, elem: bool, key: KeyArg<'_>) -> EnvResult<u64> {
        let key_size = self.map_key_size(map)? as usize;
        let key = key.read(key_size)?;
        if elem {
            self.map_lookup_elem(map, key)
        } else {
            self.map_lookup(map, key)
        }
    }
    /// `bpf_map_lookup_percpu_elem`: an encoded pointer to CPU `cpu`'s copy of the value, or
    /// 0. Only a world with per-CPU maps has it.
    fn map_lookup_percpu(&mut self, _map: Ptr, _key: &[u8], _cpu: u32) -> EnvResult<u64> {
        Err(ExecErrorKind::MapAccess(
            "bpf_map_lookup_percpu_elem: no per-CPU maps in this environment".to_string(),
        ))
    }
    /// `bpf_map_update_elem`: 0 or a negative errno.
    fn map_update(&mut self, map: Ptr, key: &[u8], value: &[u8], flags: u64) -> EnvResult<i64>;
    /// `bpf_map_delete_elem`: 0 or a negative errno.
    fn map_delete(&mut self, map: Ptr, key: &[u8]) -> EnvResult<i64>;
    /// A line `bpf_trace_printk` printed (the kernel's trace pipe); dropped unless the
    /// environment keeps a trace.
    fn trace_printk(&mut self, _line: &str) {}
    /// Loads `size` (1, 2, 4, 8) bytes, little endian.
    fn load(&mut self, ptr: Ptr, size: u8) -> EnvResult<u64>;
    fn store(&mut self, ptr: Ptr, size: u8, value: u64) -> EnvResult<()>;
    /// An atomic read-modify-write of `size` (4 or 8) bytes; returns the old value. `r0` is the
    /// comparand of `cmpxchg`. The default is load-then-store, atomic because a program runs on
    /// one simulated CPU at a time; a concurrent world overrides it.
    fn atomic(&mut self, ptr: Ptr, size: u8, op: AtomicOp, src: u64, r0: u64) -> EnvResult<u64> {
        let old = self.load(ptr, size)?;
        if let Some(new) = op.result(size, old, src, r0) {
            self.store(ptr, size, new)?;
        }
        Ok(old)
    }
    /// `bpf_tail_call`'s read of slot `index` of `map` (a `PROG_ARRAY`): past its end, empty,
    /// or the fixed-up instructions of the program stored there. Only a world with programs
    /// has it.
    fn tail_call(&mut self, _map: Ptr, _index: u32) -> EnvResult<TailTarget> {
        Err(ExecErrorKind::MapAccess(
            "bpf_tail_call: no program arrays in this environment".to_string(),
        ))
    }
    /// A program a tail call is running (`token` from [`TailTarget::Prog`]) must still be
    /// allocated: the kernel runs its code from the program's memory, so a program freed while
    /// it runs (a put without its grace period) is a use after free. Checked at each helper
    /// call and at the exit.
    fn check_running(&mut self, _token: u64) -> EnvResult<()> {
        Ok(())
    }
    /// Called before a direct call (`array_map_lookup_elem` ...) on `map`: a world that knows
    /// map types refuses a call to the wrong implementation (a miscompiled fixup).
    fn check_direct_call(&mut self, _call: DirectCall, _map: Ptr) -> EnvResult<()> {
        Ok(())
    }
}

/// What a tail call finds ([`MapEnv::tail_call`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailTarget {
    /// `index >= max_entries`: falls through without counting.
    OutOfRange,
    /// An empty slot: falls through, not counted.
    Empty,
    /// The program to continue in: its instructions, and the environment's token for it
    /// ([`MapEnv::check_running`]).
    Prog {
        insns: Vec<crate::isa::Insn>,
        token: u64,
    },
}

/// Tail calls one run may make (the kernel's `MAX_TAIL_CALL_CNT`); the next one falls through,
/// so a program that tail-calls itself runs 34 times.
pub const MAX_TAIL_CALL_CNT: u32 = 33;

/// A helper's key argument that points into the program's stack or input memory (never into a
/// map: those keys go through [`MapEnv::load`]). The environment learns the key size from the
/// map and reads the key with [`KeyArg::read`], which checks it exactly as the interpreter
/// checks a load of that many bytes.
pub struct KeyArg<'a> {
    /// The pointer value the program passed (`r2`).
    addr: u64,
    stack: &'a [u8],
    ctx: &'a [u8],
    packet: &'a Packet,
    /// The caller's call depth: deeper frames are stale.
    depth: usize,
}

impl<'a> KeyArg<'a> {
    /// The `size` bytes at the key pointer, or the error a `size`-byte load there gives
    /// (NULL, scalar, out of bounds, stale frame).
    #[inline]
    pub fn read(&self, size: usize) -> EnvResult<&'a [u8]> {
        match interp::locate(self.addr, size, self.depth, self.ctx.len(), self.packet)? {
            interp::Place::Stack(at) => Ok(&self.stack[at..at + size]),
            interp::Place::Ctx(at) => Ok(&self.ctx[at..at + size]),
            interp::Place::Packet(at) => Ok(&self.packet.buf[at..at + size]),
            interp::Place::Map(ptr) => Err(ExecErrorKind::MapAccess(format!(
                "key at {ptr}: a key in map memory is read through the map world"
            ))),
        }
    }

    /// The pointer value the program passed.
    pub fn addr(&self) -> u64 {
        self.addr
    }
}

/// A world without maps: every map operation is refused.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMaps;

fn no_maps<T>() -> EnvResult<T> {
    Err(ExecErrorKind::MapAccess(
        "no maps in this environment".to_string(),
    ))
}

impl MapEnv for NoMaps {
    fn map_from_fd(&mut self, _fd: i32) -> EnvResult<u64> {
        no_maps()
    }
    fn map_value_from_fd(&mut self, _fd: i32, _off: u32) -> EnvResult<u64> {
        no_maps()
    }
    fn map_key_size(&mut self, _map: Ptr) -> EnvResult<u32> {
        no_maps()
    }
    fn map_value_size(&mut self, _map: Ptr) -> EnvResult<u32> {
        no_maps()
    }
    fn map_lookup(&mut self, _map: Ptr, _key: &[u8]) -> EnvResult<u64> {
        no_maps()
    }
    fn map_update(&mut self, _map: Ptr, _key: &[u8], _value: &[u8], _flags: u64) -> EnvResult<i64> {
        no_maps()
    }
    fn map_delete(&mut self, _map: Ptr, _key: &[u8]) -> EnvResult<i64> {
        no_maps()
    }
    fn load(&mut self, _ptr: Ptr, _size: u8) -> EnvResult<u64> {
        no_maps()
    }
    fn store(&mut self, _ptr: Ptr, _size: u8, _value: u64) -> EnvResult<()> {
        no_maps()
    }
}

/// What an [`Observer`] sees before each instruction.
pub struct StepView<'a> {
    /// Index of the instruction about to run.
    pub pc: usize,
    /// `r0`..`r10`.
    pub regs: &'a [u64],
    /// Current call depth (0 = main program).
    pub depth: usize,
    stack: &'a [u8],
}

impl<'a> StepView<'a> {
    /// The bytes of stack frame `frame` (0 = main program), if it is live.
    pub fn frame(&self, frame: usize) -> Option<&'a [u8]> {
        if frame > self.depth {
            return None;
        }
        self.stack.get(frame * STACK_SIZE..(frame + 1) * STACK_SIZE)
    }
}

/// A hook called before each instruction (check mode).
pub trait Observer {
    /// `false` only for [`NoObserver`]: the interpreter skips building the view.
    const ACTIVE: bool = true;
    fn before(&mut self, step: &StepView<'_>);
    /// A tail call left the program observed so far: later steps are another program's.
    fn left_program(&mut self) {}
}

/// The default: observes nothing, costs nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl Observer for NoObserver {
    const ACTIVE: bool = false;
    #[inline(always)]
    fn before(&mut self, _step: &StepView<'_>) {}
}

/// Run settings.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Instructions one run may execute.
    pub budget: u64,
    /// What `bpf_get_smp_processor_id` returns: the CPU the run is on.
    pub cpu: u32,
    /// Where `bpf_get_prandom_u32`'s sequence starts (the same seed, the same words: a
    /// simulator derives it from its own seed).
    pub prandom_seed: u64,
    /// The simulated clock when the run starts, in nanoseconds: `bpf_ktime_get_ns` returns it
    /// plus the number of reads so far (a simulator derives it from its logical time).
    pub clock_ns: u64,
    /// The BPF conformance suite's helper convention: id 5 returns its first argument (the
    /// suite's plugins define it so) instead of reading the clock.
    pub conformance: bool,
    /// The program is a tc one: `bpf_redirect` answers with tc's actions (`TC_ACT_*`).
    pub tc: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            budget: DEFAULT_INSN_BUDGET,
            cpu: 0,
            prandom_seed: 0x2545_f491_4f6c_dd1d,
            clock_ns: 0,
            conformance: false,
            tc: false,
        }
    }
}

/// The machine state reused across runs (stack memory, call frames, scratch buffers), so a
/// run allocates nothing per instruction.
pub struct Vm {
    pub config: Config,
    stack: Vec<u8>,
    scratch: Vec<u8>,
    /// Instructions executed by the last run.
    pub executed: u64,
}

impl Default for Vm {
    fn default() -> Self {
        Vm::new(Config::default())
    }
}

impl Vm {
    pub fn new(config: Config) -> Vm {
        Vm {
            config,
            stack: vec![0; STACK_SIZE * MAX_CALL_FRAMES],
            scratch: Vec::new(),
            executed: 0,
        }
    }

    /// Runs `program` on input memory `ctx`, returning `r0`.
    pub fn run<E: MapEnv, O: Observer>(
        &mut self,
        program: &Program,
        ctx: &mut [u8],
        env: &mut E,
        observer: &mut O,
    ) -> Result<u64, ExecError> {
        interp::run(self, program, ctx, &mut Packet::default(), env, observer)
    }

    /// Runs a packet program: `ctx` is the context its fixed-up loads read (for XDP,
    /// [`crate::bpf::xdp::XdpCtx`]), whose pointers name `packet`'s window.
    pub fn run_packet<E: MapEnv, O: Observer>(
        &mut self,
        program: &Program,
        ctx: &mut [u8],
        packet: &mut Packet,
        env: &mut E,
        observer: &mut O,
    ) -> Result<u64, ExecError> {
        interp::run(self, program, ctx, packet, env, observer)
    }
}

/// Runs `program` once on `ctx` without maps or observer.
pub fn run(program: &Program, ctx: &mut [u8]) -> Result<u64, ExecError> {
    Vm::default().run(program, ctx, &mut NoMaps, &mut NoObserver)
}

#[cfg(test)]
mod tests;
