//! The replay, test-event and rotate-secret routes of the REST handler,
//! over the memory store with a worker on a scripted transport.

mod delivery_support;

use std::sync::Arc;

use bytes::Bytes;
use chrono::Duration;
use delivery_support::{start, subscription, ScriptedTransport, EVENT};
use http::{Method, Request, StatusCode};
use serde_json::{json, Value};
use webhook_subscriptions::api::ApiHandler;
use webhook_subscriptions::delivery::{CircuitBreaker, RetryPolicy, RunReport, Worker};
use webhook_subscriptions::model::{
    time, Event, EventId, Organization, OrganizationId, SecretKey, UserId, WebhookSubscription,
};
use webhook_subscriptions::signature::{SignatureScheme, DEFAULT_TOLERANCE};
use webhook_subscriptions::storage::prelude::*;
use webhook_subscriptions::storage::MemoryStore;
use webhook_subscriptions::{ManualClock, RequestContext, WebhookService};

const BASE: &str = "/v1/webhooks";

struct Api {
    store: Arc<MemoryStore>,
    clock: ManualClock,
    service: WebhookService,
    handler: ApiHandler,
    transport: Arc<ScriptedTransport>,
    worker: Worker,
    organization: Organization,
    ctx: RequestContext,
}

/// One organization, and a worker that gives up after a second attempt 1 s
/// after the first.
fn api() -> Api {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(start());
    let service = WebhookService::builder(store.clone())
        .clock(Arc::new(clock.clone()))
        .build();
    let transport = Arc::new(ScriptedTransport::default());
    let worker = Worker::builder(store.clone(), transport.clone())
        .clock(Arc::new(clock.clone()))
        .retry_policy(RetryPolicy::new(vec![std::time::Duration::from_secs(1)], 0.0).unwrap())
        // Replays are about failed deliveries: no circuit pauses the endpoint.
        .circuit_breaker(CircuitBreaker::never())
        .build()
        .unwrap();
    let organization = Organization::new(OrganizationId::new_v4(), "Acme");
    Api {
        handler: ApiHandler::new(service.clone()),
        ctx: RequestContext::new(organization.id, UserId::new_v4()),
        store,
        clock,
        service,
        transport,
        worker,
        organization,
    }
}

struct Reply {
    status: StatusCode,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    fn expect(self, status: StatusCode) -> Value {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()
    }

    fn message(self, status: StatusCode) -> String {
        let body = self.expect(status);
        body["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message in {body}"))
            .to_owned()
    }
}

impl Api {
    async fn call_as(&self, ctx: &RequestContext, method: Method, path: &str, body: &str) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Bytes::copy_from_slice(body.as_bytes()))
            .unwrap();
        let response = self.handler.handle(Ok(*ctx), request).await;
        let (parts, body) = response.into_parts();
        Reply {
            status: parts.status,
            body,
        }
    }

    async fn call(&self, method: Method, path: &str, body: &str) -> Reply {
        self.call_as(&self.ctx, method, path, body).await
    }

    /// Stores an enabled subscription to `EVENT` in `organization`.
    async fn subscribe_in(&self, organization: OrganizationId) -> WebhookSubscription {
        let subscription = subscription("https://receiver.example/hook", &[EVENT], true);
        self.store
            .insert_subscription(organization, &subscription)
            .await
            .unwrap();
        subscription
    }

    async fn subscribe(&self) -> WebhookSubscription {
        self.subscribe_in(self.organization.id).await
    }

    /// Publishes `EVENT`; every attempt fails (nothing is scripted), so the
    /// worker fails the delivery at its retry 1 s later, where the clock
    /// stays (when the last attempt was due).
    async fn publish_and_fail(&self) -> EventId {
        let event = Event::new(EVENT, json!({"n": 1}));
        let receipt = self
            .service
            .publish(&self.organization, event)
            .await
            .unwrap();
        let report = self.worker.run_once().await.unwrap();
        assert_eq!(report.retrying, receipt.enqueued, "{report:?}");
        self.clock.advance(Duration::seconds(1));
        let report = self.worker.run_once().await.unwrap();
        assert_eq!(report.failed, receipt.enqueued, "{report:?}");
        receipt.event_id
    }

    async fn failed(&self, subscription: &WebhookSubscription) -> Vec<Value> {
        let path = format!("{BASE}/{}/failed-deliveries", subscription.id);
        let body = self
            .call(Method::GET, &path, "")
            .await
            .expect(StatusCode::OK);
        body["data"].as_array().cloned().expect("a list")
    }

    /// Runs the worker once with every attempt answered 200.
    async fn deliver(&self) -> RunReport {
        for _ in 0..10 {
            self.transport.status(200);
        }
        self.worker.run_once().await.unwrap()
    }
}

