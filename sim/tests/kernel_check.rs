//! `mimic kernel-check`'s checks (`mimic_sim::kernel::check`) on this machine: every gating
//! check agrees, and the table names every check. A short sweep (10 seeds) keeps it quick; the
//! full run is `mimic kernel-check`. Skips with one line when bpf() is refused.
#![cfg(feature = "kernel")]

use mimic_core::bpf::suite_dir;
use mimic_sim::kernel::check::{self, Report};
use mimic_sim::kernel::differential::DEFAULT_LEN;
use mimic_sim::kernel::KernelSys;

/// Seeds per differential line in this test.
const SEEDS: u64 = 10;

#[test]
fn every_gating_kernel_check_agrees() {
    let Some(mut kernel) = KernelSys::or_skip("kernel-check") else {
        return;
    };
    let (_, profile) = mimic_sim::kernel::profile::check(&mut kernel, "auto").expect("probes load");
    let mut report = Report {
        checks: vec![profile],
    };
    report
        .checks
        .extend(check::run_maps(&mut kernel, SEEDS, DEFAULT_LEN));
    let suite = suite_dir::find(None, std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{e}"));
    report
        .checks
        .extend(check::run_programs(&mut kernel, &suite.join("tests")));
    report.checks.push(check::run_map_programs(&mut kernel));
    assert_eq!(kernel.open_fds(), 0, "the checks close every fd");
    for c in &report.checks {
        println!(
            "{} {}: {} of {} agree {:?}",
            if c.gating { "gating" } else { "info  " },
            c.name,
            c.agreed,
            c.cases,
            c.disagreed
        );
        assert!(c.cases > 0, "{} ran no cases", c.name);
        assert!(
            !c.gating || c.passed(),
            "{} disagrees: {:?}\n{}",
            c.name,
            c.disagreed,
            c.examples.join("\n")
        );
    }
    for name in [
        "kernel/profile",
        "exec/conformance",
        "maps/errno-table/kernel",
        "maps/differential/model",
        "maps/selftests/kernel",
        "exec/seed004-maps",
    ] {
        assert!(
            report.checks.iter().any(|c| c.name == name),
            "{name} missing from the table"
        );
    }
    assert!(report.passed());
}
