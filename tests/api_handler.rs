//! Black-box tests of the REST handler over the memory store.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use http::{HeaderMap, Method, Request, StatusCode};
use proptest::prelude::*;
use serde_json::{json, Value};
use webhook_subscriptions::api::ApiHandler;
use webhook_subscriptions::delivery::CircuitBreaker;
use webhook_subscriptions::model::{
    DeliveryDetail, DeliveryId, EventId, OrganizationId, SubscriptionChange, SubscriptionId,
    UserId, WebhookSubscription,
};
use webhook_subscriptions::storage::prelude::*;
use webhook_subscriptions::storage::{
    AttemptLog, ClaimLimits, ClaimedDelivery, Delivery, EndpointHealth, LeaseOutcome, NewEvent,
    NextStep, Recorded,
};
use webhook_subscriptions::storage::{
    Error as StoreError, ErrorKind, FailedSelection, MemoryStore, QueueStats, Result as StoreResult,
};
use webhook_subscriptions::{Error, RequestContext, WebhookService};

const BASE: &str = "/v1/webhooks";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture_bytes(name: &str) -> Bytes {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

fn new_ctx() -> RequestContext {
    RequestContext::new(OrganizationId::new_v4(), UserId::new_v4())
}

struct Api {
    store: Arc<MemoryStore>,
    handler: ApiHandler,
}

fn api() -> Api {
    let store = Arc::new(MemoryStore::new());
    let service = WebhookService::builder(store.clone()).build();
    Api {
        store,
        handler: ApiHandler::new(service),
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    fn message(&self) -> String {
        let body = self.json();
        assert_eq!(
            body.as_object().map(|o| o.len()),
            Some(1),
            "error body must be exactly {{\"message\"}}: {body}"
        );
        body["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message in {body}"))
            .to_owned()
    }

    fn content_type(&self) -> Option<&str> {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }

    fn assert_status(&self, status: StatusCode) -> &Self {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }
}

async fn call(
    handler: &ApiHandler,
    ctx: std::result::Result<RequestContext, String>,
    method: Method,
    path: &str,
    body: impl Into<Bytes>,
) -> Reply {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(body.into())
        .expect("test request");
    let response = handler.handle(ctx, request).await;
    let (parts, body) = response.into_parts();
    let reply = Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    };
    if !reply.body.is_empty() {
        assert_eq!(reply.content_type(), Some("application/json"));
    }
    reply
}

impl Api {
    async fn call(
        &self,
        ctx: &RequestContext,
        method: Method,
        path: &str,
        body: impl Into<Bytes>,
    ) -> Reply {
        call(&self.handler, Ok(*ctx), method, path, body).await
    }

    async fn create(&self, ctx: &RequestContext, body: Value) -> Value {
        let reply = self.call(ctx, Method::POST, BASE, body.to_string()).await;
        reply.assert_status(StatusCode::CREATED);
        reply.json()["data"].clone()
    }
}

fn id_of(subscription: &Value) -> String {
    subscription["id"]
        .as_str()
        .expect("subscription id")
        .to_owned()
}

fn minimal(name: &str) -> Value {
    json!({"name": name, "url": "https://example.com/hook", "events": ["ConversationCreated"]})
}

/// `actual` with the fields the service generates (ids, secret, timestamps,
/// users) replaced by the fixture's, after checking they are well-formed.
fn with_generated_fields_of(expected: &Value, actual: &Value, ctx: &RequestContext) -> Value {
    let mut actual = actual.clone();
    let id = actual["id"].as_str().expect("id");
    assert_eq!(
        uuid::Uuid::parse_str(id).map(|u| u.get_version_num()),
        Ok(4)
    );
    let secret = actual["secretKey"].as_str().expect("secretKey");
    assert!(
        secret.len() == 64
            && secret
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "secretKey {secret}"
    );
    for field in ["createdAt", "updatedAt"] {
        let at = actual[field].as_str().expect(field);
        assert!(
            DateTime::parse_from_rfc3339(at).is_ok() && at.ends_with('Z') && at.len() == 20,
            "{field} {at}"
        );
    }
    let user = ctx.user_id.to_string();
    assert_eq!(actual["updatedBy"], json!(user));
    for field in [
        "id",
        "secretKey",
        "createdAt",
        "updatedAt",
        "createdBy",
        "updatedBy",
    ] {
        actual[field] = expected[field].clone();
    }
    actual
}

