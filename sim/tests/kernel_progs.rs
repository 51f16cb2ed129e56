//! Programs on the real kernel: seed 004's program loads, its xlated form has the seed's shape
//! (outer lookup inlined, inner `BPF_F_INNER_MAP` lookup a direct call), and
//! `BPF_PROG_TEST_RUN` returns what the inner array holds. Each test skips with one line when
//! bpf() is refused, and closes every fd it opened.
#![cfg(feature = "kernel")]

use mimic_core::errno::Errno;
use mimic_core::isa::*;
use mimic_core::uapi::{BpfSys, MapAttr, MapType, BPF_ANY};
use mimic_sim::kernel::{
    dump, seed004, KernelError, KernelSys, BPF_F_SLEEPABLE, BPF_PROG_TYPE_SOCKET_FILTER,
    BPF_PROG_TYPE_SYSCALL, ETH_HLEN,
};

/// Helper ids of `bpf_map_lookup_elem` and `bpf_map_update_elem`.
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
const BPF_FUNC_MAP_UPDATE_ELEM: i32 = 2;

/// A zeroed Ethernet-sized packet: socket filters under test run need at least ETH_HLEN bytes.
const PACKET: [u8; 64] = [0; 64];
const _: () = assert!(PACKET.len() >= ETH_HLEN);

/// The seed's maps and program loaded as a socket filter: (outer, template, prog).
fn load_seed(sys: &mut KernelSys) -> (i32, i32, i32) {
    let template = sys
        .map_create(&seed004::template_attr())
        .expect("create the BPF_F_INNER_MAP template");
    let outer = sys
        .map_create(&seed004::outer_attr(template))
        .expect("create outer_arr_dyn");
    let insns = seed004::program(outer).expect("the shipped seed program assembles");
    let prog = match sys.prog_load(BPF_PROG_TYPE_SOCKET_FILTER, &insns, 0, 0) {
        Ok((prog, _log)) => prog,
        Err(failure) => panic!(
            "seed 004 program refused: {}\n{}\n{}",
            failure.error,
            failure.log,
            dump(&insns)
        ),
    };
    (outer, template, prog)
}

fn key(index: u32) -> Vec<u8> {
    index.to_ne_bytes().to_vec()
}

#[test]
fn seed004_xlated_inlines_outer_lookup_and_calls_inner_array_lookup() {
    let Some(mut sys) = KernelSys::or_skip("seed004 xlated shape") else {
        return;
    };
    let (outer, template, prog) = load_seed(&mut sys);
    let outer_id = sys.map_info(outer).expect("outer map info").id;
    let xlated = sys.xlated(prog).expect("xlated program");
    println!("seed 004 xlated on this kernel:\n{}", dump(&xlated));
    let measured =
        seed004::check_xlated(&xlated, outer_id).unwrap_or_else(|problems| panic!("{problems}"));
    println!(
        "kernel value offset (r1 += N after the outer map load): {}; inner call imm {}",
        measured.value_offset, measured.inner_call_imm
    );
    assert!(
        measured.value_offset > 0,
        "the array's value offset must be positive, got {}",
        measured.value_offset
    );
    for fd in [prog, outer, template] {
        sys.close(fd).expect("close");
    }
    assert_eq!(sys.open_fds(), 0, "every fd closed");
}

#[test]
fn seed004_test_run_returns_the_inner_value_or_minus_one() {
    let Some(mut sys) = KernelSys::or_skip("seed004 test run") else {
        return;
    };
    let (outer, template, prog) = load_seed(&mut sys);
    // Empty outer slot: the program returns -1.
    let run = sys
        .test_run(prog, &PACKET, &[], 1)
        .expect("test run, empty slot");
    assert_eq!(run.retval, u32::MAX, "empty outer[0] must give -1");

    // An inner array of 3 (bigger than the template's 1, allowed by BPF_F_INNER_MAP).
    let first = sys.map_create(&seed004::inner_attr(3)).expect("inner of 3");
    sys.map_update_elem(first, &key(0), &0xdead_beef_u32.to_ne_bytes(), BPF_ANY)
        .expect("inner[0] = 0xdeadbeef");
    sys.map_update_elem(outer, &key(0), &first.to_ne_bytes(), BPF_ANY)
        .expect("outer[0] = inner of 3");
    let run = sys
        .test_run(prog, &PACKET, &[], 1)
        .expect("test run, inner of 3");
    assert_eq!(run.retval, 0xdead_beef, "the program must return inner[0]");

    // Swap in an inner array of 5 holding another value: the next run sees it.
    let second = sys.map_create(&seed004::inner_attr(5)).expect("inner of 5");
    sys.map_update_elem(second, &key(0), &7u32.to_ne_bytes(), BPF_ANY)
        .expect("inner[0] = 7");
    sys.map_update_elem(outer, &key(0), &second.to_ne_bytes(), BPF_ANY)
        .expect("outer[0] = inner of 5");
    let run = sys
        .test_run(prog, &PACKET, &[], 1)
        .expect("test run, inner of 5");
    assert_eq!(
        run.retval, 7,
        "after the swap the program must return the new inner[0]"
    );

    for fd in [prog, outer, template, first, second] {
        sys.close(fd).expect("close");
    }
    assert_eq!(sys.open_fds(), 0, "every fd closed");
}

