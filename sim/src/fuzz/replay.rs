//! Readable replay of one fuzz input (`mimic fuzz-replay TARGET FILE`).
//!
//! The input is decoded exactly as the target decodes it (the same functions: `arbitrary`'s
//! `Unstructured` for `verify_exec` and `interp_diff`, the model's byte choices for `map_ops`,
//! the first byte and the bytes scheduler for `sim_schedule`, text and raw instructions for
//! `asm_roundtrip`), and what the target computes is laid out section by section: for
//! `verify_exec` the map set-up, the program, the verifier's verdict and log, the fixed-up
//! program and both runs with the failing access; for `map_ops` every op's outcome on the
//! model and on the world and the first difference; and so on.
//!
//! Invariant: the verdict is the target's own. The sections are a second, instrumented walk
//! over the same steps; whether the input crashes is decided by calling the target's property
//! (`check_case`, `check_with`, `check`) on the same decoded input with the same mutants and
//! catching its panic, so a replay can never disagree with the fuzz binary about a crash.

use super::{
    asm_roundtrip, cli_inputs, interp_diff, map_ops, object_load, sim_schedule, verify_exec,
};
use arbitrary::{Arbitrary, Unstructured};
use mimic_core::bpf::asm::{assemble, disassemble};
use mimic_core::bpf::exec::{Config, ExecErrorKind, NoObserver, Program, Vm};
use mimic_core::bpf::fixup::fixup;
use mimic_core::bpf::print::{dump_xlated, insn_text, DefaultSymbols};
use mimic_core::bpf::verifier::{verify, VerifyOpts};
use mimic_core::bpf::world_env::WorldEnv;
use mimic_core::isa::{self, Insn};
use mimic_core::model::ops::{compare, quiesce, run as run_ops, Outcome};
use mimic_core::model::RefModel;
use mimic_core::mutants::Mutants;
use mimic_core::profile::KernelProfile;
use mimic_core::rcu::Flavor;
use mimic_core::sync::Std;
use mimic_core::sys::Process;
use mimic_core::uapi::{BpfSys, Fd, MapType, BPF_F_INNER_MAP};
use mimic_core::world::WorldConfig;
use serde::Serialize;
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};

/// Lines of the simulator's trace shown for `sim_schedule` (its end is where a failure is).
const TRACE_TAIL: usize = 40;

/// One titled block of the replay.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub title: String,
    pub body: String,
}

/// What a replay found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub mutants: String,
    pub sections: Vec<Section>,
    /// The target's panic message when the input crashes it.
    pub crash: Option<String>,
    /// What ran, when it did not crash (or why the target ignores the input).
    pub summary: String,
}

impl Report {
    fn new(target: &str, mutants: Mutants) -> Report {
        Report {
            target: target.to_string(),
            mutants: if mutants.is_empty() {
                "none".to_string()
            } else {
                mutants.to_string()
            },
            sections: Vec::new(),
            crash: None,
            summary: String::new(),
        }
    }

    fn section(&mut self, title: impl Into<String>, body: impl Into<String>) {
        self.sections.push(Section {
            title: title.into(),
            body: body.into(),
        });
    }

    /// The reason a crash is reported for: the first line of the target's message, joined with
    /// the second when the first only introduces it (`world and model diverge:`).
    pub fn reason(&self) -> Option<String> {
        let message = self.crash.as_deref()?;
        let mut lines = message.lines();
        let first = lines.next().unwrap_or("").trim_end();
        Some(match lines.next() {
            Some(second) if first.ends_with(':') && !second.trim().is_empty() => {
                format!("{first} {}", second.trim())
            }
            _ => first.to_string(),
        })
    }

    /// The whole report as text: sections, the target's message, and the last line
    /// `crash reproduced: <reason>` or `no crash: <what ran>`.
    pub fn text(&self) -> String {
        let mut out = format!("target: {}\nmutants: {}\n", self.target, self.mutants);
        for section in &self.sections {
            let _ = writeln!(out, "\n== {} ==", section.title);
            out.push_str(section.body.trim_end());
            out.push('\n');
        }
        match &self.crash {
            Some(message) => {
                let _ = writeln!(out, "\n== the target's message ==\n{}", brief(message));
                let _ = writeln!(
                    out,
                    "\ncrash reproduced: {}",
                    self.reason().unwrap_or_default()
                );
            }
            None => {
                let _ = writeln!(out, "\nno crash: {}", self.summary);
            }
        }
        out
    }
}