#[tokio::test]
async fn create_with_the_fixture_answers_201_with_the_fixture_shape() {
    let api = api();
    let ctx = new_ctx();
    let reply = api
        .call(
            &ctx,
            Method::POST,
            BASE,
            fixture_bytes("create_request.json"),
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
    let expected = fixture("create_response.json");
    let body = reply.json();
    assert_eq!(body["data"]["createdBy"], json!(ctx.user_id.to_string()));
    let data = with_generated_fields_of(&expected["data"], &body["data"], &ctx);
    assert_eq!(json!({ "data": data }), expected);
}

#[tokio::test]
async fn list_answers_the_organizations_subscriptions_oldest_first() {
    let api = api();
    let ctx = new_ctx();
    let first = api.create(&ctx, fixture("create_request.json")).await;
    let second = api.create(&ctx, minimal("second")).await;
    api.create(&new_ctx(), minimal("someone else's")).await;

    let reply = api.call(&ctx, Method::GET, BASE, "").await;
    reply.assert_status(StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["data"], json!([first, second]));

    let expected = fixture("list_response.json");
    let shaped = with_generated_fields_of(&expected["data"][0], &body["data"][0], &ctx);
    assert_eq!(json!({ "data": [shaped] }), expected);
}

#[tokio::test]
async fn list_of_an_organization_without_subscriptions_is_empty() {
    let api = api();
    let reply = api.call(&new_ctx(), Method::GET, BASE, "").await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.json(), json!({"data": []}));
}

#[tokio::test]
async fn get_answers_the_subscription() {
    let api = api();
    let ctx = new_ctx();
    let created = api.create(&ctx, fixture("create_request.json")).await;
    let reply = api
        .call(
            &ctx,
            Method::GET,
            &format!("{BASE}/{}", id_of(&created)),
            "",
        )
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.json(), json!({ "data": created }));
}

#[tokio::test]
async fn patch_with_the_fixture_answers_200_with_the_fixture_shape() {
    let api = api();
    let creator = new_ctx();
    let created = api.create(&creator, fixture("create_request.json")).await;
    let patcher = RequestContext::new(creator.organization_id, UserId::new_v4());

    let reply = api
        .call(
            &patcher,
            Method::PATCH,
            &format!("{BASE}/{}", id_of(&created)),
            fixture_bytes("patch_request.json"),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    let body = reply.json();
    let data = &body["data"];
    assert_eq!(data["id"], created["id"]);
    assert_eq!(data["secretKey"], created["secretKey"]);
    assert_eq!(data["createdAt"], created["createdAt"]);
    assert_eq!(data["createdBy"], json!(creator.user_id.to_string()));
    let expected = fixture("patch_response.json");
    let shaped = with_generated_fields_of(&expected["data"], data, &patcher);
    assert_eq!(json!({ "data": shaped }), expected);
}

#[tokio::test]
async fn patch_with_an_empty_object_keeps_every_field() {
    let api = api();
    let ctx = new_ctx();
    let created = api.create(&ctx, fixture("create_request.json")).await;
    let reply = api
        .call(
            &ctx,
            Method::PATCH,
            &format!("{BASE}/{}", id_of(&created)),
            "{}",
        )
        .await;
    reply.assert_status(StatusCode::OK);
    let mut patched = reply.json()["data"].clone();
    patched["updatedAt"] = created["updatedAt"].clone();
    assert_eq!(patched, created);
}

#[tokio::test]
async fn delete_answers_204_with_an_empty_body_and_the_subscription_is_gone() {
    let api = api();
    let ctx = new_ctx();
    let created = api.create(&ctx, minimal("doomed")).await;
    let path = format!("{BASE}/{}", id_of(&created));

    let reply = api.call(&ctx, Method::DELETE, &path, "").await;
    reply.assert_status(StatusCode::NO_CONTENT);
    assert!(reply.body.is_empty());
    assert_eq!(reply.content_type(), None);

    let again = api.call(&ctx, Method::GET, &path, "").await;
    again.assert_status(StatusCode::NOT_FOUND);
    assert!(again
        .message()
        .starts_with("An entity in this request could not be found"));
    let twice = api.call(&ctx, Method::DELETE, &path, "").await;
    twice.assert_status(StatusCode::NOT_FOUND);
}

/// Enqueues `payload` for the organization's subscriptions to `event` and
/// records one attempt of each with `detail`.
async fn deliver_once(
    store: &MemoryStore,
    ctx: &RequestContext,
    event: &str,
    payload: &str,
    detail: &DeliveryDetail,
) {
    let at = detail.delivery_timestamp;
    let enqueued = store
        .enqueue_event(&NewEvent {
            organization_id: ctx.organization_id,
            event_id: EventId::new_v4(),
            event_name: event.to_owned(),
            payload: Bytes::from(payload.to_owned()),
            published_at: at,
        })
        .await
        .expect("enqueue");
    assert_eq!(enqueued, 1);
    let claims = store
        .claim_deliveries(at, Duration::seconds(60), 10)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 1);
    store
        .record_attempt(&claims[0], detail, NextStep::Complete)
        .await
        .expect("record");
}

