//! The errno table, the one table every backend is held to: every errno row of semantics.md
//! §1–4 and the kernel facts the model follows (source `kernel`: measured on Linux 6.18, where
//! the spec is silent or the kernel contradicts it, see docs/kernel-disagreements.md) or that
//! only the model can state (source `model`: buffers of the wrong length, which the real
//! syscall cannot express), as data, one [`Case`] per rule, plus the [`scenarios`] that need a
//! loop. Drivers: [`errno_table`] (a fresh backend per entry: the model, the world) and
//! [`run_table_on`] (one long-lived backend: the kernel), whose [`TableReport`] counts
//! disagreements by kind for `mimic kernel-check`.
//!
//! A case is a short op sequence in the [`ops`](super::ops) vocabulary; every step states what
//! it must return, so a failure names the rule, the step and both the expected and the actual
//! outcome. Slots are numbered by the case's own fd-producing ops (`s(0)` is its first map).

use super::ops::CanonId;
use super::ops::{apply, close_open, Create, FdMap, FdRef, IdRef, Op, Outcome, Val, Value};
use crate::errno::Errno;
use crate::uapi::{
    BpfSys, MapType, BPF_ANY, BPF_EXIST, BPF_F_INNER_MAP, BPF_F_MMAPABLE, BPF_F_NO_COMMON_LRU,
    BPF_F_NO_PREALLOC, BPF_F_RDONLY, BPF_F_RDONLY_PROG, BPF_F_WRONLY, BPF_F_WRONLY_PROG,
    BPF_F_ZERO_SEED, BPF_NOEXIST,
};
use std::fmt;

/// What a step must return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Success, whatever the value.
    Ok,
    /// This errno (for batch counts: this errno after any number of entries).
    Err(Errno),
    /// Success with exactly these bytes (a lookup value or a next key).
    Bytes(Vec<u8>),
    /// Success with the id of the map created by this slot.
    MapOf(u32),
    /// A batch update/delete count.
    Count(Result<u32, (u32, Errno)>),
    /// A whole-map op that reached the end with exactly these keys (sorted).
    Keys(Vec<Vec<u8>>),
    /// A whole-map batch that reached the end with exactly these entries.
    Entries(Vec<(Vec<u8>, Value)>),
    /// `map_info` succeeded and reports exactly these `map_flags`.
    Flags(u32),
}

/// One step of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub op: Op,
    pub expect: Expect,
}

/// One rule of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The rule, as a sentence.
    pub name: String,
    /// Where the rule comes from: a semantics.md section, `kernel` (a kernel fact the spec does
    /// not state) or `model` (a choice of the model where the syscall cannot tell).
    pub source: &'static str,
    pub steps: Vec<Step>,
}

impl Case {
    fn new(name: impl Into<String>, source: &'static str) -> Case {
        Case {
            name: name.into(),
            source,
            steps: Vec::new(),
        }
    }
    fn step(mut self, op: Op, expect: Expect) -> Case {
        self.steps.push(Step { op, expect });
        self
    }
    /// A setup step that must succeed.
    fn ok(self, op: Op) -> Case {
        self.step(op, Expect::Ok)
    }
    fn err(self, op: Op, errno: Errno) -> Case {
        self.step(op, Expect::Err(errno))
    }
}

/// Why a step did not do what its case says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFailure {
    pub case: String,
    pub source: &'static str,
    pub step: usize,
    pub op: Op,
    pub expected: Expect,
    pub actual: Outcome,
}

impl fmt::Display for CaseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {}: step {}: {}\n    expected {:?}\n    got      {}",
            self.source, self.case, self.step, self.op, self.expected, self.actual
        )
    }
}

fn matches(expect: &Expect, outcome: &Outcome) -> bool {
    if outcome.is_finding() {
        return false;
    }
    match expect {
        Expect::Ok => {
            outcome.errno().is_none()
                && match outcome {
                    Outcome::Keys(Ok(k)) => k.stopped.is_none(),
                    Outcome::Entries(Ok(e)) => e.stopped.is_none(),
                    _ => true,
                }
        }
        Expect::Err(errno) => match outcome {
            Outcome::Keys(Ok(k)) => k.stopped.as_ref().and_then(|e| e.errno()) == Some(*errno),
            Outcome::Entries(Ok(e)) => e.stopped.as_ref().and_then(|e| e.errno()) == Some(*errno),
            _ => outcome.errno() == Some(*errno),
        },
        Expect::Bytes(bytes) => match outcome {
            Outcome::Value(Ok(Value::Bytes(b))) => b == bytes,
            Outcome::NextKey { result: Ok(b), .. } => b == bytes,
            _ => false,
        },
        Expect::MapOf(slot) => {
            matches!(outcome, Outcome::Value(Ok(Value::Map(CanonId::Map(s)))) if s == slot)
        }
        Expect::Count(want) => match outcome {
            Outcome::Count(got) => match (want, got) {
                (Ok(a), Ok(b)) => a == b,
                (Err((n, e)), Err((m, got))) => n == m && got.errno() == Some(*e),
                _ => false,
            },
            _ => false,
        },
        Expect::Keys(keys) => {
            matches!(outcome, Outcome::Keys(Ok(k)) if k.stopped.is_none() && k.repeated.is_empty() && &k.keys == keys)
        }
        Expect::Entries(entries) => {
            matches!(outcome, Outcome::Entries(Ok(e)) if e.stopped.is_none() && e.repeated.is_empty() && &e.entries == entries)
        }
        Expect::Flags(flags) => matches!(outcome, Outcome::Info(Ok(i)) if i.map_flags == *flags),
    }
}

/// Runs one case on a fresh implementation; closes what it opened afterwards.
pub fn run_case(sys: &mut dyn BpfSys, case: &Case) -> Result<(), Box<CaseFailure>> {
    run_case_with(sys, case, FdMap::new())
}

/// [`run_case`] with a chosen [`FdMap`] (a kernel backend running cases in parallel threads
/// passes [`FdMap::closed_never_reused`]).
pub fn run_case_with(
    sys: &mut dyn BpfSys,
    case: &Case,
    mut fds: FdMap,
) -> Result<(), Box<CaseFailure>> {
    let mut result = Ok(());
    for (step, s) in case.steps.iter().enumerate() {
        let actual = apply(sys, &s.op, &mut fds);
        if !matches(&s.expect, &actual) {
            result = Err(Box::new(CaseFailure {
                case: case.name.clone(),
                source: case.source,
                step,
                op: s.op.clone(),
                expected: s.expect.clone(),
                actual,
            }));
            break;
        }
    }
    close_open(sys, &fds);
    result
}

/// Runs every case of [`cases`] and every [`scenarios`] entry on a fresh implementation from
/// `new`. `Ok(n)`: all `n` passed; `Err`: every failure, one paragraph each.
pub fn errno_table<S: BpfSys>(new: impl Fn() -> S) -> Result<usize, String> {
    let mut failures = Vec::new();
    let ran = match run_table(&new, &cases(), |_| true) {
        Ok(n) => n,
        Err(report) => {
            failures.push(report);
            cases().len()
        }
    };
    let scenarios = scenarios();
    for scenario in &scenarios {
        if let Err(why) = (scenario.run)(&mut new()) {
            failures.push(format!("[{}] {}: {why}", scenario.source, scenario.name));
        }
    }
    if failures.is_empty() {
        Ok(ran + scenarios.len())
    } else {
        Err(failures.join("\n"))
    }
}

/// How a backend's answer differs from the table's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Disagreement {
    /// An errno was expected and another came.
    Errno,
    /// An errno was expected and the op succeeded.
    Accepted,
    /// Success was expected and an errno came.
    Refused,
    /// Success both ways, with other bytes, ids, counts or flags.
    Value,
    /// A fault, an errno outside the model, or a broken syscall contract.
    Finding,
    /// A [`Scenario`] failed.
    Scenario,
}

impl Disagreement {
    pub fn name(self) -> &'static str {
        match self {
            Disagreement::Errno => "other errno",
            Disagreement::Accepted => "accepted, errno expected",
            Disagreement::Refused => "refused, success expected",
            Disagreement::Value => "other value",
            Disagreement::Finding => "fault or unmodelled",
            Disagreement::Scenario => "scenario failed",
        }
    }
}

impl CaseFailure {
    /// The kind of the difference.
    pub fn kind(&self) -> Disagreement {
        if self.actual.is_finding() {
            return Disagreement::Finding;
        }
        let expected_err = matches!(self.expected, Expect::Err(_) | Expect::Count(Err(_)));
        match (expected_err, self.actual.errno()) {
            (true, Some(_)) => Disagreement::Errno,
            (true, None) => Disagreement::Accepted,
            (false, Some(_)) => Disagreement::Refused,
            (false, None) => Disagreement::Value,
        }
    }
}

