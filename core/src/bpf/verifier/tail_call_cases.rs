//! Tail calls, as tests and kernel-check share them: XDP programs that call `bpf_tail_call`
//! (accepted and refused, with the kernel's messages), and [`scenario`], one sequence of
//! `PROG_ARRAY` updates, lookups, deletes and test runs written once against [`TailCallHost`]
//! and run on the world and on the kernel. Its [`Observation`]s name what happened in terms
//! both sides share (a program by its role, never an fd or id), so kernel-check compares them
//! line by line and the core's tests assert them.
//!
//! The facts (probed on 6.18 as root): a tail call to slot `index` (its low 32 bits) runs that
//! program on the same context; past `max_entries`, an empty slot, or after 33 tail calls it
//! falls through with `r0` unreadable; only calls that find a program count. A `PROG_ARRAY`
//! takes program fds with `BPF_ANY` only, answers a lookup with the program's id, and belongs
//! to the program type of the first program stored in or loaded against it.

use crate::isa::{Insn, BPF_ADD, BPF_DW, BPF_JGT, BPF_W};
use crate::uapi::{BpfSys, Fd, MapAttr, MapType, BPF_ANY, BPF_EXIST, BPF_NOEXIST};

/// `BPF_FUNC_tail_call`.
const TAIL_CALL: i32 = crate::uapi::BPF_FUNC_TAIL_CALL as i32;

/// `r0 = value; exit`.
pub fn returns(value: i32) -> Vec<Insn> {
    vec![Insn::mov64_imm(0, value), Insn::exit()]
}

/// `r2 = prog_array; r3 = index` (a 64-bit constant when it does not fit an `imm`).
fn tail_call_args(prog_array: Fd, index: u64) -> Vec<Insn> {
    let mut insns = Insn::ld_map_fd(2, prog_array).to_vec();
    match i32::try_from(index) {
        Ok(imm) => insns.push(Insn::mov64_imm(3, imm)),
        Err(_) => insns.extend(Insn::ld_imm64(3, index)),
    }
    insns
}

/// `r6 = r1; tail_call(ctx, prog_array, index); r0 = 7; exit`: 7 means it fell through.
pub fn caller(prog_array: Fd, index: u64) -> Vec<Insn> {
    let mut insns = vec![Insn::mov64_reg(6, 1)];
    insns.extend(tail_call_args(prog_array, index));
    insns.extend([Insn::mov64_reg(1, 6), Insn::call_helper(TAIL_CALL)]);
    insns.extend(returns(FELL_THROUGH));
    insns
}

/// What [`caller`] returns when its tail call falls through.
pub const FELL_THROUGH: i32 = 7;

/// Adds 1 to the u64 at key 0 of `counter` (an `ARRAY`), makes `empty_calls` tail calls to
/// slot 2 of `prog_array` (kept empty), then tail-calls slot 0 (where it is stored itself);
/// returns 1 when that falls through. The counter then says how many times it ran.
pub fn counting_self(prog_array: Fd, counter: Fd, empty_calls: u32) -> Vec<Insn> {
    let mut insns = vec![
        Insn::mov64_reg(6, 1),
        Insn::st_mem(BPF_W, 10, -4, 0),
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(BPF_ADD, 2, -4),
    ];
    insns.extend(Insn::ld_map_fd(1, counter));
    insns.extend([
        Insn::call_helper(1),
        Insn::jmp_imm(crate::isa::BPF_JEQ, 0, 0, 2),
        Insn::mov64_imm(1, 1),
        Insn::atomic(BPF_DW, 0, 1, 0, BPF_ADD as i32),
    ]);
    for _ in 0..empty_calls {
        insns.push(Insn::mov64_reg(1, 6));
        insns.extend(tail_call_args(prog_array, 2));
        insns.push(Insn::call_helper(TAIL_CALL));
    }
    insns.push(Insn::mov64_reg(1, 6));
    insns.extend(tail_call_args(prog_array, 0));
    insns.push(Insn::call_helper(TAIL_CALL));
    insns.extend(returns(1));
    insns
}

