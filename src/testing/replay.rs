//! Checks of secret rotation, redelivering failed deliveries and enqueueing
//! for one subscription.

use chrono::{DateTime, Utc};

use super::{
    at, claim, claim_one, detail, enqueue, event, failed, get, insert, record, subscription,
};
use crate::model::{
    DeliveryId, OrganizationId, PreviousSecret, SecretKey, SecretRotation, SubscriptionChange,
    SubscriptionId, UserId,
};
use crate::storage::{ClaimedDelivery, LeaseOutcome, NextStep};
use crate::storage::{FailedSelection, Storage};

/// A rotation stores the new secret and keeps the replaced one with its
/// expiry; reads, later patches and claims carry both; a rotation without
/// a grace period drops the previous secret.
pub async fn rotation_keeps_the_previous_secret(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let sub = subscription("rotating", &["ConversationCreated"]);
    insert(store, org, &sub).await;

    let new_key = SecretKey::from_bytes([0xa5; 32]);
    let mut rotate = SubscriptionChange::touch(at(60), UserId::new_v4());
    rotate.rotate_secret = Some(SecretRotation::new(new_key.clone(), Some(at(3600))));
    let rotated = store
        .update_subscription(org, sub.id, &rotate)
        .await
        .unwrap_or_else(|e| panic!("update_subscription failed: {e:?}"));
    let expected_previous = Some(PreviousSecret::new(sub.secret_key.clone(), at(3600)));
    let rotated = rotated.unwrap_or_else(|| panic!("the rotated subscription must be returned"));
    assert_eq!(
        rotated.secret_key, new_key,
        "a rotation stores the new secret"
    );
    assert_eq!(
        rotated.previous_secret, expected_previous,
        "a rotation keeps the replaced secret with its expiry"
    );
    assert_eq!(
        get(store, org, sub.id).await,
        Some(rotated.clone()),
        "the rotated subscription reads back equal"
    );

    let mut rename = SubscriptionChange::touch(at(120), UserId::new_v4());
    rename.name = Some("renamed".to_owned());
    let renamed = store
        .update_subscription(org, sub.id, &rename)
        .await
        .unwrap_or_else(|e| panic!("update_subscription failed: {e:?}"))
        .unwrap_or_else(|| panic!("the renamed subscription must be returned"));
    assert_eq!(
        (renamed.secret_key.clone(), renamed.previous_secret.clone()),
        (new_key.clone(), expected_previous.clone()),
        "a change without a rotation keeps both secrets"
    );

    enqueue(store, &event(org, "ConversationCreated", at(130)), 1).await;
    let claimed = claim_one(store, at(130)).await;
    assert_eq!(
        claimed.subscription.previous_secret, expected_previous,
        "a claim carries the previous secret for signing"
    );

    let mut retire = SubscriptionChange::touch(at(180), UserId::new_v4());
    let newest = SecretKey::from_bytes([0x3c; 32]);
    retire.rotate_secret = Some(SecretRotation::new(newest.clone(), None));
    let retired = store
        .update_subscription(org, sub.id, &retire)
        .await
        .unwrap_or_else(|e| panic!("update_subscription failed: {e:?}"))
        .unwrap_or_else(|| panic!("the rotated subscription must be returned"));
    assert_eq!(
        (retired.secret_key, retired.previous_secret),
        (newest, None),
        "a rotation without a grace period drops the previous secret"
    );
}

/// Fails one delivery per publishing time in `seconds` for `sub` and
/// returns their ids, in the same order.
async fn failed_deliveries(
    store: &dyn Storage,
    org: OrganizationId,
    sub: SubscriptionId,
    event_name: &str,
    seconds: &[i64],
) -> Vec<DeliveryId> {
    let mut ids = Vec::new();
    for &second in seconds {
        enqueue(store, &event(org, event_name, at(second)), 1).await;
        let claimed = claim_one(store, at(second)).await;
        assert_eq!(claimed.delivery.subscription_id, sub);
        let outcome = record(
            store,
            &claimed,
            &detail(at(second), 500, "no"),
            NextStep::Fail,
        )
        .await;
        assert_eq!(
            outcome,
            LeaseOutcome::Applied,
            "the holder's Fail must apply"
        );
        ids.push(claimed.delivery.id);
    }
    ids
}

async fn complete(store: &dyn Storage, claimed: &ClaimedDelivery) {
    let done = record(
        store,
        claimed,
        &detail(at(0), 200, "OK"),
        NextStep::Complete,
    )
    .await;
    assert_eq!(
        done,
        LeaseOutcome::Applied,
        "the holder's Complete must apply"
    );
}

async fn redeliver_failed(
    store: &dyn Storage,
    org: OrganizationId,
    sub: SubscriptionId,
    which: FailedSelection,
    now: DateTime<Utc>,
    limit: usize,
) -> usize {
    store
        .redeliver_failed(org, sub, which, now, limit)
        .await
        .unwrap_or_else(|e| panic!("redeliver_failed failed: {e:?}"))
}

