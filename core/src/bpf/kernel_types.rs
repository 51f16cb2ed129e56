//! The kernel's own struct layouts, as BTF: what a privileged program reading through a map
//! pointer is checked against (`struct bpf_array`, `struct bpf_htab`, and `struct bpf_map`
//! inside them).
//!
//! Kernel builds lay these structs out differently even under one version string, so mimic
//! does not write the layout down as offsets. It keeps one build's BTF, cut down to the types
//! the map structs contain by value ([`KernelTypes::recorded`], from 6.18.44-fc-v1300 on
//! x86-64, in `kernel_types/`), and reads the running kernel's `/sys/kernel/btf/vmlinux` where
//! a command is asked to follow the live kernel ([`KernelTypes::from_vmlinux`]). Pointers in
//! the cut-down BTF point to `void`: the walk only needs to know that a member is a pointer.
//!
//! The alternative, a crate, would bring a BTF parser besides the one the object loader
//! already has (`bpf::object::btf`), which this reuses.
//!
//! Main types: [`KernelTypes`] (a BTF with its named structs indexed) and [`TypesRef`] (the
//! `'static` handle verifier options carry, compared by identity). Invariants: the index holds
//! every named struct of the BTF, first one of a name wins (vmlinux has one per name).

use crate::bpf::object::btf::{Btf, BtfError, Member, Type};
use crate::maps::kind::KINDS;
use std::collections::BTreeMap;
use std::fmt;

/// The cut-down BTF of the recorded build.
const RECORDED: &[u8] = include_bytes!("kernel_types/6.18.44-fc-v1300.btf");
/// Which build [`RECORDED`] comes from.
const RECORDED_FROM: &str = "BTF recorded from Linux 6.18.44-fc-v1300 (x86-64)";

/// A kernel build's struct types.
pub struct KernelTypes {
    btf: Btf,
    structs: BTreeMap<String, u32>,
    source: String,
}

impl fmt::Debug for KernelTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KernelTypes({}, {} types)",
            self.source,
            self.btf.types.len()
        )
    }
}

/// The structs a map pointer can be read as: every kind's own struct, and `struct bpf_map`.
pub fn map_structs() -> Vec<&'static str> {
    let mut names: Vec<&str> = KINDS.iter().map(|k| k.btf_struct).collect();
    names.push("bpf_map");
    names.sort_unstable();
    names.dedup();
    names
}

impl KernelTypes {
    /// Parses a BTF blob; `source` says where it came from (shown in messages and reports).
    pub fn parse(bytes: &[u8], source: &str) -> Result<KernelTypes, BtfError> {
        let btf = Btf::parse(bytes)?;
        let mut structs = BTreeMap::new();
        for (i, ty) in btf.types.iter().enumerate() {
            if let Type::Struct { name, .. } = ty {
                if !name.is_empty() {
                    structs.entry(name.clone()).or_insert(i as u32 + 1);
                }
            }
        }
        Ok(KernelTypes {
            btf,
            structs,
            source: source.to_string(),
        })
    }

    /// The running kernel's types, from the bytes of `/sys/kernel/btf/vmlinux`.
    pub fn from_vmlinux(bytes: &[u8]) -> Result<KernelTypes, BtfError> {
        KernelTypes::parse(bytes, "the running kernel's BTF (/sys/kernel/btf/vmlinux)")
    }

    /// The recorded build's types (the default where no kernel is followed), parsed on each
    /// call: only programs that read through a map pointer need them ([`TypesRef::get`] keeps
    /// them for a verification).
    pub fn recorded() -> KernelTypes {
        KernelTypes::parse(RECORDED, RECORDED_FROM).expect("the recorded BTF parses")
    }

    pub fn btf(&self) -> &Btf {
        &self.btf
    }

