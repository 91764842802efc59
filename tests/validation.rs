//! One case per validation rule, good and bad, plus property tests that
//! validation never panics.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use webhook_subscriptions::model::{
    Authorization, CreateWebhookSubscription, PatchWebhookSubscription, UserId,
};
use webhook_subscriptions::transport::AddressPolicy;
use webhook_subscriptions::validate::Validator;
use webhook_subscriptions::{Error, Operation, MAX_REPORTED_ERRORS};

fn base() -> CreateWebhookSubscription {
    let mut request = CreateWebhookSubscription::new("Dashboard", "https://example.com/hooks");
    request.events = vec!["ConversationCreated".to_owned()];
    request
}

/// The `(field, message)` pairs of a failed create, or empty when it passed.
fn create_problems(request: &CreateWebhookSubscription) -> Vec<(String, String)> {
    match Validator::default().validate_create(request) {
        Ok(_) => Vec::new(),
        Err(Error::Validation { operation, errors }) => {
            assert_eq!(operation, Operation::Creation);
            errors
                .errors()
                .iter()
                .map(|e| (e.field.clone(), e.message.clone()))
                .collect()
        }
        Err(other) => panic!("unexpected error kind: {other:?}"),
    }
}

fn assert_refused(request: &CreateWebhookSubscription, field: &str, needle: &str) {
    let problems = create_problems(request);
    assert!(
        problems
            .iter()
            .any(|(f, m)| f == field && m.contains(needle)),
        "expected `{field}` containing `{needle}`, got {problems:?}"
    );
}

fn assert_accepted(request: &CreateWebhookSubscription) {
    let problems = create_problems(request);
    assert!(problems.is_empty(), "unexpected problems: {problems:?}");
}

fn with(f: impl FnOnce(&mut CreateWebhookSubscription)) -> CreateWebhookSubscription {
    let mut request = base();
    f(&mut request);
    request
}

fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn name_rules() {
    assert_accepted(&with(|r| r.name = "x".repeat(255)));
    assert_accepted(&with(|r| r.name = format!("  {}  ", "é".repeat(255))));
    assert_refused(&with(|r| r.name = "x".repeat(256)), "name", "at most 255");
    assert_refused(&with(|r| r.name = String::new()), "name", "empty");
    assert_refused(&with(|r| r.name = "   \t ".to_owned()), "name", "empty");
}

#[test]
fn name_is_trimmed() {
    let valid = Validator::default()
        .validate_create(&with(|r| r.name = "  Spaced  ".to_owned()))
        .expect("valid");
    assert_eq!(valid.name, "Spaced");
}

#[test]
fn url_rules() {
    for good in [
        "https://example.com/hooks",
        "http://example.com",
        "https://example.com:8443/a?b=c",
        "http://93.184.215.14:8080/hook",
    ] {
        assert_accepted(&with(|r| r.url = good.to_owned()));
    }
    let absolute = "must be an absolute http or https URL";
    for bad in [
        "ftp://example.com/file",
        "javascript:alert(1)",
        "/relative/path",
        "example.com/hooks",
        "",
        "file:///etc/passwd",
        "mailto:a@example.com",
    ] {
        assert_refused(&with(|r| r.url = bad.to_owned()), "url", absolute);
    }
    assert_refused(
        &with(|r| r.url = "https://user:pass@example.com/".to_owned()),
        "url",
        "user information",
    );
    assert_refused(
        &with(|r| r.url = "https://user@example.com/".to_owned()),
        "url",
        "user information",
    );
    assert_refused(
        &with(|r| r.url = "https://example.com/#frag".to_owned()),
        "url",
        "fragment",
    );
    assert_refused(
        &with(|r| r.url = "https://exa\nmple.com/".to_owned()),
        "url",
        "whitespace or control",
    );
    assert_refused(
        &with(|r| r.url = " https://example.com/".to_owned()),
        "url",
        "whitespace or control",
    );
}

#[test]
fn url_length_limit_is_2048_bytes() {
    let prefix = "https://example.com/";
    let at_limit = format!("{prefix}{}", "a".repeat(2048 - prefix.len()));
    assert_eq!(at_limit.len(), 2048);
    assert_accepted(&with(|r| r.url = at_limit.clone()));
    let over = format!("{at_limit}a");
    assert_eq!(over.len(), 2049);
    assert_refused(&with(|r| r.url = over), "url", "at most 2048 bytes");
}

