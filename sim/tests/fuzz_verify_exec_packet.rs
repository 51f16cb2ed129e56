//! `verify_exec`'s packet programs under plain `cargo test`: 20,000 inputs from a seed, each
//! decoded and checked exactly as the fuzz target does (`verify_exec::check_with`, mode byte
//! `P` for XDP, `T` for tc). Every program the verifier accepts runs on three packet lengths under the
//! state-embedding oracle, every access checked against `data_meta..data_end`; a panic names the
//! program and the packet. The generator must reach both verdicts often, or the property would
//! pass by never running anything.

use mimic_core::mutants::Mutants;
use mimic_sim::fuzz::verify_exec::packet::{self, Hook, Verdict};

const INPUTS: u64 = 20_000;

/// Input bytes from a xorshift stream (the same on every machine).
fn input(state: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            (*state >> 24) as u8
        })
        .collect()
}

#[test]
fn no_packet_access_the_verifier_accepts_leaves_the_packet() {
    inputs_on(Hook::Xdp);
}

#[test]
fn no_packet_access_a_tc_program_is_allowed_leaves_the_packet() {
    inputs_on(Hook::Tc);
}

/// [`INPUTS`] seeded inputs through the target's entry point with `hook`'s mode byte.
fn inputs_on(hook: Hook) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let (mut accepted, mut refused, mut runs) = (0u64, 0u64, 0usize);
    for n in 0..INPUTS {
        let len = 4 + (n % 28) as usize;
        let rest = input(&mut state, len);
        let Some(case) = packet::decode(&rest) else {
            continue;
        };
        let mut data = vec![hook.mode()];
        data.extend_from_slice(&rest);
        // The target's own entry point, so this test judges as the fuzz binary does.
        mimic_sim::fuzz::verify_exec::check_with(&data, Mutants::NONE);
        match packet::check_packet(&case, hook, Mutants::NONE) {
            Verdict::Refused => refused += 1,
            Verdict::Ran(n) => {
                accepted += 1;
                runs += n;
            }
        }
    }
    println!(
        "{} {INPUTS} inputs: {accepted} accepted ({runs} packet runs), {refused} refused",
        hook.name()
    );
    assert!(accepted > INPUTS / 10, "only {accepted} accepted");
    assert!(refused > INPUTS / 10, "only {refused} refused");
    assert!(
        runs as u64 > accepted * 2,
        "only {runs} runs of {accepted} programs"
    );
}

#[test]
fn a_packet_input_replays_with_its_program_and_verdict() {
    // Two checks of 14 bytes, the first one byte short, then a 2-byte read at 12: refused.
    let case = packet::PacketCase {
        pieces: vec![
            packet::PacketPiece::Check {
                base: packet::Base::Data,
                off: 13,
                cond: packet::Cond::Gt,
                swapped: false,
                narrow: 1,
                exit_taken: true,
            },
            packet::PacketPiece::Access {
                base: packet::Base::Data,
                off: 14,
                width: packet::Width::H,
                write: false,
            },
        ],
        lengths: [0, 10, 50],
    };
    let text = packet::source(&case, Hook::Xdp);
    assert!(text.contains("add %r4, 13\njgt %r4, %r3, out"), "{text}");
    assert!(text.contains("ldxh %r6, [%r2+12]"), "{text}");
    assert_eq!(
        packet::check_packet(&case, Hook::Xdp, Mutants::NONE),
        Verdict::Refused
    );
    // The same pieces from tc read the bounds through `__sk_buff`, with the same verdict.
    let tc = packet::source(&case, Hook::Tc);
    assert!(
        tc.contains("ldxw %r2, [%r9+76]\nldxw %r3, [%r9+80]"),
        "{tc}"
    );
    assert_eq!(
        packet::check_packet(&case, Hook::Tc, Mutants::NONE),
        Verdict::Refused
    );
    // Checked for 14 bytes, the same read is accepted and runs on all three packets.
    let mut good = case.clone();
    if let packet::PacketPiece::Check { off, .. } = &mut good.pieces[0] {
        *off = 14;
    }
    assert_eq!(
        packet::check_packet(&good, Hook::Xdp, Mutants::NONE),
        Verdict::Ran(3)
    );
    // A tc test run of a bare Ethernet header is refused, but mimic's executor runs the
    // program on it like any other frame.
    assert_eq!(
        packet::check_packet(&good, Hook::Tc, Mutants::NONE),
        Verdict::Ran(3)
    );
}
