//! Programs on the real kernel: seed 004's program loads, its xlated form has the seed's shape
//! (outer lookup inlined, inner `BPF_F_INNER_MAP` lookup a direct call), and
//! `BPF_PROG_TEST_RUN` returns what the inner array holds. Each test skips with one line when
//! bpf() is refused, and closes every fd it opened.
#![cfg(feature = "kernel")]

use mimic_core::uapi::{BpfSys, BPF_ANY};
use mimic_sim::kernel::insn::{self, Insn};
use mimic_sim::kernel::{seed004, KernelError, KernelSys, BPF_PROG_TYPE_SOCKET_FILTER, ETH_HLEN};

/// A zeroed Ethernet-sized packet: socket filters under test run need at least ETH_HLEN bytes.
const PACKET: [u8; 64] = [0; 64];
const _: () = assert!(PACKET.len() >= ETH_HLEN);
/// The verifier's refusal errno (not in the model's table).
const EACCES: i32 = 13;

/// The seed's maps and program loaded as a socket filter: (outer, template, prog).
fn load_seed(sys: &mut KernelSys) -> (i32, i32, i32) {
    let template = sys
        .map_create(&seed004::template_attr())
        .expect("create the BPF_F_INNER_MAP template");
    let outer = sys
        .map_create(&seed004::outer_attr(template))
        .expect("create outer_arr_dyn");
    let insns = seed004::program(outer);
    let prog = match sys.prog_load(BPF_PROG_TYPE_SOCKET_FILTER, &insns, 0, 0) {
        Ok((prog, _log)) => prog,
        Err(failure) => panic!(
            "seed 004 program refused: {}\n{}\n{}",
            failure.error,
            failure.log,
            insn::dump(&insns)
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
    println!("seed 004 xlated on this kernel:\n{}", insn::dump(&xlated));
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
    let Some(mut sys) = KernelSys::or_skip("kernel timing") else {
        return;
    };
    let (outer, template, prog) = load_seed(&mut sys);
    // Not a timed test: only that the kernel measured something for a repeated run.
    let run = sys
        .test_run(prog, &PACKET, &[], 1000)
        .expect("repeated test run");
    assert_eq!(
        run.retval,
        u32::MAX,
        "empty outer[0] gives -1 on every repetition"
    );
    for fd in [prog, outer, template] {
        sys.close(fd).expect("close");
    }
}

#[test]
fn verifier_log_comes_back_with_a_refused_program() {
    let Some(mut sys) = KernelSys::or_skip("verifier log") else {
        return;
    };
    // `exit` with r0 never written: every verifier refuses it ("R0 !read_ok") with EACCES,
    // an errno outside the model's table, reported as such.
    let insns = insn::encode_all(&[Insn::new(insn::EXIT, 0, 0, 0, 0)]);
    let failure = sys
        .prog_load(BPF_PROG_TYPE_SOCKET_FILTER, &insns, 0, 0)
        .expect_err("exit with r0 unset must be refused");
    assert!(
        matches!(failure.error, KernelError::Unmodelled { value: EACCES, .. }),
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