/// The target's panic message without the listings it carries for the fuzzer's log (the op
/// listing, the set-up, the program and the xlated dump), which the sections above show.
fn brief(message: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    let mut skipped = false;
    for line in message.trim_end().lines() {
        if line.starts_with("set-up: ") || line == "xlated:" || line.starts_with("#0 ") {
            skipping = true;
        } else if line.starts_with("first map difference") {
            skipping = false;
        }
        if skipping {
            skipped = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if skipped {
        out.push_str("(its listings are left out: the sections above show them)\n");
    }
    out.trim_end().to_string()
}

/// The targets by name.
pub const TARGETS: [&str; 7] = [
    "asm_roundtrip",
    "cli_inputs",
    "interp_diff",
    "map_ops",
    "object_load",
    "sim_schedule",
    "verify_exec",
];

/// Replays `data` through `target` with `mutants` on. An unknown target is an error naming the
/// known ones; a panic of the target is the crash it reports, never a panic of the replay.
/// The verifier's log in the report is worded as the newest kernel profile words it (what the
/// fuzz binaries run); [`replay_as`] takes another.
pub fn replay(target: &str, data: &[u8], mutants: Mutants) -> Result<Report, String> {
    replay_as(target, data, mutants, *KernelProfile::newest())
}

/// [`replay`], with the verifier's messages in the report those of `profile`'s kernel build.
pub fn replay_as(
    target: &str,
    data: &[u8],
    mutants: Mutants,
    profile: KernelProfile,
) -> Result<Report, String> {
    let mut report = Report::new(target, mutants);
    report.section("input", format!("{} bytes", data.len()));
    match target {
        "asm_roundtrip" => replay_asm_roundtrip(data, &mut report),
        "cli_inputs" => replay_cli_inputs(data, &mut report),
        "interp_diff" => replay_interp_diff(data, &mut report),
        "map_ops" => replay_map_ops(data, mutants, &mut report),
        "object_load" => replay_object_load(data, &mut report),
        "sim_schedule" => replay_sim_schedule(data, mutants, &mut report),
        "verify_exec" => replay_verify_exec(data, mutants, profile, &mut report),
        other => {
            return Err(format!(
                "unknown fuzz target `{other}` (known: {})",
                TARGETS.join(", ")
            ))
        }
    }
    Ok(report)
}

/// The target's verdict alone (no sections): `Ok(Some(message))` when `data` crashes `target`
/// with `mutants` on, `Ok(None)` when it passes, `Err` for an unknown target. The regression test
/// and `mimic fuzz-replay` share it, so both judge exactly as the fuzz binary does.
pub fn crash_of(target: &str, data: &[u8], mutants: Mutants) -> Result<Option<String>, String> {
    let run: Box<dyn FnOnce()> = match target {
        "asm_roundtrip" => Box::new(|| asm_roundtrip::check(data)),
        "cli_inputs" => Box::new(|| cli_inputs::check(data)),
        "interp_diff" => Box::new(|| interp_diff::check(data)),
        "map_ops" => Box::new(move || map_ops::check_with(data, mutants)),
        "object_load" => Box::new(|| object_load::check(data)),
        "sim_schedule" => Box::new(move || sim_schedule::check_with(data, mutants)),
        // `verify_exec::check` with the mutants given: the same decoding, the same property.
        "verify_exec" => Box::new(move || verify_exec::check_with(data, mutants)),
        other => {
            return Err(format!(
                "unknown fuzz target `{other}` (known: {})",
                TARGETS.join(", ")
            ))
        }
    };
    Ok(catch(run).err())
}

/// Runs `f`, turning a panic into its message. The panic hook is silenced meanwhile: the
/// target's panic is the finding, printed by the report; and the hook shuttle installs while the
/// simulator runs (it prints and persists a schedule on any panic) is dropped again afterwards,
/// since a replay's panics are not shuttle test failures.
fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let previous = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    let _silent_or_wrapped = panic::take_hook();
    panic::set_hook(previous);
    result.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "(a panic without a message)".to_string())
    })
}

