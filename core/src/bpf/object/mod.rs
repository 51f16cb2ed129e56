//! Clang-built BPF objects (`.bpf.o`): the maps and programs a user would hand to libbpf or
//! bpftool, read by libbpf's conventions so that mimic loads the same object the same way.
//!
//! * ELF through the `object` crate ([`Elf`], a plain copy of what the loader needs: sections,
//!   symbols, relocations), BTF by [`btf`].
//! * Maps ([`maps`]): `SEC(".maps")` BTF definitions (`__uint`, `__type`, `__array` with the
//!   inner template and the `.values` initial slots), and the global data sections (`.rodata`,
//!   `.data`, `.bss`, `.rodata.*`, `.data.*`) as one-entry arrays.
//! * Programs ([`programs`]): one per global function of an executable section, its type from
//!   the section name (`raw_tp/...`, `tracepoint/...`, `socket`, `xdp`, `tc`, `syscall`, a `?`
//!   prefix for "not loaded by default"), map and data relocations applied, `.text`
//!   subprograms appended as libbpf appends them.
//!
//! What mimic does not support is refused with an [`ObjectError`] naming the feature, the
//! section and the symbol: CO-RE relocations, kfuncs and other extern symbols, struct_ops,
//! the legacy `maps` section, pinned maps.
//!
//! A loaded object's programs refer to maps by their index in [`Object::maps`]
//! ([`BPF_PSEUDO_MAP_FD`](crate::isa::BPF_PSEUDO_MAP_FD) / `BPF_PSEUDO_MAP_VALUE` loads whose
//! immediate is that index): whoever creates the maps (the world, the kernel) substitutes its
//! fds ([`Program::with_fds`]).
//!
//! Invariants: parsing never panics on any bytes, and every size it allocates from is bounded
//! by the input's own length.

pub mod btf;
pub mod load;
pub mod maps;
pub mod programs;

use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
use std::fmt;

pub use maps::{DataMap, MapSpec};
pub use programs::{ProgKind, Program, Reloc, RelocTarget};

/// Why an object is refused: what, where (section, symbol when there is one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectError {
    pub what: String,
    pub section: Option<String>,
    pub symbol: Option<String>,
}

impl ObjectError {
    pub fn new(what: impl Into<String>) -> ObjectError {
        ObjectError {
            what: what.into(),
            section: None,
            symbol: None,
        }
    }
    pub fn in_section(mut self, section: &str) -> ObjectError {
        self.section.get_or_insert_with(|| section.to_string());
        self
    }
    pub fn at_symbol(mut self, symbol: &str) -> ObjectError {
        if !symbol.is_empty() {
            self.symbol.get_or_insert_with(|| symbol.to_string());
        }
        self
    }
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.section, &self.symbol) {
            (Some(sec), Some(sym)) => write!(f, "section {sec}, symbol {sym}: {}", self.what),
            (Some(sec), None) => write!(f, "section {sec}: {}", self.what),
            (None, Some(sym)) => write!(f, "symbol {sym}: {}", self.what),
            (None, None) => f.write_str(&self.what),
        }
    }
}

impl std::error::Error for ObjectError {}

impl From<btf::BtfError> for ObjectError {
    fn from(e: btf::BtfError) -> Self {
        ObjectError::new(e.0).in_section(".BTF")
    }
}

/// One ELF section, as much as the loader reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub index: usize,
    pub name: String,
    pub data: Vec<u8>,
    /// `SHT_NOBITS` (`.bss`): no bytes in the file, `size` zeroes.
    pub size: u64,
    pub executable: bool,
    /// `(offset, symbol index, ELF relocation type)` of the section's relocations.
    pub relocs: Vec<(u64, usize, u32)>,
}

/// One ELF symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    /// Index of its section (`None`: undefined, i.e. extern).
    pub section: Option<usize>,
    pub value: u64,
    pub size: u64,
    pub global: bool,
    pub is_function: bool,
    /// A section symbol (stands for its section's start).
    pub is_section: bool,
}

/// What the loader reads from the ELF file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Elf {
    pub sections: Vec<Section>,
    /// Symbols by their ELF index (holes for indices the file does not use are `None`).
    pub symbols: Vec<Option<Symbol>>,
}

/// `EM_BPF`.
const EM_BPF: u16 = 247;

