//! The core's layering, as lib.rs and ARCHITECTURE.md state it, checked on the parsed source
//! (`crate::` paths of product code; test modules may look at anything):
//!
//! * the chain `sync` → `isa` → `arena` → `rcu` → `maps` → `sys` → `bpf`: each names none of
//!   the layers after it (arrows point down: the maps do not reach into the verifier, the
//!   syscall layer does not reach into the programs);
//! * `isa` names nothing of the crate (instructions are built without the executor);
//! * the reference model (`model`) names none of the implementation it checks (`maps`,
//!   `world`, `sys`, `rcu`, `arena`, `lock`).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const CHAIN: [&str; 7] = ["sync", "isa", "arena", "rcu", "maps", "sys", "bpf"];

/// The top-level module a file of `core/src` belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// (module, file, the crate modules it names).
fn imports() -> Vec<(String, PathBuf, BTreeSet<String>)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = support::product_files(&src);
    assert!(
        files.len() > 50,
        "only {} files under {}",
        files.len(),
        src.display()
    );
    files
        .into_iter()
        .map(|file| {
            let module = module_of(&src, &file);
            let named = support::product_paths(&file)
                .into_iter()
                .filter(|p| p.len() >= 2 && (p[0] == "crate" || p[0] == "mimic_core"))
                .map(|p| p[1].clone())
                .filter(|m| *m != module)
                .collect();
            (module, file, named)
        })
        .collect()
}

/// `rule(module, named)` is an error message when `module` may not name `named`.
fn violations(rule: impl Fn(&str, &str) -> Option<String>) -> Vec<String> {
    let mut out = Vec::new();
    for (module, file, named) in imports() {
        for n in &named {
            if let Some(why) = rule(&module, n) {
                out.push(format!("{}: names crate::{n} ({why})", file.display()));
            }
        }
    }
    out
}

#[test]
fn arrows_point_down_the_chain() {
    let rank = |m: &str| CHAIN.iter().position(|c| *c == m);
    let bad = violations(|module, named| match (rank(module), rank(named)) {
        (Some(i), Some(j)) if j > i => Some(format!("{module} is above {named}")),
        _ => None,
    });
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn isa_is_a_leaf() {
    let bad = violations(|module, _| (module == "isa").then(|| "isa names nothing".into()));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn the_reference_model_shares_no_code_with_what_it_checks() {
    const IMPLEMENTATION: [&str; 6] = ["maps", "world", "sys", "rcu", "arena", "lock"];
    let bad = violations(|module, named| {
        (module == "model" && IMPLEMENTATION.contains(&named))
            .then(|| "the model is the independent reference".into())
    });
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn the_rules_see_a_violation() {
    // What a file of maps/ naming the verifier looks like to the scan.
    let found = support::paths(
        "use crate::bpf::helpers::DirectCall; #[cfg(test)] mod t { use crate::bpf::print; }",
        true,
    )
    .expect("parses");
    assert_eq!(found, vec![vec!["crate", "bpf", "helpers", "DirectCall"]]);
}