/// Records the target's verdict on the input: `Err(message)` from [`catch`] is the crash.
fn verdict(report: &mut Report, result: Result<(), String>, what_ran: String) {
    match result {
        Ok(()) => report.summary = what_ran,
        Err(message) => report.crash = Some(message),
    }
}

/// One line per item, numbered from 0.
fn numbered<T: std::fmt::Debug>(items: &[T]) -> String {
    items
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{i:2}: {p:?}\n"))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn listing(insns: &[Insn]) -> String {
    dump_xlated(insns, &DefaultSymbols)
        .unwrap_or_else(|e| format!("(the instructions do not decode: {e})\n"))
}

// ---- verify_exec ----------------------------------------------------------------------------

fn flags_text(flags: u32) -> String {
    match flags {
        0 => "0".to_string(),
        BPF_F_INNER_MAP => "BPF_F_INNER_MAP".to_string(),
        other => format!("{other:#x}"),
    }
}

fn map_line(sys: &mut Process<Std>, fd: Fd) -> String {
    match sys.map_info(fd) {
        Ok(info) => format!(
            "{} id {}, key_size {}, value_size {}, max_entries {}, flags {}",
            MapType::from_u32(info.map_type).map_or("?", MapType::name),
            info.id,
            info.key_size,
            info.value_size,
            info.max_entries,
            flags_text(info.map_flags)
        ),
        Err(e) => format!("(map_info: {e})"),
    }
}

/// The maps as the world holds them after `build_world`: outer map, its slots (inner maps by
/// id, read back through the syscall surface), the plain array.
fn describe_setup(case: &verify_exec::Case, mutants: Mutants) -> Option<String> {
    let (mut sys, fds) = verify_exec::build_world(&case.setup, mutants)?;
    let t = case.setup.template;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "outer (fd {}): {}",
        fds.outer,
        map_line(&mut sys, fds.outer)
    );
    let _ = writeln!(
        out,
        "template (closed after the outer map is created): array, value_size {}, max_entries {}, flags {}",
        t.value_size(),
        t.max_entries(),
        flags_text(t.flags())
    );
    for (n, inner) in case.setup.inners.iter().take(3).enumerate() {
        let _ = writeln!(out, "inner map asked for #{n}: {inner:?}");
    }
    let slots = sys.map_info(fds.outer).map_or(0, |i| i.max_entries);
    for key in 0..slots {
        let shown = match sys.map_lookup_elem(fds.outer, &key.to_ne_bytes()) {
            Ok(id) if id.len() >= 4 => {
                let id = u32::from_ne_bytes([id[0], id[1], id[2], id[3]]);
                match sys.map_get_fd_by_id(id) {
                    Ok(fd) => {
                        let line = map_line(&mut sys, fd);
                        let _ = sys.close(fd);
                        line
                    }
                    Err(e) => format!("id {id} (get_fd_by_id: {e})"),
                }
            }
            Ok(other) => format!("({} bytes read)", other.len()),
            Err(e) => format!("empty ({e})"),
        };
        let _ = writeln!(out, "  outer[{key}]: {shown}");
    }
    let _ = writeln!(
        out,
        "array (fd {}): {}",
        fds.array,
        map_line(&mut sys, fds.array)
    );
    let _ = writeln!(
        out,
        "context (r1, {} bytes): {}",
        case.ctx.len(),
        hex(&case.ctx)
    );
    Some(out)
}

