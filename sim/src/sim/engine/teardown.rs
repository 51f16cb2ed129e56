//! The end of a run: drained and pinned values checked, then the core's teardown audit.

use super::*;

/// The scenario's `checks.values`, read from user space (`BPF_MAP_LOOKUP_ELEM`, and for an
/// inner map `BPF_MAP_GET_FD_BY_ID` on the id the outer map returns).
pub(super) fn check_values(ctx: &Ctx) -> Result<(), ()> {
    let world = &ctx.world;
    for check in &ctx.scenario.checks.values {
        let Some(&(fd, _)) = ctx.maps.get(&check.map) else {
            ctx.fail(
                Finding::Setup,
                format!("checks.values: no map `{}`", check.map),
            );
            return Err(());
        };
        let (fd, key, path, opened) = match check.inner_key {
            None => (fd, check.key, format!("{}[{}]", check.map, check.key), None),
            Some(inner_key) => {
                let Ok(id) = ctx.check(
                    "map_lookup_elem",
                    world.map_lookup_elem(fd, &check.key.to_le_bytes()),
                )?
                else {
                    continue;
                };
                let id = u32::from_le_bytes(
                    id.get(..4)
                        .and_then(|b| b.try_into().ok())
                        .unwrap_or([0; 4]),
                );
                let Ok(inner) = ctx.check("map_get_fd_by_id", world.map_get_fd_by_id(id))? else {
                    continue;
                };
                let path = format!("{}[{}][{inner_key}]", check.map, check.key);
                (inner, inner_key, path, Some(inner))
            }
        };
        let read = ctx.check(
            "map_lookup_elem",
            world.map_lookup_elem(fd, &key.to_le_bytes()),
        )?;
        if let Some(inner) = opened {
            let _ = ctx.check("close", world.close(inner))?;
        }
        let Ok(bytes) = read else { continue };
        let mut le = [0u8; 8];
        for (b, v) in le.iter_mut().zip(&bytes) {
            *b = *v;
        }
        let value = u64::from_le_bytes(le);
        ctx.rec.line(0, 0, || format!("check: {path} = {value}"));
        if value != check.equals {
            ctx.fail(
                Finding::WrongValue,
                format!("{path} reads {value} from user space, expected {} (a program wrote to the wrong element)", check.equals),
            );
            return Err(());
        }
    }
    Ok(())
}

pub(super) fn teardown(ctx: &Ctx) {
    let world = &ctx.world;
    if ctx.failed() {
        return;
    }
    for (fd, key, drained, var) in ctx.drains.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        if let Ok(Ok(now)) = ctx.check(
            "map_lookup_elem",
            world.map_lookup_elem(fd, &key.to_le_bytes()),
        ) {
            if now != drained {
                ctx.fail(
                    Finding::LostUpdate,
                    format!("${var}[{key}] was drained as {drained:?} after the swap, but a program wrote {now:?} into it later (the update returned while a program still used the old inner map)"),
                );
                return;
            }
        }
    }
    if check_values(ctx).is_err() {
        return;
    }
    // The programs are the world's objects: closing their fds with the others unloads them
    // (and frees them, with their map references, after the grace period).
    let programs = std::iter::empty();
    let closed = || {
        ctx.rec.line(0, 0, || {
            "teardown: programs unloaded, all fds closed; rcu_barrier".into()
        })
    };
    if let Err((step, e)) = world.teardown_audit(programs, closed) {
        let otherwise = match step {
            TeardownStep::Conservation => Finding::Conservation,
            TeardownStep::Quiescence => Finding::Leak,
            TeardownStep::Unload(_) | TeardownStep::Close(_) => Finding::UnexpectedErrno,
        };
        ctx.fail(
            e.fault().map_or(otherwise, Fault::finding),
            format!("{step}: {e}"),
        );
    }
}
