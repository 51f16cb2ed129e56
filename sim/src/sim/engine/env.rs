//! The recording map environment of a program run: the world's `MapEnv` plus the trace, the
//! outer-map history and the slow-reader pauses a seed injects.

use super::*;

impl TracingEnv<'_> {
    /// Traces a program lookup on `map` that returned `result` between the stamps `inv` and
    /// `resp`: the outer-map history, the `lost_key` oracle, the trace line, the slow-reader
    /// pause.
    pub(super) fn record_lookup(
        &mut self,
        map: Ptr,
        key: &[u8],
        direct: Option<DirectCall>,
        result: &EnvResult<u64>,
        inv: u64,
        resp: u64,
    ) {
        let outer = self.ctx.outers.get(&(map.index, map.gen)).cloned();
        let key32 = key_u32(key);
        if let (Ok(0), Some((name, keys))) = (result, self.ctx.present.get(&(map.index, map.gen))) {
            if keys.contains(&key32) {
                self.ctx.fail(
                    Finding::LostKey,
                    format!("program {}: bpf_map_lookup_elem({name}, {key32}) returned NULL, but key {key32} is always present", self.program),
                );
            }
        }
        if let Ok(value) = result {
            let seen = Ptr::decode(*value).map(|p| (p.index, p.gen));
            let (task, cpu, program) = (self.task, self.cpu, self.program);
            match &outer {
                Some((name, map_type)) => {
                    let kernel = direct.map_or_else(
                        || format!("helper, {}", kernel_lookup(*map_type)),
                        DirectCall::name,
                    );
                    self.ctx.rec.line(task, cpu, || {
                        format!(
                            "prog {program}: bpf_map_lookup_elem({name}, {key32}) [{kernel}] = {}",
                            show(seen)
                        )
                    });
                    self.ctx.rec.event(HistEvent {
                        task,
                        outer: name.clone(),
                        op: HistOp::Read {
                            key: key32,
                            program: true,
                        },
                        result: Ok(seen),
                        inv,
                        resp,
                    });
                }
                None => self.ctx.rec.line(task, cpu, || {
                    format!(
                        "prog {program}: bpf_map_lookup_elem(map#{}.{}, {key32}) [{}] = {}",
                        map.index,
                        map.gen,
                        direct.map_or_else(|| "helper".into(), DirectCall::name),
                        if seen.is_some() { "value" } else { "NULL" }
                    )
                }),
            }
            let faults = self.ctx.options.faults;
            if faults.slow_reader_per_mille > 0
                && (P::choose(1000) as u32) < faults.slow_reader_per_mille
            {
                for _ in 0..faults.slow_reader_yields {
                    P::yield_now();
                }
            }
        }
    }
}

