//! The REST handler against a hostile tenant: bounded error bodies for any
//! 1 MiB body, strict media types, `Cache-Control: no-store`, strict
//! authorization objects.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use webhook_subscriptions::api::{ApiHandler, DEFAULT_MAX_BODY_BYTES};
use webhook_subscriptions::model::{OrganizationId, UserId};
use webhook_subscriptions::storage::MemoryStore;
use webhook_subscriptions::{RequestContext, WebhookService};

const BASE: &str = "/v1/webhooks";
/// The most an error response may take, whatever the request.
const MAX_ERROR_BODY: usize = 16 * 1024;

fn handler() -> ApiHandler {
    ApiHandler::new(WebhookService::builder(Arc::new(MemoryStore::new())).build())
}

fn ctx() -> RequestContext {
    RequestContext::new(OrganizationId::new_v4(), UserId::new_v4())
}

async fn send(
    api: &ApiHandler,
    ctx: RequestContext,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Bytes>,
) -> Response<Bytes> {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    api.handle(Ok(ctx), request.body(body.into()).expect("request"))
        .await
}

/// `POST {BASE}` with a JSON body.
async fn post_json(
    api: &ApiHandler,
    ctx: RequestContext,
    body: impl Into<Bytes>,
) -> Response<Bytes> {
    send(api, ctx, Method::POST, BASE, Some("application/json"), body).await
}

fn message(response: &Response<Bytes>) -> String {
    let body: Value = serde_json::from_slice(response.body()).expect("JSON error body");
    body["message"].as_str().expect("message").to_owned()
}

