//! An object's programs, by libbpf's conventions: every global function of an executable
//! section is a program, its type named by the section (`SEC("raw_tp/sys_enter")`); its map and
//! global-data references are relocated to map indices; the static functions of `.text` it
//! calls are appended after it, each once, in the order a linear scan of the growing program
//! first meets them (libbpf's `bpf_object__reloc_code`), and every call is re-aimed.
//!
//! Main types: [`Program`] (its instructions refer to maps by index into `Object::maps`:
//! `BPF_PSEUDO_MAP_FD` with the index as immediate, `BPF_PSEUDO_MAP_VALUE` with the index and
//! the offset), [`ProgKind`], [`Reloc`] (each relocation as applied, for `mimic inspect`).
//!
//! Invariant: what cannot be relocated as libbpf would (an extern symbol: a kfunc or ksym; a
//! function pointer; a call into a section other than `.text`) is refused, never guessed.

use super::maps::MapSpec;
use super::{Elf, ObjectError, Section};
use crate::bpf::verifier::{ProgType, VerifyOpts};
use crate::isa::{Insn, BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC, BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE};

/// `R_BPF_64_64`: a 64-bit immediate (`lddw`) naming a map or global data.
const R_BPF_64_64: u32 = 1;
/// `R_BPF_64_32`: a call's 32-bit immediate naming a function.
const R_BPF_64_32: u32 = 10;
/// `call` (`BPF_JMP | BPF_CALL`).
const CALL: u8 = 0x85;

/// A program's type, from its section name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgKind {
    /// `socket`: `BPF_PROG_TYPE_SOCKET_FILTER`.
    SocketFilter,
    /// `xdp`.
    Xdp,
    /// `tc`, `classifier`: `BPF_PROG_TYPE_SCHED_CLS`.
    SchedCls,
    /// `raw_tp/NAME`, `raw_tracepoint/NAME`.
    RawTracepoint,
    /// `tp/CAT/NAME`, `tracepoint/CAT/NAME`.
    Tracepoint,
    /// `syscall` (loaded sleepable).
    Syscall,
}

impl ProgKind {
    /// The kind a section name gives (without a leading `?`), as libbpf's section table does.
    pub fn from_section(name: &str) -> Option<ProgKind> {
        let prefix = |p: &str| name == p || name.starts_with(&format!("{p}/"));
        Some(match () {
            _ if prefix("socket") => ProgKind::SocketFilter,
            _ if prefix("xdp") => ProgKind::Xdp,
            _ if prefix("tc") || prefix("classifier") => ProgKind::SchedCls,
            _ if name.starts_with("raw_tp/") || name.starts_with("raw_tracepoint/") => {
                ProgKind::RawTracepoint
            }
            _ if name.starts_with("tp/") || name.starts_with("tracepoint/") => ProgKind::Tracepoint,
            _ if name == "syscall" => ProgKind::Syscall,
            _ => return None,
        })
    }

    /// `enum bpf_prog_type`.
    pub fn prog_type(self) -> u32 {
        match self {
            ProgKind::SocketFilter => 1,
            ProgKind::SchedCls => 3,
            ProgKind::Tracepoint => 5,
            ProgKind::Xdp => 6,
            ProgKind::RawTracepoint => 17,
            ProgKind::Syscall => 31,
        }
    }

    /// bpftool's name for the type.
    pub fn name(self) -> &'static str {
        match self {
            ProgKind::SocketFilter => "socket_filter",
            ProgKind::SchedCls => "sched_cls",
            ProgKind::Tracepoint => "tracepoint",
            ProgKind::Xdp => "xdp",
            ProgKind::RawTracepoint => "raw_tracepoint",
            ProgKind::Syscall => "syscall",
        }
    }

    /// Loaded with `BPF_F_SLEEPABLE`.
    pub fn sleepable(self) -> bool {
        self == ProgKind::Syscall
    }

    /// The verifier's program type, for the kinds whose context mimic models (socket filters
    /// read an `__sk_buff` by rules mimic does not model yet: `Err` says so).
    pub fn verifier_type(self) -> Result<ProgType, String> {
        match self {
            ProgKind::RawTracepoint => Ok(ProgType::RawTracepoint),
            ProgKind::Tracepoint => Ok(ProgType::Tracepoint),
            ProgKind::Syscall => Ok(ProgType::Syscall),
            ProgKind::Xdp => Ok(ProgType::Xdp),
            ProgKind::SchedCls => Ok(ProgType::SchedCls),
            other => Err(format!(
                "{} programs are not verified by mimic yet: their context's rules are not \
                 modelled",
                other.name()
            )),
        }
    }

    /// The options to verify a program of this kind with, from `base` (privilege, log level,
    /// mutants, profile).
    pub fn verify_opts(self, base: VerifyOpts) -> Result<VerifyOpts, String> {
        Ok(VerifyOpts {
            prog_type: self.verifier_type()?,
            sleepable: self.sleepable(),
            ..base
        })
    }
}

