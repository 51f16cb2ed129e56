//! Scenarios as data: a TOML file (or a built-in, which is the same TOML compiled in) names
//! the maps to create, the programs (assembly) and the tasks: user-space threads making map
//! syscalls (a fixed op list or an op mix drawn from the seed), programs run on simulated CPUs,
//! and interrupt-context programs nested on another task's CPU.
//!
//! ```toml
//! name = "example"
//! [shapes]
//! backends = { type = "array", max_entries = 3, flags = ["inner_map"] }
//! [[maps]]
//! name = "services"
//! type = "hash_of_maps"
//! max_entries = 4
//! inner = "backends"          # the template: a shape or a map declared earlier
//! [[entries]]
//! map = "services"
//! key = 1
//! value = "new:backends"      # a fresh inner map of that shape, its fd closed at once
//! [[programs]]
//! name = "pick"
//! source = """
//!     ldxw %r6, [%r1+0]       # r1: the context (key, run, random word)
//!     stxw [%r10-4], %r6
//!     lddw %r1, map(services) # a map reference, resolved to the map's fd at load
//!     mov %r2, %r10
//!     add %r2, -4
//!     call 1
//!     exit
//! """
//! [[tasks]]
//! kind = "program"
//! program = "pick"
//! runs = 4
//! keys = [1]
//! [[tasks]]
//! kind = "user"
//! ops = ["update services 1 new:backends exist", "delete services 1"]
//! ```
//!
//! User ops are one string each in the language of [`super::op`] (`update MAP KEY VALUE`,
//! `drain $VAR KEY`, `batch_lookup MAP`, ...), parsed as the file is read. A mix (`mix = [...]`,
//! `count = N`) draws `count` ops from its templates, replacing `{key}` by one of the task's
//! `keys` and `{shape}` by one of its `shapes`; every op it can draw is checked at load.
//!
//! A scenario may bring a clang-built object instead of (or beside) assembly: `object =
//! "target/bpf/NAME.bpf.o"` loads it as libbpf would ([`mimic_core::bpf::object`]: its maps
//! with their templates, initial slots and global data), its maps are named by their BTF names
//! in entries, ops and checks, tasks name its programs by function name, and an inner map of
//! the object (an array or hash) is also a shape for `new:NAME`. A relative path is looked up
//! from the scenario file's folder, then from each folder above it (so the repository's
//! `target/bpf/` is found from `examples/objects/`), and for text without a file, from the
//! current folder. Only the programs tasks name are loaded, each as its section's type.
//!
//! Errors name the scenario, the field and the line or op that is wrong.

use super::op::{UserOp, Value};
use mimic_core::bpf::conformance;
use mimic_core::bpf::object::{MapSpec, Object};
use mimic_core::bpf::verifier::{packet_cases, ProgType};
use mimic_core::bpf::{skb, xdp};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The scenarios compiled into the binary (the files of `sim/scenarios/`).
pub const BUILTINS: &[(&str, &str)] = &[
    ("maglev", include_str!("../../scenarios/maglev.toml")),
    ("seed000", include_str!("../../scenarios/seed000.toml")),
    (
        "reader_replace_array",
        include_str!("../../scenarios/reader_replace_array.toml"),
    ),
    (
        "reader_replace_hash",
        include_str!("../../scenarios/reader_replace_hash.toml"),
    ),
    (
        "nulls_restart",
        include_str!("../../scenarios/nulls_restart.toml"),
    ),
    (
        "nulls_restart_prog",
        include_str!("../../scenarios/nulls_restart_prog.toml"),
    ),
    ("sleepable", include_str!("../../scenarios/sleepable.toml")),
    (
        "two_updaters",
        include_str!("../../scenarios/two_updaters.toml"),
    ),
    (
        "close_under_reader",
        include_str!("../../scenarios/close_under_reader.toml"),
    ),
    ("batch", include_str!("../../scenarios/batch.toml")),
    (
        "dynamic_inner",
        include_str!("../../scenarios/dynamic_inner.toml"),
    ),
    (
        "drain_after_swap",
        include_str!("../../scenarios/drain_after_swap.toml"),
    ),
    (
        "nested_update",
        include_str!("../../scenarios/nested_update.toml"),
    ),
    (
        "fixed_inner_size",
        include_str!("../../scenarios/fixed_inner_size.toml"),
    ),
    (
        "inner_array_lookup",
        include_str!("../../scenarios/inner_array_lookup.toml"),
    ),
];

