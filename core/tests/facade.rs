//! Architecture invariant: only `core/src/sync` may name `std::sync`, `std::thread`, `loom` or
//! `shuttle`. Everything else reaches concurrency through the `Platform` facade, which is what
//! lets one piece of code run on std, under loom and under shuttle.

use std::fs;
use std::path::{Path, PathBuf};

const FORBIDDEN: [&str; 4] = ["std::sync", "std::thread", "loom::", "shuttle::"];

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

/// Finds the forbidden names in code, skipping comments (doc comments may talk about them).
fn offending_lines(source: &str) -> Vec<(usize, String)> {
    source
        .lines()
        .enumerate()
        .filter_map(|(number, line)| {
            let code = line.split("//").next().unwrap_or("");
            FORBIDDEN
                .iter()
                .any(|name| code.contains(name))
                .then(|| (number + 1, line.trim().to_string()))
        })
        .collect()
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
        for (line, text) in offending_lines(&source) {
            leaks.push(format!("{}:{line}: {text}", file.display()));
        }
    }
    assert!(
        leaks.is_empty(),
        "sync primitives used outside core/src/sync:\n{}",
        leaks.join("\n")
    );
}

#[test]
fn the_scan_sees_an_import_and_ignores_a_comment() {
    let found = offending_lines("use std::sync::Arc;\n// std::thread in prose\nlet x = 1;");
    assert_eq!(found, vec![(1, "use std::sync::Arc;".to_string())]);
}