/// What a relocation made of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelocTarget {
    /// `lddw rX, map`: the map's index.
    Map(usize),
    /// `lddw rX, &global`: the data map's index and the offset in its value.
    MapValue { map: usize, offset: u32 },
    /// A call of a `.text` function, placed at this instruction of the program.
    Subprog { at: usize },
}

/// One relocation as applied: the instruction (in the program as loaded), the symbol, the
/// target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloc {
    pub insn: usize,
    pub symbol: String,
    pub target: RelocTarget,
}

/// One program of the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Its function's name.
    pub name: String,
    /// Its section's name (with a `?` prefix if it had one).
    pub section: String,
    pub kind: ProgKind,
    /// Loaded by default (no `?` prefix).
    pub autoload: bool,
    /// Relocated instructions; map references are indices into `Object::maps`.
    pub insns: Vec<Insn>,
    pub relocs: Vec<Reloc>,
    /// The `.text` functions appended, with where each starts.
    pub subprogs: Vec<(String, usize)>,
}

impl Program {
    /// The instructions with each map index replaced by the fd `fds[index]` (a pseudo map
    /// load), as a loader hands them to the verifier. `None` if an index has no fd.
    pub fn with_fds(&self, fds: &[i32]) -> Option<Vec<Insn>> {
        let mut out = self.insns.clone();
        for r in &self.relocs {
            let map = match r.target {
                RelocTarget::Map(map) | RelocTarget::MapValue { map, .. } => map,
                RelocTarget::Subprog { .. } => continue,
            };
            out[r.insn].imm = *fds.get(map)?;
        }
        Some(out)
    }
}

/// Every program of the object, in section then offset order.
pub fn read(elf: &Elf, maps: &[MapSpec]) -> Result<Vec<Program>, ObjectError> {
    let text = elf.section_named(".text");
    let mut out = Vec::new();
    for section in elf
        .sections
        .iter()
        .filter(|s| s.executable && s.name != ".text")
    {
        let (autoload, bare) = match section.name.strip_prefix('?') {
            Some(rest) => (false, rest),
            None => (true, section.name.as_str()),
        };
        let kind = ProgKind::from_section(bare).ok_or_else(|| {
            ObjectError::new(
                "a program type mimic does not model (it models socket, xdp, tc, raw_tp, \
                 tracepoint and syscall programs)",
            )
            .in_section(&section.name)
        })?;
        let mut functions: Vec<_> = elf
            .symbols
            .iter()
            .flatten()
            .filter(|s| s.section == Some(section.index) && s.is_function && s.global)
            .collect();
        functions.sort_by_key(|s| s.value);
        if functions.is_empty() {
            return Err(
                ObjectError::new("an executable section without a global function")
                    .in_section(&section.name),
            );
        }
        for f in functions {
            let program = link(elf, maps, section, f.value, f.size, text)
                .map_err(|e| e.in_section(&section.name).at_symbol(&f.name))?;
            out.push(Program {
                name: f.name.clone(),
                section: section.name.clone(),
                kind,
                autoload,
                insns: program.0,
                relocs: program.1,
                subprogs: program.2,
            });
        }
    }
    Ok(out)
}

