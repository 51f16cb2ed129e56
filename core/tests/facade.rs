//! Architecture invariants read from the core's parsed source (`syn`), so that no spelling of a
//! path slips past: `use std::{sync::Arc}`, `use core::sync::atomic as a`, a path written
//! inline (`std::thread::spawn(..)`) all count.
//!
//! * Only `core/src/sync` names `std::sync`, `core::sync`, `alloc::sync`, `std::thread`, `loom`
//!   or `shuttle`: everything else reaches concurrency through the `Platform` facade, which is
//!   what lets one piece of code run on std, under loom and under shuttle.

mod support;

use std::path::Path;

/// Path prefixes only the facade may name.
const FORBIDDEN: [&[&str]; 6] = [
    &["std", "sync"],
    &["core", "sync"],
    &["alloc", "sync"],
    &["std", "thread"],
    &["loom"],
    &["shuttle"],
];

/// The forbidden paths `source` names, as `a::b::c`.
fn forbidden_paths(source: &str) -> Result<Vec<String>, syn::Error> {
    let mut out: Vec<String> = support::paths(source, false)?
        .into_iter()
        .filter(|p| {
            FORBIDDEN
                .iter()
                .any(|f| p.len() >= f.len() && p.iter().zip(f.iter()).all(|(a, b)| a == b))
        })
        .map(|p| p.join("::"))
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

#[test]
fn facade_is_the_only_door() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let sync = src.join("sync");
    let mut files = Vec::new();
    support::rust_files(&src, &mut files);
    assert!(
        files.len() > 3,
        "found only {} source files under {}",
        files.len(),
        src.display()
    );
    let mut leaks = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&sync)) {
        let source = std::fs::read_to_string(file).expect("readable source");
        let found = forbidden_paths(&source)
            .unwrap_or_else(|e| panic!("{}: does not parse: {e}", file.display()));
        for path in found {
            leaks.push(format!("{}: {path}", file.display()));
        }
    }
    assert!(
        leaks.is_empty(),
        "sync primitives named outside core/src/sync:\n{}",
        leaks.join("\n")
    );
}

#[test]
fn the_scan_sees_every_spelling_and_ignores_comments() {
    let found = |s: &str| forbidden_paths(s).expect("parses");
    assert_eq!(found("use std::sync::Arc;"), ["std::sync::Arc"]);
    assert_eq!(found("use std::{sync::Arc, fmt};"), ["std::sync::Arc"]);
    assert_eq!(
        found("use core::sync::atomic as a;"),
        ["core::sync::atomic"]
    );
    assert_eq!(
        found("fn f() { std::thread::spawn(|| ()); }"),
        ["std::thread::spawn"]
    );
    assert_eq!(found("use shuttle::{self};"), ["shuttle"]);
    assert_eq!(found("extern crate loom;"), ["loom"]);
    assert!(found("// std::thread in prose\n/// use std::sync::Arc;\nfn f() {}").is_empty());
    assert!(found("use std::fmt; use crate::sync::Platform;").is_empty());
}
