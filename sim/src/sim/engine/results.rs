//! The results oracle (`[[checks.results]]`): what a program's run may return on a class of
//! frames, and which value its packet may carry afterwards.
//!
//! As the run goes, [`Stored`] keeps which inner maps each outer key has held and which values
//! user space wrote into each map (set-up entries included). Both are noted *before* the
//! syscall that stores them, so a program that sees a store has always been told of it. A
//! packet value must be one written into a map its key held at some point: an
//! over-approximation (a value written to a table after it was swapped out still counts) that
//! never fails a correct run. A slot never written reads as 0, which is no value unless a
//! scenario writes it; so a table swapped in before it is filled is caught too.
//!
//! The alternative, comparing with a sequential model of the tables at the run's
//! linearization point, would need the reads of inner maps in the history; the coarser set
//! already tells a backend of another service, or of no table, from a right one.

use super::*;
use crate::sim::scenario::ResultCheck;
use mimic_core::bpf::verifier::ProgType;
use mimic_core::bpf::{skb, xdp};
use std::collections::BTreeSet;

/// What user space stored, as the results oracle needs it.
#[derive(Default)]
pub(super) struct Stored {
    /// Inner maps stored under each (outer map, key), by identity.
    held: BTreeMap<(String, u32), BTreeSet<MapIdent>>,
    /// Values written into each map.
    written: BTreeMap<MapIdent, BTreeSet<u64>>,
}

impl Ctx {
    fn stored(&self) -> std::sync::MutexGuard<'_, Stored> {
        self.stored.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An inner map is about to be stored under `outer[key]`.
    pub(super) fn note_held(&self, outer: &str, key: u32, inner: MapIdent) {
        if self.scenario.checks.results.is_empty() {
            return;
        }
        self.stored()
            .held
            .entry((outer.to_string(), key))
            .or_default()
            .insert(inner);
    }

    /// A value is about to be written into map `map` (its first 8 bytes, little-endian).
    pub(super) fn note_written(&self, map: MapIdent, value: u64) {
        if self.scenario.checks.results.is_empty() {
            return;
        }
        self.stored().written.entry(map).or_default().insert(value);
    }

    /// Judges one finished run of `program` on frame `frame`: `r0` and the packet afterwards
    /// against every results check that covers them. The first broken one fails the run.
    pub(super) fn check_result(
        &self,
        program: &str,
        prog_type: ProgType,
        run: u32,
        frame: &str,
        r0: u64,
        packet: &[u8],
    ) {
        for check in &self.scenario.checks.results {
            if !check.covers(program, frame) {
                continue;
            }
            if let Err(why) = self.judge(check, prog_type, r0, packet) {
                self.fail(
                    Finding::WrongResult,
                    format!("program {program} run {run} on frame {frame}: {why}"),
                );
                return;
            }
        }
    }

    fn judge(
        &self,
        check: &ResultCheck,
        prog_type: ProgType,
        r0: u64,
        packet: &[u8],
    ) -> Result<(), String> {
        // The kernel reads a packet program's verdict as a u32.
        if !check
            .returns
            .iter()
            .any(|a| a.value == r0 & u64::from(u32::MAX))
        {
            let allowed: Vec<&str> = check.returns.iter().map(|a| a.written.as_str()).collect();
            return Err(format!(
                "returned {}, where only {} may be returned",
                action_name(prog_type, r0),
                allowed.join(" or ")
            ));
        }
        let Some(value) = &check.packet_value else {
            return Ok(());
        };
        let (outer, key) = (&value.from.outer, value.from.key);
        let Some(bytes) = packet.get(value.offset..value.offset + value.size) else {
            return Err(format!(
                "the packet ({} bytes) has no bytes {}..{}",
                packet.len(),
                value.offset,
                value.offset + value.size
            ));
        };
        let mut word = [0u8; 8];
        word[..value.size].copy_from_slice(bytes);
        let seen = u64::from_le_bytes(word);
        let mask = if value.size == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * value.size)) - 1
        };
        let stored = self.stored();
        let held = stored.held.get(&(outer.clone(), key));
        let found = held.is_some_and(|maps| {
            maps.iter().any(|m| {
                stored
                    .written
                    .get(m)
                    .is_some_and(|vs| vs.iter().any(|v| v & mask == seen))
            })
        });
        if found {
            return Ok(());
        }
        Err(format!(
            "packet bytes {}..{} hold {seen}, a value written into no map {outer}[{key}] held \
             during the run ({} maps held it)",
            value.offset,
            value.offset + value.size,
            held.map_or(0, BTreeSet::len)
        ))
    }
}

/// A packet program's verdict by its type's names (`XDP_TX`, `TC_ACT_SHOT`), or the number.
pub(crate) fn action_name(prog_type: ProgType, r0: u64) -> String {
    if prog_type == ProgType::SchedCls {
        skb::action_name(r0)
    } else {
        xdp::action_name(r0)
    }
}
