//! `mimic kernel-probe [--json]`: which kernel profile this machine's kernel is, and why: each
//! behaviour's probe, what the kernel printed for it and the variant that matches; then the
//! profile, or the report of what no profile describes (exit 1). Where bpf() is unavailable it
//! says so in one line (exit 0, or 1 under `MIMIC_REQUIRE_KERNEL=1`).
use clap::Args;
use std::process::ExitCode;

#[derive(Args)]
pub struct KernelProbeArgs {
    /// Print one JSON object (`behaviours`, `profile`, `error`) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[cfg(not(feature = "kernel"))]
pub fn run(_args: KernelProbeArgs) -> ExitCode {
    println!("kernel probe skipped: mimic was built without the `kernel` feature");
    ExitCode::SUCCESS
}

#[cfg(feature = "kernel")]
pub fn run(args: KernelProbeArgs) -> ExitCode {
    use mimic_core::profile::PROFILES;
    use mimic_sim::kernel::profile::probe_kernel;
    use mimic_sim::kernel::KernelSys;
    let mut kernel = match KernelSys::new() {
        Ok(kernel) => kernel,
        Err(unavailable) => return super::kernel_unavailable("mimic kernel-probe", &unavailable),
    };
    let report = match probe_kernel(&mut kernel) {
        Ok(report) => report,
        Err(why) => {
            eprintln!("mimic kernel-probe: {why}");
            return ExitCode::from(1);
        }
    };
    let profile = report.profile();
    if args.json {
        let behaviours: Vec<_> = report
            .findings
            .iter()
            .map(|f| {
                let b = f.probe.behaviour;
                serde_json::json!({
                    "behaviour": b.id(),
                    "about": b.about(),
                    "probe": f.probe.name,
                    "kernel": f.kernel,
                    "variant": f.variant.map(|i| b.variants()[i]),
                })
            })
            .collect();
        let out = serde_json::json!({
            "behaviours": behaviours,
            "profile": profile.as_ref().ok().map(|p| p.name),
            "error": profile.as_ref().err(),
        });
        println!("{out}");
    } else {
        print!("{report}");
        match &profile {
            Ok(p) => println!("profile: {} ({})", p.name, p.about),
            Err(why) => println!("profile: none: {why}"),
        }
        println!("known profiles:");
        for p in &PROFILES {
            let variants: Vec<String> = mimic_core::profile::Behaviour::ALL
                .iter()
                .map(|b| format!("{}={}", b.id(), b.variant_of(&p.behaviours)))
                .collect();
            println!("  {:<12} {}", p.name, variants.join(" "));
        }
    }
    if profile.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
