//! The per-CPU LIFO freelist of a preallocated hash (`pcpu_freelist`), also used as the
//! type-stable element cache of a `BPF_F_NO_PREALLOC` hash (the kernel's `bpf_mem_alloc` also
//! hands a freed element out again at once).
//!
//! One head per CPU, each behind its own lock; `pop` tries the calling CPU's list, then the
//! others in order; `push` goes to the calling CPU. The freelist owns no link storage: the hash
//! passes the link words to use, which are the elements' own freelist links, or, under mutant
//! `freelist_aliases_next`, their bucket-list `next` words (the 2017 layout bug).
//!
//! Link encoding: `0` ends a list, `i + 1` names element `i`.
//!
//! # Invariants
//! * An element is on at most one freelist, and never on a freelist and in a bucket at once.
//! * A deleted element is the next one popped on its CPU (LIFO, no grace period): §7 says so.

use crate::sync::{Atomic64, Ordering, Platform};

/// The end of a freelist.
pub const FL_END: u64 = 0;

pub struct FreeList<P: Platform> {
    heads: Vec<P::Mutex<u64>>,
}

impl<P: Platform> FreeList<P> {
    pub fn new(cpus: usize) -> Self {
        FreeList {
            heads: (0..cpus.max(1)).map(|_| P::mutex(FL_END)).collect(),
        }
    }

    fn this_cpu(&self) -> usize {
        P::current_cpu() % self.heads.len()
    }

    /// Spreads `elems` over the CPUs' lists, like `pcpu_freelist_populate`.
    pub fn populate(&self, links: &[P::Atomic], elems: impl Iterator<Item = u32>) {
        let cpus = self.heads.len();
        for (n, elem) in elems.enumerate() {
            self.push_to(n % cpus, links, elem);
        }
    }

    fn push_to(&self, cpu: usize, links: &[P::Atomic], elem: u32) {
        P::lock(&self.heads[cpu], |head| {
            links[elem as usize].store(*head, Ordering::Release);
            *head = u64::from(elem) + 1;
        });
    }

    /// Pushes `elem` on the calling CPU's list.
    pub fn push(&self, links: &[P::Atomic], elem: u32) {
        self.push_to(self.this_cpu(), links, elem);
    }

    /// Pops from the calling CPU's list, then from the others.
    pub fn pop(&self, links: &[P::Atomic]) -> Option<u32> {
        let start = self.this_cpu();
        (0..self.heads.len()).find_map(|i| {
            let cpu = (start + i) % self.heads.len();
            P::lock(&self.heads[cpu], |head| {
                if *head == FL_END {
                    return None;
                }
                let elem = (*head - 1) as u32;
                *head = links
                    .get(elem as usize)
                    .map_or(FL_END, |l| l.load(Ordering::Acquire));
                Some(elem)
            })
        })
    }

    /// Elements on all lists, walking the links (meaningful at quiescence only). `limit` bounds
    /// the walk so a corrupted (cyclic) list cannot hang an audit.
    pub fn members(&self, links: &[P::Atomic], limit: usize) -> Vec<u32> {
        let mut out = Vec::new();
        for head in &self.heads {
            let mut link = P::lock(head, |h| *h);
            while link != FL_END && out.len() <= limit {
                let elem = (link - 1) as u32;
                out.push(elem);
                link = links
                    .get(elem as usize)
                    .map_or(FL_END, |l| l.load(Ordering::Acquire));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::Std;

    #[test]
    fn lifo_per_cpu_then_steal_from_other_cpus() {
        let links: Vec<_> = (0..4).map(|_| Std::atomic(0)).collect();
        let fl = FreeList::<Std>::new(2);
        Std::set_current_cpu(1);
        fl.populate(&links, 0..4); // cpu0: 2,0  cpu1: 3,1
        assert_eq!(fl.pop(&links), Some(3), "this CPU's list first");
        fl.push(&links, 3);
        assert_eq!(
            fl.pop(&links),
            Some(3),
            "a pushed element is the next one out (LIFO)"
        );
        assert_eq!(fl.pop(&links), Some(1));
        assert_eq!(fl.pop(&links), Some(2), "then another CPU's list");
        assert_eq!(fl.pop(&links), Some(0));
        assert_eq!(fl.pop(&links), None);
        assert!(fl.members(&links, 8).is_empty());
        // The same from CPU 0: its own list first, and its pushes land on its list.
        Std::set_current_cpu(0);
        fl.populate(&links, 0..4);
        assert_eq!(fl.pop(&links), Some(2), "CPU 0's list first");
        fl.push(&links, 2);
        assert_eq!(fl.pop(&links), Some(2));
        assert_eq!(fl.pop(&links), Some(0));
        assert_eq!(fl.pop(&links), Some(3), "then CPU 1's");
    }
}
