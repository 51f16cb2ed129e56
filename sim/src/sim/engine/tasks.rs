//! The tasks of a run: user threads, programs on simulated CPUs, and the grace-period
//! worker that polls the deferred frees.

use super::*;
use mimic_core::bpf::verifier::packet_cases;
use mimic_core::bpf::{skb, xdp};

pub(super) fn run_task(ctx: &Ctx, loaded: &[Loaded], index: usize, slot: usize, cpu: usize) {
    P::set_current_task(slot);
    P::set_current_cpu(cpu);
    let task = &ctx.scenario.tasks[index];
    match task.kind {
        TaskKind::User => {
            let mut vars = BTreeMap::new();
            for op in &task.ops {
                if ctx.failed() {
                    break;
                }
                if user_op(ctx, op, &mut vars, slot, cpu).is_err() {
                    break;
                }
            }
            // Drained maps stay open: the teardown reads them again.
            let drained: Vec<Fd> = ctx
                .drains
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|d| d.0)
                .collect();
            for (var, fd) in vars {
                if drained.contains(&fd) {
                    continue;
                }
                if ctx.check("close", ctx.world.close(fd)).is_err() {
                    break;
                }
                ctx.rec.line(slot, cpu, || {
                    format!("close(${var} = fd {fd}) [bpf_map_put]")
                });
            }
        }
        TaskKind::Program | TaskKind::Irq => {
            let Some(prog) = loaded
                .iter()
                .find(|p| Some(&p.name) == task.program.as_ref())
            else {
                return;
            };
            let flavor = if prog.load.sleepable {
                Flavor::TasksTrace
            } else {
                Flavor::Rcu
            };
            let mut vm = Vm::default();
            // The CPU `bpf_get_smp_processor_id` reports; `bpf_get_prandom_u32` draws from the
            // seed, the task and the run (no extra scheduling choice, so traces stay the same).
            vm.config.cpu = cpu as u32;
            let prog_type = prog.load.prog_type;
            vm.config.tc = prog_type == ProgType::SchedCls;
            // One context buffer per task, refilled for each run.
            let mut mem = vec![0u8; prog.ctx_len];
            for run in 0..task.runs {
                if ctx.failed() {
                    break;
                }
                let key = if task.keys.is_empty() {
                    0
                } else {
                    task.keys[P::choose(task.keys.len())]
                };
                // `bpf_ktime_get_ns` reads the run's logical time (a microsecond per event);
                // reading it takes no stamp of its own.
                vm.config.clock_ns = ctx.rec.now().saturating_mul(1_000);
                vm.config.prandom_seed = ctx.options.seed
                    ^ (slot as u64).rotate_left(40)
                    ^ u64::from(run).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                mem.fill(0);
                let at = prog.ctx_at;
                mem[at..at + 4].copy_from_slice(&key.to_le_bytes());
                mem[at + 4..at + 8].copy_from_slice(&run.to_le_bytes());
                mem[at + 8..at + 12].copy_from_slice(&(P::choose(1 << 16) as u32).to_le_bytes());
                if ctx
                    .check("rcu_read_lock", ctx.world.rcu_read_lock(flavor))
                    .is_err()
                {
                    break;
                }
                let mut env = TracingEnv {
                    inner: WorldEnv::new(&ctx.world),
                    ctx,
                    task: slot,
                    cpu,
                    program: &prog.name,
                    direct: None,
                    pending: None,
                };
                // A packet program's frame: one of the task's frames, or the generated kind its
                // key names; a flow of the seed's choosing, on this CPU's receive queue.
                let mut frame_name = "";
                let mut framed = None;
                if prog_type.is_packet() {
                    frame_name = match task.frames.len() {
                        0 => packet_cases::FRAME_NAMES[(key % packet_cases::FRAME_KINDS) as usize],
                        n => &task.frames[P::choose(n)],
                    };
                    // XDP's receive queue is this CPU's; a tc program's sk_buff is the loopback
                    // device's, as in a test run.
                    let rx = xdp::RxInfo {
                        ifindex: 1,
                        queue_index: cpu as u32,
                    };
                    match ctx.scenario.frame(frame_name, P::choose(1 << 16) as u16) {
                        Ok(bytes) => {
                            framed =
                                Some(skb::on_frame(prog_type == ProgType::SchedCls, &bytes, rx))
                        }
                        Err(e) => {
                            ctx.fail(Finding::Setup, format!("program {}: {e}", prog.name));
                            break;
                        }
                    }
                }
                let result = if let Some((packet, pctx)) = framed.as_mut() {
                    vm.run_packet(&prog.program, pctx, packet, &mut env, &mut NoObserver)
                } else {
                    vm.run(&prog.program, &mut mem, &mut env, &mut NoObserver)
                };
                let unlocked = ctx.check("rcu_read_unlock", ctx.world.rcu_read_unlock(flavor));
                match result {
                    Ok(r0) => match &framed {
                        Some((packet, _)) => {
                            ctx.rec.line(slot, cpu, || {
                                format!(
                                    "prog {} run {run} (frame {frame_name}) = {}",
                                    prog.name,
                                    results::action_name(prog_type, r0)
                                )
                            });
                            ctx.check_result(
                                &prog.name,
                                prog_type,
                                run,
                                frame_name,
                                r0,
                                packet.data(),
                            );
                        }
                        None => ctx.rec.line(slot, cpu, || {
                            format!("prog {} run {run} (key {key}) = {}", prog.name, r0 as i64)
                        }),
                    },
                    Err(e) => {
                        match e.kind {
                            ExecErrorKind::Fault(f) => ctx.fail(
                                f.finding(),
                                format!("program {} run {run}: insn {}: {f}", prog.name, e.pc),
                            ),
                            // The executor's own memory check: an access past the end of a
                            // map value (an inlined lookup sized for another array), or outside
                            // the packet.
                            kind @ (ExecErrorKind::OutOfBounds { .. }
                            | ExecErrorKind::OutsidePacket { .. }) => ctx.fail(
                                Finding::OutOfBounds,
                                format!("program {} run {run}: insn {}: {kind}", prog.name, e.pc),
                            ),
                            other => ctx.fail(
                                Finding::Exec,
                                format!("program {} run {run}: insn {}: {other}", prog.name, e.pc),
                            ),
                        }
                        break;
                    }
                }
                if unlocked.is_err() {
                    break;
                }
            }
        }
    }
}

pub(super) fn gp_worker(ctx: &Ctx, done: &<P as Platform>::Atomic, slot: usize) {
    P::set_current_task(slot);
    P::set_current_cpu(0);
    let mut freed = 0;
    for _ in 0..GP_POLLS_MAX {
        if done.load(Ordering::Acquire) != 0 || ctx.failed() {
            break;
        }
        if ctx.check("rcu poll", ctx.world.poll()).is_err() {
            break;
        }
        let frees = ctx.world.frees();
        for free in frees.iter().skip(freed) {
            ctx.rec.line(slot, 0, || {
                format!(
                    "rcu callback: bpf_map_free({} id {})",
                    free.map_type.name(),
                    free.id
                )
            });
        }
        freed = frees.len();
        for _ in 0..=ctx.options.faults.gp_delay_yields {
            P::yield_now();
        }
    }
}