#[tokio::test]
async fn failed_deliveries_are_listed_with_their_ids_and_redelivered_one_by_one() {
    let api = api();
    let sub = api.subscribe().await;
    let first = api.publish_and_fail().await;
    let first_due = api.clock_now();
    api.clock.advance(Duration::seconds(10));
    let second = api.publish_and_fail().await;

    let listed = api.failed(&sub).await;
    let expected_due = [api.clock_now(), first_due];
    assert_eq!(listed.len(), 2);
    for ((entry, event_id), due) in listed.iter().zip([second, first]).zip(expected_due) {
        assert_eq!(entry["event"], json!(EVENT));
        assert_eq!(entry["eventId"], json!(event_id));
        assert_eq!(entry["attempts"], json!(2));
        assert_eq!(entry["lastAttemptDueAt"], json!(time::format_millis(&due)));
        assert_eq!(entry.as_object().map(|o| o.len()), Some(5), "{entry}");
    }

    let path = format!(
        "{BASE}/{}/failed-deliveries/{}/redeliver",
        sub.id,
        listed[1]["id"].as_str().unwrap()
    );
    let body = api
        .call(Method::POST, &path, "")
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(body, json!({"data": {"redelivered": 1}}));
    assert_eq!(api.failed(&sub).await, listed[..1]);

    let report = api.deliver().await;
    assert_eq!(report.delivered, 1, "{report:?}");
    let sent = api.transport.sent();
    let last: Value = serde_json::from_slice(&sent.last().unwrap().body).unwrap();
    assert_eq!(
        last["event_id"],
        json!(first),
        "the redelivered event is sent"
    );

    let again = api.call(Method::POST, &path, "").await;
    let message = again.message(StatusCode::NOT_FOUND);
    assert!(
        message.starts_with("An entity in this request could not be found: failed delivery"),
        "{message}"
    );
}

#[tokio::test]
async fn bulk_redelivery_requeues_the_failed_deliveries_since_a_time() {
    let api = api();
    let sub = api.subscribe().await;
    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(api.publish_and_fail().await);
        api.clock.advance(Duration::minutes(10));
    }
    let since = time::format_seconds(&(start() + Duration::minutes(5)));
    let path = format!("{BASE}/{}/failed-deliveries/redeliver", sub.id);
    let body = api
        .call(Method::POST, &path, &format!(r#"{{"since": "{since}"}}"#))
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(body, json!({"data": {"redelivered": 2}}));
    let left = api.failed(&sub).await;
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0]["eventId"],
        json!(events[0]),
        "the older one stays failed"
    );
    assert_eq!(api.deliver().await.delivered, 2);
}

#[tokio::test]
async fn a_bulk_redelivery_body_must_name_a_valid_time() {
    let api = api();
    let sub = api.subscribe().await;
    let path = format!("{BASE}/{}/failed-deliveries/redeliver", sub.id);
    for (body, says) in [
        (
            r#"{"since": "yesterday"}"#,
            "expected an RFC 3339 timestamp such as 2026-01-01T00:00:00Z",
        ),
        ("{}", "missing field `since`"),
        (
            r#"{"since": "2026-01-01T00:00:00Z", "until": "x"}"#,
            "unknown field `until`",
        ),
        ("", "body is empty"),
    ] {
        let message = api
            .call(Method::POST, &path, body)
            .await
            .message(StatusCode::BAD_REQUEST);
        assert!(
            message.starts_with("Invalid value for: body: ") && message.contains(says),
            "{body}: {message}"
        );
    }
}

