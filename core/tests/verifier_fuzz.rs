//! Any input gets a verdict or a clear error, never a panic: random instruction words, and
//! random programs made of plausible instructions (so paths get past the decoder).

mod verifier_common;

use mimic_core::bpf::fixup::fixup;
use mimic_core::bpf::verifier::{verify, VerifyOpts};
use mimic_core::isa::Insn;
use mimic_core::mutants::Mutants;
use proptest::prelude::*;

fn plausible_insn() -> impl Strategy<Value = Insn> {
    let codes = prop::sample::select(vec![
        0x07u8, 0x0f, 0xb7, 0xbf, 0xb4, 0xbc, 0x17, 0x1f, 0x27, 0x57, 0x5f, 0x67, 0x77, 0xc7, 0x87,
        0x04, 0x61, 0x69, 0x71, 0x79, 0x62, 0x63, 0x7a, 0x7b, 0xdb, 0xc3, 0x05, 0x15, 0x1d, 0x25,
        0x35, 0x45, 0x55, 0x65, 0xa5, 0xb5, 0xc5, 0xd5, 0x16, 0x26, 0x85, 0x95, 0x18,
    ]);
    (
        codes,
        0u8..11,
        0u8..11,
        -6i16..6,
        prop::sample::select(vec![0i32, 1, 2, 3, 4, -4, -8, 8, 255, -1]),
    )
        .prop_map(|(code, dst, src, off, imm)| {
            // Keep the pseudo forms to map loads and helper calls the model has.
            let src = match code {
                0x18 => src % 2,
                0x85 => 0,
                _ => src,
            };
            let imm = if code == 0x18 && src == 1 {
                3 + imm.rem_euclid(5)
            } else {
                imm
            };
            Insn::new(code, dst, src, off, imm)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_words_get_a_verdict(words in prop::collection::vec(any::<u64>(), 1..40), unpriv in any::<bool>()) {
        let insns: Vec<Insn> = words.into_iter().map(Insn::from_u64).collect();
        let opts = VerifyOpts { privileged: !unpriv, ..VerifyOpts::default() };
        if let Ok(v) = verify(&insns, &verifier_common::maps(), opts) {
            let _ = fixup(&v, Mutants::NONE);
        }
    }

    #[test]
    fn plausible_programs_get_a_verdict(mut insns in prop::collection::vec(plausible_insn(), 1..40), unpriv in any::<bool>()) {
        insns.push(Insn::exit());
        let opts = VerifyOpts { privileged: !unpriv, log_level: 1, ..VerifyOpts::default() };
        match verify(&insns, &verifier_common::maps(), opts) {
            Ok(v) => {
                prop_assert!(v.log.contains("processed "));
                prop_assert!(fixup(&v, Mutants::NONE).is_ok());
            }
            Err(r) => prop_assert!(!r.message.is_empty() && r.insn < insns.len() + 1),
        }
    }
}
