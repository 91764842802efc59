//! Property tests: verification never panics on arbitrary input, signing
//! matches the independent reference, and sign-then-verify round-trips.

mod signature_reference;

use chrono::Duration;
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use signature_reference::{at_millis, reference_b64, reference_hex};
use uuid::Uuid;
use webhook_subscriptions::model::{EventId, SecretKey, SubscriptionId};
use webhook_subscriptions::signature::{
    sign_standard, sign_timestamped, verify_standard, verify_timestamped, SignatureScheme,
    SignedMessage, StandardWebhooksScheme, VerifyError, DEFAULT_TOLERANCE,
};

/// Up to the end of year 9999, the range `DateTime` and receivers care about.
const MAX_MS: i64 = 253_402_300_799_999;
const TOLERANCE_MS: i64 = 5 * 60 * 1000;

/// Strings shaped like signature headers, so parsing gets past the first check.
fn header_like() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "t=[0-9+-]{0,25}",
            "v1=[0-9a-fA-F]{0,70}",
            "v1,[A-Za-z0-9+/=]{0,50}",
            "[ ,=tv1]{1,3}",
            any::<String>(),
        ],
        0..8,
    )
    .prop_map(|parts| parts.concat())
}

fn any_header_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), header_like()]
}

fn schemes() -> [SignatureScheme; 2] {
    [
        SignatureScheme::default(),
        SignatureScheme::StandardWebhooks(StandardWebhooksScheme::default()),
    ]
}

proptest! {
    #[test]
    fn verify_timestamped_never_panics(
        header in any_header_text(),
        body in prop::collection::vec(any::<u8>(), 0..64),
        now_ms in 0..=MAX_MS,
        tolerance_ms in any::<i64>(),
    ) {
        let _ = verify_timestamped(
            [[0u8; 32]],
            &header,
            &body,
            at_millis(now_ms),
            Duration::milliseconds(tolerance_ms.clamp(-MAX_MS, MAX_MS)),
        );
    }

    #[test]
    fn verify_standard_never_panics(
        id in any::<String>(),
        timestamp in prop_oneof!["[0-9]{0,25}", any::<String>()],
        signature in any_header_text(),
        body in prop::collection::vec(any::<u8>(), 0..64),
        now_ms in 0..=MAX_MS,
    ) {
        let _ = verify_standard(
            [[0u8; 32]],
            &id,
            &timestamp,
            &signature,
            &body,
            at_millis(now_ms),
            DEFAULT_TOLERANCE,
        );
    }

    #[test]
    fn scheme_verify_never_panics_on_arbitrary_header_bytes(
        values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..120), 4),
        body in prop::collection::vec(any::<u8>(), 0..64),
        now_ms in 0..=MAX_MS,
    ) {
        let names = ["x-webhook-signature", "webhook-id", "webhook-timestamp", "webhook-signature"];
        let mut headers = HeaderMap::new();
        for (name, value) in names.iter().zip(&values) {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.append(HeaderName::from_static(name), value);
            }
        }
        let keys = [SecretKey::from_bytes([3; 32])];
        for scheme in schemes() {
            let _ = scheme.verify(&keys, &headers, &body, at_millis(now_ms), DEFAULT_TOLERANCE);
        }
    }

    #[test]
    fn sign_timestamped_matches_the_reference(
        key in prop::collection::vec(any::<u8>(), 0..100),
        t_ms in any::<i64>(),
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        prop_assert_eq!(
            sign_timestamped(&key, t_ms, &body),
            format!("t={t_ms},v1={}", reference_hex(&key, t_ms, &body))
        );
    }

    #[test]
    fn sign_standard_matches_the_reference(
        key in prop::collection::vec(any::<u8>(), 0..100),
        id in any::<String>(),
        ts_secs in any::<i64>(),
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        prop_assert_eq!(
            sign_standard(&key, &id, ts_secs, &body),
            format!("v1,{}", reference_b64(&key, &id, ts_secs, &body))
        );
    }

    #[test]
    fn timestamped_round_trips_within_tolerance(
        key in prop::collection::vec(any::<u8>(), 1..100),
        t_ms in 0..=MAX_MS - TOLERANCE_MS,
        skew_ms in -TOLERANCE_MS..=TOLERANCE_MS,
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let now = at_millis((t_ms + skew_ms).max(0));
        let header = sign_timestamped(&key, t_ms, &body);
        prop_assert_eq!(
            verify_timestamped([&key], &header, &body, now, DEFAULT_TOLERANCE),
            Ok(())
        );
        let mut other = key.clone();
        other[0] ^= 1;
        prop_assert_eq!(
            verify_timestamped([&other], &header, &body, now, DEFAULT_TOLERANCE),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn standard_round_trips_within_tolerance(
        key in prop::collection::vec(any::<u8>(), 1..100),
        id in any::<String>(),
        ts_secs in 0..=(MAX_MS - TOLERANCE_MS) / 1000,
        skew_secs in -300i64..=300,
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let now = at_millis((ts_secs + skew_secs).max(0) * 1000);
        let signature = sign_standard(&key, &id, ts_secs, &body);
        prop_assert_eq!(
            verify_standard([&key], &id, &ts_secs.to_string(), &signature, &body, now, DEFAULT_TOLERANCE),
            Ok(())
        );
    }

    #[test]
    fn schemes_round_trip_and_refuse_a_changed_body(
        key in any::<[u8; 32]>(),
        subscription in any::<u128>(),
        event in any::<u128>(),
        t_ms in 0..=MAX_MS - TOLERANCE_MS,
        body in prop::collection::vec(any::<u8>(), 0..300),
        extra in any::<u8>(),
    ) {
        let message = SignedMessage {
            subscription_id: SubscriptionId(Uuid::from_u128(subscription)),
            event_id: EventId(Uuid::from_u128(event)),
            timestamp: at_millis(t_ms),
            body: &body,
        };
        let keys = [SecretKey::from_bytes(key)];
        let now = at_millis(t_ms);
        let mut changed = body.clone();
        changed.push(extra);
        for scheme in schemes() {
            let mut headers = HeaderMap::new();
            scheme.sign(&keys[0], &message, &mut headers);
            prop_assert_eq!(scheme.verify(&keys, &headers, &body, now, DEFAULT_TOLERANCE), Ok(()));
            prop_assert_eq!(
                scheme.verify(&keys, &headers, &changed, now, DEFAULT_TOLERANCE),
                Err(VerifyError::NoMatchingSignature)
            );
        }
    }
}
