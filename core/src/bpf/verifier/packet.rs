//! Direct packet access, as the kernel verifies it: what a packet pointer may touch, and how a
//! comparison with `pkt_end` teaches the verifier how much of the packet is there.
//!
//! A packet pointer (`pkt`, `pkt_meta`) carries a **range**: bytes `[start, start + range)` of
//! the packet are known to exist, where `start` is the pointer minus its fixed offset. Every
//! register with the same type and id shares it, so a check on `r4 = r2 + 14` also lets `r2`
//! read 14 bytes. A comparison `pkt' OP pkt_end` (either order, unsigned `>`, `<`, `>=`, `<=`,
//! 64-bit only) gives the edge where `pkt'` is inside the packet a range of `pkt'.off` (`+1`
//! when the comparison was strict), and marks `pkt'` on the other edge as past or at the end,
//! which decides later comparisons of the same register. The alternative, tracking the
//! packet's length as a symbolic scalar, would accept programs the kernel refuses.
//!
//! Invariants: a range is only learned from a non-negative fixed offset whose variable part is
//! bounded by [`MAX_PACKET_OFF`]; adding an unknown scalar to a packet pointer gives it a fresh
//! id and no range (in [`super::check`]); ranges only grow on one path.

use super::state::{Reg, RegType, VState, AT_PKT_END, BEYOND_PKT_END, MAX_PACKET_OFF};
use super::{refuse, Refuse, EINVAL};
use crate::isa::Cond;

/// The kernel's `check_packet_access`: `off` is the access's offset from the pointer's start
/// (the instruction's offset plus the register's fixed offset), `size` its bytes (0 only for a
/// helper's optional memory argument, when `zero_ok`).
pub(crate) fn access(r: u8, ptr: &Reg, off: i64, size: i64, zero_ok: bool) -> Result<(), Refuse> {
    if ptr.var.smin < 0 {
        return refuse(format!(
            "R{r} min value is negative, either use unsigned index or do a if (index >=0) check."
        ));
    }
    if ptr.range < 0 {
        // Known to lie past the end: no byte from it is inside.
        return Err(Refuse {
            message: format!("R{r} offset is outside of the packet"),
            errno: EINVAL,
        });
    }
    let size_ok = size > 0 || (size == 0 && zero_ok);
    if !(size_ok && off >= 0 && off + size <= i64::from(ptr.range)) {
        // The kernel prints the access's offset where the register's would be expected.
        return refuse(format!(
            "invalid access to packet, off={off} size={size}, R{r}(id={},off={off},r={})",
            ptr.id, ptr.range
        ));
    }
    Ok(())
}

/// Which edge of a conditional jump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Edge {
    Taken,
    Fall,
}

/// What a comparison of packet pointers teaches (the kernel's `try_match_pkt_pointers`): on
/// `inside`, register `reg` is at most at the end (strictly before it when `strict`); on
/// `outside`, it is past the end (strictly when `past`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Learned {
    pub reg: u8,
    pub inside: Edge,
    pub strict: bool,
    pub outside: Edge,
    pub past: bool,
}

/// `pkt` with no offset at all: the start of the packet, as `data_meta` is compared with.
fn is_packet_start(r: &Reg) -> bool {
    r.ty == RegType::Packet && r.off == 0 && r.var.const_value() == Some(0)
}

/// The comparison with the pointer on the left: `pkt OP end`, or `meta OP pkt_start`.
fn left_is_pointer(a: &Reg, b: &Reg) -> bool {
    (a.ty == RegType::Packet && b.ty == RegType::PacketEnd)
        || (a.ty == RegType::PacketMeta && is_packet_start(b))
}

/// `a OP b` as `b OP' a`.
fn swapped(cond: Cond) -> Option<Cond> {
    Some(match cond {
        Cond::Gt => Cond::Lt,
        Cond::Lt => Cond::Gt,
        Cond::Ge => Cond::Le,
        Cond::Le => Cond::Ge,
        _ => return None,
    })
}

/// What `dst OP src` (64-bit, register operands) teaches about packet pointers, if anything.
pub(crate) fn learn(cond: Cond, dst: u8, a: &Reg, src: u8, b: &Reg) -> Option<Learned> {
    let (reg, cond) = if left_is_pointer(a, b) {
        (dst, cond)
    } else if left_is_pointer(b, a) {
        (src, swapped(cond)?)
    } else {
        return None;
    };
    // `pkt > end` / `pkt >= end` hold outside the packet; `pkt < end` / `pkt <= end` inside.
    let (inside, outside) = match cond {
        Cond::Gt | Cond::Ge => (Edge::Fall, Edge::Taken),
        Cond::Lt | Cond::Le => (Edge::Taken, Edge::Fall),
        _ => return None,
    };
    Some(Learned {
        reg,
        inside,
        strict: matches!(cond, Cond::Ge | Cond::Lt),
        outside,
        past: matches!(cond, Cond::Gt | Cond::Le),
    })
}

/// The kernel's `find_good_pkt_pointers`: on this edge `reg` (the compared pointer's state) is
/// inside the packet, so every pointer of its type and id may read `reg.off` bytes (one more
/// when the comparison was strict).
pub(crate) fn mark_inside(st: &mut VState, reg: &Reg, strict: bool) {
    if reg.off < 0 || (reg.off == 0 && strict) {
        return;
    }
    // A large variable part could wrap past the packet and still compare below the end.
    let off = reg.off as u64;
    if reg.var.umax > MAX_PACKET_OFF || reg.var.umax + off > MAX_PACKET_OFF {
        return;
    }
    let range = reg.off + i32::from(strict);
    let (ty, id) = (reg.ty, reg.id);
    st.for_each_reg(|r| {
        if r.ty == ty && r.id == id {
            r.range = r.range.max(range);
        }
    });
}

