//! MemoryStore-only behaviour: configuration, the de-duplication window,
//! bounded memory (via `stats`), shared payloads and extreme durations.
//! The `Storage` contract itself is checked by `conformance_memory.rs`.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use webhook_subscriptions::model::{
    DeliveryDetail, EventId, OrganizationId, SecretKey, SubscriptionId, UserId, WebhookSubscription,
};
use webhook_subscriptions::storage::prelude::*;
use webhook_subscriptions::storage::{ClaimedDelivery, NewEvent, NextStep};
use webhook_subscriptions::storage::{
    MemoryStore, MemoryStoreConfig, DEFAULT_DEDUP_WINDOW, DEFAULT_LOG_CAP,
};
use webhook_subscriptions::Error;

const EVENT: &str = "ConversationCreated";

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_704_067_200 + seconds, 0).unwrap()
}

fn subscription(events: &[&str]) -> WebhookSubscription {
    let user = UserId::new_v4();
    WebhookSubscription {
        id: SubscriptionId::new_v4(),
        name: "memory".to_owned(),
        url: "https://receiver.example.com/hook".to_owned(),
        subscribed_events: events.iter().map(|e| (*e).to_owned()).collect(),
        headers: BTreeMap::new(),
        secret_key: SecretKey::from_bytes([0xab; 32]),
        enabled: true,
        created_at: at(0),
        created_by: user,
        updated_at: at(0),
        updated_by: user,
        filters: None,
        previous_secret: None,
    }
}

fn event(org: OrganizationId, published_at: DateTime<Utc>) -> NewEvent {
    NewEvent {
        organization_id: org,
        event_id: EventId::new_v4(),
        event_name: EVENT.to_owned(),
        payload: Bytes::from_static(b"{\"data\":{}}"),
        published_at,
    }
}

fn detail(when: DateTime<Utc>, code: u16) -> DeliveryDetail {
    DeliveryDetail {
        delivery_timestamp: when,
        success: code == 200,
        response_code: code,
        response_text: "text".to_owned(),
    }
}

/// One organization with `subscriptions` subscriptions to [`EVENT`].
async fn store_with(store: &MemoryStore, subscriptions: usize) -> OrganizationId {
    let org = OrganizationId::new_v4();
    for _ in 0..subscriptions {
        store
            .insert_subscription(org, &subscription(&[EVENT]))
            .await
            .unwrap();
    }
    org
}

async fn claim(store: &MemoryStore, now: DateTime<Utc>) -> Vec<ClaimedDelivery> {
    store
        .claim_deliveries(now, Duration::seconds(30), 100_000)
        .await
        .unwrap()
}

#[test]
fn config_defaults_are_a_log_cap_of_100_and_a_day_of_dedup() {
    let config = MemoryStoreConfig::default();
    assert_eq!(config.log_cap, 100);
    assert_eq!(config.log_cap, DEFAULT_LOG_CAP);
    assert_eq!(config.dedup_window, Duration::hours(24));
    assert_eq!(DEFAULT_DEDUP_WINDOW, Duration::hours(24));
    assert_eq!(MemoryStore::new().config(), &config);
    assert_eq!(MemoryStoreConfig::new(), config);
}

#[test]
fn config_setters_set_their_field() {
    let config = MemoryStoreConfig::new()
        .with_log_cap(7)
        .with_dedup_window(Duration::minutes(5));
    assert_eq!(config.log_cap, 7);
    assert_eq!(config.dedup_window, Duration::minutes(5));
    let store = MemoryStore::with_config(config.clone()).unwrap();
    assert_eq!(store.config(), &config);
}

#[test]
fn with_config_refuses_a_zero_log_cap_and_a_negative_window() {
    let zero = MemoryStore::with_config(MemoryStoreConfig::new().with_log_cap(0));
    assert!(
        matches!(zero, Err(Error::InvalidConfiguration(ref m)) if m.contains("log_cap")),
        "{zero:?}"
    );
    let negative =
        MemoryStore::with_config(MemoryStoreConfig::new().with_dedup_window(Duration::seconds(-1)));
    assert!(
        matches!(negative, Err(Error::InvalidConfiguration(ref m)) if m.contains("dedup_window")),
        "{negative:?}"
    );
}

