//! Where the BPF conformance suite is: one ordered lookup, used by every command, test and
//! example that reads the suite.
//!
//! The suite (github.com/Alan-Jowett/bpf_conformance) is data that is not ours, so it is not
//! copied into the repository. It is found, in this order, at:
//! 1. the directory a caller was given (a command's flag or argument);
//! 2. `$MIMIC_CONFORMANCE_DIR`;
//! 3. the git submodule `external/bpf_conformance` of the workspace, pinned to [`PINNED`];
//! 4. `../shared/conformance/bpf_conformance` beside the workspace (machines without access to
//!    the suite's host carry it there).
//!
//! A candidate counts only if it holds the suite: a `tests/` folder with `.data` files (an
//! uninitialised submodule is an empty directory). Each candidate may name the suite's root or
//! its `tests/` folder. The workspace is found from a starting directory upward (the first
//! ancestor whose `Cargo.toml` declares `[workspace]`): the current directory for commands, the
//! crate's manifest directory for tests, so nothing depends on where a machine keeps the clone.
//!
//! Invariant: [`find`] returns the suite's root, whose `tests/` holds at least one `.data` file.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// The environment variable naming the suite's directory.
pub const ENV: &str = "MIMIC_CONFORMANCE_DIR";
/// The submodule's path in the workspace.
pub const SUBMODULE: &str = "external/bpf_conformance";
/// The commit of the suite the submodule is pinned to.
pub const PINNED: &str = "f558566280d8e76c95a502cfd8014264d8668130";
/// The fallback beside the workspace: this path in the workspace's parent directory.
pub const BESIDE: &str = "shared/conformance/bpf_conformance";

/// No candidate holds the suite: what was tried, and how to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    pub tried: Vec<PathBuf>,
}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tried: Vec<String> = self.tried.iter().map(|p| p.display().to_string()).collect();
        write!(
            f,
            "conformance suite not found (tried: {}): run `git submodule update --init {SUBMODULE}` \
             (github.com/Alan-Jowett/bpf_conformance at {}), or set {ENV} to a checkout of it",
            if tried.is_empty() {
                "nothing".to_string()
            } else {
                tried.join(", ")
            },
            &PINNED[..12]
        )
    }
}

impl std::error::Error for NotFound {}

/// The suite's root if `dir` is the root or its `tests/` folder and holds `.data` files.
pub fn suite_root(dir: &Path) -> Option<PathBuf> {
    let has_data = |d: &Path| {
        std::fs::read_dir(d).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.path().extension().is_some_and(|x| x == "data"))
        })
    };
    if has_data(&dir.join("tests")) {
        return Some(dir.to_path_buf());
    }
    let is_tests = dir.file_name().is_some_and(|n| n == "tests");
    match dir.parent() {
        Some(parent) if is_tests && has_data(dir) => Some(parent.to_path_buf()),
        _ => None,
    }
}

/// The first ancestor of `start` (itself included) whose `Cargo.toml` declares a workspace.
pub fn workspace_root(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|dir| {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
        manifest
            .lines()
            .any(|line| line.trim() == "[workspace]")
            .then(|| dir.to_path_buf())
    })
}

/// The lookup, with the environment variable's value passed in (for tests).
pub fn find_with(
    given: Option<&Path>,
    env: Option<OsString>,
    start: &Path,
) -> Result<PathBuf, NotFound> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    candidates.extend(given.map(Path::to_path_buf));
    candidates.extend(env.filter(|v| !v.is_empty()).map(PathBuf::from));
    // `..` in `start` would make the workspace's parent a child of it: resolve it first.
    let start = std::fs::canonicalize(start).unwrap_or_else(|_| start.to_path_buf());
    if let Some(root) = workspace_root(&start) {
        candidates.push(root.join(SUBMODULE));
        candidates.push(root.parent().unwrap_or(&root).join(BESIDE));
    }
    // A directory given explicitly is the only one looked at: a typo must not silently run
    // another copy of the suite.
    if given.is_some() {
        candidates.truncate(1);
    }
    for dir in &candidates {
        if let Some(root) = suite_root(dir) {
            return Ok(root);
        }
    }
    Err(NotFound { tried: candidates })
}

