//! The crate's one public [`Error`] and its HTTP mapping.

use std::fmt;

use http::StatusCode;
use serde::{Deserialize, Serialize};

/// A boxed error kept for logs; never shown to API clients.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which request a validation failure happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Creating a subscription.
    Creation,
    /// Patching a subscription.
    Patching,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Creation => "creation",
            Operation::Patching => "patching",
        })
    }
}

/// One problem found by validation: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field path, e.g. `url` or `customHeaders.X-Foo`.
    pub field: String,
    /// What is wrong, lowercase, without trailing punctuation.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Most problems a [`ValidationErrors`] keeps; later ones are only counted,
/// so a hostile request cannot make an error (or its response) large.
pub const MAX_REPORTED_ERRORS: usize = 20;

/// The problems found in one request (never empty when inside an
/// [`Error`]): the first [`MAX_REPORTED_ERRORS`], and how many more there were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    errors: Vec<FieldError>,
    omitted: usize,
}

impl ValidationErrors {
    /// Records a problem with `field` (only counted once the list is full).
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        if self.is_full() {
            self.omitted += 1;
        } else {
            self.errors.push(FieldError::new(field, message));
        }
    }

    /// Counts one more problem without recording it (the list is full).
    pub(crate) fn omit(&mut self) {
        self.omitted += 1;
    }

    /// Whether further problems are only counted; callers can skip
    /// building messages nobody will see.
    pub fn is_full(&self) -> bool {
        self.errors.len() >= MAX_REPORTED_ERRORS
    }

    /// Whether no problem was recorded.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The recorded problems (at most [`MAX_REPORTED_ERRORS`]).
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// How many problems were found beyond the recorded ones.
    pub fn omitted(&self) -> usize {
        self.omitted
    }

    /// Every problem found, recorded or not.
    pub fn len(&self) -> usize {
        self.errors.len() + self.omitted
    }

    /// `Ok(())` when empty, otherwise the validation error for `operation`.
    pub fn into_result(self, operation: Operation) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation {
                operation,
                errors: self,
            })
        }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        if self.omitted > 0 {
            write!(f, "; and {} more", self.omitted)?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in this crate, each kind mapping to an HTTP
/// status ([`Error::status`]) and a `{"message": ...}` body ([`Error::body`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A path parameter is malformed (not a UUID, unknown event name).
    #[error("Invalid value for: path parameter {parameter}: {detail}")]
    InvalidPathParameter {
        /// The parameter's name, e.g. `webhookSubscriptionId`.
        parameter: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The host could not supply a valid [`RequestContext`](crate::RequestContext).
    #[error("Invalid value extracted from request context: {0}")]
    InvalidRequestContext(String),
    /// The request body is not valid JSON, has wrong types or unknown fields, or is too large.
    #[error("Invalid value for: body: {0}")]
    InvalidBody(String),
    /// The request is well-formed but breaks a rule.
    #[error("Validation failure during Webhook Subscription {operation}: {errors}")]
    Validation {
        /// Create or patch.
        operation: Operation,
        /// Every problem found.
        errors: ValidationErrors,
    },
    /// The entity does not exist, or belongs to another organization.
    #[error("An entity in this request could not be found: {0}")]
    NotFound(String),
    /// The organization already has as many subscriptions as allowed.
    #[error("Subscription limit reached: {0}")]
    LimitReached(String),
    /// A published event was refused (unknown event name, data not an object, too large).
    #[error("Invalid event: {0}")]
    InvalidEvent(String),
    /// A configuration value was refused at construction.
    #[error("Invalid configuration: {0}")]
    InvalidConfiguration(String),
    /// A storage or other internal failure; the source is for logs only.
    #[error("Internal Server Error")]
    Internal(#[source] BoxError),
}

impl Error {
    /// An internal error wrapping `source` (shown to clients only as `Internal Server Error`).
    pub fn internal(source: impl Into<BoxError>) -> Self {
        Error::Internal(source.into())
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidPathParameter { .. }
            | Error::InvalidRequestContext(_)
            | Error::InvalidBody(_)
            | Error::Validation { .. }
            | Error::InvalidEvent(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::LimitReached(_) => StatusCode::CONFLICT,
            Error::InvalidConfiguration(_) | Error::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The JSON error body for clients. Internal details are never included.
    pub fn body(&self) -> ErrorBody {
        let message = match self {
            Error::InvalidConfiguration(_) | Error::Internal(_) => {
                "Internal Server Error".to_owned()
            }
            other => cap_message(other.to_string()),
        };
        ErrorBody { message }
    }
}

/// The most bytes an error message takes once escaped in a JSON body, so
/// an error response stays small whatever the input echoed in it.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 8 * 1024;

/// `message` cut (on a character boundary, marked with `…`) so its JSON
/// string form, quotes and escapes included, fits [`MAX_ERROR_MESSAGE_BYTES`].
fn cap_message(mut message: String) -> String {
    const ELLIPSIS: char = '…';
    // Room for the surrounding quotes and the ellipsis.
    let budget = MAX_ERROR_MESSAGE_BYTES - 2 - ELLIPSIS.len_utf8();
    let mut used = 0;
    for (at, c) in message.char_indices() {
        used += match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if c < ' ' => 6,
            c => c.len_utf8(),
        };
        if used > budget {
            message.truncate(at);
            message.push(ELLIPSIS);
            break;
        }
    }
    message
}

/// The `{"message": "..."}` body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Human-readable description starting with the kind's phrase.
    pub message: String,
}
