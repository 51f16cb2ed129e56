//! The user-space ops of a scenario (update, delete, lookup, create, close, drain, batches,
//! yield), each a syscall on the world recorded in the trace and the history.

use super::*;
use crate::sim::op::Value;

/// An op's map operand: a setup map or a task variable.
pub(super) fn resolve(ctx: &Ctx, vars: &BTreeMap<String, Fd>, name: &str) -> Option<(Fd, MapType)> {
    if let Some(var) = name.strip_prefix('$') {
        let fd = *vars.get(var)?;
        let t = ctx
            .world
            .map_def(ctx.world.map_handle(fd).ok()?)
            .ok()?
            .map_type;
        return Some((fd, t));
    }
    ctx.maps.get(name).copied()
}

pub(super) fn prepare(
    ctx: &Ctx,
    vars: &BTreeMap<String, Fd>,
    value: &Value,
    value_size: usize,
    task: usize,
    cpu: usize,
) -> Result<Option<Prepared>, ()> {
    let number = |n: u64| {
        let mut bytes = n.to_le_bytes().to_vec();
        bytes.resize(value_size, 0);
        Prepared { bytes, inner: None }
    };
    Ok(Some(match value {
        Value::Number(n) => number(*n),
        Value::Var(var) => match vars.get(var) {
            Some(&fd) => Prepared {
                bytes: fd.to_le_bytes().to_vec(),
                inner: ctx.ident_of_fd(fd).map(|i| (i, fd, false)),
            },
            None => return Ok(None),
        },
        Value::Map(name) => match ctx.maps.get(name) {
            Some(&(fd, _)) => Prepared {
                bytes: fd.to_le_bytes().to_vec(),
                inner: ctx.ident_of_fd(fd).map(|i| (i, fd, false)),
            },
            None => return Ok(None),
        },
        Value::New(shape) => {
            let Some(shape) = ctx.scenario.shape(shape).cloned() else {
                return Ok(None);
            };
            let fds: BTreeMap<String, Fd> = ctx
                .maps
                .iter()
                .map(|(k, (fd, _))| (k.clone(), *fd))
                .collect();
            let Ok(attr) = attr_of(&ctx.scenario, &shape, &fds, false) else {
                return Ok(None);
            };
            match ctx.check("map_create", ctx.world.map_create(&attr))? {
                Ok(fd) => {
                    ctx.learn_id(fd);
                    let ident = ctx.ident_of_fd(fd);
                    ctx.rec.line(task, cpu, || {
                        format!(
                            "map_create(type {} max_entries {}) = fd {fd} ({})",
                            attr.map_type,
                            attr.max_entries,
                            show(ident)
                        )
                    });
                    Prepared {
                        bytes: fd.to_le_bytes().to_vec(),
                        inner: ident.map(|i| (i, fd, true)),
                    }
                }
                Err(_) => return Ok(None),
            }
        }
    }))
}

pub(super) fn inner_attr_of(ctx: &Ctx, fd: Fd) -> Option<MapAttr> {
    let def = ctx.world.map_def(ctx.world.map_handle(fd).ok()?).ok()?;
    Some(
        MapAttr::new(def.map_type, def.key_size, def.value_size, def.max_entries)
            .flags(def.map_flags),
    )
}

