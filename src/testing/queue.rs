//! Checks of the delivery queue: fan-out, claims, leases and outcomes.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Duration;
use tokio::sync::Barrier;

use super::{
    at, attempts, backlog, claim, claim_one, claim_up_to, detail, enqueue, event, failed, get,
    insert, record, redeliver, statuses, subscription, LEASE,
};
use crate::model::{DeliveryId, OrganizationId, SubscriptionChange, SubscriptionId, UserId};
use crate::storage::Storage;
use crate::storage::{DeliveryState, LeaseOutcome, NextStep};

/// Fan-out enqueues one delivery per enabled subscription subscribed to the
/// event, due at `published_at`, and follows later changes of `enabled`,
/// the events and deletions. A claim carries the event and the subscription
/// as it is at claim time.
pub async fn enqueue_targets_enabled_subscribers(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let both = subscription("both", &["ConversationCreated", "ConversationClosed"]);
    let created = subscription("created", &["ConversationCreated"]);
    let mut disabled = subscription("disabled", &["ConversationCreated"]);
    disabled.enabled = false;
    let closed = subscription("closed", &["ConversationClosed"]);
    let nothing = subscription("nothing", &[]);
    for sub in [&both, &created, &disabled, &closed, &nothing] {
        insert(store, org, sub).await;
    }

    let first = event(org, "ConversationCreated", at(0));
    enqueue(store, &first, 2).await;
    let mut change = SubscriptionChange::touch(at(1), UserId::new_v4());
    change.url = Some("https://moved.example.com/hook".to_owned());
    let moved = store
        .update_subscription(org, both.id, &change)
        .await
        .unwrap_or_else(|e| panic!("update_subscription failed: {e:?}"))
        .unwrap_or_else(|| panic!("update_subscription must find the subscription"));

    let claimed = claim(store, at(0)).await;
    assert_eq!(
        targets(&claimed),
        BTreeSet::from([both.id, created.id]),
        "deliveries must go to exactly the enabled subscriptions subscribed to the event"
    );
    for c in &claimed {
        let d = &c.delivery;
        assert_eq!(d.organization_id, org, "a delivery keeps its organization");
        assert_eq!(
            d.event_id, first.event_id,
            "a delivery carries the event id"
        );
        assert_eq!(
            d.event_name, first.event_name,
            "a delivery carries the event name"
        );
        assert_eq!(d.payload, first.payload, "a delivery carries the payload");
        assert_eq!(d.attempts, 0, "a new delivery has no attempts");
        assert_eq!(
            d.due_at, first.published_at,
            "a new delivery is due at published_at"
        );
        assert_eq!(
            d.state,
            DeliveryState::Leased,
            "a claimed delivery is leased"
        );
        assert_eq!(c.lease.delivery_id, d.id, "the lease names its delivery");
        assert_eq!(
            c.lease.expires_at,
            at(0) + LEASE,
            "the lease lasts lease_for from now"
        );
        let expected = if d.subscription_id == both.id {
            &moved
        } else {
            &created
        };
        assert_eq!(
            &*c.subscription, expected,
            "a claim carries the subscription as it is now"
        );
    }
    let ids: BTreeSet<DeliveryId> = claimed.iter().map(|c| c.delivery.id).collect();
    assert_eq!(ids.len(), 2, "every delivery has its own id");

    // Enabling, re-subscribing and disabling change who gets the next event.
    let mut enable = SubscriptionChange::touch(at(2), UserId::new_v4());
    enable.enabled = Some(true);
    let mut subscribe = SubscriptionChange::touch(at(2), UserId::new_v4());
    subscribe.events = Some(vec!["ConversationCreated".to_owned()]);
    let mut disable = SubscriptionChange::touch(at(2), UserId::new_v4());
    disable.enabled = Some(false);
    for (id, change) in [
        (disabled.id, &enable),
        (closed.id, &subscribe),
        (both.id, &disable),
    ] {
        let updated = store
            .update_subscription(org, id, change)
            .await
            .unwrap_or_else(|e| panic!("update_subscription failed: {e:?}"));
        assert!(
            updated.is_some(),
            "update_subscription must find the subscription"
        );
    }
    enqueue(store, &event(org, "ConversationCreated", at(10)), 3).await;
    assert_eq!(
        targets(&claim(store, at(10)).await),
        BTreeSet::from([created.id, disabled.id, closed.id]),
        "fan-out must follow changes of enabled and of the subscribed events"
    );

    let deleted = store
        .delete_subscription(org, created.id)
        .await
        .unwrap_or_else(|e| panic!("delete_subscription failed: {e:?}"));
    assert!(deleted, "delete_subscription must find the subscription");
    enqueue(store, &event(org, "ConversationCreated", at(20)), 2).await;
    assert_eq!(
        targets(&claim(store, at(20)).await),
        BTreeSet::from([disabled.id, closed.id]),
        "fan-out must skip deleted subscriptions"
    );
}

