//! A run's setup on task 0: the object's and the scenario's maps, the initial entries, the
//! programs verified, fixed up and loaded.

use super::*;

pub(super) enum SetupError {
    Fault,
    Bad(String),
}

pub(super) fn setup(
    ctx: &mut Ctx,
    scenario: &Scenario,
    profile: KernelProfile,
) -> Result<Vec<Loaded>, SetupError> {
    let mut fds: BTreeMap<String, Fd> = BTreeMap::new();
    // The object's maps' fds, in the object's order (what its programs' relocations index).
    let object_fds = match &scenario.loaded {
        Some(loaded) => setup_object_maps(ctx, scenario, &loaded.object, &mut fds)?,
        None => Vec::new(),
    };
    // Templates named by shape get their own map, created before the maps that use them.
    for decl in &scenario.maps {
        if let Some(inner) = &decl.shape.inner {
            if !fds.contains_key(inner) {
                let shape = scenario
                    .shape(inner)
                    .ok_or(SetupError::Bad(format!("no shape `{inner}`")))?;
                let attr = attr_of(scenario, shape, &fds, false).map_err(SetupError::Bad)?;
                let fd = create(ctx, &attr, inner)?;
                fds.insert(inner.clone(), fd);
                ctx.maps.insert(
                    inner.clone(),
                    (
                        fd,
                        MapType::from_u32(attr.map_type).unwrap_or(MapType::Array),
                    ),
                );
            }
        }
        let attr = attr_of(scenario, &decl.shape, &fds, ctx.options.faults.full_map)
            .map_err(SetupError::Bad)?;
        let fd = create(ctx, &attr, &decl.name)?;
        fds.insert(decl.name.clone(), fd);
        let map_type = MapType::from_u32(attr.map_type).unwrap_or(MapType::Array);
        register(ctx, scenario, &decl.name, fd, map_type);
    }
    for entry in &scenario.entries {
        let value = entry
            .value
            .value()
            .map_err(|e| SetupError::Bad(format!("entry {}[{}]: {e}", entry.map, entry.key)))?;
        let mut vars = BTreeMap::new();
        let op = UserOp::Update {
            map: entry.map.clone(),
            key: entry.key,
            value,
            flags: UpdateFlags::Any,
        };
        if user_op(ctx, &op, &mut vars, 0, 0).is_err() {
            return Err(SetupError::Fault);
        }
    }
    let mut loaded = Vec::new();
    for decl in &scenario.programs {
        let fd_of = |name: &str| fds.get(name).copied();
        let insns = scenario::assemble(&decl.source, &fd_of)
            .map_err(|e| bad_program(scenario, &decl.name, e))?;
        let opts = VerifyOpts {
            privileged: !decl.unprivileged,
            sleepable: decl.sleepable,
            ctx_size: PROG_CTX_BYTES as u32,
            profile,
            ..VerifyOpts::default()
        };
        loaded.push(load_program(ctx, scenario, &decl.name, &insns, opts)?);
    }
    if let Some(object) = &scenario.loaded {
        // The programs tasks run and those a PROG_ARRAY's initial slots name (what a tail
        // call reaches), each as its section's type, over the object's maps.
        let object = &object.object;
        let in_slots = |name: &str| {
            object.maps.iter().any(|m| {
                m.kind() == Some(MapType::ProgArray) && m.slots.iter().any(|(_, n)| n == name)
            })
        };
        let runs = |name: &str| {
            scenario
                .tasks
                .iter()
                .any(|t| t.program.as_deref() == Some(name))
        };
        for program in &object.programs {
            if !runs(&program.name) && !in_slots(&program.name) {
                continue;
            }
            let bad = |e: String| bad_program(scenario, &program.name, e);
            let base = VerifyOpts {
                ctx_size: PROG_CTX_BYTES as u32,
                profile,
                ..VerifyOpts::default()
            };
            let opts = program.kind.verify_opts(base).map_err(bad)?;
            let insns = program
                .with_fds(&object_fds)
                .ok_or_else(|| bad("names a map the object has no fd for".into()))?;
            let mut prog = load_program(ctx, scenario, &program.name, &insns, opts)?;
            (prog.ctx_len, prog.ctx_at) = match opts.prog_type {
                ProgType::RawTracepoint => (RAW_TP_CTX_MAX as usize, 0),
                ProgType::Tracepoint => (TRACEPOINT_CTX_BYTES, 8),
                _ => (PROG_CTX_BYTES, 0),
            };
            loaded.push(prog);
        }
        let mut sys = Process::<P>::new(ctx.world.clone());
        let maps = LoadedMaps {
            fds: object_fds.clone(),
        };
        let prog_fd = |name: &str| {
            loaded
                .iter()
                .find(|l| l.name == name)
                .map(|l| l.load.installed.fd)
        };
        fill_prog_arrays(&mut sys, object, &maps, prog_fd).map_err(|e| {
            SetupError::Bad(format!(
                "scenario `{}`: filling its PROG_ARRAYs: {e}",
                scenario.name
            ))
        })?;
        for spec in &object.maps {
            if spec.kind() == Some(MapType::ProgArray) {
                for (slot, name) in &spec.slots {
                    ctx.rec
                        .line(0, 0, || format!("{}[{slot}] = prog {name}", spec.name));
                }
            }
        }
        // A program no task runs is held by its slots alone, as after a loader that filled the
        // arrays and exited: taking it out of its last slot frees it (after a grace period,
        // while a tail call into it may still run).
        let (kept, slot_only): (Vec<Loaded>, Vec<Loaded>) =
            loaded.into_iter().partition(|l| runs(&l.name));
        for prog in slot_only {
            let name = prog.name.clone();
            let fd = prog.load.installed.fd;
            if ctx.check("close", prog.load.unload(&ctx.world)).is_err() {
                return Err(SetupError::Fault);
            }
            ctx.rec.line(0, 0, || {
                format!("close(prog {name} fd {fd}): held by its PROG_ARRAY slots alone")
            });
        }
        loaded = kept;
    }
    Ok(loaded)
}

