//! Architecture invariants read from the core's parsed source (`syn`), so that no spelling of a
//! path slips past: `use std::{sync::Arc}`, `use core::sync::atomic as a`, a path written
//! inline (`std::thread::spawn(..)`) all count.
//!
//! * Only `core/src/sync` names `std::sync`, `core::sync`, `alloc::sync`, `std::thread`, `loom`
//!   or `shuttle`: everything else reaches concurrency through the `Platform` facade, which is
//!   what lets one piece of code run on std, under loom and under shuttle.

use std::fs;
use std::path::{Path, PathBuf};
use syn::visit::Visit;

/// Path prefixes only the facade may name.
const FORBIDDEN: [&[&str]; 6] = [
    &["std", "sync"],
    &["core", "sync"],
    &["alloc", "sync"],
    &["std", "thread"],
    &["loom"],
    &["shuttle"],
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// Every path a file names: each leaf of its `use` trees (with the prefix the tree gives it)
/// and every path in code, as segment lists.
#[derive(Default)]
struct Paths(Vec<Vec<String>>);

impl Paths {
    fn tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.leaf(prefix, &n.ident.to_string()),
            syn::UseTree::Rename(r) => self.leaf(prefix, &r.ident.to_string()),
            syn::UseTree::Glob(_) => self.leaf(prefix, "*"),
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    self.tree(prefix, item);
                }
            }
        }
    }
    fn leaf(&mut self, prefix: &[String], last: &str) {
        let mut path = prefix.to_vec();
        if last != "self" {
            path.push(last.to_string());
        }
        self.0.push(path);
    }
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.tree(&mut Vec::new(), &item.tree);
    }
    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.0
            .push(path.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, path);
    }
    fn visit_item_extern_crate(&mut self, item: &'ast syn::ItemExternCrate) {
        self.0.push(vec![item.ident.to_string()]);
    }
}

/// The forbidden paths `source` names, as `a::b::c`.
fn forbidden_paths(source: &str) -> Result<Vec<String>, syn::Error> {
    let file = syn::parse_file(source)?;
    let mut paths = Paths::default();
    paths.visit_file(&file);
    let mut out: Vec<String> = paths
        .0
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
    rust_files(&src, &mut files);
    assert!(
        files.len() > 3,
        "found only {} source files under {}",
        files.len(),
        src.display()
    );
    let mut leaks = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&sync)) {
        let source = fs::read_to_string(file).expect("readable source");
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
