//! The storage conformance suite over `PostgresStore`: one test per check
//! (from `conformance_tests!`), each in a fresh schema, and once more
//! through `run_all`. Needs `DATABASE_URL` (see `postgres_support`).
#![cfg(all(feature = "postgres", feature = "testing"))]

mod postgres_support;

use std::sync::Arc;

use postgres_support::TestDb;
use webhook_subscriptions::storage::{PostgresStore, PostgresStoreConfig, Storage};
use webhook_subscriptions::testing::{self, Fixture};

/// One check's database: a store in a fresh schema, dropped after the check.
struct Schema {
    db: TestDb,
    store: Arc<PostgresStore>,
}

impl Fixture for Schema {
    fn store(&self) -> Arc<dyn Storage> {
        self.store.clone()
    }

    async fn teardown(self) {
        drop(self.store);
        self.db.cleanup().await;
    }
}

/// A fresh schema for `check`, or `None` (after a notice) without `DATABASE_URL`.
async fn schema(check: &'static str) -> Option<Schema> {
    let db = TestDb::connect(check).await?;
    let store = Arc::new(db.store().await);
    Some(Schema { db, store })
}

webhook_subscriptions::conformance_tests! {
    fixture: schema,
    attributes: [#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]],
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn postgres_store_passes_the_whole_suite() {
    let Some(db) = TestDb::connect("postgres_store_passes_the_whole_suite").await else {
        return;
    };
    testing::run_all(|| db.store()).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn postgres_store_committing_attempts_asynchronously_passes_the_whole_suite() {
    let Some(db) =
        TestDb::connect("postgres_store_committing_attempts_asynchronously_passes_the_whole_suite")
            .await
    else {
        return;
    };
    let config = PostgresStoreConfig::new().with_asynchronous_attempt_commit(true);
    testing::run_all(|| db.store_with(config.clone())).await;
    db.cleanup().await;
}
