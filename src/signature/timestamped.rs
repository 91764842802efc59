//! The default scheme: `X-Webhook-Signature: t=<unix ms>,v1=<hex HMAC>`.

use chrono::{DateTime, Duration, Utc};
use hmac::Mac;
use http::{HeaderMap, HeaderName};

use super::hex;
use super::sign::{ascii_value, ensure_distinct, header_name, keyed, uuid_value, Decimal, Tag};
use super::verify::{check_tolerance, header_text, match_any, parse_timestamp, Candidate};
use super::{SignedMessage, VerifyError};
use crate::error::Result;

/// `,v1=` + 64 hex digits.
const V1_LEN: usize = 4 + 64;

/// `t=` + the longest i64 + one signature.
const HEADER_CAPACITY: usize = 2 + 20 + V1_LEN;

/// The timestamped HMAC-SHA256 scheme and the names of the headers it sets.
///
/// Sets the signature header (`t=<unix ms>,v1=<lowercase hex HMAC-SHA256 of
/// t + "." + body>`), the subscription-id header and the event-id header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampedScheme {
    signature_header: HeaderName,
    subscription_id_header: HeaderName,
    event_id_header: HeaderName,
}

impl TimestampedScheme {
    /// The default signature header name.
    pub const DEFAULT_SIGNATURE_HEADER: &'static str = "X-Webhook-Signature";
    /// The default subscription-id header name.
    pub const DEFAULT_SUBSCRIPTION_ID_HEADER: &'static str = "X-Webhook-Subscription-Id";
    /// The default event-id header name.
    pub const DEFAULT_EVENT_ID_HEADER: &'static str = "X-Webhook-Event-Id";

    /// The scheme with custom header names, e.g. `X-DIXA-SIGNATURE` and
    /// `X-DIXA-SUBSCRIPTION-ID` for a host migrating from that platform.
    ///
    /// Fails with [`Error::InvalidConfiguration`](crate::Error::InvalidConfiguration)
    /// when a name is not a valid HTTP header name or two names are equal
    /// (case-insensitively).
    pub fn new(
        signature_header: &str,
        subscription_id_header: &str,
        event_id_header: &str,
    ) -> Result<Self> {
        let scheme = Self {
            signature_header: header_name("signature", signature_header)?,
            subscription_id_header: header_name("subscription id", subscription_id_header)?,
            event_id_header: header_name("event id", event_id_header)?,
        };
        ensure_distinct(&[
            &scheme.signature_header,
            &scheme.subscription_id_header,
            &scheme.event_id_header,
        ])?;
        Ok(scheme)
    }

    /// The signature header's name.
    pub fn signature_header(&self) -> &HeaderName {
        &self.signature_header
    }

    /// The subscription-id header's name.
    pub fn subscription_id_header(&self) -> &HeaderName {
        &self.subscription_id_header
    }

    /// The event-id header's name.
    pub fn event_id_header(&self) -> &HeaderName {
        &self.event_id_header
    }

    /// Every header this scheme sets, lowercase.
    pub fn reserved_header_names(&self) -> Vec<String> {
        [
            &self.signature_header,
            &self.subscription_id_header,
            &self.event_id_header,
        ]
        .iter()
        .map(|name| name.as_str().to_owned())
        .collect()
    }

    /// Signs `message` with `key` and sets this scheme's headers, replacing
    /// any earlier values of them (each attempt is signed afresh).
    pub fn sign(&self, key: &[u8], message: &SignedMessage<'_>, headers: &mut HeaderMap) {
        self.sign_with_keys(&[key], message, headers);
    }

    /// Like [`sign`](Self::sign), with one `v1=` signature per key, in
    /// order (`t=<ms>,v1=<new>,v1=<old>` during a secret rotation).
    pub fn sign_with_keys<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        message: &SignedMessage<'_>,
        headers: &mut HeaderMap,
    ) {
        let signature = signature_header(keys, message.timestamp.timestamp_millis(), message.body);
        headers.insert(self.signature_header.clone(), ascii_value(signature));
        headers.insert(
            self.subscription_id_header.clone(),
            uuid_value(message.subscription_id.as_uuid()),
        );
        headers.insert(
            self.event_id_header.clone(),
            uuid_value(message.event_id.as_uuid()),
        );
    }

    /// Verifies the signature header of a received request against any of
    /// `keys`; see [`verify_timestamped`].
    pub fn verify<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
        tolerance: Duration,
    ) -> std::result::Result<(), VerifyError> {
        let header = header_text(headers, &self.signature_header)?;
        verify_timestamped(keys, header, body, now, tolerance)
    }
}

