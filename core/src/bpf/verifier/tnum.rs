//! Tristate numbers ("tnums"): a value whose bits are each known 0, known 1 or unknown, written
//! `(value; mask)` where a set `mask` bit is unknown and `value & mask == 0` always holds.
//!
//! This is the kernel's abstract domain for bit-level knowledge of scalars; the operations below
//! are the standard sound transfer functions (each result contains every concrete result).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tnum {
    pub value: u64,
    pub mask: u64,
}

// `add`/`sub`/`mul` are the kernel's `tnum_add` etc., not the std operator traits (they are
// abstract transfer functions, not arithmetic on one value).
#[allow(clippy::should_implement_trait)]
impl Tnum {
    pub const UNKNOWN: Tnum = Tnum {
        value: 0,
        mask: u64::MAX,
    };

    pub const fn konst(value: u64) -> Tnum {
        Tnum { value, mask: 0 }
    }

    /// The smallest tnum containing every value in `[min, max]`.
    pub fn range(min: u64, max: u64) -> Tnum {
        let chi = min ^ max;
        let bits = 64 - chi.leading_zeros();
        if bits > 63 {
            return Tnum::UNKNOWN;
        }
        let delta = (1u64 << bits) - 1;
        Tnum {
            value: min & !delta,
            mask: delta,
        }
    }

    pub fn is_const(self) -> bool {
        self.mask == 0
    }
    pub fn is_unknown(self) -> bool {
        self.mask == u64::MAX
    }
    /// Does `self` contain the concrete value `v`?
    pub fn contains(self, v: u64) -> bool {
        v & !self.mask == self.value
    }
    /// Is every value of `other` also a value of `self`?
    pub fn includes(self, other: Tnum) -> bool {
        other.mask & !self.mask == 0 && other.value & !self.mask == self.value
    }
    /// Smallest and largest unsigned values.
    pub fn umin(self) -> u64 {
        self.value
    }
    pub fn umax(self) -> u64 {
        self.value | self.mask
    }

