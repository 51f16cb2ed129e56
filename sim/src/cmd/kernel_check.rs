//! `mimic kernel-check [--json] [--seeds N]`: the shipped corpus against this machine's kernel,
//! as an agreement table per check (`mimic_sim::kernel::check`). When bpf() is refused it prints
//! one line saying why and exits 0; otherwise it exits 1 when a gating check disagrees.
use clap::Args;
use std::process::ExitCode;

#[derive(Args)]
pub struct KernelCheckArgs {
    /// Print one JSON object (`checks`, `passed`) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Differential seeds per map check (default: MIMIC_KERNEL_SEEDS, else 200).
    #[arg(long)]
    pub seeds: Option<u64>,
    /// Generated programs for the verifier and fixup checks.
    #[arg(long, default_value_t = 300)]
    pub generated: u64,
    /// The shipped examples (each folder with `prog.s` and `maps.json`).
    #[arg(long, default_value = "examples")]
    pub examples: std::path::PathBuf,
    /// The conformance suite (its root or its tests/ folder) for the execution check; default:
    /// found as `mimic conformance` finds it (the submodule, MIMIC_CONFORMANCE_DIR, ../shared).
    #[arg(long)]
    pub conformance: Option<std::path::PathBuf>,
    /// A BPF object (`.bpf.o`) to load with mimic's loader into the kernel and the world and
    /// compare program by program (repeatable).
    #[arg(long)]
    pub object: Vec<std::path::PathBuf>,
    #[command(flatten)]
    pub kernel: super::KernelArg,
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
    if let Err(why) = args.kernel.refuse_release("mimic kernel-check") {
        eprintln!("{why}");
        return ExitCode::from(2);
    }
    let mut kernel = match KernelSys::new() {
        Ok(kernel) => kernel,
        Err(unavailable) => return super::kernel_unavailable("mimic kernel-check", &unavailable),
    };
    let (profile, profile_check) =
        match mimic_sim::kernel::profile::check(&mut kernel, &args.kernel.kernel) {
            Ok(found) => found,
            Err(why) => {
                eprintln!("mimic kernel-check: {why}");
                return ExitCode::from(2);
            }
        };
    let osrelease = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut report = Report {
        checks: vec![
            profile_check,
            mimic_sim::kernel::profile::release_check(&osrelease),
        ],
    };
    report
        .checks
        .extend(check::run_maps(&mut kernel, seeds, DEFAULT_LEN));
    match super::conformance::locate(args.conformance.as_deref()) {
        Ok(suite) => report
            .checks
            .extend(check::run_programs(&mut kernel, &suite.join("tests"))),
        Err(why) => {
            eprintln!("mimic kernel-check: {why}");
            return ExitCode::from(2);
        }
    }
    report.checks.push(check::run_map_programs(&mut kernel));
    report
        .checks
        .extend(mimic_sim::kernel::packets::run(&mut kernel, profile));
    report
        .checks
        .extend(mimic_sim::kernel::tail_calls::run(&mut kernel, profile));
    for path in &args.object {
        let object = match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| mimic_core::bpf::object::Object::parse(&b).map_err(|e| e.to_string()))
        {
            Ok(object) => object,
            Err(why) => {
                eprintln!("mimic kernel-check: {}: {why}", path.display());
                return ExitCode::from(2);
            }
        };
        report
            .checks
            .extend(mimic_sim::kernel::object::check_object(
                &mut kernel,
                &object,
                path,
                profile,
                mimic_core::mutants::Mutants::NONE,
            ));
    }
    {
        use mimic_sim::kernel::verdicts;
        let mut sets = vec![
            verdicts::section_9(&profile),
            verdicts::generated(args.generated),
        ];
        match shipped(&args.examples) {
            Ok(set) => sets.insert(0, set),
            Err(why) => eprintln!("mimic kernel-check: shipped examples: {why}"),
        }
        report
            .checks
            .extend(verdicts::run(&mut kernel, &sets, profile));
    }
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
                    "known": c.known,
                    "examples": c.examples,
                    "gating": c.gating,
                })
            })
            .collect();
        let out = serde_json::json!({
            "checks": checks,
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
                .chain(c.known.iter().map(|(k, n)| format!("known, {k}: {n}")))
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

/// The shipped examples as one program set: every folder of `dir` with `prog.s` and
/// `maps.json`, assembled as `mimic verify` does, in name order. The examples share one map
/// table, so each example's fds start at its own base and its map ids are renumbered.
#[cfg(feature = "kernel")]
fn shipped(dir: &std::path::Path) -> Result<mimic_sim::kernel::verdicts::ProgramSet, String> {
    use mimic_core::bpf::verifier::asm_maps::assemble_with_maps;
    use mimic_core::bpf::verifier::MapTable;
    use mimic_sim::kernel::verdicts::{Item, ProgramSet};
    /// Each example's fds start at a multiple of this, so examples share one table.
    const FD_STRIDE: i32 = 100;
    let mut folders: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("prog.s").is_file() && p.join("maps.json").is_file())
        .collect();
    folders.sort();
    let mut set = ProgramSet {
        label: "shipped".to_string(),
        maps: MapTable(Vec::new()),
        items: Vec::new(),
        skipped: Vec::new(),
    };
    let mut next_id = 1u32;
    for (k, folder) in folders.iter().enumerate() {
        let read = |f: &str| {
            std::fs::read_to_string(folder.join(f))
                .map_err(|e| format!("{}: {e}", folder.join(f).display()))
        };
        let maps = mimic_sim::maps_spec::parse(
            &read("maps.json")?,
            &folder.join("maps.json").display().to_string(),
            mimic_core::mutants::Mutants::NONE,
            true,
        )?;
        let base = FD_STRIDE * (k as i32 + 1);
        let fd_of = |name: &str| {
            maps.iter()
                .position(|m| m.name == name)
                .map(|i| base + i as i32)
        };
        let prog = assemble_with_maps(&read("prog.s")?, &fd_of)
            .map_err(|e| format!("{}: {e}", folder.display()))?;
        for (i, desc) in maps.iter().map(|m| &m.desc).enumerate() {
            // Ids only need to be distinct across the set: they relate mimic's map loads to
            // the kernel's.
            set.maps
                .0
                .push((base + i as i32, desc.clone().with_id(next_id, 0)));
            next_id += 1;
        }
        set.items.push(Item {
            name: folder.display().to_string(),
            prog,
            state_freq: false,
        });
    }
    Ok(set)
}
