//! `mimic verify FILE [--maps SPEC] [--unpriv] [--syscall] [--log] [--xlated] [--mutants LIST]
//! [--kernel auto|NAME]`: verify a
//! program written in assembly, print the verdict, optionally the verifier log and the fixed-up
//! program in bpftool's xlated style.
//!
//! FILE uses the conformance-suite assembly syntax plus `lddw %rN, map:NAME` for pseudo map
//! loads. SPEC is JSON: `{"maps": [{"name", "type", "key_size", "value_size", "max_entries",
//! "flags"?, "inner"?, "id"?}]}` where `type` is a bpftool map type name (`array`, `hash`,
//! `array_of_maps`, ...), `flags` a number or a list of names (`inner_map`, `no_prealloc`,
//! `rdonly_prog`, `wronly_prog`), `inner` names the template map of an outer map, and `id` the
//! map id to print (default: 1, 2, ... in order). Maps get fds 3, 4, ... in order.
//! Exit status: 0 accepted, 1 refused, 2 bad input.
use clap::Args;
use mimic_core::bpf::fixup::fixup;
use mimic_core::bpf::verifier::asm_maps::assemble_with_maps;
use mimic_core::bpf::verifier::{verify, MapDesc, MapTable, ProgType, VerifyOpts};
use mimic_core::mutants::{Mutant, Mutants};
use mimic_core::uapi::{
    MapType, BPF_F_INNER_MAP, BPF_F_NO_PREALLOC, BPF_F_RDONLY_PROG, BPF_F_WRONLY_PROG,
};
use serde_json::Value;
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

/// First fd handed out, as in a process whose 0-2 are taken.
const FIRST_FD: i32 = 3;

fn flag_bits(v: Option<&Value>) -> Result<u32, String> {
    match v {
        None => Ok(0),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|n| n as u32)
            .ok_or("flags: not a u32".into()),
        Some(Value::Array(names)) => names.iter().try_fold(0u32, |acc, name| {
            let bit = match name.as_str() {
                Some("inner_map") => BPF_F_INNER_MAP,
                Some("no_prealloc") => BPF_F_NO_PREALLOC,
                Some("rdonly_prog") => BPF_F_RDONLY_PROG,
                Some("wronly_prog") => BPF_F_WRONLY_PROG,
                other => return Err(format!("unknown flag {other:?}")),
            };
            Ok(acc | bit)
        }),
        Some(other) => Err(format!("flags: {other} is neither a number nor a list")),
    }
}

/// Parses the spec into `(name, fd, desc)`, outer maps carrying their template's meta.
pub(crate) fn parse_maps(
    text: &str,
    mutants: Mutants,
) -> Result<Vec<(String, i32, MapDesc)>, String> {
    let root: Value = serde_json::from_str(text).map_err(|e| format!("maps spec: {e}"))?;
    let list = root
        .get("maps")
        .and_then(Value::as_array)
        .ok_or("maps spec: no \"maps\" list")?;
    let mut out: Vec<(String, i32, MapDesc)> = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let field = |k: &str| -> Result<u32, String> {
            m.get(k)
                .and_then(Value::as_u64)
                .map(|v| v as u32)
                .ok_or_else(|| format!("map #{i}: missing number \"{k}\""))
        };
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .ok_or(format!("map #{i}: missing \"name\""))?;
        let type_name = m
            .get("type")
            .and_then(Value::as_str)
            .ok_or(format!("map {name}: missing \"type\""))?;
        let map_type = MapType::ALL
            .into_iter()
            .find(|t| t.name() == type_name)
            .ok_or(format!("map {name}: unknown type {type_name}"))?;
        let flags = flag_bits(m.get("flags")).map_err(|e| format!("map {name}: {e}"))?;
        let id = m
            .get("id")
            .and_then(Value::as_u64)
            .map_or(i as u32 + 1, |v| v as u32);
        let mut desc = MapDesc::new(
            map_type,
            field("key_size")?,
            field("value_size")?,
            field("max_entries")?,
            flags,
        )
        .with_id(id, 0);
        if let Some(inner) = m.get("inner").and_then(Value::as_str) {
            let (_, _, template) = out.iter().find(|(n, _, _)| n == inner).ok_or(format!(
                "map {name}: template {inner} must be listed before it"
            ))?;
            let mut meta = template.clone().with_id(0, 0);
            if mutants.on(Mutant::MetaElemSizeZero) {
                meta.elem_size = 0;
            }
            desc = desc.with_meta(meta);
        } else if map_type.is_map_in_map() {
            return Err(format!("map {name}: an outer map needs \"inner\""));
        }
        out.push((name.to_string(), FIRST_FD + i as i32, desc));
    }
    Ok(out)
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
            parse_maps(&text, mutants)?
        }
        None => Vec::new(),
    };
    let source =
        std::fs::read_to_string(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let fd_of = |name: &str| {
        maps.iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, fd, _)| *fd)
    };
    let insns =
        assemble_with_maps(&source, &fd_of).map_err(|e| format!("{}:{e}", args.file.display()))?;
    let table = MapTable(maps.iter().map(|(_, fd, d)| (*fd, d.clone())).collect());
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
