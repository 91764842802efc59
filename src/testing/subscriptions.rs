//! Checks of subscription storage.

use std::sync::Arc;

use crate::storage::Storage;

/// Not written yet.
pub async fn insert_and_get(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}

/// Not written yet.
pub async fn list_oldest_first(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}

/// Not written yet.
pub async fn update_applies_change(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}

/// Not written yet.
pub async fn delete_removes_subscription(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}

/// Not written yet.
pub async fn concurrent_updates_all_survive(store: Arc<dyn Storage>) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}
