//! Helper calls checked against the prototypes of [`crate::bpf::helpers`], map type × helper
//! compatibility (outer maps allow only lookup), the constant-key null-check elision for arrays,
//! bpf-to-bpf calls, and `exit`.

use super::check::{ctx_ptr_unmodified, mem_access, read_reg, Access};
use super::state::{Frame, Reg, RegType, SlotByte, VState, MAX_FRAMES, MAX_STACK};
use super::{refuse, Env, Next, ProgType, Refuse, EINVAL};
use crate::bpf::helper_names;
use crate::bpf::helpers::{ArgType, Callee, HelperId, HelperProto, Programs, RetType};
use crate::history::Feature;
use crate::isa::{CallTarget, Size};
use crate::maps::kind::kind;
use crate::uapi::{MapType, BPF_F_RDONLY_PROG};

pub(crate) fn call(
    env: &mut Env<'_>,
    pc: usize,
    target: CallTarget,
    st: &mut VState,
) -> Result<Next, Refuse> {
    match target {
        CallTarget::Helper(imm) => {
            helper_call(env, pc, imm, st)?;
            Ok(Next::Goto(pc + 1))
        }
        CallTarget::Local(imm) => {
            if st.frames.len() >= MAX_FRAMES {
                return refuse(format!(
                    "the call stack of {} frames is too deep !",
                    st.frames.len() + 1
                ));
            }
            let callee = (pc as i64 + 1 + i64::from(imm)) as usize;
            let depth = st.frames.len() as u8;
            let mut frame = Frame::new(depth, pc + 1, callee);
            for r in 1..=5 {
                frame.regs[r] = st.cur().regs[r];
            }
            st.frames.push(frame);
            Ok(Next::Goto(callee))
        }
        CallTarget::Kfunc(_) => refuse("calling kernel functions is not supported"),
    }
}