/// The maps a verdict case may name.
#[derive(Debug, Clone, Copy)]
pub struct CaseMaps {
    /// A `PROG_ARRAY` of 4 slots.
    pub prog_array: Fd,
    /// An `ARRAY` (4-byte keys, 8-byte values, one entry).
    pub array: Fd,
}

/// An XDP program and the kernel's refusal of it (`None`: accepted).
pub struct VerdictCase {
    pub name: &'static str,
    pub insns: Vec<Insn>,
    pub refusal: Option<&'static str>,
}

/// Accepted and refused tail calls, every one probed on the kernel.
pub fn verdict_cases(maps: CaseMaps) -> Vec<VerdictCase> {
    let pa = maps.prog_array;
    let case = |name, insns, refusal| VerdictCase {
        name,
        insns,
        refusal,
    };
    let call = |before: &[Insn], index: u64, after: &[Insn]| {
        let mut insns = vec![Insn::mov64_reg(6, 1)];
        insns.extend_from_slice(before);
        insns.extend(tail_call_args(pa, index));
        insns.push(Insn::call_helper(TAIL_CALL));
        insns.extend_from_slice(after);
        insns
    };
    let exit0 = returns(0);
    // r7 = a packet pointer checked for 14 bytes (or `goto out` to r0 = 0; exit).
    let pkt = [
        Insn::ldx_mem(BPF_W, 2, 1, 0),
        Insn::ldx_mem(BPF_W, 3, 1, 4),
        Insn::mov64_reg(4, 2),
        Insn::alu64_imm(BPF_ADD, 4, 14),
        Insn::jmp_reg(BPF_JGT, 4, 3, 8),
        Insn::mov64_reg(7, 2),
        Insn::mov64_reg(1, 6),
    ];
    let mut kept = call(
        &pkt,
        0,
        &[Insn::ldx_mem(crate::isa::BPF_B, 0, 7, 0), Insn::exit()],
    );
    kept.extend(returns(0));
    let mut array_map = tail_call_args(maps.array, 0);
    array_map.push(Insn::call_helper(TAIL_CALL));
    array_map.extend(returns(0));
    let mut lookup = vec![Insn::st_mem(BPF_W, 10, -4, 0), Insn::mov64_reg(2, 10)];
    lookup.push(Insn::alu64_imm(BPF_ADD, 2, -4));
    lookup.extend(Insn::ld_map_fd(1, pa));
    lookup.push(Insn::call_helper(1));
    lookup.extend(returns(0));
    let mut unknown_index = vec![Insn::mov64_reg(6, 1), Insn::call_helper(7)];
    unknown_index.push(Insn::mov64_reg(3, 0));
    unknown_index.extend(Insn::ld_map_fd(2, pa));
    unknown_index.extend([Insn::mov64_reg(1, 6), Insn::call_helper(TAIL_CALL)]);
    unknown_index.extend(returns(0));
    let mut no_index = vec![Insn::mov64_reg(6, 1)];
    no_index.extend(Insn::ld_map_fd(2, pa));
    no_index.extend([Insn::call_helper(TAIL_CALL)]);
    no_index.extend(returns(0));
    // main: r6 = r1; call sub; r0 = 0; exit. sub: tail_call(r1, pa, 0); r0 = 0; exit.
    let mut in_subprog = vec![Insn::call_local(2), Insn::mov64_imm(0, 0), Insn::exit()];
    in_subprog.extend(tail_call_args(pa, 0));
    in_subprog.extend([Insn::call_helper(TAIL_CALL)]);
    in_subprog.extend(returns(0));
    vec![
        case(
            "tail call with a constant index",
            call(&[], 0, &exit0),
            None,
        ),
        case("tail call with an unknown index", unknown_index, None),
        case(
            "tail call with a 64-bit index",
            call(&[], 1 << 32 | 1, &exit0),
            None,
        ),
        case(
            "r0 is unreadable after a tail call falls through",
            call(&[], 0, &[Insn::exit()]),
            Some("R0 !read_ok"),
        ),
        case(
            "a packet pointer stays valid across a tail call in the main program",
            kept,
            None,
        ),
        case(
            "tail call through an ARRAY",
            array_map,
            Some("expected prog array map for tail call"),
        ),
        case(
            "tail call with a scalar for the context",
            call(&[Insn::mov64_imm(1, 0)], 0, &exit0),
            Some("R1 type=scalar expected=ctx"),
        ),
        case(
            "tail call with a moved context",
            call(&[Insn::alu64_imm(BPF_ADD, 1, 8)], 0, &exit0),
            Some("dereference of modified ctx ptr R1 off=8 disallowed"),
        ),
        case("tail call with no index", no_index, Some("R3 !read_ok")),
        case(
            "a PROG_ARRAY passed to bpf_map_lookup_elem",
            lookup,
            Some("cannot pass map_type 3 into func bpf_map_lookup_elem#1"),
        ),
        case(
            "tail call in a subprogram without BTF",
            in_subprog,
            Some("tail_call is not allowed in subprogs without BTF"),
        ),
    ]
}