/// Runs `insns` once on `sys` as the target does and describes the result; on a failure, the
/// instruction at the failing pc (and, for a fixed-up program, the original instruction it
/// came from).
fn describe_run(
    sys: &mut Process<Std>,
    insns: &[Insn],
    ctx: &[u8; verify_exec::CTX_LEN],
    origin: Option<(&[usize], &[Insn])>,
) -> String {
    let program = match Program::new(insns) {
        Ok(p) => p,
        Err(e) => return format!("the executor refuses the program: {e}"),
    };
    let world = sys.world().clone();
    let mut ctx_after = *ctx;
    let mut vm = Vm::new(Config {
        budget: verify_exec::RUN_BUDGET,
        ..Config::default()
    });
    if let Err(e) = world.rcu_read_lock(Flavor::Rcu) {
        return format!("rcu_read_lock: {e}");
    }
    let result = vm.run(
        &program,
        &mut ctx_after,
        &mut WorldEnv::new(&world),
        &mut NoObserver,
    );
    let unlock = world.rcu_read_unlock(Flavor::Rcu);
    let mut out = String::new();
    match result {
        Ok(r0) => {
            let _ = writeln!(out, "r0 = {r0:#x}");
            if ctx_after != *ctx {
                let _ = writeln!(out, "context after: {}", hex(&ctx_after));
            }
        }
        Err(e) if matches!(e.kind, ExecErrorKind::Budget(_)) => {
            let _ = writeln!(out, "{e} (not a finding: the target skips such runs)");
        }
        Err(e) => {
            let text = insn_text(insns, e.pc, &DefaultSymbols).unwrap_or_else(|d| d.to_string());
            let _ = writeln!(out, "FAILED at insn {}: {text}", e.pc);
            let _ = writeln!(out, "  {}", e.kind);
            if let Some((new_pc, original)) = origin {
                // The original instruction whose rewrite holds the failing pc.
                if let Some(at) = new_pc.iter().rposition(|&start| start <= e.pc) {
                    let text =
                        insn_text(original, at, &DefaultSymbols).unwrap_or_else(|d| d.to_string());
                    let _ = writeln!(out, "  rewritten from original insn {at}: {text}");
                }
            }
        }
    }
    if let Err(e) = unlock {
        let _ = writeln!(out, "rcu_read_unlock: {e}");
    }
    out
}

fn replay_verify_exec(data: &[u8], mutants: Mutants, profile: KernelProfile, report: &mut Report) {
    if let Some((&mode, rest)) = data.split_first() {
        if let Some(hook) = verify_exec::packet::Hook::from_mode(mode) {
            return replay_packet(rest, hook, mutants, report);
        }
    }
    let case = match verify_exec::Case::arbitrary_take_rest(Unstructured::new(data)) {
        Ok(case) => case,
        Err(e) => {
            report.summary =
                format!("the input does not decode as a case ({e}); the target ignores it");
            return;
        }
    };
    report.section(
        format!("pieces ({})", case.pieces.len()),
        numbered(&case.pieces),
    );
    let Some(setup) = describe_setup(&case, mutants) else {
        report.section("map set-up", format!("{:?}", case.setup));
        report.summary =
            "the set-up's maps cannot be created; the target ignores the input".to_string();
        return;
    };
    report.section("map set-up", setup);
    let Some((mut fixed_sys, fds)) = verify_exec::build_world(&case.setup, mutants) else {
        report.summary = "the set-up built once and not the second time".to_string();
        return;
    };
    let insns = verify_exec::assemble_pieces(&case.pieces, fds);
    report.section(format!("program ({} insns)", insns.len()), listing(&insns));
    let opts = VerifyOpts {
        ctx_size: verify_exec::CTX_LEN as u32,
        mutants,
        log_level: 1,
        profile,
        ..VerifyOpts::default()
    };
    let world = fixed_sys.world().clone();
    let what_ran = match catch(|| verify(&insns, &*world, opts)) {
        Err(panic) => {
            report.section("verifier", format!("the verifier panicked: {panic}"));
            "the verifier panicked here but not in the target".to_string()
        }
        Ok(Err(rejection)) => {
            report.section(
                "verifier",
                format!(
                    "verdict: refused at insn {}: {} (errno {})\nlog:\n{}",
                    rejection.insn, rejection.message, rejection.errno, rejection.log
                ),
            );
            "the verifier refused the program (a refusal is never a finding)".to_string()
        }
        Ok(Ok(verified)) => {
            report.section(
                "verifier",
                format!(
                    "verdict: accepted ({} insns processed)\nlog:\n{}",
                    verified.stats.processed, verified.log
                ),
            );
            match fixup(&verified, mutants) {
                Err(e) => {
                    report.section("fixups", format!("failed: {e}"));
                    "fixups failed".to_string()
                }
                Ok(fixed) => {
                    report.section(
                        format!("fixed-up program ({} insns, xlated)", fixed.insns.len()),
                        fixed
                            .dump_xlated()
                            .unwrap_or_else(|e| format!("(does not print: {e})")),
                    );
                    let fixed_run = describe_run(
                        &mut fixed_sys,
                        &fixed.insns,
                        &case.ctx,
                        Some((&fixed.new_pc, &insns)),
                    );
                    report.section("run after fixups", fixed_run);
                    let plain_run = match verify_exec::build_world(&case.setup, mutants) {
                        Some((mut plain_sys, _)) => {
                            describe_run(&mut plain_sys, &insns, &case.ctx, None)
                        }
                        None => "the set-up did not build a second time".to_string(),
                    };
                    report.section("run as verified (generic helper calls)", plain_run);
                    "accepted; the fixed-up and the generic runs pass their checks and agree"
                        .to_string()
                }
            }
        }
    };
    verdict(
        report,
        catch(|| verify_exec::check_case(&case, mutants)),
        what_ran,
    );
}