/// A scenario error: what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError(pub String);

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ScenarioError {}

fn err<T>(message: String) -> Result<T, ScenarioError> {
    Err(ScenarioError(message))
}

/// A map's shape (the `BPF_MAP_CREATE` attributes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    #[serde(rename = "type")]
    pub map_type: String,
    #[serde(default = "four")]
    pub key_size: u32,
    #[serde(default = "four")]
    pub value_size: u32,
    pub max_entries: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// The template of an outer map: a shape name or an earlier map's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner: Option<String>,
}

fn four() -> u32 {
    4
}

/// A map created at setup; its fd stays open until teardown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapDecl {
    pub name: String,
    #[serde(flatten)]
    pub shape: Shape,
}

/// An initial entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub map: String,
    pub key: u32,
    pub value: EntryValue,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EntryValue {
    Number(u64),
    /// `new:SHAPE` or a map name.
    Text(String),
}

impl EntryValue {
    /// What the entry stores, in the ops' terms.
    pub fn value(&self) -> Result<Value, String> {
        match self {
            EntryValue::Number(n) => Ok(Value::Number(*n)),
            EntryValue::Text(text) => text.parse(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramDecl {
    pub name: String,
    #[serde(default)]
    pub sleepable: bool,
    /// Loaded without `CAP_BPF` (the verifier's unprivileged rules; default: privileged).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unprivileged: bool,
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    User,
    Program,
    /// A program in interrupt context on the CPU of task `on_cpu_of`.
    Irq,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDecl {
    pub kind: TaskKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub runs: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_cpu_of: Option<usize>,
    /// Parsed as the TOML is read: an op that does not parse is a load error at its line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<UserOp>,
    /// Op templates, parsed once `{key}` and `{shape}` are replaced (every choice is checked
    /// at load).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mix: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub count: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shapes: Vec<String>,
    /// For an XDP program: the frames its runs draw from, by name (the scenario's `[frames]`
    /// or a generated kind, [`packet_cases::FRAME_NAMES`]); without it a run's key picks the
    /// generated kind by number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<String>,
}

fn one() -> u32 {
    1
}
fn is_one(v: &u32) -> bool {
    *v == 1
}
fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// Oracle settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    /// Outer maps whose history must be linearizable (default: every outer map).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linearizable: Option<Vec<String>>,
    /// `MAP:KEY` pairs never deleted by the scenario: any lookup (user or program) that
    /// reports one missing is a `lost_key` failure (§7: "a present key reported missing").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub always_present: Vec<String>,
    /// Map contents user space must read at quiescence (before teardown): a mismatch is a
    /// `wrong_value` failure (a program wrote where it did not mean to).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<ValueCheck>,
    /// What a program's runs may return on a class of frames: a run that returns something
    /// else, or leaves a packet whose value is from no table of its service, is a
    /// `wrong_result` failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<ResultCheck>,
}

/// `[[checks.results]]`: every run of `program` on one of `frames` (all frames when empty)
/// returns one of `returns` (XDP action names or numbers), and, with `packet_value`, leaves a
/// packet whose bytes at `offset` hold a value user space wrote into a map that was stored
/// under `from` (`OUTER:KEY`) at some point of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultCheck {
    pub program: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<String>,
    pub returns: Vec<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_value: Option<PacketValue>,
}

/// Bytes `offset..offset + size` of the packet after the run (little-endian; compared with the
/// low `size` bytes of each value written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacketValue {
    pub offset: usize,
    pub size: usize,
    pub from: OuterKey,
}

/// A packet program's verdict as a scenario writes it: an XDP action (`XDP_TX`), a tc one
/// (`TC_ACT_SHOT`), or a number; read when the file loads, and kept as written for messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Action {
    pub value: u64,
    pub written: String,
}

impl TryFrom<String> for Action {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let tc = skb::ACTIONS
            .iter()
            .find(|(n, _)| *n == text)
            .map(|(_, v)| *v);
        let value = xdp::action(&text).or(tc).ok_or(format!(
            "return `{text}` is no XDP action (XDP_DROP, XDP_PASS, XDP_TX, ...), tc action \
             (TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT, ...) or number"
        ))?;
        Ok(Action {
            value,
            written: text,
        })
    }
}

