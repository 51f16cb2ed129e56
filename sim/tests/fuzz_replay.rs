//! `mimic fuzz-replay`: crash files built for a mutant replay as crashes naming the mutant's
//! reason (exit 1) and as clean runs on the correct core (exit 0); bad input is exit 2 with a
//! message, never a panic. Runs the built `mimic` binary, as a user would.

mod fuzz_cases;

use fuzz_cases::{encode_checked, find_map_ops_crash, inner_read};
use mimic_core::mutants::{Mutant, Mutants};
use std::path::PathBuf;
use std::process::Command;

/// Where a test's input files go (one folder per test, under cargo's target dir).
fn scratch(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz_replay-{test}"));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs `mimic fuzz-replay TARGET FILE [extra]` with `MIMIC_MUTANTS` set to `mutants`;
/// returns (exit code, stdout, stderr).
fn fuzz_replay(
    target: &str,
    file: &PathBuf,
    mutants: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mimic"))
        .arg("fuzz-replay")
        .arg(target)
        .arg(file)
        .args(extra)
        .env("MIMIC_MUTANTS", mutants)
        .env_remove("MIMIC_FUZZ_KERNEL")
        .output()
        .expect("run mimic");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or("")
}

/// A verify_exec crash file for `mutant` replays as that crash, with the readable parts, and
/// as no crash on the correct core.
fn verify_exec_file_replays(
    name: &str,
    case: &mimic_sim::fuzz::verify_exec::Case,
    mutant: Mutant,
    reason: &str,
) {
    let file = scratch(name).join("crash");
    std::fs::write(&file, encode_checked(case)).expect("write crash file");

    let (code, out, err) = fuzz_replay("verify_exec", &file, mutant.id(), &[]);
    assert_eq!(
        code, 1,
        "{mutant}: exit code of a crash\nstdout:\n{out}\nstderr:\n{err}"
    );
    let last = last_line(&out);
    assert!(
        last.starts_with("crash reproduced: ") && last.contains(reason),
        "{mutant}: last line should name the reason `{reason}`: {last}\n{out}"
    );
    for part in [
        "== map set-up ==",
        "array_of_maps",
        "== program (",
        "call bpf_map_lookup_elem#1",
        "verdict: accepted",
        "== fixed-up program (",
        "== run after fixups ==",
        &format!("mutants: {}", mutant.id()),
    ] {
        assert!(
            out.contains(part),
            "{mutant}: the replay lacks `{part}`:\n{out}"
        );
    }

    let (code, out, err) = fuzz_replay("verify_exec", &file, "", &[]);
    assert_eq!(
        code, 0,
        "correct core: exit code\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert!(
        last_line(&out).starts_with("no crash: "),
        "correct core: {}\n{out}",
        last_line(&out)
    );
}

#[test]
fn inline_dynamic_inner_crash_file_replays_as_an_out_of_bounds_access() {
    // BPF_F_INNER_MAP template of 8, inner array of 4, key 6: the inlined lookup reads past it.
    verify_exec_file_replays(
        "inline_dynamic_inner",
        &inner_read(true, 0, 6),
        Mutant::InlineDynamicInner,
        "out of bounds",
    );
}

#[test]
fn meta_elem_size_zero_crash_file_replays_as_a_disagreement() {
    verify_exec_file_replays(
        "meta_elem_size_zero",
        &inner_read(false, 1, 3),
        Mutant::MetaElemSizeZero,
        "disagree",
    );
}

#[test]
fn out_of_bounds_replay_names_the_failing_instruction_and_the_original() {
    let file = scratch("failing_access").join("crash");
    std::fs::write(&file, encode_checked(&inner_read(true, 0, 6))).expect("write crash file");
    let (code, out, _) = fuzz_replay("verify_exec", &file, "inline_dynamic_inner", &[]);
    assert_eq!(code, 1, "{out}");
    let run = out
        .split("== run after fixups ==")
        .nth(1)
        .unwrap_or_else(|| panic!("no run section:\n{out}"));
    assert!(
        run.contains("FAILED at insn") && run.contains("out of bounds"),
        "the run after fixups should show the failing access:\n{run}"
    );
    assert!(
        run.contains("rewritten from original insn"),
        "the failing pc should map back to the verified program:\n{run}"
    );
}

#[test]
fn map_ops_crash_file_for_meta_ignores_max_entries_replays_the_first_difference() {
    let mutant = Mutant::MetaIgnoresMaxEntries;
    let (data, why) = find_map_ops_crash(Mutants::only(mutant), 20_000, 192)
        .unwrap_or_else(|| panic!("no map_ops input in the search crashes with {mutant}"));
    let file = scratch("map_ops").join("crash");
    std::fs::write(&file, &data).expect("write crash file");

    let (code, out, err) = fuzz_replay("map_ops", &file, mutant.id(), &[]);
    assert_eq!(
        code, 1,
        "exit code of a crash\nstdout:\n{out}\nstderr:\n{err}"
    );
    let first_line = why.lines().next().unwrap_or("");
    assert!(
        last_line(&out).starts_with(&format!("crash reproduced: {first_line}")),
        "the replay's reason is the target's ({first_line}): {}",
        last_line(&out)
    );
    assert!(
        last_line(&out).contains("runs diverge at op #"),
        "the reason names the op: {}",
        last_line(&out)
    );
    assert!(
        out.contains("<-- differs"),
        "the op listing marks the difference:\n{out}"
    );
    let first = out
        .split("== first difference ==")
        .nth(1)
        .unwrap_or_else(|| panic!("no first-difference section:\n{out}"));
    assert!(
        first.trim_start().starts_with("runs diverge at"),
        "first difference: {first}"
    );

    let (code, out, _) = fuzz_replay("map_ops", &file, "", &[]);
    assert_eq!(code, 0, "correct core:\n{out}");
    assert!(last_line(&out).starts_with("no crash: "), "{out}");
}

#[test]
fn json_report_carries_the_crash_reason() {
    let file = scratch("json").join("crash");
    std::fs::write(&file, encode_checked(&inner_read(true, 0, 6))).expect("write crash file");
    let (code, out, _) = fuzz_replay("verify_exec", &file, "inline_dynamic_inner", &["--json"]);
    assert_eq!(code, 1, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(json["target"], "verify_exec");
    let reason = json["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("out of bounds"), "reason: {reason}");
    assert!(
        json["sections"].as_array().is_some_and(|s| s.len() >= 6),
        "sections: {}",
        json["sections"]
    );
}

#[test]
fn mutants_flag_overrides_the_environment() {
    let file = scratch("flag").join("crash");
    std::fs::write(&file, encode_checked(&inner_read(true, 0, 6))).expect("write crash file");
    let (code, out, _) = fuzz_replay(
        "verify_exec",
        &file,
        "",
        &["--mutants", "inline_dynamic_inner"],
    );
    assert_eq!(code, 1, "--mutants should switch the mutant on:\n{out}");
}

#[test]
fn bad_input_is_exit_2_with_a_message() {
    let dir = scratch("bad");
    let file = dir.join("input");
    std::fs::write(&file, [0u8; 4]).expect("write input");
    let cases: [(&str, PathBuf, &str, &str); 3] = [
        (
            "no_such_target",
            file.clone(),
            "",
            "unknown fuzz target `no_such_target`",
        ),
        ("verify_exec", dir.join("missing"), "", "missing"),
        ("map_ops", file.clone(), "no_such_mutant", "MIMIC_MUTANTS"),
    ];
    for (target, path, mutants, expected) in cases {
        let (code, out, err) = fuzz_replay(target, &path, mutants, &[]);
        assert_eq!(
            code,
            2,
            "{target} {}: exit code\n{out}\n{err}",
            path.display()
        );
        assert!(
            err.contains(expected) && !err.contains("panicked"),
            "{target}: stderr should say `{expected}` without a panic: {err}"
        );
    }
}

#[test]
fn every_target_replays_short_and_empty_inputs_without_crashing() {
    let dir = scratch("short");
    for (i, data) in [&b""[..], &[0u8][..], &[7u8; 40][..]]
        .into_iter()
        .enumerate()
    {
        let file = dir.join(format!("input-{i}"));
        std::fs::write(&file, data).expect("write input");
        for target in mimic_sim::fuzz::replay::TARGETS {
            let (code, out, err) = fuzz_replay(target, &file, "", &[]);
            assert_eq!(
                code,
                0,
                "{target} on {} bytes should not crash:\n{out}\n{err}",
                data.len()
            );
            assert!(last_line(&out).starts_with("no crash: "), "{target}: {out}");
        }
    }
}

#[test]
fn sim_schedule_crash_file_for_meta_ignores_max_entries_replays_the_oracle_failure() {
    let mutant = Mutant::MetaIgnoresMaxEntries;
    let scenarios = mimic_sim::sim::scenario::Scenario::builtins();
    let index = scenarios
        .iter()
        .position(|s| s.name == "fixed_inner_size")
        .expect("built-in scenario fixed_inner_size");
    let first = u8::try_from(index).expect("fewer than 256 built-ins");
    let mut state = 0x7363_6865_6475_6c65u64;
    let found = (0..200).find_map(|_| {
        let mut data = vec![first];
        data.extend(fuzz_cases::pseudo_random(&mut state, 256));
        let on = fuzz_cases::panic_of(|| {
            mimic_sim::fuzz::sim_schedule::check_with(&data, Mutants::only(mutant))
        })?;
        let off = fuzz_cases::panic_of(|| {
            mimic_sim::fuzz::sim_schedule::check_with(&data, Mutants::NONE)
        });
        off.is_none().then_some((data, on))
    });
    let (data, why) =
        found.unwrap_or_else(|| panic!("no schedule of fixed_inner_size fails with {mutant}"));
    let file = scratch("sim_schedule").join("crash");
    std::fs::write(&file, &data).expect("write crash file");

    let (code, out, err) = fuzz_replay("sim_schedule", &file, mutant.id(), &[]);
    assert_eq!(
        code, 1,
        "exit code of a crash\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert!(
        out.contains("fixed_inner_size") && out.contains("verdict: FAIL"),
        "the replay names the scenario and the failing verdict:\n{out}"
    );
    let first_line = why.lines().next().unwrap_or("");
    assert!(
        last_line(&out).starts_with(&format!("crash reproduced: {first_line}")),
        "reason: {}",
        last_line(&out)
    );
    assert!(err.is_empty(), "nothing on stderr: {err}");

    let (code, out, _) = fuzz_replay("sim_schedule", &file, "", &[]);
    assert_eq!(code, 0, "correct core:\n{out}");
}

/// A `verify_exec` input that starts with the packet mode's byte replays as a packet program:
/// its pieces, the XDP program and the property's verdict (no crash on the correct core).
#[test]
fn a_verify_exec_packet_input_replays_as_an_xdp_program() {
    let file = scratch("packet").join("input");
    let mut data = vec![mimic_sim::fuzz::verify_exec::packet::MODE];
    data.extend_from_slice(&[0, 14, 0, 0, 0, 1, 1, 20, 2, 0, 0, 9, 9, 9]);
    std::fs::write(&file, &data).expect("write input");
    let (code, out, err) = fuzz_replay("verify_exec", &file, "", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("packet pieces ("), "{out}");
    assert!(
        out.contains("program (XDP)") && out.contains("ldxw %r3, [%r9+4]"),
        "{out}"
    );
    assert!(
        out.contains("the verifier refuses the program") || out.contains("accepted;"),
        "{out}"
    );
    // The same pieces after tc's mode byte replay as a tc program, through `__sk_buff`.
    data[0] = mimic_sim::fuzz::verify_exec::packet::MODE_TC;
    std::fs::write(&file, &data).expect("write input");
    let (code, out, err) = fuzz_replay("verify_exec", &file, "", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("program (tc)") && out.contains("ldxw %r3, [%r9+80]"),
        "{out}"
    );
}
