//! The error every [`Storage`](super::Storage) method returns: which store
//! failed, what kind of failure it was, and the backend's own error.
//!
//! The service turns it into [`Error::Internal`](crate::Error::Internal), so
//! API clients only ever see `Internal Server Error`; the host sees the
//! whole error through its hooks and logs.

use std::fmt;

use crate::error::BoxError;

/// What kind of failure a store met, for deciding whether to retry or alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The backend could not be reached or did not answer in time
    /// (connection refused or lost, timeout, pool exhausted or closed).
    Unavailable,
    /// Writers collided (serialization failure, deadlock, a duplicate key):
    /// the same call may succeed when tried again.
    Conflict,
    /// The backend returned something that does not make sense (a value out
    /// of range, a row that does not decode, a missing result).
    Corrupt,
    /// Anything else.
    Other,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Corrupt => "corrupt data",
            ErrorKind::Other => "failed",
        })
    }
}

/// A storage failure: the store's name (`"memory"`, `"postgres"`, or a
/// third-party backend's), its [`ErrorKind`] and the backend's error.
///
/// ```
/// use webhook_subscriptions::storage::{Error, ErrorKind};
///
/// let error = Error::new("redis", ErrorKind::Unavailable, "connection refused");
/// assert_eq!(error.store(), "redis");
/// assert_eq!(error.to_string(), "redis store unavailable: connection refused");
/// // The API only ever shows it as an internal error.
/// let api: webhook_subscriptions::Error = error.into();
/// assert_eq!(api.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
/// ```
#[derive(Debug)]
pub struct Error {
    store: &'static str,
    kind: ErrorKind,
    source: BoxError,
}

impl Error {
    /// A failure of the store named `store`, of `kind`, caused by `source`.
    pub fn new(store: &'static str, kind: ErrorKind, source: impl Into<BoxError>) -> Self {
        Self {
            store,
            kind,
            source: source.into(),
        }
    }

    /// The name of the store that failed.
    pub fn store(&self) -> &'static str {
        self.store
    }

    /// What kind of failure it was.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} store {}: {}", self.store, self.kind, self.source)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

impl From<Error> for crate::Error {
    /// Every storage failure is an internal error to API clients.
    fn from(error: Error) -> Self {
        crate::Error::Internal(Box::new(error))
    }
}

/// The result of a [`Storage`](super::Storage) method.
pub type Result<T, E = Error> = std::result::Result<T, E>;
