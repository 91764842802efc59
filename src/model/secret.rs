//! The per-subscription signing secret.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A subscription's 32-byte signing secret, shown on the wire as 64 lowercase
/// hex characters (`secretKey`). Its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// A fresh secret from the operating system's CSPRNG.
    ///
    /// Fails (as an internal error) only if the OS has no usable randomness.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("os randomness: {e}")))?;
        Ok(Self(bytes))
    }

    /// The secret from its raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses 64 hex characters (either case).
    pub fn from_hex(hex: &str) -> std::result::Result<Self, InvalidSecretKey> {
        crate::signature::hex::decode_array(hex)
            .map(Self)
            .ok_or(InvalidSecretKey)
    }

    /// The raw key bytes (the HMAC key).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64-character lowercase hex form used on the wire.
    pub fn to_hex(&self) -> String {
        crate::signature::hex::encode(&self.0)
    }
}

/// A `secretKey` that is not 64 hex characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("secret key must be 64 hex characters")]
pub struct InvalidSecretKey;

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl Serialize for SecretKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for SecretKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        SecretKey::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// A secret replaced by a rotation, which keeps signing deliveries next to
/// the new one until `expires_at` so receivers can switch keys without
/// refusing a delivery. Its `Debug` output never shows the key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PreviousSecret {
    /// The replaced secret.
    pub key: SecretKey,
    /// The first instant it no longer signs.
    pub expires_at: DateTime<Utc>,
}

impl PreviousSecret {
    /// `key`, signing until `expires_at`.
    pub fn new(key: SecretKey, expires_at: DateTime<Utc>) -> Self {
        Self { key, expires_at }
    }

    /// Whether it still signs an attempt made at `at`.
    pub fn signs_at(&self, at: DateTime<Utc>) -> bool {
        at < self.expires_at
    }
}