/// The kernel's `mark_pkt_end`: on this edge register `r` lies past the end (`past`) or at
/// or past it. Only that register, and only a `pkt` (not `pkt_meta`).
pub(crate) fn mark_outside(st: &mut VState, r: u8, past: bool) {
    let reg = &mut st.cur_mut().regs[r as usize];
    if reg.ty == RegType::Packet {
        reg.range = if past { BEYOND_PKT_END } else { AT_PKT_END };
    }
}

/// The kernel's `is_pkt_ptr_branch_taken`: a pointer known to lie past (or at) the end
/// decides its next comparison with `pkt_end`. `Some(taken)` when decided.
pub(crate) fn branch_taken(cond: Cond, a: &Reg, b: &Reg) -> Option<bool> {
    let (pkt, cond) = if b.ty == RegType::PacketEnd {
        (a, cond)
    } else if a.ty == RegType::PacketEnd {
        (b, swapped(cond)?)
    } else {
        return None;
    };
    if pkt.range >= 0 {
        return None;
    }
    match cond {
        Cond::Gt | Cond::Le if pkt.range == BEYOND_PKT_END => Some(cond == Cond::Gt),
        Cond::Lt | Cond::Ge => Some(cond == Cond::Ge),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(off: i32) -> Reg {
        let mut r = Reg::pointer(RegType::Packet, 0);
        r.off = off;
        r
    }
    fn end() -> Reg {
        Reg::pointer(RegType::PacketEnd, 0)
    }

    #[test]
    fn each_comparison_names_the_inside_edge_and_its_strictness() {
        // (cond, pointer on the left, inside edge, strict)
        let cases = [
            (Cond::Gt, true, Edge::Fall, false),
            (Cond::Lt, true, Edge::Taken, true),
            (Cond::Ge, true, Edge::Fall, true),
            (Cond::Le, true, Edge::Taken, false),
            (Cond::Gt, false, Edge::Taken, true),
            (Cond::Lt, false, Edge::Fall, false),
            (Cond::Ge, false, Edge::Taken, false),
            (Cond::Le, false, Edge::Fall, true),
        ];
        for (cond, left, inside, strict) in cases {
            let (a, b) = if left {
                (pkt(8), end())
            } else {
                (end(), pkt(8))
            };
            let got = learn(cond, 4, &a, 3, &b).expect("a packet comparison");
            assert_eq!(
                (got.inside, got.strict),
                (inside, strict),
                "{cond:?} left={left}"
            );
            assert_eq!(got.reg, if left { 4 } else { 3 });
            assert_ne!(got.inside, got.outside);
        }
        assert!(learn(Cond::Eq, 4, &pkt(8), 3, &end()).is_none());
        assert!(learn(Cond::Gt, 4, &pkt(8), 3, &pkt(0)).is_none());
    }

    #[test]
    fn a_range_is_learned_only_from_a_bounded_non_negative_offset() {
        let mut st = super::super::entry_state();
        st.cur_mut().regs[2] = pkt(0);
        mark_inside(&mut st, &pkt(14), false);
        assert_eq!(st.cur().regs[2].range, 14);
        mark_inside(&mut st, &pkt(8), true);
        assert_eq!(st.cur().regs[2].range, 14, "ranges only grow");
        mark_inside(&mut st, &pkt(20), true);
        assert_eq!(st.cur().regs[2].range, 21);
        let mut st = super::super::entry_state();
        st.cur_mut().regs[2] = pkt(0);
        mark_inside(&mut st, &pkt(0), true);
        mark_inside(&mut st, &pkt(-4), false);
        assert_eq!(st.cur().regs[2].range, 0);
    }

    #[test]
    fn accesses_stay_inside_the_range() {
        let mut p = pkt(0);
        p.range = 8;
        assert!(access(2, &p, 0, 8, false).is_ok());
        let e = access(2, &p, 1, 8, false).unwrap_err();
        assert_eq!(
            e.message,
            "invalid access to packet, off=1 size=8, R2(id=0,off=1,r=8)"
        );
        assert!(access(2, &p, -1, 1, false).is_err());
        p.range = BEYOND_PKT_END;
        assert_eq!(access(2, &p, 0, 1, false).unwrap_err().errno, EINVAL);
    }

    #[test]
    fn a_pointer_past_the_end_decides_its_next_comparison() {
        let mut p = pkt(8);
        p.range = BEYOND_PKT_END;
        assert_eq!(branch_taken(Cond::Gt, &p, &end()), Some(true));
        assert_eq!(branch_taken(Cond::Le, &p, &end()), Some(false));
        assert_eq!(branch_taken(Cond::Lt, &end(), &p), Some(true));
        p.range = AT_PKT_END;
        assert_eq!(branch_taken(Cond::Gt, &p, &end()), None);
        assert_eq!(branch_taken(Cond::Ge, &p, &end()), Some(true));
        p.range = 0;
        assert_eq!(branch_taken(Cond::Ge, &p, &end()), None);
    }
}