/// An `event_id` is enqueued once per organization: a second publish with
/// the same id (even with another name, payload or time, and even if the
/// first reached nobody) enqueues nothing; another organization's equal id
/// is independent.
pub async fn duplicate_event_id_enqueues_nothing(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let other = OrganizationId::new_v4();
    insert(store, org, &subscription("a", &["ConversationCreated"])).await;
    insert(
        store,
        org,
        &subscription("b", &["ConversationCreated", "ConversationClosed"]),
    )
    .await;
    insert(store, other, &subscription("c", &["ConversationCreated"])).await;

    let original = event(org, "ConversationCreated", at(0));
    enqueue(store, &original, 2).await;
    let mut again = event(org, "ConversationClosed", at(60));
    again.event_id = original.event_id;
    let duplicate = store
        .enqueue_event(&again)
        .await
        .unwrap_or_else(|e| panic!("enqueue_event failed: {e:?}"));
    assert_eq!(duplicate, 0, "a duplicate event_id must enqueue nothing");
    assert_eq!(
        claim(store, at(60)).await.len(),
        2,
        "a duplicate event_id must add no delivery"
    );

    let mut elsewhere = event(other, "ConversationCreated", at(0));
    elsewhere.event_id = original.event_id;
    enqueue(store, &elsewhere, 1).await;

    // The first publish reached nobody; the id is used all the same.
    let unheard = event(org, "ConversationRated", at(0));
    enqueue(store, &unheard, 0).await;
    insert(store, org, &subscription("late", &["ConversationRated"])).await;
    let mut retried = unheard.clone();
    retried.published_at = at(120);
    let count = store
        .enqueue_event(&retried)
        .await
        .unwrap_or_else(|e| panic!("enqueue_event failed: {e:?}"));
    assert_eq!(
        count, 0,
        "an event_id must not be enqueued again even when its first publish reached nobody"
    );
}

/// A claim takes only deliveries due at `now` (`due_at <= now`), at most
/// `limit` of them.
pub async fn claim_respects_due_time_and_limit(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let sub = subscription("due", &["ConversationCreated"]);
    insert(store, org, &sub).await;
    for second in [10, 20, 30] {
        enqueue(store, &event(org, "ConversationCreated", at(second)), 1).await;
    }

    assert!(
        claim(store, at(5)).await.is_empty(),
        "nothing may be claimed before it is due"
    );
    let due: Vec<_> = claim(store, at(20))
        .await
        .iter()
        .map(|c| c.delivery.due_at)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        due,
        [at(10), at(20)],
        "a claim takes exactly the deliveries due at or before now"
    );
    assert!(
        claim_up_to(store, at(30), 0).await.is_empty(),
        "a claim with limit 0 takes nothing"
    );
    assert_eq!(
        claim_one(store, at(30)).await.delivery.due_at,
        at(30),
        "the last delivery is claimable once due"
    );

    // Five due at once, taken two at a time.
    let wide = subscription("wide", &["ConversationClosed"]);
    insert(store, org, &wide).await;
    for _ in 0..5 {
        enqueue(store, &event(org, "ConversationClosed", at(40)), 1).await;
    }
    let mut seen = BTreeSet::new();
    for expected in [2, 2, 1, 0] {
        let batch = claim_up_to(store, at(40), 2).await;
        assert_eq!(
            batch.len(),
            expected,
            "a claim must take at most `limit` and all that is due"
        );
        seen.extend(batch.iter().map(|c| c.delivery.id));
    }
    assert_eq!(seen.len(), 5, "batches must not overlap");
}

