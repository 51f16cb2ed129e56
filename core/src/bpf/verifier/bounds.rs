//! Scalar knowledge: a [`Tnum`] plus unsigned and signed ranges in 64 and 32 bits, kept
//! consistent with each other ([`Scalar::sync`], the kernel's `reg_bounds_sync`).
//!
//! Invariant: every concrete value a register may hold satisfies all five facts at once; an
//! operation that cannot keep a fact precise widens it (never guesses). A refinement that makes
//! the facts contradict each other means the path is infeasible ([`Scalar::sync`] returns false).

use super::tnum::Tnum;
use crate::isa::{AluOp, Cond, Endian, Width};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scalar {
    pub var: Tnum,
    pub umin: u64,
    pub umax: u64,
    pub smin: i64,
    pub smax: i64,
    pub u32min: u32,
    pub u32max: u32,
    pub s32min: i32,
    pub s32max: i32,
}

impl Scalar {
    pub const UNKNOWN: Scalar = Scalar {
        var: Tnum::UNKNOWN,
        umin: 0,
        umax: u64::MAX,
        smin: i64::MIN,
        smax: i64::MAX,
        u32min: 0,
        u32max: u32::MAX,
        s32min: i32::MIN,
        s32max: i32::MAX,
    };

    pub fn konst(v: u64) -> Scalar {
        Scalar {
            var: Tnum::konst(v),
            umin: v,
            umax: v,
            smin: v as i64,
            smax: v as i64,
            u32min: v as u32,
            u32max: v as u32,
            s32min: v as u32 as i32,
            s32max: v as u32 as i32,
        }
    }

    pub fn from_tnum(var: Tnum) -> Scalar {
        let mut s = Scalar {
            var,
            ..Scalar::UNKNOWN
        };
        s.sync();
        s
    }

    /// Unsigned range `[0, max]` (a zero-extended load of `bytes` bytes).
    pub fn upto(max: u64) -> Scalar {
        let mut s = Scalar {
            umax: max,
            ..Scalar::UNKNOWN
        };
        s.sync();
        s
    }

    pub fn is_const(&self) -> bool {
        self.var.is_const()
    }
    pub fn const_value(&self) -> Option<u64> {
        self.is_const().then_some(self.var.value)
    }

    /// Is the concrete value `v` inside every fact?
    pub fn contains(&self, v: u64) -> bool {
        let (l, sl) = (v as u32, v as u32 as i32);
        self.var.contains(v)
            && (self.umin..=self.umax).contains(&v)
            && (self.smin..=self.smax).contains(&(v as i64))
            && (self.u32min..=self.u32max).contains(&l)
            && (self.s32min..=self.s32max).contains(&sl)
    }

    /// Is every value of `other` a value of `self` (the pruning test `old ⊇ cur`)?
    pub fn includes(&self, other: &Scalar) -> bool {
        self.var.includes(other.var)
            && self.umin <= other.umin
            && other.umax <= self.umax
            && self.smin <= other.smin
            && other.smax <= self.smax
            && self.u32min <= other.u32min
            && other.u32max <= self.u32max
            && self.s32min <= other.s32min
            && other.s32max <= self.s32max
    }

    /// The smallest scalar containing both.
    pub fn join(&self, other: &Scalar) -> Scalar {
        Scalar {
            var: self.var.union(other.var),
            umin: self.umin.min(other.umin),
            umax: self.umax.max(other.umax),
            smin: self.smin.min(other.smin),
            smax: self.smax.max(other.smax),
            u32min: self.u32min.min(other.u32min),
            u32max: self.u32max.max(other.u32max),
            s32min: self.s32min.min(other.s32min),
            s32max: self.s32max.max(other.s32max),
        }
    }