fn helper_call(env: &mut Env<'_>, pc: usize, imm: i32, st: &mut VState) -> Result<(), Refuse> {
    let proto: &HelperProto = match Callee::from_imm(imm) {
        Some(Callee::Helper(id)) => id.proto(),
        // A helper the kernel numbers but mimic does not model is refused as the kernel refuses
        // one a program type lacks; an id it does not number as the kernel refuses that.
        _ if helper_names::known(imm) => {
            return Err(Refuse {
                message: format!(
                    "program of this type cannot use helper {}#{imm}",
                    helper_names::name(imm)
                ),
                errno: EINVAL,
            })
        }
        _ => {
            return Err(Refuse {
                message: format!("invalid func unknown#{imm}"),
                errno: EINVAL,
            })
        }
    };
    let allowed = match proto.programs {
        Programs::Any => true,
        Programs::Packet => env.opts.prog_type.is_packet(),
        Programs::Xdp => env.opts.prog_type == ProgType::Xdp,
        Programs::Tc => env.opts.prog_type == ProgType::SchedCls,
    };
    if !allowed {
        return Err(Refuse {
            message: format!(
                "program of this type cannot use helper {}#{}",
                proto.name, proto.id as i32
            ),
            errno: EINVAL,
        });
    }
    let mut map: Option<u32> = None;
    let mut const_key: Option<u64> = None;
    // The stack slot a constant key was spilled in (precision tracking must keep it exact).
    let mut key_slot: Option<(u8, u8)> = None;
    // A memory argument waits for the size argument after it; memory the helper fills is
    // written (unknown bytes) once the arguments are checked.
    let mut mem: Option<(u8, Reg)> = None;
    let mut filled: Option<(u8, u32)> = None;
    for (i, arg) in proto.args.iter().enumerate() {
        let r = (i + 1) as u8;
        let reg = read_reg(st, r)?;
        let memory = matches!(
            arg,
            ArgType::PtrToMapKey
                | ArgType::PtrToMapValue
                | ArgType::PtrToMem
                | ArgType::PtrToMemOrNull
                | ArgType::PtrToUninitMem
        );
        if memory && matches!(reg.ty, RegType::Packet | RegType::PacketMeta) && !proto.pkt_access {
            return Err(Refuse {
                message: "helper access to the packet is not allowed".into(),
                errno: super::EACCES,
            });
        }
        match arg {
            ArgType::ConstMapPtr => {
                if reg.ty != RegType::ConstPtrToMap {
                    return refuse(format!("R{r} type={} expected=map_ptr", env.type_str(&reg)));
                }
                check_map_func(env, reg.map, proto)?;
                map = Some(reg.map);
            }
            ArgType::PtrToMapKey | ArgType::PtrToMapValue => {
                let Some(m) = map else {
                    return refuse(format!(
                        "invalid map_ptr to access map->{}",
                        if *arg == ArgType::PtrToMapKey {
                            "key"
                        } else {
                            "value"
                        }
                    ));
                };
                let desc = &env.maps[m as usize];
                let size = if *arg == ArgType::PtrToMapKey {
                    desc.key_size
                } else {
                    desc.value_size
                };
                let v = check_helper_mem(env, st, r, reg, size)?;
                if *arg == ArgType::PtrToMapKey {
                    const_key = v;
                    if let (Some(_), Some(var)) = (v, reg.var.const_value()) {
                        let off = i64::from(reg.off).wrapping_add(var as i64);
                        key_slot = Some((reg.frame, ((-off - 1) / 8) as u8));
                    }
                }
            }
            ArgType::Anything => {}
            ArgType::PtrToMemOrNull | ArgType::PtrToMem => {
                let null_ok = *arg == ArgType::PtrToMemOrNull;
                let ok = is_mem(&reg) || (null_ok && is_null(&reg));
                if !ok {
                    return refuse(mem_expected(env, r, &reg));
                }
                mem = Some((r, reg));
            }
            ArgType::PtrToUninitMem => {
                if !matches!(reg.ty, RegType::Stack | RegType::MapValue) {
                    return refuse(mem_expected(env, r, &reg));
                }
                filled = Some((r, 0));
                mem = Some((r, reg));
            }
            ArgType::ConstSizeOrZero | ArgType::ConstSize => {
                let Some((m, ptr)) = mem.take() else {
                    return refuse("kernel subsystem misconfigured verifier");
                };
                let zero_ok = *arg == ArgType::ConstSizeOrZero;
                env.need_precise(st, r);
                match &mut filled {
                    Some((f, bytes)) if *f == m => {
                        *bytes = check_filled_size(env, r, reg, m, ptr)?;
                    }
                    _ => check_mem_size(env, st, r, reg, m, ptr, zero_ok)?,
                }
            }
            ArgType::PtrToCtx => {
                if reg.ty != RegType::Ctx {
                    return refuse(format!("R{r} type={} expected=ctx", env.type_str(&reg)));
                }
                ctx_ptr_unmodified(r, &reg)?;
            }
        }
    }
    if let Some(m) = map {
        env.record_map(pc, m);
    }
    // `record_func_key`, before the map × helper table: only a `PROG_ARRAY` takes a tail call.
    if proto.id == HelperId::TailCall
        && map.and_then(|m| env.maps[m as usize].kind()) != Some(MapType::ProgArray)
    {
        return Err(Refuse {
            message: "expected prog array map for tail call".into(),
            errno: EINVAL,
        });
    }
    // A constant in-range index is recorded for the call (the kernel's `record_func_key`), so
    // it must stay exact.
    if proto.id == HelperId::TailCall {
        let max = map.map_or(0, |m| env.maps[m as usize].max_entries);
        if let Some(k) = st.cur().regs[3].const_scalar() {
            if k < u64::from(max) {
                env.need_precise(st, 3);
            }
        }
    }
    // The helper wrote every byte it was given (the kernel's byte writes of an unknown value
    // after a raw-mode argument).
    if let Some((m, bytes)) = filled {
        for i in 0..bytes {
            mem_access(
                env,
                st,
                m,
                i as i16,
                Size::B,
                Access::Write(Reg::unknown(), true),
            )?;
        }
    }
    let ret = match proto.ret {
        RetType::Integer => Reg::unknown(),
        RetType::Void => Reg::NOT_INIT,
        RetType::PtrToMapValueOrNull => {
            let Some(m) = map else {
                return refuse("kernel subsystem misconfigured verifier");
            };
            let desc = &env.maps[m as usize];
            // Arrays of a fixed size cannot miss a constant in-bounds key: no null check needed.
            // A BPF_F_INNER_MAP array may be replaced by a smaller one at run time: nullable.
            // Before 6.14 (`history`), every lookup result needed its null check.
            let never_misses = desc.kind().is_some_and(|t| kind(t).const_key_never_misses)
                && !env.opts.lacks.lacks(Feature::ConstKeyNonNull);
            let dynamic = desc.is_dynamic_inner();
            let max_entries = desc.max_entries;
            // The kernel's `get_constant_map_key` relies on a spilled constant key exactly.
            if let (true, Some((frame, slot))) = (never_misses, key_slot) {
                env.need_precise_slot(frame, slot);
            }
            let non_null =
                never_misses && !dynamic && const_key.is_some_and(|k| k < u64::from(max_entries));
            if non_null {
                Reg::pointer(RegType::MapValue, m)
            } else {
                let mut r = Reg::pointer(RegType::MapValueOrNull, m);
                r.id = env.new_id();
                r
            }
        }
    };
    let frame = st.cur_mut();
    for r in 1..=5 {
        frame.regs[r] = Reg::NOT_INIT;
    }
    frame.regs[0] = ret;
    if proto.changes_pkt_data {
        // The packet may have moved: no pointer into it (or to its end) is valid any more
        // (the kernel's `clear_all_pkt_pointers`; with pointer leaks allowed they are plain
        // unknown scalars, otherwise unreadable).
        let privileged = env.opts.privileged;
        st.for_each_reg(|reg| {
            if matches!(
                reg.ty,
                RegType::Packet | RegType::PacketMeta | RegType::PacketEnd
            ) {
                *reg = if privileged {
                    Reg::unknown()
                } else {
                    Reg::NOT_INIT
                };
            }
        });
    }
    Ok(())
}

