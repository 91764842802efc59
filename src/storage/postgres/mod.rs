//! [`PostgresStore`]: durable storage in PostgreSQL, shared by any number of
//! worker processes (feature `postgres`).
//!
//! Everything lives in one schema of the host's database (default
//! [`DEFAULT_SCHEMA`]), created and upgraded by [`PostgresStore::migrate`]
//! from the SQL files shipped in the crate; the store's own version table
//! sits in that schema, so it never meets the host's migrations.
//!
//! How the queue stays fast and crash-safe:
//!
//! - fan-out is one statement: the event id is inserted for de-duplication
//!   and the deliveries for every enabled subscriber in the same implicit
//!   transaction, so a crash never leaves half an event queued; the payload
//!   is stored once per event and joined by deliveries and logs. On the
//!   host's own connection ([`PostgresStore::enqueue_event_in`]) the same
//!   statement joins the host's transaction instead;
//! - claims lease the earliest due rows with `FOR UPDATE SKIP LOCKED` in one
//!   statement; the HTTP call happens outside any transaction;
//! - recording an attempt is one statement: log, trim the log, and apply the
//!   next step only if the lease token still matches; its commit waits for
//!   the disk unless [`PostgresStoreConfig::asynchronous_attempt_commit`]
//!   says otherwise;
//! - concurrent calls of [`DeliveryQueue::enqueue_event`] and
//!   [`DeliveryQueue::record_attempt`] on one store share a statement (group
//!   commit), so a busy worker pays one round trip and one commit for many
//!   deliveries; a lone call waits for nothing;
//! - the latest status is the newest log row, so no row is rewritten by
//!   every delivery to one endpoint; logs are trimmed lazily, so a log may
//!   briefly hold a few more rows than the cap, but reads never show more.
//!
//! ```no_run
//! # async fn demo() -> webhook_subscriptions::Result<()> {
//! use webhook_subscriptions::storage::{PostgresStore, PostgresStoreConfig};
//!
//! let config = PostgresStoreConfig::new().with_schema("webhooks");
//! let store = PostgresStore::connect_with_config("postgres://app@127.0.0.1/app", config).await?;
//! store.migrate().await?;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::delivery::CircuitBreaker;
use crate::error::{Error, Result};
use crate::model::{
    DeliveryDetail, DeliveryId, OrganizationId, SubscriptionChange, SubscriptionId,
    WebhookSubscription,
};
use crate::storage::{
    AttemptHistory, DeliveryQueue, FailedSelection, QueueStats, Result as StoreResult,
    SubscriptionStore, DEFAULT_DEDUP_WINDOW, DEFAULT_LOG_CAP,
};
use crate::storage::{
    AttemptLog, ClaimLimits, ClaimedDelivery, Delivery, DeliveryState, EndpointHealth, Lease,
    LeaseOutcome, NewEvent, NextStep, Recorded,
};

mod batch;
mod migrate;
mod queries;
mod rows;
mod writes;

use batch::Batcher;
use queries::{sql, Queries};
use rows::db;
use writes::{Attempt, EnqueueWriter, RecordWriter};

/// The schema a [`PostgresStore`] uses unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "webhook_subscriptions";

