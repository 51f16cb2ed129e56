//! An object's maps, by libbpf's conventions: the BTF definitions of `SEC(".maps")` and the
//! global data sections.
//!
//! A definition is a variable of a struct whose members encode the attributes: `__uint(name,
//! N)` is a pointer to `int[N]`, `__type(name, T)` a pointer to `T` (its size is the key or value
//! size), `__array(values, struct inner)` an empty array of pointers to the inner definition (a
//! map-in-map's template), whose initial slots (`.values = { [2] = &inner }`) are the
//! relocations of `.maps` that fall inside that array. The global data sections (`.rodata`,
//! `.data`, `.bss`, `.rodata.*`, `.data.*`) become one-entry arrays whose value is the section,
//! as libbpf creates them (`BPF_F_MMAPABLE`; read-only for programs and frozen for `.rodata`).
//!
//! Invariant: every definition is read whole or refused with the map, the member and the reason
//! (an unknown member, `pinning`, sizes that disagree, slots outside `max_entries`).

use super::btf::{Btf, Type};
use super::{Elf, ObjectError};
use crate::uapi::{MapAttr, MapType, BPF_F_MMAPABLE, BPF_F_RDONLY_PROG};

/// The contents of a global data map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMap {
    /// The section it comes from (`.rodata`, `.data.cfg`, ...).
    pub section: String,
    /// The value: the section's bytes (zeroes for `.bss`).
    pub bytes: Vec<u8>,
    /// Frozen after its value is written (`.rodata`): user space can no longer write it, and
    /// the verifier may read it as constants.
    pub frozen: bool,
}

/// One map as the object defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSpec {
    /// The variable's name (a data map: its section's name).
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    /// A map-in-map's template, from its `values` definition.
    pub inner: Option<Box<MapSpec>>,
    /// Initial slots: `(index, name of what is stored there)`, a map for a map-in-map, a
    /// program (its function) for a `PROG_ARRAY`.
    pub slots: Vec<(u32, String)>,
    /// A global data map's contents.
    pub data: Option<DataMap>,
}

impl MapSpec {
    pub fn kind(&self) -> Option<MapType> {
        MapType::from_u32(self.map_type)
    }

    /// The `BPF_MAP_CREATE` attributes it asks for (a map-in-map's template fd is the
    /// loader's to add).
    pub fn attr(&self) -> MapAttr {
        MapAttr {
            map_type: self.map_type,
            key_size: self.key_size,
            value_size: self.value_size,
            max_entries: self.max_entries,
            map_flags: self.map_flags,
            inner_map_fd: 0,
        }
    }
}

/// Every map of the object: `.maps` definitions in section order, then the data sections.
pub fn read(elf: &Elf, btf: Option<&Btf>) -> Result<Vec<MapSpec>, ObjectError> {
    let mut maps = Vec::new();
    if let Some(section) = elf.section_named(".maps") {
        let btf = btf.ok_or_else(|| {
            ObjectError::new("map definitions without a .BTF section (build with clang -g)")
                .in_section(".maps")
        })?;
        let (vars, _) = btf.datasec(".maps").ok_or_else(|| {
            ObjectError::new("no BTF data section describes it").in_section(".maps")
        })?;
        // Clang leaves the variables' offsets to the loader: they are their ELF symbols'.
        let mut placed = Vec::new();
        for var in vars {
            let Ok(Some(Type::Var { name, type_id })) = btf.get(var.type_id) else {
                return Err(ObjectError::new(format!(
                    "BTF type {} of its data section is not a variable",
                    var.type_id
                ))
                .in_section(".maps"));
            };
            let symbol = elf
                .symbols
                .iter()
                .flatten()
                .find(|s| s.section == Some(section.index) && s.name == *name)
                .ok_or_else(|| {
                    ObjectError::new("a map definition without its ELF symbol")
                        .in_section(".maps")
                        .at_symbol(name)
                })?;
            placed.push((symbol.value, var.size, name, *type_id));
        }
        placed.sort_by_key(|p| p.0);
        for (offset, size, name, type_id) in placed {
            let mut spec = definition(btf, name, type_id, false)
                .map_err(|e| e.in_section(".maps").at_symbol(name))?;
            spec.slots = slots(elf, btf, section, offset, size, &spec, type_id)
                .map_err(|e| e.in_section(".maps").at_symbol(name))?;
            maps.push(spec);
        }
    }
    for section in &elf.sections {
        let n = section.name.as_str();
        let data = n == ".rodata"
            || n == ".data"
            || n == ".bss"
            || n.starts_with(".rodata.")
            || n.starts_with(".data.");
        if !data || section.size == 0 {
            continue;
        }
        let size = u32::try_from(section.size).map_err(|_| {
            ObjectError::new(format!("{} bytes of global data", section.size)).in_section(n)
        })?;
        let rodata = n.starts_with(".rodata");
        let bytes = if section.data.is_empty() {
            vec![0; size as usize]
        } else {
            section.data.clone()
        };
        maps.push(MapSpec {
            name: n.to_string(),
            map_type: MapType::Array as u32,
            key_size: 4,
            value_size: size,
            max_entries: 1,
            map_flags: BPF_F_MMAPABLE | if rodata { BPF_F_RDONLY_PROG } else { 0 },
            inner: None,
            slots: Vec::new(),
            data: Some(DataMap {
                section: n.to_string(),
                bytes,
                frozen: rodata,
            }),
        });
    }
    Ok(maps)
}