#[test]
fn kernel_ns_per_run_is_reported_for_repeated_runs() {
    /// Enough runs for the kernel's mean to be meaningful, few enough to stay quick.
    const REPEAT: u32 = 100_000;
    let Some(mut sys) = KernelSys::or_skip("kernel timing") else {
        return;
    };
    let (outer, template, prog) = load_seed(&mut sys);
    // Not a timed test: the figure is printed for benches, only its presence is checked.
    let run = sys
        .test_run(prog, &PACKET, &[], REPEAT)
        .expect("repeated test run");
    assert_eq!(run.retval, u32::MAX, "empty outer[0] gives -1 on every run");
    let ns = sys
        .ns_per_run(prog, &PACKET, &[], REPEAT)
        .expect("ns per run");
    println!("seed 004 (socket filter, empty outer slot): {ns} ns/run over {REPEAT} kernel runs");
    for fd in [prog, outer, template] {
        sys.close(fd).expect("close");
    }
}

#[test]
fn verifier_log_comes_back_with_a_refused_program() {
    let Some(mut sys) = KernelSys::or_skip("verifier log") else {
        return;
    };
    // `exit` with r0 never written: every verifier refuses it ("R0 !read_ok") with EACCES.
    let insns = [Insn::exit()];
    let failure = sys
        .prog_load(BPF_PROG_TYPE_SOCKET_FILTER, &insns, 0, 0)
        .expect_err("exit with r0 unset must be refused");
    assert!(
        matches!(failure.error, KernelError::Errno(Errno::EACCES)),
        "want EACCES, got {}",
        failure.error
    );
    assert!(
        failure.log.contains("R0"),
        "the log names R0: {}",
        failure.log
    );
    assert_eq!(sys.open_fds(), 0, "a refused program leaves no fd");
}

/// `w1 = 0; *(u32 *)(r10 -4) = r1; r2 = r10; r2 += -4`: a zero key on the stack, r2 = &key.
fn key_on_stack() -> Vec<Insn> {
    vec![
        Insn::mov32_imm(1, 0),
        Insn::stx_mem(BPF_W, 10, 1, -4),
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(BPF_ADD, 2, -4),
    ]
}

fn lookup(map_fd: i32) -> Vec<Insn> {
    let mut insns = Insn::ld_map_fd(1, map_fd).to_vec();
    insns.push(Insn::call_helper(BPF_FUNC_MAP_LOOKUP_ELEM));
    insns
}

/// `r0 = 0; exit`.
fn return_zero() -> [Insn; 2] {
    [Insn::mov64_imm(0, 0), Insn::exit()]
}

