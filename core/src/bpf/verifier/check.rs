//! Checks of one instruction against the current state (ALU, loads and stores, jumps), in the
//! kernel's words. Calls and `exit` are in [`super::calls`].

use super::bounds::{self, AluError, Scalar};
use super::btf_walk;
use super::state::{Reg, RegType, SlotByte, VState, MAX_STACK, NREGS};
use super::{
    calls, packet, refuse, Env, Next, ProgType, Refuse, EINVAL, RAW_TP_CTX_MAX, SYSCALL_CTX_MAX,
    TRACEPOINT_CTX_MAX,
};
use crate::bpf::skb::{self, CtxField};
use crate::bpf::xdp::xdp_md;
use crate::isa::{AluOp, AtomicOp, Cond, Ld64, Op, Operand, Size, Width, FP};
use crate::uapi::{MapType, BPF_F_RDONLY_PROG};

/// The kernel refuses variable offsets whose bound reaches this (`BPF_MAX_VAR_OFF`).
const MAX_VAR_OFF: i64 = 1 << 29;

pub(crate) fn step(env: &mut Env<'_>, pc: usize, op: &Op, st: &mut VState) -> Result<Next, Refuse> {
    let next = pc + 1;
    match *op {
        Op::Alu {
            width,
            op,
            dst,
            src,
        } => {
            alu(env, st, width, op, dst, src)?;
            Ok(Next::Goto(next))
        }
        Op::Neg { width, dst } => {
            let r = read_reg(st, dst)?;
            writable(dst)?;
            if r.ty != RegType::Scalar {
                return refuse(format!(
                    "R{dst} pointer arithmetic with neg operator prohibited"
                ));
            }
            st.cur_mut().regs[dst as usize] = Reg::scalar(bounds::neg(width, &r.var));
            Ok(Next::Goto(next))
        }
        Op::End { kind, bits, dst } => {
            let r = read_reg(st, dst)?;
            writable(dst)?;
            if r.ty != RegType::Scalar {
                return refuse(format!(
                    "R{dst} pointer arithmetic with endian operator prohibited"
                ));
            }
            st.cur_mut().regs[dst as usize] = Reg::scalar(bounds::end(kind, bits, &r.var));
            Ok(Next::Goto(next))
        }
        Op::Ld64 { dst, value } => {
            writable(dst)?;
            let reg = match value {
                Ld64::Imm(v) => Reg::konst(v),
                Ld64::MapFd(fd) => {
                    let map = env.map_for_fd(fd)?;
                    env.record_map(pc, map);
                    Reg::pointer(RegType::ConstPtrToMap, map)
                }
                Ld64::MapValue { fd, off } => {
                    let map = env.map_for_fd(fd)?;
                    env.record_map(pc, map);
                    let desc = &env.maps[map as usize];
                    if desc.map_type != MapType::Array as u32 || desc.max_entries != 1 {
                        return refuse(format!(
                            "direct value access on {} map type not supported",
                            desc.kind().map_or("unknown", MapType::name)
                        ));
                    }
                    if off >= desc.value_size {
                        return refuse(format!(
                            "invalid access to map value pointer, value_size={} off={off}",
                            desc.value_size
                        ));
                    }
                    let mut r = Reg::pointer(RegType::MapValue, map);
                    r.off = off as i32;
                    r
                }
                Ld64::Pseudo { .. } => {
                    return Err(Refuse {
                        message: "invalid bpf_ld_imm64 insn".into(),
                        errno: EINVAL,
                    })
                }
            };
            st.cur_mut().regs[dst as usize] = reg;
            Ok(Next::Goto(pc + 2))
        }
        // tc programs may use them in the kernel; mimic does not model their implicit exit.
        Op::LdAbs { .. } | Op::LdInd { .. } if env.opts.prog_type == ProgType::SchedCls => {
            refuse(LD_ABS_UNMODELLED)
        }
        Op::LdAbs { .. } | Op::LdInd { .. } => {
            refuse("BPF_LD_[ABS|IND] instructions not allowed for this program type")
        }
        Op::Load {
            size,
            signed,
            dst,
            src,
            off,
        } => {
            let through = read_reg(st, src)?.ty;
            writable(dst)?;
            let v = mem_access(env, st, src, off, size, Access::Read)?;
            // A context field that gives a pointer cannot be loaded sign-extended.
            if signed && through == RegType::Ctx && v.ty != RegType::Scalar {
                return refuse(format!(
                    "invalid bpf_context access off={off} size={}",
                    size.bytes()
                ));
            }
            note_ctx_access(env, pc, through)?;
            let v = if signed && v.ty == RegType::Scalar {
                Reg::scalar(bounds::movsx(Width::W64, size.bytes() * 8, &v.var))
            } else {
                v
            };
            st.cur_mut().regs[dst as usize] = v;
            Ok(Next::Goto(next))
        }
        Op::Store {
            size,
            dst,
            off,
            src,
        } => {
            let through = read_reg(st, dst)?.ty;
            let value = match src {
                // A spilled unknown scalar stays linked to the register it came from.
                Operand::Reg(r) if size == Size::DW && through == RegType::Stack => {
                    read_reg(st, r)?;
                    link_scalar(env, st, r)
                }
                Operand::Reg(r) => read_reg(st, r)?,
                Operand::Imm(imm) => Reg::konst(imm as i64 as u64),
            };
            mem_access(
                env,
                st,
                dst,
                off,
                size,
                Access::Write(value, matches!(src, Operand::Reg(_))),
            )?;
            // Bytes of a known value stay known on the stack and are compared exactly: the
            // register they came from must be exact too (the kernel's STACK_ZERO write).
            if let (true, Operand::Reg(r)) = (env.stack_exact_write, src) {
                env.need_precise(st, r);
            }
            note_ctx_access(env, pc, through)?;
            Ok(Next::Goto(next))
        }
        Op::Atomic {
            size,
            op,
            dst,
            src,
            off,
        } => {
            atomic(env, st, size, op, dst, src, off)?;
            Ok(Next::Goto(next))
        }
        Op::Ja { off, .. } => Ok(Next::Goto((pc as i64 + 1 + i64::from(off)) as usize)),
        Op::Jmp {
            width,
            cond,
            dst,
            src,
            off,
        } => cond_jmp(env, st, pc, width, cond, dst, src, off),
        Op::Call(target) => calls::call(env, pc, target, st),
        Op::Callx { .. } => Err(Refuse {
            message: "unknown opcode 8d".into(),
            errno: EINVAL,
        }),
        Op::Exit => calls::exit(env, st),
    }
}