/// `N` of `__uint(name, N)`: a pointer to an array of `N` elements.
fn uint_member(btf: &Btf, member: &str, type_id: u32) -> Result<u32, ObjectError> {
    match btf.resolve(type_id)? {
        Some((_, Type::Ptr { type_id })) => match btf.resolve(*type_id)? {
            Some((_, Type::Array { nelems, .. })) => Ok(*nelems),
            _ => Err(ObjectError::new(format!(
                "member {member} is not __uint(...) (a pointer to an array)"
            ))),
        },
        _ => Err(ObjectError::new(format!(
            "member {member} is not __uint(...) (a pointer to an array)"
        ))),
    }
}

/// `sizeof(T)` of `__type(name, T)`: a pointer to `T`.
fn type_member(btf: &Btf, member: &str, type_id: u32) -> Result<u32, ObjectError> {
    match btf.resolve(type_id)? {
        Some((_, Type::Ptr { type_id })) => {
            let size = btf.size_of(*type_id)?;
            u32::try_from(size)
                .map_err(|_| ObjectError::new(format!("member {member}: a type of {size} bytes")))
        }
        _ => Err(ObjectError::new(format!(
            "member {member} is not __type(...) (a pointer to the type)"
        ))),
    }
}

/// The members of the struct a definition's variable has.
fn members(btf: &Btf, type_id: u32) -> Result<Vec<super::btf::Member>, ObjectError> {
    match btf.resolve(type_id)? {
        Some((_, Type::Struct { members, .. })) => Ok(members.clone()),
        Some((_, other)) => Err(ObjectError::new(format!(
            "a map definition must be a struct, not a {}",
            super::btf::kind_name(other)
        ))),
        None => Err(ObjectError::new(
            "a map definition must be a struct, not void",
        )),
    }
}

/// One definition (a `.maps` variable, or, `template` set, the struct of a `values` template).
/// A template is read one level deep only: one that has `values` itself is refused before it
/// is followed (a definition whose template is itself would otherwise recurse without end).
fn definition(btf: &Btf, name: &str, type_id: u32, template: bool) -> Result<MapSpec, ObjectError> {
    let mut spec = MapSpec {
        name: name.to_string(),
        map_type: 0,
        key_size: 0,
        value_size: 0,
        max_entries: 0,
        map_flags: 0,
        inner: None,
        slots: Vec::new(),
        data: None,
    };
    let (mut key_type, mut value_type) = (None, None);
    let mut values_member = None;
    for m in members(btf, type_id)? {
        match m.name.as_str() {
            "type" => spec.map_type = uint_member(btf, &m.name, m.type_id)?,
            "max_entries" => spec.max_entries = uint_member(btf, &m.name, m.type_id)?,
            "map_flags" => spec.map_flags = uint_member(btf, &m.name, m.type_id)?,
            "key_size" => spec.key_size = uint_member(btf, &m.name, m.type_id)?,
            "value_size" => spec.value_size = uint_member(btf, &m.name, m.type_id)?,
            "numa_node" | "map_extra" => {
                uint_member(btf, &m.name, m.type_id)?;
            }
            "key" => key_type = Some(type_member(btf, &m.name, m.type_id)?),
            "value" => value_type = Some(type_member(btf, &m.name, m.type_id)?),
            "pinning" => {
                if uint_member(btf, &m.name, m.type_id)? != 0 {
                    return Err(ObjectError::new(
                        "pinned maps are not supported (pinning = LIBBPF_PIN_BY_NAME)",
                    ));
                }
            }
            "values" => values_member = Some(m),
            other => {
                return Err(ObjectError::new(format!(
                    "unknown map definition member `{other}`"
                )))
            }
        }
    }
    for (what, size, typed) in [
        ("key", &mut spec.key_size, key_type),
        ("value", &mut spec.value_size, value_type),
    ] {
        match typed {
            Some(t) if *size != 0 && *size != t => {
                return Err(ObjectError::new(format!(
                    "{what}_size {} disagrees with __type({what}) of {t} bytes",
                    *size
                )))
            }
            Some(t) => *size = t,
            None => {}
        }
    }
    if let Some(values) = values_member {
        if template {
            return Err(ObjectError::new("a template that is itself a map-in-map"));
        }
        let kind = spec.kind();
        let prog_array = kind == Some(MapType::ProgArray);
        if !kind.is_some_and(MapType::is_map_in_map) && !prog_array {
            return Err(ObjectError::new(format!(
                "`values` on a map of type {} (only array/hash of maps and PROG_ARRAY take                  `values`)",
                spec.map_type
            )));
        }
        if spec.value_size != 0 && spec.value_size != 4 {
            return Err(ObjectError::new(format!(
                "a map-in-map's or PROG_ARRAY's value_size is 4 (an fd), not {}",
                spec.value_size
            )));
        }
        spec.value_size = 4;
        let shape = if prog_array {
            "`values` of a PROG_ARRAY must be __array(values, int (void *))"
        } else {
            "`values` must be __array(values, struct inner_def)"
        };
        let pointee = match btf.resolve(values.type_id)? {
            Some((_, Type::Array { elem, .. })) => match btf.resolve(*elem)? {
                Some((_, Type::Ptr { type_id })) => *type_id,
                _ => return Err(ObjectError::new(shape)),
            },
            _ => return Err(ObjectError::new(shape)),
        };
        if prog_array {
            // Pointers to functions: the programs stored at load time.
            return match btf.resolve(pointee)? {
                Some((_, Type::FuncProto)) => Ok(spec),
                _ => Err(ObjectError::new(shape)),
            };
        }
        let inner_type = pointee;
        let inner = definition(btf, &format!("{name}.inner"), inner_type, true)
            .map_err(|e| ObjectError::new(format!("its template: {}", e.what)))?;
        spec.inner = Some(Box::new(inner));
    } else if spec.kind().is_some_and(MapType::is_map_in_map) {
        return Err(ObjectError::new(
            "a map-in-map needs __array(values, struct inner_def) for its template",
        ));
    }
    Ok(spec)
}

