//! `bpf_trace_printk`'s format, as the kernel checks and prints it (`bpf_bprintf_prepare`, then
//! `bstr_printf`): the format must end with a NUL inside the size given and hold only printable
//! ASCII or whitespace; at most three conversions, each `%` then optional flags (`0 +-` and
//! space) and width, then `c`, or `l`/`ll` and one of `d i u x X`; `%%` prints a `%`. A
//! conversion without `l` takes the low 32 bits of its argument. Anything else is `-EINVAL`.
//!
//! `%s` and the `%p` family read kernel memory or print hashed addresses, which a model cannot
//! reproduce: they are [`PrintkError::Unmodelled`], and the run fails saying so rather than
//! print something the kernel would not.

/// Arguments after the format (`arg1`..`arg3`).
pub const MAX_ARGS: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrintkError {
    /// The kernel returns `-EINVAL`.
    Invalid,
    /// A conversion the model does not print (`%s`, `%p...`).
    Unmodelled(char),
}

/// The line `fmt` (the bytes the program passed, NUL included) prints with `args`.
pub fn format(fmt: &[u8], args: [u64; MAX_ARGS]) -> Result<String, PrintkError> {
    let end = fmt
        .iter()
        .position(|&b| b == 0)
        .ok_or(PrintkError::Invalid)?;
    let fmt = &fmt[..end];
    if fmt
        .iter()
        .any(|&b| !(b.is_ascii_graphic() || b == b' ' || b.is_ascii_whitespace()))
    {
        return Err(PrintkError::Invalid);
    }
    let at = |i: usize| fmt.get(i).copied().unwrap_or(0);
    let mut out = String::new();
    let mut used = 0;
    let mut i = 0;
    while i < fmt.len() {
        if fmt[i] != b'%' {
            out.push(fmt[i] as char);
            i += 1;
            continue;
        }
        if at(i + 1) == b'%' {
            out.push('%');
            i += 2;
            continue;
        }
        if used >= MAX_ARGS {
            return Err(PrintkError::Invalid);
        }
        i += 1;
        let (mut zero, mut left, mut plus, mut space) = (false, false, false, false);
        loop {
            match at(i) {
                b'0' => zero = true,
                b'-' => left = true,
                b'+' => plus = true,
                b' ' => space = true,
                _ => break,
            }
            i += 1;
        }
        let mut width = 0usize;
        if (b'1'..=b'9').contains(&at(i)) {
            while at(i).is_ascii_digit() {
                width = (width * 10 + usize::from(at(i) - b'0')).min(1 << 16);
                i += 1;
            }
        }
        let arg = args[used];
        used += 1;
        let body = match at(i) {
            b'c' => {
                i += 1;
                ((arg as u8) as char).to_string()
            }
            b's' => return Err(PrintkError::Unmodelled('s')),
            b'p' => return Err(PrintkError::Unmodelled('p')),
            _ => {
                let mut long = false;
                if at(i) == b'l' {
                    long = true;
                    i += 1;
                    if at(i) == b'l' {
                        i += 1;
                    }
                }
                let conv = at(i);
                i += 1;
                let v = if long { arg } else { u64::from(arg as u32) };
                match conv {
                    b'd' | b'i' => {
                        let signed = if long {
                            v as i64
                        } else {
                            i64::from(v as u32 as i32)
                        };
                        let sign = if signed < 0 {
                            "-"
                        } else if plus {
                            "+"
                        } else if space {
                            " "
                        } else {
                            ""
                        };
                        let digits = signed.unsigned_abs().to_string();
                        pad(sign, &digits, width, zero && !left, left)
                    }
                    b'u' => pad("", &v.to_string(), width, zero && !left, left),
                    b'x' => pad("", &format!("{v:x}"), width, zero && !left, left),
                    b'X' => pad("", &format!("{v:X}"), width, zero && !left, left),
                    _ => return Err(PrintkError::Invalid),
                }
            }
        };
        out.push_str(&body);
    }
    Ok(out)
}

/// A number with its sign padded to `width` (zeros after the sign, or spaces on either side).
fn pad(sign: &str, digits: &str, width: usize, zero: bool, left: bool) -> String {
    let len = sign.len() + digits.len();
    let fill = width.saturating_sub(len);
    if left {
        format!("{sign}{digits}{}", " ".repeat(fill))
    } else if zero {
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else {
        format!("{}{sign}{digits}", " ".repeat(fill))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_print_as_the_kernel_prints_them() {
        let f = |fmt: &str, args: [u64; 3]| format(format!("{fmt}\0").as_bytes(), args);
        assert_eq!(f("x=%d\n", [u64::MAX, 0, 0]).as_deref(), Ok("x=-1\n"));
        assert_eq!(
            f("%u %x", [u64::MAX, 255, 0]).as_deref(),
            Ok("4294967295 ff")
        );
        assert_eq!(f("%lld %llx", [u64::MAX, 255, 0]).as_deref(), Ok("-1 ff"));
        assert_eq!(
            f("[%5d|%-4u|%04x]", [42, 7, 10]).as_deref(),
            Ok("[   42|7   |000a]")
        );
        assert_eq!(f("100%% %c", [b'A' as u64, 0, 0]).as_deref(), Ok("100% A"));
        assert_eq!(f("%d %d %d %d", [0; 3]), Err(PrintkError::Invalid));
        assert_eq!(f("%q", [0; 3]), Err(PrintkError::Invalid));
        assert_eq!(f("%s", [0; 3]), Err(PrintkError::Unmodelled('s')));
        assert_eq!(format(b"no end", [0; 3]), Err(PrintkError::Invalid));
        assert_eq!(format(b"bell\x07\0", [0; 3]), Err(PrintkError::Invalid));
    }
}