/// mimic's refusal of `BPF_LD_[ABS|IND]` where the kernel would take it.
pub const LD_ABS_UNMODELLED: &str = "BPF_LD_[ABS|IND] instructions are not modelled by mimic";

/// mimic's refusal of a read of `__sk_buff->sk`, which the kernel takes.
pub const SK_UNMODELLED: &str = "__sk_buff->sk (a socket pointer) is not modelled by mimic";

/// Records, for a packet program, whether the access at `pc` went through the context (the
/// fixups rewrite it); one instruction may not do both on different paths.
fn note_ctx_access(env: &mut Env<'_>, pc: usize, through: RegType) -> Result<(), Refuse> {
    if !env.opts.prog_type.is_packet() {
        return Ok(());
    }
    let ctx = through == RegType::Ctx;
    match env.aux[pc].ctx_access {
        Some(seen) if seen != ctx => Err(Refuse {
            message: "same insn cannot be used with different pointers".into(),
            errno: EINVAL,
        }),
        _ => {
            env.aux[pc].ctx_access = Some(ctx);
            Ok(())
        }
    }
}

pub(crate) fn read_reg(st: &VState, r: u8) -> Result<Reg, Refuse> {
    let reg = st.cur().regs[r as usize];
    if !reg.is_init() {
        return refuse(format!("R{r} !read_ok"));
    }
    Ok(reg)
}

fn writable(r: u8) -> Result<(), Refuse> {
    if r == FP {
        return refuse("frame pointer is read only");
    }
    Ok(())
}

/// The kernel's `bpf_alu_string`.
fn alu_str(op: AluOp) -> &'static str {
    match op {
        AluOp::Add => "+=",
        AluOp::Sub => "-=",
        AluOp::Mul => "*=",
        AluOp::Div | AluOp::SDiv => "/=",
        AluOp::Or => "|=",
        AluOp::And => "&=",
        AluOp::Lsh => "<<=",
        AluOp::Rsh => ">>=",
        AluOp::Mod | AluOp::SMod => "%=",
        AluOp::Xor => "^=",
        AluOp::Mov | AluOp::MovSx(_) => "=",
        AluOp::Arsh => "s>>=",
    }
}

fn alu(
    env: &mut Env<'_>,
    st: &mut VState,
    width: Width,
    op: AluOp,
    dst: u8,
    src: Operand,
) -> Result<(), Refuse> {
    let s = match src {
        Operand::Reg(r) => read_reg(st, r)?,
        Operand::Imm(imm) => Reg::konst(imm as i64 as u64),
    };
    writable(dst)?;
    // check_alu_op refuses an out-of-range constant shift before it looks at operand types.
    if let (AluOp::Lsh | AluOp::Rsh | AluOp::Arsh, Operand::Imm(imm)) = (op, src) {
        let bits = if width == Width::W64 { 64 } else { 32 };
        if !(0..bits).contains(&imm) {
            return Err(Refuse {
                message: format!("invalid shift {imm}"),
                errno: EINVAL,
            });
        }
    }
    let result = match op {
        // A copy of an unknown scalar shares its bounds with the original from here on (the
        // kernel's `assign_scalar_id_before_mov`): what a branch learns of one holds for both.
        AluOp::Mov if width == Width::W64 => match src {
            Operand::Reg(r) => link_scalar(env, st, r),
            Operand::Imm(_) => s,
        },
        AluOp::Mov => {
            if s.ty != RegType::Scalar {
                if !env.opts.privileged {
                    return refuse(format!("R{} partial copy of pointer", reg_of(src)));
                }
                Reg::scalar(Scalar::upto(u64::from(u32::MAX)))
            } else {
                Reg::scalar(
                    bounds::alu(width, AluOp::Mov, &Scalar::konst(0), &s.var)
                        .unwrap_or(Scalar::UNKNOWN),
                )
            }
        }
        AluOp::MovSx(bits) => {
            if s.ty != RegType::Scalar {
                return refuse(format!(
                    "R{} sign-extension of pointer prohibited",
                    reg_of(src)
                ));
            }
            Reg::scalar(bounds::movsx(width, bits, &s.var))
        }
        _ => {
            let d = read_reg(st, dst)?;
            match (d.ty.is_pointer(), s.ty.is_pointer()) {
                (false, false) => match bounds::alu(width, op, &d.var, &s.var) {
                    Ok(v) => Reg::scalar(v),
                    Err(AluError::InvalidShift(k)) => {
                        return Err(Refuse {
                            message: format!("invalid shift {k}"),
                            errno: EINVAL,
                        })
                    }
                },
                (true, false) => {
                    // The offset's exact value is what the pointer's new bounds rest on.
                    if let Operand::Reg(r) = src {
                        env.need_precise(st, r);
                    }
                    ptr_arith(env, width, op, dst, d, s, false)?
                }
                // `scalar op pointer` goes through the same checks with the operands swapped
                // (the kernel's adjust_ptr_min_max_vals), so the pointer's own refusals (32-bit,
                // null, map_ptr) come before "tried to subtract pointer from scalar".
                (false, true) => {
                    env.need_precise(st, dst);
                    ptr_arith(env, width, op, dst, s, d, true)?
                }
                (true, true) => {
                    // Two pointers: only subtraction, and only with pointer leaks allowed (any
                    // width, any two pointer types); the result is an unknown scalar.
                    if op == AluOp::Sub && env.opts.privileged {
                        Reg::unknown()
                    } else {
                        return refuse(format!(
                            "R{dst} pointer {} pointer prohibited",
                            alu_str(op)
                        ));
                    }
                }
            }
        }
    };
    st.cur_mut().regs[dst as usize] = result;
    Ok(())
}