#[test]
fn verifier_refuses_map_in_map_misuse_with_the_messages_of_semantics_section_5() {
    let Some(mut sys) = KernelSys::or_skip("verifier map-in-map messages") else {
        return;
    };
    // The one message kernel builds word differently comes from the build's profile.
    let profile = mimic_sim::kernel::profile::probed(&mut sys);
    let unchecked_message = format!(
        "R1 type={} expected=map_ptr",
        profile.outer_lookup_or_null()
    );
    let template = sys.map_create(&seed004::template_attr()).expect("template");
    let outer = sys
        .map_create(&seed004::outer_attr(template))
        .expect("outer array of maps");
    let hash_outer = sys
        .map_create(&MapAttr::new(MapType::HashOfMaps, 4, 4, 3).inner(template))
        .expect("outer hash of maps");

    // bpf_map_update_elem(hash_of_maps, &key, &key, 0): only lookups are allowed on outer maps.
    let mut update = key_on_stack();
    update.extend([Insn::mov64_reg(3, 10), Insn::alu64_imm(BPF_ADD, 3, -4)]);
    update.extend(Insn::ld_map_fd(1, hash_outer));
    update.extend([
        Insn::mov64_imm(4, 0),
        Insn::call_helper(BPF_FUNC_MAP_UPDATE_ELEM),
    ]);
    update.extend(return_zero());

    // The outer lookup's result passed as a map without a null check.
    let mut unchecked = key_on_stack();
    unchecked.extend(lookup(outer));
    unchecked.extend([
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(BPF_ADD, 2, -4),
        Insn::mov64_reg(1, 0),
        Insn::call_helper(BPF_FUNC_MAP_LOOKUP_ELEM),
    ]);
    unchecked.extend(return_zero());

    // `r1 += 8` on the (checked) inner map pointer.
    let mut arithmetic = key_on_stack();
    arithmetic.extend(lookup(outer));
    arithmetic.extend([
        Insn::jmp_imm(BPF_JEQ, 0, 0, 5), // if r0 == 0 goto the return
        Insn::mov64_reg(2, 10),
        Insn::alu64_imm(BPF_ADD, 2, -4),
        Insn::mov64_reg(1, 0),
        Insn::alu64_imm(BPF_ADD, 1, 8),
        Insn::call_helper(BPF_FUNC_MAP_LOOKUP_ELEM),
    ]);
    arithmetic.extend(return_zero());

    // A store through the inner map pointer.
    let mut write = key_on_stack();
    write.extend(lookup(outer));
    write.extend([
        Insn::jmp_imm(BPF_JEQ, 0, 0, 1), // if r0 == 0 goto the return
        Insn::st_mem(BPF_W, 0, 0, 0),    // *(u32 *)(r0 +0) = 0
    ]);
    write.extend(return_zero());

    let cases: [(&str, &[Insn], &str); 4] = [
        (
            "update on an outer map",
            &update,
            "cannot pass map_type 13 into func bpf_map_update_elem#2",
        ),
        (
            "unchecked outer lookup used as a map",
            &unchecked,
            &unchecked_message,
        ),
        (
            "arithmetic on the inner map pointer",
            &arithmetic,
            "R1 pointer arithmetic on map_ptr prohibited",
        ),
        (
            "write through the inner map pointer",
            &write,
            "only read from bpf_array is supported",
        ),
    ];
    let mut problems = Vec::new();
    for (what, program, message) in cases {
        match sys.prog_load(BPF_PROG_TYPE_SOCKET_FILTER, program, 0, 0) {
            Ok((prog, _)) => {
                sys.close(prog).expect("close");
                problems.push(format!("{what}: accepted, semantics.md §5 says refused"));
            }
            Err(failure) if !failure.log.contains(message) => problems.push(format!(
                "{what}: refused ({}) without {message:?}; log:\n{}",
                failure.error, failure.log
            )),
            Err(_) => {}
        }
    }
    for fd in [hash_outer, outer, template] {
        sys.close(fd).expect("close");
    }
    assert_eq!(sys.open_fds(), 0, "every fd closed");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Polls until `id` no longer resolves; false if it still does after the bound. Map frees run
/// from a worker (after a grace period for deferred puts), so release is asynchronous.
fn released(sys: &mut KernelSys, id: u32) -> bool {
    const POLLS: u32 = 500;
    const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);
    for _ in 0..POLLS {
        match sys.map_get_fd_by_id(id) {
            Err(_) => return true,
            Ok(fd) => sys.close(fd).expect("close the probe fd"),
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    false
}

#[test]
fn a_loaded_program_holds_the_outer_map_but_never_the_inner_maps() {
    let Some(mut sys) = KernelSys::or_skip("program map references") else {
        return;
    };
    let (outer, template, prog) = load_seed(&mut sys);
    let inner = sys.map_create(&seed004::inner_attr(3)).expect("inner");
    sys.map_update_elem(outer, &key(0), &inner.to_ne_bytes(), BPF_ANY)
        .expect("store inner");
    let outer_id = sys.map_info(outer).expect("outer info").id;
    let inner_id = sys.map_info(inner).expect("inner info").id;

    // No fd left on either map: the program's used_maps keeps the outer alive...
    for fd in [outer, template, inner] {
        sys.close(fd).expect("close");
    }
    let reopened = sys
        .map_get_fd_by_id(outer_id)
        .expect("the program holds the outer map");
    // ...and the outer map keeps the inner; emptying its slot drops the inner's last reference
    // although the program is still loaded.
    sys.map_delete_elem(reopened, &key(0))
        .expect("empty outer[0]");
    sys.close(reopened).expect("close");
    assert!(
        released(&mut sys, inner_id),
        "inner map {inner_id} outlived its slot: the program must not hold inner maps"
    );
    assert!(
        sys.map_get_fd_by_id(outer_id)
            .map(|fd| sys.close(fd))
            .is_ok(),
        "the outer map is still held by the program"
    );
    sys.close(prog).expect("close prog");
    assert!(
        released(&mut sys, outer_id),
        "outer map {outer_id} outlived the program"
    );
    assert_eq!(sys.open_fds(), 0, "every fd closed");
}

#[test]
fn seed004_as_a_sleepable_syscall_program_has_the_same_xlated_shape_and_result() {
    // The alternative to socket filters: BPF_PROG_TYPE_SYSCALL must be loaded sleepable
    // (otherwise EINVAL) and test-runs with a context only, repeat 0 and no timing.
    let Some(mut sys) = KernelSys::or_skip("seed004 as a syscall program") else {
        return;
    };
    let template = sys.map_create(&seed004::template_attr()).expect("template");
    let outer = sys
        .map_create(&seed004::outer_attr(template))
        .expect("outer");
    let insns = seed004::program(outer).expect("the shipped seed program assembles");
    let refused = sys.prog_load(BPF_PROG_TYPE_SYSCALL, &insns, 0, 0);
    assert!(
        matches!(&refused, Err(failure) if failure.error.errno() == Some(Errno::EINVAL)),
        "a non-sleepable syscall program is refused with EINVAL"
    );
    let (prog, _) = sys
        .prog_load(BPF_PROG_TYPE_SYSCALL, &insns, 0, BPF_F_SLEEPABLE)
        .unwrap_or_else(|failure| panic!("sleepable syscall program refused: {}", failure.log));
    let outer_id = sys.map_info(outer).expect("outer info").id;
    let xlated = sys.xlated(prog).expect("xlated");
    seed004::check_xlated(&xlated, outer_id).unwrap_or_else(|problems| panic!("{problems}"));

    let inner = sys.map_create(&seed004::inner_attr(3)).expect("inner");
    sys.map_update_elem(inner, &key(0), &11u32.to_ne_bytes(), BPF_ANY)
        .expect("inner[0] = 11");
    sys.map_update_elem(outer, &key(0), &inner.to_ne_bytes(), BPF_ANY)
        .expect("outer[0] = inner");
    /// A context the program never reads; the kernel copies it back after the run.
    const CTX: [u8; 8] = [0; 8];
    let run = sys.test_run(prog, &[], &CTX, 0).expect("syscall test run");
    assert_eq!(run.retval, 11, "the program returns inner[0]");
    assert_eq!(
        run.ctx_after, CTX,
        "the untouched context comes back unchanged"
    );
    for fd in [prog, inner, outer, template] {
        sys.close(fd).expect("close");
    }
    assert_eq!(sys.open_fds(), 0, "every fd closed");
}

#[test]
fn map_operations_on_a_program_fd_are_refused_by_the_kernel() {
    let Some(mut sys) = KernelSys::or_skip("map ops on a program fd") else {
        return;
    };
    let (outer, template, prog) = load_seed(&mut sys);
    let lookup = sys.map_lookup_elem(prog, &key(0)).map_err(|e| e.errno());
    assert_eq!(lookup, Err(Some(Errno::EINVAL)), "a program is not a map");
    let update = sys
        .map_update_elem(prog, &key(0), &key(0), BPF_ANY)
        .map_err(|e| e.errno());
    assert_eq!(update, Err(Some(Errno::EINVAL)), "a program is not a map");
    for fd in [prog, outer, template] {
        sys.close(fd).expect("close");
    }
}