/// While a lease holds (`now < expires_at`) nobody else can claim the
/// delivery; from `expires_at` on it is claimable again, with a new token,
/// unchanged attempts and due time.
pub async fn lease_blocks_other_claimers_until_expiry(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    insert(
        store,
        org,
        &subscription("leased", &["ConversationCreated"]),
    )
    .await;
    enqueue(store, &event(org, "ConversationCreated", at(0)), 1).await;

    let first = claim_one(store, at(0)).await;
    assert_eq!(
        first.lease.expires_at,
        at(0) + LEASE,
        "the lease lasts lease_for from now"
    );
    let held_until = first.lease.expires_at - Duration::milliseconds(1);
    assert!(
        claim(store, held_until).await.is_empty(),
        "a delivery must not be claimed again while its lease holds"
    );
    let second = claim_one(store, first.lease.expires_at).await;
    assert_eq!(
        second.delivery.id, first.delivery.id,
        "an expired lease must make the delivery claimable again"
    );
    assert_ne!(
        second.lease.token, first.lease.token,
        "a new claim must get a new lease token"
    );
    assert_eq!(
        second.lease.expires_at,
        first.lease.expires_at + LEASE,
        "the new lease lasts lease_for from the new claim"
    );
    assert_eq!(
        second.delivery.attempts, 0,
        "an expired lease is not an attempt"
    );
    assert_eq!(
        second.delivery.due_at, first.delivery.due_at,
        "an expired lease keeps the due time"
    );
}

/// A claim whose lease was taken over is logged but cannot change the queue
/// ([`LeaseOutcome::LeaseLost`]), whichever holder records first.
pub async fn stale_lease_cannot_overwrite(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let sub = subscription("stale", &["ConversationCreated"]);
    insert(store, org, &sub).await;
    enqueue(store, &event(org, "ConversationCreated", at(0)), 1).await;

    // The new holder records first; the stale holder's Complete must not remove it.
    let stale = claim_one(store, at(0)).await;
    let fresh = claim_one(store, stale.lease.expires_at).await;
    let outcome = record(
        store,
        &fresh,
        &detail(at(31), 500, "fresh"),
        NextStep::Retry { at: at(300) },
    )
    .await;
    assert_eq!(
        outcome,
        LeaseOutcome::Applied,
        "the current holder's outcome must apply"
    );
    let outcome = record(
        store,
        &stale,
        &detail(at(32), 200, "stale"),
        NextStep::Complete,
    )
    .await;
    assert_eq!(
        outcome,
        LeaseOutcome::LeaseLost,
        "an outcome recorded with a lost lease must report LeaseLost"
    );
    let release = store
        .release(&stale)
        .await
        .unwrap_or_else(|e| panic!("release failed: {e:?}"));
    assert_eq!(
        release,
        LeaseOutcome::LeaseLost,
        "a lost lease cannot be released"
    );
    assert!(
        claim(store, at(299)).await.is_empty(),
        "the current holder's Retry must stand"
    );
    let third = claim_one(store, at(300)).await;
    assert_eq!(
        third.delivery.attempts, 1,
        "only the current holder's attempt counts"
    );
    let logged: Vec<_> = attempts(store, org, sub.id, "ConversationCreated")
        .await
        .into_iter()
        .map(|a| a.detail.response_text)
        .collect();
    assert_eq!(
        logged,
        ["stale", "fresh"],
        "an attempt with a lost lease is still logged"
    );

    // The stale holder records first; the new holder's Complete must stand.
    let fourth = claim_one(store, third.lease.expires_at).await;
    let outcome = record(
        store,
        &third,
        &detail(at(331), 500, "late"),
        NextStep::Retry { at: at(400) },
    )
    .await;
    assert_eq!(
        outcome,
        LeaseOutcome::LeaseLost,
        "a stale Retry must report LeaseLost"
    );
    let outcome = record(
        store,
        &fourth,
        &detail(at(332), 200, "done"),
        NextStep::Complete,
    )
    .await;
    assert_eq!(
        outcome,
        LeaseOutcome::Applied,
        "the current holder's outcome must apply"
    );
    assert!(
        claim(store, at(100_000)).await.is_empty(),
        "a stale Retry must not bring back a completed delivery"
    );
}