fn reg_of(src: Operand) -> u8 {
    match src {
        Operand::Reg(r) => r,
        Operand::Imm(_) => 0,
    }
}

/// `ptr op scalar` (the kernel's `adjust_ptr_min_max_vals`).
fn ptr_arith(
    env: &mut Env<'_>,
    width: Width,
    op: AluOp,
    dst: u8,
    ptr: Reg,
    off: Reg,
    commuted: bool,
) -> Result<Reg, Refuse> {
    if width == Width::W32 {
        // 32-bit ALU on a pointer yields a meaningless scalar: allowed for subtraction when
        // pointer leaks are (privileged), before any check of the pointer's type.
        if op == AluOp::Sub && env.opts.privileged {
            return Ok(Reg::unknown());
        }
        return refuse(format!("R{dst} 32-bit pointer arithmetic prohibited"));
    }
    match ptr.ty {
        RegType::MapValueOrNull => {
            return refuse(format!(
                "R{dst} pointer arithmetic on {} prohibited, null-check it first",
                env.type_str(&ptr)
            ))
        }
        // `map_ptr += 0` is the one arithmetic allowed on a map pointer; `pkt_end` is only
        // ever compared.
        RegType::ConstPtrToMap if !(op == AluOp::Add && off.var.const_value() == Some(0)) => {
            return refuse(format!(
                "R{dst} pointer arithmetic on {} prohibited",
                ptr.ty.name()
            ))
        }
        RegType::PacketEnd => {
            return refuse(format!(
                "R{dst} pointer arithmetic on {} prohibited",
                ptr.ty.name()
            ))
        }
        _ => {}
    }
    // Both operands are checked for sane offsets before the operator is looked at.
    sane_offset(env, &off, ptr.ty, Checked::Operand)?;
    sane_offset(env, &ptr, ptr.ty, Checked::Operand)?;
    match op {
        AluOp::Add | AluOp::Sub => {}
        AluOp::And | AluOp::Or | AluOp::Xor => {
            return refuse(format!(
                "R{dst} bitwise operator {} on pointer prohibited",
                alu_str(op)
            ))
        }
        _ => {
            return refuse(format!(
                "R{dst} pointer arithmetic with {} operator prohibited",
                alu_str(op)
            ))
        }
    }
    if op == AluOp::Sub && commuted {
        return refuse(format!("R{dst} tried to subtract pointer from scalar"));
    }
    // The kernel never lets a program subtract from a stack pointer, even a constant (JITs may
    // not cope: test_verifier's "invalid fp arithmetic"); only `+= -k` moves it down.
    if op == AluOp::Sub && ptr.ty == RegType::Stack {
        return refuse(format!("R{dst} subtraction from stack pointer prohibited"));
    }
    let mut r = ptr;
    // A known operand moves the fixed offset while the sum still fits the kernel's s32 `off`;
    // anything else goes into the variable part.
    let fixed = off.var.const_value().and_then(|k| {
        let k = k as i64;
        let moved = if op == AluOp::Add {
            i64::from(ptr.off).checked_add(k)
        } else {
            i64::from(ptr.off).checked_sub(k)
        };
        moved.and_then(|v| i32::try_from(v).ok())
    });
    match fixed {
        Some(v) => r.off = v,
        None => {
            r.var = bounds::alu(Width::W64, op, &ptr.var, &off.var).unwrap_or(Scalar::UNKNOWN);
            // Something unknown moved a packet pointer: its checked range no longer applies,
            // and it no longer shares one with the pointer it came from.
            if ptr.ty.is_packet() {
                r.id = env.new_id();
                r.range = 0;
            }
        }
    }
    sane_offset(env, &r, ptr.ty, Checked::Result)?;
    if !env.opts.privileged && ptr.ty == RegType::Stack && !r.var.is_const() {
        return refuse(format!(
            "R{dst} variable stack access prohibited for !root, off={}",
            ptr.off
        ));
    }
    Ok(r)
}

