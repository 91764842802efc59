//! Schema management of `PostgresStore`: concurrent, idempotent migrations
//! in the store's own schema and version table. Needs `DATABASE_URL`
//! (except the configuration checks, which never connect).
#![cfg(feature = "postgres")]

mod postgres_support;

use postgres_support::{pool, subscription, TestDb};
use sqlx::postgres::PgPoolOptions;
use sqlx::AssertSqlSafe;
use webhook_subscriptions::model::OrganizationId;
use webhook_subscriptions::storage::prelude::*;
use webhook_subscriptions::storage::{
    PostgresStore, PostgresStoreConfig, DEFAULT_LOG_CAP, DEFAULT_SCHEMA,
};
use webhook_subscriptions::Error;

async fn versions(db: &TestDb, schema: &str) -> Vec<i64> {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT version FROM \"{schema}\".schema_migrations ORDER BY version"
    )))
    .fetch_all(&db.pool)
    .await
    .unwrap_or_else(|e| panic!("reading schema_migrations failed: {e}"))
}

async fn tables_in(db: &TestDb, schema: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = $1 ORDER BY table_name",
    )
    .bind(schema)
    .fetch_all(&db.pool)
    .await
    .unwrap_or_else(|e| panic!("reading the catalog failed: {e}"))
}

fn store_on(pool: sqlx::PgPool, schema: &str) -> PostgresStore {
    PostgresStore::from_pool_with_config(pool, PostgresStoreConfig::new().with_schema(schema))
        .unwrap_or_else(|e| panic!("store config refused: {e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn concurrent_migrations_from_two_pools_apply_each_version_once() {
    let Some(db) = TestDb::connect("concurrent_migrations").await else {
        return;
    };
    let schema = db.schema();
    let first = store_on(pool(&db.url).await, &schema);
    let second = store_on(pool(&db.url).await, &schema);
    let (a, b) = tokio::join!(
        tokio::spawn(async move { first.migrate().await }),
        tokio::spawn(async move { second.migrate().await })
    );
    for result in [a, b] {
        result
            .unwrap_or_else(|e| panic!("migrate task failed: {e}"))
            .unwrap_or_else(|e| panic!("a concurrent migrate must succeed: {e:?}"));
    }
    let applied = versions(&db, &schema).await;
    assert!(!applied.is_empty(), "migrate must record its version");
    // Versions need not be contiguous: branches number theirs independently.
    assert!(
        applied.windows(2).all(|pair| pair[0] < pair[1]),
        "each schema version must be recorded exactly once: {applied:?}"
    );
    db.cleanup().await;
}

#[tokio::test]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn migrate_again_changes_nothing_and_keeps_data() {
    let Some(db) = TestDb::connect("migrate_again_changes_nothing").await else {
        return;
    };
    let store = db.store().await;
    let schema = store.config().schema.clone();
    let org = OrganizationId::new_v4();
    let sub = subscription("kept", &["ConversationCreated"]);
    store
        .insert_subscription(org, &sub)
        .await
        .unwrap_or_else(|e| panic!("insert_subscription failed: {e:?}"));
    let before = versions(&db, &schema).await;

    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("a second migrate must succeed: {e:?}"));
    assert_eq!(
        versions(&db, &schema).await,
        before,
        "a second migrate must apply nothing"
    );
    let found = store
        .get_subscription(org, sub.id)
        .await
        .unwrap_or_else(|e| panic!("get_subscription failed: {e:?}"));
    assert_eq!(found, Some(sub), "a second migrate must keep the data");
    drop(store);
    db.cleanup().await;
}