fn fixture_detail() -> DeliveryDetail {
    let detail = &fixture("delivery_status_response.json")["data"][0]["deliveryStatus"];
    DeliveryDetail {
        delivery_timestamp: DateTime::parse_from_rfc3339(
            detail["deliveryTimestamp"].as_str().expect("timestamp"),
        )
        .expect("fixture timestamp")
        .with_timezone(&Utc),
        success: detail["success"].as_bool().expect("success"),
        response_code: detail["responseCode"]
            .as_u64()
            .and_then(|c| u16::try_from(c).ok())
            .expect("responseCode"),
        response_text: detail["responseText"]
            .as_str()
            .expect("responseText")
            .to_owned(),
    }
}

#[tokio::test]
async fn delivery_status_answers_one_entry_per_subscribed_event() {
    let api = api();
    let ctx = new_ctx();
    // The fixture subscribes to ConversationCreated and ConversationClosed.
    let created = api.create(&ctx, fixture("create_request.json")).await;
    let path = format!("{BASE}/{}/delivery-status", id_of(&created));

    let before = api.call(&ctx, Method::GET, &path, "").await;
    before.assert_status(StatusCode::OK);
    assert_eq!(
        before.json(),
        json!({"data": [
            {"event": "ConversationCreated", "deliveryStatus": {"_type": "NoRecentDelivery"}},
            {"event": "ConversationClosed", "deliveryStatus": {"_type": "NoRecentDelivery"}},
        ]})
    );

    deliver_once(
        &api.store,
        &ctx,
        "ConversationCreated",
        "{}",
        &fixture_detail(),
    )
    .await;
    let after = api.call(&ctx, Method::GET, &path, "").await;
    after.assert_status(StatusCode::OK);
    assert_eq!(after.json(), fixture("delivery_status_response.json"));
}

#[tokio::test]
async fn event_logs_answer_the_attempts_with_the_exact_payload() {
    let api = api();
    let ctx = new_ctx();
    let created = api
        .create(
            &ctx,
            json!({"name": "notes", "url": "https://example.com/notes", "events": ["ConversationNoteAdded"]}),
        )
        .await;
    let path = format!(
        "{BASE}/{}/delivery-status/logs/ConversationNoteAdded",
        id_of(&created)
    );

    let empty = api.call(&ctx, Method::GET, &path, "").await;
    empty.assert_status(StatusCode::OK);
    assert_eq!(empty.json(), json!({"data": []}));

    let expected = fixture("event_logs_response.json");
    let payload = expected["data"][0]["payload"].as_str().expect("payload");
    deliver_once(
        &api.store,
        &ctx,
        "ConversationNoteAdded",
        payload,
        &fixture_detail(),
    )
    .await;
    let reply = api.call(&ctx, Method::GET, &path, "").await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.json(), expected);
}

#[tokio::test]
async fn event_logs_of_an_event_not_subscribed_to_are_empty() {
    let api = api();
    let ctx = new_ctx();
    let created = api.create(&ctx, minimal("hooks")).await;
    let reply = api
        .call(
            &ctx,
            Method::GET,
            &format!(
                "{BASE}/{}/delivery-status/logs/TypingStarted",
                id_of(&created)
            ),
            "",
        )
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.json(), json!({"data": []}));
}

/// Every route that takes a subscription id, with the body it needs.
fn id_routes(id: &str) -> Vec<(Method, String, &'static str)> {
    vec![
        (Method::GET, format!("{BASE}/{id}"), ""),
        (Method::PATCH, format!("{BASE}/{id}"), r#"{"name": "x"}"#),
        (Method::DELETE, format!("{BASE}/{id}"), ""),
        (Method::GET, format!("{BASE}/{id}/delivery-status"), ""),
        (
            Method::GET,
            format!("{BASE}/{id}/delivery-status/logs/ConversationCreated"),
            "",
        ),
        (Method::GET, format!("{BASE}/{id}/failed-deliveries"), ""),
        (
            Method::POST,
            format!("{BASE}/{id}/failed-deliveries/redeliver"),
            r#"{"since": "2026-01-01T00:00:00Z"}"#,
        ),
        (
            Method::POST,
            format!(
                "{BASE}/{id}/failed-deliveries/{}/redeliver",
                DeliveryId::new_v4()
            ),
            "",
        ),
        (Method::POST, format!("{BASE}/{id}/test-event"), ""),
        (Method::POST, format!("{BASE}/{id}/rotate-secret"), ""),
    ]
}

#[tokio::test]
async fn a_malformed_subscription_id_answers_400_naming_the_parameter() {
    let api = api();
    let ctx = new_ctx();
    for bad in [
        "not-a-uuid",
        "123",
        "cb452b8167484%30ab-af85-6559b371bc5d",
        "cb452b81674840abaf856559b371bc5d",
        "%FF%FE",
        "cb452b81-6748-40ab-af85-6559b371bc5d%20",
    ] {
        for (method, path, body) in id_routes(bad) {
            let reply = api.call(&ctx, method.clone(), &path, body).await;
            reply.assert_status(StatusCode::BAD_REQUEST);
            let message = reply.message();
            assert!(
                message.starts_with(
                    "Invalid value for: path parameter webhookSubscriptionId: must be a"
                ),
                "{method} {path}: {message}"
            );
        }
    }
}

#[tokio::test]
async fn a_percent_encoded_subscription_id_is_decoded() {
    let api = api();
    let ctx = new_ctx();
    let created = api.create(&ctx, minimal("encoded")).await;
    let encoded = id_of(&created).replace('-', "%2D");
    let reply = api
        .call(&ctx, Method::GET, &format!("{BASE}/{encoded}"), "")
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.json()["data"], created);
}