/// Runs one user op. `Err(())`: a fault was recorded and the task stops.
pub(super) fn user_op(
    ctx: &Ctx,
    op: &UserOp,
    vars: &mut BTreeMap<String, Fd>,
    task: usize,
    cpu: usize,
) -> Result<(), ()> {
    let at = At { task, cpu };
    // An op on a map that is gone (a `$VAR` closed or never created) does nothing.
    let target = match op.map() {
        Some(name) => match resolve(ctx, vars, name) {
            Some((fd, map_type)) => Some(Target { name, fd, map_type }),
            None => return Ok(()),
        },
        None => None,
    };
    match (op, target) {
        (
            UserOp::Update {
                key, value, flags, ..
            },
            Some(t),
        ) => update(ctx, vars, at, t, *key, value, *flags),
        (UserOp::Delete { key, .. }, Some(t)) => delete(ctx, at, t, *key),
        (UserOp::Lookup { key, .. }, Some(t)) => lookup(ctx, at, t, *key),
        (UserOp::BatchUpdate { keys, value, .. }, Some(t)) => {
            batch_update(ctx, vars, at, t, keys, value)
        }
        (UserOp::BatchDelete { keys, .. }, Some(t)) => batch_delete(ctx, at, t, keys),
        (UserOp::BatchLookup { .. }, Some(t)) => batch_lookup(ctx, at, t),
        (UserOp::Create { var, shape }, _) => create_var(ctx, vars, at, var, shape),
        (UserOp::Close { var }, _) => close_var(ctx, vars, at, var),
        (UserOp::Drain { var, key }, _) => drain(ctx, vars, at, var, *key),
        (UserOp::Yield(n), _) => {
            for _ in 0..*n {
                P::yield_now();
            }
            Ok(())
        }
        // Every op with a map operand has its target by now.
        (_, None) => Ok(()),
    }
}

/// The map an op names, resolved.
struct Target<'a> {
    name: &'a str,
    fd: Fd,
    map_type: MapType,
}

/// An outer-map op enters the history; a store or delete that succeeded changes the tables the
/// footprint report follows.
pub(super) fn history(
    ctx: &Ctx,
    at: At,
    map: &str,
    op: HistOp,
    result: Result<Option<MapIdent>, String>,
    (inv, resp): (u64, u64),
) {
    match (&op, &result) {
        (HistOp::Update { key, attr, .. }, Ok(_)) => ctx.note_table(map, *key, Some(*attr)),
        (HistOp::Delete { key }, Ok(_)) => ctx.note_table(map, *key, None),
        _ => {}
    }
    let outer = map.to_string();
    ctx.rec.event(HistEvent {
        task: at.task,
        outer,
        op,
        result,
        inv,
        resp,
    });
}

/// Who runs an op: the task's slot and its CPU.
#[derive(Clone, Copy)]
pub(super) struct At {
    pub(super) task: usize,
    pub(super) cpu: usize,
}

/// A syscall between two stamps of the history's clock: its result (faults are recorded and
/// stop the task), invocation and response times.
fn timed<T>(
    ctx: &Ctx,
    what: &str,
    call: impl FnOnce() -> Result<T, Error>,
) -> Result<(Result<T, Errno>, u64, u64), ()> {
    let inv = ctx.rec.stamp();
    let result = ctx.check(what, call())?;
    let resp = ctx.rec.stamp();
    Ok((result, inv, resp))
}

/// The end of a single-element syscall's trace line: the grace period an outer-map change
/// waits for, and the result.
fn ending<T>(mim: bool, result: &Result<T, Errno>) -> (&'static str, String) {
    let wait = if mim && result.is_ok() {
        "; synchronize_rcu"
    } else {
        ""
    };
    (
        wait,
        result
            .as_ref()
            .map_or_else(|e| errno_name(*e), |_| "0".into()),
    )
}