/// A tracepoint program's context in a run: the 8 bytes it may not read, then the key, run and
/// random word (the record can be 8192 bytes; a run passes what a scenario can fill).
pub(super) const TRACEPOINT_CTX_BYTES: usize = 8 + PROG_CTX_BYTES;

pub(super) fn bad_program(scenario: &Scenario, program: &str, what: String) -> SetupError {
    SetupError::Bad(format!(
        "scenario `{}`: program `{program}`: {what}",
        scenario.name
    ))
}

/// Notes a setup map by name (and, for checks, by identity).
pub(super) fn register(ctx: &mut Ctx, scenario: &Scenario, name: &str, fd: Fd, map_type: MapType) {
    ctx.maps.insert(name.to_string(), (fd, map_type));
    let keys: Vec<u32> = scenario
        .checks
        .always_present()
        .unwrap_or_default()
        .into_iter()
        .filter(|(m, _)| m == name)
        .map(|(_, k)| k)
        .collect();
    if !keys.is_empty() {
        if let Some(ident) = ctx.ident_of_fd(fd) {
            ctx.present.insert(ident, (name.to_string(), keys));
        }
    }
    if map_type.is_map_in_map() {
        if let Some(ident) = ctx.ident_of_fd(fd) {
            ctx.outers.insert(ident, (name.to_string(), map_type));
        }
    }
}