#[tokio::test]
async fn an_unknown_event_in_the_logs_path_answers_400_listing_the_allowed_values() {
    let api = api();
    let ctx = new_ctx();
    let created = api.create(&ctx, minimal("hooks")).await;
    for event in [
        "NoSuchEvent",
        "conversationcreated",
        "Conversation%20Created",
        "%C3%A9",
    ] {
        let path = format!("{BASE}/{}/delivery-status/logs/{event}", id_of(&created));
        let reply = api.call(&ctx, Method::GET, &path, "").await;
        reply.assert_status(StatusCode::BAD_REQUEST);
        let message = reply.message();
        assert!(
            message.starts_with("Invalid value for: path parameter event: ")
                && message.contains("ConversationCreated, ConversationOpen"),
            "{event}: {message}"
        );
    }
}

#[tokio::test]
async fn a_missing_or_invalid_context_answers_400_on_every_route() {
    let api = api();
    let owner = new_ctx();
    let created = api.create(&owner, minimal("hooks")).await;
    let mut routes = id_routes(&id_of(&created));
    routes.push((Method::GET, BASE.to_owned(), ""));
    routes.push((
        Method::POST,
        BASE.to_owned(),
        r#"{"name":"a","url":"https://a.example"}"#,
    ));

    for (method, path, body) in &routes {
        let reply = call(
            &api.handler,
            Err("missing header X-Organization-Id".to_owned()),
            method.clone(),
            path,
            *body,
        )
        .await;
        reply.assert_status(StatusCode::BAD_REQUEST);
        assert_eq!(
            reply.message(),
            "Invalid value extracted from request context: missing header X-Organization-Id",
            "{method} {path}"
        );

        let nil = RequestContext::new(OrganizationId(uuid::Uuid::nil()), owner.user_id);
        let reply = api.call(&nil, method.clone(), path, *body).await;
        reply.assert_status(StatusCode::BAD_REQUEST);
        assert!(
            reply
                .message()
                .starts_with("Invalid value extracted from request context: "),
            "{method} {path}"
        );
    }
}

async fn body_error(api: &Api, method: Method, path: &str, body: impl Into<Bytes>) -> String {
    let reply = api.call(&new_ctx(), method, path, body).await;
    reply.assert_status(StatusCode::BAD_REQUEST);
    reply.message()
}

/// The create route, and the patch route of an existing subscription.
async fn body_routes(api: &Api) -> Vec<(Method, String)> {
    let ctx = new_ctx();
    let created = api.create(&ctx, minimal("target")).await;
    vec![
        (Method::POST, BASE.to_owned()),
        (Method::PATCH, format!("{BASE}/{}", id_of(&created))),
    ]
}