/// `BPF_MAP_UPDATE_ELEM`; on an outer map, the update enters the history with the inner map
/// it stored.
fn update(
    ctx: &Ctx,
    vars: &BTreeMap<String, Fd>,
    at: At,
    t: Target,
    key: u32,
    value: &Value,
    flags: UpdateFlags,
) -> Result<(), ()> {
    let (world, rec) = (&ctx.world, &ctx.rec);
    let flags = flags.bits();
    let (map, fd, map_type) = (t.name, t.fd, t.map_type);
    let At { task, cpu } = at;
    let value_size = world
        .map_def(world.map_handle(fd).map_err(|_| ())?)
        .map(|d| d.value_size)
        .unwrap_or(4) as usize;
    let Some(prepared) = prepare(ctx, vars, value, value_size, task, cpu)? else {
        return Ok(());
    };
    let inner_attr = prepared.inner.and_then(|(_, fd, _)| inner_attr_of(ctx, fd));
    // The results oracle hears of a store before any program can see it.
    match (&prepared.inner, value) {
        (Some((inner, _, _)), _) if map_type.is_map_in_map() => ctx.note_held(map, key, *inner),
        (_, Value::Number(n)) => {
            if let Some(target) = ctx.ident_of_fd(fd) {
                ctx.note_written(target, *n);
            }
        }
        _ => {}
    }
    let (result, inv, resp) = timed(ctx, "map_update_elem", || {
        world.map_update_elem(fd, &key.to_le_bytes(), &prepared.bytes, flags)
    })?;
    let mim = map_type.is_map_in_map();
    rec.line(task, cpu, || {
        let stored = prepared
            .inner
            .map_or(format!("{value:?}"), |(i, _, _)| show(Some(i)));
        let (wait, result) = ending(mim, &result);
        let kernel = kernel_update(map_type);
        format!(
            "map_update_elem({map}, {key}, {stored}, flags {flags}) [{kernel}{wait}] = {result}"
        )
    });
    if let (true, Some((inner, _, _)), Some(attr)) = (mim, prepared.inner, inner_attr) {
        let attr = oracle::AttrKey::of(&attr);
        let op = HistOp::Update {
            key,
            inner,
            flags,
            attr,
        };
        let result = result.map(|_| None).map_err(errno_name);
        history(ctx, at, map, op, result, (inv, resp));
    }
    if let Some((_, fd, true)) = prepared.inner {
        let _ = ctx.check("close", world.close(fd))?;
        rec.line(task, cpu, || format!("close(fd {fd}) [bpf_map_put]"));
    }
    Ok(())
}

/// `BPF_MAP_DELETE_ELEM`, in the history on an outer map.
fn delete(ctx: &Ctx, at: At, t: Target, key: u32) -> Result<(), ()> {
    let (map, fd, map_type) = (t.name, t.fd, t.map_type);
    let At { task, cpu } = at;
    let (result, inv, resp) = timed(ctx, "map_delete_elem", || {
        ctx.world.map_delete_elem(fd, &key.to_le_bytes())
    })?;
    let mim = map_type.is_map_in_map();
    ctx.rec.line(task, cpu, || {
        let (wait, result) = ending(mim, &result);
        let kernel = kernel_delete(map_type);
        format!("map_delete_elem({map}, {key}) [{kernel}{wait}] = {result}")
    });
    if mim {
        let result = result.map(|_| None).map_err(errno_name);
        let op = HistOp::Delete { key };
        history(ctx, at, map, op, result, (inv, resp));
    }
    Ok(())
}

/// `BPF_MAP_LOOKUP_ELEM`; on an outer map the id read is resolved to the map it names and the
/// read enters the history.
fn lookup(ctx: &Ctx, at: At, t: Target, key: u32) -> Result<(), ()> {
    let (map, fd, map_type) = (t.name, t.fd, t.map_type);
    let At { task, cpu } = at;
    let (result, inv, resp) = timed(ctx, "map_lookup_elem", || {
        ctx.world.map_lookup_elem(fd, &key.to_le_bytes())
    })?;
    let mim = map_type.is_map_in_map();
    let ids = || ctx.ids.lock().unwrap_or_else(|p| p.into_inner());
    let seen = match &result {
        Ok(bytes) if mim => Ok(Some(
            ids().get(&key_u32(bytes)).copied().unwrap_or(UNKNOWN_ID),
        )),
        Ok(_) => Ok(None),
        Err(e) => Err(*e),
    };
    ctx.rec.line(task, cpu, || {
        let read = match &seen {
            Ok(Some(i)) => show(Some(*i)),
            Ok(None) => "value".into(),
            Err(e) => errno_name(*e),
        };
        format!(
            "map_lookup_elem({map}, {key}) [{}] = {read}",
            kernel_lookup(map_type)
        )
    });
    if mim {
        let result = match seen {
            Ok(s) => Ok(s),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(errno_name(e)),
        };
        let op = HistOp::Read {
            key,
            program: false,
        };
        history(ctx, at, map, op, result, (inv, resp));
    }
    Ok(())
}