/// The kernel's `check_map_func_compatibility`, for the maps the model has.
fn check_map_func(env: &Env<'_>, map: u32, proto: &HelperProto) -> Result<(), Refuse> {
    let desc = &env.maps[map as usize];
    // Both directions: the map kind limits the helpers (map-in-map: lookups only), and the
    // helper may limit the kinds (another CPU's copy needs a per-CPU map).
    let allowed = desc.kind().is_none_or(|t| {
        kind(t).allows_helper(proto.id as u32)
            && (proto.map_types.is_empty() || proto.map_types.contains(&t))
    });
    if !allowed {
        return refuse(format!(
            "cannot pass map_type {} into func {}#{}",
            desc.map_type, proto.name, proto.id as i32
        ));
    }
    Ok(())
}

fn is_null(reg: &Reg) -> bool {
    reg.ty == RegType::Scalar && reg.var.const_value() == Some(0)
}

/// The pointer types a helper's memory argument may be.
fn is_mem(reg: &Reg) -> bool {
    matches!(
        reg.ty,
        RegType::Stack
            | RegType::Packet
            | RegType::PacketMeta
            | RegType::MapValue
            | RegType::MapKey
    )
}

fn mem_expected(env: &Env<'_>, r: u8, reg: &Reg) -> String {
    format!(
        "R{r} type={} expected=fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_",
        env.type_str(reg)
    )
}

