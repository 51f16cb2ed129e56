//! BTF, the type information clang writes into a BPF object's `.BTF` section: as much of it as
//! a loader needs to read `SEC(".maps")` definitions (libbpf's `__uint`, `__type`, `__array`
//! conventions) and to size the types they name.
//!
//! The alternative was a crate (aya-obj parses BTF map definitions, but not the `.values`
//! initial slots of map-in-map definitions, and brings a large dependency tree); the format is a
//! header, a string table and a flat array of typed records, which is small to read here.
//!
//! Main types: [`Btf`] (the parsed type table), [`Type`] (one record, ids from 1; 0 is `void`).
//! Invariants: parsing never panics and never allocates more than the section's own size
//! implies (every count is bounded by the bytes left); references to type ids are checked when
//! followed, and chains of modifiers and typedefs are followed at most [`MAX_CHAIN`] steps, so
//! a cycle is an error, not a hang.

use std::fmt;

/// `BTF_MAGIC` as it reads in a little-endian object.
const MAGIC: u16 = 0xeb9f;
/// How many modifier or typedef links [`Btf::resolve`] follows before calling it a cycle.
pub const MAX_CHAIN: usize = 32;

/// What a malformed section is refused with: where in it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtfError(pub String);

impl fmt::Display for BtfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, ".BTF: {}", self.0)
    }
}

impl std::error::Error for BtfError {}

fn err<T>(message: impl Into<String>) -> Result<T, BtfError> {
    Err(BtfError(message.into()))
}

/// One member of a struct or union: its name, type and bit offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub type_id: u32,
    pub bit_offset: u32,
    /// Bits of a bitfield member; 0 for a whole member.
    pub bitfield_size: u32,
}

/// One variable of a data section: its `VAR` type, offset and size in the section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecVar {
    pub type_id: u32,
    pub offset: u32,
    pub size: u32,
}

/// A BTF type record (the kinds a BPF object carries; the rest are read and kept opaque).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    Int {
        name: String,
        size: u32,
    },
    Ptr {
        type_id: u32,
    },
    Array {
        elem: u32,
        nelems: u32,
    },
    Struct {
        name: String,
        size: u32,
        members: Vec<Member>,
    },
    Union {
        name: String,
        size: u32,
        members: Vec<Member>,
    },
    Enum {
        name: String,
        size: u32,
    },
    Fwd {
        name: String,
    },
    /// `TYPEDEF`, `VOLATILE`, `CONST`, `RESTRICT`, `TYPE_TAG`: a name (maybe empty) for another type.
    Alias {
        name: String,
        type_id: u32,
    },
    Func {
        name: String,
        proto: u32,
    },
    FuncProto,
    Var {
        name: String,
        type_id: u32,
    },
    DataSec {
        name: String,
        size: u32,
        vars: Vec<SecVar>,
    },
    Float {
        name: String,
        size: u32,
    },
    DeclTag,
}

/// A parsed `.BTF` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Btf {
    /// Types by id - 1 (id 0 is `void`).
    pub types: Vec<Type>,
}

/// A little-endian reader over the section's bytes, every read checked.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn u32(&mut self, what: &str) -> Result<u32, BtfError> {
        let end = self.at.checked_add(4).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return err(format!(
                "{what} at byte {} runs past the type section",
                self.at
            ));
        };
        let v = u32::from_le_bytes(self.bytes[self.at..end].try_into().expect("4 bytes"));
        self.at = end;
        Ok(v)
    }
    fn skip(&mut self, n: usize, what: &str) -> Result<(), BtfError> {
        match self.at.checked_add(n).filter(|&e| e <= self.bytes.len()) {
            Some(end) => {
                self.at = end;
                Ok(())
            }
            None => err(format!(
                "{what} at byte {} runs past the type section",
                self.at
            )),
        }
    }
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

