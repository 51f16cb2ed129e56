//! Oracles that judge a finished run from what it recorded (they never touch simulated state):
//! the linearizability check of each outer map's history against the sequential reference
//! model [`RefModel`], with semantics.md §7's allowed observations.
//!
//! The history of an outer map is checked **per key** (a map is a product of independent
//! per-key registers for single-key ops, so a history is linearizable iff each key's is). For
//! each key a Wing–Gong search looks for an order of the key's operations that respects real
//! time (an op that responded before another was invoked comes first) and in which every
//! operation returns, on the model, what it returned in the run:
//! * updates and deletes: the same success or errno, exactly;
//! * reads (user lookups, program outer lookups): "missing" exactly when the model has no entry
//!   (**a present key reported missing is the `lost_key` failure**); for a hash of maps the inner
//!   map seen is not compared (§7: a preallocated element can be reused for another key under
//!   the reader), for an array of maps it must be the model's.
//!
//! Results that depend on other keys or on luck (`-E2BIG` full map, `-ENOMEM`, `-EBUSY`) leave
//! the state unchanged and are left out. The search is bounded ([`SEARCH_NODES_MAX`]); a key
//! whose search runs out is not reported.

use super::trace::{HistEvent, HistOp, MapIdent, UNKNOWN_ID};
use mimic_core::errno::Errno;
use mimic_core::finding::Finding;
use mimic_core::model::RefModel;
use mimic_core::uapi::{BpfSys, Fd, MapAttr, MapType};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Nodes one key's search may visit before giving up (inconclusive, not a failure).
pub const SEARCH_NODES_MAX: usize = 200_000;
/// Operations on one key the check handles (the done-set is a 128-bit mask).
pub const KEY_OPS_MAX: usize = 128;

/// A map shape as the history records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct AttrKey {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
}

impl AttrKey {
    pub fn of(attr: &MapAttr) -> AttrKey {
        AttrKey {
            map_type: attr.map_type,
            key_size: attr.key_size,
            value_size: attr.value_size,
            max_entries: attr.max_entries,
            map_flags: attr.map_flags,
        }
    }
    fn attr(self) -> Option<MapAttr> {
        Some(
            MapAttr::new(
                MapType::from_u32(self.map_type)?,
                self.key_size,
                self.value_size,
                self.max_entries,
            )
            .flags(self.map_flags),
        )
    }
}

/// A failed check.
#[derive(Debug, Clone)]
pub struct Violation {
    pub finding: Finding,
    pub detail: String,
}

/// Errnos that depend on capacity, allocation or re-entrancy, not on the key's state.
fn is_environmental(errno: &str) -> bool {
    ["E2BIG", "ENOMEM", "EBUSY"].contains(&errno)
}

/// The model for one key: the outer map and one inner map per identity seen in the history.
#[derive(Clone)]
struct KeyModel {
    model: RefModel,
    outer: Fd,
    inner_fds: BTreeMap<MapIdent, Fd>,
    /// Model id → run identity, to compare the inner map an array-of-maps read saw.
    ident_of_id: BTreeMap<u32, MapIdent>,
}

pub fn check_outer(
    name: &str,
    attr: MapAttr,
    template: MapAttr,
    events: &[&HistEvent],
) -> Result<(), Violation> {
    let mut by_key: BTreeMap<u32, Vec<&HistEvent>> = BTreeMap::new();
    for event in events {
        by_key.entry(event.op.key()).or_default().push(event);
    }
    let exact_values = attr.map_type == MapType::ArrayOfMaps as u32;
    for (key, mut ops) in by_key {
        if ops.iter().any(|e| matches!(e.op, HistOp::Opaque { .. })) {
            continue;
        }
        ops.retain(|e| !matches!(&e.result, Err(errno) if is_environmental(errno)));
        if ops.is_empty() || ops.len() > KEY_OPS_MAX {
            continue;
        }
        ops.sort_by_key(|e| (e.inv, e.resp));
        let Some(base) = key_model(attr, template, &ops) else {
            continue;
        };
        match search(&base, key, &ops, exact_values) {
            Search::Found | Search::GaveUp => {}
            Search::None => {
                // Which rule broke: if the history is fine without its "missing" reads, a read
                // reported a present key missing.
                let without: Vec<&HistEvent> = ops
                    .iter()
                    .copied()
                    .filter(|e| {
                        !(matches!(e.op, HistOp::Read { .. }) && matches!(e.result, Ok(None)))
                    })
                    .collect();
                let lost = matches!(search(&base, key, &without, exact_values), Search::Found);
                let listing: Vec<String> = ops.iter().map(|e| describe(e)).collect();
                return Err(Violation {
                    finding: if lost {
                        Finding::LostKey
                    } else {
                        Finding::Linearizability
                    },
                    detail: format!(
                        "{name}[{key}]: no order of these operations is allowed by the sequential model{}:\n  {}",
                        if lost { " (a read reported the key missing while it was present)" } else { "" },
                        listing.join("\n  ")
                    ),
                });
            }
        }
    }
    Ok(())
}

