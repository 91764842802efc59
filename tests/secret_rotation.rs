//! Secret rotation end to end: a real receiver on loopback verifies every
//! delivery twice, once holding only the old secret and once holding only
//! the new one. During the grace period both verify every delivery; after
//! it, only the new one does. Both signature schemes.
#![cfg(feature = "http-client")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use webhook_subscriptions::delivery::Worker;
use webhook_subscriptions::model::{
    Event, Organization, OrganizationId, SecretKey, SubscriptionId, UserId, WebhookSubscription,
};
use webhook_subscriptions::service::DEFAULT_GRACE_PERIOD;
use webhook_subscriptions::signature::{
    SignatureScheme, StandardWebhooksScheme, DEFAULT_TOLERANCE,
};
use webhook_subscriptions::storage::prelude::*;
use webhook_subscriptions::storage::MemoryStore;
use webhook_subscriptions::transport::{AddressPolicy, HttpTransport};
use webhook_subscriptions::{Clock, ManualClock, RequestContext, WebhookService};

const EVENT: &str = "ConversationNoteAdded";

/// What the receiver made of one delivery.
#[derive(Debug, Clone)]
struct Verdict {
    /// Verified by a receiver holding only the old secret.
    old_key: bool,
    /// Verified by a receiver holding only the new secret.
    new_key: bool,
    headers: HeaderMap,
}

/// The keys the receiver checks with; the new one is learnt from the rotation.
#[derive(Default)]
struct Keys {
    old: Option<SecretKey>,
    new: Option<SecretKey>,
}

struct Receiver {
    url: String,
    keys: Arc<Mutex<Keys>>,
    verdicts: Arc<Mutex<Vec<Verdict>>>,
}

/// A receiver on 127.0.0.1 that verifies every request with `scheme` against
/// each key alone, reading the time from `clock`, and answers 200.
async fn receiver(scheme: SignatureScheme, clock: ManualClock) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let keys = Arc::new(Mutex::new(Keys::default()));
    let verdicts = Arc::new(Mutex::new(Vec::new()));
    let (shared_keys, shared_verdicts) = (keys.clone(), verdicts.clone());
    tokio::spawn(async move {
        // Ends with the test's runtime.
        while let Ok((stream, _)) = listener.accept().await {
            let (keys, verdicts) = (shared_keys.clone(), shared_verdicts.clone());
            let (scheme, clock) = (scheme.clone(), clock.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let (keys, verdicts) = (keys.clone(), verdicts.clone());
                    let (scheme, clock) = (scheme.clone(), clock.clone());
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await?.to_bytes();
                        let verifies = |key: &Option<SecretKey>| {
                            key.as_ref().is_some_and(|key| {
                                scheme
                                    .verify(
                                        std::slice::from_ref(key),
                                        &parts.headers,
                                        &body,
                                        clock.now(),
                                        DEFAULT_TOLERANCE,
                                    )
                                    .is_ok()
                            })
                        };
                        let verdict = {
                            let keys = keys.lock().unwrap();
                            Verdict {
                                old_key: verifies(&keys.old),
                                new_key: verifies(&keys.new),
                                headers: parts.headers.clone(),
                            }
                        };
                        verdicts.lock().unwrap().push(verdict);
                        Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from("ok"))))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Receiver {
        url,
        keys,
        verdicts,
    }
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
}

struct Setup {
    clock: ManualClock,
    service: WebhookService,
    worker: Worker,
    organization: Organization,
    ctx: RequestContext,
    subscription: WebhookSubscription,
    receiver: Receiver,
}

async fn setup(scheme: SignatureScheme) -> Setup {
    let clock = ManualClock::new(start());
    let store = Arc::new(MemoryStore::new());
    let service = WebhookService::builder(store.clone())
        .clock(Arc::new(clock.clone()))
        .build();
    #[cfg(not(feature = "rustls-aws-lc-rs"))]
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let transport = HttpTransport::builder()
        .address_policy(AddressPolicy::allow_all())
        .build()
        .unwrap();
    let worker = Worker::builder(store.clone(), Arc::new(transport))
        .clock(Arc::new(clock.clone()))
        .signature_scheme(scheme.clone())
        .build()
        .unwrap();
    let receiver = receiver(scheme, clock.clone()).await;
    let organization = Organization::new(OrganizationId::new_v4(), "Acme");
    let ctx = RequestContext::new(organization.id, UserId::new_v4());
    // Stored directly: validation may refuse loopback URLs.
    let subscription = WebhookSubscription {
        id: SubscriptionId::new_v4(),
        name: "rotating".to_owned(),
        url: receiver.url.clone(),
        subscribed_events: vec![EVENT.to_owned()],
        headers: Default::default(),
        secret_key: SecretKey::generate().unwrap(),
        enabled: true,
        created_at: start(),
        created_by: ctx.user_id,
        updated_at: start(),
        updated_by: ctx.user_id,
        filters: None,
        previous_secret: None,
    };
    store
        .insert_subscription(organization.id, &subscription)
        .await
        .unwrap();
    receiver.keys.lock().unwrap().old = Some(subscription.secret_key.clone());
    Setup {
        clock,
        service,
        worker,
        organization,
        ctx,
        subscription,
        receiver,
    }
}