/// Eight concurrent claim loops over 2,000 due deliveries get every one
/// exactly once, and each holder's `Complete` applies.
pub async fn concurrent_claimers_share_nothing(store: Arc<dyn Storage>) {
    const SUBSCRIPTIONS: usize = 20;
    const EVENTS: usize = 100;
    const TOTAL: usize = SUBSCRIPTIONS * EVENTS;
    const CLAIMERS: usize = 8;
    let org = OrganizationId::new_v4();
    backlog(&*store, org, SUBSCRIPTIONS, EVENTS).await;

    let barrier = Arc::new(Barrier::new(CLAIMERS));
    let mut tasks = Vec::new();
    for _ in 0..CLAIMERS {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut mine = Vec::new();
            // Each round claims at least one or ends the loop.
            for _ in 0..=TOTAL {
                let batch = store
                    .claim_deliveries(at(1), Duration::hours(1), 25)
                    .await
                    .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
                if batch.is_empty() {
                    return mine;
                }
                for claimed in batch {
                    let outcome = store
                        .record_attempt(&claimed, &detail(at(2), 200, "OK"), NextStep::Complete)
                        .await
                        .unwrap_or_else(|e| panic!("record_attempt failed: {e:?}"));
                    assert_eq!(
                        outcome,
                        LeaseOutcome::Applied,
                        "the holder of a lease must be able to complete it"
                    );
                    mine.push(claimed.delivery.id);
                }
            }
            panic!("claims kept returning deliveries after all were claimed");
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(
            task.await
                .unwrap_or_else(|e| panic!("claim task failed: {e}")),
        );
    }
    let distinct: BTreeSet<DeliveryId> = all.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "a delivery was handed to two claimers while its lease held"
    );
    assert_eq!(
        all.len(),
        TOTAL,
        "every enqueued delivery must be claimed once"
    );
    assert!(
        claim(&*store, at(100_000)).await.is_empty(),
        "completed deliveries must not come back"
    );
}

/// `Retry` makes the delivery due at `at` (not before) with one more attempt.
pub async fn retry_reschedules(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    insert(store, org, &subscription("retry", &["ConversationCreated"])).await;
    enqueue(store, &event(org, "ConversationCreated", at(0)), 1).await;

    let mut claimed = claim_one(store, at(0)).await;
    for (attempt, due) in [(1, 300), (2, 2100)] {
        let outcome = record(
            store,
            &claimed,
            &detail(claimed.delivery.due_at, 503, "Service Unavailable"),
            NextStep::Retry { at: at(due) },
        )
        .await;
        assert_eq!(
            outcome,
            LeaseOutcome::Applied,
            "the holder's Retry must apply"
        );
        assert!(
            claim(store, at(due) - Duration::milliseconds(1))
                .await
                .is_empty(),
            "a retried delivery must not be claimable before its new due time"
        );
        claimed = claim_one(store, at(due)).await;
        assert_eq!(
            claimed.delivery.attempts, attempt,
            "Retry must count the attempt"
        );
        assert_eq!(
            claimed.delivery.due_at,
            at(due),
            "Retry must move the due time"
        );
    }
}

/// `Complete` removes the delivery from the queue; the attempt is logged.
pub async fn complete_removes_delivery(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let sub = subscription("complete", &["ConversationCreated"]);
    insert(store, org, &sub).await;
    enqueue(store, &event(org, "ConversationCreated", at(0)), 1).await;

    let claimed = claim_one(store, at(0)).await;
    let outcome = record(
        store,
        &claimed,
        &detail(at(1), 204, "No Content"),
        NextStep::Complete,
    )
    .await;
    assert_eq!(
        outcome,
        LeaseOutcome::Applied,
        "the holder's Complete must apply"
    );
    assert!(
        claim(store, at(1_000_000)).await.is_empty(),
        "a completed delivery must never be claimed again"
    );
    assert!(
        failed(store, org, sub.id).await.is_empty(),
        "a completed delivery is not failed"
    );
    let logged = attempts(store, org, sub.id, "ConversationCreated").await;
    assert_eq!(logged.len(), 1, "the completing attempt must be logged");
    assert_eq!(
        logged[0].detail,
        detail(at(1), 204, "No Content"),
        "the log must hold the attempt as recorded"
    );
}

