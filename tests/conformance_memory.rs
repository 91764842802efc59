//! The storage conformance suite over `MemoryStore`: one test per check
//! (from `conformance_tests!`), and once more through `run_all`.
#![cfg(feature = "testing")]

use webhook_subscriptions::storage::MemoryStore;
use webhook_subscriptions::testing;

/// A fresh, empty store for one check.
async fn memory_store() -> MemoryStore {
    MemoryStore::new()
}

webhook_subscriptions::conformance_tests!(memory_store);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_the_whole_suite() {
    testing::run_all(memory_store).await;
}

/// `skip: [concurrency]` leaves the concurrency checks out and keeps the
/// others: the functions below take the skipped checks' names, so this
/// module would not compile if the macro generated them.
mod skipping_concurrency {
    webhook_subscriptions::conformance_tests! {
        store: super::memory_store,
        skip: [concurrency],
    }

    #[allow(dead_code)]
    fn concurrent_updates_all_survive() {}

    #[allow(dead_code)]
    fn concurrent_claimers_share_nothing() {}

    #[allow(dead_code)]
    fn concurrent_claimers_respect_the_cap() {}
}