impl Elf {
    /// Reads a little-endian 64-bit BPF relocatable object.
    pub fn parse(bytes: &[u8]) -> Result<Elf, ObjectError> {
        let file = object::read::elf::ElfFile64::<object::LittleEndian>::parse(bytes)
            .map_err(|e| ObjectError::new(format!("not a 64-bit little-endian ELF file: {e}")))?;
        let machine = file.elf_header().e_machine.get(object::LittleEndian);
        if machine != EM_BPF {
            return Err(ObjectError::new(format!(
                "ELF machine {machine}, not BPF ({EM_BPF}): build with clang -target bpf"
            )));
        }
        let mut sections = Vec::new();
        for section in file.sections() {
            let name = section
                .name()
                .map_err(|e| ObjectError::new(format!("a section name: {e}")))?
                .to_string();
            let nobits = section.kind() == object::SectionKind::UninitializedData;
            let data = if nobits {
                Vec::new()
            } else {
                section
                    .data()
                    .map_err(|e| ObjectError::new(format!("its data: {e}")).in_section(&name))?
                    .to_vec()
            };
            let mut relocs = Vec::new();
            for (offset, reloc) in section.relocations() {
                let object::RelocationTarget::Symbol(sym) = reloc.target() else {
                    return Err(ObjectError::new(format!(
                        "a relocation at offset {offset} without a symbol"
                    ))
                    .in_section(&name));
                };
                let r_type = match reloc.flags() {
                    object::RelocationFlags::Elf { r_type } => r_type,
                    other => {
                        return Err(ObjectError::new(format!(
                            "a relocation at offset {offset} of a non-ELF kind {other:?}"
                        ))
                        .in_section(&name))
                    }
                };
                relocs.push((offset, sym.0, r_type));
            }
            sections.push(Section {
                index: section.index().0,
                executable: section.kind() == object::SectionKind::Text,
                size: section.size(),
                name,
                data,
                relocs,
            });
        }
        let mut symbols: Vec<Option<Symbol>> = Vec::new();
        for symbol in file.symbols() {
            let index = symbol.index().0;
            // ELF symbol indices are dense and bounded by the symbol table's size.
            if symbols.len() <= index {
                symbols.resize(index + 1, None);
            }
            symbols[index] = Some(Symbol {
                name: symbol.name().unwrap_or("").to_string(),
                section: symbol.section_index().map(|s| s.0),
                value: symbol.address(),
                size: symbol.size(),
                global: symbol.is_global(),
                is_function: symbol.kind() == object::SymbolKind::Text,
                is_section: symbol.kind() == object::SymbolKind::Section,
            });
        }
        Ok(Elf { sections, symbols })
    }

    pub fn section(&self, index: usize) -> Option<&Section> {
        self.sections.iter().find(|s| s.index == index)
    }

    pub fn section_named(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    pub fn symbol(&self, index: usize) -> Option<&Symbol> {
        self.symbols.get(index).and_then(Option::as_ref)
    }
}

/// A loaded object: its licence, maps and programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub license: String,
    /// `.maps` definitions first (in section order), then the data sections.
    pub maps: Vec<MapSpec>,
    pub programs: Vec<Program>,
}

impl Object {
    /// Loads an object from its bytes.
    pub fn parse(bytes: &[u8]) -> Result<Object, ObjectError> {
        let elf = Elf::parse(bytes)?;
        refuse_unsupported(&elf)?;
        let btf = match elf.section_named(".BTF") {
            Some(s) => Some(btf::Btf::parse(&s.data)?),
            None => None,
        };
        let maps = maps::read(&elf, btf.as_ref())?;
        let programs = programs::read(&elf, &maps)?;
        let license = elf
            .section_named("license")
            .map(|s| {
                let end = s.data.iter().position(|&b| b == 0).unwrap_or(s.data.len());
                String::from_utf8_lossy(&s.data[..end]).into_owned()
            })
            .unwrap_or_default();
        Ok(Object {
            license,
            maps,
            programs,
        })
    }

    /// The index of the map called `name`.
    pub fn map_index(&self, name: &str) -> Option<usize> {
        self.maps.iter().position(|m| m.name == name)
    }

    /// The program whose function is called `name`.
    pub fn program(&self, name: &str) -> Option<&Program> {
        self.programs.iter().find(|p| p.name == name)
    }
}

/// Sections whose features mimic does not model: refused up front, by name.
fn refuse_unsupported(elf: &Elf) -> Result<(), ObjectError> {
    for s in &elf.sections {
        let refuse = |what: &str| Err(ObjectError::new(what.to_string()).in_section(&s.name));
        match s.name.as_str() {
            "maps" => return refuse("the legacy `maps` section (struct bpf_map_def) is not supported: define maps in SEC(\".maps\") with BTF"),
            ".struct_ops" | ".struct_ops.link" => return refuse("struct_ops maps are not supported"),
            ".kconfig" | ".ksyms" => return refuse("extern kernel symbols (kconfig, ksyms) are not supported"),
            ".BTF.ext" if has_core_relocs(&s.data) => {
                return refuse("CO-RE relocations are not supported (build without __builtin_preserve_access_index / BPF_CORE_READ)")
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether a `.BTF.ext` section holds CO-RE relocation records (its header is long enough to
/// name them and their subsection has a record).
fn has_core_relocs(ext: &[u8]) -> bool {
    let word = |at: usize| {
        ext.get(at..at + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let hdr_len = word(4) as usize;
    // Header: magic, version, flags (4), hdr_len, func_info off/len, line_info off/len,
    // core_relo off/len: the last two exist when hdr_len covers them.
    hdr_len >= 32 && word(28) > 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_are_no_bpf_object_are_refused_with_a_reason() {
        let e = Object::parse(b"not an elf").unwrap_err();
        assert!(
            e.to_string().contains("not a 64-bit little-endian ELF"),
            "{e}"
        );
        let e = Object::parse(&[]).unwrap_err();
        assert!(e.to_string().contains("ELF"), "{e}");
    }

    #[test]
    fn core_relocations_are_seen_in_the_btf_ext_header() {
        let mut ext = vec![0u8; 32];
        ext[4..8].copy_from_slice(&32u32.to_le_bytes());
        assert!(!has_core_relocs(&ext));
        ext[28..32].copy_from_slice(&20u32.to_le_bytes());
        assert!(has_core_relocs(&ext));
        ext[4..8].copy_from_slice(&24u32.to_le_bytes());
        assert!(!has_core_relocs(&ext), "a short header has no CO-RE part");
    }
}
