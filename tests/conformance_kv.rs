//! The storage conformance suite over `KvStore`, a Redis-shaped toy store
//! (see `kv_store/mod.rs`): proof that the `Storage` contract fits a
//! key-value backend with Redis's data types and atomic scripts.
#![cfg(feature = "testing")]

mod kv_store;

use kv_store::KvStore;

/// A fresh, empty store for one check.
async fn make_store() -> KvStore {
    KvStore::default()
}

webhook_subscriptions::conformance_tests!(make_store);

mod beyond_the_suite {
    use bytes::Bytes;
    use chrono::{DateTime, Duration, Utc};
    use webhook_subscriptions::model::{
        DeliveryDetail, EventId, OrganizationId, SecretKey, SubscriptionId, UserId,
        WebhookSubscription,
    };
    use webhook_subscriptions::storage::prelude::*;
    use webhook_subscriptions::storage::{NewEvent, NextStep};
    use webhook_subscriptions::testing::base_time;

    use super::KvStore;

    const EVENT: &str = "ConversationCreated";

    fn at(seconds: i64) -> DateTime<Utc> {
        base_time() + Duration::seconds(seconds)
    }

    async fn store_with_subscription() -> (KvStore, OrganizationId, WebhookSubscription) {
        let store = KvStore::default();
        let org = OrganizationId::new_v4();
        let user = UserId::new_v4();
        let sub = WebhookSubscription {
            id: SubscriptionId::new_v4(),
            name: "kv".to_owned(),
            url: "https://receiver.example.com/hook".to_owned(),
            subscribed_events: vec![EVENT.to_owned()],
            headers: Default::default(),
            secret_key: SecretKey::from_bytes([7; 32]),
            enabled: true,
            created_at: at(0),
            created_by: user,
            updated_at: at(0),
            updated_by: user,
            filters: None,
            previous_secret: None,
        };
        store.insert_subscription(org, &sub).await.expect("insert");
        (store, org, sub)
    }

    async fn publish(store: &KvStore, org: OrganizationId, count: usize) {
        for _ in 0..count {
            let event = NewEvent {
                organization_id: org,
                event_id: EventId::new_v4(),
                event_name: EVENT.to_owned(),
                payload: Bytes::from_static(b"{}"),
                published_at: at(0),
            };
            assert_eq!(store.enqueue_event(&event).await.expect("enqueue"), 1);
        }
    }

    fn failure(when: DateTime<Utc>) -> DeliveryDetail {
        DeliveryDetail {
            delivery_timestamp: when,
            success: false,
            response_code: 500,
            response_text: "no".to_owned(),
        }
    }

    /// `prune` runs bounded scripts until nothing old is left: more failed
    /// deliveries than one batch all go, with the capped log.
    #[tokio::test]
    async fn prune_runs_in_bounded_batches() {
        let (store, org, sub) = store_with_subscription().await;
        publish(&store, org, 250).await;
        let claimed = store
            .claim_deliveries(at(1), Duration::seconds(30), 1_000)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 250);
        for claim in &claimed {
            store
                .record_attempt(claim, &failure(at(1)), NextStep::Fail)
                .await
                .expect("record");
        }
        let removed = store.prune(at(2), at(2)).await.expect("prune");
        assert_eq!(
            removed,
            250 + 100,
            "every failed delivery and the capped log"
        );
        let left = store
            .failed_deliveries(org, sub.id, 1_000)
            .await
            .expect("failed");
        assert!(left.is_empty());
    }

    /// Deleting a subscription and pruning leaves no key behind but the
    /// counters: the indexes are all kept in step.
    #[tokio::test]
    async fn nothing_is_left_behind() {
        let (store, org, sub) = store_with_subscription().await;
        publish(&store, org, 4).await;
        let claimed = store
            .claim_deliveries(at(1), Duration::seconds(30), 10)
            .await
            .expect("claim");
        let steps = [
            NextStep::Fail,
            NextStep::Retry { at: at(60) },
            NextStep::Complete,
        ];
        for (claim, next) in claimed.iter().zip(steps) {
            store
                .record_attempt(claim, &failure(at(1)), next)
                .await
                .expect("record");
        }
        assert!(store
            .delete_subscription(org, sub.id)
            .await
            .expect("delete"));
        store
            .prune(at(0) + Duration::days(2), at(0))
            .await
            .expect("prune");
        assert_eq!(store.keys(), ["seq", "tokens"]);
    }
}