/// `Fail` keeps the delivery as failed (listed most recently due first, up
/// to `limit`); `redeliver` queues a failed delivery again at `now` with a
/// fresh attempt count and refuses anything not failed.
pub async fn fail_keeps_delivery_for_redelivery(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let sub = subscription("fail", &["ConversationCreated"]);
    insert(store, org, &sub).await;
    for second in [0, 10, 20] {
        enqueue(store, &event(org, "ConversationCreated", at(second)), 1).await;
    }
    for claimed in claim(store, at(20)).await {
        let outcome = record(
            store,
            &claimed,
            &detail(at(21), 500, "Internal Server Error"),
            NextStep::Fail,
        )
        .await;
        assert_eq!(
            outcome,
            LeaseOutcome::Applied,
            "the holder's Fail must apply"
        );
    }
    assert!(
        claim(store, at(1_000_000)).await.is_empty(),
        "a failed delivery must not be claimed"
    );

    let listed = failed(store, org, sub.id).await;
    let due: Vec<_> = listed.iter().map(|d| d.due_at).collect();
    assert_eq!(
        due,
        [at(20), at(10), at(0)],
        "failed_deliveries must list most recently due first"
    );
    for d in &listed {
        assert_eq!(
            d.state,
            DeliveryState::Failed,
            "a failed delivery is in state Failed"
        );
        assert_eq!(d.attempts, 1, "the failing attempt counts");
        assert_eq!(
            d.subscription_id, sub.id,
            "a failed delivery keeps its subscription"
        );
    }
    let limited = store
        .failed_deliveries(org, sub.id, 2)
        .await
        .unwrap_or_else(|e| panic!("failed_deliveries failed: {e:?}"));
    assert_eq!(limited, listed[..2], "failed_deliveries must stop at limit");

    let again = listed[1].id;
    assert!(
        redeliver(store, org, again, at(100)).await,
        "redeliver of a failed delivery must return true"
    );
    let remaining: Vec<_> = failed(store, org, sub.id)
        .await
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(
        remaining,
        [listed[0].id, listed[2].id],
        "a redelivered delivery is no longer failed"
    );
    assert!(
        claim(store, at(99)).await.is_empty(),
        "a redelivered delivery is due at the given now"
    );
    let claimed = claim_one(store, at(100)).await;
    assert_eq!(
        claimed.delivery.id, again,
        "the redelivered delivery is the one claimed"
    );
    assert_eq!(
        claimed.delivery.attempts, 0,
        "redeliver must reset the attempt count"
    );
    assert_eq!(
        claimed.delivery.due_at,
        at(100),
        "redeliver must make it due at now"
    );

    assert!(
        !redeliver(store, org, again, at(200)).await,
        "redeliver of a delivery that is not failed must return false"
    );
    assert!(
        !redeliver(store, org, DeliveryId::new_v4(), at(200)).await,
        "redeliver of an unknown delivery must return false"
    );
}

/// `FailAndDisable` fails the delivery and disables its subscription, which
/// then receives no new events.
pub async fn fail_and_disable_disables_subscription(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let gone = subscription("gone", &["ConversationCreated"]);
    let alive = subscription("alive", &["ConversationCreated"]);
    insert(store, org, &gone).await;
    insert(store, org, &alive).await;
    enqueue(store, &event(org, "ConversationCreated", at(0)), 2).await;

    for claimed in claim(store, at(0)).await {
        let (result, next) = if claimed.delivery.subscription_id == gone.id {
            (detail(at(1), 410, "Gone"), NextStep::FailAndDisable)
        } else {
            (detail(at(1), 200, "OK"), NextStep::Complete)
        };
        let outcome = record(store, &claimed, &result, next).await;
        assert_eq!(
            outcome,
            LeaseOutcome::Applied,
            "the holder's outcome must apply"
        );
    }

    let stored = get(store, org, gone.id)
        .await
        .unwrap_or_else(|| panic!("FailAndDisable must keep the subscription"));
    assert!(
        !stored.enabled,
        "FailAndDisable must disable the subscription"
    );
    assert_eq!(
        (&stored.name, &stored.url, &stored.subscribed_events),
        (&gone.name, &gone.url, &gone.subscribed_events),
        "FailAndDisable must change nothing but enabled"
    );
    assert_eq!(
        failed(store, org, gone.id).await.len(),
        1,
        "FailAndDisable must keep the delivery as failed"
    );
    assert_eq!(
        get(store, org, alive.id).await.map(|s| s.enabled),
        Some(true),
        "other subscriptions stay enabled"
    );
    enqueue(store, &event(org, "ConversationCreated", at(10)), 1).await;
    assert_eq!(
        claim_one(store, at(10)).await.delivery.subscription_id,
        alive.id,
        "a disabled subscription receives no new events"
    );
}