/// A side the scenario runs on: the map syscalls, plus loading XDP and tc programs and running
/// them on a frame.
pub trait TailCallHost {
    fn sys(&mut self) -> &mut dyn BpfSys;
    /// `BPF_PROG_LOAD` of an XDP (`tc == false`) or `sched_cls` program: its fd, or the
    /// errno.
    fn load(&mut self, insns: &[Insn], tc: bool) -> Result<Fd, crate::errno::Errno>;
    /// `BPF_PROG_TEST_RUN` on `frame`: `r0`'s low 32 bits.
    fn test_run(&mut self, prog: Fd, frame: &[u8]) -> Result<u32, String>;
    /// The program's id.
    fn prog_id(&mut self, prog: Fd) -> Result<u32, String>;
    /// Closes a program fd.
    fn close_prog(&mut self, prog: Fd) -> Result<(), String>;
}

/// One step of [`scenario`] and what it gave, in words both sides share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub step: String,
    pub outcome: String,
}

/// The frame every test run gets: 64 zero bytes.
pub const FRAME: [u8; 64] = [0; 64];

fn errno_text(e: &crate::fault::Error) -> String {
    e.errno()
        .map_or_else(|| e.to_string(), |errno| errno.name().to_string())
}

fn outcome<T: std::fmt::Debug>(result: Result<T, crate::fault::Error>) -> String {
    match result {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => errno_text(&e),
    }
}