/// The lookup from `start` (the current directory for a command, `CARGO_MANIFEST_DIR` for a
/// test), reading [`ENV`].
pub fn find(given: Option<&Path>, start: &Path) -> Result<PathBuf, NotFound> {
    find_with(given, std::env::var_os(ENV), start)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch workspace: `<tmp>/ws` with a `[workspace]` manifest, and helpers to lay out
    /// suites in it.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let base =
                std::env::temp_dir().join(format!("mimic-suite-dir-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&base);
            let ws = base.join("ws");
            std::fs::create_dir_all(ws.join("core/src")).unwrap();
            std::fs::write(ws.join("Cargo.toml"), "[workspace]\nmembers = [\"core\"]\n").unwrap();
            std::fs::write(ws.join("core/Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
            Scratch(base)
        }
        fn ws(&self) -> PathBuf {
            self.0.join("ws")
        }
        fn suite(&self, dir: &Path) -> PathBuf {
            std::fs::create_dir_all(dir.join("tests")).unwrap();
            std::fs::write(dir.join("tests/add.data"), "-- asm\nexit\n-- result\n0\n").unwrap();
            dir.to_path_buf()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_workspace_is_found_from_a_member_directory() {
        let s = Scratch::new("root");
        assert_eq!(workspace_root(&s.ws().join("core/src")), Some(s.ws()));
        assert_eq!(workspace_root(&s.0), None);
    }

    #[test]
    fn candidates_are_tried_in_order_and_an_empty_submodule_is_skipped() {
        let s = Scratch::new("order");
        let start = s.ws().join("core");
        // Nothing anywhere: the error names every candidate and how to get the suite.
        let err = find_with(None, None, &start).unwrap_err();
        assert_eq!(err.tried, vec![s.ws().join(SUBMODULE), s.0.join(BESIDE)]);
        let line = err.to_string();
        assert!(
            !line.contains('\n') && line.contains("git submodule update --init"),
            "{line}"
        );
        // The fallback beside the workspace.
        let beside = s.suite(&s.0.join("shared/conformance/bpf_conformance"));
        assert_eq!(find_with(None, None, &start), Ok(beside.clone()));
        // An uninitialised submodule (an empty directory) does not hide it.
        std::fs::create_dir_all(s.ws().join(SUBMODULE)).unwrap();
        assert_eq!(find_with(None, None, &start), Ok(beside));
        // An initialised submodule comes first.
        let sub = s.suite(&s.ws().join(SUBMODULE));
        assert_eq!(find_with(None, None, &start), Ok(sub));
        // The environment variable before both, and the suite's tests/ folder names its root.
        let env_suite = s.suite(&s.0.join("elsewhere"));
        let env = Some(OsString::from(env_suite.join("tests")));
        assert_eq!(find_with(None, env.clone(), &start), Ok(env_suite));
        // A given directory before everything, and it alone.
        let given = s.suite(&s.0.join("given"));
        assert_eq!(find_with(Some(&given), env.clone(), &start), Ok(given));
        let typo = s.0.join("givne");
        let err = find_with(Some(&typo), env, &start).unwrap_err();
        assert_eq!(err.tried, vec![typo]);
    }

    #[test]
    fn a_directory_without_data_files_is_not_the_suite() {
        let s = Scratch::new("empty");
        std::fs::create_dir_all(s.0.join("x/tests")).unwrap();
        std::fs::write(s.0.join("x/tests/README"), "no data").unwrap();
        assert_eq!(suite_root(&s.0.join("x")), None);
        assert_eq!(suite_root(&s.0.join("x/tests")), None);
    }
}
