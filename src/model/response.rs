//! The `{"data": ...}` wrapper of every successful API body.

use serde::{Deserialize, Serialize};

/// Wraps a success body as `{"data": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataEnvelope<T> {
    /// The payload.
    pub data: T,
}

impl<T> DataEnvelope<T> {
    /// Wraps `data`.
    pub fn new(data: T) -> Self {
        Self { data }
    }
}