/// Which register of pointer arithmetic [`sane_offset`] checks: an operand, or the result.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checked {
    Operand,
    Result,
}

/// The kernel's `check_reg_sane_offset`: an operand of pointer arithmetic (the scalar, then
/// the pointer) and its result must stay where offsets cannot overflow: a known value, the
/// fixed offset and the smallest signed value all strictly inside `±BPF_MAX_VAR_OFF`, and the
/// smallest value bounded at all. `ty` is the pointer's type (named in the messages); a result
/// whose smallest value is out of range is reported as the profile's build reports it. Refused
/// with `EINVAL`, as the kernel does (the other pointer-arithmetic refusals are `EACCES`).
fn sane_offset(env: &Env<'_>, reg: &Reg, ty: RegType, checked: Checked) -> Result<(), Refuse> {
    let out = |v: i64| v >= MAX_VAR_OFF || v <= -MAX_VAR_OFF;
    let ty = ty.name();
    let message = if let Some(val) = reg.var.const_value().filter(|v| out(*v as i64)) {
        format!(
            "math between {ty} pointer and {} is not allowed",
            val as i64
        )
    } else if out(i64::from(reg.off)) {
        format!("{ty} pointer offset {} is not allowed", reg.off)
    } else if reg.var.smin == i64::MIN {
        format!("math between {ty} pointer and register with unbounded min value is not allowed")
    } else if out(reg.var.smin) && checked == Checked::Result {
        env.opts.profile.result_offset_refusal(ty, reg.var.smin)
    } else if out(reg.var.smin) {
        format!("value {} makes {ty} pointer be out of bounds", reg.var.smin)
    } else {
        return Ok(());
    };
    Err(Refuse {
        message,
        errno: EINVAL,
    })
}

pub(crate) enum Access {
    Read,
    /// The stored value, and whether it came from a register (spills keep register state).
    Write(Reg, bool),
}

fn load_result(size: Size) -> Reg {
    if size == Size::DW {
        Reg::unknown()
    } else {
        Reg::scalar(Scalar::upto((1u64 << (size.bytes() * 8)) - 1))
    }
}

