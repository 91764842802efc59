//! The Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64>`), see <https://www.standardwebhooks.com>.

use std::fmt;
use std::str::FromStr;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::Mac;
use http::{HeaderMap, HeaderName};

use super::sign::{ascii_value, ensure_distinct, header_name, keyed, uuid_value, Decimal, Tag};
use super::verify::{check_tolerance, header_text, match_any, parse_timestamp, Candidate};
use super::{SignedMessage, VerifyError};
use crate::error::Result;
use crate::model::SecretKey;

/// `v1,` + the base64 of a 32-byte tag.
const SIGNATURE_CAPACITY: usize = 3 + 44;

/// Base64 length of a 32-byte tag, padding included.
const ENCODED_TAG_LEN: usize = 44;

/// Secrets are read with or without `=` padding, as issuers differ.
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The Standard Webhooks scheme: `webhook-id` (the event id),
/// `webhook-timestamp` (unix seconds) and `webhook-signature`
/// (`v1,<base64 HMAC-SHA256 of id + "." + timestamp + "." + body>`), plus
/// the subscription-id header.
///
/// Signing keys are a subscription's 32 raw [`SecretKey`] bytes; receivers
/// using a Standard Webhooks library take them as
/// [`StandardWebhooksSecret::to_whsec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandardWebhooksScheme {
    subscription_id_header: HeaderName,
}

impl StandardWebhooksScheme {
    /// The message id header (set to the event id).
    pub const ID_HEADER: &'static str = "webhook-id";
    /// The timestamp header (unix seconds).
    pub const TIMESTAMP_HEADER: &'static str = "webhook-timestamp";
    /// The signature header.
    pub const SIGNATURE_HEADER: &'static str = "webhook-signature";
    /// The default subscription-id header name.
    pub const DEFAULT_SUBSCRIPTION_ID_HEADER: &'static str = "X-Webhook-Subscription-Id";

    /// The scheme with a custom subscription-id header name.
    ///
    /// Fails with [`Error::InvalidConfiguration`](crate::Error::InvalidConfiguration)
    /// when the name is not a valid HTTP header name or is one of the
    /// `webhook-*` headers.
    pub fn new(subscription_id_header: &str) -> Result<Self> {
        let subscription_id_header = header_name("subscription id", subscription_id_header)?;
        ensure_distinct(&[
            &HeaderName::from_static(Self::ID_HEADER),
            &HeaderName::from_static(Self::TIMESTAMP_HEADER),
            &HeaderName::from_static(Self::SIGNATURE_HEADER),
            &subscription_id_header,
        ])?;
        Ok(Self {
            subscription_id_header,
        })
    }

    /// The subscription-id header's name.
    pub fn subscription_id_header(&self) -> &HeaderName {
        &self.subscription_id_header
    }

    /// Every header this scheme sets, lowercase.
    pub fn reserved_header_names(&self) -> Vec<String> {
        vec![
            Self::ID_HEADER.to_owned(),
            Self::TIMESTAMP_HEADER.to_owned(),
            Self::SIGNATURE_HEADER.to_owned(),
            self.subscription_id_header.as_str().to_owned(),
        ]
    }

    /// Signs `message` with `key` and sets this scheme's headers, replacing
    /// any earlier values of them (each attempt is signed afresh).
    pub fn sign(&self, key: &[u8], message: &SignedMessage<'_>, headers: &mut HeaderMap) {
        self.sign_with_keys(&[key], message, headers);
    }

    /// Like [`sign`](Self::sign), with one `v1,` signature per key, in order
    /// and space-separated (`v1,<new> v1,<old>` during a secret rotation).
    pub fn sign_with_keys<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        message: &SignedMessage<'_>,
        headers: &mut HeaderMap,
    ) {
        let mut id_buf = uuid::Uuid::encode_buffer();
        let id = message
            .event_id
            .as_uuid()
            .hyphenated()
            .encode_lower(&mut id_buf);
        let timestamp = message.timestamp.timestamp();
        let mut signature = String::with_capacity(keys.len() * (SIGNATURE_CAPACITY + 1));
        for key in keys {
            if !signature.is_empty() {
                signature.push(' ');
            }
            signature.push_str(&sign_standard(key.as_ref(), id, timestamp, message.body));
        }
        headers.insert(HeaderName::from_static(Self::ID_HEADER), ascii_value(&*id));
        headers.insert(
            HeaderName::from_static(Self::TIMESTAMP_HEADER),
            ascii_value(Decimal::new(timestamp).as_bytes()),
        );
        headers.insert(
            HeaderName::from_static(Self::SIGNATURE_HEADER),
            ascii_value(signature),
        );
        headers.insert(
            self.subscription_id_header.clone(),
            uuid_value(message.subscription_id.as_uuid()),
        );
    }

    /// Verifies the `webhook-*` headers of a received request against any of
    /// `keys`; see [`verify_standard`].
    pub fn verify<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
        tolerance: Duration,
    ) -> std::result::Result<(), VerifyError> {
        let id = header_text(headers, &HeaderName::from_static(Self::ID_HEADER))?;
        let timestamp = header_text(headers, &HeaderName::from_static(Self::TIMESTAMP_HEADER))?;
        let signature = header_text(headers, &HeaderName::from_static(Self::SIGNATURE_HEADER))?;
        verify_standard(keys, id, timestamp, signature, body, now, tolerance)
    }
}

