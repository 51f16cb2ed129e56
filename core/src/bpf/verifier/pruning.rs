//! State pruning (the kernel's `is_state_visited`): at prune points the current state is
//! compared with checkpoints stored there earlier; if a **completed** checkpoint covers it
//! ([`states_equal`]), the path is cut, since everything reachable from it was already verified.
//!
//! Checkpoints form a tree through `parent`; `branches` counts the paths still being explored
//! below one. Only checkpoints with `branches == 0` may prune (a checkpoint whose subtree is
//! still open could be the current path's own ancestor: a loop). An open ancestor that equals the
//! current state exactly means the path came back to where it was: an infinite loop.
//!
//! Prune points (the kernel's): conditional jumps and their targets, targets of unconditional
//! jumps, instructions after calls, bpf-to-bpf calls and subprogram entries. Checkpoints are added as the kernel does: at every prune point under
//! `BPF_F_TEST_STATE_FREQ`, otherwise once at least 2 jumps and 8 instructions passed.

use super::state::{states_equal, RegType, VState};
use super::VerifyOpts;

/// "No entry" in the path history ([`super::precision::HistArena`]): the start of a segment.
pub const NO_HIST: u32 = u32::MAX;

pub struct Stored {
    pub pc: usize,
    pub state: VState,
    /// The last of the instructions processed from the parent checkpoint to this one, for
    /// precision tracking's walk back ([`super::precision::HistArena`]).
    pub hist: u32,
    pub branches: u32,
    pub parent: Option<usize>,
    /// Comparisons that pruned / that did not while a new checkpoint was being added: a state
    /// that keeps missing is dropped from its instruction's list (it stays in the tree).
    pub hit_cnt: u32,
    pub miss_cnt: u32,
}

pub enum Visit {
    /// Covered by the completed checkpoint at this index.
    Prune(usize),
    Loop,
    Continue,
}

pub struct Pruning {
    points: Vec<bool>,
    explored: Vec<Vec<usize>>,
    stored: Vec<Stored>,
    prev_insns: u64,
    prev_jmps: u64,
}

/// Heuristic of the kernel: a new checkpoint only after this many jumps ...
const CHECKPOINT_MIN_JMPS: u64 = 2;
/// ... and this many instructions since the previous one.
const CHECKPOINT_MIN_INSNS: u64 = 8;
/// Inside a loop (an open checkpoint at this instruction) a new checkpoint only after this many
/// jumps or instructions: iterations differ and rarely prune each other, and the kernel's
/// abusive case (`r1 += 1; if r1 < 1000000 goto pc-2`) stays at 10k peak states.
const LOOP_CHECKPOINT_MIN_JMPS: u64 = 20;
const LOOP_CHECKPOINT_MIN_INSNS: u64 = 100;
/// A state is evicted from its list after more than `EVICT_MISSES * (hits + 1)` misses.
const EVICT_MISSES: u32 = 3;

