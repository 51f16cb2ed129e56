//! `mimic inspect FILE.o [--json]`: what mimic's loader reads from a clang-built BPF object, in
//! bpftool's words: the maps (type, sizes, flags, a map-in-map's template and initial slots, a
//! global data map's section), the programs (section, type, instructions after relocation,
//! appended subprograms) and every relocation. Exit status: 0, or 2 when the object is refused
//! (the error names the feature, the section and the symbol).
use clap::Args;
use mimic_core::bpf::object::{MapSpec, Object, RelocTarget};
use mimic_core::bpf::print::{dump_xlated, Symbols};
use mimic_core::isa::{BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE};
use mimic_core::uapi::MapType;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct InspectArgs {
    /// The object (`clang -O2 -g -target bpf -c x.bpf.c -o x.bpf.o`).
    pub file: PathBuf,
    /// Print one JSON object (`license`, `maps`, `programs`).
    #[arg(long)]
    pub json: bool,
}

/// Names maps by the object's names in a listing (`map[outer]`, `map[.bss]+8`).
pub struct ObjectSymbols<'a>(pub &'a Object);

impl Symbols for ObjectSymbols<'_> {
    fn ld_imm64(&self, src: u8, imm_lo: i32, imm_hi: i32) -> Option<String> {
        let name = |i: i32| {
            usize::try_from(i)
                .ok()
                .and_then(|i| self.0.maps.get(i))
                .map_or_else(|| format!("#{i}"), |m| m.name.clone())
        };
        match src {
            BPF_PSEUDO_MAP_FD => Some(format!("map[{}]", name(imm_lo))),
            BPF_PSEUDO_MAP_VALUE => Some(format!("map[{}]+{}", name(imm_lo), imm_hi as u32)),
            _ => None,
        }
    }
}

fn type_name(map_type: u32) -> String {
    MapType::from_u32(map_type).map_or_else(|| format!("type {map_type}"), |t| t.name().to_string())
}

/// One map as `bpftool map show` words it.
pub fn map_line(m: &MapSpec) -> String {
    format!(
        "{}  key {}B  value {}B  max_entries {}  flags 0x{:x}",
        type_name(m.map_type),
        m.key_size,
        m.value_size,
        m.max_entries,
        m.map_flags
    )
}

pub fn run(args: InspectArgs) -> ExitCode {
    let bytes = match std::fs::read(&args.file) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("mimic inspect: {}: {e}", args.file.display());
            return ExitCode::from(2);
        }
    };
    let object = match Object::parse(&bytes) {
        Ok(object) => object,
        Err(e) => {
            eprintln!("mimic inspect: {}: {e}", args.file.display());
            return ExitCode::from(2);
        }
    };
    if args.json {
        println!("{}", json(&object));
    } else {
        print!("{}", text(&object));
    }
    ExitCode::SUCCESS
}

/// The report as text.
pub fn text(object: &Object) -> String {
    let mut out = format!("license: {:?}\n\nmaps:\n", object.license);
    for (i, m) in object.maps.iter().enumerate() {
        out.push_str(&format!("{i:3}: {}  {}\n", m.name, map_line(m)));
        if let Some(inner) = &m.inner {
            out.push_str(&format!("       inner map template: {}\n", map_line(inner)));
        }
        for (slot, name) in &m.slots {
            out.push_str(&format!("       slot {slot}: {name}\n"));
        }
        if let Some(data) = &m.data {
            out.push_str(&format!(
                "       global data of section {}{}\n",
                data.section,
                if data.frozen { ", frozen" } else { "" }
            ));
        }
    }
    for p in &object.programs {
        out.push_str(&format!(
            "\nprogram {}: {}, section {}{}, {} insns\n",
            p.name,
            p.kind.name(),
            p.section,
            if p.autoload {
                ""
            } else {
                " (not loaded by default)"
            },
            p.insns.len()
        ));
        for (name, at) in &p.subprogs {
            out.push_str(&format!("  subprogram {name} appended at {at}\n"));
        }
        for r in &p.relocs {
            let what = match &r.target {
                RelocTarget::Map(i) => format!("map {i} ({})", object.maps[*i].name),
                RelocTarget::MapValue { map, offset } => {
                    format!("global data {} + {offset}", object.maps[*map].name)
                }
                RelocTarget::Subprog { at } => format!("call of {} at {at}", r.symbol),
            };
            out.push_str(&format!(
                "  relocation at insn {}: {} -> {what}\n",
                r.insn, r.symbol
            ));
        }
        match dump_xlated(&p.insns, &ObjectSymbols(object)) {
            Ok(listing) => out.push_str(&listing),
            Err(e) => out.push_str(&format!("  (does not decode: {e})\n")),
        }
    }
    out
}

fn json(object: &Object) -> serde_json::Value {
    let map = |m: &MapSpec| {
        serde_json::json!({
            "name": m.name,
            "type": type_name(m.map_type),
            "key_size": m.key_size,
            "value_size": m.value_size,
            "max_entries": m.max_entries,
            "flags": m.map_flags,
        })
    };
    let maps: Vec<_> = object
        .maps
        .iter()
        .map(|m| {
            let mut v = map(m);
            v["inner"] = m.inner.as_deref().map_or(serde_json::Value::Null, map);
            v["slots"] = serde_json::json!(m.slots);
            v["data_section"] = serde_json::json!(m.data.as_ref().map(|d| &d.section));
            v
        })
        .collect();
    let programs: Vec<_> = object
        .programs
        .iter()
        .map(|p| {
            serde_json::json!({
                "name": p.name,
                "section": p.section,
                "type": p.kind.name(),
                "autoload": p.autoload,
                "insns": p.insns.len(),
                "subprogs": p.subprogs,
                "listing": dump_xlated(&p.insns, &ObjectSymbols(object)).unwrap_or_default(),
            })
        })
        .collect();
    serde_json::json!({ "license": object.license, "maps": maps, "programs": programs })
}
