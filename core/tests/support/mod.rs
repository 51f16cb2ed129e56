//! Reading the core's own source for the architecture tests: every `.rs` file under a
//! folder, and every path a file names (its `use` trees' leaves with their prefixes, and every
//! path in code), parsed by `syn` so that no spelling slips past; for the layering rules,
//! without the items under `#[cfg(test)]` (tests may look at anything).

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use syn::visit::Visit;

pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
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
pub struct Paths {
    pub found: Vec<Vec<String>>,
    /// Leave out items under `#[cfg(test)]`.
    pub skip_tests: bool,
}

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
        self.found.push(path);
    }
}

fn cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        _ => &[],
    }
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if !(self.skip_tests && cfg_test(item_attrs(item))) {
            syn::visit::visit_item(self, item);
        }
    }
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.tree(&mut Vec::new(), &item.tree);
    }
    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.found
            .push(path.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, path);
    }
    fn visit_item_extern_crate(&mut self, item: &'ast syn::ItemExternCrate) {
        self.found.push(vec![item.ident.to_string()]);
    }
}

/// Every path `source` names (outside test code when `skip_tests`), as segment lists.
pub fn paths(source: &str, skip_tests: bool) -> Result<Vec<Vec<String>>, syn::Error> {
    let file = syn::parse_file(source)?;
    let mut paths = Paths {
        found: Vec::new(),
        skip_tests,
    };
    paths.visit_file(&file);
    Ok(paths.found)
}

/// The product's source files under `dir` (test files, `tests.rs`, left out).
pub fn product_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    files.retain(|f| f.file_stem().is_none_or(|s| s != "tests"));
    files
}

/// The paths product code in `file` names; panics with its name when it does not parse.
pub fn product_paths(file: &Path) -> Vec<Vec<String>> {
    let source = fs::read_to_string(file).expect("readable source");
    paths(&source, true).unwrap_or_else(|e| panic!("{}: does not parse: {e}", file.display()))
}
