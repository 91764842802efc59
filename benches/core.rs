//! Micro-benchmarks of the hot paths: signing (against a bare HMAC-SHA256 +
//! hex of the same bytes), building a delivery request, validating a create
//! request, publish fan-out, MemoryStore claim/record cycles, and the REST
//! handler refusing hostile 1 MiB bodies.
//!
//! `cargo bench --bench core`; `examples/bench.rs` prints the headline ratios.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio::runtime::Runtime;
use webhook_subscriptions::api::{ApiHandler, DEFAULT_MAX_BODY_BYTES};
use webhook_subscriptions::delivery::build_request;
use webhook_subscriptions::model::{
    Authorization, CreateWebhookSubscription, DeliveryDetail, DeliveryId, Event, EventId,
    Organization, OrganizationId, SecretKey, SubscriptionId, UserId, WebhookSubscription,
};
use webhook_subscriptions::signature::{hex, sign_timestamped, SignatureScheme};
use webhook_subscriptions::storage::prelude::*;
use webhook_subscriptions::storage::MemoryStore;
use webhook_subscriptions::storage::{Delivery, DeliveryState, NewEvent, NextStep};
use webhook_subscriptions::validate::Validator;
use webhook_subscriptions::{RequestContext, WebhookService};

const KEY: [u8; 32] = [0x5a; 32];
const T_MS: i64 = 1_748_264_463_123;
const MATCHING: &str = "ConversationNoteAdded";
const OTHER: &str = "ConversationClosed";

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(T_MS).unwrap_or(DateTime::UNIX_EPOCH)
}

/// What `sign_timestamped` computes, with nothing around it: the baseline.
fn raw_hmac_hex(key: &[u8], t: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(t);
    mac.update(b".");
    mac.update(body);
    hex::encode(&mac.finalize().into_bytes())
}

fn subscription(events: &[&str]) -> WebhookSubscription {
    let user = UserId::new_v4();
    let mut headers = BTreeMap::new();
    headers.insert(
        "Authorization".to_owned(),
        "Bearer 0123456789abcdef".to_owned(),
    );
    WebhookSubscription {
        id: SubscriptionId::new_v4(),
        name: "orders webhook prod".to_owned(),
        url: "https://hooks.example.com/webhooks/orders".to_owned(),
        subscribed_events: events.iter().map(|e| (*e).to_owned()).collect(),
        headers,
        secret_key: SecretKey::from_bytes(KEY),
        enabled: true,
        created_at: at(),
        created_by: user,
        updated_at: at(),
        updated_by: user,
        filters: None,
        previous_secret: None,
    }
}