#[tokio::test]
async fn custom_log_cap_keeps_only_the_newest_attempts() {
    let store = MemoryStore::with_config(MemoryStoreConfig::new().with_log_cap(3)).unwrap();
    let org = store_with(&store, 1).await;
    store.enqueue_event(&event(org, at(0))).await.unwrap();
    let mut subscription = None;
    for n in 0..5 {
        let claimed = claim(&store, at(n)).await.remove(0);
        subscription = Some(claimed.delivery.subscription_id);
        store
            .record_attempt(
                &claimed,
                &detail(at(n), 500),
                NextStep::Retry { at: at(n + 1) },
            )
            .await
            .unwrap();
    }
    let logged = store
        .list_attempts(org, subscription.unwrap(), EVENT)
        .await
        .unwrap();
    let times: Vec<_> = logged.iter().map(|a| a.detail.delivery_timestamp).collect();
    assert_eq!(times, [at(4), at(3), at(2)]);
    assert_eq!(store.stats().log_entries, 3);
}

#[tokio::test]
async fn duplicate_event_id_is_ignored_within_the_window_and_enqueued_again_after() {
    let window = Duration::hours(1);
    let store =
        MemoryStore::with_config(MemoryStoreConfig::new().with_dedup_window(window)).unwrap();
    let org = store_with(&store, 1).await;
    let first = event(org, at(0));
    assert_eq!(store.enqueue_event(&first).await.unwrap(), 1);

    let mut again = first.clone();
    again.published_at = at(0) + window - Duration::milliseconds(1);
    assert_eq!(
        store.enqueue_event(&again).await.unwrap(),
        0,
        "within the window"
    );

    again.published_at = at(0) + window;
    assert_eq!(
        store.enqueue_event(&again).await.unwrap(),
        1,
        "after the window"
    );
    again.published_at = at(0) + window + Duration::minutes(1);
    assert_eq!(
        store.enqueue_event(&again).await.unwrap(),
        0,
        "the new publish starts a new window"
    );
}

#[tokio::test]
async fn default_window_remembers_an_event_id_for_a_day() {
    let store = MemoryStore::new();
    let org = store_with(&store, 1).await;
    let first = event(org, at(0));
    assert_eq!(store.enqueue_event(&first).await.unwrap(), 1);
    let mut again = first.clone();
    again.published_at = at(0) + Duration::hours(24) - Duration::seconds(1);
    assert_eq!(store.enqueue_event(&again).await.unwrap(), 0);
    again.published_at = at(0) + Duration::hours(24);
    assert_eq!(store.enqueue_event(&again).await.unwrap(), 1);
}

#[tokio::test]
async fn event_ids_are_forgotten_after_the_window() {
    let store =
        MemoryStore::with_config(MemoryStoreConfig::new().with_dedup_window(Duration::hours(1)))
            .unwrap();
    let org = OrganizationId::new_v4();
    for n in 0..50 {
        store.enqueue_event(&event(org, at(n))).await.unwrap();
    }
    assert_eq!(store.stats().event_ids, 50);
    store
        .enqueue_event(&event(org, at(3600 + 49)))
        .await
        .unwrap();
    assert_eq!(
        store.stats().event_ids,
        1,
        "ids older than the window must be dropped"
    );
}

#[tokio::test]
async fn completed_deliveries_leave_nothing_queued() {
    let store = MemoryStore::new();
    let org = store_with(&store, 10).await;
    for _ in 0..100 {
        assert_eq!(store.enqueue_event(&event(org, at(0))).await.unwrap(), 10);
    }
    assert_eq!(store.stats().pending_deliveries, 1000);

    let claimed = claim(&store, at(0)).await;
    assert_eq!(claimed.len(), 1000);
    assert_eq!(store.stats().leased_deliveries, 1000);
    for c in &claimed {
        store
            .record_attempt(c, &detail(at(1), 200), NextStep::Complete)
            .await
            .unwrap();
    }
    let stats = store.stats();
    assert_eq!(
        (
            stats.pending_deliveries,
            stats.leased_deliveries,
            stats.failed_deliveries
        ),
        (0, 0, 0),
        "completed deliveries must be removed: {stats:?}"
    );
    assert_eq!(
        stats.log_entries, 1000,
        "10 subscriptions x 100 attempts, within the cap"
    );
}