#[test]
fn event_rules() {
    assert_accepted(&with(|r| r.events = Vec::new()));
    assert_refused(
        &with(|r| r.events = vec!["ConversationCreated".into(), "ConversationCreated".into()]),
        "events[1]",
        "duplicate",
    );
    let problems = create_problems(&with(|r| r.events = vec!["NoSuchEvent".into()]));
    let (field, message) = &problems[0];
    assert_eq!(field, "events[0]");
    assert!(message.contains("unknown event `NoSuchEvent`"), "{message}");
    assert!(
        message.contains("allowed values: ConversationCreated, ConversationOpen"),
        "lists allowed values: {message}"
    );
    assert!(message.contains("SLAEvaluationVoided"), "{message}");
}

#[test]
fn urls_are_stored_in_normalised_form_that_can_be_sent() {
    for (given, stored) in [
        (
            "https://bücher.example/hook",
            "https://xn--bcher-kva.example/hook",
        ),
        (
            "https://example.com/a?q=<x>",
            "https://example.com/a?q=%3Cx%3E",
        ),
        ("https://example.com/a`b", "https://example.com/a%60b"),
        ("HTTPS://Example.COM:443", "https://example.com/"),
    ] {
        let valid = Validator::default()
            .validate_create(&with(|r| r.url = given.to_owned()))
            .unwrap_or_else(|e| panic!("{given}: {e}"));
        assert_eq!(valid.url, stored, "{given}");
        assert!(http::Uri::try_from(valid.url.as_str()).is_ok(), "{given}");

        let patch: PatchWebhookSubscription =
            serde_json::from_value(serde_json::json!({ "url": given })).expect("parses");
        let change = Validator::default()
            .validate_patch(&patch, at(), UserId::new_v4())
            .unwrap_or_else(|e| panic!("{given}: {e}"));
        assert_eq!(change.url.as_deref(), Some(stored), "{given}");
    }
}

#[test]
fn urls_an_http_client_cannot_send_are_refused() {
    // The url crate accepts these characters in a host name; no HTTP
    // request can carry them.
    for bad in [
        "https://ex`ample.com/hook",
        "https://ex{ample.com/",
        "https://ex\"ample.com/",
    ] {
        assert_refused(&with(|r| r.url = bad.to_owned()), "url", "cannot be sent");
    }
    // In a query a backtick is fine.
    assert_accepted(&with(|r| r.url = "https://example.com/?a=`".to_owned()));
}

#[test]
fn literal_blocked_hosts_are_refused_unless_the_policy_allows_them() {
    for (url, class) in [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://2130706433/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:10.0.0.1]/hook", "private"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://168.63.129.16/machine", "cloud platform"),
        ("http://0.0.0.0/", "unspecified"),
    ] {
        assert_refused(&with(|r| r.url = url.to_owned()), "url", class);
        let allowing = Validator::default().with_address_policy(AddressPolicy::allow_all());
        assert!(
            allowing
                .validate_create(&with(|r| r.url = url.to_owned()))
                .is_ok(),
            "{url} refused although every address is allowed"
        );
    }
    let loopback_only = Validator::default().with_address_policy(
        AddressPolicy::default().allow_network("127.0.0.0/8".parse().expect("network")),
    );
    assert!(loopback_only
        .validate_create(&with(|r| r.url = "http://127.0.0.1:9/".to_owned()))
        .is_ok());
    assert!(loopback_only
        .validate_create(&with(|r| r.url = "http://10.0.0.1/".to_owned()))
        .is_err());
    // Names are left to the transport, which checks what they resolve to.
    assert_accepted(&with(|r| r.url = "http://localhost.example/".to_owned()));
}

#[test]
fn ports_outside_the_allowed_ones_are_refused() {
    let validator =
        Validator::default().with_address_policy(AddressPolicy::default().allowed_ports([443]));
    let check = |url: &str| validator.validate_create(&with(|r| r.url = url.to_owned()));
    assert!(check("https://example.com/hook").is_ok());
    assert!(check("https://example.com:443/hook").is_ok());
    for bad in ["http://example.com/hook", "https://example.com:22/hook"] {
        let message = check(bad).expect_err(bad).to_string();
        assert!(message.contains("url: port"), "{bad}: {message}");
    }
    // Any port by default.
    assert_accepted(&with(|r| r.url = "https://example.com:22/hook".to_owned()));
}