impl From<Action> for String {
    fn from(action: Action) -> String {
        action.written
    }
}

/// `OUTER:KEY`: a key of an outer map, read when the file loads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OuterKey {
    pub outer: String,
    pub key: u32,
}

impl TryFrom<String> for OuterKey {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let (outer, key) = text
            .split_once(':')
            .ok_or(format!("packet_value.from `{text}` is not MAP:KEY"))?;
        let key = key
            .parse::<u32>()
            .map_err(|_| format!("packet_value.from `{text}`: the key is not a u32"))?;
        Ok(OuterKey {
            outer: outer.to_string(),
            key,
        })
    }
}

impl From<OuterKey> for String {
    fn from(k: OuterKey) -> String {
        format!("{}:{}", k.outer, k.key)
    }
}

/// A frame listed in hex (whitespace ignored), read when the file loads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HexFrame(pub Vec<u8>);

impl TryFrom<String> for HexFrame {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let digits: String = text.split_whitespace().collect();
        conformance::parse_hex_bytes(&digits)
            .map(HexFrame)
            .map_err(|e| format!("a frame in hex: {e}"))
    }
}

impl From<HexFrame> for String {
    fn from(frame: HexFrame) -> String {
        frame.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl ResultCheck {
    /// Whether a run on frame `frame` is one this check covers.
    pub fn covers(&self, program: &str, frame: &str) -> bool {
        self.program == program
            && (self.frames.is_empty() || self.frames.iter().any(|f| f == frame))
    }
}

/// `map[key]` (or, through an outer map, `map[key][inner_key]`) must read as `equals` (the
/// value's first 8 bytes or fewer, little-endian). An absent outer key skips the check: the
/// value is only pinned while the inner map is there to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueCheck {
    pub map: String,
    pub key: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_key: Option<u32>,
    pub equals: u64,
}

impl Checks {
    /// The `always_present` pairs, parsed.
    pub fn always_present(&self) -> Result<Vec<(String, u32)>, String> {
        self.always_present
            .iter()
            .map(|pair| {
                let (map, key) = pair
                    .split_once(':')
                    .ok_or(format!("checks.always_present: `{pair}` is not MAP:KEY"))?;
                let key = key
                    .parse::<u32>()
                    .map_err(|_| format!("checks.always_present: key of `{pair}` is not a u32"))?;
                Ok((map.to_string(), key))
            })
            .collect()
    }
}

/// A scenario. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Which mutants this scenario is meant to catch (documentation and `mimic mutants`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// A BPF object whose maps and programs the scenario uses (see the module documentation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(default)]
    pub shapes: BTreeMap<String, Shape>,
    #[serde(default)]
    pub maps: Vec<MapDecl>,
    #[serde(default)]
    pub entries: Vec<Entry>,
    #[serde(default)]
    pub programs: Vec<ProgramDecl>,
    pub tasks: Vec<TaskDecl>,
    /// Frames listed by the scenario, by name: the bytes in hex (whitespace ignored), given to
    /// XDP runs as they are.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub frames: BTreeMap<String, HexFrame>,
    #[serde(default)]
    pub checks: Checks,
    /// Steps after which a run is cut (a liveness bound, not a failure).
    #[serde(default = "default_step_budget")]
    pub step_budget: u64,
    /// PCT's estimate of a run's length in scheduling steps.
    #[serde(default = "default_pct_steps")]
    pub pct_steps: usize,
    /// The parsed `object`, read when the scenario is loaded (not part of the TOML).
    #[serde(skip)]
    pub loaded: Option<Arc<LoadedObject>>,
}

/// A scenario's object, read and parsed once: what the run loads and the names validation
/// checks against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedObject {
    /// Where it was found.
    pub path: PathBuf,
    pub object: Object,
    /// The object's inner maps as shapes (`new:NAME`), by map name.
    pub shapes: BTreeMap<String, Shape>,
}

