//! Subscription management through `WebhookService` on the in-memory store.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use webhook_subscriptions::model::{
    Authorization, CreateWebhookSubscription, DeliveryStatus, OrganizationId,
    PatchWebhookSubscription, SubscriptionId, UserId,
};
use webhook_subscriptions::storage::MemoryStore;
use webhook_subscriptions::{Error, ManualClock, RequestContext, WebhookService};

fn start() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2023, 8, 1, 9, 30, 15).unwrap()
}

fn service() -> (WebhookService, ManualClock) {
    let clock = ManualClock::new(start());
    let service = WebhookService::builder(Arc::new(MemoryStore::new()))
        .clock(Arc::new(clock.clone()))
        .build();
    (service, clock)
}

fn ctx() -> RequestContext {
    RequestContext::new(OrganizationId::new_v4(), UserId::new_v4())
}

fn create_request() -> CreateWebhookSubscription {
    serde_json::from_str(include_str!("fixtures/create_request.json")).expect("fixture parses")
}

fn patch(json: &str) -> PatchWebhookSubscription {
    serde_json::from_str(json).expect("patch parses")
}

#[tokio::test]
async fn create_assigns_id_secret_and_stamps() {
    let (service, clock) = service();
    clock.advance(Duration::milliseconds(750));
    let ctx = ctx();
    let sub = service
        .create(&ctx, &create_request())
        .await
        .expect("created");
    assert_eq!(sub.id.as_uuid().get_version_num(), 4);
    let hex = sub.secret_key.to_hex();
    assert_eq!(hex.len(), 64);
    assert!(hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert_eq!(sub.created_at, start(), "second precision");
    assert_eq!(sub.updated_at, start());
    assert_eq!(sub.created_by, ctx.user_id);
    assert_eq!(sub.updated_by, ctx.user_id);
    assert!(sub.enabled);
    assert_eq!(
        sub.headers.get("Authorization").map(String::as_str),
        Some("Basic d2ViaG9va191c2VyOndlYmhvb2tfcGFzc3dvcmQ=")
    );
    let json = serde_json::to_value(&sub).expect("serializes");
    assert_eq!(json["createdAt"], "2023-08-01T09:30:15Z");
    assert!(json.get("filters").is_none(), "absent when unset");
}

#[tokio::test]
async fn secrets_differ_between_subscriptions() {
    let (service, _) = service();
    let ctx = ctx();
    let a = service.create(&ctx, &create_request()).await.expect("a");
    let b = service.create(&ctx, &create_request()).await.expect("b");
    assert_ne!(a.secret_key, b.secret_key);
    assert_ne!(a.id, b.id);
}

#[tokio::test]
async fn get_returns_what_create_returned() {
    let (service, _) = service();
    let ctx = ctx();
    let sub = service
        .create(&ctx, &create_request())
        .await
        .expect("created");
    assert_eq!(service.get(&ctx, sub.id).await.expect("found"), sub);
}

#[tokio::test]
async fn patch_keeps_absent_fields() {
    let (service, clock) = service();
    let ctx = ctx();
    let sub = service
        .create(&ctx, &create_request())
        .await
        .expect("created");
    clock.advance(Duration::hours(30));
    let patched = service
        .patch(&ctx, sub.id, &patch(r#"{"name": "Renamed"}"#))
        .await
        .expect("patched");
    assert_eq!(patched.name, "Renamed");
    assert_eq!(patched.url, sub.url);
    assert_eq!(patched.subscribed_events, sub.subscribed_events);
    assert_eq!(patched.headers, sub.headers);
    assert_eq!(patched.enabled, sub.enabled);
    assert_eq!(patched.created_at, sub.created_at);
    assert_eq!(patched.created_by, sub.created_by);
}

#[tokio::test]
async fn patch_fixture_replaces_events_and_authorization() {
    let (service, _) = service();
    let ctx = ctx();
    let sub = service
        .create(&ctx, &create_request())
        .await
        .expect("created");
    let request: PatchWebhookSubscription =
        serde_json::from_str(include_str!("fixtures/patch_request.json")).expect("fixture");
    let patched = service
        .patch(&ctx, sub.id, &request)
        .await
        .expect("patched");
    let expected: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/patch_response.json")).expect("fixture");
    let expected = &expected["data"];
    let actual = serde_json::to_value(&patched).expect("serializes");
    for field in ["name", "url", "subscribedEvents", "headers", "enabled"] {
        assert_eq!(actual[field], expected[field], "{field}");
    }
}

#[tokio::test]
async fn patch_replaces_custom_headers_and_keeps_authorization() {
    let (service, _) = service();
    let ctx = ctx();
    let mut request = create_request();
    request.custom_headers = BTreeMap::from([
        ("X-Old".to_owned(), "1".to_owned()),
        ("X-Keep".to_owned(), "2".to_owned()),
    ]);
    let sub = service.create(&ctx, &request).await.expect("created");
    let patched = service
        .patch(&ctx, sub.id, &patch(r#"{"customHeaders": {"X-New": "3"}}"#))
        .await
        .expect("patched");
    let names: Vec<&str> = patched.headers.keys().map(String::as_str).collect();
    assert_eq!(names, ["Authorization", "X-New"]);
}

#[tokio::test]
async fn no_auth_patch_removes_authorization() {
    let (service, _) = service();
    let ctx = ctx();
    let sub = service
        .create(&ctx, &create_request())
        .await
        .expect("created");
    let patched = service
        .patch(
            &ctx,
            sub.id,
            &patch(r#"{"authorization": {"_type": "NoAuth"}}"#),
        )
        .await
        .expect("patched");
    assert!(!patched.headers.contains_key("Authorization"));
}

#[tokio::test]
async fn patch_moves_updated_stamps_and_keeps_the_secret() {
    let (service, clock) = service();
    let creator = ctx();
    let sub = service
        .create(&creator, &create_request())
        .await
        .expect("created");
    clock.advance(Duration::seconds(90));
    let editor = RequestContext::new(creator.organization_id, UserId::new_v4());
    let patched = service
        .patch(&editor, sub.id, &patch("{}"))
        .await
        .expect("patched");
    assert_eq!(patched.secret_key, sub.secret_key);
    assert_eq!(patched.updated_by, editor.user_id);
    assert_eq!(patched.updated_at, start() + Duration::seconds(90));
    assert_eq!(patched.created_by, creator.user_id);
    assert_eq!(patched.created_at, start());
}

#[tokio::test]
async fn patch_refuses_null_and_invalid_values() {
    let (service, _) = service();
    let ctx = ctx();
    let sub = service
        .create(&ctx, &create_request())
        .await
        .expect("created");
    let err = service
        .patch(&ctx, sub.id, &patch(r#"{"url": null}"#))
        .await
        .expect_err("null");
    assert!(matches!(err, Error::Validation { .. }), "{err:?}");
    let err = service
        .patch(&ctx, sub.id, &patch(r#"{"events": ["Nope"]}"#))
        .await
        .expect_err("unknown event");
    assert!(matches!(err, Error::Validation { .. }), "{err:?}");
    assert_eq!(
        service.get(&ctx, sub.id).await.expect("found"),
        sub,
        "unchanged"
    );
}

#[tokio::test]
async fn other_organization_sees_nothing() {
    let (service, _) = service();
    let owner = ctx();
    let sub = service
        .create(&owner, &create_request())
        .await
        .expect("created");
    let stranger = ctx();
    let not_found = |r: Result<(), Error>| matches!(r, Err(Error::NotFound(_)));
    assert!(not_found(service.get(&stranger, sub.id).await.map(drop)));
    assert!(not_found(
        service
            .patch(&stranger, sub.id, &patch(r#"{"name": "x"}"#))
            .await
            .map(drop)
    ));
    assert!(not_found(service.delete(&stranger, sub.id).await));
    assert!(not_found(
        service.delivery_statuses(&stranger, sub.id).await.map(drop)
    ));
    assert!(not_found(
        service
            .event_logs(&stranger, sub.id, "ConversationCreated")
            .await
            .map(drop)
    ));
    assert!(service.list(&stranger).await.expect("lists").is_empty());
    assert_eq!(service.get(&owner, sub.id).await.expect("still there"), sub);
}

#[tokio::test]
async fn list_is_oldest_first_and_per_organization() {
    let (service, clock) = service();
    let ctx = ctx();
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut request = create_request();
        request.name = format!("sub {i}");
        ids.push(service.create(&ctx, &request).await.expect("created").id);
        if i % 2 == 0 {
            clock.advance(Duration::seconds(1));
        }
    }
    service
        .create(&self::ctx(), &create_request())
        .await
        .expect("other org");
    let listed: Vec<SubscriptionId> = service
        .list(&ctx)
        .await
        .expect("lists")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, ids);
}

#[tokio::test]
async fn delete_removes_the_subscription() {
    let (service, _) = service();
    let ctx = ctx();
    let sub = service
        .create(&ctx, &create_request())
        .await
        .expect("created");
    service.delete(&ctx, sub.id).await.expect("deleted");
    assert!(matches!(
        service.get(&ctx, sub.id).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        service.delete(&ctx, sub.id).await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test]
async fn fresh_subscription_has_no_recent_delivery_per_subscribed_event() {
    let (service, _) = service();
    let ctx = ctx();
    let sub = service
        .create(&ctx, &create_request())
        .await
        .expect("created");
    let statuses = service
        .delivery_statuses(&ctx, sub.id)
        .await
        .expect("statuses");
    let events: Vec<&str> = statuses.iter().map(|s| s.event.as_str()).collect();
    assert_eq!(events, ["ConversationCreated", "ConversationClosed"]);
    assert!(statuses
        .iter()
        .all(|s| s.delivery_status == DeliveryStatus::NoRecentDelivery));
    assert!(service
        .event_logs(&ctx, sub.id, "ConversationCreated")
        .await
        .expect("logs")
        .is_empty());
}

#[tokio::test]
async fn logs_of_an_unknown_event_are_a_bad_path_parameter() {
    let (service, _) = service();
    let ctx = ctx();
    let sub = service
        .create(&ctx, &create_request())
        .await
        .expect("created");
    let err = service
        .event_logs(&ctx, sub.id, "NotAnEvent")
        .await
        .expect_err("unknown event");
    assert!(
        matches!(&err, Error::InvalidPathParameter { parameter, .. } if parameter == "event"),
        "{err:?}"
    );
}

#[tokio::test]
async fn nil_context_is_refused() {
    let (service, _) = service();
    let nil = RequestContext::new(OrganizationId::from(uuid::Uuid::nil()), UserId::new_v4());
    assert!(matches!(
        service.list(&nil).await,
        Err(Error::InvalidRequestContext(_))
    ));
    let nil_user = RequestContext::new(OrganizationId::new_v4(), UserId::from(uuid::Uuid::nil()));
    assert!(matches!(
        service.create(&nil_user, &create_request()).await,
        Err(Error::InvalidRequestContext(_))
    ));
}

#[tokio::test]
async fn credentials_do_not_appear_in_debug_output() {
    let (service, _) = service();
    let ctx = ctx();
    let mut request = create_request();
    request.authorization = Authorization::TokenAuth {
        value: "super-secret-token".to_owned(),
    };
    let debug = format!("{request:?}");
    assert!(!debug.contains("super-secret-token"), "{debug}");
    let sub = service.create(&ctx, &request).await.expect("created");
    let debug = format!("{sub:?}");
    assert!(!debug.contains(&sub.secret_key.to_hex()), "{debug}");
}

/// Many tasks create, patch and delete across organizations at once; then
/// every organization holds exactly its surviving subscriptions, each with
/// every patched field intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_create_patch_delete_keeps_invariants() {
    let (service, _) = service();
    let orgs: Vec<RequestContext> = (0..4).map(|_| ctx()).collect();
    let mut tasks = Vec::new();
    for (t, org) in (0..32).map(|t| (t, orgs[t % orgs.len()])) {
        let service = service.clone();
        tasks.push(tokio::spawn(async move {
            let mut kept = Vec::new();
            for i in 0..20 {
                let mut request = create_request();
                request.name = format!("t{t}-{i}");
                let sub = service.create(&org, &request).await.expect("create");
                let renamed = format!("t{t}-{i}-renamed");
                let body =
                    format!(r#"{{"name": "{renamed}", "customHeaders": {{"X-Task": "{t}"}}}}"#);
                service
                    .patch(&org, sub.id, &patch(&body))
                    .await
                    .expect("patch");
                service
                    .patch(&org, sub.id, &patch(r#"{"enabled": false}"#))
                    .await
                    .expect("patch enabled");
                if i % 3 == 0 {
                    service.delete(&org, sub.id).await.expect("delete");
                } else {
                    kept.push((org, sub.id, renamed, t));
                }
            }
            kept
        }));
    }
    let mut expected = Vec::new();
    for task in tasks {
        expected.extend(task.await.expect("task finished"));
    }
    let mut total = 0;
    for org in &orgs {
        let listed = service.list(org).await.expect("list");
        total += listed.len();
        for sub in &listed {
            let (_, _, name, t) = expected
                .iter()
                .find(|(o, id, _, _)| o == org && *id == sub.id)
                .expect("listed subscription is one that was kept, in its own organization");
            assert_eq!(&sub.name, name);
            assert!(!sub.enabled);
            assert_eq!(sub.headers.get("X-Task"), Some(&t.to_string()));
            assert!(sub.headers.contains_key("Authorization"));
        }
    }
    assert_eq!(total, expected.len(), "no subscription lost or duplicated");
}

#[tokio::test]
async fn creating_past_the_organization_limit_answers_409_with_the_limit() {
    let service = WebhookService::builder(Arc::new(MemoryStore::new()))
        .max_subscriptions_per_organization(2)
        .build();
    let full = ctx();
    for _ in 0..2 {
        service
            .create(&full, &create_request())
            .await
            .expect("under the limit");
    }
    let refused = service
        .create(&full, &create_request())
        .await
        .expect_err("a third subscription is over the limit of 2");
    assert!(matches!(refused, Error::LimitReached(_)), "{refused:?}");
    assert_eq!(refused.status(), http::StatusCode::CONFLICT);
    let message = refused.body().message;
    assert!(
        message.starts_with("Subscription limit reached: ")
            && message.contains("most allowed is 2"),
        "{message}"
    );
    assert_eq!(
        service.list(&full).await.unwrap().len(),
        2,
        "nothing was stored"
    );

    // The limit is per organization; deleting frees a place.
    service
        .create(&ctx(), &create_request())
        .await
        .expect("another organization has its own limit");
    let first = service.list(&full).await.unwrap()[0].id;
    service.delete(&full, first).await.unwrap();
    service
        .create(&full, &create_request())
        .await
        .expect("a deleted subscription frees its place");
}

#[test]
fn the_default_limit_is_1000_subscriptions_per_organization() {
    assert_eq!(
        webhook_subscriptions::DEFAULT_MAX_SUBSCRIPTIONS_PER_ORGANIZATION,
        1_000
    );
}