impl Btf {
    /// Parses a `.BTF` section (little-endian, version 1).
    pub fn parse(bytes: &[u8]) -> Result<Btf, BtfError> {
        if bytes.len() < 24 {
            return err(format!("{} bytes, shorter than a header", bytes.len()));
        }
        let magic = u16::from_le_bytes([bytes[0], bytes[1]]);
        if magic != MAGIC {
            return err(format!(
                "magic {magic:#06x}, not {MAGIC:#06x} (a big-endian object?)"
            ));
        }
        if bytes[2] != 1 {
            return err(format!("version {}, not 1", bytes[2]));
        }
        let field = |at: usize| le_u32(bytes, at).unwrap_or(0) as usize;
        let (hdr_len, type_off, type_len, str_off, str_len) =
            (field(4), field(8), field(12), field(16), field(20));
        let section = |off: usize, len: usize, what: &str| {
            hdr_len
                .checked_add(off)
                .and_then(|start| Some((start, start.checked_add(len)?)))
                .filter(|&(_, end)| end <= bytes.len())
                .map(|(start, end)| &bytes[start..end])
                .ok_or_else(|| {
                    BtfError(format!(
                        "{what} ({len} bytes at {off} after a {hdr_len}-byte header) runs past \
                         the section's {} bytes",
                        bytes.len()
                    ))
                })
        };
        let types = section(type_off, type_len, "the type section")?;
        let strings = section(str_off, str_len, "the string section")?;
        let name = |off: u32| -> Result<String, BtfError> {
            let off = off as usize;
            let Some(rest) = strings.get(off..) else {
                return err(format!(
                    "a name at string offset {off} is past the string section"
                ));
            };
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
        };
        let mut r = Reader {
            bytes: types,
            at: 0,
        };
        let mut out = Vec::new();
        while r.at < types.len() {
            let id = out.len() + 1;
            let what = format!("type [{id}]");
            let name_off = r.u32(&what)?;
            let info = r.u32(&what)?;
            let size_or_type = r.u32(&what)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let ty = match kind {
                1 => {
                    r.u32(&what)?;
                    Type::Int {
                        name: name(name_off)?,
                        size: size_or_type,
                    }
                }
                2 => Type::Ptr {
                    type_id: size_or_type,
                },
                3 => {
                    let elem = r.u32(&what)?;
                    r.u32(&what)?;
                    let nelems = r.u32(&what)?;
                    Type::Array { elem, nelems }
                }
                4 | 5 => {
                    let mut members = Vec::with_capacity(vlen.min(types.len() / 12));
                    for _ in 0..vlen {
                        let member_name = r.u32(&what)?;
                        let type_id = r.u32(&what)?;
                        let offset = r.u32(&what)?;
                        // With kind_flag set, the top 8 bits are a bitfield size.
                        let (bit_offset, bitfield_size) = if info >> 31 == 1 {
                            (offset & 0x00ff_ffff, offset >> 24)
                        } else {
                            (offset, 0)
                        };
                        members.push(Member {
                            name: name(member_name)?,
                            type_id,
                            bit_offset,
                            bitfield_size,
                        });
                    }
                    let (name, size) = (name(name_off)?, size_or_type);
                    if kind == 4 {
                        Type::Struct {
                            name,
                            size,
                            members,
                        }
                    } else {
                        Type::Union {
                            name,
                            size,
                            members,
                        }
                    }
                }
                6 => {
                    r.skip(vlen.saturating_mul(8), &what)?;
                    Type::Enum {
                        name: name(name_off)?,
                        size: size_or_type,
                    }
                }
                19 => {
                    r.skip(vlen.saturating_mul(12), &what)?;
                    Type::Enum {
                        name: name(name_off)?,
                        size: size_or_type,
                    }
                }
                7 => Type::Fwd {
                    name: name(name_off)?,
                },
                8..=11 | 18 => Type::Alias {
                    name: name(name_off)?,
                    type_id: size_or_type,
                },
                12 => Type::Func {
                    name: name(name_off)?,
                    proto: size_or_type,
                },
                13 => {
                    r.skip(vlen.saturating_mul(8), &what)?;
                    Type::FuncProto
                }
                14 => {
                    r.u32(&what)?;
                    Type::Var {
                        name: name(name_off)?,
                        type_id: size_or_type,
                    }
                }
                15 => {
                    let mut vars = Vec::with_capacity(vlen.min(types.len() / 12));
                    for _ in 0..vlen {
                        vars.push(SecVar {
                            type_id: r.u32(&what)?,
                            offset: r.u32(&what)?,
                            size: r.u32(&what)?,
                        });
                    }
                    Type::DataSec {
                        name: name(name_off)?,
                        size: size_or_type,
                        vars,
                    }
                }
                16 => Type::Float {
                    name: name(name_off)?,
                    size: size_or_type,
                },
                17 => {
                    r.u32(&what)?;
                    Type::DeclTag
                }
                other => {
                    return err(format!(
                        "{what} has kind {other}, which BTF does not define"
                    ))
                }
            };
            out.push(ty);
        }
        Ok(Btf { types: out })
    }

    /// The type with id `id` (`None` for `void`, id 0).
    pub fn get(&self, id: u32) -> Result<Option<&Type>, BtfError> {
        match id {
            0 => Ok(None),
            id => self.types.get(id as usize - 1).map(Some).ok_or_else(|| {
                BtfError(format!(
                    "type id {id} is past the {} types",
                    self.types.len()
                ))
            }),
        }
    }