#[tokio::test]
async fn another_organizations_failed_deliveries_are_indistinguishable_from_missing_ones() {
    let api = api();
    let mine = api.subscribe().await;
    api.publish_and_fail().await;
    let delivery = api.failed(&mine).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let stranger = RequestContext::new(OrganizationId::new_v4(), UserId::new_v4());
    let theirs = api.subscribe_in(stranger.organization_id).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let answer = |subscription: String, delivery: String| {
        let path = format!("{BASE}/{subscription}/failed-deliveries/{delivery}/redeliver");
        let api = &api;
        async move {
            let reply = api.call_as(&stranger, Method::POST, &path, "").await;
            let message = reply.message(StatusCode::NOT_FOUND);
            message.replace(&delivery, "DELIVERY")
        }
    };
    // Through the stranger's own subscription, and through the owner's.
    for subscription in [theirs.id.to_string(), mine.id.to_string()] {
        assert_eq!(
            answer(subscription.clone(), delivery.clone()).await,
            answer(subscription, unknown.clone()).await,
            "another organization's delivery must answer like a missing one"
        );
    }
    for (path, body) in [
        (format!("{BASE}/{}/failed-deliveries", mine.id), ""),
        (
            format!("{BASE}/{}/failed-deliveries/redeliver", mine.id),
            r#"{"since": "2000-01-01T00:00:00Z"}"#,
        ),
    ] {
        let method = if body.is_empty() {
            Method::GET
        } else {
            Method::POST
        };
        let reply = api.call_as(&stranger, method, &path, body).await;
        reply.message(StatusCode::NOT_FOUND);
    }
    let still = api.failed(&mine).await;
    assert_eq!(still.len(), 1, "the stranger requeued nothing");
    assert_eq!(still[0]["id"], json!(delivery));
}

#[tokio::test]
async fn a_malformed_delivery_id_answers_400_naming_the_parameter() {
    let api = api();
    let sub = api.subscribe().await;
    let path = format!("{BASE}/{}/failed-deliveries/not-a-uuid/redeliver", sub.id);
    let message = api
        .call(Method::POST, &path, "")
        .await
        .message(StatusCode::BAD_REQUEST);
    assert!(
        message.starts_with("Invalid value for: path parameter deliveryId: must be a UUID"),
        "{message}"
    );
}