/// `release` hands a delivery back without an attempt: it is claimable at
/// once with a new token; the old claim is then stale.
pub async fn release_makes_delivery_claimable_at_once(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let sub = subscription("release", &["ConversationCreated"]);
    insert(store, org, &sub).await;
    enqueue(store, &event(org, "ConversationCreated", at(0)), 1).await;

    let first = store
        .claim_deliveries(at(0), Duration::hours(1), 10)
        .await
        .unwrap_or_else(|e| panic!("claim_deliveries failed: {e:?}"));
    assert_eq!(first.len(), 1, "the delivery must be claimable");
    let released = store
        .release(&first[0])
        .await
        .unwrap_or_else(|e| panic!("release failed: {e:?}"));
    assert_eq!(
        released,
        LeaseOutcome::Applied,
        "the holder's release must apply"
    );

    let second = claim_one(store, at(0)).await;
    assert_eq!(
        second.delivery.id, first[0].delivery.id,
        "a released delivery is claimable at once"
    );
    assert_ne!(
        second.lease.token, first[0].lease.token,
        "a new claim gets a new token"
    );
    assert_eq!(second.delivery.attempts, 0, "a release is not an attempt");
    assert!(
        attempts(store, org, sub.id, "ConversationCreated")
            .await
            .is_empty(),
        "a release logs nothing"
    );
    let again = store
        .release(&first[0])
        .await
        .unwrap_or_else(|e| panic!("release failed: {e:?}"));
    assert_eq!(again, LeaseOutcome::LeaseLost, "a released claim is stale");
    assert!(
        claim(store, at(0)).await.is_empty(),
        "a stale release must not free the new holder's delivery"
    );
}

/// Deleting a subscription cancels its pending, leased and failed
/// deliveries, drops its logs and statuses, and later attempts of its
/// claims are neither logged nor applied. Other subscriptions keep theirs.
pub async fn delete_cancels_deliveries_and_logs(store: &dyn Storage) {
    let org = OrganizationId::new_v4();
    let doomed = subscription("doomed", &["ConversationCreated", "ConversationClosed"]);
    let survivor = subscription("survivor", &["ConversationRated"]);
    insert(store, org, &doomed).await;
    insert(store, org, &survivor).await;

    // doomed: one failed (logged), one leased, one pending; survivor: one pending.
    enqueue(store, &event(org, "ConversationCreated", at(0)), 1).await;
    let failing = claim_one(store, at(0)).await;
    let outcome = record(store, &failing, &detail(at(1), 500, "boom"), NextStep::Fail).await;
    assert_eq!(
        outcome,
        LeaseOutcome::Applied,
        "the holder's Fail must apply"
    );
    enqueue(store, &event(org, "ConversationClosed", at(10)), 1).await;
    let leased = claim_one(store, at(10)).await;
    enqueue(store, &event(org, "ConversationClosed", at(20)), 1).await;
    enqueue(store, &event(org, "ConversationRated", at(500)), 1).await;

    let deleted = store
        .delete_subscription(org, doomed.id)
        .await
        .unwrap_or_else(|e| panic!("delete_subscription failed: {e:?}"));
    assert!(deleted, "delete_subscription must find the subscription");

    let outcome = record(
        store,
        &leased,
        &detail(at(30), 200, "late"),
        NextStep::Complete,
    )
    .await;
    assert_eq!(
        outcome,
        LeaseOutcome::LeaseLost,
        "an attempt for a deleted subscription must report LeaseLost"
    );
    let left = claim(store, at(1_000_000)).await;
    assert_eq!(
        targets(&left),
        BTreeSet::from([survivor.id]),
        "deleting a subscription must cancel its deliveries and only its own"
    );
    assert_eq!(left.len(), 1, "the survivor's delivery must stay queued");
    let outcome = record(
        store,
        &left[0],
        &detail(at(1_000_001), 200, "OK"),
        NextStep::Complete,
    )
    .await;
    assert_eq!(
        outcome,
        LeaseOutcome::Applied,
        "the holder's Complete must apply"
    );
    assert!(
        !redeliver(store, org, failing.delivery.id, at(40)).await,
        "a deleted subscription's failed delivery cannot be redelivered"
    );

    // Even under the same id again, nothing of the old one comes back.
    insert(store, org, &doomed).await;
    for event_name in ["ConversationCreated", "ConversationClosed"] {
        assert!(
            attempts(store, org, doomed.id, event_name).await.is_empty(),
            "deleting a subscription must remove its logs (and a late attempt must not be logged)"
        );
    }
    assert!(
        statuses(store, org, doomed.id).await.is_empty(),
        "deleting a subscription must remove its statuses"
    );
    assert!(
        failed(store, org, doomed.id).await.is_empty(),
        "deleting a subscription must remove its failed deliveries"
    );
    assert!(
        claim(store, at(2_000_000)).await.is_empty(),
        "nothing of a deleted subscription may be claimed"
    );
}

fn targets(claimed: &[crate::storage::ClaimedDelivery]) -> BTreeSet<SubscriptionId> {
    claimed.iter().map(|c| c.delivery.subscription_id).collect()
}
