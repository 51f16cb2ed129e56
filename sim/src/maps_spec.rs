//! The map spec of `mimic verify --maps` and the shipped examples (`maps.json`): JSON naming
//! each map a program refers to, turned into the verifier's [`MapDesc`]s.
//!
//! `{"maps": [{"name", "type", "key_size", "value_size", "max_entries", "flags"?, "inner"?,
//! "id"?}]}`: `type` is a bpftool map type name (`array`, `hash`, `array_of_maps`, ...), `flags`
//! a number or a list of names (`inner_map`, `no_prealloc`, `rdonly_prog`, `wronly_prog`),
//! `inner` names the template of an outer map (listed before it), `id` the map id to print
//! (default: 1, 2, ... in order). Maps get fds 3, 4, ... in order.
//!
//! Invariants: a spec is checked as `BPF_MAP_CREATE` checks the attributes, with the kernel's
//! errno in the message, before anything is sized from it (`MapDesc::checked`); a number that
//! does not fit its u32 field is refused, never truncated; every error names the origin (the
//! file), the map (`#index` and name when it has one) and the field.

use mimic_core::bpf::verifier::MapDesc;
use mimic_core::mutants::{Mutant, Mutants};
use mimic_core::uapi::{
    MapType, BPF_F_INNER_MAP, BPF_F_NO_PREALLOC, BPF_F_RDONLY_PROG, BPF_F_WRONLY_PROG,
};
use serde_json::Value;

/// The first fd handed out, as in a process whose 0-2 are taken.
pub const FIRST_FD: i32 = 3;

/// One map of a spec: its name, the fd programs load it by, and its description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecMap {
    pub name: String,
    pub fd: i32,
    pub desc: MapDesc,
}

/// The bits of a `flags` field: a u32, or a list of flag names.
fn flag_bits(v: Option<&Value>) -> Result<u32, String> {
    match v {
        None => Ok(0),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("\"flags\": {n} is not a u32")),
        Some(Value::Array(names)) => names.iter().try_fold(0u32, |acc, name| {
            let bit = match name.as_str() {
                Some("inner_map") => BPF_F_INNER_MAP,
                Some("no_prealloc") => BPF_F_NO_PREALLOC,
                Some("rdonly_prog") => BPF_F_RDONLY_PROG,
                Some("wronly_prog") => BPF_F_WRONLY_PROG,
                _ => {
                    return Err(format!(
                        "\"flags\": unknown flag {name} (known: inner_map, no_prealloc, \
                         rdonly_prog, wronly_prog)"
                    ))
                }
            };
            Ok(acc | bit)
        }),
        Some(other) => Err(format!("\"flags\": {other} is neither a number nor a list")),
    }
}

/// A required u32 field.
fn u32_field(m: &Value, key: &str) -> Result<u32, String> {
    match m.get(key) {
        None => Err(format!("missing \"{key}\"")),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("\"{key}\": {v} is not a u32")),
    }
}

