//! The two timestamp formats on the wire: RFC 3339 UTC with second precision
//! (`createdAt`, `updatedAt`) and with milliseconds (`deliveryTimestamp`,
//! `event_timestamp`).

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};

/// Drops everything below the second.
pub fn truncate_to_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(0)
}

/// Drops everything below the millisecond.
pub fn truncate_to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(3)
}

/// Formats as `2023-08-01T09:30:15Z` (sub-second digits are dropped).
pub fn format_seconds(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Formats as `2023-09-15T12:00:00.000Z`.
pub fn format_millis(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc))
}

/// Serde helpers for second-precision timestamps (`#[serde(with = "seconds")]`).
pub mod seconds {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as `2023-08-01T09:30:15Z`.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_seconds(t))
    }

    /// Accepts any RFC 3339 timestamp and keeps it in UTC.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Serde helpers for millisecond-precision timestamps (`#[serde(with = "millis")]`).
pub mod millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as `2023-09-15T12:00:00.000Z`.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_millis(t))
    }

    /// Accepts any RFC 3339 timestamp and keeps it in UTC.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Serde helpers for optional second-precision timestamps
/// (`#[serde(default, with = "seconds_option")]`).
pub mod seconds_option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes `Some` as `2023-08-01T09:30:15Z` and `None` as null.
    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::seconds::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    /// Accepts null or any RFC 3339 timestamp, kept in UTC.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let s = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
        s.map(|s| super::parse(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}
