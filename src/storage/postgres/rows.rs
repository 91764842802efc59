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
use crate::error::{Error, Result};
use crate::model::{
    AttemptLog, Delivery, DeliveryDetail, DeliveryState, EndpointHealth, PreviousSecret, SecretKey,
    WebhookSubscription,
};

/// A storage failure, kept for logs and shown to clients as `Internal Server Error`.
pub(super) fn db(error: sqlx::Error) -> Error {
    Error::internal(error)
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(db)
}

fn corrupt(what: &str) -> Error {
    Error::internal(format!("stored {what} is out of range"))
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
        u32::try_from(value).map_err(|_| Error::internal(format!("negative {column}: {value}")))
    };
    Ok(EndpointHealth::new(
        count("failure_streak")?,
        get(row, "failing_since")?,
        get(row, "paused_until")?,
        count("times_opened")?,
    ))
}