#[test]
fn many_bad_events_give_one_bounded_error_listing_allowed_values_once() {
    let allowed = webhook_subscriptions::model::EventCatalogue::conversation().allowed_list();
    let mut events = vec![String::new(); 100_000];
    events.extend((0..100).map(|i| format!("Nope{i}")));
    events.extend(vec!["ConversationCreated".to_owned(); 1000]);
    let err = Validator::default()
        .validate_create(&with(|r| r.events = events))
        .expect_err("invalid");
    let Error::Validation { errors, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(errors.errors().len(), MAX_REPORTED_ERRORS);
    // One per distinct bad value: "", 100 unknown names, one duplicated name.
    assert_eq!(errors.len(), 102);
    let (first, second) = (&errors.errors()[0], &errors.errors()[1]);
    assert_eq!(first.field, "events[0]");
    assert!(
        first
            .message
            .starts_with("unknown event `` (given 100000 times)"),
        "{first}"
    );
    let message = err.to_string();
    assert_eq!(message.matches(allowed.as_str()).count(), 1, "{message}");
    assert_eq!(second.field, "events[100000]");
    assert!(message.ends_with("; and 82 more"), "{message}");
    assert!(message.len() < 4096, "{} bytes", message.len());
}

#[test]
fn a_repeated_event_is_reported_once() {
    let events = vec!["ConversationCreated".to_owned(); 5];
    let problems = create_problems(&with(|r| r.events = events));
    assert_eq!(
        problems,
        [(
            "events[1]".to_owned(),
            "duplicate event `ConversationCreated` (repeated 4 times)".to_owned()
        )]
    );
}

#[test]
fn many_bad_custom_headers_give_a_bounded_error() {
    let headers: BTreeMap<String, String> = (0..50_000)
        .map(|i| (format!("Bad Name {i}"), "v\n".repeat(100)))
        .collect();
    let err = Validator::default()
        .validate_create(&with(|r| r.custom_headers = headers))
        .expect_err("invalid");
    let Error::Validation { errors, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(errors.errors().len(), MAX_REPORTED_ERRORS);
    assert!(errors.len() > 50_000, "{}", errors.len());
    assert!(err.to_string().len() < 4096);
}

#[test]
fn basic_auth_rules() {
    let basic = |u: &str, p: &str| Authorization::BasicAuth {
        username: u.to_owned(),
        password: p.to_owned(),
    };
    assert_accepted(&with(|r| r.authorization = basic("user", "pa:ss")));
    assert_refused(
        &with(|r| r.authorization = basic("us:er", "pass")),
        "authorization.username",
        "`:`",
    );
    for bad in ["a\rb", "a\nb", "a\0b"] {
        assert_refused(
            &with(|r| r.authorization = basic(bad, "pass")),
            "authorization.username",
            "CR, LF or NUL",
        );
        assert_refused(
            &with(|r| r.authorization = basic("user", bad)),
            "authorization.password",
            "CR, LF or NUL",
        );
    }
}

#[test]
fn token_auth_rules() {
    let token = |v: &str| Authorization::TokenAuth {
        value: v.to_owned(),
    };
    assert_accepted(&with(|r| r.authorization = token("abc.def-ghi")));
    assert_refused(
        &with(|r| r.authorization = token("")),
        "authorization.value",
        "empty",
    );
    for bad in ["a\rb", "a\nb", "a\0b"] {
        assert_refused(
            &with(|r| r.authorization = token(bad)),
            "authorization.value",
            "CR, LF or NUL",
        );
    }
}

#[test]
fn authorization_becomes_header() {
    let validator = Validator::default();
    // Expected values computed independently: base64("webhook_user:webhook_password").
    let valid = validator
        .validate_create(&with(|r| {
            r.authorization = Authorization::BasicAuth {
                username: "webhook_user".into(),
                password: "webhook_password".into(),
            }
        }))
        .expect("valid");
    assert_eq!(
        valid.headers.get("Authorization").map(String::as_str),
        Some("Basic d2ViaG9va191c2VyOndlYmhvb2tfcGFzc3dvcmQ=")
    );
    let valid = validator
        .validate_create(&with(|r| {
            r.authorization = Authorization::TokenAuth {
                value: "tok".into(),
            }
        }))
        .expect("valid");
    assert_eq!(
        valid.headers.get("Authorization").map(String::as_str),
        Some("Bearer tok")
    );
    let valid = validator.validate_create(&base()).expect("valid");
    assert!(valid.headers.is_empty(), "NoAuth adds no header");
}

#[test]
fn custom_header_rules() {
    assert_accepted(&with(|r| {
        r.custom_headers = headers(&[("X-Tenant", "acme\tcorp value"), ("X-Trace", "1")])
    }));
    for bad_value in ["a\rb", "a\nb", "a\0b", "caf\u{e9}", "\u{7f}"] {
        assert_refused(
            &with(|r| r.custom_headers = headers(&[("X-Ok", bad_value)])),
            "customHeaders.X-Ok",
            "header value",
        );
    }
    for bad_name in ["Bad Name", "Bad:Name", "", "Ünïcode", "a\nb"] {
        let problems = create_problems(&with(|r| r.custom_headers = headers(&[(bad_name, "v")])));
        assert!(
            problems
                .iter()
                .any(|(f, m)| f.starts_with("customHeaders.") && m.contains("header name")),
            "{bad_name:?}: {problems:?}"
        );
    }
    let long_name = "X".repeat(257);
    let problems = create_problems(&with(|r| r.custom_headers = headers(&[(&long_name, "v")])));
    assert!(
        problems
            .iter()
            .any(|(_, m)| m.contains("at most 256 bytes")),
        "{problems:?}"
    );
    assert_accepted(&with(|r| {
        r.custom_headers = headers(&[(&"X".repeat(256), "v")])
    }));
    assert_accepted(&with(|r| {
        r.custom_headers = headers(&[("X-Big", &"v".repeat(4096))])
    }));
    assert_refused(
        &with(|r| r.custom_headers = headers(&[("X-Big", &"v".repeat(4097))])),
        "customHeaders.X-Big",
        "at most 4096 bytes",
    );
    assert_refused(
        &with(|r| r.custom_headers = headers(&[("X-Dup", "1"), ("x-dup", "2")])),
        "customHeaders.x-dup",
        "duplicate",
    );
}

#[test]
fn reserved_header_names_in_any_case() {
    for name in [
        "Authorization",
        "authorization",
        "AUTHORIZATION",
        "Content-Type",
        "content-length",
        "HOST",
        "Transfer-Encoding",
        "Connection",
        "User-Agent",
        "X-Webhook-Signature",
        "x-webhook-subscription-id",
        "X-WEBHOOK-EVENT-ID",
        // Standard Webhooks, whatever scheme is configured.
        "webhook-id",
        "Webhook-Timestamp",
        "WEBHOOK-SIGNATURE",
        // Cloud metadata services trust these.
        "Metadata",
        "metadata-flavor",
        "X-aws-ec2-metadata-token",
    ] {
        assert_refused(
            &with(|r| r.custom_headers = headers(&[(name, "v")])),
            &format!("customHeaders.{name}"),
            "reserved",
        );
    }
}

#[test]
fn scheme_header_names_are_configurable_and_built_in_ones_stay_reserved() {
    let validator = Validator::new(
        webhook_subscriptions::model::EventCatalogue::conversation(),
        ["X-DIXA-SIGNATURE", "X-DIXA-SUBSCRIPTION-ID"],
    );
    let refused = validator.validate_create(&with(|r| {
        r.custom_headers = headers(&[("x-dixa-signature", "v")]);
    }));
    assert!(refused.is_err());
    // A host may switch schemes later: every built-in scheme's headers stay reserved.
    for name in ["X-Webhook-Signature", "webhook-signature", "Webhook-Id"] {
        let refused = validator.validate_create(&with(|r| {
            r.custom_headers = headers(&[(name, "v")]);
        }));
        assert!(refused.is_err(), "{name} was accepted");
    }
    let allowed = validator.validate_create(&with(|r| {
        r.custom_headers = headers(&[("X-Tenant", "v")]);
    }));
    assert!(allowed.is_ok(), "{allowed:?}");
}

#[test]
fn at_most_32_custom_headers() {
    let make = |n: usize| -> BTreeMap<String, String> {
        (0..n)
            .map(|i| (format!("X-H{i}"), "v".to_owned()))
            .collect()
    };
    assert_accepted(&with(|r| r.custom_headers = make(32)));
    assert_refused(
        &with(|r| r.custom_headers = make(33)),
        "customHeaders",
        "at most 32",
    );
}

#[test]
fn several_problems_are_reported_at_once() {
    let problems = create_problems(&with(|r| {
        r.name = String::new();
        r.url = "ftp://x".to_owned();
        r.events = vec!["Nope".to_owned()];
    }));
    let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, ["name", "url", "events[0]"]);
}

#[test]
fn validation_message_names_operation_field_and_reason() {
    let err = Validator::default()
        .validate_create(&with(|r| r.url = "ftp://x".to_owned()))
        .expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "Validation failure during Webhook Subscription creation: url: must be an absolute http or https URL"
    );
}