    /// Makes the facts agree; false when they contradict (no concrete value fits).
    pub fn sync(&mut self) -> bool {
        for _ in 0..2 {
            // Ranges from the tnum.
            let t = self.var;
            self.umin = self.umin.max(t.umin());
            self.umax = self.umax.min(t.umax());
            self.smin = self.smin.max((t.value | (t.mask & (1 << 63))) as i64);
            self.smax = self.smax.min((t.value | (t.mask & !(1 << 63))) as i64);
            let t32 = t.subreg();
            self.u32min = self.u32min.max(t32.umin() as u32);
            self.u32max = self.u32max.min(t32.umax() as u32);
            self.s32min = self
                .s32min
                .max((t32.value | (t32.mask & (1 << 31))) as u32 as i32);
            self.s32max = self
                .s32max
                .min((t32.value | (t32.mask & 0x7fff_ffff)) as u32 as i32);
            // 32-bit facts from the 64-bit ranges when the high halves agree.
            if self.umin >> 32 == self.umax >> 32 {
                self.u32min = self.u32min.max(self.umin as u32);
                self.u32max = self.u32max.min(self.umax as u32);
            }
            if self.smin >> 31 == self.smax >> 31 {
                self.s32min = self.s32min.max(self.smin as i32);
                self.s32max = self.s32max.min(self.smax as i32);
            }
            // Signed and unsigned 32-bit views agree when the sign is known.
            if self.s32min >= 0 || self.s32max < 0 {
                self.u32min = self.u32min.max(self.s32min as u32);
                self.u32max = self.u32max.min(self.s32max as u32);
                self.s32min = self.s32min.max(self.u32min as i32);
                self.s32max = self.s32max.min(self.u32max as i32);
            } else if (self.u32max as i32) >= 0 || (self.u32min as i32) < 0 {
                // The unsigned range stays on one side of the sign bit: same order signed.
                self.s32min = self.s32min.max(self.u32min as i32);
                self.s32max = self.s32max.min(self.u32max as i32);
            }
            // Same for 64 bits.
            if self.smin >= 0 || self.smax < 0 {
                self.umin = self.umin.max(self.smin as u64);
                self.umax = self.umax.min(self.smax as u64);
                self.smin = self.smin.max(self.umin as i64);
                self.smax = self.smax.min(self.umax as i64);
            } else if (self.umax as i64) >= 0 || (self.umin as i64) < 0 {
                self.smin = self.smin.max(self.umin as i64);
                self.smax = self.smax.min(self.umax as i64);
            }
            // 64-bit range from the 32-bit one when the high half is known.
            if t.mask >> 32 == 0 {
                let hi = t.value & !0xffff_ffff;
                self.umin = self.umin.max(hi | u64::from(self.u32min));
                self.umax = self.umax.min(hi | u64::from(self.u32max));
            }
            if self.umin > self.umax
                || self.smin > self.smax
                || self.u32min > self.u32max
                || self.s32min > self.s32max
            {
                return false;
            }
            // Tnum from the ranges.
            let Some(v) = self.var.intersect(Tnum::range(self.umin, self.umax)) else {
                return false;
            };
            let Some(low) = v
                .subreg()
                .intersect(Tnum::range(u64::from(self.u32min), u64::from(self.u32max)))
            else {
                return false;
            };
            self.var = v.with_subreg(low);
        }
        true
    }

    /// The low 32 bits as a zero-extended scalar (input of 32-bit ALU ops).
    pub fn low32(&self) -> Scalar {
        let mut s = Scalar {
            var: self.var.subreg(),
            umin: u64::from(self.u32min),
            umax: u64::from(self.u32max),
            ..Scalar::UNKNOWN
        };
        s.sync();
        s
    }

    /// Truncates a result to 32 bits, zero-extended (the result of a 32-bit ALU op).
    fn zext32(&self) -> Scalar {
        let fits = self.umax <= u64::from(u32::MAX);
        let mut s = Scalar {
            var: self.var.subreg(),
            umin: if fits { self.umin } else { 0 },
            umax: if fits { self.umax } else { u64::from(u32::MAX) },
            ..Scalar::UNKNOWN
        };
        s.sync();
        s
    }
}

/// Why an ALU operation on scalars is refused.
pub enum AluError {
    /// Shift amount out of range (`invalid shift N`).
    InvalidShift(i64),
}

