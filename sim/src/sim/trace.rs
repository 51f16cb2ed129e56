//! The trace of one run: who did what, in kernel vocabulary, with logical stamps, and the
//! history of outer-map operations the linearizability oracle reads.
//!
//! The recorder is shared by every task of a run. Shuttle runs tasks one at a time on one OS
//! thread, so a std mutex here is never contended and adds no scheduling point: recording
//! never changes the schedule it records.
//!
//! [`Fnv`] (FNV-1a, 64 bit) fingerprints traces and schedules: stable across machines and
//! versions of Rust, unlike `RandomState`.

use serde::Serialize;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

/// FNV-1a, 64 bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    pub fn write_u64(&mut self, value: u64) {
        self.write(&value.to_le_bytes());
    }
    pub fn of(text: &str) -> u64 {
        let mut h = Fnv::default();
        h.write(text.as_bytes());
        h.0
    }
}

/// An inner map's identity in a run: its arena slot and generation (mod 256), as program
/// pointers carry it.
pub type MapIdent = (u32, u8);

/// What a user-space read of an outer map saw when the id it returned names no map the run
/// created: never a correct answer, whatever the outer map's kind.
pub const UNKNOWN_ID: MapIdent = (u32::MAX, 0);

/// One operation on an outer map, for the linearizability oracle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum HistOp {
    /// `map_update_elem(outer, key, inner)`: `Ok` or an errno.
    Update {
        key: u32,
        inner: MapIdent,
        flags: u64,
        /// The inner map's shape (the model needs it for `meta_equal`).
        attr: super::oracle::AttrKey,
    },
    Delete {
        key: u32,
    },
    /// A user lookup or a program's outer lookup: what it saw (`None`: missing / NULL).
    Read {
        key: u32,
        program: bool,
    },
    /// A key a batch may or may not have changed (a partial batch): the check skips the key.
    Opaque {
        key: u32,
    },
}

impl HistOp {
    pub fn key(&self) -> u32 {
        match self {
            HistOp::Update { key, .. }
            | HistOp::Delete { key }
            | HistOp::Read { key, .. }
            | HistOp::Opaque { key } => *key,
        }
    }
}

/// A completed operation with its invocation and response stamps.
#[derive(Debug, Clone, Serialize)]
pub struct HistEvent {
    pub task: usize,
    pub outer: String,
    pub op: HistOp,
    /// `Ok(seen)` (seen inner map for reads), or the errno's name.
    pub result: Result<Option<MapIdent>, String>,
    pub inv: u64,
    pub resp: u64,
}

#[derive(Debug, Default)]
struct Inner {
    clock: u64,
    lines: Vec<String>,
    history: Vec<HistEvent>,
}

/// The shared recorder of one run.
#[derive(Clone, Debug, Default)]
pub struct Recorder(Arc<Mutex<Inner>>);

impl Recorder {
    /// A fresh recorder. The text is always kept: the trace hash is over the text, and
    /// formatting a line is cheap next to a shuttle step (whether an outcome keeps the text is
    /// the caller's choice).
    pub fn new() -> Self {
        Recorder(Arc::new(Mutex::new(Inner::default())))
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The next logical stamp.
    pub fn stamp(&self) -> u64 {
        self.with(|i| {
            i.clock += 1;
            i.clock
        })
    }

    /// The last stamp given, read without taking a new one.
    pub fn now(&self) -> u64 {
        self.with(|i| i.clock)
    }

    /// Appends a trace line `[stamp] task/cpu: text`.
    pub fn line(&self, task: usize, cpu: usize, text: impl FnOnce() -> String) {
        self.with(|i| {
            i.clock += 1;
            let mut line = String::new();
            let _ = write!(line, "{:>5} t{task}/cpu{cpu} {}", i.clock, text());
            i.lines.push(line);
        })
    }

    pub fn event(&self, event: HistEvent) {
        self.with(|i| i.history.push(event))
    }

    pub fn lines(&self) -> Vec<String> {
        self.with(|i| i.lines.clone())
    }
    pub fn history(&self) -> Vec<HistEvent> {
        self.with(|i| i.history.clone())
    }
}