/// The size of memory a helper fills (`ARG_PTR_TO_UNINIT_MEM`): the size checks of
/// [`check_mem_size`] (never zero), then the memory checked for a write of the size's largest
/// value as one range, its bytes needing no initialisation. Returns that size.
fn check_filled_size(env: &Env<'_>, r: u8, size: Reg, m: u8, ptr: Reg) -> Result<u32, Refuse> {
    check_size_reg(env, r, &size, false)?;
    let bytes = size.var.umax as u32;
    match ptr.ty {
        RegType::Stack => {
            let Some(var) = ptr.var.const_value() else {
                return refuse(format!(
                    "R{m} variable stack access prohibited: var_off={}",
                    ptr.var.var
                ));
            };
            let off = i64::from(ptr.off).saturating_add(var as i64);
            if off < -i64::from(MAX_STACK) || off + i64::from(bytes) > 0 {
                return refuse(format!(
                    "invalid write to stack R{m} off={off} size={bytes}"
                ));
            }
        }
        _ => {
            // A map value, as the kernel checks a helper's write of the whole range: the map
            // must be writable by programs, then the range's lowest and highest start.
            let desc = &env.maps[ptr.map as usize];
            let limit = i64::from(desc.value_size);
            let off = i64::from(ptr.off);
            if desc.map_flags & BPF_F_RDONLY_PROG != 0 {
                return refuse(format!(
                    "write into map forbidden, value_size={limit} off={off} size={bytes}"
                ));
            }
            let lo = off.saturating_add(ptr.var.smin);
            if ptr.var.smin < 0 && lo < 0 {
                return refuse(format!(
                    "R{m} min value is negative, either use unsigned index or do a if (index >=0) check."
                ));
            }
            let outside = |at: i64| at < 0 || at + i64::from(bytes) > limit;
            if outside(lo) {
                return refuse(format!(
                    "invalid access to map value, value_size={limit} off={lo} size={bytes}"
                ));
            }
            if ptr.var.umax >= 1 << 29 {
                return refuse(format!(
                    "R{m} unbounded memory access, make sure to bounds check any such access"
                ));
            }
            let hi = off + ptr.var.umax as i64;
            if outside(hi) {
                return refuse(format!(
                    "invalid access to map value, value_size={limit} off={hi} size={bytes}"
                ));
            }
        }
    }
    Ok(bytes)
}

/// The scalar checks of a size argument (the first half of the kernel's `check_mem_size_reg`).
fn check_size_reg(env: &Env<'_>, r: u8, size: &Reg, zero_ok: bool) -> Result<(), Refuse> {
    if size.ty != RegType::Scalar {
        return refuse(format!("R{r} type={} expected=scalar", env.type_str(size)));
    }
    if size.var.smin < 0 {
        return refuse(format!(
            "R{r} min value is negative, either use unsigned or 'var &= const'"
        ));
    }
    if size.var.umin == 0 && !zero_ok {
        return refuse(format!(
            "R{r} invalid zero-sized read: u64=[{},{}]",
            size.var.umin, size.var.umax
        ));
    }
    if size.var.umax >= 1 << 29 {
        return refuse(format!(
            "R{r} unbounded memory access, use 'var &= const' or 'if (var < const)'"
        ));
    }
    Ok(())
}

/// The kernel's `check_mem_size_reg`: register `r` holds the size of the memory argument `m`
/// (`ptr`), a non-negative scalar of bounded value; the memory is checked for its largest value
/// (NULL, or any memory, for a size that is only ever 0).
fn check_mem_size(
    env: &mut Env<'_>,
    st: &mut VState,
    r: u8,
    size: Reg,
    m: u8,
    ptr: Reg,
    zero_ok: bool,
) -> Result<(), Refuse> {
    check_size_reg(env, r, &size, zero_ok)?;
    let bytes = size.var.umax as u32;
    if bytes == 0 {
        // Nothing is read, but a pointer must still be where it may point (the kernel checks
        // the access with a size of 0).
        return match ptr.ty {
            RegType::Packet | RegType::PacketMeta => {
                super::packet::access(m, &ptr, i64::from(ptr.off), 0, true)
            }
            RegType::Stack => match ptr.var.const_value() {
                Some(var) => {
                    let off = i64::from(ptr.off).saturating_add(var as i64);
                    if off < -i64::from(MAX_STACK) || off > 0 {
                        return refuse(format!("invalid read from stack R{m} off={off} size=0"));
                    }
                    Ok(())
                }
                None => Ok(()),
            },
            _ => Ok(()),
        };
    }
    if is_null(&ptr) {
        // Only zero bytes may be read through NULL.
        return refuse(format!("R{m} type={} expected=fp", env.type_str(&ptr)));
    }
    if ptr.ty == RegType::Stack {
        // A read-only memory argument is checked as a read (a map key as a helper access).
        if let Some(var) = ptr.var.const_value() {
            let off = i64::from(ptr.off).saturating_add(var as i64);
            if off < -i64::from(MAX_STACK) || off + i64::from(bytes) > 0 {
                return refuse(format!(
                    "invalid read from stack R{m} off={off} size={bytes}"
                ));
            }
        }
    }
    check_helper_mem(env, st, m, ptr, bytes).map(|_| ())
}

