//! The user-op language of scenarios: one op per string (`update services 1 new:backends
//! exist`), parsed into a [`UserOp`] when the scenario loads and printed back in the same words.
//! The TOML's validation, the engine, `mimic shrink`'s output and the trace all read this one
//! grammar; the alternative, strings interpreted again at run time, let an op that could not be
//! interpreted be skipped without a word.
//!
//! ```text
//! update MAP KEY VALUE [any|noexist|exist]   delete MAP KEY        lookup MAP KEY
//! create $VAR SHAPE    close $VAR    drain $VAR KEY    yield N
//! batch_update MAP K,K.. VALUE    batch_delete MAP K,K..    batch_lookup MAP
//! ```
//! A MAP is a map's name or `$VAR`; a VALUE ([`Value`]) a number, `new:SHAPE`, `$VAR` or a
//! map's name.
//!
//! Invariants: `op.to_string().parse() == Ok(op)`; parsing looks at the words alone (whether
//! a map or shape exists is the scenario's check, `Scenario::validate`).

use mimic_core::uapi::{BPF_ANY, BPF_EXIST, BPF_NOEXIST};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What an update stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Number(u64),
    /// `new:SHAPE`: a fresh map of that shape, its fd closed once the update returns.
    New(String),
    /// `$VAR`: the map a task created under that name.
    Var(String),
    /// A setup map, by name.
    Map(String),
}

impl FromStr for Value {
    type Err = String;

    /// Any word is a value: one that is no number, `new:` or `$` names a map.
    fn from_str(text: &str) -> Result<Value, String> {
        if text.is_empty() || text.contains(char::is_whitespace) {
            return Err(format!("`{text}` is not one word"));
        }
        Ok(if let Some(shape) = text.strip_prefix("new:") {
            Value::New(shape.to_string())
        } else if let Some(var) = text.strip_prefix('$') {
            Value::Var(var.to_string())
        } else if let Ok(n) = text.parse() {
            Value::Number(n)
        } else {
            Value::Map(text.to_string())
        })
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(n) => write!(f, "{n}"),
            Value::New(shape) => write!(f, "new:{shape}"),
            Value::Var(var) => write!(f, "${var}"),
            Value::Map(map) => f.write_str(map),
        }
    }
}

/// The flags word of an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateFlags {
    Any,
    NoExist,
    Exist,
}

impl UpdateFlags {
    pub fn bits(self) -> u64 {
        match self {
            UpdateFlags::Any => BPF_ANY,
            UpdateFlags::NoExist => BPF_NOEXIST,
            UpdateFlags::Exist => BPF_EXIST,
        }
    }
}

/// One user-space op. A `map` is a setup map's name or `$VAR` (kept with its `$`, as the
/// trace and the history name it); a `var` is a task variable's name without the `$`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum UserOp {
    Update {
        map: String,
        key: u32,
        value: Value,
        flags: UpdateFlags,
    },
    Delete {
        map: String,
        key: u32,
    },
    Lookup {
        map: String,
        key: u32,
    },
    Create {
        var: String,
        shape: String,
    },
    Close {
        var: String,
    },
    /// Remember `var[key]`: at the end of the run it must read the same.
    Drain {
        var: String,
        key: u32,
    },
    BatchUpdate {
        map: String,
        keys: Vec<u32>,
        value: Value,
    },
    BatchDelete {
        map: String,
        keys: Vec<u32>,
    },
    BatchLookup {
        map: String,
    },
    Yield(u32),
}

/// The op names, for the error that meets an unknown one.
const OPS: &str =
    "update, delete, lookup, create, close, drain, batch_update, batch_delete, batch_lookup, yield";

fn key(word: &str) -> Result<u32, String> {
    word.parse()
        .map_err(|_| format!("key `{word}` is not a u32"))
}

fn keys(word: &str) -> Result<Vec<u32>, String> {
    word.split(',').map(key).collect()
}

fn var(word: &str) -> Result<String, String> {
    match word.strip_prefix('$') {
        Some(name) if !name.is_empty() => Ok(name.to_string()),
        _ => Err(format!("`{word}` is not a $VAR")),
    }
}

impl FromStr for UserOp {
    type Err = String;

    fn from_str(text: &str) -> Result<UserOp, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let Some((&name, args)) = words.split_first() else {
            return Err(format!("an empty op (one of {OPS})"));
        };
        // (operands, optional operands) of each op: checked before any word is read.
        let arity = match name {
            "update" => (3, 1),
            "delete" | "lookup" | "create" | "drain" | "batch_delete" => (2, 0),
            "batch_update" => (3, 0),
            "close" | "batch_lookup" | "yield" => (1, 0),
            _ => return Err(format!("`{name}` is not an op (one of {OPS})")),
        };
        if args.len() < arity.0 || args.len() > arity.0 + arity.1 {
            let wanted = match arity {
                (n, 0) => format!("{n}"),
                (n, k) => format!("{n} to {}", n + k),
            };
            return Err(format!(
                "`{name}` takes {wanted} words after it, not {}",
                args.len()
            ));
        }
        let map = args[0].to_string();
        Ok(match name {
            "update" => UserOp::Update {
                map,
                key: key(args[1])?,
                value: args[2].parse()?,
                flags: match args.get(3).copied() {
                    None | Some("any") => UpdateFlags::Any,
                    Some("noexist") => UpdateFlags::NoExist,
                    Some("exist") => UpdateFlags::Exist,
                    Some(other) => {
                        return Err(format!("flags `{other}`: must be any, noexist or exist"))
                    }
                },
            },
            "delete" => UserOp::Delete {
                map,
                key: key(args[1])?,
            },
            "lookup" => UserOp::Lookup {
                map,
                key: key(args[1])?,
            },
            "create" => UserOp::Create {
                var: var(args[0])?,
                shape: args[1].to_string(),
            },
            "close" => UserOp::Close { var: var(args[0])? },
            "drain" => UserOp::Drain {
                var: var(args[0])?,
                key: key(args[1])?,
            },
            "batch_update" => UserOp::BatchUpdate {
                map,
                keys: keys(args[1])?,
                value: args[2].parse()?,
            },
            "batch_delete" => UserOp::BatchDelete {
                map,
                keys: keys(args[1])?,
            },
            "batch_lookup" => UserOp::BatchLookup { map },
            _ => UserOp::Yield(
                args[0]
                    .parse()
                    .map_err(|_| format!("yield takes a count, not `{}`", args[0]))?,
            ),
        })
    }
}