/// One entry of the table that did not hold on a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFailure {
    pub name: String,
    pub source: &'static str,
    pub kind: Disagreement,
    /// The step, the expectation and what came (or why the scenario failed).
    pub detail: String,
}

/// What one run of the table on one backend gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableReport {
    /// Cases and scenarios run.
    pub ran: usize,
    /// Entries the caller's filter left out (e.g. `model` cases on the kernel).
    pub skipped: usize,
    pub failures: Vec<TableFailure>,
}

impl TableReport {
    pub fn agreed(&self) -> usize {
        self.ran - self.failures.len()
    }

    /// Failures per kind, in kind order.
    pub fn by_kind(&self) -> std::collections::BTreeMap<Disagreement, usize> {
        let mut kinds = std::collections::BTreeMap::new();
        for f in &self.failures {
            *kinds.entry(f.kind).or_insert(0) += 1;
        }
        kinds
    }
}

impl fmt::Display for TableFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {} ({}): {}",
            self.source,
            self.name,
            self.kind.name(),
            self.detail
        )
    }
}

/// The whole table (cases and scenarios) on one backend that lives across entries (the kernel:
/// every entry closes what it opened). `keep` filters by source (`"model"` entries say what the
/// real syscall cannot express, e.g. a key buffer of the wrong length); `fd_map` makes each
/// case's fd bijection ([`FdMap::closed_never_reused`] when other threads of the process open
/// fds meanwhile).
pub fn run_table_on(
    sys: &mut dyn BpfSys,
    keep: impl Fn(&'static str) -> bool,
    fd_map: impl Fn() -> FdMap,
) -> TableReport {
    let mut report = TableReport::default();
    for case in cases() {
        if !keep(case.source) {
            report.skipped += 1;
            continue;
        }
        report.ran += 1;
        if let Err(failure) = run_case_with(sys, &case, fd_map()) {
            report.failures.push(TableFailure {
                name: failure.case.clone(),
                source: failure.source,
                kind: failure.kind(),
                detail: format!(
                    "step {}: {}: expected {:?}, got {}",
                    failure.step, failure.op, failure.expected, failure.actual
                ),
            });
        }
    }
    for scenario in scenarios() {
        if !keep(scenario.source) {
            report.skipped += 1;
            continue;
        }
        report.ran += 1;
        if let Err(why) = (scenario.run)(sys) {
            report.failures.push(TableFailure {
                name: scenario.name.to_string(),
                source: scenario.source,
                kind: Disagreement::Scenario,
                detail: why,
            });
        }
    }
    report
}

/// A rule the step vocabulary cannot state as a fixed sequence: it needs a loop over the
/// backend's answers. Runs on any [`BpfSys`] and closes every fd it opened.
pub struct Scenario {
    pub name: &'static str,
    pub source: &'static str,
    pub run: fn(&mut dyn BpfSys) -> Result<(), String>,
}

/// The scenarios of the table.
pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        name: "HASH_OF_MAPS lookup batch smaller than a bucket is ENOSPC",
        source: "§4",
        run: enospc_when_a_bucket_does_not_fit,
    }]
}

/// §4: a lookup batch of 1 on a 2-bucket hash holding two keys of one bucket is `-ENOSPC`.
/// Which keys share a bucket depends on the implementation's hash (the kernel's is seeded at
/// random), so candidate keys are tried until one shares key 0's bucket.
fn enospc_when_a_bucket_does_not_fit(sys: &mut dyn BpfSys) -> Result<(), String> {
    /// Each candidate shares key 0's bucket with probability 1/2 on a random hash.
    const TRIES: u32 = 32;
    let mut fds = Vec::new();
    let result = (|| {
        let mut create = |sys: &mut dyn BpfSys, attr: crate::uapi::MapAttr| {
            let fd = sys
                .map_create(&attr)
                .map_err(|e| format!("creating {attr:?}: {e}"))?;
            fds.push(fd);
            Ok::<_, String>(fd)
        };
        let template = create(sys, crate::uapi::MapAttr::new(MapType::Array, 4, 4, 1))?;
        let outer = create(
            sys,
            crate::uapi::MapAttr::new(MapType::HashOfMaps, 4, 4, 2).inner(template),
        )?;
        let value = template.to_ne_bytes();
        sys.map_update_elem(outer, &k(0), &value, BPF_ANY)
            .map_err(|e| format!("storing key 0: {e}"))?;
        for candidate in 1..=TRIES {
            sys.map_update_elem(outer, &k(candidate), &value, BPF_ANY)
                .map_err(|e| format!("storing key {candidate}: {e}"))?;
            match sys.map_lookup_batch(outer, None, 1) {
                Ok(_) => {}
                Err(e) if e.errno() == Some(Errno::ENOSPC) => return Ok(()),
                Err(e) => {
                    return Err(format!(
                        "lookup batch of 1: {e}, expected ENOSPC or entries"
                    ))
                }
            }
            sys.map_delete_elem(outer, &k(candidate))
                .map_err(|e| format!("deleting key {candidate}: {e}"))?;
        }
        Err(format!(
            "no key of 1..={TRIES} gave ENOSPC with key 0 in a 2-bucket hash: \
             two keys of one bucket must not fit a batch of 1"
        ))
    })();
    for fd in fds.into_iter().rev() {
        let _ = sys.close(fd);
    }
    result
}

/// [`errno_table`] over a chosen subset of cases (e.g. skipping `model` rows on a backend that
/// cannot express them).
pub fn run_table<S: BpfSys>(
    new: impl Fn() -> S,
    cases: &[Case],
    keep: impl Fn(&Case) -> bool,
) -> Result<usize, String> {
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in cases.iter().filter(|c| keep(c)) {
        ran += 1;
        let mut sys = new();
        if let Err(failure) = run_case(&mut sys, case) {
            failures.push(failure.to_string());
        }
    }
    if failures.is_empty() {
        Ok(ran)
    } else {
        Err(format!(
            "{} of {ran} errno cases failed:\n{}",
            failures.len(),
            failures.join("\n")
        ))
    }
}

// ---- vocabulary for the table ---------------------------------------------------------------

fn s(n: u32) -> FdRef {
    FdRef::Slot(n)
}
fn k(index: u32) -> Vec<u8> {
    index.to_ne_bytes().to_vec()
}
fn v(byte: u8, len: usize) -> Val {
    Val::Bytes(vec![byte; len])
}
fn create(c: Create) -> Op {
    Op::Create(c)
}
fn array(value_size: u32, max: u32) -> Create {
    Create::new(MapType::Array, 4, value_size, max)
}
fn hash(max: u32) -> Create {
    Create::new(MapType::Hash, 4, 4, max)
}
fn aom(template: FdRef, max: u32) -> Create {
    Create::new(MapType::ArrayOfMaps, 4, 4, max).inner(template)
}
fn hom(template: FdRef, max: u32) -> Create {
    Create::new(MapType::HashOfMaps, 4, 4, max).inner(template)
}
fn update(fd: FdRef, key: Vec<u8>, value: Val, flags: u64) -> Op {
    Op::Update {
        fd,
        key,
        value,
        flags,
    }
}
fn store(outer: FdRef, key: u32, inner: FdRef, flags: u64) -> Op {
    update(outer, k(key), Val::Fd(inner), flags)
}
fn lookup(fd: FdRef, key: Vec<u8>) -> Op {
    Op::Lookup { fd, key }
}
fn delete(fd: FdRef, key: Vec<u8>) -> Op {
    Op::Delete { fd, key }
}
fn close(fd: FdRef) -> Op {
    Op::Close { fd }
}
fn by_id(slot: u32) -> Op {
    Op::GetFdById {
        id: IdRef::OfSlot(slot),
    }
}
fn next_key(fd: FdRef, key: Option<Vec<u8>>) -> Op {
    Op::GetNextKey { fd, key }
}

