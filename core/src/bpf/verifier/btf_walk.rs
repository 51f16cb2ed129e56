//! Which field of a kernel struct a privileged read lands in: the check the kernel makes when a
//! program loads through a map pointer (`check_ptr_to_map_access`, whose walk is
//! `btf_struct_walk`), against the struct's BTF.
//!
//! The alternative was a fixed table of the few `struct bpf_map` fields programs read. Kernel
//! builds lay the struct out differently (a build of 6.18 puts a 32-byte `sha` first, moving
//! every field by 40 bytes), so the layout comes from BTF: the recorded build's
//! ([`crate::bpf::kernel_types`]) or the running kernel's.
//!
//! The rules, as the kernel applies them (facts, restated):
//! * the read must lie inside the struct, except that a flexible array at its end extends it
//!   (integers: any read there is a scalar; structs: the offset wraps by the element's size);
//! * members are scanned in order; a read that starts in a hole, or in no member, is "doesn't
//!   have field"; a bitfield is read only whole (from at or before its first byte to at or
//!   past its last), otherwise the scan goes on past it;
//! * arrays are linearised: the read is in the element that holds its first byte, but may run
//!   on to the end of the whole array (an array of integers is scratch space);
//! * a nested struct or union is walked in its turn, at the offset inside it;
//! * a pointer member must be read whole, at its offset, with its size;
//! * an integer (or enum) may be read in part, but not past the member's true end, unless the
//!   walk went through a union with more than one member (the kernel then trusts nothing and
//!   checks less).
//!
//! Main items: [`walk`] and its answer [`Field`]. Invariants: the walk terminates (every
//! descent is into a strictly smaller struct, or the offset shrinks), and every refusal is the
//! kernel's message for it.

use crate::bpf::object::btf::{Btf, Type};

/// What a read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// Bytes of an integer, enum or bitfield: the register becomes an unknown scalar.
    Scalar,
    /// A whole pointer member: the kernel gives a pointer into its own memory
    /// (`ptr_to_btf_id`, or read-only untrusted memory).
    Pointer { member: String, in_struct: String },
}

/// How mimic's refusal of a whole pointer member ([`Field::Pointer`]) ends: the kernel accepts
/// the read, so comparisons with the kernel recognise the difference by it.
pub const UNMODELLED_POINTER: &str = "pointers to kernel memory are not modelled";

/// How deep nested structs may go before the walk calls the BTF malformed.
const MAX_DEPTH: usize = 64;

/// A member's type through typedefs and modifiers, with the member's whole size; an array
/// (nested ones flattened) as its innermost element type and its total element count.
struct MemberType<'a> {
    ty: &'a Type,
    id: u32,
    size: u32,
    elements: Option<u32>,
}

fn member_type(btf: &Btf, id: u32) -> Result<MemberType<'_>, ()> {
    let mut total: u64 = 1;
    let mut id = id;
    let mut is_array = false;
    for _ in 0..MAX_DEPTH {
        let Some((rid, ty)) = btf.resolve(id).map_err(drop)? else {
            return Err(());
        };
        let elem_size = match ty {
            Type::Array { elem, nelems } => {
                is_array = true;
                total = total.saturating_mul(u64::from(*nelems));
                id = *elem;
                continue;
            }
            Type::Int { size, .. }
            | Type::Enum { size, .. }
            | Type::Float { size, .. }
            | Type::Struct { size, .. }
            | Type::Union { size, .. } => *size,
            Type::Ptr { .. } => 8,
            _ => return Err(()),
        };
        let size = u32::try_from(u64::from(elem_size).saturating_mul(total)).map_err(drop)?;
        return Ok(MemberType {
            ty,
            id: rid,
            size,
            elements: is_array.then_some(total as u32),
        });
    }
    Err(())
}

