//! In-memory storage (placeholder until the memory backend lands).

use crate::storage::DEFAULT_LOG_CAP;

/// Settings of a [`MemoryStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStoreConfig {
    /// Attempts kept per subscription and event.
    pub log_cap: usize,
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        Self {
            log_cap: DEFAULT_LOG_CAP,
        }
    }
}

/// Storage in process memory.
#[derive(Debug, Default)]
pub struct MemoryStore {}