/// The scenario: a 4-slot `PROG_ARRAY`, program B (returns 42) in slot 1, caller A run with
/// indices in and out of range, the update and delete rules, lookups by id, the program type
/// that owns the array, a self tail call counted through a map, and B kept alive by the array
/// after its fd is closed. Setup failures end it with an observation saying where.
pub fn scenario(host: &mut dyn TailCallHost) -> Vec<Observation> {
    let mut out = Vec::new();
    let mut note = |step: &str, outcome: String| {
        out.push(Observation {
            step: step.to_string(),
            outcome,
        })
    };
    let pa = match host
        .sys()
        .map_create(&MapAttr::new(MapType::ProgArray, 4, 4, 4))
    {
        Ok(fd) => fd,
        Err(e) => {
            note("create the PROG_ARRAY", errno_text(&e));
            return out;
        }
    };
    let counter = host
        .sys()
        .map_create(&MapAttr::new(MapType::Array, 4, 8, 1));
    let loads = [
        ("load B (returns 42)", returns(42), false),
        ("load A (slot 1)", caller(pa, 1), false),
        ("load A (slot 0)", caller(pa, 0), false),
        ("load A (slot 9)", caller(pa, 9), false),
        ("load A (slot 2^32 + 1)", caller(pa, 1 << 32 | 1), false),
    ];
    let mut fds = Vec::new();
    for (step, insns, tc) in loads {
        match host.load(&insns, tc) {
            Ok(fd) => {
                note(step, "ok".into());
                fds.push(fd);
            }
            Err(e) => {
                note(step, e.name().into());
                return out;
            }
        }
    }
    let [b, a1, a0, a9, a_wide] = fds[..] else {
        return out;
    };
    let key = |k: u32| k.to_le_bytes();
    let fd_value = |fd: Fd| (fd as u32).to_le_bytes();
    let r = host
        .sys()
        .map_update_elem(pa, &key(1), &fd_value(b), BPF_ANY);
    note("store B in slot 1", outcome(r));
    for (step, prog) in [
        ("run A (slot 1)", a1),
        ("run A (slot 0, empty)", a0),
        ("run A (slot 9, past the end)", a9),
        ("run A (slot 2^32 + 1)", a_wide),
    ] {
        let r = host.test_run(prog, &FRAME);
        note(step, format!("{r:?}"));
    }
    let b_id = host.prog_id(b);
    let r = host.sys().map_lookup_elem(pa, &key(1)).map(|v| {
        let id = u32::from_le_bytes(v[..4].try_into().unwrap_or([0; 4]));
        if Ok(id) == b_id {
            "B's id".to_string()
        } else {
            format!("id {id}, not B's ({b_id:?})")
        }
    });
    note("look up slot 1", outcome(r));
    for (step, k) in [("look up slot 0 (empty)", 0), ("look up slot 9", 9)] {
        let r = host.sys().map_lookup_elem(pa, &key(k)).map(|v| v.len());
        note(step, outcome(r));
    }
    for (step, k, flags) in [
        ("store B with BPF_NOEXIST in an empty slot", 2, BPF_NOEXIST),
        ("store B with BPF_EXIST in a full slot", 1, BPF_EXIST),
        ("store B in slot 4 (= max_entries)", 4, BPF_ANY),
    ] {
        let r = host.sys().map_update_elem(pa, &key(k), &fd_value(b), flags);
        note(step, outcome(r));
    }
    if let Ok(counter) = counter {
        let r = host
            .sys()
            .map_update_elem(pa, &key(2), &fd_value(counter), BPF_ANY);
        note("store a map fd", outcome(r));
    }
    let r = host
        .sys()
        .map_update_elem(pa, &key(2), &fd_value(999), BPF_ANY);
    note("store an fd that is not open", outcome(r));
    for (step, k) in [
        ("delete slot 0 (empty)", 0),
        ("delete slot 9", 9),
        ("delete slot 1", 1),
        ("delete slot 1 again", 1),
    ] {
        let r = host.sys().map_delete_elem(pa, &key(k));
        note(step, outcome(r));
    }
    let r = host.test_run(a1, &FRAME);
    note("run A (slot 1, deleted)", format!("{r:?}"));
    // The owner: XDP since A was loaded against it.
    match host.load(&returns(0), true) {
        Ok(t) => {
            let r = host
                .sys()
                .map_update_elem(pa, &key(3), &fd_value(t), BPF_ANY);
            note("store a tc program in the XDP-owned array", outcome(r));
            let _ = host.close_prog(t);
        }
        Err(e) => note("load a tc program", e.name().into()),
    }
    let r = host.load(&caller(pa, 0), true);
    note(
        "load a tc caller of the XDP-owned array",
        match r {
            Ok(fd) => {
                let _ = host.close_prog(fd);
                "ok".into()
            }
            Err(e) => e.name().into(),
        },
    );
    // B lives on in the array after its fd is closed.
    let r = host
        .sys()
        .map_update_elem(pa, &key(1), &fd_value(b), BPF_ANY);
    note("store B in slot 1 again", outcome(r));
    let closed = host.close_prog(b);
    note("close B's fd", format!("{closed:?}"));
    let r = host.test_run(a1, &FRAME);
    note("run A (slot 1, B's fd closed)", format!("{r:?}"));
    // Counting: C tail-calls itself, first after 40 calls to an empty slot.
    let Ok(counter) = counter else {
        note("create the counter", "failed".into());
        return out;
    };
    for empty_calls in [0, 40] {
        let c = match host.load(&counting_self(pa, counter, empty_calls), false) {
            Ok(fd) => fd,
            Err(e) => {
                note("load C", e.name().into());
                return out;
            }
        };
        let _ = host
            .sys()
            .map_update_elem(counter, &key(0), &0u64.to_le_bytes(), BPF_ANY);
        let r = host
            .sys()
            .map_update_elem(pa, &key(0), &fd_value(c), BPF_ANY);
        note("store C in slot 0", outcome(r));
        let r = host.test_run(c, &FRAME);
        let runs = host
            .sys()
            .map_lookup_elem(counter, &key(0))
            .map(|v| u64::from_le_bytes(v[..8].try_into().unwrap_or([0; 8])));
        note(
            &format!("run C ({empty_calls} empty-slot calls first)"),
            format!("{r:?}, ran {}", outcome(runs)),
        );
        let _ = host.sys().map_delete_elem(pa, &key(0));
        let _ = host.close_prog(c);
    }
    for fd in [a1, a0, a9, a_wide] {
        let _ = host.close_prog(fd);
    }
    let _ = host.sys().close(counter);
    let _ = host.sys().close(pa);
    out
}