    pub fn add(self, b: Tnum) -> Tnum {
        let sm = self.mask.wrapping_add(b.mask);
        let sv = self.value.wrapping_add(b.value);
        let sigma = sm.wrapping_add(sv);
        let chi = sigma ^ sv;
        let mu = chi | self.mask | b.mask;
        Tnum {
            value: sv & !mu,
            mask: mu,
        }
    }
    pub fn sub(self, b: Tnum) -> Tnum {
        let dv = self.value.wrapping_sub(b.value);
        let alpha = dv.wrapping_add(self.mask);
        let beta = dv.wrapping_sub(b.mask);
        let chi = alpha ^ beta;
        let mu = chi | self.mask | b.mask;
        Tnum {
            value: dv & !mu,
            mask: mu,
        }
    }
    pub fn and(self, b: Tnum) -> Tnum {
        let alpha = self.value | self.mask;
        let beta = b.value | b.mask;
        let v = self.value & b.value;
        Tnum {
            value: v,
            mask: alpha & beta & !v,
        }
    }
    pub fn or(self, b: Tnum) -> Tnum {
        let v = self.value | b.value;
        let mu = self.mask | b.mask;
        Tnum {
            value: v,
            mask: mu & !v,
        }
    }
    pub fn xor(self, b: Tnum) -> Tnum {
        let v = self.value ^ b.value;
        let mu = self.mask | b.mask;
        Tnum {
            value: v & !mu,
            mask: mu,
        }
    }
    /// Multiplication by shift-and-add over the known/unknown bits of `self`.
    pub fn mul(self, b: Tnum) -> Tnum {
        let mut a = self;
        let mut b = b;
        let acc_v = a.value.wrapping_mul(b.value);
        let mut acc_m = Tnum::konst(0);
        while a.value != 0 || a.mask != 0 {
            if a.value & 1 != 0 {
                acc_m = acc_m.add(Tnum {
                    value: 0,
                    mask: b.mask,
                });
            } else if a.mask & 1 != 0 {
                acc_m = acc_m.add(Tnum {
                    value: 0,
                    mask: b.value | b.mask,
                });
            }
            a = a.rshift(1);
            b = b.lshift(1);
        }
        Tnum::konst(acc_v).add(acc_m)
    }
    pub fn lshift(self, shift: u32) -> Tnum {
        Tnum {
            value: self.value.wrapping_shl(shift),
            mask: self.mask.wrapping_shl(shift),
        }
    }
    pub fn rshift(self, shift: u32) -> Tnum {
        Tnum {
            value: self.value.wrapping_shr(shift),
            mask: self.mask.wrapping_shr(shift),
        }
    }
    /// Arithmetic right shift of the low `bits` (32 or 64) bits.
    pub fn arshift(self, shift: u32, bits: u32) -> Tnum {
        if bits == 32 {
            let v = ((self.value as u32 as i32) >> shift) as u32 as u64;
            let m = ((self.mask as u32 as i32) >> shift) as u32 as u64;
            Tnum { value: v, mask: m }
        } else {
            Tnum {
                value: ((self.value as i64) >> shift) as u64,
                mask: ((self.mask as i64) >> shift) as u64,
            }
        }
    }
    /// The low 32 bits, zero-extended.
    pub fn subreg(self) -> Tnum {
        Tnum {
            value: self.value & 0xffff_ffff,
            mask: self.mask & 0xffff_ffff,
        }
    }
    /// Keeps the high 32 bits of `self` and replaces the low 32 with `low`'s.
    pub fn with_subreg(self, low: Tnum) -> Tnum {
        Tnum {
            value: (self.value & !0xffff_ffff) | (low.value & 0xffff_ffff),
            mask: (self.mask & !0xffff_ffff) | (low.mask & 0xffff_ffff),
        }
    }
    /// Values in both (None: no common value).
    pub fn intersect(self, b: Tnum) -> Option<Tnum> {
        let known_both = !self.mask & !b.mask;
        if (self.value ^ b.value) & known_both != 0 {
            return None;
        }
        let v = self.value | b.value;
        let mu = self.mask & b.mask;
        Some(Tnum {
            value: v & !mu,
            mask: mu,
        })
    }
    /// The smallest tnum containing both.
    pub fn union(self, b: Tnum) -> Tnum {
        let mu = self.mask | b.mask | (self.value ^ b.value);
        Tnum {
            value: self.value & !mu,
            mask: mu,
        }
    }
}

impl fmt::Display for Tnum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({:#x}; {:#x})", self.value, self.mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exhaustive over 4-bit tnums: each operation's result contains every concrete result.
    #[test]
    fn transfer_functions_are_sound_on_small_tnums() {
        let tnums: Vec<Tnum> = (0..16u64)
            .flat_map(|m| {
                (0..16u64).map(move |v| Tnum {
                    value: v & !m,
                    mask: m,
                })
            })
            .collect();
        let members = |t: Tnum| (0..16u64).filter(move |v| t.contains(*v));
        for &a in &tnums {
            for &b in &tnums {
                for x in members(a) {
                    for y in members(b) {
                        assert!(a.add(b).contains(x.wrapping_add(y)), "{a}+{b}");
                        assert!(a.sub(b).contains(x.wrapping_sub(y)), "{a}-{b}");
                        assert!(a.mul(b).contains(x.wrapping_mul(y)), "{a}*{b}");
                        assert!(a.and(b).contains(x & y));
                        assert!(a.or(b).contains(x | y));
                        assert!(a.xor(b).contains(x ^ y));
                        assert!(a.union(b).contains(x) && a.union(b).contains(y));
                    }
                }
            }
        }
        assert_eq!(Tnum::range(4, 7), Tnum { value: 4, mask: 3 });
        assert!(Tnum::range(0, u64::MAX).is_unknown());
    }
}
