//! The BPF conformance suite's `.data` files: parsing, running one case on the executor, and
//! running a directory. Shared by the `conformance` test and the `mimic conformance` command.
//!
//! A file has sections opened by lines starting with `--`: `asm`, `raw` (replaces the asm),
//! `mem` (input memory, hex bytes), `result` (expected `r0`, the last line wins), `error`
//! (expected error text: the case must fail and our message must contain it, ignoring case),
//! and the ignored `c` and `no register offset`. Any other section skips the file, and so does a
//! file with neither `result` nor `error`. `#` starts a comment anywhere on a line (outside the
//! ignored sections).

use super::asm::assemble;
use super::exec::{Config, NoMaps, NoObserver, Program, Vm};
use crate::isa::{self, Insn};
use std::path::{Path, PathBuf};

/// One parsed `.data` file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Case {
    pub asm: Option<String>,
    /// `-- raw`: instructions given directly.
    pub raw: Option<Vec<Insn>>,
    pub mem: Vec<u8>,
    pub result: Option<u64>,
    /// `-- error`: the expected error text (may be empty: any error).
    pub error: Option<String>,
}

/// A file is either a case or skipped for a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Case(Case),
    Skip(String),
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

fn parse_u64(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).ok();
    }
    if let Some(negative) = text.strip_prefix('-') {
        return negative.parse::<u64>().ok().map(|v| v.wrapping_neg());
    }
    text.parse::<u64>().ok()
}

/// Whitespace-separated hex bytes (`aa bb 11`), or one run of hex digits (`aabb11`).
pub fn parse_hex_bytes(text: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    for word in text.split_whitespace() {
        if word.len() % 2 != 0 {
            return Err(format!("odd number of hex digits in '{word}'"));
        }
        for pair in word.as_bytes().chunks(2) {
            let pair = std::str::from_utf8(pair).map_err(|_| format!("non-ASCII in '{word}'"))?;
            bytes.push(
                u8::from_str_radix(pair, 16)
                    .map_err(|_| format!("bad hex byte '{pair}' in '{word}'"))?,
            );
        }
    }
    Ok(bytes)
}

/// Parses the text of a `.data` file.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut case = Case::default();
    let mut section: Option<String> = None;
    let mut asm = String::new();
    let mut has_asm = false;
    let mut raw: Vec<Insn> = Vec::new();
    let mut has_raw = false;
    let mut error = String::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        // The asm text keeps one line per file line, so assembler errors carry file line numbers.
        if section.as_deref() != Some("asm") || line.trim_start().starts_with("--") {
            asm.push('\n');
        }
        if let Some(name) = line.trim_start().strip_prefix("--") {
            let name = name.trim().to_string();
            match name.as_str() {
                "asm" => has_asm = true,
                "raw" => has_raw = true,
                "error" => case.error = Some(String::new()),
                "mem" | "result" | "c" | "no register offset" => {}
                other => {
                    return Ok(Parsed::Skip(format!(
                        "unknown section '-- {other}' at line {number}"
                    )))
                }
            }
            section = Some(name);
            continue;
        }
        let Some(section) = section.as_deref() else {
            continue;
        };
        match section {
            "asm" => {
                asm.push_str(line);
                asm.push('\n');
            }
            "c" | "no register offset" => {}
            _ => {
                let content = line.split('#').next().unwrap_or("").trim();
                if content.is_empty() {
                    continue;
                }
                match section {
                    "mem" => case.mem.extend(
                        parse_hex_bytes(content).map_err(|e| format!("line {number}: {e}"))?,
                    ),
                    "result" => {
                        case.result = Some(
                            parse_u64(content)
                                .ok_or_else(|| format!("line {number}: bad result '{content}'"))?,
                        )
                    }
                    "raw" => raw.extend(
                        parse_raw_line(content).map_err(|e| format!("line {number}: {e}"))?,
                    ),
                    "error" => {
                        if !error.is_empty() {
                            error.push('\n');
                        }
                        error.push_str(content);
                    }
                    _ => {}
                }
            }
        }
    }
    if case.error.is_some() {
        case.error = Some(error);
    }
    if case.result.is_none() && case.error.is_none() {
        return Ok(Parsed::Skip(
            "neither '-- result' nor '-- error'".to_string(),
        ));
    }
    if has_raw {
        case.raw = Some(raw);
    } else if has_asm {
        case.asm = Some(asm);
    }
    Ok(Parsed::Case(case))
}