#[tokio::test]
async fn stats_count_each_delivery_state() {
    let store = MemoryStore::new();
    let org = store_with(&store, 3).await;
    store.enqueue_event(&event(org, at(0))).await.unwrap();
    let claimed = claim(&store, at(0)).await;
    store
        .record_attempt(&claimed[0], &detail(at(1), 500), NextStep::Fail)
        .await
        .unwrap();
    store
        .record_attempt(
            &claimed[1],
            &detail(at(1), 500),
            NextStep::Retry { at: at(60) },
        )
        .await
        .unwrap();
    let stats = store.stats();
    assert_eq!(stats.subscriptions, 3);
    assert_eq!(stats.pending_deliveries, 1);
    assert_eq!(stats.leased_deliveries, 1);
    assert_eq!(stats.failed_deliveries, 1);
    assert_eq!(stats.event_ids, 1);
    assert_eq!(stats.log_entries, 2);
}

#[tokio::test]
async fn deleting_subscriptions_frees_their_deliveries_and_logs() {
    let store = MemoryStore::new();
    let org = store_with(&store, 4).await;
    for n in 0..3 {
        store.enqueue_event(&event(org, at(n))).await.unwrap();
    }
    let claimed = claim(&store, at(0)).await;
    for c in &claimed {
        store
            .record_attempt(c, &detail(at(1), 500), NextStep::Fail)
            .await
            .unwrap();
    }
    claim(&store, at(1)).await;
    assert_ne!(store.stats().leased_deliveries, 0);
    assert_ne!(store.stats().pending_deliveries, 0);

    for sub in store.list_subscriptions(org).await.unwrap() {
        assert!(store.delete_subscription(org, sub.id).await.unwrap());
    }
    let stats = store.stats();
    assert_eq!(
        (
            stats.subscriptions,
            stats.pending_deliveries,
            stats.leased_deliveries,
            stats.failed_deliveries,
            stats.log_entries
        ),
        (0, 0, 0, 0, 0),
        "deleting every subscription must free everything but event ids: {stats:?}"
    );
}

#[tokio::test]
async fn payload_bytes_are_shared_not_copied() {
    let store = MemoryStore::new();
    let org = store_with(&store, 3).await;
    let published = NewEvent {
        payload: Bytes::from(vec![b'x'; 4096]),
        ..event(org, at(0))
    };
    store.enqueue_event(&published).await.unwrap();
    let claimed = claim(&store, at(0)).await;
    assert_eq!(claimed.len(), 3);
    for c in &claimed {
        assert_eq!(
            c.delivery.payload.as_ptr(),
            published.payload.as_ptr(),
            "every delivery must share the published buffer"
        );
        store
            .record_attempt(c, &detail(at(1), 200), NextStep::Complete)
            .await
            .unwrap();
        let logged = store
            .list_attempts(org, c.delivery.subscription_id, EVENT)
            .await
            .unwrap();
        assert_eq!(
            logged[0].payload.as_ptr(),
            published.payload.as_ptr(),
            "the log must share the published buffer"
        );
    }
}

#[tokio::test]
async fn a_lease_that_is_already_over_hands_a_delivery_out_once_per_claim() {
    let store = MemoryStore::new();
    let org = store_with(&store, 1).await;
    store.enqueue_event(&event(org, at(0))).await.unwrap();
    let first = store
        .claim_deliveries(at(0), Duration::zero(), 10)
        .await
        .unwrap();
    assert_eq!(
        first.len(),
        1,
        "one delivery, one claim, whatever the lease"
    );
    let second = store
        .claim_deliveries(at(0), Duration::zero(), 10)
        .await
        .unwrap();
    assert_eq!(second.len(), 1, "a lease of zero is over at once");
    assert_ne!(second[0].lease.token, first[0].lease.token);
}

#[tokio::test]
async fn extreme_durations_saturate_instead_of_panicking() {
    let store = MemoryStore::with_config(MemoryStoreConfig::new().with_dedup_window(Duration::MAX))
        .unwrap();
    let org = store_with(&store, 1).await;
    let published = event(org, at(0));
    assert_eq!(store.enqueue_event(&published).await.unwrap(), 1);
    assert_eq!(store.enqueue_event(&published).await.unwrap(), 0);
    let claimed = store
        .claim_deliveries(at(0), Duration::MAX, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].lease.expires_at, DateTime::<Utc>::MAX_UTC);
    assert!(
        claim(&store, DateTime::<Utc>::MAX_UTC - Duration::seconds(1))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn debug_output_shows_counts_not_secrets() {
    let store = MemoryStore::new();
    store_with(&store, 2).await;
    let shown = format!("{store:?}");
    assert!(shown.contains("subscriptions: 2"), "{shown}");
    assert!(!shown.contains(&"ab".repeat(32)), "{shown}");
    assert!(!shown.contains("171, 171"), "no raw secret bytes: {shown}");
}
