//! The two hot writes, done for whole batches: fan-out of published events
//! and recording of attempts (see [`super::batch`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgExecutor, PgPool, Row};
use uuid::Uuid;

use super::batch::BatchWrite;
use super::queries::{self, sql, Queries};
use crate::delivery::CircuitBreaker;
use crate::model::DeliveryDetail;
use crate::storage::{
    ClaimedDelivery, EndpointHealth, HealthChange, LeaseOutcome, NewEvent, NextStep, Recorded,
};

/// Reads the `(ord, value)` rows of a batch statement back into input order.
fn by_ord<T>(rows: &[PgRow], len: usize, value: &str) -> Result<Vec<T>, sqlx::Error>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    let mut outputs: Vec<Option<T>> = std::iter::repeat_with(|| None).take(len).collect();
    for row in rows {
        let ord: i64 = row.try_get("ord")?;
        let slot = usize::try_from(ord - 1)
            .ok()
            .and_then(|i| outputs.get_mut(i))
            .ok_or_else(|| sqlx::Error::Protocol(format!("batch row for unknown input {ord}")))?;
        *slot = Some(row.try_get(value)?);
    }
    outputs
        .into_iter()
        .map(|o| o.ok_or_else(|| sqlx::Error::RowNotFound))
        .collect()
}

/// Fans out events; the output is how many deliveries each one queued.
pub(super) struct EnqueueWriter {
    pub(super) pool: PgPool,
    pub(super) queries: Arc<Queries>,
}

impl EnqueueWriter {
    /// Runs the fan-out statement for `events` (distinct keys) on `executor`.
    pub(super) async fn enqueue<'c>(
        queries: &Queries,
        executor: impl PgExecutor<'c>,
        events: &[&NewEvent],
    ) -> Result<Vec<i64>, sqlx::Error> {
        let rows = sqlx::query(sql(&queries.enqueue_events))
            .bind(
                events
                    .iter()
                    .map(|e| e.organization_id.0)
                    .collect::<Vec<_>>(),
            )
            .bind(events.iter().map(|e| e.event_id.0).collect::<Vec<_>>())
            .bind(
                events
                    .iter()
                    .map(|e| e.event_name.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                events
                    .iter()
                    .map(|e| e.payload.as_ref())
                    .collect::<Vec<&[u8]>>(),
            )
            .bind(events.iter().map(|e| e.published_at).collect::<Vec<_>>())
            .fetch_all(executor)
            .await?;
        by_ord(&rows, events.len(), "queued")
    }
}

#[async_trait]
impl BatchWrite for EnqueueWriter {
    type Item = NewEvent;
    type Output = i64;
    type Key = (Uuid, Uuid);

    fn key(event: &NewEvent) -> (Uuid, Uuid) {
        (event.organization_id.0, event.event_id.0)
    }

    async fn write(&self, events: &[&NewEvent]) -> Result<Vec<i64>, Arc<sqlx::Error>> {
        Self::enqueue(&self.queries, &self.pool, events)
            .await
            .map_err(Arc::new)
    }
}

/// One attempt to record, owned so it can wait in a batch.
pub(super) struct Attempt {
    delivery_id: Uuid,
    token: Uuid,
    organization_id: Uuid,
    subscription_id: Uuid,
    event_name: String,
    event_id: Uuid,
    delivered_at: DateTime<Utc>,
    success: bool,
    response_code: i32,
    response_text: String,
    next: i16,
    retry_at: Option<DateTime<Utc>>,
    breaker: Option<CircuitBreaker>,
}

impl Attempt {
    pub(super) fn new(
        claim: &ClaimedDelivery,
        detail: &DeliveryDetail,
        next: NextStep,
        breaker: Option<&CircuitBreaker>,
    ) -> Self {
        let (next, retry_at) = match next {
            NextStep::Complete => (queries::NEXT_COMPLETE, None),
            NextStep::Retry { at } => (queries::NEXT_RETRY, Some(at)),
            NextStep::Fail => (queries::NEXT_FAIL, None),
            NextStep::FailAndDisable => (queries::NEXT_FAIL_AND_DISABLE, None),
        };
        let delivery = &claim.delivery;
        Self {
            delivery_id: delivery.id.0,
            token: claim.lease.token,
            organization_id: delivery.organization_id.0,
            subscription_id: delivery.subscription_id.0,
            event_name: delivery.event_name.clone(),
            event_id: delivery.event_id.0,
            delivered_at: detail.delivery_timestamp,
            success: detail.success,
            response_code: i32::from(detail.response_code),
            response_text: detail.response_text.clone(),
            next,
            retry_at,
            breaker: breaker.copied(),
        }
    }