/// `dst op src` on scalars. `src` is the second operand already as a scalar (an immediate is
/// sign-extended to 64 bits, as the ISA does).
pub fn alu(width: Width, op: AluOp, dst: &Scalar, src: &Scalar) -> Result<Scalar, AluError> {
    let bits: u32 = if width == Width::W32 { 32 } else { 64 };
    let (a, b) = if width == Width::W32 {
        (dst.low32(), src.low32())
    } else {
        (*dst, *src)
    };
    // Shift amounts the kernel refuses at verification time when constant.
    if matches!(op, AluOp::Lsh | AluOp::Rsh | AluOp::Arsh) {
        if let Some(k) = b.const_value() {
            if k >= u64::from(bits) {
                return Err(AluError::InvalidShift(k as i64));
            }
        }
    }
    if let (Some(x), Some(y)) = (a.const_value(), b.const_value()) {
        if let Some(v) = eval_const(width, op, x, y) {
            return Ok(Scalar::konst(v));
        }
    }
    let mut r = Scalar::UNKNOWN;
    match op {
        AluOp::Mov => r = b,
        AluOp::MovSx(_) => {}
        AluOp::Add => {
            r.var = a.var.add(b.var);
            if let (Some(lo), Some(hi)) = (a.umin.checked_add(b.umin), a.umax.checked_add(b.umax)) {
                r.umin = lo;
                r.umax = hi;
            }
            if let (Some(lo), Some(hi)) = (a.smin.checked_add(b.smin), a.smax.checked_add(b.smax)) {
                r.smin = lo;
                r.smax = hi;
            }
        }
        AluOp::Sub => {
            r.var = a.var.sub(b.var);
            if a.umin >= b.umax {
                r.umin = a.umin - b.umax;
                r.umax = a.umax - b.umin;
            }
            if let (Some(lo), Some(hi)) = (a.smin.checked_sub(b.smax), a.smax.checked_sub(b.smin)) {
                r.smin = lo;
                r.smax = hi;
            }
        }
        AluOp::Mul => {
            r.var = a.var.mul(b.var);
            if let Some(hi) = a.umax.checked_mul(b.umax) {
                r.umin = a.umin * b.umin;
                r.umax = hi;
            }
            // Signed: the corner products bound the result when none overflows (the kernel
            // tracks this too: `u32 * -1` is known to lie in [-(2^32-1), 0]).
            let corners = [
                a.smin.checked_mul(b.smin),
                a.smin.checked_mul(b.smax),
                a.smax.checked_mul(b.smin),
                a.smax.checked_mul(b.smax),
            ];
            if let [Some(p), Some(q), Some(s), Some(t)] = corners {
                r.smin = p.min(q).min(s).min(t);
                r.smax = p.max(q).max(s).max(t);
            }
        }
        AluOp::And => {
            r.var = a.var.and(b.var);
            r.umax = a.umax.min(b.umax);
        }
        AluOp::Or => {
            r.var = a.var.or(b.var);
            r.umin = a.umin.max(b.umin);
        }
        AluOp::Xor => r.var = a.var.xor(b.var),
        AluOp::Lsh => {
            if let Some(k) = b.const_value() {
                let k = k as u32;
                r.var = a.var.lshift(k);
                if bits == 64 && a.umax.leading_zeros() >= k {
                    r.umin = a.umin << k;
                    r.umax = a.umax << k;
                }
            }
        }
        AluOp::Rsh => {
            if let Some(k) = b.const_value() {
                let k = k as u32;
                r.var = a.var.rshift(k);
                r.umin = a.umin >> k;
                r.umax = a.umax >> k;
            }
        }
        AluOp::Arsh => {
            if let Some(k) = b.const_value() {
                let k = k as u32;
                r.var = a.var.arshift(k, bits);
                if bits == 64 {
                    r.smin = a.smin >> k;
                    r.smax = a.smax >> k;
                }
            }
        }
        AluOp::Div => r.umax = a.umax,
        AluOp::Mod => {
            // x % y <= x, and < y when y != 0 (x % 0 == x).
            r.umax = a.umax;
        }
        AluOp::SDiv | AluOp::SMod => {}
    }
    if !r.sync() {
        r = Scalar::UNKNOWN;
    }
    Ok(if width == Width::W32 { r.zext32() } else { r })
}

/// `movsx`: sign-extend the low `bits` of `src`.
pub fn movsx(width: Width, bits: u8, src: &Scalar) -> Scalar {
    if let Some(v) = src.const_value() {
        let v = match bits {
            8 => v as u8 as i8 as i64 as u64,
            16 => v as u16 as i16 as i64 as u64,
            _ => v as u32 as i32 as i64 as u64,
        };
        return if width == Width::W32 {
            Scalar::konst(v & 0xffff_ffff)
        } else {
            Scalar::konst(v)
        };
    }
    let lim = 1i64 << (bits - 1);
    let mut s = Scalar {
        smin: -lim,
        smax: lim - 1,
        ..Scalar::UNKNOWN
    };
    s.sync();
    if width == Width::W32 {
        s.zext32()
    } else {
        s
    }
}