/// Checks a load or store through register `r` at `off` (the kernel's `check_mem_access`);
/// returns the loaded value for reads.
pub(crate) fn mem_access(
    env: &mut Env<'_>,
    st: &mut VState,
    r: u8,
    off: i16,
    size: Size,
    access: Access,
) -> Result<Reg, Refuse> {
    let ptr = read_reg(st, r)?;
    let bytes = i64::from(size.bytes());
    let write = matches!(access, Access::Write(..));
    match ptr.ty {
        RegType::NotInit => refuse(format!("R{r} !read_ok")),
        RegType::Scalar | RegType::MapValueOrNull | RegType::PacketEnd => {
            refuse(format!("R{r} invalid mem access '{}'", env.type_str(&ptr)))
        }
        RegType::Packet | RegType::PacketMeta => {
            // Only packet program types ever hold one, and all of them may write the packet.
            packet::access(r, &ptr, i64::from(ptr.off) + i64::from(off), bytes, false)?;
            env.direct_write |= write;
            Ok(load_result(size))
        }
        RegType::ConstPtrToMap => {
            let desc = &env.maps[ptr.map as usize];
            let name = desc.struct_name();
            if !env.opts.privileged {
                return refuse(format!(
                    "'struct {name}' access is allowed only to CAP_PERFMON and CAP_SYS_ADMIN"
                ));
            }
            let total = i64::from(ptr.off) + i64::from(off);
            if total < 0 {
                return refuse(format!(
                    "R{r} is {name} invalid negative access: off={total}"
                ));
            }
            if write {
                return refuse(format!("only read from {name} is supported"));
            }
            let types = env.opts.kernel_types.get(&mut env.recorded_types);
            let field = match types.struct_id(name) {
                Some(root) => {
                    btf_walk::walk(types.btf(), root, total as u32, u32::from(size.bytes()))
                }
                None => Err(format!(
                    "map_ptr access not supported: no struct {name} in {}",
                    types.source()
                )),
            };
            match field {
                Ok(btf_walk::Field::Scalar) => {
                    env.reads_kernel_struct = true;
                    Ok(load_result(size))
                }
                // The kernel gives a pointer into its own memory (`ptr_to_btf_id`), a type
                // mimic does not model: refused, stricter than the kernel (D24).
                Ok(btf_walk::Field::Pointer { member, in_struct }) => refuse(format!(
                    "R{r} is read at pointer member {member} of struct {in_struct}: {}",
                    btf_walk::UNMODELLED_POINTER
                )),
                Err(message) => refuse(message),
            }
        }
        RegType::MapValue | RegType::MapKey => {
            let desc = &env.maps[ptr.map as usize];
            let (limit, what) = if ptr.ty == RegType::MapKey {
                (i64::from(desc.key_size), "key")
            } else {
                (i64::from(desc.value_size), "value")
            };
            if write && ptr.ty == RegType::MapValue && desc.map_flags & BPF_F_RDONLY_PROG != 0 {
                return refuse(format!(
                    "write into map forbidden, value_size={limit} off={} size={bytes}",
                    i64::from(ptr.off) + i64::from(off)
                ));
            }
            let base = i64::from(ptr.off) + i64::from(off);
            if ptr.var.smin < 0 && !ptr.var.is_const() {
                return refuse(format!(
                    "R{r} min value is negative, either use unsigned index or do a if (index >=0) check."
                ));
            }
            if ptr.var.umax >= MAX_VAR_OFF as u64 {
                return refuse(format!(
                    "R{r} unbounded memory access, make sure to bounds check any such access"
                ));
            }
            let lo = base.saturating_add(ptr.var.smin);
            let hi = base + ptr.var.umax as i64;
            if lo < 0 || hi + bytes > limit {
                let bad = if lo < 0 { lo } else { hi };
                return refuse(format!(
                    "invalid access to map {what}, {what}_size={limit} off={bad} size={bytes}"
                ));
            }
            if let Access::Write(v, _) = access {
                if v.ty.is_pointer() && !env.opts.privileged {
                    return refuse(format!("R{r} leaks addr into map"));
                }
                return Ok(load_result(size));
            }
            // A read-only frozen value at a known offset is a known scalar (little-endian).
            let known = ptr.var.const_value().and_then(|k| {
                let value = desc
                    .frozen_value
                    .as_ref()
                    .filter(|_| ptr.ty == RegType::MapValue)?;
                let at = usize::try_from(base.checked_add(k as i64)?).ok()?;
                let bytes = value.get(at..at + size.bytes() as usize)?;
                Some(
                    bytes
                        .iter()
                        .rev()
                        .fold(0u64, |v, b| (v << 8) | u64::from(*b)),
                )
            });
            Ok(known.map_or_else(|| load_result(size), Reg::konst))
        }
        RegType::Ctx => {
            ctx_ptr_unmodified(r, &ptr)?;
            let total = i64::from(off);
            let allowed = match env.opts.prog_type {
                ProgType::Generic => {
                    !write && total >= 0 && total + bytes <= i64::from(env.opts.ctx_size)
                }
                ProgType::Syscall => syscall_ctx_access_ok(total, bytes),
                ProgType::RawTracepoint => {
                    !write && (0..i64::from(RAW_TP_CTX_MAX)).contains(&total) && total % bytes == 0
                }
                ProgType::Tracepoint => {
                    !write
                        && (8..i64::from(TRACEPOINT_CTX_MAX)).contains(&total)
                        && total % bytes == 0
                }
                ProgType::Xdp => {
                    !write
                        && bytes == 4
                        && (0..xdp_md::READABLE).contains(&total)
                        && total % bytes == 0
                }
                ProgType::SchedCls => {
                    return match skb::tc_access(total, bytes, write) {
                        None => refuse(format!(
                            "invalid bpf_context access off={total} size={bytes}"
                        )),
                        Some(CtxField::Sock) => refuse(SK_UNMODELLED),
                        Some(CtxField::Packet) => Ok(Reg::pointer(RegType::Packet, 0)),
                        Some(CtxField::PacketEnd) => Ok(Reg::pointer(RegType::PacketEnd, 0)),
                        Some(CtxField::PacketMeta) => Ok(Reg::pointer(RegType::PacketMeta, 0)),
                        Some(CtxField::Scalar) => Ok(load_result(size)),
                    };
                }
            };
            if !allowed {
                return refuse(format!(
                    "invalid bpf_context access off={total} size={bytes}"
                ));
            }
            if env.opts.prog_type == ProgType::Xdp {
                return Ok(match total {
                    xdp_md::DATA => Reg::pointer(RegType::Packet, 0),
                    xdp_md::DATA_END => Reg::pointer(RegType::PacketEnd, 0),
                    xdp_md::DATA_META => Reg::pointer(RegType::PacketMeta, 0),
                    _ => load_result(size),
                });
            }
            // The test run refuses a context that does not reach every byte accessed.
            env.max_ctx_offset = env.max_ctx_offset.max((total + bytes) as u32);
            Ok(load_result(size))
        }
        RegType::Stack => stack_access(
            st,
            r,
            ptr,
            off,
            size,
            access,
            env.opts.privileged,
            &mut env.stack_moved,
            &mut env.stack_exact_write,
        ),
    }
}

/// A context pointer is dereferenced only as `r1` came in: no fixed or variable offset (the
/// kernel's `check_ptr_off_reg`, in its order: negative, modified, variable).
pub(crate) fn ctx_ptr_unmodified(r: u8, ptr: &Reg) -> Result<(), Refuse> {
    if ptr.off < 0 {
        return refuse(format!(
            "negative offset ctx ptr R{r} off={} disallowed",
            ptr.off
        ));
    }
    if ptr.off != 0 {
        return refuse(format!(
            "dereference of modified ctx ptr R{r} off={} disallowed",
            ptr.off
        ));
    }
    if ptr.var.const_value() != Some(0) {
        return refuse(format!(
            "variable ctx access var_off={} disallowed",
            ptr.var.var
        ));
    }
    Ok(())
}

/// `BPF_PROG_TYPE_SYSCALL`'s context rule (`syscall_prog_is_valid_access`): reads and writes
/// anywhere in `0..U16_MAX`, at offsets that are a multiple of the access size.
pub(crate) fn syscall_ctx_access_ok(off: i64, size: i64) -> bool {
    (0..i64::from(SYSCALL_CTX_MAX)).contains(&off) && size > 0 && off % size == 0
}

