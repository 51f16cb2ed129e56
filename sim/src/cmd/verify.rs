//! `mimic verify FILE [--maps SPEC] [--unpriv] [--syscall | --xdp | --tc] [--log] [--xlated] [--mutants LIST]
//! [--kernel auto|NAME]`: verify a
//! program written in assembly, print the verdict, optionally the verifier log and the fixed-up
//! program in bpftool's xlated style.
//!
//! FILE uses the conformance-suite assembly syntax plus `lddw %rN, map:NAME` for pseudo map
//! loads. SPEC is the JSON of `mimic_sim::maps_spec`.
//!
//! FILE may also be a clang-built BPF object (`NAME.bpf.o`, an ELF file): its maps are created
//! on a fresh world by mimic's loader (`mimic_core::bpf::object`, libbpf's conventions), and
//! every program (or the one `--program` names) is verified as its section's type and fixed
//! up; `--log` and `--xlated` apply to each.
//!
//! Exit status: 0 accepted, 1 refused, 2 bad input.
use clap::Args;
use mimic_core::bpf::fixup::fixup;
use mimic_core::bpf::verifier::asm_maps::assemble_with_maps;
use mimic_core::bpf::verifier::{verify, MapTable, ProgType, VerifyOpts};
use mimic_core::mutants::{Mutant, Mutants};
use mimic_sim::maps_spec;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct VerifyArgs {
    /// The program, in assembly, or a BPF object (`.bpf.o`).
    pub file: PathBuf,
    /// Of an object: verify only this program (its function's name).
    #[arg(long)]
    pub program: Option<String>,
    /// The maps the program names (JSON).
    #[arg(long)]
    pub maps: Option<PathBuf>,
    /// Verify as an unprivileged program.
    #[arg(long)]
    pub unpriv: bool,
    /// Verify as a sleepable `BPF_PROG_TYPE_SYSCALL` program (a writable context of up to
    /// 65535 bytes, accesses aligned to their size), as `mimic kernel-check` loads programs;
    /// prints the highest context byte reached (`max_ctx_offset`).
    #[arg(long)]
    pub syscall: bool,
    /// Verify as a `BPF_PROG_TYPE_XDP` program: `r1` is `struct xdp_md`, packet pointers
    /// come from its `data`, `data_end` and `data_meta` (as an object's `xdp` section).
    #[arg(long, conflicts_with = "syscall")]
    pub xdp: bool,
    /// Verify as a `BPF_PROG_TYPE_SCHED_CLS` (tc) program: `r1` is `struct __sk_buff`, packet
    /// pointers come from its `data`, `data_end` and `data_meta` (as an object's `tc` section).
    #[arg(long, conflicts_with_all = ["syscall", "xdp"])]
    pub tc: bool,
    /// Print the verifier log.
    #[arg(long)]
    pub log: bool,
    /// Print the program after fixups, as `bpftool prog dump xlated` does.
    #[arg(long)]
    pub xlated: bool,
    /// Comma-separated mutants to switch on (e.g. `inline_dynamic_inner`).
    #[arg(long, value_delimiter = ',')]
    pub mutants: Vec<String>,
    #[command(flatten)]
    pub kernel: super::KernelArg,
}

pub fn run(args: VerifyArgs) -> ExitCode {
    match verify_cmd(&args) {
        Ok(accepted) => ExitCode::from(if accepted { 0 } else { 1 }),
        Err(e) => {
            eprintln!("mimic verify: {e}");
            ExitCode::from(2)
        }
    }
}

