//! Shared set-up of the PostgreSQL tests: the database comes from
//! `DATABASE_URL` (loopback only); every store gets a fresh schema.
//!
//! Without `DATABASE_URL` the tests are reported as ignored (the build
//! script sets `postgres_tests_ignored`), unless `CI` is set: then they run
//! and fail, so CI can never skip them silently. Run with `--include-ignored`
//! and no database, a test prints a skip notice and passes.

// Each test file compiles its own copy and uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::AssertSqlSafe;
use webhook_subscriptions::model::{
    DeliveryDetail, EventId, OrganizationId, SecretKey, SubscriptionId, UserId, WebhookSubscription,
};
use webhook_subscriptions::storage::NewEvent;
use webhook_subscriptions::storage::{PostgresStore, PostgresStoreConfig};

/// Connections per test pool: enough for the concurrent checks to race.
const POOL_SIZE: u32 = 10;

/// A test's database: a pool and the schemas it created.
pub struct TestDb {
    pub url: String,
    pub pool: PgPool,
    schemas: Mutex<Vec<String>>,
}

impl TestDb {
    /// Connects to `DATABASE_URL`, or returns `None` (after a notice) when
    /// it is unset outside CI.
    pub async fn connect(test: &str) -> Option<TestDb> {
        let Ok(url) = std::env::var("DATABASE_URL") else {
            if std::env::var_os("CI").is_some() {
                panic!("DATABASE_URL must point at a PostgreSQL database when CI is set ({test})");
            }
            eprintln!("skipping {test}: set DATABASE_URL to run the PostgreSQL tests");
            return None;
        };
        assert_loopback(&url);
        let pool = pool(&url).await;
        Some(TestDb {
            url,
            pool,
            schemas: Mutex::new(Vec::new()),
        })
    }

    /// A schema name no other test uses, dropped by [`TestDb::cleanup`].
    pub fn schema(&self) -> String {
        let schema = format!("wh_test_{}", uuid::Uuid::new_v4().simple());
        self.schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(schema.clone());
        schema
    }

    /// A migrated store with the default settings in a fresh schema.
    pub async fn store(&self) -> PostgresStore {
        self.store_with(PostgresStoreConfig::new()).await
    }

    /// A migrated store with `config` in a fresh schema.
    pub async fn store_with(&self, config: PostgresStoreConfig) -> PostgresStore {
        let config = config.with_schema(self.schema());
        let store = PostgresStore::from_pool_with_config(self.pool.clone(), config)
            .unwrap_or_else(|e| panic!("store config refused: {e:?}"));
        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrate failed: {e:?}"));
        store
    }

    /// Drops every schema this test created.
    pub async fn cleanup(self) {
        let schemas = self
            .schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for schema in schemas {
            sqlx::raw_sql(AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
            )))
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("dropping schema {schema} failed: {e}"));
        }
        self.pool.close().await;
    }
}

/// A new pool to `url`.
pub async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL: {e}"))
}

/// These tests only ever talk to a database on this machine.
fn assert_loopback(url: &str) {
    let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("DATABASE_URL is not a URL: {e}"));
    let host = parsed.host_str().unwrap_or_default();
    assert!(
        matches!(host, "127.0.0.1" | "localhost" | "[::1]"),
        "DATABASE_URL must point at a loopback address (127.0.0.1, localhost or [::1]), not `{host}`"
    );
}

/// A store of its own pool (as another process would have) on `schema`.
pub async fn store_in(url: &str, schema: &str) -> PostgresStore {
    PostgresStore::from_pool_with_config(
        pool(url).await,
        PostgresStoreConfig::new().with_schema(schema),
    )
    .unwrap_or_else(|e| panic!("store config refused: {e:?}"))
}

/// 2024-01-01T00:00:00Z plus `seconds`.
pub fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_704_067_200 + seconds, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

/// An enabled subscription to `events`.
pub fn subscription(name: &str, events: &[&str]) -> WebhookSubscription {
    let user = UserId::new_v4();
    WebhookSubscription {
        id: SubscriptionId::new_v4(),
        name: name.to_owned(),
        url: format!("https://receiver.example.com/{name}"),
        subscribed_events: events.iter().map(|e| (*e).to_owned()).collect(),
        headers: BTreeMap::new(),
        secret_key: SecretKey::from_bytes([7; 32]),
        enabled: true,
        created_at: at(0),
        created_by: user,
        updated_at: at(0),
        updated_by: user,
        filters: None,
        previous_secret: None,
    }
}

/// A new event named `name` of `organization`, published at `published_at`.
pub fn event(organization: OrganizationId, name: &str, published_at: DateTime<Utc>) -> NewEvent {
    let event_id = EventId::new_v4();
    NewEvent {
        organization_id: organization,
        event_id,
        event_name: name.to_owned(),
        payload: Bytes::from(format!("{{\"event_id\":\"{event_id}\",\"data\":{{}}}}")),
        published_at,
    }
}

/// The outcome of an attempt made at `when`.
pub fn detail(when: DateTime<Utc>, response_code: u16, response_text: &str) -> DeliveryDetail {
    DeliveryDetail {
        delivery_timestamp: when,
        success: (200..300).contains(&response_code),
        response_code,
        response_text: response_text.to_owned(),
    }
}
