//! Each error kind maps to its HTTP status and a message starting with the
//! phrase of its kind.

use http::StatusCode;
use webhook_subscriptions::{Error, Operation, ValidationErrors};

fn validation(operation: Operation) -> Error {
    let mut errors = ValidationErrors::default();
    errors.push("url", "must be an absolute http or https URL");
    Error::Validation { operation, errors }
}

#[test]
fn each_kind_maps_to_status_and_message() {
    let cases: Vec<(Error, StatusCode, &str)> = vec![
        (
            Error::InvalidPathParameter {
                parameter: "webhookSubscriptionId".into(),
                detail: "not a UUID".into(),
            },
            StatusCode::BAD_REQUEST,
            "Invalid value for: path parameter webhookSubscriptionId: not a UUID",
        ),
        (
            Error::InvalidRequestContext("missing X-User-Id".into()),
            StatusCode::BAD_REQUEST,
            "Invalid value extracted from request context: missing X-User-Id",
        ),
        (
            Error::InvalidBody("expected value at line 1 column 1".into()),
            StatusCode::BAD_REQUEST,
            "Invalid value for: body: expected value at line 1 column 1",
        ),
        (
            validation(Operation::Creation),
            StatusCode::BAD_REQUEST,
            "Validation failure during Webhook Subscription creation: url: must be an absolute http or https URL",
        ),
        (
            validation(Operation::Patching),
            StatusCode::BAD_REQUEST,
            "Validation failure during Webhook Subscription patching: url: must be an absolute http or https URL",
        ),
        (
            Error::NotFound("webhook subscription 1".into()),
            StatusCode::NOT_FOUND,
            "An entity in this request could not be found: webhook subscription 1",
        ),
        (
            Error::internal("connection refused by db at 10.0.0.5"),
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
        ),
    ];
    for (error, status, message) in cases {
        assert_eq!(error.status(), status, "{error:?}");
        assert_eq!(error.body().message, message);
    }
}

#[test]
fn internal_details_never_reach_the_body() {
    let error = Error::internal("password=hunter2 at db.internal");
    let body = serde_json::to_string(&error.body()).expect("serializes");
    assert_eq!(body, r#"{"message":"Internal Server Error"}"#);
    // ...but stay available to the host's logs.
    let source = std::error::Error::source(&error).expect("has a source");
    assert!(source.to_string().contains("hunter2"));
}

#[test]
fn error_bodies_stay_small_whatever_the_message() {
    for detail in [
        "a".repeat(1 << 20),
        "\u{1}".repeat(1 << 20),
        "\"\\".repeat(1 << 19),
        "é".repeat(1 << 19),
    ] {
        let body = serde_json::to_vec(&Error::InvalidBody(detail).body()).expect("serializes");
        assert!(body.len() < 16 * 1024, "{} bytes", body.len());
        let parsed: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        let message = parsed["message"].as_str().expect("message");
        assert!(message.starts_with("Invalid value for: body: "));
        assert!(message.ends_with('…'), "a cut message says so");
    }
    let short = Error::InvalidBody("short".into()).body().message;
    assert_eq!(short, "Invalid value for: body: short");
}

#[test]
fn validation_errors_keep_the_first_twenty_and_count_the_rest() {
    let mut errors = ValidationErrors::default();
    for i in 0..25 {
        errors.push(format!("f{i}"), "bad");
    }
    assert_eq!(
        errors.errors().len(),
        webhook_subscriptions::MAX_REPORTED_ERRORS
    );
    assert_eq!(errors.omitted(), 5);
    assert_eq!(errors.len(), 25);
    let text = errors.to_string();
    assert!(text.starts_with("f0: bad; f1: bad"), "{text}");
    assert!(text.ends_with("f19: bad; and 5 more"), "{text}");
}
