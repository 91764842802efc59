//! Checks that an organization never sees or changes another's data.

use super::{
    at, attempts, claim, claim_one, detail, enqueue, event, failed, get, insert, record, redeliver,
    statuses, subscription,
};
use crate::model::{OrganizationId, SubscriptionChange, UserId};
use crate::storage::Storage;
use crate::storage::{LeaseOutcome, NextStep};

/// Reading, listing, updating or deleting another organization's
/// subscription behaves as if it did not exist and changes nothing.
pub async fn organizations_are_isolated(store: &dyn Storage) {
    let owner = OrganizationId::new_v4();
    let stranger = OrganizationId::new_v4();
    let sub = subscription("owned", &["ConversationCreated"]);
    insert(store, owner, &sub).await;

    assert_eq!(
        get(store, stranger, sub.id).await,
        None,
        "get_subscription must not find another organization's subscription"
    );
    let listed = store
        .list_subscriptions(stranger)
        .await
        .unwrap_or_else(|e| panic!("list_subscriptions failed: {e:?}"));
    assert!(
        listed.is_empty(),
        "list_subscriptions must not show another organization's subscriptions"
    );

    let mut change = SubscriptionChange::touch(at(60), UserId::new_v4());
    change.name = Some("hijacked".to_owned());
    change.enabled = Some(false);
    let updated = store
        .update_subscription(stranger, sub.id, &change)
        .await
        .unwrap_or_else(|e| panic!("update_subscription failed: {e:?}"));
    assert_eq!(
        updated, None,
        "update_subscription must not find another organization's subscription"
    );

    let deleted = store
        .delete_subscription(stranger, sub.id)
        .await
        .unwrap_or_else(|e| panic!("delete_subscription failed: {e:?}"));
    assert!(
        !deleted,
        "delete_subscription must not find another organization's subscription"
    );

    assert_eq!(
        get(store, owner, sub.id).await,
        Some(sub),
        "another organization's update or delete must leave the subscription unchanged"
    );
}

/// Failed deliveries, redelivery, attempt logs and latest statuses of
/// another organization's subscription behave as missing and change nothing.
pub async fn logs_and_failures_are_isolated(store: &dyn Storage) {
    let owner = OrganizationId::new_v4();
    let stranger = OrganizationId::new_v4();
    let sub = subscription("owned", &["ConversationCreated"]);
    insert(store, owner, &sub).await;
    enqueue(store, &event(owner, "ConversationCreated", at(0)), 1).await;
    let claimed = claim_one(store, at(0)).await;
    let outcome = record(store, &claimed, &detail(at(1), 500, "boom"), NextStep::Fail).await;
    assert_eq!(
        outcome,
        LeaseOutcome::Applied,
        "the lease holder's Fail must apply"
    );

    let seen = store
        .failed_deliveries(stranger, sub.id, 10)
        .await
        .unwrap_or_else(|e| panic!("failed_deliveries failed: {e:?}"));
    assert!(
        seen.is_empty(),
        "failed_deliveries must not show another organization's deliveries"
    );
    assert!(
        !redeliver(store, stranger, claimed.delivery.id, at(60)).await,
        "redeliver must not find another organization's delivery"
    );
    assert!(
        claim(store, at(3600)).await.is_empty(),
        "another organization's redeliver must not requeue the delivery"
    );
    let still_failed = failed(store, owner, sub.id).await;
    assert_eq!(
        still_failed.len(),
        1,
        "another organization's redeliver must leave the delivery failed"
    );

    assert!(
        attempts(store, stranger, sub.id, "ConversationCreated")
            .await
            .is_empty(),
        "list_attempts must not show another organization's logs"
    );
    assert!(
        statuses(store, stranger, sub.id).await.is_empty(),
        "latest_statuses must not show another organization's statuses"
    );
    assert_eq!(
        attempts(store, owner, sub.id, "ConversationCreated")
            .await
            .len(),
        1,
        "the owner must still see its attempt"
    );
    assert_eq!(
        statuses(store, owner, sub.id).await.len(),
        1,
        "the owner must still see its status"
    );
}

/// An event is delivered only to its own organization's subscriptions, even
/// when another organization subscribes to the same event name.
pub async fn enqueue_stays_in_organization(store: &dyn Storage) {
    let first = OrganizationId::new_v4();
    let second = OrganizationId::new_v4();
    let mine = subscription("mine", &["ConversationCreated"]);
    let theirs = subscription("theirs", &["ConversationCreated"]);
    insert(store, first, &mine).await;
    insert(store, second, &theirs).await;

    enqueue(store, &event(first, "ConversationCreated", at(0)), 1).await;
    let claimed = claim_one(store, at(0)).await;
    assert_eq!(
        (
            claimed.delivery.organization_id,
            claimed.delivery.subscription_id
        ),
        (first, mine.id),
        "an event must be delivered only to its own organization's subscriptions"
    );
    assert_eq!(
        *claimed.subscription, mine,
        "a claim must carry the delivery's own subscription"
    );
}