impl Default for TimestampedScheme {
    fn default() -> Self {
        Self {
            signature_header: HeaderName::from_static("x-webhook-signature"),
            subscription_id_header: HeaderName::from_static("x-webhook-subscription-id"),
            event_id_header: HeaderName::from_static("x-webhook-event-id"),
        }
    }
}

/// The full signature header value `t=<t_ms>,v1=<lowercase hex HMAC-SHA256>`
/// over `t_ms + "." + body`.
pub fn sign_timestamped(key: &[u8], t_ms: i64, body: &[u8]) -> String {
    signature_header(&[key], t_ms, body)
}

/// `t=<t_ms>` followed by one `,v1=<hex>` per key.
fn signature_header<K: AsRef<[u8]>>(keys: &[K], t_ms: i64, body: &[u8]) -> String {
    let t = Decimal::new(t_ms);
    let mut header = String::with_capacity(HEADER_CAPACITY + (keys.len().max(1) - 1) * V1_LEN);
    header.push_str("t=");
    header.extend(t.as_bytes().iter().map(|&b| char::from(b)));
    for key in keys {
        let tag = tag(key.as_ref(), t.as_bytes(), body);
        header.push_str(",v1=");
        hex::encode_into(tag.as_bytes(), &mut header);
    }
    header
}

/// Verifies a timestamped signature header value against any of `keys`.
///
/// The header is a list of `key=value` entries separated by commas or
/// whitespace: exactly one timestamp `t` (repeating the same value is
/// allowed) and one or more `v1` signatures (`t=..,v1=a,v1=b` or
/// `t=..,v1=a v1=b`; a bare value continues the signature entry before it,
/// so `v1=a b` also lists two). Unknown entries are ignored. A `v1` that is not
/// exactly 64 hex digits is never compared. The request passes when `t` is
/// within `tolerance` of `now` and any `v1` matches any key.
pub fn verify_timestamped<K: AsRef<[u8]>>(
    keys: impl IntoIterator<Item = K>,
    header: &str,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> std::result::Result<(), VerifyError> {
    let (t_text, t_ms) = timestamp_entry(header)?;
    let candidates: Vec<Candidate> = entries(header)
        .filter(|(key, _)| *key == "v1")
        .filter_map(|(_, value)| hex::decode_array::<32>(value).map(Candidate::from))
        .collect();
    if candidates.is_empty() {
        return Err(VerifyError::MalformedSignature);
    }
    check_tolerance(t_ms, now.timestamp_millis(), tolerance.num_milliseconds())?;
    match_any(keys, &candidates, |key| tag(key, t_text.as_bytes(), body))
}

fn tag(key: &[u8], t: &[u8], body: &[u8]) -> Tag {
    let mut mac = keyed(key);
    mac.update(t);
    mac.update(b".");
    mac.update(body);
    mac.finalize()
}

/// The header's `(key, value)` entries. A token without `=` is one more
/// signature of the entry before it (`v1=a b`); the timestamp takes no
/// extra values, so after `t` such a token gets an empty key and is ignored.
fn entries(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|token| !token.is_empty())
        .scan("", |key, token| {
            Some(match token.split_once('=') {
                Some((k, value)) => {
                    *key = k;
                    (k, value)
                }
                None if *key == "t" => ("", token),
                None => (*key, token),
            })
        })
}

/// The one timestamp of the header, as sent (it is what was signed) and as a number.
fn timestamp_entry(header: &str) -> std::result::Result<(&str, i64), VerifyError> {
    let mut found: Option<(&str, i64)> = None;
    for (_, value) in entries(header).filter(|(key, _)| *key == "t") {
        let t_ms = parse_timestamp(value)?;
        match found {
            Some((text, _)) if text != value => return Err(VerifyError::MalformedTimestamp),
            _ => found = Some((value, t_ms)),
        }
    }
    found.ok_or(VerifyError::MalformedTimestamp)
}