/// A pointer to `size` readable bytes (key or value) passed to a helper. Returns the key's
/// value when it is a constant on the stack (for the array null-check elision).
fn check_helper_mem(
    env: &mut Env<'_>,
    st: &mut VState,
    r: u8,
    reg: Reg,
    size: u32,
) -> Result<Option<u64>, Refuse> {
    match reg.ty {
        RegType::Stack => {
            let Some(var) = reg.var.const_value() else {
                return refuse(format!(
                    "R{r} variable stack access prohibited: var_off={}",
                    reg.var.var
                ));
            };
            let off = i64::from(reg.off).saturating_add(var as i64);
            if off < -i64::from(MAX_STACK) || off + i64::from(size) > 0 || size == 0 {
                return refuse(format!(
                    "invalid indirect access to stack R{r} off={off} size={size}"
                ));
            }
            let frame = &st.frames[reg.frame as usize];
            let off = off as i32;
            // A slot holding a whole spilled register gives a constant key only when the
            // spilled bytes from the key's start to the slot's end are exactly the key, and
            // then the key is the spilled value (the kernel's get_constant_map_key: an 8-byte
            // spill of 1 under a 4-byte key at its start is not a constant key).
            let first = frame.slot(((-off - 1) / 8) as usize);
            if first.is_spill() {
                let spilled = 8 - off.rem_euclid(8) as u32;
                let value = first.spill.const_scalar().filter(|_| spilled == size);
                for i in 0..size as i32 {
                    let k = off + i;
                    let slot = frame.slot(((-k - 1) / 8) as usize);
                    if slot.bytes[k.rem_euclid(8) as usize] == SlotByte::Invalid
                        && !env.opts.privileged
                    {
                        return refuse(format!(
                            "invalid indirect read from stack R{r} off {off}+{i} size {size}"
                        ));
                    }
                }
                return Ok(value);
            }
            let mut value: u64 = 0;
            let mut known = size <= 8;
            for i in 0..size as i32 {
                let k = off + i;
                let slot = frame.slot(((-k - 1) / 8) as usize);
                let bi = k.rem_euclid(8) as usize;
                // Privileged programs may read uninitialised stack (`allow_uninit_stack`).
                if slot.bytes[bi] == SlotByte::Invalid && !env.opts.privileged {
                    return refuse(format!(
                        "invalid indirect read from stack R{r} off {off}+{i} size {size}"
                    ));
                }
                let byte = slot.bytes[bi].known(&slot.spill, bi);
                match byte {
                    Some(b) if known => value |= u64::from(b) << (8 * i),
                    _ => known = false,
                }
            }
            Ok(known.then_some(value))
        }
        RegType::Packet | RegType::PacketMeta => {
            let off = i64::from(reg.off);
            super::packet::access(r, &reg, off, i64::from(size), false)?;
            Ok(None)
        }
        RegType::MapValue | RegType::MapKey => {
            // Same bounds as a load of `size` bytes, checked byte range by byte range.
            let mut checked = 0u32;
            while checked < size {
                let chunk = (size - checked).min(8);
                let sz = match chunk {
                    8 => Size::DW,
                    4..=7 => Size::W,
                    2..=3 => Size::H,
                    _ => Size::B,
                };
                mem_access(env, st, r, checked as i16, sz, Access::Read)?;
                checked += u32::from(sz.bytes());
            }
            Ok(None)
        }
        _ => refuse(mem_expected(env, r, &reg)),
    }
}

pub(crate) fn exit(env: &mut Env<'_>, st: &mut VState) -> Result<Next, Refuse> {
    let r0 = read_reg(st, 0)?;
    if st.frames.len() > 1 {
        if r0.ty == RegType::Stack && r0.frame == st.depth() {
            return refuse("cannot return stack pointer to the caller");
        }
        let callee = st.frames.pop().ok_or_else(|| Refuse {
            message: "no frame".into(),
            errno: EINVAL,
        })?;
        let frame = st.cur_mut();
        frame.regs[0] = r0;
        for r in 1..=5 {
            frame.regs[r] = Reg::NOT_INIT;
        }
        return Ok(Next::Goto(callee.ret_pc));
    }
    if r0.ty != RegType::Scalar && !env.opts.privileged {
        return refuse("R0 leaks addr as return value");
    }
    Ok(Next::Done)
}