#[tokio::test]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn every_object_lives_in_the_configured_schema() {
    let Some(db) = TestDb::connect("every_object_lives_in_the_configured_schema").await else {
        return;
    };
    // Counted before and after: a host (or `examples/outbox.rs`) may have
    // its own in this database.
    let sqlx_tables = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("reading the catalog failed: {e}"))
    };
    let hosts = sqlx_tables().await;
    let store = db.store().await;
    let schema = store.config().schema.clone();
    assert_eq!(
        tables_in(&db, &schema).await,
        [
            "attempt_logs",
            "deliveries",
            "endpoint_health",
            "events",
            "schema_migrations",
            "subscription_events",
            "subscriptions"
        ],
        "the store's tables, its version table included, live in its schema"
    );
    assert_eq!(
        sqlx_tables().await,
        hosts,
        "the store must not create sqlx's migrations table, which belongs to the host"
    );
    drop(store);
    db.cleanup().await;
}

#[tokio::test]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn migrate_refuses_a_schema_whose_applied_migration_differs() {
    let Some(db) = TestDb::connect("migrate_refuses_a_changed_migration").await else {
        return;
    };
    let store = db.store().await;
    let schema = store.config().schema.clone();
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE \"{schema}\".schema_migrations SET checksum = '\\x00' WHERE version = 1"
    )))
    .execute(&db.pool)
    .await
    .unwrap_or_else(|e| panic!("tampering failed: {e}"));
    let refused = store.migrate().await;
    assert!(
        matches!(refused, Err(Error::Internal(_))),
        "a migration that differs from the applied one must be refused, got {refused:?}"
    );
    drop(store);
    db.cleanup().await;
}

#[tokio::test]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn configuration_defaults_and_refusals() {
    let config = PostgresStoreConfig::default();
    assert_eq!(config.schema, DEFAULT_SCHEMA);
    assert_eq!(DEFAULT_SCHEMA, "webhook_subscriptions");
    assert_eq!(config.log_cap, DEFAULT_LOG_CAP);

    // A lazy pool never connects: these checks need no database.
    let lazy = || {
        PgPoolOptions::new()
            .connect_lazy("postgres://postgres@127.0.0.1:5432/unused")
            .unwrap_or_else(|e| panic!("lazy pool: {e}"))
    };
    for bad in [
        "",
        "Upper",
        "has space",
        "semi;colon",
        "quo\"te",
        "1starts_with_digit",
        "pg_reserved",
        "ünïcode",
        &"x".repeat(64),
    ] {
        let refused = PostgresStore::from_pool_with_config(
            lazy(),
            PostgresStoreConfig::new().with_schema(bad),
        );
        assert!(
            matches!(refused, Err(Error::InvalidConfiguration(_))),
            "schema name {bad:?} must be refused"
        );
    }
    for good in ["webhooks", "_private", "wh_2024", &"x".repeat(63)] {
        let accepted = PostgresStore::from_pool_with_config(
            lazy(),
            PostgresStoreConfig::new().with_schema(good),
        );
        assert!(accepted.is_ok(), "schema name {good:?} must be accepted");
    }
    let zero_cap =
        PostgresStore::from_pool_with_config(lazy(), PostgresStoreConfig::new().with_log_cap(0));
    assert!(
        matches!(zero_cap, Err(Error::InvalidConfiguration(_))),
        "a log cap of 0 must be refused"
    );
    let negative = PostgresStore::from_pool_with_config(
        lazy(),
        PostgresStoreConfig::new().with_dedup_window(chrono::Duration::seconds(-1)),
    );
    assert!(
        matches!(negative, Err(Error::InvalidConfiguration(_))),
        "a negative dedup window must be refused"
    );
}

#[tokio::test]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn debug_output_never_shows_the_connection_password() {
    let pool = PgPoolOptions::new()
        .connect_lazy("postgres://app:s3cr3t-pw@127.0.0.1:5432/unused")
        .unwrap_or_else(|e| panic!("lazy pool: {e}"));
    let store = PostgresStore::from_pool(pool);
    let shown = format!("{store:?}");
    assert!(
        shown.contains(DEFAULT_SCHEMA),
        "Debug names the schema: {shown}"
    );
    assert!(
        !shown.contains("s3cr3t-pw"),
        "Debug must not show the password: {shown}"
    );
}