pub fn neg(width: Width, dst: &Scalar) -> Scalar {
    match dst.const_value() {
        Some(v) if width == Width::W64 => Scalar::konst(v.wrapping_neg()),
        Some(v) => Scalar::konst(u64::from((v as u32).wrapping_neg())),
        None if width == Width::W32 => Scalar::upto(u64::from(u32::MAX)),
        None => Scalar::UNKNOWN,
    }
}

pub fn end(kind: Endian, bits: u8, dst: &Scalar) -> Scalar {
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    match dst.const_value() {
        Some(v) => {
            let v = match (kind, bits) {
                (Endian::Le, _) => v & mask,
                (_, 16) => u64::from((v as u16).swap_bytes()),
                (_, 32) => u64::from((v as u32).swap_bytes()),
                _ => v.swap_bytes(),
            };
            Scalar::konst(v)
        }
        None => Scalar::upto(mask),
    }
}

fn eval_const(width: Width, op: AluOp, x: u64, y: u64) -> Option<u64> {
    let v = if width == Width::W32 {
        let (a, b) = (x as u32, y as u32);
        u64::from(match op {
            AluOp::Add => a.wrapping_add(b),
            AluOp::Sub => a.wrapping_sub(b),
            AluOp::Mul => a.wrapping_mul(b),
            AluOp::Div => a.checked_div(b).unwrap_or(0),
            AluOp::SDiv => match b as i32 {
                0 => 0,
                d => (a as i32).wrapping_div(d) as u32,
            },
            AluOp::Mod => a.checked_rem(b).unwrap_or(a),
            AluOp::SMod => match b as i32 {
                0 => a,
                d => (a as i32).wrapping_rem(d) as u32,
            },
            AluOp::Or => a | b,
            AluOp::And => a & b,
            AluOp::Xor => a ^ b,
            AluOp::Lsh => a.wrapping_shl(b),
            AluOp::Rsh => a.wrapping_shr(b),
            AluOp::Arsh => ((a as i32).wrapping_shr(b)) as u32,
            AluOp::Mov => b,
            AluOp::MovSx(_) => return None,
        })
    } else {
        match op {
            AluOp::Add => x.wrapping_add(y),
            AluOp::Sub => x.wrapping_sub(y),
            AluOp::Mul => x.wrapping_mul(y),
            AluOp::Div => x.checked_div(y).unwrap_or(0),
            AluOp::SDiv => match y as i64 {
                0 => 0,
                d => (x as i64).wrapping_div(d) as u64,
            },
            AluOp::Mod => x.checked_rem(y).unwrap_or(x),
            AluOp::SMod => match y as i64 {
                0 => x,
                d => (x as i64).wrapping_rem(d) as u64,
            },
            AluOp::Or => x | y,
            AluOp::And => x & y,
            AluOp::Xor => x ^ y,
            AluOp::Lsh => x.wrapping_shl(y as u32),
            AluOp::Rsh => x.wrapping_shr(y as u32),
            AluOp::Arsh => ((x as i64).wrapping_shr(y as u32)) as u64,
            AluOp::Mov => y,
            AluOp::MovSx(_) => return None,
        }
    };
    Some(v)
}

/// The 32-bit view used by `jmp32`: unsigned range zero-extended, signed range sign-extended.
#[derive(Clone, Copy)]
struct View {
    var: Tnum,
    umin: u64,
    umax: u64,
    smin: i64,
    smax: i64,
}

fn view(s: &Scalar, width: Width) -> View {
    if width == Width::W32 {
        View {
            var: s.var.subreg(),
            umin: u64::from(s.u32min),
            umax: u64::from(s.u32max),
            smin: i64::from(s.s32min),
            smax: i64::from(s.s32max),
        }
    } else {
        View {
            var: s.var,
            umin: s.umin,
            umax: s.umax,
            smin: s.smin,
            smax: s.smax,
        }
    }
}