/// Objects larger than this are refused before they are read (real ones are kilobytes).
pub const MAX_OBJECT_BYTES: u64 = 16 << 20;

impl LoadedObject {
    /// Finds `given` (see the module documentation), reads and parses it.
    pub fn read(given: &str, base: Option<&Path>) -> Result<LoadedObject, String> {
        let path = find_object(given, base)?;
        let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{}: not a regular file", path.display()));
        }
        if meta.len() > MAX_OBJECT_BYTES {
            return Err(format!(
                "{}: {} bytes, more than the {MAX_OBJECT_BYTES} an object may have",
                path.display(),
                meta.len()
            ));
        }
        let mut bytes = Vec::new();
        use std::io::Read;
        std::fs::File::open(&path)
            .and_then(|f| f.take(MAX_OBJECT_BYTES).read_to_end(&mut bytes))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let object = Object::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let shapes = object
            .maps
            .iter()
            .filter_map(|m| Some((m.name.clone(), shape_of(m)?)))
            .collect();
        Ok(LoadedObject {
            path,
            object,
            shapes,
        })
    }
}

/// `given` as is when absolute; else from `base` and each folder above it, else from the
/// current folder.
fn find_object(given: &str, base: Option<&Path>) -> Result<PathBuf, String> {
    let path = Path::new(given);
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    if let Some(base) = base {
        for dir in base.ancestors() {
            let candidate = dir.join(path);
            if candidate.exists() {
                return Ok(candidate);
            }
        }
    }
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    Err(format!(
        "object `{given}` not found{} (the example objects are built by ci/build-objects into \
         target/bpf/)",
        base.map(|b| format!(" from {} or a folder above it", b.display()))
            .unwrap_or_default()
    ))
}

/// An object's map as a scenario shape, when it is one a scenario can create: a plain map (no
/// template, no global data) of a type and flags the scenario language names.
fn shape_of(spec: &MapSpec) -> Option<Shape> {
    if spec.inner.is_some() || spec.data.is_some() {
        return None;
    }
    let map_type = type_name(spec.kind()?)?;
    let mut flags = Vec::new();
    let mut rest = spec.map_flags;
    for name in FLAG_NAMES {
        let bit = map_flag(name).ok()?;
        if rest & bit != 0 {
            flags.push(name.to_string());
            rest &= !bit;
        }
    }
    (rest == 0).then(|| Shape {
        map_type: map_type.to_string(),
        key_size: spec.key_size,
        value_size: spec.value_size,
        max_entries: spec.max_entries,
        flags,
        inner: None,
    })
}

/// Enough for the largest built-in (a few thousand steps) with a wide margin.
fn default_step_budget() -> u64 {
    200_000
}
/// The built-ins run about a thousand contended steps.
fn default_pct_steps() -> usize {
    1_000
}

/// Largest `runs`, `count` and op list a scenario may ask for: bounds every loop of a run.
pub const MAX_OPS_PER_TASK: u32 = 10_000;
/// Tasks per scenario (RCU reader slots and lockdep records are sized from it).
pub const MAX_TASKS: usize = 32;