/// The instructions of `[start, start + size)` of a section.
fn code(section: &Section, start: u64, size: u64) -> Result<Vec<Insn>, ObjectError> {
    let range = usize::try_from(start)
        .ok()
        .zip(usize::try_from(size).ok())
        .and_then(|(s, n)| Some(s..s.checked_add(n)?))
        .filter(|r| r.end <= section.data.len() && r.start % 8 == 0 && r.len() % 8 == 0)
        .ok_or_else(|| {
            ObjectError::new(format!(
                "a function of {size} bytes at {start} does not fit the section's {} bytes of \
                 8-byte instructions",
                section.data.len()
            ))
        })?;
    Ok(section.data[range]
        .chunks_exact(8)
        .map(|c| Insn::from_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

type Linked = (Vec<Insn>, Vec<Reloc>, Vec<(String, usize)>);

/// One program: its function's code, then the `.text` functions it reaches, relocated.
fn link(
    elf: &Elf,
    maps: &[MapSpec],
    section: &Section,
    start: u64,
    size: u64,
    text: Option<&Section>,
) -> Result<Linked, ObjectError> {
    let mut insns = code(section, start, size)?;
    // Where each instruction came from: its section and its index there.
    let mut origin: Vec<(usize, u64)> = (0..insns.len() as u64)
        .map(|i| (section.index, start / 8 + i))
        .collect();
    let mut relocs = Vec::new();
    let mut subprogs: Vec<(String, usize)> = Vec::new();
    // `.text` functions placed: (their first .text instruction, where they start here).
    let mut placed: Vec<(u64, usize)> = Vec::new();
    let mut pc = 0;
    while pc < insns.len() {
        let (sec_index, sec_pc) = origin[pc];
        let sec = if sec_index == section.index {
            section
        } else {
            text.expect("only .text code is appended")
        };
        let reloc = sec.relocs.iter().find(|(off, _, _)| *off == sec_pc * 8);
        let insn = insns[pc];
        if insn.code == 0x18 && insn.src == BPF_PSEUDO_FUNC {
            return Err(ObjectError::new(format!(
                "instruction {pc} loads a function's address (callbacks are not supported)"
            )));
        }
        match reloc {
            Some(&(_, sym, r_type)) => {
                let symbol = elf.symbol(sym).ok_or_else(|| {
                    ObjectError::new(format!(
                        "instruction {pc}: a relocation to symbol {sym} that does not exist"
                    ))
                })?;
                let target_section = match symbol.section {
                    Some(s) => elf.section(s),
                    None => {
                        return Err(ObjectError::new(format!(
                            "instruction {pc} refers to the extern symbol `{}` (kfuncs and \
                             ksyms are not supported)",
                            symbol.name
                        )))
                    }
                };
                let target_name = target_section.map_or("", |s| s.name.as_str());
                match r_type {
                    R_BPF_64_64 if insn.is_lddw() && pc + 1 < insns.len() => {
                        let target = if target_name == ".maps" {
                            let map = maps.iter().position(|m| m.name == symbol.name).ok_or_else(|| {
                                ObjectError::new(format!("instruction {pc} loads `{}`, which is not a map definition", symbol.name))
                            })?;
                            insns[pc].src = BPF_PSEUDO_MAP_FD;
                            insns[pc].imm = map as i32;
                            insns[pc + 1].imm = 0;
                            RelocTarget::Map(map)
                        } else if let Some(map) = maps
                            .iter()
                            .position(|m| m.data.as_ref().is_some_and(|d| d.section == target_name))
                        {
                            let offset = symbol.value.wrapping_add(insn.imm as u32 as u64);
                            let offset = u32::try_from(offset)
                                .ok()
                                .filter(|&o| o < maps[map].value_size)
                                .ok_or_else(|| {
                                    ObjectError::new(format!(
                                        "instruction {pc} points {offset} bytes into {target_name}, past its {} bytes",
                                        maps[map].value_size
                                    ))
                                })?;
                            insns[pc].src = BPF_PSEUDO_MAP_VALUE;
                            insns[pc].imm = map as i32;
                            insns[pc + 1].imm = offset as i32;
                            RelocTarget::MapValue { map, offset }
                        } else {
                            return Err(ObjectError::new(format!(
                                "instruction {pc} loads the address of `{}` in section {target_name} \
                                 (only maps and global data can be referenced)",
                                symbol.name
                            )));
                        };
                        relocs.push(Reloc {
                            insn: pc,
                            symbol: if symbol.is_section {
                                target_name.to_string()
                            } else {
                                symbol.name.clone()
                            },
                            target,
                        });
                        pc += 2;
                        continue;
                    }
                    R_BPF_64_32 if insn.code == CALL && insn.src == BPF_PSEUDO_CALL => {
                        if target_name != ".text" {
                            return Err(ObjectError::new(format!(
                                "instruction {pc} calls `{}` in section {target_name} (subprograms \
                                 must be static functions in .text)",
                                symbol.name
                            )));
                        }
                        let target = (symbol.value / 8) as i64 + i64::from(insn.imm) + 1;
                        let (at, function) = call(
                            &mut insns,
                            &mut origin,
                            &mut placed,
                            &mut subprogs,
                            elf,
                            text,
                            pc,
                            target,
                        )?;
                        relocs.push(Reloc {
                            insn: pc,
                            // A static function is reached through the section's symbol.
                            symbol: if symbol.is_section {
                                function
                            } else {
                                symbol.name.clone()
                            },
                            target: RelocTarget::Subprog { at },
                        });
                    }
                    other => {
                        return Err(ObjectError::new(format!(
                            "instruction {pc}: relocation type {other} against `{}` (a loader \
                             relocates only map loads and subprogram calls)",
                            symbol.name
                        )))
                    }
                }
            }
            None if insn.code == CALL && insn.src == BPF_PSEUDO_CALL => {
                // A call without a relocation stays inside its own section.
                if sec_index == section.index {
                    return Err(ObjectError::new(format!(
                        "instruction {pc} calls into its own section (subprograms must be \
                         static functions in .text)"
                    )));
                }
                let target = sec_pc as i64 + i64::from(insn.imm) + 1;
                call(
                    &mut insns,
                    &mut origin,
                    &mut placed,
                    &mut subprogs,
                    elf,
                    text,
                    pc,
                    target,
                )?;
            }
            None => {}
        }
        pc += if insn.is_lddw() { 2 } else { 1 };
    }
    Ok((insns, relocs, subprogs))
}

/// Re-aims the call at `pc` to `.text` instruction `target`, appending the function holding it
/// if it is not placed yet; returns where the target now is and the function's name.
#[allow(clippy::too_many_arguments)]
fn call(
    insns: &mut Vec<Insn>,
    origin: &mut Vec<(usize, u64)>,
    placed: &mut Vec<(u64, usize)>,
    subprogs: &mut Vec<(String, usize)>,
    elf: &Elf,
    text: Option<&Section>,
    pc: usize,
    target: i64,
) -> Result<(usize, String), ObjectError> {
    let text = text.ok_or_else(|| {
        ObjectError::new(format!(
            "instruction {pc} calls a subprogram, but there is no .text"
        ))
    })?;
    let target = u64::try_from(target).map_err(|_| {
        ObjectError::new(format!("instruction {pc} calls before the start of .text"))
    })?;
    let function = elf
        .symbols
        .iter()
        .flatten()
        .filter(|s| s.section == Some(text.index) && s.is_function)
        // A symbol's value and size are the file's word: their sum may not fit.
        .find(|s| (s.value / 8..s.value.saturating_add(s.size) / 8).contains(&target))
        .ok_or_else(|| {
            ObjectError::new(format!(
                "instruction {pc} calls .text instruction {target}, which is in no function"
            ))
        })?;
    let first = function.value / 8;
    let base = match placed.iter().find(|(f, _)| *f == first) {
        Some(&(_, base)) => base,
        None => {
            let base = insns.len();
            let body = code(text, function.value, function.size)
                .map_err(|e| e.in_section(".text").at_symbol(&function.name))?;
            origin.extend((0..body.len() as u64).map(|i| (text.index, first + i)));
            insns.extend(body);
            placed.push((first, base));
            subprogs.push((function.name.clone(), base));
            base
        }
    };
    let at = base + (target - first) as usize;
    let offset = at as i64 - pc as i64 - 1;
    insns[pc].imm = i32::try_from(offset)
        .map_err(|_| ObjectError::new(format!("instruction {pc}: a call {offset} away")))?;
    Ok((at, function.name.clone()))
}