#[tokio::test]
async fn truncated_json_answers_400_with_the_position() {
    let api = api();
    for (method, path) in body_routes(&api).await {
        let message = body_error(&api, method, &path, r#"{"name": "tru"#).await;
        assert!(
            message.starts_with("Invalid value for: body: ")
                && message.contains("EOF")
                && message.contains("line 1 column"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn wrong_types_answer_400_naming_the_expectation() {
    let api = api();
    for (method, path) in body_routes(&api).await {
        for body in [
            r#"{"name": 5, "url": "https://a.example"}"#,
            r#"{"name": "n", "url": "https://a.example", "events": "ConversationCreated"}"#,
            r#"{"name": "n", "url": "https://a.example", "enabled": "yes"}"#,
        ] {
            let message = body_error(&api, method.clone(), &path, body).await;
            assert!(
                message.starts_with("Invalid value for: body: invalid type: "),
                "{body}: {message}"
            );
        }
    }
}

#[tokio::test]
async fn a_body_that_is_not_an_object_answers_400() {
    let api = api();
    for (method, path) in body_routes(&api).await {
        for body in [
            r#"[]"#,
            r#"["n", "https://a.example", [], {"_type": "NoAuth"}, {}, true]"#,
            r#""text""#,
            "null",
            "42",
        ] {
            let message = body_error(&api, method.clone(), &path, body).await;
            assert_eq!(
                message, "Invalid value for: body: expected a JSON object",
                "{body}"
            );
        }
    }
}

#[tokio::test]
async fn unknown_fields_answer_400_naming_the_field() {
    let api = api();
    for (method, path) in body_routes(&api).await {
        let body = r#"{"name": "n", "url": "https://a.example", "colour": "red"}"#;
        let message = body_error(&api, method, &path, body).await;
        assert!(
            message.starts_with("Invalid value for: body: unknown field `colour`")
                && message.contains("line 1 column"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn an_unknown_authorization_type_answers_400() {
    let api = api();
    let body = r#"{"name": "n", "url": "https://a.example", "authorization": {"_type": "Magic"}}"#;
    let message = body_error(&api, Method::POST, BASE, body).await;
    assert!(
        message.starts_with("Invalid value for: body: unknown variant `Magic`"),
        "{message}"
    );
}

#[tokio::test]
async fn invalid_utf8_answers_400() {
    let api = api();
    for (method, path) in body_routes(&api).await {
        let body = Bytes::from_static(b"{\"name\": \"\xff\xfe\", \"url\": \"https://a.example\"}");
        let message = body_error(&api, method, &path, body).await;
        assert!(
            message.starts_with("Invalid value for: body: body is not valid UTF-8"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn an_empty_body_answers_400() {
    let api = api();
    for (method, path) in body_routes(&api).await {
        for body in ["", "  \n"] {
            let message = body_error(&api, method.clone(), &path, body).await;
            assert_eq!(
                message,
                "Invalid value for: body: body is empty; expected a JSON object"
            );
        }
    }
}

#[tokio::test]
async fn a_body_over_the_limit_answers_413_saying_the_limit() {
    let api = api();
    let ctx = new_ctx();
    for (method, path) in body_routes(&api).await {
        // 5 MB of valid JSON: the size alone is refused.
        let padding = "a".repeat(5 * 1024 * 1024);
        let body = json!({"name": padding, "url": "https://a.example"}).to_string();
        let reply = api.call(&ctx, method, &path, body).await;
        reply.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            reply.message(),
            "Invalid value for: body: body is larger than the limit of 1048576 bytes"
        );
    }
}

#[tokio::test]
async fn the_body_limit_is_configurable() {
    let service = WebhookService::builder(Arc::new(MemoryStore::new())).build();
    let handler = ApiHandler::builder(service)
        .max_body_bytes(16)
        .build()
        .expect("handler");
    let ctx = new_ctx();
    let body = r#"{"name": "n", "url": "https://a.example"}"#;
    let reply = call(&handler, Ok(ctx), Method::POST, BASE, body).await;
    reply.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reply.message().ends_with("limit of 16 bytes"));
}

#[tokio::test]
async fn null_in_a_patch_answers_400_naming_the_field() {
    let api = api();
    let ctx = new_ctx();
    let created = api.create(&ctx, minimal("hooks")).await;
    let path = format!("{BASE}/{}", id_of(&created));
    for field in [
        "name",
        "url",
        "events",
        "authorization",
        "customHeaders",
        "enabled",
    ] {
        let reply = api
            .call(
                &ctx,
                Method::PATCH,
                &path,
                json!({ field: null }).to_string(),
            )
            .await;
        reply.assert_status(StatusCode::BAD_REQUEST);
        assert_eq!(
            reply.message(),
            format!("Validation failure during Webhook Subscription patching: {field}: must not be null")
        );
    }
    let unchanged = api.call(&ctx, Method::GET, &path, "").await;
    assert_eq!(unchanged.json()["data"], created);
}

#[tokio::test]
async fn a_validation_failure_answers_400_with_the_fixture_message() {
    let api = api();
    let reply = api
        .call(
            &new_ctx(),
            Method::POST,
            BASE,
            json!({"name": "n", "url": "ftp://example.com/hook"}).to_string(),
        )
        .await;
    reply.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(reply.json(), fixture("error_response.json"));
}

#[tokio::test]
async fn another_organizations_subscription_answers_404_on_every_route() {
    let api = api();
    let owner = new_ctx();
    let created = api.create(&owner, minimal("private")).await;
    let stranger = RequestContext::new(OrganizationId::new_v4(), owner.user_id);
    for (method, path, body) in id_routes(&id_of(&created)) {
        let reply = api.call(&stranger, method.clone(), &path, body).await;
        reply.assert_status(StatusCode::NOT_FOUND);
        assert!(
            reply
                .message()
                .starts_with("An entity in this request could not be found"),
            "{method} {path}"
        );
    }
    // Untouched by the stranger's patch and delete.
    let mine = api
        .call(
            &owner,
            Method::GET,
            &format!("{BASE}/{}", id_of(&created)),
            "",
        )
        .await;
    mine.assert_status(StatusCode::OK);
    assert_eq!(mine.json()["data"], created);
}

#[tokio::test]
async fn a_missing_subscription_answers_404_on_every_route() {
    let api = api();
    let ctx = new_ctx();
    for (method, path, body) in id_routes(&SubscriptionId::new_v4().to_string()) {
        let reply = api.call(&ctx, method.clone(), &path, body).await;
        reply.assert_status(StatusCode::NOT_FOUND);
        assert!(reply
            .message()
            .starts_with("An entity in this request could not be found"));
    }
}

#[tokio::test]
async fn an_unknown_route_answers_404_with_a_message() {
    let api = api();
    let ctx = new_ctx();
    let id = SubscriptionId::new_v4();
    for path in [
        "/".to_owned(),
        "/v1".to_owned(),
        "/v1/webhook".to_owned(),
        "/v2/webhooks".to_owned(),
        "/v1/webhooks//".to_owned(),
        format!("{BASE}/{id}/other"),
        format!("{BASE}/{id}/delivery-status/logs"),
        format!("{BASE}/{id}/delivery-status/logs/ConversationCreated/more"),
    ] {
        let reply = api.call(&ctx, Method::GET, &path, "").await;
        reply.assert_status(StatusCode::NOT_FOUND);
        assert!(reply.message().starts_with("Not Found: "), "{path}");
    }
}

#[tokio::test]
async fn a_wrong_method_answers_405_with_allow() {
    let api = api();
    let ctx = new_ctx();
    let id = SubscriptionId::new_v4();
    for (method, path, allow) in [
        (Method::PUT, BASE.to_owned(), "POST, GET"),
        (Method::DELETE, BASE.to_owned(), "POST, GET"),
        (Method::POST, format!("{BASE}/{id}"), "GET, PATCH, DELETE"),
        (
            Method::PUT,
            format!("{BASE}/not-even-a-uuid"),
            "GET, PATCH, DELETE",
        ),
        (Method::POST, format!("{BASE}/{id}/delivery-status"), "GET"),
        (
            Method::DELETE,
            format!("{BASE}/{id}/delivery-status/logs/ConversationCreated"),
            "GET",
        ),
        (Method::OPTIONS, BASE.to_owned(), "POST, GET"),
    ] {
        let reply = api.call(&ctx, method.clone(), &path, "").await;
        reply.assert_status(StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            reply
                .headers
                .get(http::header::ALLOW)
                .and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
        assert!(reply.message().starts_with("Method Not Allowed: "));
    }
}

#[tokio::test]
async fn a_trailing_slash_is_ignored() {
    let api = api();
    let ctx = new_ctx();
    let created = api.create(&ctx, minimal("slash")).await;
    let list = api.call(&ctx, Method::GET, &format!("{BASE}/"), "").await;
    list.assert_status(StatusCode::OK);
    assert_eq!(list.json()["data"], json!([created]));
    let one = api
        .call(
            &ctx,
            Method::GET,
            &format!("{BASE}/{}/", id_of(&created)),
            "",
        )
        .await;
    one.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn the_query_string_is_ignored() {
    let api = api();
    let ctx = new_ctx();
    let reply = api
        .call(&ctx, Method::GET, &format!("{BASE}?limit=x&%FF"), "")
        .await;
    reply.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn a_custom_base_path_moves_every_route() {
    let service = WebhookService::builder(Arc::new(MemoryStore::new())).build();
    let handler = ApiHandler::builder(service)
        .base_path("/api/hooks/")
        .build()
        .expect("handler");
    assert_eq!(handler.base_path(), "/api/hooks");
    assert!(handler
        .routes()
        .iter()
        .all(|r| r.path.starts_with("/api/hooks")));
    let ctx = new_ctx();
    let ok = call(&handler, Ok(ctx), Method::GET, "/api/hooks", "").await;
    ok.assert_status(StatusCode::OK);
    let old = call(&handler, Ok(ctx), Method::GET, BASE, "").await;
    old.assert_status(StatusCode::NOT_FOUND);
}

#[test]
fn a_malformed_base_path_is_refused_at_build() {
    for bad in ["v1/webhooks", "/v1//webhooks", "/v1/{id}", "/with space"] {
        let service = WebhookService::builder(Arc::new(MemoryStore::new())).build();
        let built = ApiHandler::builder(service).base_path(bad).build();
        assert!(
            matches!(built, Err(Error::InvalidConfiguration(_))),
            "{bad} was accepted"
        );
    }
}

/// A store whose every call fails, as a broken database would.
#[derive(Debug)]
struct BrokenStore;

fn broken<T>() -> StoreResult<T> {
    Err(StoreError::new(
        "broken",
        ErrorKind::Unavailable,
        "connection refused by db.internal:5432",
    ))
}

#[async_trait]
impl SubscriptionStore for BrokenStore {
    async fn insert_subscription(
        &self,
        _: OrganizationId,
        _: &WebhookSubscription,
    ) -> StoreResult<()> {
        broken()
    }

    async fn get_subscription(
        &self,
        _: OrganizationId,
        _: SubscriptionId,
    ) -> StoreResult<Option<WebhookSubscription>> {
        broken()
    }

    async fn list_subscriptions(&self, _: OrganizationId) -> StoreResult<Vec<WebhookSubscription>> {
        broken()
    }

    async fn update_subscription(
        &self,
        _: OrganizationId,
        _: SubscriptionId,
        _: &SubscriptionChange,
    ) -> StoreResult<Option<WebhookSubscription>> {
        broken()
    }

    async fn delete_subscription(&self, _: OrganizationId, _: SubscriptionId) -> StoreResult<bool> {
        broken()
    }
}

#[async_trait]
impl DeliveryQueue for BrokenStore {
    async fn enqueue_event(&self, _: &NewEvent) -> StoreResult<usize> {
        broken()
    }

    async fn enqueue_deliveries(
        &self,
        _: &NewEvent,
        _: &[SubscriptionId],
    ) -> StoreResult<Vec<DeliveryId>> {
        broken()
    }

    async fn claim_deliveries_fairly(
        &self,
        _: DateTime<Utc>,
        _: Duration,
        _: ClaimLimits,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        broken()
    }

    async fn record_attempt_with_breaker(
        &self,
        _: &ClaimedDelivery,
        _: &DeliveryDetail,
        _: NextStep,
        _: Option<&CircuitBreaker>,
    ) -> StoreResult<Recorded> {
        broken()
    }

    async fn release(&self, _: &ClaimedDelivery) -> StoreResult<LeaseOutcome> {
        broken()
    }

    async fn failed_deliveries(
        &self,
        _: OrganizationId,
        _: SubscriptionId,
        _: usize,
    ) -> StoreResult<Vec<Delivery>> {
        broken()
    }

    async fn redeliver(
        &self,
        _: OrganizationId,
        _: DeliveryId,
        _: DateTime<Utc>,
    ) -> StoreResult<bool> {
        broken()
    }

    async fn redeliver_failed(
        &self,
        _: OrganizationId,
        _: SubscriptionId,
        _: FailedSelection,
        _: DateTime<Utc>,
        _: usize,
    ) -> StoreResult<usize> {
        broken()
    }

    async fn enqueue_for_subscription(
        &self,
        _: &NewEvent,
        _: SubscriptionId,
    ) -> StoreResult<Option<DeliveryId>> {
        broken()
    }

    async fn queue_stats(&self, _: DateTime<Utc>) -> StoreResult<QueueStats> {
        broken()
    }

    async fn prune(&self, _: DateTime<Utc>, _: DateTime<Utc>) -> StoreResult<u64> {
        broken()
    }
}

#[async_trait]
impl AttemptHistory for BrokenStore {
    async fn endpoint_health(
        &self,
        _: OrganizationId,
        _: SubscriptionId,
    ) -> StoreResult<Option<EndpointHealth>> {
        broken()
    }

    async fn list_attempts(
        &self,
        _: OrganizationId,
        _: SubscriptionId,
        _: &str,
    ) -> StoreResult<Vec<AttemptLog>> {
        broken()
    }

    async fn latest_statuses(
        &self,
        _: OrganizationId,
        _: SubscriptionId,
    ) -> StoreResult<Vec<(String, DeliveryDetail)>> {
        broken()
    }
}

#[tokio::test]
async fn a_storage_failure_answers_500_without_details_and_reaches_the_hook() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let service = WebhookService::builder(Arc::new(BrokenStore)).build();
    let handler = ApiHandler::builder(service)
        .on_internal_error({
            let seen = seen.clone();
            move |e| seen.lock().expect("hook lock").push(format!("{e:?}"))
        })
        .build()
        .expect("handler");
    let ctx = new_ctx();
    let mut routes = id_routes(&SubscriptionId::new_v4().to_string());
    routes.push((Method::GET, BASE.to_owned(), ""));
    routes.push((
        Method::POST,
        BASE.to_owned(),
        r#"{"name":"a","url":"https://a.example"}"#,
    ));
    for (method, path, body) in &routes {
        let reply = call(&handler, Ok(ctx), method.clone(), path, *body).await;
        reply.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(reply.json(), json!({"message": "Internal Server Error"}));
    }
    let seen = seen.lock().expect("hook lock");
    assert_eq!(seen.len(), routes.len());
    assert!(seen.iter().all(|e| e.contains("db.internal:5432")));
    assert!(
        seen.iter()
            .all(|e| e.contains("\"broken\"") && e.contains("Unavailable")),
        "the hook gets the store's name and the kind of failure: {seen:?}"
    );
}

#[tokio::test]
async fn routes_lists_every_operation() {
    let api = api();
    let routes: Vec<(String, String)> = api
        .handler
        .routes()
        .into_iter()
        .map(|r| (r.method.to_string(), r.path))
        .collect();
    let id = "{webhookSubscriptionId}";
    let expected: Vec<(String, String)> = [
        ("POST", BASE.to_owned()),
        ("GET", BASE.to_owned()),
        ("GET", format!("{BASE}/{id}")),
        ("PATCH", format!("{BASE}/{id}")),
        ("DELETE", format!("{BASE}/{id}")),
        ("GET", format!("{BASE}/{id}/delivery-status")),
        ("GET", format!("{BASE}/{id}/delivery-status/logs/{{event}}")),
        ("GET", format!("{BASE}/{id}/failed-deliveries")),
        ("POST", format!("{BASE}/{id}/failed-deliveries/redeliver")),
        (
            "POST",
            format!("{BASE}/{id}/failed-deliveries/{{deliveryId}}/redeliver"),
        ),
        ("POST", format!("{BASE}/{id}/test-event")),
        ("POST", format!("{BASE}/{id}/rotate-secret")),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p))
    .collect();
    assert_eq!(routes, expected);
}

fn arbitrary_path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("v1".to_owned()),
        Just("webhooks".to_owned()),
        Just("delivery-status".to_owned()),
        Just("logs".to_owned()),
        Just("ConversationCreated".to_owned()),
        Just("cb452b81-6748-40ab-af85-6559b371bc5d".to_owned()),
        Just(String::new()),
        "[a-zA-Z0-9%._~-]{0,12}",
    ];
    prop::collection::vec(segment, 0..7).prop_map(|segments| format!("/{}", segments.join("/")))
}

fn arbitrary_method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::PATCH),
        Just(Method::DELETE),
        Just(Method::PUT),
        Just(Method::HEAD),
    ]
}

fn arbitrary_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        Just(br#"{"name":"n","url":"https://a.example","events":["ConversationCreated"]}"#.to_vec()),
        "\\{\"(name|url|events|enabled|authorization|customHeaders)\": (null|1|\"x\"|\\[\\]|\\{\\}|true)\\}"
            .prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// No input, however malformed, yields a 5xx or a non-JSON body.
    #[test]
    fn no_request_yields_a_server_error(
        method in arbitrary_method(),
        path in arbitrary_path(),
        body in arbitrary_body(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let api = api();
        let reply = runtime.block_on(call(&api.handler, Ok(new_ctx()), method, &path, body));
        prop_assert!(!reply.status.is_server_error(), "{} for {path}", reply.status);
        if reply.status != StatusCode::NO_CONTENT {
            prop_assert!(reply.json().is_object());
        }
    }
}

#[tokio::test]
async fn delivery_status_shows_an_open_circuit_and_omits_a_closed_one() {
    let api = api();
    let ctx = new_ctx();
    let created = api.create(&ctx, fixture("create_request.json")).await;
    let path = format!("{BASE}/{}/delivery-status", id_of(&created));
    // Whole milliseconds, as the wire shows them.
    let now = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    api.store
        .enqueue_event(&NewEvent {
            organization_id: ctx.organization_id,
            event_id: EventId::new_v4(),
            event_name: "ConversationCreated".to_owned(),
            payload: Bytes::from_static(b"{}"),
            published_at: now,
        })
        .await
        .unwrap();
    let claims = api
        .store
        .claim_deliveries(now, Duration::seconds(60), 10)
        .await
        .unwrap();
    let failure = DeliveryDetail {
        delivery_timestamp: now,
        success: false,
        response_code: 503,
        response_text: "down".to_owned(),
    };
    let breaker = CircuitBreaker::new(
        1,
        std::time::Duration::from_secs(3600),
        std::time::Duration::from_secs(3600),
    )
    .unwrap();
    let recorded = api
        .store
        .record_attempt_with_breaker(&claims[0], &failure, NextStep::Fail, Some(&breaker))
        .await
        .unwrap();
    assert!(
        recorded.change.is_some(),
        "the circuit opened: {recorded:?}"
    );

    let reply = api.call(&ctx, Method::GET, &path, "").await;
    reply.assert_status(StatusCode::OK);
    let body = reply.json();
    let in_an_hour = now + Duration::hours(1);
    assert_eq!(
        body["endpoint"],
        json!({
            "state": "open",
            "failureStreak": 1,
            "failingSince": now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "pausedUntil": in_an_hour.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        })
    );
    assert_eq!(body["data"].as_array().map(Vec::len), Some(2), "{body}");

    // A new URL closes the circuit: the member is gone.
    let patched = api
        .call(
            &ctx,
            Method::PATCH,
            &format!("{BASE}/{}", id_of(&created)),
            r#"{"url": "https://fixed.example.com/hook"}"#,
        )
        .await;
    patched.assert_status(StatusCode::OK);
    let body = api.call(&ctx, Method::GET, &path, "").await.json();
    assert!(body.get("endpoint").is_none(), "{body}");
}