impl Scenario {
    /// Parses TOML text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse_at(text, origin, None)
    }

    /// Parses TOML text read from a file in folder `base` (where a relative `object` path
    /// starts).
    pub fn parse_at(
        text: &str,
        origin: &str,
        base: Option<&Path>,
    ) -> Result<Scenario, ScenarioError> {
        let mut scenario: Scenario =
            toml::from_str(text).map_err(|e| ScenarioError(format!("{origin}: {e}")))?;
        if let Some(given) = &scenario.object {
            let loaded = LoadedObject::read(given, base)
                .map_err(|e| ScenarioError(format!("{origin}: object: {e}")))?;
            scenario.loaded = Some(Arc::new(loaded));
        }
        scenario
            .validate()
            .map_err(|e| ScenarioError(format!("{origin}: {e}")))?;
        Ok(scenario)
    }

    /// A built-in by name, or a TOML file by path.
    pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        if let Some((_, text)) = BUILTINS.iter().find(|(n, _)| *n == name_or_path) {
            return Scenario::parse(text, &format!("built-in scenario `{name_or_path}`"));
        }
        let path = std::path::Path::new(name_or_path);
        if path.extension().is_some_and(|e| e == "toml") || path.exists() {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ScenarioError(format!("scenario file {name_or_path}: {e}")))?;
            let base = path.parent().map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            });
            return Scenario::parse_at(&text, name_or_path, base);
        }
        err(format!(
            "unknown scenario `{name_or_path}` (built-ins: {}; or give a .toml file)",
            BUILTINS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    pub fn builtins() -> Vec<Scenario> {
        BUILTINS
            .iter()
            .map(|(name, text)| {
                Scenario::parse(text, name)
                    .unwrap_or_else(|e| panic!("built-in scenario is invalid: {e}"))
            })
            .collect()
    }

    /// The scenario as TOML; its object named by the path it was found at (relative to the
    /// current folder when it was found from there), so that a file written in the current
    /// folder (`mimic shrink`) finds it again.
    pub fn to_toml(&self) -> String {
        let mut out = self.clone();
        if let Some(loaded) = &self.loaded {
            out.object = Some(loaded.path.display().to_string());
        }
        toml::to_string_pretty(&out).unwrap_or_else(|e| format!("# cannot serialise: {e}"))
    }

    /// The shape a name stands for: a declared shape, a setup map's, or an object map's.
    /// The bytes of frame `name`: a listed frame as written, a generated one with source port
    /// `sport`.
    pub fn frame(&self, name: &str, sport: u16) -> Result<Vec<u8>, String> {
        if let Some(frame) = self.frames.get(name) {
            return Ok(frame.0.clone());
        }
        packet_cases::frame_named(name, sport).ok_or(format!(
            "unknown frame `{name}` (not in [frames], nor one of {})",
            packet_cases::FRAME_NAMES.join(", ")
        ))
    }

    /// Whether `program` is an object program of a packet type, XDP or tc (the programs that
    /// take frames).
    fn is_packet(&self, program: &str) -> bool {
        self.loaded
            .as_ref()
            .and_then(|l| l.object.program(program))
            .is_some_and(|p| p.kind.verifier_type().is_ok_and(ProgType::is_packet))
    }

    pub fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes
            .get(name)
            .or_else(|| self.maps.iter().find(|m| m.name == name).map(|m| &m.shape))
            .or_else(|| self.loaded.as_ref()?.shapes.get(name))
    }

    /// The object's maps (in its order), then the declared ones: every map a run creates at
    /// setup, by name.
    pub fn map_names(&self) -> Vec<&str> {
        let object = self.loaded.iter().flat_map(|l| &l.object.maps);
        object
            .map(|m| m.name.as_str())
            .chain(self.maps.iter().map(|m| m.name.as_str()))
            .collect()
    }

    /// Whether `name` is a program a task may run: an assembly program or an object's.
    pub fn has_program(&self, name: &str) -> bool {
        self.programs.iter().any(|p| p.name == name)
            || self
                .loaded
                .as_ref()
                .is_some_and(|l| l.object.program(name).is_some())
    }

    /// Checks every cross reference, so a run never meets a dangling name.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.tasks.is_empty() {
            return err("no [[tasks]]".into());
        }
        if self.tasks.len() > MAX_TASKS {
            return err(format!("{} tasks, at most {MAX_TASKS}", self.tasks.len()));
        }
        for (name, shape) in &self.shapes {
            check_shape(shape).map_err(|e| ScenarioError(format!("shape `{name}`: {e}")))?;
        }
        let mut seen: Vec<&str> = self
            .loaded
            .iter()
            .flat_map(|l| &l.object.maps)
            .map(|m| m.name.as_str())
            .collect();
        for program in &self.programs {
            if let Some(l) = &self.loaded {
                if l.object.program(&program.name).is_some() {
                    return err(format!(
                        "program `{}` is also a program of the object",
                        program.name
                    ));
                }
            }
        }
        for map in &self.maps {
            check_shape(&map.shape)
                .map_err(|e| ScenarioError(format!("map `{}`: {e}", map.name)))?;
            if let Some(inner) = &map.shape.inner {
                if !self.shapes.contains_key(inner) && !seen.contains(&inner.as_str()) {
                    return err(format!(
                        "map `{}`: template `{inner}` is neither a shape nor an earlier map",
                        map.name
                    ));
                }
            }
            if seen.contains(&map.name.as_str()) {
                return err(format!(
                    "map `{}` declared twice (or also a map of the object)",
                    map.name
                ));
            }
            seen.push(&map.name);
        }
        for (i, entry) in self.entries.iter().enumerate() {
            if !seen.contains(&entry.map.as_str()) {
                return err(format!("entries[{i}]: unknown map `{}`", entry.map));
            }
            entry
                .value
                .value()
                .and_then(|v| self.check_value(&v))
                .map_err(|e| ScenarioError(format!("entries[{i}]: {e}")))?;
        }
        for program in &self.programs {
            for name in map_refs(&program.source) {
                if !seen.contains(&name.as_str()) {
                    return err(format!(
                        "program `{}`: map({name}) is not a declared map",
                        program.name
                    ));
                }
            }
            assemble(&program.source, &|_| Some(3))
                .map_err(|e| ScenarioError(format!("program `{}`: {e}", program.name)))?;
        }
        for (i, task) in self.tasks.iter().enumerate() {
            let at = |e: String| ScenarioError(format!("tasks[{i}]: {e}"));
            if task.runs > MAX_OPS_PER_TASK
                || task.count > MAX_OPS_PER_TASK
                || task.ops.len() > MAX_OPS_PER_TASK as usize
            {
                return Err(at(format!("more than {MAX_OPS_PER_TASK} runs or ops")));
            }
            match task.kind {
                TaskKind::Program | TaskKind::Irq => {
                    let Some(program) = &task.program else {
                        return Err(at("a program task needs `program`".into()));
                    };
                    if !self.has_program(program) {
                        return Err(at(format!("unknown program `{program}`")));
                    }
                    if let Some(p) = self.loaded.as_ref().and_then(|l| l.object.program(program)) {
                        p.kind
                            .verifier_type()
                            .map_err(|e| at(format!("program `{program}`: {e}")))?;
                    }
                    if !task.frames.is_empty() && !self.is_packet(program) {
                        return Err(at(format!(
                            "`frames` given, but program `{program}` is not an XDP or tc program"
                        )));
                    }
                    for frame in &task.frames {
                        self.frame(frame, 0).map_err(at)?;
                    }
                    if task.kind == TaskKind::Irq {
                        match task.on_cpu_of {
                            Some(j)
                                if j < self.tasks.len()
                                    && self.tasks[j].kind == TaskKind::Program => {}
                            _ => {
                                return Err(at(
                                    "an irq task needs `on_cpu_of` = the index of a program task"
                                        .into(),
                                ))
                            }
                        }
                    }
                }
                TaskKind::User => {
                    for op in &task.ops {
                        self.check_op(op)
                            .map_err(|e| at(format!("op `{op}`: {e}")))?;
                    }
                    if task.mix.iter().any(|m| m.contains("{key}")) && task.keys.is_empty() {
                        return Err(at("a mix with {key} needs `keys`".into()));
                    }
                    if task.mix.iter().any(|m| m.contains("{shape}")) && task.shapes.is_empty() {
                        return Err(at("a mix with {shape} needs `shapes`".into()));
                    }
                    if task.keys.len() > MAX_MIX_CHOICES || task.shapes.len() > MAX_MIX_CHOICES {
                        return Err(at(format!(
                            "more than {MAX_MIX_CHOICES} keys or shapes to draw from"
                        )));
                    }
                    // Every op a seed can draw, so that instantiating never meets a bad one.
                    for template in &task.mix {
                        for (key, shape) in mix_choices(task, template) {
                            let op = fill(template, key, shape)
                                .map_err(|e| at(format!("mix `{template}`: {e}")))?;
                            self.check_op(&op)
                                .map_err(|e| at(format!("mix `{template}` as `{op}`: {e}")))?;
                        }
                    }
                }
            }
        }
        for (map, _) in self.checks.always_present().map_err(ScenarioError)? {
            if !seen.contains(&map.as_str()) {
                return err(format!("checks.always_present: unknown map `{map}`"));
            }
        }
        for check in &self.checks.values {
            if !seen.contains(&check.map.as_str()) {
                return err(format!("checks.values: unknown map `{}`", check.map));
            }
        }
        for (i, check) in self.checks.results.iter().enumerate() {
            let at = |e: String| ScenarioError(format!("checks.results[{i}]: {e}"));
            if !self.is_packet(&check.program) {
                return Err(at(format!(
                    "`{}` is not an XDP or tc program of the object",
                    check.program
                )));
            }
            if check.returns.is_empty() {
                return Err(at("`returns` is empty: no run could pass".into()));
            }
            for frame in &check.frames {
                self.frame(frame, 0).map_err(at)?;
            }
            if let Some(value) = &check.packet_value {
                let map = &value.from.outer;
                if !seen.contains(&map.as_str()) {
                    return Err(at(format!("packet_value.from: unknown map `{map}`")));
                }
                if !(1..=8).contains(&value.size) || value.offset > xdp::MAX_PACKET {
                    return Err(at(format!(
                        "packet_value: size {} (1 to 8) or offset {} (at most {}) out of range",
                        value.size,
                        value.offset,
                        xdp::MAX_PACKET
                    )));
                }
            }
        }
        if let Some(names) = &self.checks.linearizable {
            for name in names {
                if !seen.contains(&name.as_str()) {
                    return err(format!("checks.linearizable: unknown map `{name}`"));
                }
            }
        }
        Ok(())
    }

    fn check_map(&self, map: &str) -> Result<(), String> {
        if map.starts_with('$') || self.map_names().contains(&map) {
            Ok(())
        } else {
            Err(format!("unknown map `{map}`"))
        }
    }

    fn check_value(&self, value: &Value) -> Result<(), String> {
        match value {
            Value::New(shape) => self
                .shape(shape)
                .map(|_| ())
                .ok_or(format!("unknown shape `{shape}`")),
            Value::Map(map) => self
                .check_map(map)
                .map_err(|_| format!("`{map}` is not a number, new:SHAPE, $VAR or a map")),
            Value::Number(_) | Value::Var(_) => Ok(()),
        }
    }

    /// The names an op uses (its syntax was checked when it was parsed).
    fn check_op(&self, op: &UserOp) -> Result<(), String> {
        if let Some(map) = op.map() {
            self.check_map(map)?;
        }
        if let Some(value) = op.value() {
            self.check_value(value)?;
        }
        if let UserOp::Create { shape, .. } = op {
            self.shape(shape)
                .ok_or(format!("unknown shape `{shape}`"))?;
        }
        Ok(())
    }

    /// The scenario with every mix replaced by the ops the seed draws: what a run executes,
    /// and what `mimic shrink` reduces. Fails only for a scenario that was not validated.
    pub fn instantiate(&self, seed: u64) -> Result<Scenario, ScenarioError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ WORKLOAD_STREAM);
        let mut out = self.clone();
        for (i, task) in out.tasks.iter_mut().enumerate() {
            if task.mix.is_empty() {
                continue;
            }
            let mut ops = std::mem::take(&mut task.ops);
            for _ in 0..task.count {
                let template = &task.mix[pick(&mut rng, task.mix.len())];
                let key = task
                    .keys
                    .get(pick(&mut rng, task.keys.len().max(1)))
                    .copied()
                    .unwrap_or(0);
                let shape = task
                    .shapes
                    .get(pick(&mut rng, task.shapes.len().max(1)))
                    .map_or("", |s| s.as_str());
                ops.push(
                    fill(template, key, shape)
                        .map_err(|e| ScenarioError(format!("tasks[{i}]: mix `{template}`: {e}")))?,
                );
            }
            task.ops = ops;
            task.mix.clear();
            task.count = 0;
            task.shapes.clear();
            task.keys.clear();
        }
        Ok(out)
    }
}

