//! The storage conformance suite over `KvStore`, a Redis-shaped toy store
//! (see `kv_store/mod.rs`): proof that the `Storage` contract fits a
//! key-value backend with Redis's data types and atomic scripts.
#![cfg(feature = "testing")]

mod kv_store;

use kv_store::KvStore;

/// A fresh, empty store for one check.
async fn make_store() -> KvStore {
    KvStore::default()
}

webhook_subscriptions::conformance_tests!(make_store);
