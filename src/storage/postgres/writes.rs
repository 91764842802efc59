//! The two hot writes, done for whole batches: fan-out of published events
//! and recording of attempts (see [`super::batch`]).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, PgPool, Row};
use uuid::Uuid;

use super::batch::BatchWrite;
use super::queries::{self, sql, Queries};
use crate::model::{ClaimedDelivery, DeliveryDetail, NewEvent, NextStep};

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
}

impl Attempt {
    pub(super) fn new(claim: &ClaimedDelivery, detail: &DeliveryDetail, next: NextStep) -> Self {
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
        }
    }
}

/// Records attempts; the output is whether each one's next step applied.
pub(super) struct RecordWriter {
    pub(super) pool: PgPool,
    pub(super) queries: Arc<Queries>,
}

#[async_trait]
impl BatchWrite for RecordWriter {
    type Item = Attempt;
    type Output = bool;
    type Key = Uuid;

    fn key(attempt: &Attempt) -> Uuid {
        attempt.delivery_id
    }

    async fn write(&self, attempts: &[&Attempt]) -> Result<Vec<bool>, Arc<sqlx::Error>> {
        let column = |f: fn(&Attempt) -> Uuid| attempts.iter().map(|a| f(a)).collect::<Vec<_>>();
        let rows = sqlx::query(sql(&self.queries.record_attempts))
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
            .fetch_all(&self.pool)
            .await
            .map_err(Arc::new)?;
        by_ord(&rows, attempts.len(), "applied").map_err(Arc::new)
    }
}