/// Parses a spec; `origin` (the file) starts every error. `privileged` is the loader's
/// privilege, which the kernel's array checks depend on.
pub fn parse(
    text: &str,
    origin: &str,
    mutants: Mutants,
    privileged: bool,
) -> Result<Vec<SpecMap>, String> {
    let root: Value = serde_json::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
    let list = root
        .get("maps")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{origin}: no \"maps\" list at the top level"))?;
    let mut out: Vec<SpecMap> = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let name = m.get("name").and_then(Value::as_str);
        let at = match name {
            Some(name) => format!("{origin}: map #{i} ({name})"),
            None => format!("{origin}: map #{i}"),
        };
        let fail = |what: String| format!("{at}: {what}");
        let name = name.ok_or_else(|| fail("missing \"name\"".into()))?;
        if out.iter().any(|s| s.name == name) {
            return Err(fail("a map of this name is listed before".into()));
        }
        let type_name = m
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| fail("missing \"type\"".into()))?;
        let map_type = MapType::ALL
            .into_iter()
            .find(|t| t.name() == type_name)
            .ok_or_else(|| fail(format!("unknown \"type\" {type_name:?}")))?;
        let flags = flag_bits(m.get("flags")).map_err(fail)?;
        let id = match m.get("id") {
            None => i as u32 + 1,
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| fail(format!("\"id\": {v} is not a u32")))?,
        };
        let (key_size, value_size, max_entries) = (
            u32_field(m, "key_size").map_err(fail)?,
            u32_field(m, "value_size").map_err(fail)?,
            u32_field(m, "max_entries").map_err(fail)?,
        );
        let mut desc = MapDesc::checked(
            map_type,
            key_size,
            value_size,
            max_entries,
            flags,
            privileged,
        )
        .map_err(|errno| {
            fail(format!(
                "BPF_MAP_CREATE refuses this {type_name} (key_size {key_size}, value_size \
                 {value_size}, max_entries {max_entries}, flags {flags:#x}): {errno}"
            ))
        })?
        .with_id(id, 0);
        match m.get("inner").map(|v| v.as_str().ok_or(v)) {
            Some(Ok(inner)) if map_type.is_map_in_map() => {
                let template = out.iter().find(|s| s.name == inner).ok_or_else(|| {
                    fail(format!(
                        "\"inner\": template {inner:?} must be listed before it"
                    ))
                })?;
                let mut meta = template.desc.clone().with_id(0, 0);
                if mutants.on(Mutant::MetaElemSizeZero) {
                    meta.elem_size = 0;
                }
                desc = desc.with_meta(meta);
            }
            Some(Ok(_)) => return Err(fail(format!("\"inner\": a {type_name} has no template"))),
            Some(Err(v)) => return Err(fail(format!("\"inner\": {v} is not a map name"))),
            None if map_type.is_map_in_map() => {
                return Err(fail("an outer map needs \"inner\" (its template)".into()))
            }
            None => {}
        }
        out.push(SpecMap {
            name: name.to_string(),
            fd: FIRST_FD + i as i32,
            desc,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(map: &str) -> Result<Vec<SpecMap>, String> {
        parse(
            &format!("{{\"maps\": [{map}]}}"),
            "m.json",
            Mutants::NONE,
            true,
        )
    }

    #[test]
    fn a_good_spec_gives_fds_ids_and_the_template_meta() {
        let maps = parse(
            r#"{"maps": [
                {"name": "t", "type": "array", "key_size": 4, "value_size": 4, "max_entries": 1, "flags": ["inner_map"]},
                {"name": "o", "type": "array_of_maps", "key_size": 4, "value_size": 4, "max_entries": 3, "inner": "t", "id": 468}
            ]}"#,
            "m.json",
            Mutants::NONE,
            true,
        )
        .expect("valid");
        assert_eq!((maps[0].fd, maps[1].fd), (3, 4));
        assert_eq!((maps[0].desc.id, maps[1].desc.id), (1, 468));
        assert!(maps[1]
            .desc
            .inner_meta
            .as_ref()
            .is_some_and(|m| m.is_dynamic_inner()));
    }

    #[test]
    fn sizes_the_kernel_refuses_are_refused_with_its_errno_before_anything_is_sized() {
        let array = |n: u64| {
            format!(
                r#"{{"name": "a", "type": "array", "key_size": 4, "value_size": 4, "max_entries": {n}}}"#
            )
        };
        let err = one(&array(3_000_000_000)).unwrap_err();
        assert!(
            err.contains("m.json: map #0 (a)") && err.contains("ENOMEM"),
            "{err}"
        );
        let unpriv = parse(
            &format!("{{\"maps\": [{}]}}", array(3_000_000_000)),
            "m.json",
            Mutants::NONE,
            false,
        )
        .unwrap_err();
        assert!(unpriv.contains("E2BIG"), "{unpriv}");
        let err = one(&array(5_000_000_000)).unwrap_err();
        assert!(
            err.contains("\"max_entries\": 5000000000 is not a u32"),
            "{err}"
        );
        let err = one(
            r#"{"name": "h", "type": "hash", "key_size": 0, "value_size": 4, "max_entries": 1}"#,
        )
        .unwrap_err();
        assert!(err.contains("EINVAL"), "{err}");
    }

    #[test]
    fn malformed_specs_name_the_place() {
        for (spec, needle) in [
            (
                "{\"maps\": [",
                "m.json: EOF while parsing a list at line 1 column 10",
            ),
            ("{}", "m.json: no \"maps\" list"),
            (
                r#"{"maps": [{"type": "array"}]}"#,
                "m.json: map #0: missing \"name\"",
            ),
            (
                r#"{"maps": [{"name": "x", "type": "arr"}]}"#,
                "map #0 (x): unknown \"type\" \"arr\"",
            ),
            (
                r#"{"maps": [{"name": "o", "type": "hash_of_maps", "key_size": 4, "value_size": 4, "max_entries": 1}]}"#,
                "map #0 (o): an outer map needs \"inner\"",
            ),
            (
                r#"{"maps": [{"name": "x", "type": "array", "key_size": 4, "value_size": 4, "max_entries": 1, "flags": ["fast"]}]}"#,
                "map #0 (x): \"flags\": unknown flag \"fast\"",
            ),
        ] {
            let err = parse(spec, "m.json", Mutants::NONE, true).unwrap_err();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }
}