/// The object's maps created by its loader (`bpf::object::load`, the one that also puts the
/// object into the kernel): templates, global data, initial slots. Returns their fds in the
/// object's order, and names each in `fds`.
pub(super) fn setup_object_maps(
    ctx: &mut Ctx,
    scenario: &Scenario,
    object: &Object,
    fds: &mut BTreeMap<String, Fd>,
) -> Result<Vec<Fd>, SetupError> {
    let mut sys = Process::<P>::new(ctx.world.clone());
    let maps = create_maps(&mut sys, object).map_err(|e| {
        SetupError::Bad(format!(
            "scenario `{}`: loading its object: {e}",
            scenario.name
        ))
    })?;
    for (spec, &fd) in object.maps.iter().zip(&maps.fds) {
        ctx.learn_id(fd);
        ctx.rec.line(0, 0, || {
            format!(
                "map_create({}: type {} max_entries {} flags {:#x}, from the object) = fd {fd}",
                spec.name, spec.map_type, spec.max_entries, spec.map_flags
            )
        });
        fds.insert(spec.name.clone(), fd);
        let map_type = MapType::from_u32(spec.map_type).unwrap_or(MapType::Array);
        register(ctx, scenario, &spec.name, fd, map_type);
    }
    // The object's initial slots (`.values = { [1] = &table }`), for the results oracle.
    // They enter the outer map's history as the loader's stores, at setup.
    for spec in &object.maps {
        for (slot, name) in &spec.slots {
            let index = object.map_index(name);
            let inner = index.and_then(|i| maps.fds.get(i));
            let inner_spec = index.and_then(|i| object.maps.get(i));
            if let (Some(ident), Some(inner_spec)) =
                (inner.and_then(|&fd| ctx.ident_of_fd(fd)), inner_spec)
            {
                ctx.note_held(&spec.name, *slot, ident);
                let op = HistOp::Update {
                    key: *slot,
                    inner: ident,
                    flags: BPF_ANY,
                    attr: oracle::AttrKey::of(&inner_spec.attr()),
                };
                let now = ctx.rec.now();
                let at = At { task: 0, cpu: 0 };
                history(ctx, at, &spec.name, op, Ok(None), (now, now));
            }
        }
    }
    Ok(maps.fds)
}

/// Verifies and fixes up one program on the world.
pub(super) fn load_program(
    ctx: &Ctx,
    scenario: &Scenario,
    name: &str,
    insns: &[Insn],
    opts: VerifyOpts,
) -> Result<Loaded, SetupError> {
    let bad = |what: String| bad_program(scenario, name, what);
    let load = match prog_load(&ctx.world, insns, opts) {
        Ok(load) => load,
        Err(LoadError::Rejected(r)) => {
            return Err(bad(format!(
                "refused by the verifier: {r}\nverifier log:\n{}",
                r.log
            )))
        }
        Err(LoadError::Fixup(e)) => return Err(bad(format!("fixup failed: {e}"))),
        Err(e @ LoadError::Incompatible { .. }) => return Err(bad(e.to_string())),
        Err(LoadError::World(e)) => {
            return match ctx.check::<()>("prog_load", Err(e)) {
                Ok(Err(errno)) => Err(bad(format!("bpf_prog_load: {errno:?}"))),
                _ => Err(SetupError::Fault),
            }
        }
    };
    let program = Program::new(&load.fixed.insns)
        .map_err(|e| bad(format!("fixed-up program does not decode: {e}")))?;
    let fixups = fixup_summary(insns, &load.fixed);
    ctx.rec.line(0, 0, || {
        format!(
            "bpf_prog_load({name}) used_maps={} sleepable={} privileged={} fixups: {fixups}",
            load.maps.len(),
            opts.sleepable,
            opts.privileged
        )
    });
    Ok(Loaded {
        name: name.to_string(),
        program,
        load,
        ctx_len: PROG_CTX_BYTES,
        ctx_at: 0,
    })
}

pub(super) fn create(ctx: &Ctx, attr: &MapAttr, name: &str) -> Result<Fd, SetupError> {
    match ctx.check("map_create", ctx.world.map_create(attr)) {
        Ok(Ok(fd)) => {
            ctx.learn_id(fd);
            ctx.rec.line(0, 0, || {
                format!(
                    "map_create({name}: type {} max_entries {} flags {:#x}) = fd {fd}",
                    attr.map_type, attr.max_entries, attr.map_flags
                )
            });
            Ok(fd)
        }
        Ok(Err(e)) => Err(SetupError::Bad(format!("creating map `{name}`: {e}"))),
        Err(()) => Err(SetupError::Fault),
    }
}
