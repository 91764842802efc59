//! `Debug` helpers that show which headers are set but never their values,
//! which may be credentials.

use std::collections::BTreeMap;
use std::fmt;

/// The placeholder shown instead of a secret.
pub(crate) const REDACTED: &str = "<redacted>";

/// Formats a header map as `{"X-Name": "<redacted>", ...}`.
pub(crate) struct RedactedHeaders<'a>(pub &'a BTreeMap<String, String>);

impl fmt::Debug for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|name| (name, REDACTED)))
            .finish()
    }
}

/// Formats an optional value as `Some("<redacted>")` or `None`.
pub(crate) struct RedactedOption(pub bool);

impl fmt::Debug for RedactedOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 {
            f.debug_tuple("Some").field(&REDACTED).finish()
        } else {
            f.write_str("None")
        }
    }
}