/// A `-- raw` line: one 64-bit instruction (`0x…`), or its 8 bytes in hex.
fn parse_raw_line(content: &str) -> Result<Vec<Insn>, String> {
    let words: Vec<&str> = content.split_whitespace().collect();
    if words.len() == 1 {
        let value = parse_u64(words[0])
            .or_else(|| u64::from_str_radix(words[0], 16).ok())
            .ok_or_else(|| format!("bad raw instruction '{content}'"))?;
        return Ok(vec![Insn::from_u64(value)]);
    }
    let bytes = parse_hex_bytes(content)?;
    isa::from_bytes(&bytes).map_err(|e| e.to_string())
}

/// The program of a case: assembled, or the raw instructions.
pub fn program(case: &Case) -> Result<Vec<Insn>, String> {
    match (&case.raw, &case.asm) {
        (Some(raw), _) => Ok(raw.clone()),
        (None, Some(asm)) => assemble(asm).map_err(|e| format!("asm {e}")),
        (None, None) => Err("no program ('-- asm' or '-- raw')".to_string()),
    }
}

/// Assembles (or takes) the program, decodes it and runs it on the case's memory.
pub fn execute(case: &Case) -> Result<u64, String> {
    let insns = program(case)?;
    let program = Program::new(&insns).map_err(|e| format!("decode {e}"))?;
    let mut mem = case.mem.clone();
    run(&program, &mut mem).map_err(|e| format!("exec {e}"))
}

/// Runs a program as the suite's plugins do: no maps, helper 5 the identity.
fn run(program: &Program, mem: &mut [u8]) -> Result<u64, super::exec::ExecError> {
    let mut vm = Vm::new(Config {
        conformance: true,
        ..Config::default()
    });
    vm.run(program, mem, &mut NoMaps, &mut NoObserver)
}

/// Runs one case against its expectation.
pub fn run_case(case: &Case) -> Outcome {
    let got = execute(case);
    match (&case.error, got) {
        (Some(expected), Err(message)) => {
            if message.to_lowercase().contains(&expected.to_lowercase()) {
                Outcome::Pass
            } else {
                Outcome::Fail(format!(
                    "expected error '{expected}', got error '{message}'"
                ))
            }
        }
        (Some(expected), Ok(r0)) => {
            Outcome::Fail(format!("expected error '{expected}', got r0 = {r0:#x}"))
        }
        (None, Err(message)) => Outcome::Fail(message),
        (None, Ok(r0)) => match case.result {
            Some(expected) if expected == r0 => Outcome::Pass,
            Some(expected) => Outcome::Fail(format!("expected r0 = {expected:#x}, got {r0:#x}")),
            None => Outcome::Skip("no expected result".to_string()),
        },
    }
}

/// Parses and runs one file.
pub fn run_file(path: &Path) -> Outcome {
    match std::fs::read_to_string(path) {
        Err(e) => Outcome::Fail(format!("cannot read: {e}")),
        Ok(text) => match parse(&text) {
            Err(e) => Outcome::Fail(format!("cannot parse: {e}")),
            Ok(Parsed::Skip(reason)) => Outcome::Skip(reason),
            Ok(Parsed::Case(case)) => run_case(&case),
        },
    }
}