/// The world's side of [`scenario`]: programs loaded through the verifier into `process`'s
/// world, run by [`super::world::LoadedProg::test_run_packet`].
pub struct WorldHost<P: crate::sync::Platform> {
    pub process: crate::sys::Process<P>,
    loaded: std::collections::BTreeMap<Fd, super::world::LoadedProg>,
}

impl<P: crate::sync::Platform> WorldHost<P> {
    pub fn new(process: crate::sys::Process<P>) -> Self {
        WorldHost {
            process,
            loaded: std::collections::BTreeMap::new(),
        }
    }
}

impl<P: crate::sync::Platform> TailCallHost for WorldHost<P> {
    fn sys(&mut self) -> &mut dyn BpfSys {
        &mut self.process
    }
    fn load(&mut self, insns: &[Insn], tc: bool) -> Result<Fd, crate::errno::Errno> {
        let opts = super::VerifyOpts {
            prog_type: if tc {
                super::ProgType::SchedCls
            } else {
                super::ProgType::Xdp
            },
            privileged: true,
            ..super::VerifyOpts::default()
        };
        let loaded =
            super::world::prog_load(self.process.world(), insns, opts).map_err(|e| e.errno())?;
        let fd = loaded.installed.fd;
        self.loaded.insert(fd, loaded);
        Ok(fd)
    }
    fn test_run(&mut self, prog: Fd, frame: &[u8]) -> Result<u32, String> {
        let loaded = self.loaded.get(&prog).ok_or("no such program")?;
        loaded
            .test_run_packet(self.process.world(), frame)
            .map(|(r0, _)| r0 as u32)
            .map_err(|e| e.to_string())
    }
    fn prog_id(&mut self, prog: Fd) -> Result<u32, String> {
        let loaded = self.loaded.get(&prog).ok_or("no such program")?;
        Ok(loaded.installed.id)
    }
    fn close_prog(&mut self, prog: Fd) -> Result<(), String> {
        let loaded = self.loaded.remove(&prog).ok_or("no such program")?;
        loaded
            .unload(self.process.world())
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutants::Mutants;
    use crate::sync::{Platform, Std};
    use crate::sys::Process;
    use crate::world::WorldConfig;

    fn host() -> WorldHost<Std> {
        WorldHost::new(Process::create(Mutants::NONE, WorldConfig::default()))
    }

    /// A 4-slot `PROG_ARRAY` on `host`.
    fn prog_array(host: &mut WorldHost<Std>) -> Fd {
        host.sys()
            .map_create(&MapAttr::new(MapType::ProgArray, 4, 4, 4))
            .unwrap()
    }

    /// Stores program `prog` at `slot` of `array`.
    fn store(host: &mut WorldHost<Std>, array: Fd, slot: u32, prog: Fd) {
        host.sys()
            .map_update_elem(
                array,
                &slot.to_le_bytes(),
                &(prog as u32).to_le_bytes(),
                BPF_ANY,
            )
            .unwrap()
    }

    /// What the kernel answered to each step (6.18, probed), which the world must answer too.
    const KERNEL: &[(&str, &str)] = &[
        ("store B in slot 1", "ok ()"),
        ("run A (slot 1)", "Ok(42)"),
        ("run A (slot 0, empty)", "Ok(7)"),
        ("run A (slot 9, past the end)", "Ok(7)"),
        ("run A (slot 2^32 + 1)", "Ok(42)"),
        ("look up slot 1", "ok \"B's id\""),
        ("look up slot 0 (empty)", "ENOENT"),
        ("look up slot 9", "ENOENT"),
        ("store B with BPF_NOEXIST in an empty slot", "EINVAL"),
        ("store B with BPF_EXIST in a full slot", "EINVAL"),
        ("store B in slot 4 (= max_entries)", "E2BIG"),
        ("store a map fd", "EINVAL"),
        ("store an fd that is not open", "EBADF"),
        ("delete slot 0 (empty)", "ENOENT"),
        ("delete slot 9", "E2BIG"),
        ("delete slot 1", "ok ()"),
        ("delete slot 1 again", "ENOENT"),
        ("run A (slot 1, deleted)", "Ok(7)"),
        ("store a tc program in the XDP-owned array", "EINVAL"),
        ("load a tc caller of the XDP-owned array", "EINVAL"),
        ("store B in slot 1 again", "ok ()"),
        ("run A (slot 1, B's fd closed)", "Ok(42)"),
        ("run C (0 empty-slot calls first)", "Ok(1), ran ok 34"),
        ("run C (40 empty-slot calls first)", "Ok(1), ran ok 34"),
    ];

    #[test]
    fn the_tail_call_scenario_gives_what_the_kernel_gave() {
        let seen = scenario(&mut host());
        for (step, expected) in KERNEL {
            let got = seen.iter().find(|o| o.step == *step);
            assert_eq!(
                got.map(|o| o.outcome.as_str()),
                Some(*expected),
                "step {step:?}; the whole run: {seen:#?}"
            );
        }
    }

    #[test]
    fn every_verdict_case_gets_the_kernels_verdict() {
        let mut host = host();
        let prog_array = prog_array(&mut host);
        let array = host
            .sys()
            .map_create(&MapAttr::new(MapType::Array, 4, 8, 1))
            .unwrap();
        for case in verdict_cases(CaseMaps { prog_array, array }) {
            let opts = super::super::VerifyOpts {
                prog_type: super::super::ProgType::Xdp,
                privileged: true,
                ..Default::default()
            };
            let got = super::super::verify(&case.insns, &**host.process.world(), opts);
            match (case.refusal, got) {
                (None, Ok(_)) => {}
                (Some(msg), Err(r)) => assert_eq!(r.message, msg, "{}", case.name),
                (want, got) => panic!(
                    "{}: wanted {want:?}, got {:?}",
                    case.name,
                    got.map(|_| "accepted").map_err(|r| r.message)
                ),
            }
        }
    }

    #[test]
    fn an_array_whose_last_user_fd_closes_lets_go_of_its_programs() {
        let mut host = host();
        let pa = prog_array(&mut host);
        let b = host.load(&returns(42), false).unwrap();
        let a = host.load(&caller(pa, 1), false).unwrap();
        store(&mut host, pa, 1, b);
        host.close_prog(b).unwrap();
        assert_eq!(host.test_run(a, &FRAME), Ok(42), "the array keeps B");
        let world = host.process.world().clone();
        assert_eq!(world.live_progs().len(), 2);
        // A still holds the array (refcnt), but no fd does: the slots are emptied.
        host.sys().close(pa).unwrap();
        world.barrier().unwrap();
        assert_eq!(
            world.live_progs().len(),
            1,
            "B went with its last reference"
        );
        assert_eq!(host.test_run(a, &FRAME), Ok(FELL_THROUGH as u32));
    }

    #[test]
    fn a_program_replaced_under_a_reader_is_freed_only_after_the_grace_period() {
        let mut host = host();
        let pa = prog_array(&mut host);
        let b = host.load(&returns(42), false).unwrap();
        let b2 = host.load(&returns(43), false).unwrap();
        store(&mut host, pa, 0, b);
        host.close_prog(b).unwrap();
        let world = host.process.world().clone();
        // A reader (another task) is inside its section when B leaves the slot.
        Std::set_current_task(1);
        world.rcu_read_lock(crate::rcu::Flavor::Rcu).unwrap();
        Std::set_current_task(0);
        store(&mut host, pa, 0, b2);
        world.poll().unwrap();
        assert_eq!(world.live_progs().len(), 2, "B waits for the reader");
        Std::set_current_task(1);
        world.rcu_read_unlock(crate::rcu::Flavor::Rcu).unwrap();
        Std::set_current_task(0);
        world.poll().unwrap();
        assert_eq!(
            world.live_progs().len(),
            1,
            "B is freed after the grace period"
        );
    }
}

#[cfg(test)]
mod freed_while_running {
    use super::*;
    use crate::bpf::exec::{EnvResult, MapEnv, NoObserver, Program, TailTarget, Vm};
    use crate::bpf::world_env::WorldEnv;
    use crate::fault::Fault;
    use crate::ptr::Ptr;
    use crate::sync::Std;
    use crate::world::World;

