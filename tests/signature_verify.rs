//! Receiver-side verification of both schemes: what passes, what is refused
//! and why. Valid signatures come from the independent reference in
//! `signature_reference`, not from the crate's signing code.

mod signature_reference;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::Duration;
use http::{HeaderMap, HeaderValue};
use signature_reference::{at_millis, reference_b64, reference_hex, reference_standard_mac};
use webhook_subscriptions::model::SecretKey;
use webhook_subscriptions::signature::{
    verify_standard, verify_timestamped, SignatureScheme, StandardWebhooksScheme, VerifyError,
    DEFAULT_TOLERANCE,
};

const T_MS: i64 = 1_700_000_000_000;
const TS_SECS: i64 = 1_700_000_000;
const BODY: &[u8] = br#"{"event_id":"8967e0c6-fe64-4105-bf71-14ae0c256aa4"}"#;
const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";

const KEY: [u8; 32] = [7; 32];
const OTHER_KEY: [u8; 32] = [9; 32];

fn valid_header() -> String {
    format!("t={T_MS},v1={}", reference_hex(&KEY, T_MS, BODY))
}

fn verify_t(header: &str, body: &[u8], now_ms: i64) -> Result<(), VerifyError> {
    verify_timestamped([KEY], header, body, at_millis(now_ms), DEFAULT_TOLERANCE)
}

fn verify_std(signature: &str, ts: &str, body: &[u8], now_secs: i64) -> Result<(), VerifyError> {
    verify_standard(
        [KEY],
        MSG_ID,
        ts,
        signature,
        body,
        at_millis(now_secs * 1000),
        DEFAULT_TOLERANCE,
    )
}

fn valid_standard() -> String {
    format!("v1,{}", reference_b64(&KEY, MSG_ID, TS_SECS, BODY))
}

mod timestamped {
    use super::*;

    #[test]
    fn valid_signature_verifies() {
        assert_eq!(verify_t(&valid_header(), BODY, T_MS + 2_000), Ok(()));
    }