fn write_back(s: &mut Scalar, v: View, width: Width) -> bool {
    if width == Width::W32 {
        s.var = s.var.with_subreg(v.var);
        s.u32min = v.umin as u32;
        s.u32max = v.umax as u32;
        s.s32min = v.smin as i32;
        s.s32max = v.smax as i32;
        if v.umin > v.umax || v.smin > v.smax {
            return false;
        }
    } else {
        s.var = v.var;
        s.umin = v.umin;
        s.umax = v.umax;
        s.smin = v.smin;
        s.smax = v.smax;
    }
    s.sync()
}

/// Is `a cond b` decided by what is known? `Some(true)`: always, `Some(false)`: never.
pub fn branch_taken(cond: Cond, width: Width, a: &Scalar, b: &Scalar) -> Option<bool> {
    let (x, y) = (view(a, width), view(b, width));
    let eq = || -> Option<bool> {
        if x.var.is_const() && y.var.is_const() {
            return Some(x.var.value == y.var.value);
        }
        if x.umin > y.umax
            || x.umax < y.umin
            || x.smin > y.smax
            || x.smax < y.smin
            || x.var.intersect(y.var).is_none()
        {
            return Some(false);
        }
        None
    };
    match cond {
        Cond::Eq => eq(),
        Cond::Ne => eq().map(|t| !t),
        Cond::Gt => decide(x.umin > y.umax, x.umax <= y.umin),
        Cond::Ge => decide(x.umin >= y.umax, x.umax < y.umin),
        Cond::Lt => decide(x.umax < y.umin, x.umin >= y.umax),
        Cond::Le => decide(x.umax <= y.umin, x.umin > y.umax),
        Cond::Sgt => decide(x.smin > y.smax, x.smax <= y.smin),
        Cond::Sge => decide(x.smin >= y.smax, x.smax < y.smin),
        Cond::Slt => decide(x.smax < y.smin, x.smin >= y.smax),
        Cond::Sle => decide(x.smax <= y.smin, x.smin > y.smax),
        Cond::Set => decide(
            x.var.value & y.var.value != 0,
            x.var.umax() & y.var.umax() == 0,
        ),
    }
}

fn decide(always: bool, never: bool) -> Option<bool> {
    if always {
        Some(true)
    } else if never {
        Some(false)
    } else {
        None
    }
}

/// The condition that holds on the fall-through edge.
pub fn negate(cond: Cond) -> Option<Cond> {
    Some(match cond {
        Cond::Eq => Cond::Ne,
        Cond::Ne => Cond::Eq,
        Cond::Gt => Cond::Le,
        Cond::Le => Cond::Gt,
        Cond::Ge => Cond::Lt,
        Cond::Lt => Cond::Ge,
        Cond::Sgt => Cond::Sle,
        Cond::Sle => Cond::Sgt,
        Cond::Sge => Cond::Slt,
        Cond::Slt => Cond::Sge,
        Cond::Set => return None,
    })
}

