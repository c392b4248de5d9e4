//! The crate's error type: what went wrong, with the field and value, and an errno.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::protocol::command_name;

/// Everything that can go wrong, each with an errno ([`Error::errno`]).
///
/// Errors that the service *reports* (an error reply) keep its errno and its
/// UTF-8 reason ([`Error::Service`]). Errors this crate *detects* in what the
/// service sent name the field and the value that was refused. Any descriptor
/// that arrived with a refused message has been closed by the time you see the
/// error.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed; `source.raw_os_error()` is its errno.
    Os {
        /// What was being done (`"connect"`, `"mmap producer region"`, ...).
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The service answered a request with an error reply (`REPLY | ERROR`).
    /// The connection survives (except for `EACCES`, after which the service closes it).
    Service {
        /// The command the reply answers (0 when the service could not read a header).
        command: u16,
        /// The errno from the reply header.
        errno: i32,
        /// The UTF-8 reason from the reply payload (lossily decoded if it was not UTF-8).
        reason: String,
    },
    /// The service sent a control message that breaks the protocol
    /// (`EPROTO`). The connection is then unusable.
    Protocol {
        /// The field or rule that was broken (`"reply id"`, `"header size"`, ...).
        field: &'static str,
        /// The offending value and what was expected.
        detail: String,
    },
    /// A descriptor of the queue is not what ABI.md section 1 says (`EBADF`).
    Descriptor {
        /// Its position in the ATTACH reply (0 producer region, 1 consumer
        /// region, 2 consumer doorbell, 3 producer doorbell).
        index: usize,
        /// What was checked (`"seals"`, `"access mode"`, `"socket type"`, ...).
        field: &'static str,
        /// The value found and the value required.
        detail: String,
    },
    /// The producer region's header fails validation (ABI.md section 5 step 1) (`EPROTO`).
    Header {
        /// The header field (`"magic"`, `"entry_count"`, ...).
        field: &'static str,
        /// The value found.
        value: u64,
        /// What was required.
        expected: String,
    },
    /// Negotiation did not put the requested ABI in force (`EPROTO`).
    Negotiation {
        /// What happened.
        detail: String,
    },
    /// The producer broke a ring invariant, e.g. `fault_prod` more than
    /// `entry_count` ahead of `fault_cons` (ABI.md section 10 step 4.2) (`EPROTO`).
    BrokenProducer {
        /// The index at fault (`"fault_prod"` or `"resp_cons"`).
        index: &'static str,
        /// Its value.
        value: u32,
        /// The consumer-side index it was compared with.
        against: u32,
        /// The ring's slot count.
        count: u32,
    },
    /// A record the caller asked to answer is malformed (a field out of its
    /// range), so no valid response can be built for it (`EPROTO`).
    MalformedRecord {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// No answer in time (`ETIMEDOUT`). After a control-reply timeout the
    /// connection is unusable (a late reply would be out of step).
    Timeout {
        /// What was being waited for.
        op: &'static str,
        /// How long.
        after: Duration,
    },
    /// Every response slot holds a response the producer has not consumed
    /// yet (`EAGAIN`). Nothing was written; retry after `resp_cons` moves
    /// (see [`crate::Queue::push_response_wait`]).
    ResponseRingFull {
        /// The ring's slot count.
        count: u32,
    },
    /// The queue is closed (`state == 3`): no record will follow (`ESHUTDOWN`).
    QueueClosed,
    /// The service hung up the control connection or the doorbell (`ECONNRESET`).
    ServiceGone,
    /// The connection was already broken by an earlier timeout or protocol
    /// error, or said BYE (`ENOTCONN`). Reconnect.
    NotConnected {
        /// Why.
        cause: String,
    },
    /// The caller passed an argument the protocol cannot carry (`EINVAL`).
    InvalidArgument {
        /// The argument.
        field: &'static str,
        /// Its value and the rule.
        detail: String,
    },
    /// A bug in this crate: an internal offset fell outside a mapping (`EFAULT`).
    Internal {
        /// What.
        detail: String,
    },
}

impl Error {
    /// The errno that best describes the error (the OS's or the service's own
    /// errno where there is one).
    pub fn errno(&self) -> i32 {
        match self {
            Error::Os { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            Error::Service { errno, .. } => *errno,
            Error::Protocol { .. }
            | Error::Header { .. }
            | Error::Negotiation { .. }
            | Error::BrokenProducer { .. }
            | Error::MalformedRecord { .. } => libc::EPROTO,
            Error::Descriptor { .. } => libc::EBADF,
            Error::Timeout { .. } => libc::ETIMEDOUT,
            Error::ResponseRingFull { .. } => libc::EAGAIN,
            Error::QueueClosed => libc::ESHUTDOWN,
            Error::ServiceGone => libc::ECONNRESET,
            Error::NotConnected { .. } => libc::ENOTCONN,
            Error::InvalidArgument { .. } => libc::EINVAL,
            Error::Internal { .. } => libc::EFAULT,
        }
    }

    /// True for errors after which the control connection cannot be used
    /// (reconnect): protocol violations, reply timeouts, a hang-up.
    pub fn breaks_connection(&self) -> bool {
        matches!(self, Error::Protocol { .. } | Error::Timeout { .. } | Error::ServiceGone | Error::NotConnected { .. })
    }

    pub(crate) fn os(op: &'static str, source: io::Error) -> Error {
        Error::Os { op, source }
    }

    pub(crate) fn protocol(field: &'static str, detail: impl Into<String>) -> Error {
        Error::Protocol { field, detail: detail.into() }
    }

    pub(crate) fn invalid(field: &'static str, detail: impl Into<String>) -> Error {
        Error::InvalidArgument { field, detail: detail.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Os { op, source } => write!(f, "{op}: {source}"),
            Error::Service { command, errno, reason } => write!(
                f,
                "service refused {}: {} (errno {errno}: {})",
                command_name(*command),
                reason,
                io::Error::from_raw_os_error(*errno)
            ),
            Error::Protocol { field, detail } => write!(f, "protocol violation by the service: {field}: {detail}"),
            Error::Descriptor { index, field, detail } => {
                let role = match index {
                    0 => "producer region",
                    1 => "consumer region",
                    2 => "consumer doorbell",
                    3 => "producer doorbell",
                    _ => "descriptor",
                };
                write!(f, "queue descriptor {index} ({role}) refused: {field}: {detail}")
            }
            Error::Header { field, value, expected } => {
                write!(f, "producer header refused: {field} = {value} (0x{value:x}), expected {expected}")
            }
            Error::Negotiation { detail } => write!(f, "ABI negotiation failed: {detail}"),
            Error::BrokenProducer { index, value, against, count } => write!(
                f,
                "broken producer: {index} = {value} is {} ahead of {against}, more than the ring's {count} slots",
                value.wrapping_sub(*against)
            ),
            Error::MalformedRecord { field, value } => write!(f, "malformed record: {field} = {value} (0x{value:x})"),
            Error::Timeout { op, after } => write!(f, "timed out after {after:?}: {op}"),
            Error::ResponseRingFull { count } => {
                write!(f, "response ring full: all {count} slots hold responses the producer has not consumed")
            }
            Error::QueueClosed => write!(f, "queue closed by the producer (state 3)"),
            Error::ServiceGone => write!(f, "the service hung up"),
            Error::NotConnected { cause } => write!(f, "control connection unusable: {cause}"),
            Error::InvalidArgument { field, detail } => write!(f, "invalid argument {field}: {detail}"),
            Error::Internal { detail } => write!(f, "internal error (a bug in the faultring crate): {detail}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Os { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    /// An `io::Error` whose kind follows the errno and whose payload is the
    /// original [`Error`]. (`raw_os_error()` of the result is `None`; use
    /// [`Error::errno`] before converting if you need the number.)
    fn from(e: Error) -> io::Error {
        let kind = io::Error::from_raw_os_error(e.errno()).kind();
        io::Error::new(kind, e)
    }
}

impl From<crate::sys::OutOfBounds> for Error {
    fn from(e: crate::sys::OutOfBounds) -> Error {
        Error::Internal { detail: format!("shared-memory offset {} outside its mapping or misaligned", e.off) }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