    /// The type id of struct `name`.
    pub fn struct_id(&self, name: &str) -> Option<u32> {
        self.structs.get(name).copied()
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The BTF of `roots` and every type they hold by value (members, array elements,
    /// typedefs), renumbered from 1; pointers become `void *`. This is how the recorded blob
    /// was made from a kernel's vmlinux BTF.
    pub fn cut_down(&self, roots: &[&str]) -> Result<Vec<u8>, BtfError> {
        let mut order: Vec<u32> = Vec::new();
        let mut new_id: BTreeMap<u32, u32> = BTreeMap::new();
        let mut queue: Vec<u32> = Vec::new();
        for name in roots {
            let id = self
                .struct_id(name)
                .ok_or_else(|| BtfError(format!("no struct {name} in {}", self.source)))?;
            queue.push(id);
        }
        // Breadth first, so ids follow the roots' order.
        let mut at = 0;
        while at < queue.len() {
            let id = queue[at];
            at += 1;
            if id == 0 || new_id.contains_key(&id) {
                continue;
            }
            new_id.insert(id, order.len() as u32 + 1);
            order.push(id);
            match self.btf.get(id)? {
                Some(Type::Struct { members, .. } | Type::Union { members, .. }) => {
                    queue.extend(members.iter().map(|m| m.type_id))
                }
                Some(Type::Array { elem, .. }) => queue.push(*elem),
                Some(Type::Alias { type_id, .. }) => queue.push(*type_id),
                _ => {}
            }
        }
        let map = |id: u32| if id == 0 { 0 } else { new_id[&id] };
        let mut types = Vec::with_capacity(order.len());
        for id in order {
            let ty = self.btf.get(id)?.expect("ids in the queue are not void");
            types.push(match ty {
                Type::Ptr { .. } => Type::Ptr { type_id: 0 },
                Type::Array { elem, nelems } => Type::Array {
                    elem: map(*elem),
                    nelems: *nelems,
                },
                Type::Alias { name, type_id } => Type::Alias {
                    name: name.clone(),
                    type_id: map(*type_id),
                },
                Type::Struct {
                    name,
                    size,
                    members,
                } => Type::Struct {
                    name: name.clone(),
                    size: *size,
                    members: renumber(members, map),
                },
                Type::Union {
                    name,
                    size,
                    members,
                } => Type::Union {
                    name: name.clone(),
                    size: *size,
                    members: renumber(members, map),
                },
                // A float has no kind of its own in the writer: an integer of its size reads
                // the same to the walk.
                Type::Float { name, size } => Type::Int {
                    name: name.clone(),
                    size: *size,
                },
                other => other.clone(),
            });
        }
        Btf { types }.to_bytes()
    }
}

fn renumber(members: &[Member], map: impl Fn(u32) -> u32) -> Vec<Member> {
    members
        .iter()
        .map(|m| Member {
            type_id: map(m.type_id),
            ..m.clone()
        })
        .collect()
}

/// The types a verification follows: the recorded build's, or a `'static` set (the running
/// kernel's, read once by a command that follows it), compared by identity.
#[derive(Clone, Copy, Default)]
pub enum TypesRef {
    #[default]
    Recorded,
    Of(&'static KernelTypes),
}

impl TypesRef {
    /// The types, the recorded ones parsed into `parsed` at the first need (a verification
    /// keeps one `parsed`, so a program with many map-pointer reads parses once).
    pub fn get(self, parsed: &mut Option<KernelTypes>) -> &KernelTypes {
        match self {
            TypesRef::Recorded => parsed.get_or_insert_with(KernelTypes::recorded),
            TypesRef::Of(types) => types,
        }
    }
}

impl PartialEq for TypesRef {
    fn eq(&self, other: &TypesRef) -> bool {
        match (self, other) {
            (TypesRef::Recorded, TypesRef::Recorded) => true,
            (TypesRef::Of(a), TypesRef::Of(b)) => std::ptr::eq(*a, *b),
            _ => false,
        }
    }
}

impl Eq for TypesRef {}

impl fmt::Debug for TypesRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypesRef::Recorded => f.write_str(RECORDED_FROM),
            TypesRef::Of(types) => f.write_str(types.source()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::verifier::btf_walk::{walk, Field};

    #[test]
    fn the_recorded_build_has_every_map_struct_and_bpf_map_read_by_name() {
        let types = &KernelTypes::recorded();
        for name in map_structs() {
            assert!(types.struct_id(name).is_some(), "struct {name}");
        }
        let array = types.struct_id("bpf_array").expect("bpf_array");
        // In the recorded build `struct bpf_map` opens with a 32-byte `sha`; `max_entries` is at
        // 76 and `ops` at 40.
        assert_eq!(walk(types.btf(), array, 76, 4), Ok(Field::Scalar));
        assert!(matches!(
            walk(types.btf(), array, 40, 8),
            Ok(Field::Pointer { ref member, ref in_struct }) if member == "ops" && in_struct == "bpf_map"
        ));
        assert_eq!(
            walk(types.btf(), array, 28, 8),
            Err("access beyond the end of member sha (mend:32) in struct bpf_map with off 28 size 8".into())
        );
    }

    #[test]
    fn cutting_down_keeps_the_layout_the_walk_sees() {
        let types = &KernelTypes::recorded();
        let again = KernelTypes::parse(&types.cut_down(&map_structs()).expect("cuts"), "again")
            .expect("parses");
        let (a, b) = (
            types.struct_id("bpf_htab").expect("bpf_htab"),
            again.struct_id("bpf_htab").expect("bpf_htab"),
        );
        for off in 0..400 {
            for size in [1, 2, 4, 8] {
                assert_eq!(
                    walk(types.btf(), a, off, size),
                    walk(again.btf(), b, off, size),
                    "off {off} size {size}"
                );
            }
        }
    }

    /// Writes the cut-down BTF of this machine's kernel to `$MIMIC_RECORD_TYPES` (how the
    /// recorded blob is made): `MIMIC_RECORD_TYPES=core/src/bpf/kernel_types/NAME.btf cargo
    /// test -p mimic-core record_this_kernels_types -- --ignored`.
    #[test]
    #[ignore = "writes a file from /sys/kernel/btf/vmlinux"]
    fn record_this_kernels_types() {
        let Ok(out) = std::env::var("MIMIC_RECORD_TYPES") else {
            panic!("set MIMIC_RECORD_TYPES to the file to write");
        };
        let bytes = std::fs::read("/sys/kernel/btf/vmlinux").expect("vmlinux BTF readable");
        let types = KernelTypes::from_vmlinux(&bytes).expect("vmlinux parses");
        let cut = types.cut_down(&map_structs()).expect("cuts");
        std::fs::write(&out, cut).expect("writes");
    }
}