impl MapEnv for TracingEnv<'_> {
    fn map_from_fd(&mut self, fd: i32) -> EnvResult<u64> {
        self.inner.map_from_fd(fd)
    }
    fn map_value_from_fd(&mut self, fd: i32, off: u32) -> EnvResult<u64> {
        self.inner.map_value_from_fd(fd, off)
    }
    fn map_key_size(&mut self, map: Ptr) -> EnvResult<u32> {
        self.inner.map_key_size(map)
    }
    fn map_value_size(&mut self, map: Ptr) -> EnvResult<u32> {
        self.inner.map_value_size(map)
    }
    fn map_lookup(&mut self, map: Ptr, key: &[u8]) -> EnvResult<u64> {
        let direct = self.direct.take();
        let inv = self.ctx.rec.stamp();
        let result = self.inner.map_lookup(map, key);
        let resp = self.ctx.rec.stamp();
        self.record_lookup(map, key, direct, &result, inv, resp);
        result
    }
    fn map_update(&mut self, map: Ptr, key: &[u8], value: &[u8], flags: u64) -> EnvResult<i64> {
        let direct = self.direct.take();
        let result = self.inner.map_update(map, key, value, flags);
        if let Ok(r) = &result {
            let (program, k) = (self.program, key_u32(key));
            let kernel = direct.map_or_else(|| "helper".into(), DirectCall::name);
            self.ctx.rec.line(self.task, self.cpu, || {
                format!(
                    "prog {program}: bpf_map_update_elem(map#{}, {k}) [{kernel}] = {r}",
                    map.index
                )
            });
        }
        result
    }
    fn map_delete(&mut self, map: Ptr, key: &[u8]) -> EnvResult<i64> {
        self.direct = None;
        self.inner.map_delete(map, key)
    }
    fn trace_printk(&mut self, line: &str) {
        let (task, cpu, program) = (self.task, self.cpu, self.program);
        self.ctx.rec.line(task, cpu, || {
            format!("prog {program}: bpf_trace_printk: {}", line.escape_debug())
        });
    }
    fn map_lookup_percpu(&mut self, map: Ptr, key: &[u8], cpu: u32) -> EnvResult<u64> {
        let direct = self.direct.take();
        let result = self.inner.map_lookup_percpu(map, key, cpu);
        if let Ok(value) = &result {
            let (program, k) = (self.program, key_u32(key));
            let kernel = direct.map_or_else(|| "helper".into(), DirectCall::name);
            let seen = if *value == 0 { "NULL" } else { "value" };
            self.ctx.rec.line(self.task, self.cpu, || {
                format!(
                    "prog {program}: bpf_map_lookup_percpu_elem(map#{}, {k}, cpu {cpu}) [{kernel}] = {seen}",
                    map.index
                )
            });
        }
        result
    }
    fn map_lookup_elem(&mut self, map: Ptr, key: &[u8]) -> EnvResult<u64> {
        let direct = self.direct.take();
        let inv = self.ctx.rec.stamp();
        let result = self.inner.map_lookup_elem(map, key);
        let resp = self.ctx.rec.stamp();
        match &result {
            // The inlined code loads the inner map pointer from the value next: record the
            // read when it does, with what it loads.
            Ok(elem) if *elem != 0 && self.ctx.outers.contains_key(&(map.index, map.gen)) => {
                let offset = mimic_core::maps::gen_lookup::htab_value_offset(key.len() as u32);
                self.pending = Some(PendingRead {
                    outer: map,
                    key: key.to_vec(),
                    direct,
                    value_at: elem.wrapping_add(offset as u64),
                    inv,
                });
            }
            // NULL, or a plain hash's element (the trace only says "value" or "NULL").
            _ => self.record_lookup(map, key, direct, &result, inv, resp),
        }
        result
    }
    fn load(&mut self, ptr: Ptr, size: u8) -> EnvResult<u64> {
        let pending = self
            .pending
            .take_if(|p| size == 8 && p.value_at == ptr.encode());
        let result = self.inner.load(ptr, size);
        if let Some(p) = pending {
            let resp = self.ctx.rec.stamp();
            self.record_lookup(p.outer, &p.key, p.direct, &result, p.inv, resp);
        }
        result
    }
    fn store(&mut self, ptr: Ptr, size: u8, value: u64) -> EnvResult<()> {
        self.inner.store(ptr, size, value)
    }
    fn atomic(&mut self, ptr: Ptr, size: u8, op: AtomicOp, src: u64, r0: u64) -> EnvResult<u64> {
        self.inner.atomic(ptr, size, op, src, r0)
    }
    fn tail_call(&mut self, map: Ptr, index: u32) -> EnvResult<TailTarget> {
        let result = self.inner.tail_call(map, index);
        if let Ok(target) = &result {
            let program = self.program;
            let found = match target {
                TailTarget::OutOfRange => "past the end".to_string(),
                TailTarget::Empty => "empty".to_string(),
                TailTarget::Prog { insns, .. } => format!("a program of {} insns", insns.len()),
            };
            self.ctx.rec.line(self.task, self.cpu, || {
                format!(
                    "prog {program}: bpf_tail_call(map#{}, {index}) = {found}",
                    map.index
                )
            });
        }
        result
    }
    fn check_running(&mut self, token: u64) -> EnvResult<()> {
        self.inner.check_running(token)
    }
    fn check_direct_call(&mut self, call: DirectCall, map: Ptr) -> EnvResult<()> {
        self.direct = Some(call);
        self.inner.check_direct_call(call, map)
    }
}
