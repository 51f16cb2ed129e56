//! The user-space ops of a scenario (update, delete, lookup, create, close, drain, batches,
//! yield), each a syscall on the world recorded in the trace and the history.

use super::*;

#[derive(Debug, Clone)]
pub(super) enum Value {
    Number(u64),
    New(String),
    Var(String),
    Map(String),
}

pub(super) fn parse_value(text: &str) -> Value {
    if let Some(shape) = text.strip_prefix("new:") {
        Value::New(shape.to_string())
    } else if let Some(var) = text.strip_prefix('$') {
        Value::Var(var.to_string())
    } else if let Ok(n) = text.parse() {
        Value::Number(n)
    } else {
        Value::Map(text.to_string())
    }
}

#[derive(Debug, Clone)]
pub(super) enum UserOp {
    Update {
        map: String,
        key: u32,
        value: Value,
        flags: u64,
    },
    Delete {
        map: String,
        key: u32,
    },
    Lookup {
        map: String,
        key: u32,
    },
    Create {
        var: String,
        shape: String,
    },
    Close {
        var: String,
    },
    Drain {
        var: String,
        key: u32,
    },
    BatchUpdate {
        map: String,
        keys: Vec<u32>,
        value: Value,
    },
    BatchDelete {
        map: String,
        keys: Vec<u32>,
    },
    BatchLookup {
        map: String,
    },
    Yield(u32),
}

