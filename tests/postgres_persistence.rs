//! What a `PostgresStore` keeps: data across reconnects, exact attempt
//! details, event ids until pruned, and the host-transaction outbox.
//! Needs `DATABASE_URL`.
#![cfg(feature = "postgres")]

mod postgres_support;

use chrono::Duration;
use postgres_support::{at, detail, event, pool, subscription, TestDb};
use webhook_subscriptions::model::{OrganizationId, SubscriptionChange, UserId};
use webhook_subscriptions::storage::prelude::*;
use webhook_subscriptions::storage::{DeliveryState, LeaseOutcome, NextStep};
use webhook_subscriptions::storage::{PostgresStore, PostgresStoreConfig};

const EVENT: &str = "ConversationCreated";

fn store_on(pool: sqlx::PgPool, schema: &str) -> PostgresStore {
    PostgresStore::from_pool_with_config(pool, PostgresStoreConfig::new().with_schema(schema))
        .unwrap_or_else(|e| panic!("store config refused: {e:?}"))
}

#[tokio::test]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn everything_survives_closing_the_pool_and_reconnecting() {
    let Some(db) = TestDb::connect("everything_survives_reconnecting").await else {
        return;
    };
    let schema = db.schema();
    let org = OrganizationId::new_v4();
    let mut sub = subscription("durable", &[EVENT, "ConversationClosed"]);
    sub.filters = Some(serde_json::json!({"Conversation": {"_type": "CombinedFilters"}}));
    let published = event(org, EVENT, at(0));

    let before = {
        let first_pool = pool(&db.url).await;
        let store = store_on(first_pool.clone(), &schema);
        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrate failed: {e:?}"));
        store
            .insert_subscription(org, &sub)
            .await
            .unwrap_or_else(|e| panic!("insert_subscription failed: {e:?}"));
        let queued = store
            .enqueue_event(&published)
            .await
            .unwrap_or_else(|e| panic!("enqueue_event failed: {e:?}"));
        assert_eq!(queued, 1);
        let mut claimed = store
            .claim_deliveries(at(0), Duration::seconds(30), 10)
            .await
            .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
        assert_eq!(claimed.len(), 1);
        let claimed = claimed.remove(0);
        let outcome = store
            .record_attempt(
                &claimed,
                &detail(at(1), 500, "boom"),
                NextStep::Retry { at: at(60) },
            )
            .await
            .unwrap_or_else(|e| panic!("record_attempt failed: {e:?}"));
        assert_eq!(outcome, LeaseOutcome::Applied);
        drop(store);
        first_pool.close().await;
        claimed
    };

    let store = store_on(pool(&db.url).await, &schema);
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("migrate after a restart failed: {e:?}"));
    assert_eq!(
        store
            .get_subscription(org, sub.id)
            .await
            .unwrap_or_else(|e| panic!("get_subscription failed: {e:?}")),
        Some(sub.clone()),
        "the subscription must survive a reconnect"
    );
    let logged = store
        .list_attempts(org, sub.id, EVENT)
        .await
        .unwrap_or_else(|e| panic!("list_attempts failed: {e:?}"));
    assert_eq!(logged.len(), 1, "the attempt log must survive a reconnect");
    assert_eq!(logged[0].detail, detail(at(1), 500, "boom"));
    assert_eq!(logged[0].payload, published.payload);
    let after = store
        .claim_deliveries(at(60), Duration::seconds(30), 10)
        .await
        .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
    assert_eq!(after.len(), 1, "the queued retry must survive a reconnect");
    let delivery = &after[0].delivery;
    assert_eq!(delivery.id, before.delivery.id);
    assert_eq!(delivery.attempts, 1);
    assert_eq!(delivery.due_at, at(60));
    assert_eq!(delivery.state, DeliveryState::Leased);
    assert_eq!(delivery.payload, published.payload);
    assert_eq!(*after[0].subscription, sub);
    let again = store
        .enqueue_event(&published)
        .await
        .unwrap_or_else(|e| panic!("enqueue_event failed: {e:?}"));
    assert_eq!(
        again, 0,
        "the event id must still be known after a reconnect"
    );
    drop(store);
    db.cleanup().await;
}