/// A subscription of `ctx`'s organization to patch.
async fn created_id(api: &ApiHandler, ctx: RequestContext) -> String {
    let body = json!({"name": "n", "url": "https://example.com/hook"}).to_string();
    let response = post_json(api, ctx, body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = serde_json::from_slice(response.body()).expect("JSON");
    created["data"]["id"].as_str().expect("id").to_owned()
}

/// `{"name": "n", "url": ..., <field>: <filler repeated until ~1 MiB>}`.
fn one_mib_body(field: &str, open: &str, item: &str, close: &str) -> String {
    let head = format!(r#"{{"name": "n", "url": "https://example.com/hook", "{field}": {open}"#);
    let room = DEFAULT_MAX_BODY_BYTES - head.len() - close.len() - 1;
    let mut body = head;
    let count = room / (item.replace("{i}", "000000").len() + 1);
    for i in 0..count {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&item.replace("{i}", &format!("{:06}", i % 1_000_000)));
    }
    body.push_str(close);
    body.push('}');
    assert!(body.len() <= DEFAULT_MAX_BODY_BYTES, "{}", body.len());
    body
}

/// Hostile bodies of every shape, each at most 1 MiB.
fn hostile_bodies() -> Vec<(&'static str, String)> {
    let long = "a".repeat(DEFAULT_MAX_BODY_BYTES - 200);
    let controls = "\\u0001".repeat((DEFAULT_MAX_BODY_BYTES - 200) / 6);
    vec![
        ("empty events", one_mib_body("events", "[", r#""""#, "]")),
        (
            "distinct unknown events",
            one_mib_body("events", "[", r#""E{i}""#, "]"),
        ),
        (
            "repeated known event",
            one_mib_body("events", "[", r#""ConversationCreated""#, "]"),
        ),
        (
            "bad custom headers",
            one_mib_body("customHeaders", "{", r#""H {i}": "v\n""#, "}"),
        ),
        (
            "reserved custom headers",
            one_mib_body("customHeaders", "{", r#""webhook-signature{i}": "v""#, "}"),
        ),
        (
            "deep nesting",
            format!("{}{}", "[".repeat(500_000), "]".repeat(500_000)),
        ),
        (
            "deep nesting in a field",
            format!(
                r#"{{"name": {}{}}}"#,
                "[".repeat(500_000),
                "]".repeat(500_000)
            ),
        ),
        (
            "long name",
            json!({"name": long, "url": "https://a.example"}).to_string(),
        ),
        ("long url", json!({"name": "n", "url": long}).to_string()),
        (
            "long unknown field",
            format!(r#"{{"name": "n", "url": "https://a.example", "{long}": 1}}"#),
        ),
        (
            "unknown field of control characters",
            format!(r#"{{"name": "n", "url": "https://a.example", "{controls}": 1}}"#),
        ),
        (
            "long string of a wrong type",
            format!(r#"{{"name": "n", "url": "https://a.example", "enabled": "{long}"}}"#),
        ),
        (
            "long unknown authorization type",
            format!(
                r#"{{"name": "n", "url": "https://a.example", "authorization": {{"_type": "{long}"}}}}"#
            ),
        ),
    ]
}

#[tokio::test]
async fn hostile_one_mib_bodies_answer_400_with_small_bodies() {
    let api = handler();
    let ctx = ctx();
    let id = created_id(&api, ctx).await;
    let patch_path = format!("{BASE}/{id}");
    for (shape, body) in hostile_bodies() {
        for (method, path) in [(Method::POST, BASE), (Method::PATCH, patch_path.as_str())] {
            let response = send(
                &api,
                ctx,
                method.clone(),
                path,
                Some("application/json"),
                body.clone(),
            )
            .await;
            assert_eq!(
                response.status(),
                StatusCode::BAD_REQUEST,
                "{shape} {method}"
            );
            assert!(
                response.body().len() < MAX_ERROR_BODY,
                "{shape} {method}: {} bytes",
                response.body().len()
            );
            assert!(!message(&response).is_empty(), "{shape} {method}");
        }
    }
}

#[tokio::test]
async fn many_unknown_events_list_the_allowed_values_once() {
    let api = handler();
    let body = one_mib_body("events", "[", r#""""#, "]");
    let response = post_json(&api, ctx(), body).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let message = message(&response);
    assert_eq!(message.matches("allowed values: ").count(), 1, "{message}");
    assert!(message.contains("unknown event `` (given "), "{message}");
}

#[tokio::test]
async fn many_problems_are_cut_to_twenty_and_a_count() {
    let api = handler();
    let body = one_mib_body("events", "[", r#""E{i}""#, "]");
    let response = post_json(&api, ctx(), body).await;
    let message = message(&response);
    assert_eq!(message.matches("unknown event `").count(), 20, "{message}");
    assert!(message.contains("; and "), "{message}");
    assert!(message.ends_with(" more"), "{message}");
}

#[tokio::test]
async fn bodies_of_other_media_types_answer_415() {
    let api = handler();
    let ctx = ctx();
    let id = created_id(&api, ctx).await;
    let body = json!({"name": "n", "url": "https://example.com/hook"}).to_string();
    for (method, path) in [
        (Method::POST, BASE.to_owned()),
        (Method::PATCH, format!("{BASE}/{id}")),
    ] {
        for content_type in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonp",
            "application/json-patch+json",
            "",
        ] {
            let response = send(
                &api,
                ctx,
                method.clone(),
                &path,
                Some(content_type),
                body.clone(),
            )
            .await;
            assert_eq!(
                response.status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{method} {content_type:?}"
            );
            assert_eq!(
                response.headers()[CONTENT_TYPE],
                "application/json",
                "{content_type:?}"
            );
            assert!(
                message(&response).starts_with("Unsupported media type: "),
                "{content_type:?}: {}",
                message(&response)
            );
        }
    }
}

#[tokio::test]
async fn json_with_parameters_in_any_case_is_accepted() {
    let api = handler();
    for content_type in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        " application/json ",
    ] {
        let body = json!({"name": "n", "url": "https://example.com/hook"}).to_string();
        let response = send(&api, ctx(), Method::POST, BASE, Some(content_type), body).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{content_type:?}");
    }
}

#[tokio::test]
async fn a_body_without_a_content_type_is_refused_only_when_one_is_required() {
    let body = json!({"name": "n", "url": "https://example.com/hook"}).to_string();
    let lenient = handler();
    let response = send(&lenient, ctx(), Method::POST, BASE, None, body.clone()).await;
    assert_eq!(response.status(), StatusCode::CREATED);

    let strict = ApiHandler::builder(WebhookService::default())
        .require_content_type(true)
        .build()
        .expect("handler");
    let response = send(&strict, ctx(), Method::POST, BASE, None, body).await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        message(&response),
        "Unsupported media type: none; expected application/json"
    );
}

#[tokio::test]
async fn every_response_says_no_store() {
    let api = handler();
    let ctx = ctx();
    let id = created_id(&api, ctx).await;
    let json = Some("application/json");
    let responses = [
        send(
            &api,
            ctx,
            Method::POST,
            BASE,
            json,
            json!({"name": "n", "url": "https://a.example"}).to_string(),
        )
        .await,
        send(&api, ctx, Method::GET, BASE, None, "").await,
        send(&api, ctx, Method::GET, &format!("{BASE}/{id}"), None, "").await,
        send(
            &api,
            ctx,
            Method::PATCH,
            &format!("{BASE}/{id}"),
            json,
            r#"{"name": "m"}"#,
        )
        .await,
        send(&api, ctx, Method::POST, BASE, json, "{").await,
        send(&api, ctx, Method::GET, "/nowhere", None, "").await,
    ];
    for response in responses {
        assert_eq!(
            response.headers().get(CACHE_CONTROL).map(|v| v.as_bytes()),
            Some(&b"no-store"[..]),
            "{}",
            response.status()
        );
    }
}

#[tokio::test]
async fn authorization_with_fields_it_does_not_have_answers_400() {
    let api = handler();
    for authorization in [
        json!({"_type": "NoAuth", "value": "x"}),
        json!({"_type": "TokenAuth", "value": "t", "password": "p"}),
        json!({"_type": "BasicAuth", "username": "u", "password": "p", "value": "v"}),
    ] {
        let body = json!({"name": "n", "url": "https://a.example", "authorization": authorization});
        let response = post_json(&api, ctx(), body.to_string()).await;
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{authorization}"
        );
        let message = message(&response);
        assert!(
            message.starts_with("Invalid value for: body: unknown field `"),
            "{authorization}: {message}"
        );
    }
}

#[tokio::test]
async fn a_url_with_a_literal_blocked_host_answers_400_at_once() {
    let api = handler();
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00::1]/hook",
    ] {
        let body = json!({"name": "n", "url": url}).to_string();
        let response = post_json(&api, ctx(), body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url}");
        let message = message(&response);
        assert!(
            message
                .starts_with("Validation failure during Webhook Subscription creation: url: host ")
                && message.contains("which deliveries may not reach"),
            "{url}: {message}"
        );
    }
}
