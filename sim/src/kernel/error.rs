//! Errors of the kernel oracle: an errno the model knows, or something the model has no name
//! for (an errno outside [`Errno`], a buffer that does not fit the map). Never a panic.
//!
//! [`BpfSys`](mimic_core::uapi::BpfSys) speaks [`mimic_core::fault::Error`], which has no slot
//! for an errno outside the model; [`KernelError::into_core`] reports those as a fault whose text
//! names the syscall and the raw value, so a differential run shows it as a disagreement with
//! the reason instead of silently matching some modelled errno.
#![forbid(unsafe_code)]

use mimic_core::errno::Errno;
use mimic_core::fault::{Error, Fault};
use std::fmt;

/// What a kernel call failed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// An errno the model names.
    Errno(Errno),
    /// An errno outside [`Errno`] (e.g. `EFAULT`, `EAGAIN`).
    Unmodelled { op: &'static str, value: i32 },
    /// A key or value longer than the map's size: the syscall ABI carries no lengths, so the
    /// backend refuses instead of truncating.
    Length {
        op: &'static str,
        what: &'static str,
        given: usize,
        expected: usize,
    },
    /// The host could not tell what the oracle needs (e.g. the possible CPUs, from sysfs).
    Host { what: &'static str, detail: String },
    /// The kernel reported no translated instructions (the caller may not see kernel
    /// addresses: needs root / `CAP_SYS_ADMIN` with kptr access).
    NoXlated,
}

/// Names of errnos the kernel may return from bpf() that the model does not model, for messages.
const UNMODELLED_NAMES: [(i32, &str); 6] = [
    (3, "ESRCH"),
    (11, "EAGAIN"),
    (14, "EFAULT"),
    (19, "ENODEV"),
    (34, "ERANGE"),
    (38, "ENOSYS"),
];

impl KernelError {
    /// The error for a positive errno `value` returned by `op`.
    pub fn from_raw(op: &'static str, value: i32) -> KernelError {
        match Errno::from_value(value) {
            Some(errno) => KernelError::Errno(errno),
            None => KernelError::Unmodelled { op, value },
        }
    }

    pub fn errno(&self) -> Option<Errno> {
        match self {
            KernelError::Errno(errno) => Some(*errno),
            _ => None,
        }
    }

    /// The core's error type: modelled errnos map one to one; everything else becomes a fault
    /// whose text says what the kernel did (see the module doc).
    pub fn into_core(self) -> Error {
        match self {
            KernelError::Errno(errno) => Error::Errno(errno),
            other => Error::Fault(Fault::Unmodelled {
                detail: format!("kernel oracle: {other}"),
            }),
        }
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::Errno(errno) => write!(f, "{errno}"),
            KernelError::Unmodelled { op, value } => {
                let name = UNMODELLED_NAMES.iter().find(|(v, _)| v == value).map_or("unknown", |(_, n)| n);
                write!(f, "{op} returned errno {value} ({name}), which mimic_core::errno::Errno does not model")
            }
            KernelError::Length { op, what, given, expected } => {
                write!(f, "{op}: {what} of {given} bytes does not fit the map's {expected}")
            }
            KernelError::Host { what, detail } => write!(f, "{what}: {detail}"),
            KernelError::NoXlated => write!(
                f,
                "BPF_OBJ_GET_INFO_BY_FD returned no xlated instructions (needs root with kernel address access)"
            ),
        }
    }
}

impl std::error::Error for KernelError {}

impl From<Errno> for KernelError {
    fn from(errno: Errno) -> Self {
        KernelError::Errno(errno)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modelled_errnos_map_one_to_one() {
        let err = KernelError::from_raw("BPF_MAP_CREATE", 524);
        assert_eq!(err, KernelError::Errno(Errno::ENOTSUPP));
        assert_eq!(err.into_core(), Error::Errno(Errno::ENOTSUPP));
    }

    #[test]
    fn unmodelled_errnos_become_a_fault_naming_call_and_value() {
        let err = KernelError::from_raw("BPF_MAP_LOOKUP_ELEM", 14);
        assert_eq!(err.errno(), None);
        let text = err.into_core().to_string();
        assert!(
            text.contains("BPF_MAP_LOOKUP_ELEM") && text.contains("14 (EFAULT)"),
            "{text}"
        );
    }
}