fn at() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

#[test]
fn patch_null_is_a_validation_failure() {
    for body in [
        r#"{"name": null}"#,
        r#"{"url": null}"#,
        r#"{"events": null}"#,
        r#"{"authorization": null}"#,
        r#"{"customHeaders": null}"#,
        r#"{"enabled": null}"#,
    ] {
        let patch: PatchWebhookSubscription = serde_json::from_str(body).expect("parses");
        let err = Validator::default()
            .validate_patch(&patch, at(), UserId::new_v4())
            .expect_err(body);
        let message = err.to_string();
        assert!(
            message.starts_with("Validation failure during Webhook Subscription patching: ")
                && message.ends_with("must not be null"),
            "{body}: {message}"
        );
    }
}

#[test]
fn patch_checks_present_fields_with_create_rules() {
    let patch: PatchWebhookSubscription = serde_json::from_str(
        r#"{"url": "javascript:x", "events": ["Nope"], "customHeaders": {"Host": "x"}}"#,
    )
    .expect("parses");
    let err = Validator::default()
        .validate_patch(&patch, at(), UserId::new_v4())
        .expect_err("invalid");
    let message = err.to_string();
    for needle in ["url:", "events[0]:", "customHeaders.Host:"] {
        assert!(message.contains(needle), "{needle} in {message}");
    }
}