#[tokio::test]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn attempt_details_round_trip_exactly_even_with_nul_and_non_ascii() {
    let Some(db) = TestDb::connect("attempt_details_round_trip_exactly").await else {
        return;
    };
    let store = db.store().await;
    let org = OrganizationId::new_v4();
    let sub = subscription("odd-bodies", &[EVENT]);
    store
        .insert_subscription(org, &sub)
        .await
        .unwrap_or_else(|e| panic!("insert_subscription failed: {e:?}"));
    store
        .enqueue_event(&event(org, EVENT, at(0)))
        .await
        .unwrap_or_else(|e| panic!("enqueue_event failed: {e:?}"));
    // A receiver's body may hold anything; it must not break recording.
    let odd = "nul \0 byte, h\u{e9}llo \u{2713}, \u{FFFD}";
    let mut claimed = store
        .claim_deliveries(at(0), Duration::seconds(30), 10)
        .await
        .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
    let outcome = store
        .record_attempt(&claimed.remove(0), &detail(at(1), 418, odd), NextStep::Fail)
        .await
        .unwrap_or_else(|e| panic!("record_attempt failed: {e:?}"));
    assert_eq!(outcome, LeaseOutcome::Applied);
    let statuses = store
        .latest_statuses(org, sub.id)
        .await
        .unwrap_or_else(|e| panic!("latest_statuses failed: {e:?}"));
    assert_eq!(
        statuses,
        [(EVENT.to_owned(), detail(at(1), 418, odd))],
        "the response text must come back byte for byte"
    );
    drop(store);
    db.cleanup().await;
}

#[tokio::test]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn pruning_forgets_only_old_event_ids_nothing_needs() {
    let Some(db) = TestDb::connect("pruning_forgets_only_old_event_ids").await else {
        return;
    };
    let store = db
        .store_with(PostgresStoreConfig::new().with_dedup_window(Duration::hours(1)))
        .await;
    let org = OrganizationId::new_v4();
    store
        .insert_subscription(org, &subscription("s", &[EVENT]))
        .await
        .unwrap_or_else(|e| panic!("insert_subscription failed: {e:?}"));
    let unheard = event(org, "ConversationRated", at(0));
    let queued = event(org, EVENT, at(0));
    let delivered = event(org, EVENT, at(0));
    let recent = event(org, "ConversationRated", at(3000));
    for (e, expected) in [(&unheard, 0), (&queued, 1), (&delivered, 1), (&recent, 0)] {
        let count = store
            .enqueue_event(e)
            .await
            .unwrap_or_else(|e| panic!("enqueue_event failed: {e:?}"));
        assert_eq!(count, expected);
    }
    // `delivered` completes (its log keeps the payload); `queued` stays queued.
    let claimed = store
        .claim_deliveries(at(0), Duration::seconds(30), 10)
        .await
        .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
    for claim in claimed {
        if claim.delivery.event_id == delivered.event_id {
            let outcome = store
                .record_attempt(&claim, &detail(at(1), 200, "OK"), NextStep::Complete)
                .await
                .unwrap_or_else(|e| panic!("record_attempt failed: {e:?}"));
            assert_eq!(outcome, LeaseOutcome::Applied);
        }
    }

    // Cut-off: published at or before at(1800).
    let forgotten = store
        .prune_events(at(5400))
        .await
        .unwrap_or_else(|e| panic!("prune_events failed: {e:?}"));
    assert_eq!(
        forgotten, 1,
        "only the old event nothing refers to may be forgotten"
    );
    // The forgotten id is new again; the others are still duplicates.
    let late_subscriber = subscription("late", &["ConversationRated"]);
    store
        .insert_subscription(org, &late_subscriber)
        .await
        .unwrap_or_else(|e| panic!("insert_subscription failed: {e:?}"));
    for (e, expected, why) in [
        (&unheard, 1, "a forgotten event id is enqueued again"),
        (&queued, 0, "an id with a queued delivery is remembered"),
        (&delivered, 0, "an id with a logged attempt is remembered"),
        (&recent, 0, "an id inside the window is remembered"),
    ] {
        let count = store
            .enqueue_event(e)
            .await
            .unwrap_or_else(|e| panic!("enqueue_event failed: {e:?}"));
        assert_eq!(count, expected, "{why}");
    }
    drop(store);
    db.cleanup().await;
}

