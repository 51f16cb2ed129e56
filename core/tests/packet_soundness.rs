//! Direct packet access, verifier against executor: seeded XDP programs whose bounds checks
//! are right, off by one, on the wrong edge or missing (every comparison form, both operand
//! orders), with accesses of every size at offsets around the checked range, unknown offsets
//! added and checked again, and `bpf_xdp_adjust_head` moving the packet under held pointers.
//! Every program the verifier accepts runs on packets of many lengths, and every access is
//! checked by the executor against `data_meta..data_end` exactly: an accepted program that
//! touches a byte outside the packet is the verifier letting an unsafe access through.

use mimic_core::bpf::asm::assemble;
use mimic_core::bpf::exec::ExecErrorKind;
use mimic_core::bpf::verifier::world::{prog_load, TestRunError};
use mimic_core::bpf::verifier::{verify, MapTable, ProgType, VerifyOpts};
use mimic_core::mutants::Mutants;
use mimic_core::sync::Std;
use mimic_core::sys::Process;
use mimic_core::world::WorldConfig;

/// Programs per run of the test.
const PROGRAMS: u64 = 20_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn signed(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
}

/// A program in mimic's assembly: `r9` keeps the context, `r2`/`r3` are data/data_end
/// (reloaded after `bpf_xdp_adjust_head`), `r5` a second packet pointer that unknown offsets
/// move; every edge that leaves the program goes to `out`.
fn program(rng: &mut Rng) -> String {
    let mut s = String::from(
        "mov %r9, %r1\nldxw %r2, [%r9+0]\nldxw %r3, [%r9+4]\nmov %r5, %r2\nmov %r7, 0\n",
    );
    let reload = "ldxw %r2, [%r9+0]\nldxw %r3, [%r9+4]\n";
    for _ in 0..1 + rng.below(6) {
        match rng.below(10) {
            // A bounds check of `base + off` against data_end: one of the four unsigned
            // comparisons, either operand order, either edge going on.
            0..=3 => {
                let base = if rng.below(3) == 0 { 5 } else { 2 };
                let off = rng.below(40);
                let cond = ["jgt", "jge", "jlt", "jle"][rng.below(4) as usize];
                let (a, b) = if rng.below(2) == 0 {
                    ("%r4", "%r3")
                } else {
                    ("%r3", "%r4")
                };
                let width = if rng.below(12) == 0 { "32" } else { "" };
                s += &format!("mov %r4, %r{base}\nadd %r4, {off}\n");
                if rng.below(2) == 0 {
                    s += &format!("{cond}{width} {a}, {b}, out\n");
                } else {
                    // The jump skips the exit, so the taken edge goes on.
                    s += &format!("{cond}{width} {a}, {b}, +2\nmov %r0, 1\nexit\n");
                }
            }
            // An access of any size near the checked range, read or write.
            4..=6 => {
                let base = if rng.below(3) == 0 { 5 } else { 2 };
                let off = rng.signed(-2, 40);
                let size = ["b", "h", "w", "dw"][rng.below(4) as usize];
                if rng.below(2) == 0 {
                    s += &format!("ldx{size} %r6, [%r{base}{off:+}]\nadd %r7, %r6\n");
                } else {
                    s += &format!("st{size} [%r{base}{off:+}], 7\n");
                }
            }
            // An unknown offset (the bytes read so far, masked) moves the second pointer.
            7 | 8 => {
                let mask = [3, 7, 15, 63, 255][rng.below(5) as usize];
                s += &format!("mov %r6, %r7\nand %r6, {mask}\nmov %r5, %r2\nadd %r5, %r6\n");
            }
            // The packet moves: pointers held across the call are gone, data/data_end are
            // read again (or, sometimes, not).
            _ => {
                let delta = rng.signed(-24, 24);
                s += &format!("mov %r1, %r9\nmov %r2, {delta}\ncall 44\n");
                if rng.below(4) != 0 {
                    s += reload;
                    s += "mov %r5, %r2\n";
                }
            }
        }
    }
    s += "mov %r0, %r7\nexit\nout:\nmov %r0, 2\nexit\n";
    s
}

#[test]
fn no_packet_access_the_verifier_accepts_leaves_the_packet() {
    let opts = VerifyOpts {
        prog_type: ProgType::Xdp,
        privileged: true,
        ..VerifyOpts::default()
    };
    let sys = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
    let world = sys.world();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut refused, mut runs) = (0, 0, 0);
    for n in 0..PROGRAMS {
        let text = program(&mut rng);
        let insns = assemble(&text).unwrap_or_else(|e| panic!("program {n}: {e}\n{text}"));
        if verify(&insns, &MapTable(vec![]), opts).is_err() {
            refused += 1;
            continue;
        }
        accepted += 1;
        let loaded = prog_load(world, &insns, opts).expect("an accepted program loads");
        for len in [14, 15, 21, 34, 40, 41, 47, 60, 64] {
            let packet: Vec<u8> = (0..len).map(|b| (b as u8).wrapping_mul(29)).collect();
            match loaded.test_run_packet(world, &packet) {
                Ok(_) => runs += 1,
                Err(TestRunError::Exec(e)) => {
                    let outside = matches!(
                        e.kind,
                        ExecErrorKind::OutsidePacket { .. } | ExecErrorKind::OutOfBounds { .. }
                    );
                    panic!(
                        "program {n} accepted, then on a {len}-byte packet: {e}{}\n{text}",
                        if outside {
                            " (an access the verifier allowed)"
                        } else {
                            ""
                        }
                    )
                }
                Err(e) => panic!("program {n}, {len}-byte packet: {e}\n{text}"),
            }
        }
        loaded.unload(world).expect("unloads");
    }
    println!("{PROGRAMS} programs: {accepted} accepted ({runs} runs), {refused} refused");
    // The generator reaches both sides of the verifier, often.
    assert!(accepted > PROGRAMS / 10, "only {accepted} accepted");
    assert!(refused > PROGRAMS / 10, "only {refused} refused");
}
