//! What both schemes need to verify: the error, header lookup, timestamp
//! parsing and tolerance, and constant-time matching against several keys.

use hmac::digest::Output;
use http::{HeaderMap, HeaderName};

use super::sign::{HmacSha256, Tag};

/// Why a receiver refused a request's signature.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A header the scheme needs is absent.
    #[error("missing header {0}")]
    MissingHeader(String),
    /// A header the scheme needs is repeated or holds bytes other than visible ASCII.
    #[error("header {0} is repeated or not visible ascii")]
    MalformedHeader(String),
    /// The timestamp is absent, repeated with different values, or not a plain decimal number.
    #[error("missing or malformed timestamp")]
    MalformedTimestamp,
    /// The timestamp is further from `now` than the tolerance allows.
    #[error("timestamp outside the tolerance window")]
    TimestampOutsideTolerance,
    /// No signature of a supported version has the right shape (empty, truncated, not hex/base64).
    #[error("no well-formed v1 signature")]
    MalformedSignature,
    /// Well-formed signatures were present but none matches any key.
    #[error("no matching signature")]
    NoMatchingSignature,
}

/// A decoded candidate signature, already checked to be a full-length tag.
pub(super) type Candidate = Output<HmacSha256>;

/// The single value of header `name` as text.
pub(super) fn header_text<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<&'h str, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let value = values
        .next()
        .ok_or_else(|| VerifyError::MissingHeader(name.to_string()))?;
    if values.next().is_some() {
        // Two values would leave it ambiguous which one was signed.
        return Err(VerifyError::MalformedHeader(name.to_string()));
    }
    value
        .to_str()
        .map_err(|_| VerifyError::MalformedHeader(name.to_string()))
}

/// A timestamp made of ASCII digits only (no sign, no spaces) that fits an `i64`.
pub(super) fn parse_timestamp(text: &str) -> Result<i64, VerifyError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedTimestamp);
    }
    text.parse().map_err(|_| VerifyError::MalformedTimestamp)
}

/// Accepts `timestamp` within `tolerance` of `now` on either side (all in
/// the same unit); wide arithmetic so no input can overflow.
pub(super) fn check_tolerance(timestamp: i64, now: i64, tolerance: i64) -> Result<(), VerifyError> {
    if (i128::from(timestamp) - i128::from(now)).abs() <= i128::from(tolerance) {
        Ok(())
    } else {
        Err(VerifyError::TimestampOutsideTolerance)
    }
}

/// Accepts when any candidate equals the tag `tag_for` computes for any key.
/// One MAC per key; every comparison is constant-time.
pub(super) fn match_any<K: AsRef<[u8]>>(
    keys: impl IntoIterator<Item = K>,
    candidates: &[Candidate],
    tag_for: impl Fn(&[u8]) -> Tag,
) -> Result<(), VerifyError> {
    for key in keys {
        let tag = tag_for(key.as_ref());
        if candidates.iter().any(|c| tag == Tag::from(c)) {
            return Ok(());
        }
    }
    Err(VerifyError::NoMatchingSignature)
}