    /// The type `id` stands for, through typedefs and modifiers (`None`: `void`).
    pub fn resolve(&self, id: u32) -> Result<Option<(u32, &Type)>, BtfError> {
        let mut id = id;
        for _ in 0..MAX_CHAIN {
            match self.get(id)? {
                None => return Ok(None),
                Some(Type::Alias { type_id, .. }) => id = *type_id,
                Some(ty) => return Ok(Some((id, ty))),
            }
        }
        err(format!(
            "type id {id}: more than {MAX_CHAIN} typedefs or modifiers (a cycle?)"
        ))
    }

    /// The size in bytes of a type, as `sizeof` gives it.
    pub fn size_of(&self, id: u32) -> Result<u64, BtfError> {
        self.size_of_depth(id, 0)
    }

    fn size_of_depth(&self, id: u32, depth: usize) -> Result<u64, BtfError> {
        if depth > MAX_CHAIN {
            return err(format!(
                "type id {id}: arrays nested more than {MAX_CHAIN} deep"
            ));
        }
        match self.resolve(id)? {
            None => err("the size of void"),
            Some((_, ty)) => match ty {
                Type::Int { size, .. }
                | Type::Struct { size, .. }
                | Type::Union { size, .. }
                | Type::Enum { size, .. }
                | Type::Float { size, .. }
                | Type::DataSec { size, .. } => Ok(u64::from(*size)),
                Type::Ptr { .. } => Ok(8),
                Type::Array { elem, nelems } => Ok(self
                    .size_of_depth(*elem, depth + 1)?
                    .saturating_mul(u64::from(*nelems))),
                Type::Var { type_id, .. } => self.size_of_depth(*type_id, depth + 1),
                other => err(format!("type id {id} ({}) has no size", kind_name(other))),
            },
        }
    }

    /// The data section called `name`, if the object describes one.
    pub fn datasec(&self, name: &str) -> Option<(&[SecVar], u32)> {
        self.types.iter().find_map(|t| match t {
            Type::DataSec {
                name: n,
                vars,
                size,
            } if n == name => Some((vars.as_slice(), *size)),
            _ => None,
        })
    }

    /// The name of a `VAR`, `FUNC` or named type (empty for anonymous types).
    pub fn name_of(&self, id: u32) -> String {
        match self.get(id) {
            Ok(Some(
                Type::Var { name, .. }
                | Type::Func { name, .. }
                | Type::Struct { name, .. }
                | Type::Union { name, .. }
                | Type::Int { name, .. }
                | Type::Enum { name, .. }
                | Type::Alias { name, .. }
                | Type::Fwd { name }
                | Type::Float { name, .. }
                | Type::DataSec { name, .. },
            )) => name.clone(),
            _ => String::new(),
        }
    }
}

impl Btf {
    /// The section's bytes for these types: what [`Btf::parse`] reads back as the same types.
    /// Only the kinds a struct layout needs are written (integers, pointers, arrays, structs,
    /// unions, enums without their values, forward declarations and typedefs); any other kind
    /// is an error naming it.
    pub fn to_bytes(&self) -> Result<Vec<u8>, BtfError> {
        let mut strings = vec![0u8];
        let mut name = |s: &str| -> u32 {
            if s.is_empty() {
                return 0;
            }
            let at = strings.len() as u32;
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            at
        };
        let mut words: Vec<u32> = Vec::new();
        for (i, ty) in self.types.iter().enumerate() {
            match ty {
                Type::Int { name: n, size } => {
                    words.extend([name(n), record_info(1, 0, false), *size, size * 8])
                }
                Type::Ptr { type_id } => words.extend([0, record_info(2, 0, false), *type_id]),
                Type::Array { elem, nelems } => {
                    words.extend([0, record_info(3, 0, false), 0, *elem, 0, *nelems])
                }
                Type::Struct {
                    name: n,
                    size,
                    members,
                }
                | Type::Union {
                    name: n,
                    size,
                    members,
                } => {
                    let kind = if matches!(ty, Type::Struct { .. }) {
                        4
                    } else {
                        5
                    };
                    let bitfields = members.iter().any(|m| m.bitfield_size != 0);
                    words.extend([name(n), record_info(kind, members.len(), bitfields), *size]);
                    for m in members {
                        let offset = if bitfields {
                            m.bitfield_size << 24 | m.bit_offset
                        } else {
                            m.bit_offset
                        };
                        words.extend([name(&m.name), m.type_id, offset]);
                    }
                }
                Type::Enum { name: n, size } => {
                    words.extend([name(n), record_info(6, 0, false), *size])
                }
                Type::Fwd { name: n } => words.extend([name(n), record_info(7, 0, false), 0]),
                Type::Alias { name: n, type_id } => {
                    words.extend([name(n), record_info(8, 0, false), *type_id])
                }
                other => {
                    return err(format!(
                        "type [{}] is a {}, which this writer does not write",
                        i + 1,
                        kind_name(other)
                    ))
                }
            }
        }
        Ok(section_bytes(&words, &strings))
    }
}

