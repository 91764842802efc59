//! Shared fixtures for the delivery tests: a scripted transport, a manual
//! clock, a memory store with subscriptions, and a worker wired to them.
#![allow(dead_code)] // each test file uses a different part

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use serde_json::json;
use webhook_subscriptions::delivery::{
    publish, PublishLimits, PublishReceipt, Worker, WorkerBuilder,
};
use webhook_subscriptions::model::{
    Event, EventCatalogue, EventId, Organization, OrganizationId, SecretKey, SubscriptionChange,
    SubscriptionId, UserId, WebhookSubscription,
};
use webhook_subscriptions::storage::prelude::*;
use webhook_subscriptions::storage::AttemptLog;
use webhook_subscriptions::storage::MemoryStore;
use webhook_subscriptions::transport::{Transport, TransportError, TransportResponse};
use webhook_subscriptions::ManualClock;

pub const EVENT: &str = "ConversationNoteAdded";

/// What the transport was asked to send.
#[derive(Debug, Clone)]
pub struct SentRequest {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Answers with queued replies, in order, and records every request.
/// With nothing queued it answers with a connection error.
#[derive(Debug, Default)]
pub struct ScriptedTransport {
    replies: Mutex<VecDeque<Result<TransportResponse, TransportError>>>,
    sent: Mutex<Vec<SentRequest>>,
}

impl ScriptedTransport {
    pub fn reply(&self, reply: Result<TransportResponse, TransportError>) {
        self.replies.lock().unwrap().push_back(reply);
    }

    pub fn status(&self, status: u16) {
        self.respond(status, &[], b"");
    }

    pub fn respond(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        self.reply(Ok(TransportResponse::new(
            StatusCode::from_u16(status).unwrap(),
            map,
            Bytes::copy_from_slice(body),
        )));
    }

    pub fn sent(&self) -> Vec<SentRequest> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl Transport for ScriptedTransport {
    async fn send(&self, request: Request<Bytes>) -> Result<TransportResponse, TransportError> {
        let (parts, body) = request.into_parts();
        self.sent.lock().unwrap().push(SentRequest {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
        });
        self.replies
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| Err(TransportError::Connect("no scripted reply".into())))
    }
}

pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2023, 9, 15, 12, 0, 0).unwrap()
}

pub fn secret() -> SecretKey {
    SecretKey::from_bytes([7; 32])
}

/// A subscription to `events`, with a bearer token and one custom header.
pub fn subscription(url: &str, events: &[&str], enabled: bool) -> WebhookSubscription {
    let user = UserId::new_v4();
    let mut headers = BTreeMap::new();
    headers.insert("Authorization".to_owned(), "Bearer s3cr3t".to_owned());
    headers.insert("X-Custom".to_owned(), "custom value".to_owned());
    WebhookSubscription {
        id: SubscriptionId::new_v4(),
        name: "test hook".to_owned(),
        url: url.to_owned(),
        subscribed_events: events.iter().map(|e| (*e).to_owned()).collect(),
        headers,
        secret_key: secret(),
        enabled,
        created_at: start(),
        created_by: user,
        updated_at: start(),
        updated_by: user,
        filters: None,
        previous_secret: None,
    }
}

/// Everything a delivery test needs, on one organization.
pub struct Harness {
    pub store: Arc<MemoryStore>,
    pub clock: ManualClock,
    pub transport: Arc<ScriptedTransport>,
    pub organization: Organization,
}

impl Harness {
    pub fn new() -> Self {
        Self {
            store: Arc::new(MemoryStore::default()),
            clock: ManualClock::new(start()),
            transport: Arc::new(ScriptedTransport::default()),
            organization: Organization::new(OrganizationId::new_v4(), "Test Org"),
        }
    }

    /// A worker builder on this harness with jitter pinned to the midpoint
    /// (every delay exactly as scheduled).
    pub fn worker_builder(&self) -> WorkerBuilder {
        self.worker_builder_with(self.transport.clone())
    }

    pub fn worker_builder_with(&self, transport: Arc<dyn Transport>) -> WorkerBuilder {
        Worker::builder(self.store.clone(), transport)
            .clock(Arc::new(self.clock.clone()))
            .jitter_source(Arc::new(|| 0.5))
    }

    pub fn worker(&self) -> Worker {
        self.worker_builder().build().unwrap()
    }

    /// Stores an enabled subscription to `EVENT` in this organization.
    pub async fn subscribe(&self) -> WebhookSubscription {
        self.add(subscription(
            "https://receiver.example/hook",
            &[EVENT],
            true,
        ))
        .await
    }

    pub async fn add(&self, subscription: WebhookSubscription) -> WebhookSubscription {
        self.add_in(self.organization.id, subscription).await
    }

    pub async fn add_in(
        &self,
        organization: OrganizationId,
        subscription: WebhookSubscription,
    ) -> WebhookSubscription {
        self.store
            .insert_subscription(organization, &subscription)
            .await
            .unwrap();
        subscription
    }

    /// Disables `subscription` (as its owner would, through the API).
    pub async fn disable(&self, subscription: &WebhookSubscription) {
        let mut change = SubscriptionChange::touch(start(), UserId::new_v4());
        change.enabled = Some(false);
        self.store
            .update_subscription(self.organization.id, subscription.id, &change)
            .await
            .unwrap();
    }

    pub async fn publish(&self, event: Event) -> PublishReceipt {
        publish(
            &*self.store,
            &self.clock,
            &EventCatalogue::default(),
            &PublishLimits::default(),
            &self.organization,
            event,
        )
        .await
        .unwrap()
    }

    /// Publishes `EVENT` with a fresh id.
    pub async fn publish_note(&self) -> PublishReceipt {
        self.publish(Event::new(
            EVENT,
            json!({"note_id": "n-1", "text": "hello"}),
        ))
        .await
    }

    pub async fn attempts(&self, subscription: &WebhookSubscription) -> Vec<AttemptLog> {
        self.store
            .list_attempts(self.organization.id, subscription.id, EVENT)
            .await
            .unwrap()
    }

    pub fn advance_secs(&self, secs: i64) {
        self.clock.advance(chrono::Duration::seconds(secs));
    }
}

pub fn event_id(text: &str) -> EventId {
    text.parse().unwrap()
}
