//! An independent check of mimic's object loader: the same object loaded by bpftool (libbpf,
//! the loader users run) and by mimic's loader into the same kernel, then compared as the
//! kernel reports both: each map's type, sizes, flags and `max_entries`, a map-in-map's
//! occupied slots and what they hold (by the inner maps' names), a global data map's value, and
//! each program's xlated instructions (map loads through the two loaders' map ids).
//!
//! bpftool runs as `bpftool prog loadall OBJ DIR/progs pinmaps DIR/maps` under a fresh
//! directory of the BPF filesystem, read back with `bpftool -j map show|dump pinned ...` and
//! `bpftool prog dump xlated pinned ... file ...`, and unpinned at the end. A map-in-map's
//! template is not visible to either (the kernel keeps no record of it); it shows through the
//! slots both loaders could fill and the verifier's inlining in the xlated programs.
#![forbid(unsafe_code)]

use super::check::Check;
use super::KernelSys;
use mimic_core::bpf::object::load::LoadedMaps;
use mimic_core::bpf::object::Object;
use mimic_core::isa::{Insn, BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE};
use mimic_core::uapi::{BpfSys, MapType};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where bpftool's pins go: the BPF filesystem.
const BPFFS: &str = "/sys/fs/bpf";
/// The kernel keeps this many bytes of an object's name (`BPF_OBJ_NAME_LEN` - 1).
const NAME_LEN: usize = 15;

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new("bpftool")
        .args(args)
        .output()
        .map_err(|e| format!("bpftool: {e} (ci/install-deps installs it)"))?;
    if !out.status.success() {
        return Err(format!(
            "bpftool {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn json(args: &[&str]) -> Result<Value, String> {
    let text = run(args)?;
    serde_json::from_str(&text).map_err(|e| format!("bpftool {}: {e}", args.join(" ")))
}

/// Bytes from bpftool's `["0x01", ...]`.
fn hex_bytes(v: &Value) -> Vec<u8> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|b| b.as_str())
                .filter_map(|s| u8::from_str_radix(s.trim_start_matches("0x"), 16).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A map as the kernel describes it: (type name, key, value, max_entries, flags).
type Shape = (String, u64, u64, u64, u64);

fn shape_of_json(v: &Value) -> Shape {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(u64::MAX);
    (
        v.get("type")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string(),
        n("bytes_key"),
        n("bytes_value"),
        n("max_entries"),
        n("flags"),
    )
}

/// A pin directory removed again when dropped (unpinning releases libbpf's objects).
struct Pins(PathBuf);

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The pin of an object's map under bpftool's `pinmaps` directory: the map's name, with the
/// dots the BPF filesystem refuses made underscores; a data section's map carries the
/// object's name before it (`.rodata` is pinned as `globals_rodata`).
fn pinned_map(maps_dir: &Path, name: &str) -> Option<PathBuf> {
    let pinned = name.replace('.', "_");
    let direct = maps_dir.join(&pinned);
    if direct.exists() {
        return Some(direct);
    }
    if !name.starts_with('.') {
        return None;
    }
    std::fs::read_dir(maps_dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(&pinned))
        })
}

