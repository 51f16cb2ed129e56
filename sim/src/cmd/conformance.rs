//! `mimic conformance DIR [--json]` and `mimic conformance-plugin [MEMORY_HEX]`.
use clap::Args;
use mimic_core::bpf::conformance::{plugin as run_plugin, run_dir};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ConformanceArgs {
    /// The suite's root (holding tests/) or a directory of .data files.
    pub dir: PathBuf,
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

pub fn run(args: ConformanceArgs) -> ExitCode {
    let summary = match run_dir(&args.dir) {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("mimic conformance: cannot read {}: {e}", args.dir.display());
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