/// A type record's `info` word: kind_flag, kind and vlen.
fn record_info(kind: u32, vlen: usize, kind_flag: bool) -> u32 {
    (u32::from(kind_flag) << 31) | (kind << 24) | vlen as u32
}

/// A section of these type words and this string table: the 24-byte header, then both.
fn section_bytes(words: &[u32], strings: &[u8]) -> Vec<u8> {
    let types: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut out = Vec::with_capacity(24 + types.len() + strings.len());
    out.extend(MAGIC.to_le_bytes());
    out.extend([1u8, 0]);
    let (types_len, strings_len) = (types.len() as u32, strings.len() as u32);
    for w in [24u32, 0, types_len, types_len, strings_len] {
        out.extend(w.to_le_bytes());
    }
    out.extend(types);
    out.extend_from_slice(strings);
    out
}

/// A kind's name in BTF's words, for messages.
pub fn kind_name(ty: &Type) -> &'static str {
    match ty {
        Type::Int { .. } => "INT",
        Type::Ptr { .. } => "PTR",
        Type::Array { .. } => "ARRAY",
        Type::Struct { .. } => "STRUCT",
        Type::Union { .. } => "UNION",
        Type::Enum { .. } => "ENUM",
        Type::Fwd { .. } => "FWD",
        Type::Alias { .. } => "TYPEDEF",
        Type::Func { .. } => "FUNC",
        Type::FuncProto => "FUNC_PROTO",
        Type::Var { .. } => "VAR",
        Type::DataSec { .. } => "DATASEC",
        Type::Float { .. } => "FLOAT",
        Type::DeclTag => "DECL_TAG",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a `.BTF` section from type records (each a list of u32 words) and a string table.
    pub fn section(records: &[Vec<u32>], strings: &[u8]) -> Vec<u8> {
        let words: Vec<u32> = records.iter().flatten().copied().collect();
        section_bytes(&words, strings)
    }

    /// `info` of a record: kind and vlen.
    pub fn info(kind: u32, vlen: u32) -> u32 {
        record_info(kind, vlen as usize, false)
    }

    #[test]
    fn a_struct_of_pointers_to_arrays_reads_like_a_map_definition() {
        // "\0int\0type\0max_entries\0"
        let strings = b"\0int\0type\0max_entries\0";
        let btf = Btf::parse(&section(
            &[
                vec![1, info(1, 0), 4, 32],                  // [1] int, 4 bytes
                vec![0, info(3, 0), 0, 1, 1, 12],            // [2] int[12]
                vec![0, info(2, 0), 2],                      // [3] int (*)[12]
                vec![0, info(3, 0), 0, 1, 1, 3],             // [4] int[3]
                vec![0, info(2, 0), 4],                      // [5] int (*)[3]
                vec![0, info(4, 2), 16, 5, 3, 0, 10, 5, 64], // [6] struct { type; max_entries; }
            ],
            strings,
        ))
        .expect("parses");
        assert_eq!(btf.types.len(), 6);
        let Ok(Some(Type::Struct { members, size, .. })) = btf.get(6) else {
            panic!("a struct");
        };
        assert_eq!(*size, 16);
        assert_eq!(members[1].name, "max_entries");
        assert_eq!(btf.size_of(2), Ok(48));
        assert_eq!(btf.size_of(3), Ok(8));
    }

    #[test]
    fn malformed_sections_are_errors_naming_the_place() {
        assert!(Btf::parse(&[0; 8])
            .unwrap_err()
            .0
            .contains("shorter than a header"));
        let mut bad = section(&[vec![0, info(1, 0), 4]], b"\0");
        assert!(Btf::parse(&bad).unwrap_err().0.contains("type [1]"));
        bad[0] = 0;
        assert!(Btf::parse(&bad).unwrap_err().0.contains("magic"));
        let unknown = section(&[vec![0, info(31, 0), 0]], b"\0");
        assert!(Btf::parse(&unknown).unwrap_err().0.contains("kind 31"));
        // A typedef cycle is an error, not a hang.
        let cycle = Btf::parse(&section(&[vec![0, info(8, 0), 1]], b"\0")).expect("parses");
        assert!(cycle.resolve(1).unwrap_err().0.contains("cycle"));
        // A huge vlen with few bytes left fails on the bytes, without allocating for the count.
        let huge = section(&[vec![0, info(4, 0xffff), 4]], b"\0");
        assert!(Btf::parse(&huge).unwrap_err().0.contains("runs past"));
    }
}