/// The pool size of [`PostgresStore::connect`] unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// Settings of a [`PostgresStore`].
///
/// ```
/// use chrono::Duration;
/// use webhook_subscriptions::storage::PostgresStoreConfig;
///
/// let config = PostgresStoreConfig::new()
///     .with_schema("webhooks")
///     .with_log_cap(20)
///     .with_dedup_window(Duration::hours(48));
/// assert_eq!(config.schema, "webhooks");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresStoreConfig {
    /// The schema holding every table: 1 to 63 lower-case ASCII letters,
    /// digits and `_`, not starting with a digit or `pg_`. Default
    /// [`DEFAULT_SCHEMA`].
    pub schema: String,
    /// Attempts shown per subscription and event (at least 1); older ones
    /// are deleted as new ones arrive. Default [`DEFAULT_LOG_CAP`].
    pub log_cap: usize,
    /// How long an enqueued `event_id` is remembered at least, counted from
    /// the event's `published_at`; [`PostgresStore::prune_events`] forgets
    /// older ones. Default [`DEFAULT_DEDUP_WINDOW`] (24 hours).
    pub dedup_window: Duration,
    /// Pool size when the store opens its own pool
    /// ([`PostgresStore::connect_with_config`]); ignored for a host's pool.
    /// Default [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: u32,
    /// Whether recorded attempts commit without waiting for PostgreSQL to
    /// flush them to disk (`synchronous_commit = off` for those
    /// transactions alone; enqueued events and every other write stay as
    /// the server is configured). Default `false`.
    ///
    /// Turn it on to trade a little durability for delivery throughput: a
    /// crash of the PostgreSQL server (not of a worker) may lose the
    /// attempts recorded in its last moments, up to three times
    /// `wal_writer_delay` (600 ms with the server's defaults). Those
    /// deliveries are then sent again once their leases expire, as after a
    /// worker crash, and their log entries and circuit-breaker counts are
    /// lost. Delivery stays at least once, and no published event or queued
    /// delivery is ever lost. `BENCHMARKS.md` measured 17-32% more
    /// deliveries per second with it, on 2 cores shared with PostgreSQL.
    pub asynchronous_attempt_commit: bool,
}

impl PostgresStoreConfig {
    /// The default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`schema`](Self::schema).
    #[must_use]
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Sets [`log_cap`](Self::log_cap).
    #[must_use]
    pub fn with_log_cap(mut self, log_cap: usize) -> Self {
        self.log_cap = log_cap;
        self
    }

    /// Sets [`dedup_window`](Self::dedup_window).
    #[must_use]
    pub fn with_dedup_window(mut self, window: Duration) -> Self {
        self.dedup_window = window;
        self
    }

    /// Sets [`max_connections`](Self::max_connections).
    #[must_use]
    pub fn with_max_connections(mut self, max_connections: u32) -> Self {
        self.max_connections = max_connections;
        self
    }

    /// Sets [`asynchronous_attempt_commit`](Self::asynchronous_attempt_commit).
    #[must_use]
    pub fn with_asynchronous_attempt_commit(mut self, asynchronous: bool) -> Self {
        self.asynchronous_attempt_commit = asynchronous;
        self
    }

    fn validate(&self) -> Result<()> {
        validate_schema(&self.schema)?;
        let invalid = |message: &str| Err(Error::InvalidConfiguration(message.to_owned()));
        if self.log_cap == 0 {
            return invalid("log_cap must be at least 1");
        }
        if i64::try_from(self.log_cap).is_err() {
            return invalid("log_cap is too large");
        }
        if self.dedup_window < Duration::zero() {
            return invalid("dedup_window must not be negative");
        }
        if self.max_connections == 0 {
            return invalid("max_connections must be at least 1");
        }
        Ok(())
    }
}

impl Default for PostgresStoreConfig {
    fn default() -> Self {
        Self {
            schema: DEFAULT_SCHEMA.to_owned(),
            log_cap: DEFAULT_LOG_CAP,
            dedup_window: DEFAULT_DEDUP_WINDOW,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            asynchronous_attempt_commit: false,
        }
    }
}

/// Schema names are spliced into SQL, so only plain lower-case identifiers
/// pass (no quoting or case-folding surprises).
fn validate_schema(schema: &str) -> Result<()> {
    let plain = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit()
        && !schema.starts_with("pg_");
    if plain {
        Ok(())
    } else {
        Err(Error::InvalidConfiguration(format!(
            "schema `{schema}` must be 1 to 63 lower-case ASCII letters, digits and `_`, \
             not starting with a digit or `pg_`"
        )))
    }
}

/// Storage in PostgreSQL: durable, and safe to share between any number of
/// worker processes (claims never hand a leased delivery to two workers).
///
/// Cheap to clone (the pool is shared). Call [`migrate`](Self::migrate)
/// once at start-up before using it; it is idempotent and safe to run from
/// several processes at once. Database failures surface as
/// [`Error::Internal`].
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    config: PostgresStoreConfig,
    queries: Arc<Queries>,
    enqueues: Arc<Batcher<EnqueueWriter>>,
    records: Arc<Batcher<RecordWriter>>,
}

