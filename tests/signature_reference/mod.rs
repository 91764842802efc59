//! An independent reference for the signature formats, built on `hmac`,
//! `sha2` and `base64` directly, so tests never take expected values from the
//! crate's own signing code. Each test crate uses part of it.
#![allow(dead_code)]

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// HMAC-SHA256 of the concatenated `parts`.
pub fn reference_mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// The timestamped scheme's `v1` value: hex HMAC of `t + "." + body`.
pub fn reference_hex(key: &[u8], t_ms: i64, body: &[u8]) -> String {
    let t = t_ms.to_string();
    reference_mac(key, &[t.as_bytes(), b".", body])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Standard Webhooks tag: HMAC of `id + "." + ts + "." + body`.
pub fn reference_standard_mac(key: &[u8], id: &str, ts_secs: i64, body: &[u8]) -> Vec<u8> {
    let ts = ts_secs.to_string();
    reference_mac(key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body])
}

/// The Standard Webhooks signature without its `v1,` prefix.
pub fn reference_b64(key: &[u8], id: &str, ts_secs: i64, body: &[u8]) -> String {
    BASE64.encode(reference_standard_mac(key, id, ts_secs, body))
}

pub fn at_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}