impl Default for StandardWebhooksScheme {
    fn default() -> Self {
        Self {
            subscription_id_header: HeaderName::from_static("x-webhook-subscription-id"),
        }
    }
}

/// The `webhook-signature` value `v1,<base64 HMAC-SHA256>` over
/// `id + "." + timestamp_secs + "." + body`.
pub fn sign_standard(key: &[u8], id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    let tag = tag(key, id, Decimal::new(timestamp_secs).as_bytes(), body);
    let mut signature = String::with_capacity(SIGNATURE_CAPACITY);
    signature.push_str("v1,");
    STANDARD.encode_string(tag.as_bytes(), &mut signature);
    signature
}

/// Verifies Standard Webhooks header values against any of `keys`.
///
/// `timestamp` is the `webhook-timestamp` text (decimal unix seconds);
/// `signature` is the `webhook-signature` text: space-separated
/// `<version>,<base64>` entries. Entries of other versions are ignored, and a
/// `v1` entry that is not the padded base64 of exactly 32 bytes is never
/// compared. The request passes when the timestamp is within `tolerance` of
/// `now` and any `v1` entry matches any key.
pub fn verify_standard<K: AsRef<[u8]>>(
    keys: impl IntoIterator<Item = K>,
    id: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> std::result::Result<(), VerifyError> {
    let timestamp_secs = parse_timestamp(timestamp)?;
    let candidates: Vec<Candidate> = signature
        .split_ascii_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(decode_tag)
        .collect();
    if candidates.is_empty() {
        return Err(VerifyError::MalformedSignature);
    }
    check_tolerance(timestamp_secs, now.timestamp(), tolerance.num_seconds())?;
    match_any(keys, &candidates, |key| {
        tag(key, id, timestamp.as_bytes(), body)
    })
}

fn tag(key: &[u8], id: &str, timestamp: &[u8], body: &[u8]) -> Tag {
    let mut mac = keyed(key);
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp);
    mac.update(b".");
    mac.update(body);
    mac.finalize()
}

/// A full-length tag from its padded base64, checked for length before decoding.
fn decode_tag(encoded: &str) -> Option<Candidate> {
    if encoded.len() != ENCODED_TAG_LEN {
        return None;
    }
    let mut tag = Candidate::default();
    match STANDARD.decode_slice(encoded, &mut tag) {
        Ok(len) if len == tag.len() => Some(tag),
        _ => None,
    }
}

/// A Standard Webhooks signing secret: `whsec_` followed by the base64 of the
/// key bytes. Its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct StandardWebhooksSecret(Vec<u8>);

impl StandardWebhooksSecret {
    /// The prefix of the text form.
    pub const PREFIX: &'static str = "whsec_";

    /// Parses `whsec_<base64>` (the prefix may be left out; padding is optional).
    pub fn parse(text: &str) -> std::result::Result<Self, InvalidStandardWebhooksSecret> {
        let encoded = text.strip_prefix(Self::PREFIX).unwrap_or(text);
        match SECRET_BASE64.decode(encoded) {
            Ok(key) if !key.is_empty() => Ok(Self(key)),
            _ => Err(InvalidStandardWebhooksSecret),
        }
    }

    /// The HMAC key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The `whsec_<base64>` text form, for receivers using a Standard Webhooks library.
    pub fn to_whsec(&self) -> String {
        let mut text = String::from(Self::PREFIX);
        STANDARD.encode_string(&self.0, &mut text);
        text
    }
}

impl From<&SecretKey> for StandardWebhooksSecret {
    fn from(key: &SecretKey) -> Self {
        Self(key.as_bytes().to_vec())
    }
}

impl AsRef<[u8]> for StandardWebhooksSecret {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl FromStr for StandardWebhooksSecret {
    type Err = InvalidStandardWebhooksSecret;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Debug for StandardWebhooksSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StandardWebhooksSecret(<redacted>)")
    }
}

/// A Standard Webhooks secret that is not `whsec_` followed by non-empty base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("standard webhooks secret must be whsec_ followed by non-empty base64")]
pub struct InvalidStandardWebhooksSecret;
