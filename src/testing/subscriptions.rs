//! Checks of subscription storage: create, read, list, update, delete.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::json;
use tokio::sync::Barrier;

use super::{at, get, insert, subscription};
use crate::model::{
    OrganizationId, SubscriptionChange, SubscriptionId, UserId, AUTHORIZATION_HEADER,
};
use crate::storage::Storage;

/// A stored subscription reads back equal, every field included; an unknown
/// id reads as `None`.
pub async fn insert_and_get(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let mut full = subscription("full", &["ConversationCreated", "ConversationClosed"]);
    full.headers = BTreeMap::from([
        (AUTHORIZATION_HEADER.to_owned(), "Bearer s3cr3t".to_owned()),
        ("X-Team".to_owned(), "blue".to_owned()),
    ]);
    full.filters = Some(
        json!({"Conversation": {"_type": "CombinedFilters", "strategy": "All", "conditions": []}}),
    );
    full.updated_at = at(61);
    full.updated_by = UserId::new_v4();
    let mut bare = subscription("bare", &[]);
    bare.enabled = false;

    insert(store, org, &full).await;
    insert(store, org, &bare).await;

    for sub in [&full, &bare] {
        let got = get(store, org, sub.id).await;
        assert_eq!(
            got.as_ref(),
            Some(sub),
            "get_subscription must return the subscription exactly as inserted"
        );
    }
    let unknown = get(store, org, SubscriptionId::new_v4()).await;
    assert_eq!(
        unknown, None,
        "get_subscription of an unknown id must be None"
    );
}

/// `list_subscriptions` returns one organization's subscriptions, oldest
/// `created_at` first, ties in insertion order.
pub async fn list_oldest_first(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let other = OrganizationId::new_v4();
    let empty = store
        .list_subscriptions(org)
        .await
        .unwrap_or_else(|e| panic!("list_subscriptions failed: {e:?}"));
    assert!(
        empty.is_empty(),
        "an organization without subscriptions must list none"
    );

    let created = [
        ("newest", 20),
        ("tie-first", 10),
        ("tie-second", 10),
        ("oldest", 0),
        ("tie-third", 10),
    ];
    let mut subs = Vec::new();
    for (name, second) in created {
        let mut sub = subscription(name, &["ConversationCreated"]);
        sub.created_at = at(second);
        sub.updated_at = at(second);
        insert(store, org, &sub).await;
        subs.push(sub);
    }
    insert(
        store,
        other,
        &subscription("elsewhere", &["ConversationCreated"]),
    )
    .await;

    let listed = store
        .list_subscriptions(org)
        .await
        .unwrap_or_else(|e| panic!("list_subscriptions failed: {e:?}"));
    let names: Vec<&str> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["oldest", "tie-first", "tie-second", "tie-third", "newest"],
        "list_subscriptions must order by created_at, ties in insertion order, and hold only the organization's own"
    );
    for sub in &listed {
        let inserted = subs.iter().find(|s| s.id == sub.id);
        assert_eq!(
            inserted,
            Some(sub),
            "list_subscriptions must return subscriptions exactly as inserted"
        );
    }
}

/// `update_subscription` applies every field of a change, leaves absent
/// fields alone, stamps `updated_at`/`updated_by`, and returns `None` for an
/// unknown id.
pub async fn update_applies_change(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let mut original = subscription("before", &["ConversationCreated"]);
    original.headers = BTreeMap::from([
        (AUTHORIZATION_HEADER.to_owned(), "Bearer old".to_owned()),
        ("X-Old".to_owned(), "1".to_owned()),
    ]);
    insert(store, org, &original).await;

    // Only the name: everything else stays.
    let editor = UserId::new_v4();
    let mut rename = SubscriptionChange::touch(at(60), editor);
    rename.name = Some("after".to_owned());
    let mut expected = original.clone();
    expected.name = "after".to_owned();
    expected.updated_at = at(60);
    expected.updated_by = editor;
    let got = update(store, org, original.id, &rename).await;
    assert_eq!(
        got.as_ref(),
        Some(&expected),
        "a name-only change must change the name and the update stamps, nothing else"
    );

    // Everything else at once; the Authorization header is removed.
    let mut everything = SubscriptionChange::touch(at(120), editor);
    everything.url = Some("https://other.example.com/new".to_owned());
    everything.events = Some(vec![
        "ConversationClosed".to_owned(),
        "ConversationNoteAdded".to_owned(),
    ]);
    everything.authorization_header = Some(None);
    everything.custom_headers = Some(BTreeMap::from([("X-New".to_owned(), "2".to_owned())]));
    everything.enabled = Some(false);
    expected.url = "https://other.example.com/new".to_owned();
    expected.subscribed_events = vec![
        "ConversationClosed".to_owned(),
        "ConversationNoteAdded".to_owned(),
    ];
    expected.headers = BTreeMap::from([("X-New".to_owned(), "2".to_owned())]);
    expected.enabled = false;
    expected.updated_at = at(120);
    let got = update(store, org, original.id, &everything).await;
    assert_eq!(
        got.as_ref(),
        Some(&expected),
        "a change of every field must apply each of them"
    );

    // A new Authorization header keeps the custom headers.
    let mut authorize = SubscriptionChange::touch(at(180), editor);
    authorize.authorization_header = Some(Some("Basic dXNlcjpwYXNz".to_owned()));
    expected.headers.insert(
        AUTHORIZATION_HEADER.to_owned(),
        "Basic dXNlcjpwYXNz".to_owned(),
    );
    expected.updated_at = at(180);
    let got = update(store, org, original.id, &authorize).await;
    assert_eq!(
        got.as_ref(),
        Some(&expected),
        "setting the Authorization header must keep the custom headers"
    );

    let stored = get(store, org, original.id).await;
    assert_eq!(
        stored.as_ref(),
        Some(&expected),
        "get_subscription must return the updated subscription"
    );

    let missing = update(store, org, SubscriptionId::new_v4(), &rename).await;
    assert_eq!(
        missing, None,
        "update_subscription of an unknown id must be None"
    );
}