impl PostgresStore {
    /// Opens a pool to `url` with the default settings.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_config(url, PostgresStoreConfig::default()).await
    }

    /// Opens a pool of `config.max_connections` to `url`.
    pub async fn connect_with_config(url: &str, config: PostgresStoreConfig) -> Result<Self> {
        config.validate()?;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .connect(url)
            .await
            .map_err(db)?;
        Self::from_pool_with_config(pool, config)
    }

    /// Uses the host's pool with the default settings.
    pub fn from_pool(pool: PgPool) -> Self {
        Self::build(pool, PostgresStoreConfig::default())
    }

    /// Uses the host's pool with `config`; refuses an invalid schema name, a
    /// `log_cap` of 0 and a negative `dedup_window`.
    pub fn from_pool_with_config(pool: PgPool, config: PostgresStoreConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self::build(pool, config))
    }

    fn build(pool: PgPool, config: PostgresStoreConfig) -> Self {
        let queries = Arc::new(Queries::new(&config.schema, config.log_cap));
        let enqueues = Batcher::new(EnqueueWriter {
            pool: pool.clone(),
            queries: Arc::clone(&queries),
        });
        let records = Batcher::new(RecordWriter {
            pool: pool.clone(),
            queries: Arc::clone(&queries),
            asynchronous_commit: config.asynchronous_attempt_commit,
        });
        Self {
            pool,
            config,
            queries,
            enqueues: Arc::new(enqueues),
            records: Arc::new(records),
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &PostgresStoreConfig {
        &self.config
    }

    /// Creates the schema and its tables, or upgrades them to this version
    /// of the crate. Idempotent; concurrent calls (from several processes)
    /// wait for each other and apply each migration once.
    pub async fn migrate(&self) -> Result<()> {
        migrate::migrate(&self.pool, &self.config.schema).await
    }

    /// Forgets event ids published at or before `now - dedup_window` that no
    /// queued delivery or attempt log still needs; returns how many were
    /// forgotten. Run it from a periodic maintenance job: it scans the queue
    /// and the logs.
    pub async fn prune_events(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let cutoff = now
            .checked_sub_signed(self.config.dedup_window)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let done = sqlx::query(sql(&self.queries.prune_events))
            .bind(cutoff)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    /// [`DeliveryQueue::enqueue_event`] on the host's own connection, typically
    /// inside its transaction (a transactional outbox): the event is queued
    /// if and only if the host's transaction commits. Hosts usually call
    /// [`WebhookService::publish_in`](crate::WebhookService::publish_in),
    /// which builds and checks the event first and explains how concurrent
    /// publishers and isolation levels behave.
    ///
    /// ```no_run
    /// # async fn demo(store: webhook_subscriptions::storage::PostgresStore,
    /// #     pool: sqlx::PgPool, event: webhook_subscriptions::storage::NewEvent)
    /// #     -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tx = pool.begin().await?;
    /// // ... the host's own writes on `tx` ...
    /// store.enqueue_event_in(&mut tx, &event).await?;
    /// tx.commit().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn enqueue_event_in(
        &self,
        connection: &mut PgConnection,
        event: &NewEvent,
    ) -> Result<usize> {
        let queued = EnqueueWriter::enqueue(&self.queries, connection, &[event])
            .await
            .map_err(db)?;
        Ok(queued_count(queued.first().copied())?)
    }

    /// Drops claimed rows whose subscription or event is gone: a fan-out
    /// that raced with a delete can leave such a delivery behind.
    async fn drop_orphans(&self, orphans: Vec<(Uuid, Uuid)>) -> StoreResult<()> {
        let (ids, tokens): (Vec<Uuid>, Vec<Uuid>) = orphans.into_iter().unzip();
        sqlx::query(sql(&self.queries.drop_orphans))
            .bind(ids)
            .bind(tokens)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}

impl fmt::Debug for PostgresStore {
    // The pool's options hold the connection password: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("config", &self.config)
            .field("pool_size", &self.pool.size())
            .finish_non_exhaustive()
    }
}

fn queued_count(queued: Option<i64>) -> StoreResult<usize> {
    let queued = queued.ok_or_else(|| rows::corrupt_result("fan-out returned no count"))?;
    usize::try_from(queued).map_err(|e| rows::corrupt_result(e.to_string()))
}

/// The previous secret's bytes, bound as NULL when there is none.
fn previous_key(subscription: &WebhookSubscription) -> Option<&[u8]> {
    subscription
        .previous_secret
        .as_ref()
        .map(|previous| previous.key.as_bytes().as_slice())
}

fn bind_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[async_trait]
impl SubscriptionStore for PostgresStore {
    async fn insert_subscription(
        &self,
        organization: OrganizationId,
        subscription: &WebhookSubscription,
    ) -> StoreResult<()> {
        sqlx::query(sql(&self.queries.insert_subscription))
            .bind(organization.0)
            .bind(subscription.id.0)
            .bind(&subscription.name)
            .bind(&subscription.url)
            .bind(&subscription.subscribed_events)
            .bind(Json(&subscription.headers))
            .bind(subscription.secret_key.as_bytes().as_slice())
            .bind(subscription.enabled)
            .bind(subscription.created_at)
            .bind(subscription.created_by.0)
            .bind(subscription.updated_at)
            .bind(subscription.updated_by.0)
            .bind(subscription.filters.as_ref().map(Json))
            .bind(previous_key(subscription))
            .bind(subscription.previous_secret.as_ref().map(|p| p.expires_at))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn get_subscription(
        &self,
        organization: OrganizationId,
        id: SubscriptionId,
    ) -> StoreResult<Option<WebhookSubscription>> {
        let row = sqlx::query(sql(&self.queries.get_subscription))
            .bind(organization.0)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        match row {
            Some(row) => rows::subscription(&row),
            None => Ok(None),
        }
    }

    async fn list_subscriptions(
        &self,
        organization: OrganizationId,
    ) -> StoreResult<Vec<WebhookSubscription>> {
        let found = sqlx::query(sql(&self.queries.list_subscriptions))
            .bind(organization.0)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let mut subscriptions = Vec::with_capacity(found.len());
        for row in &found {
            subscriptions.extend(rows::subscription(row)?);
        }
        Ok(subscriptions)
    }

    async fn update_subscription(
        &self,
        organization: OrganizationId,
        id: SubscriptionId,
        change: &SubscriptionChange,
    ) -> StoreResult<Option<WebhookSubscription>> {
        // The row lock makes read-apply-write atomic: concurrent changes of
        // different fields all survive.
        let mut tx = self.pool.begin().await.map_err(db)?;
        let row = sqlx::query(sql(&self.queries.lock_subscription))
            .bind(organization.0)
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let Some(mut subscription) = row.as_ref().map(rows::subscription).transpose()?.flatten()
        else {
            return Ok(None);
        };
        subscription.apply(change);
        let row = sqlx::query(sql(&self.queries.write_subscription))
            .bind(organization.0)
            .bind(id.0)
            .bind(&subscription.name)
            .bind(&subscription.url)
            .bind(&subscription.subscribed_events)
            .bind(Json(&subscription.headers))
            .bind(subscription.enabled)
            .bind(subscription.updated_at)
            .bind(subscription.updated_by.0)
            .bind(subscription.secret_key.as_bytes().as_slice())
            .bind(previous_key(&subscription))
            .bind(subscription.previous_secret.as_ref().map(|p| p.expires_at))
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let stored = rows::subscription(&row)?;
        tx.commit().await.map_err(db)?;
        Ok(stored)
    }

    async fn delete_subscription(
        &self,
        organization: OrganizationId,
        id: SubscriptionId,
    ) -> StoreResult<bool> {
        sqlx::query_scalar(sql(&self.queries.delete_subscription))
            .bind(organization.0)
            .bind(id.0)
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }
}

#[async_trait]
impl DeliveryQueue for PostgresStore {
    async fn enqueue_event(&self, event: &NewEvent) -> StoreResult<usize> {
        let queued = self.enqueues.submit(event.clone()).await?;
        queued_count(Some(queued))
    }

    async fn enqueue_deliveries(
        &self,
        event: &NewEvent,
        targets: &[SubscriptionId],
    ) -> StoreResult<Vec<DeliveryId>> {
        let targets: Vec<Uuid> = targets.iter().map(|id| id.0).collect();
        let queued: Vec<Uuid> = sqlx::query_scalar(sql(&self.queries.enqueue_deliveries))
            .bind(event.organization_id.0)
            .bind(event.event_id.0)
            .bind(&event.event_name)
            .bind(event.payload.as_ref())
            .bind(event.published_at)
            .bind(&targets)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(queued.into_iter().map(DeliveryId).collect())
    }

    async fn claim_deliveries_fairly(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limits: ClaimLimits,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let limit = limits.batch;
        let cap = bind_limit(limits.per_subscription);
        if limit == 0 || cap == 0 {
            return Ok(Vec::new());
        }
        let expires_at = now
            .checked_add_signed(lease_for)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        // Two statements under per-lane advisory locks: the second takes a
        // fresh snapshot, so it counts every lease committed by whoever held
        // a lane's lock before (see `Queries::claim_lanes`). Read committed
        // whatever the server's default, for the same reason. Sent as one
        // simple query with the begin, two settings of this transaction
        // alone: a lease is soft state (lost in a crash, the delivery is
        // claimed again, as after a lease expires), so its commit does not
        // wait for the disk; and the claim keeps one generic plan instead of
        // being planned anew on every call.
        let mut tx = self
            .pool
            .begin_with(
                "BEGIN ISOLATION LEVEL READ COMMITTED; \
                 SET LOCAL synchronous_commit = off; \
                 SET LOCAL plan_cache_mode = force_generic_plan",
            )
            .await
            .map_err(db)?;
        let lanes = sqlx::query(sql(&self.queries.claim_lanes))
            .bind(now)
            .bind(cap)
            .bind(bind_limit(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        if lanes.is_empty() {
            tx.commit().await.map_err(db)?;
            return Ok(Vec::new());
        }
        let mut organizations = Vec::with_capacity(lanes.len());
        let mut subscriptions = Vec::with_capacity(lanes.len());
        let mut in_flight = Vec::with_capacity(lanes.len());
        let mut caps = Vec::with_capacity(lanes.len());
        for lane in &lanes {
            organizations.push(sqlx::Row::try_get::<Uuid, _>(lane, "org").map_err(db)?);
            subscriptions.push(sqlx::Row::try_get::<Uuid, _>(lane, "sub_id").map_err(db)?);
            in_flight.push(sqlx::Row::try_get::<i64, _>(lane, "org_live").map_err(db)?);
            caps.push(sqlx::Row::try_get::<i64, _>(lane, "cap").map_err(db)?);
        }
        let found = sqlx::query(sql(&self.queries.claim(limit)))
            .bind(now)
            .bind(expires_at)
            .bind(cap)
            .bind(organizations)
            .bind(subscriptions)
            .bind(in_flight)
            .bind(caps)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        let mut claimed = Vec::with_capacity(found.len());
        let mut orphans = Vec::new();
        for row in &found {
            let delivery_id: Uuid = sqlx::Row::try_get(row, "delivery_id").map_err(db)?;
            let token: Uuid = sqlx::Row::try_get(row, "lease_token").map_err(db)?;
            let event_name: Option<String> = sqlx::Row::try_get(row, "event_name").map_err(db)?;
            let subscription = rows::subscription(row)?;
            let (Some(subscription), Some(_)) = (subscription, event_name) else {
                orphans.push((delivery_id, token));
                continue;
            };
            claimed.push(ClaimedDelivery {
                delivery: rows::delivery(row, "delivery_id", DeliveryState::Leased)?,
                subscription: Arc::new(subscription),
                lease: Lease {
                    delivery_id: DeliveryId(delivery_id),
                    token,
                    expires_at,
                },
            });
        }
        if !orphans.is_empty() {
            self.drop_orphans(orphans).await?;
        }
        Ok(claimed)
    }

    async fn record_attempt_with_breaker(
        &self,
        claim: &ClaimedDelivery,
        detail: &DeliveryDetail,
        next: NextStep,
        breaker: Option<&CircuitBreaker>,
    ) -> StoreResult<Recorded> {
        self.records
            .submit(Attempt::new(claim, detail, next, breaker))
            .await
    }

    async fn release(&self, claim: &ClaimedDelivery) -> StoreResult<LeaseOutcome> {
        let done = sqlx::query(sql(&self.queries.release))
            .bind(claim.delivery.id.0)
            .bind(claim.lease.token)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(if done.rows_affected() == 1 {
            LeaseOutcome::Applied
        } else {
            LeaseOutcome::LeaseLost
        })
    }

    async fn failed_deliveries(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let found = sqlx::query(sql(&self.queries.failed_deliveries))
            .bind(organization.0)
            .bind(subscription.0)
            .bind(bind_limit(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        found
            .iter()
            .map(|row| rows::delivery(row, "id", rows::state(row)?))
            .collect()
    }

    async fn redeliver(
        &self,
        organization: OrganizationId,
        delivery: DeliveryId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(sql(&self.queries.redeliver))
            .bind(organization.0)
            .bind(delivery.0)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn redeliver_failed(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
        which: FailedSelection,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<usize> {
        let (one, since) = match which {
            FailedSelection::One(id) => (Some(id.0), None),
            FailedSelection::Since(since) => (None, Some(since)),
        };
        let requeued: i64 = sqlx::query_scalar(sql(&self.queries.redeliver_failed))
            .bind(organization.0)
            .bind(subscription.0)
            .bind(one)
            .bind(since)
            .bind(now)
            .bind(bind_limit(limit))
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        usize::try_from(requeued).map_err(|e| rows::corrupt_result(e.to_string()))
    }

    async fn queue_stats(&self, now: DateTime<Utc>) -> StoreResult<QueueStats> {
        let row = sqlx::query(sql(&self.queries.queue_stats))
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        let due: i64 = sqlx::Row::try_get(&row, "due").map_err(db)?;
        let oldest_due_at = sqlx::Row::try_get(&row, "oldest_due_at").map_err(db)?;
        Ok(QueueStats {
            due: u64::try_from(due).map_err(|e| rows::corrupt_result(e.to_string()))?,
            oldest_due_at,
        })
    }

    async fn prune(&self, now: DateTime<Utc>, before: DateTime<Utc>) -> StoreResult<u64> {
        let removed: i64 = sqlx::query_scalar(sql(&self.queries.prune_history))
            .bind(before)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        // A second statement: the first one's deletions are not visible to
        // its own subqueries, so payloads it freed go only now.
        self.prune_events(now).await?;
        Ok(u64::try_from(removed).unwrap_or_default())
    }
}

#[async_trait]
impl AttemptHistory for PostgresStore {
    async fn endpoint_health(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
    ) -> StoreResult<Option<EndpointHealth>> {
        let found = sqlx::query(sql(&self.queries.endpoint_health))
            .bind(organization.0)
            .bind(subscription.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        found.as_ref().map(rows::health).transpose()
    }

    async fn list_attempts(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
        event: &str,
    ) -> StoreResult<Vec<AttemptLog>> {
        let found = sqlx::query(sql(&self.queries.list_attempts))
            .bind(organization.0)
            .bind(subscription.0)
            .bind(event)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        found.iter().map(rows::attempt).collect()
    }

    async fn latest_statuses(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
    ) -> StoreResult<Vec<(String, DeliveryDetail)>> {
        let found = sqlx::query(sql(&self.queries.latest_statuses))
            .bind(organization.0)
            .bind(subscription.0)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        found
            .iter()
            .map(|row| {
                let event: String = sqlx::Row::try_get(row, "event_name").map_err(db)?;
                Ok((event, rows::detail(row)?))
            })
            .collect()
    }
}