fn verify_cmd(args: &VerifyArgs) -> Result<bool, String> {
    let named: Vec<Mutant> = args
        .mutants
        .iter()
        .map(|m| m.parse::<Mutant>().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let followed = args.kernel.follow("mimic verify", &named)?;
    let (mutants, profile, lacks) = (followed.mutants, followed.profile, followed.semantics.lacks);
    let bytes = std::fs::read(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    if bytes.starts_with(b"\x7fELF") {
        return verify_object(args, &bytes, mutants, profile, lacks);
    }
    if args.program.is_some() {
        return Err("--program names a program of an object; FILE is assembly".to_string());
    }
    let maps = match &args.maps {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            maps_spec::parse(&text, &path.display().to_string(), mutants, !args.unpriv)?
        }
        None => Vec::new(),
    };
    let source = String::from_utf8(bytes)
        .map_err(|e| format!("{}: not UTF-8 text ({e})", args.file.display()))?;
    let fd_of = |name: &str| maps.iter().find(|m| m.name == name).map(|m| m.fd);
    let insns =
        assemble_with_maps(&source, &fd_of).map_err(|e| format!("{}:{e}", args.file.display()))?;
    let table = MapTable(maps.iter().map(|m| (m.fd, m.desc.clone())).collect());
    let opts = VerifyOpts {
        privileged: !args.unpriv,
        mutants,
        log_level: u8::from(args.log),
        prog_type: if args.syscall {
            ProgType::Syscall
        } else if args.xdp {
            ProgType::Xdp
        } else if args.tc {
            ProgType::SchedCls
        } else {
            ProgType::Generic
        },
        sleepable: args.syscall,
        profile,
        lacks,
        ..VerifyOpts::default()
    };
    match verify(&insns, &table, opts) {
        Ok(v) => {
            if args.log {
                print!("{}", v.log);
            }
            println!("verdict: accepted ({} insns processed)", v.stats.processed);
            if args.syscall {
                println!("max_ctx_offset: {}", v.max_ctx_offset);
            }
            if args.xlated {
                let fixed = fixup(&v, mutants).map_err(|e| e.to_string())?;
                print!("{}", fixed.dump_xlated().map_err(|e| e.to_string())?);
            }
            Ok(true)
        }
        Err(r) => {
            if args.log {
                print!("{}", r.log);
            }
            println!("verdict: refused at insn {}: {}", r.insn, r.message);
            Ok(false)
        }
    }
}

/// `mimic verify FILE.o`: the object's maps on a fresh world, then each program verified and
/// fixed up as its section's type. `Ok(true)` when every program verified was accepted.
fn verify_object(
    args: &VerifyArgs,
    bytes: &[u8],
    mutants: Mutants,
    profile: mimic_core::profile::KernelProfile,
    lacks: mimic_core::history::Lacks,
) -> Result<bool, String> {
    use mimic_core::bpf::object::{load::create_maps, Object};
    use mimic_core::bpf::verifier::world::{prog_load, LoadError};
    use mimic_core::sync::Std;
    use mimic_core::sys::Process;
    use mimic_core::world::WorldConfig;
    let file = args.file.display();
    if args.maps.is_some() || args.syscall || args.xdp || args.tc {
        return Err(format!(
            "{file}: an object brings its maps and program types (no --maps, --syscall, --xdp, --tc)"
        ));
    }
    let object = Object::parse(bytes).map_err(|e| format!("{file}: {e}"))?;
    let programs: Vec<_> = match &args.program {
        Some(name) => vec![object.program(name).ok_or_else(|| {
            let names: Vec<&str> = object.programs.iter().map(|p| p.name.as_str()).collect();
            format!("{file}: no program `{name}` (it has: {})", names.join(", "))
        })?],
        None => object.programs.iter().collect(),
    };
    let config = WorldConfig {
        lacks,
        ..WorldConfig::default()
    };
    let mut sys = Process::<Std>::create(mutants, config);
    let maps = create_maps(&mut sys, &object).map_err(|e| format!("{file}: {e}"))?;
    let base = VerifyOpts {
        privileged: !args.unpriv,
        mutants,
        log_level: u8::from(args.log),
        profile,
        ..VerifyOpts::default()
    };
    let mut all_accepted = true;
    for program in programs {
        let header = format!(
            "program {} ({}, section {})",
            program.name,
            program.kind.name(),
            program.section
        );
        let opts = match program.kind.verify_opts(base) {
            Ok(opts) => opts,
            Err(why) => {
                println!("{header}: not verified: {why}");
                all_accepted = false;
                continue;
            }
        };
        let insns = program.with_fds(&maps.fds).ok_or_else(|| {
            format!(
                "{file}: program {} names a map it has no fd for",
                program.name
            )
        })?;
        match prog_load(sys.world(), &insns, opts) {
            Ok(loaded) => {
                if args.log {
                    print!("{}", loaded.verified.log);
                }
                println!(
                    "{header}: accepted ({} insns processed)",
                    loaded.verified.stats.processed
                );
                if args.xlated {
                    print!("{}", loaded.fixed.dump_xlated().map_err(|e| e.to_string())?);
                }
                loaded.unload(sys.world()).map_err(|e| e.to_string())?;
            }
            Err(LoadError::Rejected(r)) => {
                if args.log {
                    print!("{}", r.log);
                }
                println!("{header}: refused at insn {}: {}", r.insn, r.message);
                all_accepted = false;
            }
            Err(e) => return Err(format!("{file}: program {}: {e}", program.name)),
        }
    }
    maps.close(&mut sys);
    Ok(all_accepted)
}