fn describe(e: &HistEvent) -> String {
    let result = match &e.result {
        Ok(Some((i, g))) => format!("map#{i}.{g}"),
        Ok(None) => match e.op {
            HistOp::Read { .. } => "missing".into(),
            _ => "ok".into(),
        },
        Err(errno) => errno.clone(),
    };
    let op = match &e.op {
        HistOp::Update { inner, flags, .. } => {
            format!("update(map#{}.{}, flags {flags})", inner.0, inner.1)
        }
        HistOp::Delete { .. } => "delete".into(),
        HistOp::Read { program: true, .. } => "program lookup".into(),
        HistOp::Read { program: false, .. } => "user lookup".into(),
        HistOp::Opaque { .. } => "batch".into(),
    };
    format!(
        "[{:>5}..{:>5}] task {}: {op} -> {result}",
        e.inv, e.resp, e.task
    )
}

fn key_model(attr: MapAttr, template: MapAttr, ops: &[&HistEvent]) -> Option<KeyModel> {
    let mut model = RefModel::new();
    let template_fd = model.map_create(&template).ok()?;
    let outer_attr = MapAttr {
        inner_map_fd: template_fd as u32,
        ..attr
    };
    let outer = model.map_create(&outer_attr).ok()?;
    let mut inner_fds = BTreeMap::new();
    let mut ident_of_id = BTreeMap::new();
    for e in ops {
        if let HistOp::Update { inner, attr, .. } = &e.op {
            if inner_fds.contains_key(inner) {
                continue;
            }
            let fd = model.map_create(&attr.attr()?).ok()?;
            let id = model.map_info(fd).ok()?.id;
            inner_fds.insert(*inner, fd);
            ident_of_id.insert(id, *inner);
        }
    }
    Some(KeyModel {
        model,
        outer,
        inner_fds,
        ident_of_id,
    })
}

enum Search {
    Found,
    None,
    GaveUp,
}

/// Applies `e` to the model; `Some(next state)` when the model returns what the run did.
fn step(state: &KeyModel, key: u32, e: &HistEvent, exact_values: bool) -> Option<KeyModel> {
    let mut next = state.clone();
    let key_bytes = key.to_ne_bytes();
    let errno_of = |r: Result<(), mimic_core::fault::Error>| {
        r.map_err(|e| e.errno().map_or("fault".to_string(), |x| format!("{x:?}")))
    };
    match &e.op {
        HistOp::Update { inner, flags, .. } => {
            let fd = *next.inner_fds.get(inner)?;
            let got = errno_of(next.model.map_update_elem(
                next.outer,
                &key_bytes,
                &fd.to_ne_bytes(),
                *flags,
            ));
            let want = e.result.clone().map(|_| ());
            (got == want).then_some(next)
        }
        HistOp::Delete { .. } => {
            let got = errno_of(next.model.map_delete_elem(next.outer, &key_bytes));
            let want = e.result.clone().map(|_| ());
            (got == want).then_some(next)
        }
        HistOp::Read { .. } => {
            let got = next.model.map_lookup_elem(next.outer, &key_bytes);
            match (&e.result, got) {
                (Ok(None), Err(err)) if err.errno() == Some(Errno::ENOENT) => Some(next),
                (Ok(Some(seen)), Ok(bytes)) => {
                    // §7 lets a hash of maps' reader see an inner map that is no longer the
                    // key's (element reuse), but never an id that names no map at all.
                    if !exact_values {
                        return (*seen != UNKNOWN_ID).then_some(next);
                    }
                    let id = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?);
                    (next.ident_of_id.get(&id) == Some(seen)).then_some(next)
                }
                (Err(want), Err(err)) => (err.errno().map(|x| format!("{x:?}")).as_deref()
                    == Some(want.as_str()))
                .then_some(next),
                _ => None,
            }
        }
        HistOp::Opaque { .. } => Some(next),
    }
}

/// The key's model state, for memoisation: what a lookup returns.
fn fingerprint(state: &KeyModel, key: u32) -> Option<Vec<u8>> {
    let mut model = state.model.clone();
    model.map_lookup_elem(state.outer, &key.to_ne_bytes()).ok()
}

fn search(base: &KeyModel, key: u32, ops: &[&HistEvent], exact_values: bool) -> Search {
    let n = ops.len();
    let full: u128 = if n == 128 {
        u128::MAX
    } else {
        (1u128 << n) - 1
    };
    let mut seen: BTreeSet<(u128, Option<Vec<u8>>)> = BTreeSet::new();
    let mut stack: Vec<(u128, KeyModel)> = vec![(0, base.clone())];
    let mut nodes = 0usize;
    while let Some((done, state)) = stack.pop() {
        if done == full {
            return Search::Found;
        }
        nodes += 1;
        if nodes > SEARCH_NODES_MAX {
            return Search::GaveUp;
        }
        // The earliest response among pending ops: only ops invoked before it may go next.
        let horizon = (0..n)
            .filter(|i| done & (1 << i) == 0)
            .map(|i| ops[i].resp)
            .min()
            .unwrap_or(u64::MAX);
        for i in (0..n).rev() {
            if done & (1 << i) != 0 || ops[i].inv > horizon {
                continue;
            }
            if let Some(next) = step(&state, key, ops[i], exact_values) {
                let mask = done | (1 << i);
                if seen.insert((mask, fingerprint(&next, key))) {
                    stack.push((mask, next));
                }
            }
        }
    }
    Search::None
}
