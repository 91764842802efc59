//! Checks that organizations never see each other.

use crate::storage::Storage;

/// Not written yet.
pub async fn organizations_are_isolated(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}

/// Not written yet.
pub async fn logs_and_failures_are_isolated(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}

/// Not written yet.
pub async fn enqueue_stays_in_organization(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}
