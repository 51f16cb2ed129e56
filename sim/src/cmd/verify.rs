//! `mimic verify FILE [--maps SPEC] [--unpriv] [--syscall] [--log] [--xlated] [--mutants LIST]
//! [--kernel auto|NAME]`: verify a
//! program written in assembly, print the verdict, optionally the verifier log and the fixed-up
//! program in bpftool's xlated style.
//!
//! FILE uses the conformance-suite assembly syntax plus `lddw %rN, map:NAME` for pseudo map
//! loads. SPEC is the JSON of `mimic_sim::maps_spec`.
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
    /// The program, in assembly.
    pub file: PathBuf,
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
    let mutants: Mutants = args
        .mutants
        .iter()
        .map(|m| m.parse::<Mutant>().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let profile = args.kernel.profile("mimic verify")?;
    let maps = match &args.maps {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            maps_spec::parse(&text, &path.display().to_string(), mutants, !args.unpriv)?
        }
        None => Vec::new(),
    };
    let source =
        std::fs::read_to_string(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
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
        } else {
            ProgType::Generic
        },
        sleepable: args.syscall,
        profile,
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
