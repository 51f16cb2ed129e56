//! The verifier and fixup checks against the running kernel: they run (skipping cleanly when
//! bpf() is refused) and mimic never accepts a §9 case the kernel refuses.
#![cfg(feature = "kernel")]

use mimic_sim::kernel::{verdicts, KernelSys};

#[test]
fn section_9_cases_get_the_kernels_verdict_and_none_is_accepted_only_by_mimic() {
    let Some(mut kernel) = KernelSys::or_skip("kernel_verdicts") else {
        return;
    };
    let checks = verdicts::run(&mut kernel, &[verdicts::section_9()]);
    let v = &checks[0];
    assert!(v.cases > 0, "no §9 case was compared: {v:?}");
    assert_eq!(
        v.disagreed.get("mimic more lenient (UNSOUND)"),
        None,
        "mimic accepts a §9 case the kernel refuses: {:#?}",
        v.examples
    );
    assert_eq!(
        v.disagreed.get("mimic stricter (incomplete)"),
        None,
        "mimic refuses a §9 case the kernel accepts: {:#?}",
        v.examples
    );
}

#[test]
fn generated_programs_get_the_kernels_verdict_fix_up_like_it_and_run_to_the_same_r0_ctx_and_maps() {
    /// Seeds: enough for a dozen or more accepted programs, few enough to stay quick.
    const SEEDS: u64 = 200;
    let Some(mut kernel) = KernelSys::or_skip("kernel_verdicts") else {
        return;
    };
    let checks = verdicts::run(&mut kernel, &[verdicts::generated(SEEDS)]);
    let (verdicts, fixups, exec) = (&checks[0], &checks[1], &checks[2]);
    assert!(
        verdicts.gating && exec.gating,
        "verdict and test-run lines gate kernel-check"
    );
    assert!(
        verdicts.passed(),
        "mimic's verdict or first message differs from the kernel's: {:#?}",
        verdicts.examples
    );
    assert!(
        fixups.cases > 0,
        "no generated program was accepted by both"
    );
    assert!(
        fixups.passed(),
        "fixed-up programs differ from the kernel's xlated dump: {:#?}",
        fixups.examples
    );
    assert!(
        exec.passed(),
        "test-run and mimic's executor disagree: {:#?}",
        exec.examples
    );
}