/// Compares libbpf's load of the object at `path` with mimic's loader's maps `ours` (already
/// on `kernel`; `ours_data[i]`: map `i`'s value as the loader wrote it, before any program
/// ran) and, per program, mimic's loader's kernel program `ours_progs[name]`.
pub fn compare(
    kernel: &mut KernelSys,
    path: &Path,
    object: &Object,
    ours: &LoadedMaps,
    ours_data: &[Option<Vec<u8>>],
    ours_progs: &BTreeMap<String, Vec<Insn>>,
    label: &str,
) -> Check {
    let mut check = Check::new(
        format!("object/libbpf/{label}"),
        "bpftool's load vs mimic's loader",
        true,
    );
    // The BPF filesystem refuses names with dots.
    let safe: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let dir = PathBuf::from(BPFFS).join(format!("mimic-{}-{safe}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        check.note(
            "setup",
            format!(
                "{}: {e} (is the BPF filesystem mounted at {BPFFS}?)",
                dir.display()
            ),
        );
        return check;
    }
    let pins = Pins(dir);
    let (progs_dir, maps_dir) = (pins.0.join("progs"), pins.0.join("maps"));
    let loaded = run(&[
        "prog",
        "loadall",
        &path.to_string_lossy(),
        &progs_dir.to_string_lossy(),
        "pinmaps",
        &maps_dir.to_string_lossy(),
    ]);
    if let Err(e) = loaded {
        check.note("bpftool refused the object", e);
        return check;
    }
    // libbpf's map id -> mimic's loader's map id, learned by name.
    let mut ids: BTreeMap<u64, u32> = BTreeMap::new();
    // mimic's loader creates its maps without names: its ids name them.
    let our_names: BTreeMap<u32, String> = ours
        .fds
        .iter()
        .zip(&object.maps)
        .filter_map(|(fd, spec)| Some((kernel.map_info(*fd).ok()?.id, spec.name.clone())))
        .collect();
    let name_of_id = |id: u64| -> Option<String> {
        json(&["-j", "map", "show", "id", &id.to_string()])
            .ok()?
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    for (i, spec) in object.maps.iter().enumerate() {
        check.cases += 1;
        let what = format!("map {}", spec.name);
        let Some(pinned) = pinned_map(&maps_dir, &spec.name) else {
            check.note("map missing", format!("{what}: bpftool pinned no such map"));
            continue;
        };
        let theirs = match json(&["-j", "map", "show", "pinned", &pinned.to_string_lossy()]) {
            Ok(v) => v,
            Err(e) => {
                check.note("bpftool", e);
                continue;
            }
        };
        let Ok(info) = kernel.map_info(ours.fds[i]) else {
            check.note("map missing", format!("{what}: mimic's map has no info"));
            continue;
        };
        let ours_shape: Shape = (
            MapType::from_u32(info.map_type)
                .map_or("?", MapType::name)
                .to_string(),
            u64::from(info.key_size),
            u64::from(info.value_size),
            u64::from(info.max_entries),
            u64::from(info.map_flags),
        );
        let theirs_shape = shape_of_json(&theirs);
        if let Some(id) = theirs.get("id").and_then(Value::as_u64) {
            ids.insert(id, info.id);
        }
        if ours_shape != theirs_shape {
            check.note(
                "map differs",
                format!("{what}: libbpf {theirs_shape:?}, mimic {ours_shape:?}"),
            );
            continue;
        }
        // What the map holds: a map-in-map's slots by inner map name, a data map's value.
        let dump = match json(&["-j", "map", "dump", "pinned", &pinned.to_string_lossy()]) {
            Ok(v) => v,
            Err(e) => {
                check.note("bpftool", e);
                continue;
            }
        };
        let entries = dump.as_array().cloned().unwrap_or_default();
        let agrees = if spec.inner.is_some() {
            let mut theirs: Vec<(u32, String)> = entries
                .iter()
                .filter_map(|e| {
                    let key = hex_bytes(e.get("key")?);
                    let value = hex_bytes(e.get("value")?);
                    let slot = u32::from_le_bytes(key.get(..4)?.try_into().ok()?);
                    let id = u32::from_le_bytes(value.get(..4)?.try_into().ok()?);
                    Some((slot, name_of_id(u64::from(id)).unwrap_or_default()))
                })
                .collect();
            theirs.sort();
            let expected: Vec<(u32, String)> = spec
                .slots
                .iter()
                .map(|(s, n)| (*s, n.chars().take(NAME_LEN).collect()))
                .collect();
            let ours_slots: Vec<(u32, String)> = spec
                .slots
                .iter()
                .filter_map(|(s, _)| {
                    let id = kernel.map_lookup_elem(ours.fds[i], &s.to_ne_bytes()).ok()?;
                    let id = u32::from_ne_bytes(id.get(..4)?.try_into().ok()?);
                    let name: String = our_names.get(&id)?.chars().take(NAME_LEN).collect();
                    Some((*s, name))
                })
                .collect();
            if theirs != expected || ours_slots != expected {
                check.note(
                    "slots differ",
                    format!(
                        "{what}: libbpf {theirs:?}, mimic {ours_slots:?}, the object {expected:?}"
                    ),
                );
                false
            } else {
                true
            }
        } else if let Some(data) = &spec.data {
            let theirs = entries
                .first()
                .and_then(|e| e.get("value"))
                .map(hex_bytes)
                .unwrap_or_default();
            let ours_value = ours_data.get(i).cloned().flatten().unwrap_or_default();
            if theirs != data.bytes || ours_value != data.bytes {
                check.note(
                    "data differs",
                    format!("{what}: libbpf {theirs:?}, mimic {ours_value:?}"),
                );
                false
            } else {
                true
            }
        } else {
            true
        };
        if agrees {
            check.agreed += 1;
        }
    }
    for program in &object.programs {
        let Some(ours_x) = ours_progs.get(&program.name) else {
            continue;
        };
        check.cases += 1;
        let pinned = progs_dir.join(&program.name);
        // Plain files cannot live in the BPF filesystem.
        let out = std::env::temp_dir().join(format!(
            "mimic-{}-{}-{}.xlated",
            std::process::id(),
            pins.0.file_name().and_then(|n| n.to_str()).unwrap_or("x"),
            program.name
        ));
        let theirs = run(&[
            "prog",
            "dump",
            "xlated",
            "pinned",
            &pinned.to_string_lossy(),
            "file",
            &out.to_string_lossy(),
        ])
        .and_then(|_| std::fs::read(&out).map_err(|e| e.to_string()))
        .and_then(|b| mimic_core::isa::from_bytes(&b).map_err(|e| e.to_string()));
        let _ = std::fs::remove_file(&out);
        match theirs {
            Ok(theirs) => match same_xlated(&theirs, ours_x, &ids) {
                Ok(()) => check.agreed += 1,
                Err(why) => {
                    check.note("xlated differs", format!("program {}: {why}", program.name))
                }
            },
            Err(e) => check.note("bpftool", format!("program {}: {e}", program.name)),
        }
    }
    check
}

/// libbpf's xlated program against mimic's loader's, map ids related by name.
fn same_xlated(theirs: &[Insn], ours: &[Insn], ids: &BTreeMap<u64, u32>) -> Result<(), String> {
    if theirs.len() != ours.len() {
        return Err(format!(
            "{} slots from libbpf, {} from mimic's loader",
            theirs.len(),
            ours.len()
        ));
    }
    for (pc, (a, b)) in theirs.iter().zip(ours).enumerate() {
        let map_load = a.is_lddw() && matches!(a.src, BPF_PSEUDO_MAP_FD | BPF_PSEUDO_MAP_VALUE);
        // Everything else, kernel function addresses included, is equal in one kernel.
        let same = if map_load {
            (a.code, a.dst, a.src) == (b.code, b.dst, b.src)
                && ids.get(&u64::from(a.imm as u32)) == Some(&(b.imm as u32))
        } else {
            a == b
        };
        if !same {
            return Err(format!("slot {pc}: libbpf {a:?}, mimic {b:?}"));
        }
    }
    Ok(())
}