// ---- map_ops --------------------------------------------------------------------------------

fn replay_map_ops(data: &[u8], mutants: Mutants, report: &mut Report) {
    let Some((config, ops)) = map_ops::decode(data) else {
        report.summary =
            "no op decodes (first byte: options, then the generator's choices); the target ignores it"
                .to_string();
        return;
    };
    report.section("generator options (first byte)", format!("{config:?}"));
    let world_config = WorldConfig::default();
    let runs = catch(|| {
        let mut model = RefModel::with_config(map_ops::model_config(&world_config));
        let mut world = Process::<Std>::create(mutants, world_config);
        let (mut on_model, model_fds) = run_ops(&mut model, &ops);
        let (mut on_world, world_fds) = run_ops(&mut world, &ops);
        on_model.extend(quiesce(&mut model, &model_fds));
        on_world.extend(quiesce(&mut world, &world_fds));
        let audit = world.world().audit_quiescent();
        let model_audit = model.check_quiescent();
        (on_model, on_world, audit, model_audit)
    });
    match runs {
        Err(panic) => report.section("ops", format!("running the ops panicked: {panic}")),
        Ok((on_model, on_world, audit, model_audit)) => {
            let show = |o: Option<&Outcome>| o.map_or("(none)".to_string(), |o| o.to_string());
            let mut body = String::new();
            for index in 0..on_model.len().max(on_world.len()) {
                let (a, b) = (on_model.get(index), on_world.get(index));
                match ops.get(index) {
                    Some(op) => {
                        let _ = writeln!(body, "#{index:<3} {op}");
                    }
                    None => {
                        let _ = writeln!(body, "#{index:<3} quiescence probe");
                    }
                }
                if matches!((a, b), (Some(a), Some(b)) if a.agrees(b)) {
                    let _ = writeln!(body, "       both:  {}", show(a));
                } else {
                    let _ = writeln!(body, "       model: {}", show(a));
                    let _ = writeln!(body, "       world: {}   <-- differs", show(b));
                }
            }
            report.section(
                format!(
                    "ops ({}) and their outcomes on the model and the world",
                    ops.len()
                ),
                body,
            );
            let first = match compare(&ops, &[("model", &on_model), ("world", &on_world)]) {
                Ok(()) => "none".to_string(),
                Err(d) => d.to_string(),
            };
            report.section("first difference", first);
            report.section(
                "audits at quiescence",
                format!(
                    "world: {}\nmodel: {}",
                    audit.map_or_else(|f| f.to_string(), |()| "ok".to_string()),
                    model_audit.map_or_else(|f| f.to_string(), |()| "ok".to_string())
                ),
            );
        }
    }
    verdict(
        report,
        catch(|| map_ops::check_with(data, mutants)),
        format!(
            "{} ops agree on the model and the world; no leak at quiescence",
            ops.len()
        ),
    );
}

// ---- asm_roundtrip --------------------------------------------------------------------------

