//! Checks of fan-out against the rule in `delivery::select_targets`, and of
//! persisting a fan-out chosen by the caller.

use std::collections::BTreeSet;

use super::{at, claim, event, insert, subscription};
use crate::delivery::select_targets;
use crate::model::{OrganizationId, SubscriptionChange, SubscriptionId, UserId};
use crate::storage::Storage;

/// The event names the fan-out checks publish.
const NAMES: [&str; 4] = [
    "ConversationCreated",
    "ConversationClosed",
    "ConversationNoteAdded",
    "NobodyWantsThis",
];

/// Whatever a store does to find them fast, `enqueue_event` picks exactly
/// the subscriptions `select_targets` picks from `list_subscriptions`: over
/// 24 subscriptions with every combination of three events, some disabled
/// (at insert or later), some with their events changed, one deleted, and
/// a second organization with the same events.
pub async fn enqueue_follows_the_fan_out_rule(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let neighbour = OrganizationId::new_v4();
    let editor = UserId::new_v4();
    let mut ids = Vec::new();
    for i in 0..24_usize {
        let events: Vec<&str> = NAMES[..3]
            .iter()
            .enumerate()
            .filter(|(bit, _)| i & (1 << bit) != 0)
            .map(|(_, name)| *name)
            .collect();
        let mut sub = subscription(&format!("sub-{i}"), &events);
        sub.enabled = i % 5 != 4;
        insert(store, org, &sub).await;
        insert(store, neighbour, &subscription(&format!("n-{i}"), &events)).await;
        ids.push(sub.id);
    }
    for (i, id) in ids.iter().enumerate() {
        let mut change = SubscriptionChange::touch(at(1), editor);
        match i % 6 {
            1 => change.enabled = Some(false),
            2 => change.events = Some(vec![NAMES[(i / 6) % 3].to_owned()]),
            3 => change.enabled = Some(true),
            _ => continue,
        }
        store
            .update_subscription(org, *id, &change)
            .await
            .unwrap_or_else(|e| panic!("update_subscription failed: {e:?}"));
    }
    let deleted = store
        .delete_subscription(org, ids[7])
        .await
        .unwrap_or_else(|e| panic!("delete_subscription failed: {e:?}"));
    assert!(deleted, "the subscription to delete must exist");

    let subscriptions = store
        .list_subscriptions(org)
        .await
        .unwrap_or_else(|e| panic!("list_subscriptions failed: {e:?}"));
    for (n, name) in NAMES.iter().enumerate() {
        let published = event(org, name, at(10 + n as i64));
        let expected: BTreeSet<SubscriptionId> = select_targets(&published, &subscriptions)
            .into_iter()
            .collect();
        let enqueued = store
            .enqueue_event(&published)
            .await
            .unwrap_or_else(|e| panic!("enqueue_event failed: {e:?}"));
        let claimed = claim(store, at(10 + n as i64)).await;
        let got: BTreeSet<SubscriptionId> =
            claimed.iter().map(|c| c.delivery.subscription_id).collect();
        assert_eq!(
            got, expected,
            "enqueue_event of {name} must reach exactly the subscriptions select_targets picks"
        );
        assert_eq!(
            (enqueued, claimed.len()),
            (expected.len(), expected.len()),
            "enqueue_event of {name} must enqueue and report one delivery per target"
        );
        assert!(
            claimed
                .iter()
                .all(|c| c.delivery.event_id == published.event_id),
            "the deliveries claimed must be of the event just published"
        );
    }
}

/// `enqueue_deliveries` persists the targets it is given, whatever they
/// subscribe to, skips ids that are not subscriptions of the event's
/// organization, returns the ids it queued, and takes an event id once.
pub async fn enqueue_deliveries_persists_the_chosen_targets(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let other = OrganizationId::new_v4();
    let mut chosen = subscription("chosen", &["ConversationClosed"]);
    chosen.enabled = false;
    let also = subscription("also", &[]);
    let left_out = subscription("left-out", &["ConversationCreated"]);
    let stranger = subscription("stranger", &["ConversationCreated"]);
    for sub in [&chosen, &also, &left_out] {
        insert(store, org, sub).await;
    }
    insert(store, other, &stranger).await;
    let published = event(org, "ConversationCreated", at(5));
    let targets = [chosen.id, stranger.id, SubscriptionId::new_v4(), also.id];

    let queued = store
        .enqueue_deliveries(&published, &targets)
        .await
        .unwrap_or_else(|e| panic!("enqueue_deliveries failed: {e:?}"));
    let claimed = claim(store, at(5)).await;
    let by_id: BTreeSet<_> = claimed
        .iter()
        .map(|c| (c.delivery.id, c.delivery.subscription_id))
        .collect();
    let returned: BTreeSet<_> = queued.iter().copied().collect();
    assert_eq!(
        by_id.iter().map(|(_, sub)| *sub).collect::<BTreeSet<_>>(),
        BTreeSet::from([chosen.id, also.id]),
        "only the given targets of the event's organization receive it"
    );
    assert_eq!(
        by_id.iter().map(|(id, _)| *id).collect::<BTreeSet<_>>(),
        returned,
        "enqueue_deliveries must return the ids of the deliveries it queued"
    );
    assert_eq!(queued.len(), 2, "one delivery per existing target");
    assert!(
        claimed.iter().all(|c| c.delivery.due_at == at(5)
            && c.delivery.event_id == published.event_id
            && c.delivery.payload == published.payload),
        "the deliveries carry the event as given, due at published_at"
    );

    let again = store
        .enqueue_deliveries(&published, &[left_out.id])
        .await
        .unwrap_or_else(|e| panic!("enqueue_deliveries failed: {e:?}"));
    assert!(
        again.is_empty(),
        "an event id already enqueued queues nothing"
    );
    let none = store
        .enqueue_event(&published)
        .await
        .unwrap_or_else(|e| panic!("enqueue_event failed: {e:?}"));
    assert_eq!(none, 0, "enqueue_event of the same event id queues nothing");
}
