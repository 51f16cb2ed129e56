//! The verifier log: instruction lines as the kernel prints them at log level 2, the refusal
//! message, and the closing `processed N insns` line that tests and BENCHMARKS.md compare with
//! the kernel's.

use crate::bpf::print::{insn_text, DefaultSymbols};
use crate::isa::Insn;

/// The kernel's limit on processed instructions (`BPF_COMPLEXITY_LIMIT_INSNS`).
pub const COMPLEXITY_LIMIT_INSNS: u64 = 1_000_000;

#[derive(Debug, Default, Clone)]
pub struct Log {
    /// 0: only the message and the summary line; 1 and up: every processed instruction too.
    pub level: u8,
    pub text: String,
}

impl Log {
    pub fn insn(&mut self, insns: &[Insn], pc: usize) {
        if self.level == 0 {
            return;
        }
        let text = insn_text(insns, pc, &DefaultSymbols).unwrap_or_else(|e| e.message);
        self.text.push_str(&format!("{pc}: {text}\n"));
    }
    pub fn branch(&mut self, from: usize, to: usize) {
        if self.level > 0 {
            self.text.push_str(&format!("from {from} to {to}\n"));
        }
    }
    pub fn line(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
    }
}

/// Counters of one verification, as the kernel's summary line prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub processed: u64,
    pub max_states_per_insn: usize,
    pub total_states: usize,
    pub peak_states: usize,
}

impl Stats {
    pub fn summary(&self) -> String {
        format!(
            "processed {} insns (limit {COMPLEXITY_LIMIT_INSNS}) max_states_per_insn {} total_states {} peak_states {} mark_read 0",
            self.processed, self.max_states_per_insn, self.total_states, self.peak_states
        )
    }
}