/// `create $VAR SHAPE`: a map of that shape whose fd the task keeps under `var`.
fn create_var(
    ctx: &Ctx,
    vars: &mut BTreeMap<String, Fd>,
    At { task, cpu }: At,
    var: &str,
    shape: &str,
) -> Result<(), ()> {
    let value = Value::New(shape.to_string());
    if let Some(prepared) = prepare(ctx, vars, &value, 4, task, cpu)? {
        if let Some((_, fd, _)) = prepared.inner {
            vars.insert(var.to_string(), fd);
        }
    }
    Ok(())
}

/// `close $VAR`: the task's reference goes (`bpf_map_put`).
fn close_var(
    ctx: &Ctx,
    vars: &mut BTreeMap<String, Fd>,
    At { task, cpu }: At,
    var: &str,
) -> Result<(), ()> {
    if let Some(fd) = vars.remove(var) {
        let _ = ctx.check("close", ctx.world.close(fd))?;
        ctx.rec.line(task, cpu, || {
            format!("close(${var} = fd {fd}) [bpf_map_put]")
        });
    }
    Ok(())
}

/// `drain $VAR KEY`: remembers the value, which the teardown reads again.
fn drain(
    ctx: &Ctx,
    vars: &BTreeMap<String, Fd>,
    At { task, cpu }: At,
    var: &str,
    key: u32,
) -> Result<(), ()> {
    let Some(&fd) = vars.get(var) else {
        return Ok(());
    };
    if let Ok(bytes) = ctx.check(
        "map_lookup_elem",
        ctx.world.map_lookup_elem(fd, &key.to_le_bytes()),
    )? {
        ctx.rec
            .line(task, cpu, || format!("drain ${var}[{key}] = {:?}", bytes));
        ctx.drains.lock().unwrap_or_else(|p| p.into_inner()).push((
            fd,
            key,
            bytes,
            var.to_string(),
        ));
    }
    Ok(())
}

/// `BPF_MAP_UPDATE_BATCH`; on an outer map each applied element enters the history.
fn batch_update(
    ctx: &Ctx,
    vars: &BTreeMap<String, Fd>,
    at: At,
    t: Target,
    keys: &[u32],
    value: &Value,
) -> Result<(), ()> {
    let (world, rec) = (&ctx.world, &ctx.rec);
    let (map, fd, map_type) = (t.name, t.fd, t.map_type);
    let At { task, cpu } = at;
    let mut prepared = Vec::new();
    for _ in keys {
        match prepare(ctx, vars, value, 4, task, cpu)? {
            Some(p) => prepared.push(p),
            None => return Ok(()),
        }
    }
    let key_bytes: Vec<Vec<u8>> = keys.iter().map(|k| k.to_le_bytes().to_vec()).collect();
    let values: Vec<Vec<u8>> = prepared.iter().map(|p| p.bytes.clone()).collect();
    let inv = rec.stamp();
    let result = world.map_update_batch(fd, &key_bytes, &values, 0);
    let resp = rec.stamp();
    let (applied, error) = match result {
        Ok(n) => (n, None),
        Err((n, e)) => (n, Some(e)),
    };
    if let Some(Error::Fault(f)) = &error {
        ctx.fail(f.finding(), format!("map_update_batch: {f}"));
        return Err(());
    }
    rec.line(task, cpu, || {
        format!(
            "map_update_batch({map}, {keys:?}) [generic_map_update_batch] applied {applied}{}",
            error
                .as_ref()
                .map_or(String::new(), |e| format!(", then {e}"))
        )
    });
    if map_type.is_map_in_map() {
        for (i, (key, p)) in keys.iter().zip(&prepared).enumerate() {
            let (Some((inner, fd, _)), true) = (p.inner, i < applied as usize) else {
                continue;
            };
            if let Some(attr) = inner_attr_of(ctx, fd) {
                let op = HistOp::Update {
                    key: *key,
                    inner,
                    flags: BPF_ANY,
                    attr: oracle::AttrKey::of(&attr),
                };
                history(ctx, at, map, op, Ok(None), (inv, resp));
            }
        }
    }
    for p in prepared {
        if let Some((_, fd, true)) = p.inner {
            let _ = ctx.check("close", world.close(fd))?;
        }
    }
    Ok(())
}