impl Setup {
    /// Publishes one event, delivers it, and returns the receiver's verdict.
    async fn deliver_one(&self) -> Verdict {
        let event = Event::new(EVENT, json!({"n": 1}));
        let receipt = self
            .service
            .publish(&self.organization, event)
            .await
            .unwrap();
        assert_eq!(receipt.enqueued, 1);
        let report = self.worker.run_once().await.unwrap();
        assert_eq!(report.delivered, 1, "{report:?}");
        let verdicts = self.receiver.verdicts.lock().unwrap();
        verdicts
            .last()
            .cloned()
            .expect("the receiver saw the delivery")
    }

    fn advance(&self, by: Duration) {
        self.clock.advance(chrono::Duration::from_std(by).unwrap());
    }
}

/// How many signatures a header of `scheme` carries.
fn signature_count(scheme: &SignatureScheme, headers: &HeaderMap) -> usize {
    let (name, marker) = match scheme {
        SignatureScheme::StandardWebhooks(_) => (StandardWebhooksScheme::SIGNATURE_HEADER, "v1,"),
        _ => ("x-webhook-signature", "v1="),
    };
    let value = headers.get(name).unwrap().to_str().unwrap();
    value.matches(marker).count()
}

async fn both_keys_verify_every_delivery_during_the_grace_period(scheme: SignatureScheme) {
    let setup = setup(scheme.clone()).await;

    let before = setup.deliver_one().await;
    assert!(before.old_key && !before.new_key, "{before:?}");
    assert_eq!(signature_count(&scheme, &before.headers), 1);

    let rotated = setup
        .service
        .rotate_secret(&setup.ctx, setup.subscription.id, DEFAULT_GRACE_PERIOD)
        .await
        .unwrap();
    assert_ne!(rotated.secret_key, setup.subscription.secret_key);
    let expires_at = rotated.previous_secret_expires_at.expect("a grace period");
    assert_eq!(expires_at, start() + chrono::Duration::hours(24));
    setup.receiver.keys.lock().unwrap().new = Some(rotated.secret_key.clone());

    // Right after the rotation and until just before the expiry, each
    // receiver verifies every delivery.
    let mut during = vec![setup.deliver_one().await];
    setup.advance(Duration::from_secs(12 * 3600));
    during.push(setup.deliver_one().await);
    setup.advance(Duration::from_secs(12 * 3600 - 1));
    during.push(setup.deliver_one().await);
    for verdict in &during {
        assert!(
            verdict.old_key,
            "the old key alone must verify: {verdict:?}"
        );
        assert!(
            verdict.new_key,
            "the new key alone must verify: {verdict:?}"
        );
        assert_eq!(signature_count(&scheme, &verdict.headers), 2);
    }

    // Once the grace period is over, only the new secret signs.
    setup.advance(Duration::from_secs(1));
    let after = setup.deliver_one().await;
    assert!(!after.old_key && after.new_key, "{after:?}");
    assert_eq!(signature_count(&scheme, &after.headers), 1);
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_in_the_default_scheme() {
    both_keys_verify_every_delivery_during_the_grace_period(SignatureScheme::default()).await;
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_in_standard_webhooks() {
    both_keys_verify_every_delivery_during_the_grace_period(SignatureScheme::StandardWebhooks(
        StandardWebhooksScheme::default(),
    ))
    .await;
}

#[tokio::test]
async fn a_zero_grace_period_retires_the_old_secret_at_once() {
    let setup = setup(SignatureScheme::default()).await;
    let rotated = setup
        .service
        .rotate_secret(&setup.ctx, setup.subscription.id, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(rotated.previous_secret_expires_at, None);
    setup.receiver.keys.lock().unwrap().new = Some(rotated.secret_key);
    let verdict = setup.deliver_one().await;
    assert!(!verdict.old_key && verdict.new_key, "{verdict:?}");
}

#[tokio::test]
async fn a_second_rotation_drops_the_first_secret() {
    let setup = setup(SignatureScheme::default()).await;
    let first = setup
        .service
        .rotate_secret(&setup.ctx, setup.subscription.id, DEFAULT_GRACE_PERIOD)
        .await
        .unwrap();
    let second = setup
        .service
        .rotate_secret(&setup.ctx, setup.subscription.id, DEFAULT_GRACE_PERIOD)
        .await
        .unwrap();
    {
        let mut keys = setup.receiver.keys.lock().unwrap();
        // The original secret is gone; the first rotation's is now the old one.
        keys.old = Some(first.secret_key.clone());
        keys.new = Some(second.secret_key.clone());
    }
    let verdict = setup.deliver_one().await;
    assert!(verdict.old_key && verdict.new_key, "{verdict:?}");
    let original = setup.subscription.secret_key.clone();
    setup.receiver.keys.lock().unwrap().old = Some(original);
    let verdict = setup.deliver_one().await;
    assert!(!verdict.old_key, "the original secret must no longer sign");
}
