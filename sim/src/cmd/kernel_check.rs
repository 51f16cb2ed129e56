//! `mimic kernel-check [--json] [--seeds N]`: the shipped corpus against this machine's kernel,
//! as an agreement table per check (`mimic_sim::kernel::check`). When bpf() is refused it prints
//! one line saying why and exits 0; otherwise it exits 1 when a gating check disagrees.
use clap::Args;
use std::process::ExitCode;

#[derive(Args)]
pub struct KernelCheckArgs {
    /// Print one JSON object (`checks`, `pending`, `passed`) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Differential seeds per map check (default: MIMIC_KERNEL_SEEDS, else 200).
    #[arg(long)]
    pub seeds: Option<u64>,
    /// Generated programs for the verifier and fixup checks.
    #[arg(long, default_value_t = 300)]
    pub generated: u64,
    /// The conformance suite's tests/ folder for the execution check.
    #[arg(long, default_value = "/work/shared/conformance/bpf_conformance/tests")]
    pub conformance: std::path::PathBuf,
}

#[cfg(not(feature = "kernel"))]
pub fn run(_args: KernelCheckArgs) -> ExitCode {
    println!("kernel checks skipped: mimic was built without the `kernel` feature");
    ExitCode::SUCCESS
}

#[cfg(feature = "kernel")]
pub fn run(args: KernelCheckArgs) -> ExitCode {
    use mimic_sim::kernel::check::{self, Report};
    use mimic_sim::kernel::differential::{seeds_from_env, DEFAULT_LEN, DEFAULT_SEEDS};
    use mimic_sim::kernel::KernelSys;

    let seeds = match args.seeds.map_or_else(|| seeds_from_env(DEFAULT_SEEDS), Ok) {
        Ok(seeds) => seeds,
        Err(why) => {
            eprintln!("mimic kernel-check: {why}");
            return ExitCode::from(2);
        }
    };
    let Some(mut kernel) = KernelSys::or_skip("mimic kernel-check") else {
        return ExitCode::SUCCESS;
    };
    let mut report = Report {
        checks: check::run_maps(&mut kernel, seeds, DEFAULT_LEN),
        pending: check::pending(),
    };
    report
        .checks
        .extend(check::run_programs(&mut kernel, &args.conformance));
    report.checks.push(check::run_map_programs(&mut kernel));
    report.checks.extend(mimic_sim::kernel::verdicts::run(
        &mut kernel,
        args.generated,
    ));
    if args.json {
        let checks: Vec<_> = report
            .checks
            .iter()
            .map(|c| {
                serde_json::json!({
                    "name": c.name,
                    "compares": c.compares,
                    "cases": c.cases,
                    "agreed": c.agreed,
                    "disagreed": c.disagreed,
                    "examples": c.examples,
                    "gating": c.gating,
                })
            })
            .collect();
        let pending: Vec<_> = report
            .pending
            .iter()
            .map(|p| serde_json::json!({ "name": p.name, "why": p.why }))
            .collect();
        let out = serde_json::json!({
            "checks": checks,
            "pending": pending,
            "passed": report.passed(),
        });
        println!("{out}");
    } else {
        println!(
            "{:<32} {:<30} {:>6} {:>7}  disagreed by kind",
            "check", "compares", "cases", "agreed"
        );
        for c in &report.checks {
            let kinds: Vec<String> = c
                .disagreed
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            println!(
                "{:<32} {:<30} {:>6} {:>7}  {}{}",
                c.name,
                c.compares,
                c.cases,
                c.agreed,
                if kinds.is_empty() {
                    "-".to_string()
                } else {
                    kinds.join(", ")
                },
                if c.gating { "" } else { " (not gating)" }
            );
        }
        for c in &report.checks {
            for example in &c.examples {
                println!("  {}: {}", c.name, example.replace('\n', "\n    "));
            }
        }
        for p in &report.pending {
            println!("{:<32} pending: {}", p.name, p.why);
        }
        println!(
            "kernel-check: {}",
            if report.passed() {
                "every gating check agrees"
            } else {
                "DISAGREEMENTS"
            }
        );
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