/// Keys and shapes a task's mix may draw from, at most (bounds the load-time check of every
/// op a mix can produce).
pub const MAX_MIX_CHOICES: usize = 256;

/// A mix template with its placeholders replaced, parsed.
fn fill(template: &str, key: u32, shape: &str) -> Result<UserOp, String> {
    template
        .replace("{key}", &key.to_string())
        .replace("{shape}", shape)
        .parse()
}

/// The (key, shape) pairs that give `template` a different text: only the placeholders it
/// has vary.
fn mix_choices<'t>(task: &'t TaskDecl, template: &str) -> Vec<(u32, &'t str)> {
    let keys: Vec<u32> = if template.contains("{key}") {
        task.keys.clone()
    } else {
        vec![0]
    };
    let shapes: Vec<&str> = if template.contains("{shape}") {
        task.shapes.iter().map(|s| s.as_str()).collect()
    } else {
        vec![""]
    };
    keys.iter()
        .flat_map(|&k| shapes.iter().map(move |&s| (k, s)))
        .collect()
}

/// Separates the workload's random stream from the schedulers' (which start from the seed).
const WORKLOAD_STREAM: u64 = 0x574f_524b_4c4f_4144;

fn pick(rng: &mut ChaCha8Rng, n: usize) -> usize {
    super::reduce(rng.next_u64(), n)
}