    fn lane(&self) -> (Uuid, Uuid) {
        (self.organization_id, self.subscription_id)
    }
}

/// What the record statement said of one attempt.
struct Written {
    applied: bool,
    live: bool,
    closed: bool,
}

/// Records attempts; the output is whether each one's next step applied,
/// and how it changed its endpoint's health.
pub(super) struct RecordWriter {
    pub(super) pool: PgPool,
    pub(super) queries: Arc<Queries>,
    /// Commit without waiting for the WAL flush (see
    /// [`super::PostgresStoreConfig::asynchronous_attempt_commit`]).
    pub(super) asynchronous_commit: bool,
}

impl RecordWriter {
    /// Runs the record statement for `attempts` on `executor`.
    async fn record<'c>(
        &self,
        executor: impl PgExecutor<'c>,
        attempts: &[&Attempt],
    ) -> Result<Vec<Written>, sqlx::Error> {
        let column = |f: fn(&Attempt) -> Uuid| attempts.iter().map(|a| f(a)).collect::<Vec<_>>();
        let statement = if self.asynchronous_commit {
            &self.queries.record_attempts_async
        } else {
            &self.queries.record_attempts
        };
        let rows = sqlx::query(sql(statement))
            .bind(column(|a| a.delivery_id))
            .bind(column(|a| a.token))
            .bind(column(|a| a.organization_id))
            .bind(column(|a| a.subscription_id))
            .bind(
                attempts
                    .iter()
                    .map(|a| a.event_name.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(column(|a| a.event_id))
            .bind(attempts.iter().map(|a| a.delivered_at).collect::<Vec<_>>())
            .bind(attempts.iter().map(|a| a.success).collect::<Vec<_>>())
            .bind(attempts.iter().map(|a| a.response_code).collect::<Vec<_>>())
            .bind(
                attempts
                    .iter()
                    .map(|a| a.response_text.as_bytes())
                    .collect::<Vec<_>>(),
            )
            .bind(attempts.iter().map(|a| a.next).collect::<Vec<_>>())
            .bind(attempts.iter().map(|a| a.retry_at).collect::<Vec<_>>())
            .bind(
                attempts
                    .iter()
                    .map(|a| a.breaker.is_some())
                    .collect::<Vec<_>>(),
            )
            .fetch_all(executor)
            .await?;
        let applied = by_ord::<bool>(&rows, attempts.len(), "applied")?;
        let live = by_ord::<bool>(&rows, attempts.len(), "live")?;
        let closed = by_ord::<bool>(&rows, attempts.len(), "closed")?;
        Ok(applied
            .into_iter()
            .zip(live)
            .zip(closed)
            .map(|((applied, live), closed)| Written {
                applied,
                live,
                closed,
            })
            .collect())
    }

    /// Extends the failure streaks of the endpoints whose tracked attempts
    /// in this batch all failed, with the circuit breaker of each attempt,
    /// in input order; returns the changes by input index.
    async fn count_failures(
        &self,
        conn: &mut PgConnection,
        failures: &[(usize, &Attempt, &CircuitBreaker)],
    ) -> Result<HashMap<usize, HealthChange>, sqlx::Error> {
        let mut since: BTreeMap<(Uuid, Uuid), DateTime<Utc>> = BTreeMap::new();
        for (_, attempt, _) in failures {
            let first = since.entry(attempt.lane()).or_insert(attempt.delivered_at);
            *first = (*first).min(attempt.delivered_at);
        }
        let organizations: Vec<Uuid> = since.keys().map(|k| k.0).collect();
        let subscriptions: Vec<Uuid> = since.keys().map(|k| k.1).collect();
        sqlx::query(sql(&self.queries.seed_health))
            .bind(&organizations)
            .bind(&subscriptions)
            .bind(since.values().copied().collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        let rows = sqlx::query(sql(&self.queries.lock_health))
            .bind(&organizations)
            .bind(&subscriptions)
            .fetch_all(&mut *conn)
            .await?;
        let mut health: BTreeMap<(Uuid, Uuid), Option<EndpointHealth>> = BTreeMap::new();
        for row in &rows {
            let lane = (row.try_get("org")?, row.try_get("sub_id")?);
            let stored = super::rows::health(row)
                .map_err(|e| sqlx::Error::Protocol(format!("endpoint_health row: {e}")))?;
            health.insert(lane, Some(stored));
        }
        let mut changes = HashMap::new();
        let mut disabled = HashSet::new();
        for &(index, attempt, breaker) in failures {
            // A subscription gone since the record statement has no row.
            let Some(current) = health.get_mut(&attempt.lane()) else {
                continue;
            };
            if disabled.contains(&attempt.lane()) {
                continue;
            }
            let update = breaker.after_attempt(current.as_ref(), false, attempt.delivered_at);
            *current = update.health;
            if let Some(change) = update.change {
                if matches!(change, HealthChange::Disabled { .. }) {
                    disabled.insert(attempt.lane());
                }
                changes.insert(index, change);
            }
        }
        let mut columns = HealthColumns::default();
        for (&(organization, subscription), state) in &health {
            columns.push(organization, subscription, state.as_ref());
        }
        sqlx::query(sql(&self.queries.write_health))
            .bind(columns.organizations)
            .bind(columns.subscriptions)
            .bind(columns.streaks)
            .bind(columns.since)
            .bind(columns.until)
            .bind(columns.opened)
            .bind(columns.disable)
            .execute(&mut *conn)
            .await?;
        Ok(changes)
    }
}

/// The bind arrays of `write_health`.
#[derive(Default)]
struct HealthColumns {
    organizations: Vec<Uuid>,
    subscriptions: Vec<Uuid>,
    streaks: Vec<i32>,
    since: Vec<Option<DateTime<Utc>>>,
    until: Vec<Option<DateTime<Utc>>>,
    opened: Vec<i32>,
    disable: Vec<bool>,
}

impl HealthColumns {
    /// One endpoint's new streak; `None` drops it and disables the subscription.
    fn push(&mut self, organization: Uuid, subscription: Uuid, health: Option<&EndpointHealth>) {
        let clamp = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        self.organizations.push(organization);
        self.subscriptions.push(subscription);
        self.streaks
            .push(health.map_or(0, |h| clamp(h.failure_streak)));
        self.since.push(health.map(|h| h.failing_since));
        self.until.push(health.and_then(|h| h.paused_until));
        self.opened
            .push(health.map_or(0, |h| clamp(h.times_opened)));
        self.disable.push(health.is_none());
    }
}

#[async_trait]
impl BatchWrite for RecordWriter {
    type Item = Attempt;
    type Output = Recorded;
    type Key = Uuid;

    fn key(attempt: &Attempt) -> Uuid {
        attempt.delivery_id
    }

    /// One statement when no tracked attempt failed (the common case);
    /// otherwise the record statement and the failure streaks in one
    /// transaction. Any tracked success in the batch heals its endpoint:
    /// that endpoint's failures in the same batch are not counted.
    async fn write(&self, attempts: &[&Attempt]) -> Result<Vec<Recorded>, Arc<sqlx::Error>> {
        let healed: HashSet<(Uuid, Uuid)> = attempts
            .iter()
            .filter(|a| a.success && a.breaker.is_some())
            .map(|a| a.lane())
            .collect();
        // A failure the breaker counts: tracked, and no success of its
        // endpoint in this batch.
        let counts = |a: &Attempt| !a.success && a.breaker.is_some() && !healed.contains(&a.lane());
        let failing = attempts.iter().any(|a| counts(a));
        let (written, changes) = if failing {
            let mut tx = self.pool.begin().await.map_err(Arc::new)?;
            let written = self.record(&mut *tx, attempts).await.map_err(Arc::new)?;
            let failures: Vec<_> = attempts
                .iter()
                .zip(&written)
                .enumerate()
                .filter_map(|(index, (attempt, written))| {
                    let breaker = attempt.breaker.as_ref()?;
                    (written.live && counts(attempt)).then_some((index, *attempt, breaker))
                })
                .collect();
            let changes = self
                .count_failures(&mut tx, &failures)
                .await
                .map_err(Arc::new)?;
            tx.commit().await.map_err(Arc::new)?;
            (written, changes)
        } else {
            let written = self.record(&self.pool, attempts).await.map_err(Arc::new)?;
            (written, HashMap::new())
        };
        // One `CircuitClosed` per endpoint: on its first success.
        let mut closed = HashSet::new();
        Ok(written
            .iter()
            .zip(attempts)
            .enumerate()
            .map(|(index, (written, attempt))| {
                let lease = if written.applied {
                    LeaseOutcome::Applied
                } else {
                    LeaseOutcome::LeaseLost
                };
                let change = if written.closed && closed.insert(attempt.lane()) {
                    Some(HealthChange::CircuitClosed)
                } else {
                    changes.get(&index).copied()
                };
                Recorded::new(lease, change)
            })
            .collect())
    }
}