/// `redeliver_failed` requeues only the subscription's own failed
/// deliveries: one by id, or those due since a time, most recently due
/// first up to the limit, due at `now` with a fresh attempt count. Another
/// subscription's or organization's deliveries are never touched.
pub async fn redeliver_failed_picks_one_or_since(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let stranger = OrganizationId::new_v4();
    let a = subscription("a", &["ConversationCreated"]);
    let b = subscription("b", &["ConversationClosed"]);
    insert(store, org, &a).await;
    insert(store, org, &b).await;
    let of_a = failed_deliveries(store, org, a.id, "ConversationCreated", &[0, 10, 20]).await;
    let of_b = failed_deliveries(store, org, b.id, "ConversationClosed", &[30]).await;

    for (who, sub, delivery) in [
        (stranger, a.id, of_a[1]),
        (org, b.id, of_a[1]),
        (org, a.id, of_b[0]),
        (org, a.id, DeliveryId::new_v4()),
    ] {
        assert_eq!(
            redeliver_failed(store, who, sub, FailedSelection::One(delivery), at(100), 10).await,
            0,
            "redeliver_failed must find only the subscription's own failed delivery"
        );
    }
    assert_eq!(
        redeliver_failed(
            store,
            stranger,
            a.id,
            FailedSelection::Since(at(0)),
            at(100),
            10
        )
        .await,
        0,
        "redeliver_failed must not requeue another organization's deliveries"
    );
    assert_eq!(
        failed(store, org, a.id).await.len(),
        3,
        "nothing was requeued"
    );

    assert_eq!(
        redeliver_failed(store, org, a.id, FailedSelection::One(of_a[1]), at(100), 10).await,
        1,
        "redeliver_failed of one failed delivery requeues it"
    );
    let claimed = claim_one(store, at(100)).await;
    assert_eq!(
        (
            claimed.delivery.id,
            claimed.delivery.attempts,
            claimed.delivery.due_at
        ),
        (of_a[1], 0, at(100)),
        "a requeued delivery is due at now with a fresh attempt count"
    );
    complete(store, &claimed).await;

    assert_eq!(
        redeliver_failed(store, org, a.id, FailedSelection::Since(at(5)), at(200), 1).await,
        1,
        "redeliver_failed stops at the limit"
    );
    let claimed = claim_one(store, at(200)).await;
    assert_eq!(
        claimed.delivery.id, of_a[2],
        "the most recently due failed delivery is requeued first"
    );
    complete(store, &claimed).await;
    assert_eq!(
        redeliver_failed(store, org, a.id, FailedSelection::Since(at(5)), at(300), 10).await,
        0,
        "deliveries due before `since` are left failed"
    );
    assert_eq!(
        redeliver_failed(store, org, a.id, FailedSelection::Since(at(0)), at(300), 10).await,
        1,
        "`since` includes deliveries due exactly then"
    );
    assert_eq!(claim_one(store, at(300)).await.delivery.id, of_a[0]);
    let left: Vec<DeliveryId> = failed(store, org, b.id)
        .await
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(
        left, of_b,
        "another subscription's failed delivery stays failed"
    );
}

/// `enqueue_for_subscription` queues one delivery for that subscription
/// alone, whatever it subscribes to, and remembers the event id; it finds
/// nothing in another organization.
pub async fn enqueue_for_subscription_reaches_one_subscription(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let target = subscription("target", &["ConversationCreated"]);
    let bystander = subscription("bystander", &["WebhookTest"]);
    insert(store, org, &target).await;
    insert(store, org, &bystander).await;
    let test = event(org, "WebhookTest", at(5));

    let stranger = event(OrganizationId::new_v4(), "WebhookTest", at(5));
    let enqueue_for = |event, sub| store.enqueue_for_subscription(event, sub);
    for (what, queued) in [
        (
            "another organization",
            enqueue_for(&stranger, target.id).await,
        ),
        (
            "an unknown subscription",
            enqueue_for(&test, SubscriptionId::new_v4()).await,
        ),
    ] {
        let queued = queued.unwrap_or_else(|e| panic!("enqueue_for_subscription failed: {e:?}"));
        assert_eq!(
            queued, None,
            "enqueue_for_subscription must not find {what}"
        );
    }
    let queued = enqueue_for(&test, target.id)
        .await
        .unwrap_or_else(|e| panic!("enqueue_for_subscription failed: {e:?}"));
    let Some(id) = queued else {
        panic!("enqueue_for_subscription must queue for an existing subscription")
    };
    let claimed = claim(store, at(5)).await;
    assert_eq!(claimed.len(), 1, "only the target receives the event");
    let delivery = &claimed[0].delivery;
    assert_eq!(
        (delivery.id, delivery.subscription_id, delivery.event_id),
        (id, target.id, test.event_id),
        "the delivery is the target's, with the returned id"
    );
    assert_eq!(
        (&*delivery.event_name, &delivery.payload, delivery.due_at),
        ("WebhookTest", &test.payload, at(5)),
        "the delivery carries the event as given, due at published_at"
    );
    let again = enqueue_for(&test, target.id)
        .await
        .unwrap_or_else(|e| panic!("enqueue_for_subscription failed: {e:?}"));
    assert_eq!(again, None, "an event id already enqueued enqueues nothing");
    enqueue(store, &test, 0).await;
}