#[test]
fn empty_patch_only_touches() {
    let user = UserId::new_v4();
    let change = Validator::default()
        .validate_patch(&PatchWebhookSubscription::default(), at(), user)
        .expect("valid");
    assert_eq!(
        change,
        webhook_subscriptions::model::SubscriptionChange::touch(at(), user)
    );
}

#[test]
fn unknown_event_path_parameter_is_a_bad_path_parameter() {
    let err = Validator::default()
        .validate_event_parameter("event", "Nope")
        .expect_err("unknown");
    assert!(err
        .to_string()
        .starts_with("Invalid value for: path parameter event: unknown event `Nope`"));
}

proptest! {
    #[test]
    fn create_validation_never_panics(
        name in ".*",
        url in ".*",
        events in proptest::collection::vec(".*", 0..4),
        header_name in ".*",
        header_value in ".*",
        user in ".*",
        pass in ".*",
    ) {
        let mut request = CreateWebhookSubscription::new(name, url);
        request.events = events;
        request.custom_headers.insert(header_name, header_value);
        request.authorization = Authorization::BasicAuth { username: user, password: pass };
        let _ = Validator::default().validate_create(&request);
    }

    #[test]
    fn urls_that_pass_parse_as_http_with_a_host(url in "(https?|ftp)://[a-zA-Z0-9.:@/#?%\\[\\]-]{0,40}") {
        let mut request = base();
        request.url = url.clone();
        if Validator::default().validate_create(&request).is_ok() {
            let parsed = url::Url::parse(&url).expect("accepted URLs parse");
            prop_assert!(matches!(parsed.scheme(), "http" | "https"));
            prop_assert!(parsed.host_str().is_some_and(|h| !h.is_empty()));
            prop_assert!(parsed.username().is_empty() && parsed.password().is_none());
            prop_assert!(parsed.fragment().is_none());
        }
    }

    #[test]
    fn accepted_urls_are_stored_in_a_form_http_can_send(
        url in "https?://[a-zA-Zü0-9.-]{1,12}(:[0-9]{1,5})?/[ -~üé]{0,30}",
    ) {
        let mut request = base();
        request.url = url;
        if let Ok(valid) = Validator::default().validate_create(&request) {
            prop_assert!(http::Uri::try_from(valid.url.as_str()).is_ok(), "{}", valid.url);
        }
    }

    #[test]
    fn patch_json_never_panics(body in ".*") {
        if let Ok(patch) = serde_json::from_str::<PatchWebhookSubscription>(&body) {
            let _ = Validator::default().validate_patch(&patch, at(), UserId::new_v4());
        }
    }

    #[test]
    fn accepted_header_values_are_valid_http_header_values(value in ".*") {
        let mut request = base();
        request.custom_headers.insert("X-Prop".to_owned(), value.clone());
        if Validator::default().validate_create(&request).is_ok() {
            prop_assert!(http::HeaderValue::from_str(&value).is_ok());
        }
    }
}

#[test]
fn name_with_control_characters_is_refused() {
    for bad in ["a\0b", "line\nbreak", "esc\u{1b}"] {
        assert_refused(
            &with(|r| r.name = bad.to_owned()),
            "name",
            "control characters",
        );
    }
}
