//! Checks of attempt logs and latest statuses.

use crate::storage::Storage;

/// Not written yet.
pub async fn attempt_log_newest_first_and_capped(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}

/// Not written yet.
pub async fn latest_statuses_per_event(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}

/// Not written yet.
pub async fn payload_bytes_are_preserved(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}