/// The kernel's walk of struct `root` for a read of `size` bytes at `off`.
pub fn walk(btf: &Btf, root: u32, off: u32, size: u32) -> Result<Field, String> {
    let mut id = root;
    let mut off = off;
    // A union of more than one member makes the kernel's walk untrusted.
    let mut untrusted = false;
    for _ in 0..MAX_DEPTH {
        let (tname, tsize, members, union) = match btf.resolve(id) {
            Ok(Some((
                _,
                Type::Struct {
                    name,
                    size,
                    members,
                },
            ))) => (name, *size, members, false),
            Ok(Some((
                _,
                Type::Union {
                    name,
                    size,
                    members,
                },
            ))) => (name, *size, members, true),
            Ok(Some((rid, _))) => {
                return Err(format!("Type '{}' is not a struct", btf.name_of(rid)))
            }
            _ => return Err(format!("Type '{}' is not a struct", btf.name_of(id))),
        };
        if union && members.len() != 1 {
            untrusted = true;
        }
        let end = u64::from(off) + u64::from(size);
        if end > u64::from(tsize) {
            let beyond = || format!("access beyond struct {tname} at off {off} size {size}");
            let Some(last) = members.last() else {
                return Err(beyond());
            };
            let flexible = match btf.resolve(last.type_id) {
                Ok(Some((_, Type::Array { elem, nelems: 0 }))) => *elem,
                _ => return Err(beyond()),
            };
            let moff = last.bit_offset / 8;
            if off < moff {
                return Err(beyond());
            }
            match btf.resolve(flexible) {
                Ok(Some((_, Type::Int { .. }))) => return Ok(Field::Scalar),
                Ok(Some((
                    eid,
                    Type::Struct { size: esize, .. } | Type::Union { size: esize, .. },
                ))) if *esize > 0 => {
                    off = (off - moff) % esize;
                    id = eid;
                    continue;
                }
                _ => return Err(beyond()),
            }
        }
        let mut inner = None;
        for m in members {
            let moff = m.bit_offset / 8;
            if end <= u64::from(moff) {
                break;
            }
            if m.bitfield_size != 0 {
                let end_bit = u64::from(m.bit_offset) + u64::from(m.bitfield_size);
                if off <= moff && end_bit.div_ceil(8) <= end {
                    return Ok(Field::Scalar);
                }
                continue;
            }
            if off < moff {
                break;
            }
            let Ok(found) = member_type(btf, m.type_id) else {
                return Err(format!("field {} doesn't have size", m.name));
            };
            let true_end = moff + found.size;
            if off >= true_end {
                continue;
            }
            // An array is read in the element holding the read's first byte.
            let (mut moff, mut msize) = (moff, found.size);
            if let Some(total) = found.elements {
                if total == 0 {
                    continue;
                }
                msize /= total;
                moff += (off - moff) / msize * msize;
            }
            match found.ty {
                Type::Struct { .. } | Type::Union { .. } => {
                    inner = Some((found.id, off - moff));
                    break;
                }
                Type::Ptr { .. } => {
                    if msize != size || off != moff {
                        return Err(format!(
                            "cannot access ptr member {} with moff {moff} in struct {tname} \
                             with off {off} size {size}",
                            m.name
                        ));
                    }
                    return Ok(Field::Pointer {
                        member: m.name.clone(),
                        in_struct: tname.clone(),
                    });
                }
                _ => {
                    if end > u64::from(true_end) && !untrusted {
                        return Err(format!(
                            "access beyond the end of member {} (mend:{true_end}) in struct \
                             {tname} with off {off} size {size}",
                            m.name
                        ));
                    }
                    return Ok(Field::Scalar);
                }
            }
        }
        match inner {
            Some((next, at)) => {
                id = next;
                off = at;
            }
            None => return Err(format!("struct {tname} doesn't have field at offset {off}")),
        }
    }
    Err(format!(
        "struct nesting deeper than {MAX_DEPTH} at type id {id}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::object::btf::tests::{info, section};

    /// ```c
    /// struct inner { u32 a; u64 p_like; };            // [4], 16 bytes
    /// struct s {                                       // [5], 48 bytes
    ///     u8 tag[6];          // 0
    ///     u32 flags:3, :5, mode:8;  // bitfields at bits 64 and 72
    ///     void *p;            // 16
    ///     struct inner in;    // 24
    ///     u32 count;          // 40  (44..48 is a hole)
    /// };
    /// ```
    fn sample() -> (Btf, u32) {
        let strings = b"\0u8\0u32\0u64\0inner\0a\0b\0s\0tag\0flags\0mode\0p\0in\0count\0";
        let at = |s: &str| {
            let needle = format!("\0{s}\0");
            (strings
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .expect("in the table")
                + 1) as u32
        };
        let records = vec![
            vec![at("u8"), info(1, 0), 1, 8],   // [1]
            vec![at("u32"), info(1, 0), 4, 32], // [2]
            vec![at("u64"), info(1, 0), 8, 64], // [3]
            vec![at("inner"), info(4, 2), 16, at("a"), 2, 0, at("b"), 3, 64], // [4]
            vec![
                at("s"),
                (1 << 31) | info(4, 6),
                48,
                at("tag"),
                7,
                0,
                at("flags"),
                2,
                3 << 24 | 64,
                at("mode"),
                2,
                8 << 24 | 72,
                at("p"),
                8,
                128,
                at("in"),
                4,
                192,
                at("count"),
                2,
                320,
            ], // [5]
            vec![0, info(3, 0), 0, 1, 0, 6],    // [6] unused
            vec![0, info(3, 0), 0, 1, 0, 6],    // [7] u8[6]
            vec![0, info(2, 0), 0],             // [8] void *
        ];
        (Btf::parse(&section(&records, strings)).expect("parses"), 5)
    }

    #[test]
    fn reads_inside_integers_and_arrays_are_scalars_and_overruns_name_the_member() {
        let (btf, s) = sample();
        assert_eq!(walk(&btf, s, 0, 1), Ok(Field::Scalar));
        // An array of integers is scratch space up to its true end.
        assert_eq!(walk(&btf, s, 2, 4), Ok(Field::Scalar));
        assert_eq!(
            walk(&btf, s, 4, 4),
            Err(
                "access beyond the end of member tag (mend:6) in struct s with off 4 size 4".into()
            )
        );
        assert_eq!(walk(&btf, s, 40, 4), Ok(Field::Scalar));
        assert_eq!(
            walk(&btf, s, 44, 4),
            Err("struct s doesn't have field at offset 44".into())
        );
        assert_eq!(
            walk(&btf, s, 46, 4),
            Err("access beyond struct s at off 46 size 4".into())
        );
    }

    #[test]
    fn a_pointer_is_read_whole_and_nested_structs_are_walked_at_the_inner_offset() {
        let (btf, s) = sample();
        assert_eq!(
            walk(&btf, s, 16, 8),
            Ok(Field::Pointer {
                member: "p".into(),
                in_struct: "s".into()
            })
        );
        assert_eq!(
            walk(&btf, s, 16, 4),
            Err("cannot access ptr member p with moff 16 in struct s with off 16 size 4".into())
        );
        assert_eq!(walk(&btf, s, 24, 4), Ok(Field::Scalar));
        assert_eq!(walk(&btf, s, 32, 8), Ok(Field::Scalar));
        assert_eq!(
            walk(&btf, s, 28, 8),
            Err("struct inner doesn't have field at offset 4".into())
        );
    }

    #[test]
    fn a_bitfield_is_read_only_whole() {
        let (btf, s) = sample();
        // `flags` is bits 64..67: a byte read at 8 covers it.
        assert_eq!(walk(&btf, s, 8, 1), Ok(Field::Scalar));
        // `mode` is bits 72..80: a read starting at 9 covers it whole.
        assert_eq!(walk(&btf, s, 9, 1), Ok(Field::Scalar));
        // A read from 10 starts past both bitfields, in the hole before `p`.
        assert_eq!(
            walk(&btf, s, 10, 2),
            Err("struct s doesn't have field at offset 10".into())
        );
    }
}
