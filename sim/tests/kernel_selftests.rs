//! The §9 selftest scenarios that need no programs (`mimic_core::model::selftests`, the same code
//! the model and the world run) against the real kernel. Skips with one line when bpf() is
//! refused; every scenario closes what it opened.
#![cfg(feature = "kernel")]

use mimic_core::model::selftests::all;
use mimic_sim::kernel::KernelSys;

#[test]
fn selftest_scenarios_pass_on_the_kernel() {
    let Some(mut kernel) = KernelSys::or_skip("§9 selftest scenarios") else {
        return;
    };
    let mut failures = Vec::new();
    let scenarios = all::<KernelSys>();
    for (name, scenario) in &scenarios {
        if let Err(e) = scenario(&mut kernel) {
            failures.push(format!("{name}: {e}"));
        }
    }
    println!(
        "§9 scenarios on the kernel: {} of {} pass",
        scenarios.len() - failures.len(),
        scenarios.len()
    );
    assert_eq!(kernel.open_fds(), 0, "every scenario closes what it opened");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
