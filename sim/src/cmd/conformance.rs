//! `mimic conformance [DIR] [--json] [--locate]` and `mimic conformance-plugin [MEMORY_HEX]`.
use clap::Args;
use mimic_core::bpf::conformance::{plugin as run_plugin, run_dir};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ConformanceArgs {
    /// The suite's root (holding tests/) or a directory of .data files; default: the suite as
    /// found in order: $MIMIC_CONFORMANCE_DIR, the submodule external/bpf_conformance, then
    /// ../shared/conformance/bpf_conformance beside the workspace.
    pub dir: Option<PathBuf>,
    /// Print where the suite is (or the one line saying how to get it, exit 1), and exit.
    #[arg(long)]
    pub locate: bool,
    /// Print a JSON object with `passed`, `failed`, `skipped` and `failures`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PluginArgs {
    /// The input memory as hex bytes (the first argument that is not a `--flag`; optional).
    /// Flags the suite's runner may pass (`--debug` ...) are accepted and ignored.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

impl PluginArgs {
    fn memory(&self) -> &str {
        self.args
            .iter()
            .find(|arg| !arg.starts_with("--"))
            .map_or("", String::as_str)
    }
}

/// The suite for a command: `given` if it is one (a directory of `.data` files also counts,
/// for `mimic conformance DIR`), else the lookup of `mimic_core::bpf::suite_dir` from the
/// current directory.
pub fn locate(given: Option<&std::path::Path>) -> Result<PathBuf, String> {
    let here = std::env::current_dir().map_err(|e| format!("current directory: {e}"))?;
    mimic_core::bpf::suite_dir::find(given, &here).map_err(|e| e.to_string())
}

pub fn run(args: ConformanceArgs) -> ExitCode {
    let dir = match (&args.dir, locate(args.dir.as_deref())) {
        (_, Ok(root)) => root,
        // Any directory of .data files runs as given.
        (Some(dir), Err(_)) if !args.locate => dir.clone(),
        (_, Err(why)) => {
            eprintln!("mimic conformance: {why}");
            return ExitCode::from(if args.locate { 1 } else { 2 });
        }
    };
    if args.locate {
        println!("{}", dir.display());
        return ExitCode::SUCCESS;
    }
    let summary = match run_dir(&dir) {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("mimic conformance: cannot read {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    if args.json {
        let failures: Vec<_> = summary
            .failures
            .iter()
            .map(|(file, message)| serde_json::json!({ "file": file, "message": message }))
            .collect();
        let out = serde_json::json!({
            "passed": summary.passed,
            "failed": summary.failed,
            "skipped": summary.skipped,
            "failures": failures,
        });
        println!("{out}");
    } else {
        for (file, message) in &summary.failures {
            println!("FAIL {file}: {message}");
        }
        for (file, reason) in &summary.skips {
            println!("SKIP {file}: {reason}");
        }
        println!(
            "passed {}, failed {}, skipped {}",
            summary.passed, summary.failed, summary.skipped
        );
    }
    if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub fn plugin(args: PluginArgs) -> ExitCode {
    let mut program = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut program) {
        eprintln!("mimic conformance-plugin: cannot read stdin: {e}");
        return ExitCode::from(2);
    }
    match run_plugin(&program, args.memory()) {
        Ok(r0) => {
            println!("{r0:x}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
