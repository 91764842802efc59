//! How a receiver authenticates our deliveries, and its `Authorization` header.

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The name of the header that [`Authorization::header_value`] fills.
pub const AUTHORIZATION_HEADER: &str = "Authorization";

/// Credentials sent with every delivery, tagged on `_type` in JSON.
/// `Debug` redacts the password and the token. Fields a variant does not
/// have (`{"_type": "NoAuth", "value": "x"}`) are refused.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "_type", from = "StrictAuthorization")]
pub enum Authorization {
    /// HTTP Basic: `Authorization: Basic base64(username:password)`.
    BasicAuth {
        /// Must not contain `:`.
        username: String,
        /// Sent as is; redacted in `Debug`.
        password: String,
    },
    /// Bearer token: `Authorization: Bearer <value>`.
    TokenAuth {
        /// The token; must not be empty; redacted in `Debug`.
        value: String,
    },
    /// No `Authorization` header.
    #[default]
    NoAuth,
}

/// The wire form read strictly: serde lets an internally tagged unit
/// variant ignore extra fields, so `NoAuth` is read as an empty struct.
#[derive(Deserialize)]
#[serde(tag = "_type", deny_unknown_fields)]
#[allow(clippy::enum_variant_names)] // the `_type` values on the wire
enum StrictAuthorization {
    BasicAuth { username: String, password: String },
    TokenAuth { value: String },
    NoAuth {},
}

impl From<StrictAuthorization> for Authorization {
    fn from(wire: StrictAuthorization) -> Self {
        match wire {
            StrictAuthorization::BasicAuth { username, password } => {
                Authorization::BasicAuth { username, password }
            }
            StrictAuthorization::TokenAuth { value } => Authorization::TokenAuth { value },
            StrictAuthorization::NoAuth {} => Authorization::NoAuth,
        }
    }
}

impl Authorization {
    /// The `Authorization` header value this produces, if any.
    ///
    /// Pure conversion: call [`crate::validate`] first to refuse credentials
    /// that cannot be sent (CR/LF/NUL, `:` in a username, empty token).
    pub fn header_value(&self) -> Option<String> {
        match self {
            Authorization::BasicAuth { username, password } => {
                let raw = format!("{username}:{password}");
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ))
            }
            Authorization::TokenAuth { value } => Some(format!("Bearer {value}")),
            Authorization::NoAuth => None,
        }
    }
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Authorization::BasicAuth { username, .. } => f
                .debug_struct("BasicAuth")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Authorization::TokenAuth { .. } => f
                .debug_struct("TokenAuth")
                .field("value", &"<redacted>")
                .finish(),
            Authorization::NoAuth => f.write_str("NoAuth"),
        }
    }
}