fn replay_asm_roundtrip(data: &[u8], report: &mut Report) {
    let text = String::from_utf8_lossy(data);
    let lossy = if std::str::from_utf8(data).is_err() {
        " (not UTF-8: read lossily, as the target does)"
    } else {
        ""
    };
    report.section(format!("text{lossy}"), text.to_string());
    let assembled = match catch(|| assemble(&text)) {
        Err(panic) => format!("stage 1 (assemble the text) panicked: {panic}"),
        Ok(Err(e)) => format!("does not assemble: {e} (fine: only a panic is a finding)"),
        Ok(Ok(insns)) => format!("{} insns:\n{}", insns.len(), listing(&insns)),
    };
    report.section("stage 1: assemble the text", assembled);
    let whole = data.len() / isa::INSN_SIZE * isa::INSN_SIZE;
    let raw = match catch(|| isa::from_bytes(&data[..whole])) {
        Err(panic) => format!("stage 2 (read the bytes as instructions) panicked: {panic}"),
        Ok(Err(e)) => format!("not instructions: {e}"),
        Ok(Ok(insns)) => match catch(|| disassemble(&insns)) {
            Ok(Ok(text)) => format!("{} insns:\n{text}", insns.len()),
            Ok(Err(e)) => format!("{} insns, not a program: {e}", insns.len()),
            Err(panic) => format!("{} insns; the disassembler panicked: {panic}", insns.len()),
        },
    };
    report.section(
        format!("stage 2: the first {whole} bytes as raw instructions"),
        raw,
    );
    verdict(
        report,
        catch(|| asm_roundtrip::check(data)),
        "every round trip holds (assemble/disassemble, decode/encode, printers)".to_string(),
    );
}

// ---- interp_diff ----------------------------------------------------------------------------

fn replay_interp_diff(data: &[u8], report: &mut Report) {
    let Some((mem, insns)) = interp_diff::decode(data) else {
        report.summary = format!(
            "shorter than the {} bytes of memory; the target ignores it",
            interp_diff::MEM_SIZE
        );
        return;
    };
    report.section("memory (r1)", hex(&mem));
    report.section(format!("program ({} insns)", insns.len()), listing(&insns));
    let ours = catch(|| {
        let program = Program::new(&insns).map_err(|e| format!("refused: {e}"))?;
        let mut out = mem;
        let r0 = mimic_core::bpf::exec::run(&program, &mut out).map_err(|e| {
            let text = insn_text(&insns, e.pc, &DefaultSymbols).unwrap_or_default();
            format!("failed at insn {}: {text}: {}", e.pc, e.kind)
        })?;
        Ok::<_, String>((r0, out))
    });
    let theirs = catch(|| {
        let bytes = isa::to_bytes(&insns);
        let vm = rbpf::EbpfVmRaw::new(Some(&bytes)).map_err(|e| format!("refused: {e}"))?;
        let mut out = mem;
        let r0 = vm
            .execute_program(&mut out)
            .map_err(|e| format!("failed: {e}"))?;
        Ok::<_, String>((r0, out))
    });
    let show = |r: &Result<Result<(u64, [u8; interp_diff::MEM_SIZE]), String>, String>| match r {
        Ok(Ok((r0, out))) if *out == mem => format!("r0 = {r0:#x}, memory unchanged"),
        Ok(Ok((r0, out))) => format!("r0 = {r0:#x}, memory after: {}", hex(out)),
        Ok(Err(e)) => e.clone(),
        Err(panic) => format!("panicked: {panic}"),
    };
    report.section(
        "results",
        format!("mimic: {}\nrbpf:  {}", show(&ours), show(&theirs)),
    );
    verdict(
        report,
        catch(|| interp_diff::check(data)),
        "both interpreters ran to the end and agree on r0 and memory".to_string(),
    );
}

// ---- cli_inputs -----------------------------------------------------------------------------

fn replay_cli_inputs(data: &[u8], report: &mut Report) {
    let Some((reader, rest)) = cli_inputs::pick(data) else {
        report.summary = "empty (the first byte picks the reader); the target ignores it".into();
        return;
    };
    report.section(
        "reader (first byte)",
        format!(
            "{reader} (byte {} modulo {})",
            data[0],
            cli_inputs::READERS.len()
        ),
    );
    if reader == "crash-file" {
        report.section(
            "crash file (the rest)",
            match rest.split_first() {
                Some((&which, file)) => format!(
                    "of {} (byte {which}), {} bytes: {}",
                    TARGETS[which as usize % TARGETS.len()],
                    file.len(),
                    hex(file)
                ),
                None => "(no target byte)".to_string(),
            },
        );
    } else {
        report.section(
            format!("file `{}` (the rest, as text)", cli_inputs::ORIGIN),
            String::from_utf8_lossy(rest).into_owned(),
        );
    }
    match catch(|| cli_inputs::read(reader, rest)) {
        Ok(read) => {
            report.section(
                "read",
                match &read {
                    Ok(what) => what.clone(),
                    Err(refusal) => format!("refused: {refusal}"),
                },
            );
            report.summary =
                format!("the {reader} reader gave a result or an error naming the place");
        }
        Err(message) => report.crash = Some(message),
    }
}