/// The table.
#[allow(
    clippy::vec_init_then_push,
    reason = "rows are pushed between loops that build families of rows"
)]
pub fn cases() -> Vec<Case> {
    use Errno::*;
    let mut t = Vec::new();

    // §2: creating maps.
    t.push(
        Case::new("ARRAY with key_size 4 and max_entries > 0 is created", "§2")
            .ok(create(array(4, 1))),
    );
    t.push(
        Case::new("ARRAY key_size must be 4 (8)", "§2")
            .err(create(Create::new(MapType::Array, 8, 4, 1)), EINVAL),
    );
    t.push(
        Case::new("ARRAY key_size must be 4 (0)", "§2")
            .err(create(Create::new(MapType::Array, 0, 4, 1)), EINVAL),
    );
    t.push(Case::new("ARRAY max_entries must be > 0", "§2").err(create(array(4, 0)), EINVAL));
    t.push(Case::new("ARRAY value_size must be > 0", "kernel").err(create(array(0, 1)), EINVAL));
    // A per-CPU array template compares max_entries, as a plain one does (measured on 6.18).
    t.push(
        Case::new(
            "a PERCPU_ARRAY template refuses an inner per-CPU array of another max_entries",
            "kernel",
        )
        .ok(create(Create::new(MapType::PercpuArray, 4, 12, 3)))
        .ok(create(hom(s(0), 2)))
        .ok(create(Create::new(MapType::PercpuArray, 4, 12, 2)))
        .ok(create(Create::new(MapType::PercpuArray, 4, 12, 3)))
        .err(store(s(1), 0, s(2), BPF_ANY), EINVAL)
        .ok(store(s(1), 0, s(3), BPF_ANY)),
    );

    // BPF_MAP_FREEZE: user space may only read a frozen map.
    t.push(
        Case::new(
            "a frozen map is read-only to user space: update and delete are EPERM, lookup works",
            "kernel",
        )
        .ok(create(array(4, 2)))
        .ok(update(s(0), k(1), v(7, 4), BPF_ANY))
        .ok(Op::Freeze { fd: s(0) })
        .err(update(s(0), k(1), v(8, 4), BPF_ANY), EPERM)
        .ok(lookup(s(0), k(1))),
    );
    t.push(
        Case::new(
            "freezing twice is EPERM: the frozen map already refuses writers",
            "kernel",
        )
        .ok(create(hash(2)))
        .ok(Op::Freeze { fd: s(0) })
        .err(Op::Freeze { fd: s(0) }, EPERM)
        .err(delete(s(0), k(0)), EPERM),
    );

    // Value sizes: an array is one vmalloc area, a hash element one kmalloc (measured on 6.18).
    t.push(
        Case::new(
            "ARRAY value_size above one kmalloc (4 MiB + 8) is created",
            "kernel",
        )
        .ok(create(array((4 << 20) + 8, 1))),
    );
    t.push(
        Case::new("ARRAY value_size above INT_MAX is E2BIG", "kernel")
            .err(create(array(1 << 31, 1)), E2BIG),
    );
    t.push(
        Case::new(
            "PERCPU_ARRAY value_size above PCPU_MIN_UNIT_SIZE is E2BIG",
            "kernel",
        )
        .ok(create(Create::new(MapType::PercpuArray, 4, 32 << 10, 1)))
        .err(
            create(Create::new(MapType::PercpuArray, 4, (32 << 10) + 1, 1)),
            E2BIG,
        ),
    );
    t.push(
        Case::new(
            "HASH key + value must stay below KMALLOC_MAX_SIZE - 48 (E2BIG at it)",
            "kernel",
        )
        .ok(create(Create::new(MapType::Hash, 4, (4 << 20) - 53, 1)))
        .err(
            create(Create::new(MapType::Hash, 4, (4 << 20) - 52, 1)),
            E2BIG,
        ),
    );
    t.push(
        Case::new("BPF_F_INNER_MAP is accepted on ARRAY", "§2")
            .ok(create(array(4, 1).flags(BPF_F_INNER_MAP))),
    );
    t.push(
        Case::new("BPF_F_MMAPABLE is accepted on ARRAY", "§2")
            .ok(create(array(4, 1).flags(BPF_F_MMAPABLE))),
    );
    t.push(
        Case::new("BPF_F_INNER_MAP on HASH is refused", "§2")
            .err(create(hash(1).flags(BPF_F_INNER_MAP)), EINVAL),
    );
    t.push(
        Case::new("BPF_F_MMAPABLE on HASH is refused", "§2")
            .err(create(hash(1).flags(BPF_F_MMAPABLE)), EINVAL),
    );
    t.push(
        Case::new("BPF_F_INNER_MAP on PERCPU_ARRAY is refused", "§2").err(
            create(Create::new(MapType::PercpuArray, 4, 4, 1).flags(BPF_F_INNER_MAP)),
            EINVAL,
        ),
    );
    t.push(
        Case::new("BPF_F_INNER_MAP on PROG_ARRAY is refused", "§2").err(
            create(Create::new(MapType::ProgArray, 4, 4, 1).flags(BPF_F_INNER_MAP)),
            EINVAL,
        ),
    );
    t.push(
        Case::new("BPF_F_INNER_MAP on ARRAY_OF_MAPS is refused", "§2")
            .ok(create(array(4, 1)))
            .err(create(aom(s(0), 1).flags(BPF_F_INNER_MAP)), EINVAL),
    );
    t.push(
        Case::new("BPF_F_INNER_MAP on HASH_OF_MAPS is refused", "§2")
            .ok(create(array(4, 1)))
            .err(create(hom(s(0), 1).flags(BPF_F_INNER_MAP)), EINVAL),
    );
    t.push(
        Case::new("HASH key_size must be > 0", "§2")
            .err(create(Create::new(MapType::Hash, 0, 4, 1)), EINVAL),
    );
    t.push(
        Case::new("HASH value_size must be > 0", "§2")
            .err(create(Create::new(MapType::Hash, 4, 0, 1)), EINVAL),
    );
    t.push(Case::new("HASH max_entries must be > 0", "§2").err(create(hash(0)), EINVAL));
    t.push(
        Case::new("HASH accepts BPF_F_NO_PREALLOC", "§2")
            .ok(create(hash(1).flags(BPF_F_NO_PREALLOC))),
    );
    t.push(
        Case::new("HASH accepts BPF_F_ZERO_SEED", "§2").ok(create(hash(1).flags(BPF_F_ZERO_SEED))),
    );
    t.push(
        Case::new("HASH accepts BPF_F_RDONLY_PROG", "§2")
            .ok(create(hash(1).flags(BPF_F_RDONLY_PROG))),
    );
    t.push(
        Case::new(
            "HASH refuses BPF_F_NO_COMMON_LRU (it is not an LRU hash)",
            "kernel",
        )
        .err(create(hash(1).flags(BPF_F_NO_COMMON_LRU)), EINVAL),
    );
    t.push(
        Case::new("HASH refuses a flag outside its list (1 << 5)", "§2")
            .err(create(hash(1).flags(1 << 5)), EINVAL),
    );
    t.push(
        Case::new("RDONLY_PROG together with WRONLY_PROG is refused", "kernel").err(
            create(array(4, 1).flags(BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG)),
            EINVAL,
        ),
    );
    t.push(Case::new("unknown map type 0 is refused", "§2").err(
        create(Create {
            map_type: 0,
            ..array(4, 1)
        }),
        EINVAL,
    ));
    t.push(Case::new("unknown map type 1000 is refused", "§2").err(
        create(Create {
            map_type: 1000,
            ..array(4, 1)
        }),
        EINVAL,
    ));
    for (name, outer) in [
        ("ARRAY_OF_MAPS", MapType::ArrayOfMaps),
        ("HASH_OF_MAPS", MapType::HashOfMaps),
    ] {
        let mk = |ks, vs, max| Create::new(outer, ks, vs, max).inner(s(0));
        let rows: [(&'static str, &'static str, Create, Option<Errno>); 6] = [
            (
                "outer map with a plain template is created",
                "§2",
                mk(4, 4, 1),
                None,
            ),
            (
                "outer map value_size must be 4",
                "§2",
                mk(4, 8, 1),
                Some(EINVAL),
            ),
            (
                "outer map max_entries must be > 0",
                "§2",
                mk(4, 4, 0),
                Some(EINVAL),
            ),
            (
                "outer map key_size 0 is refused",
                "§2",
                mk(0, 4, 1),
                Some(EINVAL),
            ),
            (
                "outer map attributes are checked before the template",
                "kernel",
                mk(4, 8, 1).inner(FdRef::NeverOpened),
                Some(EINVAL),
            ),
            (
                "outer map refuses BPF_F_MMAPABLE",
                "§2",
                mk(4, 4, 1).flags(BPF_F_MMAPABLE),
                Some(EINVAL),
            ),
        ];
        for (rule, source, c, want) in rows {
            let case = Case::new(named(name, rule), source).ok(create(array(4, 1)));
            t.push(match want {
                None => case.ok(create(c)),
                Some(e) => case.err(create(c), e),
            });
        }
        t.push(
            Case::new(named(name, "template fd never opened is EBADF"), "§2").err(
                create(Create::new(outer, 4, 4, 1).inner(FdRef::NeverOpened)),
                EBADF,
            ),
        );
        t.push(Case::new(named(name, "template fd -1 is EBADF"), "§2").err(
            create(Create::new(outer, 4, 4, 1).inner(FdRef::Raw(-1))),
            EBADF,
        ));
        t.push(
            Case::new(
                named(name, "template fd that is not a map (stdin) is EINVAL"),
                "§2",
            )
            .err(
                create(Create::new(outer, 4, 4, 1).inner(FdRef::Raw(0))),
                EINVAL,
            ),
        );
        t.push(
            Case::new(named(name, "a closed template fd is EBADF"), "§2")
                .ok(create(array(4, 1)))
                .ok(create(array(4, 1)))
                .ok(close(s(0)))
                .err(create(Create::new(outer, 4, 4, 1).inner(s(0))), EBADF),
        );
        t.push(
            Case::new(
                named(
                    name,
                    "an ARRAY_OF_MAPS template is refused (one level of nesting)",
                ),
                "§2",
            )
            .ok(create(array(4, 1)))
            .ok(create(aom(s(0), 1)))
            .err(create(Create::new(outer, 4, 4, 1).inner(s(1))), EINVAL),
        );
        t.push(
            Case::new(
                named(
                    name,
                    "a HASH_OF_MAPS template is refused (one level of nesting)",
                ),
                "§2",
            )
            .ok(create(array(4, 1)))
            .ok(create(hom(s(0), 1)))
            .err(create(Create::new(outer, 4, 4, 1).inner(s(1))), EINVAL),
        );
        t.push(
            Case::new(named(name, "a PROG_ARRAY template has no meta_equal"), "§2")
                .ok(create(Create::new(MapType::ProgArray, 4, 4, 1)))
                .err(create(Create::new(outer, 4, 4, 1).inner(s(0))), ENOTSUPP),
        );
        t.push(
            Case::new(
                named(
                    name,
                    "the meta holds no reference: the template may be closed",
                ),
                "§2",
            )
            .ok(create(array(4, 1)))
            .ok(create(Create::new(outer, 4, 4, 1).inner(s(0))))
            .ok(close(s(0)))
            .ok(create(array(4, 1)))
            .ok(store(s(1), 0, s(2), BPF_ANY))
            .step(lookup(s(1), k(0)), Expect::MapOf(2)),
        );
    }
    t.push(
        Case::new("ARRAY_OF_MAPS refuses BPF_F_RDONLY_PROG", "§2")
            .ok(create(array(4, 1)))
            .err(create(aom(s(0), 1).flags(BPF_F_RDONLY_PROG)), EINVAL),
    );
    t.push(
        Case::new("ARRAY_OF_MAPS refuses BPF_F_WRONLY_PROG", "§2")
            .ok(create(array(4, 1)))
            .err(create(aom(s(0), 1).flags(BPF_F_WRONLY_PROG)), EINVAL),
    );
    t.push(
        Case::new("ARRAY_OF_MAPS key_size must be 4", "§2")
            .ok(create(array(4, 1)))
            .err(
                create(Create::new(MapType::ArrayOfMaps, 8, 4, 1).inner(s(0))),
                EINVAL,
            ),
    );
    t.push(
        Case::new("HASH_OF_MAPS accepts BPF_F_NO_PREALLOC", "§2")
            .ok(create(array(4, 1)))
            .ok(create(hom(s(0), 1).flags(BPF_F_NO_PREALLOC))),
    );
    t.push(
        Case::new("a PERCPU_HASH template is accepted", "§2")
            .ok(create(Create::new(MapType::PercpuHash, 4, 4, 1)))
            .ok(create(hom(s(0), 1))),
    );

    // §1: ids, fds, references.
    t.push(
        Case::new("a map op on fd 0 (open, not a map) is EINVAL", "§1")
            .err(lookup(FdRef::Raw(0), k(0)), EINVAL),
    );
    t.push(Case::new("a map op on fd -1 is EBADF", "§1").err(lookup(FdRef::Raw(-1), k(0)), EBADF));
    t.push(
        Case::new("a map op on a never-opened fd is EBADF", "§1")
            .err(lookup(FdRef::NeverOpened, k(0)), EBADF),
    );
    t.push(
        Case::new("map_info of a closed fd is EBADFD", "kernel")
            .ok(create(array(4, 1)))
            .ok(close(s(0)))
            .err(Op::Info { fd: s(0) }, EBADFD),
    );
    t.push(
        Case::new(
            "map_info of fd 0 (open, not a bpf object) is EINVAL",
            "kernel",
        )
        .err(Op::Info { fd: FdRef::Raw(0) }, EINVAL),
    );
    t.push(
        Case::new("closing twice is EBADF", "§1")
            .ok(create(array(4, 1)))
            .ok(close(s(0)))
            .err(close(s(0)), EBADF),
    );
    t.push(
        Case::new("a closed fd is EBADF", "§1")
            .ok(create(array(4, 1)))
            .ok(close(s(0)))
            .err(lookup(s(0), k(0)), EBADF),
    );
    t.push(
        Case::new("get_fd_by_id of a never-used id is ENOENT", "§1").err(
            Op::GetFdById {
                id: IdRef::NeverUsed,
            },
            ENOENT,
        ),
    );
    t.push(
        Case::new("get_fd_by_id opens the same map", "§1")
            .ok(create(array(4, 2)))
            .ok(update(s(0), k(1), v(7, 4), BPF_ANY))
            .ok(by_id(0))
            .step(lookup(s(1), k(1)), Expect::Bytes(vec![7; 4])),
    );
    t.push(
        Case::new("the id is released when the last fd closes", "§1")
            .ok(create(array(4, 1)))
            .ok(close(s(0)))
            .err(by_id(0), ENOENT),
    );
    t.push(
        Case::new("an fd from get_fd_by_id keeps the map alive", "§1")
            .ok(create(array(4, 1)))
            .ok(by_id(0))
            .ok(close(s(0)))
            .ok(by_id(0)),
    );
    t.push(
        Case::new(
            "an outer map keeps a stored inner map alive after its fd closes",
            "§1",
        )
        .ok(create(array(4, 1)))
        .ok(create(aom(s(0), 1)))
        .ok(store(s(1), 0, s(0), BPF_ANY))
        .ok(close(s(0)))
        .ok(by_id(0)),
    );
    t.push(
        Case::new("freeing an outer map puts its inner maps", "§1")
            .ok(create(array(4, 1)))
            .ok(create(hom(s(0), 2)))
            .ok(store(s(1), 5, s(0), BPF_ANY))
            .ok(close(s(0)))
            .ok(close(s(1)))
            .err(by_id(0), ENOENT)
            .err(by_id(1), ENOENT),
    );

    // §3: storing an inner map.
    t.push(
        Case::new(
            "ARRAY_OF_MAPS stores a matching inner map; lookup gives its id",
            "§3,§4",
        )
        .ok(create(array(4, 1)))
        .ok(create(aom(s(0), 2)))
        .ok(store(s(1), 1, s(0), BPF_ANY))
        .step(lookup(s(1), k(1)), Expect::MapOf(0)),
    );
    t.push(
        Case::new(
            "HASH_OF_MAPS stores a matching inner map; lookup gives its id",
            "§3,§4",
        )
        .ok(create(array(4, 1)))
        .ok(create(hom(s(0), 2)))
        .ok(store(s(1), 9, s(0), BPF_ANY))
        .step(lookup(s(1), k(9)), Expect::MapOf(0)),
    );
    t.push(
        Case::new("ARRAY_OF_MAPS update with BPF_NOEXIST is EINVAL", "§3")
            .ok(create(array(4, 1)))
            .ok(create(aom(s(0), 2)))
            .err(store(s(1), 0, s(0), BPF_NOEXIST), EINVAL),
    );
    t.push(
        Case::new("ARRAY_OF_MAPS update with BPF_EXIST is EINVAL", "§3")
            .ok(create(array(4, 1)))
            .ok(create(aom(s(0), 2)))
            .err(store(s(1), 0, s(0), BPF_EXIST), EINVAL),
    );
    t.push(
        Case::new("ARRAY_OF_MAPS index >= max_entries is E2BIG", "§3")
            .ok(create(array(4, 1)))
            .ok(create(aom(s(0), 2)))
            .err(store(s(1), 2, s(0), BPF_ANY), E2BIG),
    );
    t.push(
        Case::new("ARRAY_OF_MAPS checks flags before the index", "§3")
            .ok(create(array(4, 1)))
            .ok(create(aom(s(0), 2)))
            .err(store(s(1), 2, s(0), BPF_EXIST), EINVAL),
    );
    t.push(
        Case::new("ARRAY_OF_MAPS checks the index before the fd", "§3")
            .ok(create(array(4, 1)))
            .ok(create(aom(s(0), 2)))
            .err(store(s(1), 2, FdRef::NeverOpened, BPF_ANY), E2BIG),
    );
    for (name, outer) in [
        ("ARRAY_OF_MAPS", MapType::ArrayOfMaps),
        ("HASH_OF_MAPS", MapType::HashOfMaps),
    ] {
        let o = |template: FdRef| Create::new(outer, 4, 4, 4).inner(template);
        t.push(
            Case::new(named(name, "a never-opened inner fd is EBADF"), "§3")
                .ok(create(array(4, 1)))
                .ok(create(o(s(0))))
                .err(store(s(1), 0, FdRef::NeverOpened, BPF_ANY), EBADF),
        );
        t.push(
            Case::new(named(name, "an inner fd that is not a map is EINVAL"), "§3")
                .ok(create(array(4, 1)))
                .ok(create(o(s(0))))
                .err(store(s(1), 0, FdRef::Raw(1), BPF_ANY), EINVAL),
        );
        let mismatches: [(&'static str, Create, Create); 7] = [
            ("meta_equal: map_type differs", array(4, 1), hash(1)),
            (
                "meta_equal: key_size differs",
                hash(1),
                Create::new(MapType::Hash, 8, 4, 1),
            ),
            ("meta_equal: value_size differs", array(4, 1), array(8, 1)),
            (
                "meta_equal: map_flags differ",
                hash(1),
                hash(1).flags(BPF_F_NO_PREALLOC),
            ),
            (
                "meta_equal: array max_entries differ without BPF_F_INNER_MAP (diff_size)",
                array(4, 1),
                array(4, 2),
            ),
            (
                "meta_equal: an inner array with BPF_F_INNER_MAP needs the flag in the template",
                array(4, 1),
                array(4, 1).flags(BPF_F_INNER_MAP),
            ),
            (
                "meta_equal: a dynamic template refuses an inner array without the flag",
                array(4, 1).flags(BPF_F_INNER_MAP),
                array(4, 3),
            ),
        ];
        for (rule, template, inner) in mismatches {
            t.push(
                Case::new(named(name, rule), "§3")
                    .ok(create(template))
                    .ok(create(o(s(0))))
                    .ok(create(inner))
                    .err(store(s(1), 0, s(2), BPF_ANY), EINVAL),
            );
        }
        let matches: [(&'static str, Create, Create); 3] = [
            (
                "meta_equal: BPF_F_INNER_MAP template takes arrays of any size",
                array(4, 1).flags(BPF_F_INNER_MAP),
                array(4, 5).flags(BPF_F_INNER_MAP),
            ),
            (
                "meta_equal: a hash template ignores max_entries",
                hash(2),
                hash(100),
            ),
            (
                "meta_equal: equal array shapes match",
                array(8, 3),
                array(8, 3),
            ),
        ];
        for (rule, template, inner) in matches {
            t.push(
                Case::new(named(name, rule), "§3")
                    .ok(create(template))
                    .ok(create(o(s(0))))
                    .ok(create(inner))
                    .ok(store(s(1), 0, s(2), BPF_ANY))
                    .step(lookup(s(1), k(0)), Expect::MapOf(2)),
            );
        }
        t.push(
            Case::new(
                named(name, "an outer map cannot be stored into an outer map"),
                "§3",
            )
            .ok(create(array(4, 1)))
            .ok(create(o(s(0))))
            .ok(create(o(s(0))))
            .err(store(s(1), 0, s(2), BPF_ANY), EINVAL),
        );
        t.push(
            Case::new(
                named(
                    name,
                    "replacing puts the old inner map (its id stops resolving)",
                ),
                "§3",
            )
            .ok(create(array(4, 1)))
            .ok(create(o(s(0))))
            .ok(create(array(4, 1)))
            .ok(store(s(1), 0, s(0), BPF_ANY))
            .ok(close(s(0)))
            .ok(store(s(1), 0, s(2), BPF_ANY))
            .err(by_id(0), ENOENT)
            .step(lookup(s(1), k(0)), Expect::MapOf(2)),
        );
    }
    t.push(
        Case::new("HASH_OF_MAPS flags > BPF_EXIST is EINVAL", "§3")
            .ok(create(array(4, 1)))
            .ok(create(hom(s(0), 2)))
            .err(store(s(1), 0, s(0), 3), EINVAL),
    );
    t.push(
        Case::new(
            "HASH_OF_MAPS resolves the inner fd before checking flags",
            "kernel",
        )
        .ok(create(array(4, 1)))
        .ok(create(hom(s(0), 2)))
        .err(store(s(1), 0, FdRef::NeverOpened, 3), EBADF),
    );
    t.push(
        Case::new("HASH_OF_MAPS BPF_NOEXIST on a present key is EEXIST", "§3")
            .ok(create(array(4, 1)))
            .ok(create(hom(s(0), 2)))
            .ok(store(s(1), 0, s(0), BPF_ANY))
            .err(store(s(1), 0, s(0), BPF_NOEXIST), EEXIST),
    );
    t.push(
        Case::new("HASH_OF_MAPS BPF_EXIST on a missing key is ENOENT", "§3")
            .ok(create(array(4, 1)))
            .ok(create(hom(s(0), 2)))
            .err(store(s(1), 0, s(0), BPF_EXIST), ENOENT),
    );
    for (name, flags) in [("prealloc", 0), ("no-prealloc", BPF_F_NO_PREALLOC)] {
        t.push(
            Case::new(
                named(name, "HASH_OF_MAPS full map is E2BIG for a new key"),
                "§3",
            )
            .ok(create(array(4, 1)))
            .ok(create(hom(s(0), 2).flags(flags)))
            .ok(store(s(1), 0, s(0), BPF_ANY))
            .ok(store(s(1), 1, s(0), BPF_ANY))
            .err(store(s(1), 2, s(0), BPF_ANY), E2BIG),
        );
        t.push(
            Case::new(
                named(name, "HASH_OF_MAPS full map still replaces an existing key"),
                "§3",
            )
            .ok(create(array(4, 1)))
            .ok(create(hom(s(0), 2).flags(flags)))
            .ok(create(array(4, 1)))
            .ok(store(s(1), 0, s(0), BPF_ANY))
            .ok(store(s(1), 1, s(0), BPF_ANY))
            .ok(store(s(1), 1, s(2), BPF_EXIST))
            .step(lookup(s(1), k(1)), Expect::MapOf(2)),
        );
        t.push(
            Case::new(
                named(
                    name,
                    "HASH full map is E2BIG for a new key, replaces an old one",
                ),
                "§3",
            )
            .ok(create(hash(1).flags(flags)))
            .ok(update(s(0), k(0), v(1, 4), BPF_ANY))
            .err(update(s(0), k(1), v(1, 4), BPF_ANY), E2BIG)
            .ok(update(s(0), k(0), v(2, 4), BPF_ANY))
            .step(lookup(s(0), k(0)), Expect::Bytes(vec![2; 4])),
        );
        t.push(
            Case::new(named(name, "HASH delete frees room for a new key"), "§3")
                .ok(create(hash(1).flags(flags)))
                .ok(update(s(0), k(0), v(1, 4), BPF_ANY))
                .ok(delete(s(0), k(0)))
                .ok(update(s(0), k(1), v(1, 4), BPF_NOEXIST)),
        );
    }
    t.push(
        Case::new(
            "HASH_OF_MAPS failed update drops the new map's reference at once",
            "§3",
        )
        .ok(create(array(4, 1)))
        .ok(create(hom(s(0), 2)))
        .ok(create(array(4, 1)))
        .ok(store(s(1), 0, s(0), BPF_ANY))
        .err(store(s(1), 0, s(2), BPF_NOEXIST), EEXIST)
        .ok(close(s(2)))
        .err(by_id(2), ENOENT),
    );

    // Plain maps (§3/§4 rules shared with outer maps, and the kernel's array/hash rules).
    t.push(
        Case::new("ARRAY update index >= max_entries is E2BIG", "kernel")
            .ok(create(array(4, 2)))
            .err(update(s(0), k(2), v(1, 4), BPF_ANY), E2BIG),
    );
    t.push(
        Case::new(
            "ARRAY update BPF_NOEXIST is EEXIST (every element exists)",
            "kernel",
        )
        .ok(create(array(4, 2)))
        .err(update(s(0), k(0), v(1, 4), BPF_NOEXIST), EEXIST),
    );
    t.push(
        Case::new("ARRAY update BPF_EXIST succeeds", "kernel")
            .ok(create(array(4, 2)))
            .ok(update(s(0), k(1), v(3, 4), BPF_EXIST))
            .step(lookup(s(0), k(1)), Expect::Bytes(vec![3; 4])),
    );
    t.push(
        Case::new("ARRAY update flags > BPF_EXIST is EINVAL", "kernel")
            .ok(create(array(4, 2)))
            .err(update(s(0), k(0), v(1, 4), 3), EINVAL),
    );
    t.push(
        Case::new(
            "update with BPF_F_LOCK on a map without a spin lock is EINVAL",
            "kernel",
        )
        .ok(create(hash(2)))
        .err(update(s(0), k(0), v(1, 4), 4), EINVAL),
    );
    t.push(
        Case::new("ARRAY reads zeroes before any write", "kernel")
            .ok(create(array(8, 2)))
            .step(lookup(s(0), k(1)), Expect::Bytes(vec![0; 8])),
    );
    t.push(
        Case::new("ARRAY lookup out of range is ENOENT", "kernel")
            .ok(create(array(4, 2)))
            .err(lookup(s(0), k(2)), ENOENT),
    );
    t.push(
        Case::new("ARRAY delete is EINVAL", "kernel")
            .ok(create(array(4, 2)))
            .err(delete(s(0), k(0)), EINVAL),
    );
    t.push(
        Case::new("HASH BPF_NOEXIST on a present key is EEXIST", "§3")
            .ok(create(hash(2)))
            .ok(update(s(0), k(0), v(1, 4), BPF_NOEXIST))
            .err(update(s(0), k(0), v(1, 4), BPF_NOEXIST), EEXIST),
    );
    t.push(
        Case::new("HASH BPF_EXIST on a missing key is ENOENT", "§3")
            .ok(create(hash(2)))
            .err(update(s(0), k(0), v(1, 4), BPF_EXIST), ENOENT),
    );
    t.push(
        Case::new("HASH flags > BPF_EXIST is EINVAL", "§3")
            .ok(create(hash(2)))
            .err(update(s(0), k(0), v(1, 4), 3), EINVAL),
    );
    t.push(
        Case::new("HASH lookup of a missing key is ENOENT", "§4")
            .ok(create(hash(2)))
            .err(lookup(s(0), k(0)), ENOENT),
    );
    t.push(
        Case::new("HASH delete of a missing key is ENOENT", "§4")
            .ok(create(hash(2)))
            .err(delete(s(0), k(0)), ENOENT),
    );
    t.push(
        Case::new("a key of the wrong size is EINVAL", "model")
            .ok(create(hash(2)))
            .err(update(s(0), vec![0; 5], v(1, 4), BPF_ANY), EINVAL),
    );
    t.push(
        Case::new("a value of the wrong size is EINVAL", "model")
            .ok(create(hash(2)))
            .err(update(s(0), k(0), v(1, 3), BPF_ANY), EINVAL),
    );

    // §4: reading and deleting.
    t.push(
        Case::new("ARRAY_OF_MAPS lookup of an empty slot is ENOENT", "§4")
            .ok(create(array(4, 1)))
            .ok(create(aom(s(0), 2)))
            .err(lookup(s(1), k(0)), ENOENT),
    );
    t.push(
        Case::new("ARRAY_OF_MAPS lookup out of range is ENOENT", "§4")
            .ok(create(array(4, 1)))
            .ok(create(aom(s(0), 2)))
            .err(lookup(s(1), k(2)), ENOENT),
    );
    t.push(
        Case::new("HASH_OF_MAPS lookup of a missing key is ENOENT", "§4")
            .ok(create(array(4, 1)))
            .ok(create(hom(s(0), 2)))
            .err(lookup(s(1), k(0)), ENOENT),
    );
    t.push(
        Case::new("HASH_OF_MAPS lookup_and_delete is ENOTSUPP", "§4")
            .ok(create(array(4, 1)))
            .ok(create(hom(s(0), 2)))
            .ok(store(s(1), 0, s(0), BPF_ANY))
            .err(
                Op::LookupAndDelete {
                    fd: s(1),
                    key: k(0),
                },
                ENOTSUPP,
            )
            .step(lookup(s(1), k(0)), Expect::MapOf(0)),
    );
    t.push(
        Case::new("ARRAY_OF_MAPS lookup_and_delete is ENOTSUPP", "kernel")
            .ok(create(array(4, 1)))
            .ok(create(aom(s(0), 2)))
            .err(
                Op::LookupAndDelete {
                    fd: s(1),
                    key: k(0),
                },
                ENOTSUPP,
            ),
    );
    t.push(
        Case::new("ARRAY lookup_and_delete is ENOTSUPP", "kernel")
            .ok(create(array(4, 2)))
            .err(
                Op::LookupAndDelete {
                    fd: s(0),
                    key: k(0),
                },
                ENOTSUPP,
            ),
    );
    t.push(
        Case::new(
            "HASH lookup_and_delete returns the value and deletes",
            "kernel",
        )
        .ok(create(hash(2)))
        .ok(update(s(0), k(3), v(5, 4), BPF_ANY))
        .step(
            Op::LookupAndDelete {
                fd: s(0),
                key: k(3),
            },
            Expect::Bytes(vec![5; 4]),
        )
        .err(lookup(s(0), k(3)), ENOENT)
        .err(
            Op::LookupAndDelete {
                fd: s(0),
                key: k(3),
            },
            ENOENT,
        ),
    );
    t.push(
        Case::new("ARRAY_OF_MAPS delete out of range is E2BIG", "§4")
            .ok(create(array(4, 1)))
            .ok(create(aom(s(0), 2)))
            .err(delete(s(1), k(2)), E2BIG),
    );
    t.push(
        Case::new("ARRAY_OF_MAPS delete of an empty slot is ENOENT", "§4")
            .ok(create(array(4, 1)))
            .ok(create(aom(s(0), 2)))
            .err(delete(s(1), k(1)), ENOENT),
    );
    t.push(
        Case::new(
            "ARRAY_OF_MAPS delete empties the slot and puts the map",
            "§4",
        )
        .ok(create(array(4, 1)))
        .ok(create(aom(s(0), 2)))
        .ok(store(s(1), 1, s(0), BPF_ANY))
        .ok(close(s(0)))
        .ok(delete(s(1), k(1)))
        .err(lookup(s(1), k(1)), ENOENT)
        .err(by_id(0), ENOENT),
    );
    t.push(
        Case::new("HASH_OF_MAPS delete of a missing key is ENOENT", "§4")
            .ok(create(array(4, 1)))
            .ok(create(hom(s(0), 2)))
            .err(delete(s(1), k(1)), ENOENT),
    );
    t.push(
        Case::new("HASH_OF_MAPS delete unlinks and puts the map", "§4")
            .ok(create(array(4, 1)))
            .ok(create(hom(s(0), 2)))
            .ok(store(s(1), 4, s(0), BPF_ANY))
            .ok(close(s(0)))
            .ok(delete(s(1), k(4)))
            .err(lookup(s(1), k(4)), ENOENT)
            .err(by_id(0), ENOENT),
    );
    t.push(
        Case::new("ARRAY get_next_key: none gives index 0", "kernel")
            .ok(create(array(4, 3)))
            .step(next_key(s(0), None), Expect::Bytes(k(0))),
    );
    t.push(
        Case::new("ARRAY get_next_key: index i gives i + 1", "kernel")
            .ok(create(array(4, 3)))
            .step(next_key(s(0), Some(k(1))), Expect::Bytes(k(2))),
    );
    t.push(
        Case::new("ARRAY get_next_key: the last index is ENOENT", "kernel")
            .ok(create(array(4, 3)))
            .err(next_key(s(0), Some(k(2))), ENOENT),
    );
    t.push(
        Case::new(
            "ARRAY get_next_key: an index out of range restarts at 0",
            "kernel",
        )
        .ok(create(array(4, 3)))
        .step(next_key(s(0), Some(k(7))), Expect::Bytes(k(0))),
    );
    t.push(
        Case::new(
            "ARRAY_OF_MAPS get_next_key visits empty slots too",
            "kernel",
        )
        .ok(create(array(4, 1)))
        .ok(create(aom(s(0), 3)))
        .step(
            Op::WalkKeys { fd: s(1) },
            Expect::Keys(vec![k(0), k(1), k(2)]),
        ),
    );
    t.push(
        Case::new("HASH get_next_key on an empty map is ENOENT", "kernel")
            .ok(create(hash(2)))
            .err(next_key(s(0), None), ENOENT),
    );
    t.push(
        Case::new("HASH get_next_key: the only key, then ENOENT", "kernel")
            .ok(create(hash(2)))
            .ok(update(s(0), k(6), v(1, 4), BPF_ANY))
            .step(next_key(s(0), None), Expect::Bytes(k(6)))
            .err(next_key(s(0), Some(k(6))), ENOENT),
    );
    t.push(
        Case::new("HASH walk visits every key once", "kernel")
            .ok(create(hash(4)))
            .ok(update(s(0), k(3), v(1, 4), BPF_ANY))
            .ok(update(s(0), k(1), v(1, 4), BPF_ANY))
            .ok(update(s(0), k(2), v(1, 4), BPF_ANY))
            .step(
                Op::WalkKeys { fd: s(0) },
                Expect::Keys(sorted(vec![k(1), k(2), k(3)])),
            ),
    );

    // §4: batch ops.
    t.push(
        Case::new("HASH_OF_MAPS lookup batch returns ids", "§4")
            .ok(create(array(4, 1)))
            .ok(create(hom(s(0), 4)))
            .ok(create(array(4, 1)))
            .ok(store(s(1), 0, s(0), BPF_ANY))
            .ok(store(s(1), 1, s(2), BPF_ANY))
            .step(
                Op::LookupBatchAll { fd: s(1), count: 1 },
                Expect::Entries(vec![
                    (k(0), Value::Map(CanonId::Map(0))),
                    (k(1), Value::Map(CanonId::Map(2))),
                ]),
            ),
    );
    t.push(
        Case::new("ARRAY_OF_MAPS lookup batch returns ids", "§4")
            .ok(create(array(4, 1)))
            .ok(create(aom(s(0), 2)))
            .ok(store(s(1), 0, s(0), BPF_ANY))
            .ok(store(s(1), 1, s(0), BPF_ANY))
            .step(
                Op::LookupBatchAll { fd: s(1), count: 1 },
                Expect::Entries(vec![
                    (k(0), Value::Map(CanonId::Map(0))),
                    (k(1), Value::Map(CanonId::Map(0))),
                ]),
            ),
    );
    t.push(
        Case::new("ARRAY lookup batch returns every index", "§4")
            .ok(create(array(4, 3)))
            .ok(update(s(0), k(1), v(9, 4), BPF_ANY))
            .step(
                Op::LookupBatchAll { fd: s(0), count: 2 },
                Expect::Entries(vec![
                    (k(0), Value::Bytes(vec![0; 4])),
                    (k(1), Value::Bytes(vec![9; 4])),
                    (k(2), Value::Bytes(vec![0; 4])),
                ]),
            ),
    );
    t.push(
        Case::new(
            "HASH_OF_MAPS update batch takes fds and stops at the first error",
            "§4",
        )
        .ok(create(array(4, 1)))
        .ok(create(hom(s(0), 4)))
        .step(
            Op::UpdateBatch {
                fd: s(1),
                entries: vec![
                    (k(0), Val::Fd(s(0))),
                    (k(1), Val::Fd(FdRef::NeverOpened)),
                    (k(2), Val::Fd(s(0))),
                ],
                flags: 0,
            },
            Expect::Count(Err((1, EBADF))),
        )
        .step(lookup(s(1), k(0)), Expect::MapOf(0))
        .err(lookup(s(1), k(2)), ENOENT),
    );
    t.push(
        Case::new("ARRAY_OF_MAPS update batch stores every entry", "§4")
            .ok(create(array(4, 1)))
            .ok(create(aom(s(0), 2)))
            .step(
                Op::UpdateBatch {
                    fd: s(1),
                    entries: vec![(k(0), Val::Fd(s(0))), (k(1), Val::Fd(s(0)))],
                    flags: 0,
                },
                Expect::Count(Ok(2)),
            )
            .step(lookup(s(1), k(1)), Expect::MapOf(0)),
    );
    t.push(
        Case::new(
            "update batch with elem flag BPF_NOEXIST is EINVAL",
            "kernel",
        )
        .ok(create(hash(4)))
        .step(
            Op::UpdateBatch {
                fd: s(0),
                entries: vec![(k(0), v(1, 4))],
                flags: BPF_NOEXIST,
            },
            Expect::Count(Err((0, EINVAL))),
        ),
    );
    t.push(
        Case::new("HASH_OF_MAPS delete batch stops at a missing key", "§4")
            .ok(create(array(4, 1)))
            .ok(create(hom(s(0), 4)))
            .ok(store(s(1), 0, s(0), BPF_ANY))
            .step(
                Op::DeleteBatch {
                    fd: s(1),
                    keys: vec![k(0), k(1)],
                },
                Expect::Count(Err((1, ENOENT))),
            )
            .err(lookup(s(1), k(0)), ENOENT),
    );
    t.push(
        Case::new(
            "HASH_OF_MAPS lookup-and-delete batch empties the map and puts the maps",
            "§4",
        )
        .ok(create(array(4, 1)))
        .ok(create(hom(s(0), 4)))
        .ok(store(s(1), 0, s(0), BPF_ANY))
        .ok(store(s(1), 1, s(0), BPF_ANY))
        .ok(close(s(0)))
        .step(
            Op::LookupAndDeleteBatchAll { fd: s(1), count: 1 },
            Expect::Entries(vec![
                (k(0), Value::Map(CanonId::Map(0))),
                (k(1), Value::Map(CanonId::Map(0))),
            ]),
        )
        .step(Op::WalkKeys { fd: s(1) }, Expect::Keys(vec![]))
        .err(by_id(0), ENOENT),
    );
    t.push(
        Case::new("ARRAY_OF_MAPS has no delete batch", "§4")
            .ok(create(array(4, 1)))
            .ok(create(aom(s(0), 2)))
            .step(
                Op::DeleteBatch {
                    fd: s(1),
                    keys: vec![k(0)],
                },
                Expect::Count(Err((0, ENOTSUPP))),
            ),
    );
    t.push(
        Case::new("ARRAY_OF_MAPS has no lookup-and-delete batch", "§4")
            .ok(create(array(4, 1)))
            .ok(create(aom(s(0), 2)))
            .err(Op::LookupAndDeleteBatchAll { fd: s(1), count: 2 }, ENOTSUPP),
    );
    t.push(
        Case::new("ARRAY has no delete batch", "kernel")
            .ok(create(array(4, 2)))
            .step(
                Op::DeleteBatch {
                    fd: s(0),
                    keys: vec![k(0)],
                },
                Expect::Count(Err((0, ENOTSUPP))),
            ),
    );
    access_mode_cases(&mut t);
    order_cases(&mut t);
    t.push(
        Case::new(
            "ARRAY_OF_MAPS lookup batch skips empty slots (6.14+; EINTR before)",
            "kernel",
        )
        .ok(create(array(4, 1)))
        .ok(create(aom(s(0), 4)))
        .ok(create(array(4, 1)))
        .ok(store(s(1), 0, s(0), BPF_ANY))
        .ok(store(s(1), 2, s(2), BPF_ANY))
        .step(
            Op::LookupBatchAll { fd: s(1), count: 1 },
            Expect::Entries(vec![
                (k(0), Value::Map(CanonId::Map(0))),
                (k(2), Value::Map(CanonId::Map(2))),
            ]),
        ),
    );
    t.push(
        Case::new(
            "ARRAY_OF_MAPS lookup batch of an empty outer map ends at once",
            "kernel",
        )
        .ok(create(array(4, 1)))
        .ok(create(aom(s(0), 2)))
        .step(
            Op::LookupBatchAll { fd: s(1), count: 1 },
            Expect::Entries(vec![]),
        ),
    );
    t.push(
        Case::new("a batch on a never-opened fd is EBADF", "§1").err(
            Op::LookupBatchAll {
                fd: FdRef::NeverOpened,
                count: 2,
            },
            EBADF,
        ),
    );
    t
}

/// D1 and D3 of docs/kernel-disagreements.md: the syscall-side access flags. Accepted on every
/// type, not kept in `map_flags`, and they gate what the created fd may do (`-EPERM`, checked
/// right after the fd resolves).
fn access_mode_cases(t: &mut Vec<Case>) {
    use Errno::*;
    let rdonly_hash = || create(hash(2).flags(BPF_F_RDONLY));
    let wronly_hash = || create(hash(2).flags(BPF_F_WRONLY));
    t.push(
        Case::new(
            "HASH accepts BPF_F_RDONLY (D1: not in §2's flag list)",
            "kernel",
        )
        .ok(rdonly_hash()),
    );
    for (name, c) in [
        ("ARRAY", array(4, 1)),
        ("PERCPU_ARRAY", Create::new(MapType::PercpuArray, 4, 4, 1)),
        ("PROG_ARRAY", Create::new(MapType::ProgArray, 4, 4, 1)),
        ("HASH", hash(1)),
    ] {
        t.push(
            Case::new(named(name, "accepts BPF_F_WRONLY (D1)"), "kernel")
                .ok(create(c.flags(BPF_F_WRONLY))),
        );
    }
    t.push(
        Case::new("ARRAY_OF_MAPS accepts BPF_F_RDONLY (D1)", "kernel")
            .ok(create(array(4, 1)))
            .ok(create(aom(s(0), 1).flags(BPF_F_RDONLY))),
    );
    t.push(
        Case::new("HASH_OF_MAPS accepts BPF_F_WRONLY (D1)", "kernel")
            .ok(create(array(4, 1)))
            .ok(create(hom(s(0), 1).flags(BPF_F_WRONLY))),
    );
    t.push(
        Case::new(
            "BPF_F_RDONLY together with BPF_F_WRONLY is refused",
            "kernel",
        )
        .err(create(hash(1).flags(BPF_F_RDONLY | BPF_F_WRONLY)), EINVAL),
    );
    t.push(
        Case::new(
            "the access modes are refused together before an unknown type is",
            "kernel",
        )
        .err(
            create(Create {
                map_type: 1000,
                ..array(4, 1).flags(BPF_F_RDONLY | BPF_F_WRONLY)
            }),
            EINVAL,
        ),
    );
    t.push(
        Case::new(
            "BPF_F_RDONLY is not kept in map_flags (D3: map_info omits it)",
            "kernel",
        )
        .ok(create(hash(2).flags(BPF_F_RDONLY | BPF_F_NO_PREALLOC)))
        .step(Op::Info { fd: s(0) }, Expect::Flags(BPF_F_NO_PREALLOC)),
    );
    t.push(
        Case::new(
            "BPF_F_RDONLY_PROG is kept in map_flags (a property of the map)",
            "kernel",
        )
        .ok(create(hash(2).flags(BPF_F_RDONLY_PROG)))
        .step(Op::Info { fd: s(0) }, Expect::Flags(BPF_F_RDONLY_PROG)),
    );
    t.push(
        Case::new(
            "HASH_OF_MAPS: meta_equal cannot see BPF_F_RDONLY (D3: not in the flags)",
            "kernel",
        )
        .ok(create(hash(2)))
        .ok(create(hom(s(0), 2)))
        .ok(rdonly_hash())
        .ok(store(s(1), 0, s(2), BPF_ANY))
        .step(lookup(s(1), k(0)), Expect::MapOf(2)),
    );
    t.push(
        Case::new(
            "ARRAY_OF_MAPS: a BPF_F_WRONLY template takes plain arrays (D3)",
            "kernel",
        )
        .ok(create(array(4, 1).flags(BPF_F_WRONLY)))
        .ok(create(aom(s(0), 2)))
        .ok(create(array(4, 1)))
        .ok(store(s(1), 0, s(2), BPF_ANY)),
    );
    t.push(
        Case::new("update through a BPF_F_RDONLY fd is EPERM (D1)", "kernel")
            .ok(rdonly_hash())
            .err(update(s(0), k(0), v(1, 4), BPF_ANY), EPERM)
            .err(lookup(s(0), k(0)), ENOENT),
    );
    t.push(
        Case::new(
            "a BPF_F_RDONLY fd reads: lookup, get_next_key, lookup batch (D1)",
            "kernel",
        )
        .ok(create(array(4, 2).flags(BPF_F_RDONLY)))
        .step(lookup(s(0), k(1)), Expect::Bytes(vec![0; 4]))
        .step(next_key(s(0), None), Expect::Bytes(k(0)))
        .step(
            Op::LookupBatchAll { fd: s(0), count: 4 },
            Expect::Entries(vec![
                (k(0), Value::Bytes(vec![0; 4])),
                (k(1), Value::Bytes(vec![0; 4])),
            ]),
        ),
    );
    t.push(
        Case::new("delete through a BPF_F_RDONLY fd is EPERM (D1)", "kernel")
            .ok(rdonly_hash())
            .err(delete(s(0), k(0)), EPERM),
    );
    t.push(
        Case::new(
            "EPERM of a BPF_F_RDONLY fd comes before the BPF_F_LOCK check",
            "kernel",
        )
        .ok(rdonly_hash())
        .err(update(s(0), k(0), v(1, 4), 4), EPERM),
    );
    t.push(
        Case::new(
            "lookup_and_delete needs a fd that reads and writes: EPERM before ENOTSUPP",
            "kernel",
        )
        .ok(create(array(4, 2).flags(BPF_F_RDONLY)))
        .err(
            Op::LookupAndDelete {
                fd: s(0),
                key: k(0),
            },
            EPERM,
        ),
    );
    t.push(
        Case::new(
            "batch updates and deletes through a BPF_F_RDONLY fd are EPERM before ENOTSUPP",
            "kernel",
        )
        .ok(create(array(4, 2).flags(BPF_F_RDONLY)))
        .step(
            Op::UpdateBatch {
                fd: s(0),
                entries: vec![(k(0), v(1, 4))],
                flags: 0,
            },
            Expect::Count(Err((0, EPERM))),
        )
        .step(
            Op::DeleteBatch {
                fd: s(0),
                keys: vec![k(0)],
            },
            Expect::Count(Err((0, EPERM))),
        ),
    );
    t.push(
        Case::new(
            "a BPF_F_WRONLY fd writes but lookup and get_next_key are EPERM (D1)",
            "kernel",
        )
        .ok(wronly_hash())
        .ok(update(s(0), k(3), v(1, 4), BPF_ANY))
        .err(lookup(s(0), k(3)), EPERM)
        .err(next_key(s(0), None), EPERM)
        .err(Op::LookupBatchAll { fd: s(0), count: 4 }, EPERM)
        .err(Op::LookupAndDeleteBatchAll { fd: s(0), count: 4 }, EPERM)
        .ok(delete(s(0), k(3))),
    );
    t.push(
        Case::new(
            "get_fd_by_id opens a read-write fd on a map created BPF_F_RDONLY",
            "kernel",
        )
        .ok(rdonly_hash())
        .ok(by_id(0))
        .ok(update(s(1), k(0), v(5, 4), BPF_ANY))
        .step(lookup(s(0), k(0)), Expect::Bytes(vec![5; 4])),
    );
    t.push(
        Case::new(
            "storing into an outer map through its BPF_F_RDONLY fd is EPERM",
            "kernel",
        )
        .ok(create(array(4, 1)))
        .ok(create(hom(s(0), 2).flags(BPF_F_RDONLY)))
        .err(store(s(1), 0, s(0), BPF_ANY), EPERM),
    );
    t.push(
        Case::new(
            "an inner map's own BPF_F_RDONLY fd may be stored (the value fd is not checked)",
            "kernel",
        )
        .ok(create(array(4, 1)))
        .ok(create(aom(s(0), 2)))
        .ok(create(array(4, 1).flags(BPF_F_RDONLY)))
        .ok(store(s(1), 1, s(2), BPF_ANY))
        .step(lookup(s(1), k(1)), Expect::MapOf(2)),
    );
}

/// Orders of checks semantics.md leaves open, as the kernel runs them, and a few single rules
/// the spec rows above reach only in combination.
fn order_cases(t: &mut Vec<Case>) {
    use Errno::*;
    t.push(
        Case::new("ARRAY_OF_MAPS checks flags before the fd", "kernel")
            .ok(create(array(4, 1)))
            .ok(create(aom(s(0), 3)))
            .err(store(s(1), 0, FdRef::NeverOpened, BPF_NOEXIST), EINVAL),
    );
    t.push(
        Case::new(
            "BPF_F_LOCK is refused before the inner fd is resolved",
            "kernel",
        )
        .ok(create(array(4, 1)))
        .ok(create(hom(s(0), 3)))
        .err(store(s(1), 0, FdRef::NeverOpened, 4), EINVAL),
    );
    t.push(
        Case::new(
            "HASH_OF_MAPS checks meta_equal before fullness (EINVAL, not E2BIG)",
            "kernel",
        )
        .ok(create(array(4, 1)))
        .ok(create(hom(s(0), 1)))
        .ok(create(array(4, 1)))
        .ok(store(s(1), 0, s(2), BPF_ANY))
        .ok(create(array(4, 2)))
        .err(store(s(1), 1, s(3), BPF_ANY), EINVAL),
    );
    t.push(
        Case::new("HASH_OF_MAPS accepts BPF_F_RDONLY_PROG", "§2")
            .ok(create(array(4, 1)))
            .ok(create(hom(s(0), 3).flags(BPF_F_RDONLY_PROG))),
    );
    for (name, outer) in [
        ("ARRAY_OF_MAPS", MapType::ArrayOfMaps),
        ("HASH_OF_MAPS", MapType::HashOfMaps),
    ] {
        t.push(
            Case::new(
                named(
                    name,
                    "meta_equal: a BPF_F_INNER_MAP template refuses a same-size array without the flag",
                ),
                "§3",
            )
            .ok(create(array(4, 1).flags(BPF_F_INNER_MAP)))
            .ok(create(Create::new(outer, 4, 4, 3).inner(s(0))))
            .ok(create(array(4, 1)))
            .err(store(s(1), 0, s(2), BPF_ANY), EINVAL),
        );
        t.push(
            Case::new(
                named(
                    name,
                    "meta_equal: a HASH template refuses another value_size",
                ),
                "§3",
            )
            .ok(create(hash(2)))
            .ok(create(Create::new(outer, 4, 4, 3).inner(s(0))))
            .ok(create(Create::new(MapType::Hash, 4, 8, 2)))
            .err(store(s(1), 0, s(2), BPF_ANY), EINVAL),
        );
    }
}

fn sorted(mut keys: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    keys.sort();
    keys
}

fn named(prefix: &str, rule: &str) -> String {
    format!("{prefix}: {rule}")
}