/// Refines `a` and `b` assuming `a cond b` holds (`holds == false`: assuming it does not).
/// Returns false when the assumption is impossible (a dead edge).
pub fn refine(cond: Cond, holds: bool, width: Width, a: &mut Scalar, b: &mut Scalar) -> bool {
    let cond = if holds {
        cond
    } else {
        match negate(cond) {
            Some(c) => c,
            None => {
                // `!(a & b)`: the bits of a constant `b` are known zero in `a`.
                if let Some(k) = view(b, width)
                    .var
                    .is_const()
                    .then_some(view(b, width).var.value)
                {
                    let mut x = view(a, width);
                    x.var = x.var.and(Tnum::konst(!k));
                    return write_back(a, x, width);
                }
                return true;
            }
        }
    };
    let (mut x, mut y) = (view(a, width), view(b, width));
    match cond {
        Cond::Eq => {
            let Some(t) = x.var.intersect(y.var) else {
                return false;
            };
            x.var = t;
            y.var = t;
            x.umin = x.umin.max(y.umin);
            x.umax = x.umax.min(y.umax);
            x.smin = x.smin.max(y.smin);
            x.smax = x.smax.min(y.smax);
            y.umin = x.umin;
            y.umax = x.umax;
            y.smin = x.smin;
            y.smax = x.smax;
        }
        Cond::Ne => {
            // Only a constant on one side can shave an end off the other's range.
            if let Some(k) = y.var.is_const().then_some(y.var.value) {
                shave(&mut x, k, width);
            }
            if let Some(k) = x.var.is_const().then_some(x.var.value) {
                shave(&mut y, k, width);
            }
        }
        Cond::Gt | Cond::Ge => {
            let strict = u64::from(cond == Cond::Gt);
            x.umin = x.umin.max(y.umin.saturating_add(strict));
            y.umax = y.umax.min(x.umax.saturating_sub(strict));
            if strict == 1 && (y.umin == u64::MAX || x.umax == 0) {
                return false;
            }
        }
        Cond::Lt | Cond::Le => {
            let strict = u64::from(cond == Cond::Lt);
            x.umax = x.umax.min(y.umax.saturating_sub(strict));
            y.umin = y.umin.max(x.umin.saturating_add(strict));
            if strict == 1 && (y.umax == 0 || x.umin == u64::MAX) {
                return false;
            }
        }
        Cond::Sgt | Cond::Sge => {
            let strict = i64::from(cond == Cond::Sgt);
            x.smin = x.smin.max(y.smin.saturating_add(strict));
            y.smax = y.smax.min(x.smax.saturating_sub(strict));
            if strict == 1 && (y.smin == i64::MAX || x.smax == i64::MIN) {
                return false;
            }
        }
        Cond::Slt | Cond::Sle => {
            let strict = i64::from(cond == Cond::Slt);
            x.smax = x.smax.min(y.smax.saturating_sub(strict));
            y.smin = y.smin.max(x.smin.saturating_add(strict));
            if strict == 1 && (y.smax == i64::MIN || x.smin == i64::MAX) {
                return false;
            }
        }
        Cond::Set => {
            // `a & b` non-zero: a single known bit of a constant `b` is known one in `a`.
            if let Some(k) = y.var.is_const().then_some(y.var.value) {
                if k.is_power_of_two() {
                    x.var = x.var.or(Tnum::konst(k));
                }
            }
        }
    }
    write_back(a, x, width) && write_back(b, y, width)
}