/// `moved` learns the slot a register was spilled to or filled from (precision tracking
/// follows a scalar through it); `exact` whether a write left known bytes (zero or constant)
/// that later comparisons read exactly.
#[allow(clippy::too_many_arguments)]
fn stack_access(
    st: &mut VState,
    r: u8,
    ptr: Reg,
    off: i16,
    size: Size,
    access: Access,
    allow_uninit: bool,
    moved: &mut Option<(u8, u8)>,
    exact: &mut bool,
) -> Result<Reg, Refuse> {
    let bytes = i32::from(size.bytes());
    // Stack accesses are always strictly aligned (check_ptr_alignment), checked first.
    let fixed = i64::from(ptr.off) + i64::from(off);
    let misaligned = match ptr.var.const_value() {
        Some(var) => (fixed.wrapping_add(var as i64)).rem_euclid(i64::from(bytes)) != 0,
        None => (ptr.var.var.mask | fixed as u64) & (bytes as u64 - 1) != 0,
    };
    if misaligned {
        // The kernel prints a constant var_off as its value, an unknown one as a tnum.
        let var_off = match ptr.var.const_value() {
            Some(value) => format!("{}", value as i64),
            None => ptr.var.var.to_string(),
        };
        return refuse(format!(
            "misaligned stack access off {var_off}+{}+{off} size {bytes}",
            ptr.off
        ));
    }
    let Some(var) = ptr.var.const_value() else {
        return refuse(format!(
            "R{r} variable stack access prohibited: var_off={}",
            ptr.var.var
        ));
    };
    let total = (i64::from(ptr.off) + i64::from(off)).saturating_add(var as i64);
    let dir = if matches!(access, Access::Read) {
        "read from"
    } else {
        "write to"
    };
    if total < -i64::from(MAX_STACK) || total + i64::from(bytes) > 0 {
        return refuse(format!("invalid {dir} stack R{r} off={total} size={bytes}"));
    }
    let total = total as i32;
    let frame = &mut st.frames[ptr.frame as usize];
    // Byte at fp+k (k < 0) lives in slot (-k-1)/8 at index (k mod 8).
    let locate = |k: i32| (((-k - 1) / 8) as usize, (k.rem_euclid(8)) as usize);
    let (slot_i, _) = locate(total);
    let aligned = total % 8 == 0;
    match access {
        Access::Write(value, from_reg) => {
            if value.ty.is_pointer() && (bytes != 8 || !aligned) {
                return refuse("invalid size of register spill");
            }
            if bytes == 8 && aligned && (from_reg || value.const_scalar().is_some()) {
                let slot = frame.slot_mut(slot_i);
                // Privileged, the kernel keeps even a stored zero as a spilled constant (which
                // matters for constant map keys); unprivileged it is plain zero bytes.
                if value.const_scalar() == Some(0) && !from_reg && !allow_uninit {
                    slot.bytes = [SlotByte::Zero; 8];
                    slot.spill = Reg::NOT_INIT;
                } else {
                    slot.bytes = [SlotByte::Spill; 8];
                    slot.spill = value;
                    *moved = Some((ptr.frame, slot_i as u8));
                }
                return Ok(value);
            }
            let known = value.const_scalar();
            // Only a write at the start of a slot keeps what it wrote (the kernel spills it as
            // a narrow register); elsewhere the bytes are zero for a zero value, else unknown.
            for k in total..total + bytes {
                let (si, bi) = locate(k);
                let slot = frame.slot_mut(si);
                if slot.is_spill() {
                    // A partly overwritten spill is scrubbed: its other bytes become unknown.
                    slot.bytes = [SlotByte::Misc; 8];
                    slot.spill = Reg::NOT_INIT;
                }
                slot.bytes[bi] = match known.map(|v| (v >> (8 * (k - total))) as u8) {
                    _ if !aligned && known != Some(0) => SlotByte::Misc,
                    Some(0) => SlotByte::Zero,
                    Some(x) => SlotByte::Const(x),
                    None => SlotByte::Misc,
                };
                *exact |= slot.bytes[bi] != SlotByte::Misc;
            }
            Ok(value)
        }
        Access::Read => {
            let slot = *frame.slot(slot_i);
            if slot.is_spill() {
                // Whatever the fill gives derives from the spilled register.
                *moved = Some((ptr.frame, slot_i as u8));
                if bytes == 8 && aligned {
                    return Ok(slot.spill);
                }
                if slot.spill.ty != RegType::Scalar {
                    return refuse("invalid size of register fill");
                }
                // A narrow fill: at the slot's start the spilled constant (its low bytes),
                // elsewhere a spilled zero is still zero; anything else is unknown.
                return Ok(match slot.spill.const_scalar() {
                    Some(v) if aligned => Reg::konst(v & (u64::MAX >> (64 - 8 * bytes))),
                    Some(0) => Reg::konst(0),
                    _ => load_result(size),
                });
            }
            let mut value: Option<u64> = Some(0);
            for k in total..total + bytes {
                let (si, bi) = locate(k);
                let s = frame.slot(si);
                let b = s.bytes[bi];
                if b == SlotByte::Invalid && !allow_uninit {
                    return refuse(format!(
                        "invalid read from stack off {}+{} size {bytes}",
                        total,
                        k - total
                    ));
                }
                if b == SlotByte::Spill && s.spill.ty != RegType::Scalar {
                    return refuse("invalid size of register fill");
                }
                value = match (value, b.known(&s.spill, bi)) {
                    (Some(v), Some(x)) => Some(v | u64::from(x) << (8 * (k - total))),
                    _ => None,
                };
            }
            Ok(value.map_or_else(|| load_result(size), Reg::konst))
        }
    }
}