impl fmt::Display for UserOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |keys: &[u32]| {
            keys.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            UserOp::Update {
                map,
                key,
                value,
                flags,
            } => {
                write!(f, "update {map} {key} {value}")?;
                match flags {
                    UpdateFlags::Any => Ok(()),
                    UpdateFlags::NoExist => f.write_str(" noexist"),
                    UpdateFlags::Exist => f.write_str(" exist"),
                }
            }
            UserOp::Delete { map, key } => write!(f, "delete {map} {key}"),
            UserOp::Lookup { map, key } => write!(f, "lookup {map} {key}"),
            UserOp::Create { var, shape } => write!(f, "create ${var} {shape}"),
            UserOp::Close { var } => write!(f, "close ${var}"),
            UserOp::Drain { var, key } => write!(f, "drain ${var} {key}"),
            UserOp::BatchUpdate { map, keys, value } => {
                write!(f, "batch_update {map} {} {value}", list(keys))
            }
            UserOp::BatchDelete { map, keys } => write!(f, "batch_delete {map} {}", list(keys)),
            UserOp::BatchLookup { map } => write!(f, "batch_lookup {map}"),
            UserOp::Yield(n) => write!(f, "yield {n}"),
        }
    }
}

/// The TOML form: an op is a string.
impl TryFrom<String> for UserOp {
    type Error = String;

    fn try_from(text: String) -> Result<UserOp, String> {
        text.parse().map_err(|e| format!("op `{text}`: {e}"))
    }
}

impl From<UserOp> for String {
    fn from(op: UserOp) -> String {
        op.to_string()
    }
}

impl UserOp {
    /// The map operand (a name or `$VAR`), for the ops that have one.
    pub fn map(&self) -> Option<&str> {
        match self {
            UserOp::Update { map, .. }
            | UserOp::Delete { map, .. }
            | UserOp::Lookup { map, .. }
            | UserOp::BatchUpdate { map, .. }
            | UserOp::BatchDelete { map, .. }
            | UserOp::BatchLookup { map } => Some(map),
            _ => None,
        }
    }

    /// The value an update or batch update stores.
    pub fn value(&self) -> Option<&Value> {
        match self {
            UserOp::Update { value, .. } | UserOp::BatchUpdate { value, .. } => Some(value),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY_FORM: &[&str] = &[
        "update services 1 new:backends exist",
        "update services 1 7 noexist",
        "update $m 2 $inner",
        "update services 3 backends",
        "delete services 1",
        "lookup $m 4",
        "create $x backends",
        "close $x",
        "drain $x 0",
        "batch_update services 1,2,3 new:backends",
        "batch_delete services 4,5",
        "batch_lookup services",
        "yield 3",
    ];

    #[test]
    fn every_op_prints_back_as_the_words_it_was_parsed_from() {
        for text in EVERY_FORM {
            let op: UserOp = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(op.to_string(), *text);
            assert_eq!(op.to_string().parse::<UserOp>(), Ok(op));
        }
    }

    #[test]
    fn an_explicit_any_flag_is_the_default() {
        let op: UserOp = "update m 1 2 any".parse().unwrap();
        assert_eq!(op, "update m 1 2".parse().unwrap());
        assert!(matches!(
            op,
            UserOp::Update {
                flags: UpdateFlags::Any,
                ..
            }
        ));
    }

    #[test]
    fn values_are_told_apart_by_their_prefix() {
        assert_eq!("12".parse(), Ok(Value::Number(12)));
        assert_eq!("new:b".parse(), Ok(Value::New("b".into())));
        assert_eq!("$v".parse(), Ok(Value::Var("v".into())));
        assert_eq!("services".parse(), Ok(Value::Map("services".into())));
    }

    #[test]
    fn a_bad_op_names_the_word_that_is_wrong() {
        let cases = [
            ("", "empty op"),
            ("frob m 1", "`frob` is not an op"),
            ("delete m", "`delete` takes 2 words after it, not 1"),
            ("update m 1 2 any extra", "takes 3 to 4 words"),
            ("lookup m -1", "key `-1` is not a u32"),
            ("batch_delete m 1,x", "key `x` is not a u32"),
            ("update m 1 2 sometimes", "flags `sometimes`"),
            ("create x backends", "`x` is not a $VAR"),
            ("close $", "`$` is not a $VAR"),
            ("yield many", "yield takes a count, not `many`"),
        ];
        for (text, reason) in cases {
            let e = text.parse::<UserOp>().unwrap_err();
            assert!(e.contains(reason), "`{text}`: {e} (wanted {reason})");
        }
    }
}