#[tokio::test]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn an_event_enqueued_in_the_hosts_transaction_follows_its_commit() {
    let Some(db) = TestDb::connect("an_event_enqueued_in_the_hosts_transaction").await else {
        return;
    };
    let store = db.store().await;
    let org = OrganizationId::new_v4();
    let sub = subscription("outbox", &[EVENT]);
    store
        .insert_subscription(org, &sub)
        .await
        .unwrap_or_else(|e| panic!("insert_subscription failed: {e:?}"));
    let rolled_back = event(org, EVENT, at(0));
    let committed = event(org, EVENT, at(0));

    let mut tx = db
        .pool
        .begin()
        .await
        .unwrap_or_else(|e| panic!("begin failed: {e}"));
    let queued = store
        .enqueue_event_in(&mut tx, &rolled_back)
        .await
        .unwrap_or_else(|e| panic!("enqueue_event_in failed: {e:?}"));
    assert_eq!(queued, 1, "inside the transaction the event is queued");
    tx.rollback()
        .await
        .unwrap_or_else(|e| panic!("rollback failed: {e}"));

    let mut tx = db
        .pool
        .begin()
        .await
        .unwrap_or_else(|e| panic!("begin failed: {e}"));
    let queued = store
        .enqueue_event_in(&mut tx, &committed)
        .await
        .unwrap_or_else(|e| panic!("enqueue_event_in failed: {e:?}"));
    assert_eq!(queued, 1);
    let invisible = store
        .claim_deliveries(at(0), Duration::seconds(30), 10)
        .await
        .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
    assert!(
        invisible.is_empty(),
        "workers must not see an event before the host commits"
    );
    tx.commit()
        .await
        .unwrap_or_else(|e| panic!("commit failed: {e}"));

    let claimed = store
        .claim_deliveries(at(0), Duration::seconds(30), 10)
        .await
        .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
    let events: Vec<_> = claimed.iter().map(|c| c.delivery.event_id).collect();
    assert_eq!(
        events,
        [committed.event_id],
        "only the committed event is queued"
    );
    let retried = store
        .enqueue_event(&rolled_back)
        .await
        .unwrap_or_else(|e| panic!("enqueue_event failed: {e:?}"));
    assert_eq!(
        retried, 1,
        "a rolled-back event id was never used and can be published again"
    );
    drop(store);
    db.cleanup().await;
}

#[tokio::test]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn a_patch_returns_what_is_stored() {
    let Some(db) = TestDb::connect("a_patch_returns_what_is_stored").await else {
        return;
    };
    let store = db.store().await;
    let org = OrganizationId::new_v4();
    let sub = subscription("patched", &[EVENT]);
    store
        .insert_subscription(org, &sub)
        .await
        .unwrap_or_else(|e| panic!("insert_subscription failed: {e:?}"));
    let mut change = SubscriptionChange::touch(at(60), UserId::new_v4());
    change.events = Some(vec!["ConversationClosed".to_owned(), EVENT.to_owned()]);
    let patched = store
        .update_subscription(org, sub.id, &change)
        .await
        .unwrap_or_else(|e| panic!("update_subscription failed: {e:?}"));
    let stored = store
        .get_subscription(org, sub.id)
        .await
        .unwrap_or_else(|e| panic!("get_subscription failed: {e:?}"));
    assert_eq!(patched, stored, "the patch result is the stored row");
    let closed = store
        .enqueue_event(&event(org, "ConversationClosed", at(61)))
        .await
        .unwrap_or_else(|e| panic!("enqueue_event failed: {e:?}"));
    assert_eq!(closed, 1, "a patch's new events take part in fan-out");
    drop(store);
    db.cleanup().await;
}
