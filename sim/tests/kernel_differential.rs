//! The reference model against the real kernel on seeded op sequences
//! (`mimic_sim::kernel::differential`): `DEFAULT_SEEDS` seeds of `DEFAULT_LEN` ops, or
//! `MIMIC_KERNEL_SEEDS=N` seeds for a long run. Skips with one line when bpf() is refused.
#![cfg(feature = "kernel")]

use mimic_sim::kernel::differential::{self, seeds_from_env, DEFAULT_LEN, DEFAULT_SEEDS};
use mimic_sim::kernel::KernelSys;

#[test]
fn model_matches_kernel_on_seeded_sequences() {
    let seeds = seeds_from_env(DEFAULT_SEEDS).unwrap_or_else(|why| panic!("{why}"));
    let Some(mut kernel) = KernelSys::or_skip("model versus kernel differential") else {
        return;
    };
    let report = differential::sweep(&mut kernel, seeds, DEFAULT_LEN);
    println!(
        "model versus kernel: {} of {} seeds ({} ops each) agree",
        report.agreed(),
        report.seeds,
        DEFAULT_LEN
    );
    assert_eq!(kernel.open_fds(), 0, "every sequence closes what it opened");
    for d in &report.divergences {
        println!("seed {}: {}", d.seed, d.divergence);
    }
    if let Some(first) = report.divergences.first() {
        panic!(
            "{} of {} seeds diverge; the first:\n{first}",
            report.divergences.len(),
            report.seeds
        );
    }
}

#[test]
#[ignore = "replays one seed with its listing: MIMIC_SEED=n cargo test ... -- --ignored --nocapture"]
fn replay_one_seed() {
    let Ok(text) = std::env::var("MIMIC_SEED") else {
        println!("set MIMIC_SEED to the seed to replay");
        return;
    };
    let seed: u64 = text
        .parse()
        .unwrap_or_else(|_| panic!("MIMIC_SEED={text:?} is not a number"));
    let Some(mut kernel) = KernelSys::or_skip("one seed") else {
        return;
    };
    match differential::run_seed(&mut kernel, seed, DEFAULT_LEN) {
        Ok(()) => println!("seed {seed} agrees"),
        Err(d) => println!("{d}"),
    }
}

mod proptests {
    use mimic_core::model::gen::ops_from_chunks;
    use mimic_core::model::ops::{differential_with, listing, FdMap};
    use mimic_sim::kernel::differential::{kernel_cpus, kernel_gen_config, model_for};
    use mimic_sim::kernel::{probe, KernelSys};
    use proptest::prelude::*;

    /// Bytes one generated op consumes at most.
    const CHUNK: usize = 24;

    proptest! {
        // Each case drives the real kernel: few cases, shrinking on failure.
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn model_matches_kernel_on_proptest_sequences(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), CHUNK), 1..60)
        ) {
            if probe().is_err() {
                // One line for the whole property, printed by the seeded test's skip.
                return Ok(());
            }
            let Some(mut kernel) = KernelSys::or_skip("proptest differential") else {
                return Ok(());
            };
            let ops = ops_from_chunks(&chunks, kernel_gen_config(kernel_cpus(&kernel)));
            let result = differential_with(
                ("model", &mut model_for(&kernel)),
                ("kernel", &mut kernel),
                &ops,
                FdMap::closed_never_reused,
            );
            prop_assert_eq!(kernel.open_fds(), 0, "the sequence closes what it opened");
            if let Err(d) = result {
                return Err(TestCaseError::fail(format!("{d}\n{}", listing(&ops))));
            }
        }
    }
}