    #[test]
    fn tampered_body_is_refused() {
        let body = br#"{"event_id":"8967e0c6-fe64-4105-bf71-14ae0c256aa5"}"#;
        assert_eq!(
            verify_t(&valid_header(), body, T_MS),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn tampered_signature_is_refused() {
        let mut header = valid_header();
        let last = header.pop().unwrap();
        header.push(if last == '0' { '1' } else { '0' });
        assert_eq!(
            verify_t(&header, BODY, T_MS),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn tampered_timestamp_is_refused() {
        let header = valid_header().replace(&format!("t={T_MS}"), &format!("t={}", T_MS + 1));
        assert_eq!(
            verify_t(&header, BODY, T_MS),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn wrong_secret_is_refused() {
        let result = verify_timestamped(
            [OTHER_KEY],
            &valid_header(),
            BODY,
            at_millis(T_MS),
            DEFAULT_TOLERANCE,
        );
        assert_eq!(result, Err(VerifyError::NoMatchingSignature));
    }

    #[test]
    fn no_keys_matches_nothing() {
        let result = verify_timestamped(
            Vec::<[u8; 32]>::new(),
            &valid_header(),
            BODY,
            at_millis(T_MS),
            DEFAULT_TOLERANCE,
        );
        assert_eq!(result, Err(VerifyError::NoMatchingSignature));
    }

    #[test]
    fn timestamp_exactly_at_the_tolerance_is_accepted_either_way() {
        let five_minutes = 5 * 60 * 1000;
        assert_eq!(verify_t(&valid_header(), BODY, T_MS + five_minutes), Ok(()));
        assert_eq!(verify_t(&valid_header(), BODY, T_MS - five_minutes), Ok(()));
    }

    #[test]
    fn timestamp_too_old_is_refused() {
        assert_eq!(
            verify_t(&valid_header(), BODY, T_MS + 5 * 60 * 1000 + 1),
            Err(VerifyError::TimestampOutsideTolerance)
        );
    }

    #[test]
    fn timestamp_too_far_in_the_future_is_refused() {
        assert_eq!(
            verify_t(&valid_header(), BODY, T_MS - 5 * 60 * 1000 - 1),
            Err(VerifyError::TimestampOutsideTolerance)
        );
    }

    #[test]
    fn custom_tolerance_is_honoured() {
        let result = verify_timestamped(
            [KEY],
            &valid_header(),
            BODY,
            at_millis(T_MS + 31_000),
            Duration::seconds(30),
        );
        assert_eq!(result, Err(VerifyError::TimestampOutsideTolerance));
    }

    #[test]
    fn empty_signature_is_refused_as_malformed() {
        for header in [
            format!("t={T_MS},v1="),
            format!("t={T_MS},v1"),
            format!("t={T_MS}"),
        ] {
            assert_eq!(
                verify_t(&header, BODY, T_MS),
                Err(VerifyError::MalformedSignature),
                "{header}"
            );
        }
    }

    #[test]
    fn truncated_or_overlong_signature_is_refused_as_malformed() {
        let signature = reference_hex(&KEY, T_MS, BODY);
        for candidate in [&signature[..63], &signature[..62], &signature[..2]] {
            let header = format!("t={T_MS},v1={candidate}");
            assert_eq!(
                verify_t(&header, BODY, T_MS),
                Err(VerifyError::MalformedSignature),
                "{header}"
            );
        }
        let header = format!("t={T_MS},v1={signature}00");
        assert_eq!(
            verify_t(&header, BODY, T_MS),
            Err(VerifyError::MalformedSignature)
        );
    }

    #[test]
    fn non_hex_signature_is_refused_as_malformed() {
        let header = format!("t={T_MS},v1={}", "zz".repeat(32));
        assert_eq!(
            verify_t(&header, BODY, T_MS),
            Err(VerifyError::MalformedSignature)
        );
    }

    #[test]
    fn uppercase_hex_signature_verifies() {
        let header = format!(
            "t={T_MS},v1={}",
            reference_hex(&KEY, T_MS, BODY).to_uppercase()
        );
        assert_eq!(verify_t(&header, BODY, T_MS), Ok(()));
    }

    #[test]
    fn missing_or_malformed_timestamp_is_refused() {
        let signature = reference_hex(&KEY, T_MS, BODY);
        for header in [
            format!("v1={signature}"),
            format!("t=,v1={signature}"),
            format!("t=-{T_MS},v1={signature}"),
            format!("t=+{T_MS},v1={signature}"),
            format!("t=1e12,v1={signature}"),
            format!("t=99999999999999999999999,v1={signature}"),
            format!("t={T_MS},t={},v1={signature}", T_MS + 1),
        ] {
            assert_eq!(
                verify_t(&header, BODY, T_MS),
                Err(VerifyError::MalformedTimestamp),
                "{header}"
            );
        }
    }

    #[test]
    fn repeating_the_same_timestamp_is_accepted() {
        let signature = reference_hex(&KEY, T_MS, BODY);
        let header = format!("t={T_MS},v1={signature} t={T_MS},v1={signature}");
        assert_eq!(verify_t(&header, BODY, T_MS), Ok(()));
    }

    #[test]
    fn second_of_several_comma_separated_signatures_may_match() {
        let header = format!(
            "t={T_MS},v1={},v1={}",
            reference_hex(&OTHER_KEY, T_MS, BODY),
            reference_hex(&KEY, T_MS, BODY)
        );
        assert_eq!(verify_t(&header, BODY, T_MS), Ok(()));
    }

    #[test]
    fn second_of_several_space_separated_signatures_may_match() {
        let wrong = reference_hex(&OTHER_KEY, T_MS, BODY);
        let right = reference_hex(&KEY, T_MS, BODY);
        for header in [
            format!("t={T_MS},v1={wrong} v1={right}"),
            format!("t={T_MS},v1={wrong} {right}"),
        ] {
            assert_eq!(verify_t(&header, BODY, T_MS), Ok(()), "{header}");
        }
    }

    #[test]
    fn several_signatures_none_matching_are_refused() {
        let header = format!(
            "t={T_MS},v1={},v1={}",
            reference_hex(&OTHER_KEY, T_MS, BODY),
            reference_hex(&[1; 32], T_MS, BODY)
        );
        assert_eq!(
            verify_t(&header, BODY, T_MS),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn malformed_entries_beside_a_valid_signature_do_not_hide_it() {
        let right = reference_hex(&KEY, T_MS, BODY);
        let header = format!("t={T_MS},v1=,v1={},v0=abc,v1={right}", &right[..40]);
        assert_eq!(verify_t(&header, BODY, T_MS), Ok(()));
    }

    #[test]
    fn unknown_versions_alone_are_not_compared() {
        let header = format!("t={T_MS},v0={}", reference_hex(&KEY, T_MS, BODY));
        assert_eq!(
            verify_t(&header, BODY, T_MS),
            Err(VerifyError::MalformedSignature)
        );
    }

    #[test]
    fn rotation_accepts_a_signature_by_either_key() {
        for signer in [KEY, OTHER_KEY] {
            let header = format!("t={T_MS},v1={}", reference_hex(&signer, T_MS, BODY));
            let result = verify_timestamped(
                [OTHER_KEY, KEY],
                &header,
                BODY,
                at_millis(T_MS),
                DEFAULT_TOLERANCE,
            );
            assert_eq!(result, Ok(()));
        }
    }

    #[test]
    fn rotation_refuses_a_key_outside_the_set() {
        let header = format!("t={T_MS},v1={}", reference_hex(&[1; 32], T_MS, BODY));
        let result = verify_timestamped(
            [OTHER_KEY, KEY],
            &header,
            BODY,
            at_millis(T_MS),
            DEFAULT_TOLERANCE,
        );
        assert_eq!(result, Err(VerifyError::NoMatchingSignature));
    }
}

mod standard {
    use super::*;

    #[test]
    fn valid_signature_verifies() {
        assert_eq!(
            verify_std(&valid_standard(), &TS_SECS.to_string(), BODY, TS_SECS + 2),
            Ok(())
        );
    }

    #[test]
    fn tampered_body_is_refused() {
        assert_eq!(
            verify_std(&valid_standard(), &TS_SECS.to_string(), b"{}", TS_SECS),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn tampered_signature_is_refused() {
        let mut tag = reference_standard_mac(&KEY, MSG_ID, TS_SECS, BODY);
        tag[0] ^= 1;
        let signature = format!("v1,{}", BASE64.encode(tag));
        assert_eq!(
            verify_std(&signature, &TS_SECS.to_string(), BODY, TS_SECS),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn tampered_timestamp_is_refused() {
        assert_eq!(
            verify_std(&valid_standard(), &(TS_SECS + 1).to_string(), BODY, TS_SECS),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn tampered_id_is_refused() {
        let result = verify_standard(
            [KEY],
            "msg_other",
            &TS_SECS.to_string(),
            &valid_standard(),
            BODY,
            at_millis(TS_SECS * 1000),
            DEFAULT_TOLERANCE,
        );
        assert_eq!(result, Err(VerifyError::NoMatchingSignature));
    }

    #[test]
    fn wrong_secret_is_refused() {
        let result = verify_standard(
            [OTHER_KEY],
            MSG_ID,
            &TS_SECS.to_string(),
            &valid_standard(),
            BODY,
            at_millis(TS_SECS * 1000),
            DEFAULT_TOLERANCE,
        );
        assert_eq!(result, Err(VerifyError::NoMatchingSignature));
    }

    #[test]
    fn timestamp_too_old_or_too_new_is_refused() {
        let ts = TS_SECS.to_string();
        assert_eq!(
            verify_std(&valid_standard(), &ts, BODY, TS_SECS + 300),
            Ok(())
        );
        assert_eq!(
            verify_std(&valid_standard(), &ts, BODY, TS_SECS - 300),
            Ok(())
        );
        assert_eq!(
            verify_std(&valid_standard(), &ts, BODY, TS_SECS + 301),
            Err(VerifyError::TimestampOutsideTolerance)
        );
        assert_eq!(
            verify_std(&valid_standard(), &ts, BODY, TS_SECS - 301),
            Err(VerifyError::TimestampOutsideTolerance)
        );
    }

    #[test]
    fn malformed_timestamp_is_refused() {
        for ts in [
            "",
            "abc",
            "-1",
            " 1700000000",
            "1700000000.5",
            "99999999999999999999999",
        ] {
            assert_eq!(
                verify_std(&valid_standard(), ts, BODY, TS_SECS),
                Err(VerifyError::MalformedTimestamp),
                "{ts:?}"
            );
        }
    }

    #[test]
    fn empty_signature_is_refused_as_malformed() {
        for signature in ["v1,", "v1", "", " ", "v1, v1,"] {
            assert_eq!(
                verify_std(signature, &TS_SECS.to_string(), BODY, TS_SECS),
                Err(VerifyError::MalformedSignature),
                "{signature:?}"
            );
        }
    }

    #[test]
    fn truncated_signature_is_refused_as_malformed() {
        let valid = valid_standard();
        for signature in [
            &valid[..valid.len() - 1],
            &valid[..valid.len() - 4],
            &valid[..10],
        ] {
            assert_eq!(
                verify_std(signature, &TS_SECS.to_string(), BODY, TS_SECS),
                Err(VerifyError::MalformedSignature),
                "{signature:?}"
            );
        }
    }

    #[test]
    fn base64_of_a_shorter_tag_is_refused_as_malformed() {
        let tag = reference_standard_mac(&KEY, MSG_ID, TS_SECS, BODY);
        let signature = format!("v1,{}", BASE64.encode(&tag[..31]));
        assert_eq!(
            verify_std(&signature, &TS_SECS.to_string(), BODY, TS_SECS),
            Err(VerifyError::MalformedSignature)
        );
    }

    #[test]
    fn unknown_versions_are_ignored() {
        let b64 = reference_b64(&KEY, MSG_ID, TS_SECS, BODY);
        assert_eq!(
            verify_std(&format!("v1a,{b64}"), &TS_SECS.to_string(), BODY, TS_SECS),
            Err(VerifyError::MalformedSignature)
        );
        assert_eq!(
            verify_std(
                &format!("v2,{b64} v1,{b64}"),
                &TS_SECS.to_string(),
                BODY,
                TS_SECS
            ),
            Ok(())
        );
    }

    #[test]
    fn second_of_several_signatures_may_match() {
        let signature = format!(
            "v1,{} v1,{}",
            reference_b64(&OTHER_KEY, MSG_ID, TS_SECS, BODY),
            reference_b64(&KEY, MSG_ID, TS_SECS, BODY)
        );
        assert_eq!(
            verify_std(&signature, &TS_SECS.to_string(), BODY, TS_SECS),
            Ok(())
        );
    }

    #[test]
    fn empty_entry_beside_a_valid_signature_does_not_hide_it() {
        let signature = format!("v1, {}", valid_standard());
        assert_eq!(
            verify_std(&signature, &TS_SECS.to_string(), BODY, TS_SECS),
            Ok(())
        );
    }

    #[test]
    fn rotation_accepts_a_signature_by_either_key() {
        for signer in [KEY, OTHER_KEY] {
            let signature = format!("v1,{}", reference_b64(&signer, MSG_ID, TS_SECS, BODY));
            let result = verify_standard(
                [KEY, OTHER_KEY],
                MSG_ID,
                &TS_SECS.to_string(),
                &signature,
                BODY,
                at_millis(TS_SECS * 1000),
                DEFAULT_TOLERANCE,
            );
            assert_eq!(result, Ok(()));
        }
    }
}

mod request_headers {
    use super::*;

    fn timestamped_headers(signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-webhook-signature", signature.parse().unwrap());
        headers
    }

    fn standard_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", MSG_ID.parse().unwrap());
        headers.insert("webhook-timestamp", TS_SECS.to_string().parse().unwrap());
        headers.insert("webhook-signature", valid_standard().parse().unwrap());
        headers
    }

    fn verify(
        scheme: &SignatureScheme,
        headers: &HeaderMap,
        now_ms: i64,
    ) -> Result<(), VerifyError> {
        let keys = [SecretKey::from_bytes(KEY)];
        scheme.verify(&keys, headers, BODY, at_millis(now_ms), DEFAULT_TOLERANCE)
    }

    #[test]
    fn default_scheme_verifies_the_signature_header() {
        let headers = timestamped_headers(&valid_header());
        assert_eq!(verify(&SignatureScheme::default(), &headers, T_MS), Ok(()));
    }

    #[test]
    fn default_scheme_reports_a_missing_signature_header() {
        assert_eq!(
            verify(&SignatureScheme::default(), &HeaderMap::new(), T_MS),
            Err(VerifyError::MissingHeader("x-webhook-signature".into()))
        );
    }

    #[test]
    fn custom_signature_header_name_is_the_one_read() {
        let scheme = SignatureScheme::Timestamped(
            webhook_subscriptions::signature::TimestampedScheme::new(
                "X-DIXA-SIGNATURE",
                "X-DIXA-SUBSCRIPTION-ID",
                "X-Webhook-Event-Id",
            )
            .unwrap(),
        );
        let default_named = timestamped_headers(&valid_header());
        assert_eq!(
            verify(&scheme, &default_named, T_MS),
            Err(VerifyError::MissingHeader("x-dixa-signature".into()))
        );
        let mut headers = HeaderMap::new();
        headers.insert("X-DIXA-SIGNATURE", valid_header().parse().unwrap());
        assert_eq!(verify(&scheme, &headers, T_MS), Ok(()));
    }

    #[test]
    fn repeated_signature_header_is_refused() {
        let mut headers = timestamped_headers(&valid_header());
        headers.append("x-webhook-signature", valid_header().parse().unwrap());
        assert_eq!(
            verify(&SignatureScheme::default(), &headers, T_MS),
            Err(VerifyError::MalformedHeader("x-webhook-signature".into()))
        );
    }

    #[test]
    fn non_ascii_signature_header_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-webhook-signature",
            HeaderValue::from_bytes("t=1,v1=é".as_bytes()).unwrap(),
        );
        assert_eq!(
            verify(&SignatureScheme::default(), &headers, T_MS),
            Err(VerifyError::MalformedHeader("x-webhook-signature".into()))
        );
    }

    #[test]
    fn standard_scheme_verifies_the_webhook_headers() {
        let scheme = SignatureScheme::StandardWebhooks(StandardWebhooksScheme::default());
        assert_eq!(verify(&scheme, &standard_headers(), TS_SECS * 1000), Ok(()));
    }

    #[test]
    fn standard_scheme_reports_each_missing_header() {
        let scheme = SignatureScheme::StandardWebhooks(StandardWebhooksScheme::default());
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            let mut headers = standard_headers();
            headers.remove(name);
            assert_eq!(
                verify(&scheme, &headers, TS_SECS * 1000),
                Err(VerifyError::MissingHeader(name.into()))
            );
        }
    }
}
