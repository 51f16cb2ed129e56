//! Faults: violations of semantics.md §8 that the model detects itself instead of leaving them to
//! Rust (which would either hide them or panic without a reason). A fault is a finding, never an
//! errno a user could see; checkers assert on its variant.
//!
//! [`Error`] is what every core operation returns: an errno the kernel would return, or a fault.

use crate::errno::Errno;
use std::fmt;

/// A logical timestamp: which event of the run, on which task and CPU. Runs take `seq` from the
/// world's event clock, never from a wall clock, so stamps are part of a deterministic trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Stamp {
    pub seq: u64,
    pub task: usize,
    pub cpu: usize,
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event {} (task {}, cpu {})",
            self.seq, self.task, self.cpu
        )
    }
}

/// A model violation. Each variant names the invariant of semantics.md §8 it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// §8.1/§8.3: an object was reached after it was freed.
    #[error("use after free: {object} freed at {}, accessed at {accessed_at}", fmt_opt(.freed_at))]
    UseAfterFree {
        object: String,
        freed_at: Option<Stamp>,
        accessed_at: Stamp,
    },
    /// §8.3: an object was freed twice.
    #[error("double free: {object} freed at {first} and again at {second}")]
    DoubleFree {
        object: String,
        first: Stamp,
        second: Stamp,
    },
    /// §8.3: a reference was dropped that was not held (refcnt or uref below zero).
    #[error("double put: {object} ({counter} went below zero) at {at}")]
    DoublePut {
        object: String,
        counter: &'static str,
        at: Stamp,
    },
    /// §8.6: a CPU waits on a lock it holds itself (a nested context spinning on it).
    #[error("deadlock: cpu {cpu} spins on {lock}, which it already holds, at {at}")]
    Deadlock { lock: String, cpu: usize, at: Stamp },
    /// §8.6: two lock classes taken in an order the kernel forbids (lockdep's complaint).
    #[error("lock order violation: took {acquiring} while holding {held}, at {at}")]
    LockOrder {
        held: String,
        acquiring: String,
        at: Stamp,
    },
    /// §8.3: a memory access outside the object it points into.
    #[error("out of bounds: {what} at {at}")]
    OutOfBounds { what: String, at: Stamp },
    /// §8.2: a reader saw a partly initialised object.
    #[error("publication: {what} at {at}")]
    Publication { what: String, at: Stamp },
    /// §8.4: at quiescence an object is still allocated or a counter is not zero.
    #[error("leak: {object} {detail}")]
    Leak { object: String, detail: String },
    /// §8.5: free + linked + spare != capacity.
    #[error("freelist conservation: {detail}")]
    Conservation { detail: String },
    /// §8.6: a grace period could not complete within the bound.
    #[error("liveness: {detail}")]
    Liveness { detail: String },
    /// A reference implementation (the kernel) answered something the model has no word for,
    /// e.g. an errno outside [`Errno`]: a comparison cannot be made, which is itself a finding.
    #[error("unmodelled: {detail}")]
    Unmodelled { detail: String },
}

fn fmt_opt(stamp: &Option<Stamp>) -> String {
    match stamp {
        Some(stamp) => stamp.to_string(),
        None => "an earlier generation".to_string(),
    }
}

impl Fault {
    /// A stable short name for reports and "failed for the right reason" assertions.
    pub fn kind(&self) -> &'static str {
        self.finding().name()
    }

    /// The finding this fault is.
    pub fn finding(&self) -> crate::finding::Finding {
        use crate::finding::Finding;
        match self {
            Fault::UseAfterFree { .. } => Finding::UseAfterFree,
            Fault::DoubleFree { .. } => Finding::DoubleFree,
            Fault::DoublePut { .. } => Finding::DoublePut,
            Fault::Deadlock { .. } => Finding::Deadlock,
            Fault::LockOrder { .. } => Finding::LockOrder,
            Fault::OutOfBounds { .. } => Finding::OutOfBounds,
            Fault::Publication { .. } => Finding::Publication,
            Fault::Leak { .. } => Finding::Leak,
            Fault::Conservation { .. } => Finding::Conservation,
            Fault::Liveness { .. } => Finding::Liveness,
            Fault::Unmodelled { .. } => Finding::Unmodelled,
        }
    }
}

/// The result of a core operation: an errno the kernel would return, or a fault of the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Errno(#[from] Errno),
    #[error("{0}")]
    Fault(#[from] Fault),
}

impl Error {
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Errno(errno) => Some(*errno),
            Error::Fault(_) => None,
        }
    }
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            Error::Fault(fault) => Some(fault),
            Error::Errno(_) => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