fn signing(c: &mut Criterion) {
    let mut group = c.benchmark_group("sign");
    for size in [1024usize, 64 * 1024] {
        let body = vec![b'x'; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(
            BenchmarkId::new("sign_timestamped", size),
            &body,
            |b, body| {
                b.iter(|| sign_timestamped(black_box(&KEY), black_box(T_MS), black_box(body)))
            },
        );
        let t = T_MS.to_string();
        group.bench_with_input(BenchmarkId::new("raw_hmac_hex", size), &body, |b, body| {
            b.iter(|| raw_hmac_hex(black_box(&KEY), black_box(t.as_bytes()), black_box(body)))
        });
    }
    group.finish();
}

fn request_building(c: &mut Criterion) {
    let scheme = SignatureScheme::default();
    let sub = subscription(&[MATCHING]);
    let delivery = Delivery {
        id: DeliveryId::new_v4(),
        organization_id: OrganizationId::new_v4(),
        subscription_id: sub.id,
        event_id: EventId::new_v4(),
        event_name: MATCHING.to_owned(),
        payload: Bytes::from(vec![b'x'; 1024]),
        attempts: 0,
        due_at: at(),
        state: DeliveryState::Leased,
    };
    c.bench_function("build_request_1k", |b| {
        b.iter(|| build_request(&scheme, black_box(&sub), black_box(&delivery), at()))
    });
}

fn validation(c: &mut Criterion) {
    let validator = Validator::default();
    let mut request = CreateWebhookSubscription::new(
        "orders webhook prod",
        "https://hooks.example.com/webhooks/orders",
    );
    request.events = vec![MATCHING.to_owned(), OTHER.to_owned()];
    request.authorization = Authorization::TokenAuth {
        value: "0123456789abcdef".to_owned(),
    };
    request
        .custom_headers
        .insert("X-Tenant".to_owned(), "acme".to_owned());
    c.bench_function("validate_create", |b| {
        b.iter(|| validator.validate_create(black_box(&request)))
    });
}

/// An organization with `total` subscriptions, `matching` of them to [`MATCHING`].
fn organization_with(
    rt: &Runtime,
    store: &MemoryStore,
    total: usize,
    matching: usize,
) -> Organization {
    let org = Organization::new(OrganizationId::new_v4(), "Bench Org");
    rt.block_on(async {
        for i in 0..total {
            let events: &[&str] = if i < matching {
                &[MATCHING, OTHER]
            } else {
                &[OTHER]
            };
            store
                .insert_subscription(org.id, &subscription(events))
                .await
                .unwrap();
        }
    });
    org
}

fn fanout(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let mut group = c.benchmark_group("publish_fanout_100_matching");
    group.sample_size(20);
    for total in [100usize, 10_000] {
        group.bench_function(BenchmarkId::from_parameter(total), |b| {
            // A fresh store per sample, so the queue never grows without bound.
            b.iter_custom(|iters| {
                let store = Arc::new(MemoryStore::new());
                let org = organization_with(&rt, &store, total, 100);
                let service = WebhookService::builder(store).build();
                rt.block_on(async {
                    let start = std::time::Instant::now();
                    for _ in 0..iters {
                        let event =
                            Event::new(MATCHING, json!({"note_id": "n-1", "text": "hello"}));
                        black_box(service.publish(&org, event).await.unwrap());
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

fn claim_record(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let store = Arc::new(MemoryStore::new());
    let org = organization_with(&rt, &store, 1, 1);
    let payload = Bytes::from(vec![b'x'; 1024]);
    let ok = DeliveryDetail {
        delivery_timestamp: at(),
        success: true,
        response_code: 200,
        response_text: String::new(),
    };
    c.bench_function("memory_claim_record_batch_32", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (store, payload, ok) = (store.clone(), payload.clone(), ok.clone());
            async move {
                for _ in 0..iters * 32 {
                    let event = NewEvent {
                        organization_id: org.id,
                        event_id: EventId::new_v4(),
                        event_name: MATCHING.to_owned(),
                        payload: payload.clone(),
                        published_at: at(),
                    };
                    store.enqueue_event(&event).await.unwrap();
                }
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    let claims = store
                        .claim_deliveries(at(), Duration::seconds(60), 32)
                        .await
                        .unwrap();
                    for claim in &claims {
                        store
                            .record_attempt(claim, &ok, NextStep::Complete)
                            .await
                            .unwrap();
                    }
                }
                start.elapsed()
            }
        })
    });
}

/// A create body whose `field` is `open item,item,... close`, filled to
/// just under the 1 MiB body limit; `{i}` in `item` becomes a counter.
fn one_mib_create(field: &str, open: &str, item: &str, close: &str) -> String {
    let mut body =
        format!(r#"{{"name": "n", "url": "https://example.com/hook", "{field}": {open}"#);
    let item_len = item.replace("{i}", "000000").len() + 1;
    let mut i = 0;
    while body.len() + item_len + close.len() < DEFAULT_MAX_BODY_BYTES {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&item.replace("{i}", &format!("{i:06}")));
        i += 1;
    }
    body.push_str(close);
    body.push('}');
    body
}

/// The whole handler (media type, JSON, validation, error rendering) on
/// 1 MiB bodies built to make errors large; each answers 400.
fn hostile_bodies(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let api = ApiHandler::new(WebhookService::default());
    let ctx = RequestContext::new(OrganizationId::new_v4(), UserId::new_v4());
    let long = "a".repeat(DEFAULT_MAX_BODY_BYTES - 100);
    let shapes = [
        ("empty_events", one_mib_create("events", "[", r#""""#, "]")),
        (
            "distinct_events",
            one_mib_create("events", "[", r#""E{i}""#, "]"),
        ),
        (
            "bad_headers",
            one_mib_create("customHeaders", "{", r#""H {i}": "v\n""#, "}"),
        ),
        (
            "deep_nesting",
            format!(
                r#"{{"name": {}{}}}"#,
                "[".repeat(500_000),
                "]".repeat(500_000)
            ),
        ),
        ("long_unknown_field", format!(r#"{{"{long}": 1}}"#)),
    ];
    let mut group = c.benchmark_group("hostile_body_1mib");
    group.sample_size(10);
    for (shape, body) in shapes {
        let body = Bytes::from(body);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(shape, |b| {
            b.iter(|| {
                let request = http::Request::post("/v1/webhooks")
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .unwrap();
                let response = rt.block_on(api.handle(Ok(ctx), request));
                assert_eq!(response.status(), 400);
                assert!(response.body().len() < 16 * 1024);
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    signing,
    request_building,
    validation,
    fanout,
    claim_record,
    hostile_bodies
);
criterion_main!(benches);