/// `delete_subscription` reports whether the subscription existed and removes
/// it from reads and lists; other subscriptions stay.
pub async fn delete_removes_subscription(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let doomed = subscription("doomed", &["ConversationCreated"]);
    let kept = subscription("kept", &["ConversationCreated"]);
    insert(store, org, &doomed).await;
    insert(store, org, &kept).await;

    assert!(
        delete(store, org, doomed.id).await,
        "deleting an existing subscription must return true"
    );
    let gone = get(store, org, doomed.id).await;
    assert_eq!(gone, None, "a deleted subscription must not be found");
    let listed = store
        .list_subscriptions(org)
        .await
        .unwrap_or_else(|e| panic!("list_subscriptions failed: {e:?}"));
    assert_eq!(
        listed,
        [kept],
        "a deleted subscription must leave the list, the others stay"
    );
    assert!(
        !delete(store, org, doomed.id).await,
        "deleting a subscription twice must return false the second time"
    );
    assert!(
        !delete(store, org, SubscriptionId::new_v4()).await,
        "deleting an unknown id must return false"
    );
}

/// Changes of different fields made at the same time all survive: per
/// round, one task each changes the url, the events, the Authorization
/// header, the custom headers and the enabled flag while 45 others rename.
pub async fn concurrent_updates_all_survive(store: Arc<dyn Storage>) {
    const TASKS: usize = 50;
    const ROUNDS: usize = 5;
    let org = OrganizationId::new_v4();
    for round in 0..ROUNDS {
        let original = subscription(&format!("round-{round}"), &["ConversationCreated"]);
        insert(&*store, org, &original).await;
        let barrier = Arc::new(Barrier::new(TASKS));
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let mut change = SubscriptionChange::touch(at(task as i64), UserId::new_v4());
            match task {
                0 => change.url = Some("https://changed.example.com/url".to_owned()),
                1 => {
                    change.events = Some(vec![
                        "ConversationClosed".to_owned(),
                        "ConversationRated".to_owned(),
                    ])
                }
                2 => change.authorization_header = Some(Some("Bearer concurrent".to_owned())),
                3 => {
                    change.custom_headers =
                        Some(BTreeMap::from([("X-Team".to_owned(), "blue".to_owned())]))
                }
                4 => change.enabled = Some(false),
                _ => change.name = Some(format!("name-{task}")),
            }
            let store = store.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store.update_subscription(org, original.id, &change).await
            }));
        }
        for task in tasks {
            let result = task
                .await
                .unwrap_or_else(|e| panic!("update task failed: {e}"));
            let updated = result.unwrap_or_else(|e| panic!("update_subscription failed: {e:?}"));
            assert!(
                updated.is_some(),
                "update_subscription of an existing subscription must return it"
            );
        }

        let last = get(&*store, org, original.id).await;
        let last = last.unwrap_or_else(|| panic!("the subscription must still exist"));
        let names: BTreeSet<String> = (5..TASKS).map(|task| format!("name-{task}")).collect();
        assert!(
            names.contains(&last.name),
            "the name must be one of the concurrent renames, got {:?}",
            last.name
        );
        assert_eq!(
            last.url, "https://changed.example.com/url",
            "a concurrent url change was lost"
        );
        assert_eq!(
            last.subscribed_events,
            ["ConversationClosed", "ConversationRated"],
            "a concurrent events change was lost"
        );
        assert_eq!(
            last.headers,
            BTreeMap::from([
                (
                    AUTHORIZATION_HEADER.to_owned(),
                    "Bearer concurrent".to_owned()
                ),
                ("X-Team".to_owned(), "blue".to_owned()),
            ]),
            "a concurrent Authorization or custom headers change was lost"
        );
        assert!(!last.enabled, "a concurrent enabled change was lost");
        assert_eq!(
            last.created_at, original.created_at,
            "concurrent updates must not touch created_at"
        );
    }
}

async fn update(
    store: &dyn Storage,
    org: OrganizationId,
    id: SubscriptionId,
    change: &SubscriptionChange,
) -> Option<crate::model::WebhookSubscription> {
    store
        .update_subscription(org, id, change)
        .await
        .unwrap_or_else(|e| panic!("update_subscription failed: {e:?}"))
}

async fn delete(store: &dyn Storage, org: OrganizationId, id: SubscriptionId) -> bool {
    store
        .delete_subscription(org, id)
        .await
        .unwrap_or_else(|e| panic!("delete_subscription failed: {e:?}"))
}