fn check_shape(shape: &Shape) -> Result<(), String> {
    map_type(&shape.map_type)?;
    for flag in &shape.flags {
        map_flag(flag)?;
    }
    Ok(())
}

pub fn map_type(name: &str) -> Result<mimic_core::uapi::MapType, String> {
    use mimic_core::uapi::MapType;
    Ok(match name {
        "array" => MapType::Array,
        "hash" => MapType::Hash,
        "array_of_maps" => MapType::ArrayOfMaps,
        "hash_of_maps" => MapType::HashOfMaps,
        "percpu_array" => MapType::PercpuArray,
        "percpu_hash" => MapType::PercpuHash,
        other => {
            return Err(format!(
                "unknown map type `{other}` (array, hash, array_of_maps, hash_of_maps, percpu_array, percpu_hash)"
            ))
        }
    })
}

/// The scenario's name for a map type (the inverse of [`map_type`]).
pub fn type_name(t: mimic_core::uapi::MapType) -> Option<&'static str> {
    [
        "array",
        "hash",
        "array_of_maps",
        "hash_of_maps",
        "percpu_array",
        "percpu_hash",
    ]
    .into_iter()
    .find(|name| map_type(name).ok() == Some(t))
}

/// The map flags a scenario names (see [`map_flag`]).
pub const FLAG_NAMES: [&str; 4] = ["inner_map", "no_prealloc", "rdonly_prog", "wronly_prog"];