fn shave(x: &mut View, k: u64, width: Width) {
    let k_signed = if width == Width::W32 {
        i64::from(k as u32 as i32)
    } else {
        k as i64
    };
    if x.umin == k && x.umin < x.umax {
        x.umin += 1;
    } else if x.umax == k && x.umin < x.umax {
        x.umax -= 1;
    }
    if x.smin == k_signed && x.smin < x.smax {
        x.smin += 1;
    } else if x.smax == k_signed && x.smin < x.smax {
        x.smax -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refine_splits_a_range_on_both_edges() {
        let mut a = Scalar::upto(100);
        let mut k = Scalar::konst(10);
        let (mut t, mut kt) = (a, k);
        assert!(refine(Cond::Ge, true, Width::W64, &mut t, &mut kt));
        assert_eq!((t.umin, t.umax), (10, 100));
        assert!(refine(Cond::Ge, false, Width::W64, &mut a, &mut k));
        assert_eq!((a.umin, a.umax), (0, 9));
        assert_eq!(
            branch_taken(Cond::Lt, Width::W64, &a, &Scalar::konst(10)),
            Some(true)
        );
    }

    #[test]
    fn alu_results_contain_every_concrete_result() {
        let a = Scalar::upto(15);
        let b = Scalar::upto(3);
        for op in [
            AluOp::Add,
            AluOp::Sub,
            AluOp::Mul,
            AluOp::And,
            AluOp::Or,
            AluOp::Xor,
        ] {
            for w in [Width::W64, Width::W32] {
                let Ok(r) = alu(w, op, &a, &b) else {
                    panic!("no error expected")
                };
                for x in 0..=15u64 {
                    for y in 0..=3u64 {
                        let v = eval_const(w, op, x, y).unwrap();
                        assert!(r.contains(v), "{op:?} {w:?} {x} {y} -> {v} not in {r:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn multiplication_keeps_signed_bounds_from_the_corner_products() {
        // `u32 * -1` (generated seed 11431): the kernel knows it lies in [-(2^32-1), 0], so
        // adding it to a pointer is "value -4294967295 makes ... out of bounds", not unbounded.
        let Ok(r) = alu(
            Width::W64,
            AluOp::Mul,
            &Scalar::upto(u64::from(u32::MAX)),
            &Scalar::konst(u64::MAX),
        ) else {
            panic!("no error expected")
        };
        assert_eq!((r.smin, r.smax), (-i64::from(u32::MAX), 0), "{r:?}");
        // A product that may overflow keeps nothing signed.
        let Ok(r) = alu(Width::W64, AluOp::Mul, &Scalar::UNKNOWN, &Scalar::konst(3)) else {
            panic!("no error expected")
        };
        assert_eq!((r.smin, r.smax), (i64::MIN, i64::MAX));
    }

    use proptest::prelude::*;

    /// A scalar known to contain `v`: a range around it, maybe with some bits known.
    fn around(v: u64, lo: u64, hi: u64, known_mask: u64, w32: bool) -> Scalar {
        let mut s = Scalar {
            umin: v.saturating_sub(lo),
            umax: v.saturating_add(hi),
            ..Scalar::UNKNOWN
        };
        s.var = Tnum {
            value: v & known_mask,
            mask: !known_mask,
        };
        let _ = w32;
        assert!(s.sync(), "a scalar built around a value is consistent");
        s
    }

    fn conds() -> impl Strategy<Value = Cond> {
        prop::sample::select(vec![
            Cond::Eq,
            Cond::Ne,
            Cond::Gt,
            Cond::Ge,
            Cond::Lt,
            Cond::Le,
            Cond::Sgt,
            Cond::Sge,
            Cond::Slt,
            Cond::Sle,
            Cond::Set,
        ])
    }

    fn small() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..300,
            any::<u64>(),
            (0u64..300).prop_map(|x| x.wrapping_neg()),
            any::<u32>().prop_map(u64::from)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20000))]

        /// Whatever edge the concrete pair takes, refinement keeps both values, and a decided
        /// branch is decided the way the concrete pair goes.
        #[test]
        fn refinement_keeps_the_concrete_values(
            x in small(), y in small(), cond in conds(), w32 in any::<bool>(),
            (lx, hx, mx) in (0u64..1000, 0u64..1000, any::<u64>()),
            (ly, hy, my) in (0u64..1000, 0u64..1000, any::<u64>()),
        ) {
            let width = if w32 { Width::W32 } else { Width::W64 };
            let a = around(x, lx, hx, mx, w32);
            let b = around(y, ly, hy, my, w32);
            prop_assert!(a.contains(x) && b.contains(y));
            let holds = if w32 { cond.eval32(x, y) } else { cond.eval64(x, y) };
            if let Some(t) = branch_taken(cond, width, &a, &b) {
                prop_assert_eq!(t, holds, "decided wrongly for {} {:?} {}", x, cond, y);
            }
            let (mut ra, mut rb) = (a, b);
            prop_assert!(refine(cond, holds, width, &mut ra, &mut rb), "the taken edge is feasible");
            prop_assert!(ra.contains(x), "{:?} {} lost {:#x}: {:?}", cond, holds, x, ra);
            prop_assert!(rb.contains(y), "{:?} {} lost {:#x}: {:?}", cond, holds, y, rb);
        }

        /// ALU results contain the concrete result.
        #[test]
        fn alu_keeps_the_concrete_result(
            x in small(), y in small(), w32 in any::<bool>(),
            op in prop::sample::select(vec![AluOp::Add, AluOp::Sub, AluOp::Mul, AluOp::And, AluOp::Or,
                AluOp::Xor, AluOp::Lsh, AluOp::Rsh, AluOp::Arsh, AluOp::Div, AluOp::Mod, AluOp::Mov]),
            (lx, hx, mx) in (0u64..1000, 0u64..1000, any::<u64>()),
            k in 0u64..64,
        ) {
            let width = if w32 { Width::W32 } else { Width::W64 };
            let y = if matches!(op, AluOp::Lsh | AluOp::Rsh | AluOp::Arsh) { k % if w32 { 32 } else { 64 } } else { y };
            let a = around(x, lx, hx, mx, w32);
            let b = Scalar::konst(y);
            let Ok(r) = alu(width, op, &a, &b) else { return Ok(()) };
            let v = eval_const(width, op, x, y).expect("binary op");
            prop_assert!(r.contains(v), "{:?} {:?} {:#x} {:#x} = {:#x} not in {:?}", op, width, x, y, v, r);
        }
    }
}