/// `R_BPF_64_ABS64`: the relocation of a pointer in `.maps` (an initial slot).
const R_BPF_64_ABS64: u32 = 2;

/// A map-in-map's initial slots: the relocations of `.maps` inside its variable's `values`.
fn slots(
    elf: &Elf,
    btf: &Btf,
    section: &super::Section,
    var_offset: u64,
    var_size: u32,
    spec: &MapSpec,
    def_type: u32,
) -> Result<Vec<(u32, String)>, ObjectError> {
    let mut out = Vec::new();
    // The variable's size in the data section covers the initialised `values` elements.
    let start = var_offset;
    let end = start.saturating_add(u64::from(var_size));
    let relocs: Vec<_> = section
        .relocs
        .iter()
        .filter(|(offset, _, _)| (start..end).contains(offset))
        .collect();
    if relocs.is_empty() {
        return Ok(out);
    }
    let prog_array = spec.kind() == Some(MapType::ProgArray);
    if spec.inner.is_none() && !prog_array {
        return Err(ObjectError::new(
            "initial values in a map that is neither a map-in-map nor a PROG_ARRAY",
        ));
    }
    // `values` is the definition's last member: the slots start at its offset.
    let values_offset = members(btf, def_type)?
        .iter()
        .find(|m| m.name == "values")
        .map_or(0, |m| u64::from(m.bit_offset / 8));
    for &&(offset, sym, r_type) in &relocs {
        if r_type != R_BPF_64_ABS64 {
            return Err(ObjectError::new(format!(
                "relocation type {r_type} at offset {offset} (initial values are R_BPF_64_ABS64)"
            )));
        }
        let at = offset - start;
        if at < values_offset || !(at - values_offset).is_multiple_of(8) {
            return Err(ObjectError::new(format!(
                "a relocation at byte {at} of the definition is not a `values` slot"
            )));
        }
        let index = (at - values_offset) / 8;
        if index >= u64::from(spec.max_entries) {
            return Err(ObjectError::new(format!(
                "initial slot {index} is past max_entries {}",
                spec.max_entries
            )));
        }
        // A map-in-map's slot names a map of `.maps`; a PROG_ARRAY's, a program's function.
        let target = elf
            .symbol(sym)
            .filter(|s| {
                if prog_array {
                    s.is_function && s.section != Some(section.index)
                } else {
                    s.section == Some(section.index)
                }
            })
            .ok_or_else(|| {
                ObjectError::new(if prog_array {
                    format!("initial slot {index} is not a program (symbol {sym})")
                } else {
                    format!("initial slot {index} is not a map of .maps (symbol {sym})")
                })
            })?;
        out.push((index as u32, target.name.clone()));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::object::btf::tests::{info, section};

    #[test]
    fn a_definition_whose_template_is_itself_is_refused_not_followed() {
        // struct S { int (*type)[13]; struct S *values[]; }: a hash of maps whose template is
        // S again (what a mutated object can say). Followed, it recursed until the stack ran out.
        let strings = b"\0int\0type\0values\0";
        let btf = Btf::parse(&section(
            &[
                vec![1, info(1, 0), 4, 32],                 // [1] int
                vec![0, info(3, 0), 0, 1, 1, 13],           // [2] int[13]
                vec![0, info(2, 0), 2],                     // [3] int (*)[13]
                vec![0, info(2, 0), 6],                     // [4] struct S *
                vec![0, info(3, 0), 0, 4, 1, 0],            // [5] struct S *[]
                vec![0, info(4, 2), 8, 5, 3, 0, 10, 5, 64], // [6] struct S
            ],
            strings,
        ))
        .expect("parses");
        let e = definition(&btf, "m", 6, false).expect_err("refused");
        assert!(e.what.contains("itself a map-in-map"), "{e}");
    }
}