#[tokio::test]
async fn a_test_event_reaches_only_its_subscription_and_says_it_is_a_test() {
    let api = api();
    let target = api.subscribe().await;
    let bystander = api.subscribe().await;
    let path = format!("{BASE}/{}/test-event", target.id);
    let body = api
        .call(Method::POST, &path, "")
        .await
        .expect(StatusCode::ACCEPTED);
    let receipt = &body["data"];
    assert!(receipt["deliveryId"].is_string(), "{body}");

    assert_eq!(api.deliver().await.delivered, 1);
    let sent = api.transport.sent();
    assert_eq!(sent.len(), 1, "only the target receives the test event");
    let request = &sent[0];
    assert_eq!(
        request.headers["x-webhook-subscription-id"]
            .to_str()
            .unwrap(),
        target.id.to_string()
    );
    let envelope: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(envelope["event_id"], receipt["eventId"]);
    assert_eq!(envelope["event_fqn"], json!("WEBHOOK_TEST"));
    assert_eq!(
        envelope["data"],
        json!({"test": true, "webhookSubscriptionId": target.id})
    );
    SignatureScheme::default()
        .verify(
            std::slice::from_ref(&target.secret_key),
            &request.headers,
            &request.body,
            api.clock_now(),
            DEFAULT_TOLERANCE,
        )
        .expect("the test event is signed like any delivery");

    let logs = api
        .call(
            Method::GET,
            &format!("{BASE}/{}/delivery-status/logs/WebhookTest", target.id),
            "",
        )
        .await
        .expect(StatusCode::OK);
    let logs = logs["data"].as_array().cloned().unwrap();
    assert_eq!(
        logs.len(),
        1,
        "the test attempt is logged under WebhookTest"
    );
    assert_eq!(logs[0]["deliveryDetail"]["success"], json!(true));
    let bystander_logs = api
        .call(
            Method::GET,
            &format!("{BASE}/{}/delivery-status/logs/WebhookTest", bystander.id),
            "",
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(bystander_logs, json!({"data": []}));
}

#[tokio::test]
async fn a_disabled_subscription_receives_no_test_event() {
    let api = api();
    let mut sub = subscription("https://receiver.example/hook", &[EVENT], false);
    sub.enabled = false;
    api.store
        .insert_subscription(api.organization.id, &sub)
        .await
        .unwrap();
    let path = format!("{BASE}/{}/test-event", sub.id);
    api.call(Method::POST, &path, "")
        .await
        .expect(StatusCode::ACCEPTED);
    let report = api.deliver().await;
    assert_eq!(report.skipped, 1, "{report:?}");
    assert!(api.transport.sent().is_empty());
}

#[tokio::test]
async fn rotate_secret_answers_the_new_secret_and_never_shows_the_old_one() {
    let api = api();
    let sub = api.subscribe().await;
    let old_hex = sub.secret_key.to_hex();
    let path = format!("{BASE}/{}/rotate-secret", sub.id);

    let body = api
        .call(Method::POST, &path, "")
        .await
        .expect(StatusCode::OK);
    let data = body["data"].as_object().cloned().unwrap();
    let new_hex = data["secretKey"].as_str().unwrap().to_owned();
    assert!(SecretKey::from_hex(&new_hex).is_ok() && new_hex != old_hex);
    assert_eq!(
        data["previousSecretExpiresAt"],
        json!(time::format_seconds(&(start() + Duration::hours(24)))),
        "the default grace period is 24 hours"
    );
    assert_eq!(data.len(), 2, "{body}");

    let shown = api
        .call(Method::GET, &format!("{BASE}/{}", sub.id), "")
        .await
        .expect(StatusCode::OK);
    assert_eq!(shown["data"]["secretKey"], json!(new_hex));
    let listed = api.call(Method::GET, BASE, "").await.expect(StatusCode::OK);
    let stored = api
        .store
        .get_subscription(api.organization.id, sub.id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.previous_secret.is_some(),
        "the old secret is kept for signing"
    );
    for (what, text) in [
        ("get", shown.to_string()),
        ("list", listed.to_string()),
        ("rotation", body.to_string()),
        ("debug", format!("{stored:?}")),
    ] {
        assert!(
            !text.contains(&old_hex),
            "{what} shows the old secret: {text}"
        );
    }
    assert!(
        !format!("{stored:?}").contains(&new_hex),
        "debug shows the new secret"
    );

    let body = api
        .call(Method::POST, &path, r#"{"gracePeriodSeconds": 3600}"#)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        body["data"]["previousSecretExpiresAt"],
        json!(time::format_seconds(&(start() + Duration::hours(1))))
    );
    let body = api
        .call(Method::POST, &path, r#"{"gracePeriodSeconds": 0}"#)
        .await
        .expect(StatusCode::OK);
    assert_eq!(body["data"].as_object().map(|o| o.len()), Some(1), "{body}");
}

#[tokio::test]
async fn a_grace_period_out_of_bounds_answers_400() {
    let api = api();
    let sub = api.subscribe().await;
    let path = format!("{BASE}/{}/rotate-secret", sub.id);
    for (body, says) in [
        (
            r#"{"gracePeriodSeconds": 604801}"#,
            "gracePeriodSeconds: must be at most 604800 (7 days), got 604801",
        ),
        (
            r#"{"gracePeriodSeconds": -1}"#,
            "invalid value: integer `-1`",
        ),
        (r#"{"gracePeriodSeconds": "1h"}"#, "invalid type: string"),
        (r#"{"gracePeriodSeconds": null}"#, "invalid type: null"),
        (r#"{"grace": 1}"#, "unknown field `grace`"),
    ] {
        let message = api
            .call(Method::POST, &path, body)
            .await
            .message(StatusCode::BAD_REQUEST);
        assert!(
            message.starts_with("Invalid value for: body: ") && message.contains(says),
            "{body}: {message}"
        );
    }
    let stored = api
        .store
        .get_subscription(api.organization.id, sub.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.secret_key, sub.secret_key,
        "a refused rotation changes nothing"
    );
}

impl Api {
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use webhook_subscriptions::Clock;
        self.clock.now()
    }
}

#[tokio::test]
async fn one_bulk_redelivery_requeues_at_most_its_cap() {
    use webhook_subscriptions::model::DeliveryDetail;
    use webhook_subscriptions::service::MAX_REDELIVERIES_PER_CALL;
    use webhook_subscriptions::storage::NextStep;

    let api = api();
    let sub = api.subscribe().await;
    let total = MAX_REDELIVERIES_PER_CALL + 1;
    for _ in 0..total {
        let event = Event::new(EVENT, json!({}));
        api.service.publish(&api.organization, event).await.unwrap();
    }
    let now = api.clock_now();
    let claims = api
        .store
        .claim_deliveries(now, Duration::seconds(60), total)
        .await
        .unwrap();
    assert_eq!(claims.len(), total);
    let detail = DeliveryDetail {
        delivery_timestamp: now,
        success: false,
        response_code: 500,
        response_text: "no".to_owned(),
    };
    for claim in &claims {
        api.store
            .record_attempt(claim, &detail, NextStep::Fail)
            .await
            .unwrap();
    }
    let since = start() - Duration::days(1);
    let first = api
        .service
        .redeliver_failed_since(&api.ctx, sub.id, since)
        .await
        .unwrap();
    assert_eq!(first.redelivered, MAX_REDELIVERIES_PER_CALL);
    let second = api
        .service
        .redeliver_failed_since(&api.ctx, sub.id, since)
        .await
        .unwrap();
    assert_eq!(second.redelivered, 1, "calling again requeues the rest");
}