fn atomic(
    env: &mut Env<'_>,
    st: &mut VState,
    size: Size,
    op: AtomicOp,
    dst: u8,
    src: u8,
    off: i16,
) -> Result<(), Refuse> {
    let s = read_reg(st, src)?;
    if op == AtomicOp::Cmpxchg {
        read_reg(st, 0)?;
    }
    if s.ty != RegType::Scalar {
        return refuse(format!("R{src} leaks addr into mem"));
    }
    let d = read_reg(st, dst)?;
    if !matches!(d.ty, RegType::Stack | RegType::MapValue) {
        return refuse(format!(
            "BPF_ATOMIC stores into R{dst} {} is not allowed",
            env.type_str(&d)
        ));
    }
    // Both a read and a write of the same bytes.
    mem_access(env, st, dst, off, size, Access::Read)?;
    mem_access(
        env,
        st,
        dst,
        off,
        size,
        Access::Write(Reg::unknown(), false),
    )?;
    if op.fetches() {
        let target = if op == AtomicOp::Cmpxchg { 0 } else { src };
        st.cur_mut().regs[target as usize] = load_result(size);
    }
    Ok(())
}

/// Conditional jumps (the kernel's `check_cond_jmp_op`).
#[allow(clippy::too_many_arguments)]
fn cond_jmp(
    env: &mut Env<'_>,
    st: &mut VState,
    pc: usize,
    width: Width,
    cond: Cond,
    dst: u8,
    src: Operand,
    off: i16,
) -> Result<Next, Refuse> {
    let target = (pc as i64 + 1 + i64::from(off)) as usize;
    let a = read_reg(st, dst)?;
    let b = match src {
        Operand::Reg(r) => read_reg(st, r)?,
        Operand::Imm(imm) => Reg::konst(imm as i64 as u64),
    };
    // The caller replaces `st` with one of the edges' states, so the last copy is a move: a
    // state is a few kilobytes (64 stack slots) and branches are frequent.
    let take = |st: &mut VState| std::mem::replace(st, VState { frames: Vec::new() });
    let both = |st: &mut VState| Next::Branch {
        target,
        taken: Some(st.clone()),
        fall: Some(take(st)),
    };
    let decided = |st: &mut VState, taken: bool| {
        let only = Some(take(st));
        if taken {
            Next::Branch {
                target,
                taken: only,
                fall: None,
            }
        } else {
            Next::Branch {
                target,
                taken: None,
                fall: only,
            }
        }
    };
    // A branch whose direction the operands' values decide relies on those values (the
    // kernel's `mark_chain_precise` of both after `is_branch_taken`).
    let need_operands = |env: &mut Env<'_>, st: &VState| {
        env.need_precise(st, dst);
        if let Operand::Reg(r) = src {
            env.need_precise(st, r);
        }
    };
    if a.ty == RegType::Scalar && b.ty == RegType::Scalar {
        if let Some(t) = bounds::branch_taken(cond, width, &a.var, &b.var) {
            need_operands(env, st);
            return Ok(decided(st, t));
        }
        let mut taken = st.clone();
        let mut fall = take(st);
        let t_ok = refine_regs(&mut taken, dst, src, cond, true, width);
        let f_ok = refine_regs(&mut fall, dst, src, cond, false, width);
        // What each edge learned of the operands holds for their linked copies; the walk back
        // for precision must know which those were.
        if super::pruning::precision(env.opts) {
            let linked = linked_set(&taken, dst, src);
            if !linked.is_empty() {
                env.linked = Some(linked);
            }
        }
        for edge in [&mut taken, &mut fall] {
            sync_linked(edge, dst);
            if let Operand::Reg(r) = src {
                sync_linked(edge, r);
            }
        }
        // An edge the refined bounds rule out is decided as well (the registers keep their
        // types, so either copy names them).
        if !(t_ok && f_ok) {
            need_operands(env, &taken);
        }
        return Ok(Next::Branch {
            target,
            taken: t_ok.then_some(taken),
            fall: f_ok.then_some(fall),
        });
    }
    // Packet pointers against `pkt_end` (or `pkt_meta` against the packet's start): a pointer
    // known to be past the end decides the branch, else each edge learns what it can.
    if let (Width::W64, Operand::Reg(s)) = (width, src) {
        if let Some(taken) = packet::branch_taken(cond, &a, &b) {
            need_operands(env, st);
            return Ok(decided(st, taken));
        }
        if let Some(learned) = packet::learn(cond, dst, &a, s, &b) {
            let reg = if learned.reg == dst { a } else { b };
            let mut taken = st.clone();
            let mut fall = take(st);
            let edge = |e: packet::Edge| e == packet::Edge::Taken;
            let (inside, outside) = if edge(learned.inside) {
                (&mut taken, &mut fall)
            } else {
                (&mut fall, &mut taken)
            };
            packet::mark_inside(inside, &reg, learned.strict);
            packet::mark_outside(outside, learned.reg, learned.past);
            return Ok(Next::Branch {
                target,
                taken: Some(taken),
                fall: Some(fall),
            });
        }
    }
    // A pointer against zero: a null check.
    let (ptr, ptr_reg, other) = if a.ty.is_pointer() {
        (a, dst, b)
    } else {
        (b, reg_of(src), a)
    };
    let against_zero = other.const_scalar() == Some(0);
    if against_zero && width == Width::W64 && matches!(cond, Cond::Eq | Cond::Ne) {
        let eq_taken = cond == Cond::Eq;
        if ptr.ty == RegType::MapValueOrNull {
            let mut taken = st.clone();
            let mut fall = take(st);
            // On the edge where `ptr == 0` holds it is NULL, on the other it is valid.
            mark_ptr_or_null(
                env,
                if eq_taken { &mut taken } else { &mut fall },
                ptr.id,
                true,
            );
            mark_ptr_or_null(
                env,
                if eq_taken { &mut fall } else { &mut taken },
                ptr.id,
                false,
            );
            let _ = ptr_reg;
            return Ok(Next::Branch {
                target,
                taken: Some(taken),
                fall: Some(fall),
            });
        }
        // Map values and keys are never NULL (the kernel's `reg_not_null`); other pointers
        // (context, stack, map pointers) are not assumed so: both edges stay.
        if matches!(ptr.ty, RegType::MapValue | RegType::MapKey) {
            need_operands(env, st);
            return Ok(decided(st, !eq_taken));
        }
    }
    if !env.opts.privileged {
        return refuse(format!("R{dst} pointer comparison prohibited"));
    }
    Ok(both(st))
}