/// `BPF_MAP_DELETE_BATCH`. Which keys a partial batch deleted depends on the order it met
/// them: the history records none of them, so the per-key check skips keys a batch touched.
fn batch_delete(ctx: &Ctx, at: At, t: Target, keys: &[u32]) -> Result<(), ()> {
    let (map, fd) = (t.name, t.fd);
    let At { task, cpu } = at;
    let key_bytes: Vec<Vec<u8>> = keys.iter().map(|k| k.to_le_bytes().to_vec()).collect();
    let result = ctx.world.map_delete_batch(fd, &key_bytes);
    if let Err((_, Error::Fault(f))) = &result {
        ctx.fail(f.finding(), format!("map_delete_batch: {f}"));
        return Err(());
    }
    ctx.rec.line(task, cpu, || {
        format!(
            "map_delete_batch({map}, {keys:?}) [generic_map_delete_batch] = {:?}",
            result.as_ref().map_err(|(n, e)| (n, e.to_string()))
        )
    });
    for key in keys {
        // A whole batch deleted every key it found; a partial one, keys nobody knows.
        if result.is_ok() && t.map_type.is_map_in_map() {
            ctx.note_table(map, *key, None);
        }
        history(ctx, at, map, HistOp::Opaque { key: *key }, Ok(None), (0, 0));
    }
    Ok(())
}

/// `BPF_MAP_LOOKUP_BATCH` to the end, doubling the count on `ENOSPC`. On an outer map every
/// entry it returns enters the history as a user-space read over the whole batch's interval:
/// the key was present, holding the inner map that id names, at some point of it.
fn batch_lookup(ctx: &Ctx, at: At, t: Target) -> Result<(), ()> {
    let (map, fd) = (t.name, t.fd);
    let At { task, cpu } = at;
    let mim = t.map_type.is_map_in_map();
    let mut token = None;
    let mut count = 2;
    let mut read: Vec<(u32, MapIdent)> = Vec::new();
    let mut total = 0;
    let inv = if mim { ctx.rec.stamp() } else { 0 };
    for _ in 0..mimic_core::model::ops::BATCH_CALL_LIMIT {
        match ctx.check(
            "map_lookup_batch",
            ctx.world.map_lookup_batch(fd, token, count),
        )? {
            Ok(out) => {
                total += out.keys.len();
                if mim {
                    let ids = ctx.ids.lock().unwrap_or_else(|p| p.into_inner());
                    for (key, value) in out.keys.iter().zip(&out.values) {
                        let seen = ids.get(&key_u32(value)).copied().unwrap_or(UNKNOWN_ID);
                        read.push((key_u32(key), seen));
                    }
                }
                token = Some(out.next);
                if out.done {
                    break;
                }
            }
            Err(Errno::ENOSPC) => count *= 2,
            Err(_) => break,
        }
    }
    let resp = if mim { ctx.rec.stamp() } else { 0 };
    ctx.rec.line(task, cpu, || {
        format!("map_lookup_batch({map}) [generic_map_lookup_batch] = {total} entries")
    });
    for (key, seen) in read {
        let op = HistOp::Read {
            key,
            program: false,
        };
        history(ctx, at, map, op, Ok(Some(seen)), (inv, resp));
    }
    Ok(())
}