/// Totals of a directory run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// `(file name, message)` of every failure, in file-name order.
    pub failures: Vec<(String, String)>,
    /// `(file name, reason)` of every skip.
    pub skips: Vec<(String, String)>,
}

/// The `.data` files of `dir`, sorted by name.
pub fn data_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "data"))
        .collect();
    files.sort();
    Ok(files)
}

/// Runs every `.data` file of `dir`. A directory holding a `tests/` folder (the suite's root)
/// runs that folder.
pub fn run_dir(dir: &Path) -> std::io::Result<Summary> {
    let dir = if dir.join("tests").is_dir() {
        dir.join("tests")
    } else {
        dir.to_path_buf()
    };
    let mut summary = Summary::default();
    for path in data_files(&dir)? {
        let name = path
            .file_name()
            .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
        match run_file(&path) {
            Outcome::Pass => summary.passed += 1,
            Outcome::Fail(message) => {
                summary.failed += 1;
                summary.failures.push((name, message));
            }
            Outcome::Skip(reason) => {
                summary.skipped += 1;
                summary.skips.push((name, reason));
            }
        }
    }
    Ok(summary)
}

/// The suite's plugin protocol: the program as hex bytes, the memory as hex bytes (may be
/// empty); returns `r0` or the error.
pub fn plugin(program_hex: &str, memory_hex: &str) -> Result<u64, String> {
    let bytes = parse_hex_bytes(program_hex)?;
    let insns = isa::from_bytes(&bytes).map_err(|e| e.to_string())?;
    let program = Program::new(&insns).map_err(|e| e.to_string())?;
    let mut mem = parse_hex_bytes(memory_hex)?;
    run(&program, &mut mem).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_comments_and_the_last_result() {
        let text = "# header\n-- asm\nmov %r0, 1 # one\nexit\n-- mem\naa bb\n01\n-- result\n0x5\n7\n-- c\nint x; // -- not a section\n";
        let Parsed::Case(case) = parse(text).expect("parses") else {
            panic!("not skipped")
        };
        assert_eq!(case.mem, vec![0xaa, 0xbb, 0x01]);
        assert_eq!(case.result, Some(7), "the last result line wins");
        assert_eq!(
            run_case(&case),
            Outcome::Fail("expected r0 = 0x7, got 0x1".to_string())
        );
    }

    #[test]
    fn raw_sections_take_words_or_bytes_and_unknown_sections_skip() {
        let text = "-- raw\n0x00000001000000b7\n95 00 00 00 00 00 00 00\n-- result\n1\n";
        let Parsed::Case(case) = parse(text).expect("parses") else {
            panic!("not skipped")
        };
        assert_eq!(run_case(&case), Outcome::Pass);
        assert!(matches!(
            parse("-- asm\nexit\n-- weird\n-- result\n0"),
            Ok(Parsed::Skip(_))
        ));
        assert!(
            matches!(parse("-- asm\nexit\n"), Ok(Parsed::Skip(_))),
            "no result, no error"
        );
    }

    #[test]
    fn expected_errors_must_happen_and_match() {
        let case = |asm: &str, error: &str| Case {
            asm: Some(asm.into()),
            error: Some(error.into()),
            ..Case::default()
        };
        assert_eq!(
            run_case(&case("or %r0, %r50\nexit", "Invalid register")),
            Outcome::Pass
        );
        assert!(
            matches!(
                run_case(&case("mov %r0, 0\nexit", "Invalid")),
                Outcome::Fail(_)
            ),
            "no error happened"
        );
    }

    #[test]
    fn plugin_runs_hex_programs_on_hex_memory() {
        // ldxb r0, [r1+1]; exit
        assert_eq!(
            plugin("7110010000000000 9500000000000000", "aa bb"),
            Ok(0xbb)
        );
        assert!(plugin("71100100000000", "").is_err(), "truncated program");
        assert!(
            plugin("7110010000000000", "").is_err(),
            "no exit: falls off or reads out of bounds"
        );
    }
}