    /// The world's environment, except that a tail call's target is freed the moment the
    /// slot has been read: what a put without its grace period would allow.
    struct FreeOnTailCall<'w> {
        inner: WorldEnv<'w, Std>,
        world: &'w World<Std>,
        victim: crate::arena::Handle,
    }

    impl MapEnv for FreeOnTailCall<'_> {
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
            self.inner.map_lookup(map, key)
        }
        fn map_update(&mut self, map: Ptr, key: &[u8], v: &[u8], flags: u64) -> EnvResult<i64> {
            self.inner.map_update(map, key, v, flags)
        }
        fn map_delete(&mut self, map: Ptr, key: &[u8]) -> EnvResult<i64> {
            self.inner.map_delete(map, key)
        }
        fn load(&mut self, ptr: Ptr, size: u8) -> EnvResult<u64> {
            self.inner.load(ptr, size)
        }
        fn store(&mut self, ptr: Ptr, size: u8, value: u64) -> EnvResult<()> {
            self.inner.store(ptr, size, value)
        }
        fn tail_call(&mut self, map: Ptr, index: u32) -> EnvResult<TailTarget> {
            let target = self.inner.tail_call(map, index)?;
            self.world
                .free_prog(self.victim)
                .expect("the victim is live");
            Ok(target)
        }
        fn check_running(&mut self, token: u64) -> EnvResult<()> {
            self.inner.check_running(token)
        }
    }

    #[test]
    fn a_program_freed_while_a_tail_call_runs_it_is_a_use_after_free() {
        let mut host = WorldHost::new(crate::sys::Process::<Std>::create(
            crate::mutants::Mutants::NONE,
            crate::world::WorldConfig::default(),
        ));
        let pa = host
            .sys()
            .map_create(&MapAttr::new(MapType::ProgArray, 4, 4, 4))
            .unwrap();
        // B: a helper call, then 42.
        let mut b_insns = vec![Insn::call_helper(7)];
        b_insns.extend(returns(42));
        let b = host.load(&b_insns, false).unwrap();
        let a = host.load(&caller(pa, 0), false).unwrap();
        let victim = host.loaded[&b].installed.handle;
        host.sys()
            .map_update_elem(pa, &0u32.to_le_bytes(), &(b as u32).to_le_bytes(), BPF_ANY)
            .unwrap();
        let world = host.process.world().clone();
        let program = Program::new(&host.loaded[&a].fixed.insns).unwrap();
        let (mut packet, mut ctx) =
            crate::bpf::skb::on_frame(false, &FRAME, crate::bpf::xdp::RxInfo::default());
        let mut env = FreeOnTailCall {
            inner: WorldEnv::new(&world),
            world: &world,
            victim,
        };
        let run =
            Vm::default().run_packet(&program, &mut ctx, &mut packet, &mut env, &mut NoObserver);
        let err = run.expect_err("B's code was freed under it");
        assert!(
            matches!(err.fault(), Some(Fault::UseAfterFree { object, .. }) if object.contains("prog")),
            "{err}"
        );
    }
}