pub fn map_flag(name: &str) -> Result<u32, String> {
    use mimic_core::uapi::*;
    Ok(match name {
        "inner_map" => BPF_F_INNER_MAP,
        "no_prealloc" => BPF_F_NO_PREALLOC,
        "rdonly_prog" => BPF_F_RDONLY_PROG,
        "wronly_prog" => BPF_F_WRONLY_PROG,
        other => {
            return Err(format!(
                "unknown map flag `{other}` (inner_map, no_prealloc, rdonly_prog, wronly_prog)"
            ))
        }
    })
}

/// Map names referenced as `map(NAME)` in a program's source.
pub fn map_refs(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("map(") {
        let tail = &rest[at + 4..];
        if let Some(end) = tail.find(')') {
            out.push(tail[..end].trim().to_string());
            rest = &tail[end..];
        } else {
            break;
        }
    }
    out
}

/// Assembles a program, resolving `lddw %rN, map(NAME)` to `BPF_PSEUDO_MAP_FD` loads of the fd
/// `fd_of(NAME)` gives: the scenario's `map(NAME)` is the assembler's `map:NAME`
/// (`mimic_core::bpf::verifier::asm_maps`), which places and checks the references.
pub fn assemble(
    source: &str,
    fd_of: &dyn Fn(&str) -> Option<i32>,
) -> Result<Vec<mimic_core::isa::Insn>, String> {
    let mut text = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(at) = rest.find("map(") {
        let tail = &rest[at + 4..];
        let Some(end) = tail.find(')') else { break };
        text.push_str(&rest[..at]);
        text.push_str("map:");
        text.push_str(tail[..end].trim());
        rest = &tail[end + 1..];
    }
    text.push_str(rest);
    mimic_core::bpf::verifier::asm_maps::assemble_with_maps(&text, fd_of)
        .map_err(|e| format!("assembly error at {e}"))
}
