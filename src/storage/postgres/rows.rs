//! Reading rows back into model types, by column name.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::Row;
use uuid::Uuid;

use super::queries::{FAILED, LEASED, PENDING};
use crate::model::{DeliveryDetail, PreviousSecret, SecretKey, WebhookSubscription};
use crate::storage::{AttemptLog, Delivery, DeliveryState, EndpointHealth};
use crate::storage::{Error, ErrorKind, Result};

/// The store's name in its errors.
pub(super) const STORE: &str = "postgres";

/// A storage failure, kept for logs and shown to clients as `Internal Server Error`.
pub(super) fn db(error: sqlx::Error) -> Error {
    Error::new(STORE, kind_of(&error), error)
}

/// How a database error counts: the pool or connection failing is the
/// database being unavailable; serialization failures, deadlocks and
/// duplicate keys are conflicts; rows that do not decode are corrupt.
pub(super) fn kind_of(error: &sqlx::Error) -> ErrorKind {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => ErrorKind::Unavailable,
        sqlx::Error::Database(database) => match database.code().as_deref() {
            // serialization_failure, deadlock_detected, unique_violation
            Some("40001" | "40P01" | "23505") => ErrorKind::Conflict,
            // admin_shutdown, crash_shutdown, cannot_connect_now
            Some("57P01" | "57P02" | "57P03") => ErrorKind::Unavailable,
            _ => ErrorKind::Other,
        },
        sqlx::Error::RowNotFound
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::Protocol(_) => ErrorKind::Corrupt,
        _ => ErrorKind::Other,
    }
}

/// A result from the database that does not make sense.
pub(super) fn corrupt_result(message: impl Into<String>) -> Error {
    Error::new(STORE, ErrorKind::Corrupt, message.into())
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(db)
}

fn corrupt(what: &str) -> Error {
    corrupt_result(format!("stored {what} is out of range"))
}

/// The subscription of a row holding the subscription columns, or `None`
/// when they are NULL (the row came from an outer join that found nothing).
pub(super) fn subscription(row: &PgRow) -> Result<Option<WebhookSubscription>> {
    let Some(id) = get::<Option<Uuid>>(row, "id")? else {
        return Ok(None);
    };
    let secret: Vec<u8> = get(row, "secret")?;
    let secret: [u8; 32] = secret
        .try_into()
        .map_err(|_| corrupt("subscription secret"))?;
    let previous_secret = match (
        get::<Option<Vec<u8>>>(row, "previous_secret")?,
        get::<Option<DateTime<Utc>>>(row, "previous_secret_expires_at")?,
    ) {
        (Some(key), Some(expires_at)) => {
            let key: [u8; 32] = key
                .try_into()
                .map_err(|_| corrupt("previous subscription secret"))?;
            Some(PreviousSecret::new(SecretKey::from_bytes(key), expires_at))
        }
        _ => None,
    };
    let Json(headers) = get::<Json<BTreeMap<String, String>>>(row, "headers")?;
    let filters = get::<Option<Json<Value>>>(row, "filters")?.map(|Json(value)| value);
    Ok(Some(WebhookSubscription {
        id: id.into(),
        name: get(row, "name")?,
        url: get(row, "url")?,
        subscribed_events: get(row, "events")?,
        headers,
        secret_key: SecretKey::from_bytes(secret),
        enabled: get(row, "enabled")?,
        created_at: get(row, "created_at")?,
        created_by: get::<Uuid>(row, "created_by")?.into(),
        updated_at: get(row, "updated_at")?,
        updated_by: get::<Uuid>(row, "updated_by")?.into(),
        filters,
        previous_secret,
    }))
}

/// A delivery from its columns; `id` names the column holding its id.
pub(super) fn delivery(row: &PgRow, id: &str, state: DeliveryState) -> Result<Delivery> {
    Ok(Delivery {
        id: get::<Uuid>(row, id)?.into(),
        organization_id: get::<Uuid>(row, "org")?.into(),
        subscription_id: get::<Uuid>(row, "sub_id")?.into(),
        event_id: get::<Uuid>(row, "event_id")?.into(),
        event_name: get(row, "event_name")?,
        payload: payload(row)?,
        attempts: attempts(row)?,
        due_at: get(row, "due_at")?,
        state,
    })
}

/// The state stored in a delivery row.
pub(super) fn state(row: &PgRow) -> Result<DeliveryState> {
    match get::<i16>(row, "state")? {
        PENDING => Ok(DeliveryState::Pending),
        LEASED => Ok(DeliveryState::Leased),
        FAILED => Ok(DeliveryState::Failed),
        _ => Err(corrupt("delivery state")),
    }
}

fn attempts(row: &PgRow) -> Result<u32> {
    u32::try_from(get::<i32>(row, "attempts")?).map_err(|_| corrupt("attempt count"))
}

/// The event payload; NULL only for events that reached nobody.
fn payload(row: &PgRow) -> Result<Bytes> {
    Ok(get::<Option<Vec<u8>>>(row, "payload")?
        .map(Bytes::from)
        .unwrap_or_default())
}

/// The outcome columns of an attempt log row.
pub(super) fn detail(row: &PgRow) -> Result<DeliveryDetail> {
    let code = get::<i32>(row, "response_code")?;
    Ok(DeliveryDetail {
        delivery_timestamp: get::<DateTime<Utc>>(row, "delivered_at")?,
        success: get(row, "success")?,
        response_code: u16::try_from(code).map_err(|_| corrupt("response code"))?,
        response_text: String::from_utf8(get(row, "response_text")?)
            .map_err(|_| corrupt("response text"))?,
    })
}

/// An attempt log row joined with its event's payload.
pub(super) fn attempt(row: &PgRow) -> Result<AttemptLog> {
    Ok(AttemptLog {
        delivery_id: get::<Uuid>(row, "delivery_id")?.into(),
        event_id: get::<Uuid>(row, "event_id")?.into(),
        detail: detail(row)?,
        payload: payload(row)?,
    })
}

/// An endpoint's failure streak from a row of `endpoint_health`.
pub(super) fn health(row: &PgRow) -> Result<EndpointHealth> {
    let count = |column: &str| -> Result<u32> {
        let value: i32 = get(row, column)?;
        u32::try_from(value).map_err(|_| corrupt_result(format!("negative {column}: {value}")))
    };
    Ok(EndpointHealth::new(
        count("failure_streak")?,
        get(row, "failing_since")?,
        get(row, "paused_until")?,
        count("times_opened")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_failures_are_sorted_by_kind() {
        for (error, kind) in [
            (sqlx::Error::PoolTimedOut, ErrorKind::Unavailable),
            (sqlx::Error::PoolClosed, ErrorKind::Unavailable),
            (
                sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
                ErrorKind::Unavailable,
            ),
            (sqlx::Error::RowNotFound, ErrorKind::Corrupt),
            (sqlx::Error::Protocol("garbage".into()), ErrorKind::Corrupt),
            (sqlx::Error::Configuration("bad".into()), ErrorKind::Other),
        ] {
            let shown = error.to_string();
            let stored = db(error);
            assert_eq!(stored.kind(), kind, "{shown}");
            assert_eq!(stored.store(), "postgres");
        }
    }
}