/// Parses a validated op (validation already named any error with its position).
pub(super) fn parse_op(op: &str) -> Option<UserOp> {
    let w: Vec<&str> = op.split_whitespace().collect();
    let var = |s: &str| s.trim_start_matches('$').to_string();
    let keys = |s: &str| s.split(',').filter_map(|k| k.parse().ok()).collect();
    Some(match *w.first()? {
        "update" => UserOp::Update {
            map: w.get(1)?.to_string(),
            key: w.get(2)?.parse().ok()?,
            value: parse_value(w.get(3)?),
            flags: match w.get(4).copied() {
                Some("noexist") => BPF_NOEXIST,
                Some("exist") => BPF_EXIST,
                _ => BPF_ANY,
            },
        },
        "delete" => UserOp::Delete {
            map: w.get(1)?.to_string(),
            key: w.get(2)?.parse().ok()?,
        },
        "lookup" => UserOp::Lookup {
            map: w.get(1)?.to_string(),
            key: w.get(2)?.parse().ok()?,
        },
        "create" => UserOp::Create {
            var: var(w.get(1)?),
            shape: w.get(2)?.to_string(),
        },
        "close" => UserOp::Close {
            var: var(w.get(1)?),
        },
        "drain" => UserOp::Drain {
            var: var(w.get(1)?),
            key: w.get(2)?.parse().ok()?,
        },
        "batch_update" => UserOp::BatchUpdate {
            map: w.get(1)?.to_string(),
            keys: keys(w.get(2)?),
            value: parse_value(w.get(3)?),
        },
        "batch_delete" => UserOp::BatchDelete {
            map: w.get(1)?.to_string(),
            keys: keys(w.get(2)?),
        },
        "batch_lookup" => UserOp::BatchLookup {
            map: w.get(1)?.to_string(),
        },
        "yield" => UserOp::Yield(w.get(1)?.parse().ok()?),
        _ => return None,
    })
}

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
    let world = &ctx.world;
    let rec = &ctx.rec;
    match op {
        UserOp::Update {
            map,
            key,
            value,
            flags,
        } => {
            let Some((fd, map_type)) = resolve(ctx, vars, map) else {
                return Ok(());
            };
            let value_size = world
                .map_def(world.map_handle(fd).map_err(|_| ())?)
                .map(|d| d.value_size)
                .unwrap_or(4) as usize;
            let Some(prepared) = prepare(ctx, vars, value, value_size, task, cpu)? else {
                return Ok(());
            };
            let inner_attr = prepared.inner.and_then(|(_, fd, _)| inner_attr_of(ctx, fd));
            let inv = rec.stamp();
            let result = ctx.check(
                "map_update_elem",
                world.map_update_elem(fd, &key.to_le_bytes(), &prepared.bytes, *flags),
            )?;
            let resp = rec.stamp();
            let mim = map_type.is_map_in_map();
            rec.line(task, cpu, || {
                format!(
                    "map_update_elem({map}, {key}, {}, flags {flags}) [{}{}] = {}",
                    prepared
                        .inner
                        .map_or(format!("{value:?}"), |(i, _, _)| show(Some(i))),
                    kernel_update(map_type),
                    if mim && result.is_ok() {
                        "; synchronize_rcu"
                    } else {
                        ""
                    },
                    result.map_or_else(errno_name, |_| "0".into())
                )
            });
            if let (true, Some((inner, _, _)), Some(attr)) = (mim, prepared.inner, inner_attr) {
                rec.event(HistEvent {
                    task,
                    outer: map.clone(),
                    op: HistOp::Update {
                        key: *key,
                        inner,
                        flags: *flags,
                        attr: oracle::AttrKey::of(&attr),
                    },
                    result: result.map(|_| None).map_err(errno_name),
                    inv,
                    resp,
                });
            }
            if let Some((_, fd, true)) = prepared.inner {
                let _ = ctx.check("close", world.close(fd))?;
                rec.line(task, cpu, || format!("close(fd {fd}) [bpf_map_put]"));
            }
        }
        UserOp::Delete { map, key } => {
            let Some((fd, map_type)) = resolve(ctx, vars, map) else {
                return Ok(());
            };
            let inv = rec.stamp();
            let result = ctx.check(
                "map_delete_elem",
                world.map_delete_elem(fd, &key.to_le_bytes()),
            )?;
            let resp = rec.stamp();
            let mim = map_type.is_map_in_map();
            rec.line(task, cpu, || {
                format!(
                    "map_delete_elem({map}, {key}) [{}{}] = {}",
                    kernel_delete(map_type),
                    if mim && result.is_ok() {
                        "; synchronize_rcu"
                    } else {
                        ""
                    },
                    result.map_or_else(errno_name, |_| "0".into())
                )
            });
            if mim {
                rec.event(HistEvent {
                    task,
                    outer: map.clone(),
                    op: HistOp::Delete { key: *key },
                    result: result.map(|_| None).map_err(errno_name),
                    inv,
                    resp,
                });
            }
        }
        UserOp::Lookup { map, key } => {
            let Some((fd, map_type)) = resolve(ctx, vars, map) else {
                return Ok(());
            };
            let inv = rec.stamp();
            let result = ctx.check(
                "map_lookup_elem",
                world.map_lookup_elem(fd, &key.to_le_bytes()),
            )?;
            let resp = rec.stamp();
            let mim = map_type.is_map_in_map();
            let seen = match &result {
                Ok(bytes) if mim => {
                    let id = key_u32(bytes);
                    Ok(Some(
                        ctx.ids
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get(&id)
                            .copied()
                            .unwrap_or((u32::MAX, 0)),
                    ))
                }
                Ok(_) => Ok(None),
                Err(e) => Err(*e),
            };
            rec.line(task, cpu, || {
                format!(
                    "map_lookup_elem({map}, {key}) [{}] = {}",
                    kernel_lookup(map_type),
                    match &seen {
                        Ok(Some(i)) => show(Some(*i)),
                        Ok(None) => "value".into(),
                        Err(e) => errno_name(*e),
                    }
                )
            });
            if mim {
                let result = match seen {
                    Ok(s) => Ok(s),
                    Err(Errno::ENOENT) => Ok(None),
                    Err(e) => Err(errno_name(e)),
                };
                rec.event(HistEvent {
                    task,
                    outer: map.clone(),
                    op: HistOp::Read {
                        key: *key,
                        program: false,
                    },
                    result,
                    inv,
                    resp,
                });
            }
        }
        UserOp::Create { var, shape } => {
            if let Some(prepared) = prepare(ctx, vars, &Value::New(shape.clone()), 4, task, cpu)? {
                if let Some((_, fd, _)) = prepared.inner {
                    vars.insert(var.clone(), fd);
                }
            }
        }
        UserOp::Close { var } => {
            if let Some(fd) = vars.remove(var) {
                let _ = ctx.check("close", world.close(fd))?;
                rec.line(task, cpu, || {
                    format!("close(${var} = fd {fd}) [bpf_map_put]")
                });
            }
        }
        UserOp::Drain { var, key } => {
            if let Some(&fd) = vars.get(var) {
                if let Ok(bytes) = ctx.check(
                    "map_lookup_elem",
                    world.map_lookup_elem(fd, &key.to_le_bytes()),
                )? {
                    rec.line(task, cpu, || format!("drain ${var}[{key}] = {:?}", bytes));
                    ctx.drains.lock().unwrap_or_else(|p| p.into_inner()).push((
                        fd,
                        *key,
                        bytes,
                        var.clone(),
                    ));
                }
            }
        }
        UserOp::BatchUpdate { map, keys, value } => {
            let Some((fd, map_type)) = resolve(ctx, vars, map) else {
                return Ok(());
            };
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
            rec.line(task, cpu, || format!("map_update_batch({map}, {keys:?}) [generic_map_update_batch] applied {applied}{}", error.as_ref().map_or(String::new(), |e| format!(", then {e}"))));
            if map_type.is_map_in_map() {
                for (i, (key, p)) in keys.iter().zip(&prepared).enumerate() {
                    let (Some((inner, fd, _)), true) = (p.inner, i < applied as usize) else {
                        continue;
                    };
                    if let Some(attr) = inner_attr_of(ctx, fd) {
                        rec.event(HistEvent {
                            task,
                            outer: map.clone(),
                            op: HistOp::Update {
                                key: *key,
                                inner,
                                flags: BPF_ANY,
                                attr: oracle::AttrKey::of(&attr),
                            },
                            result: Ok(None),
                            inv,
                            resp,
                        });
                    }
                }
            }
            for p in prepared {
                if let Some((_, fd, true)) = p.inner {
                    let _ = ctx.check("close", world.close(fd))?;
                }
            }
        }
        UserOp::BatchDelete { map, keys } => {
            let Some((fd, _)) = resolve(ctx, vars, map) else {
                return Ok(());
            };
            let key_bytes: Vec<Vec<u8>> = keys.iter().map(|k| k.to_le_bytes().to_vec()).collect();
            let result = world.map_delete_batch(fd, &key_bytes);
            if let Err((_, Error::Fault(f))) = &result {
                ctx.fail(f.finding(), format!("map_delete_batch: {f}"));
                return Err(());
            }
            // Which keys a partial batch deleted depends on the order it met them: the
            // history records none of them, so the per-key check skips keys a batch touched.
            rec.line(task, cpu, || {
                format!(
                    "map_delete_batch({map}, {keys:?}) [generic_map_delete_batch] = {:?}",
                    result.as_ref().map_err(|(n, e)| (n, e.to_string()))
                )
            });
            for key in keys {
                rec.event(HistEvent {
                    task,
                    outer: map.clone(),
                    op: HistOp::Opaque { key: *key },
                    result: Ok(None),
                    inv: 0,
                    resp: 0,
                });
            }
        }
        UserOp::BatchLookup { map } => {
            let Some((fd, _)) = resolve(ctx, vars, map) else {
                return Ok(());
            };
            let mut token = None;
            let mut count = 2;
            let mut total = 0;
            for _ in 0..mimic_core::model::ops::BATCH_CALL_LIMIT {
                match ctx.check("map_lookup_batch", world.map_lookup_batch(fd, token, count))? {
                    Ok(out) => {
                        total += out.keys.len();
                        token = Some(out.next);
                        if out.done {
                            break;
                        }
                    }
                    Err(Errno::ENOSPC) => count *= 2,
                    Err(_) => break,
                }
            }
            rec.line(task, cpu, || {
                format!("map_lookup_batch({map}) [generic_map_lookup_batch] = {total} entries")
            });
        }
        UserOp::Yield(n) => {
            for _ in 0..*n {
                P::yield_now();
            }
        }
    }
    Ok(())
}
