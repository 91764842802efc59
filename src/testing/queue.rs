//! Checks of the delivery queue.

use std::sync::Arc;

use crate::storage::Storage;

/// Not written yet.
pub async fn enqueue_targets_enabled_subscribers(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}

/// Not written yet.
pub async fn duplicate_event_id_enqueues_nothing(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}

/// Not written yet.
pub async fn claim_respects_due_time_and_limit(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}

/// Not written yet.
pub async fn lease_blocks_other_claimers_until_expiry(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}

/// Not written yet.
pub async fn stale_lease_cannot_overwrite(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}

/// Not written yet.
pub async fn concurrent_claimers_share_nothing(store: Arc<dyn Storage>) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}

/// Not written yet.
pub async fn retry_reschedules(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}

/// Not written yet.
pub async fn complete_removes_delivery(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}

/// Not written yet.
pub async fn fail_keeps_delivery_for_redelivery(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}

/// Not written yet.
pub async fn fail_and_disable_disables_subscription(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}

/// Not written yet.
pub async fn release_makes_delivery_claimable_at_once(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}

/// Not written yet.
pub async fn delete_cancels_deliveries_and_logs(store: &dyn Storage) {
    let _ = store;
    unimplemented!("conformance check not written yet")
}