// ---- object_load ----------------------------------------------------------------------------

fn replay_object_load(data: &[u8], report: &mut Report) {
    report.section("object (first bytes)", hex(&data[..data.len().min(64)]));
    match catch(|| object_load::load(data)) {
        Ok(Ok(steps)) => {
            report.section("loaded", steps);
            report.summary = "parsed, maps created, programs verified, all closed".into();
        }
        Ok(Err(refusal)) => {
            report.section("refused", refusal);
            report.summary = "refused with an error naming what".into();
        }
        Err(message) => report.crash = Some(message),
    }
}

// ---- sim_schedule ---------------------------------------------------------------------------

fn replay_sim_schedule(data: &[u8], mutants: Mutants, report: &mut Report) {
    let Some((scenario, bytes)) = sim_schedule::pick(data) else {
        report.summary = "empty (the first byte picks the scenario); the target ignores it".into();
        return;
    };
    report.section(
        "scenario (first byte)",
        format!(
            "{} (byte {} modulo the built-ins)\n{}",
            scenario.name, data[0], scenario.description
        ),
    );
    report.section(
        "schedule",
        format!(
            "{} bytes for the bytes scheduler (which task runs, which fault is injected); a bytes \
             schedule has no seed, so `mimic replay` cannot rerun it: this command is its replay",
            bytes.len()
        ),
    );
    let config = sim_schedule::config(scenario, mutants, true);
    match catch(|| crate::sim::engine::run_bytes(&config, bytes)) {
        Err(panic) => report.section("run", format!("the simulator panicked: {panic}")),
        Ok(outcome) => {
            let verdict = match &outcome.verdict {
                crate::sim::engine::Verdict::Pass => "pass".to_string(),
                crate::sim::engine::Verdict::Cut => {
                    "cut by the step budget (not a failure)".to_string()
                }
                crate::sim::engine::Verdict::Fail { kind, detail } => {
                    format!("FAIL [{kind}] {detail}")
                }
            };
            report.section(
                "run",
                format!(
                    "options: {}\nverdict: {verdict}\nsteps: {}, trace hash: {:016x}, schedule hash: {:016x}",
                    outcome.options, outcome.steps, outcome.trace_hash, outcome.schedule_hash
                ),
            );
            let skip = outcome.trace.len().saturating_sub(TRACE_TAIL);
            let mut tail = String::new();
            if skip > 0 {
                let _ = writeln!(tail, "({skip} earlier lines)");
            }
            for line in &outcome.trace[skip..] {
                let _ = writeln!(tail, "{line}");
            }
            report.section("trace (end)", tail);
        }
    }
    verdict(
        report,
        catch(|| sim_schedule::check_with(data, mutants)),
        format!(
            "scenario {} ran its schedule without an oracle failure",
            scenario.name
        ),
    );
}

/// A packet-program input of `verify_exec`: the pieces, the program, and the property's verdict.
fn replay_packet(
    rest: &[u8],
    hook: verify_exec::packet::Hook,
    mutants: Mutants,
    report: &mut Report,
) {
    use verify_exec::packet;
    let Some(case) = packet::decode(rest) else {
        report.summary = "the input does not decode as a packet case; the target ignores it".into();
        return;
    };
    report.section(
        format!("packet pieces ({})", case.pieces.len()),
        numbered(&case.pieces),
    );
    report.section(
        format!("program ({})", hook.name()),
        packet::source(&case, hook),
    );
    let result = catch(|| packet::check_packet(&case, hook, mutants));
    let what_ran = match &result {
        Ok(packet::Verdict::Refused) => "the verifier refuses the program".to_string(),
        Ok(packet::Verdict::Ran(n)) => {
            format!("accepted; {n} of 3 packet runs ended, every access inside the packet")
        }
        Err(_) => String::new(),
    };
    verdict(report, result.map(|_| ()), what_ran);
}