impl Pruning {
    pub fn new(len: usize) -> Pruning {
        Pruning {
            points: vec![false; len],
            explored: vec![Vec::new(); len],
            stored: Vec::new(),
            prev_insns: 0,
            prev_jmps: 0,
        }
    }
    pub fn mark(&mut self, pc: usize) {
        if let Some(p) = self.points.get_mut(pc) {
            *p = true;
        }
    }
    pub fn is_point(&self, pc: usize) -> bool {
        self.points.get(pc).copied().unwrap_or(false)
    }
    pub fn total(&self) -> usize {
        self.stored.len()
    }
    pub fn max_per_insn(&self) -> usize {
        self.explored.iter().map(Vec::len).max().unwrap_or(0)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn visit(
        &mut self,
        pc: usize,
        cur: &VState,
        parent: &mut Option<usize>,
        hist: &mut u32,
        opts: VerifyOpts,
        processed: u64,
        jmps: u64,
        live: u16,
        live_slots: u64,
    ) -> Visit {
        let force = opts.test_state_freq;
        let mut add = force
            || (jmps - self.prev_jmps >= CHECKPOINT_MIN_JMPS
                && processed - self.prev_insns >= CHECKPOINT_MIN_INSNS);
        // Newest first, as the kernel's list.
        let mut evict = Vec::new();
        for k in (0..self.explored[pc].len()).rev() {
            let i = self.explored[pc][k];
            let old = &mut self.stored[i];
            if old.branches > 0 {
                if old.state == *cur {
                    return Visit::Loop;
                }
                if !force
                    && jmps - self.prev_jmps < LOOP_CHECKPOINT_MIN_JMPS
                    && processed - self.prev_insns < LOOP_CHECKPOINT_MIN_INSNS
                {
                    add = false;
                }
            } else if states_equal(&old.state, cur, live, live_slots, precision(opts)) {
                old.hit_cnt += 1;
                return Visit::Prune(i);
            }
            if add {
                old.miss_cnt += 1;
            }
            if old.miss_cnt > old.hit_cnt * EVICT_MISSES + EVICT_MISSES {
                evict.push(k);
            }
        }
        // `evict` holds positions in decreasing order: remove back to front.
        for k in evict {
            self.explored[pc].remove(k);
        }
        if add {
            let index = self.stored.len();
            self.stored.push(Stored {
                pc,
                state: cur.clone(),
                hist: std::mem::replace(hist, NO_HIST),
                branches: 1,
                parent: *parent,
                hit_cnt: 0,
                miss_cnt: 0,
            });
            self.explored[pc].push(index);
            *parent = Some(index);
            self.prev_insns = processed;
            self.prev_jmps = jmps;
        }
        Visit::Continue
    }

    /// Whether a checkpoint was stored at `pc` (a visit there compares states).
    pub fn has_checkpoints(&self, pc: usize) -> bool {
        self.explored.get(pc).is_some_and(|l| !l.is_empty())
    }

    /// The state of checkpoint `i`, for precision marks.
    pub fn state_mut(&mut self, i: usize) -> &mut VState {
        &mut self.stored[i].state
    }

    pub fn state(&self, i: usize) -> &VState {
        &self.stored[i].state
    }

    /// The instructions that reached checkpoint `i` from its parent, and the parent.
    pub fn segment(&self, i: usize) -> (u32, Option<usize>) {
        let s = &self.stored[i];
        (s.hist, s.parent)
    }

    /// Every scalar of checkpoint `from` and its ancestors becomes precise (the kernel's
    /// `mark_all_scalars_precise`), where precision tracking cannot follow a path.
    pub fn mark_all_precise(&mut self, from: Option<usize>) {
        let mut at = from;
        while let Some(i) = at {
            let s = &mut self.stored[i];
            s.state.for_each_reg(|reg| {
                if reg.ty == RegType::Scalar {
                    reg.precise = true;
                }
            });
            at = s.parent;
        }
    }

    /// A copy of the current path was pushed to explore later: one more open branch below.
    pub fn branch_pushed(&mut self, parent: Option<usize>) {
        if let Some(p) = parent {
            self.stored[p].branches += 1;
        }
    }

    /// A path ended: close it in its checkpoint and every ancestor left with no open path.
    pub fn path_done(&mut self, parent: Option<usize>) {
        let mut at = parent;
        while let Some(i) = at {
            let s = &mut self.stored[i];
            s.branches = s.branches.saturating_sub(1);
            if s.branches > 0 {
                break;
            }
            at = s.parent;
        }
    }
}

/// Whether scalars a checkpoint did not mark precise cover any scalar, and dead stack slots are
/// left out of comparisons: privileged, as the kernel, except while the soundness oracle
/// records states (its join must hold every value a run can take, see [`super::precision`]).
pub fn precision(opts: VerifyOpts) -> bool {
    opts.privileged && !opts.collect_states
}
