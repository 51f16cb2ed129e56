//! Linux errno values, as the BPF syscall returns them (negated in the kernel, positive here in
//! [`Errno`]). `EACCES` is the verifier's refusal, `EBADFD` what get-info says of a closed fd. `ENOTSUPP` (524) is kernel-internal but reaches user space from BPF paths.

use std::fmt;

/// An errno the model returns, named as in Linux.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Errno {
    EPERM,
    ENOENT,
    E2BIG,
    EBADF,
    ENOMEM,
    EACCES,
    EBUSY,
    EEXIST,
    EINVAL,
    ENOSPC,
    EBADFD,
    EOPNOTSUPP,
    ENOTSUPP,
}

impl Errno {
    pub const ALL: [Errno; 13] = [
        Errno::EPERM,
        Errno::ENOENT,
        Errno::E2BIG,
        Errno::EBADF,
        Errno::ENOMEM,
        Errno::EACCES,
        Errno::EBUSY,
        Errno::EEXIST,
        Errno::EINVAL,
        Errno::ENOSPC,
        Errno::EBADFD,
        Errno::EOPNOTSUPP,
        Errno::ENOTSUPP,
    ];

    /// The positive Linux value.
    pub const fn value(self) -> i32 {
        match self {
            Errno::EPERM => 1,
            Errno::ENOENT => 2,
            Errno::E2BIG => 7,
            Errno::EBADF => 9,
            Errno::ENOMEM => 12,
            Errno::EACCES => 13,
            Errno::EBUSY => 16,
            Errno::EEXIST => 17,
            Errno::EINVAL => 22,
            Errno::ENOSPC => 28,
            Errno::EBADFD => 77,
            Errno::EOPNOTSUPP => 95,
            Errno::ENOTSUPP => 524,
        }
    }

    /// The errno with this positive value, if the model knows it.
    pub fn from_value(value: i32) -> Option<Errno> {
        Errno::ALL.into_iter().find(|e| e.value() == value)
    }

    pub const fn name(self) -> &'static str {
        match self {
            Errno::EPERM => "EPERM",
            Errno::ENOENT => "ENOENT",
            Errno::E2BIG => "E2BIG",
            Errno::EBADF => "EBADF",
            Errno::ENOMEM => "ENOMEM",
            Errno::EACCES => "EACCES",
            Errno::EBUSY => "EBUSY",
            Errno::EEXIST => "EEXIST",
            Errno::EINVAL => "EINVAL",
            Errno::ENOSPC => "ENOSPC",
            Errno::EBADFD => "EBADFD",
            Errno::EOPNOTSUPP => "EOPNOTSUPP",
            Errno::ENOTSUPP => "ENOTSUPP",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "-{} ({})", self.name(), self.value())
    }
}

impl std::error::Error for Errno {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_linuxs_and_round_trip() {
        let expected = [1, 2, 7, 9, 12, 13, 16, 17, 22, 28, 77, 95, 524];
        for (errno, value) in Errno::ALL.into_iter().zip(expected) {
            assert_eq!(errno.value(), value, "{}", errno.name());
            assert_eq!(Errno::from_value(value), Some(errno));
        }
        assert_eq!(Errno::from_value(3), None);
    }
}
