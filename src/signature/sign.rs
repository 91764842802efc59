//! What both schemes need to sign: the MAC, stack-formatted timestamps,
//! header names checked at construction and header values built at signing.

use hmac::digest::CtOutput;
use hmac::{Hmac, KeyInit};
use http::{HeaderName, HeaderValue};
use sha2::Sha256;
use uuid::Uuid;

use crate::error::{Error, Result};

pub(super) type HmacSha256 = Hmac<Sha256>;

/// A finished MAC; its `==` is constant-time.
pub(super) type Tag = CtOutput<HmacSha256>;

/// A fresh HMAC-SHA256 keyed with `key`.
pub(super) fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC hashes or pads keys of any length, so this never fails.
    <HmacSha256 as KeyInit>::new_from_slice(key).expect("hmac accepts keys of any length")
}

/// The decimal digits of an `i64`, formatted on the stack so signing allocates
/// nothing but its output.
pub(super) struct Decimal {
    buf: [u8; 20],
    start: usize,
}

impl Decimal {
    pub(super) fn new(n: i64) -> Self {
        // 20 bytes hold i64::MIN: 19 digits and the sign.
        let mut buf = [0u8; 20];
        let mut start = buf.len();
        let mut rest = n.unsigned_abs();
        loop {
            start -= 1;
            buf[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if n < 0 {
            start -= 1;
            buf[start] = b'-';
        }
        Self { buf, start }
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// A header value from text this module built itself (digits, hex, base64,
/// UUIDs), which is always visible ASCII.
pub(super) fn ascii_value<T>(text: T) -> HeaderValue
where
    HeaderValue: TryFrom<T>,
    <HeaderValue as TryFrom<T>>::Error: std::fmt::Debug,
{
    HeaderValue::try_from(text).expect("signature header values are visible ascii")
}

/// The hyphenated lowercase form of `id` as a header value.
pub(super) fn uuid_value(id: &Uuid) -> HeaderValue {
    let mut buf = Uuid::encode_buffer();
    ascii_value(&*id.hyphenated().encode_lower(&mut buf))
}

/// Parses a configured header name (`role` names it in the error).
pub(super) fn header_name(role: &str, name: &str) -> Result<HeaderName> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        Error::InvalidConfiguration(format!(
            "{role} header name {name:?} is not a valid http header name"
        ))
    })
}

/// Refuses a scheme whose headers would overwrite one another.
pub(super) fn ensure_distinct(names: &[&HeaderName]) -> Result<()> {
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(Error::InvalidConfiguration(format!(
                "signature scheme uses header {name} twice"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Decimal;

    #[test]
    fn decimal_matches_std_formatting_at_the_edges() {
        for n in [0, 7, -7, 10, 1_689_238_949_803, i64::MAX, i64::MIN] {
            assert_eq!(Decimal::new(n).as_bytes(), n.to_string().as_bytes());
        }
    }
}
