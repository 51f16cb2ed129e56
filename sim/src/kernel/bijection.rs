//! Comparing two backends that number their objects differently (the kernel's map ids and fds
//! versus the model's): a [`Bijection`] learns which number of one side stands for which
//! number of the other the first time both appear together, and from then on a result only
//! agrees if it keeps that correspondence in both directions.
//!
//! Invariant: the two maps are inverse to each other (a partial bijection), so two distinct
//! objects of one side can never be matched with the same object of the other.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

/// A partial one-to-one correspondence between the numbers of side `a` and side `b`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bijection {
    forward: BTreeMap<u32, u32>,
    backward: BTreeMap<u32, u32>,
}

impl Bijection {
    pub fn new() -> Self {
        Bijection::default()
    }

    /// Records that `a` and `b` name the same object, or explains why they cannot: one of them
    /// is already matched with something else.
    pub fn relate(&mut self, a: u32, b: u32) -> Result<(), String> {
        match (self.forward.get(&a), self.backward.get(&b)) {
            (Some(&known_b), _) if known_b != b => {
                Err(format!("{a} already stands for {known_b}, not {b}"))
            }
            (_, Some(&known_a)) if known_a != a => {
                Err(format!("{b} already stands for {known_a}, not {a}"))
            }
            _ => {
                self.forward.insert(a, b);
                self.backward.insert(b, a);
                Ok(())
            }
        }
    }

    /// The `b` number matched with `a`, if any.
    pub fn to_b(&self, a: u32) -> Option<u32> {
        self.forward.get(&a).copied()
    }

    /// The `a` number matched with `b`, if any.
    pub fn to_a(&self, b: u32) -> Option<u32> {
        self.backward.get(&b).copied()
    }

    /// Relates two 4-byte native-endian values that hold numbers (an outer map's looked-up
    /// id, say); other lengths are an error naming them.
    pub fn relate_values(&mut self, a: &[u8], b: &[u8]) -> Result<(), String> {
        let number = |bytes: &[u8], side: &str| -> Result<u32, String> {
            let array: [u8; 4] = bytes
                .try_into()
                .map_err(|_| format!("side {side}: {} bytes, not a 4-byte id", bytes.len()))?;
            Ok(u32::from_ne_bytes(array))
        };
        self.relate(number(a, "a")?, number(b, "b")?)
    }

    /// Forgets a pair once the object is gone on both sides (an fd closed, an id released),
    /// since both backends may reuse the numbers.
    pub fn forget(&mut self, a: u32) {
        if let Some(b) = self.forward.remove(&a) {
            self.backward.remove(&b);
        }
    }

    pub fn len(&self) -> usize {
        self.forward.len()
    }

    pub fn is_empty(&self) -> bool {
        self.forward.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_learned_once_and_then_enforced_both_ways() {
        let mut ids = Bijection::new();
        ids.relate(35, 1).expect("first sight");
        ids.relate(35, 1).expect("the same pair again");
        assert!(ids.relate(35, 2).is_err(), "35 already stands for 1");
        assert!(ids.relate(36, 1).is_err(), "1 already stands for 35");
        assert_eq!((ids.to_b(35), ids.to_a(1)), (Some(1), Some(35)));
    }

    #[test]
    fn forgetting_a_pair_frees_both_numbers_for_reuse() {
        let mut fds = Bijection::new();
        fds.relate(7, 3).expect("relate");
        fds.forget(7);
        assert!(fds.is_empty());
        fds.relate(7, 4).expect("7 reused for another object");
        fds.relate(8, 3).expect("3 reused for another object");
        assert_eq!(fds.len(), 2);
    }

    #[test]
    fn values_must_be_four_byte_ids() {
        let mut ids = Bijection::new();
        ids.relate_values(&9u32.to_ne_bytes(), &2u32.to_ne_bytes())
            .expect("two ids");
        assert_eq!(ids.to_b(9), Some(2));
        let err = ids
            .relate_values(&[1, 2], &2u32.to_ne_bytes())
            .expect_err("2 bytes");
        assert!(err.contains("2 bytes"), "{err}");
    }
}