fn refine_regs(
    st: &mut VState,
    dst: u8,
    src: Operand,
    cond: Cond,
    holds: bool,
    width: Width,
) -> bool {
    let frame = st.cur_mut();
    let mut a = frame.regs[dst as usize].var;
    let mut b = match src {
        Operand::Reg(r) => frame.regs[r as usize].var,
        Operand::Imm(imm) => Scalar::konst(imm as i64 as u64),
    };
    if !bounds::refine(cond, holds, width, &mut a, &mut b) {
        return false;
    }
    frame.regs[dst as usize].var = a;
    if let Operand::Reg(r) = src {
        frame.regs[r as usize].var = b;
    }
    true
}

/// Register `r` (a scalar, or anything else unchanged) as a copy will be: an unknown scalar gets
/// an id if it has none, shared by the copies made of it.
fn link_scalar(env: &mut Env<'_>, st: &mut VState, r: u8) -> Reg {
    let reg = &mut st.cur_mut().regs[usize::from(r & 15).min(NREGS - 1)];
    if reg.ty == RegType::Scalar && reg.id == 0 && reg.var.const_value().is_none() {
        reg.id = env.new_id();
    }
    *reg
}

/// The registers and spilled slots sharing an id with register `dst` or `src` (when it is a
/// register) of the running frame, as precision needs: if one of them needs precision so do
/// all, since a branch on one refined the others. Empty when nothing is linked.
fn linked_set(st: &VState, dst: u8, src: Operand) -> super::precision::Bt {
    let src_id = match src {
        Operand::Reg(r) => st.cur().regs[r as usize].id,
        Operand::Imm(_) => 0,
    };
    let mut set = super::precision::Bt::default();
    let mut count = 0;
    for id in [st.cur().regs[dst as usize].id, src_id]
        .into_iter()
        .filter(|id| *id != 0)
    {
        for (fr, frame) in st.frames.iter().enumerate() {
            for (r, reg) in frame.regs.iter().enumerate() {
                if reg.ty == RegType::Scalar && reg.id == id {
                    set.reg(fr as u8, r as u8);
                    count += 1;
                }
            }
            for (s, slot) in frame.stack.iter().enumerate() {
                if slot.is_spill() && slot.spill.ty == RegType::Scalar && slot.spill.id == id {
                    set.slot(fr as u8, s as u8);
                    count += 1;
                }
            }
        }
    }
    let dst_and_src = 1 + usize::from(matches!(src, Operand::Reg(_)));
    if count > dst_and_src {
        set
    } else {
        super::precision::Bt::default()
    }
}

/// Gives every scalar sharing register `r`'s id (in any frame, spilled or not) `r`'s bounds
/// (the kernel's `sync_linked_regs`).
fn sync_linked(st: &mut VState, r: u8) {
    let known = st.cur().regs[r as usize];
    if known.ty != RegType::Scalar || known.id == 0 {
        return;
    }
    st.for_each_reg(|reg| {
        if reg.ty == RegType::Scalar && reg.id == known.id {
            reg.var = known.var;
        }
    });
}

/// After a null check of the lookup result with `id`: every copy becomes NULL (scalar 0) or a
/// valid pointer: a map value, or for an outer map the inner map pointer shaped by the meta.
fn mark_ptr_or_null(env: &mut Env<'_>, st: &mut VState, id: u32, is_null: bool) {
    let meta_of = env.meta_of.clone();
    let uid_always = env.mutant(crate::mutants::Mutant::InnerMapUidAlways);
    st.for_each_reg(|reg| {
        if reg.ty != RegType::MapValueOrNull || reg.id != id {
            return;
        }
        if is_null {
            *reg = Reg::konst(0);
            return;
        }
        match meta_of.get(reg.map as usize).copied().flatten() {
            Some(meta) => {
                reg.ty = RegType::ConstPtrToMap;
                reg.map = meta;
                // The inner map needs an identity only to tell timers apart; the old kernel gave
                // every lookup one, so states through different lookups never compared equal.
                reg.map_uid = if uid_always { id } else { 0 };
            }
            None => reg.ty = RegType::MapValue,
        }
        reg.id = 0;
    });
}
